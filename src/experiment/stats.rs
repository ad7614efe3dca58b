//! Sampling and statistics for the experiments: stratified subsets and folds, the bootstrap,
//! SAMME boosting weights, ensemble votes, summary statistics and the sharpness of a minimum.
//! All of it is plain host code, seeded and deterministic, tested on the CPU.

use crate::data::{shuffle, Label};
use crate::rng::Rng;
use crate::{Error, Result};

/// Indices of each class's samples, in order: `by_class(labels)[c]` lists the samples of class `c`.
fn by_class(labels: &[Label]) -> Vec<Vec<usize>> {
    let classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut out = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        out[l as usize].push(i);
    }
    out
}

/// A stratified random subset of `n` of the samples (every class keeps its share, rounded by
/// largest remainder), in ascending index order. `n >= labels.len()` keeps them all.
pub fn stratified_subset(labels: &[Label], n: usize, seed: u64) -> Vec<usize> {
    if n >= labels.len() {
        return (0..labels.len()).collect();
    }
    let mut rng = Rng::new(seed ^ 0x5B5E_7000);
    let mut groups = by_class(labels);
    let total = labels.len() as f64;
    // Largest-remainder apportionment of n over the classes.
    let exact: Vec<f64> = groups.iter().map(|g| g.len() as f64 * n as f64 / total).collect();
    let mut take: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())).then(a.cmp(&b)));
    let mut left = n - take.iter().sum::<usize>();
    for &c in &order {
        if left == 0 {
            break;
        }
        if take[c] < groups[c].len() {
            take[c] += 1;
            left -= 1;
        }
    }
    let mut out = Vec::with_capacity(n);
    for (g, &t) in groups.iter_mut().zip(&take) {
        shuffle(g, &mut rng);
        out.extend_from_slice(&g[..t]);
    }
    out.sort_unstable();
    out
}

/// `k` disjoint folds covering every sample once, stratified: each class's samples are
/// shuffled and dealt round-robin, continuing where the previous class stopped, so fold sizes
/// differ by at most one and every class's count differs by at most one between folds.
pub fn stratified_folds(labels: &[Label], k: usize, seed: u64) -> Result<Vec<Vec<usize>>> {
    if k < 2 {
        return Err(Error::Invalid(format!("{k} folds: expected at least 2")));
    }
    if k > labels.len() {
        return Err(Error::Invalid(format!("{k} folds of {} samples: expected at most one fold per sample", labels.len())));
    }
    let mut rng = Rng::new(seed ^ 0xF01D_5000);
    let mut folds = vec![Vec::new(); k];
    let mut next = 0;
    for mut g in by_class(labels) {
        shuffle(&mut g, &mut rng);
        for i in g {
            folds[next].push(i);
            next = (next + 1) % k;
        }
    }
    for f in &mut folds {
        f.sort_unstable();
    }
    Ok(folds)
}

/// The training indices of fold `i`: every fold but `i`, concatenated and sorted.
pub fn fold_train(folds: &[Vec<usize>], i: usize) -> Vec<usize> {
    let mut v: Vec<usize> = folds.iter().enumerate().filter(|&(j, _)| j != i).flat_map(|(_, f)| f.iter().copied()).collect();
    v.sort_unstable();
    v
}

/// One bootstrap replicate of `n` samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Bootstrap {
    /// `n` indices drawn uniformly with replacement (in drawing order).
    pub sample: Vec<usize>,
    /// The indices never drawn, ascending (about n/e of them).
    pub out_of_bag: Vec<usize>,
}

/// Draws `n` of `0..n` with replacement; the rest are out of bag.
pub fn bootstrap(n: usize, seed: u64) -> Bootstrap {
    let mut rng = Rng::new(seed ^ 0xB007_5000);
    let sample: Vec<usize> = (0..n).map(|_| rng.below(n)).collect();
    let mut drawn = vec![false; n];
    for &i in &sample {
        drawn[i] = true;
    }
    Bootstrap { sample, out_of_bag: (0..n).filter(|&i| !drawn[i]).collect() }
}

/// Draws `n` indices with replacement, index `i` with probability `weights[i] / sum(weights)`
/// (inverse CDF on a binary search). Errors on negative, non-finite or all-zero weights.
pub fn weighted_resample(weights: &[f64], n: usize, seed: u64) -> Result<Vec<usize>> {
    if let Some((i, w)) = weights.iter().enumerate().find(|(_, w)| !w.is_finite() || **w < 0.0) {
        return Err(Error::Invalid(format!("sample weight {w} at {i}: expected a finite value >= 0")));
    }
    let mut cdf = Vec::with_capacity(weights.len());
    let mut acc = 0.0;
    for w in weights {
        acc += w;
        cdf.push(acc);
    }
    if acc <= 0.0 {
        return Err(Error::Invalid("sample weights sum to 0: expected a positive total".into()));
    }
    let mut rng = Rng::new(seed ^ 0x3E16_5000);
    Ok((0..n)
        .map(|_| {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * acc;
            cdf.partition_point(|&c| c <= u).min(weights.len() - 1)
        })
        .collect())
}

