//! Host side of shaders/pool.wgsl. CPU twin: src/cpu/pool.rs. Test: kernels-tests/pool.rs.

use super::grid::grid_2d;
use super::kernels::{self, Kernel, PoolParams};
use super::recorder::Bind;
use super::{Gpu, GpuTensor};
use crate::ops::PoolDims;
use crate::Result;

impl Gpu {
    /// One invocation per element of `total`; `binds` in the kernel's binding order.
    pub(crate) fn pool_dispatch(&self, op: &'static str, kernel: &Kernel, d: &PoolDims, total: usize, binds: &[Bind<'_>]) -> Result<()> {
        let pipeline = self.pipeline::<PoolParams>(kernel, &[])?;
        let (groups, row_stride) = grid_2d(op, total as u64, self.max_groups())?;
        let u = |v: usize| v as u32;
        let params = PoolParams {
            planes: u(d.planes),
            h: u(d.h),
            w: u(d.w),
            oh: u(d.oh),
            ow: u(d.ow),
            kh: u(d.kh),
            kw: u(d.kw),
            sh: u(d.sh),
            sw: u(d.sw),
            ph: u(d.ph),
            pw: u(d.pw),
            count_include_pad: d.count_include_pad as u32,
            total: u(total),
            row_stride,
            ..Default::default()
        };
        self.dispatch(op, &pipeline, &params, binds, groups)
    }

    pub(crate) fn max_pool_impl(&self, x: &GpuTensor, y: &GpuTensor, idx: &GpuTensor, d: &PoolDims) -> Result<()> {
        let binds = [Bind::whole(x), Bind::whole(y), Bind::whole(idx)];
        if is_2x2_vec4(d) {
            return self.pool_dispatch("max_pool2d", &kernels::MAX_POOL_2X2_VEC4, d, d.planes * d.oh, &binds);
        }
        if is_2x2_vec2(d) {
            return self.pool_dispatch("max_pool2d", &kernels::MAX_POOL_2X2_VEC2, d, d.planes * d.oh, &binds);
        }
        self.pool_dispatch("max_pool2d", &kernels::MAX_POOL_FORWARD, d, y.numel(), &binds)
    }

    pub(crate) fn max_pool_backward_impl(&self, dy: &GpuTensor, idx: &GpuTensor, dx: &GpuTensor, d: &PoolDims) -> Result<()> {
        let binds = [Bind::whole(dy), Bind::whole(idx), Bind::whole(dx)];
        if d.sh == d.kh && d.sw == d.kw && d.ph == 0 && d.pw == 0 {
            // Windows tile the input: scatter per window; inputs no window covers (the last
            // rows or columns when the size is not a multiple of the window) stay zero.
            if !(d.h.is_multiple_of(d.kh) && d.w.is_multiple_of(d.kw)) {
                self.clear(dx);
            }
            if is_2x2_vec4(d) {
                return self.pool_dispatch("max_pool2d_backward", &kernels::MAX_POOL_2X2_BACKWARD_VEC4, d, d.planes * d.oh, &binds);
            }
            if is_2x2_vec2(d) {
                return self.pool_dispatch("max_pool2d_backward", &kernels::MAX_POOL_2X2_BACKWARD_VEC2, d, d.planes * d.oh, &binds);
            }
            return self.pool_dispatch("max_pool2d_backward", &kernels::MAX_POOL_BACKWARD_TILED, d, dy.numel(), &binds);
        }
        self.pool_dispatch("max_pool2d_backward", &kernels::MAX_POOL_BACKWARD, d, dx.numel(), &binds)
    }

    pub(crate) fn avg_pool_impl(&self, x: &GpuTensor, y: &GpuTensor, d: &PoolDims) -> Result<()> {
        self.pool_dispatch("avg_pool2d", &kernels::AVG_POOL_FORWARD, d, y.numel(), &[Bind::whole(x), Bind::whole(y)])
    }

    pub(crate) fn avg_pool_backward_impl(&self, dy: &GpuTensor, dx: &GpuTensor, d: &PoolDims) -> Result<()> {
        self.pool_dispatch("avg_pool2d_backward", &kernels::AVG_POOL_BACKWARD, d, dx.numel(), &[Bind::whole(dy), Bind::whole(dx)])
    }

    /// `planes` planes of `hw` values; forward writes one mean per plane, backward spreads.
    pub(crate) fn global_avg_impl(&self, src: &GpuTensor, dst: &GpuTensor, planes: usize, hw: usize, backward: bool) -> Result<()> {
        let d = PoolDims {
            n: planes,
            c: 1,
            planes,
            h: hw,
            w: 1,
            oh: 1,
            ow: 1,
            kh: 1,
            kw: 1,
            sh: 1,
            sw: 1,
            ph: 0,
            pw: 0,
            count_include_pad: true,
        };
        let (kernel, total, op) = if backward {
            (&kernels::GLOBAL_AVG_BACKWARD, planes * hw, "global_avg_pool_backward")
        } else {
            (&kernels::GLOBAL_AVG_FORWARD, planes, "global_avg_pool")
        };
        self.pool_dispatch(op, kernel, &d, total, &[Bind::whole(src), Bind::whole(dst)])
    }
}

/// Whether the pooling has 2x2 windows with stride 2, no padding and rows of a multiple of 4
/// values: the vec4 kernels' case (two windows per invocation; a row starts on a vec4).
fn is_2x2_vec4(d: &PoolDims) -> bool {
    (d.kh, d.kw, d.sh, d.sw, d.ph, d.pw) == (2, 2, 2, 2, 0, 0) && d.w.is_multiple_of(4)
}

/// 2x2 windows with stride 2 and no padding on rows of an even number of values.
fn is_2x2_vec2(d: &PoolDims) -> bool {
    (d.kh, d.kw, d.sh, d.sw, d.ph, d.pw) == (2, 2, 2, 2, 0, 0) && d.w.is_multiple_of(2)
}
