//! Boosting: multi-class AdaBoost by SAMME (Zhu, Zou, Rosset and Hastie 2009) with small CNNs
//! as the weak learners ([`weak_cnn`] by default in the command line).
//!
//! The learners are trained one after the other. Every training image carries a weight
//! (uniform at first). Learner t trains on N images drawn with replacement by the current
//! weights ([`stats::weighted_resample`]): this is boosting by *resampling*, the weights
//! never enter the loss. It then predicts the whole training set (every image once,
//! unweighted), and [`stats::samme_round`] turns its mistakes into its weighted error
//! err = Σ w_i [wrong], its vote alpha = ln((1 - err) / err) + ln(K - 1) and the next weights
//! (w_i e^alpha on the mistakes, renormalised). A learner no better than chance (alpha <= 0,
//! err >= 1 - 1/K) is left out and the sequence stops; so does one that fits the weighted
//! training set perfectly (err 0: nothing left to reweight, and its vote would outweigh any
//! later learner's). The ensemble predicts by the alpha-weighted vote of its learners.
//!
//! Each learner is one cached run ([`Results::run`], key `r{repeat}-learner{t}`) whose value
//! ([`Learner`]) holds its predictions on the training and test sets, its error, its alpha
//! and the weights after its round, so an interrupted sequence continues where it stopped.

use serde::{Deserialize, Serialize};

use super::results::{fmt, num_pm, pct_pm, table, Results};
use super::{stats, train_and_test, Setup};
use crate::data::{self, Label};
use crate::nn::{LayerSpec, ModelSpec};
use crate::plot::{save_panels, LinePlot, Scale, Series};
use crate::train::{evaluate, TrainConfig};
use crate::{Backend, Error, Result};

/// What to run.
#[derive(Clone, Debug, Serialize)]
pub struct Options {
    /// The most learners, M (1 to [`MAX_LEARNERS`]); fewer when the sequence stops early.
    pub learners: usize,
    /// The weak learner; `None` uses `setup.model`.
    pub weak_model: Option<ModelSpec>,
}

impl Default for Options {
    /// 10 learners of `setup.model`.
    fn default() -> Self {
        Self { learners: 10, weak_model: None }
    }
}

/// The most learners: repeat r's seeds start 1000 r above the base seed (see
/// [`learner_seed`]), so more would share seeds with the next repeat.
pub const MAX_LEARNERS: usize = 1000;

/// A deliberately weak CNN for boosting: conv 3x3 -> 4 channels (padding 1), ReLU, max pool
/// 4x4 (stride 4), flatten, linear `classes`. About 2000 parameters on 28x28 grey images
/// (4 x 7 x 7 features into the classifier): it learns the coarse layout of an image and
/// little more, so one learner leaves plenty of mistakes for the next to concentrate on.
/// Named `weak-cnn`.
pub fn weak_cnn(classes: usize) -> ModelSpec {
    ModelSpec {
        name: "weak-cnn".into(),
        layers: vec![
            LayerSpec::conv(4, 3, 1, 1),
            LayerSpec::Relu,
            LayerSpec::max_pool(4, 4, 0),
            LayerSpec::Flatten,
            LayerSpec::linear(classes),
        ],
    }
}

/// The seed of learner `learner` (0-based) in repeat `repeat` (0-based, one per
/// [`Setup::seeds`]): `setup.config.seed + 1000 repeat + learner`. It seeds the learner's
/// weighted resample, its initial parameters, batch order, augmentation and dropout.
pub fn learner_seed(setup: &Setup, repeat: usize, learner: usize) -> u64 {
    setup.config.seed + 1000 * repeat as u64 + learner as u64
}

