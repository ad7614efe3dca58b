//! The experiments of deep-learning practice, built on the library: batch size, optimizers,
//! cross-validation, bagging, boosting and regularization. Each takes a [`Setup`] (the data,
//! the model, the base training settings, the seeds) and writes a results folder
//! ([`results::Results`]: `settings.json`, `results.csv`, `report.md`, PNG plots), resuming
//! where an interrupted run stopped.

pub mod bagging;
pub mod batch_size;
pub mod boosting;
pub mod cv;
pub mod optimizers;
pub mod paths;
pub mod regularization;
pub mod results;
pub mod stats;

use std::path::Path;

use crate::data::{self, Dataset, Source, Splits};
use crate::nn::{CrossEntropy, Model, ModelSpec};
use crate::train::{self, evaluate, Evaluation, TrainConfig, TrainReport, Trainer};
use crate::{Backend, Result};

/// What every experiment trains: the data, the model, the base settings and the repeats.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Training images as loaded (not normalised: each run normalises with the per-channel
    /// statistics of its own training part).
    pub train: Dataset,
    /// Test images as loaded; looked at only to report a finished model.
    pub test: Dataset,
    /// The model.
    pub model: ModelSpec,
    /// The base training settings (epochs, batch, optimizer, augmentation, seed, ...).
    pub config: TrainConfig,
    /// Label smoothing of the cross-entropy.
    pub label_smoothing: f32,
    /// Share of each run's training data held out for validation (early stopping, curves).
    pub val_fraction: f64,
    /// Early stopping after this many epochs without a better validation loss (0: off),
    /// restoring the best epoch's parameters.
    pub patience: usize,
    /// Repeats with seeds `config.seed`, `config.seed + 1`, ...
    pub seeds: usize,
}

impl Setup {
    /// The seeds of the repeats.
    pub fn seeds(&self) -> Vec<u64> {
        (0..self.seeds.max(1) as u64).map(|k| self.config.seed + k).collect()
    }

    /// Everything that decides the results, for `settings.json`.
    pub fn settings(&self) -> serde_json::Value {
        serde_json::json!({
            "data": {
                "name": self.train.name,
                "shape": self.train.shape,
                "classes": self.train.classes,
                "train_images": self.train.len(),
                "test_images": self.test.len(),
                "train_per_class": class_counts(&self.train),
                "test_per_class": class_counts(&self.test),
            },
            "model": self.model,
            "training": self.config,
            "label_smoothing": self.label_smoothing,
            "val_fraction": self.val_fraction,
            "patience": self.patience,
            "seeds": self.seeds(),
        })
    }

    /// Splits for a run that trains on `indices` of the training images (all of them for
    /// `None`): `val_fraction` held out for validation, all normalised by the training part.
    pub fn splits(&self, indices: Option<&[usize]>, seed: u64) -> Result<Splits> {
        let train = match indices {
            Some(i) => self.train.subset(i),
            None => self.train.clone(),
        };
        data::split(train, self.test.clone(), self.val_fraction, seed)
    }

    /// A fresh model of `spec` initialised from `seed`.
    pub fn build<B: Backend>(&self, be: &B, spec: &ModelSpec, seed: u64, splits: &Splits) -> Result<Model<B>> {
        let mut m = Model::from_spec(be, spec, &self.train.shape, seed)?;
        m.classes = self.train.classes.clone();
        m.normalization = splits.stats.clone();
        Ok(m)
    }

    /// A one-line description for titles: `default on mnist (2000 train / 1000 test), adam lr 1e-3, 3 epochs, batch 64`.
    pub fn describe(&self) -> String {
        format!(
            "{} on {} ({} train / {} test), {} lr {:.0e}, {} epoch{}, batch {}",
            self.model.name,
            self.train.name,
            self.train.len(),
            self.test.len(),
            self.config.optimizer.preset_name(),
            self.config.optimizer.lr,
            self.config.epochs,
            if self.config.epochs == 1 { "" } else { "s" },
            self.config.batch
        )
    }
}

/// Images per class.
pub fn class_counts(d: &Dataset) -> Vec<usize> {
    let mut c = vec![0; d.classes.len()];
    for &l in &d.labels {
        c[l as usize] += 1;
    }
    c
}

/// Loads a data set and takes seeded, stratified subsets of `train_size` training and
/// `test_size` test images (all of them where a size is `None`). The built-in shapes are
/// generated at the size asked for (here default 5000 train, a fifth of that for test).
pub fn load_data(
    source: Source,
    dir: Option<&Path>,
    image_size: usize,
    train_size: Option<usize>,
    test_size: Option<usize>,
    seed: u64,
) -> Result<(Dataset, Dataset)> {
    let train_size = if source == Source::Shapes { train_size.or(Some(5000)) } else { train_size };
    data::spec::load_subsets(source, dir, image_size, train_size, test_size, seed)
}

