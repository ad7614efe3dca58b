//! Kernels from outside shaders/: a user's crate brings its own WGSL and runs it through the
//! same machinery as the built-in kernels (recorded into the open pass, parameters in the
//! uniform arena, chunked and laid out in 2D so any length fits the device).
//!
//! An element-wise kernel follows the layout of shaders/elementwise.wgsl:
//! ```wgsl
//! struct ElementwiseParams { n: u32, row_stride: u32, alpha: f32, _pad: u32 }
//! @group(0) @binding(0) var<uniform> p: ElementwiseParams;
//! @group(0) @binding(1) var<storage, read> a: array<f32>;
//! @group(0) @binding(2) var<storage, read> b: array<f32>;   // only with two inputs
//! @group(0) @binding(3) var<storage, read_write> out: array<f32>;
//! @compute @workgroup_size(256, 1, 1)
//! fn my_op(@builtin(global_invocation_id) gid: vec3<u32>) {
//!     let i = gid.y * p.row_stride + gid.x;
//!     if (i < p.n) { out[i] = ...; }
//! }
//! ```
//! `examples/custom_layer.rs` uses this for a LeakyReLU layer.

use std::sync::Arc;

use super::kernels::{Access, ElementwiseParams, Pipeline};
use super::{Gpu, GpuBuffer, GpuTensor};
use crate::{Error, Result};

/// A compiled element-wise kernel of one or two inputs.
#[derive(Clone)]
pub struct ElementwiseKernel {
    label: String,
    inputs: usize,
    pipeline: Arc<Pipeline>,
}

impl ElementwiseKernel {
    /// The name it was compiled under (`source label::entry`).
    pub fn label(&self) -> &str {
        &self.label
    }
}

impl Gpu {
    /// Compiles entry point `entry` of the WGSL `source` as an element-wise kernel of `inputs`
    /// (1 or 2) inputs, laid out as the module docs show; `label` names it in errors. The
    /// source is validated by wgpu: a mistake is an error naming the label and the line.
    pub fn elementwise_kernel(&self, label: &str, source: &str, entry: &str, inputs: usize) -> Result<ElementwiseKernel> {
        let storage: &[(u32, Access)] = match inputs {
            1 => &[(1, Access::Read), (3, Access::ReadWrite)],
            2 => &[(1, Access::Read), (2, Access::Read), (3, Access::ReadWrite)],
            n => return Err(Error::Invalid(format!("{label}: an element-wise kernel takes 1 or 2 inputs, not {n}"))),
        };
        let pipeline = self.cache.get_source::<ElementwiseParams>(&self.ctx, label, source, entry, storage)?;
        Ok(ElementwiseKernel { label: format!("{label}::{entry}"), inputs, pipeline })
    }

    /// Records `out[i] = kernel(inputs[0][i], inputs[1][i])` for every element, with `alpha`
    /// in the parameters (`p.alpha`). Every tensor must have the same number of elements.
    pub fn run_elementwise(&self, kernel: &ElementwiseKernel, inputs: &[&GpuTensor], out: &mut GpuTensor, alpha: f32) -> Result<()> {
        if inputs.len() != kernel.inputs {
            return Err(Error::Invalid(format!("{}: takes {} inputs, {} given", kernel.label, kernel.inputs, inputs.len())));
        }
        let mut shapes: Vec<(&str, &[usize])> = inputs.iter().map(|t| ("input", t.shape())).collect();
        shapes.push(("out", out.shape()));
        let n = crate::ops::same_numel("custom element-wise kernel", &shapes)?;
        let mut bufs: Vec<(&GpuBuffer, bool)> = inputs.iter().map(|t| (t.storage(), true)).collect();
        bufs.push((out.storage(), true));
        self.flat_dispatch("custom element-wise kernel", &kernel.pipeline, n, &bufs, |c| ElementwiseParams {
            n: c.len,
            row_stride: c.row_stride,
            alpha,
            _pad: 0,
        })
    }
}
