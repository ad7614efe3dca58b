//! The batch-size experiment (`wgtrain::experiment::batch_size`) on the CPU backend with tiny
//! settings: the planned memory and the automatic batch list, the learning-rate rule, the
//! eval-mode gradient behind the sharpness (against finite differences), and a whole run —
//! its files, the interpolation's end points, resuming from the cached runs, sizes that do not
//! fit. One small run on the GPU too, where there is an adapter.

use std::path::{Path, PathBuf};
use std::time::Instant;

use wgtrain::data::{Dataset, Source};
use wgtrain::experiment::batch_size::{self, LrRule, MemoryLimits, Options};
use wgtrain::experiment::results::Results;
use wgtrain::experiment::{load_data, Setup};
use wgtrain::nn::{LayerSpec, Mode, Model, ModelSpec, Targets};
use wgtrain::train::{evaluate, BatchSize, TrainConfig};
use wgtrain::{Backend, Cpu, Gpu, GpuOptions};

/// conv → residual(conv, bn) → bn → relu → max pool → dropout → flatten → linear: every kind of
/// node the eval-mode backward treats specially (batch norm, dropout, a residual sum).
fn spec() -> ModelSpec {
    ModelSpec {
        name: "tiny".into(),
        layers: vec![
            LayerSpec::conv(4, 3, 1, 1),
            LayerSpec::Residual { body: vec![LayerSpec::conv(4, 3, 1, 1), LayerSpec::bn()], shortcut: vec![] },
            LayerSpec::bn(),
            LayerSpec::Relu,
            LayerSpec::max_pool(2, 2, 0),
            LayerSpec::Dropout { p: 0.25 },
            LayerSpec::Flatten,
            LayerSpec::linear(10),
        ],
    }
}

fn setup(train: usize, test: usize, seeds: usize) -> Setup {
    let (train, test) = load_data(Source::Shapes, None, 28, Some(train), Some(test), 1).unwrap();
    Setup {
        train,
        test,
        model: spec(),
        config: TrainConfig { epochs: 1, batch: BatchSize::Fixed(16), eval_batch: 64, ..TrainConfig::default() },
        label_smoothing: 0.0,
        val_fraction: 0.1,
        patience: 0,
        seeds,
    }
}

/// The same images, each pixel repeated k × k times.
fn upscale(d: &Dataset, k: usize) -> Dataset {
    let [c, h, w] = d.shape;
    let mut images = Vec::with_capacity(d.images.len() * k * k);
    for i in 0..d.len() {
        let img = d.image(i);
        for ch in 0..c {
            for y in 0..h * k {
                for x in 0..w * k {
                    images.push(img[(ch * h + y / k) * w + x / k]);
                }
            }
        }
    }
    Dataset { shape: [c, h * k, w * k], images, ..d.clone() }
}

fn limits(budget: u64, max_tensor: u64) -> MemoryLimits {
    MemoryLimits {
        device: "test".into(),
        max_tensor_bytes: max_tensor,
        budget_bytes: budget,
        budget_source: "test".into(),
        gpu: false,
        arena_align: 1,
    }
}

