//! `wgtrain summary`: the model's table (shapes, parameters, MACs, activation memory).

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct SummaryArgs {
    /// Model: a zoo name (default, lenet5, vgg, resnet20, alexnet) or a .toml model file
    #[arg(long, default_value = "default")]
    model: String,
    /// Input shape C,H,W
    #[arg(long, default_value = "1,28,28")]
    input: String,
    /// Classes of the last layer (default: 1000 for alexnet, 10 otherwise)
    #[arg(long)]
    classes: Option<usize>,
}

pub fn run(a: &SummaryArgs) -> anyhow::Result<ExitCode> {
    let dims: Vec<usize> = a
        .input
        .split(',')
        .map(|v| v.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("--input {}: expected C,H,W (three positive integers)", a.input))?;
    if dims.len() != 3 || dims.contains(&0) {
        anyhow::bail!("--input {}: expected C,H,W (three positive integers)", a.input);
    }
    if a.classes == Some(0) {
        anyhow::bail!("--classes 0: expected at least 1");
    }
    let classes = a.classes.unwrap_or(if a.model == "alexnet" { 1000 } else { 10 });
    let spec = wgtrain::nn::zoo::model(&a.model, classes)?;
    print!("{}", spec.summary(&dims)?);
    Ok(ExitCode::SUCCESS)
}
