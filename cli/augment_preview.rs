//! `wgtrain augment-preview`: a PNG grid of augmented training samples.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::args::{AugmentArgs, DataArgs};

#[derive(clap::Args, Debug)]
pub struct PreviewArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The PNG to write
    #[arg(long, default_value = "augment-preview.png")]
    out: PathBuf,
    /// Samples in the grid
    #[arg(long, default_value_t = 32)]
    count: usize,
    #[command(flatten)]
    aug: AugmentArgs,
    /// Seed of the sampling and augmentation
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn run(a: &PreviewArgs) -> anyhow::Result<ExitCode> {
    a.aug.check()?;
    let aug = a.aug.augment();
    crate::args::check_data(&a.data)?;
    let mut spec = a.data.spec();
    if spec.source == wgtrain::data::Source::Shapes {
        spec.train_size = Some(spec.train_size.unwrap_or(2000).min(2000));
    }
    let (train, _) = spec.load(a.seed)?;
    let written = wgtrain::data::preview::write_grid(&train, a.count, &aug, a.seed, &a.out)?;
    let asked = if written < a.count { format!(" (of the {} asked for: the data set holds no more)", a.count) } else { String::new() };
    println!("wrote {written} augmented samples{asked} of {} to {}", train.name, a.out.display());
    Ok(ExitCode::SUCCESS)
}
