//! `wgtrain plot`: training curves (loss and accuracy per epoch) of one or more `--log` CSV
//! files, several runs overlaid, as one PNG.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct PlotArgs {
    /// Training logs written by `wgtrain train --log FILE.csv` (a file may hold several runs)
    #[arg(required = true, value_name = "LOG.csv")]
    logs: Vec<PathBuf>,
    /// The PNG to write
    #[arg(long, default_value = "curves.png")]
    out: PathBuf,
}

pub fn run(a: &PlotArgs) -> anyhow::Result<ExitCode> {
    let mut runs = Vec::new();
    for log in &a.logs {
        runs.extend(wgtrain::runlog::read(log)?);
    }
    wgtrain::runlog::plot(&runs, &a.out)?;
    let labels = wgtrain::runlog::labels(&runs);
    let s = if runs.len() == 1 { "" } else { "s" };
    println!("wrote the curves of {} run{s} to {}:", runs.len(), a.out.display());
    for (run, label) in runs.iter().zip(&labels) {
        let n = run.epochs.len();
        println!("  {label}: {n} epoch{}", if n == 1 { "" } else { "s" });
    }
    Ok(ExitCode::SUCCESS)
}
