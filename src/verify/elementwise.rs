//! Element-wise cases and their runner: add, add + ReLU, mul, scale, relu and its backward,
//! and both in place (a fused ReLU's)
//! (shaders/elementwise.wgsl, shaders/relu.wgsl; CPU twins src/cpu/elementwise.rs, relu.rs).
//! Each output is one correctly rounded f32 operation or a copy: `Tolerance::EXACT`.

use super::{Report, Tolerance, VerifyTarget};
use crate::rng::Rng;
use crate::tensor::ShapeFmt;
use crate::{Cpu, Result};

/// The element-wise op of a case.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// out = a + b.
    Add,
    /// out = max(a + b, 0) (a residual sum with its ReLU fused).
    AddRelu,
    /// out = a * b.
    Mul,
    /// out = alpha * a.
    Scale {
        /// The factor.
        alpha: f32,
    },
    /// out = max(x, 0).
    Relu,
    /// `dx = dy * [x > 0]`.
    ReluBackward,
    /// y = max(y, 0) in place (a fused ReLU's forward).
    ReluInPlace,
    /// `dy = dy * [y > 0]` in place (a fused ReLU's backward).
    ReluBackwardInPlace,
}

impl Op {
    /// The backend op's name (`add`, `relu_backward`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::AddRelu => "add_relu",
            Op::Mul => "mul",
            Op::Scale { .. } => "scale",
            Op::Relu => "relu",
            Op::ReluBackward => "relu_backward",
            Op::ReluInPlace => "relu_in_place",
            Op::ReluBackwardInPlace => "relu_backward_in_place",
        }
    }
}

/// One element-wise op on a tensor of one shape (every operand has it).
#[derive(Clone, Debug)]
pub struct Case {
    /// Which op.
    pub op: Op,
    /// The operands' and output's shape.
    pub shape: Vec<usize>,
}

impl Case {
    /// The op's name, for reports.
    pub fn op(&self) -> String {
        self.op.name().into()
    }

    /// The sizes, for reports.
    pub fn shape(&self) -> String {
        ShapeFmt(&self.shape).to_string()
    }
}

/// The shapes every element-wise and reduction kernel meets: 1, primes, a multiple and a
/// non-multiple of the 256-wide workgroup, 4-d tensors, and a large one.
pub fn shapes(large: bool) -> Vec<Vec<usize>> {
    // 256 and 4 x 25 (25 vec4s) take relu's vec4 form.
    let mut shapes = vec![vec![1], vec![7], vec![256], vec![257], vec![4, 25], vec![3, 5, 7, 11], vec![2, 3, 97, 101]];
    if large {
        shapes.push(vec![1_000_003]);
    }
    shapes
}

/// Every element-wise op on every shape of `shapes`.
pub fn cases(large: bool) -> Vec<super::Case> {
    let ops =
        [Op::Add, Op::AddRelu, Op::Mul, Op::Scale { alpha: -1.75 }, Op::Relu, Op::ReluBackward, Op::ReluInPlace, Op::ReluBackwardInPlace];
    shapes(large).into_iter().flat_map(|shape| ops.map(|op| super::Case::Elementwise(Case { op, shape: shape.clone() }))).collect()
}

/// The op on one backend: `a` is the first operand (x for relu; y for the in-place ReLUs,
/// which rectify it or mask dy by it), `b` the second (dy).
fn compute<X: VerifyTarget>(x: &X, case: &Case, a: &[f32], b: &[f32]) -> Result<Vec<f32>> {
    let up = |v: &[f32]| x.upload(&case.shape, v);
    let mut out = x.zeros(&case.shape)?;
    match case.op {
        Op::Add => x.add(&up(a)?, &up(b)?, &mut out)?,
        Op::AddRelu => x.add_relu(&up(a)?, &up(b)?, &mut out)?,
        Op::Mul => x.mul(&up(a)?, &up(b)?, &mut out)?,
        Op::Scale { alpha } => x.scale(&up(a)?, alpha, &mut out)?,
        Op::Relu => x.relu(&up(a)?, &mut out)?,
        Op::ReluBackward => x.relu_backward(&up(a)?, &up(b)?, &mut out)?,
        Op::ReluInPlace => {
            out = up(a)?;
            x.relu_in_place(&mut out)?;
        }
        Op::ReluBackwardInPlace => {
            // y as a fused forward leaves it: rectified, with exact zeros.
            let y: Vec<f32> = a.iter().map(|v| v.max(0.0)).collect();
            out = up(b)?;
            x.relu_backward_in_place(&up(&y)?, &mut out)?;
        }
    }
    x.download(&out)
}

/// Runs `case` on `be` and on the CPU reference with inputs drawn from `seed`.
pub fn run_case<B: VerifyTarget>(be: &B, case: &Case, seed: u64) -> Result<Report> {
    let mut rng = Rng::new(seed);
    let n = case.shape.iter().product();
    let (a, b) = (rng.vec(n, -1.0, 1.0), rng.vec(n, -1.0, 1.0));
    let got = compute(be, case, &a, &b)?;
    let want = compute(&Cpu, case, &a, &b)?;
    Ok(Report::new(be, case.op(), case.shape(), Tolerance::EXACT, &got, &want))
}
