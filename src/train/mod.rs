//! The trainer: epochs of shuffled, augmented batches from the background loader, one recorded
//! step each (nothing read back inside a step), metrics read once per epoch, validation after
//! each epoch, learning-rate schedule, and the final test. Everything else — printing, the
//! progress bar, CSV and JSON logs, checkpoints, early stopping, restoring the best epoch — is
//! a [`Callback`], plugged in by whoever runs the trainer (the `wgtrain` binary plugs in all of
//! them).
//!
//! ```ignore
//! let report = Trainer::new(TrainConfig { epochs: 5, ..TrainConfig::default() })
//!     .callback(Printer::new())
//!     .callback(EarlyStopping::new(3))
//!     .fit(&gpu, &mut model, &splits)?;
//! ```

pub mod callbacks;
pub mod eval;
pub mod run;

use std::sync::Arc;
use std::time::Instant;

pub use callbacks::{
    Callback, Control, CsvLog, EarlyStopping, EpochEnd, Interrupted, JsonReport, Printer, ProgressBar, RestoreBest, RunInfo,
    SaveCheckpoints, StepInfo, StopFlag,
};
pub use eval::{evaluate, Evaluation};
pub use run::{new_run_id, RunSettings};

use crate::backend::{Backend, T};
use crate::checkpoint::Progress;
use crate::data::loader::{self, Augment};
use crate::data::Splits;
use crate::distributed::{self, Replicas};
use crate::nn::{CrossEntropy, Loss, Metrics, Model, Targets};
use crate::ops::Optimizer;
use crate::{Error, Result};

/// Learning rate as a function of the epoch (0-based), after an optional linear warm-up.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` every `step_size` epochs.
    Step {
        /// Epochs per step.
        step_size: usize,
        /// Factor per step.
        gamma: f32,
    },
    /// Cosine from the base rate to 0 over the run.
    Cosine,
}

impl Schedule {
    /// The names `Schedule::parse` takes.
    pub const NAMES: [&'static str; 3] = ["constant", "step", "cosine"];

    /// A schedule by name; `step` takes its `step_size` and `gamma`.
    pub fn parse(name: &str, step_size: usize, gamma: f32) -> Result<Self> {
        match name {
            "constant" => Ok(Schedule::Constant),
            "step" => Ok(Schedule::Step { step_size, gamma }),
            "cosine" => Ok(Schedule::Cosine),
            other => Err(Error::Invalid(format!("unknown schedule '{other}': expected one of {}", Self::NAMES.join(", ")))),
        }
    }
}

/// The validation figure that "better" refers to (early stopping, restoring the best epoch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Monitor {
    /// Lower validation loss is better.
    #[default]
    Loss,
    /// Higher validation accuracy is better.
    Accuracy,
}

impl Monitor {
    /// The names `Monitor::parse` takes.
    pub const NAMES: [&'static str; 2] = ["loss", "accuracy"];

    /// A monitor by name.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "loss" => Ok(Monitor::Loss),
            "accuracy" => Ok(Monitor::Accuracy),
            other => Err(Error::Invalid(format!("unknown monitor '{other}': expected loss or accuracy"))),
        }
    }

    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Monitor::Loss => "loss",
            Monitor::Accuracy => "accuracy",
        }
    }
}

/// The batch size: a number, or the whole training set (batch gradient descent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BatchSize {
    /// Samples per step.
    Fixed(usize),
    /// The whole training set per step.
    Full,
}

impl BatchSize {
    /// Samples per step on a training set of `n` images (a fixed size larger than the set is
    /// the whole set).
    pub fn resolve(self, n: usize) -> usize {
        match self {
            BatchSize::Fixed(b) => b.min(n),
            BatchSize::Full => n,
        }
    }
}

impl std::fmt::Display for BatchSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchSize::Fixed(n) => write!(f, "{n}"),
            BatchSize::Full => write!(f, "full"),
        }
    }
}

