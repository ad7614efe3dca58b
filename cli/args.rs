//! Arguments shared by several commands, and their translation into library settings.

use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use wgtrain::data::Source;
use wgtrain::gpu::{Gpu, GpuOptions};
use wgtrain::train::BatchSize;
use wgtrain::Optimizer;

/// Where data comes from (train, eval, augment-preview).
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// Data set: shapes (built in, no download), mnist, fashion-mnist, cifar10, folder
    #[arg(long, default_value = "shapes", value_parser = parse_source)]
    pub dataset: Source,
    /// Folder with the data set's files (not needed for shapes)
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Share of the training files held out for validation
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub val_fraction: f64,
    /// Training images: a seeded subset with every class in proportion (default: all; shapes generates this many, default 10000)
    #[arg(long)]
    pub train_size: Option<usize>,
    /// Test images: a seeded subset with every class in proportion (default: all; shapes: a fifth of --train-size)
    #[arg(long)]
    pub test_size: Option<usize>,
    /// Image side for --dataset folder
    #[arg(long, default_value_t = 32)]
    pub image_size: usize,
}

impl DataArgs {
    /// The data the flags name, with the folder made absolute (checkpoints record it).
    pub fn spec(&self) -> wgtrain::data::DataSpec {
        wgtrain::data::DataSpec {
            source: self.dataset,
            path: self.data.clone(),
            image_size: self.image_size,
            train_size: self.train_size,
            test_size: self.test_size,
            val_fraction: self.val_fraction,
        }
        .absolute()
    }

    /// The recorded data with the flags typed on the command line (per `typed`) put over it.
    pub fn over(&self, recorded: &wgtrain::data::DataSpec, typed: impl Fn(&str) -> bool) -> wgtrain::data::DataSpec {
        let mine = self.spec();
        let mut d = recorded.clone();
        if typed("dataset") {
            d.source = mine.source;
            // Another data set does not live in the recorded folder.
            if !typed("data") && mine.source != recorded.source {
                d.path = None;
            }
        }
        if typed("data") {
            d.path = mine.path;
        }
        if typed("val_fraction") {
            d.val_fraction = mine.val_fraction;
        }
        if typed("train_size") {
            d.train_size = mine.train_size;
        }
        if typed("test_size") {
            d.test_size = mine.test_size;
        }
        if typed("image_size") {
            d.image_size = mine.image_size;
        }
        d
    }
}

/// Whether the flag `id` was typed on the command line (not a default or environment value).
pub fn typed(m: Option<&clap::ArgMatches>, id: &str) -> bool {
    m.is_some_and(|m| m.try_contains_id(id).unwrap_or(false) && m.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
}

/// Flags that only make sense together, checked before anything is loaded.
pub fn check_data(d: &DataArgs) -> anyhow::Result<()> {
    check_data_flags(d.dataset, d.data.as_deref(), d.val_fraction, d.image_size)?;
    for (flag, n) in [("--train-size", d.train_size), ("--test-size", d.test_size)] {
        if n == Some(0) {
            anyhow::bail!("{flag} 0: expected at least 1 image");
        }
    }
    Ok(())
}

/// The data flags' checks, for commands that take them in their own argument struct.
pub fn check_data_flags(dataset: Source, data: Option<&std::path::Path>, val_fraction: f64, image_size: usize) -> anyhow::Result<()> {
    if dataset != Source::Shapes && data.is_none() {
        anyhow::bail!("--dataset {} needs --data DIR (the folder with its files)", dataset.name());
    }
    if !(0.0..1.0).contains(&val_fraction) {
        anyhow::bail!("--val-fraction {val_fraction}: expected a value in [0, 1)");
    }
    if image_size == 0 {
        anyhow::bail!("--image-size 0: expected a positive size");
    }
    Ok(())
}

fn parse_source(s: &str) -> Result<Source, String> {
    s.parse::<Source>().map_err(|e| e.to_string())
}

/// Augmentation flags (train, augment-preview).
#[derive(clap::Args, Debug, Clone)]
pub struct AugmentArgs {
    /// Random crop after padding by this many pixels
    #[arg(long, default_value_t = 0)]
    pub crop_pad: usize,
    /// Random horizontal flips
    #[arg(long)]
    pub hflip: bool,
    /// Gaussian input noise (standard deviation, on normalised inputs)
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub noise: f32,
    /// Mixup alpha (0: off)
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub mixup: f32,
    /// Cutmix alpha (0: off)
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub cutmix: f32,
}

impl AugmentArgs {
    /// The flags' ranges, named as the user typed them (the library checks them again).
    pub fn check(&self) -> anyhow::Result<()> {
        for (flag, v) in [("--noise", self.noise), ("--mixup", self.mixup), ("--cutmix", self.cutmix)] {
            if !(v.is_finite() && v >= 0.0) {
                anyhow::bail!("{flag} {v}: expected a finite value >= 0 (0: off)");
            }
        }
        if self.crop_pad > 1024 {
            anyhow::bail!("--crop-pad {}: expected at most 1024 pixels", self.crop_pad);
        }
        Ok(())
    }

    /// The library's settings.
    pub fn augment(&self) -> wgtrain::data::loader::Augment {
        wgtrain::data::loader::Augment {
            crop_pad: self.crop_pad,
            hflip: self.hflip,
            noise: self.noise,
            mixup: self.mixup,
            cutmix: self.cutmix,
        }
    }
}

/// Where ops run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ComputeBackend {
    /// The chosen GPU adapter (lavapipe on machines without a GPU)
    Gpu,
    /// The CPU reference (slow; for checking)
    Cpu,
}

