//! The regularization experiment: the same model with each regularizer on alone, all of them
//! together, and none, on a training subset small enough for overfitting to show; test
//! accuracy, the train-test gap and the epoch of the best validation loss.

use super::results::{fmt, num_pm, pct_pm, table, Results};
use super::stats::mean_std;
use super::{train_and_test, RunSummary, Setup};
use crate::data::loader::Augment;
use crate::nn::{LayerSpec, ModelSpec};
use crate::plot::{Bar, BarPlot, LinePlot, Scale, Series};
use crate::{Backend, Error, Result};

/// One regularizer (or all, or none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Regularizer {
    /// Nothing: no dropout, no batch norm, no augmentation, no decay, no smoothing.
    None,
    /// Stop after `patience` epochs without a better validation loss; keep the best epoch's weights.
    EarlyStopping,
    /// L2 weight decay (coupled; decoupled for AdamW).
    WeightDecay,
    /// Random crops of a zero-padded image (and left-right flips for natural images).
    Augmentation,
    /// Gaussian noise added to the normalised input.
    InputNoise,
    /// Label smoothing of the cross-entropy targets.
    LabelSmoothing,
    /// Mixup of pairs of images and their labels.
    Mixup,
    /// Cutmix: a box of one image pasted into another, labels mixed by area.
    Cutmix,
    /// Dropout before the classifier's linear layers.
    Dropout,
    /// Batch norm after every convolution.
    BatchNorm,
    /// Every regularizer above at once.
    All,
}

impl Regularizer {
    /// Every variant, in report order.
    pub const ALL: [Regularizer; 11] = [
        Regularizer::None,
        Regularizer::EarlyStopping,
        Regularizer::WeightDecay,
        Regularizer::Augmentation,
        Regularizer::InputNoise,
        Regularizer::LabelSmoothing,
        Regularizer::Mixup,
        Regularizer::Cutmix,
        Regularizer::Dropout,
        Regularizer::BatchNorm,
        Regularizer::All,
    ];

    /// The name users write (`--only weight-decay,mixup`).
    pub fn name(self) -> &'static str {
        match self {
            Regularizer::None => "none",
            Regularizer::EarlyStopping => "early-stopping",
            Regularizer::WeightDecay => "weight-decay",
            Regularizer::Augmentation => "augmentation",
            Regularizer::InputNoise => "input-noise",
            Regularizer::LabelSmoothing => "label-smoothing",
            Regularizer::Mixup => "mixup",
            Regularizer::Cutmix => "cutmix",
            Regularizer::Dropout => "dropout",
            Regularizer::BatchNorm => "batch-norm",
            Regularizer::All => "all",
        }
    }
}

impl std::str::FromStr for Regularizer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Regularizer::ALL.into_iter().find(|r| r.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Regularizer::ALL.iter().map(|r| r.name()).collect();
            Error::Invalid(format!("unknown regularizer '{s}': expected one of {}", names.join(", ")))
        })
    }
}

/// The strength of each regularizer when it is on.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Options {
    /// The variants to run (`none` and `all` included when listed); default: all of them.
    pub only: Vec<Regularizer>,
    /// Early stopping's patience (epochs).
    pub patience: usize,
    /// Weight decay.
    pub weight_decay: f32,
    /// Random-crop padding (pixels).
    pub crop_pad: usize,
    /// Left-right flips with augmentation (off for digits, where a flip changes the class).
    pub hflip: bool,
    /// Input noise standard deviation (normalised units).
    pub noise: f32,
    /// Label smoothing.
    pub label_smoothing: f32,
    /// Mixup's Beta(alpha, alpha).
    pub mixup: f32,
    /// Cutmix's Beta(alpha, alpha).
    pub cutmix: f32,
    /// Dropout rate.
    pub dropout: f32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            only: Regularizer::ALL.to_vec(),
            patience: 3,
            weight_decay: 5e-4,
            crop_pad: 2,
            hflip: false,
            noise: 0.3,
            label_smoothing: 0.1,
            mixup: 0.2,
            cutmix: 1.0,
            dropout: 0.5,
        }
    }
}

