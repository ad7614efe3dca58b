//! `wgtrain experiment <name> --out DIR`: the experiments of deep-learning practice
//! (`wgtrain::experiment`), each writing settings.json, results.csv, report.md and PNG plots,
//! and resuming an interrupted run from the same folder.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::PossibleValuesParser;
use wgtrain::data::Source;
use wgtrain::experiment::results::Results;
use wgtrain::experiment::{self, bagging, batch_size, boosting, cv, optimizers, regularization, Setup};
use wgtrain::nn::zoo;
use wgtrain::train::{BatchSize, TrainConfig};
use wgtrain::{Backend, Cpu, Gpu, Optimizer};

use crate::args::{parse_batch, AugmentArgs, ComputeBackend, OptimizerArgs};

/// What every experiment takes: data, model, training settings, repeats, output folder.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Folder for the results (settings.json, results.csv, report.md, PNG plots); an existing
    /// one with the same settings is resumed
    #[arg(long)]
    out: PathBuf,
    /// Model: a zoo name (default, lenet5, vgg, resnet20, alexnet) or a .toml model file
    #[arg(long, default_value = "default")]
    model: String,
    /// Data set: shapes (built in, no download), mnist, fashion-mnist, cifar10, folder
    #[arg(long, default_value = "shapes", value_parser = |s: &str| s.parse::<Source>().map_err(|e| e.to_string()))]
    dataset: Source,
    /// Folder with the data set's files (not needed for shapes)
    #[arg(long)]
    data: Option<PathBuf>,
    /// Use a stratified, seeded subset of this many training images (default: all; shapes: 5000)
    #[arg(long)]
    train_size: Option<usize>,
    /// Use a stratified, seeded subset of this many test images (default: all)
    #[arg(long)]
    test_size: Option<usize>,
    /// Share of each run's training images held out for validation
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    val_fraction: f64,
    /// Image side for --dataset folder
    #[arg(long, default_value_t = 32)]
    image_size: usize,
    /// Repeat every run with this many seeds (seed, seed+1, ...) and report mean ± std
    #[arg(long, default_value_t = 1)]
    seeds: usize,
    /// First seed (data subsets, splits, initialisation, batch order)
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Passes over the training data per run [default: 3; batch-size trains only when it is given]
    #[arg(long)]
    epochs: Option<usize>,
    /// Samples per step
    #[arg(long, default_value = "64", value_parser = parse_batch)]
    batch_size: BatchSize,
    #[command(flatten)]
    opt: OptimizerArgs,
    #[command(flatten)]
    aug: AugmentArgs,
    /// Label smoothing of the cross-entropy, in [0, 1)
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    label_smoothing: f32,
    /// Early stopping: epochs without a better validation loss, best weights restored (0: off)
    #[arg(long, default_value_t = 0)]
    patience: usize,
    /// Where the ops run
    #[arg(long, value_enum, default_value = "gpu")]
    backend: ComputeBackend,
}

