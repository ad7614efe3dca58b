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

/// One convolution per GPU path: a 3x3 (im2col + GEMM) and a 1x1 (GEMM on x directly).
pub const CONV_CASES: [ConvBenchCase; 2] = [
    ConvBenchCase {
        name: "3x3 pad 1, N32 C64 32x32 -> K64",
        x: [32, 64, 32, 32],
        k: 64,
        kernel: [3, 3],
        spec: Conv2dSpec { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 },
    },
    ConvBenchCase {
        name: "1x1, N32 C64 14x14 -> K32",
        x: [32, 64, 14, 14],
        k: 32,
        kernel: [1, 1],
        spec: Conv2dSpec { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 },
    },
];

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
}

/// `wgtrain bench train`: the default CNN on synthetic 1x28x28 input, forward + backward +
/// Adam; per batch size, images/s as the median of `windows` timed windows of `steps` steps
/// each, after two untimed warm-up steps.
pub fn train_report<B: Backend>(
    be: &B,
    batch_sizes: &[usize],
    windows: usize,
    steps: usize,
    start: std::time::Instant,
) -> Result<Vec<TrainBench>> {
    use crate::nn::{zoo, CrossEntropy, Model, ModelSpec, Targets};
    println!("training throughput of the default CNN on {} (1x28x28 synthetic input, forward + backward + Adam)", be.name());
    println!("{:>6} {:>22} {:>16} {:>24}", "batch", "first step done at", "median img/s", "windows (img/s)");
    let opt = Optimizer::new(OptimizerKind::Adam);
    let mut out = Vec::new();
    for &batch in batch_sizes {
        let spec = ModelSpec { name: "default".into(), layers: zoo::default_cnn(10) };
        let mut model = Model::from_spec(be, &spec, &[1, 28, 28], 1)?;
        model.reset_optimizer(be, &opt)?;
        let mut rng = Rng::new(batch as u64);
        let x = rng.vec(batch * 28 * 28, -1.0, 1.0);
        let labels: Vec<f32> = (0..batch).map(|_| rng.below(10) as f32).collect();
        let step = |model: &mut Model<B>| model.train_step(be, &x, Targets::Labels(&labels), &opt, &CrossEntropy::default(), None);
        step(&mut model)?;
        be.sync()?;
        let first_step = start.elapsed();
        step(&mut model)?;
        be.sync()?;
        let mut window_ips = Vec::new();
        for _ in 0..windows.max(1) {
            let t = std::time::Instant::now();
            for _ in 0..steps.max(1) {
                step(&mut model)?;
            }
            be.sync()?;
            window_ips.push((steps.max(1) * batch) as f64 / t.elapsed().as_secs_f64());
        }
        let mut sorted = window_ips.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        println!(
            "{batch:>6} {:>20.2} s {median:>16.1} {:>24}",
            first_step.as_secs_f64(),
            window_ips.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(" ")
        );
        out.push(TrainBench { batch, first_step, images_per_s: median, window_ips });
    }
    Ok(out)
}
