//! Host side of batch norm 2d: per-channel reductions (shaders/channel.wgsl), the per-channel
//! steps of shaders/bn_stats.wgsl and the element-wise passes of shaders/batch_norm.wgsl.
//! Mean and variance are two passes (mean first, then squared deviations from it), each a
//! parallel reduction per channel. The eval-mode backward is shaders/batch_norm_eval_backward.wgsl
//! (one element-wise pass for dx, one reduction per channel for dgamma and dbeta, no
//! temporaries). CPU twin: src/cpu/batch_norm.rs.

use super::grid::grid_2d;
use super::kernels::{self, act_code, BnParams, Kernel};
use super::recorder::Bind;
use super::{Gpu, GpuTensor};
use crate::ops::Activation;
use crate::{Error, Result};

impl Gpu {
    fn bn_params(&self, (n, c, p): (usize, usize, usize), momentum: f32, eps: f32) -> Result<(BnParams, [u32; 3])> {
        let total = n * c * p;
        let (groups, row_stride) = grid_2d("batch_norm", total as u64, self.max_groups())?;
        Ok((
            BnParams {
                n: n as u32,
                c: c as u32,
                p: p as u32,
                total: total as u32,
                row_stride,
                cnt: (n * p) as f32,
                momentum,
                eps,
                ..BnParams::default()
            },
            groups,
        ))
    }

