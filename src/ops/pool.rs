//! Max, average and global average pooling, forward and backward.
//! Kernels: shaders/pool.wgsl (host side src/gpu/pool.rs); twin: src/cpu/pool.rs.

use super::expect_shape;
use crate::error::shape_err;
use crate::tensor::{checked_numel, ShapeFmt};
use crate::Result;

/// Options of max_pool2d / avg_pool2d (PyTorch's, with ceil_mode = false, dilation 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolSpec {
    /// Window size, [h, w].
    pub kernel: [usize; 2],
    /// Window step, [h, w].
    pub stride: [usize; 2],
    /// Implicit padding on each side, [h, w] (at most half the kernel).
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

/// Sizes of a pooling: x [N, C, H, W] seen as N*C planes of H x W, output OH x OW.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // the letters are the ones above; kh/kw, sh/sw, ph/pw: kernel, stride, padding
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
    /// [N, C, OH, OW]
    pub fn y_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.oh, self.ow]
    }
}

/// Resolves a pooling's sizes from x [N, C, H, W].
pub fn pool_dims(op: &'static str, x: &[usize], spec: PoolSpec) -> Result<PoolDims> {
    let [n, c, h, w] = *x else {
        return Err(shape_err(op, format!("x {} must be [N, C, H, W]", ShapeFmt(x))));
    };
    let ([kh, kw], [sh, sw], [ph, pw]) = (spec.kernel, spec.stride, spec.padding);
    if kh == 0 || kw == 0 || sh == 0 || sw == 0 {
        return Err(shape_err(op, format!("kernel {:?} and stride {:?} must be positive", spec.kernel, spec.stride)));
    }
    if ph > kh / 2 || pw > kw / 2 {
        return Err(shape_err(op, format!("padding {:?} must be at most half the kernel {:?}", spec.padding, spec.kernel)));
    }
    if checked_numel(x).is_none() {
        return Err(shape_err(op, format!("x {} has more elements than memory can hold", ShapeFmt(x))));
    }
    // In u128: the padded side may pass usize::MAX.
    let (h2, w2) = (h as u128 + 2 * ph as u128, w as u128 + 2 * pw as u128);
    if h2 < kh as u128 || w2 < kw as u128 {
        return Err(shape_err(op, format!("kernel {:?} does not fit the padded input {h}x{w} (padding {:?})", spec.kernel, spec.padding)));
    }
    let (oh, ow) = ((h2 - kh as u128) / sh as u128 + 1, (w2 - kw as u128) / sw as u128 + 1);
    let (Ok(oh), Ok(ow)) = (usize::try_from(oh), usize::try_from(ow)) else {
        return Err(shape_err(op, format!("output {oh}x{ow} is larger than memory can hold")));
    };
    if checked_numel(&[n, c, oh, ow]).is_none() {
        return Err(shape_err(op, format!("output [{n}, {c}, {oh}, {ow}] has more elements than memory can hold")));
    }
    Ok(PoolDims { n, c, planes: n * c, h, w, oh, ow, kh, kw, sh, sw, ph, pw, count_include_pad: spec.count_include_pad })
}

/// Pooling's sizes from x (or dx) [N, C, H, W], checking that each of `outs` (y, dy, the
/// argmax indices) has the output shape.
pub fn check(op: &'static str, x: &[usize], outs: &[(&str, &[usize])], spec: PoolSpec) -> Result<PoolDims> {
    let d = pool_dims(op, x, spec)?;
    for (name, s) in outs {
        expect_shape(op, name, s, &d.y_shape())?;
    }
    Ok(d)
}

/// Sizes of a global average pooling: N*C planes of H*W values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobalPoolDims {
    /// N * C
    pub planes: usize,
    /// H * W
    pub hw: usize,
}

/// Global average pooling: x [N, C, H, W] -> y [N, C, 1, 1] (or [N, C]).
pub fn check_global(op: &'static str, x: &[usize], y: &[usize]) -> Result<GlobalPoolDims> {
    let [n, c, h, w] = *x else {
        return Err(shape_err(op, format!("x {} must be [N, C, H, W]", ShapeFmt(x))));
    };
    super::numel(op, "x", x)?;
    if y != [n, c, 1, 1] && y != [n, c] {
        return Err(shape_err(op, format!("y is {}, expected [{n}, {c}, 1, 1] or [{n}, {c}]", ShapeFmt(y))));
    }
    Ok(GlobalPoolDims { planes: n * c, hw: h * w })
}