/// The optimizer flags of `train`.
#[derive(clap::Args, Debug, Clone)]
pub struct OptimizerArgs {
    /// Optimizer preset: sgd (lr 0.01), momentum and nesterov (SGD, lr 0.01, momentum 0.9), adagrad, adadelta, rmsprop, adam, adamw (PyTorch's defaults)
    #[arg(long, default_value = "adam", value_parser = PossibleValuesParser::new(Optimizer::PRESETS))]
    pub optimizer: String,
    /// Learning rate (default: the preset's)
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f32>,
    /// Weight decay (default: the preset's: 0.01 for adamw, 0 otherwise)
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f32>,
    /// SGD/RMSprop momentum (default: the preset's: 0.9 for momentum and nesterov, 0 otherwise)
    #[arg(long, allow_negative_numbers = true)]
    pub momentum: Option<f32>,
}

impl OptimizerArgs {
    /// The preset with the given overrides; an override is applied even when it equals 0, and
    /// settings the optimizer cannot take (nesterov without momentum) are refused.
    pub fn optimizer(&self) -> anyhow::Result<Optimizer> {
        for (flag, v) in [("--lr", self.lr), ("--weight-decay", self.weight_decay), ("--momentum", self.momentum)] {
            if let Some(v) = v.filter(|v| !(v.is_finite() && *v >= 0.0)) {
                anyhow::bail!("{flag} {v}: expected a finite value >= 0");
            }
        }
        if self.momentum.is_some_and(|m| m >= 1.0) {
            anyhow::bail!(
                "--momentum {}: expected a value in [0, 1) (1 or more never forgets a gradient)",
                self.momentum.unwrap_or_default()
            );
        }
        if self.optimizer == "nesterov" && self.momentum == Some(0.0) {
            anyhow::bail!("--momentum 0: --optimizer nesterov needs momentum > 0");
        }
        let mut o = Optimizer::preset(&self.optimizer)?;
        if let Some(lr) = self.lr {
            o.lr = lr;
        }
        if let Some(wd) = self.weight_decay {
            o.weight_decay = wd;
        }
        if let Some(m) = self.momentum {
            o.momentum = m;
        }
        o.validate()?;
        Ok(o)
    }
}

/// `--batch-size` values.
pub fn parse_batch(s: &str) -> Result<BatchSize, String> {
    s.parse()
}

/// Opens the GPU the global flags ask for.
pub fn gpu(device: &Option<String>, matmul_variant: &Option<String>, no_cache: bool) -> anyhow::Result<Gpu> {
    Ok(Gpu::new(&gpu_options(device, matmul_variant, no_cache))?)
}

/// The options of the global flags: kernels chosen by measurement, cached per adapter and
/// driver unless `--no-cache`.
pub fn gpu_options(device: &Option<String>, matmul_variant: &Option<String>, no_cache: bool) -> GpuOptions {
    let tuning = if no_cache { wgtrain::gpu::Tuning::Fresh } else { wgtrain::gpu::Tuning::Cached };
    GpuOptions { device: device.clone(), matmul_variant: matmul_variant.clone(), tuning, ..Default::default() }
}
