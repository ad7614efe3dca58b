//! `cargo bench --bench optimizer`: one fused optimizer step over a 1M-parameter arena, every
//! optimizer (median of runs, device waited on). WGTRAIN_BENCH_PARAMS changes the size.
//! The same table: `wgtrain bench optimizer`.

use wgtrain::{Gpu, GpuOptions};

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let n = std::env::var("WGTRAIN_BENCH_PARAMS").ok().and_then(|v| v.parse().ok()).unwrap_or(if quick { 4096 } else { 1_000_000 });
    let runs = if quick { 1 } else { 9 };
    let gpu = Gpu::new(&GpuOptions::default()).unwrap_or_else(|e| {
        eprintln!("optimizer bench: no GPU: {e}");
        std::process::exit(1)
    });
    if let Err(e) = wgtrain::bench::optimizer_report(&gpu, n, runs) {
        eprintln!("optimizer bench failed: {e}");
        std::process::exit(1);
    }
}
