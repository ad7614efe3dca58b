//! Benchmarks shared by `cargo bench` and `wgtrain bench`: pipelines are compiled in a warm-up
//! run that is not timed, every timed run waits for the device before the clock stops, and the
//! figure reported is the median of the runs.

use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::gpu::{Gpu, MatmulVariant};
use crate::ops::{conv2d_dims, Conv2dSpec, MatmulSpec};
use crate::ops::{Optimizer, OptimizerKind};
use crate::rng::Rng;
use crate::Result;

/// Median and spread of timed runs.
#[derive(Clone, Debug)]
pub struct Timing {
    /// The middle run (mean of the middle two for an even count).
    pub median: Duration,
    /// The fastest run.
    pub min: Duration,
    /// The slowest run.
    pub max: Duration,
    /// Number of timed runs.
    pub runs: usize,
}

impl Timing {
    /// Summarises the durations of the timed runs (at least one; panics on none).
    pub fn from_runs(mut times: Vec<Duration>) -> Self {
        times.sort();
        let n = times.len();
        let median = if n % 2 == 1 { times[n / 2] } else { (times[n / 2 - 1] + times[n / 2]) / 2 };
        Self { median, min: times[0], max: times[n - 1], runs: n }
    }
}

/// Times `f` (which must wait for its own work) `runs` times after one untimed warm-up.
pub fn time_runs(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Timing> {
    f()?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    Ok(Timing::from_runs(times))
}

/// One matmul variant at one size.
#[derive(Clone, Debug)]
pub struct MatmulBench {
    /// The kernel timed.
    pub variant: MatmulVariant,
    /// Rows of A and C.
    pub m: usize,
    /// Columns of B and C.
    pub n: usize,
    /// The reduced dimension: columns of A, rows of B.
    pub k: usize,
    /// Wall time of one multiply, device waited on.
    pub timing: Timing,
}

impl MatmulBench {
    /// Throughput at the median: 2·m·n·k floating-point operations / time, in 10⁹ per second.
    pub fn gflops(&self) -> f64 {
        2.0 * (self.m * self.n * self.k) as f64 / self.timing.median.as_secs_f64() / 1e9
    }
}

/// `C[m,n] = A[m,k] @ B[k,n]` with `variant`, median of `runs`.
pub fn matmul(gpu: &Gpu, variant: MatmulVariant, m: usize, n: usize, k: usize, runs: usize) -> Result<MatmulBench> {
    let mut rng = Rng::new(1);
    let a = gpu.upload(&[m, k], &rng.vec(m * k, -1.0, 1.0))?;
    let b = gpu.upload(&[k, n], &rng.vec(k * n, -1.0, 1.0))?;
    let mut c = gpu.zeros(&[m, n])?;
    let timing = time_runs(runs, || {
        gpu.matmul_with(variant, &a, &b, &mut c, MatmulSpec::default())?;
        gpu.sync()
    })?;
    Ok(MatmulBench { variant, m, n, k, timing })
}

/// Prints one table row per variant; returns the results.
pub fn matmul_report(gpu: &Gpu, variants: &[MatmulVariant], m: usize, n: usize, k: usize, runs: usize) -> Result<Vec<MatmulBench>> {
    println!("matmul {m}x{k} @ {k}x{n} on {} (median of {runs} runs, pipeline creation excluded)", gpu.adapter_name());
    println!("{:<14} {:>12} {:>12} {:>12} {:>10}", "variant", "median ms", "min ms", "max ms", "GFLOP/s");
    let mut out = Vec::new();
    for &v in variants {
        let r = matmul(gpu, v, m, n, k, runs)?;
        let chosen = if v == gpu.matmul_variant() { "  (chosen)" } else { "" };
        println!(
            "{:<14} {:>12.2} {:>12.2} {:>12.2} {:>10.2}{chosen}",
            v.name(),
            r.timing.median.as_secs_f64() * 1e3,
            r.timing.min.as_secs_f64() * 1e3,
            r.timing.max.as_secs_f64() * 1e3,
            r.gflops()
        );
        out.push(r);
    }
    Ok(out)
}

/// One optimizer step over `n` parameters: (kind, timing, GB/s of arena traffic).
pub fn optimizer_report(gpu: &Gpu, n: usize, runs: usize) -> Result<Vec<(OptimizerKind, Timing, f64)>> {
    println!("optimizer step over {n} parameters on {} (median of {runs} runs, one dispatch each)", gpu.adapter_name());
    println!("{:<10} {:>12} {:>10}", "optimizer", "median ms", "GB/s");
    let mut rng = Rng::new(2);
    let mut p = gpu.upload(&[n], &rng.vec(n, -1.0, 1.0))?;
    let g = gpu.upload(&[n], &rng.vec(n, -1.0, 1.0))?;
    let mut s1 = gpu.zeros(&[n])?;
    let mut s2 = gpu.zeros(&[n])?;
    let mut out = Vec::new();
    for kind in OptimizerKind::ALL {
        let mut opt = Optimizer::new(kind);
        if kind == OptimizerKind::Sgd {
            opt.momentum = 0.9;
        }
        let mut t = 0;
        let timing = time_runs(runs, || {
            t += 1;
            gpu.optimizer_step(&opt, t, &mut p, &g, &mut s1, &mut s2)?;
            gpu.sync()
        })?;
        // Bytes moved: param read+write, grad read, each state read+write.
        let bytes = 4.0 * n as f64 * (3.0 + 2.0 * opt.state_tensors() as f64);
        let gbs = bytes / timing.median.as_secs_f64() / 1e9;
        println!("{:<10} {:>12.3} {:>10.2}", kind.name(), timing.median.as_secs_f64() * 1e3, gbs);
        out.push((kind, timing, gbs));
    }
    Ok(out)
}

/// A convolution benchmark: input [N, C, H, W], K filters of KHxKW.
#[derive(Clone, Copy, Debug)]
pub struct ConvBenchCase {
    /// Row label in the report.
    pub name: &'static str,
    /// Input shape [N, C, H, W].
    pub x: [usize; 4],
    /// Output channels K.
    pub k: usize,
    /// Kernel size [KH, KW].
    pub kernel: [usize; 2],
    /// Stride, padding, dilation, groups.
    pub spec: Conv2dSpec,
}

/// One convolution per path (on lavapipe; where a product would not run on matmul v5, the
/// implicit GEMM gives way to im2col + GEMM): a 3x3 on rows of whole vec4s (the implicit GEMM,
/// conv2d_s1_subgroup), a 3x3 on 14-wide rows (forward unfolded; backward passes as implicit
/// GEMMs on copies padded to 16 wide), a 5x5 (im2col_s1_vec4's unfolding; dx as a convolution
/// of dy), a 3x3 with stride 2 (im2col, col2im), a 1x1 on 14x14 (GEMM on x directly) and one
/// on 7x7 (rows of 49: channel-major, one GEMM over every image's positions).
pub const CONV_CASES: [ConvBenchCase; 6] = [
    conv_case("3x3 pad 1, N32 C64 32x32 -> K64", [32, 64, 32, 32], 64, 3, 1, 1),
    conv_case("3x3 pad 1, N32 C32 14x14 -> K64", [32, 32, 14, 14], 64, 3, 1, 1),
    conv_case("5x5 pad 2, N32 C16 28x28 -> K32", [32, 16, 28, 28], 32, 5, 1, 2),
    conv_case("3x3 stride 2, N32 C32 32x32 -> K64", [32, 32, 32, 32], 64, 3, 2, 1),
    conv_case("1x1, N32 C64 14x14 -> K32", [32, 64, 14, 14], 32, 1, 1, 0),
    conv_case("1x1, N64 C64 7x7 -> K32", [64, 64, 7, 7], 32, 1, 1, 0),
];

/// A square `kernel` with `stride` and `padding` on both axes, dilation 1, one group.
const fn conv_case(name: &'static str, x: [usize; 4], k: usize, kernel: usize, stride: usize, padding: usize) -> ConvBenchCase {
    ConvBenchCase {
        name,
        x,
        k,
        kernel: [kernel, kernel],
        spec: Conv2dSpec { stride: [stride, stride], padding: [padding, padding], dilation: [1, 1], groups: 1 },
    }
}

/// Forward, backward-data and backward-filter GFLOP/s (2 x multiply-accumulates / time) of each case.
pub fn conv_report(gpu: &Gpu, cases: &[ConvBenchCase], runs: usize) -> Result<Vec<(ConvBenchCase, [f64; 3])>> {
    println!("conv2d on {} (median of {runs} runs, pipelines excluded, device waited on)", gpu.adapter_name());
    println!("{:<36} {:>16} {:>16} {:>16}", "case", "forward GFLOP/s", "bwd data GFLOP/s", "bwd filt GFLOP/s");
    let mut out = Vec::new();
    let mut rng = Rng::new(5);
    for case in cases {
        let ws = [case.k, case.x[1] / case.spec.groups, case.kernel[0], case.kernel[1]];
        let d = conv2d_dims("bench", &case.x, &ws, case.spec)?;
        let x = gpu.upload(&case.x, &rng.vec(case.x.iter().product(), -1.0, 1.0))?;
        let w = gpu.upload(&ws, &rng.vec(ws.iter().product(), -1.0, 1.0))?;
        let mut y = gpu.zeros(&d.y_shape())?;
        let dy = gpu.upload(&d.y_shape(), &rng.vec(d.y_shape().iter().product(), -1.0, 1.0))?;
        let mut dx = gpu.zeros(&case.x)?;
        let mut dw = gpu.zeros(&ws)?;
        let flops = 2.0 * d.macs() as f64;
        let fwd = time_runs(runs, || {
            gpu.conv2d(&x, &w, None, &mut y, case.spec)?;
            gpu.sync()
        })?;
        let bwd_data = time_runs(runs, || {
            gpu.conv2d_backward_data(&dy, &w, &mut dx, case.spec)?;
            gpu.sync()
        })?;
        let bwd_filter = time_runs(runs, || {
            gpu.conv2d_backward_filter(&x, &dy, &mut dw, case.spec)?;
            gpu.sync()
        })?;
        let g = |t: &Timing| flops / t.median.as_secs_f64() / 1e9;
        let r = [g(&fwd), g(&bwd_data), g(&bwd_filter)];
        println!("{:<36} {:>16.2} {:>16.2} {:>16.2}", case.name, r[0], r[1], r[2]);
        out.push((*case, r));
    }
    Ok(out)
}

/// Training throughput of one batch size.
#[derive(Clone, Debug)]
pub struct TrainBench {
    /// Images per step.
    pub batch: usize,
    /// From `start` (the process start) to the end of the first step, device waited on.
    pub first_step: Duration,
    /// Median over the windows, images per second.
    pub images_per_s: f64,
    /// Images per second of each timed window, in run order.
    pub window_ips: Vec<f64>,
    /// The model's training memory at this batch size, planned from its graph (parameters,
    /// gradients, optimizer state, activations, saved tensors, activation gradients): see
    /// [`crate::nn::MemoryEstimate`].
    pub planned_bytes: u64,
    /// The device memory wgpu reports allocated at most while the windows ran, where its
    /// backend reports it (its allocator report; not on every backend).
    pub device_bytes: Option<u64>,
    /// The process's peak resident memory so far (after this batch size), where the system
    /// tells it (Linux); on lavapipe it includes the device's memory.
    pub peak_rss_bytes: Option<u64>,
    /// Data-parallel replicas that trained together (1: one device); `batch` and
    /// `images_per_s` are then the global batch and the images of all replicas per second.
    pub replicas: usize,
    /// Milliseconds per step spent summing gradients with the other replicas (median over the
    /// windows; 0 for one device).
    pub allreduce_ms: f64,
    /// Replica 0 alone at its share of the batch, measured before the replicas ran together:
    /// images/s, for the scaling efficiency `images_per_s / (replicas · single)`.
    pub single_images_per_s: Option<f64>,
    /// Where one step's time goes, kernel by kernel (`bench train --profile`; see
    /// [`crate::profile::profile_training`]), when it was asked for.
    pub profile: Option<crate::profile::StepProfile>,
}

impl TrainBench {
    /// Images per second of all replicas over `replicas` times one device's (1: perfect
    /// scaling); `None` for one device.
    pub fn efficiency(&self) -> Option<f64> {
        self.single_images_per_s.filter(|_| self.replicas > 1).map(|one| self.images_per_s / (self.replicas as f64 * one))
    }
}

/// What `wgtrain bench train` trains: a model, its input, the optimizer, and the images.
#[derive(Clone, Debug)]
pub struct TrainBenchSetup {
    /// The model (zoo or model file).
    pub spec: crate::nn::ModelSpec,
    /// Shape of one input sample [C, H, W].
    pub input: [usize; 3],
    /// Classes of the labels (and of the model's last layer).
    pub classes: usize,
    /// The optimizer of every step.
    pub optimizer: Optimizer,
    /// Real images and labels to cycle through (a data set's normalised training part);
    /// `None`: synthetic inputs uniform in [-1, 1] with random labels.
    pub data: Option<crate::data::Dataset>,
}

impl TrainBenchSetup {
    /// The default CNN on synthetic 1x28x28 input with Adam: what `wgtrain bench train` runs
    /// without options.
    pub fn default_cnn() -> Self {
        use crate::nn::{zoo, ModelSpec};
        TrainBenchSetup {
            spec: ModelSpec { name: "default".into(), layers: zoo::default_cnn(10) },
            input: [1, 28, 28],
            classes: 10,
            optimizer: Optimizer::new(OptimizerKind::Adam),
            data: None,
        }
    }

    /// "the default CNN" for the zoo's default, else "model NAME".
    pub fn model_name(&self) -> String {
        if self.spec.name == "default" {
            "the default CNN".into()
        } else {
            format!("model {}", self.spec.name)
        }
    }

    /// "1x28x28 synthetic input" or "3x32x32 images of cifar10".
    pub fn input_name(&self) -> String {
        let [c, h, w] = self.input;
        match &self.data {
            Some(d) => format!("{c}x{h}x{w} images of {}", d.name),
            None => format!("{c}x{h}x{w} synthetic input"),
        }
    }

    /// The inputs and labels of a batch of `batch`: the data set's first images, cycled where
    /// the batch is larger, or synthetic ones from a seed.
    fn batch(&self, batch: usize) -> (Vec<f32>, Vec<f32>) {
        let per: usize = self.input.iter().product();
        match &self.data {
            Some(d) if !d.is_empty() => {
                let mut x = Vec::with_capacity(batch * per);
                let mut labels = Vec::with_capacity(batch);
                for i in 0..batch {
                    let k = i % d.len();
                    x.extend_from_slice(&d.images[k * per..(k + 1) * per]);
                    labels.push(d.labels[k] as f32);
                }
                (x, labels)
            }
            _ => {
                let mut rng = Rng::new(batch as u64);
                let x = rng.vec(batch * per, -1.0, 1.0);
                let labels = (0..batch).map(|_| rng.below(self.classes) as f32).collect();
                (x, labels)
            }
        }
    }
}

/// The process's peak resident set size in bytes (`VmHWM` of `/proc/self/status`), where the
/// system tells it (Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// 1536 -> "1.5 KiB", 3 << 20 -> "3.0 MiB".
pub fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// `wgtrain bench train` without options: the default CNN on synthetic 1x28x28 input, forward +
/// backward + Adam (see [`train_report_with`]).
pub fn train_report<B: Backend>(
    be: &B,
    batch_sizes: &[usize],
    windows: usize,
    steps: usize,
    start: std::time::Instant,
) -> Result<Vec<TrainBench>> {
    train_report_with(be, &TrainBenchSetup::default_cnn(), batch_sizes, windows, steps, start)
}

/// `wgtrain bench train`: per batch size, a fresh model of `setup` trained on one fixed batch
/// (forward + backward + the optimizer's update); images/s as the median of `windows` timed
/// windows of `steps` steps each, after two untimed warm-up steps; the planned memory and the
/// peak RSS. Prints a table whose rows start with the batch size, the time to the first step
/// and, fourth, the median images/s (what `../shared/bench/compare.sh` reads).
pub fn train_report_with<B: Backend>(
    be: &B,
    setup: &TrainBenchSetup,
    batch_sizes: &[usize],
    windows: usize,
    steps: usize,
    start: std::time::Instant,
) -> Result<Vec<TrainBench>> {
    train_report_parallel(be, setup, batch_sizes, windows, steps, start, None)
}

/// [`train_report_with`] as one replica of a data-parallel run (`bench train --devices` or
/// under MPI): `batch_sizes` are per replica (weak scaling: N replicas train a global batch of
/// N times as many), each replica trains its shard of one fixed global batch and the
/// gradients are summed every step. Replica 0 first measures itself alone at the per-replica
/// batch (the others wait), for the scaling efficiency; it alone prints. Every replica
/// returns the same figures' structure, replica 0's are the report.
pub fn train_report_parallel<B: Backend>(
    be: &B,
    setup: &TrainBenchSetup,
    batch_sizes: &[usize],
    windows: usize,
    steps: usize,
    start: std::time::Instant,
    replicas: Option<&crate::distributed::Replicas>,
) -> Result<Vec<TrainBench>> {
    use crate::nn::{CrossEntropy, Model, Targets};
    let replicas = replicas.filter(|r| r.size() > 1);
    let (rank, size) = replicas.map_or((0, 1), |r| (r.rank(), r.size()));
    let lead = rank == 0;
    macro_rules! say {
        ($($t:tt)*) => { if lead { println!($($t)*); } };
    }
    let opt = &setup.optimizer;
    if size > 1 {
        say!("{size} data-parallel replicas; batch sizes below are per replica, images/s of all of them together");
    }
    say!("training throughput of {} on {} ({}, forward + backward + {})", setup.model_name(), be.name(), setup.input_name(), opt_name(opt));
    say!(
        "{:>6} {:>22} {:>16} {:>14} {:>14} {:>14} {:>24}",
        "batch",
        "first step done at",
        "median img/s",
        "planned mem",
        "device mem",
        "peak RSS",
        "windows (img/s)"
    );
    let mut out = Vec::new();
    for &per_replica in batch_sizes {
        let batch = per_replica * size;
        let planned = setup.spec.memory(&setup.input, per_replica, opt)?.peak();
        // Every replica makes the same model and the same global batch, and trains its rows.
        let mut model = Model::from_spec(be, &setup.spec, &setup.input, 1)?;
        // Refused before the batch is made on the host (which could be larger than its memory).
        model.check_batch(per_replica, be.memory().max_tensor_bytes)?;
        model.reset_optimizer(be, opt)?;
        let (x, labels) = setup.batch(batch);
        let rows = crate::distributed::shard(batch, rank, size);
        let per = x.len() / batch.max(1);
        let (x, labels) = (&x[rows.start * per..rows.end * per], &labels[rows.clone()]);
        let share = rows.len() as f32 / batch as f32;
        let loss = CrossEntropy::default();
        let comm = std::cell::Cell::new(0.0f64);
        let step = |model: &mut Model<B>, alone: bool| -> Result<()> {
            match replicas.filter(|_| !alone) {
                Some(r) => {
                    model.gradients(be, x, Targets::Labels(labels), &loss)?;
                    comm.set(comm.get() + crate::train::all_reduce_gradients(be, model, r, share)?.1);
                    model.update(be, opt, None)
                }
                None => model.train_step(be, x, Targets::Labels(labels), opt, &loss, None),
            }
        };
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        step(&mut model, false)?;
        be.sync()?;
        let first_step = start.elapsed();
        step(&mut model, false)?;
        be.sync()?;
        // Replica 0 alone at its share, the others waiting.
        let mut single = None;
        if let Some(r) = replicas {
            if lead {
                let mut ips = Vec::new();
                for _ in 0..windows.max(1) {
                    let t = std::time::Instant::now();
                    for _ in 0..steps.max(1) {
                        step(&mut model, true)?;
                    }
                    be.sync()?;
                    ips.push((steps.max(1) * rows.len()) as f64 / t.elapsed().as_secs_f64());
                }
                single = Some(median(ips));
            }
            let mut done = [0.0f32];
            r.broadcast(&mut done, 0)?;
        }
        let mut window_ips = Vec::new();
        let mut window_comm = Vec::new();
        let mut device = be.memory().allocated_bytes;
        for _ in 0..windows.max(1) {
            comm.set(0.0);
            let t = std::time::Instant::now();
            for _ in 0..steps.max(1) {
                step(&mut model, false)?;
            }
            be.sync()?;
            window_ips.push((steps.max(1) * batch) as f64 / t.elapsed().as_secs_f64());
            window_comm.push(1e3 * comm.get() / steps.max(1) as f64);
            device = device.max(be.memory().allocated_bytes);
        }
        let allreduce_ms = median(window_comm);
        let median = median(window_ips.clone());
        drop(model);
        be.trim();
        let rss = peak_rss_bytes();
        say!(
            "{batch:>6} {:>20.2} s {median:>16.1} {:>14} {:>14} {:>14} {:>24}",
            first_step.as_secs_f64(),
            human_bytes(planned),
            device.map_or("-".into(), human_bytes),
            rss.map_or("-".into(), human_bytes),
            window_ips.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(" ")
        );
        out.push(TrainBench {
            batch,
            first_step,
            images_per_s: median,
            window_ips,
            planned_bytes: planned,
            device_bytes: device,
            peak_rss_bytes: rss,
            replicas: size,
            allreduce_ms,
            single_images_per_s: single,
            profile: None,
        });
    }
    if size > 1 {
        say!(
            "{:>6} {:>16} {:>20} {:>18} {:>20} {:>12}",
            "batch",
            "img/s in all",
            "img/s per replica",
            "all-reduce ms/step",
            "one device img/s",
            "efficiency"
        );
        for r in &out {
            say!(
                "{:>6} {:>16.1} {:>20.1} {:>18.2} {:>20} {:>12}",
                r.batch,
                r.images_per_s,
                r.images_per_s / size as f64,
                r.allreduce_ms,
                r.single_images_per_s.map_or("-".into(), |v| format!("{v:.1}")),
                r.efficiency().map_or("-".into(), |e| format!("{:.0}%", 100.0 * e))
            );
        }
    }
    Ok(out)
}

/// "Adam", "SGD with momentum 0.9": the optimizer as a title says it.
fn opt_name(opt: &Optimizer) -> String {
    match opt.preset_name() {
        "adam" => "Adam".into(),
        "adamw" => "AdamW".into(),
        "sgd" => "SGD".into(),
        "momentum" => format!("SGD with momentum {}", opt.momentum),
        "nesterov" => format!("SGD with Nesterov momentum {}", opt.momentum),
        "adagrad" => "Adagrad".into(),
        "adadelta" => "Adadelta".into(),
        "rmsprop" => "RMSprop".into(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Files: CSV, JSON and a plot of the figures above.

/// The settings of a training benchmark, for its files.
fn train_settings(setup: &TrainBenchSetup, device: &str, windows: usize, steps: usize) -> serde_json::Value {
    serde_json::json!({
        "model": setup.spec.name,
        "input": setup.input,
        "classes": setup.classes,
        "data": setup.data.as_ref().map_or("synthetic".to_string(), |d| d.name.clone()),
        "optimizer": setup.optimizer.preset_name(),
        "lr": setup.optimizer.lr.to_string().parse::<f64>().unwrap_or(f64::NAN), // as the f32 reads, not widened
        "device": device,
        "windows": windows.max(1),
        "steps_per_window": steps.max(1),
    })
}

/// The CSV of `bench train --csv`: a header, then one row per batch size with every figure and
/// the settings (`model,input,data,optimizer,device,windows,steps_per_window,batch,first_step_s,
/// images_per_s,ms_per_step,planned_bytes,device_bytes,peak_rss_bytes,window_images_per_s,
/// replicas,allreduce_ms_per_step,one_device_images_per_s`; input as `CxHxW`, the windows'
/// images/s separated by `;`, unknown figures empty).
pub fn train_csv(setup: &TrainBenchSetup, device: &str, windows: usize, steps: usize, results: &[TrainBench]) -> String {
    let quote = |s: &str| if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() };
    let [c, h, w] = setup.input;
    let data = setup.data.as_ref().map_or("synthetic".to_string(), |d| d.name.clone());
    let mut s = String::from("model,input,data,optimizer,device,windows,steps_per_window,batch,first_step_s,images_per_s,ms_per_step,planned_bytes,device_bytes,peak_rss_bytes,window_images_per_s,replicas,allreduce_ms_per_step,one_device_images_per_s\n");
    for r in results {
        s.push_str(&format!(
            "{},{c}x{h}x{w},{},{},{},{},{},{},{:.3},{:.2},{:.3},{},{},{},{},{},{:.3},{}\n",
            quote(&setup.spec.name),
            quote(&data),
            setup.optimizer.preset_name(),
            quote(device),
            windows.max(1),
            steps.max(1),
            r.batch,
            r.first_step.as_secs_f64(),
            r.images_per_s,
            1e3 * r.batch as f64 / r.images_per_s,
            r.planned_bytes,
            r.device_bytes.map_or(String::new(), |v| v.to_string()),
            r.peak_rss_bytes.map_or(String::new(), |v| v.to_string()),
            r.window_ips.iter().map(|v| format!("{v:.2}")).collect::<Vec<_>>().join(";"),
            r.replicas,
            r.allreduce_ms,
            r.single_images_per_s.map_or(String::new(), |v| format!("{v:.2}"))
        ));
    }
    s
}

/// The JSON of `bench train --json`: `{"benchmark": "train", "settings": {...}, "results": [...]}`.
pub fn train_json(setup: &TrainBenchSetup, device: &str, windows: usize, steps: usize, results: &[TrainBench]) -> serde_json::Value {
    let rows: Vec<_> = results
        .iter()
        .map(|r| {
            serde_json::json!({
                "batch": r.batch,
                "first_step_s": r.first_step.as_secs_f64(),
                "images_per_s": r.images_per_s,
                "ms_per_step": 1e3 * r.batch as f64 / r.images_per_s,
                "planned_bytes": r.planned_bytes,
                "device_bytes": r.device_bytes,
                "peak_rss_bytes": r.peak_rss_bytes,
                "window_images_per_s": r.window_ips,
                "replicas": r.replicas,
                "allreduce_ms_per_step": r.allreduce_ms,
                "one_device_images_per_s": r.single_images_per_s,
                "images_per_s_per_replica": r.images_per_s / r.replicas.max(1) as f64,
                "scaling_efficiency": r.efficiency(),
                "profile": r.profile.as_ref().map(|p| serde_json::json!({
                    "kernel_ms": p.kernel_seconds * 1e3,
                    "step_ms": p.step_seconds * 1e3,
                    "timeline_ms": p.timeline_seconds * 1e3,
                    "idle_ms": p.idle_seconds() * 1e3,
                    "coverage": p.coverage(),
                    "dispatches": p.dispatches,
                    "by_op": crate::profile::by_op(p),
                    "layers": p.layers,
                })),
            })
        })
        .collect();
    serde_json::json!({ "benchmark": "train", "settings": train_settings(setup, device, windows, steps), "results": rows })
}

fn timing_json(t: &Timing) -> serde_json::Value {
    serde_json::json!({
        "median_ms": t.median.as_secs_f64() * 1e3,
        "min_ms": t.min.as_secs_f64() * 1e3,
        "max_ms": t.max.as_secs_f64() * 1e3,
        "runs": t.runs,
    })
}

/// The JSON of `bench matmul --json`: every variant's timing and GFLOP/s, and which one the
/// device uses.
pub fn matmul_json(device: &str, chosen: MatmulVariant, results: &[MatmulBench]) -> serde_json::Value {
    let rows: Vec<_> = results
        .iter()
        .map(|r| {
            let mut v = timing_json(&r.timing);
            v["variant"] = r.variant.name().into();
            v["m"] = r.m.into();
            v["n"] = r.n.into();
            v["k"] = r.k.into();
            v["gflops"] = r.gflops().into();
            v["chosen"] = (r.variant == chosen).into();
            v
        })
        .collect();
    serde_json::json!({ "benchmark": "matmul", "settings": { "device": device }, "results": rows })
}

/// The JSON of `bench conv --json`: GFLOP/s of the forward and both backward passes per case.
pub fn conv_json(device: &str, runs: usize, results: &[(ConvBenchCase, [f64; 3])]) -> serde_json::Value {
    let rows: Vec<_> = results
        .iter()
        .map(|(c, g)| {
            serde_json::json!({
                "case": c.name,
                "input": c.x,
                "filters": c.k,
                "kernel": c.kernel,
                "stride": c.spec.stride,
                "padding": c.spec.padding,
                "forward_gflops": g[0],
                "backward_data_gflops": g[1],
                "backward_filter_gflops": g[2],
            })
        })
        .collect();
    serde_json::json!({ "benchmark": "conv", "settings": { "device": device, "runs": runs }, "results": rows })
}

/// The JSON of `bench optimizer --json`: per optimizer, the step's timing and GB/s.
pub fn optimizer_json(device: &str, params: usize, results: &[(OptimizerKind, Timing, f64)]) -> serde_json::Value {
    let rows: Vec<_> = results
        .iter()
        .map(|(k, t, gbs)| {
            let mut v = timing_json(t);
            v["optimizer"] = k.name().into();
            v["gb_per_s"] = (*gbs).into();
            v
        })
        .collect();
    serde_json::json!({ "benchmark": "optimizer", "settings": { "device": device, "params": params }, "results": rows })
}

/// Writes `value` as pretty JSON to `path`, atomically.
pub fn write_json(path: &std::path::Path, value: &serde_json::Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| crate::Error::Invalid(format!("{}: {e}", path.display())))?;
    text.push('\n');
    crate::atomic::write(path, text.as_bytes())
}

/// The PNG of `bench train --plot`: median images/s against the batch size (log scale), with
/// the windows' spread as error bars, titled with the model, input, optimizer and device.
pub fn train_plot(path: &std::path::Path, setup: &TrainBenchSetup, device: &str, results: &[TrainBench]) -> Result<()> {
    use crate::plot::{LinePlot, Scale, Series};
    let points = results.iter().map(|r| (r.batch as f64, r.images_per_s)).collect();
    // Half the range of the windows around the median: how steady the measurement was.
    let spread = results
        .iter()
        .map(|r| {
            let (lo, hi) = r.window_ips.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
            if lo <= hi {
                (hi - lo) / 2.0
            } else {
                0.0
            }
        })
        .collect();
    let windows = results.first().map_or(0, |r| r.window_ips.len());
    let s = if windows == 1 { "" } else { "s" };
    let name = format!("{} (median of {windows} timed window{s}; bars: half their range)", opt_name(&setup.optimizer));
    LinePlot {
        title: format!("Training throughput of {} on {}\n{}", setup.model_name(), device, setup.input_name()),
        x_label: "batch size (images per step)".into(),
        y_label: "training throughput (images/s)".into(),
        x_scale: Scale::Log2,
        series: vec![Series::new(name, points).with_err(spread)],
        markers: true,
        ..LinePlot::default()
    }
    .save(path)
}
