//! Host side of shaders/loss.wgsl. CPU twin: src/cpu/loss.rs.

use super::kernels::{self, Kernel, LossParams};
use super::recorder::Bind;
use super::{Gpu, GpuTensor};
use crate::Result;

impl Gpu {
    fn loss_dispatch(&self, op: &'static str, kernel: &Kernel, (n, c): (usize, usize), smoothing: f32, binds: &[Bind<'_>]) -> Result<()> {
        let pipeline = self.pipeline::<LossParams>(kernel, &[])?;
        let params = LossParams { n: n as u32, c: c as u32, smoothing, inv_n: 1.0 / n.max(1) as f32 };
        self.dispatch(op, &pipeline, &params, binds, [(n as u32).div_ceil(64), 1, 1])
    }

    pub(crate) fn cross_entropy_impl(
        &self,
        logits: &GpuTensor,
        target: &GpuTensor,
        soft: bool,
        dims: (usize, usize),
        smoothing: f32,
        loss: &mut GpuTensor,
        grad: &GpuTensor,
    ) -> Result<()> {
        let rows = self.alloc(&[dims.0])?;
        let kernel = if soft { &kernels::CROSS_ENTROPY_SOFT } else { &kernels::CROSS_ENTROPY_HARD };
        self.loss_dispatch(
            "cross_entropy",
            kernel,
            dims,
            smoothing,
            &[Bind::whole(logits), Bind::whole(target), Bind::whole(&rows), Bind::whole(grad)],
        )?;
        self.sum_into(&rows, loss, false)
    }

    pub(crate) fn argmax_impl(&self, x: &GpuTensor, labels: Option<&GpuTensor>, dims: (usize, usize), out: &GpuTensor) -> Result<()> {
        match labels {
            None => self.loss_dispatch("argmax_rows", &kernels::ARGMAX_ROWS, dims, 0.0, &[Bind::whole(x), Bind::whole(out)]),
            Some(l) => {
                self.loss_dispatch("correct_rows", &kernels::CORRECT_ROWS, dims, 0.0, &[Bind::whole(x), Bind::whole(l), Bind::whole(out)])
            }
        }
    }
}
