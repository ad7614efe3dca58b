//! Training: models, data, the loop, and their errors. GPU parts follow the same no-silent-skip
//! rule as kernels-tests (CI set: a missing adapter fails).

mod common;

use common::{shared_gpu as gpu, temp as temp_dir};

use std::sync::Arc;

use wgtrain::data::loader::{self, Augment};
use wgtrain::data::{self, Dataset};
use wgtrain::nn::{zoo, CrossEntropy, LayerSpec, Model, ModelSpec, Targets};
use wgtrain::rng::Rng;
use wgtrain::train::{self as tr, BatchSize, Monitor, Schedule, TrainConfig, TrainReport, Trainer};
use wgtrain::{Backend, Cpu, Gpu, GpuOptions, Optimizer, OptimizerKind};

fn default_cnn() -> ModelSpec {
    ModelSpec { name: "default".into(), layers: zoo::default_cnn(10) }
}

/// The same initial state and batch on both backends give the same loss, gradients and
/// updated parameters. Tolerance: every gradient within 1e-3 of the largest gradient of its
/// tensor (f32 GPU sums in another order than the CPU's f64 ones, through 15 layers) plus 1e-6
/// for gradients that are zero in exact arithmetic (a bias before batch norm), the loss within
/// 1e-4 relative.
#[test]
fn gpu_and_cpu_train_steps_agree() {
    let Some(gpu) = gpu() else { return };
    let cpu = Cpu;
    let batch = 8;
    let mut rng = Rng::new(3);
    let x = rng.vec(batch * 28 * 28, -1.0, 1.0);
    let labels: Vec<f32> = (0..batch).map(|_| rng.below(10) as f32).collect();
    let mut opt = Optimizer::new(OptimizerKind::Sgd);
    opt.lr = 0.1;
    opt.momentum = 0.9;
    let mut mc = Model::from_spec(&cpu, &default_cnn(), &[1, 28, 28], 42).unwrap();
    let mut mg = Model::from_spec(gpu, &default_cnn(), &[1, 28, 28], 42).unwrap();
    for step in 0..2 {
        mc.train_step(&cpu, &x, Targets::Labels(&labels), &opt, &CrossEntropy::new(0.1), None).unwrap();
        mg.train_step(gpu, &x, Targets::Labels(&labels), &opt, &CrossEntropy::new(0.1), None).unwrap();
        let (lc, lg) = (mc.take_metrics(&cpu).unwrap(), mg.take_metrics(gpu).unwrap());
        assert!((lc.loss - lg.loss).abs() <= 1e-4 * lc.loss.abs().max(1.0), "step {step}: loss cpu {} gpu {}", lc.loss, lg.loss);
        assert_eq!(lc.accuracy, lg.accuracy, "step {step}");
        for (i, info) in mc.param_info().to_vec().iter().enumerate() {
            let (gc, gg) = (mc.grads[i].data().to_vec(), gpu.download(&mg.grads[i]).unwrap());
            let scale = gc.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let worst = gc.iter().zip(&gg).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst <= 1e-3 * scale + 1e-6, "step {step}: gradient of {}: max error {worst} vs scale {scale}", info.name);
            let (pc, pg) = (mc.params[i].data().to_vec(), gpu.download(&mg.params[i]).unwrap());
            let worst = pc.iter().zip(&pg).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst <= 1e-4, "step {step}: parameter {}: max error {worst}", info.name);
        }
    }
}

#[test]
fn alexnet_summary_counts() {
    let spec = zoo::model("alexnet", 1000).unwrap();
    let infos = spec.infer(&[3, 227, 227]).unwrap();
    let weights: Vec<usize> = spec
        .layers
        .iter()
        .zip(&infos)
        .filter(|(l, _)| matches!(l, LayerSpec::Conv2d { .. } | LayerSpec::Linear { .. }))
        .map(|(_, i)| i.weights)
        .collect();
    assert_eq!(weights, vec![34_848, 307_200, 884_736, 663_552, 442_368, 37_748_736, 16_777_216, 4_096_000]);
    let text = spec.summary(&[3, 227, 227]).unwrap();
    for n in ["34,848", "307,200", "884,736", "663,552", "442,368", "37,748,736", "16,777,216", "4,096,000"] {
        assert!(text.contains(n), "summary lacks {n}:\n{text}");
    }
}

#[test]
fn models_that_do_not_fit_their_input_are_errors() {
    let spec = ModelSpec { name: "broken".into(), layers: vec![LayerSpec::conv(4, 3, 1, 0), LayerSpec::linear(10)] };
    let err = spec.infer(&[1, 28, 28]).unwrap_err().to_string();
    assert!(err.contains("layers.1 (linear)") && err.contains("flatten"), "{err}");
    let spec = ModelSpec { name: "big-kernel".into(), layers: vec![LayerSpec::conv(4, 9, 1, 0)] };
    assert!(spec.infer(&[1, 5, 5]).unwrap_err().to_string().contains("layers.0 (conv2d)"));
    assert!(zoo::model("resnet-9000", 10).unwrap_err().to_string().contains("resnet-9000"));
    // Too large for the host (157 TB of weights, beyond any address space): an error, not an
    // abort of the process in the allocator.
    let spec = ModelSpec { name: "huge".into(), layers: vec![LayerSpec::Flatten, LayerSpec::linear(50_000_000_000)] };
    let err = Model::from_spec(&Cpu, &spec, &[1, 28, 28], 1).err().expect("no model of 157 TB").to_string();
    assert!(err.contains("cannot allocate") && err.contains("host memory"), "{err}");
    // Sizes that overflow are named, not wrapped to "flatten [0]".
    let spec = ModelSpec { name: "wide".into(), layers: vec![LayerSpec::Flatten, LayerSpec::linear(10)] };
    let err = spec.infer(&[1 << 32, 1 << 32, 1 << 32]).unwrap_err().to_string();
    assert!(err.contains("more elements than can be counted"), "{err}");
}

/// Ninety steps on the built-in shapes lift test accuracy far above chance (10%).
#[test]
fn training_learns_the_shapes() {
    let Some(gpu) = gpu() else { return };
    let (train, test) = data::load(data::Source::Shapes, None, 5, 1600, 28).unwrap();
    let splits = data::split(train, test, 0.1, 5).unwrap();
    let mut model = Model::from_spec(gpu, &default_cnn(), &[1, 28, 28], 5).unwrap();
    let mut adam = Optimizer::new(OptimizerKind::Adam);
    adam.lr = 3e-3;
    let cfg =
        TrainConfig { epochs: 2, batch: BatchSize::Fixed(32), optimizer: adam, clip_norm: Some(5.0), seed: 5, ..TrainConfig::default() };
    let report = Trainer::new(cfg).fit(gpu, &mut model, &splits).unwrap();
    assert!(report.epochs[1].train_loss < report.epochs[0].train_loss, "{:?}", report.epochs);
    assert!(report.test_accuracy > 0.4, "test accuracy {}", report.test_accuracy);
}

#[test]
fn shapes_are_deterministic_and_balanced() {
    let a = wgtrain::data::shapes::generate(50, 9);
    let b = wgtrain::data::shapes::generate(50, 9);
    assert_eq!(a.images, b.images);
    assert_ne!(a.images, wgtrain::data::shapes::generate(50, 10).images);
    for k in 0..10 {
        assert_eq!(a.labels.iter().filter(|&&l| l == k).count(), 5);
    }
}

