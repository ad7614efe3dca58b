//! `wgtrain train`: loads the data, builds (or resumes) the model, and runs the library's
//! trainer with the observers the flags ask for.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::PossibleValuesParser;
use clap::ArgMatches;
use wgtrain::data;
use wgtrain::data::loader;
use wgtrain::distributed::Replicas;
use wgtrain::nn::{zoo, CrossEntropy, LayerSpec, Model};
use wgtrain::train::{self, BatchSize, Monitor, RunSettings, Schedule, TrainConfig, TrainReport, Trainer};
use wgtrain::{checkpoint, Backend, Cpu, Gpu};

use crate::args::{parse_batch, AugmentArgs, ComputeBackend, DataArgs, OptimizerArgs};
use crate::parallel::{OpenGpu, ParallelArgs};

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Model: a zoo name (default, lenet5, vgg, resnet20, alexnet) or a .toml model file
    #[arg(long, default_value = "default")]
    model: String,
    #[command(flatten)]
    data: DataArgs,
    /// Passes over the training set
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Samples per step: 1 (stochastic), N (mini-batch) or `full` (batch gradient descent)
    #[arg(long, default_value = "64", value_parser = parse_batch)]
    batch_size: BatchSize,
    #[command(flatten)]
    opt: OptimizerArgs,
    /// Keep the parameters whose state-dict names match this glob fixed (repeatable): layers.0.*, layers.[0-3].*, *.bias; a layer with every parameter frozen runs in eval mode
    #[arg(long, value_name = "PATTERN")]
    freeze: Vec<String>,
    /// Learning-rate schedule
    #[arg(long, default_value = "constant", value_parser = PossibleValuesParser::new(Schedule::NAMES))]
    schedule: String,
    /// Epochs per step of the step schedule [default: 10]
    #[arg(long)]
    step_size: Option<usize>,
    /// Factor per step of the step schedule [default: 0.1]
    #[arg(long, allow_negative_numbers = true)]
    gamma: Option<f32>,
    /// Linear warm-up epochs
    #[arg(long, default_value_t = 0)]
    warmup_epochs: usize,
    /// Label smoothing of the cross-entropy, in [0, 1)
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    label_smoothing: f32,
    /// Clip gradients to this global norm
    #[arg(long, allow_negative_numbers = true)]
    clip_norm: Option<f32>,
    #[command(flatten)]
    aug: AugmentArgs,
    /// Override the rate of every dropout layer
    #[arg(long, allow_negative_numbers = true)]
    dropout: Option<f32>,
    /// Early stopping: epochs without a better validation figure (0: off)
    #[arg(long, default_value_t = 0)]
    patience: usize,
    /// The validation figure early stopping and --restore-best watch
    #[arg(long, default_value = "loss", value_parser = PossibleValuesParser::new(Monitor::NAMES))]
    monitor: String,
    /// Put back the best validation epoch's parameters at the end
    #[arg(long)]
    restore_best: bool,
    /// Where the ops run
    #[arg(long, value_enum, default_value = "gpu")]
    backend: ComputeBackend,
    /// Seed of the split, initialisation, batch order, augmentation and dropout
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the final metrics as JSON
    #[arg(long)]
    json: Option<PathBuf>,
    /// Save a checkpoint (safetensors) here after every epoch and on Ctrl-C
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Continue the run saved in this checkpoint (same data set and seed)
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Start from the weights of a safetensors file (a PyTorch state dict, `wgtrain export`, a checkpoint): fresh optimizer, epoch 0
    #[arg(long, conflicts_with = "resume")]
    init_from: Option<PathBuf>,
    /// With --init-from: a fresh last linear layer for the data set's class count (fine-tuning)
    #[arg(long, requires = "init_from")]
    reset_head: bool,
    /// Let --checkpoint replace a checkpoint of another run (refused otherwise)
    #[arg(long)]
    overwrite: bool,
    /// Append one CSV line of metrics per epoch to this file (each line names the run and its settings)
    #[arg(long)]
    log: Option<PathBuf>,
    /// End the run after this many optimizer steps in all (with --epochs unset: as many epochs as that needs)
    #[arg(long)]
    max_steps: Option<u64>,
    /// Train at most this many steps per epoch (each epoch a different random part of the training set)
    #[arg(long)]
    steps_per_epoch: Option<usize>,
    #[command(flatten)]
    parallel: ParallelArgs,
    /// With replicas: batch norm normalises with the statistics of the whole batch over every replica (PyTorch's SyncBatchNorm) instead of each replica's own
    #[arg(long)]
    sync_bn: bool,
}

