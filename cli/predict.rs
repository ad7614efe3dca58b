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
    /// Also write the predictions as JSON to this file
    #[arg(long)]
    json: Option<PathBuf>,
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
    if let Some(p) = &a.json {
        crate::train::check_writable("--json", p)?;
    }
    let (mut model, meta) = model_from_checkpoint(be, &a.checkpoint)?;
    let [c, h, w] = meta.input[..] else { anyhow::bail!("{}: input shape {:?} is not [C, H, W]", a.checkpoint.display(), meta.input) };
    // What the model knows: an MNIST model labels any picture with a digit.
    let trained_on = meta.run.as_ref().map_or_else(|| "an unrecorded data set".to_string(), |r| r.data.source.name().to_string());
    let names: Vec<&str> = meta.classes.iter().take(10).map(String::as_str).collect();
    let more = if meta.classes.len() > 10 { ", ..." } else { "" };
    println!(
        "{} ({}): trained on {trained_on}, {} classes ({}{more}), images resized to {c}x{h}x{w}",
        a.checkpoint.display(),
        model.name,
        model.classes(),
        names.join(", ")
    );
    let mut x = Vec::new();
    for path in &a.images {
        let mut v = data::folder::read_image_as(path, [c, h, w])?;
        data::normalize_image(&mut v, &meta.normalization, h * w);
        x.extend(v);
    }
    let probs = model.predict(be, &x)?;
    let k = model.classes();
    let name = |i: usize| meta.classes.get(i).cloned().unwrap_or_else(|| i.to_string());
    let mut report = Vec::new();
    for (path, row) in a.images.iter().zip(probs.chunks(k)) {
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|&p, &q| row[q].total_cmp(&row[p]));
        let top: Vec<usize> = order.into_iter().take(a.top_k).collect();
        let best: Vec<String> = top.iter().map(|&i| format!("{} {:.1}%", name(i), 100.0 * row[i])).collect();
        println!("{}: {}", path.display(), best.join(", "));
        let top: Vec<_> = top.iter().map(|&i| serde_json::json!({"class": name(i), "index": i, "probability": row[i]})).collect();
        report.push(serde_json::json!({"image": path, "top": top}));
    }
    if let Some(p) = &a.json {
        let run_id = meta.run.as_ref().map(|r| r.run_id.clone());
        let out = serde_json::json!({"checkpoint": a.checkpoint, "model": model.name, "run_id": run_id, "predictions": report});
        wgtrain::atomic::write(p, serde_json::to_string_pretty(&out)?.as_bytes())?;
    }
    Ok(())
}
