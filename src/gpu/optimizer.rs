//! Host side of shaders/optimizer.wgsl and shaders/clip.wgsl: one dispatch updates the whole
//! parameter arena. CPU twin: src/cpu/optimizer.rs. Test: kernels-tests/optimizer.rs.

use super::kernels::{self, ElementwiseParams, Kernel, OptimizerParams};
use super::{Gpu, GpuBuffer, GpuTensor};
use crate::ops::{Optimizer, OptimizerKind};
use crate::Result;

impl Gpu {
    pub(crate) fn optimizer_step_impl(
        &self,
        o: &Optimizer,
        t: u64,
        n: usize,
        param: &GpuTensor,
        grad: &GpuTensor,
        s1: &GpuTensor,
        s2: &GpuTensor,
    ) -> Result<()> {
        let k = o.step_scalars(t);
        let kernel: &Kernel = match o.kind {
            OptimizerKind::Sgd => &kernels::SGD,
            OptimizerKind::Adagrad => &kernels::ADAGRAD,
            OptimizerKind::Adadelta => &kernels::ADADELTA,
            OptimizerKind::Rmsprop => &kernels::RMSPROP,
            OptimizerKind::Adam | OptimizerKind::AdamW => &kernels::ADAM,
        };
        let pipeline = self.pipeline::<OptimizerParams>(kernel, &[])?;
        // State the optimizer does not keep may be a small placeholder; it is bound whole
        // and never touched.
        fn state(t: &GpuTensor, n: usize) -> (&GpuBuffer, bool) {
            (t.storage(), t.numel() == n)
        }
        let mut bufs: Vec<(&GpuBuffer, bool)> = vec![(param.storage(), true), (grad.storage(), true), state(s1, n)];
        if kernel.storage.len() == 4 {
            bufs.push(state(s2, n));
        }
        let decay = if o.kind == OptimizerKind::Adadelta { o.rho } else { o.alpha };
        self.flat_dispatch("optimizer_step", &pipeline, n, &bufs, |c| OptimizerParams {
            n: c.len,
            row_stride: c.row_stride,
            first_step: k.first_step as u32,
            nesterov: o.nesterov as u32,
            lr: o.lr,
            weight_decay: o.weight_decay,
            momentum: o.momentum,
            dampening: o.dampening,
            beta1: o.betas.0,
            beta2: o.betas.1,
            eps: o.eps,
            bias_correction1: k.bias_correction1,
            bias_correction2_sqrt: k.bias_correction2_sqrt,
            decay,
            adagrad_lr: k.adagrad_lr,
            decoupled: (o.kind == OptimizerKind::AdamW) as u32,
        })
    }

    pub(crate) fn clip_impl(&self, grad: &GpuTensor, max_norm: f32, sumsq: &mut GpuTensor) -> Result<()> {
        self.sum_into(grad, sumsq, true)?;
        let pipeline = self.pipeline::<ElementwiseParams>(&kernels::CLIP_BY_NORM, &[])?;
        let bufs = [(sumsq.storage(), false), (grad.storage(), true)];
        self.flat_dispatch("clip_grad_norm", &pipeline, grad.numel(), &bufs, |c| ElementwiseParams {
            n: c.len,
            row_stride: c.row_stride,
            alpha: max_norm,
            _pad: 0,
        })
    }
}