/// One boosting round, as cached in `runs/r{repeat}-learner{t}.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Learner {
    /// 1-based position in the sequence.
    pub learner: usize,
    /// Its seed ([`learner_seed`]).
    pub seed: u64,
    /// Distinct training images in its weighted resample (of N draws).
    pub distinct: usize,
    /// Its weighted training error under the weights it was trained with (SAMME's err,
    /// clamped to [1e-10, 1 - 1e-10]).
    pub error: f64,
    /// Its vote, ln((1 - err) / err) + ln(K - 1); <= 0 means no better than chance.
    pub alpha: f64,
    /// The sample weights after its round (sum 1), which the next learner resamples by.
    pub weights: Vec<f64>,
    /// Accuracy on its own resample (duplicates counted as often as drawn), eval mode.
    pub resample_accuracy: f64,
    /// Accuracy on the whole training set, every image once (unweighted).
    pub train_accuracy: f64,
    /// Test accuracy.
    pub test_accuracy: f64,
    /// Mean test cross-entropy (nats).
    pub test_loss: f64,
    /// Its class for every training image, in `setup.train` order.
    pub train_predictions: Vec<Label>,
    /// Its class for every test image.
    pub test_predictions: Vec<Label>,
    /// Wall time of training and evaluation.
    pub seconds: f64,
}

/// Trains learner `t` (0-based) of repeat `repeat` of `spec` on N images resampled by
/// `weights` (one per training image), and scores its round. The learner trains on its whole
/// resample (no validation split, so `setup.val_fraction` and `setup.patience` are not used);
/// the resample's per-channel statistics normalise its training, test and full training-set
/// images alike.
pub fn train_learner<B: Backend>(be: &B, setup: &Setup, spec: &ModelSpec, repeat: usize, t: usize, weights: &[f64]) -> Result<Learner> {
    let seed = learner_seed(setup, repeat, t);
    let n = setup.train.len();
    let k = setup.train.classes.len();
    let sample = stats::weighted_resample(weights, n, seed)?;
    let mut drawn = vec![false; n];
    sample.iter().for_each(|&i| drawn[i] = true);
    let splits = data::split(setup.train.subset(&sample), setup.test.clone(), 0.0, seed)?;
    let mut model = setup.build(be, spec, seed, &splits)?;
    let config = TrainConfig { seed, ..setup.config.clone() };
    let s = train_and_test(be, &mut model, &splits, &config, setup.label_smoothing, 0, true)?;
    let mut full = setup.train.clone();
    full.normalize(&splits.stats);
    let on_train = evaluate(be, &mut model, &full, config.eval_batch.max(1), true)?;
    let train_predictions = stats::argmax_rows(&on_train.probabilities.unwrap_or_default(), k);
    let correct: Vec<bool> = train_predictions.iter().zip(&setup.train.labels).map(|(p, l)| p == l).collect();
    let round = stats::samme_round(weights, &correct, k)?;
    Ok(Learner {
        learner: t + 1,
        seed,
        distinct: drawn.iter().filter(|&&d| d).count(),
        error: round.error,
        alpha: round.alpha,
        weights: round.weights,
        resample_accuracy: s.train.accuracy,
        train_accuracy: on_train.accuracy,
        test_accuracy: s.test.accuracy,
        test_loss: s.test.loss,
        train_predictions,
        test_predictions: stats::argmax_rows(s.test.probabilities.as_deref().unwrap_or_default(), k),
        seconds: s.seconds,
    })
}

/// One repeat's boosting sequence.
#[derive(Clone, Debug)]
pub struct Sequence {
    /// The repeat's base seed (`setup.config.seed + 1000 repeat`).
    pub seed: u64,
    /// Every learner trained, in order, including one that stopped the sequence for being no
    /// better than chance (it is not in the ensemble).
    pub learners: Vec<Learner>,
    /// How many of `learners` (the first ones) are in the ensemble.
    pub used: usize,
    /// Why the sequence stopped before `Options::learners`, if it did.
    pub stopped: Option<String>,
    /// Training accuracy (every image once) of the ensemble of the first t learners, index t - 1.
    pub train: Vec<f64>,
    /// Test accuracy of the ensemble of the first t learners, index t - 1.
    pub test: Vec<f64>,
}

