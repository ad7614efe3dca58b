//! Host side of shaders/elementwise.wgsl (add, mul, scale) and shaders/relu.wgsl.
//! CPU twins: src/cpu/elementwise.rs, src/cpu/relu.rs.
//!
//! Two ways a long tensor is made to fit the device:
//! - workgroups are laid out in 2D, so no grid dimension exceeds the per-dimension limit;
//! - a tensor larger than one storage binding is processed in chunks, each binding a
//!   sub-range of the buffers (offsets aligned as the device requires).

use super::grid::grid_2d;
use super::kernels::{self, DropoutParams, ElementwiseParams, Kernel, KernelParams, Pipeline};
use super::recorder::Bind;
use super::{Gpu, GpuBuffer, GpuTensor};
use crate::ops::DropoutMask;
use crate::Result;

/// One dispatch of `flat_dispatch`: elements [start, start + len), rows of `row_stride`.
#[derive(Clone, Copy, Debug)]
pub struct FlatChunk {
    /// Index of the chunk's first element in the whole tensor.
    pub start: u32,
    /// Elements in this dispatch.
    pub len: u32,
    /// Invocations per grid row (workgroups in x * 256), to turn the 2D invocation id into an index.
    pub row_stride: u32,
}

impl Gpu {
    /// out[i] = f(inputs[0][i], inputs[1][i]) for the element-wise `kernel`.
    pub(crate) fn elementwise(
        &self,
        op: &'static str,
        kernel: &Kernel,
        n: usize,
        inputs: &[&GpuTensor],
        out: &mut GpuTensor,
        alpha: f32,
    ) -> Result<()> {
        // Tensors of a multiple of 4 values take the kernel's vec4 form where it has one (every
        // tensor starts on a binding-aligned offset, so on a vec4).
        let (kernel, n, width) = match kernels::vec4_form(kernel).filter(|_| n.is_multiple_of(4)) {
            Some(vec4) => (vec4, n / 4, 16),
            None => (kernel, n, 4),
        };
        let pipeline = self.pipeline::<ElementwiseParams>(kernel, &[])?;
        let mut bufs: Vec<(&GpuBuffer, bool)> = inputs.iter().map(|t| (t.storage(), true)).collect();
        bufs.push((out.storage(), true));
        self.flat_dispatch_of(op, &pipeline, n, width, &bufs, |c| ElementwiseParams { n: c.len, row_stride: c.row_stride, alpha, _pad: 0 })
    }

    /// out = x * scale where the mask keeps the element, else 0 (forward on x, backward on dy).
    pub(crate) fn dropout_impl(&self, x: &GpuTensor, out: &mut GpuTensor, m: &DropoutMask) -> Result<()> {
        let pipeline = self.pipeline::<DropoutParams>(&super::kernels::DROPOUT, &[])?;
        let bufs = [(x.storage(), true), (out.storage(), true)];
        self.flat_dispatch("dropout", &pipeline, x.numel(), &bufs, |c| DropoutParams {
            n: c.len,
            row_stride: c.row_stride,
            threshold: m.threshold,
            scale: m.scale,
            key1: m.key1,
            key2: m.key2,
            base: c.start,
            _pad: 0,
        })
    }

    /// Dispatches a kernel that treats its buffers as flat arrays of `n` f32, in chunks that fit
    /// one storage binding. `bufs` lists the storage bindings in kernel order: `(buffer, true)`
    /// is indexed per element (bound chunk by chunk), `(buffer, false)` is bound whole.
    pub(crate) fn flat_dispatch<P: KernelParams>(
        &self,
        op: &'static str,
        pipeline: &Pipeline,
        n: usize,
        bufs: &[(&GpuBuffer, bool)],
        params: impl Fn(FlatChunk) -> P,
    ) -> Result<()> {
        self.flat_dispatch_of(op, pipeline, n, 4, bufs, params)
    }

    /// [`Gpu::flat_dispatch`] over `n` elements of `width` bytes each (4: f32, 16: vec4).
    pub(crate) fn flat_dispatch_of<P: KernelParams>(
        &self,
        op: &'static str,
        pipeline: &Pipeline,
        n: usize,
        width: u64,
        bufs: &[(&GpuBuffer, bool)],
        params: impl Fn(FlatChunk) -> P,
    ) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        // Largest chunk (in elements) whose binding fits and whose offset stays aligned.
        let align = self.context().limits.min_storage_buffer_offset_alignment as u64;
        let per_align = (align / width).max(1);
        let chunk = ((self.max_binding_bytes() / align) * align / width).min((u32::MAX as u64 / 2) & !(per_align - 1));
        let n = n as u64;
        let mut start = 0u64;
        while start < n {
            let len = chunk.min(n - start);
            let (groups, row_stride) = grid_2d(op, len, self.max_groups())?;
            let binds: Vec<Bind<'_>> =
                bufs.iter()
                    .map(|&(buf, per_element)| {
                        if per_element {
                            Bind { buf, offset: buf.offset() + start * width, size: len * width }
                        } else {
                            Bind::buffer(buf)
                        }
                    })
                    .collect();
            self.dispatch(op, pipeline, &params(FlatChunk { start: start as u32, len: len as u32, row_stride }), &binds, groups)?;
            start += len;
        }
        Ok(())
    }
}
