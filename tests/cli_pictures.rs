//! The picture, summary and benchmark commands end to end: `plot`, `eval --plot`,
//! `summary --batch-size`, `bench train` with its files, `bench --json`. Each output file is
//! read back; bad input must fail with a clear message and no panic. Uses the GPU (lavapipe
//! is enough) for eval and bench.

mod common;

use common::{s, temp, wgtrain};

use std::path::Path;

fn png_size(p: &Path) -> (u32, u32) {
    image::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).to_rgb8().dimensions()
}

#[test]
fn plot_draws_logs_of_both_formats_and_refuses_bad_ones() {
    let d = temp("plot");
    let new = d.join("runs.csv");
    std::fs::write(
        &new,
        "run,model,dataset,optimizer,base_lr,batch,seed,epoch,lr,train_loss,train_accuracy,val_loss,val_accuracy,images_per_s,seconds\n\
         r1,lenet5,mnist,adam,0.001,64,1,1,0.001,0.9,0.7,0.5,0.85,900,10\n\
         r2,lenet5,mnist,sgd,0.01,64,1,1,0.01,1.9,0.4,1.5,0.55,950,10\n\
         r1,lenet5,mnist,adam,0.001,64,1,2,0.001,0.4,0.88,0.3,0.9,910,10\n\
         r2,lenet5,mnist,sgd,0.01,64,1,2,0.01,1.2,0.6,1.0,0.7,940,10\n",
    )
    .unwrap();
    let old = d.join("old.csv");
    std::fs::write(&old, "epoch,lr,train_loss,train_accuracy,val_loss,val_accuracy,images_per_s,seconds\n1,0.001,1.0,0.6,,,500,3\n")
        .unwrap();
    let out = d.join("curves.png");
    let (ok, text, err) = wgtrain(&["plot", s(&new), s(&old), "--out", s(&out)]);
    assert!(ok, "{text}{err}");
    assert!(
        text.contains("3 runs") && text.contains("lenet5 · adam lr 0.001 · batch 64: 2 epochs") && text.contains("old.csv: 1 epoch"),
        "{text}"
    );
    assert_eq!(png_size(&out), (1040, 650));

    let bad = d.join("bad.csv");
    std::fs::write(&bad, "epoch,lr,train_loss,train_accuracy,val_loss,val_accuracy,images_per_s,seconds\n1,0.001,oops,0.6,,,500,3\n")
        .unwrap();
    for (args, expect) in [
        (vec!["plot", s(&bad), "--out", s(&out)], vec!["bad.csv", "line 2", "column 3 (train_loss)", "'oops'"]),
        (vec!["plot", "/no/such/log.csv"], vec!["/no/such/log.csv"]),
        (vec!["plot", s(&new), "--out", "/no/such/dir/c.png"], vec!["/no/such/dir/c.png"]),
    ] {
        let (ok, text, err) = wgtrain(&args);
        assert!(!ok && !err.contains("panicked"), "{args:?}:\n{text}{err}");
        for e in expect {
            assert!(err.contains(e), "{args:?}: expected '{e}' in:\n{err}");
        }
    }
    let (ok, _, err) = wgtrain(&["plot"]);
    assert!(!ok && err.contains("LOG.csv"), "{err}");
}

#[test]
fn summary_takes_a_batch_size_and_an_optimizer() {
    let (ok, one, err) = wgtrain(&["summary", "--model", "resnet20"]);
    assert!(ok && one.contains("training memory for a batch of 1 sample with adam"), "{one}{err}");
    let (ok, text, err) = wgtrain(&["summary", "--model", "resnet20", "--batch-size", "128", "--optimizer", "sgd"]);
    assert!(ok, "{err}");
    assert!(text.contains("training memory for a batch of 128 samples with sgd") && text.contains("sgd: no state"), "{text}");
    // The table itself does not depend on the batch.
    let table = |t: &str| t.split("training memory").next().unwrap_or_default().to_string();
    assert_eq!(table(&one), table(&text));
    let (ok, _, err) = wgtrain(&["summary", "--batch-size", "0"]);
    assert!(!ok && err.contains("--batch-size 0"), "{err}");
    let (ok, _, err) = wgtrain(&["summary", "--optimizer", "lbfgs"]);
    assert!(!ok && err.contains("lbfgs") && err.contains("adamw"), "{err}");
}