/// `spec` without batch norm (the convolution before each one gets its bias back) and with
/// every dropout layer removed: the unregularized baseline.
pub fn plain(spec: &ModelSpec) -> ModelSpec {
    fn strip(layers: &[LayerSpec]) -> Vec<LayerSpec> {
        let mut out: Vec<LayerSpec> = Vec::new();
        for l in layers {
            match l {
                LayerSpec::BatchNorm2d { .. } => {
                    if let Some(LayerSpec::Conv2d { bias, .. }) = out.last_mut() {
                        *bias = true;
                    }
                }
                LayerSpec::Dropout { .. } => {}
                LayerSpec::Residual { body, shortcut } => out.push(LayerSpec::Residual { body: strip(body), shortcut: strip(shortcut) }),
                other => out.push(other.clone()),
            }
        }
        out
    }
    ModelSpec { name: spec.name.clone(), layers: strip(&spec.layers) }
}

/// `spec` with batch norm after every convolution (whose bias it replaces).
pub fn with_batch_norm(spec: &ModelSpec) -> ModelSpec {
    fn add(layers: &[LayerSpec]) -> Vec<LayerSpec> {
        let mut out = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            match l {
                LayerSpec::Conv2d { out: o, kernel, stride, padding, dilation, groups, .. } => {
                    out.push(LayerSpec::Conv2d {
                        out: *o,
                        kernel: *kernel,
                        stride: *stride,
                        padding: *padding,
                        dilation: *dilation,
                        groups: *groups,
                        bias: false,
                    });
                    if !matches!(layers.get(i + 1), Some(LayerSpec::BatchNorm2d { .. })) {
                        out.push(LayerSpec::bn());
                    }
                }
                LayerSpec::Residual { body, shortcut } => out.push(LayerSpec::Residual { body: add(body), shortcut: add(shortcut) }),
                other => out.push(other.clone()),
            }
        }
        out
    }
    ModelSpec { name: spec.name.clone(), layers: add(&spec.layers) }
}

/// `spec` with dropout at rate `p` before every linear layer that follows another linear
/// layer's activation (the classifier's hidden layers), or before the last linear layer when
/// there is only one. Existing dropout layers get rate `p`.
pub fn with_dropout(spec: &ModelSpec, p: f32) -> ModelSpec {
    let mut layers: Vec<LayerSpec> = spec
        .layers
        .iter()
        .map(|l| match l {
            LayerSpec::Dropout { .. } => LayerSpec::Dropout { p },
            other => other.clone(),
        })
        .collect();
    if layers.iter().any(|l| matches!(l, LayerSpec::Dropout { .. })) {
        return ModelSpec { name: spec.name.clone(), layers };
    }
    let linear: Vec<usize> = layers.iter().enumerate().filter(|(_, l)| matches!(l, LayerSpec::Linear { .. })).map(|(i, _)| i).collect();
    // Before every linear layer but the first (inputs to hidden and output layers of an MLP
    // head), or before the only one.
    let at: Vec<usize> = if linear.len() > 1 { linear[1..].to_vec() } else { linear };
    for &i in at.iter().rev() {
        layers.insert(i, LayerSpec::Dropout { p });
    }
    ModelSpec { name: spec.name.clone(), layers }
}

/// What a variant changes: (model, augmentation, weight decay, label smoothing, patience).
struct Variant {
    model: ModelSpec,
    augment: Augment,
    weight_decay: f32,
    label_smoothing: f32,
    patience: usize,
}

fn variant(r: Regularizer, base: &ModelSpec, o: &Options) -> Variant {
    let plain = plain(base);
    let mut v = Variant { model: plain.clone(), augment: Augment::default(), weight_decay: 0.0, label_smoothing: 0.0, patience: 0 };
    let on = |x: Regularizer| r == x || r == Regularizer::All;
    if on(Regularizer::EarlyStopping) {
        v.patience = o.patience;
    }
    if on(Regularizer::WeightDecay) {
        v.weight_decay = o.weight_decay;
    }
    if on(Regularizer::Augmentation) {
        v.augment.crop_pad = o.crop_pad;
        v.augment.hflip = o.hflip;
    }
    if on(Regularizer::InputNoise) {
        v.augment.noise = o.noise;
    }
    if on(Regularizer::LabelSmoothing) {
        v.label_smoothing = o.label_smoothing;
    }
    if on(Regularizer::Mixup) {
        v.augment.mixup = o.mixup;
    }
    if on(Regularizer::Cutmix) {
        v.augment.cutmix = o.cutmix;
    }
    if on(Regularizer::Dropout) {
        v.model = with_dropout(&v.model, o.dropout);
    }
    if on(Regularizer::BatchNorm) {
        v.model = with_batch_norm(&v.model);
    }
    v
}