impl Sequence {
    /// The ensemble accuracies of the first `used` of `learners`, by their alpha-weighted vote.
    pub fn new(
        seed: u64,
        learners: Vec<Learner>,
        used: usize,
        stopped: Option<String>,
        labels_train: &[Label],
        labels_test: &[Label],
        classes: usize,
    ) -> Self {
        let alphas: Vec<f64> = learners.iter().map(|l| l.alpha).collect();
        let tr: Vec<Vec<Label>> = learners.iter().map(|l| l.train_predictions.clone()).collect();
        let te: Vec<Vec<Label>> = learners.iter().map(|l| l.test_predictions.clone()).collect();
        let train = (1..=used).map(|t| stats::accuracy(&stats::weighted_vote(&tr[..t], &alphas[..t], classes), labels_train)).collect();
        let test = (1..=used).map(|t| stats::accuracy(&stats::weighted_vote(&te[..t], &alphas[..t], classes), labels_test)).collect();
        Sequence { seed, learners, used, stopped, train, test }
    }

    /// The final ensemble's training accuracy.
    pub fn final_train(&self) -> f64 {
        self.train.last().copied().unwrap_or(f64::NAN)
    }

    /// The final ensemble's test accuracy.
    pub fn final_test(&self) -> f64 {
        self.test.last().copied().unwrap_or(f64::NAN)
    }
}

/// The effective sample size of `w` as a share of its length: (Σw)² / Σw² / n (1: uniform).
fn ess(w: &[f64]) -> f64 {
    let s: f64 = w.iter().sum();
    let s2: f64 = w.iter().map(|x| x * x).sum();
    s * s / s2 / w.len().max(1) as f64
}

/// Checks the options against the setup before anything trains.
fn validate(setup: &Setup, opts: &Options, spec: &ModelSpec) -> Result<()> {
    if opts.learners == 0 || opts.learners > MAX_LEARNERS {
        return Err(Error::Invalid(format!("{} learners: expected 1 to {MAX_LEARNERS}", opts.learners)));
    }
    if setup.train.is_empty() || setup.test.is_empty() {
        return Err(Error::Invalid("boosting needs training and test images".into()));
    }
    if setup.train.classes.len() < 2 {
        return Err(Error::Invalid(format!("{} classes: boosting needs at least 2", setup.train.classes.len())));
    }
    spec.graph(&setup.train.shape)?;
    setup.config.validate()
}

/// Runs the boosting experiment: for each of `setup.seeds()` repeats, a SAMME sequence of up
/// to `opts.learners` learners (see the module doc and [`train_learner`]); then writes
/// `results.csv`, `report.md` and `accuracy_vs_learners.png` to `out`.
pub fn run<B: Backend>(be: &B, setup: &Setup, opts: &Options, out: &mut Results) -> Result<()> {
    let spec = opts.weak_model.clone().unwrap_or_else(|| setup.model.clone());
    validate(setup, opts, &spec)?;
    let repeats = setup.seeds().len();
    let classes = setup.train.classes.len();
    let n = setup.train.len();
    out.plan(repeats * opts.learners);
    let mut sequences = Vec::with_capacity(repeats);
    for r in 0..repeats {
        let mut weights = vec![1.0 / n as f64; n];
        let mut learners: Vec<Learner> = Vec::with_capacity(opts.learners);
        let mut used = 0;
        let mut stopped = None;
        for t in 0..opts.learners {
            let what = format!("repeat {}/{repeats}, learner {}/{} (seed {})", r + 1, t + 1, opts.learners, learner_seed(setup, r, t));
            let l = out.run(&format!("r{r}-learner{:03}", t + 1), &what, || train_learner(be, setup, &spec, r, t, &weights))?;
            if l.alpha <= 0.0 {
                stopped = Some(format!(
                    "learner {} is no better than chance (weighted error {} >= 1 - 1/K = {}, alpha {}): it is left out and boosting stops",
                    l.learner,
                    fmt(l.error, 4),
                    fmt(1.0 - 1.0 / classes as f64, 4),
                    fmt(l.alpha, 4)
                ));
            } else {
                used += 1;
                if l.error <= 1e-10 {
                    stopped = Some(format!(
                        "learner {} fits the weighted training set perfectly (weighted error 0): its vote outweighs any later learner's, \
                         so boosting stops",
                        l.learner
                    ));
                }
            }
            weights = l.weights.clone();
            learners.push(l);
            if let Some(why) = &stopped {
                println!("    {why}");
                break;
            }
        }
        sequences.push(Sequence::new(learner_seed(setup, r, 0), learners, used, stopped, &setup.train.labels, &setup.test.labels, classes));
    }
    out.write_csv(&CSV_HEADER, &csv_rows(&sequences))?;
    plot(&title(setup, &spec), classes, &sequences, &out.path("accuracy_vs_learners.png"))?;
    out.write_report(&report(setup, opts, &spec, &sequences))?;
    Ok(())
}

