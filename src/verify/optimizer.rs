//! Optimizer cases and their runner: several consecutive steps of every optimizer rule on the
//! same gradient sequence, and clipping by the global norm (shaders/optimizer.wgsl,
//! shaders/clip.wgsl; CPU twin src/cpu/optimizer.rs).

use super::tolerance::U;
use super::{Report, Tolerance, VerifyTarget};
use crate::rng::Rng;
use crate::{Cpu, Optimizer, OptimizerKind, Result};

/// An optimizer run or a gradient clipping.
#[derive(Clone, Debug)]
pub enum Case {
    /// `steps` consecutive updates of `n` parameters with the same gradient sequence.
    Step {
        /// The rule and its settings.
        opt: Optimizer,
        /// Parameters in the flat arena.
        n: usize,
        /// Updates, t = 1..=steps.
        steps: usize,
    },
    /// Gradients \[n\] scaled so their norm is at most `max_norm`; the sum of squares reported.
    ClipGradNorm {
        /// Gradient elements.
        n: usize,
        /// The largest L2 norm let through.
        max_norm: f32,
    },
}

impl Case {
    /// e.g. "adam lr 0.001 wd 0.01": the optimizer and every setting that differs from its
    /// defaults.
    pub fn op(&self) -> String {
        let opt = match self {
            Case::Step { opt, .. } => opt,
            Case::ClipGradNorm { .. } => return "clip_grad_norm".into(),
        };
        let mut extra = vec![format!("lr {}", opt.lr)];
        if opt.betas != (0.9, 0.999) {
            extra.push(format!("betas {:?}", opt.betas));
        }
        if opt.weight_decay != 0.0 {
            extra.push(format!("wd {}", opt.weight_decay));
        }
        if opt.momentum != 0.0 {
            extra.push(format!("mom {}", opt.momentum));
        }
        if opt.dampening != 0.0 {
            extra.push(format!("damp {}", opt.dampening));
        }
        if opt.nesterov {
            extra.push("nesterov".into());
        }
        if opt.initial_accumulator_value != 0.0 || opt.lr_decay != 0.0 {
            extra.push(format!("acc0 {} lr_decay {}", opt.initial_accumulator_value, opt.lr_decay));
        }
        format!("{} {}", opt.kind.name(), extra.join(" "))
    }

    /// The sizes, for reports.
    pub fn shape(&self) -> String {
        match self {
            Case::Step { n, steps, .. } => format!("[{n}] x {steps} steps"),
            Case::ClipGradNorm { n, max_norm } => format!("[{n}] max_norm {max_norm}"),
        }
    }
}

/// The optimizers checked: every kind in its PyTorch defaults and in the variants that change
/// its rule (momentum, nesterov, dampening, weight decay, accumulator settings, betas).
pub fn optimizers() -> Vec<Optimizer> {
    let o = Optimizer::new;
    let with = |kind, f: &dyn Fn(&mut Optimizer)| {
        let mut x = o(kind);
        f(&mut x);
        x
    };
    vec![
        o(OptimizerKind::Sgd),
        with(OptimizerKind::Sgd, &|x| {
            x.lr = 0.1;
            x.momentum = 0.9;
        }),
        with(OptimizerKind::Sgd, &|x| {
            x.lr = 0.05;
            x.momentum = 0.9;
            x.nesterov = true;
            x.weight_decay = 5e-4;
        }),
        with(OptimizerKind::Sgd, &|x| {
            x.momentum = 0.5;
            x.dampening = 0.3;
            x.weight_decay = 1e-2;
        }),
        o(OptimizerKind::Adagrad),
        with(OptimizerKind::Adagrad, &|x| {
            x.initial_accumulator_value = 0.1;
            x.lr_decay = 0.01;
            x.weight_decay = 1e-3;
        }),
        o(OptimizerKind::Adadelta),
        with(OptimizerKind::Adadelta, &|x| x.weight_decay = 1e-2),
        o(OptimizerKind::Rmsprop),
        with(OptimizerKind::Rmsprop, &|x| {
            x.momentum = 0.9;
            x.weight_decay = 1e-3;
        }),
        o(OptimizerKind::Adam),
        with(OptimizerKind::Adam, &|x| x.weight_decay = 1e-2),
        o(OptimizerKind::AdamW),
        with(OptimizerKind::AdamW, &|x| {
            x.lr = 1e-2;
            x.betas = (0.8, 0.99);
        }),
    ]
}