/// The flags that shape a run's trajectory, and the recorded settings each one sets (dotted
/// paths of `RunSettings` as JSON): on `--resume`, a typed flag that changes one is refused.
const TRAJECTORY: &[(&str, &str, &[&str])] = &[
    ("model", "--model", &["model"]),
    ("dataset", "--dataset", &["data.source"]),
    ("data", "--data", &["data.path"]),
    ("val_fraction", "--val-fraction", &["data.val_fraction"]),
    ("train_size", "--train-size", &["data.train_size"]),
    ("test_size", "--test-size", &["data.test_size"]),
    ("image_size", "--image-size", &["data.image_size"]),
    ("batch_size", "--batch-size", &["config.batch"]),
    ("optimizer", "--optimizer", &["config.optimizer.kind", "config.optimizer.nesterov"]),
    ("lr", "--lr", &["config.optimizer.lr"]),
    ("weight_decay", "--weight-decay", &["config.optimizer.weight_decay"]),
    ("momentum", "--momentum", &["config.optimizer.momentum"]),
    ("dampening", "--dampening", &["config.optimizer.dampening"]),
    ("nesterov", "--nesterov", &["config.optimizer.nesterov"]),
    ("betas", "--betas", &["config.optimizer.betas"]),
    ("eps", "--eps", &["config.optimizer.eps"]),
    ("rho", "--rho", &["config.optimizer.rho"]),
    ("alpha", "--alpha", &["config.optimizer.alpha"]),
    ("lr_decay", "--lr-decay", &["config.optimizer.lr_decay"]),
    ("initial_accumulator_value", "--initial-accumulator-value", &["config.optimizer.initial_accumulator_value"]),
    ("schedule", "--schedule", &["config.schedule"]),
    ("step_size", "--step-size", &["config.schedule"]),
    ("gamma", "--gamma", &["config.schedule"]),
    ("warmup_epochs", "--warmup-epochs", &["config.warmup_epochs"]),
    ("label_smoothing", "--label-smoothing", &["label_smoothing"]),
    ("clip_norm", "--clip-norm", &["config.clip_norm"]),
    ("crop_pad", "--crop-pad", &["config.augment.crop_pad"]),
    ("hflip", "--hflip", &["config.augment.hflip"]),
    ("noise", "--noise", &["config.augment.noise"]),
    ("mixup", "--mixup", &["config.augment.mixup"]),
    ("cutmix", "--cutmix", &["config.augment.cutmix"]),
    ("dropout", "--dropout", &["dropout"]),
    ("seed", "--seed", &["config.seed"]),
    ("steps_per_epoch", "--steps-per-epoch", &["config.steps_per_epoch"]),
    ("sync_bn", "--sync-bn", &["sync_bn"]),
];

pub fn run(a: &TrainArgs, m: Option<&ArgMatches>, gpu: OpenGpu<'_>) -> anyhow::Result<ExitCode> {
    check_flags(a)?;
    let run = |gpu: Option<&Gpu>, replicas: Option<Replicas>| match gpu {
        Some(gpu) => training(gpu, a, m, replicas),
        None => training(&Cpu, a, m, replicas),
    };
    let Some(report) = crate::parallel::replicated(&a.parallel, a.backend, gpu, run)? else {
        return Ok(ExitCode::SUCCESS); // another MPI rank than 0: rank 0 reports
    };
    if report.interrupted {
        println!("interrupted: continue with --resume {}", a.checkpoint.as_ref().map_or("FILE".into(), |p| p.display().to_string()));
        return Ok(ExitCode::from(130));
    }
    println!("test accuracy: {:.2}%", 100.0 * report.test_accuracy);
    Ok(ExitCode::SUCCESS)
}

