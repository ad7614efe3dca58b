//! `wgtrain bench`: kernel and training throughput, through the library's `bench` module
//! (shared with `cargo bench`).

use std::process::ExitCode;

use clap::Subcommand;
use wgtrain::gpu::MatmulVariant;
use wgtrain::{Cpu, Gpu};

use crate::args::ComputeBackend;

#[derive(Subcommand)]
pub enum BenchWhat {
    /// GFLOP/s of each matmul variant at M = N = K = size
    Matmul {
        /// M = N = K
        #[arg(long, default_value_t = 1024)]
        size: usize,
        /// Timed runs per variant
        #[arg(long, default_value_t = 7)]
        runs: usize,
        /// Comma-separated variants, or `all`
        #[arg(long, default_value = "all")]
        variants: String,
    },
    /// GFLOP/s of convolution forward and backward (3x3 im2col path and 1x1 direct path)
    Conv {
        /// Timed runs per case
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Training images/s of the default CNN per batch size, and the time to the first step
    Train {
        /// Batch sizes to measure
        #[arg(long, default_value = "16,64,256", value_delimiter = ',')]
        batch_sizes: Vec<usize>,
        /// Timed windows per batch size (the median is reported)
        #[arg(long, default_value_t = 5)]
        windows: usize,
        /// Steps per window
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// Where the ops run
        #[arg(long, value_enum, default_value = "gpu")]
        backend: ComputeBackend,
    },
    /// Time and memory bandwidth of one fused optimizer step, for every optimizer
    Optimizer {
        /// Parameters in the arena
        #[arg(long, default_value_t = 1_000_000)]
        params: usize,
        /// Timed runs per optimizer
        #[arg(long, default_value_t = 9)]
        runs: usize,
    },
}

pub fn run(what: &BenchWhat, gpu: impl Fn() -> anyhow::Result<Gpu>, started: std::time::Instant) -> anyhow::Result<ExitCode> {
    match what {
        BenchWhat::Matmul { size, runs, variants } => {
            let gpu = gpu()?;
            let list: Vec<MatmulVariant> = if variants == "all" {
                MatmulVariant::ALL.to_vec()
            } else {
                variants.split(',').map(MatmulVariant::parse).collect::<Result<_, _>>()?
            };
            wgtrain::bench::matmul_report(&gpu, &list, *size, *size, *size, *runs)?;
        }
        BenchWhat::Train { batch_sizes, windows, steps, backend } => {
            if batch_sizes.contains(&0) {
                anyhow::bail!("--batch-sizes: batch size 0, expected at least 1");
            }
            match backend {
                ComputeBackend::Gpu => wgtrain::bench::train_report(&gpu()?, batch_sizes, *windows, *steps, started)?,
                ComputeBackend::Cpu => wgtrain::bench::train_report(&Cpu, batch_sizes, *windows, *steps, started)?,
            };
        }
        BenchWhat::Conv { runs } => {
            wgtrain::bench::conv_report(&gpu()?, &wgtrain::bench::CONV_CASES, *runs)?;
        }
        BenchWhat::Optimizer { params, runs } => {
            wgtrain::bench::optimizer_report(&gpu()?, *params, *runs)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
