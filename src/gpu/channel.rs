//! Host side of shaders/channel.wgsl (per-channel reductions) and shaders/bias_act.wgsl.
//! CPU twins: src/cpu/channel.rs.

use super::grid::{grid_2d, grid_2d_wg, WORKGROUP};
use super::kernels::{self, act_code, BiasActParams, ChannelParams, Kernel};
use super::recorder::Bind;
use super::{Gpu, GpuTensor};
use crate::ops::Activation;
use crate::{Error, Result};

impl Gpu {
    /// One workgroup per channel of `a` seen as [n, c, p]: out[c] = scale * reduction, for
    /// each of the kernel's outputs in `outs` (one, or two for the fused backward sums).
    pub(crate) fn channel_reduce(
        &self,
        kernel: &Kernel,
        a: &GpuTensor,
        b: Option<&GpuTensor>,
        m: Option<&GpuTensor>,
        (n, c, p): (usize, usize, usize),
        scale: f32,
        outs: &[&GpuTensor],
    ) -> Result<()> {
        if c > self.max_groups() as usize {
            return Err(Error::Limit { op: "channel reduction", what: "channels".into(), got: c as u64, limit: self.max_groups() as u64 });
        }
        if let Some(columns) = kernels::columns_form(kernel).filter(|_| p == 1) {
            let pipeline = self.pipeline::<ChannelParams>(columns, &[])?;
            let params = ChannelParams { n: n as u32, c: c as u32, p: 1, scale };
            return self.dispatch(
                "channel reduction",
                &pipeline,
                &params,
                &[Bind::whole(a), Bind::whole(outs[0])],
                [c.div_ceil(64) as u32, 1, 1],
            );
        }
        // Planes of a multiple of 4 values: the vec4 form (a plane then starts on a vec4, and
        // every view starts on a binding-aligned offset).
        let kernel = kernels::vec4_form(kernel).filter(|_| p > 0 && p.is_multiple_of(4)).unwrap_or(kernel);
        let pipeline = self.pipeline::<ChannelParams>(kernel, &[])?;
        let mut binds = vec![Bind::whole(a)];
        if let Some(b) = b {
            binds.push(Bind::whole(b));
        }
        binds.push(Bind::whole(outs[0]));
        if let Some(m) = m {
            binds.push(Bind::whole(m));
        }
        binds.extend(outs[1..].iter().map(|o| Bind::whole(o)));
        let params = ChannelParams { n: n as u32, c: c as u32, p: p as u32, scale };
        self.dispatch("channel reduction", &pipeline, &params, &binds, [c as u32, 1, 1])
    }

    pub(crate) fn bias_act_impl(&self, y: &GpuTensor, bias: &GpuTensor, (c, p): (usize, usize), act: Activation) -> Result<()> {
        // CPU adapters, planes of 4 values or more: one plane per invocation (no division per
        // element); elsewhere one invocation per value.
        let (kernel, total, wg) = if self.ctx.is_cpu_adapter() && p >= 4 {
            let rows = if p.is_multiple_of(4) { &kernels::BIAS_ACT_ROWS_VEC4 } else { &kernels::BIAS_ACT_ROWS };
            (rows, y.numel() / p, 64)
        } else {
            (&kernels::BIAS_ACT, y.numel(), WORKGROUP as u32)
        };
        let pipeline = self.pipeline::<BiasActParams>(kernel, &[])?;
        let (groups, row_stride) = grid_2d_wg("bias_act", total as u64, wg, self.max_groups())?;
        let params = BiasActParams { total: total as u32, row_stride, c: c as u32, p: p as u32, act: act_code(act), ..Default::default() };
        self.dispatch("bias_act", &pipeline, &params, &[Bind::whole(bias), Bind::whole(y)], groups)
    }

    pub(crate) fn act_backward_impl(&self, y: &GpuTensor, dy: &GpuTensor, dz: &GpuTensor, act: Activation) -> Result<()> {
        let pipeline = self.pipeline::<BiasActParams>(&kernels::ACT_BACKWARD, &[])?;
        let total = y.numel();
        let (groups, row_stride) = grid_2d("act_backward", total as u64, self.max_groups())?;
        let params = BiasActParams { total: total as u32, row_stride, c: 1, p: 1, act: act_code(act), ..Default::default() };
        self.dispatch("act_backward", &pipeline, &params, &[Bind::whole(y), Bind::whole(dy), Bind::whole(dz)], groups)
    }
}
