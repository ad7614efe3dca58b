//! The CPU backend: the reference. Plain loops, one file per op family, named as the shader
//! they define (`cpu/matmul.rs` <-> `shaders/matmul_v*.wgsl`). Tests compare the GPU to these.

pub mod batch_norm;
pub mod channel;
pub mod conv2d;
pub mod dropout;
pub mod elementwise;
pub mod loss;
pub mod matmul;
pub mod optimizer;
pub mod permute;
pub mod pool;
pub mod reduce;
pub mod relu;

use crate::backend::{Backend, CeTarget};
use crate::ops::{self, Activation, Conv2dSpec, DropoutMask, MatmulSpec, PoolSpec};
use crate::optim::Optimizer;
use crate::tensor::{CpuTensor, Tensor};
use crate::Result;

/// The reference backend. Stateless: tensors are `Vec<f32>`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu;

impl Backend for Cpu {
    type Storage = Vec<f32>;

    fn name(&self) -> String {
        "cpu (reference)".into()
    }

    fn zeros(&self, shape: &[usize]) -> Result<CpuTensor> {
        Ok(Tensor::from_parts(shape, vec![0.0; crate::tensor::numel(shape)]))
    }

    fn upload(&self, shape: &[usize], data: &[f32]) -> Result<CpuTensor> {
        let mut t = self.zeros(shape)?;
        self.write(&mut t, data)?;
        Ok(t)
    }

    fn write(&self, t: &mut CpuTensor, data: &[f32]) -> Result<()> {
        ops::same_shape("write", &[("tensor", &[t.numel()]), ("data", &[data.len()])])?;
        t.storage.copy_from_slice(data);
        Ok(())
    }

