//! The experiments' sampling and statistics (`wgtrain::experiment::stats`), on known answers:
//! fold disjointness and stratification, bootstrap and out-of-bag sets, SAMME weights, votes and
//! probability averaging, confidence intervals, and the sharpness of a function whose maximum
//! over the box is known in closed form.

use wgtrain::data::Label;
use wgtrain::experiment::stats::*;
use wgtrain::rng::Rng;
use wgtrain::Result;

fn labels(n: usize, classes: Label, seed: u64) -> Vec<Label> {
    let mut r = Rng::new(seed);
    // Uneven classes: class c is drawn with weight c + 1.
    let total: usize = (1..=classes as usize).sum();
    (0..n)
        .map(|_| {
            let mut u = r.below(total);
            let mut c = 0;
            while u > c {
                u -= c + 1;
                c += 1;
            }
            c.min(classes as usize - 1) as Label
        })
        .collect()
}

fn counts(l: &[Label], idx: &[usize], classes: usize) -> Vec<usize> {
    let mut c = vec![0; classes];
    for &i in idx {
        c[l[i] as usize] += 1;
    }
    c
}

#[test]
fn folds_are_disjoint_cover_everything_and_are_stratified() {
    for (n, k) in [(1000, 5), (97, 3), (10, 10), (31, 7)] {
        let l = labels(n, 4, n as u64);
        let folds = stratified_folds(&l, k, 3).unwrap();
        assert_eq!(folds.len(), k);
        let mut all: Vec<usize> = folds.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>(), "folds must partition the samples");
        let sizes: Vec<usize> = folds.iter().map(|f| f.len()).collect();
        assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{sizes:?}");
        for c in 0..4 {
            let per: Vec<usize> = folds.iter().map(|f| counts(&l, f, 4)[c]).collect();
            assert!(per.iter().max().unwrap() - per.iter().min().unwrap() <= 1, "class {c}: {per:?}");
        }
        let train = fold_train(&folds, 0);
        assert!(train.iter().all(|i| !folds[0].contains(i)) && train.len() + folds[0].len() == n);
    }
    assert_ne!(stratified_folds(&labels(100, 3, 1), 4, 1).unwrap(), stratified_folds(&labels(100, 3, 1), 4, 2).unwrap());
    assert!(stratified_folds(&[0, 1], 3, 0).unwrap_err().to_string().contains("3 folds of 2"));
    assert!(stratified_folds(&[0, 1], 1, 0).is_err());
}

#[test]
fn stratified_subsets_keep_class_shares() {
    let l = labels(5000, 5, 7);
    let all = counts(&l, &(0..l.len()).collect::<Vec<_>>(), 5);
    let s = stratified_subset(&l, 500, 1);
    assert_eq!(s.len(), 500);
    assert!(s.windows(2).all(|w| w[0] < w[1]), "sorted and without repeats");
    let c = counts(&l, &s, 5);
    for k in 0..5 {
        let expected = all[k] as f64 * 500.0 / 5000.0;
        assert!((c[k] as f64 - expected).abs() <= 1.0, "class {k}: {} vs {expected}", c[k]);
    }
    assert_ne!(stratified_subset(&l, 500, 1), stratified_subset(&l, 500, 2));
    assert_eq!(stratified_subset(&l, 99999, 1).len(), 5000);
}

#[test]
fn bootstrap_draws_with_replacement_and_out_of_bag_is_the_rest() {
    let n = 10_000;
    let b = bootstrap(n, 5);
    assert_eq!(b.sample.len(), n);
    let mut seen = vec![0u32; n];
    for &i in &b.sample {
        seen[i] += 1;
    }
    assert!(seen.iter().any(|&c| c > 1), "with replacement: some sample is drawn twice");
    let oob: Vec<usize> = (0..n).filter(|&i| seen[i] == 0).collect();
    assert_eq!(b.out_of_bag, oob);
    // P(never drawn) = (1 - 1/n)^n -> 1/e = 0.368; sd of the count ~ sqrt(n p (1-p)) ~ 48.
    let frac = oob.len() as f64 / n as f64;
    assert!((frac - (-1.0f64).exp()).abs() < 0.02, "out-of-bag fraction {frac}");
}

