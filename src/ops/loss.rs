//! Softmax cross-entropy (hard labels with label smoothing, or soft target rows), argmax and
//! correct-prediction flags. Kernels: shaders/loss.wgsl (host side src/gpu/loss.rs); twin:
//! src/cpu/loss.rs.

use super::expect_shape;
use crate::error::shape_err;
use crate::tensor::ShapeFmt;
use crate::{Error, Result};

/// Rows and classes of logits [N, C].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrossEntropyDims {
    /// Rows (samples).
    pub n: usize,
    /// Classes.
    pub c: usize,
}

/// Cross-entropy: logits [N, C], hard labels \[N\] (integers in [0, C), stored as f32) or soft
/// targets [N, C], loss \[1\], grad [N, C]; smoothing in [0, 1].
pub fn check_cross_entropy(
    logits: &[usize],
    target: &[usize],
    soft: bool,
    smoothing: f32,
    loss: &[usize],
    grad: &[usize],
) -> Result<CrossEntropyDims> {
    let op = "cross_entropy";
    let [n, c] = *logits else {
        return Err(shape_err(op, format!("logits {} must be [N, C]", ShapeFmt(logits))));
    };
    super::numel(op, "logits", logits)?;
    if c == 0 {
        return Err(shape_err(op, "logits have no classes".to_string()));
    }
    if soft {
        expect_shape(op, "target_probs", target, &[n, c])?;
    } else {
        expect_shape(op, "target", target, &[n])?;
    }
    expect_shape(op, "grad_logits", grad, logits)?;
    if crate::tensor::checked_numel(loss) != Some(1) {
        return Err(shape_err(op, format!("loss {} must have one element", ShapeFmt(loss))));
    }
    if !(0.0..=1.0).contains(&smoothing) {
        return Err(Error::Invalid(format!("cross_entropy: label_smoothing is {smoothing}, expected a value in [0, 1]")));
    }
    Ok(CrossEntropyDims { n, c })
}

/// Labels must be integers in [0, classes) (checked where the labels are on the host).
pub fn check_labels(labels: &[f32], classes: usize) -> Result<()> {
    if let Some((i, v)) = labels.iter().enumerate().find(|(_, &v)| !(v >= 0.0 && v.fract() == 0.0 && (v as usize) < classes)) {
        return Err(Error::Invalid(format!("label {i} is {v}, expected a class index in [0, {classes})")));
    }
    Ok(())
}

/// Row-wise ops on x [N, C] with one output per row (and, for `correct_rows`, labels \[N\]).
pub fn check_rows(op: &'static str, x: &[usize], out: &[usize], labels: Option<&[usize]>) -> Result<CrossEntropyDims> {
    let [n, c] = *x else {
        return Err(shape_err(op, format!("x {} must be [N, C]", ShapeFmt(x))));
    };
    expect_shape(op, "out", out, &[n])?;
    if let Some(l) = labels {
        expect_shape(op, "labels", l, &[n])?;
    }
    Ok(CrossEntropyDims { n, c })
}