fn config(a: &TrainArgs, seed: u64) -> anyhow::Result<TrainConfig> {
    Ok(TrainConfig {
        epochs: a.epochs,
        batch: a.batch_size,
        optimizer: a.opt.optimizer()?,
        schedule: Schedule::parse(&a.schedule, a.step_size.unwrap_or(10), a.gamma.unwrap_or(0.1))?,
        warmup_epochs: a.warmup_epochs,
        clip_norm: a.clip_norm,
        augment: a.aug.augment(),
        monitor: Monitor::parse(&a.monitor)?,
        seed,
        // The progress line's running loss: one read-back at most twice a second.
        report_seconds: 0.5,
        steps_per_epoch: a.steps_per_epoch,
        max_steps: a.max_steps,
        ..TrainConfig::default()
    })
}

/// The run the flags describe (a new run id).
fn fresh_settings(a: &TrainArgs) -> anyhow::Result<RunSettings> {
    Ok(RunSettings {
        run_id: train::new_run_id(),
        model: a.model.clone(),
        data: a.data.spec(),
        config: config(a, a.seed)?,
        label_smoothing: a.label_smoothing,
        dropout: a.dropout,
        freeze: a.freeze.clone(),
        init_from: a.init_from.as_ref().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
        reset_head: a.reset_head,
        replicas: 1,
        sync_bn: a.sync_bn,
    })
}

/// The settings of a resumed run: the recorded ones, with only what may change without
/// changing what was trained so far taken from the flags (more epochs or steps under a
/// schedule that does not depend on them; the monitor). A typed flag that would change the
/// trajectory is an error listing every such flag.
fn resumed_settings(a: &TrainArgs, m: Option<&ArgMatches>, path: &std::path::Path, rec: RunSettings) -> anyhow::Result<RunSettings> {
    let fresh = fresh_settings(a)?;
    let typed = |id: &str| crate::args::typed(m, id);
    let mut changed = Vec::new();
    for (id, flag, paths) in TRAJECTORY {
        if typed(id) {
            let inside = |k: &str| paths.iter().any(|p| k == *p || k.strip_prefix(p).is_some_and(|r| r.starts_with('.')));
            let d = rec.differences(&fresh, |k| inside(k));
            if !d.is_empty() {
                changed.push(format!("{flag} ({})", d.join("; ")));
            }
        }
    }
    let mut run = rec;
    if typed("epochs") && a.epochs != run.config.epochs {
        if run.config.schedule == Schedule::Cosine {
            changed.push(format!(
                "--epochs ({} after {}: the cosine schedule spans the run's epochs, so the rates already used would differ)",
                a.epochs, run.config.epochs
            ));
        } else {
            println!(
                "continuing to {} epochs (the run was set for {}): the same as a run started with --epochs {}, since its learning-rate schedule does not depend on the number of epochs",
                a.epochs, run.config.epochs, a.epochs
            );
            run.config.epochs = a.epochs;
        }
    }
    if !changed.is_empty() {
        anyhow::bail!(
            "--resume {}: a resumed run continues with its own settings, and these flags change them: {}. Drop them, or start a new run from its weights with --checkpoint NEW",
            path.display(),
            changed.join(", ")
        );
    }
    if typed("max_steps") {
        run.config.max_steps = a.max_steps;
    }
    // The checkpoint's frozen set is checked when it is loaded (more may be frozen from here).
    if typed("freeze") {
        run.freeze = a.freeze.clone();
    }
    run.config.monitor = fresh.config.monitor;
    run.config.report_seconds = fresh.config.report_seconds;
    Ok(run)
}

