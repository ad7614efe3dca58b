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
        crate::Error::Shape { op, detail } => {
            crate::Error::Shape { op, detail: format!("{detail} (numbers of elements; {} keeps {used} state tensors)", opt.kind.name()) }
        }
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

/// Options of a 2D convolution (PyTorch's Conv2d): `[h, w]` pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dSpec {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl Default for Conv2dSpec {
    fn default() -> Self {
        Self { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 }
    }
}

/// Every size of a convolution, resolved from x [N, C, H, W] and w [K, C/groups, KH, KW].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvDims {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub kh: usize,
    pub kw: usize,
    pub oh: usize,
    pub ow: usize,
    pub spec: Conv2dSpec,
}

impl ConvDims {
    pub fn groups(&self) -> usize {
        self.spec.groups
    }
    /// Input channels per group.
    pub fn cg(&self) -> usize {
        self.c / self.spec.groups
    }
    /// Output channels per group.
    pub fn kg(&self) -> usize {
        self.k / self.spec.groups
    }
    /// Output positions per image.
    pub fn p(&self) -> usize {
        self.oh * self.ow
    }
    /// Rows of the im2col matrix of one group: Cg * KH * KW.
    pub fn patch(&self) -> usize {
        self.cg() * self.kh * self.kw
    }
    /// The patch rounded up to a multiple of 4 (zero rows in the column matrix), so the GEMMs
    /// get aligned operands.
    pub fn patch_pad(&self) -> usize {
        self.patch().next_multiple_of(4)
    }
    /// A 1x1 convolution with stride 1 and no padding is a plain matmul over NCHW.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.spec.stride == [1, 1] && self.spec.padding == [0, 0]
    }
    pub fn x_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }
    pub fn w_shape(&self) -> [usize; 4] {
        [self.k, self.cg(), self.kh, self.kw]
    }
    pub fn y_shape(&self) -> [usize; 4] {
        [self.n, self.k, self.oh, self.ow]
    }
    /// Multiply-accumulates of the forward pass.
    pub fn macs(&self) -> usize {
        self.n * self.k * self.p() * self.patch()
    }
}

/// Resolves and checks a convolution's sizes; `op` names the caller in errors.
pub fn conv2d_dims(op: &'static str, x: &[usize], w: &[usize], spec: Conv2dSpec) -> Result<ConvDims> {
    let ([n, c, h, wd], [k, cg, kh, kw]) = (x, w) else {
        return Err(shape_err(
            op,
            format!("x {} and weight {} must both have rank 4 (x [N, C, H, W], weight [K, C/groups, KH, KW])", ShapeFmt(x), ShapeFmt(w)),
        ));
    };
    let (n, c, h, wd, k, cg, kh, kw) = (*n, *c, *h, *wd, *k, *cg, *kh, *kw);
    let g = spec.groups;
    if g == 0 || c % g != 0 || k % g != 0 {
        return Err(shape_err(op, format!("groups {g} must divide both in-channels {c} and out-channels {k}")));
    }
    if cg != c / g {
        return Err(shape_err(
            op,
            format!("x {} with groups {g} needs weight [{k}, {}, {kh}, {kw}], got {}", ShapeFmt(x), c / g, ShapeFmt(w)),
        ));
    }
    if spec.stride.contains(&0) || spec.dilation.contains(&0) || kh == 0 || kw == 0 {
        return Err(shape_err(
            op,
            format!("stride {:?}, dilation {:?} and kernel [{kh}, {kw}] must be positive", spec.stride, spec.dilation),
        ));
    }
    let out = |size: usize, pad: usize, dil: usize, kern: usize, stride: usize| -> Option<usize> {
        let span = dil * (kern - 1) + 1;
        (size + 2 * pad).checked_sub(span).map(|v| v / stride + 1)
    };
    let (Some(oh), Some(ow)) =
        (out(h, spec.padding[0], spec.dilation[0], kh, spec.stride[0]), out(wd, spec.padding[1], spec.dilation[1], kw, spec.stride[1]))
    else {
        return Err(shape_err(
            op,
            format!(
                "kernel [{kh}, {kw}] with dilation {:?} does not fit the padded input {}x{} (padding {:?})",
                spec.dilation, h, wd, spec.padding
            ),
        ));
    };
    Ok(ConvDims { n, c, h, w: wd, k, kh, kw, oh, ow, spec })
}

