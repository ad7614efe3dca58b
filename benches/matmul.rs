//! `cargo bench --bench matmul`: GFLOP/s of every matmul variant at M = N = K = 1024 on the
//! default device (pipeline creation excluded, device waited on, median of runs).
//! WGTRAIN_BENCH_SIZE and WGTRAIN_BENCH_RUNS change the size and the number of runs;
//! WGTRAIN_DEVICE picks the adapter. The same table: `wgtrain bench matmul`.

use wgtrain::{Gpu, GpuOptions, MatmulVariant};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing and wants a quick run.
    let quick = !std::env::args().any(|a| a == "--bench");
    let size = env_usize("WGTRAIN_BENCH_SIZE", if quick { 64 } else { 1024 });
    let runs = env_usize("WGTRAIN_BENCH_RUNS", if quick { 1 } else { 7 });
    let gpu = match Gpu::new(&GpuOptions::default()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("matmul bench: no GPU: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = wgtrain::bench::matmul_report(&gpu, &MatmulVariant::ALL, size, size, size, runs) {
        eprintln!("matmul bench failed: {e}");
        std::process::exit(1);
    }
}