#[test]
fn loader_is_deterministic_per_seed_and_epoch() {
    let d = Arc::new(wgtrain::data::shapes::generate(40, 1));
    let labels = |seed, epoch| {
        loader::start(d.clone(), 8, seed, epoch, Augment::default(), true, true).unwrap().flat_map(|b| b.labels).collect::<Vec<f32>>()
    };
    assert_eq!(labels(1, 0), labels(1, 0));
    assert_ne!(labels(1, 0), labels(1, 1));
    assert_eq!(labels(1, 0).len(), 40);
    // Mixed batches carry probability rows that sum to one.
    let aug = Augment { mixup: 0.4, cutmix: 1.0, ..Default::default() };
    for b in loader::start(d.clone(), 8, 1, 0, aug, true, true).unwrap() {
        let p = b.probs.unwrap();
        for row in p.chunks(10) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }
}

fn idx_images(n: u32, magic: u32) -> Vec<u8> {
    let mut b = magic.to_be_bytes().to_vec();
    for v in [n, 2, 2] {
        b.extend(v.to_be_bytes());
    }
    b.extend(vec![7u8; (n * 4) as usize]);
    b
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b = 0x0801u32.to_be_bytes().to_vec();
    b.extend((labels.len() as u32).to_be_bytes());
    b.extend(labels);
    b
}

#[test]
fn bad_data_files_are_clear_errors() {
    let load = |dir: &std::path::Path| data::load(data::Source::Mnist, Some(dir), 1, 0, 28).map(|_| ()).unwrap_err().to_string();
    let d = temp_dir("idx");
    std::fs::write(d.join("train-images-idx3-ubyte"), idx_images(3, 0x0803)).unwrap();
    std::fs::write(d.join("train-labels-idx1-ubyte"), idx_labels(&[1, 2, 3])).unwrap();
    std::fs::write(d.join("t10k-images-idx3-ubyte"), idx_images(2, 0x0803)).unwrap();
    std::fs::write(d.join("t10k-labels-idx1-ubyte"), idx_labels(&[1, 12])).unwrap();
    let e = load(&d);
    assert!(e.contains("t10k-labels") && e.contains("label 12") && e.contains("0..9"), "{e}");
    // A gzip bomb: a header for 1 image of 2x2, then 64 MB of zeros (64 KB packed). It is
    // refused after the announced 20 bytes, not unpacked.
    let bomb = temp_dir("idx-bomb");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &idx_images(1, 0x0803)).unwrap();
    std::io::Write::write_all(&mut gz, &vec![0u8; 64 << 20]).unwrap();
    std::fs::write(bomb.join("train-images-idx3-ubyte.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(bomb.join("train-labels-idx1-ubyte"), idx_labels(&[1])).unwrap();
    let e = load(&bomb);
    assert!(e.contains("train-images") && e.contains("more than the 20 bytes"), "{e}");
    // A header announcing an absurd size is refused before anything is read.
    let mut huge = idx_images(1, 0x0803);
    huge[4..16].copy_from_slice(&[0xFF; 12]);
    std::fs::write(bomb.join("train-images-idx3-ubyte.gz"), &huge).unwrap();
    let e = load(&bomb);
    assert!(e.contains("too large"), "{e}");
    std::fs::write(d.join("train-images-idx3-ubyte"), idx_images(3, 0x0801)).unwrap();
    let e = load(&d);
    assert!(e.contains("train-images") && e.contains("0x00000801") && e.contains("0x00000803"), "{e}");
    let mut short = idx_images(3, 0x0803);
    short.truncate(20);
    std::fs::write(d.join("train-images-idx3-ubyte"), short).unwrap();
    let e = load(&d);
    assert!(e.contains("train-images") && e.contains("truncated"), "{e}");
    std::fs::write(d.join("train-images-idx3-ubyte"), [0x1f, 0x8b, 1, 2, 3]).unwrap();
    let e = load(&d);
    assert!(e.contains("corrupt gzip"), "{e}");
    let e = load(&temp_dir("empty"));
    assert!(e.contains("train-images-idx3-ubyte"), "{e}");

    let c = temp_dir("cifar");
    std::fs::write(c.join("data_batch_1.bin"), vec![0u8; 3073 * 2 + 5]).unwrap();
    std::fs::write(c.join("test_batch.bin"), vec![0u8; 3073]).unwrap();
    let e = data::load(data::Source::Cifar10, Some(&c), 1, 0, 32).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("data_batch_1.bin") && e.contains("3073"), "{e}");
    let mut rec = vec![0u8; 3073];
    rec[0] = 11;
    std::fs::write(c.join("data_batch_1.bin"), rec).unwrap();
    let e = data::load(data::Source::Cifar10, Some(&c), 1, 0, 32).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("label 11"), "{e}");

    let f = temp_dir("folder");
    let e = data::load(data::Source::Folder, Some(&f), 1, 0, 16).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("no class sub-folders"), "{e}");
    std::fs::create_dir_all(f.join("cats")).unwrap();
    let e = data::load(data::Source::Folder, Some(&f), 1, 0, 16).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("cats") && e.contains("empty class folder"), "{e}");
    std::fs::write(f.join("cats").join("broken.png"), b"not a png").unwrap();
    let e = data::load(data::Source::Folder, Some(&f), 1, 0, 16).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("broken.png") && e.contains("cannot read"), "{e}");
    // More than 256 classes: labels once were u8 and wrapped around silently. Each image's
    // grey level is its class's number mod 256 and its blue channel says which 256-block.
    let many = temp_dir("many-classes");
    for k in 0..300u32 {
        let c = many.join(format!("class{k:03}"));
        std::fs::create_dir_all(&c).unwrap();
        for i in 0..2 {
            let px = image::Rgb([(k % 256) as u8, (k % 256) as u8, (k / 256) as u8 * 255]);
            image::RgbImage::from_pixel(2, 2, px).save(c.join(format!("{i}.png"))).unwrap();
        }
    }
    let (tr, te) = data::load(data::Source::Folder, Some(&many), 1, 0, 2).unwrap();
    assert_eq!(tr.classes.len(), 300);
    let mut seen = vec![0; 300];
    for d in [&tr, &te] {
        let per = d.image_len();
        for (i, &l) in d.labels.iter().enumerate() {
            let img = &d.images[i * per..(i + 1) * per];
            let k = (img[0] * 255.0).round() as u32 + 256 * (img[per - 1] > 0.5) as u32;
            assert_eq!(l, k, "image {i} of {}: label {l}, pixels say class {k}", d.name);
            assert_eq!(d.classes[l as usize], format!("class{k:03}"));
            seen[l as usize] += 1;
        }
    }
    assert!(seen.iter().all(|&n| n == 2), "every class's two images appear once: {seen:?}");
    let e = data::load(data::Source::Mnist, None, 1, 0, 28).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("mnist") && e.contains("needs the folder"), "{e}");
}

