//! The mini-batch loop: epochs of shuffled, augmented batches from the background loader,
//! one recorded step each (nothing read back inside a step), metrics read once per epoch,
//! validation after each epoch, learning-rate schedule, early stopping, and the final test.

use std::sync::Arc;
use std::time::Instant;

use crate::backend::Backend;
use crate::data::loader::{self, Augment};
use crate::data::{Dataset, Splits};
use crate::nn::{Metrics, Model, Targets};
use crate::optim::Optimizer;
use crate::{Error, Result};

/// Learning rate as a function of the epoch (0-based), after an optional linear warm-up.
#[derive(Clone, Copy, Debug, PartialEq, clap::ValueEnum)]
pub enum Schedule {
    Constant,
    /// Multiply by `gamma` every `step_size` epochs.
    Step,
    /// Cosine from the base rate to 0 over the run.
    Cosine,
}

/// The validation figure early stopping watches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Monitor {
    /// Lower validation loss is better.
    #[default]
    Loss,
    /// Higher validation accuracy is better.
    Accuracy,
}

/// The batch size: a number, or the whole training set (batch gradient descent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchSize {
    Fixed(usize),
    Full,
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

#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch: BatchSize,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    pub step_size: usize,
    pub gamma: f32,
    pub warmup_epochs: usize,
    pub label_smoothing: f32,
    pub clip_norm: Option<f32>,
    pub augment: Augment,
    /// Stop after this many epochs without a better validation loss (0: never).
    pub patience: usize,
    /// What "better" means for early stopping and restore-best.
    pub monitor: Monitor,
    /// Put back the parameters of the best validation epoch at the end.
    pub restore_best: bool,
    pub seed: u64,
    /// Print per-epoch lines.
    pub verbose: bool,
    /// Save a checkpoint here after every epoch (and on interruption).
    pub checkpoint: Option<std::path::PathBuf>,
    /// Continue from this point (a loaded checkpoint's progress).
    pub resume: Option<crate::checkpoint::Progress>,
    /// Set (by Ctrl-C) to stop after the current step, saving a checkpoint.
    pub stop: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Append one CSV line per epoch here (header written when the file is new).
    pub log: Option<std::path::PathBuf>,
}

/// One epoch's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub lr: f32,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub images_per_s: f64,
    pub seconds: f64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainReport {
    pub epochs: Vec<EpochLog>,
    pub best_epoch: Option<usize>,
    pub test_loss: f64,
    pub test_accuracy: f64,
    pub seconds: f64,
    /// Stopped early by `stop` (then the test figures are of the model as it was).
    pub interrupted: bool,
}

impl TrainConfig {
    pub fn lr_at(&self, epoch: usize) -> f32 {
        let base = self.optimizer.lr;
        if epoch < self.warmup_epochs {
            return base * (epoch + 1) as f32 / (self.warmup_epochs + 1) as f32;
        }
        let e = epoch - self.warmup_epochs;
        let total = (self.epochs - self.warmup_epochs).max(1);
        match self.schedule {
            Schedule::Constant => base,
            Schedule::Step => base * self.gamma.powi((e / self.step_size.max(1)) as i32),
            Schedule::Cosine => base * 0.5 * (1.0 + (std::f32::consts::PI * e as f32 / total as f32).cos()),
        }
    }
}

/// Loss and accuracy of `model` on `data` (eval mode).
pub fn evaluate<B: Backend>(be: &B, model: &mut Model<B>, data: &Arc<Dataset>, batch: usize) -> Result<Metrics> {
    model.take_metrics(be)?; // start from zero
    for b in loader::start(data.clone(), batch, 0, 0, Augment::default(), false, false)? {
        model.eval_batch(be, &b.x, &b.labels)?;
    }
    model.take_metrics(be)
}