impl std::str::FromStr for BatchSize {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "full" {
            return Ok(BatchSize::Full);
        }
        match s.parse::<usize>() {
            Ok(0) => Err("batch size 0: expected at least 1, or `full`".into()),
            Ok(n) => Ok(BatchSize::Fixed(n)),
            Err(_) => Err(format!("batch size '{s}': expected a positive integer or `full`")),
        }
    }
}

/// How to train. `TrainConfig::default()` is the `wgtrain train` default: 3 epochs of batches
/// of 64 with Adam (PyTorch's defaults), no schedule, no augmentation.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per step.
    pub batch: BatchSize,
    /// The optimizer and its hyperparameters (the schedule scales its `lr`).
    pub optimizer: Optimizer,
    /// Learning rate per epoch.
    pub schedule: Schedule,
    /// Epochs of linear warm-up before the schedule.
    pub warmup_epochs: usize,
    /// Clip gradients to this global norm.
    pub clip_norm: Option<f32>,
    /// Augmentation of training batches.
    pub augment: Augment,
    /// What "better" means for callbacks that watch validation.
    pub monitor: Monitor,
    /// Seeds the batch order, augmentation and dropout.
    pub seed: u64,
    /// Batch size for validation and test passes.
    pub eval_batch: usize,
    /// Read the running loss every this many steps for [`StepInfo::running`] (0: never
    /// inside an epoch; each read waits for the device).
    pub report_every: usize,
    /// Also read it when this many seconds have passed since the last read (0: off). A read
    /// waits for the steps recorded so far, so at 0.5 s the device idles for at most one
    /// step's recording twice a second.
    pub report_seconds: f64,
    /// Train at most this many steps per epoch (each epoch a different random part of the
    /// set; `None`: every full batch).
    pub steps_per_epoch: Option<usize>,
    /// End the run after this many optimizer steps in all (validation, checkpoint and test
    /// still run; a resumed run counts the steps before it).
    pub max_steps: Option<u64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 3,
            batch: BatchSize::Fixed(64),
            optimizer: Optimizer::new(crate::ops::OptimizerKind::Adam),
            schedule: Schedule::Constant,
            warmup_epochs: 0,
            clip_norm: None,
            augment: Augment::default(),
            monitor: Monitor::Loss,
            seed: 1,
            eval_batch: 256,
            report_every: 0,
            report_seconds: 0.0,
            steps_per_epoch: None,
            max_steps: None,
        }
    }
}

impl TrainConfig {
    /// The learning rate of `epoch` (0-based).
    pub fn lr_at(&self, epoch: usize) -> f32 {
        let base = self.optimizer.lr;
        if epoch < self.warmup_epochs {
            return base * (epoch + 1) as f32 / (self.warmup_epochs + 1) as f32;
        }
        let e = epoch - self.warmup_epochs;
        let total = (self.epochs.saturating_sub(self.warmup_epochs)).max(1);
        match self.schedule {
            Schedule::Constant => base,
            Schedule::Step { step_size, gamma } => base * gamma.powi((e / step_size.max(1)) as i32),
            Schedule::Cosine => base * 0.5 * (1.0 + (std::f32::consts::PI * e as f32 / total as f32).cos()),
        }
    }

    /// Rejects settings that cannot train, before any work starts.
    pub fn validate(&self) -> Result<()> {
        self.optimizer.validate()?;
        self.augment.check()?;
        if self.epochs == 0 {
            return Err(Error::Invalid("epochs is 0: expected at least 1".into()));
        }
        if let Some(c) = self.clip_norm {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::Invalid(format!("clip norm is {c}: expected a finite value > 0")));
            }
        }
        if let Schedule::Step { step_size, gamma } = self.schedule {
            if step_size == 0 || !(gamma.is_finite() && gamma > 0.0) {
                return Err(Error::Invalid(format!("step schedule: step size {step_size} and gamma {gamma} must be positive")));
            }
        }
        if self.eval_batch == 0 {
            return Err(Error::Invalid("eval batch size is 0: expected at least 1".into()));
        }
        if self.steps_per_epoch == Some(0) {
            return Err(Error::Invalid("steps per epoch is 0: expected at least 1".into()));
        }
        if self.max_steps == Some(0) {
            return Err(Error::Invalid("max steps is 0: expected at least 1".into()));
        }
        if !(self.report_seconds.is_finite() && self.report_seconds >= 0.0) {
            return Err(Error::Invalid(format!("report interval {} s: expected a finite value >= 0", self.report_seconds)));
        }
        Ok(())
    }
}