/// Flags that are out of range or contradict each other, refused before anything is loaded.
fn check_flags(a: &TrainArgs) -> anyhow::Result<()> {
    if a.epochs == 0 {
        anyhow::bail!("--epochs 0: expected at least 1");
    }
    if let Some(c) = a.clip_norm.filter(|c| !(c.is_finite() && *c > 0.0)) {
        anyhow::bail!("--clip-norm {c}: expected a finite norm > 0");
    }
    if a.warmup_epochs > a.epochs {
        anyhow::bail!(
            "--warmup-epochs {}: more than --epochs {}, so the learning rate would never reach its value",
            a.warmup_epochs,
            a.epochs
        );
    }
    a.aug.check()?;
    a.opt.optimizer()?;
    if a.schedule != "step" {
        if let Some(g) = a.gamma {
            anyhow::bail!("--gamma {g}: only the step schedule takes it, and --schedule is {}", a.schedule);
        }
        if let Some(n) = a.step_size {
            anyhow::bail!("--step-size {n}: only the step schedule takes it, and --schedule is {}", a.schedule);
        }
    }
    if let Some(g) = a.gamma.filter(|g| !(g.is_finite() && *g > 0.0)) {
        anyhow::bail!("--gamma {g}: expected a finite factor > 0");
    }
    if a.step_size == Some(0) {
        anyhow::bail!("--step-size 0: expected at least 1 epoch");
    }
    if !(0.0..1.0).contains(&a.label_smoothing) {
        anyhow::bail!("--label-smoothing {}: expected a value in [0, 1)", a.label_smoothing);
    }
    if let Some(p) = a.dropout.filter(|p| !(0.0..1.0).contains(p)) {
        anyhow::bail!("--dropout {p}: expected a probability in [0, 1)");
    }
    if a.data.val_fraction == 0.0 {
        if a.patience > 0 {
            anyhow::bail!("--patience {}: early stopping watches the validation set, and --val-fraction 0 leaves none", a.patience);
        }
        if a.restore_best {
            anyhow::bail!("--restore-best: the best epoch is judged on the validation set, and --val-fraction 0 leaves none");
        }
    }
    if let Some(ck) = a.checkpoint.as_ref().filter(|ck| ck.exists() && a.resume.as_ref() != Some(*ck) && !a.overwrite) {
        let what = match checkpoint::read_meta(ck) {
            Ok(m) => {
                format!("a checkpoint of model '{}' after epoch {}", m.spec.as_ref().map_or("?", |s| s.name.as_str()), m.progress.epoch)
            }
            Err(_) => "a file".into(),
        };
        anyhow::bail!(
            "--checkpoint {}: already holds {what}; pass --overwrite to replace it, or --resume {} to continue it",
            ck.display(),
            ck.display()
        );
    }
    crate::args::check_data(&a.data)?;
    for (flag, zero) in [("--max-steps", a.max_steps == Some(0)), ("--steps-per-epoch", a.steps_per_epoch == Some(0))] {
        if zero {
            anyhow::bail!("{flag} 0: expected at least 1 step");
        }
    }
    if let Some(log) = &a.log {
        train::CsvLog::check(log)?;
    }
    Ok(())
}