/// The experiments.
#[derive(clap::Subcommand, Debug)]
pub enum ExperimentCmd {
    /// Throughput against batch size; with --epochs, also accuracy, gap, sharpness and the loss between two solutions
    BatchSize {
        #[command(flatten)]
        common: Common,
        /// Batch sizes, e.g. 16,64,256,full (default: powers of two up to the largest that fits the device)
        #[arg(long, value_delimiter = ',', value_parser = parse_batch)]
        batch_sizes: Option<Vec<BatchSize>>,
        /// Largest batch size of the default list
        #[arg(long)]
        max_batch: Option<usize>,
        /// Learning rate per batch size: fixed, or linear[:BASE[:WARMUP]] (lr x b / BASE, BASE
        /// default --batch-size, with WARMUP epochs of linear warm-up)
        #[arg(long, default_value = "fixed")]
        lr_rule: String,
        /// Sharpness box radius epsilon: |z_i| <= eps (|w_i| + 1) (Keskar et al. 2017)
        #[arg(long, default_value_t = 1e-3)]
        sharpness_eps: f32,
        /// Training images the sharpness's loss is measured on
        #[arg(long, default_value_t = 1000)]
        sharpness_samples: usize,
        /// Timed windows per batch size (the throughput is their median)
        #[arg(long, default_value_t = 5)]
        windows: usize,
        /// Training steps per timed window
        #[arg(long, default_value_t = 10)]
        steps_per_window: usize,
    },
    /// SGD, momentum, Nesterov, Adagrad, Adadelta, RMSprop, Adam, AdamW from the same start; paths on 2-D functions
    Optimizers {
        #[command(flatten)]
        common: Common,
        /// Optimizers to compare
        #[arg(long, value_delimiter = ',', default_value = "sgd,momentum,nesterov,adagrad,adadelta,rmsprop,adam,adamw")]
        optimizers: Vec<String>,
        /// Learning rates per optimizer, e.g. sgd=0.05,adam=3e-4 (others: a stated default, or --lr-search)
        #[arg(long, value_delimiter = ',')]
        lrs: Vec<String>,
        /// Pick the learning rates not given by a short search (default rate x 0.1, 1, 10; one epoch each)
        #[arg(long)]
        lr_search: bool,
        /// Steps of the paths on the 2-D test functions (0: none)
        #[arg(long, default_value_t = 300)]
        path_steps: usize,
    },
    /// k-fold cross-validation over a grid, the best setting retrained and tested once
    Cv {
        #[command(flatten)]
        common: Common,
        /// Folds
        #[arg(long, default_value_t = 5)]
        folds: usize,
        /// The grid: NAME=V1,V2;NAME=... over lr, weight-decay, momentum, dropout, batch-size, label-smoothing, epochs
        #[arg(long, default_value = "lr=3e-4,1e-3,3e-3")]
        grid: String,
    },
    /// Bootstrap-aggregated models: vote, probability averaging, out-of-bag estimate, uncertainty
    Bagging {
        #[command(flatten)]
        common: Common,
        /// Ensemble members
        #[arg(long, default_value_t = 5)]
        members: usize,
    },
    /// Multi-class AdaBoost (SAMME) of small CNNs
    Boosting {
        #[command(flatten)]
        common: Common,
        /// Weak learners
        #[arg(long, default_value_t = 10)]
        learners: usize,
        /// Boost the --model given instead of the built-in small CNN
        #[arg(long)]
        full_model: bool,
    },
    /// Each regularizer alone, all, and none, on a subset where overfitting shows
    Regularization {
        #[command(flatten)]
        common: Common,
        /// Run only these variants
        #[arg(long, value_delimiter = ',', value_parser = PossibleValuesParser::new(regularization::Regularizer::ALL.map(|r| r.name())))]
        only: Vec<String>,
    },
}

impl ExperimentCmd {
    fn common(&self) -> &Common {
        match self {
            ExperimentCmd::BatchSize { common, .. }
            | ExperimentCmd::Optimizers { common, .. }
            | ExperimentCmd::Cv { common, .. }
            | ExperimentCmd::Bagging { common, .. }
            | ExperimentCmd::Boosting { common, .. }
            | ExperimentCmd::Regularization { common, .. } => common,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            ExperimentCmd::BatchSize { .. } => "batch-size",
            ExperimentCmd::Optimizers { .. } => "optimizers",
            ExperimentCmd::Cv { .. } => "cv",
            ExperimentCmd::Bagging { .. } => "bagging",
            ExperimentCmd::Boosting { .. } => "boosting",
            ExperimentCmd::Regularization { .. } => "regularization",
        }
    }
}

pub fn run(cmd: &ExperimentCmd, gpu: impl Fn() -> anyhow::Result<Gpu>) -> anyhow::Result<ExitCode> {
    match cmd.common().backend {
        ComputeBackend::Gpu => experiment(&gpu()?, cmd),
        ComputeBackend::Cpu => experiment(&Cpu, cmd),
    }
}

fn setup(c: &Common) -> anyhow::Result<Setup> {
    crate::args::check_data_flags(c.dataset, c.data.as_deref(), c.val_fraction, c.image_size)?;
    let epochs = c.epochs.unwrap_or(3);
    if epochs == 0 {
        anyhow::bail!("--epochs 0: expected at least 1");
    }
    if c.seeds == 0 || c.seeds > 1000 {
        anyhow::bail!("--seeds {}: expected 1 to 1000", c.seeds);
    }
    if !(0.0..1.0).contains(&c.label_smoothing) {
        anyhow::bail!("--label-smoothing {}: expected a value in [0, 1)", c.label_smoothing);
    }
    let optimizer = c.opt.optimizer()?;
    c.aug.check()?;
    let (train, test) = experiment::load_data(c.dataset, c.data.as_deref(), c.image_size, c.train_size, c.test_size, c.seed)?;
    let model = zoo::model(&c.model, train.classes.len())?;
    let config = TrainConfig { epochs, batch: c.batch_size, optimizer, augment: c.aug.augment(), seed: c.seed, ..TrainConfig::default() };
    config.validate()?;
    Ok(Setup {
        train,
        test,
        model,
        config,
        label_smoothing: c.label_smoothing,
        val_fraction: c.val_fraction,
        patience: c.patience,
        seeds: c.seeds,
    })
}