/// One epoch's figures.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct EpochLog {
    /// 1-based.
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f32,
    /// Mean training loss per sample.
    pub train_loss: f64,
    /// Training accuracy (of the augmented batches, in training mode).
    pub train_accuracy: f64,
    /// Validation loss, when there is a validation set.
    pub val_loss: Option<f64>,
    /// Validation accuracy.
    pub val_accuracy: Option<f64>,
    /// Training throughput.
    pub images_per_s: f64,
    /// Wall time of the epoch, validation included.
    pub seconds: f64,
}

/// What a run did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainReport {
    /// The run's id (as in the CSV log and the checkpoint).
    pub run_id: String,
    /// One entry per epoch trained in this run.
    pub epochs: Vec<EpochLog>,
    /// The best validation epoch (1-based), by the monitor.
    pub best_epoch: Option<usize>,
    /// Test loss (NaN when interrupted or there is no test set).
    pub test_loss: f64,
    /// Test accuracy (NaN when interrupted or there is no test set).
    pub test_accuracy: f64,
    /// The whole test evaluation (per class, confusion matrix).
    pub test: Option<Evaluation>,
    /// Wall time.
    pub seconds: f64,
    /// Stopped inside an epoch by a callback (then there is no test pass).
    pub interrupted: bool,
    /// Why a callback ended training after an epoch (early stopping), if one did.
    pub stopped_early: Option<String>,
    /// Replicas that trained together (1: no data parallelism).
    pub replicas: usize,
    /// Seconds this replica spent summing gradients with the others (reading them back,
    /// the exchange, writing them again); 0 with one replica.
    pub allreduce_seconds: f64,
}

/// Runs the training loop and tells its callbacks what happens.
pub struct Trainer<'a, B: Backend> {
    /// The settings.
    pub config: TrainConfig,
    loss: Box<dyn Loss<B> + 'a>,
    callbacks: Vec<Box<dyn Callback<B> + 'a>>,
    resume: Option<Progress>,
    run_id: Option<String>,
    replicas: Option<Replicas>,
}

impl<'a, B: Backend> Trainer<'a, B> {
    /// A trainer with softmax cross-entropy and no callbacks.
    pub fn new(config: TrainConfig) -> Self {
        Self { config, loss: Box::new(CrossEntropy::default()), callbacks: Vec::new(), resume: None, run_id: None, replicas: None }
    }

    /// The trainer with another loss.
    pub fn loss(mut self, loss: impl Loss<B> + 'a) -> Self {
        self.loss = Box::new(loss);
        self
    }

    /// The trainer with one more callback (called in the order added).
    pub fn callback(mut self, cb: impl Callback<B> + 'a) -> Self {
        self.callbacks.push(Box::new(cb));
        self
    }

    /// The trainer continuing a saved run (a checkpoint's progress; the model must hold that
    /// checkpoint's parameters and optimizer state).
    pub fn resume(mut self, progress: Option<Progress>) -> Self {
        self.resume = progress;
        self
    }

    /// The trainer naming its run `id` in logs, reports and checkpoints (a resumed run keeps
    /// its id); by default a new one from [`run::new_run_id`].
    pub fn run_id(mut self, id: impl Into<String>) -> Self {
        self.run_id = Some(id.into());
        self
    }

    /// The trainer as one replica of a data-parallel run (see [`crate::distributed`]): every
    /// replica runs `fit` with the same settings and data, on its own device, and the
    /// replicas meet once per step to sum their gradients. Replica 0 starts the others from
    /// its parameters, buffers and optimizer state, and alone validates, tests and calls
    /// `on_epoch_end`, `on_fit_end` and `on_train_end`; a stop asked by its callbacks stops
    /// them all. Give the other replicas no callbacks that write (they would write the same).
    pub fn replicas(mut self, replicas: Replicas) -> Self {
        self.replicas = Some(replicas);
        self
    }

