//! Matrix products `c = alpha * op(a) @ op(b) + beta * c`, rank 2 or batched rank 3.
//! Kernels: shaders/matmul_v*.wgsl; twin: src/cpu/matmul.rs.

use crate::error::shape_err;
use crate::tensor::{checked_numel, ShapeFmt};
use crate::Result;

/// Options of a matrix product `c = alpha * op(a) @ op(b) + beta * c`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatmulSpec {
    /// op(a) = aᵀ: `a` is stored [K, M] instead of [M, K].
    pub trans_a: bool,
    /// op(b) = bᵀ: `b` is stored [N, K] instead of [K, N].
    pub trans_b: bool,
    /// Scale of the product.
    pub alpha: f32,
    /// 0 overwrites `c` (which is then never read); 1 accumulates into it.
    pub beta: f32,
}

impl Default for MatmulSpec {
    fn default() -> Self {
        Self { trans_a: false, trans_b: false, alpha: 1.0, beta: 0.0 }
    }
}

impl MatmulSpec {
    /// A plain product with the given operands transposed.
    pub fn trans(trans_a: bool, trans_b: bool) -> Self {
        Self { trans_a, trans_b, ..Self::default() }
    }
}

/// Sizes of a (batched) matmul, resolved from the operand shapes. Strides are in elements
/// between consecutive batch entries; 0 means the operand is shared by every entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulDims {
    /// Batch entries (1 for rank-2 products).
    pub batch: usize,
    /// Rows of op(a) and c.
    pub m: usize,
    /// Columns of op(b) and c.
    pub n: usize,
    /// The inner dimension.
    pub k: usize,
    /// Elements between batch entries of a (0: shared).
    pub stride_a: usize,
    /// Elements between batch entries of b (0: shared).
    pub stride_b: usize,
    /// Elements between batch entries of c.
    pub stride_c: usize,
}

/// Splits a rank-2 or rank-3 shape into (batch, rows, cols, is_batched).
fn mat(shape: &[usize]) -> Option<(usize, usize, usize, bool)> {
    match *shape {
        [r, c] => Some((1, r, c, false)),
        [b, r, c] => Some((b, r, c, true)),
        _ => None,
    }
}

/// Resolves and checks the sizes of `c = op(a) @ op(b)`.
pub fn matmul_dims(a: &[usize], b: &[usize], c: &[usize], spec: MatmulSpec) -> Result<MatmulDims> {
    let describe = || {
        format!(
            "a {}{} @ b {}{} -> c {}",
            ShapeFmt(a),
            if spec.trans_a { "ᵀ" } else { "" },
            ShapeFmt(b),
            if spec.trans_b { "ᵀ" } else { "" },
            ShapeFmt(c)
        )
    };
    let (Some((ba, ra, ca, a_batched)), Some((bb, rb, cb, b_batched)), Some((bc, m_c, n_c, c_batched))) = (mat(a), mat(b), mat(c)) else {
        return Err(shape_err("matmul", format!("{}: operands must have rank 2 or 3", describe())));
    };
    if [a, b, c].iter().any(|s| checked_numel(s).is_none()) {
        return Err(shape_err("matmul", format!("{}: an operand has more elements than memory can hold", describe())));
    }
    let (m, k) = if spec.trans_a { (ca, ra) } else { (ra, ca) };
    let (k2, n) = if spec.trans_b { (cb, rb) } else { (rb, cb) };
    if k != k2 {
        return Err(shape_err("matmul", format!("{}: inner dimensions differ ({k} vs {k2})", describe())));
    }
    if (m, n) != (m_c, n_c) {
        return Err(shape_err("matmul", format!("{}: c must be [{m}, {n}]", describe())));
    }
    let batch = bc;
    let batched_ok = |bx: usize, is_batched: bool| !is_batched || bx == batch;
    if !batched_ok(ba, a_batched) || !batched_ok(bb, b_batched) || ((a_batched || b_batched) && !c_batched) {
        return Err(shape_err("matmul", format!("{}: batch sizes differ", describe())));
    }
    if k == 0 && m * n != 0 {
        // k == 0 is a valid empty sum, but wgtrain never needs it and GPUs disagree on it.
        return Err(shape_err("matmul", format!("{}: inner dimension is 0", describe())));
    }
    Ok(MatmulDims {
        batch,
        m,
        n,
        k,
        stride_a: if a_batched { m * k } else { 0 },
        stride_b: if b_batched { k * n } else { 0 },
        stride_c: m * n,
    })
}