/// One run of `train`, or one replica's part of a data-parallel run (`replicas`; replica 0
/// alone prints, logs and writes).
fn training<B: Backend>(be: &B, a: &TrainArgs, m: Option<&ArgMatches>, replicas: Option<Replicas>) -> anyhow::Result<TrainReport> {
    let t0 = std::time::Instant::now();
    let lead = replicas.as_ref().is_none_or(|r| r.rank() == 0);
    let n_replicas = replicas.as_ref().map_or(1, |r| r.size());
    // Only replica 0 speaks.
    macro_rules! say {
        ($($t:tt)*) => { if lead { println!($($t)*); } };
    }
    let resume = a.resume.as_deref().map(checkpoint::read_meta).transpose()?;
    let mut settings = match (&a.resume, &resume) {
        (Some(path), Some(meta)) => match meta.run.clone() {
            Some(rec) => resumed_settings(a, m, path, rec)?,
            None => {
                // A checkpoint of an older version: the flags give the settings, the seed is its.
                say!("{} records no run settings (an older checkpoint): using the flags, with its seed", path.display());
                let mut s = fresh_settings(a)?;
                s.config.seed = meta.progress.seed;
                s
            }
        },
        _ => fresh_settings(a)?,
    };
    // A resumed run keeps its seed: it fixes the split, the batch order and the dropout masks.
    let seed = settings.config.seed;
    settings.config.validate()?;
    // Output paths are checked now, not after the first epoch (or the whole run).
    for (flag, path) in [("--checkpoint", &a.checkpoint), ("--log", &a.log), ("--json", &a.json)] {
        if let (Some(p), true) = (path, lead) {
            check_writable(flag, p)?;
        }
    }
    settings.replicas = n_replicas;
    if a.resume.is_none() || crate::args::typed(m, "sync_bn") {
        settings.sync_bn = a.sync_bn;
    }
    let init = a.init_from.as_deref().map(crate::export::read_init).transpose()?;
    let (train_set, test_set) = settings.data.load(seed)?;
    let splits = match &init {
        Some((w, Some(stats))) => data::split_with(train_set, test_set, settings.data.val_fraction, seed, stats)
            .map_err(|e| anyhow::anyhow!("--init-from {}: {e}", w.path.display()))?,
        _ => data::split(train_set, test_set, settings.data.val_fraction, seed)?,
    };
    if splits.test.is_empty() {
        anyhow::bail!(
            "the test set of {} has no images: nothing to report after training (a folder without train/ and test/ keeps a fifth of its images for testing)",
            splits.test.name
        );
    }
    if a.resume.is_none() && a.max_steps.is_some() && !crate::args::typed(m, "epochs") {
        // --max-steps alone: as many epochs as the steps need.
        let per_epoch = loader::batches(splits.train.len(), settings.config.batch.resolve(splits.train.len()), true);
        let per_epoch = settings.config.steps_per_epoch.map_or(per_epoch, |s| s.min(per_epoch)).max(1) as u64;
        settings.config.epochs = a.max_steps.unwrap_or(1).div_ceil(per_epoch).max(1) as usize;
    }
    let classes = splits.train.classes.len();
    let mut spec = match (&a.resume, &resume) {
        (Some(path), Some(m)) => checkpoint::spec_of(path, m)?,
        _ => zoo::model(&settings.model, classes)?,
    };
    if let (None, Some(p)) = (&a.resume, settings.dropout) {
        for l in spec.layers.iter_mut() {
            if let LayerSpec::Dropout { p: rate } = l {
                *rate = p;
            }
        }
    }
    let mut model = Model::from_spec(be, &spec, &splits.train.shape, seed)?;
    model.classes = splits.train.classes.clone();
    model.normalization = splits.stats.clone();
    if let Some((w, stats)) = &init {
        crate::export::init_from(be, &mut model, w, a.reset_head, stats.is_some())?;
    }
    if !a.freeze.is_empty() {
        model.freeze(be, &a.freeze)?;
    }
    model.sync_batch_norm(settings.sync_bn);
    if let (Some(path), Some(meta)) = (&a.resume, &resume) {
        checkpoint::load(be, path, &mut model)?;
        say!(
            "resuming {} after epoch {} (batch {} of the next), step {}",
            path.display(),
            meta.progress.epoch,
            meta.progress.batch_in_epoch,
            meta.progress.step
        );
    }
    let cfg = settings.config.clone();
    let shape: Vec<String> = splits.train.shape.iter().map(|d| d.to_string()).collect();
    let steps = match (cfg.max_steps, cfg.steps_per_epoch) {
        (Some(n), _) => format!(" (at most {n} steps)"),
        (None, Some(n)) => format!(" of at most {n} steps"),
        (None, None) => String::new(),
    };
    say!(
        "training {} ({} parameters) on {} ({} train / {} validation / {} test images of {}) with {} on {} for {} epoch{}{steps}, batch {}",
        model.name,
        wgtrain::nn::spec::group(model.num_params()),
        splits.train.name,
        splits.train.len(),
        splits.val.len(),
        splits.test.len(),
        shape.join("x"),
        cfg.optimizer.preset_name(),
        be.name(),
        cfg.epochs,
        if cfg.epochs == 1 { "" } else { "s" },
        cfg.batch
    );
    say!("run {}", settings.run_id);
    if let Some(line) = frozen_line(&model) {
        say!("{line}");
    }
    if let Some(r) = &replicas {
        say!(
            "data parallel: {} replicas ({}), each {} of every batch of {}; batch norm {}",
            r.size(),
            a.parallel.describe(),
            batch_shares(cfg.batch.resolve(splits.train.len()), r.size()),
            cfg.batch,
            if settings.sync_bn { "synchronised over the replicas" } else { "per replica" }
        );
    }
    let mut trainer = Trainer::new(cfg)
        .loss(CrossEntropy::new(settings.label_smoothing))
        .run_id(settings.run_id.clone())
        .resume(resume.map(|m| m.progress));
    if let Some(r) = &replicas {
        trainer = trainer.replicas(r.clone());
    }
    let report = if lead { fit_lead(trainer, be, a, &settings, &mut model, &splits)? } else { trainer.fit(be, &mut model, &splits)? };
    if !report.interrupted {
        say!("test loss {:.4} ({} images), {:.1} s in all", report.test_loss, splits.test.len(), t0.elapsed().as_secs_f64());
    }
    Ok(report)
}