    /// Trains `model` on `splits.train`, validating on `splits.val` after each epoch, then
    /// tests on `splits.test`.
    pub fn fit(&mut self, be: &B, model: &mut Model<B>, splits: &Splits) -> Result<TrainReport> {
        let replicas = self.replicas.clone().filter(|r| r.size() > 1);
        model.set_replicas(replicas.clone());
        let report = self.fit_inner(be, model, splits, replicas.as_ref());
        model.set_replicas(None);
        report
    }

    fn fit_inner(&mut self, be: &B, model: &mut Model<B>, splits: &Splits, replicas: Option<&Replicas>) -> Result<TrainReport> {
        let lead = replicas.is_none_or(|r| r.rank() == 0);
        let cfg = self.config.clone();
        cfg.validate()?;
        // Everything the run will need is checked before the first step, not after it.
        if splits.train.is_empty() {
            return Err(Error::Invalid(format!("the training set of {} is empty: nothing to train on", splits.train.name)));
        }
        for (what, d) in [("training", &splits.train), ("validation", &splits.val), ("test", &splits.test)] {
            if !d.is_empty() && d.shape[..] != model.input[..] {
                return Err(Error::Invalid(format!(
                    "the {what} set of {} has images of {:?}, the model {} takes {:?}",
                    d.name, d.shape, model.name, model.input
                )));
            }
            // Labels past the model's outputs would index past the logits in the loss.
            if let Some(&l) = d.labels.iter().max().filter(|&&l| l as usize >= model.classes()) {
                return Err(Error::Invalid(format!(
                    "the {what} set of {} has label {l} ({} classes), the model {} has {} outputs",
                    d.name,
                    d.classes.len(),
                    model.name,
                    model.classes()
                )));
            }
            if what != "training" && !d.is_empty() && d.classes != splits.train.classes {
                return Err(Error::Invalid(format!(
                    "the {what} set of {} has {} classes ({}), the training set {} ({}): the class lists must be the same",
                    d.name,
                    d.classes.len(),
                    preview(&d.classes),
                    splits.train.classes.len(),
                    preview(&splits.train.classes)
                )));
            }
        }
        let train = Arc::new(splits.train.clone());
        let batch = cfg.batch.resolve(train.len());
        let start = Instant::now();
        let resume = self.resume.clone();
        if resume.is_none() {
            model.reset_optimizer(be, &cfg.optimizer)?;
        }
        // Each replica's share of a batch (evaluation shrinks its batches to fit by itself).
        model.check_batch(replicas.map_or(batch, |r| batch.div_ceil(r.size().max(1))), be.memory().max_tensor_bytes)?;
        if let Some(r) = replicas {
            distributed::check_batch(batch, r.size())?;
            broadcast_state(be, model, r)?;
        }
        let mut allreduce_seconds = 0.0;
        let first_epoch = resume.as_ref().map_or(0, |p| p.epoch);
        let skip = resume.as_ref().map_or(0, |p| p.batch_in_epoch);
        let mut logs = Vec::new();
        let mut best = resume.as_ref().and_then(|p| p.best_val_loss).unwrap_or(f64::INFINITY);
        let mut best_epoch = resume.as_ref().and_then(|p| p.best_epoch);
        let mut since_best = resume.as_ref().map_or(0, |p| p.epochs_since_best);
        let progress = |epoch: usize, batch_in_epoch: usize, step: u64, best: f64, best_epoch: Option<usize>, since_best: usize| Progress {
            epoch,
            batch_in_epoch,
            step,
            seed: cfg.seed,
            best_val_loss: best.is_finite().then_some(best),
            best_epoch,
            epochs_since_best: since_best,
        };
        let full_epoch = loader::batches(train.len(), batch, true);
        let steps_per_epoch = cfg.steps_per_epoch.map_or(full_epoch, |s| s.min(full_epoch));
        let run_id = self.run_id.clone().unwrap_or_else(run::new_run_id);
        let run = RunInfo {
            run_id: run_id.clone(),
            model: model.name.clone(),
            dataset: splits.train.name.clone(),
            seed: cfg.seed,
            epochs: cfg.epochs,
            first_epoch,
            first_step: model.step,
            steps_per_epoch,
            max_steps: cfg.max_steps,
            batch,
            train_samples: splits.train.len(),
            val_samples: splits.val.len(),
            test_samples: splits.test.len(),
            optimizer: cfg.optimizer,
        };
        if cfg.max_steps.is_some_and(|m| model.step >= m) {
            return Err(Error::Invalid(format!(
                "max steps {}: the run has already taken {} steps; raise it to train further",
                cfg.max_steps.unwrap_or(0),
                model.step
            )));
        }
        for cb in &mut self.callbacks {
            cb.on_train_begin(&run)?;
        }
        let mut interrupted = false;
        let mut stopped_early = None;
        let mut last_read = Instant::now();
        for epoch in first_epoch..cfg.epochs {
            let t0 = Instant::now();
            let mut opt = cfg.optimizer;
            opt.lr = cfg.lr_at(epoch);
            model.take_metrics(be)?;
            let mut seen = 0;
            let batches = loader::start(train.clone(), batch, cfg.seed, epoch as u64, cfg.augment, true, true)?;
            let total = steps_per_epoch;
            for cb in &mut self.callbacks {
                cb.on_epoch_begin(epoch, total)?;
            }
            // Each step's loss, kept on the device: read only if the epoch's loss is not finite.
            let mut history = be.arena(&vec![vec![1]; total])?;
            // Where the epoch ended when --max-steps ended it inside (batches trained).
            let mut cut_at = None;
            // The epoch's metrics so far over every replica (data parallel: read each step).
            let mut global = None;
            for (bi, b) in batches.take(total).enumerate() {
                // A resumed epoch regenerates the batches it already trained on (the loader's
                // random stream must advance the same way) and skips them.
                if epoch == first_epoch && bi < skip {
                    continue;
                }
                let rows = match replicas {
                    Some(r) => distributed::shard(b.labels.len(), r.rank(), r.size()),
                    None => 0..b.labels.len(),
                };
                let per = b.x.len() / b.labels.len().max(1);
                let (x, labels) = (&b.x[rows.start * per..rows.end * per], &b.labels[rows.clone()]);
                let probs = b.probs.as_ref().map(|p| {
                    let k = p.len() / b.labels.len().max(1);
                    &p[rows.start * k..rows.end * k]
                });
                let targets = match probs {
                    Some(probs) => Targets::Probs { probs, labels },
                    None => Targets::Labels(labels),
                };
                match replicas {
                    Some(r) => {
                        model.gradients(be, x, targets, self.loss.as_ref())?;
                        let (m, secs) = all_reduce_gradients(be, model, r, rows.len() as f32 / b.labels.len() as f32)?;
                        global = Some(m);
                        allreduce_seconds += secs;
                        model.update(be, &opt, cfg.clip_norm)?;
                    }
                    None => model.train_step(be, x, targets, &opt, self.loss.as_ref(), cfg.clip_norm)?,
                }
                model.record_loss(be, rows.len(), &mut history[bi])?;
                seen += b.labels.len();
                let due = (cfg.report_every > 0 && (bi + 1) % cfg.report_every == 0)
                    || (cfg.report_seconds > 0.0 && last_read.elapsed().as_secs_f64() >= cfg.report_seconds);
                let running = if due {
                    last_read = Instant::now();
                    Some(match global {
                        Some(m) => m,
                        None => model.peek_metrics(be)?,
                    })
                } else {
                    None
                };
                let secs = t0.elapsed().as_secs_f64();
                let info = StepInfo {
                    epoch,
                    epochs: cfg.epochs,
                    step_in_epoch: bi + 1,
                    steps: total,
                    step: model.step,
                    images: seen,
                    images_per_s: seen as f64 / secs.max(1e-9),
                    running,
                };
                let mut stop = false;
                for cb in &mut self.callbacks {
                    if let Control::Stop(_) = cb.on_step(&info)? {
                        stop = true;
                    }
                }
                if let Some(r) = replicas {
                    // Replica 0's callbacks decide for every replica.
                    stop = lead_decides(r, stop)?;
                }
                if stop {
                    let p = progress(epoch, bi + 1, model.step, best, best_epoch, since_best);
                    for cb in &mut self.callbacks {
                        cb.on_interrupt(&mut Interrupted { be, model, progress: &p, optimizer: &cfg.optimizer })?;
                    }
                    interrupted = true;
                    break;
                }
                if cfg.max_steps.is_some_and(|m| model.step >= m) {
                    if bi + 1 < total {
                        cut_at = Some(bi + 1);
                    }
                    stopped_early = Some(format!("stopped at step {}, the step limit of the run", model.step));
                    break;
                }
            }
            if interrupted {
                break;
            }
            let tr = model.take_metrics(be)?; // waits for the epoch's work
            let tr = global.unwrap_or(tr);
            if !tr.loss.is_finite() {
                return Err(diverged(be, &history, model.step, epoch, if epoch == first_epoch { skip } else { 0 }, tr));
            }
            let train_secs = t0.elapsed().as_secs_f64();
            let va = if splits.val.is_empty() || !lead { None } else { Some(evaluate(be, model, &splits.val, cfg.eval_batch, false)?) };
            let log = EpochLog {
                epoch: epoch + 1,
                lr: opt.lr,
                train_loss: tr.loss,
                train_accuracy: tr.accuracy,
                val_loss: va.as_ref().map(|m| m.loss),
                val_accuracy: va.as_ref().map(|m| m.accuracy),
                images_per_s: seen as f64 / train_secs,
                seconds: t0.elapsed().as_secs_f64(),
            };
            let mut improved = false;
            if let Some(m) = &va {
                // `best` is kept as a value to minimise: the loss, or minus the accuracy.
                let score = match cfg.monitor {
                    Monitor::Loss => m.loss,
                    Monitor::Accuracy => -m.accuracy,
                };
                if score < best {
                    best = score;
                    best_epoch = Some(epoch + 1);
                    since_best = 0;
                    improved = true;
                } else {
                    since_best += 1;
                }
            }
            // An epoch cut short by --max-steps is saved as inside that epoch, so a resumed
            // run with more steps finishes it.
            let p = match cut_at {
                Some(b) => progress(epoch, b, model.step, best, best_epoch, since_best),
                None => progress(epoch + 1, 0, model.step, best, best_epoch, since_best),
            };
            let mut end = EpochEnd {
                be,
                model,
                log: &log,
                train: tr,
                progress: &p,
                optimizer: &cfg.optimizer,
                improved,
                epochs_since_best: since_best,
                best_epoch,
                monitor: cfg.monitor,
            };
            for cb in &mut self.callbacks {
                if let Control::Stop(why) = cb.on_epoch_end(&mut end)? {
                    stopped_early.get_or_insert(why);
                }
            }
            if let Some(r) = replicas {
                if lead_decides(r, stopped_early.is_some())? {
                    stopped_early.get_or_insert_with(|| "replica 0 stopped the run".into());
                }
            }
            logs.push(log);
            if stopped_early.is_some() {
                break;
            }
        }
        for cb in &mut self.callbacks {
            cb.on_fit_end(be, model)?;
        }
        let test = if interrupted || splits.test.is_empty() || !lead {
            None
        } else {
            Some(evaluate(be, model, &splits.test, cfg.eval_batch, false)?)
        };
        let report = TrainReport {
            run_id,
            epochs: logs,
            best_epoch,
            test_loss: test.as_ref().map_or(f64::NAN, |t| t.loss),
            test_accuracy: test.as_ref().map_or(f64::NAN, |t| t.accuracy),
            test,
            seconds: start.elapsed().as_secs_f64(),
            interrupted,
            stopped_early,
            replicas: replicas.map_or(1, |r| r.size()),
            allreduce_seconds,
        };
        for cb in &mut self.callbacks {
            cb.on_train_end(&report)?;
        }
        Ok(report)
    }
}

