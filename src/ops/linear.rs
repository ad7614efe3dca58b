//! The linear (fully connected) layer's op: y = x @ wᵀ + bias, built from matmul and the
//! per-channel kernels, so it has no shader of its own.

use super::expect_shape;
use crate::error::shape_err;
use crate::tensor::ShapeFmt;
use crate::Result;

/// x [N, in], w [out, in], y (or dy) [N, out], bias (or its gradient) \[out\].
pub fn check(x: &[usize], w: &[usize], y: &[usize], bias: Option<&[usize]>) -> Result<()> {
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