#[test]
fn bad_training_options_are_clear_errors() {
    let d = Arc::new(Dataset {
        name: "tiny".into(),
        shape: [1, 2, 2],
        classes: vec!["a".into(), "b".into()],
        images: vec![0.0; 12],
        labels: vec![0, 1, 0],
    });
    assert!(loader::start(d.clone(), 0, 1, 0, Augment::default(), true, true).err().unwrap().to_string().contains("batch size 0"));
    assert!(loader::start(d, 8, 1, 0, Augment::default(), true, true).err().unwrap().to_string().contains("fewer than one batch"));
    let mut opt = Optimizer::new(OptimizerKind::Adam);
    opt.lr = -0.1;
    assert!(opt.validate().unwrap_err().to_string().contains("lr is -0.1"));
    assert!("0".parse::<wgtrain::train::BatchSize>().unwrap_err().contains("batch size 0"));
    // An infinite mixup or cutmix alpha would loop forever in the Beta sampler; NaN or negative
    // strengths would silently do nothing.
    for (aug, want) in [
        (Augment { mixup: f32::INFINITY, ..Augment::default() }, "mixup alpha is inf"),
        (Augment { cutmix: f32::NAN, ..Augment::default() }, "cutmix alpha is NaN"),
        (Augment { noise: -0.1, ..Augment::default() }, "input noise is -0.1"),
        (Augment { crop_pad: 100_000, ..Augment::default() }, "100000 pixels"),
    ] {
        let cfg = wgtrain::train::TrainConfig { augment: aug, ..Default::default() };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
    assert!(wgtrain::train::TrainConfig {
        augment: Augment { mixup: 0.4, cutmix: 1.0, noise: 0.1, crop_pad: 4, hflip: true },
        ..Default::default()
    }
    .validate()
    .is_ok());
    assert_eq!("full".parse::<wgtrain::train::BatchSize>().unwrap(), wgtrain::train::BatchSize::Full);
    // A test set of other images is found before training, not after it.
    let shapes = wgtrain::data::shapes::generate(20, 1);
    let mut small = wgtrain::data::shapes::generate(4, 2);
    small.shape = [1, 14, 14];
    small.images.truncate(4 * 14 * 14);
    let splits = wgtrain::data::Splits { train: shapes.clone(), val: shapes.subset(&[]), test: small, stats: vec![(0.0, 1.0)] };
    let mut m = Model::from_spec(&Cpu, &default_cnn(), &[1, 28, 28], 1).unwrap();
    let t0 = std::time::Instant::now();
    let e = wgtrain::train::Trainer::new(wgtrain::train::TrainConfig { epochs: 50, ..Default::default() })
        .fit(&Cpu, &mut m, &splits)
        .unwrap_err()
        .to_string();
    assert!(e.contains("test set") && e.contains("[1, 14, 14]") && e.contains("[1, 28, 28]"), "{e}");
    assert!(t0.elapsed().as_secs_f64() < 5.0, "found only after {:?}", t0.elapsed());
    // Weights holding NaN (a diverged or corrupt checkpoint) are refused, naming the tensor.
    let mut sd = m.state_dict(&Cpu).unwrap();
    sd[0].data[3] = f32::NAN;
    let e = m.load_state_dict(&Cpu, &sd).unwrap_err().to_string();
    assert!(e.contains(&sd[0].name) && e.contains("NaN"), "{e}");
    // A 1-channel model's normalisation on 3-channel images is an error, not an index panic.
    let rgb = Dataset { name: "rgb".into(), shape: [3, 2, 2], classes: vec!["a".into()], images: vec![0.5; 24], labels: vec![0, 0] };
    let e = data::split_with(rgb.clone(), rgb, 0.0, 1, &[(0.1, 0.3)]).err().unwrap().to_string();
    assert!(e.contains("1 channel") && e.contains("rgb has 3"), "{e}");
    let mut m = Model::from_spec(&Cpu, &default_cnn(), &[1, 28, 28], 1).unwrap();
    let e = m
        .train_step(&Cpu, &[0.0; 100], Targets::Labels(&[0.0]), &Optimizer::new(OptimizerKind::Adam), &CrossEntropy::default(), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("100 values") && e.contains("[1, 28, 28]"), "{e}");
}

fn small_spec() -> ModelSpec {
    ModelSpec {
        name: "small".into(),
        layers: vec![
            LayerSpec::Conv2d { out: 4, kernel: [3, 3], stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1, bias: false },
            LayerSpec::bn(),
            LayerSpec::Relu,
            LayerSpec::max_pool(2, 2, 0),
            LayerSpec::Flatten,
            LayerSpec::Dropout { p: 0.3 },
            LayerSpec::linear(10),
        ],
    }
}

fn small_cfg(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch: BatchSize::Fixed(24),
        schedule: Schedule::Cosine,
        augment: Augment { crop_pad: 2, noise: 0.05, mixup: 0.2, ..Default::default() },
        seed: 11,
        ..TrainConfig::default()
    }
}

/// Trains with label smoothing 0.1, saving checkpoints to `checkpoint`, resuming from
/// `resume`, and (with `stop_now`) interrupting after the first step.
fn fit_small(
    gpu: &Gpu,
    model: &mut Model<Gpu>,
    splits: &data::Splits,
    cfg: TrainConfig,
    checkpoint: Option<std::path::PathBuf>,
    resume: Option<wgtrain::checkpoint::Progress>,
    stop_now: bool,
) -> wgtrain::Result<TrainReport> {
    let mut t = Trainer::new(cfg).loss(CrossEntropy::new(0.1)).resume(resume);
    if let Some(ck) = checkpoint {
        t = t.callback(tr::SaveCheckpoints::new(ck));
    }
    if stop_now {
        t = t.callback(tr::StopFlag(Arc::new(std::sync::atomic::AtomicBool::new(true))));
    }
    t.fit(gpu, model, splits)
}

/// Every parameter of `got` within 1e-6 of `want`'s (a resumed run replays the same kernels).
fn assert_same_params(gpu: &Gpu, want: &Model<Gpu>, got: &Model<Gpu>, label: &str) {
    for (a, b) in want.params.iter().zip(&got.params) {
        let (a, b) = (gpu.download(a).unwrap(), gpu.download(b).unwrap());
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(worst <= 1e-6, "{label}: parameters differ by {worst}");
    }
}

/// Stopping after one epoch — or after the first step — and resuming from the checkpoint ends
/// with the same parameters as one uninterrupted run.
#[test]
fn a_resumed_run_ends_where_an_uninterrupted_one_does() {
    let Some(gpu) = gpu() else { return };
    let (train, test) = data::load(data::Source::Shapes, None, 11, 240, 28).unwrap();
    let splits = data::split(train, test, 0.1, 11).unwrap();
    let fresh = || Model::from_spec(gpu, &small_spec(), &[1, 28, 28], 11).unwrap();

    let mut straight = fresh();
    fit_small(gpu, &mut straight, &splits, small_cfg(3), None, None, false).unwrap();

    let dir = temp_dir("resume");
    for (stop_after_step, label) in [(false, "after epoch 1"), (true, "inside epoch 1")] {
        let ck = dir.join(format!("{}.safetensors", stop_after_step));
        let mut first = fresh();
        let first_epochs = if stop_after_step { 3 } else { 1 };
        let r = fit_small(gpu, &mut first, &splits, small_cfg(first_epochs), Some(ck.clone()), None, stop_after_step).unwrap();
        assert_eq!(r.interrupted, stop_after_step);
        let meta = wgtrain::checkpoint::read_meta(&ck).unwrap();
        let mut resumed = fresh();
        wgtrain::checkpoint::load(gpu, &ck, &mut resumed).unwrap();
        fit_small(gpu, &mut resumed, &splits, small_cfg(3), Some(ck.clone()), Some(meta.progress), false).unwrap();
        assert_same_params(gpu, &straight, &resumed, &format!("resumed {label}"));
    }
}