#[test]
fn eval_draws_the_confusion_matrix_with_class_names() {
    let d = temp("eval");
    let ck = d.join("m.safetensors");
    let train = [
        "train",
        "--model",
        "examples/models/small-cnn.toml",
        "--epochs",
        "1",
        "--train-size",
        "200",
        "--batch-size",
        "32",
        "--checkpoint",
        s(&ck),
    ];
    let (ok, out, err) = wgtrain(&train);
    assert!(ok, "{out}{err}");
    let png = d.join("confusion.png");
    let (ok, out, err) = wgtrain(&["eval", "--checkpoint", s(&ck), "--train-size", "200", "--plot", s(&png)]);
    assert!(ok, "{out}{err}");
    assert_eq!(png_size(&png), (1000, 650));
    // The printed matrix names its columns and rows.
    let lines: Vec<&str> = out.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("confusion matrix")).expect("a confusion matrix");
    assert!(lines[at + 1].contains("disk") && lines[at + 1].contains("square"), "{out}");
    assert!(lines[at + 2].trim_start().starts_with("disk"), "{out}");
    assert!(out.contains(&format!("wrote the confusion matrix to {}", png.display())), "{out}");
}

#[test]
fn bench_train_writes_csv_plot_and_json() {
    let d = temp("bench");
    let (csv, png, json) = (d.join("b.csv"), d.join("b.png"), d.join("b.json"));
    let args = ["bench", "train", "--model", "lenet5", "--batch-sizes", "2,4", "--windows", "1", "--steps", "1", "--optimizer", "momentum"];
    let files = ["--csv", s(&csv), "--plot", s(&png), "--json", s(&json)];
    let (ok, out, err) = wgtrain(&[&args[..], &files[..]].concat());
    assert!(ok, "{out}{err}");
    assert!(out.contains("training throughput of model lenet5") && out.contains("SGD with momentum 0.9"), "{out}");
    // The rows `../shared/bench/compare.sh` reads: batch first, first-step seconds second,
    // images/s fourth.
    let rows: Vec<Vec<&str>> =
        out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>()).filter(|f| f.len() >= 4 && f[0].parse::<usize>().is_ok()).collect();
    assert_eq!(rows.iter().map(|r| r[0]).collect::<Vec<_>>(), ["2", "4"], "{out}");
    for r in &rows {
        assert!(r[1].parse::<f64>().is_ok() && r[2] == "s" && r[3].parse::<f64>().unwrap() > 0.0, "{r:?}");
    }
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let header: Vec<&str> = lines[0].split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no column {name}"));
    let row: Vec<&str> = lines[2].rsplitn(header.len() - col("device"), ',').collect::<Vec<_>>().into_iter().rev().collect();
    assert!(lines[2].starts_with("lenet5,1x28x28,synthetic,momentum,"), "{text}");
    let from_end = |name: &str| row[col(name) - col("device")];
    assert_eq!(from_end("batch"), "4");
    assert!(
        from_end("images_per_s").parse::<f64>().unwrap() > 0.0 && from_end("planned_bytes").parse::<u64>().unwrap() > 100_000,
        "{text}"
    );
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(j["benchmark"], "train");
    assert_eq!(j["settings"]["model"], "lenet5");
    assert_eq!(j["settings"]["optimizer"], "momentum");
    assert_eq!(j["results"].as_array().unwrap().len(), 2);
    assert!(j["results"][1]["planned_bytes"].as_u64().unwrap() > j["results"][0]["planned_bytes"].as_u64().unwrap());
    assert_eq!(png_size(&png), (1000, 650));

    // Real images: the data set's shape and classes.
    let (ok, out, err) =
        wgtrain(&["bench", "train", "--dataset", "shapes", "--train-size", "50", "--batch-sizes", "3", "--windows", "1", "--steps", "1"]);
    assert!(ok && out.contains("1x28x28 images of shapes"), "{out}{err}");
    for (args, expect) in [
        (vec!["bench", "train", "--csv", "/no/such/dir/b.csv"], "--csv /no/such/dir/b.csv"),
        (vec!["bench", "train", "--dataset", "mnist"], "--data"),
        (vec!["bench", "train", "--data", "/tmp"], "--dataset"),
        (vec!["bench", "train", "--model", "resnet-9000"], "resnet-9000"),
        (vec!["bench", "train", "--model", "alexnet", "--batch-sizes", "1000000000"], "batch size 1000000000"),
    ] {
        let (ok, out, err) = wgtrain(&args);
        assert!(!ok && err.contains(expect) && !err.contains("panicked"), "{args:?}:\n{out}{err}");
    }
}