/// One round of multi-class AdaBoost (SAMME, Zhu, Zou, Rosset and Hastie 2009).
#[derive(Clone, Debug, PartialEq)]
pub struct SammeRound {
    /// The learner's weighted training error, sum of w_i over misclassified i (weights sum to 1).
    pub error: f64,
    /// The learner's vote: ln((1 - err) / err) + ln(K - 1).
    pub alpha: f64,
    /// The next round's sample weights: w_i exp(alpha) for misclassified i, renormalised to sum 1.
    pub weights: Vec<f64>,
}

/// SAMME's update for a learner that got `correct[i]` right under `weights` (any positive
/// scale), for `classes` classes. The error is clamped to [1e-10, 1 - 1e-10] so a perfect or
/// hopeless learner gets a large finite vote instead of an infinite one; a learner no better
/// than chance (err >= 1 - 1/K) gets alpha <= 0, which the caller should treat as a stop.
pub fn samme_round(weights: &[f64], correct: &[bool], classes: usize) -> Result<SammeRound> {
    if weights.len() != correct.len() || weights.is_empty() {
        return Err(Error::Invalid(format!("{} weights for {} predictions: expected as many, at least one", weights.len(), correct.len())));
    }
    if classes < 2 {
        return Err(Error::Invalid(format!("{classes} classes: SAMME needs at least 2")));
    }
    let total: f64 = weights.iter().sum();
    if !(total > 0.0 && total.is_finite()) {
        return Err(Error::Invalid(format!("sample weights sum to {total}: expected a positive finite total")));
    }
    let err = (weights.iter().zip(correct).filter(|(_, &c)| !c).map(|(w, _)| w).sum::<f64>() / total).clamp(1e-10, 1.0 - 1e-10);
    let alpha = ((1.0 - err) / err).ln() + ((classes - 1) as f64).ln();
    let mut next: Vec<f64> = weights.iter().zip(correct).map(|(&w, &c)| if c { w } else { w * alpha.exp() }).collect();
    let s: f64 = next.iter().sum();
    next.iter_mut().for_each(|w| *w /= s);
    Ok(SammeRound { error: err, alpha, weights: next })
}

/// The class with the largest total weight of votes for each sample; `predictions[m][i]` is
/// member m's class for sample i and `weights[m]` its vote (1 for plain majority voting). Ties
/// go to the smallest class index.
pub fn weighted_vote(predictions: &[Vec<Label>], weights: &[f64], classes: usize) -> Vec<Label> {
    let n = predictions.first().map_or(0, |p| p.len());
    (0..n)
        .map(|i| {
            let mut score = vec![0.0f64; classes];
            for (p, &w) in predictions.iter().zip(weights) {
                score[p[i] as usize] += w;
            }
            argmax(&score) as Label
        })
        .collect()
}

/// Majority vote (every member's vote weighs 1).
pub fn majority_vote(predictions: &[Vec<Label>], classes: usize) -> Vec<Label> {
    weighted_vote(predictions, &vec![1.0; predictions.len()], classes)
}

/// The mean of the members' probabilities, each `[samples * classes]` row-major.
pub fn average_probabilities(probabilities: &[Vec<f32>]) -> Vec<f32> {
    let n = probabilities.first().map_or(0, |p| p.len());
    let m = probabilities.len().max(1) as f32;
    (0..n).map(|j| probabilities.iter().map(|p| p[j]).sum::<f32>() / m).collect()
}

/// The index of the largest value (the first on ties; NaN never wins).
pub fn argmax<T: Copy + PartialOrd>(row: &[T]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        let unordered = |x: T| x.partial_cmp(&x).is_none();
        if v > row[best] || (unordered(row[best]) && !unordered(v)) {
            best = i;
        }
    }
    best
}

/// The class of largest probability per sample, from `[samples * classes]`.
pub fn argmax_rows(probabilities: &[f32], classes: usize) -> Vec<Label> {
    probabilities.chunks(classes).map(|r| argmax(r) as Label).collect()
}

/// The fraction of members that voted for the ensemble's class, per sample (1: unanimous).
pub fn vote_agreement(predictions: &[Vec<Label>], ensemble: &[Label]) -> Vec<f64> {
    let m = predictions.len().max(1) as f64;
    ensemble.iter().enumerate().map(|(i, &e)| predictions.iter().filter(|p| p[i] == e).count() as f64 / m).collect()
}

