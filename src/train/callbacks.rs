//! Callbacks: what happens around the training loop without being in it. The trainer calls
//! every callback, in the order added, at the start, after every step, at the end of every
//! epoch, on an interruption and at the end. The built-in ones:
//! [`Printer`] (a line per epoch), [`ProgressBar`] (on terminals), [`CsvLog`], [`JsonReport`],
//! [`SaveCheckpoints`], [`EarlyStopping`], [`RestoreBest`] and [`StopFlag`] (Ctrl-C).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{EpochLog, Monitor, RunSettings, TrainReport};
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
    /// The run's id (kept by a resumed run).
    pub run_id: String,
    /// The model's name.
    pub model: String,
    /// The training set's name.
    pub dataset: String,
    /// The run's seed.
    pub seed: u64,
    /// Epochs in all (a resumed run starts at `first_epoch`).
    pub epochs: usize,
    /// The first epoch this run trains (0-based).
    pub first_epoch: usize,
    /// Optimizer steps taken before this run (a resumed run's).
    pub first_step: u64,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
    /// The run ends after this many optimizer steps in all, if set.
    pub max_steps: Option<u64>,
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

/// Live progress of an epoch: steps, the running loss and accuracy (when the trainer reads
/// them: `TrainConfig::report_every` / `report_seconds`), images/s and the time left in the
/// epoch and in the run. On a terminal it is a bar on standard error redrawn in place;
/// elsewhere (a log file, CI) a plain line every `plain_every` seconds.
pub struct ProgressBar {
    bar: indicatif::ProgressBar,
    run: Option<RunInfo>,
    terminal: bool,
    plain_every: f64,
    last_plain: std::time::Instant,
    last_running: Option<Metrics>,
}

impl Default for ProgressBar {
    fn default() -> Self {
        Self {
            bar: indicatif::ProgressBar::hidden(),
            run: None,
            terminal: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            plain_every: 10.0,
            last_plain: std::time::Instant::now(),
            last_running: None,
        }
    }
}

impl ProgressBar {
    /// A bar on standard error (plain lines every 10 s when it is not a terminal).
    pub fn new() -> Self {
        Self::default()
    }

    /// Plain lines (never a bar) every `seconds` (0: none), whatever standard error is.
    pub fn plain(seconds: f64) -> Self {
        Self { terminal: false, plain_every: seconds, ..Self::default() }
    }

    /// The progress text of a step: `loss 0.4123 acc 87.50%  212 img/s  eta 0:41 (run 3:20)`.
    pub fn describe(run: Option<&RunInfo>, s: &StepInfo, running: Option<Metrics>) -> String {
        let mut text = String::new();
        if let Some(m) = running {
            text.push_str(&format!("loss {:.4} acc {:.2}%  ", m.loss, 100.0 * m.accuracy));
        }
        text.push_str(&format!("{:.0} img/s", s.images_per_s));
        // Time per step so far in this epoch, times the steps left (validation not counted).
        let trained = s.images.max(1) as f64 / s.images_per_s.max(1e-9);
        let steps_done = s.step_in_epoch.max(1) as f64;
        let per_step = trained / steps_done;
        let left_epoch = s.steps.saturating_sub(s.step_in_epoch) as f64 * per_step;
        text.push_str(&format!("  eta {}", clock(left_epoch)));
        if let Some(r) = run {
            let mut left_steps = s.steps.saturating_sub(s.step_in_epoch) + (s.epochs.saturating_sub(s.epoch + 1)) * r.steps_per_epoch;
            if let Some(m) = r.max_steps {
                left_steps = left_steps.min(m.saturating_sub(s.step) as usize);
            }
            let left_run = left_steps as f64 * per_step;
            if left_run > left_epoch + 0.5 {
                text.push_str(&format!(" (run {})", clock(left_run)));
            }
        }
        text
    }
}

/// Seconds as `m:ss` or `h:mm:ss`.
fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