/// `setup.describe()` with the weak learner's name in place of the setup's model.
fn title(setup: &Setup, spec: &ModelSpec) -> String {
    let d = setup.describe();
    match d.strip_prefix(&setup.model.name) {
        Some(rest) if spec.name != setup.model.name => format!("{}{rest}", spec.name),
        _ => d,
    }
}

/// The columns of `results.csv`.
pub const CSV_HEADER: [&str; 11] = [
    "repeat",
    "seed",
    "learner",
    "in_ensemble",
    "weighted_error",
    "alpha",
    "weights_ess",
    "learner_train_accuracy",
    "learner_test_accuracy",
    "ensemble_train_accuracy",
    "ensemble_test_accuracy",
];

/// One row per learner trained (see the report's Files section for the columns).
fn csv_rows(sequences: &[Sequence]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for (r, s) in sequences.iter().enumerate() {
        for (t, l) in s.learners.iter().enumerate() {
            let inside = t < s.used;
            rows.push(vec![
                r.to_string(),
                s.seed.to_string(),
                l.learner.to_string(),
                inside.to_string(),
                fmt(l.error, 6),
                fmt(l.alpha, 6),
                fmt(ess(&l.weights), 6),
                fmt(l.train_accuracy, 6),
                fmt(l.test_accuracy, 6),
                if inside { fmt(s.train[t], 6) } else { String::new() },
                if inside { fmt(s.test[t], 6) } else { String::new() },
            ]);
        }
    }
    rows
}

/// Mean and standard deviation over the sequences of `f`, skipping those where it is `None`.
fn over(sequences: &[Sequence], f: impl Fn(&Sequence) -> Option<f64>) -> Option<(f64, f64)> {
    let v: Vec<f64> = sequences.iter().filter_map(f).collect();
    (!v.is_empty()).then(|| stats::mean_std(&v))
}

/// A series of the mean over the sequences of `f(s, t)` for t = 0..len (± std with several).
fn series(name: &str, sequences: &[Sequence], len: usize, dashed: bool, f: impl Fn(&Sequence, usize) -> Option<f64>) -> Series {
    let (mut points, mut err) = (Vec::new(), Vec::new());
    for t in 0..len {
        if let Some((m, sd)) = over(sequences, |s| f(s, t)) {
            points.push(((t + 1) as f64, 100.0 * m));
            err.push(100.0 * sd);
        }
    }
    Series { name: name.into(), points, err: (sequences.len() > 1).then_some(err), dashed }
}

/// The ensemble's accuracy after t learners, carried forward past the end of a sequence that
/// stopped early (its ensemble stays as it was).
fn carried(v: &[f64], t: usize) -> Option<f64> {
    v.get(t).or(v.last()).copied()
}

