//! The pictures: training curves read back from `--log` CSV files (both formats, several runs
//! in one file, malformed files refused with file, line and column), and the figures drawn from
//! them and from confusion matrices. CPU only: no device needed.

mod common;

use common::temp;

use std::path::Path;

use wgtrain::runlog::{self, Run};

const NEW_HEADER: &str =
    "run,model,dataset,optimizer,base_lr,batch,seed,epoch,lr,train_loss,train_accuracy,val_loss,val_accuracy,images_per_s,seconds";

fn two_runs() -> String {
    format!(
        "{NEW_HEADER}\n\
         a1,default,shapes,adam,0.001,64,1,1,0.001,1.20,0.55,1.00,0.62,800.0,3.1\n\
         b2,default,shapes,sgd,0.01,64,1,1,0.01,2.10,0.20,,,900.0,2.9\n\
         a1,default,shapes,adam,0.001,64,1,2,0.001,0.80,0.71,0.75,0.74,810.0,3.0\n\
         b2,default,shapes,sgd,0.01,64,1,2,0.01,1.90,0.31,,,905.0,2.8\n\
         a1,default,shapes,adam,0.001,64,1,3,0.001,0.60,0.80,0.70,0.77,805.0,3.0\n"
    )
}

#[test]
fn a_log_with_two_runs_is_read_by_header_name() {
    let runs = runlog::parse(&two_runs(), Path::new("log.csv")).unwrap();
    assert_eq!(runs.len(), 2);
    let (a, b) = (&runs[0], &runs[1]);
    assert_eq!(a.id.as_deref(), Some("a1"));
    assert_eq!(a.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(a.epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>(), [1.2, 0.8, 0.6]);
    assert_eq!(a.epochs[1].val_accuracy, Some(0.74));
    assert_eq!(a.epochs[2].images_per_s, Some(805.0));
    assert_eq!(b.epochs.len(), 2);
    assert_eq!(b.epochs[1].train_accuracy, 0.31);
    assert!(b.epochs.iter().all(|e| e.val_loss.is_none() && e.val_accuracy.is_none()));
    assert_eq!(runlog::labels(&runs), ["default · adam lr 0.001 · batch 64", "default · sgd lr 0.01 · batch 64"]);
    // Columns in another order are found by name.
    let shuffled = "train_loss,epoch,val_accuracy,train_accuracy,val_loss\n0.5,1,0.9,0.8,0.4\n";
    let r = runlog::parse(shuffled, Path::new("x.csv")).unwrap();
    assert_eq!((r[0].epochs[0].epoch, r[0].epochs[0].train_loss, r[0].epochs[0].val_loss), (1, 0.5, Some(0.4)));
}

#[test]
fn the_older_format_is_one_run_per_restart_labelled_by_file() {
    let old = "epoch,lr,train_loss,train_accuracy,val_loss,val_accuracy,images_per_s,seconds\n\
               1,0.001,1.5,0.4,1.2,0.5,700.0,2.0\n2,0.001,1.0,0.6,0.9,0.7,700.0,2.0\n\
               1,0.01,2.0,0.3,1.9,0.3,700.0,2.0\n";
    let runs = runlog::parse(old, Path::new("dir/shapes.csv")).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].epochs.len(), 2);
    assert_eq!(runlog::labels(&runs), ["shapes.csv", "shapes.csv (run 2)"]);
    assert_eq!(runs[0].epochs[0].lr, Some(0.001));
}

#[test]
fn colliding_labels_get_what_tells_them_apart() {
    let text = format!(
        "{NEW_HEADER}\nr1,default,shapes,adam,0.001,64,1,1,0.001,1,0.5,1,0.5,1,1\n\
         r2,default,shapes,adam,0.001,64,2,1,0.001,1,0.5,1,0.5,1,1\n\
         r3,default,mnist,adam,0.001,64,2,1,0.001,1,0.5,1,0.5,1,1\n\
         r4,default,mnist,adam,0.001,64,2,1,0.001,1,0.5,1,0.5,1,1\n"
    );
    let runs = runlog::parse(&text, Path::new("l.csv")).unwrap();
    let labels = runlog::labels(&runs);
    let base = "default · adam lr 0.001 · batch 64";
    assert_eq!(
        labels,
        [
            format!("{base} · shapes · seed 1"),
            format!("{base} · shapes · seed 2"),
            format!("{base} · mnist · seed 2 · run r3"),
            format!("{base} · mnist · seed 2 · run r4")
        ]
    );
    // A resumed run that logs an epoch again replaces it.
    let text =
        format!("{NEW_HEADER}\nr,m,d,adam,1,8,1,1,1,3,0.1,,,1,1\nr,m,d,adam,1,8,1,2,1,2,0.2,,,1,1\nr,m,d,adam,1,8,1,2,1,1,0.3,,,1,1\n");
    let runs: Vec<Run> = runlog::parse(&text, Path::new("l.csv")).unwrap();
    assert_eq!(runs[0].epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>(), [3.0, 1.0]);
}

