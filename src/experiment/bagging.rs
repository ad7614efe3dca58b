//! Bagging (Breiman 1996): M copies of the model, each trained on its own bootstrap sample of
//! the training set (N draws with replacement from the N images, so about 63.2% of them,
//! some several times), combined by majority vote or by averaging their class probabilities.
//!
//! What it reports: each member's test accuracy; the ensemble's test accuracy as members are
//! added (k = 1..M, the first k members); the out-of-bag estimate (every training image
//! predicted by the vote of the members whose bootstrap sample missed it) next to the test
//! accuracy; a percentile-bootstrap confidence interval of the final ensemble's test accuracy;
//! how certain the ensemble is where it is right and where it errs (vote agreement, entropy of
//! the averaged probabilities); and the variance term of the 0-1 loss (Domingos 2000) next to
//! the members' mean error and the ensemble's error.
//!
//! Each member is one cached run ([`Results::run`], key `r{repeat}-member{m}`) holding its test
//! probabilities and its out-of-bag predictions ([`Member`]), so an interrupted experiment
//! resumes with the members it has and recomputes every ensemble figure from them.

use serde::{Deserialize, Serialize};

use super::results::{fmt, num_pm, pct_pm, table, Results};
use super::{stats, train_and_test, Setup};
use crate::data::{self, Label};
use crate::plot::{LinePlot, Scale, Series};
use crate::train::{evaluate, TrainConfig};
use crate::{Backend, Error, Result};

/// What to run.
#[derive(Clone, Debug, Serialize)]
pub struct Options {
    /// Members of the ensemble, M (1 to [`MAX_MEMBERS`]).
    pub members: usize,
    /// Resamples of the test set for the bootstrap confidence interval (e.g. 1000).
    pub ci_resamples: usize,
    /// Level of the confidence interval, in (0, 1) (e.g. 0.95).
    pub ci_level: f64,
}

impl Default for Options {
    /// 10 members; a 95% interval from 1000 resamples.
    fn default() -> Self {
        Self { members: 10, ci_resamples: 1000, ci_level: 0.95 }
    }
}

/// The most members: repeat r's seeds start 1000 r above the base seed (see [`member_seed`]),
/// so more would share seeds with the next repeat.
pub const MAX_MEMBERS: usize = 1000;

/// The seed of member `member` (0-based) in repeat `repeat` (0-based, one per
/// [`Setup::seeds`]): `setup.config.seed + 1000 repeat + member`. It seeds the member's
/// bootstrap draw, its initial parameters, its batch order, augmentation and dropout.
pub fn member_seed(setup: &Setup, repeat: usize, member: usize) -> u64 {
    setup.config.seed + 1000 * repeat as u64 + member as u64
}

/// One trained member, as cached in `runs/r{repeat}-member{m}.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// 1-based position in the ensemble.
    pub member: usize,
    /// Its seed ([`member_seed`]).
    pub seed: u64,
    /// Distinct training images in its bootstrap sample (of N draws).
    pub distinct: usize,
    /// Accuracy on its own bootstrap sample (duplicates counted as often as drawn), eval mode.
    pub train_accuracy: f64,
    /// Test accuracy.
    pub test_accuracy: f64,
    /// Mean test cross-entropy (nats).
    pub test_loss: f64,
    /// Class probabilities on the test set, [test images × classes] row-major.
    pub test_probabilities: Vec<f32>,
    /// The predicted class of each test image (the largest probability).
    pub test_predictions: Vec<Label>,
    /// The training images its bootstrap sample missed, ascending indices into `setup.train`.
    pub out_of_bag: Vec<usize>,
    /// Its predicted class for each image of `out_of_bag`, in that order.
    pub oob_predictions: Vec<Label>,
    /// Wall time of training and evaluation.
    pub seconds: f64,
    /// Why training stopped early, if it did.
    pub stopped_early: Option<String>,
}

