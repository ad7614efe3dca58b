//! Dropout cases and their runner (shaders/dropout.wgsl; CPU twin src/cpu/dropout.rs): the
//! mask is a hash of (seed, step, index), so every backend must draw the same mask bit for bit,
//! and a kept value is one correctly rounded multiply: `Tolerance::EXACT`.

use super::{Report, Tolerance, VerifyTarget};
use crate::ops::DropoutMask;
use crate::rng::Rng;
use crate::tensor::ShapeFmt;
use crate::{Cpu, Result};

/// Dropout of one tensor with the mask of (p, seed, step).
#[derive(Clone, Debug)]
pub struct Case {
    /// The input's shape.
    pub shape: Vec<usize>,
    /// Probability of zeroing an element.
    pub p: f32,
    /// The run's seed, the first input of the mask's hash.
    pub seed: u64,
    /// The training step, the second input of the mask's hash.
    pub step: u64,
}

impl Case {
    /// The op and its options, for reports.
    pub fn op(&self) -> String {
        format!("dropout p {} seed {} step {}", self.p, self.seed, self.step)
    }

    /// The sizes, for reports.
    pub fn shape(&self) -> String {
        ShapeFmt(&self.shape).to_string()
    }
}

/// Size 1, a non-multiple of 256, a 4-d tensor, a large step counter, and p = 0 and 1.
pub fn cases(_large: bool) -> Vec<super::Case> {
    [
        (vec![1], 0.5, 1, 1),
        (vec![257], 0.25, 7, 3),
        (vec![8, 3, 13, 11], 0.5, 7, 4),
        (vec![100_003], 0.1, 42, 1_000_000),
        (vec![33], 0.0, 1, 1),
        (vec![33], 1.0, 1, 1),
    ]
    .into_iter()
    .map(|(shape, p, seed, step)| super::Case::Dropout(Case { shape, p, seed, step }))
    .collect()
}

fn compute<X: VerifyTarget>(x: &X, case: &Case, data: &[f32], mask: &DropoutMask) -> Result<Vec<f32>> {
    let mut out = x.zeros(&case.shape)?;
    x.dropout(&x.upload(&case.shape, data)?, &mut out, mask)?;
    x.download(&out)
}

/// Runs `case` on `be` and on the CPU reference with inputs drawn from `seed`.
pub fn run_case<B: VerifyTarget>(be: &B, case: &Case, seed: u64) -> Result<Report> {
    let mut rng = Rng::new(seed);
    let x = rng.vec(case.shape.iter().product(), -1.0, 1.0);
    let mask = DropoutMask::new(case.p, case.seed, case.step)?;
    let got = compute(be, case, &x, &mask)?;
    let want = compute(&Cpu, case, &x, &mask)?;
    Ok(Report::new(be, case.op(), case.shape(), Tolerance::EXACT, &got, &want))
}
