//! k-fold cross-validation over a grid of settings: disjoint stratified folds of the training
//! set, the test set untouched during the search; the mean and standard deviation of the
//! validation accuracy per setting; the best setting retrained on all the training data and
//! evaluated once on the test set, next to its cross-validation estimate.

use super::regularization::with_dropout;
use super::results::{fmt, num_pm, pct_pm, table, Results};
use super::stats::{fold_train, mean_std, stratified_folds};
use super::{train_and_test, Setup};
use crate::data::{self, Splits};
use crate::plot::{Bar, BarPlot, Heatmap, LinePlot, Scale, Series};
use crate::train::{BatchSize, Evaluation};
use crate::{Backend, Error, Result};

/// A setting the grid can vary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Param {
    /// The learning rate.
    Lr,
    /// Weight decay.
    WeightDecay,
    /// Momentum (SGD variants and RMSprop).
    Momentum,
    /// The rate of the model's dropout layers (added before the classifier if it has none).
    Dropout,
    /// Samples per step.
    BatchSize,
    /// Label smoothing.
    LabelSmoothing,
    /// Epochs.
    Epochs,
}

impl Param {
    /// Every parameter.
    pub const ALL: [Param; 7] =
        [Param::Lr, Param::WeightDecay, Param::Momentum, Param::Dropout, Param::BatchSize, Param::LabelSmoothing, Param::Epochs];

    /// The name in a grid (`lr`, `weight-decay`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Param::Lr => "lr",
            Param::WeightDecay => "weight-decay",
            Param::Momentum => "momentum",
            Param::Dropout => "dropout",
            Param::BatchSize => "batch-size",
            Param::LabelSmoothing => "label-smoothing",
            Param::Epochs => "epochs",
        }
    }

    fn integer(self) -> bool {
        matches!(self, Param::BatchSize | Param::Epochs)
    }
}

/// The settings to search: each parameter with its values; the grid is every combination.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Grid(pub Vec<(Param, Vec<f64>)>);

impl std::str::FromStr for Grid {
    type Err = Error;
    /// `lr=1e-3,1e-2;weight-decay=0,5e-4`
    fn from_str(s: &str) -> Result<Self> {
        let mut out: Vec<(Param, Vec<f64>)> = Vec::new();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, values) = part
                .split_once('=')
                .ok_or_else(|| Error::Invalid(format!("grid part '{part}': expected NAME=V1,V2,... (e.g. lr=1e-3,1e-2)")))?;
            let p = Param::ALL.into_iter().find(|p| p.name() == name.trim()).ok_or_else(|| {
                let names: Vec<&str> = Param::ALL.iter().map(|p| p.name()).collect();
                Error::Invalid(format!("grid parameter '{}': expected one of {}", name.trim(), names.join(", ")))
            })?;
            if out.iter().any(|(q, _)| *q == p) {
                return Err(Error::Invalid(format!("grid parameter '{}' given twice", p.name())));
            }
            let mut vs = Vec::new();
            for v in values.split(',').map(str::trim) {
                let x: f64 = v.parse().map_err(|_| Error::Invalid(format!("grid value '{v}' of {}: expected a number", p.name())))?;
                let ok = x.is_finite()
                    && match p {
                        Param::Lr => x > 0.0,
                        Param::Dropout | Param::LabelSmoothing => (0.0..1.0).contains(&x),
                        Param::BatchSize | Param::Epochs => x >= 1.0 && x.fract() == 0.0 && x <= 1e7,
                        Param::WeightDecay | Param::Momentum => x >= 0.0,
                    };
                if !ok {
                    return Err(Error::Invalid(format!("grid value {v} of {}: out of range", p.name())));
                }
                vs.push(x);
            }
            out.push((p, vs));
        }
        if out.is_empty() {
            return Err(Error::Invalid(format!("grid '{s}': expected at least one NAME=V1,V2,...")));
        }
        Ok(Grid(out))
    }
}

impl Grid {
    /// Every combination, the first parameter varying slowest.
    pub fn settings(&self) -> Vec<Vec<(Param, f64)>> {
        let mut all: Vec<Vec<(Param, f64)>> = vec![Vec::new()];
        for (p, vs) in &self.0 {
            all = all.into_iter().flat_map(|s| vs.iter().map(move |&v| [s.clone(), vec![(*p, v)]].concat())).collect();
        }
        all
    }
}

/// `lr=0.001 weight-decay=0`
pub fn label(setting: &[(Param, f64)]) -> String {
    setting.iter().map(|(p, v)| format!("{}={}", p.name(), value(*p, *v))).collect::<Vec<_>>().join(" ")
}

fn value(p: Param, v: f64) -> String {
    if p.integer() {
        format!("{}", v as u64)
    } else {
        format!("{v}")
    }
}

/// What to search.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Options {
    /// Folds.
    pub folds: usize,
    /// The grid.
    pub grid: Grid,
}

/// One fold's figures.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct FoldResult {
    accuracy: f64,
    loss: f64,
    train_accuracy: f64,
    seconds: f64,
}