#[test]
fn automatic_list_is_powers_of_two_up_to_what_fits() {
    let s = setup(200, 100, 1);
    let unlimited = limits(u64::MAX / 4, u64::MAX / 4);
    let p1 = batch_size::plan_memory(&s, 1, &unlimited).unwrap();
    let p2 = batch_size::plan_memory(&s, 2, &unlimited).unwrap();
    let per_sample = p2.total() - p1.total();
    assert!(per_sample > 0 && p1.model_bytes > 0 && p1.eval_bytes > 0 && p1.sharpness_bytes > 0, "{p1:?}");
    // Activations, gradients and saved tensors are linear in the batch: the plan at 10 is the
    // plan at 1 plus nine samples.
    let p10 = batch_size::plan_memory(&s, 10, &unlimited).unwrap();
    assert_eq!(p10.total(), p1.total() + 9 * per_sample);

    // A budget with room for 20.5 samples beyond the first: the largest is 21.
    let budget = p1.total() + per_sample * 41 / 2;
    let lim = limits(budget, u64::MAX / 4);
    let largest = batch_size::largest_batch_within(&s, &lim).unwrap();
    assert_eq!(largest, 21);
    assert!(batch_size::plan_memory(&s, largest, &lim).unwrap().total() <= budget);
    assert!(batch_size::plan_memory(&s, largest + 1, &lim).unwrap().total() > budget);
    let opts = Options { train: true, ..Options::default() };
    let list = batch_size::batch_sizes(&s, &opts, &lim).unwrap();
    assert_eq!(list, [1, 2, 4, 8, 16].map(BatchSize::Fixed).to_vec());
    let capped = batch_size::batch_sizes(&s, &Options { max_batch: Some(5), ..opts.clone() }, &lim).unwrap();
    assert_eq!(capped, [1, 2, 4].map(BatchSize::Fixed).to_vec());
    // Without a memory limit the training part (180 images) caps the list.
    let all = batch_size::batch_sizes(&s, &opts, &unlimited).unwrap();
    assert_eq!(all.last(), Some(&BatchSize::Fixed(128)));
    // Given sizes are taken as they are.
    let given = Options { batch_sizes: Some(vec![BatchSize::Fixed(3), BatchSize::Full]), ..opts.clone() };
    assert_eq!(batch_size::batch_sizes(&s, &given, &lim).unwrap(), vec![BatchSize::Fixed(3), BatchSize::Full]);

    // The largest single tensor limits too: the input batch or an activation.
    let tensor_cap = p1.largest_tensor_bytes * 7;
    let lim_t = limits(u64::MAX / 4, tensor_cap);
    let lt = batch_size::largest_batch_within(&s, &lim_t).unwrap();
    assert!(batch_size::plan_memory(&s, lt, &lim_t).unwrap().largest_tensor_bytes <= tensor_cap);
    assert!(batch_size::plan_memory(&s, lt + 1, &lim_t).unwrap().largest_tensor_bytes > tensor_cap, "largest {lt}");
    // Not even one sample: an error that says why.
    let err = batch_size::largest_batch_within(&s, &limits(p1.model_bytes, u64::MAX / 4)).unwrap_err().to_string();
    assert!(err.contains("batch size 1"), "{err}");

    // Bigger images: more memory per sample, so fewer fit — with the stated limits and with the
    // CPU backend's own (host memory).
    let mut big = s.clone();
    big.train = upscale(&s.train, 2);
    big.test = upscale(&s.test, 2);
    let big_p1 = batch_size::plan_memory(&big, 1, &unlimited).unwrap();
    assert!(big_p1.total() > p1.total());
    let lim_big = limits(big_p1.total() * 2, u64::MAX / 4);
    let (small_largest, big_largest) =
        (batch_size::largest_batch_within(&s, &lim_big).unwrap(), batch_size::largest_batch_within(&big, &lim_big).unwrap());
    assert!(big_largest * 3 < small_largest, "{big_largest} at 56x56 vs {small_largest} at 28x28");
    let (host_small, host_big) =
        (batch_size::largest_batch_that_fits(&Cpu, &s).unwrap(), batch_size::largest_batch_that_fits(&Cpu, &big).unwrap());
    assert!(host_big * 3 < host_small, "host budget: {host_big} at 56x56 vs {host_small} at 28x28");
    let host = batch_size::memory_limits(&Cpu);
    assert!(!host.gpu && host.budget_bytes > 0, "{host:?}");
}

#[test]
fn lr_rule_parses_and_scales_the_learning_rate() {
    for (text, rule) in [
        ("fixed", LrRule::Fixed),
        ("linear", LrRule::Linear { base_batch: 0, warmup_epochs: 0 }),
        ("linear:256:5", LrRule::Linear { base_batch: 256, warmup_epochs: 5 }),
    ] {
        assert_eq!(text.parse::<LrRule>().unwrap(), rule);
        assert_eq!(rule.to_string(), text);
    }
    assert_eq!("linear:32".parse::<LrRule>().unwrap(), LrRule::Linear { base_batch: 32, warmup_epochs: 0 });
    for bad in ["", "lin", "linear:x", "linear:1:2:3", "fixed:3"] {
        assert!(bad.parse::<LrRule>().is_err(), "{bad:?}");
    }
    let s = setup(200, 100, 1);
    let base = s.config.optimizer.lr;
    assert_eq!(batch_size::lr_for(&s, LrRule::Fixed, 128).unwrap(), (base, 0));
    assert_eq!(batch_size::lr_for(&s, LrRule::Linear { base_batch: 32, warmup_epochs: 2 }, 128).unwrap(), (base * 4.0, 2));
    // Base batch 0: the configuration's batch (16).
    assert_eq!(batch_size::lr_for(&s, LrRule::Linear { base_batch: 0, warmup_epochs: 1 }, 8).unwrap(), (base * 0.5, 1));
}

