//! Host side of shaders/elementwise.wgsl (add, mul, scale) and shaders/relu.wgsl.
//! CPU twins: src/cpu/elementwise.rs, src/cpu/relu.rs.
//!
//! Two ways a long tensor is made to fit the device:
//! - workgroups are laid out in 2D, so no grid dimension exceeds the per-dimension limit;
//! - a tensor larger than one storage binding is processed in chunks, each binding a
//!   sub-range of the buffers (offsets aligned as the device requires).

use super::kernels::{ElementwiseParams, Kernel};
use super::{Bind, Gpu, GpuTensor};
use crate::{Error, Result};

pub const WORKGROUP: u64 = 256;

/// Grid for `n` invocations in rows of at most `max` workgroups of 256: (groups, row stride).
pub fn grid_2d(op: &'static str, n: u64, max: u32) -> Result<([u32; 3], u32)> {
    let groups = n.div_ceil(WORKGROUP).max(1);
    if groups <= max as u64 {
        return Ok(([groups as u32, 1, 1], (groups * WORKGROUP) as u32));
    }
    let rows = groups.div_ceil(max as u64);
    if rows > max as u64 {
        return Err(Error::Limit { op, what: "elements in one dispatch".into(), got: n, limit: max as u64 * max as u64 * WORKGROUP });
    }
    Ok(([max, rows as u32, 1], max * WORKGROUP as u32))
}

impl Gpu {
    /// out[i] = f(inputs[0][i], inputs[1][i]) for the element-wise `kernel`.
    pub(crate) fn elementwise(&self, op: &'static str, kernel: &Kernel, n: usize, inputs: &[&GpuTensor], out: &mut GpuTensor, alpha: f32) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let pipeline = self.pipeline::<ElementwiseParams>(kernel, &[])?;
        // Largest chunk (in elements) whose binding fits and whose offset stays aligned.
        let align = self.context().limits.min_storage_buffer_offset_alignment as u64;
        let chunk = ((self.max_binding_bytes() / align) * align / 4).min(u32::MAX as u64 / 2 & !(align / 4 - 1));
        let n = n as u64;
        let mut start = 0u64;
        while start < n {
            let len = chunk.min(n - start);
            let (groups, row_stride) = grid_2d(op, len, self.max_groups())?;
            let mut binds: Vec<Bind<'_>> = inputs.iter().map(|t| Bind { buf: t.storage(), offset: start * 4, size: len * 4 }).collect();
            binds.push(Bind { buf: out.storage(), offset: start * 4, size: len * 4 });
            let params = ElementwiseParams { n: len as u32, row_stride, alpha, _pad: 0 };
            self.dispatch(op, &pipeline, &params, &binds, groups)?;
            start += len;
        }
        Ok(())
    }
}