/// Trains member `member` (0-based) of repeat `repeat` on its bootstrap sample and evaluates
/// it on the test set and on its out-of-bag images. The member trains on its whole sample:
/// no validation split, so no early stopping (`setup.val_fraction` and `setup.patience` are
/// not used). The sample's per-channel statistics normalise its training, test and
/// out-of-bag images alike.
pub fn train_member<B: Backend>(be: &B, setup: &Setup, repeat: usize, member: usize) -> Result<Member> {
    let seed = member_seed(setup, repeat, member);
    let boot = stats::bootstrap(setup.train.len(), seed);
    let splits = data::split(setup.train.subset(&boot.sample), setup.test.clone(), 0.0, seed)?;
    let mut model = setup.build(be, &setup.model, seed, &splits)?;
    let config = TrainConfig { seed, ..setup.config.clone() };
    let mut s = train_and_test(be, &mut model, &splits, &config, setup.label_smoothing, 0, true)?;
    let mut oob = setup.train.subset(&boot.out_of_bag);
    oob.normalize(&splits.stats);
    let k = setup.train.classes.len();
    let oob_eval = evaluate(be, &mut model, &oob, config.eval_batch.max(1), true)?;
    let test_probabilities = s.test.probabilities.take().unwrap_or_default();
    Ok(Member {
        member: member + 1,
        seed,
        distinct: setup.train.len() - boot.out_of_bag.len(),
        train_accuracy: s.train.accuracy,
        test_accuracy: s.test.accuracy,
        test_loss: s.test.loss,
        test_predictions: stats::argmax_rows(&test_probabilities, k),
        test_probabilities,
        oob_predictions: stats::argmax_rows(&oob_eval.probabilities.unwrap_or_default(), k),
        out_of_bag: boot.out_of_bag,
        seconds: s.seconds,
        stopped_early: s.stopped_early,
    })
}

/// Everything one repeat's ensemble gives, computed from its members.
#[derive(Clone, Debug)]
pub struct Ensemble {
    /// The repeat's base seed (`setup.config.seed + 1000 repeat`).
    pub seed: u64,
    /// The members, in order.
    pub members: Vec<Member>,
    /// Test accuracy of the majority vote of the first k members, index k - 1.
    pub vote: Vec<f64>,
    /// Test accuracy of the averaged probabilities of the first k members, index k - 1.
    pub average: Vec<f64>,
    /// Out-of-bag accuracy of the first k members (each training image predicted by the vote
    /// of those of them that missed it), over the images that at least one of them missed.
    pub oob: Vec<f64>,
    /// Share of the training images that at least one of the first k members missed.
    pub oob_coverage: Vec<f64>,
    /// The `level` bootstrap interval of the final majority vote's test accuracy.
    pub ci_vote: (f64, f64),
    /// The same for the final averaged probabilities.
    pub ci_average: (f64, f64),
    /// Mean vote agreement (share of members voting for the ensemble's class) on the test
    /// images the final vote gets right, and on those it gets wrong (NaN if none).
    pub agreement: (f64, f64),
    /// Mean entropy (nats) of the final averaged probabilities on the test images the
    /// averaged ensemble gets right, and on those it gets wrong (NaN if none).
    pub entropy: (f64, f64),
    /// Test images the final vote and the final average get wrong.
    pub wrong: (usize, usize),
    /// The variance term of the 0-1 loss over the test set: the mean share of members that
    /// differ from the main (majority) prediction.
    pub variance: f64,
    /// The part of `variance` on test images where the main prediction is right (unbiased)...
    pub variance_unbiased: f64,
    /// ... and where it is wrong (biased); the two add up to `variance`.
    pub variance_biased: f64,
}