    fn bn_per_channel(&self, kernel: &Kernel, params: &BnParams, binds: &[Bind<'_>]) -> Result<()> {
        let pipeline = self.pipeline::<BnParams>(kernel, &[])?;
        self.dispatch("batch_norm", &pipeline, params, binds, [params.c.div_ceil(64), 1, 1])
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn batch_norm_train_impl(
        &self,
        x: &GpuTensor,
        gamma: &GpuTensor,
        beta: &GpuTensor,
        running_mean: &GpuTensor,
        running_var: &GpuTensor,
        y: &GpuTensor,
        save_mean: &GpuTensor,
        save_invstd: &GpuTensor,
        dims: (usize, usize, usize),
        momentum: f32,
        eps: f32,
        act: Activation,
    ) -> Result<()> {
        let var = self.alloc(&[dims.1])?;
        self.batch_norm_stats_impl(x, save_mean, &var, dims)?;
        self.bn_normalize(
            x,
            gamma,
            beta,
            &var,
            (dims.0 * dims.2) as f32,
            running_mean,
            running_var,
            y,
            save_mean,
            save_invstd,
            dims,
            momentum,
            eps,
            act,
        )
    }

    /// Per-channel mean and biased variance (two reductions of channel.wgsl).
    pub(crate) fn batch_norm_stats_impl(
        &self,
        x: &GpuTensor,
        mean: &GpuTensor,
        var: &GpuTensor,
        dims: (usize, usize, usize),
    ) -> Result<()> {
        let inv_cnt = 1.0 / (dims.0 * dims.2) as f32;
        self.channel_reduce(&kernels::CHANNEL_SUM, x, None, None, dims, inv_cnt, &[mean])?;
        self.channel_reduce(&kernels::CHANNEL_SUM_SQ_DEV, x, None, Some(mean), dims, inv_cnt, &[var])
    }

    /// The training forward from given statistics: `mean` copied to `save_mean`, then as
    /// [`Self::bn_normalize`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn batch_norm_train_from_stats_impl(
        &self,
        x: &GpuTensor,
        gamma: &GpuTensor,
        beta: &GpuTensor,
        mean: &GpuTensor,
        var: &GpuTensor,
        count: f32,
        running_mean: &GpuTensor,
        running_var: &GpuTensor,
        y: &GpuTensor,
        save_mean: &mut GpuTensor,
        save_invstd: &GpuTensor,
        dims: (usize, usize, usize),
        momentum: f32,
        eps: f32,
        act: Activation,
    ) -> Result<()> {
        // save_mean = 1 * mean (exact)
        self.elementwise("batch_norm", &kernels::SCALE, dims.1, &[mean], save_mean, 1.0)?;
        self.bn_normalize(x, gamma, beta, var, count, running_mean, running_var, y, save_mean, save_invstd, dims, momentum, eps, act)
    }

    /// From the mean (already in `save_mean`) and biased variance of `count` values per
    /// channel: 1/sqrt(var + eps) into `save_invstd`, the running statistics, and y (ending
    /// with `act`).
    #[allow(clippy::too_many_arguments)]
    fn bn_normalize(
        &self,
        x: &GpuTensor,
        gamma: &GpuTensor,
        beta: &GpuTensor,
        var: &GpuTensor,
        count: f32,
        running_mean: &GpuTensor,
        running_var: &GpuTensor,
        y: &GpuTensor,
        save_mean: &GpuTensor,
        save_invstd: &GpuTensor,
        dims: (usize, usize, usize),
        momentum: f32,
        eps: f32,
        act: Activation,
    ) -> Result<()> {
        let (mut params, groups) = self.bn_params(dims, momentum, eps)?;
        params.cnt = count;
        self.bn_per_channel(
            &kernels::BN_FINALIZE,
            &params,
            &[Bind::whole(save_mean), Bind::whole(var), Bind::whole(save_invstd), Bind::whole(running_mean), Bind::whole(running_var)],
        )?;
        self.bn_apply(x, save_mean, save_invstd, gamma, beta, y, &BnParams { act: act_code(act), ..params }, groups)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn batch_norm_eval_impl(
        &self,
        x: &GpuTensor,
        gamma: &GpuTensor,
        beta: &GpuTensor,
        running_mean: &GpuTensor,
        running_var: &GpuTensor,
        y: &GpuTensor,
        dims: (usize, usize, usize),
        eps: f32,
        act: Activation,
    ) -> Result<()> {
        let (params, groups) = self.bn_params(dims, 0.0, eps)?;
        let invstd = self.alloc(&[dims.1])?;
        self.bn_per_channel(&kernels::BN_EVAL_INVSTD, &params, &[Bind::whole(running_var), Bind::whole(&invstd)])?;
        self.bn_apply(x, running_mean, &invstd, gamma, beta, y, &BnParams { act: act_code(act), ..params }, groups)
    }

    #[allow(clippy::too_many_arguments)]
    fn bn_apply(
        &self,
        x: &GpuTensor,
        mean: &GpuTensor,
        invstd: &GpuTensor,
        gamma: &GpuTensor,
        beta: &GpuTensor,
        y: &GpuTensor,
        params: &BnParams,
        groups: [u32; 3],
    ) -> Result<()> {
        let binds = [Bind::whole(x), Bind::whole(y), Bind::whole(mean), Bind::whole(invstd), Bind::whole(gamma), Bind::whole(beta)];
        if let Some((rows, groups)) = self.plane_rows(params)? {
            let pipeline = self.pipeline::<BnParams>(&kernels::BN_APPLY_ROWS_VEC4, &[])?;
            return self.dispatch("batch_norm", &pipeline, &rows, &binds, groups);
        }
        match self.plane_grid(params) {
            Some(planes) => {
                let kernel = if params.p.is_multiple_of(4) { &kernels::BN_APPLY_PLANES_VEC4 } else { &kernels::BN_APPLY_PLANES };
                let pipeline = self.pipeline::<BnParams>(kernel, &[])?;
                self.dispatch("batch_norm", &pipeline, params, &binds, planes)
            }
            None => {
                let pipeline = self.pipeline::<BnParams>(&kernels::BN_APPLY, &[])?;
                self.dispatch("batch_norm", &pipeline, params, &binds, groups)
            }
        }
    }

    /// On CPU adapters, for planes of a multiple of 4 values: `params` for the `*_rows_vec4`
    /// entries (one plane per invocation: total and row stride set) and their grid.
    fn plane_rows(&self, params: &BnParams) -> Result<Option<(BnParams, [u32; 3])>> {
        if !self.ctx.is_cpu_adapter() || !params.p.is_multiple_of(4) {
            return Ok(None);
        }
        let planes = params.n * params.c;
        let (groups, row_stride) = super::grid::grid_2d_wg("batch_norm", planes as u64, 64, self.max_groups())?;
        Ok(Some((BnParams { total: planes, row_stride, ..*params }, groups)))
    }

    /// The (position, channel, image) grid of the `*_planes` entries, where planes hold at
    /// least 32 values (narrower ones would leave most of a 64-wide workgroup idle) and the
    /// channel and image counts fit one grid dimension each.
    fn plane_grid(&self, params: &BnParams) -> Option<[u32; 3]> {
        let max = self.max_groups();
        // Planes of a multiple of 4 values run as vec4s: a quarter of the invocations along x.
        let along = if params.p.is_multiple_of(4) { params.p / 4 } else { params.p };
        (params.p >= 32 && params.c <= max && params.n <= max).then(|| [along.div_ceil(64), params.c, params.n])
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn batch_norm_backward_impl(
        &self,
        x: &GpuTensor,
        dy: &GpuTensor,
        gamma: &GpuTensor,
        save_mean: &GpuTensor,
        save_invstd: &GpuTensor,
        dx: &GpuTensor,
        dgamma: &GpuTensor,
        dbeta: &GpuTensor,
        dims: (usize, usize, usize),
    ) -> Result<()> {
        // Into scratch, not dbeta: the per-channel step must not read a view of the gradient
        // arena it writes dgamma into.
        let (sdy, sdyx) = (self.alloc(&[dims.1])?, self.alloc(&[dims.1])?);
        self.batch_norm_backward_sums_impl(x, dy, save_mean, &sdy, &sdyx, dims)?;
        let count = (dims.0 * dims.2) as f32;
        self.batch_norm_backward_from_sums_impl(x, dy, gamma, save_mean, save_invstd, (&sdy, &sdyx), None, count, dx, dgamma, dbeta, dims)
    }

    /// sdy = sum dy; sdyx = sum dy * (x - mean), per channel.
    pub(crate) fn batch_norm_backward_sums_impl(
        &self,
        x: &GpuTensor,
        dy: &GpuTensor,
        save_mean: &GpuTensor,
        sdy: &GpuTensor,
        sdyx: &GpuTensor,
        dims: (usize, usize, usize),
    ) -> Result<()> {
        self.channel_reduce(&kernels::CHANNEL_SUM_PROD_DEV_AND_SUM, x, Some(dy), Some(save_mean), dims, 1.0, &[sdyx, sdy])
    }

    /// dgamma, dbeta from the `local` sums; dx from the `global` sums over `count` values per
    /// channel (`None`: the local ones), by bn_backward_coef (run twice when the sums differ)
    /// and bn_backward_apply.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn batch_norm_backward_from_sums_impl(
        &self,
        x: &GpuTensor,
        dy: &GpuTensor,
        gamma: &GpuTensor,
        save_mean: &GpuTensor,
        save_invstd: &GpuTensor,
        local: (&GpuTensor, &GpuTensor),
        global: Option<(&GpuTensor, &GpuTensor)>,
        count: f32,
        dx: &GpuTensor,
        dgamma: &GpuTensor,
        dbeta: &GpuTensor,
        dims: (usize, usize, usize),
    ) -> Result<()> {
        let (mut params, groups) = self.bn_params(dims, 0.0, 0.0)?;
        params.cnt = count;
        let coef = self.alloc(&[3 * dims.1])?;
        let coefficients = |(sdy, sdyx): (&GpuTensor, &GpuTensor), dgamma: &GpuTensor, dbeta: &GpuTensor| {
            self.bn_per_channel(
                &kernels::BN_BACKWARD_COEF,
                &params,
                &[
                    Bind::whole(sdy),
                    Bind::whole(sdyx),
                    Bind::whole(&coef),
                    Bind::whole(dgamma),
                    Bind::whole(dbeta),
                    Bind::whole(gamma),
                    Bind::whole(save_invstd),
                ],
            )
        };
        coefficients(local, dgamma, dbeta)?;
        if let Some(global) = global {
            // The parameter gradients of this pass go to scratch: they are the local ones.
            let (g, b) = (self.alloc(&[dims.1])?, self.alloc(&[dims.1])?);
            coefficients(global, &g, &b)?;
        }
        let binds = [Bind::whole(x), Bind::whole(dy), Bind::whole(dx), Bind::whole(save_mean), Bind::whole(&coef)];
        if let Some((rows, groups)) = self.plane_rows(&params)? {
            let pipeline = self.pipeline::<BnParams>(&kernels::BN_BACKWARD_APPLY_ROWS_VEC4, &[])?;
            return self.dispatch("batch_norm_backward", &pipeline, &rows, &binds, groups);
        }
        let (kernel, groups) = match self.plane_grid(&params) {
            Some(planes) if params.p % 4 == 0 => (&kernels::BN_BACKWARD_APPLY_PLANES_VEC4, planes),
            Some(planes) => (&kernels::BN_BACKWARD_APPLY_PLANES, planes),
            None => (&kernels::BN_BACKWARD_APPLY, groups),
        };
        let pipeline = self.pipeline::<BnParams>(kernel, &[])?;
        self.dispatch("batch_norm_backward", &pipeline, &params, &binds, groups)
    }

    /// Backward of the eval forward (running statistics constant): dx where given, and
    /// dgamma, dbeta where given; each overwritten.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn batch_norm_backward_eval_impl(
        &self,
        x: &GpuTensor,
        dy: &GpuTensor,
        gamma: &GpuTensor,
        running_mean: &GpuTensor,
        running_var: &GpuTensor,
        dx: Option<&GpuTensor>,
        param_grads: Option<(&GpuTensor, &GpuTensor)>,
        dims: (usize, usize, usize),
        eps: f32,
    ) -> Result<()> {
        let (params, groups) = self.bn_params(dims, 0.0, eps)?;
        if let Some(dx) = dx {
            let pipeline = self.pipeline::<BnParams>(&kernels::BN_EVAL_BACKWARD_DX, &[])?;
            let binds = [Bind::whole(dy), Bind::whole(dx), Bind::whole(running_var), Bind::whole(gamma)];
            self.dispatch("batch_norm_backward_eval", &pipeline, &params, &binds, groups)?;
        }
        if let Some((dgamma, dbeta)) = param_grads {
            if dims.1 > self.max_groups() as usize {
                return Err(Error::Limit {
                    op: "batch_norm_backward_eval",
                    what: "channels".into(),
                    got: dims.1 as u64,
                    limit: self.max_groups() as u64,
                });
            }
            let pipeline = self.pipeline::<BnParams>(&kernels::BN_EVAL_BACKWARD_PARAMS, &[])?;
            let binds = [
                Bind::whole(x),
                Bind::whole(dy),
                Bind::whole(running_mean),
                Bind::whole(running_var),
                Bind::whole(dgamma),
                Bind::whole(dbeta),
            ];
            self.dispatch("batch_norm_backward_eval", &pipeline, &params, &binds, [dims.1 as u32, 1, 1])?;
        }
        Ok(())
    }
}
