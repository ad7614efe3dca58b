//! The optimizers experiment: the same model from the same initial weights trained with SGD,
//! momentum, Nesterov, Adagrad, Adadelta, RMSprop, Adam and AdamW (learning rates given, from
//! a stated table, or picked by a short search on the validation loss); training-loss and
//! validation-accuracy curves on one figure and a table of final figures and time. Then each
//! optimizer's path on classic 2-D functions, computed by the engine's own optimizer kernels
//! and drawn over the function's contours.

use super::paths::{optimizer_path, TestFunction};
use super::results::{fmt, num_pm, pct_pm, table, Results};
use super::stats::mean_std;
use super::{train_and_test, RunSummary, Setup};
use crate::plot::{ContourPlot, LinePlot, Scale, Series};
use crate::{Backend, Error, Optimizer, Result};

/// What to compare.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Options {
    /// Optimizer presets ([`Optimizer::PRESETS`] names).
    pub optimizers: Vec<String>,
    /// Learning rates given per optimizer; the others come from [`default_lr`] or the search.
    pub lrs: Vec<(String, f32)>,
    /// Pick each learning rate not given by a short search: `search_epochs` epochs at
    /// [`default_lr`] times each of `search_factors`, keeping the lowest validation loss.
    pub search: bool,
    /// Epochs of each search run.
    pub search_epochs: usize,
    /// Multipliers of the default learning rate the search tries.
    pub search_factors: Vec<f32>,
    /// Steps of the optimizer paths on the 2-D test functions (0: no paths).
    pub path_steps: usize,
    /// Weight decay for every optimizer; `None` keeps each preset's own (AdamW's decoupled
    /// 0.01, 0 for the others), so that AdamW differs from Adam.
    pub weight_decay: Option<f32>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            optimizers: Optimizer::PRESETS.iter().map(|s| s.to_string()).collect(),
            lrs: Vec::new(),
            search: false,
            search_epochs: 1,
            search_factors: vec![0.1, 1.0, 10.0],
            path_steps: 300,
            weight_decay: None,
        }
    }
}

/// The learning rate each optimizer runs at unless told otherwise: PyTorch's default where it
/// has one that trains a CNN (Adagrad 1e-2, Adadelta 1.0, RMSprop 1e-2 is PyTorch's but too
/// high for a CNN from scratch, so 1e-3 as in Keras, Adam and AdamW 1e-3), and for SGD, which
/// has none, 0.1 plain and 0.01 with momentum 0.9 (equal effective step lr / (1 - momentum)).
pub fn default_lr(optimizer: &str) -> f32 {
    match optimizer {
        "sgd" => 0.1,
        "momentum" | "nesterov" => 0.01,
        "adagrad" => 0.01,
        "adadelta" => 1.0,
        "rmsprop" | "adam" | "adamw" => 1e-3,
        _ => 1e-3,
    }
}

/// One run of the learning-rate search: the rate and the validation loss it reached.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct SearchPoint {
    lr: f32,
    val_loss: f64,
}