impl Ensemble {
    /// The ensemble figures of `members` (in order) for `labels_train` / `labels_test`, with
    /// the confidence intervals from `ci_resamples` resamples at `ci_level`, seeded by `seed`.
    pub fn new(seed: u64, members: Vec<Member>, labels_train: &[Label], labels_test: &[Label], classes: usize, opts: &Options) -> Self {
        let preds: Vec<Vec<Label>> = members.iter().map(|m| m.test_predictions.clone()).collect();
        let probs: Vec<Vec<f32>> = members.iter().map(|m| m.test_probabilities.clone()).collect();
        let mut vote = Vec::new();
        let mut average = Vec::new();
        let mut oob = Vec::new();
        let mut oob_coverage = Vec::new();
        // Out-of-bag votes so far: tally[i * classes + c] counts the members that missed
        // image i and predicted c. The vote is the class with most votes, ties to the smallest
        // class (as stats::majority_vote).
        let n = labels_train.len();
        let mut tally = vec![0.0f64; n * classes];
        for k in 1..=members.len() {
            vote.push(stats::accuracy(&stats::majority_vote(&preds[..k], classes), labels_test));
            average.push(stats::accuracy(&stats::argmax_rows(&stats::average_probabilities(&probs[..k]), classes), labels_test));
            let m = &members[k - 1];
            for (&i, &p) in m.out_of_bag.iter().zip(&m.oob_predictions) {
                tally[i * classes + p as usize] += 1.0;
            }
            let (mut covered, mut right) = (0usize, 0usize);
            for (i, row) in tally.chunks(classes).enumerate() {
                if row.iter().any(|&v| v > 0.0) {
                    covered += 1;
                    right += usize::from(stats::argmax(row) == labels_train[i] as usize);
                }
            }
            oob.push(if covered > 0 { right as f64 / covered as f64 } else { f64::NAN });
            oob_coverage.push(covered as f64 / n.max(1) as f64);
        }
        let main = stats::majority_vote(&preds, classes);
        let vote_right: Vec<bool> = main.iter().zip(labels_test).map(|(p, l)| p == l).collect();
        let avg = stats::average_probabilities(&probs);
        let avg_pred = stats::argmax_rows(&avg, classes);
        let avg_right: Vec<bool> = avg_pred.iter().zip(labels_test).map(|(p, l)| p == l).collect();
        let agree = stats::vote_agreement(&preds, &main);
        let entropy = stats::entropy_rows(&avg, classes);
        let split_mean = |x: &[f64], right: &[bool], want: bool| {
            let v: Vec<f64> = x.iter().zip(right).filter(|(_, &r)| r == want).map(|(&a, _)| a).collect();
            stats::mean_std(&v).0
        };
        let t = labels_test.len().max(1) as f64;
        let variance_unbiased = agree.iter().zip(&vote_right).filter(|(_, &r)| r).map(|(a, _)| 1.0 - a).sum::<f64>() / t;
        let variance_biased = agree.iter().zip(&vote_right).filter(|(_, &r)| !r).map(|(a, _)| 1.0 - a).sum::<f64>() / t;
        Ensemble {
            seed,
            vote,
            average,
            oob,
            oob_coverage,
            ci_vote: stats::bootstrap_accuracy_ci(&vote_right, opts.ci_resamples, opts.ci_level, seed),
            ci_average: stats::bootstrap_accuracy_ci(&avg_right, opts.ci_resamples, opts.ci_level, seed),
            agreement: (split_mean(&agree, &vote_right, true), split_mean(&agree, &vote_right, false)),
            entropy: (split_mean(&entropy, &avg_right, true), split_mean(&entropy, &avg_right, false)),
            wrong: (vote_right.iter().filter(|r| !**r).count(), avg_right.iter().filter(|r| !**r).count()),
            variance: stats::prediction_variance(&preds, classes),
            variance_unbiased,
            variance_biased,
            members,
        }
    }

    /// The members' mean test accuracy.
    pub fn mean_member_accuracy(&self) -> f64 {
        stats::mean_std(&self.members.iter().map(|m| m.test_accuracy).collect::<Vec<_>>()).0
    }

    /// The final (all M members) majority vote's test accuracy.
    pub fn final_vote(&self) -> f64 {
        self.vote.last().copied().unwrap_or(f64::NAN)
    }

    /// The final averaged probabilities' test accuracy.
    pub fn final_average(&self) -> f64 {
        self.average.last().copied().unwrap_or(f64::NAN)
    }
}

/// Checks the options against the setup before anything trains.
fn validate(setup: &Setup, opts: &Options) -> Result<()> {
    if opts.members == 0 || opts.members > MAX_MEMBERS {
        return Err(Error::Invalid(format!("{} members: expected 1 to {MAX_MEMBERS}", opts.members)));
    }
    if !(opts.ci_level > 0.0 && opts.ci_level < 1.0) {
        return Err(Error::Invalid(format!("confidence level {}: expected a value in (0, 1)", opts.ci_level)));
    }
    if setup.train.is_empty() || setup.test.is_empty() {
        return Err(Error::Invalid("bagging needs training and test images".into()));
    }
    setup.config.validate()
}