#[test]
fn weighted_resampling_follows_the_weights() {
    let w = [0.0, 1.0, 3.0];
    let s = weighted_resample(&w, 40_000, 1).unwrap();
    let c = counts(&[0, 1, 2], &s, 3);
    assert_eq!(c[0], 0, "zero weight is never drawn");
    let f = c[2] as f64 / 40_000.0;
    assert!((f - 0.75).abs() < 0.01, "{f}");
    assert!(weighted_resample(&[0.0, 0.0], 3, 1).is_err());
    assert!(weighted_resample(&[1.0, f64::NAN], 3, 1).unwrap_err().to_string().contains("NaN"));
}

#[test]
fn samme_weights_follow_the_formula() {
    // 4 samples, equal weights, one wrong, K = 3: err = 1/4, alpha = ln 3 + ln 2 = ln 6.
    let r = samme_round(&[0.25; 4], &[true, false, true, true], 3).unwrap();
    assert!((r.error - 0.25).abs() < 1e-12);
    assert!((r.alpha - 6f64.ln()).abs() < 1e-12);
    // The wrong sample's weight is multiplied by 6, then all renormalised: 6/9 and 1/9 each.
    let want = [1.0 / 9.0, 6.0 / 9.0, 1.0 / 9.0, 1.0 / 9.0];
    for (a, b) in r.weights.iter().zip(want) {
        assert!((a - b).abs() < 1e-12, "{:?}", r.weights);
    }
    // After the update the learner's weighted error is exactly 1 - 1/K... for K=2, 1/2.
    let r2 = samme_round(&[0.1, 0.2, 0.3, 0.4], &[true, false, true, false], 2).unwrap();
    let wrong: f64 = r2.weights[1] + r2.weights[3];
    assert!((wrong - 0.5).abs() < 1e-12, "{wrong}");
    // No better than chance gives a vote <= 0.
    assert!(samme_round(&[1.0; 3], &[true, false, false], 3).unwrap().alpha <= 1e-12);
    // A perfect learner gets a large finite vote.
    assert!(samme_round(&[1.0; 3], &[true; 3], 3).unwrap().alpha.is_finite());
    assert!(samme_round(&[1.0; 2], &[true], 3).is_err());
}