impl<B: Backend> Callback<B> for ProgressBar {
    fn on_train_begin(&mut self, run: &RunInfo) -> Result<()> {
        self.run = Some(run.clone());
        self.last_plain = std::time::Instant::now();
        Ok(())
    }
    fn on_epoch_begin(&mut self, epoch: usize, steps: usize) -> Result<()> {
        let epochs = self.run.as_ref().map_or(0, |r| r.epochs);
        self.last_running = None;
        self.bar = if self.terminal {
            let bar = indicatif::ProgressBar::new(steps as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("epoch {prefix} [{bar:25}] {pos}/{len}  {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("{}/{}", epoch + 1, epochs));
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        Ok(())
    }
    fn on_step(&mut self, s: &StepInfo) -> Result<Control> {
        if s.running.is_some() {
            self.last_running = s.running;
        }
        if self.terminal {
            self.bar.set_position(s.step_in_epoch as u64);
            self.bar.set_message(Self::describe(self.run.as_ref(), s, self.last_running));
        } else if self.plain_every > 0.0 && self.last_plain.elapsed().as_secs_f64() >= self.plain_every {
            self.last_plain = std::time::Instant::now();
            eprintln!(
                "epoch {}/{} step {}/{}  {}",
                s.epoch + 1,
                s.epochs,
                s.step_in_epoch,
                s.steps,
                Self::describe(self.run.as_ref(), s, self.last_running)
            );
        }
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
/// Every line starts with the run's id and settings (model, data set, optimizer, base rate,
/// batch, seed), so runs appended to one file can be told apart (`wgtrain plot` overlays them).
#[derive(Debug)]
pub struct CsvLog {
    path: PathBuf,
    run: Option<RunInfo>,
}

impl CsvLog {
    /// Logs to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), run: None }
    }

    /// The header line of the file.
    pub const HEADER: &'static str =
        "run,model,dataset,optimizer,base_lr,batch,seed,epoch,lr,train_loss,train_accuracy,val_loss,val_accuracy,images_per_s,seconds";

    /// Refuses a file that exists with another header (an older log, or another file), which
    /// appending would make unreadable.
    pub fn check(path: &Path) -> Result<()> {
        let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
        match text.lines().next() {
            None => Ok(()),
            Some(h) if h.trim_end() == Self::HEADER => Ok(()),
            Some(h) => Err(Error::Invalid(format!(
                "{}: its header is '{}', a wgtrain log's is '{}': log to another file",
                path.display(),
                h.chars().take(120).collect::<String>(),
                Self::HEADER
            ))),
        }
    }

    /// Appends `log` of `run` to `path`.
    pub fn append(path: &Path, run: &RunInfo, log: &EpochLog) -> Result<()> {
        use std::io::Write;
        Self::check(path)?;
        let new = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
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
            "{},{},{},{},{},{},{},{},{},{:.6},{:.6},{},{},{:.1},{:.2}\n",
            csv_field(&run.run_id),
            csv_field(&run.model),
            csv_field(&run.dataset),
            run.optimizer.preset_name(),
            run.optimizer.lr,
            run.batch,
            run.seed,
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

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl<B: Backend> Callback<B> for CsvLog {
    fn on_train_begin(&mut self, run: &RunInfo) -> Result<()> {
        Self::check(&self.path)?;
        self.run = Some(run.clone());
        Ok(())
    }
    fn on_epoch_end(&mut self, end: &mut EpochEnd<'_, B>) -> Result<Control> {
        let run = self.run.as_ref().ok_or_else(|| Error::Invalid("CsvLog: an epoch ended before the run began".into()))?;
        Self::append(&self.path, run, end.log)?;
        Ok(Control::Continue)
    }
}

/// Writes the final report (every epoch, the test figures) as JSON, with the run's id,
/// model, data set, seed, batch and optimizer, and its full settings when given.
#[derive(Debug)]
pub struct JsonReport {
    path: PathBuf,
    settings: Option<RunSettings>,
    run: Option<RunInfo>,
}

impl JsonReport {
    /// Writes to `path` at the end.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), settings: None, run: None }
    }

    /// The report with the run's full settings in it (under `settings`).
    pub fn settings(mut self, settings: RunSettings) -> Self {
        self.settings = Some(settings);
        self
    }
}

/// What [`JsonReport`] writes.
#[derive(serde::Serialize)]
struct FullReport<'a> {
    #[serde(flatten)]
    report: &'a TrainReport,
    model: Option<&'a str>,
    dataset: Option<&'a str>,
    seed: Option<u64>,
    batch: Option<usize>,
    optimizer: Option<&'a Optimizer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    settings: Option<&'a RunSettings>,
}

impl<B: Backend> Callback<B> for JsonReport {
    fn on_train_begin(&mut self, run: &RunInfo) -> Result<()> {
        self.run = Some(run.clone());
        Ok(())
    }
    fn on_train_end(&mut self, report: &TrainReport) -> Result<()> {
        let run = self.run.as_ref();
        let full = FullReport {
            report,
            model: run.map(|r| r.model.as_str()),
            dataset: run.map(|r| r.dataset.as_str()),
            seed: run.map(|r| r.seed),
            batch: run.map(|r| r.batch),
            optimizer: run.map(|r| &r.optimizer),
            settings: self.settings.as_ref(),
        };
        let text = serde_json::to_string_pretty(&full).map_err(|e| Error::Invalid(format!("{}: {e}", self.path.display())))?;
        crate::atomic::write(&self.path, text.as_bytes())
    }
}

/// Saves a checkpoint (atomically) after every epoch and when the run is interrupted.
#[derive(Debug)]
pub struct SaveCheckpoints {
    path: PathBuf,
    run: Option<RunSettings>,
}

impl SaveCheckpoints {
    /// Saves to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), run: None }
    }

    /// Records `run` (data and settings) in every checkpoint, for `eval`, `predict` and
    /// `--resume`.
    pub fn with_run(mut self, run: RunSettings) -> Self {
        self.run = Some(run);
        self
    }
}

impl<B: Backend> Callback<B> for SaveCheckpoints {
    fn on_epoch_end(&mut self, end: &mut EpochEnd<'_, B>) -> Result<Control> {
        checkpoint::save_run(end.be, &self.path, end.model, end.optimizer, end.progress, self.run.as_ref())?;
        Ok(Control::Continue)
    }
    fn on_interrupt(&mut self, at: &mut Interrupted<'_, B>) -> Result<()> {
        checkpoint::save_run(at.be, &self.path, at.model, at.optimizer, at.progress, self.run.as_ref())?;
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