/// "32 rows" or "32 or 33 rows": each replica's share of a batch.
fn batch_shares(batch: usize, replicas: usize) -> String {
    let (lo, hi) = (batch / replicas.max(1), batch.div_ceil(replicas.max(1)));
    if lo == hi {
        format!("{lo} rows")
    } else {
        format!("{lo} or {hi} rows")
    }
}

/// The trainer of the run (or of replica 0) with every observer the flags ask for.
fn fit_lead<B: Backend>(
    trainer: Trainer<'_, B>,
    be: &B,
    a: &TrainArgs,
    settings: &RunSettings,
    model: &mut Model<B>,
    splits: &data::Splits,
) -> anyhow::Result<TrainReport> {
    let mut trainer = trainer.callback(train::ProgressBar::new()).callback(train::Printer::new());
    if let Some(path) = &a.log {
        trainer = trainer.callback(train::CsvLog::new(path));
    }
    if a.patience > 0 {
        trainer = trainer.callback(train::EarlyStopping::new(a.patience));
    }
    if a.restore_best {
        trainer = trainer.callback(train::RestoreBest::new());
    }
    if let Some(path) = &a.checkpoint {
        trainer = trainer.callback(train::SaveCheckpoints::new(path).with_run(settings.clone()));
        // Ctrl-C or SIGTERM stops after the current step and the checkpoint is written.
        trainer = trainer.callback(train::StopFlag(crate::stop_flag()));
    }
    if let Some(path) = &a.json {
        trainer = trainer.callback(train::JsonReport::new(path).settings(settings.clone()));
    }
    trainer.fit(be, model, splits).map_err(|e| match (&e, &a.checkpoint) {
        (wgtrain::Error::Invalid(m), Some(ck)) if m.starts_with("training diverged") => {
            anyhow::anyhow!("{m}; the last good checkpoint is {}", ck.display())
        }
        _ => e.into(),
    })
}

/// Whether a file can be written at `path`: its folder exists and takes a new file (a probe
/// created and removed there).
pub fn check_writable(flag: &str, path: &std::path::Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if path.is_dir() {
        anyhow::bail!("{flag} {}: is a folder, expected a file name", path.display());
    }
    let probe = dir.join(format!(".wgtrain-write-probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => anyhow::bail!("{flag} {}: cannot write in {}: {e}", path.display(), dir.display()),
    }
}

/// "frozen: 2 tensors, 156 parameters (layers.0.weight, layers.0.bias); 1,234 trained", or
/// None when nothing is frozen.
fn frozen_line<B: Backend>(model: &Model<B>) -> Option<String> {
    let names = model.frozen();
    if names.is_empty() {
        return None;
    }
    let group = wgtrain::nn::spec::group;
    let values = model.num_params() - model.num_trainable();
    let shown = if names.len() > 8 { format!("{}, and {} more", names[..8].join(", "), names.len() - 8) } else { names.join(", ") };
    Some(format!(
        "frozen: {} tensor{}, {} parameters ({shown}); {} trained",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        group(values),
        group(model.num_trainable())
    ))
}