/// What each variant's `on` means, for the report.
fn setting(r: Regularizer, o: &Options) -> String {
    match r {
        Regularizer::None => "no dropout, no batch norm, no augmentation, no decay, no smoothing".into(),
        Regularizer::EarlyStopping => format!("patience {} epochs on the validation loss, best weights restored", o.patience),
        Regularizer::WeightDecay => format!("L2 {}", o.weight_decay),
        Regularizer::Augmentation => {
            format!("random crop after {} px zero padding{}", o.crop_pad, if o.hflip { ", left-right flips" } else { "" })
        }
        Regularizer::InputNoise => format!("Gaussian noise, std {} (normalised units)", o.noise),
        Regularizer::LabelSmoothing => format!("smoothing {}", o.label_smoothing),
        Regularizer::Mixup => format!("Beta({0}, {0})", o.mixup),
        Regularizer::Cutmix => format!("Beta({0}, {0})", o.cutmix),
        Regularizer::Dropout => format!("rate {} before the classifier's linear layers", o.dropout),
        Regularizer::BatchNorm => "after every convolution".into(),
        Regularizer::All => "all of the above (mixup and cutmix alternate per batch)".into(),
    }
}

/// Runs the experiment into `out`.
pub fn run<B: Backend>(be: &B, setup: &Setup, opts: &Options, out: &mut Results) -> Result<()> {
    if opts.only.is_empty() {
        return Err(Error::Invalid("no regularizers to run: expected at least one".into()));
    }
    if setup.val_fraction <= 0.0 && opts.only.iter().any(|r| matches!(r, Regularizer::EarlyStopping | Regularizer::All)) {
        return Err(Error::Invalid("early stopping needs a validation split: expected a validation fraction > 0".into()));
    }
    let seeds = setup.seeds();
    out.plan(opts.only.len() * seeds.len());
    let mut runs: Vec<(Regularizer, Vec<RunSummary>)> = Vec::new();
    for &r in &opts.only {
        let v = variant(r, &setup.model, opts);
        let mut rs = Vec::new();
        for &seed in &seeds {
            let key = format!("{}-seed{seed}", r.name());
            rs.push(out.run(&key, &format!("{} ({}), seed {seed}", r.name(), setting(r, opts)), || {
                let splits = setup.splits(None, seed)?;
                let mut model = setup.build(be, &v.model, seed, &splits)?;
                let mut cfg = setup.config.clone();
                cfg.seed = seed;
                cfg.augment = v.augment;
                cfg.optimizer.weight_decay = v.weight_decay;
                train_and_test(be, &mut model, &splits, &cfg, v.label_smoothing, v.patience, false)
            })?);
        }
        runs.push((r, rs));
    }

    let n = seeds.len();
    let mut csv = Vec::new();
    let mut rows = Vec::new();
    let mut bars_test = Vec::new();
    let mut bars_gap = Vec::new();
    let mut curves = Vec::new();
    let mut stats = Vec::new();
    for (r, rs) in &runs {
        for (x, seed) in rs.iter().zip(&seeds) {
            csv.push(vec![
                r.name().into(),
                seed.to_string(),
                x.epochs.len().to_string(),
                x.best_epoch.map_or(String::new(), |e| e.to_string()),
                format!("{:.6}", x.train.loss),
                format!("{:.6}", x.train.accuracy),
                format!("{:.6}", x.test.loss),
                format!("{:.6}", x.test.accuracy),
                format!("{:.6}", x.gap()),
                format!("{:.3}", x.seconds),
            ]);
        }
        let col = |f: &dyn Fn(&RunSummary) -> f64| mean_std(&rs.iter().map(f).collect::<Vec<_>>());
        let (ta, tas) = col(&|x| x.test.accuracy);
        let (tra, tras) = col(&|x| x.train.accuracy);
        let (g, gs) = col(&|x| x.gap());
        let (tl, tls) = col(&|x| x.test.loss);
        let (be_, bes) = col(&|x| x.best_epoch.map_or(f64::NAN, |e| e as f64));
        let (ep, _) = col(&|x| x.epochs.len() as f64);
        rows.push(vec![
            r.name().into(),
            setting(*r, opts),
            pct_pm(tra, tras, n, 2),
            pct_pm(ta, tas, n, 2),
            num_pm(100.0 * g, 100.0 * gs, n, 2),
            num_pm(tl, tls, n, 4),
            num_pm(be_, bes, n, 1),
            fmt(ep, 1),
        ]);
        bars_test.push(Bar { label: r.name().into(), value: 100.0 * ta, err: (n > 1).then_some(100.0 * tas) });
        bars_gap.push(Bar { label: r.name().into(), value: 100.0 * g, err: (n > 1).then_some(100.0 * gs) });
        // Validation loss per epoch of the first seed.
        let pts: Vec<(f64, f64)> = rs[0].epochs.iter().filter_map(|e| e.val_loss.map(|l| (e.epoch as f64, l))).collect();
        curves.push(Series { name: r.name().into(), points: pts, err: None, dashed: matches!(r, Regularizer::None) });
        stats.push((*r, ta, tas, g));
    }
    out.write_csv(
        &[
            "regularizer",
            "seed",
            "epochs_run",
            "best_epoch",
            "train_loss",
            "train_accuracy",
            "test_loss",
            "test_accuracy",
            "gap",
            "seconds",
        ],
        &csv,
    )?;
    let desc = setup.describe();
    BarPlot {
        title: format!("Regularizers: test accuracy, {} — {desc}", super::results::seeds_phrase(n)),
        y_label: "test accuracy (%)".into(),
        groups: vec![("test accuracy".into(), bars_test)],
    }
    .save(&out.path("test_accuracy.png"))?;
    BarPlot {
        title: format!("Regularizers: train − test accuracy gap, {} — {desc}", super::results::seeds_phrase(n)),
        y_label: "train accuracy − test accuracy (percentage points)".into(),
        groups: vec![("gap".into(), bars_gap)],
    }
    .save(&out.path("gap.png"))?;
    LinePlot {
        title: format!("Validation loss per epoch (seed {}) — {desc}", seeds[0]),
        x_label: "epoch".into(),
        y_label: "validation cross-entropy (nats)".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        series: curves,
        markers: true,
    }
    .save(&out.path("val_loss.png"))?;

    let mut shows = String::new();
    if let Some(&(_, base, base_s, base_gap)) = stats.iter().find(|s| s.0 == Regularizer::None) {
        let mut better = Vec::new();
        let mut worse = Vec::new();
        let mut unclear = Vec::new();
        for &(r, ta, tas, g) in stats.iter().filter(|s| s.0 != Regularizer::None) {
            let noise = if n > 1 { tas.max(base_s) } else { 0.0 };
            let d = 100.0 * (ta - base);
            let item = format!("{} ({:+.2} points, gap {:+.2})", r.name(), d, 100.0 * (g - base_gap));
            if n > 1 && (ta - base).abs() <= noise {
                unclear.push(item);
            } else if ta > base {
                better.push(item);
            } else {
                worse.push(item);
            }
        }
        shows.push_str(&format!(
            "Against no regularization ({:.2}% test accuracy, gap {:.2} points):\n\n- better: {}\n- worse: {}\n",
            100.0 * base,
            100.0 * base_gap,
            if better.is_empty() { "none".into() } else { better.join(", ") },
            if worse.is_empty() { "none".into() } else { worse.join(", ") },
        ));
        if n > 1 {
            shows.push_str(&format!(
                "- within one standard deviation of the baseline over {n} seeds (not distinguishable here): {}\n",
                if unclear.is_empty() { "none".into() } else { unclear.join(", ") }
            ));
        } else {
            shows.push_str("- one seed only: differences of a point or less may be seed noise; run with --seeds 3.\n");
        }
    }
    let md = format!(
        "# Regularization: {desc}\n\nThe baseline (`none`) is the model without dropout and batch norm, with no augmentation, weight decay or label smoothing; each other row turns one regularizer on, `all` turns every one on. Same data, seeds {seeds:?} and initialisation seed per row; {} of the training images held out for validation (early stopping and the curves). Train accuracy is of the final (or restored best) weights on the training part, in eval mode.\n\n{}\n![test accuracy](test_accuracy.png)\n![gap](gap.png)\n![validation loss](val_loss.png)\n\n## What it shows\n\n{shows}\n## Files\n\n- `results.csv`: one row per (regularizer, seed): epochs run, best validation epoch, train/test loss and accuracy, gap (train − test accuracy), seconds.\n",
        setup.val_fraction,
        table(&["regularizer", "setting", "train acc %", "test acc %", "gap (points)", "test loss", "best epoch", "epochs run"], &rows),
    );
    out.write_report(&md)
}