/// Central differences of the eval-mode mean cross-entropy, from `evaluate` (f64 from the logits).
fn finite_difference(be: &Cpu, model: &mut Model<Cpu>, data: &Dataset, i: usize, h: f32) -> f64 {
    let w = batch_size::flat_params(be, model).unwrap();
    let mut at = |d: f32| {
        let mut v = w.clone();
        v[i] += d;
        batch_size::set_flat_params(be, model, &v).unwrap();
        evaluate(be, model, data, 1000, false).unwrap().loss
    };
    let g = (at(h) - at(-h)) / (2.0 * h as f64);
    batch_size::set_flat_params(be, model, &w).unwrap();
    g
}

#[test]
fn eval_gradient_matches_finite_differences() {
    let be = Cpu;
    let s = setup(200, 100, 1);
    let splits = s.splits(None, 1).unwrap();
    let mut model = s.build(&be, &s.model, 1, &splits).unwrap();
    // A few training steps, so batch norm's running statistics and γ, β are not at their start.
    let opt = wgtrain::Optimizer { lr: 0.01, ..s.config.optimizer };
    model.reset_optimizer(&be, &opt).unwrap();
    let per = splits.train.image_len();
    for k in 0..4 {
        let x = &splits.train.images[k * 32 * per..(k + 1) * 32 * per];
        let l: Vec<f32> = splits.train.labels[k * 32..(k + 1) * 32].iter().map(|&v| v as f32).collect();
        model.train_step(&be, x, Targets::Labels(&l), &opt, &wgtrain::nn::CrossEntropy::default(), None).unwrap();
    }
    let data = splits.train.subset(&(0..40).collect::<Vec<_>>());
    let before = model.state_dict(&be).unwrap();
    let (loss, grad) = batch_size::eval_loss_and_grad(&be, &mut model, &data.images, &data.labels, 16).unwrap();
    assert_eq!(model.state_dict(&be).unwrap(), before, "the eval gradient must not change the model");
    let eval = evaluate(&be, &mut model, &data, 64, false).unwrap();
    assert!((loss - eval.loss).abs() < 1e-5 * eval.loss.max(1.0), "{loss} vs {}", eval.loss);
    assert_eq!(grad.len(), model.num_params());

    // Coordinates of every parameter tensor: conv weights and biases, batch norm γ and β (inside
    // the residual block and after it), linear weights.
    let mut offsets = Vec::new();
    let mut at = 0;
    for (info, p) in model.param_info().iter().zip(&model.params) {
        offsets.push((info.name.clone(), at, p.numel()));
        at += p.numel();
    }
    let mut checked = 0;
    let mut worst = 0.0f64;
    for (name, start, n) in &offsets {
        for j in [0, n / 2, n - 1] {
            let i = start + j;
            let fd = finite_difference(&be, &mut model, &data, i, 1e-2);
            let err = (fd - grad[i] as f64).abs();
            worst = worst.max(err);
            assert!(err <= 2e-3 + 0.03 * fd.abs(), "{name}[{j}]: eval-mode gradient {} vs finite difference {fd}", grad[i]);
            checked += 1;
        }
    }
    assert!(checked >= 24, "{checked} coordinates");

    // The model's own backward after a training-mode forward differentiates another function (batch
    // statistics): its gradient must differ, or this test could not tell them apart.
    let mut train_mode = s.build(&be, &s.model, 1, &splits).unwrap();
    train_mode.load_state_dict(&be, &before).unwrap();
    let labels: Vec<f32> = data.labels.iter().map(|&v| v as f32).collect();
    let b = train_mode.load_batch(&be, &data.images, Targets::Labels(&labels)).unwrap();
    train_mode.forward(&be, b, Mode::Train).unwrap();
    train_mode.loss(&be, b, &wgtrain::nn::CrossEntropy::default()).unwrap();
    train_mode.backward(&be, b).unwrap();
    let tg: Vec<f32> = train_mode.grads.iter().flat_map(|g| be.download(g).unwrap()).collect();
    let diff = tg.iter().zip(&grad).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(diff > 1e-2, "train-mode and eval-mode gradients agree to {diff}: the check above proves nothing");
    println!("checked {checked} coordinates, worst error {worst:.2e}; train-mode gradient differs by up to {diff:.3}");
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgtrain-batch-size-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn open(dir: &Path, s: &Setup, opts: &Options) -> Results {
    let settings = serde_json::json!({ "setup": s.settings(), "options": opts });
    Results::open(dir, "batch-size", &settings, &wgtrain::experiment::environment("test")).unwrap()
}

/// results.csv as (kind, batch, batch_size, seed, alpha, metric) → value.
fn csv(dir: &Path) -> Vec<(Vec<String>, f64)> {
    let text = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("kind,batch,batch_size,seed,alpha,metric,value"));
    lines
        .map(|l| {
            let cells: Vec<String> = l.split(',').map(String::from).collect();
            assert_eq!(cells.len(), 7, "{l}");
            let v: f64 = cells[6].parse().unwrap_or_else(|_| panic!("not a number: {l}"));
            (cells[..6].to_vec(), v)
        })
        .collect()
}