#[test]
fn malformed_logs_are_errors_naming_file_line_and_column() {
    let cases: &[(&str, &[&str])] = &[
        ("", &["bad.csv", "empty"]),
        ("epoch,lr,train_loss,train_accuracy,val_loss\n", &["bad.csv", "no epochs"]),
        ("a,b,c\n1,2,3\n", &["bad.csv", "line 1", "no column 'epoch'"]),
        ("1,0.1,0.5,0.5\n", &["bad.csv", "line 1", "no column 'epoch'", "header starts with"]),
        ("epoch,train_loss,train_accuracy,val_loss\n1,0.5,0.5,\n2,abc,0.5,\n", &["bad.csv", "line 3", "column 2 (train_loss)", "'abc'"]),
        ("epoch,train_loss,train_accuracy,val_loss\n1,0.5,57.0,\n", &["line 2", "column 3 (train_accuracy)", "fraction"]),
        ("epoch,train_loss,train_accuracy,val_loss\n1,0.5\n", &["line 2", "2 fields, expected 4"]),
        ("epoch,train_loss,train_accuracy,val_loss\nfirst,0.5,0.5,\n", &["line 2", "column 1 (epoch)", "'first'"]),
        ("epoch,train_loss,train_accuracy,val_loss\n1,,0.5,\n", &["line 2", "column 2 (train_loss)", "empty"]),
        ("epoch,train_loss,train_accuracy,val_loss,epoch\n", &["line 1", "column 5", "twice"]),
        ("epoch,train_loss,train_accuracy,val_loss\n1,\"0.5,0.5,\n", &["line 2", "quoted"]),
    ];
    for (text, expect) in cases {
        let err = runlog::parse(text, Path::new("dir/bad.csv")).unwrap_err().to_string();
        for e in *expect {
            assert!(err.contains(e), "{text:?}: expected '{e}' in: {err}");
        }
    }
    let err = runlog::read(Path::new("/no/such/log.csv")).unwrap_err().to_string();
    assert!(err.contains("/no/such/log.csv"), "{err}");
}

/// Pixels of exactly this colour.
fn count(img: &image::RgbImage, c: [u8; 3]) -> usize {
    img.pixels().filter(|p| p.0 == c).count()
}

#[test]
fn curves_of_two_runs_are_drawn() {
    let d = temp("curves");
    let runs = runlog::parse(&two_runs(), Path::new("log.csv")).unwrap();
    let path = d.join("curves.png");
    runlog::plot(&runs, &path).unwrap();
    let img = image::open(&path).unwrap().to_rgb8();
    // Two panels of 520 pixels.
    assert_eq!(img.dimensions(), (1040, 650));
    // Both runs' colours (the first two of the palette) are drawn, in both panels.
    for c in [[31, 119, 180], [255, 127, 14]] {
        let left = img.enumerate_pixels().filter(|(x, _, p)| *x < 520 && p.0 == c).count();
        let right = img.enumerate_pixels().filter(|(x, _, p)| *x >= 520 && p.0 == c).count();
        assert!(left > 100 && right > 100, "colour {c:?}: {left} pixels left, {right} right");
    }
    // No third colour: the validation lines take their run's colour.
    assert!(count(&img, [44, 160, 44]) < 20, "{}", count(&img, [44, 160, 44]));
    assert!(!d.join("curves.png.tmp").exists());
}