/// Trains `model` on `splits.train`, validating on `splits.val` each epoch, then tests.
pub fn train<B: Backend>(be: &B, model: &mut Model<B>, splits: &Splits, cfg: &TrainConfig) -> Result<TrainReport> {
    cfg.optimizer.validate()?;
    if cfg.epochs == 0 {
        return Err(Error::Invalid("--epochs 0: expected at least 1".into()));
    }
    let train = Arc::new(splits.train.clone());
    let val = Arc::new(splits.val.clone());
    let test = Arc::new(splits.test.clone());
    let batch = match cfg.batch {
        BatchSize::Fixed(b) => b.min(train.len()),
        BatchSize::Full => train.len(),
    };
    let eval_batch = batch.clamp(1, 256);
    let start = Instant::now();
    let resume = cfg.resume.clone();
    if resume.is_none() {
        model.reset_optimizer(be, &cfg.optimizer)?;
    }
    let first_epoch = resume.as_ref().map_or(0, |p| p.epoch);
    let skip = resume.as_ref().map_or(0, |p| p.batch_in_epoch);
    let mut logs = Vec::new();
    let mut best = resume.as_ref().and_then(|p| p.best_val_loss).unwrap_or(f64::INFINITY);
    let mut best_epoch = resume.as_ref().and_then(|p| p.best_epoch);
    let mut since_best = resume.as_ref().map_or(0, |p| p.epochs_since_best);
    let mut best_params = None;
    let progress = |epoch: usize, batch_in_epoch: usize, step: u64, best: f64, best_epoch: Option<usize>, since_best: usize| {
        crate::checkpoint::Progress {
            epoch,
            batch_in_epoch,
            step,
            seed: cfg.seed,
            best_val_loss: best.is_finite().then_some(best),
            best_epoch,
            epochs_since_best: since_best,
        }
    };
    let mut interrupted = false;
    for epoch in first_epoch..cfg.epochs {
        let t0 = Instant::now();
        let mut opt = cfg.optimizer;
        opt.lr = cfg.lr_at(epoch);
        model.take_metrics(be)?;
        let mut seen = 0;
        let batches = loader::start(train.clone(), batch, cfg.seed, epoch as u64, cfg.augment, true, true)?;
        // A bar per epoch on a terminal (hidden otherwise): steps, images/s, time left. Loss and
        // accuracy stay on the device until the epoch ends, so the bar does not show them.
        let bar = if cfg.verbose && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let bar = indicatif::ProgressBar::new(batches.batches as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} steps  {msg}  eta {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("{}/{}", epoch + 1, cfg.epochs));
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        // Each step's loss, kept on the device: read only if the epoch's loss is not finite.
        let mut history = be.arena(&vec![vec![1]; batches.batches])?;
        for (bi, b) in batches.enumerate() {
            // A resumed epoch regenerates the batches it already trained on (the loader's random
            // stream must advance the same way) and skips them.
            if epoch == first_epoch && bi < skip {
                continue;
            }
            let targets = match &b.probs {
                Some(p) => Targets::Probs { probs: p, labels: &b.labels },
                None => Targets::Labels(&b.labels),
            };
            model.train_step(be, &b.x, targets, &opt, cfg.label_smoothing, cfg.clip_norm)?;
            model.record_loss(be, b.labels.len(), &mut history[bi])?;
            seen += b.labels.len();
            bar.set_position(bi as u64 + 1);
            bar.set_message(format!("{:.0} img/s", seen as f64 / t0.elapsed().as_secs_f64()));
            if cfg.stop.as_ref().is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst)) {
                if let Some(path) = &cfg.checkpoint {
                    crate::checkpoint::save(
                        be,
                        path,
                        model,
                        &cfg.optimizer,
                        &progress(epoch, bi + 1, model.step, best, best_epoch, since_best),
                    )?;
                    if cfg.verbose {
                        println!(
                            "interrupted in epoch {} after batch {}: checkpoint saved to {} (continue with --resume)",
                            epoch + 1,
                            bi + 1,
                            path.display()
                        );
                    }
                }
                interrupted = true;
                break;
            }
        }
        bar.finish_and_clear();
        if interrupted {
            break;
        }
        let tr = model.take_metrics(be)?; // waits for the epoch's work
        if !tr.loss.is_finite() {
            // Find the first step whose loss was not finite (only now read back).
            let first_bad = (skip_in(epoch, first_epoch, skip)..history.len())
                .find(|&i| be.download(&history[i]).map(|v| !v[0].is_finite()).unwrap_or(true))
                .unwrap_or(0);
            let step = model.step as usize - (history.len() - first_bad) + 1;
            return Err(Error::Invalid(format!(
                "training diverged: the loss became {} at step {step} (epoch {}, batch {}){}; lower the learning rate or clip gradients",
                if tr.loss.is_nan() { "NaN" } else { "infinite" },
                epoch + 1,
                first_bad + 1,
                cfg.checkpoint.as_ref().map_or(String::new(), |p| format!("; the last good checkpoint is {}", p.display()))
            )));
        }
        let train_secs = t0.elapsed().as_secs_f64();
        let va = if val.is_empty() { None } else { Some(evaluate(be, model, &val, eval_batch)?) };
        let log = EpochLog {
            epoch: epoch + 1,
            lr: opt.lr,
            train_loss: tr.loss,
            train_accuracy: tr.accuracy,
            val_loss: va.map(|m| m.loss),
            val_accuracy: va.map(|m| m.accuracy),
            images_per_s: seen as f64 / train_secs,
            seconds: t0.elapsed().as_secs_f64(),
        };
        if cfg.verbose {
            let v = va.map_or(String::new(), |m| format!("  val loss {:.4} acc {:6.2}%", m.loss, 100.0 * m.accuracy));
            let t = if tr.samples == 0 {
                "train: no batches left after the resume".to_string()
            } else {
                format!("train loss {:.4} acc {:6.2}%", tr.loss, 100.0 * tr.accuracy)
            };
            println!(
                "epoch {:>3}/{}  lr {:.2e}  {t}{v}  {:.0} img/s  {:.1} s",
                epoch + 1,
                cfg.epochs,
                opt.lr,
                log.images_per_s,
                log.seconds
            );
        }
        if let Some(path) = &cfg.log {
            append_csv(path, &log)?;
        }
        logs.push(log);
        let mut stop_early = false;
        if let Some(m) = va {
            // `best` is kept as a value to minimise: the loss, or minus the accuracy.
            let score = match cfg.monitor {
                Monitor::Loss => m.loss,
                Monitor::Accuracy => -m.accuracy,
            };
            if score < best {
                best = score;
                best_epoch = Some(epoch + 1);
                since_best = 0;
                if cfg.restore_best {
                    let params = model.params.iter().map(|p| be.download(p)).collect::<Result<Vec<_>>>()?;
                    let mut stats = Vec::new();
                    for (m, v) in model.running.iter().flatten() {
                        stats.push(be.download(m)?);
                        stats.push(be.download(v)?);
                    }
                    best_params = Some((params, stats));
                }
            } else {
                since_best += 1;
                stop_early = cfg.patience > 0 && since_best >= cfg.patience;
            }
        }
        if let Some(path) = &cfg.checkpoint {
            crate::checkpoint::save(be, path, model, &cfg.optimizer, &progress(epoch + 1, 0, model.step, best, best_epoch, since_best))?;
        }
        if stop_early {
            if cfg.verbose {
                println!(
                    "early stop: no better validation {:?} for {} epochs (best: epoch {})",
                    cfg.monitor,
                    cfg.patience,
                    best_epoch.unwrap_or(0)
                );
            }
            break;
        }
    }
    if let Some((params, stats)) = best_params {
        for (p, v) in model.params.iter_mut().zip(params) {
            be.write(p, &v)?;
        }
        let mut stats = stats.into_iter();
        for (m, v) in model.running.iter_mut().flatten() {
            if let (Some(a), Some(b)) = (stats.next(), stats.next()) {
                be.write(m, &a)?;
                be.write(v, &b)?;
            }
        }
    }
    if interrupted {
        // Stop promptly: the checkpoint is saved; no test pass.
        return Ok(TrainReport {
            epochs: logs,
            best_epoch,
            test_loss: f64::NAN,
            test_accuracy: f64::NAN,
            seconds: start.elapsed().as_secs_f64(),
            interrupted,
        });
    }
    let te = evaluate(be, model, &test, eval_batch)?;
    Ok(TrainReport {
        epochs: logs,
        best_epoch,
        test_loss: te.loss,
        test_accuracy: te.accuracy,
        seconds: start.elapsed().as_secs_f64(),
        interrupted,
    })
}

/// Appends an epoch's figures to a CSV file (with a header when the file is new).
fn append_csv(path: &std::path::Path, log: &EpochLog) -> Result<()> {
    use std::io::Write;
    let new = !path.exists();
    let mut f =
        std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
    let mut text = String::new();
    if new {
        text.push_str("epoch,lr,train_loss,train_accuracy,val_loss,val_accuracy,images_per_s,seconds\n");
    }
    text.push_str(&format!(
        "{},{},{:.6},{:.6},{},{},{:.1},{:.2}\n",
        log.epoch,
        log.lr,
        log.train_loss,
        log.train_accuracy,
        opt(log.val_loss),
        opt(log.val_accuracy),
        log.images_per_s,
        log.seconds
    ));
    f.write_all(text.as_bytes()).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })
}

/// Batches of `epoch` already trained before a resume (they were skipped, not trained again).
fn skip_in(epoch: usize, first_epoch: usize, skip: usize) -> usize {
    if epoch == first_epoch {
        skip
    } else {
        0
    }
}
