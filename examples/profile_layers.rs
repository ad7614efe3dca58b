//! Where a training step of the default CNN spends its time, layer by layer, on the default
//! device: each layer's forward and backward run alone through the `Layer` trait, the device
//! waited on, median of runs.
//! Run: cargo run --release --example profile_layers [BATCH]

use std::time::Instant;

use wgtrain::nn::{zoo, Backward, Block, Build, Forward, Mode};
use wgtrain::rng::Rng;
use wgtrain::{Backend, Gpu, GpuOptions};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> wgtrain::Result<()> {
    let batch: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    let gpu = Gpu::new(&GpuOptions::default())?;
    let net = zoo::model("default", 10)?.build::<Gpu>()?;
    let mut rng = Rng::new(1);
    let mut shape = vec![1, 28, 28];
    let with_batch = |s: &[usize]| [&[batch][..], s].concat();
    let mut total = (0.0, 0.0);
    println!("{:<4} {:<14} {:>12} {:>12}", "#", "layer", "forward ms", "backward ms");
    for (i, block) in net.items.into_iter().enumerate() {
        let Block::Layer(mut layer) = block else { continue };
        let mut ctx = Build::new(&format!("layers.{i}"));
        let out = layer.build(&shape, &mut ctx)?;
        let random = |s: &[usize], rng: &mut Rng| gpu.upload(s, &rng.vec(s.iter().product(), -0.1, 0.1));
        let x = random(&with_batch(&shape), &mut rng)?;
        let mut y = gpu.zeros(&with_batch(&out))?;
        let dy = random(&with_batch(&out), &mut rng)?;
        let mut dx = gpu.zeros(&with_batch(&shape))?;
        let params: Vec<_> = ctx.params().iter().map(|p| random(&p.shape, &mut rng)).collect::<wgtrain::Result<_>>()?;
        let mut grads: Vec<_> = ctx.params().iter().map(|p| gpu.zeros(&p.shape)).collect::<wgtrain::Result<_>>()?;
        let mut buffers: Vec<_> =
            ctx.buffers().iter().map(|b| gpu.upload(&b.shape, &vec![b.fill; b.shape.iter().product()])).collect::<wgtrain::Result<_>>()?;
        let mut saved: Vec<_> = layer.saved(&with_batch(&shape)).iter().map(|s| gpu.zeros(s)).collect::<wgtrain::Result<_>>()?;
        let time = |f: &mut dyn FnMut() -> wgtrain::Result<()>| -> wgtrain::Result<f64> {
            f()?;
            gpu.sync()?;
            let mut v = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                f()?;
                gpu.sync()?;
                v.push(t.elapsed().as_secs_f64() * 1e3);
            }
            Ok(median(v))
        };
        let fwd = time(&mut || {
            let io = Forward {
                x: &x,
                y: &mut y,
                params: &params,
                buffers: &mut buffers,
                saved: &mut saved,
                mode: Mode::Train,
                seed: 1,
                step: 1,
                replicas: None,
                relu: false,
            };
            layer.forward(&gpu, io)
        })?;
        let bwd = time(&mut || {
            // The first layer needs no input gradient, as in training.
            let dx = if i > 0 { Some(&mut dx) } else { None };
            let io = Backward {
                x: &x,
                y: &y,
                dy: &dy,
                dx,
                params: &params,
                grads: &mut grads,
                buffers: &buffers,
                saved: &saved,
                mode: Mode::Train,
                seed: 1,
                step: 1,
                replicas: None,
            };
            layer.backward(&gpu, io)
        })?;
        total.0 += fwd;
        total.1 += bwd;
        println!("{i:<4} {:<14} {fwd:>12.2} {bwd:>12.2}", layer.kind());
        shape = out;
    }
    println!(
        "{:<4} {:<14} {:>12.2} {:>12.2}  ({:.0} img/s for the layers alone)",
        "",
        "total",
        total.0,
        total.1,
        batch as f64 / ((total.0 + total.1) / 1e3)
    );
    Ok(())
}
