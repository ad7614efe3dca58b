//! Element-wise and per-channel ops: add, mul, scale, copy, ReLU, bias + activation and its
//! backward, per-channel sums. Kernels: shaders/elementwise.wgsl, relu.wgsl, bias_act.wgsl,
//! channel.wgsl; twins: src/cpu/elementwise.rs, relu.rs, channel.rs.

use crate::error::shape_err;
use crate::tensor::ShapeFmt;
use crate::Result;

/// The activation fused into a bias add or a batch norm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// No activation: y = y + bias.
    Identity,
    /// y = max(y + bias, 0).
    Relu,
}

impl Activation {
    /// ReLU when `relu` is set (a ReLU fused into the op), else the identity.
    pub fn relu_if(relu: bool) -> Self {
        if relu {
            Activation::Relu
        } else {
            Activation::Identity
        }
    }
}

/// A tensor [N, C, ...] seen as N x C planes of P values, for per-channel work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelDims {
    /// Leading dimension.
    pub n: usize,
    /// Channels (dim 1).
    pub c: usize,
    /// Values per channel and image.
    pub p: usize,
}

/// Checks that `t` [N, C, ...] has `c_len` channels in dim 1.
pub fn channels(op: &'static str, t: &[usize], c_len: usize) -> Result<ChannelDims> {
    if t.len() < 2 || t[1] != c_len {
        return Err(shape_err(op, format!("tensor {} needs channels in dim 1 matching [{c_len}]", ShapeFmt(t))));
    }
    super::numel(op, "tensor", t)?;
    Ok(ChannelDims { n: t[0], c: t[1], p: t[2..].iter().product() })
}
