//! How close is close enough: one type, one formula, named presets, each with its reason.
//!
//! An element passes when   |got_i - want_i| <= atol + rtol * s_i,   where the scale s_i is
//! - `Scale::Element`:   s_i = |want_i|            (the default: generated cases, `new`), or
//! - `Scale::TensorMax`: s_i = max_j |want_j|      (`relative_to_max`: reference case files,
//!   whose outputs mix values near zero with large ones computed by another framework in
//!   another order, so an element's error follows the tensor's magnitude, not its own).
//!
//! A NaN or infinity in one and not (the same) in the other always fails, whatever atol/rtol.
//! Errors are computed in f64, so the comparison itself adds no rounding.

use std::fmt;

/// What the relative part of a tolerance is relative to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Each element's own reference value: s_i = |want_i|.
    Element,
    /// The largest finite reference value of the tensor: s_i = max_j |want_j|.
    TensorMax,
}

/// Absolute and relative tolerance of one comparison (formula: module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Absolute part, in the values' own units.
    pub atol: f32,
    /// Relative part, a multiple of the scale s_i.
    pub rtol: f32,
    /// What s_i is.
    pub scale: Scale,
}

/// f32 unit roundoff (half an ulp of 1.0).
pub const U: f32 = f32::EPSILON / 2.0;

impl Tolerance {
    /// |got_i - want_i| <= atol + rtol * |want_i|.
    pub const fn new(atol: f32, rtol: f32) -> Self {
        Self { atol, rtol, scale: Scale::Element }
    }

    /// |got_i - want_i| <= atol + rtol * max_j |want_j|: for reference case files (module docs).
    pub const fn relative_to_max(atol: f32, rtol: f32) -> Self {
        Self { atol, rtol, scale: Scale::TensorMax }
    }

    /// The reference backend against itself: the same code on the same inputs must give the
    /// same bits. Any difference means nondeterminism or state carried from one call to the next.
    pub const IDENTICAL: Tolerance = Tolerance::new(0.0, 0.0);

    /// Ops whose every output is one correctly rounded f32 operation (add, mul, scale) or a copy
    /// (ReLU): Vulkan/Metal/DX12 round these exactly as the CPU does. One ulp of slack covers
    /// drivers that flush denormals.
    pub const EXACT: Tolerance = Tolerance::new(0.0, f32::EPSILON);

    /// A sum whose longest chain of dependent f32 additions is `depth`, over values whose
    /// squares sum to `sumsq`. Each addition on the chain rounds by at most U times the running
    /// partial; for zero-mean random inputs a partial is about sqrt(sumsq) in size, so the error
    /// is at most about depth * U * sqrt(sumsq) — doubled for margin. A dropped or doubled
    /// element (an error of order one value) is far above this.
    pub fn sum(depth: usize, sumsq: f64) -> Self {
        Self::new(2.0 * depth as f32 * U * (sumsq.sqrt() as f32).max(1.0), 4.0 * U)
    }

    /// A dot product of length k of values in [-1, 1] (matmul): a chain of k fused multiply-adds
    /// whose partials are about sqrt(k/9) in size (E[(ab)^2] = 1/9): error <= k * U * sqrt(k)/3;
    /// with alpha/beta scaling and a margin of 2 we allow 2 * k^1.5 * U / 3 * max(|alpha|, 1)
    /// plus a few ulps for the beta term.
    pub fn dot(k: usize, alpha: f32) -> Self {
        let k = k.max(1) as f32;
        Self::new(2.0 * k * k.sqrt() * U / 3.0 * alpha.abs().max(1.0) + 4.0 * U, 8.0 * U)
    }
}

impl Tolerance {
    /// Parameters after `steps` optimizer updates, for parameters and gradients of order one.
    /// One update is a handful of f32 operations, each within 3 ulp on a GPU (sqrt and
    /// division are the loosest in Vulkan/Metal), plus the rounding of p - update: about 8 ulp
    /// of order-one values per step, carried forward through the state. Doubled: 16 ulp/step.
    pub fn optimizer(steps: usize) -> Self {
        let e = 16.0 * steps as f32 * U;
        Self::new(e, e)
    }

    /// Optimizer *updates* (`p[t] - p[t-1]`) of a reference case file, whose parameters are at
    /// most `max_param` in size. An update is of order lr (1e-3) while the parameters are of
    /// order one, so comparing parameters with an absolute tolerance lets a wrong rule pass
    /// (a weight decay ignored changes an update by lr * wd * p = 1e-5). Updates are compared
    /// with the tensor-max rule instead:
    /// - rtol: the file's own relative tolerance, now relative to the largest update;
    /// - atol: the floor no f32 implementation can beat. Each stored parameter is rounded to
    ///   f32 (at most U * |p|); an update is a difference of two of them, on both sides (the
    ///   reference may be f32 too): 4 U max|p|; doubled for margin: 8 U max|p|.
    pub fn updates(rtol: f32, max_param: f64) -> Self {
        Self::relative_to_max(8.0 * U * max_param as f32, rtol)
    }
}

