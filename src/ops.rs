//! Shape rules of every op, shared by both backends so they accept and reject the same inputs.

use crate::error::shape_err;
use crate::tensor::ShapeFmt;
use crate::Result;

/// Options of a matrix product `c = alpha * op(a) @ op(b) + beta * c`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatmulSpec {
    /// op(a) = aᵀ: `a` is stored [K, M] instead of [M, K].
    pub trans_a: bool,
    /// op(b) = bᵀ: `b` is stored [N, K] instead of [K, N].
    pub trans_b: bool,
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
    pub fn trans(trans_a: bool, trans_b: bool) -> Self {
        Self { trans_a, trans_b, ..Self::default() }
    }
}

/// Sizes of a (batched) matmul, resolved from the operand shapes. Strides are in elements
/// between consecutive batch entries; 0 means the operand is shared by every entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulDims {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub stride_a: usize,
    pub stride_b: usize,
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
    if m * n * k == 0 && m * n != 0 {
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

/// Element-wise ops need equal shapes.
pub fn same_shape(op: &'static str, shapes: &[(&str, &[usize])]) -> Result<usize> {
    let (_, first) = shapes[0];
    if shapes.iter().any(|(_, s)| *s != first) {
        let list: Vec<String> = shapes.iter().map(|(name, s)| format!("{name} {}", ShapeFmt(s))).collect();
        return Err(shape_err(op, format!("{} must all have the same shape", list.join(", "))));
    }
    Ok(first.iter().product())
}

/// A reduction to one value needs a one-element output.
pub fn scalar_out(op: &'static str, x: &[usize], out: &[usize]) -> Result<usize> {
    if out.iter().product::<usize>() != 1 {
        return Err(shape_err(op, format!("x {} -> out {}: out must have exactly one element", ShapeFmt(x), ShapeFmt(out))));
    }
    Ok(x.iter().product())
}

/// Optimizer arenas: the gradient as long as the parameters, and each state tensor the
/// optimizer uses too. Returns the number of parameters.
pub fn optimizer_shapes(opt: &crate::optim::Optimizer, param: &[usize], grad: &[usize], s1: &[usize], s2: &[usize]) -> Result<usize> {
    opt.validate()?;
    let n: usize = param.iter().product();
    let used = opt.state_tensors();
    let mut list: Vec<(&str, &[usize])> = vec![("param", param), ("grad", grad)];
    if used >= 1 {
        list.push(("state1", s1));
    }
    if used >= 2 {
        list.push(("state2", s2));
    }
    let flat: Vec<(&str, [usize; 1])> = list.iter().map(|(name, s)| (*name, [s.iter().product::<usize>()])).collect();
    let views: Vec<(&str, &[usize])> = flat.iter().map(|(name, s)| (*name, &s[..])).collect();
    same_shape("optimizer_step", &views).map_err(|e| match e {
        crate::Error::Shape { op, detail } => crate::Error::Shape { op, detail: format!("{detail} (numbers of elements; {} keeps {used} state tensors)", opt.kind.name()) },
        e => e,
    })?;
    Ok(n)
}

/// Everything that defines a dropout mask: drop probability p, and the (seed, step) it is
/// drawn for. Both backends derive the same per-step keys from here.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutMask {
    /// Element i is kept when hash(i) >= threshold = p * 2^32.
    pub threshold: u32,
    /// 1 / (1 - p); 0 when p == 1 (everything dropped).
    pub scale: f32,
    pub key1: u32,
    pub key2: u32,
}

impl DropoutMask {
    pub fn new(p: f32, seed: u64, step: u64) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(crate::Error::Invalid(format!("dropout: p is {p}, expected a probability in [0, 1]")));
        }
        use crate::cpu::dropout::mix;
        let threshold = ((p as f64) * 4_294_967_296.0).min(u32::MAX as f64) as u32;
        let scale = if p >= 1.0 { 0.0 } else { 1.0 / (1.0 - p) };
        let k = mix(seed as u32 ^ mix((seed >> 32) as u32 ^ mix(step as u32 ^ mix((step >> 32) as u32))));
        Ok(Self { threshold, scale, key1: k, key2: mix(k ^ 0x9e37_79b9) })
    }
}