/// Runs the experiment into `out`.
pub fn run<B: Backend>(be: &B, setup: &Setup, opts: &Options, out: &mut Results) -> Result<()> {
    if opts.optimizers.is_empty() {
        return Err(Error::Invalid("no optimizers to compare: expected at least one name".into()));
    }
    let mut presets = Vec::new();
    for name in &opts.optimizers {
        let mut o = Optimizer::preset(name)?;
        if let Some(wd) = opts.weight_decay {
            o.weight_decay = wd;
        }
        presets.push((name.clone(), o));
    }
    let seeds = setup.seeds();
    let needs_search: Vec<&String> =
        if opts.search { opts.optimizers.iter().filter(|n| !opts.lrs.iter().any(|(m, _)| m == *n)).collect() } else { Vec::new() };
    out.plan(needs_search.len() * opts.search_factors.len() + presets.len() * seeds.len());

    // 1. Learning rates.
    let mut chosen = Vec::new();
    let mut search_rows = Vec::new();
    for (name, base) in &presets {
        let given = opts.lrs.iter().find(|(m, _)| m == name).map(|&(_, lr)| lr);
        let lr = match given {
            Some(lr) => lr,
            None if opts.search => {
                let mut best = (f64::INFINITY, default_lr(name));
                for &f in &opts.search_factors {
                    let lr = default_lr(name) * f;
                    let key = format!("search-{name}-lr{lr:e}-wd{:e}", base.weight_decay);
                    let p: SearchPoint = out.run(&key, &format!("search {name} lr {lr:.0e}"), || {
                        let seed = seeds[0];
                        let splits = setup.splits(None, seed)?;
                        let mut model = setup.build(be, &setup.model, seed, &splits)?;
                        let mut cfg = setup.config.clone();
                        cfg.epochs = opts.search_epochs;
                        cfg.optimizer = Optimizer { lr, ..*base };
                        let r = train_and_test(be, &mut model, &splits, &cfg, setup.label_smoothing, 0, false)?;
                        let last = r.epochs.last();
                        // Without a validation split, the final training loss decides.
                        let val_loss = last.and_then(|e| e.val_loss).unwrap_or(r.train.loss);
                        Ok(SearchPoint { lr, val_loss: if val_loss.is_finite() { val_loss } else { f64::INFINITY } })
                    })?;
                    search_rows.push(vec![name.clone(), format!("{lr:e}"), fmt(p.val_loss, 4)]);
                    if p.val_loss < best.0 {
                        best = (p.val_loss, lr);
                    }
                }
                best.1
            }
            None => default_lr(name),
        };
        chosen.push((name.clone(), Optimizer { lr, ..*base }, given.is_some()));
    }

    // 2. Training: per seed, every optimizer from the same initial weights.
    let mut runs: Vec<Vec<RunSummary>> = vec![Vec::new(); chosen.len()];
    for &seed in &seeds {
        for (k, (name, opt, _)) in chosen.iter().enumerate() {
            let key = format!("train-{name}-lr{:e}-wd{:e}-seed{seed}", opt.lr, opt.weight_decay);
            let r: RunSummary = out.run(&key, &format!("{name} lr {:.0e}, seed {seed}", opt.lr), || {
                let splits = setup.splits(None, seed)?;
                let mut model = setup.build(be, &setup.model, seed, &splits)?;
                let mut cfg = setup.config.clone();
                cfg.optimizer = *opt;
                cfg.seed = seed;
                train_and_test(be, &mut model, &splits, &cfg, setup.label_smoothing, setup.patience, false)
            })?;
            runs[k].push(r);
        }
    }

    // 3. Paths on the 2-D functions, computed by the backend's optimizer kernels.
    let mut paths = Vec::new();
    if opts.path_steps > 0 {
        for f in TestFunction::ALL {
            let mut fp = Vec::new();
            for (name, _, _) in &chosen {
                let mut o = Optimizer::preset(name)?;
                o.lr = f.default_lr(name);
                fp.push(optimizer_path(be, f, &o, opts.path_steps, f.start())?);
            }
            paths.push((f, fp));
        }
    }

    // Tables, CSV, plots.
    let mut csv = Vec::new();
    for (k, (name, opt, _)) in chosen.iter().enumerate() {
        for (r, &seed) in runs[k].iter().zip(&seeds) {
            let best_val = r.epochs.iter().filter_map(|e| e.val_accuracy).fold(f64::NAN, f64::max);
            csv.push(vec![
                name.clone(),
                format!("{:e}", opt.lr),
                format!("{}", opt.weight_decay),
                seed.to_string(),
                r.epochs.len().to_string(),
                format!("{:.6}", r.train.loss),
                format!("{:.6}", r.train.accuracy),
                format!("{:.6}", r.test.loss),
                format!("{:.6}", r.test.accuracy),
                format!("{best_val:.6}"),
                format!("{:.3}", r.seconds),
            ]);
        }
    }
    out.write_csv(
        &[
            "optimizer",
            "lr",
            "weight_decay",
            "seed",
            "epochs",
            "train_loss",
            "train_accuracy",
            "test_loss",
            "test_accuracy",
            "best_val_accuracy",
            "seconds",
        ],
        &csv,
    )?;
    let mut curves_csv = String::from("optimizer,seed,epoch,train_loss_window\n");
    for (k, (name, _, _)) in chosen.iter().enumerate() {
        for (r, seed) in runs[k].iter().zip(&seeds) {
            for (e, l) in &r.curve {
                curves_csv.push_str(&format!("{name},{seed},{e:.4},{l:.6}\n"));
            }
        }
    }
    crate::atomic::write(&out.path("curves.csv"), curves_csv.as_bytes())?;

    let n = seeds.len();
    let mut rows = Vec::new();
    let mut summary = Vec::new();
    for (k, (name, opt, given)) in chosen.iter().enumerate() {
        let col = |f: &dyn Fn(&RunSummary) -> f64| mean_std(&runs[k].iter().map(f).collect::<Vec<_>>());
        let (ta, tas) = col(&|r| r.test.accuracy);
        let (tl, tls) = col(&|r| r.test.loss);
        let (tra, tras) = col(&|r| r.train.accuracy);
        let (s, ss) = col(&|r| r.seconds);
        let source = if *given {
            "given"
        } else if opts.search {
            "search"
        } else {
            "default"
        };
        rows.push(vec![
            name.clone(),
            format!("{:.0e} ({source})", opt.lr),
            format!("{}", opt.weight_decay),
            pct_pm(tra, tras, n, 2),
            pct_pm(ta, tas, n, 2),
            num_pm(tl, tls, n, 4),
            num_pm(s, ss, n, 1),
        ]);
        summary.push((name.clone(), ta, tas));
    }
    let desc = setup.describe();
    let curves = curve_plots(&chosen, &runs);
    crate::plot::save_panels(&out.path("curves.png"), &format!("Optimizers: {desc}, {}", super::results::seeds_phrase(n)), &curves)?;

    let mut path_md = String::new();
    for (f, fp) in &paths {
        let file = format!("paths-{}.png", f.name());
        let mut series = Vec::new();
        let mut prow = Vec::new();
        for p in fp {
            series.push(Series { name: format!("{} (lr {:.0e})", p.optimizer, p.lr), points: p.points.clone(), err: None, dashed: false });
            let last = p.points.last().copied().unwrap_or((f64::NAN, f64::NAN));
            let dist = f.minimum().map_or(f64::NAN, |(mx, my)| ((last.0 - mx).powi(2) + (last.1 - my).powi(2)).sqrt());
            prow.push(vec![
                p.optimizer.clone(),
                format!("{:.0e}", p.lr),
                format!("({:.3}, {:.3})", last.0, last.1),
                fmt(*p.values.last().unwrap_or(&f64::NAN), 4),
                fmt(dist, 3),
                if p.diverged { "diverged".into() } else { String::new() },
            ]);
        }
        let mut marks = vec![("start".to_string(), f.start())];
        if let Some(m) = f.minimum() {
            marks.push(("minimum".to_string(), m));
        }
        let view = f.view();
        let ff = |x: f64, y: f64| f.value(x, y);
        ContourPlot {
            title: format!("{} function: {} steps of each optimizer (engine kernels on {})", f.name(), opts.path_steps, be.name()),
            x_label: "x".into(),
            y_label: "y".into(),
            x_range: view.0,
            y_range: view.1,
            f: &ff,
            log_levels: !matches!(f, TestFunction::Saddle),
            paths: series,
            marks,
        }
        .save(&out.path(&file))?;
        path_md.push_str(&format!(
            "### {} ({})\n\nStart {:?}, {} steps.\n\n{}\n![{} paths]({file})\n\n",
            f.name(),
            f.description(),
            f.start(),
            opts.path_steps,
            table(&["optimizer", "lr", "end point", "f(end)", "distance to minimum", ""], &prow),
            f.name()
        ));
    }

    summary.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut shows = String::new();
    if let (Some(best), Some(worst)) = (summary.first(), summary.last()) {
        shows.push_str(&format!("Best test accuracy: {} ({:.2}%); worst: {} ({:.2}%).", best.0, 100.0 * best.1, worst.0, 100.0 * worst.1));
        if n > 1 {
            let overlapping: Vec<&str> = summary.iter().skip(1).filter(|s| s.1 + s.2 >= best.1 - best.2).map(|s| s.0.as_str()).collect();
            if overlapping.is_empty() {
                shows.push_str(" Its mean is more than one standard deviation above every other's.");
            } else {
                shows.push_str(&format!(
                    " Within one standard deviation of it over the {n} seeds: {} — at these settings the seeds do not separate them.",
                    overlapping.join(", ")
                ));
            }
        } else {
            shows.push_str(" One seed only: differences of a fraction of a percent are within seed noise; run with --seeds 3.");
        }
    }
    let search_md = if search_rows.is_empty() {
        String::new()
    } else {
        format!(
            "\n## Learning-rate search\n\n{} epoch(s) on the training part at the default rate times {:?}, seed {}; the lowest validation loss wins.\n\n{}",
            opts.search_epochs,
            opts.search_factors,
            seeds[0],
            table(&["optimizer", "lr", "validation loss"], &search_rows)
        )
    };
    let md = format!(
        "# Optimizers: {desc}\n\nEvery optimizer starts from the same initial weights for a given seed ({n} seed(s): {seeds:?}) and sees the same batches; weight decay {}. Test figures are of the final weights{}.\n\n{}\n![training curves](curves.png)\n\n## What it shows\n\n{shows}\n{search_md}\n## Paths on 2-D test functions\n\nEach path is computed by the backend's own fused optimizer kernel on a 2-element parameter (gradient evaluated on the host at each step).\n\n{path_md}## Files\n\n- `results.csv`: one row per (optimizer, seed): learning rate, weight decay, final train/test loss and accuracy (eval mode), best validation accuracy, seconds.\n- `curves.csv`: training loss over windows of about 1/8 epoch.\n",
        match opts.weight_decay {
            Some(wd) => format!("{wd} for all"),
            None => "as each preset has it (AdamW: 0.01, decoupled; the others: none)".into(),
        },
        if setup.patience > 0 { format!(" (early stopping after {} epochs without a better validation loss restores the best)", setup.patience) } else { String::new() },
        table(&["optimizer", "lr", "weight decay", "train acc %", "test acc %", "test loss", "seconds"], &rows),
    );
    out.write_report(&md)
}