/// Replica 0's parameters, buffers, optimizer state and step count, given to every replica
/// (DDP's start: the replicas begin equal whatever each one loaded or drew).
fn broadcast_state<B: Backend>(be: &B, model: &mut Model<B>, r: &Replicas) -> Result<()> {
    for ts in [&mut model.params, &mut model.buffers, &mut model.state1, &mut model.state2] {
        let mut v = be.download_all(&ts.iter().collect::<Vec<_>>())?;
        r.broadcast(&mut v, 0)?;
        if r.rank() != 0 {
            be.write_all(ts, &v)?;
        }
    }
    // The step in two exact halves of 24 bits (an f32 holds integers up to 2^24 exactly).
    let mut step = [(model.step & 0xFF_FFFF) as f32, (model.step >> 24) as f32];
    r.broadcast(&mut step, 0)?;
    model.step = step[0] as u64 | ((step[1] as u64) << 24);
    Ok(())
}

/// The exchange of a data-parallel step, between [`Model::gradients`] and [`Model::update`]:
/// sums the replicas' gradients, each weighted by its `share` of the global batch (rows it
/// trained on / rows of the batch; so the sum is the gradient of the global batch's mean loss,
/// also when shards differ in size), and the running loss and accuracy counts with them in the
/// same exchange. Returns the metrics over every replica since they were last taken, and the
/// seconds the exchange took: reading the gradients back, the sum, writing them again (the
/// device's backward pass is waited for before the clock starts).
pub fn all_reduce_gradients<B: Backend>(be: &B, model: &mut Model<B>, r: &Replicas, share: f32) -> Result<(Metrics, f64)> {
    be.sync()?;
    let t = Instant::now();
    // The gradients and the running sums in one read-back.
    let (loss_sum, correct, samples) = model.running_sums();
    let tensors: Vec<&T<B>> = model.grads.iter().chain([loss_sum, correct]).collect();
    let mut buf = be.download_all(&tensors)?;
    let n = buf.len() - 2;
    for g in &mut buf[..n] {
        *g *= share;
    }
    buf.push(samples as f32);
    r.all_reduce_sum(&mut buf)?;
    be.write_all(&mut model.grads, &buf[..n])?;
    let samples = buf[n + 2].round() as usize;
    let s = samples.max(1) as f64;
    Ok((Metrics { loss: buf[n] as f64 / s, accuracy: buf[n + 1] as f64 / s, samples }, t.elapsed().as_secs_f64()))
}

