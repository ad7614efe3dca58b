//! Benchmarks shared by `cargo bench` and `wgtrain bench`: pipelines are compiled in a warm-up
//! run that is not timed, every timed run waits for the device before the clock stops, and the
//! figure reported is the median of the runs.

use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::gpu::{Gpu, MatmulVariant};
use crate::ops::MatmulSpec;
use crate::optim::{Optimizer, OptimizerKind};
use crate::rng::Rng;
use crate::Result;

/// Median and spread of timed runs.
#[derive(Clone, Debug)]
pub struct Timing {
    pub median: Duration,
    pub min: Duration,
    pub max: Duration,
    pub runs: usize,
}

impl Timing {
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
    pub variant: MatmulVariant,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub timing: Timing,
}

impl MatmulBench {
    pub fn gflops(&self) -> f64 {
        2.0 * (self.m * self.n * self.k) as f64 / self.timing.median.as_secs_f64() / 1e9
    }
}

/// C[m,n] = A[m,k] @ B[k,n] with `variant`, median of `runs`.
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
