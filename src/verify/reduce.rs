//! Whole-tensor reduction cases and their runner: sum and sum of squares (shaders/reduce.wgsl;
//! CPU twin src/cpu/reduce.rs). The tolerance follows from the backend's longest chain of
//! additions (`VerifyTarget::sum_depth`) and the size of the values (`Tolerance::sum`).

use super::{Report, Tolerance, VerifyTarget};
use crate::rng::Rng;
use crate::tensor::ShapeFmt;
use crate::{Cpu, Result};

/// A sum of every element of one tensor into one value.
#[derive(Clone, Debug)]
pub struct Case {
    /// Sum of squares instead of the sum.
    pub squares: bool,
    /// The input's shape.
    pub shape: Vec<usize>,
}

impl Case {
    /// `sum` or `sum_squares`, for reports.
    pub fn op(&self) -> String {
        if self.squares { "sum_squares" } else { "sum" }.into()
    }

    /// The sizes, for reports.
    pub fn shape(&self) -> String {
        ShapeFmt(&self.shape).to_string()
    }
}

/// Both reductions on the element-wise shapes, plus (large) more elements than one pass of
/// MAX_PARTIALS workgroups covers, which needs the second pass.
pub fn cases(large: bool) -> Vec<super::Case> {
    let mut v: Vec<super::Case> = super::elementwise::shapes(large)
        .into_iter()
        .flat_map(|shape| [false, true].map(|squares| super::Case::Reduce(Case { squares, shape: shape.clone() })))
        .collect();
    if large {
        v.push(super::Case::Reduce(Case { squares: false, shape: vec![4096 * 1024 + 17] }));
    }
    v
}

fn compute<X: VerifyTarget>(x: &X, case: &Case, data: &[f32]) -> Result<Vec<f32>> {
    let mut out = x.zeros(&[1])?;
    let t = x.upload(&case.shape, data)?;
    if case.squares {
        x.sum_squares(&t, &mut out)?;
    } else {
        x.sum(&t, &mut out)?;
    }
    x.download(&out)
}

/// Runs `case` on `be` and on the CPU reference with inputs drawn from `seed`.
pub fn run_case<B: VerifyTarget>(be: &B, case: &Case, seed: u64) -> Result<Report> {
    let mut rng = Rng::new(seed);
    let n: usize = case.shape.iter().product();
    let x = rng.vec(n, -1.0, 1.0);
    // The terms' squares: x² for the sum, x⁴ for the sum of squares.
    let power = if case.squares { 4 } else { 2 };
    let sumsq: f64 = x.iter().map(|&v| (v as f64).powi(power)).sum();
    let got = compute(be, case, &x)?;
    let want = compute(&Cpu, case, &x)?;
    Ok(Report::new(be, case.op(), case.shape(), Tolerance::sum(be.sum_depth(n), sumsq), &got, &want))
}