/// `bench train --profile`: the kernels of one step per batch size, by op, in the table and
/// the JSON; their sum is the step's kernel time.
#[test]
fn bench_train_profile_explains_the_step() {
    let d = temp("bench-profile");
    let json = d.join("p.json");
    let (ok, out, err) =
        wgtrain(&["bench", "train", "--batch-sizes", "4", "--windows", "1", "--steps", "1", "--profile", "--json", s(&json)]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("batch 4: kernels") && out.contains("by op:") && out.contains("matmul"), "{out}");
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let p = &j["results"][0]["profile"];
    let ops = p["by_op"].as_array().unwrap();
    let sum: f64 = ops.iter().map(|o| o["seconds"].as_f64().unwrap() * 1e3).sum();
    let kernel_ms = p["kernel_ms"].as_f64().unwrap();
    assert!((sum - kernel_ms).abs() <= 1e-6 * kernel_ms.max(1.0), "ops add up to {sum} ms, kernels {kernel_ms} ms");
    assert!(ops.iter().any(|o| o["op"] == "matmul") && p["dispatches"].as_u64().unwrap() > 10, "{p}");
    assert!(p["timeline_ms"].as_f64().unwrap() >= kernel_ms && p["idle_ms"].as_f64().unwrap() >= 0.0, "{p}");
    // Sorted, largest first.
    assert!(ops.windows(2).all(|w| w[0]["seconds"].as_f64() >= w[1]["seconds"].as_f64()), "{p}");
    let (ok, _, err) = wgtrain(&["bench", "train", "--backend", "cpu", "--profile"]);
    assert!(!ok && err.contains("--profile: only on one GPU"), "{err}");
}

#[test]
fn bench_json_for_kernels() {
    let d = temp("bench-json");
    let json = d.join("o.json");
    let (ok, out, err) = wgtrain(&["bench", "optimizer", "--params", "1000", "--runs", "1", "--json", s(&json)]);
    assert!(ok, "{out}{err}");
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(j["benchmark"], "optimizer");
    let names: Vec<&str> = j["results"].as_array().unwrap().iter().map(|r| r["optimizer"].as_str().unwrap()).collect();
    assert!(names.contains(&"adam") && names.contains(&"sgd"), "{names:?}");
    assert!(j["results"][0]["median_ms"].as_f64().unwrap() > 0.0);
    let json = d.join("m.json");
    let (ok, out, err) =
        wgtrain(&["bench", "matmul", "--size", "64", "--runs", "1", "--variants", "v1_naive,v4_lanes", "--json", s(&json)]);
    assert!(ok, "{out}{err}");
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(j["results"].as_array().unwrap().len(), 2);
    assert!(j["results"][0]["gflops"].as_f64().unwrap() > 0.0 && j["results"][0]["m"] == 64);
}