#[test]
fn bad_checkpoints_are_clear_errors() {
    let dir = temp_dir("ckpt");
    let cpu = Cpu;
    let model = Model::from_spec(&cpu, &small_spec(), &[1, 28, 28], 1).unwrap();
    let ck = dir.join("small.safetensors");
    let progress = wgtrain::checkpoint::Progress {
        epoch: 1,
        batch_in_epoch: 0,
        step: 9,
        seed: 1,
        best_val_loss: None,
        best_epoch: None,
        epochs_since_best: 0,
    };
    wgtrain::checkpoint::save(&cpu, &ck, &model, &Optimizer::new(OptimizerKind::Adam), &progress).unwrap();
    assert!(!dir.join("small.safetensors.tmp").exists(), "the temporary file must be renamed away");
    // Another model cannot load it.
    let mut other = Model::from_spec(&cpu, &default_cnn(), &[1, 28, 28], 1).unwrap();
    let e = wgtrain::checkpoint::load(&cpu, &ck, &mut other).unwrap_err().to_string();
    assert!(e.contains("small.safetensors") && e.contains("'small'"), "{e}");
    // The same model name with another dropout rate: the message names the layer that differs
    // instead of contradicting itself.
    let mut spec = small_spec();
    spec.layers[5] = LayerSpec::Dropout { p: 0.5 };
    let mut rate = Model::from_spec(&cpu, &spec, &[1, 28, 28], 1).unwrap();
    let e = wgtrain::checkpoint::load(&cpu, &ck, &mut rate).unwrap_err().to_string();
    assert!(e.contains("layer 5") && e.contains("0.3") && e.contains("0.5"), "{e}");
    let mut wide = Model::from_spec(&cpu, &small_spec(), &[1, 32, 32], 1).unwrap();
    let e = wgtrain::checkpoint::load(&cpu, &ck, &mut wide).unwrap_err().to_string();
    assert!(e.contains("[1, 28, 28]") && e.contains("[1, 32, 32]"), "{e}");
    // A truncated file is named and refused.
    let bytes = std::fs::read(&ck).unwrap();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let mut same = Model::from_spec(&cpu, &small_spec(), &[1, 28, 28], 1).unwrap();
    let e = wgtrain::checkpoint::load(&cpu, &cut, &mut same).unwrap_err().to_string();
    assert!(e.contains("cut.safetensors") && (e.contains("truncated") || e.contains("corrupt")), "{e}");
    std::fs::write(&cut, b"abc").unwrap();
    assert!(wgtrain::checkpoint::read_meta(&cut).unwrap_err().to_string().contains("too short"));
    // It round-trips.
    let meta = wgtrain::checkpoint::load(&cpu, &ck, &mut same).unwrap();
    assert_eq!(meta.progress, progress);
    for (a, b) in model.params.iter().zip(&same.params) {
        assert_eq!(a.data(), b.data());
    }
}

#[test]
fn augment_preview_writes_a_grid() {
    let d = wgtrain::data::shapes::generate(40, 2);
    let out = temp_dir("preview").join("grid.png");
    let aug = Augment { crop_pad: 2, hflip: true, noise: 0.1, mixup: 0.4, cutmix: 1.0 };
    assert_eq!(wgtrain::data::preview::write_grid(&d, 20, &aug, 1, &out).unwrap(), 20);
    let img = image::open(&out).unwrap().to_rgb8();
    // 8 columns of 4x-enlarged 28-pixel images (112 pixels, room for captions) with 2-pixel
    // gaps; 20 samples need 3 rows, each with a caption strip of two 14-pixel lines (mixing is
    // on: two classes and their weights).
    let (tile, row_h) = (28 * 4, 28 * 4 + 2 * 14 + 2 + 2);
    assert_eq!((img.width(), img.height()), (8 * (tile + 2), 3 * row_h));
    // The caption strips hold text: light pixels on the dark background, under every tile of
    // the first row and under none of the empty places of the last one (20 = 2 * 8 + 4).
    let light = |x0: u32, y0: u32| {
        (0..tile).flat_map(|x| (0..2 * 14).map(move |y| (x0 + x, y0 + y))).filter(|&(x, y)| img.get_pixel(x, y).0[0] > 150).count()
    };
    for col in 0..8 {
        assert!(light(col * (tile + 2), tile + 1) > 30, "tile {col} has no caption");
    }
    assert_eq!(light(5 * (tile + 2), 2 * row_h + tile + 1), 0, "an empty place has a caption");
    assert!(wgtrain::data::preview::write_grid(&d, 0, &aug, 1, &out).is_err());
    // Asking for more than the data set holds writes what there is, and says how many.
    assert_eq!(wgtrain::data::preview::write_grid(&d, 1_000_000_000, &aug, 1, &out).unwrap(), 40);
}

#[test]
fn toml_models_parse_and_bad_ones_name_the_layer() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/models/small-cnn.toml");
    let spec = zoo::model(path.to_str().unwrap(), 7).unwrap();
    assert_eq!(spec.name, "small-cnn");
    assert_eq!(spec.layers.last(), Some(&LayerSpec::Linear { out: 7, bias: true }));
    spec.infer(&[1, 28, 28]).unwrap();
    let p = std::path::Path::new("m.toml");
    let bad = |text: &str| wgtrain::nn::toml_model::parse(p, text, 10).unwrap_err().to_string();
    let e = bad("[[layer]]\ntype = \"conv2d\"\nkernel = 3\n");
    assert!(e.contains("m.toml") && e.contains("layer 0") && e.contains("'out'") && e.contains("missing"), "{e}");
    let e = bad("[[layer]]\ntype = \"transformer\"\n");
    assert!(e.contains("unknown layer 'transformer'"), "{e}");
    let e = bad("[[layer]]\ntype = \"relu\"\n[[layer]]\ntype = \"dropout\"\np = 1.5\n");
    assert!(e.contains("layer 1") && e.contains("[0, 1)"), "{e}");
    assert!(bad("name = \"x\"\n").contains("no [[layer]]"));
    assert!(bad("[[layer]\n").contains("not valid TOML"));
}

/// A learning rate that blows the model up stops training with a message naming the step, and
/// the checkpoint of the last good epoch is kept.
#[test]
fn a_diverging_run_stops_with_a_message() {
    let Some(gpu) = gpu() else { return };
    let (train, test) = data::load(data::Source::Shapes, None, 3, 240, 28).unwrap();
    let splits = data::split(train, test, 0.1, 3).unwrap();
    let mut model = Model::from_spec(gpu, &small_spec(), &[1, 28, 28], 3).unwrap();
    let mut cfg = small_cfg(2);
    cfg.optimizer = Optimizer::new(OptimizerKind::Sgd);
    cfg.optimizer.lr = 1e30;
    cfg.augment = Augment::default();
    let e = fit_small(gpu, &mut model, &splits, cfg, None, None, false).unwrap_err().to_string();
    assert!(e.contains("diverged") && e.contains("at step") && e.contains("batch") && e.contains("learning rate"), "{e}");
    // With lr 1e30 the first update already ruins the model: the second step's loss is bad.
    assert!(e.contains("at step 2 "), "{e}");
}