fn value(rows: &[(Vec<String>, f64)], kind: &str, batch: &str, seed: &str, alpha: &str, metric: &str) -> f64 {
    let hits: Vec<f64> = rows
        .iter()
        .filter(|(k, _)| k[0] == kind && k[1] == batch && k[3] == seed && k[4] == alpha && k[5] == metric)
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(hits.len(), 1, "{kind} {batch} seed {seed} alpha {alpha} {metric}: {hits:?}");
    hits[0]
}

/// A cached run's result as JSON, from `runs/KEY.toml` (its `value` table) or `runs/KEY.json`.
fn read_run(dir: &Path, key: &str) -> serde_json::Value {
    let toml_path = dir.join(format!("runs/{key}.toml"));
    if let Ok(text) = std::fs::read_to_string(&toml_path) {
        let v: toml::Value = toml::from_str(&text).unwrap();
        return serde_json::to_value(&v["value"]).unwrap();
    }
    serde_json::from_str(&std::fs::read_to_string(dir.join(format!("runs/{key}.json"))).unwrap()).unwrap()
}

/// Overwrites the number `field` of a cached run's result, in whichever format it is stored.
fn edit_run(dir: &Path, key: &str, field: &str, v: f64) {
    let toml_path = dir.join(format!("runs/{key}.toml"));
    if let Ok(text) = std::fs::read_to_string(&toml_path) {
        let mut t: toml::Table = toml::from_str(&text).unwrap();
        t["value"].as_table_mut().unwrap().insert(field.into(), toml::Value::Float(v));
        std::fs::write(&toml_path, toml::to_string(&t).unwrap()).unwrap();
        return;
    }
    let path = dir.join(format!("runs/{key}.json"));
    let mut j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    j[field] = serde_json::json!(v);
    std::fs::write(&path, serde_json::to_string(&j).unwrap()).unwrap();
}