/// The device and program, for `settings.json`.
pub fn environment(device: &str) -> serde_json::Value {
    serde_json::json!({
        "device": device,
        "wgtrain": env!("CARGO_PKG_VERSION"),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "started_unix_s": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    })
}

/// What one training run gives the experiments.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RunSummary {
    /// Per-epoch figures (train loss of the training batches, validation loss and accuracy).
    pub epochs: Vec<train::EpochLog>,
    /// The best validation epoch, when there was validation.
    pub best_epoch: Option<usize>,
    /// The final model on its whole training part, in eval mode (no augmentation, no dropout).
    pub train: Evaluation,
    /// The final model on the test set.
    pub test: Evaluation,
    /// Wall time of the training, evaluations included.
    pub seconds: f64,
    /// Why it stopped early, if it did.
    pub stopped_early: Option<String>,
    /// The training loss about eight times per epoch: (epochs done, as a fraction; mean loss
    /// of the steps since the previous point).
    pub curve: Vec<(f64, f64)>,
}

impl RunSummary {
    /// Train accuracy minus test accuracy.
    pub fn gap(&self) -> f64 {
        self.train.accuracy - self.test.accuracy
    }
}

/// Trains `model` on `splits` with `config` (printing one line per epoch) and evaluates the
/// result on its training part and on the test set; `keep_probabilities` keeps the test
/// set's per-sample probabilities.
pub fn train_and_test<B: Backend>(
    be: &B,
    model: &mut Model<B>,
    splits: &Splits,
    config: &TrainConfig,
    label_smoothing: f32,
    patience: usize,
    keep_probabilities: bool,
) -> Result<RunSummary> {
    let t0 = std::time::Instant::now();
    let mut config = config.clone();
    let batch = config.batch.resolve(splits.train.len());
    config.report_every = (data::loader::batches(splits.train.len(), batch, true) / 8).max(1);
    let mut curve = LossCurve::default();
    let mut trainer = Trainer::new(config.clone())
        .callback(&mut curve)
        .loss(CrossEntropy::new(label_smoothing))
        .callback(train::ProgressBar::new())
        .callback(train::Printer::new());
    if patience > 0 && !splits.val.is_empty() {
        trainer = trainer.callback(train::EarlyStopping::new(patience)).callback(train::RestoreBest::new());
    }
    let report: TrainReport = trainer.fit(be, model, splits)?;
    drop(trainer);
    let train = evaluate(be, model, &splits.train, config.eval_batch, false)?;
    let test =
        if splits.test.is_empty() { not_evaluated() } else { evaluate(be, model, &splits.test, config.eval_batch, keep_probabilities)? };
    println!(
        "    train acc {:.2}%  test acc {:.2}%  test loss {:.4}  ({:.1} s)",
        100.0 * train.accuracy,
        100.0 * test.accuracy,
        test.loss,
        t0.elapsed().as_secs_f64()
    );
    Ok(RunSummary {
        epochs: report.epochs,
        best_epoch: report.best_epoch,
        train,
        test,
        seconds: t0.elapsed().as_secs_f64(),
        stopped_early: report.stopped_early,
        curve: curve.points,
    })
}

/// The evaluation of no data (NaN figures), for a run with no test set.
fn not_evaluated() -> Evaluation {
    Evaluation { loss: f64::NAN, accuracy: f64::NAN, per_class: Vec::new(), confusion: Vec::new(), samples: 0, probabilities: None }
}

/// Records the training loss over windows of steps, from the trainer's running figures
/// (`TrainConfig::report_every`): the mean loss of the steps since the previous reading.
#[derive(Default)]
pub struct LossCurve {
    /// (epochs done, as a fraction; mean loss over the window).
    pub points: Vec<(f64, f64)>,
    last: (f64, usize),
}

impl<B: Backend> train::Callback<B> for &mut LossCurve {
    fn on_epoch_begin(&mut self, _epoch: usize, _steps: usize) -> Result<()> {
        self.last = (0.0, 0);
        Ok(())
    }
    fn on_step(&mut self, s: &train::StepInfo) -> Result<train::Control> {
        if let Some(m) = s.running {
            let (loss, n) = self.last;
            if m.samples > n {
                let window = (m.loss * m.samples as f64 - loss * n as f64) / (m.samples - n) as f64;
                self.points.push((s.epoch as f64 + s.step_in_epoch as f64 / s.steps as f64, window));
            }
            self.last = (m.loss, m.samples);
        }
        Ok(train::Control::Continue)
    }
}