/// After the first step of a batch size, training allocates nothing and submits one command
/// buffer per step (the batch upload); metrics are read only when asked.
#[test]
fn steady_state_training_allocates_nothing() {
    if gpu().is_none() {
        return;
    }
    let gpu = Gpu::new(&GpuOptions::default()).unwrap(); // its own counters
    let mut model = Model::from_spec(&gpu, &default_cnn(), &[1, 28, 28], 1).unwrap();
    let opt = Optimizer::new(OptimizerKind::Adam);
    let mut rng = Rng::new(1);
    let x = rng.vec(16 * 28 * 28, -1.0, 1.0);
    let labels: Vec<f32> = (0..16).map(|_| rng.below(10) as f32).collect();
    model.train_step(&gpu, &x, Targets::Labels(&labels), &opt, &CrossEntropy::new(0.0), Some(1.0)).unwrap();
    gpu.sync().unwrap();
    let (buffers, submissions) = (gpu.buffers_created(), gpu.submissions());
    for _ in 0..4 {
        model.train_step(&gpu, &x, Targets::Labels(&labels), &opt, &CrossEntropy::new(0.0), Some(1.0)).unwrap();
    }
    gpu.sync().unwrap();
    assert_eq!(gpu.buffers_created(), buffers, "steps after the first allocated buffers");
    let per_step = (gpu.submissions() - submissions) as f64 / 4.0;
    assert!(per_step <= 1.25, "{per_step} submissions per step");
}

/// A batch whose activations exceed what the device can hold is a clear error, not a panic or
/// a driver crash.
#[test]
fn a_batch_too_large_for_the_device_is_a_clear_error() {
    let Some(gpu) = gpu() else { return };
    let mut model = Model::from_spec(gpu, &default_cnn(), &[1, 28, 28], 1).unwrap();
    let batch = 25_000; // conv1 output alone: 25000 x 32 x 28 x 28 x 4 bytes = 2.5 GB
    let x = vec![0.0f32; batch * 28 * 28];
    let labels = vec![0.0f32; batch];
    let e = model
        .train_step(gpu, &x, Targets::Labels(&labels), &Optimizer::new(OptimizerKind::Adam), &CrossEntropy::new(0.0), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("batch size 25000") && e.contains("device allows at most") && e.contains("smaller batch size"), "{e}");
}

fn tiny_resnet() -> ModelSpec {
    ModelSpec {
        name: "tiny-resnet".into(),
        layers: vec![
            LayerSpec::Conv2d { out: 4, kernel: [3, 3], stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1, bias: false },
            LayerSpec::bn(),
            LayerSpec::Relu,
            zoo::basic_block(4, 4, 1),
            zoo::basic_block(4, 6, 2),
            LayerSpec::GlobalAvgPool,
            LayerSpec::linear(3),
        ],
    }
}

/// The residual graph's backward (two gradients meeting at a block's input, the sum's two
/// branches) against central finite differences of the loss, on the CPU reference; a plain
/// chain as a control.
#[test]
fn residual_gradients_match_finite_differences() {
    fd_check(tiny_resnet());
}

#[test]
fn plain_gradients_match_finite_differences() {
    let c = |o, s| LayerSpec::Conv2d { out: o, kernel: [3, 3], stride: [s, s], padding: [1, 1], dilation: [1, 1], groups: 1, bias: false };
    fd_check(ModelSpec {
        name: "plain".into(),
        layers: vec![
            c(4, 1),
            LayerSpec::bn(),
            LayerSpec::Relu,
            c(4, 1),
            LayerSpec::bn(),
            LayerSpec::Relu,
            c(6, 2),
            LayerSpec::bn(),
            LayerSpec::Relu,
            LayerSpec::GlobalAvgPool,
            LayerSpec::linear(3),
        ],
    });
}

fn fd_check(spec: ModelSpec) {
    let cpu = Cpu;
    let residual = spec.layers.iter().any(|l| matches!(l, LayerSpec::Residual { .. }));
    let mut model = Model::from_spec(&cpu, &spec, &[2, 6, 6], 4).unwrap();
    let mut rng = Rng::new(8);
    let x = rng.vec(3 * 2 * 6 * 6, -1.0, 1.0);
    let labels = [0.0, 2.0, 1.0];
    let mut sgd = Optimizer::new(OptimizerKind::Sgd);
    sgd.lr = 0.0; // gradients, no update
    let loss_and_grads = |m: &mut Model<Cpu>| -> f64 {
        m.train_step(&cpu, &x, Targets::Labels(&labels), &sgd, &CrossEntropy::new(0.0), None).unwrap();
        m.take_metrics(&cpu).unwrap().loss
    };
    loss_and_grads(&mut model);
    let grads: Vec<Vec<f32>> = model.grads.iter().map(|g| g.data().to_vec()).collect();
    // Small steps: ReLU kinks make larger ones (1e-3 and up) cross zeros and disagree with the
    // derivative; the loss's f32 rounding (~1e-7) over 2h stays under the 2e-3 allowance.
    let h = 1e-4f32;
    let mut checked = 0;
    let mut bad = Vec::new();
    for (i, info) in model.param_info().to_vec().iter().enumerate() {
        // First, middle and last element of every parameter tensor (block bodies and shortcuts).
        let n = model.params[i].numel();
        for e in [0, n / 2, n - 1] {
            let orig = model.params[i].data().to_vec();
            let mut plus = orig.clone();
            plus[e] += h;
            cpu.write(&mut model.params[i], &plus).unwrap();
            let lp = loss_and_grads(&mut model);
            let mut minus = orig.clone();
            minus[e] -= h;
            cpu.write(&mut model.params[i], &minus).unwrap();
            let lm = loss_and_grads(&mut model);
            cpu.write(&mut model.params[i], &orig).unwrap();
            let numeric = (lp - lm) / (2.0 * h as f64);
            let analytic = grads[i][e] as f64;
            if (numeric - analytic).abs() > 2e-3 + 2e-2 * analytic.abs() {
                bad.push(format!("{}[{e}]: analytic {analytic}, finite differences {numeric}", info.name));
            }
            checked += 1;
        }
    }
    assert!(bad.is_empty(), "{} of {checked} gradients differ:\n{}", bad.len(), bad.join("\n"));
    assert!(checked > 30);
    assert!(!residual || model.param_info().iter().any(|p| p.name.contains("shortcut")), "no projection shortcut in the test model");
}