/// Training loss (windows of about 1/8 epoch) and validation accuracy per epoch, averaged
/// point by point over the seeds.
fn curve_plots(chosen: &[(String, Optimizer, bool)], runs: &[Vec<RunSummary>]) -> Vec<LinePlot> {
    let mut loss = Vec::new();
    let mut val = Vec::new();
    for (k, (name, opt, _)) in chosen.iter().enumerate() {
        let rs = &runs[k];
        let len = rs.iter().map(|r| r.curve.len()).min().unwrap_or(0);
        let pts: Vec<(f64, f64)> =
            (0..len).map(|i| (rs[0].curve[i].0, rs.iter().map(|r| r.curve[i].1).sum::<f64>() / rs.len() as f64)).collect();
        loss.push(Series { name: format!("{name} (lr {:.0e})", opt.lr), points: pts, err: None, dashed: false });
        let elen = rs.iter().map(|r| r.epochs.len()).min().unwrap_or(0);
        let mut vp = Vec::new();
        let mut ve = Vec::new();
        for i in 0..elen {
            let xs: Vec<f64> = rs.iter().filter_map(|r| r.epochs[i].val_accuracy).map(|a| 100.0 * a).collect();
            if !xs.is_empty() {
                let (m, s) = mean_std(&xs);
                vp.push(((i + 1) as f64, m));
                ve.push(s);
            }
        }
        val.push(Series { name: name.clone(), points: vp, err: (rs.len() > 1).then_some(ve), dashed: false });
    }
    vec![
        LinePlot {
            title: "Training loss".into(),
            x_label: "epoch".into(),
            y_label: "cross-entropy (nats, mean over ~1/8 epoch)".into(),
            x_scale: Scale::Linear,
            y_scale: Scale::Log10,
            series: loss,
            markers: false,
        },
        LinePlot {
            title: "Validation accuracy".into(),
            x_label: "epoch".into(),
            y_label: "validation accuracy (%)".into(),
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            series: val,
            markers: true,
        },
    ]
}
