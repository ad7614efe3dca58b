//! Batch norm 2d: training forward (batch statistics, running statistics updated as PyTorch
//! does), eval forward (running statistics) and backward. Kernels: shaders/bn_stats.wgsl,
//! batch_norm.wgsl and the per-channel reductions of channel.wgsl (host side
//! src/gpu/batch_norm.rs); twin: src/cpu/batch_norm.rs.

use super::expect_shape;
use super::Activation;
use crate::error::shape_err;
use crate::tensor::{checked_numel, ShapeFmt};
use crate::Result;

/// x [N, C, ...] seen as N images of C channels of P values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchNormDims {
    /// Images.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Values per channel and image (H * W).
    pub p: usize,
    /// What the forward's output passes through last (identity unless a ReLU was fused in).
    pub act: Activation,
}

/// x and y (or dx) [N, C, ...] alike, every per-channel tensor \[C\]; training needs more than
/// one value per channel (the variance of one value is undefined, as in PyTorch).
pub fn check(op: &'static str, x: &[usize], y: &[usize], per_channel: &[(&str, &[usize])], training: bool) -> Result<BatchNormDims> {
    if x.len() < 2 {
        return Err(shape_err(op, format!("x {} must be [N, C, ...]", ShapeFmt(x))));
    }
    expect_shape(op, "y (dx)", y, x)?;
    if checked_numel(x).is_none() {
        return Err(shape_err(op, format!("x {} has more elements than memory can hold", ShapeFmt(x))));
    }
    let (n, c, p) = (x[0], x[1], x[2..].iter().product::<usize>());
    for (name, s) in per_channel {
        expect_shape(op, name, s, &[c])?;
    }
    if training && n * p < 2 {
        return Err(shape_err(op, format!("x {}: training needs more than one value per channel", ShapeFmt(x))));
    }
    Ok(BatchNormDims { n, c, p, act: Activation::Identity })
}