/// The setup with one grid setting applied: (model, config, label smoothing).
fn apply(setup: &Setup, setting: &[(Param, f64)]) -> (crate::nn::ModelSpec, crate::train::TrainConfig, f32) {
    let mut model = setup.model.clone();
    let mut cfg = setup.config.clone();
    let mut ls = setup.label_smoothing;
    for &(p, v) in setting {
        match p {
            Param::Lr => cfg.optimizer.lr = v as f32,
            Param::WeightDecay => cfg.optimizer.weight_decay = v as f32,
            Param::Momentum => cfg.optimizer.momentum = v as f32,
            Param::Dropout => model = with_dropout(&model, v as f32),
            Param::BatchSize => cfg.batch = BatchSize::Fixed(v as usize),
            Param::LabelSmoothing => ls = v as f32,
            Param::Epochs => cfg.epochs = v as usize,
        }
    }
    (model, cfg, ls)
}

/// Runs the experiment into `out`.
pub fn run<B: Backend>(be: &B, setup: &Setup, opts: &Options, out: &mut Results) -> Result<()> {
    let settings = opts.grid.settings();
    let seeds = setup.seeds();
    for s in &settings {
        let (_, cfg, _) = apply(setup, s);
        cfg.optimizer.validate().map_err(|e| Error::Invalid(format!("grid setting {}: {e}", label(s))))?;
    }
    out.plan(settings.len() * opts.folds * seeds.len() + 1);
    // Folds per seed (repeated k-fold when there are several seeds).
    let mut fold_sets = Vec::new();
    for &seed in &seeds {
        fold_sets.push(stratified_folds(&setup.train.labels, opts.folds, seed)?);
    }
    let mut per_setting: Vec<Vec<FoldResult>> = Vec::new();
    for (si, s) in settings.iter().enumerate() {
        let (model_spec, cfg, ls) = apply(setup, s);
        let mut rs = Vec::new();
        for (&seed, folds) in seeds.iter().zip(&fold_sets) {
            for k in 0..opts.folds {
                let key = format!("setting{si}-seed{seed}-fold{k}");
                let r: FoldResult = out.run(&key, &format!("{} | fold {}/{} | seed {seed}", label(s), k + 1, opts.folds), || {
                    let tr = setup.train.subset(&fold_train(folds, k));
                    let mut val = setup.train.subset(&folds[k]);
                    // The test set is not passed: it stays untouched during the search.
                    let mut sp = data::split(tr, setup.test.subset(&[]), 0.0, seed)?;
                    val.normalize(&sp.stats);
                    sp.val = val;
                    let mut model = setup.build(be, &model_spec, seed, &sp)?;
                    let mut c = cfg.clone();
                    c.seed = seed;
                    let r = train_and_test(be, &mut model, &sp, &c, ls, 0, false)?;
                    let last = r.epochs.last();
                    Ok(FoldResult {
                        accuracy: last.and_then(|e| e.val_accuracy).unwrap_or(f64::NAN),
                        loss: last.and_then(|e| e.val_loss).unwrap_or(f64::NAN),
                        train_accuracy: r.train.accuracy,
                        seconds: r.seconds,
                    })
                })?;
                rs.push(r);
            }
        }
        per_setting.push(rs);
    }
    let means: Vec<(f64, f64)> = per_setting.iter().map(|rs| mean_std(&rs.iter().map(|r| r.accuracy).collect::<Vec<_>>())).collect();
    let best = (0..settings.len()).max_by(|&a, &b| means[a].0.total_cmp(&means[b].0).then(b.cmp(&a))).unwrap_or(0);

    // The best setting, retrained on all the training data, tested once.
    let (model_spec, cfg, ls) = apply(setup, &settings[best]);
    let final_run: (Evaluation, Evaluation, f64) =
        out.run("final", &format!("best setting {} on all training data, then the test set", label(&settings[best])), || {
            let seed = seeds[0];
            let sp: Splits = data::split(setup.train.clone(), setup.test.clone(), 0.0, seed)?;
            let mut model = setup.build(be, &model_spec, seed, &sp)?;
            let mut c = cfg.clone();
            c.seed = seed;
            let r = train_and_test(be, &mut model, &sp, &c, ls, 0, false)?;
            Ok((r.train, r.test, r.seconds))
        })?;

    let runs_per = opts.folds * seeds.len();
    let mut csv = Vec::new();
    for (si, (s, rs)) in settings.iter().zip(&per_setting).enumerate() {
        let mut i = 0;
        for &seed in &seeds {
            for k in 0..opts.folds {
                let r = &rs[i];
                i += 1;
                let mut row = vec![si.to_string()];
                for (p, _) in &opts.grid.0 {
                    row.push(s.iter().find(|(q, _)| q == p).map_or(String::new(), |(p, v)| value(*p, *v)));
                }
                row.extend([
                    seed.to_string(),
                    k.to_string(),
                    format!("{:.6}", r.accuracy),
                    format!("{:.6}", r.loss),
                    format!("{:.6}", r.train_accuracy),
                    format!("{:.3}", r.seconds),
                ]);
                csv.push(row);
            }
        }
    }
    let mut header: Vec<&str> = vec!["setting"];
    header.extend(opts.grid.0.iter().map(|(p, _)| p.name()));
    header.extend(["seed", "fold", "val_accuracy", "val_loss", "train_accuracy", "seconds"]);
    out.write_csv(&header, &csv)?;

    let mut rows = Vec::new();
    for (si, s) in settings.iter().enumerate() {
        let (m, sd) = means[si];
        let (l, ls) = mean_std(&per_setting[si].iter().map(|r| r.loss).collect::<Vec<_>>());
        rows.push(vec![
            format!("{}{}", label(s), if si == best { " **(best)**" } else { "" }),
            pct_pm(m, sd, runs_per, 2),
            num_pm(l, ls, runs_per, 4),
        ]);
    }
    let desc = setup.describe();
    plot_grid(
        opts,
        &settings,
        &means,
        &out.path("grid.png"),
        &format!("{}-fold CV accuracy over the grid (base settings: {desc})", opts.folds),
    )?;
    let (bm, bs) = means[best];
    let test = &final_run.1;
    let inside = (test.accuracy - bm).abs() <= 2.0 * bs;
    let md = format!(
        "# Cross-validation: {desc}\n\n{} stratified folds of the {} training images{}; every setting trains on k-1 folds and is scored on the held-out fold (final weights, eval mode). The test set ({} images) is not used until the best setting (highest mean validation accuracy) has been retrained on all the training data.\n\n{}\n![grid]({})\n\n## The estimate and the test\n\n| | accuracy |\n|---|---|\n| cross-validation estimate of the best setting ({}) | {} % (mean ± std over {} fold runs) |\n| the best setting retrained on all training data, test set | {:.2} % |\n| its training accuracy | {:.2} % |\n\n## What it shows\n\nThe test accuracy is {} the cross-validation estimate ({}). {}\n\n## Files\n\n- `results.csv`: one row per (setting, seed, fold): the grid values, validation accuracy and loss on the held-out fold, training accuracy, seconds.\n",
        opts.folds,
        setup.train.len(),
        if seeds.len() > 1 { format!(", repeated with {} fold assignments (seeds {seeds:?})", seeds.len()) } else { String::new() },
        setup.test.len(),
        table(&["setting", "CV accuracy %", "CV loss"], &rows),
        "grid.png",
        label(&settings[best]),
        pct_pm(bm, bs, runs_per, 2),
        runs_per,
        100.0 * test.accuracy,
        100.0 * final_run.0.accuracy,
        if inside { "within two standard deviations of" } else { "outside two fold standard deviations of" },
        fmt(100.0 * (test.accuracy - bm), 2) + " points",
        "The final model trains on k/(k-1) times as much data as each fold's model, which tends to make the test figure a little higher; and picking the best of several settings by the same folds makes the CV estimate of the winner optimistic (selection bias). Both are stated, not corrected.",
    );
    out.write_report(&md)
}