#[test]
fn whole_run_writes_its_files_interpolates_and_resumes() {
    let be = Cpu;
    let s = setup(200, 100, 2);
    let opts = Options {
        batch_sizes: Some(vec![BatchSize::Fixed(8), BatchSize::Fixed(32), BatchSize::Full]),
        train: true,
        lr_rule: LrRule::Linear { base_batch: 8, warmup_epochs: 1 },
        windows: 2,
        steps_per_window: 2,
        warmup_steps: 1,
        sharpness_eps: 1e-3,
        sharpness_steps: 3,
        sharpness_samples: 48,
        interpolation_points: 5,
        ..Options::default()
    };
    let dir = fresh_dir("run");
    let t0 = Instant::now();
    batch_size::run(&be, &s, &opts, &mut open(&dir, &s, &opts)).unwrap();
    let first = t0.elapsed();
    for f in [
        "settings.json",
        "results.csv",
        "report.md",
        "throughput.png",
        "generalization.png",
        "interpolation.png",
        "params-b8-seed1.safetensors",
        "params-bfull-seed1.safetensors",
    ] {
        let len = std::fs::metadata(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}")).len();
        assert!(len > 100, "{f}: {len} bytes");
    }
    assert!(!dir.join("params-b32-seed1.safetensors").exists(), "only the two interpolated models are saved");
    let rows = csv(&dir);
    let count = |kind: &str| rows.iter().filter(|(k, _)| k[0] == kind).count();
    assert_eq!(count("throughput"), 3 * 5);
    assert_eq!(count("train"), 3 * 2 * 14);
    assert_eq!(count("interpolation"), 5 * 5);
    for b in ["8", "32", "full"] {
        assert!(value(&rows, "throughput", b, "", "", "images_per_s") > 0.0);
        assert!(value(&rows, "throughput", b, "", "", "gflops") > 0.0);
    }
    // `full` is the training part, 180 of the 200 images: one step per epoch.
    assert!(rows.iter().any(|(k, _)| k[0] == "throughput" && k[1] == "full" && k[2] == "180"));
    assert_eq!(value(&rows, "train", "full", "1", "", "steps"), 1.0);
    assert_eq!(value(&rows, "train", "8", "2", "", "steps"), 22.0); // 180 / 8, last partial batch dropped

    // The linear rule: lr = base × b / 8, and the one warm-up epoch halves the first epoch's rate.
    let base = s.config.optimizer.lr as f64;
    for (b, n) in [("8", 8.0), ("32", 32.0), ("full", 180.0)] {
        let lr = value(&rows, "train", b, "1", "", "lr");
        assert!((lr - base * n / 8.0).abs() < 1e-6 * lr, "batch {b}: lr {lr}");
        let run = read_run(&dir, &format!("train-b{b}-seed1"));
        let epoch_lr = run["summary"]["epochs"][0]["lr"].as_f64().unwrap();
        assert!((epoch_lr - lr / 2.0).abs() < 1e-6 * lr, "batch {b}: first epoch at {epoch_lr}, expected {}", lr / 2.0);
    }
    for b in ["8", "32", "full"] {
        for seed in ["1", "2"] {
            let sh = value(&rows, "train", b, seed, "", "sharpness");
            assert!(sh.is_finite() && sh >= 0.0, "sharpness {sh}");
            let gap = value(&rows, "train", b, seed, "", "gap_accuracy");
            let (tr, te) = (value(&rows, "train", b, seed, "", "train_accuracy"), value(&rows, "train", b, seed, "", "test_accuracy"));
            assert!((gap - (tr - te)).abs() < 1e-12);
        }
    }
    // The interpolation's ends are the two models: their own losses and accuracies, to rounding.
    for (alpha, b) in [("0", "8"), ("1", "full")] {
        for m in ["train_loss", "test_loss", "train_accuracy", "test_accuracy"] {
            let at = value(&rows, "interpolation", "", "1", alpha, m);
            let own = value(&rows, "train", b, "1", "", m);
            assert!((at - own).abs() <= 1e-6 * own.abs().max(1.0), "α {alpha} {m}: {at} vs batch {b}'s own {own}");
        }
    }
    for alpha in ["-0.5", "0.5", "1.5"] {
        assert!(value(&rows, "interpolation", "", "1", alpha, "test_loss").is_finite());
    }
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for needle in [
        "## Throughput",
        "## Training",
        "### Sharpness",
        "## Interpolation",
        "## What it shows",
        "Largest batch size that fits",
        "full (180)",
    ] {
        assert!(report.contains(needle), "report.md lacks {needle:?}");
    }

    // Run again on the same folder: every run is read back, not redone. Proof: a cached figure
    // edited by hand comes out in results.csv, nothing else changes, and no run file is rewritten.
    let measured = read_run(&dir, "throughput-b8")["images_per_s"].as_f64().unwrap();
    edit_run(&dir, "throughput-b8", "images_per_s", 12345.5);
    let stamps = |dir: &Path| -> Vec<(PathBuf, std::time::SystemTime)> {
        let mut v: Vec<_> = std::fs::read_dir(dir.join("runs"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path(), e.metadata().unwrap().modified().unwrap())
            })
            .collect();
        v.sort();
        v
    };
    let before = stamps(&dir);
    assert_eq!(before.len(), 3 + 3 * 2 + 1, "{before:?}");
    let t1 = Instant::now();
    batch_size::run(&be, &s, &opts, &mut open(&dir, &s, &opts)).unwrap();
    let second = t1.elapsed();
    assert_eq!(stamps(&dir), before, "a run file was rewritten");
    let again = csv(&dir);
    assert_eq!(value(&again, "throughput", "8", "", "", "images_per_s"), 12345.5);
    assert_ne!(measured, 12345.5);
    let changed: Vec<_> = rows.iter().zip(&again).filter(|(a, b)| a != b).collect();
    assert_eq!(changed.len(), 1, "only the edited figure may differ: {changed:?}");
    println!("first run {first:.2?}, second {second:.2?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sizes_that_do_not_fit_are_skipped_with_a_note() {
    let be = Cpu;
    let s = setup(200, 100, 1);
    let budget = batch_size::plan_memory(&s, 64, &batch_size::memory_limits(&be)).unwrap().total();
    let opts = Options {
        batch_sizes: Some(vec![BatchSize::Fixed(4), BatchSize::Full]),
        windows: 1,
        steps_per_window: 1,
        warmup_steps: 1,
        memory_budget: Some(budget),
        ..Options::default()
    };
    let dir = fresh_dir("skip");
    batch_size::run(&be, &s, &opts, &mut open(&dir, &s, &opts)).unwrap();
    let rows = csv(&dir);
    assert!(rows.iter().all(|(k, _)| k[0] == "throughput" && k[1] == "4"), "{rows:?}");
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(report.contains("batch full (180): skipped, does not fit"), "{report}");
    assert!(!dir.join("generalization.png").exists() && dir.join("throughput.png").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same small run on the GPU (lavapipe where there is no GPU); skipped without an adapter.
/// The eval-mode gradient must agree with the CPU's.
#[test]
fn runs_on_the_gpu() {
    let gpu = match Gpu::new(&GpuOptions::default()) {
        Ok(g) => g,
        Err(e) => {
            println!("skipped: no GPU adapter ({e})");
            return;
        }
    };
    let s = setup(200, 100, 1);
    let limits = batch_size::memory_limits(&gpu);
    assert!(limits.gpu && limits.max_tensor_bytes > 0 && limits.budget_bytes > 0, "{limits:?}");
    assert!(batch_size::largest_batch_that_fits(&gpu, &s).unwrap() >= 1);

    let splits = s.splits(None, 1).unwrap();
    let data = splits.train.subset(&(0..24).collect::<Vec<_>>());
    let mut cpu_model = s.build(&Cpu, &s.model, 1, &splits).unwrap();
    let mut gpu_model = s.build(&gpu, &s.model, 1, &splits).unwrap();
    let (lc, gc) = batch_size::eval_loss_and_grad(&Cpu, &mut cpu_model, &data.images, &data.labels, 10).unwrap();
    let (lg, gg) = batch_size::eval_loss_and_grad(&gpu, &mut gpu_model, &data.images, &data.labels, 10).unwrap();
    assert!((lc - lg).abs() < 1e-4, "loss cpu {lc} gpu {lg}");
    let scale = gc.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = gc.iter().zip(&gg).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff <= 1e-3 * scale.max(1.0), "gradients differ by {diff} (largest {scale})");

    let opts = Options {
        batch_sizes: Some(vec![BatchSize::Fixed(16), BatchSize::Full]),
        train: true,
        windows: 2,
        steps_per_window: 2,
        warmup_steps: 1,
        sharpness_steps: 2,
        sharpness_samples: 32,
        interpolation_points: 3,
        ..Options::default()
    };
    let dir = fresh_dir("gpu");
    batch_size::run(&gpu, &s, &opts, &mut open(&dir, &s, &opts)).unwrap();
    let rows = csv(&dir);
    assert!(value(&rows, "throughput", "16", "", "", "images_per_s") > 0.0);
    for (alpha, b) in [("0", "16"), ("1", "full")] {
        let at = value(&rows, "interpolation", "", "1", alpha, "test_loss");
        let own = value(&rows, "train", b, "1", "", "test_loss");
        assert!((at - own).abs() <= 1e-5 * own.max(1.0), "α {alpha}: {at} vs {own}");
    }
    println!("{}", std::fs::read_to_string(dir.join("report.md")).unwrap());
    if std::env::var_os("KEEP_BATCH_SIZE_OUTPUT").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("output kept in {}", dir.display());
    }
}
