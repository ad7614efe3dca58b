//! The bagging and boosting experiments end to end on the CPU backend with tiny settings: the
//! files they write, the consistency of their figures with the cached runs (votes, out-of-bag
//! sets, confidence intervals, the variance decomposition, SAMME's weights), and resuming.

use std::path::{Path, PathBuf};

use wgtrain::data::{Label, Source};
use wgtrain::experiment::results::Results;
use wgtrain::experiment::{self, bagging, boosting, stats, Setup};
use wgtrain::nn::{LayerSpec, ModelSpec};
use wgtrain::train::{BatchSize, TrainConfig};
use wgtrain::{Cpu, Optimizer, OptimizerKind};

const TRAIN: usize = 200;

fn setup(model: ModelSpec) -> Setup {
    // 200 training images; the shapes test set is a fifth of the training size (40 images).
    let (train, test) = experiment::load_data(Source::Shapes, None, 28, Some(TRAIN), Some(100), 1).unwrap();
    let mut opt = Optimizer::new(OptimizerKind::Adam);
    opt.lr = 1e-2;
    Setup {
        train,
        test,
        model,
        config: TrainConfig { epochs: 1, batch: BatchSize::Fixed(32), optimizer: opt, ..TrainConfig::default() },
        label_smoothing: 0.0,
        // Members and learners must ignore these (they train on their whole sample).
        val_fraction: 0.2,
        patience: 2,
        seeds: 1,
    }
}

fn tiny_model() -> ModelSpec {
    ModelSpec {
        name: "tiny".into(),
        layers: vec![LayerSpec::conv(4, 3, 1, 1), LayerSpec::Relu, LayerSpec::max_pool(2, 2, 0), LayerSpec::Flatten, LayerSpec::linear(10)],
    }
}

fn fresh(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgtrain-ensembles-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn open(dir: &Path, name: &str, setup: &Setup, opts: &impl serde::Serialize) -> Results {
    let mut s = setup.settings();
    s["experiment_options"] = serde_json::to_value(opts).unwrap();
    Results::open(dir, name, &s, &experiment::environment("cpu")).unwrap()
}

/// results.csv as (header, rows); no cell of ours holds a comma.
fn csv(dir: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    let mut lines = text.lines().map(|l| l.split(',').map(String::from).collect::<Vec<_>>());
    (lines.next().unwrap(), lines.collect())
}

fn col(header: &[String], name: &str) -> usize {
    header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name} in {header:?}"))
}

fn png_ok(path: &Path) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(img.width() >= 800 && img.height() >= 500, "{}: {}x{}", path.display(), img.width(), img.height());
}

/// A cached run (`runs/KEY.toml`: the value under the key `value`).
fn read<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut table: toml::Table = toml::from_str(&text).unwrap();
    table.remove("value").expect("a value").try_into().unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-5
}

