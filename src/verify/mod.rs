//! Kernel verification: run an op on a backend and on the CPU reference with the same random
//! inputs, and compare under a stated `Tolerance`. `kernels-tests/` and `wgtrain verify` share
//! these runners, so the suite a user runs on their device is exactly the one CI runs.
//!
//! One file per op family, each with the same three parts:
//! - `Case`: one op instance (shape and options), with `op()` and `shape()` for reports;
//! - `cases(large)`: its list — sizes 1, primes, non-multiples of every tile, and (large) big;
//! - `run_case(be, case, seed)`: the runner, written once, generic over the backend.
//!
//! A runner never names a backend other than the reference `Cpu`: what it needs beyond the
//! `Backend` trait goes through `VerifyTarget` (target.rs). Checked against itself, the
//! reference must agree bit for bit. `case_file` checks against reference values computed
//! elsewhere (`wgtrain verify --case`), with the same `Tolerance` type.

pub mod batch_norm;
pub mod case_file;
pub mod channel;
pub mod conv2d;
pub mod dropout;
pub mod elementwise;
pub mod linear;
pub mod loss;
pub mod matmul;
pub mod optimizer;
pub mod pool;
pub mod reduce;
mod target;
pub mod tolerance;

use std::fmt;

pub use batch_norm::BnPass;
pub use conv2d::ConvPass;
pub use pool::PoolKind;
pub use target::VerifyTarget;
pub use tolerance::{Comparison, Scale, Tolerance};

use crate::gpu::MatmulVariant;
use crate::Result;

/// One op instance to check, by family.
#[derive(Clone, Debug)]
pub enum Case {
    /// One matmul kernel variant at one size ([`matmul`]).
    Matmul(matmul::Case),
    /// Add, mul, scale, ReLU and its backward ([`elementwise`]).
    Elementwise(elementwise::Case),
    /// Sum or sum of squares of a whole tensor ([`reduce`]).
    Reduce(reduce::Case),
    /// Dropout with a given mask seed and step ([`dropout`]).
    Dropout(dropout::Case),
    /// Optimizer steps or gradient clipping ([`optimizer`]).
    Optimizer(optimizer::Case),
    /// One pass of a convolution ([`conv2d`]).
    Conv2d(conv2d::Case),
    /// Bias + activation, per-channel sums, permutes ([`channel`]).
    Channel(channel::Case),
    /// Max, average or global average pooling ([`pool`]).
    Pool(pool::Case),
    /// One pass of batch norm ([`batch_norm`]).
    BatchNorm(batch_norm::Case),
    /// Cross-entropy or argmax ([`loss`]).
    Loss(loss::Case),
    /// A linear layer, forward or backward ([`linear`]).
    Linear(linear::Case),
}

impl Case {
    /// The op and its options, e.g. `conv2d 3x3 p[1,1] +bias`.
    pub fn op(&self) -> String {
        match self {
            Case::Matmul(c) => c.op(),
            Case::Elementwise(c) => c.op(),
            Case::Reduce(c) => c.op(),
            Case::Dropout(c) => c.op(),
            Case::Optimizer(c) => c.op(),
            Case::Conv2d(c) => c.op(),
            Case::Channel(c) => c.op(),
            Case::Pool(c) => c.op(),
            Case::BatchNorm(c) => c.op(),
            Case::Loss(c) => c.op(),
            Case::Linear(c) => c.op(),
        }
    }

    /// The sizes, e.g. "[2, 3, 7, 9] -> 5".
    pub fn shape(&self) -> String {
        match self {
            Case::Matmul(c) => c.shape(),
            Case::Elementwise(c) => c.shape(),
            Case::Reduce(c) => c.shape(),
            Case::Dropout(c) => c.shape(),
            Case::Optimizer(c) => c.shape(),
            Case::Conv2d(c) => c.shape(),
            Case::Channel(c) => c.shape(),
            Case::Pool(c) => c.shape(),
            Case::BatchNorm(c) => c.shape(),
            Case::Loss(c) => c.shape(),
            Case::Linear(c) => c.shape(),
        }
    }
}

/// Runs `case` on `be` and on the CPU reference with inputs drawn from `seed`, and compares.
/// `Err` when an op refused to run (a shape or device error), not when results differ.
pub fn run_case<B: VerifyTarget>(be: &B, case: &Case, seed: u64) -> Result<Report> {
    match case {
        Case::Matmul(c) => matmul::run_case(be, c, seed),
        Case::Elementwise(c) => elementwise::run_case(be, c, seed),
        Case::Reduce(c) => reduce::run_case(be, c, seed),
        Case::Dropout(c) => dropout::run_case(be, c, seed),
        Case::Optimizer(c) => optimizer::run_case(be, c, seed),
        Case::Conv2d(c) => conv2d::run_case(be, c, seed),
        Case::Channel(c) => channel::run_case(be, c, seed),
        Case::Pool(c) => pool::run_case(be, c, seed),
        Case::BatchNorm(c) => batch_norm::run_case(be, c, seed),
        Case::Loss(c) => loss::run_case(be, c, seed),
        Case::Linear(c) => linear::run_case(be, c, seed),
    }
}

/// Everything `wgtrain verify` runs: every matmul variant, then the other families.
pub fn suite(large: bool) -> Vec<Case> {
    let mut v: Vec<Case> = MatmulVariant::ALL.iter().flat_map(|&var| matmul::cases(var, large)).collect();
    v.extend(elementwise::cases(large));
    v.extend(reduce::cases(large));
    v.extend(dropout::cases(large));
    v.extend(optimizer::cases(large));
    v.extend(conv2d::cases(large));
    v.extend(channel::cases(large));
    v.extend(pool::cases(large));
    v.extend(batch_norm::cases(large));
    v.extend(loss::cases(large));
    v.extend(linear::cases(large));
    v
}

/// The outcome of one case on one backend.
#[derive(Clone, Debug)]
pub struct Report {
    /// The op and its options ([`Case::op`]).
    pub op: String,
    /// The sizes ([`Case::shape`]).
    pub shape: String,
    /// The backend checked (`Backend::name`).
    pub backend: String,
    /// The tolerance applied ([`Tolerance::IDENTICAL`] for the reference itself).
    pub tolerance: Tolerance,
    /// The errors found.
    pub cmp: Comparison,
}

impl Report {
    /// Compares `got`, from `be`, with `want`, from the reference, under `tolerance` — or
    /// under `Tolerance::IDENTICAL` when `be` is the reference itself.
    pub fn new<B: VerifyTarget>(be: &B, op: String, shape: String, tolerance: Tolerance, got: &[f32], want: &[f32]) -> Self {
        let tolerance = if be.is_reference() { Tolerance::IDENTICAL } else { tolerance };
        Self { op, shape, backend: be.name(), tolerance, cmp: tolerance.compare(got, want) }
    }

    /// Whether every element was within the tolerance.
    pub fn passed(&self) -> bool {
        self.cmp.passed()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} on {}: max abs err {:.3e}, max rel err {:.3e}, tolerance {}: {}",
            self.op,
            self.shape,
            self.backend,
            self.cmp.max_abs,
            self.cmp.max_rel,
            self.tolerance,
            if self.passed() { "pass" } else { "FAIL" }
        )?;
        if let Some((i, g, w)) = self.cmp.first_bad {
            write!(f, " ({} bad; first at index {i}: got {g}, reference {w})", self.cmp.failures)?;
        }
        Ok(())
    }
}
