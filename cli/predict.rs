//! `wgtrain predict`: top-k classes of image files, from a checkpoint.

use std::path::PathBuf;
use std::process::ExitCode;

use wgtrain::{data, Backend, Cpu, Gpu};

use crate::args::ComputeBackend;
use crate::eval::model_from_checkpoint;

#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    /// The checkpoint (from `train --checkpoint`)
    #[arg(long)]
    checkpoint: PathBuf,
    /// Image files (PNG, JPEG)
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Classes to show per image
    #[arg(long, default_value_t = 3)]
    top_k: usize,
    /// Where the ops run
    #[arg(long, value_enum, default_value = "gpu")]
    backend: ComputeBackend,
}

pub fn run(a: &PredictArgs, gpu: impl Fn() -> anyhow::Result<Gpu>) -> anyhow::Result<ExitCode> {
    match a.backend {
        ComputeBackend::Gpu => predict(&gpu()?, a)?,
        ComputeBackend::Cpu => predict(&Cpu, a)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn predict<B: Backend>(be: &B, a: &PredictArgs) -> anyhow::Result<()> {
    if a.top_k == 0 {
        anyhow::bail!("--top-k 0: expected at least 1 class per image");
    }
    let (mut model, meta) = model_from_checkpoint(be, &a.checkpoint)?;
    let [c, h, w] = meta.input[..] else { anyhow::bail!("{}: input shape {:?} is not [C, H, W]", a.checkpoint.display(), meta.input) };
    let mut x = Vec::new();
    for path in &a.images {
        let mut v = data::folder::read_image_as(path, [c, h, w])?;
        data::normalize_image(&mut v, &meta.normalization, h * w);
        x.extend(v);
    }
    let probs = model.predict(be, &x)?;
    let k = model.classes();
    for (path, row) in a.images.iter().zip(probs.chunks(k)) {
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|&p, &q| row[q].total_cmp(&row[p]));
        let best: Vec<String> = order
            .iter()
            .take(a.top_k)
            .map(|&i| format!("{} {:.1}%", meta.classes.get(i).cloned().unwrap_or_else(|| i.to_string()), 100.0 * row[i]))
            .collect();
        println!("{}: {}", path.display(), best.join(", "));
    }
    Ok(())
}
