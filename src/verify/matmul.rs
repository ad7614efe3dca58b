//! Matmul cases and their runner: c = alpha * op(a) @ op(b) + beta * c for one kernel variant
//! (shaders/matmul_v*.wgsl; CPU twin src/cpu/matmul.rs), on random inputs in [-1, 1].

use super::{Report, Tolerance, VerifyTarget};
use crate::gpu::MatmulVariant;
use crate::ops::{MatmulDims, MatmulSpec};
use crate::rng::Rng;
use crate::{Cpu, Result};

/// One matmul: [batch x] (m x k) @ (k x n), run with `variant` where the backend has variants.
#[derive(Clone, Debug)]
pub struct Case {
    /// The kernel asked for (the GPU may fall back, see [`MatmulVariant::applicable`]).
    pub variant: MatmulVariant,
    /// Number of matrices in a batched matmul (3-d operands); `None`: plain 2-d operands.
    pub batch: Option<usize>,
    /// Rows of op(a) and c.
    pub m: usize,
    /// Columns of op(b) and c.
    pub n: usize,
    /// The reduced dimension: columns of op(a), rows of op(b).
    pub k: usize,
    /// Transposes, alpha and beta.
    pub spec: MatmulSpec,
}

impl Case {
    /// e.g. "matmul v4_lanes Aᵀ +βC"; "v4_lanes→v2_tiled" when the GPU falls back for the shape.
    pub fn op(&self) -> String {
        let dims = MatmulDims { batch: self.batch.unwrap_or(1), m: self.m, n: self.n, k: self.k, stride_a: 0, stride_b: 0, stride_c: 0 };
        let ran = self.variant.applicable(&dims, self.spec);
        let name = if ran == self.variant { self.variant.name().to_string() } else { format!("{}→{}", self.variant.name(), ran.name()) };
        let t = match (self.spec.trans_a, self.spec.trans_b) {
            (false, false) => "",
            (true, false) => " Aᵀ",
            (false, true) => " Bᵀ",
            (true, true) => " AᵀBᵀ",
        };
        let acc = if self.spec.beta != 0.0 { " +βC" } else { "" };
        format!("matmul {name}{t}{acc}")
    }

    /// e.g. "3x(19x29 @ 29x23)".
    pub fn shape(&self) -> String {
        let (m, n, k) = (self.m, self.n, self.k);
        match self.batch {
            Some(b) => format!("{b}x({m}x{k} @ {k}x{n})"),
            None => format!("{m}x{k} @ {k}x{n}"),
        }
    }
}