/// Two panels: accuracy against learners (ensemble train and test, each learner alone dashed),
/// and each learner's weighted error against the chance level 1 - 1/K.
fn plot(title: &str, classes: usize, sequences: &[Sequence], path: &std::path::Path) -> Result<()> {
    let len = sequences.iter().map(|s| s.learners.len()).max().unwrap_or(0);
    let several = sequences.len() > 1;
    let accuracy = LinePlot {
        title: "Accuracy".into(),
        x_label: "learners".into(),
        y_label: "accuracy (%)".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        series: vec![
            series("ensemble, train", sequences, len, false, |s, t| carried(&s.train, t)),
            series("ensemble, test", sequences, len, false, |s, t| carried(&s.test, t)),
            series("learner t alone, train", sequences, len, true, |s, t| s.learners.get(t).map(|l| l.train_accuracy)),
            series("learner t alone, test", sequences, len, true, |s, t| s.learners.get(t).map(|l| l.test_accuracy)),
        ],
        markers: true,
    };
    let chance = 100.0 * (1.0 - 1.0 / classes as f64);
    let error = LinePlot {
        title: "Weighted training error of learner t".into(),
        x_label: "learner t".into(),
        y_label: "weighted error (%)".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        series: vec![
            series("weighted error", sequences, len, false, |s, t| s.learners.get(t).map(|l| l.error)),
            Series::new("chance, 1 - 1/K (alpha = 0)", vec![(1.0, chance), (len.max(2) as f64, chance)]).dashed(),
        ],
        markers: true,
    };
    let tail = if several { format!(", mean ± std of {} seeds", sequences.len()) } else { String::new() };
    save_panels(path, &format!("Boosting (SAMME): {title}{tail}"), &[accuracy, error])
}