#[test]
fn confusion_matrix_is_drawn_with_the_first_class_on_top() {
    use wgtrain::plot::{save_confusion, ConfusionCells};
    let d = temp("confusion");
    let classes: Vec<String> = ["cat", "dog", "a rather long class name"].iter().map(|s| s.to_string()).collect();
    // Class 0 is classified best: its diagonal cell is the largest share and the brightest.
    let confusion = vec![vec![50, 0, 0], vec![10, 30, 10], vec![5, 15, 30]];
    let yellow = [253, 231, 37]; // the top of the viridis scale
    for cells in [ConfusionCells::RowPercent, ConfusionCells::Counts] {
        let path = d.join(format!("{cells:?}.png"));
        save_confusion(&path, "default on shapes (test split, 150 images): accuracy 73.33%", &classes, &confusion, cells).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (1000, 650));
        let bright: Vec<(u32, u32)> = img.enumerate_pixels().filter(|(_, _, p)| p.0 == yellow).map(|(x, y, _)| (x, y)).collect();
        assert!(bright.len() > 2000, "{cells:?}: {} brightest pixels", bright.len());
        // In the cells, the brightest is the top-left one (the colour bar is on the right).
        let in_cells: Vec<_> = bright.iter().filter(|(x, _)| *x < 800).collect();
        assert!(!in_cells.is_empty() && in_cells.iter().all(|(x, y)| *x < 450 && *y < 300), "{cells:?}: brightest cell not top left");
    }
    // A true class without images: grey, no panic.
    save_confusion(&d.join("empty.png"), "t", &classes, &[vec![0, 0, 0], vec![1, 2, 0], vec![0, 0, 3]], ConfusionCells::RowPercent)
        .unwrap();
}

#[test]
fn confusion_table_names_the_classes() {
    let e = wgtrain::train::Evaluation {
        loss: 0.5,
        accuracy: 0.8,
        per_class: vec![1.0, 0.5],
        confusion: vec![vec![12345, 0], vec![3, 3]],
        samples: 12351,
        probabilities: None,
    };
    let text = e.confusion_table(&["circle".into(), "a-very-long-name".into()]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains("circle") && lines[0].contains("a-very-lon") && !lines[0].contains("a-very-long"), "{text}");
    assert!(lines[1].trim_start().starts_with("circle") && lines[1].contains(" 12345 ") && lines[1].ends_with(" 0"), "{text}");
    assert!(lines[2].trim_start().starts_with("a-very-long-name") && lines[2].ends_with(" 3"), "{text}");
    // Columns line up: every line is as long as the header.
    assert!(lines.iter().all(|l| l.chars().count() == lines[0].chars().count()), "{text}");
}

#[test]
fn summary_expands_residual_blocks_and_shows_kernels() {
    use wgtrain::nn::{zoo, LayerSpec};
    let spec = zoo::model("resnet20", 10).unwrap();
    let text = spec.summary(&[3, 32, 32]).unwrap();
    // Every convolution of the model, inside the blocks too, has its own row with the zoo's
    // kernel, stride and padding.
    fn convs(layers: &[LayerSpec], out: &mut Vec<LayerSpec>) {
        for l in layers {
            match l {
                LayerSpec::Residual { body, shortcut } => {
                    convs(body, out);
                    convs(shortcut, out);
                }
                l @ LayerSpec::Conv2d { .. } => out.push(l.clone()),
                _ => {}
            }
        }
    }
    let mut all = vec![];
    convs(&spec.layers, &mut all);
    assert!(all.len() >= 19, "{} convolutions", all.len());
    let rows: Vec<&str> = text.lines().filter(|l| l.split_whitespace().nth(1) == Some("conv2d")).collect();
    assert_eq!(rows.len(), all.len(), "{text}");
    for (row, conv) in rows.iter().zip(&all) {
        let LayerSpec::Conv2d { kernel, stride, padding, dilation, groups, .. } = conv else { unreachable!() };
        let cells: Vec<&str> = row.split_whitespace().collect();
        let expect = [
            format!("{}x{}", kernel[0], kernel[1]),
            stride[0].to_string(),
            padding[0].to_string(),
            dilation[0].to_string(),
            groups.to_string(),
        ];
        assert_eq!(&cells[2..7], &expect.iter().map(String::as_str).collect::<Vec<_>>()[..], "{row}");
    }
    // Inner layers are indented under their block's row, which is followed by the sum and relu.
    let block = text.lines().position(|l| l.split_whitespace().nth(1) == Some("residual")).expect("a residual row");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[block + 1].contains(".body.0") && lines[block + 1].contains("    conv2d"), "{}", lines[block + 1]);
    assert!(text.lines().any(|l| l.contains(".shortcut.0")), "{text}");
    assert!(text.lines().any(|l| l.split_whitespace().nth(1) == Some("add")), "{text}");
    // Pooling rows show their kernel too.
    let lenet = zoo::model("lenet5", 10).unwrap().summary(&[1, 28, 28]).unwrap();
    assert!(lenet.lines().any(|l| l.contains("pool2d") && l.split_whitespace().nth(2) == Some("2x2")), "{lenet}");
}

