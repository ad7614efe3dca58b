//! `wgtrain summary`: the model's table (kernels, shapes, parameters, MACs, activation memory,
//! residual blocks expanded) and its training memory for a batch size and an optimizer.

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct SummaryArgs {
    /// Model: a zoo name (default, lenet5, vgg, resnet20, alexnet) or a .toml model file
    #[arg(long, default_value = "default")]
    model: String,
    /// Input shape C,H,W [default: the model's own: 1,28,28 for default and lenet5, 3,32,32 for vgg and resnet20, 3,227,227 for alexnet, 1,28,28 for model files]
    #[arg(long)]
    input: Option<String>,
    /// Classes of the last layer (default: 1000 for alexnet, 10 otherwise)
    #[arg(long)]
    classes: Option<usize>,
    /// Samples per step for the memory totals (activations, gradients, optimizer state, peak)
    #[arg(long, default_value_t = 1)]
    batch_size: usize,
    /// Optimizer whose state the memory totals count (its preset)
    #[arg(long, default_value = "adam", value_parser = clap::builder::PossibleValuesParser::new(wgtrain::Optimizer::PRESETS))]
    optimizer: String,
}

pub fn run(a: &SummaryArgs) -> anyhow::Result<ExitCode> {
    let dims = crate::profile::parse_input(&a.model, a.input.as_deref())?;
    if a.classes == Some(0) {
        anyhow::bail!("--classes 0: expected at least 1");
    }
    if a.batch_size == 0 {
        anyhow::bail!("--batch-size 0: expected at least 1");
    }
    let classes = a.classes.unwrap_or(if a.model == "alexnet" { 1000 } else { 10 });
    let spec = wgtrain::nn::zoo::model(&a.model, classes)?;
    print!("{}", spec.summary_for(&dims, a.batch_size, &wgtrain::Optimizer::preset(&a.optimizer)?)?);
    Ok(ExitCode::SUCCESS)
}
