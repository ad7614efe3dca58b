//! Linear-layer cases and their runner: y = x @ wᵀ + b and its backward (dx, dw, db), which
//! the GPU composes from matmul, bias_act and channel_sum (CPU twin: the CPU backend's linear).

use super::{Report, Tolerance, VerifyTarget};
use crate::rng::Rng;
use crate::{Cpu, Result};

/// x [n, i] -> y [n, o]; the forward (y) or the backward (dx, dw, db).
#[derive(Clone, Debug)]
pub struct Case {
    /// Batch size.
    pub n: usize,
    /// Input features.
    pub i: usize,
    /// Output features.
    pub o: usize,
    /// Check the backward (dx, dw, db) instead of the forward (y).
    pub backward: bool,
}

impl Case {
    /// `linear` or `linear_backward`, for reports.
    pub fn op(&self) -> String {
        if self.backward { "linear_backward" } else { "linear" }.into()
    }

    /// e.g. "[64, 1568] -> 128".
    pub fn shape(&self) -> String {
        format!("[{}, {}] -> {}", self.n, self.i, self.o)
    }
}

/// All ones, small primes, an MNIST-MLP-sized layer, a classifier head; (large) a wide layer.
pub fn cases(large: bool) -> Vec<super::Case> {
    let mut sizes = vec![(1, 1, 1), (3, 17, 5), (64, 1568, 128), (13, 128, 10)];
    if large {
        sizes.push((256, 512, 257));
    }
    let mut v = Vec::new();
    for (n, i, o) in sizes {
        for backward in [false, true] {
            v.push(super::Case::Linear(Case { n, i, o, backward }));
        }
    }
    v
}

/// x, w [o, i], b [o], dy [n, o].
struct Inputs {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    dy: Vec<f32>,
}

fn compute<X: VerifyTarget>(be: &X, case: &Case, v: &Inputs) -> Result<Vec<f32>> {
    let (n, i, o) = (case.n, case.i, case.o);
    let (x, w) = (be.upload(&[n, i], &v.x)?, be.upload(&[o, i], &v.w)?);
    if !case.backward {
        let mut y = be.zeros(&[n, o])?;
        be.linear(&x, &w, Some(&be.upload(&[o], &v.b)?), &mut y)?;
        return be.download(&y);
    }
    let (mut dx, mut dw, mut db) = (be.zeros(&[n, i])?, be.zeros(&[o, i])?, be.zeros(&[o])?);
    be.linear_backward(&x, &w, &be.upload(&[n, o], &v.dy)?, Some(&mut dx), &mut dw, Some(&mut db))?;
    Ok([be.download(&dx)?, be.download(&dw)?, be.download(&db)?].concat())
}

/// Runs `case` on `be` and on the CPU reference with inputs drawn from `seed`.
pub fn run_case<B: VerifyTarget>(be: &B, case: &Case, seed: u64) -> Result<Report> {
    let mut rng = Rng::new(seed);
    let (n, i, o) = (case.n, case.i, case.o);
    let inputs =
        Inputs { x: rng.vec(n * i, -1.0, 1.0), w: rng.vec(o * i, -1.0, 1.0), b: rng.vec(o, -1.0, 1.0), dy: rng.vec(n * o, -1.0, 1.0) };
    // Forward: dot products of length i, plus the bias. Backward: dx sums over o, dw and db
    // over n.
    let tolerance = if case.backward { Tolerance::dot(n.max(o), 1.0) } else { Tolerance::dot(i + 1, 1.0) };
    let got = compute(be, case, &inputs)?;
    let want = compute(&Cpu, case, &inputs)?;
    Ok(Report::new(be, case.op(), case.shape(), tolerance, &got, &want))
}