#[test]
fn resnet20_has_the_expected_size_and_trains_on_the_gpu_like_the_cpu() {
    let spec = zoo::model("resnet20", 10).unwrap();
    let total: usize = spec.infer(&[3, 32, 32]).unwrap().iter().map(|i| i.weights + i.biases).sum();
    // He et al.: ResNet-20 has 0.27M parameters (with option-B shortcuts and batch norm: ~0.27M).
    assert!((260_000..290_000).contains(&total), "{total} parameters");
    let Some(gpu) = gpu() else { return };
    let cpu = Cpu;
    let mut rng = Rng::new(5);
    let x = rng.vec(4 * 2 * 6 * 6, -1.0, 1.0);
    let labels = [0.0, 1.0, 2.0, 1.0];
    let opt = Optimizer::new(OptimizerKind::Sgd);
    let mut mc = Model::from_spec(&cpu, &tiny_resnet(), &[2, 6, 6], 9).unwrap();
    let mut mg = Model::from_spec(gpu, &tiny_resnet(), &[2, 6, 6], 9).unwrap();
    mc.train_step(&cpu, &x, Targets::Labels(&labels), &opt, &CrossEntropy::new(0.0), None).unwrap();
    mg.train_step(gpu, &x, Targets::Labels(&labels), &opt, &CrossEntropy::new(0.0), None).unwrap();
    for (i, info) in mc.param_info().iter().enumerate() {
        let (gc, gg) = (mc.grads[i].data().to_vec(), gpu.download(&mg.grads[i]).unwrap());
        let scale = gc.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let worst = gc.iter().zip(&gg).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst <= 1e-3 * scale + 1e-6, "gradient of {}: max error {worst} vs scale {scale}", info.name);
    }
}

#[test]
fn toml_residual_blocks_parse_like_the_zoo() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/models/tiny-resnet.toml");
    let spec = zoo::model(path.to_str().unwrap(), 10).unwrap();
    assert_eq!(spec.layers[3], zoo::basic_block(8, 8, 1));
    assert_eq!(spec.layers[4], zoo::basic_block(8, 16, 2));
    let graph = spec.graph(&[1, 28, 28]).unwrap();
    assert!(graph.nodes.iter().any(|n| n.name == "layers.4.shortcut.0"));
    let p = std::path::Path::new("r.toml");
    let e = wgtrain::nn::toml_model::parse(p, "[[layer]]\ntype = \"residual\"\nbody = []\n", 10).unwrap_err().to_string();
    assert!(e.contains("layer 0") && e.contains("'body'"), "{e}");
    let e = wgtrain::nn::toml_model::parse(p, "[[layer]]\ntype = \"residual\"\nbody = [{ type = \"conv2d\", kernel = 3 }]\n", 10)
        .unwrap_err()
        .to_string();
    assert!(e.contains("'out'") && e.contains("missing"), "{e}");
}

/// The real files in ../shared/data load with the right counts and shapes.
#[test]
fn shared_mnist_and_cifar_files_load() {
    // The project's data lives beside the checkout (../shared), for developers and CI alike;
    // WGTRAIN_SHARED_DATA points a checkout elsewhere at it.
    let shared = std::env::var_os("WGTRAIN_SHARED_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    if !shared.is_dir() {
        assert!(std::env::var_os("CI").is_none(), "CI is set but {} is missing", shared.display());
        eprintln!("\n!!!!!!!! SKIPPED: {} is missing !!!!!!!!\n", shared.display());
        return;
    }
    let (train, test) = data::load(data::Source::Mnist, Some(&shared.join("mnist")), 1, 0, 28).unwrap();
    assert_eq!((train.len(), test.len(), train.shape), (60_000, 10_000, [1, 28, 28]));
    assert!(train.images.iter().all(|&v| (0.0..=1.0).contains(&v)));
    let (train, test) = data::load(data::Source::Cifar10, Some(&shared.join("cifar10")), 1, 0, 32).unwrap();
    assert_eq!((train.len(), test.len(), train.shape), (200, 20, [3, 32, 32]));
    assert!(train.labels.iter().all(|&l| l < 10));
}

/// Early stopping ends a run whose validation figure stops improving (here: a learning rate of
/// 0 and no batch norm, whose running statistics would still move, so the figure is the same
/// every epoch), for either monitored figure.
#[test]
fn early_stopping_stops_after_patience() {
    let Some(gpu) = gpu() else { return };
    let (train, test) = data::load(data::Source::Shapes, None, 2, 240, 28).unwrap();
    let splits = data::split(train, test, 0.2, 2).unwrap();
    for monitor in [Monitor::Loss, Monitor::Accuracy] {
        let no_bn = ModelSpec {
            name: "no-bn".into(),
            layers: small_spec().layers.into_iter().filter(|l| !matches!(l, LayerSpec::BatchNorm2d { .. })).collect(),
        };
        let mut model = Model::from_spec(gpu, &no_bn, &[1, 28, 28], 2).unwrap();
        let mut cfg = small_cfg(5);
        cfg.optimizer = Optimizer::new(OptimizerKind::Sgd);
        cfg.optimizer.lr = 0.0;
        cfg.augment = Augment::default();
        cfg.schedule = Schedule::Constant;
        cfg.monitor = monitor;
        let r =
            Trainer::new(cfg).callback(tr::EarlyStopping::new(1)).callback(tr::RestoreBest::new()).fit(gpu, &mut model, &splits).unwrap();
        assert_eq!(r.epochs.len(), 2, "{monitor:?}: {:?}", r.epochs);
        assert_eq!(r.best_epoch, Some(1));
    }
}

/// `max_steps` ends a run inside an epoch, and resuming from its checkpoint finishes that epoch
/// and the run: the same parameters as one uninterrupted run. `steps_per_epoch` caps epochs.
#[test]
fn a_run_cut_by_max_steps_resumes_to_the_same_end() {
    let Some(gpu) = gpu() else { return };
    let (train, test) = data::load(data::Source::Shapes, None, 11, 240, 28).unwrap();
    let splits = data::split(train, test, 0.1, 11).unwrap();
    let fresh = || Model::from_spec(gpu, &small_spec(), &[1, 28, 28], 11).unwrap();
    let mut straight = fresh();
    fit_small(gpu, &mut straight, &splits, small_cfg(2), None, None, false).unwrap();

    let ck = temp_dir("max-steps").join("m.safetensors");
    let mut first = fresh();
    let r = fit_small(gpu, &mut first, &splits, TrainConfig { max_steps: Some(5), ..small_cfg(2) }, Some(ck.clone()), None, false).unwrap();
    assert_eq!(first.step, 5);
    assert!(r.stopped_early.as_deref().is_some_and(|w| w.contains("step limit")), "{:?}", r.stopped_early);
    assert!(r.test_accuracy.is_finite(), "a run ended by its step limit is still tested");
    let meta = wgtrain::checkpoint::read_meta(&ck).unwrap();
    assert_eq!((meta.progress.epoch, meta.progress.batch_in_epoch), (0, 5), "saved inside epoch 1");
    let mut resumed = fresh();
    wgtrain::checkpoint::load(gpu, &ck, &mut resumed).unwrap();
    fit_small(gpu, &mut resumed, &splits, small_cfg(2), None, Some(meta.progress), false).unwrap();
    assert_eq!(resumed.step, straight.step);
    assert_same_params(gpu, &straight, &resumed, "resumed after the step limit");

    let mut capped = fresh();
    let r = fit_small(gpu, &mut capped, &splits, TrainConfig { steps_per_epoch: Some(3), ..small_cfg(2) }, None, None, false).unwrap();
    assert_eq!((capped.step, r.epochs.len()), (6, 2));
}

/// Records what the trainer tells callbacks after each step.
struct Steps(std::rc::Rc<std::cell::RefCell<Vec<tr::StepInfo>>>);

impl<B: Backend> tr::Callback<B> for Steps {
    fn on_step(&mut self, s: &tr::StepInfo) -> wgtrain::Result<tr::Control> {
        self.0.borrow_mut().push(s.clone());
        Ok(tr::Control::Continue)
    }
}

