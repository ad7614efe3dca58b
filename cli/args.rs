//! Arguments shared by several commands, and their translation into library settings.

use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use wgtrain::data::Source;
use wgtrain::gpu::{Gpu, GpuOptions};
use wgtrain::ops::optimizer::fmt_value;
use wgtrain::ops::Hyper;
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

/// The optimizer flags of `train` and the experiments: a preset and torch.optim's
/// hyperparameters. Each flag's help lists the presets' real defaults, generated from
/// `Optimizer::preset` (see `Hyper::defaults`).
#[derive(clap::Args, Debug, Clone)]
pub struct OptimizerArgs {
    /// Optimizer preset: sgd (lr 0.01), momentum and nesterov (SGD, lr 0.01, momentum 0.9), adagrad, adadelta, rmsprop, adam, adamw (PyTorch's defaults)
    #[arg(long, default_value = "adam", value_parser = PossibleValuesParser::new(Optimizer::PRESETS))]
    pub optimizer: String,
    #[arg(long, allow_negative_numbers = true, help = hyper_help(Hyper::Lr, "Learning rate"))]
    pub lr: Option<f32>,
    #[arg(long, allow_negative_numbers = true, help = hyper_help(Hyper::WeightDecay, "Weight decay (L2 added to the gradient; decoupled for adamw)"))]
    pub weight_decay: Option<f32>,
    #[arg(long, allow_negative_numbers = true, help = hyper_help(Hyper::Momentum, "Momentum factor, in [0, 1)"))]
    pub momentum: Option<f32>,
    #[arg(long, allow_negative_numbers = true, help = hyper_help(Hyper::Dampening, "SGD dampening of the momentum, in [0, 1]"))]
    pub dampening: Option<f32>,
    #[arg(long, help = hyper_help(Hyper::Nesterov, "SGD with Nesterov momentum (needs momentum > 0 and dampening 0)"))]
    pub nesterov: bool,
    #[arg(long, value_name = "B1,B2", allow_hyphen_values = true, value_parser = parse_betas, help = hyper_help(Hyper::Betas, "Adam's decay rates of the gradient's mean and square, each in [0, 1)"))]
    pub betas: Option<(f32, f32)>,
    #[arg(long, allow_negative_numbers = true, help = hyper_help(Hyper::Eps, "Term added to the denominator, > 0"))]
    pub eps: Option<f32>,
    #[arg(long, allow_negative_numbers = true, help = hyper_help(Hyper::Rho, "Adadelta's decay of its running averages, in [0, 1]"))]
    pub rho: Option<f32>,
    #[arg(long, allow_negative_numbers = true, help = hyper_help(Hyper::Alpha, "RMSprop's smoothing constant, in [0, 1]"))]
    pub alpha: Option<f32>,
    #[arg(long, allow_negative_numbers = true, help = hyper_help(Hyper::LrDecay, "Adagrad's learning-rate decay: lr / (1 + (t - 1) * lr_decay)"))]
    pub lr_decay: Option<f32>,
    #[arg(long, allow_negative_numbers = true, help = hyper_help(Hyper::InitialAccumulatorValue, "Adagrad's starting sum of squared gradients"))]
    pub initial_accumulator_value: Option<f32>,
}

/// A flag's help: what it is, then the presets that take it with their defaults.
fn hyper_help(h: Hyper, what: &str) -> String {
    format!("{what} [default: {}]", h.defaults())
}

/// `--betas B1,B2`.
fn parse_betas(s: &str) -> Result<(f32, f32), String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    match parts[..] {
        [a, b] => match (a.parse::<f32>(), b.parse::<f32>()) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            _ => Err(format!("'{s}': expected two numbers B1,B2, e.g. 0.9,0.999")),
        },
        _ => Err(format!("'{s}': expected two numbers B1,B2, e.g. 0.9,0.999")),
    }
}

/// "a", "a and b", "a, b and c".
fn and_list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

