//! 2D convolution (PyTorch's Conv2d: stride, padding, dilation, groups), forward and both
//! backward passes. Kernels: shaders/im2col.wgsl, col2im.wgsl and the matmuls (host side
//! src/gpu/conv2d.rs); twin: src/cpu/conv2d.rs (direct loops).

use super::expect_shape;
use crate::error::shape_err;
use crate::tensor::{checked_numel, ShapeFmt};
use crate::Result;

/// Options of a 2D convolution (PyTorch's Conv2d): `[h, w]` pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dSpec {
    /// Step of the window, [h, w].
    pub stride: [usize; 2],
    /// Zeros added on each side, [h, w].
    pub padding: [usize; 2],
    /// Spacing of the kernel taps, [h, w].
    pub dilation: [usize; 2],
    /// Channel groups (1: dense; C: depthwise).
    pub groups: usize,
}

impl Default for Conv2dSpec {
    fn default() -> Self {
        Self { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 }
    }
}

/// Every size of a convolution, resolved from x [N, C, H, W] and w [K, C/groups, KH, KW].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // the letters are the ones in the shapes above
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
    /// Channel groups.
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
    /// [N, C, H, W]
    pub fn x_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }
    /// [K, C/groups, KH, KW]
    pub fn w_shape(&self) -> [usize; 4] {
        [self.k, self.cg(), self.kh, self.kw]
    }
    /// [N, K, OH, OW]
    pub fn y_shape(&self) -> [usize; 4] {
        [self.n, self.k, self.oh, self.ow]
    }
    /// Multiply-accumulates of the forward pass.
    pub fn macs(&self) -> usize {
        self.n * self.k * self.p() * self.patch()
    }
}

/// Resolves and checks a convolution's sizes from x and w; `op` names the caller in errors.
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
    if checked_numel(x).is_none() || checked_numel(w).is_none() {
        return Err(shape_err(op, format!("x {} or weight {} has more elements than memory can hold", ShapeFmt(x), ShapeFmt(w))));
    }
    // In u128: padding and dilation come from model files and may be anything.
    let out = |size: usize, pad: usize, dil: usize, kern: usize, stride: usize| -> Option<u128> {
        let span = dil as u128 * (kern as u128 - 1) + 1;
        (size as u128 + 2 * pad as u128).checked_sub(span).map(|v| v / stride as u128 + 1)
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
    let (Ok(oh), Ok(ow)) = (usize::try_from(oh), usize::try_from(ow)) else {
        return Err(shape_err(op, format!("output {oh}x{ow} (padding {:?}) is larger than memory can hold", spec.padding)));
    };
    if checked_numel(&[n, k, oh, ow]).is_none() {
        return Err(shape_err(
            op,
            format!("output [{n}, {k}, {oh}, {ow}] (padding {:?}) has more elements than memory can hold", spec.padding),
        ));
    }
    Ok(ConvDims { n, c, h, w: wd, k, kh, kw, oh, ow, spec })
}

/// Forward: x [N, C, H, W], w [K, C/g, KH, KW], optional bias \[K\], y [N, K, OH, OW].
pub fn check_forward(x: &[usize], w: &[usize], bias: Option<&[usize]>, y: &[usize], spec: Conv2dSpec) -> Result<ConvDims> {
    let d = conv2d_dims("conv2d", x, w, spec)?;
    expect_shape("conv2d", "y", y, &d.y_shape())?;
    if let Some(b) = bias {
        expect_shape("conv2d", "bias", b, &[d.k])?;
    }
    Ok(d)
}

/// Backward to the input: dy [N, K, OH, OW], w, dx [N, C, H, W].
pub fn check_backward_data(dy: &[usize], w: &[usize], dx: &[usize], spec: Conv2dSpec) -> Result<ConvDims> {
    let d = conv2d_dims("conv2d_backward_data", dx, w, spec)?;
    expect_shape("conv2d_backward_data", "dy", dy, &d.y_shape())?;
    Ok(d)
}

/// Backward to the weights: x, dy [N, K, OH, OW], dw [K, C/g, KH, KW].
pub fn check_backward_filter(x: &[usize], dy: &[usize], dw: &[usize], spec: Conv2dSpec) -> Result<ConvDims> {
    let d = conv2d_dims("conv2d_backward_filter", x, dw, spec)?;
    expect_shape("conv2d_backward_filter", "dy", dy, &d.y_shape())?;
    Ok(d)
}