fn experiment<B: Backend>(be: &B, cmd: &ExperimentCmd) -> anyhow::Result<ExitCode> {
    let c = cmd.common();
    let setup = setup(c)?;
    let env = experiment::environment(&be.name());
    let mut settings = setup.settings();
    let name = cmd.name();
    println!("experiment {name}: {} on {}; results in {}", setup.describe(), be.name(), c.out.display());
    macro_rules! go {
        ($module:ident, $opts:expr) => {{
            let opts = $opts;
            settings["experiment_options"] = serde_json::to_value(&opts)?;
            let mut out = Results::open(&c.out, name, &settings, &env)?;
            $module::run(be, &setup, &opts, &mut out)?;
        }};
    }
    match cmd {
        ExperimentCmd::BatchSize {
            batch_sizes, max_batch, lr_rule, sharpness_eps, sharpness_samples, windows, steps_per_window, ..
        } => go!(
            batch_size,
            batch_size::Options {
                batch_sizes: batch_sizes.clone(),
                train: c.epochs.is_some(),
                lr_rule: lr_rule.parse()?,
                sharpness_eps: *sharpness_eps,
                sharpness_samples: *sharpness_samples,
                max_batch: *max_batch,
                windows: *windows,
                steps_per_window: *steps_per_window,
                ..batch_size::Options::default()
            }
        ),
        ExperimentCmd::Optimizers { optimizers: names, lrs, lr_search, path_steps, .. } => {
            let mut given = Vec::new();
            for l in lrs {
                let (n, v) = l.split_once('=').ok_or_else(|| anyhow::anyhow!("--lrs '{l}': expected NAME=LR, e.g. sgd=0.05"))?;
                Optimizer::preset(n)?;
                let v: f32 = v.parse().map_err(|_| anyhow::anyhow!("--lrs '{l}': '{v}' is not a number"))?;
                if !(v > 0.0 && v.is_finite()) {
                    anyhow::bail!("--lrs '{l}': expected a positive learning rate");
                }
                given.push((n.to_string(), v));
            }
            for n in names {
                Optimizer::preset(n)?;
            }
            go!(
                optimizers,
                optimizers::Options {
                    optimizers: names.clone(),
                    lrs: given,
                    search: *lr_search,
                    path_steps: *path_steps,
                    weight_decay: c.opt.weight_decay,
                    ..optimizers::Options::default()
                }
            )
        }
        ExperimentCmd::Cv { folds, grid, .. } => {
            if *folds < 2 || *folds > setup.train.len() {
                anyhow::bail!("--folds {folds}: expected 2 to {} (the training images)", setup.train.len());
            }
            go!(cv, cv::Options { folds: *folds, grid: grid.parse()? })
        }
        ExperimentCmd::Bagging { members, .. } => {
            if *members == 0 {
                anyhow::bail!("--members 0: expected at least 1");
            }
            go!(bagging, bagging::Options { members: *members, ..bagging::Options::default() })
        }
        ExperimentCmd::Boosting { learners, full_model, .. } => {
            if *learners == 0 {
                anyhow::bail!("--learners 0: expected at least 1");
            }
            let weak = if *full_model { None } else { Some(boosting::weak_cnn(setup.train.classes.len())) };
            go!(boosting, boosting::Options { learners: *learners, weak_model: weak })
        }
        ExperimentCmd::Regularization { only, .. } => {
            let mut o = regularization::Options::default();
            if !only.is_empty() {
                o.only = only.iter().map(|s| s.parse()).collect::<wgtrain::Result<_>>()?;
            }
            // Flips change a digit's class; they are on only for natural images.
            o.hflip = matches!(c.dataset, Source::Cifar10 | Source::Folder);
            go!(regularization, o)
        }
    }
    println!("done: {} (report.md, results.csv, PNG plots)", c.out.display());
    Ok(ExitCode::SUCCESS)
}
