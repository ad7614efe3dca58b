//! Callbacks: what happens around the training loop without being in it. The trainer calls
//! every callback, in the order added, at the start, after every step, at the end of every
//! epoch, on an interruption and at the end. The built-in ones:
//! [`Printer`] (a line per epoch), [`ProgressBar`] (on terminals), [`CsvLog`], [`JsonReport`],
//! [`SaveCheckpoints`], [`EarlyStopping`], [`RestoreBest`] and [`StopFlag`] (Ctrl-C).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{EpochLog, Monitor, TrainReport};
use crate::backend::Backend;
use crate::checkpoint::{self, Progress};
use crate::nn::{Metrics, Model};
use crate::ops::Optimizer;
use crate::{Error, Result};

/// What a callback wants next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Stop: after a step, an interruption (no test pass); after an epoch, the end of
    /// training (with a test pass), for the reason given.
    Stop(String),
}

/// The run about to start.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// Epochs in all (a resumed run starts at `first_epoch`).
    pub epochs: usize,
    /// The first epoch this run trains (0-based).
    pub first_epoch: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
    /// Samples per step.
    pub batch: usize,
    /// Training samples.
    pub train_samples: usize,
    /// Validation samples.
    pub val_samples: usize,
    /// Test samples.
    pub test_samples: usize,
    /// The optimizer at its base rate.
    pub optimizer: Optimizer,
}

/// A step just recorded.
#[derive(Clone, Debug)]
pub struct StepInfo {
    /// 0-based epoch.
    pub epoch: usize,
    /// Epochs in all.
    pub epochs: usize,
    /// 1-based step within the epoch.
    pub step_in_epoch: usize,
    /// Steps in the epoch.
    pub steps: usize,
    /// Optimizer steps so far in the run.
    pub step: u64,
    /// Images trained on so far in the epoch.
    pub images: usize,
    /// Training throughput so far in the epoch.
    pub images_per_s: f64,
    /// The epoch's loss and accuracy so far, when the trainer read them at this step
    /// (`TrainConfig::report_every`).
    pub running: Option<Metrics>,
}

/// An epoch just ended (validation done).
pub struct EpochEnd<'a, B: Backend> {
    /// The backend.
    pub be: &'a B,
    /// The model, as trained so far.
    pub model: &'a mut Model<B>,
    /// The epoch's figures.
    pub log: &'a EpochLog,
    /// The epoch's training metrics.
    pub train: Metrics,
    /// Where the run stands (for checkpoints).
    pub progress: &'a Progress,
    /// The optimizer at its base rate.
    pub optimizer: &'a Optimizer,
    /// Whether this epoch was the best so far by the monitor.
    pub improved: bool,
    /// Epochs since the best one.
    pub epochs_since_best: usize,
    /// The best epoch so far (1-based).
    pub best_epoch: Option<usize>,
    /// What "better" means.
    pub monitor: Monitor,
}

/// A run stopped inside an epoch by a callback.
pub struct Interrupted<'a, B: Backend> {
    /// The backend.
    pub be: &'a B,
    /// The model, as trained so far.
    pub model: &'a mut Model<B>,
    /// Where the run stands (inside an epoch).
    pub progress: &'a Progress,
    /// The optimizer at its base rate.
    pub optimizer: &'a Optimizer,
}

/// An observer of training. Every method has a default that does nothing.
#[allow(unused_variables)]
pub trait Callback<B: Backend> {
    /// Before the first epoch.
    fn on_train_begin(&mut self, run: &RunInfo) -> Result<()> {
        Ok(())
    }
    /// Before each epoch (0-based), with its number of steps.
    fn on_epoch_begin(&mut self, epoch: usize, steps: usize) -> Result<()> {
        Ok(())
    }
    /// After each step was recorded (not waited for).
    fn on_step(&mut self, step: &StepInfo) -> Result<Control> {
        Ok(Control::Continue)
    }
    /// After each epoch and its validation.
    fn on_epoch_end(&mut self, end: &mut EpochEnd<'_, B>) -> Result<Control> {
        Ok(Control::Continue)
    }
    /// When a callback stopped the run inside an epoch.
    fn on_interrupt(&mut self, at: &mut Interrupted<'_, B>) -> Result<()> {
        Ok(())
    }
    /// After the last epoch, before the test pass.
    fn on_fit_end(&mut self, be: &B, model: &mut Model<B>) -> Result<()> {
        Ok(())
    }
    /// At the very end.
    fn on_train_end(&mut self, report: &TrainReport) -> Result<()> {
        Ok(())
    }
}