/// Replica 0's yes or no, told to every replica.
fn lead_decides(r: &Replicas, yes: bool) -> Result<bool> {
    let mut flag = [if yes { 1.0 } else { 0.0 }];
    r.broadcast(&mut flag, 0)?;
    Ok(flag[0] != 0.0)
}

/// The error of a run whose epoch loss is not finite, naming the first bad step (the step
/// losses are only now read back).
fn diverged<B: Backend>(be: &B, history: &[crate::backend::T<B>], step: u64, epoch: usize, skip: usize, tr: Metrics) -> Error {
    let first_bad = (skip..history.len()).find(|&i| be.download(&history[i]).map(|v| !v[0].is_finite()).unwrap_or(true)).unwrap_or(0);
    let step = (step as usize + first_bad + 1).saturating_sub(history.len());
    Error::Invalid(format!(
        "training diverged: the loss became {} at step {step} (epoch {}, batch {}); lower the learning rate or clip gradients",
        if tr.loss.is_nan() { "NaN" } else { "infinite" },
        epoch + 1,
        first_bad + 1,
    ))
}

/// The first few names of a list, for messages.
fn preview(names: &[String]) -> String {
    let head: Vec<&str> = names.iter().take(4).map(String::as_str).collect();
    if names.len() > 4 {
        format!("{}, ...", head.join(", "))
    } else {
        head.join(", ")
    }
}
