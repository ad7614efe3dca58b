//! `cargo bench --bench conv2d`: GFLOP/s of convolution forward, backward-data and
//! backward-filter, one case per path (`wgtrain::bench::CONV_CASES`: 3x3 on 32x32 and 14x14,
//! 5x5, 3x3 with stride 2, 1x1 on 14x14 and 7x7; median of runs, device waited on). The same
//! table: `wgtrain bench conv`.

use wgtrain::bench::{conv_report, ConvBenchCase, CONV_CASES};
use wgtrain::{Gpu, GpuOptions};

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let gpu = Gpu::new(&GpuOptions::default()).unwrap_or_else(|e| {
        eprintln!("conv2d bench: no GPU: {e}");
        std::process::exit(1)
    });
    // `cargo test --benches` only checks that the harness runs: tiny inputs, one run.
    let cases: Vec<ConvBenchCase> =
        if quick { CONV_CASES.iter().map(|c| ConvBenchCase { x: [1, c.x[1], 8, 8], ..*c }).collect() } else { CONV_CASES.to_vec() };
    if let Err(e) = conv_report(&gpu, &cases, if quick { 1 } else { 5 }) {
        eprintln!("conv2d bench failed: {e}");
        std::process::exit(1);
    }
}