impl OptimizerArgs {
    /// The flags given, with their text as typed (for messages).
    fn given(&self) -> Vec<(Hyper, String)> {
        let num = |h: Hyper, v: Option<f32>| v.map(|v| (h, fmt_value(v)));
        [
            num(Hyper::Lr, self.lr),
            num(Hyper::WeightDecay, self.weight_decay),
            num(Hyper::Momentum, self.momentum),
            num(Hyper::Dampening, self.dampening),
            self.nesterov.then(|| (Hyper::Nesterov, String::new())),
            self.betas.map(|(a, b)| (Hyper::Betas, format!("{},{}", fmt_value(a), fmt_value(b)))),
            num(Hyper::Eps, self.eps),
            num(Hyper::Rho, self.rho),
            num(Hyper::Alpha, self.alpha),
            num(Hyper::LrDecay, self.lr_decay),
            num(Hyper::InitialAccumulatorValue, self.initial_accumulator_value),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The preset with the given overrides; an override is applied even when it equals 0.
    /// Refused, naming the flag: a flag the optimizer does not take, a value out of range,
    /// and contradictory settings (as PyTorch refuses them: Nesterov momentum needs momentum
    /// > 0 and dampening 0).
    pub fn optimizer(&self) -> anyhow::Result<Optimizer> {
        let mut o = Optimizer::preset(&self.optimizer)?;
        for (h, text) in self.given() {
            if !h.applies_to(o.kind) {
                let takers = h.presets();
                let flag = format!("--{}", h.name().replace('_', "-"));
                anyhow::bail!(
                    "{flag}{}{text}: only {} take{} it, and --optimizer is {}",
                    if text.is_empty() { "" } else { " " },
                    and_list(&takers),
                    if takers.len() == 1 { "s" } else { "" },
                    self.optimizer
                );
            }
        }
        let nonneg = [
            ("--lr", self.lr),
            ("--weight-decay", self.weight_decay),
            ("--momentum", self.momentum),
            ("--lr-decay", self.lr_decay),
            ("--initial-accumulator-value", self.initial_accumulator_value),
        ];
        for (flag, v) in nonneg {
            if let Some(v) = v.filter(|v| !(v.is_finite() && *v >= 0.0)) {
                anyhow::bail!("{flag} {}: expected a finite value >= 0", fmt_value(v));
            }
        }
        if self.momentum.is_some_and(|m| m >= 1.0) {
            anyhow::bail!(
                "--momentum {}: expected a value in [0, 1) (1 or more never forgets a gradient)",
                self.momentum.unwrap_or_default()
            );
        }
        for (flag, v) in [("--dampening", self.dampening), ("--rho", self.rho), ("--alpha", self.alpha)] {
            if let Some(v) = v.filter(|v| !(0.0..=1.0).contains(v)) {
                anyhow::bail!("{flag} {}: expected a value in [0, 1]", fmt_value(v));
            }
        }
        if let Some((b1, b2)) = self.betas.filter(|(a, b)| !((0.0..1.0).contains(a) && (0.0..1.0).contains(b))) {
            anyhow::bail!("--betas {},{}: expected each beta in [0, 1)", fmt_value(b1), fmt_value(b2));
        }
        if let Some(e) = self.eps.filter(|e| !(e.is_finite() && *e > 0.0)) {
            anyhow::bail!("--eps {}: expected a finite value > 0", fmt_value(e));
        }
        if self.optimizer == "nesterov" && self.momentum == Some(0.0) {
            anyhow::bail!("--momentum 0: --optimizer nesterov needs momentum > 0");
        }
        let set = |field: &mut f32, v: Option<f32>| {
            if let Some(v) = v {
                *field = v;
            }
        };
        set(&mut o.lr, self.lr);
        set(&mut o.weight_decay, self.weight_decay);
        set(&mut o.momentum, self.momentum);
        set(&mut o.dampening, self.dampening);
        set(&mut o.eps, self.eps);
        set(&mut o.rho, self.rho);
        set(&mut o.alpha, self.alpha);
        set(&mut o.lr_decay, self.lr_decay);
        set(&mut o.initial_accumulator_value, self.initial_accumulator_value);
        if let Some(b) = self.betas {
            o.betas = b;
        }
        o.nesterov |= self.nesterov;
        if o.nesterov && o.momentum <= 0.0 {
            anyhow::bail!(
                "--nesterov needs momentum > 0, and --optimizer {} has momentum {}: add --momentum M (or use --optimizer nesterov)",
                self.optimizer,
                o.momentum
            );
        }
        if o.nesterov && o.dampening != 0.0 {
            anyhow::bail!("--dampening {}: Nesterov momentum needs dampening 0", fmt_value(o.dampening));
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