/// Checks that `t` has the shape `want`.
pub fn expect_shape(op: &'static str, name: &str, t: &[usize], want: &[usize]) -> Result<()> {
    if t != want {
        return Err(shape_err(op, format!("{name} is {}, expected {}", ShapeFmt(t), ShapeFmt(want))));
    }
    Ok(())
}

/// The activation fused into a bias add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Identity,
    Relu,
}

/// A tensor [N, C, ...] seen as [N, C, P] for per-channel work (channel = dim 1).
pub fn channels(op: &'static str, t: &[usize], c_len: usize) -> Result<(usize, usize, usize)> {
    if t.len() < 2 || t[1] != c_len {
        return Err(shape_err(op, format!("tensor {} needs channels in dim 1 matching [{c_len}]", ShapeFmt(t))));
    }
    Ok((t[0], t[1], t[2..].iter().product()))
}

/// Checks the three tensors of a convolution call; returns its sizes.
pub fn conv2d_check(op: &'static str, x: &[usize], w: &[usize], y: &[usize], spec: Conv2dSpec) -> Result<ConvDims> {
    let d = conv2d_dims(op, x, w, spec)?;
    expect_shape(op, "y (dy)", y, &d.y_shape())?;
    Ok(d)
}

/// Options of max_pool2d / avg_pool2d (PyTorch's, with ceil_mode = false, dilation 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolSpec {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    /// avg_pool2d: count padded positions in the divisor (PyTorch's default: true).
    pub count_include_pad: bool,
}

impl PoolSpec {
    /// A k x k window moved by k, no padding.
    pub fn square(k: usize) -> Self {
        Self { kernel: [k, k], stride: [k, k], padding: [0, 0], count_include_pad: true }
    }
}

/// Sizes of a pooling: x [N, C, H, W] seen as N*C planes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolDims {
    pub n: usize,
    pub c: usize,
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub count_include_pad: bool,
}

impl PoolDims {
    pub fn y_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.oh, self.ow]
    }
}