/// `report.md`.
fn report(setup: &Setup, opts: &Options, spec: &ModelSpec, sequences: &[Sequence]) -> String {
    let n_rep = sequences.len();
    let k = setup.train.classes.len();
    let mut s = format!("# Boosting (SAMME): {}\n\n", title(setup, spec));
    let params = spec.infer(&setup.train.shape).map(|v| v.iter().map(|l| l.weights + l.biases).sum::<usize>()).unwrap_or(0);
    s += &format!(
        "Multi-class AdaBoost (SAMME, Zhu et al. 2009) of up to {} `{}` learners ({params} parameters each) on {} training images, \
         {k} classes{}.\n\n",
        opts.learners,
        spec.name,
        setup.train.len(),
        if n_rep > 1 {
            format!("; the whole sequence repeated for {n_rep} seeds, figures as mean ± std over them")
        } else {
            String::new()
        }
    );
    s += "## How it ran\n\n";
    s += "- Boosting by resampling: learner t trains on N images drawn with replacement with probabilities given by the current \
          sample weights (uniform for the first learner); the weights never enter the loss.\n";
    s += &format!(
        "- Each learner trains on its whole resample for {} epoch(s) with no validation split (`val_fraction` {} and `patience` {} \
         do not apply), normalising its images with the resample's per-channel statistics.\n",
        setup.config.epochs, setup.val_fraction, setup.patience
    );
    s += "- Its round is scored on the whole training set, every image once: weighted error err = Σ w_i over its mistakes \
          (clamped to [1e-10, 1 - 1e-10]), vote alpha = ln((1 - err) / err) + ln(K - 1), next weights w_i e^alpha on the \
          mistakes, renormalised to sum 1. ESS: the effective sample size of the weights after the round, (Σw)² / Σw² / N \
          (1: uniform).\n";
    s += &format!(
        "- The sequence stops early when a learner is no better than chance (alpha <= 0, i.e. err >= 1 - 1/K = {}; that learner is \
         left out of the ensemble) or fits the weighted training set perfectly (err 0).\n",
        fmt(1.0 - 1.0 / k as f64, 4)
    );
    s += "- The ensemble of the first t learners predicts by their alpha-weighted vote (ties to the smallest class index).\n";
    s += &format!("- Learner t (1-based) of repeat r (0-based) uses seed {} + 1000 r + (t - 1).\n", setup.config.seed);
    for q in sequences {
        if let Some(why) = &q.stopped {
            s += &format!("- Seed {}: stopped after {} learner(s): {why}.\n", q.seed, q.learners.len());
        }
    }

    s += "\n## The final ensemble\n\n";
    let pct = |f: &dyn Fn(&Sequence) -> f64| over(sequences, |q| Some(f(q))).map_or("-".into(), |(a, b)| pct_pm(a, b, n_rep, 2));
    let num = |f: &dyn Fn(&Sequence) -> f64, d: usize| over(sequences, |q| Some(f(q))).map_or("-".into(), |(a, b)| num_pm(a, b, n_rep, d));
    let mean_learner = |q: &Sequence| stats::mean_std(&q.learners[..q.used].iter().map(|l| l.test_accuracy).collect::<Vec<_>>()).0;
    s += &table(
        &["quantity", "value"],
        &[
            vec!["learners in the ensemble".into(), num(&|q| q.used as f64, 1)],
            vec!["ensemble train accuracy %".into(), pct(&|q| q.final_train())],
            vec!["ensemble test accuracy %".into(), pct(&|q| q.final_test())],
            vec!["learner 1 alone, test accuracy %".into(), pct(&|q| q.learners.first().map_or(f64::NAN, |l| l.test_accuracy))],
            vec!["mean learner test accuracy %".into(), pct(&mean_learner)],
        ],
    );

    s += "\n## Accuracy against learners\n\n![accuracy against learners](accuracy_vs_learners.png)\n\n";
    if n_rep > 1 {
        s += "With several seeds the curves are means ± std over them; a sequence that stopped early keeps its last ensemble \
              on the ensemble curves and drops out of the per-learner ones.\n\n";
    }
    for q in sequences {
        if n_rep > 1 {
            s += &format!("Seed {}:\n\n", q.seed);
        }
        let rows: Vec<Vec<String>> = q
            .learners
            .iter()
            .enumerate()
            .map(|(t, l)| {
                let inside = t < q.used;
                vec![
                    format!("{}{}", l.learner, if inside { "" } else { " (left out)" }),
                    fmt(l.error, 4),
                    fmt(l.alpha, 3),
                    fmt(ess(&l.weights), 3),
                    fmt(100.0 * l.distinct as f64 / setup.train.len() as f64, 1),
                    fmt(100.0 * l.train_accuracy, 2),
                    fmt(100.0 * l.test_accuracy, 2),
                    if inside { fmt(100.0 * q.train[t], 2) } else { "-".into() },
                    if inside { fmt(100.0 * q.test[t], 2) } else { "-".into() },
                ]
            })
            .collect();
        s += &table(
            &[
                "learner t",
                "weighted error",
                "alpha",
                "ESS after",
                "distinct images %",
                "learner train acc %",
                "learner test acc %",
                "ensemble of 1..t, train acc %",
                "ensemble of 1..t, test acc %",
            ],
            &rows,
        );
        s += "\n";
    }

    s += "## Files\n\n\
          - `results.csv`: one row per learner trained. Columns: `repeat` (0-based), `seed` (the repeat's base seed), `learner` \
          (t, 1-based), `in_ensemble` (false for a learner no better than chance, which stopped the sequence), `weighted_error`, \
          `alpha`, `weights_ess` (effective sample size of the weights after the round, as a share of N), \
          `learner_train_accuracy` and `learner_test_accuracy` (learner t alone; train: the whole training set, unweighted), \
          `ensemble_train_accuracy` and `ensemble_test_accuracy` (the alpha-weighted vote of learners 1..t; empty when not in \
          the ensemble). Accuracies are fractions.\n\
          - `runs/r{repeat}-learner{t}.toml` (e.g. `runs/r0-learner001.toml`): each learner's round: its predictions on the \
          training and test sets, error, alpha and the weights after it.\n\
          - `accuracy_vs_learners.png`: ensemble and learner accuracies against the number of learners; each learner's weighted \
          error against the chance level.\n";
    s
}