/// Prints a line per epoch (loss, accuracy, validation, images/s, time) and why training
/// stopped early or was interrupted.
#[derive(Debug, Default)]
pub struct Printer {
    epochs: usize,
}

impl Printer {
    /// A printer to standard output.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<B: Backend> Callback<B> for Printer {
    fn on_train_begin(&mut self, run: &RunInfo) -> Result<()> {
        self.epochs = run.epochs;
        Ok(())
    }
    fn on_epoch_end(&mut self, end: &mut EpochEnd<'_, B>) -> Result<Control> {
        let log = end.log;
        let v = match (log.val_loss, log.val_accuracy) {
            (Some(l), Some(a)) => format!("  val loss {l:.4} acc {:6.2}%", 100.0 * a),
            _ => String::new(),
        };
        let t = if end.train.samples == 0 {
            "train: no batches left after the resume".to_string()
        } else {
            format!("train loss {:.4} acc {:6.2}%", log.train_loss, 100.0 * log.train_accuracy)
        };
        println!("epoch {:>3}/{}  lr {:.2e}  {t}{v}  {:.0} img/s  {:.1} s", log.epoch, self.epochs, log.lr, log.images_per_s, log.seconds);
        Ok(Control::Continue)
    }
    fn on_interrupt(&mut self, at: &mut Interrupted<'_, B>) -> Result<()> {
        println!("interrupted in epoch {} after batch {}", at.progress.epoch + 1, at.progress.batch_in_epoch);
        Ok(())
    }
    fn on_train_end(&mut self, report: &TrainReport) -> Result<()> {
        if let Some(why) = &report.stopped_early {
            println!("{why}");
        }
        Ok(())
    }
}

/// A progress bar per epoch (steps, images/s, time left, and the running loss when the
/// trainer reads it), drawn only when standard error is a terminal.
pub struct ProgressBar {
    bar: indicatif::ProgressBar,
    epochs: usize,
}

impl Default for ProgressBar {
    fn default() -> Self {
        Self { bar: indicatif::ProgressBar::hidden(), epochs: 0 }
    }
}

impl ProgressBar {
    /// A bar on standard error.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<B: Backend> Callback<B> for ProgressBar {
    fn on_train_begin(&mut self, run: &RunInfo) -> Result<()> {
        self.epochs = run.epochs;
        Ok(())
    }
    fn on_epoch_begin(&mut self, epoch: usize, steps: usize) -> Result<()> {
        self.bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let bar = indicatif::ProgressBar::new(steps as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} steps  {msg}  eta {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("{}/{}", epoch + 1, self.epochs));
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        Ok(())
    }
    fn on_step(&mut self, s: &StepInfo) -> Result<Control> {
        self.bar.set_position(s.step_in_epoch as u64);
        let running = s.running.map_or(String::new(), |m| format!("loss {:.4} acc {:.2}%  ", m.loss, 100.0 * m.accuracy));
        self.bar.set_message(format!("{running}{:.0} img/s", s.images_per_s));
        Ok(Control::Continue)
    }
    fn on_epoch_end(&mut self, _: &mut EpochEnd<'_, B>) -> Result<Control> {
        self.bar.finish_and_clear();
        Ok(Control::Continue)
    }
    fn on_interrupt(&mut self, _: &mut Interrupted<'_, B>) -> Result<()> {
        self.bar.finish_and_clear();
        Ok(())
    }
}

/// Appends one CSV line of an epoch's figures to a file (with a header when the file is new).
#[derive(Debug)]
pub struct CsvLog {
    path: PathBuf,
}

impl CsvLog {
    /// Logs to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The header line of the file.
    pub const HEADER: &'static str = "epoch,lr,train_loss,train_accuracy,val_loss,val_accuracy,images_per_s,seconds";