#[test]
fn training_memory_scales_with_the_batch_and_the_optimizer() {
    use wgtrain::nn::zoo;
    use wgtrain::Optimizer;
    let spec = zoo::model("resnet20", 10).unwrap();
    let adam = Optimizer::preset("adam").unwrap();
    let (one, many) = (spec.memory(&[3, 32, 32], 1, &adam).unwrap(), spec.memory(&[3, 32, 32], 64, &adam).unwrap());
    let params: u64 = spec.graph(&[3, 32, 32]).unwrap().params.iter().map(|p| p.shape.iter().product::<usize>() as u64).sum();
    assert_eq!(one.parameter_bytes, 4 * params);
    assert_eq!((one.gradient_bytes, many.parameter_bytes), (one.parameter_bytes, one.parameter_bytes));
    assert_eq!(one.optimizer_bytes, 2 * one.parameter_bytes);
    assert!(one.activation_bytes > 0 && one.saved_bytes > 0);
    assert_eq!(many.activation_bytes, 64 * one.activation_bytes);
    // Batch norm's saved statistics are per channel (all resnet20 saves), pooling indices per
    // sample.
    assert_eq!(many.saved_bytes, one.saved_bytes);
    let lenet = zoo::model("lenet5", 10).unwrap();
    let (l1, l8) = (lenet.memory(&[1, 28, 28], 1, &adam).unwrap(), lenet.memory(&[1, 28, 28], 8, &adam).unwrap());
    assert!(l1.saved_bytes > 0 && l8.saved_bytes == 8 * l1.saved_bytes, "{l1:?} {l8:?}");
    assert_eq!(many.activation_gradient_bytes, 64 * one.activation_gradient_bytes);
    // Residual inputs gather two gradients: more than one per activation.
    assert!(one.activation_gradient_bytes > one.activation_bytes);
    let batch_part = |e: &wgtrain::nn::MemoryEstimate| e.activation_bytes + e.saved_bytes + e.activation_gradient_bytes;
    assert_eq!(many.peak() - one.peak(), batch_part(&many) - batch_part(&one));
    let sgd = spec.memory(&[3, 32, 32], 1, &Optimizer::preset("sgd").unwrap()).unwrap();
    let momentum = spec.memory(&[3, 32, 32], 1, &Optimizer::preset("momentum").unwrap()).unwrap();
    assert_eq!((sgd.optimizer_bytes, momentum.optimizer_bytes), (0, one.parameter_bytes));
    // The text shows the totals for the batch asked for.
    let text = spec.summary_for(&[3, 32, 32], 64, &adam).unwrap();
    assert!(text.contains("training memory for a batch of 64 samples with adam"), "{text}");
    assert!(text.lines().any(|l| l.trim_start().starts_with("estimated peak")), "{text}");
}

#[test]
fn preview_captions_name_the_classes_and_mix_weights() {
    use wgtrain::data::loader::Batch;
    use wgtrain::data::preview::caption_lines;
    let classes: Vec<String> = ["cat", "dog", "bird"].iter().map(|s| s.to_string()).collect();
    let plain = Batch { x: vec![], labels: vec![2.0, 0.0], probs: None };
    assert_eq!(caption_lines(&plain, 0, &classes), ["bird"]);
    assert_eq!(caption_lines(&plain, 1, &classes), ["cat"]);
    let mixed = Batch { x: vec![], labels: vec![1.0, 0.0], probs: Some(vec![0.3, 0.7, 0.0, 1.0, 0.0, 0.0]) };
    assert_eq!(caption_lines(&mixed, 0, &classes), ["dog 0.70", "cat 0.30"]);
    // A sample mixed with one of its own class is just that class.
    assert_eq!(caption_lines(&mixed, 1, &classes), ["cat"]);
}