/// The running loss and accuracy reach callbacks when the trainer reads them (by time or by
/// step count), never otherwise, and at the last step they are the epoch's figures.
#[test]
fn the_running_loss_reaches_callbacks_when_read() {
    let Some(gpu) = gpu() else { return };
    let (train, test) = data::load(data::Source::Shapes, None, 3, 240, 28).unwrap();
    let splits = data::split(train, test, 0.1, 3).unwrap();
    for (report_every, report_seconds, expect) in [(0, 0.0, "none"), (0, 1e-9, "all"), (4, 0.0, "every 4th")] {
        let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut model = Model::from_spec(gpu, &small_spec(), &[1, 28, 28], 3).unwrap();
        let cfg = TrainConfig { report_every, report_seconds, ..small_cfg(1) };
        let r = Trainer::new(cfg).callback(Steps(seen.clone())).fit(gpu, &mut model, &splits).unwrap();
        let steps = seen.borrow();
        assert_eq!(steps.len(), 9);
        for s in steps.iter() {
            let want = match expect {
                "none" => false,
                "all" => true,
                _ => s.step_in_epoch % 4 == 0,
            };
            assert_eq!(s.running.is_some(), want, "{expect}: step {}", s.step_in_epoch);
        }
        if let Some(last) = steps.last().and_then(|s| s.running) {
            assert!((last.loss - r.epochs[0].train_loss).abs() < 1e-6, "{} vs {}", last.loss, r.epochs[0].train_loss);
            assert_eq!(last.samples, 9 * 24);
        }
        let text = tr::ProgressBar::describe(None, &steps[4], steps[4].running);
        assert!(text.contains("img/s") && text.contains("eta "), "{text}");
        assert_eq!(text.contains("loss "), expect == "all", "{text}");
    }
}

/// Profiling times every dispatch once, labels it with its layer and phase, and changes no
/// result: a profiled step leaves the same parameters as a plain one.
#[test]
fn profiling_times_every_dispatch_and_changes_nothing() {
    let Some(gpu) = gpu() else { return };
    let profiled = Gpu::new(&GpuOptions { profile: true, ..Default::default() }).unwrap();
    assert!(profiled.profiling() && !gpu.profiling());
    assert!(gpu.take_profile().is_err(), "a device opened without profiling has no profile");
    let spec = small_spec();
    let mut rng = Rng::new(5);
    let x = rng.vec(6 * 28 * 28, -1.0, 1.0);
    let labels: Vec<f32> = (0..6).map(|i| (i % 10) as f32).collect();
    let opt = Optimizer::new(OptimizerKind::Adam);
    let mut params = Vec::new();
    for be in [gpu, &profiled] {
        let mut m = Model::from_spec(be, &spec, &[1, 28, 28], 5).unwrap();
        m.reset_optimizer(be, &opt).unwrap();
        be.sync().unwrap();
        let before = be.dispatches();
        m.train_step(be, &x, Targets::Labels(&labels), &opt, &CrossEntropy::default(), None).unwrap();
        be.sync().unwrap();
        if be.profiling() {
            let times = be.take_profile().unwrap();
            assert_eq!(times.len() as u64, be.dispatches() - before, "one time per dispatch");
            assert!(times.iter().all(|t| t.seconds.is_finite() && t.seconds >= 0.0 && t.start.is_finite()));
            // A CPU adapter runs the dispatches one after the other, in order.
            if be.context().is_cpu_adapter() {
                assert!(times.windows(2).all(|w| w[1].start >= w[0].start + w[0].seconds * 0.999), "{times:?}");
            }
            // The first convolution's product: unfolded (matmul) or implicit (conv2d_direct).
            let product = |t: &&wgtrain::gpu::KernelTime| t.op == "matmul" || t.op == "conv2d_direct";
            assert!(times.iter().filter(product).any(|t| t.layer == "layers.0" && t.phase == "forward"), "{times:?}");
            assert!(times.iter().any(|t| t.phase == "backward") && times.iter().any(|t| t.phase == "optimizer"));
            assert!(times.iter().map(|t| t.seconds).sum::<f64>() > 0.0);
        }
        params.push(m.params.iter().map(|p| be.download(p).unwrap()).collect::<Vec<_>>());
    }
    assert_eq!(params[0], params[1], "profiling changed the result");

    let p = wgtrain::profile::profile_training(gpu, &profiled, &spec, &[1, 28, 28], 6, &opt, 1).unwrap();
    let table = wgtrain::profile::table(&p);
    assert!(p.kernel_seconds > 0.0 && p.step_seconds > 0.0 && p.dispatches > 10, "{table}");
    assert!(p.timeline_seconds >= p.kernel_seconds && p.timeline_seconds < 10.0 * p.step_seconds, "{table}");
    assert!(table.contains("between the kernels the device idled"), "{table}");
    assert!((p.layers.iter().map(|l| l.share).sum::<f64>() - 1.0).abs() < 1e-9);
    assert!(table.contains("layers.0") && table.contains("backward") && table.contains("optimizer"), "{table}");
}

/// Kernels chosen by measurement: the cache is used for this adapter and driver, measured
/// again (and extended) for another driver, a corrupt cache is ignored with a warning and
/// rewritten, and a forced variant wins over all of it.
#[test]
fn the_kernel_cache_is_used_invalidated_and_survives_corruption() {
    use wgtrain::gpu::{autotune, MatmulVariant, Tuning};
    let Some(gpu) = gpu() else { return };
    let dir = temp_dir("kernel-cache");
    let file = dir.join("kernels.json");
    let open = |matmul_variant: Option<&str>| {
        Gpu::new(&GpuOptions {
            tuning: Tuning::Cached,
            cache_file: Some(file.clone()),
            matmul_variant: matmul_variant.map(String::from),
            ..Default::default()
        })
        .unwrap()
    };
    let key = autotune::device_key(gpu.context());
    let classes = ["nn-small", "nn-large", "tn-small", "tn-large", "nt-small", "nt-large"];
    let entry: serde_json::Map<String, serde_json::Value> = classes.iter().map(|c| (c.to_string(), "v1_naive".into())).collect();
    std::fs::write(&file, serde_json::json!({"format": 1, "devices": {key.clone(): entry.clone()}}).to_string()).unwrap();
    let g = open(None);
    assert!(g.matmul_choice().source.starts_with("cache "), "{}", g.matmul_choice().source);
    assert_eq!(g.matmul_variant(), MatmulVariant::V1Naive, "the cached choice is used");

    // Another driver: not this entry; measured, and added beside the old one.
    let other = key.replace("driver ", "driver older ");
    std::fs::write(&file, serde_json::json!({"format": 1, "devices": {other.clone(): entry}}).to_string()).unwrap();
    let g = open(None);
    assert!(g.matmul_choice().source.starts_with("measured"), "{}", g.matmul_choice().source);
    assert_eq!(g.matmul_choice().by_class.len(), classes.len());
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(written["devices"][&other].is_object() && written["devices"][&key].is_object(), "{written}");

    // A corrupt file: a warning, a measurement, and a valid file again.
    std::fs::write(&file, "{\"format\": 1, \"devices\": [tru").unwrap();
    let g = open(None);
    assert!(
        g.matmul_choice().warnings.iter().any(|w| w.contains("ignoring the kernel cache") && w.contains("kernels.json")),
        "{:?}",
        g.matmul_choice().warnings
    );
    assert!(g.matmul_choice().source.starts_with("measured"));
    let again: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(again["devices"][&key].is_object());

    // A forced variant wins over the cache.
    let g = open(Some("v2_tiled"));
    assert_eq!((g.matmul_variant(), g.matmul_choice().source.as_str()), (MatmulVariant::V2Tiled, "forced"));
}