/// The entropy (nats) of each sample's probability row: 0 when certain, ln K when uniform.
pub fn entropy_rows(probabilities: &[f32], classes: usize) -> Vec<f64> {
    probabilities.chunks(classes).map(|r| -r.iter().filter(|&&p| p > 0.0).map(|&p| p as f64 * (p as f64).ln()).sum::<f64>()).collect()
}

/// The variance term of the bias-variance decomposition of the 0-1 loss (Domingos 2000): the
/// mean over samples of the fraction of members whose prediction differs from the main
/// (majority) prediction. 0 when every member predicts the same.
pub fn prediction_variance(predictions: &[Vec<Label>], classes: usize) -> f64 {
    let main = majority_vote(predictions, classes);
    let agree = vote_agreement(predictions, &main);
    if agree.is_empty() {
        return 0.0;
    }
    agree.iter().map(|a| 1.0 - a).sum::<f64>() / agree.len() as f64
}

/// The fraction of `predicted` equal to `labels`.
pub fn accuracy(predicted: &[Label], labels: &[Label]) -> f64 {
    if labels.is_empty() {
        return f64::NAN;
    }
    predicted.iter().zip(labels).filter(|(p, l)| p == l).count() as f64 / labels.len() as f64
}

/// Mean and sample standard deviation (n - 1 in the denominator; 0 for one value, NaN for none).
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    if xs.len() == 1 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (xs.len() - 1) as f64;
    (mean, var.sqrt())
}

/// The `level` percentile bootstrap confidence interval of an accuracy from per-sample
/// correctness: `resamples` resamples of the test set with replacement, the accuracy of each,
/// and the (1 - level)/2 and (1 + level)/2 quantiles.
pub fn bootstrap_accuracy_ci(correct: &[bool], resamples: usize, level: f64, seed: u64) -> (f64, f64) {
    let n = correct.len();
    if n == 0 || resamples == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = Rng::new(seed ^ 0xC1C1_5000);
    let mut accs: Vec<f64> = (0..resamples).map(|_| (0..n).filter(|_| correct[rng.below(n)]).count() as f64 / n as f64).collect();
    accs.sort_by(f64::total_cmp);
    let q = |p: f64| accs[((p * (resamples - 1) as f64).round() as usize).min(resamples - 1)];
    (q((1.0 - level) / 2.0), q((1.0 + level) / 2.0))
}

/// The sharpness of a minimum, as defined by Keskar et al. 2017 ("On Large-Batch Training for
/// Deep Learning", metric 2.1, in the full space A = I).
#[derive(Clone, Debug, PartialEq)]
pub struct Sharpness {
    /// 100 (max f(w + z) - f(w)) / (1 + f(w)) over the box |z_i| <= eps (|w_i| + 1).
    pub value: f64,
    /// f(w).
    pub base: f64,
    /// The largest f(w + z) found.
    pub max: f64,
}

/// Keskar et al.'s sharpness of `f` at `w`: the largest relative increase of f within the box
/// |z_i| <= eps (|w_i| + 1) around w, found by `steps` steps of projected gradient ascent.
/// Each step moves every coordinate by `step_fraction` of its box half-width in the direction
/// of its gradient's sign (steepest ascent in the box's own infinity norm), then projects back
/// into the box; the largest value seen is kept. Keskar et al. used L-BFGS-B with 10 iterations;
/// projected sign ascent needs no line search and, for a function increasing towards a corner,
/// reaches it in 1 / step_fraction steps. `f` returns the value and the gradient at a point.
pub fn sharpness(
    mut f: impl FnMut(&[f32]) -> Result<(f64, Vec<f32>)>,
    w: &[f32],
    eps: f32,
    steps: usize,
    step_fraction: f32,
) -> Result<Sharpness> {
    let positive = |v: f32| v > 0.0 && v.is_finite();
    if !positive(eps) || !positive(step_fraction) {
        return Err(Error::Invalid(format!("sharpness box eps {eps}, step fraction {step_fraction}: expected positive finite values")));
    }
    let half: Vec<f32> = w.iter().map(|x| eps * (x.abs() + 1.0)).collect();
    let (base, mut grad) = f(w)?;
    let mut z = vec![0.0f32; w.len()];
    let mut max = base;
    let mut point = w.to_vec();
    for _ in 0..steps {
        for i in 0..w.len() {
            let s = if grad[i] > 0.0 {
                1.0
            } else if grad[i] < 0.0 {
                -1.0
            } else {
                0.0
            };
            z[i] = (z[i] + s * step_fraction * half[i]).clamp(-half[i], half[i]);
            point[i] = w[i] + z[i];
        }
        let (v, g) = f(&point)?;
        if v.is_finite() && v > max {
            max = v;
        }
        grad = g;
    }
    Ok(Sharpness { value: 100.0 * (max - base) / (1.0 + base), base, max })
}
