//! What every op is, independent of where it runs: its options (`*Spec`), the sizes resolved
//! from its operands (`*Dims`), and the one `check` that validates them. One file per op
//! family; the [`Backend`](crate::Backend) trait's public methods call these checks before
//! either backend runs, so the CPU reference and the GPU accept and reject exactly the same
//! inputs, and a mismatch is an [`Error::Shape`](crate::Error::Shape) naming the op and the
//! shapes, never a panic.
//!
//! Nothing here depends on a backend: the backends depend on this module.

pub mod batch_norm;
pub mod conv2d;
pub mod dropout;
pub mod elementwise;
pub mod linear;
pub mod loss;
pub mod matmul;
pub mod optimizer;
pub mod pool;

pub use batch_norm::BatchNormDims;
pub use conv2d::{conv2d_dims, Conv2dSpec, ConvDims};
pub use dropout::DropoutMask;
pub use elementwise::{Activation, ChannelDims};
pub use loss::CrossEntropyDims;
pub use matmul::{matmul_dims, MatmulDims, MatmulSpec};
pub use optimizer::{Hyper, Optimizer, OptimizerKind, StepScalars};
pub use pool::{pool_dims, PoolDims, PoolSpec};

use crate::error::shape_err;
use crate::tensor::{checked_numel, ShapeFmt};
use crate::Result;

/// Checks that `t` has the shape `want`.
pub fn expect_shape(op: &'static str, name: &str, t: &[usize], want: &[usize]) -> Result<()> {
    if t != want {
        return Err(shape_err(op, format!("{name} is {}, expected {}", ShapeFmt(t), ShapeFmt(want))));
    }
    Ok(())
}

/// The element count of `t`, or an error naming it when the count does not fit a usize (every
/// shape check goes through here, so no product wraps around).
pub fn numel(op: &'static str, name: &str, t: &[usize]) -> Result<usize> {
    checked_numel(t).ok_or_else(|| shape_err(op, format!("{name} {} has more elements than memory can hold", ShapeFmt(t))))
}

/// Element-wise ops need equal shapes; returns the number of elements.
pub fn same_shape(op: &'static str, shapes: &[(&str, &[usize])]) -> Result<usize> {
    let Some(&(name, first)) = shapes.first() else { return Ok(0) };
    if shapes.iter().any(|(_, s)| *s != first) {
        let list: Vec<String> = shapes.iter().map(|(name, s)| format!("{name} {}", ShapeFmt(s))).collect();
        return Err(shape_err(op, format!("{} must all have the same shape", list.join(", "))));
    }
    numel(op, name, first)
}

/// Ops that only need equal element counts (copies between shapes); returns the count.
pub fn same_numel(op: &'static str, shapes: &[(&str, &[usize])]) -> Result<usize> {
    let flat: Vec<(&str, [usize; 1])> = shapes.iter().map(|(name, s)| Ok((*name, [numel(op, name, s)?]))).collect::<Result<_>>()?;
    let views: Vec<(&str, &[usize])> = flat.iter().map(|(name, s)| (*name, &s[..])).collect();
    same_shape(op, &views)
}

/// A reduction to one value needs a one-element output; returns the input's element count.
pub fn scalar_out(op: &'static str, x: &[usize], out: &[usize]) -> Result<usize> {
    if checked_numel(out) != Some(1) {
        return Err(shape_err(op, format!("x {} -> out {}: out must have exactly one element", ShapeFmt(x), ShapeFmt(out))));
    }
    numel(op, "x", x)
}

/// Lists that must pair up element by element.
pub fn same_len(op: &'static str, lens: &[usize]) -> Result<()> {
    if lens.windows(2).any(|w| w[0] != w[1]) {
        return Err(shape_err(op, format!("tensor lists have different lengths {lens:?}")));
    }
    Ok(())
}
