//! Host side of shaders/reduce.wgsl: sum of a tensor in two passes of one kernel.
//! CPU twin: src/cpu/reduce.rs.

use super::kernels::{ReduceParams, SUM, SUM_SQUARES};
use super::recorder::Bind;
use super::{Gpu, GpuTensor};
use crate::{Error, Result};

/// At most this many partial sums (one per workgroup) in the first pass.
pub const MAX_PARTIALS: usize = 1024;
/// Aim for at least this many elements per workgroup.
const MIN_CHUNK: usize = 4096;

/// (workgroups, elements per workgroup) of the first pass over `n` elements.
pub fn sum_plan(n: usize) -> (usize, usize) {
    let groups = n.div_ceil(MIN_CHUNK).clamp(1, MAX_PARTIALS);
    (groups, n.div_ceil(groups).max(1))
}

/// The longest run of sequential f32 additions on the path to the result: each invocation's
/// strided run over its chunk, then log2(256) tree levels, again for the second pass.
/// The test tolerance of `sum` is derived from it.
pub fn sum_depth(n: usize) -> usize {
    let (groups, chunk) = sum_plan(n);
    chunk.div_ceil(256) + 8 + if groups > 1 { groups.div_ceil(256) + 8 } else { 0 }
}

impl Gpu {
    /// out[0] = sum of x (or of x² with `squares`).
    pub(crate) fn sum_into(&self, x: &GpuTensor, out: &mut GpuTensor, squares: bool) -> Result<()> {
        let n = x.numel();
        if n as u64 > u32::MAX as u64 {
            return Err(Error::Limit { op: "sum", what: "elements".into(), got: n as u64, limit: u32::MAX as u64 });
        }
        let op = if squares { "sum_squares" } else { "sum" };
        let first = self.pipeline::<ReduceParams>(if squares { &SUM_SQUARES } else { &SUM }, &[])?;
        let (groups, chunk) = sum_plan(n);
        let one_pass = |kernel: &super::kernels::Pipeline, input: &GpuTensor, n: usize, groups: usize, chunk: usize, dst: &GpuTensor| {
            let params = ReduceParams { n: n as u32, chunk: chunk as u32, groups: groups as u32, _pad: 0 };
            self.dispatch(op, kernel, &params, &[Bind::whole(input), Bind::whole(dst)], [groups as u32, 1, 1])
        };
        if groups == 1 {
            return one_pass(&first, x, n, 1, chunk, out);
        }
        let partial = self.alloc(&[groups])?;
        one_pass(&first, x, n, groups, chunk, &partial)?;
        let second = self.pipeline::<ReduceParams>(&SUM, &[])?;
        one_pass(&second, &partial, groups, 1, groups, out)
        // `partial` returns to the pool here; the recorded pass still owns its use.
    }
}