/// Every kind of ReLU fusion, and a ReLU that must stay: a biased convolution (its bias pass
/// rectifies), batch norm (its apply pass does), a convolution without bias (a pass in place),
/// a residual body ending in a fused batch norm + ReLU (its gradient comes through the sum),
/// a sum + ReLU (twice), a block whose body starts with a ReLU of an input the shortcut also
/// reads (not fusable), and linear layers with and without bias; a dropout after the fusions
/// (its mask must not change). Two of the fused ReLUs leave their backward to the max pooling
/// that reads them (windows apart, and overlapping).
fn fusion_spec() -> ModelSpec {
    let conv = |o, bias| LayerSpec::Conv2d { out: o, kernel: [3, 3], stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1, bias };
    ModelSpec {
        name: "fusion".into(),
        layers: vec![
            conv(4, true),
            LayerSpec::Relu,
            conv(4, false),
            LayerSpec::bn(),
            LayerSpec::Relu,
            LayerSpec::max_pool(2, 2, 0),
            conv(5, false),
            LayerSpec::Relu,
            LayerSpec::max_pool(3, 1, 1),
            LayerSpec::Residual { body: vec![conv(5, false), LayerSpec::bn(), LayerSpec::Relu], shortcut: Vec::new() },
            LayerSpec::Residual { body: vec![LayerSpec::Relu, conv(5, false), LayerSpec::bn()], shortcut: Vec::new() },
            LayerSpec::Flatten,
            LayerSpec::linear(7),
            LayerSpec::Relu,
            LayerSpec::Dropout { p: 0.3 },
            LayerSpec::linear(6).without_bias(),
            LayerSpec::Relu,
            LayerSpec::linear(3),
        ],
    }
}

/// Fused ReLUs compute what separate ones do: the same losses, gradients and parameters over
/// two SGD steps with momentum, and the same eval-mode logits, on the CPU reference and the
/// GPU. Tolerance: 1e-5 of each tensor's largest value (plus 1e-7): a fused convolution adds
/// its bias in its own pass, which may round differently from the unfused one; everything
/// else is the same arithmetic in the same order.
#[test]
fn fused_relus_compute_what_separate_ones_do() {
    fn check<B: Backend>(be: &B, label: &str) {
        let spec = fusion_spec();
        let input = [2, 6, 6];
        let build = |fuse| Model::with_fusion(be, spec.build::<B>().unwrap(), &input, 5, &spec.name, fuse).unwrap();
        let (mut fused, mut plain) = (build(true), build(false));
        // 8 of the 9 ReLUs fused: the one at the head of the second block's body stays a node.
        assert_eq!(plain.nodes().len() - fused.nodes().len(), 8, "{label}");
        let names =
            |f: fn(&wgtrain::nn::Node<B>) -> bool| fused.nodes().iter().filter(|n| f(n)).map(|n| n.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(|n| n.relu),
            ["layers.0", "layers.3", "layers.6", "layers.9.body.1", "layers.9.add", "layers.10.add", "layers.12", "layers.15"],
            "{label}"
        );
        assert_eq!(names(|n| n.relu_mask_after), ["layers.3", "layers.6"], "{label}");
        assert!(fused.nodes().iter().any(|n| n.name == "layers.10.body.0" && n.kind() == "relu"), "{label}");
        let named = |m: &Model<B>| m.param_info().iter().map(|p| (p.name.clone(), p.shape.clone(), p.init)).collect::<Vec<_>>();
        assert_eq!(named(&fused), named(&plain), "{label}: the parameters keep their names, shapes and order");
        let mut rng = Rng::new(9);
        let batch = 3;
        let x = rng.vec(batch * 2 * 6 * 6, -1.0, 1.0);
        let labels = [0.0, 2.0, 1.0];
        let mut opt = Optimizer::new(OptimizerKind::Sgd);
        opt.lr = 0.05;
        opt.momentum = 0.9;
        let close = |a: &[f32], b: &[f32], what: &str| {
            let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let worst = a.iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
            assert!(worst <= 1e-5 * scale + 1e-7, "{label}: {what}: max difference {worst} vs scale {scale}");
        };
        for step in 0..2 {
            for m in [&mut fused, &mut plain] {
                m.train_step(be, &x, Targets::Labels(&labels), &opt, &CrossEntropy::new(0.0), None).unwrap();
            }
            let (lf, lp) = (fused.take_metrics(be).unwrap().loss, plain.take_metrics(be).unwrap().loss);
            assert!((lf - lp).abs() <= 1e-6 * lp.abs().max(1.0), "{label} step {step}: loss fused {lf} separate {lp}");
            for (i, info) in plain.param_info().to_vec().iter().enumerate() {
                let g = |m: &Model<B>| be.download(&m.grads[i]).unwrap();
                close(&g(&plain), &g(&fused), &format!("step {step}: gradient of {}", info.name));
                let p = |m: &Model<B>| be.download(&m.params[i]).unwrap();
                close(&p(&plain), &p(&fused), &format!("step {step}: {}", info.name));
            }
        }
        let (yf, yp) = (fused.predict_logits(be, &x).unwrap(), plain.predict_logits(be, &x).unwrap());
        close(&yp, &yf, "eval logits");
    }
    check(&Cpu, "cpu");
    if let Some(gpu) = gpu() {
        check(gpu, "gpu");
    }
}

/// Evaluation shrinks its batches to what the device holds: with a binding limit of 5 samples
/// of the model's largest activation (its first convolution's output, 4 x 28 x 28 f32), a batch
/// of 256 runs as batches of 5 and scores as the unlimited device does; a training batch of 6
/// is refused before the run, naming the largest that fits.
#[test]
fn evaluation_batches_shrink_to_what_the_device_holds() {
    let Some(gpu) = gpu() else { return };
    let spec = small_spec();
    let limit = 5 * 4 * 28 * 28 * 4;
    let small = Gpu::new(&GpuOptions { max_binding_bytes: Some(limit), ..Default::default() }).unwrap();
    let (train, test) = data::load(data::Source::Shapes, None, 3, 40, 28).unwrap();
    let splits = data::split(train, test, 0.0, 3).unwrap();
    let mut full = Model::from_spec(gpu, &spec, &[1, 28, 28], 9).unwrap();
    let mut limited = Model::from_spec(&small, &spec, &[1, 28, 28], 9).unwrap();
    assert_eq!(limited.largest_batch(limit), 5);
    let want = tr::evaluate(gpu, &mut full, &splits.test, 256, true).unwrap();
    let got = tr::evaluate(&small, &mut limited, &splits.test, 256, true).unwrap();
    assert_eq!((got.samples, &got.confusion), (want.samples, &want.confusion));
    assert!((got.loss - want.loss).abs() < 1e-5 * want.loss.max(1.0), "loss {} vs {}", got.loss, want.loss);
    let err = limited.check_batch(6, limit).unwrap_err().to_string();
    assert!(err.contains("batch size 6") && err.contains("at most 5"), "{err}");
}