/// Every optimizer of `optimizers` over five steps, sizes 1, prime and (large) 100,003 over
/// three steps; then clipping of 1 to 70,001 gradients, clipped and not.
pub fn cases(large: bool) -> Vec<super::Case> {
    let mut v = Vec::new();
    for opt in optimizers() {
        for n in [1, 257] {
            v.push(super::Case::Optimizer(Case::Step { opt, n, steps: 5 }));
        }
        if large {
            v.push(super::Case::Optimizer(Case::Step { opt, n: 100_003, steps: 3 }));
        }
    }
    for (n, max_norm) in [(1, 0.5), (1000, 1.0), (1000, 100.0), (70_001, 5.0)] {
        v.push(super::Case::Optimizer(Case::ClipGradNorm { n, max_norm }));
    }
    v
}

/// `grads.len()` steps from p0: the parameters after every step, concatenated.
fn steps<X: VerifyTarget>(x: &X, opt: &Optimizer, p0: &[f32], grads: &[Vec<f32>]) -> Result<Vec<f32>> {
    let n = p0.len();
    // A state the rule does not use may be one element (see `Optimizer::state_tensors`).
    let state_len = |i: usize| if opt.state_tensors() > i { n } else { 1 };
    let mut p = x.upload(&[n], p0)?;
    let mut s1 = x.upload(&[state_len(0)], &vec![opt.initial_state(); state_len(0)])?;
    let mut s2 = x.zeros(&[state_len(1)])?;
    let mut g = x.zeros(&[n])?;
    let mut all = Vec::with_capacity(n * grads.len());
    for (t, grad) in grads.iter().enumerate() {
        x.write(&mut g, grad)?;
        x.optimizer_step(opt, t as u64 + 1, &mut p, &g, &mut s1, &mut s2)?;
        all.extend(x.download(&p)?);
    }
    Ok(all)
}

/// The clipped gradients, then the sum of squares before clipping.
fn clip<X: VerifyTarget>(x: &X, g: &[f32], max_norm: f32) -> Result<Vec<f32>> {
    let (mut gt, mut sumsq) = (x.upload(&[g.len()], g)?, x.zeros(&[1])?);
    x.clip_grad_norm(&mut gt, max_norm, &mut sumsq)?;
    let mut out = x.download(&gt)?;
    out.extend(x.download(&sumsq)?);
    Ok(out)
}

/// Runs `case` on `be` and on the CPU reference with inputs drawn from `seed`.
pub fn run_case<B: VerifyTarget>(be: &B, case: &Case, seed: u64) -> Result<Report> {
    let mut rng = Rng::new(seed);
    let (tolerance, got, want) = match case {
        Case::Step { opt, n, steps: count } => {
            let p0 = rng.vec(*n, -1.0, 1.0);
            let grads: Vec<Vec<f32>> = (0..*count).map(|_| rng.vec(*n, -1.0, 1.0)).collect();
            (Tolerance::optimizer(*count), steps(be, opt, &p0, &grads)?, steps(&Cpu, opt, &p0, &grads)?)
        }
        Case::ClipGradNorm { n, max_norm } => {
            let g = rng.vec(*n, -1.0, 1.0);
            let sum4: f64 = g.iter().map(|&v| (v as f64).powi(4)).sum();
            let want = clip(&Cpu, &g, *max_norm)?;
            let got = clip(be, &g, *max_norm)?;
            // The coefficient max_norm / norm inherits the sum's relative error; the clipped
            // values are |g| <= 1, so that relative error (plus a few ulps) bounds them too.
            let t = Tolerance::sum(be.sum_depth(*n), sum4);
            let rel = t.atol / want[*n].max(1e-30) + t.rtol;
            (Tolerance::new(rel + 4.0 * U, rel + 4.0 * U), got, want)
        }
    };
    Ok(Report::new(be, case.op(), case.shape(), tolerance, &got, &want))
}