    /// Appends `log` to `path`.
    pub fn append(path: &Path, log: &EpochLog) -> Result<()> {
        use std::io::Write;
        let new = !path.exists();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
        let mut text = String::new();
        if new {
            text.push_str(Self::HEADER);
            text.push('\n');
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
}

impl<B: Backend> Callback<B> for CsvLog {
    fn on_epoch_end(&mut self, end: &mut EpochEnd<'_, B>) -> Result<Control> {
        Self::append(&self.path, end.log)?;
        Ok(Control::Continue)
    }
}

/// Writes the final report (every epoch, the test figures) as JSON.
#[derive(Debug)]
pub struct JsonReport {
    path: PathBuf,
}

impl JsonReport {
    /// Writes to `path` at the end.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl<B: Backend> Callback<B> for JsonReport {
    fn on_train_end(&mut self, report: &TrainReport) -> Result<()> {
        let text = serde_json::to_string_pretty(report).map_err(|e| Error::Invalid(format!("{}: {e}", self.path.display())))?;
        crate::atomic::write(&self.path, text.as_bytes())
    }
}

/// Saves a checkpoint (atomically) after every epoch and when the run is interrupted.
#[derive(Debug)]
pub struct SaveCheckpoints {
    path: PathBuf,
}

impl SaveCheckpoints {
    /// Saves to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl<B: Backend> Callback<B> for SaveCheckpoints {
    fn on_epoch_end(&mut self, end: &mut EpochEnd<'_, B>) -> Result<Control> {
        checkpoint::save(end.be, &self.path, end.model, end.optimizer, end.progress)?;
        Ok(Control::Continue)
    }
    fn on_interrupt(&mut self, at: &mut Interrupted<'_, B>) -> Result<()> {
        checkpoint::save(at.be, &self.path, at.model, at.optimizer, at.progress)?;
        println!("checkpoint saved to {}", self.path.display());
        Ok(())
    }
}

/// Stops training when the monitored validation figure has not improved for `patience` epochs.
#[derive(Debug)]
pub struct EarlyStopping {
    /// Epochs without improvement allowed.
    pub patience: usize,
}

impl EarlyStopping {
    /// Stops after `patience` epochs without a better validation figure.
    pub fn new(patience: usize) -> Self {
        Self { patience }
    }
}

impl<B: Backend> Callback<B> for EarlyStopping {
    fn on_epoch_end(&mut self, end: &mut EpochEnd<'_, B>) -> Result<Control> {
        if self.patience > 0 && end.log.val_loss.is_some() && end.epochs_since_best >= self.patience {
            return Ok(Control::Stop(format!(
                "early stop: no better validation {} for {} epochs (best: epoch {})",
                end.monitor.name(),
                self.patience,
                end.best_epoch.unwrap_or(0)
            )));
        }
        Ok(Control::Continue)
    }
}

/// Keeps the parameters and buffers of the best validation epoch and puts them back at the
/// end (before the test pass).
#[derive(Debug, Default)]
pub struct RestoreBest {
    best: Option<(Vec<Vec<f32>>, Vec<Vec<f32>>)>,
}

impl RestoreBest {
    /// Restores the best epoch at the end.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<B: Backend> Callback<B> for RestoreBest {
    fn on_epoch_end(&mut self, end: &mut EpochEnd<'_, B>) -> Result<Control> {
        if end.improved {
            let params = end.model.params.iter().map(|p| end.be.download(p)).collect::<Result<Vec<_>>>()?;
            let buffers = end.model.buffers.iter().map(|b| end.be.download(b)).collect::<Result<Vec<_>>>()?;
            self.best = Some((params, buffers));
        }
        Ok(Control::Continue)
    }
    fn on_fit_end(&mut self, be: &B, model: &mut Model<B>) -> Result<()> {
        if let Some((params, buffers)) = self.best.take() {
            for (p, v) in model.params.iter_mut().zip(params) {
                be.write(p, &v)?;
            }
            for (b, v) in model.buffers.iter_mut().zip(buffers) {
                be.write(b, &v)?;
            }
        }
        Ok(())
    }
}

/// Interrupts training after the current step once `flag` is set (by a Ctrl-C handler).
#[derive(Debug, Clone)]
pub struct StopFlag(pub Arc<AtomicBool>);

impl<B: Backend> Callback<B> for StopFlag {
    fn on_step(&mut self, _: &StepInfo) -> Result<Control> {
        if self.0.load(Ordering::SeqCst) {
            return Ok(Control::Stop("interrupted".into()));
        }
        Ok(Control::Continue)
    }
}