impl Tolerance {
    /// Batch norm over `n` images of `plane` values a channel. Mean and variance come from
    /// per-channel reductions whose chains are n * ceil(plane/256) + 8 additions long (see
    /// shaders/channel.wgsl), so they carry a relative
    /// error of about that many ulps, and so do y = x_hat * gamma + beta and the gradients
    /// (margin 8). dgamma and dbeta are sums of order sqrt(n * plane): the relative part
    /// covers them; y and dx are of order a few units: the absolute part (x4) covers them.
    /// The eval-mode backward has the same reduction chains for dgamma and dbeta (one more
    /// rounding, the division by sqrt) and a dx of three roundings: the same bound holds.
    pub fn batch_norm(n: usize, plane: usize) -> Self {
        let rel = 8.0 * (n * plane.div_ceil(256) + 8) as f32 * U;
        Self::new(4.0 * rel, rel)
    }
}

impl Tolerance {
    /// Softmax cross-entropy over `c` classes with logits in [-4, 4]. GPU exp and log are
    /// allowed a few ulps (Vulkan: exp within 3 + 2|x| ulp, log within 3 ulp or 2^-21
    /// absolute): with |x| <= 8, about 19 ulp on each exponential, plus log2(c) roundings in
    /// the row sum; the loss (a few units) and the gradient inherit that. 64 ulp, scaled by
    /// log2(c), covers it with margin.
    pub fn softmax(c: usize) -> Self {
        let e = 64.0 * U * (c.max(2) as f32).log2();
        Self::new(e, e)
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "atol {:.1e} rtol {:.1e}", self.atol, self.rtol)?;
        if self.scale == Scale::TensorMax {
            write!(f, " (of max |want|)")?;
        }
        Ok(())
    }
}

/// The outcome of comparing two tensors.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// Largest |got_i - want_i| over finite pairs; infinite when a NaN or infinity disagrees
    /// or the lengths differ.
    pub max_abs: f64,
    /// Largest |got_i - want_i| / s_i, with s_i the tolerance's scale (module docs).
    pub max_rel: f64,
    /// The bound atol + rtol * s_i at the element where |got - want| is largest.
    pub allowed: f64,
    /// First failing element: (index, got, want).
    pub first_bad: Option<(usize, f64, f64)>,
    /// Number of failing elements (the longer length when the lengths differ).
    pub failures: usize,
}

impl Comparison {
    /// Whether no element failed.
    pub fn passed(&self) -> bool {
        self.failures == 0
    }
}

impl Tolerance {
    /// The largest error allowed for an element whose scale (module docs) is `s`.
    pub fn bound(&self, s: f64) -> f64 {
        self.atol as f64 + self.rtol as f64 * s
    }

    /// Compares element by element (f32 or f64 on either side).
    pub fn compare<G: Copy + Into<f64>, W: Copy + Into<f64>>(&self, got: &[G], want: &[W]) -> Comparison {
        let mut c = Comparison { max_abs: 0.0, max_rel: 0.0, allowed: self.bound(0.0), first_bad: None, failures: 0 };
        if got.len() != want.len() {
            c.failures = got.len().max(want.len());
            c.first_bad = Some((got.len().min(want.len()), f64::NAN, f64::NAN));
            c.max_abs = f64::INFINITY;
            return c;
        }
        let tensor_max = want.iter().map(|&w| w.into().abs()).filter(|w| w.is_finite()).fold(0.0, f64::max);
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let (g, w): (f64, f64) = (g.into(), w.into());
            let ok = if g.is_finite() && w.is_finite() {
                let err = (g - w).abs();
                let s = match self.scale {
                    Scale::Element => w.abs(),
                    Scale::TensorMax => tensor_max,
                };
                if err > c.max_abs || i == 0 {
                    c.max_abs = c.max_abs.max(err);
                    c.allowed = self.bound(s);
                }
                if s != 0.0 {
                    c.max_rel = c.max_rel.max(err / s);
                }
                err <= self.bound(s)
            } else {
                // Both NaN, or the same infinity.
                (g.is_nan() && w.is_nan()) || g == w
            };
            if !ok {
                if !(g.is_finite() && w.is_finite()) {
                    c.max_abs = f64::INFINITY;
                }
                c.failures += 1;
                c.first_bad.get_or_insert((i, g, w));
            }
        }
        c
    }
}