#[test]
fn votes_and_probability_averaging() {
    let preds = vec![vec![0, 1, 2, 1], vec![0, 2, 2, 0], vec![1, 2, 0, 2]];
    assert_eq!(majority_vote(&preds, 3), vec![0, 2, 2, 0], "last sample is a three-way tie: smallest class");
    assert_eq!(weighted_vote(&preds, &[1.0, 1.0, 5.0], 3), vec![1, 2, 0, 2]);
    let agree = vote_agreement(&preds, &[0, 2, 2, 0]);
    assert_eq!(agree, vec![2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 1.0 / 3.0]);
    assert!((prediction_variance(&preds, 3) - (1.0 - 7.0 / 12.0)).abs() < 1e-12);
    assert_eq!(prediction_variance(&[vec![1, 1], vec![1, 1]], 2), 0.0);
    // Two members, two samples, two classes.
    let p = average_probabilities(&[vec![0.9, 0.1, 0.4, 0.6], vec![0.3, 0.7, 0.2, 0.8]]);
    let want = [0.6, 0.4, 0.3, 0.7];
    assert!(p.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{p:?}");
    assert_eq!(argmax_rows(&p, 2), vec![0, 1]);
    // Averaging probabilities and voting can disagree: member 1 is sure, member 2 is not.
    let q = [vec![0.95f32, 0.05], vec![0.45, 0.55], vec![0.45, 0.55]];
    assert_eq!(argmax_rows(&average_probabilities(&q), 2), vec![0]);
    assert_eq!(majority_vote(&[vec![0], vec![1], vec![1]], 2), vec![1]);
    let h = entropy_rows(&[1.0, 0.0, 0.5, 0.5], 2);
    assert!(h[0].abs() < 1e-12 && (h[1] - 2f64.ln()).abs() < 1e-12);
    assert_eq!(argmax(&[f32::NAN, 1.0, 3.0, 3.0]), 2);
}

#[test]
fn summary_statistics() {
    let (m, s) = mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
    assert!((m - 5.0).abs() < 1e-12 && (s - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
    assert_eq!(mean_std(&[3.0]), (3.0, 0.0));
    assert!(mean_std(&[]).0.is_nan());
    assert_eq!(accuracy(&[1, 2, 3], &[1, 0, 3]), 2.0 / 3.0);
    // 800 of 1000 right: the 95% interval is about 0.8 +- 1.96 sqrt(0.16/1000) = +- 0.025.
    let correct: Vec<bool> = (0..1000).map(|i| i % 5 != 0).collect();
    let (lo, hi) = bootstrap_accuracy_ci(&correct, 2000, 0.95, 1);
    assert!(lo < 0.8 && hi > 0.8, "({lo}, {hi})");
    assert!(((hi - lo) / 2.0 - 0.0248).abs() < 0.005, "half width {}", (hi - lo) / 2.0);
}

#[test]
fn sharpness_of_a_quadratic_is_its_box_corner() {
    // f(w) = sum a_i w_i^2 grows towards the box corner away from 0, so the maximum over
    // |z_i| <= eps(|w_i|+1) is at z_i = sign(w_i) eps (|w_i|+1), known in closed form.
    let a = [1.0f64, 4.0, 0.5];
    let w = [0.5f32, -1.0, 2.0];
    let f = |x: &[f32]| -> Result<(f64, Vec<f32>)> {
        let v = x.iter().zip(a).map(|(&x, a)| a * (x as f64).powi(2)).sum();
        Ok((v, x.iter().zip(a).map(|(&x, a)| (2.0 * a * x as f64) as f32).collect()))
    };
    let eps = 1e-2f32;
    let base: f64 = w.iter().zip(a).map(|(&x, a)| a * (x as f64).powi(2)).sum();
    let max: f64 = w.iter().zip(a).map(|(&x, a)| a * (x.abs() as f64 + eps as f64 * (x.abs() as f64 + 1.0)).powi(2)).sum();
    let want = 100.0 * (max - base) / (1.0 + base);
    let s = sharpness(f, &w, eps, 10, 0.25).unwrap();
    // f32 points: relative error of the increase ~ 1e-7 / eps.
    assert!((s.value - want).abs() < 1e-3 * want, "{} vs {want}", s.value);
    assert!((s.base - base).abs() < 1e-9);
    // Too few steps to reach the corner give less: the measure depends on its parameters.
    let short = sharpness(f, &w, eps, 1, 0.25).unwrap();
    assert!(short.value < s.value * 0.9);
    // A flat function has sharpness 0.
    let flat = sharpness(|x: &[f32]| Ok((1.0, vec![0.0; x.len()])), &w, eps, 5, 0.5).unwrap();
    assert_eq!(flat.value, 0.0);
    assert!(sharpness(f, &w, 0.0, 5, 0.5).is_err());
}

// ---- The experiments end to end, on the CPU backend with tiny settings ----

mod end_to_end {
    use std::path::{Path, PathBuf};

    use wgtrain::data::Source;
    use wgtrain::experiment::results::Results;
    use wgtrain::experiment::{self, cv, optimizers, regularization, Setup};
    use wgtrain::nn::{LayerSpec, ModelSpec};
    use wgtrain::train::{BatchSize, TrainConfig};
    use wgtrain::{Cpu, Optimizer, OptimizerKind};

    pub fn tiny_setup(train: usize, epochs: usize) -> Setup {
        let (tr, te) = experiment::load_data(Source::Shapes, None, 28, Some(train), Some(60), 1).unwrap();
        let model = ModelSpec {
            name: "tiny".into(),
            layers: vec![
                LayerSpec::conv(4, 3, 1, 1),
                LayerSpec::bn(),
                LayerSpec::Relu,
                LayerSpec::max_pool(4, 4, 0),
                LayerSpec::Flatten,
                LayerSpec::linear(16),
                LayerSpec::Relu,
                LayerSpec::Dropout { p: 0.25 },
                LayerSpec::linear(10),
            ],
        };
        let mut opt = Optimizer::new(OptimizerKind::Adam);
        opt.lr = 3e-3;
        Setup {
            train: tr,
            test: te,
            model,
            config: TrainConfig { epochs, batch: BatchSize::Fixed(32), optimizer: opt, ..TrainConfig::default() },
            label_smoothing: 0.0,
            val_fraction: 0.2,
            patience: 0,
            seeds: 1,
        }
    }

    pub fn fresh(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wgtrain-exp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn open(dir: &Path, name: &str, setup: &Setup, opts: &impl serde::Serialize) -> Results {
        let mut s = setup.settings();
        s["experiment_options"] = serde_json::to_value(opts).unwrap();
        Results::open(dir, name, &s, &experiment::environment("cpu")).unwrap()
    }

    fn csv_rows(dir: &Path) -> Vec<Vec<String>> {
        std::fs::read_to_string(dir.join("results.csv")).unwrap().lines().map(|l| l.split(',').map(String::from).collect()).collect()
    }

    fn png_ok(path: &Path) {
        let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(img.width() > 400 && img.height() > 300, "{}", path.display());
    }

    #[test]
    fn subsets_are_stratified_for_every_source_and_sizes_are_checked() {
        let (tr, te) = experiment::load_data(Source::Shapes, None, 28, Some(300), Some(50), 3).unwrap();
        assert_eq!((tr.len(), te.len()), (300, 50));
        let c = experiment::class_counts(&te);
        assert!(c.iter().all(|&k| k == 5), "{c:?}");
        assert!(experiment::load_data(Source::Shapes, None, 28, Some(0), None, 3).unwrap_err().to_string().contains("train size 0"));
    }

    #[test]
    fn model_transformations_for_the_regularizers() {
        let s = tiny_setup(50, 1).model;
        let plain = regularization::plain(&s);
        assert!(!plain.layers.iter().any(|l| matches!(l, LayerSpec::BatchNorm2d { .. } | LayerSpec::Dropout { .. })));
        assert!(matches!(plain.layers[0], LayerSpec::Conv2d { bias: true, .. }), "the conv gets its bias back");
        let bn = regularization::with_batch_norm(&plain);
        assert!(matches!(bn.layers[0], LayerSpec::Conv2d { bias: false, .. }) && matches!(bn.layers[1], LayerSpec::BatchNorm2d { .. }));
        assert_eq!(regularization::with_batch_norm(&bn), bn, "adding batch norm twice changes nothing");
        let d = regularization::with_dropout(&plain, 0.5);
        let at: Vec<usize> = d.layers.iter().enumerate().filter(|(_, l)| matches!(l, LayerSpec::Dropout { .. })).map(|(i, _)| i).collect();
        assert_eq!(at.len(), 1);
        assert!(matches!(d.layers[at[0] + 1], LayerSpec::Linear { out: 10, .. }), "dropout goes before the output layer");
        assert!(matches!(regularization::with_dropout(&s, 0.1).layers[7], LayerSpec::Dropout { p } if p == 0.1));
        assert!("mixup".parse::<regularization::Regularizer>().is_ok());
        assert!("mixupp".parse::<regularization::Regularizer>().unwrap_err().to_string().contains("cutmix"));
    }

    #[test]
    fn cv_grids_parse_and_expand() {
        let g: cv::Grid = "lr=1e-3,1e-2; weight-decay=0,5e-4,1e-3".parse().unwrap();
        let s = g.settings();
        assert_eq!(s.len(), 6);
        assert_eq!(cv::label(&s[1]), "lr=0.001 weight-decay=0.0005");
        for bad in ["lr", "lr=", "speed=1", "lr=-1", "batch-size=1.5", "dropout=1", "lr=1;lr=2", ""] {
            assert!(bad.parse::<cv::Grid>().is_err(), "{bad}");
        }
        assert!("speed=1".parse::<cv::Grid>().unwrap_err().to_string().contains("weight-decay"));
    }

    #[test]
    fn cv_runs_keeps_the_test_set_out_and_resumes() {
        let setup = tiny_setup(120, 1);
        let dir = fresh("cv");
        let opts = cv::Options { folds: 3, grid: "lr=1e-3,1e-2".parse().unwrap() };
        cv::run(&Cpu, &setup, &opts, &mut open(&dir, "cv", &setup, &opts)).unwrap();
        let rows = csv_rows(&dir);
        assert_eq!(rows[0][..4], ["setting", "lr", "seed", "fold"].map(String::from));
        assert_eq!(rows.len(), 1 + 2 * 3, "one row per setting and fold");
        for r in &rows[1..] {
            let acc: f64 = r[4].parse().unwrap();
            assert!((0.0..=1.0).contains(&acc), "{r:?}");
        }
        let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
        assert!(report.contains("(best)") && report.contains("test set"), "{report}");
        png_ok(&dir.join("grid.png"));
        // Every fold run and the final run are cached; a second call redoes none of them.
        assert_eq!(std::fs::read_dir(dir.join("runs")).unwrap().count(), 7);
        let before = std::fs::read_to_string(dir.join("results.csv")).unwrap();
        let mut again = open(&dir, "cv", &setup, &opts);
        cv::run(&Cpu, &setup, &opts, &mut again).unwrap();
        assert_eq!(again.reused(), 7, "every run read back (NaN test figures of the fold runs included)");
        assert_eq!(std::fs::read_to_string(dir.join("results.csv")).unwrap(), before);
        // Other settings in the same folder are refused, naming the difference.
        let other = cv::Options { folds: 4, grid: opts.grid.clone() };
        let mut s = setup.settings();
        s["experiment_options"] = serde_json::to_value(&other).unwrap();
        let e = Results::open(&dir, "cv", &s, &experiment::environment("cpu")).err().unwrap().to_string();
        assert!(e.contains("folds") && e.contains("3 -> 4"), "{e}");
        assert!(Results::open(&dir, "bagging", &s, &serde_json::Value::Null).err().unwrap().to_string().contains("experiment 'cv'"));
    }

    #[test]
    fn optimizers_run_from_the_same_start_and_draw_paths() {
        let mut setup = tiny_setup(100, 1);
        setup.seeds = 2;
        let dir = fresh("opt");
        let opts =
            optimizers::Options { optimizers: vec!["sgd".into(), "adam".into(), "adamw".into()], path_steps: 20, ..Default::default() };
        optimizers::run(&Cpu, &setup, &opts, &mut open(&dir, "optimizers", &setup, &opts)).unwrap();
        let rows = csv_rows(&dir);
        assert_eq!(rows.len(), 1 + 3 * 2);
        assert_eq!(rows[1][0], "sgd");
        assert_eq!(rows[1][1].parse::<f32>().unwrap(), optimizers::default_lr("sgd"));
        // Each preset keeps its own weight decay unless one is given: AdamW is not Adam.
        let wd = |name: &str| rows.iter().find(|r| r[0] == name).unwrap()[2].parse::<f32>().unwrap();
        assert_eq!((wd("adam"), wd("adamw")), (0.0, 0.01));
        assert_eq!(rows[0][5], "train_loss");
        let loss = |name: &str| rows.iter().find(|r| r[0] == name).unwrap()[5].clone();
        assert_ne!(loss("adam"), loss("adamw"), "AdamW's decay changes the result");
        for f in ["curves.png", "paths-rosenbrock.png", "paths-beale.png", "paths-saddle.png"] {
            png_ok(&dir.join(f));
        }
        let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
        assert!(report.contains("Rosenbrock") || report.contains("rosenbrock"), "{report}");
        assert!(report.contains(" ± "), "two seeds give a standard deviation: {report}");
    }

    #[test]
    fn regularization_variants_run_and_report_against_the_baseline() {
        let setup = tiny_setup(100, 2);
        let dir = fresh("reg");
        let opts = regularization::Options {
            only: ["none", "early-stopping", "mixup", "batch-norm"].iter().map(|s| s.parse().unwrap()).collect(),
            patience: 1,
            ..Default::default()
        };
        regularization::run(&Cpu, &setup, &opts, &mut open(&dir, "regularization", &setup, &opts)).unwrap();
        let rows = csv_rows(&dir);
        assert_eq!(rows.len(), 5);
        let names: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
        assert_eq!(names, ["none", "early-stopping", "mixup", "batch-norm"]);
        for r in &rows[1..] {
            let (tr, te, gap): (f64, f64, f64) = (r[5].parse().unwrap(), r[7].parse().unwrap(), r[8].parse().unwrap());
            assert!((gap - (tr - te)).abs() < 1e-5, "{r:?}");
        }
        let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
        assert!(report.contains("Against no regularization"), "{report}");
        for f in ["test_accuracy.png", "gap.png", "val_loss.png"] {
            png_ok(&dir.join(f));
        }
        let mut no_val = setup.clone();
        no_val.val_fraction = 0.0;
        let e = regularization::run(&Cpu, &no_val, &opts, &mut open(&fresh("reg2"), "regularization", &no_val, &opts)).unwrap_err();
        assert!(e.to_string().contains("validation"), "{e}");
    }
}