    fn download(&self, t: &CpuTensor) -> Result<Vec<f32>> {
        Ok(t.storage.clone())
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn arena(&self, shapes: &[Vec<usize>]) -> Result<Vec<CpuTensor>> {
        shapes.iter().map(|s| self.zeros(s)).collect()
    }

    fn matmul(&self, a: &CpuTensor, b: &CpuTensor, c: &mut CpuTensor, spec: MatmulSpec) -> Result<()> {
        let dims = ops::matmul_dims(a.shape(), b.shape(), c.shape(), spec)?;
        matmul::matmul(&a.storage, &b.storage, &mut c.storage, &dims, spec);
        Ok(())
    }

    fn conv2d(&self, x: &CpuTensor, w: &CpuTensor, bias: Option<&CpuTensor>, y: &mut CpuTensor, spec: Conv2dSpec) -> Result<()> {
        let d = ops::conv2d_check("conv2d", x.shape(), w.shape(), y.shape(), spec)?;
        if let Some(b) = bias {
            ops::expect_shape("conv2d", "bias", b.shape(), &[d.k])?;
        }
        conv2d::forward(&x.storage, &w.storage, bias.map(|b| b.data()), &mut y.storage, &d);
        Ok(())
    }

    fn conv2d_backward_data(&self, dy: &CpuTensor, w: &CpuTensor, dx: &mut CpuTensor, spec: Conv2dSpec) -> Result<()> {
        let d = ops::conv2d_check("conv2d_backward_data", dx.shape(), w.shape(), dy.shape(), spec)?;
        conv2d::backward_data(&dy.storage, &w.storage, &mut dx.storage, &d);
        Ok(())
    }

    fn conv2d_backward_filter(&self, x: &CpuTensor, dy: &CpuTensor, dw: &mut CpuTensor, spec: Conv2dSpec) -> Result<()> {
        let d = ops::conv2d_check("conv2d_backward_filter", x.shape(), dw.shape(), dy.shape(), spec)?;
        conv2d::backward_filter(&x.storage, &dy.storage, &mut dw.storage, &d);
        Ok(())
    }

    fn max_pool2d(&self, x: &CpuTensor, y: &mut CpuTensor, idx: &mut CpuTensor, spec: PoolSpec) -> Result<()> {
        let d = ops::pool_check("max_pool2d", x.shape(), &[("y", y.shape()), ("idx", idx.shape())], spec)?;
        pool::max_pool_forward(&x.storage, &mut y.storage, &mut idx.storage, &d);
        Ok(())
    }

    fn max_pool2d_backward(&self, dy: &CpuTensor, idx: &CpuTensor, dx: &mut CpuTensor, spec: PoolSpec) -> Result<()> {
        let d = ops::pool_check("max_pool2d_backward", dx.shape(), &[("dy", dy.shape()), ("idx", idx.shape())], spec)?;
        pool::max_pool_backward(&dy.storage, &idx.storage, &mut dx.storage, &d);
        Ok(())
    }

    fn avg_pool2d(&self, x: &CpuTensor, y: &mut CpuTensor, spec: PoolSpec) -> Result<()> {
        let d = ops::pool_check("avg_pool2d", x.shape(), &[("y", y.shape())], spec)?;
        pool::avg_pool_forward(&x.storage, &mut y.storage, &d);
        Ok(())
    }

    fn avg_pool2d_backward(&self, dy: &CpuTensor, dx: &mut CpuTensor, spec: PoolSpec) -> Result<()> {
        let d = ops::pool_check("avg_pool2d_backward", dx.shape(), &[("dy", dy.shape())], spec)?;
        pool::avg_pool_backward(&dy.storage, &mut dx.storage, &d);
        Ok(())
    }

    fn global_avg_pool(&self, x: &CpuTensor, y: &mut CpuTensor) -> Result<()> {
        let (_, hw) = ops::global_pool_dims("global_avg_pool", x.shape(), y.shape())?;
        pool::global_avg_forward(&x.storage, &mut y.storage, hw);
        Ok(())
    }

    fn global_avg_pool_backward(&self, dy: &CpuTensor, dx: &mut CpuTensor) -> Result<()> {
        let (_, hw) = ops::global_pool_dims("global_avg_pool_backward", dx.shape(), dy.shape())?;
        pool::global_avg_backward(&dy.storage, &mut dx.storage, hw);
        Ok(())
    }

    fn batch_norm_train(
        &self,
        x: &CpuTensor,
        gamma: &CpuTensor,
        beta: &CpuTensor,
        running_mean: &mut CpuTensor,
        running_var: &mut CpuTensor,
        y: &mut CpuTensor,
        save_mean: &mut CpuTensor,
        save_invstd: &mut CpuTensor,
        momentum: f32,
        eps: f32,
    ) -> Result<()> {
        let dims = ops::batch_norm_check(
            "batch_norm",
            x.shape(),
            y.shape(),
            &[
                ("gamma", gamma.shape()),
                ("beta", beta.shape()),
                ("running_mean", running_mean.shape()),
                ("running_var", running_var.shape()),
                ("save_mean", save_mean.shape()),
                ("save_invstd", save_invstd.shape()),
            ],
            true,
        )?;
        batch_norm::forward_train(
            &x.storage,
            &gamma.storage,
            &beta.storage,
            &mut running_mean.storage,
            &mut running_var.storage,
            &mut y.storage,
            &mut save_mean.storage,
            &mut save_invstd.storage,
            dims,
            momentum,
            eps,
        );
        Ok(())
    }

    fn batch_norm_eval(
        &self,
        x: &CpuTensor,
        gamma: &CpuTensor,
        beta: &CpuTensor,
        running_mean: &CpuTensor,
        running_var: &CpuTensor,
        y: &mut CpuTensor,
        eps: f32,
    ) -> Result<()> {
        let dims = ops::batch_norm_check(
            "batch_norm",
            x.shape(),
            y.shape(),
            &[
                ("gamma", gamma.shape()),
                ("beta", beta.shape()),
                ("running_mean", running_mean.shape()),
                ("running_var", running_var.shape()),
            ],
            false,
        )?;
        batch_norm::forward_eval(
            &x.storage,
            &gamma.storage,
            &beta.storage,
            &running_mean.storage,
            &running_var.storage,
            &mut y.storage,
            dims,
            eps,
        );
        Ok(())
    }

    fn batch_norm_backward(
        &self,
        x: &CpuTensor,
        dy: &CpuTensor,
        gamma: &CpuTensor,
        save_mean: &CpuTensor,
        save_invstd: &CpuTensor,
        dx: &mut CpuTensor,
        dgamma: &mut CpuTensor,
        dbeta: &mut CpuTensor,
    ) -> Result<()> {
        ops::expect_shape("batch_norm_backward", "dy", dy.shape(), x.shape())?;
        let dims = ops::batch_norm_check(
            "batch_norm_backward",
            x.shape(),
            dx.shape(),
            &[
                ("gamma", gamma.shape()),
                ("save_mean", save_mean.shape()),
                ("save_invstd", save_invstd.shape()),
                ("dgamma", dgamma.shape()),
                ("dbeta", dbeta.shape()),
            ],
            true,
        )?;
        batch_norm::backward(
            &x.storage,
            &dy.storage,
            &gamma.storage,
            &save_mean.storage,
            &save_invstd.storage,
            &mut dx.storage,
            &mut dgamma.storage,
            &mut dbeta.storage,
            dims,
        );
        Ok(())
    }

    fn cross_entropy(
        &self,
        logits: &CpuTensor,
        target: CeTarget<'_, Vec<f32>>,
        label_smoothing: f32,
        loss: &mut CpuTensor,
        grad: &mut CpuTensor,
    ) -> Result<()> {
        let (t, soft) = match target {
            CeTarget::Labels(t) => (t, false),
            CeTarget::Probs(t) => (t, true),
        };
        let (n, c) = ops::cross_entropy_check(logits.shape(), t.shape(), soft, label_smoothing, loss.shape(), grad.shape())?;
        let target = if soft {
            loss::Target::Probs(t.data())
        } else {
            ops::check_labels(t.data(), c)?;
            loss::Target::Labels(t.data())
        };
        let mut rows = vec![0.0; n];
        loss::cross_entropy(logits.data(), &target, n, c, label_smoothing, &mut rows, &mut grad.storage);
        loss.storage[0] = rows.iter().map(|&v| v as f64).sum::<f64>() as f32;
        Ok(())
    }

    fn argmax_rows(&self, x: &CpuTensor, out: &mut CpuTensor) -> Result<()> {
        let (n, c) = ops::rows_check("argmax_rows", x.shape(), out.shape())?;
        loss::argmax_rows(x.data(), n, c, &mut out.storage);
        Ok(())
    }

    fn correct_rows(&self, logits: &CpuTensor, labels: &CpuTensor, out: &mut CpuTensor) -> Result<()> {
        let (n, c) = ops::rows_check("correct_rows", logits.shape(), out.shape())?;
        ops::expect_shape("correct_rows", "labels", labels.shape(), &[n])?;
        loss::argmax_rows(logits.data(), n, c, &mut out.storage);
        for (o, l) in out.storage.iter_mut().zip(labels.data()) {
            *o = (*o == *l) as u8 as f32;
        }
        Ok(())
    }

    fn bias_act(&self, y: &mut CpuTensor, bias: &CpuTensor, act: Activation) -> Result<()> {
        let (_, c, p) = ops::channels("bias_act", y.shape(), bias.numel())?;
        channel::bias_act(&mut y.storage, &bias.storage, c, p, act);
        Ok(())
    }

    fn act_backward(&self, y: &CpuTensor, dy: &CpuTensor, dz: &mut CpuTensor, act: Activation) -> Result<()> {
        ops::same_shape("act_backward", &[("y", y.shape()), ("dy", dy.shape()), ("dz", dz.shape())])?;
        channel::act_backward(&y.storage, &dy.storage, &mut dz.storage, act);
        Ok(())
    }

    fn channel_sum(&self, a: &CpuTensor, out: &mut CpuTensor) -> Result<()> {
        let (n, c, p) = ops::channels("channel_sum", a.shape(), out.numel())?;
        channel::channel_sum(&a.storage, n, c, p, 1.0, &mut out.storage);
        Ok(())
    }

    fn add(&self, a: &CpuTensor, b: &CpuTensor, out: &mut CpuTensor) -> Result<()> {
        ops::same_shape("add", &[("a", a.shape()), ("b", b.shape()), ("out", out.shape())])?;
        elementwise::add(&a.storage, &b.storage, &mut out.storage);
        Ok(())
    }

    fn mul(&self, a: &CpuTensor, b: &CpuTensor, out: &mut CpuTensor) -> Result<()> {
        ops::same_shape("mul", &[("a", a.shape()), ("b", b.shape()), ("out", out.shape())])?;
        elementwise::mul(&a.storage, &b.storage, &mut out.storage);
        Ok(())
    }

    fn copy(&self, x: &CpuTensor, y: &mut CpuTensor) -> Result<()> {
        ops::same_shape("copy", &[("x", &[x.numel()]), ("y", &[y.numel()])])?;
        y.storage.copy_from_slice(&x.storage);
        Ok(())
    }

    fn scale(&self, a: &CpuTensor, alpha: f32, out: &mut CpuTensor) -> Result<()> {
        ops::same_shape("scale", &[("a", a.shape()), ("out", out.shape())])?;
        elementwise::scale(&a.storage, alpha, &mut out.storage);
        Ok(())
    }

    fn relu(&self, x: &CpuTensor, y: &mut CpuTensor) -> Result<()> {
        ops::same_shape("relu", &[("x", x.shape()), ("y", y.shape())])?;
        relu::relu_forward(&x.storage, &mut y.storage);
        Ok(())
    }

    fn relu_backward(&self, x: &CpuTensor, dy: &CpuTensor, dx: &mut CpuTensor) -> Result<()> {
        ops::same_shape("relu_backward", &[("x", x.shape()), ("dy", dy.shape()), ("dx", dx.shape())])?;
        relu::relu_backward(&x.storage, &dy.storage, &mut dx.storage);
        Ok(())
    }

    fn dropout(&self, x: &CpuTensor, out: &mut CpuTensor, mask: &DropoutMask) -> Result<()> {
        ops::same_shape("dropout", &[("x", x.shape()), ("out", out.shape())])?;
        dropout::dropout(mask, &x.storage, &mut out.storage);
        Ok(())
    }

    fn sum(&self, x: &CpuTensor, out: &mut CpuTensor) -> Result<()> {
        ops::scalar_out("sum", x.shape(), out.shape())?;
        out.storage[0] = reduce::sum(&x.storage);
        Ok(())
    }

    fn sum_squares(&self, x: &CpuTensor, out: &mut CpuTensor) -> Result<()> {
        ops::scalar_out("sum_squares", x.shape(), out.shape())?;
        out.storage[0] = reduce::sum_squares(&x.storage);
        Ok(())
    }

    fn optimizer_step(
        &self,
        opt: &Optimizer,
        t: u64,
        param: &mut CpuTensor,
        grad: &CpuTensor,
        s1: &mut CpuTensor,
        s2: &mut CpuTensor,
    ) -> Result<()> {
        let n = ops::optimizer_shapes(opt, param.shape(), grad.shape(), s1.shape(), s2.shape())?;
        // Unused state may be a placeholder: give the rule scratch space it will not read.
        let (mut spare1, mut spare2) = (Vec::new(), Vec::new());
        let s1: &mut [f32] = if s1.numel() == n {
            &mut s1.storage
        } else {
            spare1.resize(n, 0.0);
            &mut spare1
        };
        let s2: &mut [f32] = if s2.numel() == n {
            &mut s2.storage
        } else {
            spare2.resize(n, 0.0);
            &mut spare2
        };
        optimizer::step(opt, &opt.step_scalars(t), &mut param.storage, &grad.storage, s1, s2);
        Ok(())
    }

    fn clip_grad_norm_all(&self, grads: &mut [CpuTensor], max_norm: f32, sumsq: &mut CpuTensor) -> Result<()> {
        ops::scalar_out("clip_grad_norm_all", &[1], sumsq.shape())?;
        let total: f64 = grads.iter().map(|g| reduce::sum_squares(g.data()) as f64).sum();
        sumsq.storage[0] = total as f32;
        for g in grads.iter_mut() {
            optimizer::clip_by_norm(&mut g.storage, total as f32, max_norm);
        }
        Ok(())
    }

    fn clip_grad_norm(&self, grad: &mut CpuTensor, max_norm: f32, sumsq: &mut CpuTensor) -> Result<()> {
        self.sum_squares(grad, sumsq)?;
        optimizer::clip_by_norm(&mut grad.storage, sumsq.storage[0], max_norm);
        Ok(())
    }
}