#[test]
fn bagging_writes_consistent_results() {
    let s = setup(tiny_model());
    let dir = fresh("bagging");
    let opts = bagging::Options { members: 4, ci_resamples: 500, ci_level: 0.95 };
    bagging::run(&Cpu, &s, &opts, &mut open(&dir, "bagging", &s, &opts)).unwrap();
    for f in ["results.csv", "report.md", "accuracy_vs_members.png", "settings.json"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    png_ok(&dir.join("accuracy_vs_members.png"));

    let members: Vec<bagging::Member> = (1..=4).map(|m| read(&dir.join(format!("runs/r0-member{m:03}.toml")))).collect();
    let classes = s.train.classes.len();
    for (m, mb) in members.iter().enumerate() {
        assert_eq!(mb.member, m + 1);
        assert_eq!(mb.seed, s.config.seed + m as u64);
        // The out-of-bag set is the bootstrap draw's, with the member's seed.
        let boot = stats::bootstrap(TRAIN, mb.seed);
        assert_eq!(mb.out_of_bag, boot.out_of_bag);
        assert_eq!(mb.distinct + mb.out_of_bag.len(), TRAIN);
        assert_eq!(mb.oob_predictions.len(), mb.out_of_bag.len());
        assert_eq!(mb.test_probabilities.len(), s.test.len() * classes);
        assert!(close(stats::accuracy(&mb.test_predictions, &s.test.labels), mb.test_accuracy), "member {}", m + 1);
    }

    let (h, rows) = csv(&dir);
    assert_eq!(h, bagging::CSV_HEADER.map(String::from));
    assert_eq!(rows.len(), 4 + 3 * 4, "4 member rows and 3 methods per ensemble size");
    let (k, method, acc, cov) = (col(&h, "ensemble_size"), col(&h, "method"), col(&h, "accuracy"), col(&h, "coverage"));
    let get = |size: usize, m: &str| -> (f64, Option<f64>) {
        let r = rows.iter().find(|r| r[k] == size.to_string() && r[method] == m).unwrap_or_else(|| panic!("no row {size} {m}"));
        (r[acc].parse().unwrap(), r[cov].parse().ok())
    };
    // One member: the vote and the average are that member.
    assert!(close(get(1, "vote").0, members[0].test_accuracy));
    assert!(close(get(1, "average").0, members[0].test_accuracy));
    assert!(close(get(3, "member").0, members[2].test_accuracy));
    // The ensemble figures follow from the cached predictions.
    let preds: Vec<Vec<Label>> = members.iter().map(|m| m.test_predictions.clone()).collect();
    let probs: Vec<Vec<f32>> = members.iter().map(|m| m.test_probabilities.clone()).collect();
    for size in 1..=4 {
        assert!(close(get(size, "vote").0, stats::accuracy(&stats::majority_vote(&preds[..size], classes), &s.test.labels)));
        let avg = stats::argmax_rows(&stats::average_probabilities(&probs[..size]), classes);
        assert!(close(get(size, "average").0, stats::accuracy(&avg, &s.test.labels)));
    }
    // OOB coverage: about 1 - 0.632^k of the images, never falling as members are added.
    let coverage: Vec<f64> = (1..=4).map(|size| get(size, "oob_vote").1.expect("oob rows have a coverage")).collect();
    assert!((0.25..0.5).contains(&coverage[0]), "{coverage:?}");
    assert!((0.7..0.95).contains(&coverage[3]), "{coverage:?}");
    assert!(coverage.windows(2).all(|w| w[0] <= w[1]), "{coverage:?}");
    assert!(close(coverage[0], members[0].out_of_bag.len() as f64 / TRAIN as f64));
    // With one member the OOB estimate is that member's accuracy on its own out-of-bag images.
    let oob_labels: Vec<Label> = members[0].out_of_bag.iter().map(|&i| s.train.labels[i]).collect();
    assert!(close(get(1, "oob_vote").0, stats::accuracy(&members[0].oob_predictions, &oob_labels)));

    let e = bagging::Ensemble::new(s.config.seed, members.clone(), &s.train.labels, &s.test.labels, classes, &opts);
    assert!(close(e.final_vote(), get(4, "vote").0) && close(e.final_average(), get(4, "average").0));
    assert!(close(e.oob[3], get(4, "oob_vote").0));
    // The confidence intervals hold their point estimates.
    assert!(e.ci_vote.0 <= e.final_vote() && e.final_vote() <= e.ci_vote.1, "{:?} {}", e.ci_vote, e.final_vote());
    assert!(e.ci_average.0 <= e.final_average() && e.final_average() <= e.ci_average.1);
    assert!(e.ci_vote.1 - e.ci_vote.0 > 0.0 || e.final_vote() == 0.0 || e.final_vote() == 1.0);
    // Variance decomposition: V = V_u + V_b, and the gain of voting lies in [V_u - V_b, V_u].
    assert!(close(e.variance, e.variance_unbiased + e.variance_biased));
    assert!(close(e.variance, stats::prediction_variance(&preds, classes)));
    let gain = e.final_vote() - e.mean_member_accuracy();
    assert!(gain >= e.variance_unbiased - e.variance_biased - 1e-9 && gain <= e.variance_unbiased + 1e-9, "{gain} {e:?}");
    // Agreement is a share of members.
    assert!(e.agreement.0 > 0.0 && e.agreement.0 <= 1.0);

    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for needle in ["Bagging", "out-of-bag", "coverage", "95% CI", "Variance", "accuracy_vs_members.png", "do not apply"] {
        assert!(report.contains(needle), "report lacks {needle:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bagging_rejects_bad_options() {
    let s = setup(tiny_model());
    let dir = fresh("bagging-bad");
    for opts in [bagging::Options { members: 0, ..Default::default() }, bagging::Options { ci_level: 1.0, ..Default::default() }] {
        assert!(bagging::run(&Cpu, &s, &opts, &mut open(&dir, "bagging", &s, &opts)).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn mtimes(dir: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.clone(), p.metadata().unwrap().modified().unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn boosting_follows_samme_and_resumes() {
    let s = setup(tiny_model());
    let weak = boosting::weak_cnn(10);
    assert_eq!(weak.name, "weak-cnn");
    let params: usize = weak.infer(&s.train.shape).unwrap().iter().map(|l| l.weights + l.biases).sum();
    assert!(params < 3000, "the weak CNN has {params} parameters");
    let dir = fresh("boosting");
    let opts = boosting::Options { learners: 4, weak_model: Some(weak) };
    boosting::run(&Cpu, &s, &opts, &mut open(&dir, "boosting", &s, &opts)).unwrap();
    png_ok(&dir.join("accuracy_vs_learners.png"));
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for needle in ["SAMME", "resampl", "weak-cnn", "accuracy_vs_learners.png"] {
        assert!(report.contains(needle), "report lacks {needle:?}");
    }

    let (h, rows) = csv(&dir);
    assert_eq!(h, boosting::CSV_HEADER.map(String::from));
    let cell = |r: usize, c: &str| -> f64 { rows[r][col(&h, c)].parse().unwrap() };
    let classes = s.train.classes.len();
    let learners: Vec<boosting::Learner> = (1..=rows.len()).map(|t| read(&dir.join(format!("runs/r0-learner{t:03}.toml")))).collect();
    assert!(!learners.is_empty());
    assert!(rows.len() == 4 || learners.last().unwrap().alpha <= 0.0, "fewer than 4 learners only after a stop");
    // The weights after each round are SAMME's, from the cached predictions on the training set.
    let mut w = vec![1.0 / TRAIN as f64; TRAIN];
    for (t, l) in learners.iter().enumerate() {
        assert_eq!(l.learner, t + 1);
        assert_eq!(l.train_predictions.len(), TRAIN);
        let correct: Vec<bool> = l.train_predictions.iter().zip(&s.train.labels).map(|(p, y)| p == y).collect();
        let round = stats::samme_round(&w, &correct, classes).unwrap();
        assert!(close(round.error, l.error) && close(round.alpha, l.alpha), "learner {}", t + 1);
        assert!(round.weights.iter().zip(&l.weights).all(|(a, b)| (a - b).abs() < 1e-12), "learner {} weights", t + 1);
        assert!(close(l.weights.iter().sum::<f64>(), 1.0));
        assert!(close(stats::accuracy(&l.train_predictions, &s.train.labels), l.train_accuracy));
        assert!(close(cell(t, "weighted_error"), l.error) && close(cell(t, "alpha"), l.alpha));
        w = l.weights.clone();
    }
    // The ensemble of one learner is that learner.
    assert!(close(cell(0, "ensemble_test_accuracy"), learners[0].test_accuracy));
    assert!(close(cell(0, "ensemble_train_accuracy"), learners[0].train_accuracy));
    // ... and of t learners, their alpha-weighted vote.
    let used = learners.iter().filter(|l| l.alpha > 0.0).count();
    let te: Vec<Vec<Label>> = learners.iter().map(|l| l.test_predictions.clone()).collect();
    let alphas: Vec<f64> = learners.iter().map(|l| l.alpha).collect();
    for t in 1..=used {
        let acc = stats::accuracy(&stats::weighted_vote(&te[..t], &alphas[..t], classes), &s.test.labels);
        assert!(close(cell(t - 1, "ensemble_test_accuracy"), acc), "ensemble of {t}");
    }

    // A second call on the same folder trains nothing and writes the same results.
    let before = mtimes(&dir);
    let csv_before = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    boosting::run(&Cpu, &s, &opts, &mut open(&dir, "boosting", &s, &opts)).unwrap();
    assert_eq!(mtimes(&dir), before, "a cached learner was trained again");
    assert_eq!(std::fs::read_to_string(dir.join("results.csv")).unwrap(), csv_before);

    // Interrupted after the first learners: the sequence continues from the cached weights.
    let last = dir.join(format!("runs/r0-learner{:03}.toml", learners.len()));
    std::fs::remove_file(&last).unwrap();
    boosting::run(&Cpu, &s, &opts, &mut open(&dir, "boosting", &s, &opts)).unwrap();
    let after = mtimes(&dir);
    assert_eq!(after.len(), before.len());
    assert_eq!(after[..before.len() - 1], before[..before.len() - 1], "only the missing learner is trained");
    let again: boosting::Learner = read(&last);
    let prev = if learners.len() > 1 { learners[learners.len() - 2].weights.clone() } else { vec![1.0 / TRAIN as f64; TRAIN] };
    let correct: Vec<bool> = again.train_predictions.iter().zip(&s.train.labels).map(|(p, y)| p == y).collect();
    assert!(close(stats::samme_round(&prev, &correct, classes).unwrap().alpha, again.alpha), "continued from the cached weights");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bagging_and_boosting_repeat_over_seeds() {
    let mut s = setup(boosting::weak_cnn(10));
    s.seeds = 2;
    let dir = fresh("seeds");
    let opts = boosting::Options { learners: 2, weak_model: None };
    boosting::run(&Cpu, &s, &opts, &mut open(&dir, "boosting", &s, &opts)).unwrap();
    let (h, rows) = csv(&dir);
    let seeds: Vec<&str> = rows.iter().map(|r| r[col(&h, "seed")].as_str()).collect();
    assert!(seeds.contains(&"1") && seeds.contains(&"1001"), "{seeds:?}");
    assert!(std::fs::read_to_string(dir.join("report.md")).unwrap().contains("±"));
    assert!(dir.join("runs/r1-learner001.toml").is_file());
    let _ = std::fs::remove_dir_all(&dir);

    let opts = bagging::Options { members: 2, ci_resamples: 100, ci_level: 0.9 };
    bagging::run(&Cpu, &s, &opts, &mut open(&dir, "bagging", &s, &opts)).unwrap();
    let (h, rows) = csv(&dir);
    assert_eq!(rows.len(), 2 * (2 + 3 * 2));
    assert!(rows.iter().any(|r| r[col(&h, "repeat")] == "1" && r[col(&h, "seed")] == "1001"));
    let m: bagging::Member = read(&dir.join("runs/r1-member002.toml"));
    assert_eq!(m.seed, 1002);
    png_ok(&dir.join("accuracy_vs_members.png"));
    let _ = std::fs::remove_dir_all(&dir);
}