/// Runs the bagging experiment: for each of `setup.seeds()` repeats, `opts.members` members
/// on bootstrap samples (see [`train_member`]); then writes `results.csv`, `report.md` and
/// `accuracy_vs_members.png` to `out`.
pub fn run<B: Backend>(be: &B, setup: &Setup, opts: &Options, out: &mut Results) -> Result<()> {
    validate(setup, opts)?;
    let repeats = setup.seeds().len();
    let classes = setup.train.classes.len();
    out.plan(repeats * opts.members);
    let mut ensembles = Vec::with_capacity(repeats);
    for r in 0..repeats {
        let mut members = Vec::with_capacity(opts.members);
        for m in 0..opts.members {
            let what = format!("repeat {}/{repeats}, member {}/{} (seed {})", r + 1, m + 1, opts.members, member_seed(setup, r, m));
            members.push(out.run(&format!("r{r}-member{:03}", m + 1), &what, || train_member(be, setup, r, m))?);
        }
        ensembles.push(Ensemble::new(member_seed(setup, r, 0), members, &setup.train.labels, &setup.test.labels, classes, opts));
    }
    out.write_csv(&CSV_HEADER, &csv_rows(&ensembles))?;
    plot(setup, &ensembles, &out.path("accuracy_vs_members.png"))?;
    out.write_report(&report(setup, opts, &ensembles))?;
    Ok(())
}

/// The columns of `results.csv`.
pub const CSV_HEADER: [&str; 6] = ["repeat", "seed", "ensemble_size", "method", "accuracy", "coverage"];

/// One row per member (`method` member: `ensemble_size` is the member's number, `accuracy`
/// its own test accuracy) and per ensemble size k and method (vote, average: test accuracy of
/// the first k members; oob_vote: their out-of-bag accuracy, with `coverage`).
fn csv_rows(ensembles: &[Ensemble]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for (r, e) in ensembles.iter().enumerate() {
        let row = |k: usize, method: &str, acc: f64, cov: Option<f64>| {
            vec![
                r.to_string(),
                e.seed.to_string(),
                k.to_string(),
                method.to_string(),
                fmt(acc, 6),
                cov.map_or(String::new(), |c| fmt(c, 6)),
            ]
        };
        for m in &e.members {
            rows.push(row(m.member, "member", m.test_accuracy, None));
        }
        for k in 1..=e.vote.len() {
            rows.push(row(k, "vote", e.vote[k - 1], None));
            rows.push(row(k, "average", e.average[k - 1], None));
            rows.push(row(k, "oob_vote", e.oob[k - 1], Some(e.oob_coverage[k - 1])));
        }
    }
    rows
}

/// Mean and standard deviation over repeats of `f`.
fn over<T>(xs: &[T], f: impl Fn(&T) -> f64) -> (f64, f64) {
    stats::mean_std(&xs.iter().map(f).collect::<Vec<_>>())
}

/// The accuracy-versus-members plot: mean over repeats (± std with several), members as
/// points, the out-of-bag estimate dashed.
fn plot(setup: &Setup, ensembles: &[Ensemble], path: &std::path::Path) -> Result<()> {
    let m = ensembles.first().map_or(0, |e| e.vote.len());
    let several = ensembles.len() > 1;
    let curve = |name: &str, f: &dyn Fn(&Ensemble, usize) -> f64, dashed: bool| {
        let stats: Vec<(f64, f64)> = (0..m).map(|k| over(ensembles, |e| 100.0 * f(e, k))).collect();
        Series {
            name: name.to_string(),
            points: stats.iter().enumerate().map(|(k, s)| ((k + 1) as f64, s.0)).collect(),
            err: several.then(|| stats.iter().map(|s| s.1).collect()),
            dashed,
        }
    };
    let mut series = vec![
        curve("majority vote (test)", &|e, k| e.vote[k], false),
        curve("averaged probabilities (test)", &|e, k| e.average[k], false),
        curve("out-of-bag vote (train images)", &|e, k| e.oob[k], true),
    ];
    // Each member's own test accuracy as a lone dot at x = its number (NaN points break the
    // line, and a point with no neighbour is drawn as a dot).
    let mut dots = Vec::new();
    for e in ensembles {
        for mb in &e.members {
            dots.push((mb.member as f64, 100.0 * mb.test_accuracy));
            dots.push((f64::NAN, f64::NAN));
        }
    }
    series.push(Series::new("member k alone (test)", dots));
    let plot = LinePlot {
        title: format!(
            "Bagging: {}{}",
            setup.describe(),
            if several { format!(", mean ± std of {} seeds", ensembles.len()) } else { String::new() }
        ),
        x_label: "ensemble size (members)".into(),
        y_label: "accuracy (%)".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        series,
        markers: true,
    };
    plot.save(path)
}

