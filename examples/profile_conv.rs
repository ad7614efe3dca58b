//! GFLOP/s of the default CNN's convolutions at batch 64, per pass.
//! Run: cargo run --release --example profile_conv
use wgtrain::bench::{conv_report, ConvBenchCase};
use wgtrain::{Conv2dSpec, Gpu, GpuOptions};

fn main() -> wgtrain::Result<()> {
    let gpu = Gpu::new(&GpuOptions::default())?;
    let s = |p| Conv2dSpec { stride: [1, 1], padding: [p, p], dilation: [1, 1], groups: 1 };
    let cases = [
        ConvBenchCase { name: "conv1 1->32 5x5 28x28", x: [64, 1, 28, 28], k: 32, kernel: [5, 5], spec: s(2) },
        ConvBenchCase { name: "conv2 32->64 3x3 14x14", x: [64, 32, 14, 14], k: 64, kernel: [3, 3], spec: s(1) },
        ConvBenchCase { name: "conv3 64->32 1x1 7x7", x: [64, 64, 7, 7], k: 32, kernel: [1, 1], spec: s(0) },
    ];
    conv_report(&gpu, &cases, 5)?;
    Ok(())
}