pub fn pool_dims(op: &'static str, x: &[usize], spec: PoolSpec) -> Result<PoolDims> {
    let [n, c, h, w] = *x else {
        return Err(shape_err(op, format!("x {} must be [N, C, H, W]", ShapeFmt(x))));
    };
    let ([kh, kw], [sh, sw], [ph, pw]) = (spec.kernel, spec.stride, spec.padding);
    if kh == 0 || kw == 0 || sh == 0 || sw == 0 {
        return Err(shape_err(op, format!("kernel {:?} and stride {:?} must be positive", spec.kernel, spec.stride)));
    }
    if 2 * ph > kh || 2 * pw > kw {
        return Err(shape_err(op, format!("padding {:?} must be at most half the kernel {:?}", spec.padding, spec.kernel)));
    }
    if h + 2 * ph < kh || w + 2 * pw < kw {
        return Err(shape_err(op, format!("kernel {:?} does not fit the padded input {h}x{w} (padding {:?})", spec.kernel, spec.padding)));
    }
    let (oh, ow) = ((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1);
    Ok(PoolDims { n, c, planes: n * c, h, w, oh, ow, kh, kw, sh, sw, ph, pw, count_include_pad: spec.count_include_pad })
}

/// Pooling's sizes from x (or dx) [N, C, H, W], checking that each of `outs` has the output
/// shape.
pub fn pool_check(op: &'static str, x: &[usize], outs: &[(&str, &[usize])], spec: PoolSpec) -> Result<PoolDims> {
    let d = pool_dims(op, x, spec)?;
    for (name, s) in outs {
        expect_shape(op, name, s, &d.y_shape())?;
    }
    Ok(d)
}

/// Global average pooling: x [N, C, H, W] -> y [N, C, 1, 1] (or [N, C]).
pub fn global_pool_dims(op: &'static str, x: &[usize], y: &[usize]) -> Result<(usize, usize)> {
    let [n, c, h, w] = *x else {
        return Err(shape_err(op, format!("x {} must be [N, C, H, W]", ShapeFmt(x))));
    };
    if y != [n, c, 1, 1] && y != [n, c] {
        return Err(shape_err(op, format!("y is {}, expected [{n}, {c}, 1, 1] or [{n}, {c}]", ShapeFmt(y))));
    }
    Ok((n * c, h * w))
}

/// Batch norm: x and y [N, C, ...] alike, every per-channel tensor [C]. Returns (N, C, P).
pub fn batch_norm_check(
    op: &'static str,
    x: &[usize],
    y: &[usize],
    per_channel: &[(&str, &[usize])],
    training: bool,
) -> Result<(usize, usize, usize)> {
    if x.len() < 2 {
        return Err(shape_err(op, format!("x {} must be [N, C, ...]", ShapeFmt(x))));
    }
    expect_shape(op, "y (dx)", y, x)?;
    let (n, c, p) = (x[0], x[1], x[2..].iter().product::<usize>());
    for (name, s) in per_channel {
        expect_shape(op, name, s, &[c])?;
    }
    if training && n * p < 2 {
        return Err(shape_err(op, format!("x {}: training needs more than one value per channel", ShapeFmt(x))));
    }
    Ok((n, c, p))
}

/// Cross-entropy: logits [N, C], hard labels [N] (integers in [0, C), stored as f32) or soft
/// targets [N, C], loss [1], grad [N, C]. Returns (N, C).
pub fn cross_entropy_check(
    logits: &[usize],
    target: &[usize],
    soft: bool,
    smoothing: f32,
    loss: &[usize],
    grad: &[usize],
) -> Result<(usize, usize)> {
    let op = "cross_entropy";
    let [n, c] = *logits else {
        return Err(shape_err(op, format!("logits {} must be [N, C]", ShapeFmt(logits))));
    };
    if c == 0 {
        return Err(shape_err(op, "logits have no classes".to_string()));
    }
    if soft {
        expect_shape(op, "target_probs", target, &[n, c])?;
    } else {
        expect_shape(op, "target", target, &[n])?;
    }
    expect_shape(op, "grad_logits", grad, logits)?;
    if loss.iter().product::<usize>() != 1 {
        return Err(shape_err(op, format!("loss {} must have one element", ShapeFmt(loss))));
    }
    if !(0.0..=1.0).contains(&smoothing) {
        return Err(crate::Error::Invalid(format!("cross_entropy: label_smoothing is {smoothing}, expected a value in [0, 1]")));
    }
    Ok((n, c))
}

/// Labels must be integers in [0, classes).
pub fn check_labels(labels: &[f32], classes: usize) -> Result<()> {
    if let Some((i, v)) = labels.iter().enumerate().find(|(_, &v)| !(v >= 0.0 && v.fract() == 0.0 && (v as usize) < classes)) {
        return Err(crate::Error::Invalid(format!("label {i} is {v}, expected a class index in [0, {classes})")));
    }
    Ok(())
}

/// Row-wise ops on x [N, C] with one output per row. Returns (N, C).
pub fn rows_check(op: &'static str, x: &[usize], out: &[usize]) -> Result<(usize, usize)> {
    let [n, c] = *x else {
        return Err(shape_err(op, format!("x {} must be [N, C]", ShapeFmt(x))));
    };
    expect_shape(op, "out", out, &[n])?;
    Ok((n, c))
}

/// Linear: x [N, in], w [out, in], y [N, out], bias [out].
pub fn linear_check(x: &[usize], w: &[usize], y: &[usize], bias: Option<&[usize]>) -> Result<()> {
    let op = "linear";
    let ([n, i], [o, i2]) = (x, w) else {
        return Err(shape_err(op, format!("x {} must be [N, in] and weight {} [out, in]", ShapeFmt(x), ShapeFmt(w))));
    };
    if i != i2 {
        return Err(shape_err(op, format!("x {} has {i} features, weight {} expects {i2}", ShapeFmt(x), ShapeFmt(w))));
    }
    expect_shape(op, "y", y, &[*n, *o])?;
    if let Some(b) = bias {
        expect_shape(op, "bias", b, &[*o])?;
    }
    Ok(())
}

/// Lists that must pair up element by element.
pub fn same_len(op: &'static str, lens: &[usize]) -> Result<()> {
    if lens.windows(2).any(|w| w[0] != w[1]) {
        return Err(shape_err(op, format!("tensor lists have different lengths {lens:?}")));
    }
    Ok(())
}