/// A heatmap for two parameters, a line with error bars for one, bars otherwise.
fn plot_grid(opts: &Options, settings: &[Vec<(Param, f64)>], means: &[(f64, f64)], path: &std::path::Path, title: &str) -> Result<()> {
    let g = &opts.grid.0;
    if g.len() == 2 {
        let (py, ys) = &g[0];
        let (px, xs) = &g[1];
        let mut values = vec![vec![f64::NAN; xs.len()]; ys.len()];
        for (i, m) in means.iter().enumerate() {
            values[i / xs.len()][i % xs.len()] = 100.0 * m.0;
        }
        return Heatmap {
            title: title.into(),
            x_label: px.name().into(),
            y_label: py.name().into(),
            x_ticks: xs.iter().map(|v| value(*px, *v)).collect(),
            y_ticks: ys.iter().map(|v| value(*py, *v)).collect(),
            values,
            value_label: "mean validation accuracy (%)".into(),
            decimals: None,
        }
        .save(path);
    }
    if g.len() == 1 {
        let (p, xs) = &g[0];
        let log = matches!(p, Param::Lr | Param::BatchSize) && xs.iter().all(|&x| x > 0.0);
        return LinePlot {
            title: title.into(),
            x_label: p.name().into(),
            y_label: "validation accuracy (%), mean ± std over folds".into(),
            x_scale: if log { Scale::Log10 } else { Scale::Linear },
            y_scale: Scale::Linear,
            series: vec![Series {
                name: format!("{}-fold CV", opts.folds),
                points: xs.iter().zip(means).map(|(&x, m)| (x, 100.0 * m.0)).collect(),
                err: Some(means.iter().map(|m| 100.0 * m.1).collect()),
                dashed: false,
            }],
            markers: true,
        }
        .save(path);
    }
    BarPlot {
        title: title.into(),
        y_label: "validation accuracy (%)".into(),
        groups: vec![(
            format!("{}-fold CV, ± std", opts.folds),
            settings.iter().zip(means).map(|(s, m)| Bar { label: label(s), value: 100.0 * m.0, err: Some(100.0 * m.1) }).collect(),
        )],
    }
    .save(path)
}