/// `report.md`.
fn report(setup: &Setup, opts: &Options, ensembles: &[Ensemble]) -> String {
    let n_rep = ensembles.len();
    let m = opts.members;
    let mut s = format!("# Bagging: {}\n\n", setup.describe());
    s += &format!(
        "{m} members, each the model trained on its own bootstrap sample of the {} training images ({} draws with replacement), \
         combined by majority vote and by averaging their class probabilities{}.\n\n",
        setup.train.len(),
        setup.train.len(),
        if n_rep > 1 {
            format!("; the whole ensemble repeated for {n_rep} seeds, figures as mean ± std over them")
        } else {
            String::new()
        }
    );
    s += "## How it ran\n\n";
    s += &format!(
        "- Member m (1-based) of repeat r (0-based) uses seed {} + 1000 r + (m - 1) for its bootstrap draw, initial parameters, \
         batch order, augmentation and dropout.\n",
        setup.config.seed
    );
    let distinct = over(ensembles, |e| over(&e.members, |m| m.distinct as f64 / setup.train.len() as f64).0);
    s += &format!(
        "- A bootstrap sample holds {}% of the training images on average (expected 1 - 1/e = 63.2%); each member trains on its \
         whole sample for {} epoch(s) with no validation split, so `val_fraction` ({}) and `patience` ({}) do not apply.\n",
        fmt(100.0 * distinct.0, 1),
        setup.config.epochs,
        setup.val_fraction,
        setup.patience
    );
    s += "- Each member normalises its training, test and out-of-bag images with the per-channel statistics of its own sample.\n";
    s += "- Ensemble of size k: the first k members. Majority vote: ties go to the smallest class index. \
          Averaged probabilities: the class of largest mean softmax probability.\n";
    s += "- Out-of-bag (OOB) estimate: each training image is predicted by the majority vote of the members whose sample missed it; \
          the accuracy is taken over the images that at least one member missed (the coverage). Each image is voted on by about \
          0.37 k of the k members, so the OOB figure estimates a smaller ensemble than the test figure and tends to be a little \
          pessimistic.\n";
    s += &format!(
        "- Confidence interval: {}% percentile bootstrap over the test images ({} resamples of the per-image correctness of the final \
         ensemble), seeded by the repeat's base seed.\n\n",
        fmt(100.0 * opts.ci_level, 0),
        opts.ci_resamples
    );

    s += &format!("## The final ensemble ({m} members)\n\n");
    let pm = |f: &dyn Fn(&Ensemble) -> f64| {
        let (a, b) = over(ensembles, f);
        pct_pm(a, b, n_rep, 2)
    };
    let mut rows = vec![
        vec!["mean member test accuracy".into(), pm(&|e| e.mean_member_accuracy())],
        vec!["majority vote, test accuracy".into(), pm(&|e| e.final_vote())],
        vec!["averaged probabilities, test accuracy".into(), pm(&|e| e.final_average())],
        vec!["out-of-bag vote accuracy (training images)".into(), pm(&|e| e.oob.last().copied().unwrap_or(f64::NAN))],
        vec!["out-of-bag coverage".into(), pm(&|e| e.oob_coverage.last().copied().unwrap_or(f64::NAN))],
    ];
    for e in ensembles {
        let tag = if n_rep > 1 { format!(" (seed {})", e.seed) } else { String::new() };
        rows.push(vec![
            format!("{}% CI, majority vote{tag}", fmt(100.0 * opts.ci_level, 0)),
            format!("[{}, {}]", fmt(100.0 * e.ci_vote.0, 2), fmt(100.0 * e.ci_vote.1, 2)),
        ]);
        rows.push(vec![
            format!("{}% CI, averaged probabilities{tag}", fmt(100.0 * opts.ci_level, 0)),
            format!("[{}, {}]", fmt(100.0 * e.ci_average.0, 2), fmt(100.0 * e.ci_average.1, 2)),
        ]);
    }
    s += &table(&["quantity", "%"], &rows);

    s += "\n## Test accuracy against ensemble size\n\n![accuracy against ensemble size](accuracy_vs_members.png)\n\n";
    let rows: Vec<Vec<String>> = (0..m)
        .map(|k| {
            vec![
                (k + 1).to_string(),
                pm(&|e| e.members[k].test_accuracy),
                pm(&|e| e.vote[k]),
                pm(&|e| e.average[k]),
                pm(&|e| e.oob[k]),
                pm(&|e| e.oob_coverage[k]),
            ]
        })
        .collect();
    s += &table(&["k", "member k alone", "vote of first k", "average of first k", "OOB vote", "OOB coverage"], &rows);

    s += "\n## Members\n\n";
    for e in ensembles {
        if n_rep > 1 {
            s += &format!("Repeat seed {}:\n\n", e.seed);
        }
        let rows: Vec<Vec<String>> = e
            .members
            .iter()
            .map(|mb| {
                let labels: Vec<Label> = mb.out_of_bag.iter().map(|&i| setup.train.labels[i]).collect();
                vec![
                    mb.member.to_string(),
                    mb.seed.to_string(),
                    fmt(100.0 * mb.distinct as f64 / setup.train.len() as f64, 1),
                    fmt(100.0 * mb.train_accuracy, 2),
                    fmt(100.0 * stats::accuracy(&mb.oob_predictions, &labels), 2),
                    fmt(100.0 * mb.test_accuracy, 2),
                    fmt(mb.test_loss, 4),
                    fmt(mb.seconds, 1),
                ]
            })
            .collect();
        s += &table(
            &["member", "seed", "distinct images %", "train acc % (own sample)", "OOB acc % (alone)", "test acc %", "test loss", "s"],
            &rows,
        );
        s += "\n";
    }

    s += "## Uncertainty of the final ensemble\n\n\
          Vote agreement: the share of members voting for the ensemble's class (1: unanimous). Entropy: of the averaged \
          probabilities, in nats (0: certain; ln K = ";
    s += &fmt((setup.train.classes.len() as f64).ln(), 3);
    s += " uniform). A useful ensemble is less certain where it errs.\n\n";
    let num = |f: &dyn Fn(&Ensemble) -> f64, d: usize| {
        let (a, b) = over(ensembles, f);
        num_pm(a, b, n_rep, d)
    };
    s += &table(
        &["", "right predictions", "wrong predictions", "wrong test images"],
        &[
            vec!["mean vote agreement".into(), num(&|e| e.agreement.0, 3), num(&|e| e.agreement.1, 3), num(&|e| e.wrong.0 as f64, 1)],
            vec![
                "mean entropy of averaged probabilities".into(),
                num(&|e| e.entropy.0, 3),
                num(&|e| e.entropy.1, 3),
                num(&|e| e.wrong.1 as f64, 1),
            ],
        ],
    );

    s += "\n## Variance (Domingos 2000)\n\n\
          The variance term of the 0-1 loss: the mean share of members whose test prediction differs from the main (majority) \
          prediction, split into the images where the main prediction is right (unbiased: every differing member is wrong, so \
          voting removes that error) and where it is wrong (biased: voting also overrules members that were right). The gain of \
          voting, mean member error minus the vote's error, lies between V_unbiased - V_biased and V_unbiased (equal to the first \
          with two classes).\n\n";
    s += &table(
        &["quantity", "value"],
        &[
            vec!["variance V".into(), num(&|e| e.variance, 4)],
            vec!["V_unbiased".into(), num(&|e| e.variance_unbiased, 4)],
            vec!["V_biased".into(), num(&|e| e.variance_biased, 4)],
            vec!["mean member test error".into(), num(&|e| 1.0 - e.mean_member_accuracy(), 4)],
            vec!["majority vote test error".into(), num(&|e| 1.0 - e.final_vote(), 4)],
            vec!["gain of voting".into(), num(&|e| e.final_vote() - e.mean_member_accuracy(), 4)],
        ],
    );

    s += "\n## Files\n\n\
          - `results.csv`: one row per member and per ensemble size and method. Columns: `repeat` (0-based), `seed` (the repeat's \
          base seed), `ensemble_size` (k; for `member` rows the member's number), `method` (`member`: that member's own test \
          accuracy; `vote`, `average`: test accuracy of the first k members by majority vote / averaged probabilities; `oob_vote`: \
          out-of-bag accuracy of the first k members on the training images), `accuracy` (a fraction), `coverage` (`oob_vote` \
          only: share of training images voted on).\n\
          - `runs/r{repeat}-member{m}.toml` (e.g. `runs/r0-member001.toml`): each member's figures, test probabilities and \
          out-of-bag predictions.\n\
          - `accuracy_vs_members.png`: the test accuracy of both ensembles against their size, each member's own accuracy and the \
          out-of-bag estimate (dashed).\n";
    s
}
