//! Batch norm cases and their runner: training forward (y, running statistics, saved
//! statistics), eval forward, backward (dx, dgamma, dbeta) and the eval forward's backward
//! (shaders/batch_norm.wgsl, shaders/bn_stats.wgsl, the per-channel reductions of
//! shaders/channel.wgsl and shaders/batch_norm_eval_backward.wgsl; CPU twin src/cpu/batch_norm.rs).

use super::{Report, Tolerance, VerifyTarget};
use crate::ops::Activation;
use crate::rng::Rng;
use crate::tensor::ShapeFmt;
use crate::{Cpu, Result};

/// Which computation of batch norm a case checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BnPass {
    /// Training forward: y, the updated running statistics, the saved mean and invstd.
    Train,
    /// Evaluation forward with the running statistics: y.
    Eval,
    /// Backward from the saved statistics: dx, dgamma, dbeta.
    Backward,
    /// Backward of the eval forward, the running statistics constant: dx, dgamma, dbeta.
    EvalBackward,
}

/// Batch norm of x [N, C, ...] in one pass.
#[derive(Clone, Debug)]
pub struct Case {
    /// The input's shape [N, C, ...] (rank 2 for BatchNorm1d-shaped inputs).
    pub x: Vec<usize>,
    /// Which pass.
    pub pass: BnPass,
    /// Forward passes: with a ReLU fused into the apply pass (y = max(bn(x), 0)).
    pub relu: bool,
}

impl Case {
    /// The op and its options, for reports.
    pub fn op(&self) -> String {
        let op = match self.pass {
            BnPass::Train => "batch_norm train",
            BnPass::Eval => "batch_norm eval",
            BnPass::Backward => "batch_norm_backward",
            BnPass::EvalBackward => "batch_norm_backward_eval",
        };
        if self.relu {
            format!("{op} +relu")
        } else {
            op.into()
        }
    }

    /// The sizes, for reports.
    pub fn shape(&self) -> String {
        ShapeFmt(&self.x).to_string()
    }
}

/// Batch 1 with odd sizes, channels not a multiple of anything, a [N, C] input
/// (BatchNorm1d-shaped), one channel, 300 values per channel in one image (more than a
/// workgroup's 256, not a multiple of it), and (large) many values per channel; every pass,
/// and the forward passes with a ReLU fused in.
pub fn cases(large: bool) -> Vec<super::Case> {
    // Planes of 35 and 99 values take the 3-D grid, 300 and 68 (17 vec4s) its vec4 form.
    let mut shapes = vec![vec![1, 3, 5, 7], vec![4, 13, 3, 3], vec![7, 5], vec![2, 1, 9, 11], vec![1, 7, 15, 20], vec![3, 5, 4, 17]];
    if large {
        shapes.push(vec![32, 16, 16, 16]);
    }
    let mut v = Vec::new();
    for x in shapes {
        for pass in [BnPass::Train, BnPass::Eval, BnPass::Backward, BnPass::EvalBackward] {
            v.push(super::Case::BatchNorm(Case { x: x.clone(), pass, relu: false }));
        }
        for pass in [BnPass::Train, BnPass::Eval] {
            v.push(super::Case::BatchNorm(Case { x: x.clone(), pass, relu: true }));
        }
    }
    v
}

const MOMENTUM: f32 = 0.1;
const EPS: f32 = 1e-5;

/// Inputs of one case: x, the affine parameters, running statistics, dy, and (backward) the
/// statistics the reference's training forward saved, which both backwards start from.
struct Inputs {
    x: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    rm: Vec<f32>,
    rv: Vec<f32>,
    dy: Vec<f32>,
    /// Backward only (empty otherwise): the reference's saved mean and 1/sqrt(var + eps).
    save_mean: Vec<f32>,
    save_invstd: Vec<f32>,
}

