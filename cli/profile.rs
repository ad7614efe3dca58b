//! `wgtrain profile`: one training step's kernels, timed on the device and grouped by layer,
//! phase and op (see `wgtrain::profile`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::PossibleValuesParser;
use wgtrain::gpu::{Gpu, GpuOptions};
use wgtrain::plot::{Bar, BarPlot};
use wgtrain::profile::{self, StepProfile};
use wgtrain::Optimizer;

#[derive(clap::Args, Debug)]
pub struct ProfileArgs {
    /// Model: a zoo name (default, lenet5, vgg, resnet20, alexnet) or a .toml model file
    #[arg(long, default_value = "default")]
    model: String,
    /// Input shape C,H,W [default: the model's own: 1,28,28 for default, lenet5 and model files, 3,32,32 for vgg and resnet20, 3,227,227 for alexnet]
    #[arg(long)]
    input: Option<String>,
    /// Classes of the last layer
    #[arg(long, default_value_t = 10)]
    classes: usize,
    /// Samples per step
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Optimizer preset of the step
    #[arg(long, default_value = "adam", value_parser = PossibleValuesParser::new(Optimizer::PRESETS))]
    optimizer: String,
    /// Steps profiled (times are their mean) and timed without profiling (their median)
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Also write the profile as JSON to this file
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also draw the time per layer and phase as a bar chart (PNG)
    #[arg(long)]
    plot: Option<PathBuf>,
}

pub fn run(a: &ProfileArgs, device: &Option<String>, matmul_variant: &Option<String>, no_cache: bool) -> anyhow::Result<ExitCode> {
    if a.batch_size == 0 || a.steps == 0 || a.classes == 0 {
        anyhow::bail!("--batch-size, --steps and --classes must be at least 1");
    }
    for (flag, p) in [("--json", &a.json), ("--plot", &a.plot)] {
        if let Some(p) = p {
            crate::train::check_writable(flag, p)?;
        }
    }
    let input = parse_input(&a.model, a.input.as_deref())?;
    let spec = wgtrain::nn::zoo::model(&a.model, a.classes)?;
    let opt = Optimizer::preset(&a.optimizer)?;
    let opts = crate::args::gpu_options(device, matmul_variant, no_cache);
    let plain = Gpu::new(&opts)?;
    let profiled = Gpu::new(&GpuOptions { profile: true, ..opts })?;
    let p = profile::profile_training(&plain, &profiled, &spec, &input, a.batch_size, &opt, a.steps)?;
    print!("{}", profile::table(&p));
    if let Some(path) = &a.json {
        wgtrain::atomic::write(path, serde_json::to_string_pretty(&p)?.as_bytes())?;
    }
    if let Some(path) = &a.plot {
        chart(&p).save(path)?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Milliseconds per layer (x) and phase (bars), for people.
fn chart(p: &StepProfile) -> BarPlot {
    let mut groups: Vec<(String, Vec<Bar>)> = Vec::new();
    let categories: Vec<String> = p
        .layers
        .iter()
        .map(|l| if l.layer.is_empty() { l.phase.clone() } else { format!("{} {}", l.layer, l.kind) })
        .fold(Vec::new(), |mut v, c| {
            if !v.contains(&c) {
                v.push(c);
            }
            v
        });
    for phase in ["forward", "backward", "loss", "optimizer"] {
        let bars: Vec<Bar> = categories
            .iter()
            .map(|c| {
                let ms = p
                    .layers
                    .iter()
                    .filter(|l| l.phase == phase && (c == &l.phase || *c == format!("{} {}", l.layer, l.kind)))
                    .map(|l| l.seconds * 1e3)
                    .sum::<f64>();
                Bar { label: c.clone(), value: if ms > 0.0 { ms } else { f64::NAN }, err: None }
            })
            .collect();
        if bars.iter().any(|b| b.value.is_finite()) {
            groups.push((phase.to_string(), bars));
        }
    }
    BarPlot {
        title: format!(
            "Kernel time per layer: {} at batch {} on {} ({:.1} ms per step)",
            p.model,
            p.batch,
            p.device,
            p.kernel_seconds * 1e3
        ),
        y_label: "device time per step (ms)".into(),
        groups,
    }
}

/// `--input C,H,W`, or the zoo model's natural input (1,28,28 for others); for `profile` and
/// `summary`.
pub fn parse_input(model: &str, input: Option<&str>) -> anyhow::Result<Vec<usize>> {
    let text = match input {
        Some(s) => s.to_string(),
        None => wgtrain::nn::zoo::natural_input(model).unwrap_or([1, 28, 28]).map(|d| d.to_string()).join(","),
    };
    let dims: Vec<usize> = text
        .split(',')
        .map(|v| v.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("--input {text}: expected C,H,W (three positive integers)"))?;
    if dims.len() != 3 || dims.contains(&0) {
        anyhow::bail!("--input {text}: expected C,H,W (three positive integers)");
    }
    Ok(dims)
}
