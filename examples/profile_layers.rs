//! Where a training step of the default CNN spends its time, layer by layer, on the default
//! device: each layer's forward and backward run alone, the device waited on, median of runs.
//! Run: cargo run --release --example profile_layers [BATCH]

use std::time::Instant;

use wgtrain::nn::{zoo, Layer, ModelSpec};
use wgtrain::rng::Rng;
use wgtrain::{Backend, Gpu, GpuOptions};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> wgtrain::Result<()> {
    let batch: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    let gpu = Gpu::new(&GpuOptions::default())?;
    let spec = ModelSpec { name: "default".into(), layers: zoo::default_cnn(10) };
    let infos = spec.infer(&[1, 28, 28])?;
    let params = spec.params(&[1, 28, 28])?;
    let mut rng = Rng::new(1);
    let mut total = (0.0, 0.0);
    println!("{:<4} {:<14} {:>12} {:>12}", "#", "layer", "forward ms", "backward ms");
    for (i, (layer, info)) in spec.layers.iter().zip(&infos).enumerate() {
        let shape = |s: &[usize]| [&[batch][..], s].concat();
        let x = gpu.upload(&shape(&info.input), &rng.vec(batch * info.input.iter().product::<usize>(), -1.0, 1.0))?;
        let mut y = gpu.zeros(&shape(&info.output))?;
        let dy = gpu.upload(&shape(&info.output), &rng.vec(batch * info.output.iter().product::<usize>(), -1.0, 1.0))?;
        let mut dx = gpu.zeros(&shape(&info.input))?;
        let ps: Vec<_> = params
            .iter()
            .filter(|p| p.layer == i)
            .map(|p| gpu.upload(&p.shape, &rng.vec(p.shape.iter().product(), -0.1, 0.1)))
            .collect::<wgtrain::Result<_>>()?;
        let mut gs: Vec<_> = params.iter().filter(|p| p.layer == i).map(|p| gpu.zeros(&p.shape)).collect::<wgtrain::Result<_>>()?;
        let c = info.input[0];
        let (mut rm, mut rv, mut sm, mut si) = (gpu.zeros(&[c])?, gpu.zeros(&[c])?, gpu.zeros(&[c])?, gpu.zeros(&[c])?);
        let mut idx = gpu.zeros(&shape(&info.output))?;
        let mask = wgtrain::ops::DropoutMask::new(0.25, 1, 1)?;
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
        let fwd = time(&mut || match layer {
            Layer::Conv2d { .. } => gpu.conv2d(&x, &ps[0], ps.get(1), &mut y, layer.conv_spec().unwrap_or_default()),
            Layer::BatchNorm2d { .. } => gpu.batch_norm_train(&x, &ps[0], &ps[1], &mut rm, &mut rv, &mut y, &mut sm, &mut si, 0.1, 1e-5),
            Layer::Relu => gpu.relu(&x, &mut y),
            Layer::MaxPool2d(s) => gpu.max_pool2d(&x, &mut y, &mut idx, *s),
            Layer::Dropout { .. } => gpu.dropout(&x, &mut y, &mask),
            Layer::Flatten => gpu.copy(&x, &mut y),
            Layer::Linear { .. } => gpu.linear(&x, &ps[0], ps.get(1), &mut y),
            _ => Ok(()),
        })?;
        let bwd = time(&mut || match layer {
            Layer::Conv2d { .. } => {
                let s = layer.conv_spec().unwrap_or_default();
                let (dw, db) = gs.split_at_mut(1);
                gpu.conv2d_backward_filter(&x, &dy, &mut dw[0], s)?;
                gpu.channel_sum(&dy, &mut db[0])?;
                if i > 0 {
                    gpu.conv2d_backward_data(&dy, &ps[0], &mut dx, s)?;
                }
                Ok(())
            }
            Layer::BatchNorm2d { .. } => {
                let (a, b) = gs.split_at_mut(1);
                gpu.batch_norm_backward(&x, &dy, &ps[0], &sm, &si, &mut dx, &mut a[0], &mut b[0])
            }
            Layer::Relu => gpu.relu_backward(&x, &dy, &mut dx),
            Layer::MaxPool2d(s) => gpu.max_pool2d_backward(&dy, &idx, &mut dx, *s),
            Layer::Dropout { .. } => gpu.dropout(&dy, &mut dx, &mask),
            Layer::Flatten => gpu.copy(&dy, &mut dx),
            Layer::Linear { .. } => {
                let (dw, db) = gs.split_at_mut(1);
                gpu.linear_backward(&x, &ps[0], &dy, Some(&mut dx), &mut dw[0], db.first_mut())
            }
            _ => Ok(()),
        })?;
        total.0 += fwd;
        total.1 += bwd;
        println!("{i:<4} {:<14} {fwd:>12.2} {bwd:>12.2}", layer.name());
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