/// Matmul cases for one variant: sizes of 1, primes, non-multiples of every tile, all four
/// transpose combinations, accumulation, batching (shared and per-entry operands).
pub fn cases(variant: MatmulVariant, large: bool) -> Vec<super::Case> {
    let mm = |batch, m, n, k, ta, tb, alpha: f32, beta: f32| {
        super::Case::Matmul(Case { variant, batch, m, n, k, spec: MatmulSpec { trans_a: ta, trans_b: tb, alpha, beta } })
    };
    let mut v = vec![
        mm(None, 1, 1, 1, false, false, 1.0, 0.0),
        mm(None, 1, 7, 13, false, false, 1.0, 0.0),
        mm(None, 13, 1, 7, false, false, 1.0, 0.0),
        mm(None, 31, 37, 41, false, false, 1.0, 0.0),
        mm(None, 64, 64, 64, false, false, 1.0, 0.0),
        mm(None, 65, 33, 17, false, false, 1.0, 0.0),
        mm(None, 61, 67, 71, true, false, 1.0, 0.0),
        mm(None, 61, 67, 71, false, true, 1.0, 0.0),
        mm(None, 61, 67, 71, true, true, 1.0, 0.0),
        mm(None, 29, 97, 53, false, false, 0.5, 1.0),
        mm(None, 29, 97, 53, true, true, -2.0, 0.25),
        mm(Some(3), 19, 23, 29, false, false, 1.0, 0.0),
        mm(Some(5), 7, 130, 11, false, true, 1.0, 1.0),
        // Multiples of 4 (v4's fast path) with edges in every direction.
        mm(None, 9, 516, 12, false, false, 1.0, 0.0),
        mm(None, 17, 4, 4, false, false, 1.0, 0.0),
        mm(None, 33, 1028, 20, false, false, 0.5, 1.0),
        mm(Some(2), 11, 36, 44, false, false, 1.0, 0.0),
        // v4's transposed forms: A transposed (M, N multiples of 4, any K), B transposed (K, N
        // multiples of 4), with edges, accumulation and batches; both transposed falls back.
        mm(None, 12, 36, 7, true, false, 1.0, 0.0),
        mm(None, 20, 520, 33, true, false, 0.5, 1.0),
        mm(Some(3), 4, 8, 12, true, false, 1.0, 0.0),
        mm(None, 13, 36, 12, false, true, 1.0, 0.0),
        mm(None, 9, 1028, 44, false, true, -1.0, 0.5),
        mm(Some(2), 17, 12, 8, false, true, 1.0, 0.0),
        mm(None, 12, 16, 20, true, true, 1.0, 0.0),
        // v5's blocks of 16 rows: exact, and 2 blocks and 15 rows over a batch, accumulating.
        mm(None, 16, 8, 4, false, false, 1.0, 0.0),
        mm(Some(2), 47, 196, 36, false, false, 0.5, 1.0),
        // Widths of several whole workgroups of columns at 64 lanes, and at 8 (CPU adapters).
        mm(None, 5, 512, 8, false, false, 1.0, 0.0),
        mm(None, 9, 256, 16, false, false, 1.0, 0.0),
        mm(None, 3, 128, 4, false, false, 1.0, 0.0),
    ];
    if large {
        v.push(mm(None, 257, 1031, 509, false, false, 1.0, 0.0));
        v.push(mm(None, 300, 200, 1024, true, false, 1.0, 0.0));
    }
    v
}

/// The operands of one case, drawn once and given to both backends.
struct Inputs {
    a_shape: Vec<usize>,
    b_shape: Vec<usize>,
    c_shape: Vec<usize>,
    a: Vec<f32>,
    b: Vec<f32>,
    c0: Vec<f32>,
}

/// The op on one backend: c starts as c0 (beta accumulates into it).
fn compute<X: VerifyTarget>(x: &X, case: &Case, i: &Inputs) -> Result<Vec<f32>> {
    let mut c = x.upload(&i.c_shape, &i.c0)?;
    x.matmul_variant(case.variant, &x.upload(&i.a_shape, &i.a)?, &x.upload(&i.b_shape, &i.b)?, &mut c, case.spec)?;
    x.download(&c)
}

/// Runs `case` on `be` and on the CPU reference with inputs drawn from `seed`.
pub fn run_case<B: VerifyTarget>(be: &B, case: &Case, seed: u64) -> Result<Report> {
    let mut rng = Rng::new(seed);
    let (m, n, k) = (case.m, case.n, case.k);
    let with_batch = |r: usize, c: usize| match case.batch {
        Some(b) => vec![b, r, c],
        None => vec![r, c],
    };
    let a_shape = if case.spec.trans_a { with_batch(k, m) } else { with_batch(m, k) };
    let b_shape = if case.spec.trans_b { with_batch(n, k) } else { with_batch(k, n) };
    let c_shape = with_batch(m, n);
    let a = rng.vec(a_shape.iter().product(), -1.0, 1.0);
    let b = rng.vec(b_shape.iter().product(), -1.0, 1.0);
    let c0 = rng.vec(c_shape.iter().product(), -1.0, 1.0);
    let inputs = Inputs { a_shape, b_shape, c_shape, a, b, c0 };
    let got = compute(be, case, &inputs)?;
    let want = compute(&Cpu, case, &inputs)?;
    Ok(Report::new(be, case.op(), case.shape(), Tolerance::dot(k, case.spec.alpha), &got, &want))
}