/// Train: y, running mean and var, saved mean and invstd. Eval: y. Backward and EvalBackward:
/// dx, dgamma, dbeta.
fn compute<X: VerifyTarget>(be: &X, case: &Case, i: &Inputs) -> Result<Vec<f32>> {
    let (xs, c) = (&case.x, case.x[1]);
    let x = be.upload(xs, &i.x)?;
    let (g, b) = (be.upload(&[c], &i.gamma)?, be.upload(&[c], &i.beta)?);
    match case.pass {
        BnPass::Train => {
            let (mut m, mut v) = (be.upload(&[c], &i.rm)?, be.upload(&[c], &i.rv)?);
            let (mut y, mut sm, mut si) = (be.zeros(xs)?, be.zeros(&[c])?, be.zeros(&[c])?);
            be.batch_norm_train_act(&x, &g, &b, &mut m, &mut v, &mut y, &mut sm, &mut si, MOMENTUM, EPS, Activation::relu_if(case.relu))?;
            Ok([be.download(&y)?, be.download(&m)?, be.download(&v)?, be.download(&sm)?, be.download(&si)?].concat())
        }
        BnPass::Eval => {
            let (m, v) = (be.upload(&[c], &i.rm)?, be.upload(&[c], &i.rv)?);
            let mut y = be.zeros(xs)?;
            be.batch_norm_eval_act(&x, &g, &b, &m, &v, &mut y, EPS, Activation::relu_if(case.relu))?;
            be.download(&y)
        }
        BnPass::Backward => {
            let (sm, si) = (be.upload(&[c], &i.save_mean)?, be.upload(&[c], &i.save_invstd)?);
            let (mut dx, mut dg, mut db) = (be.zeros(xs)?, be.zeros(&[c])?, be.zeros(&[c])?);
            be.batch_norm_backward(&x, &be.upload(xs, &i.dy)?, &g, &sm, &si, &mut dx, &mut dg, &mut db)?;
            Ok([be.download(&dx)?, be.download(&dg)?, be.download(&db)?].concat())
        }
        BnPass::EvalBackward => {
            let (m, v) = (be.upload(&[c], &i.rm)?, be.upload(&[c], &i.rv)?);
            let (mut dx, mut dg, mut db) = (be.zeros(xs)?, be.zeros(&[c])?, be.zeros(&[c])?);
            be.batch_norm_backward_eval(&x, &be.upload(xs, &i.dy)?, &g, &m, &v, Some(&mut dx), Some((&mut dg, &mut db)), EPS)?;
            Ok([be.download(&dx)?, be.download(&dg)?, be.download(&db)?].concat())
        }
    }
}

/// Runs `case` on `be` and on the CPU reference with inputs drawn from `seed`.
pub fn run_case<B: VerifyTarget>(be: &B, case: &Case, seed: u64) -> Result<Report> {
    let mut rng = Rng::new(seed);
    let (xs, c) = (&case.x, case.x[1]);
    let n = xs[0];
    let per_channel = xs.iter().product::<usize>() / c;
    // Inputs with an offset and a spread per channel, as activations have.
    let x: Vec<f32> = (0..xs.iter().product())
        .map(|i| {
            let ch = (i / (per_channel / n)) % c;
            rng.uniform(-1.0, 1.0) * (1.0 + ch as f32 * 0.5) + ch as f32 * 0.25
        })
        .collect();
    let mut inputs = Inputs {
        gamma: rng.vec(c, 0.5, 1.5),
        beta: rng.vec(c, -0.5, 0.5),
        rm: rng.vec(c, -0.2, 0.2),
        rv: rng.vec(c, 0.5, 1.5),
        dy: rng.vec(x.len(), -1.0, 1.0),
        x,
        save_mean: Vec::new(),
        save_invstd: Vec::new(),
    };
    if case.pass == BnPass::Backward {
        // The training forward's outputs end with the saved mean and invstd, [C] each.
        let train = compute(&Cpu, &Case { x: case.x.clone(), pass: BnPass::Train, relu: false }, &inputs)?;
        let at = train.len() - 2 * c;
        inputs.save_mean = train[at..at + c].to_vec();
        inputs.save_invstd = train[at + c..].to_vec();
    }
    let got = compute(be, case, &inputs)?;
    let want = compute(&Cpu, case, &inputs)?;
    Ok(Report::new(be, case.op(), case.shape(), Tolerance::batch_norm(n, per_channel / n), &got, &want))
}
