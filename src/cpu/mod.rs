//! The CPU backend: the reference. Plain loops, one file per op family, named as the shader
//! they define (`cpu/matmul.rs` <-> `shaders/matmul_v*.wgsl`). Tests compare the GPU to these.
//! Operands arrive checked (see [`crate::backend`]): each method here only computes.

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

use crate::backend::{Backend, T};
use crate::ops::pool::GlobalPoolDims;
use crate::ops::{self, Activation, BatchNormDims, ChannelDims, ConvDims, CrossEntropyDims, DropoutMask, MatmulDims, MatmulSpec};
use crate::ops::{Optimizer, PoolDims};
use crate::tensor::{CpuTensor, Tensor};
use crate::Result;

/// The activation a fused op ends with, applied to its output (batch norm with a ReLU fused in).
fn activate(y: &mut [f32], act: Activation) {
    match act {
        Activation::Identity => {}
        Activation::Relu => relu::relu_in_place(y),
    }
}

/// The reference backend. Stateless: tensors are `Vec<f32>`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu;

impl Backend for Cpu {
    type Storage = Vec<f32>;

    fn name(&self) -> String {
        "cpu (reference)".into()
    }

    fn zeros(&self, shape: &[usize]) -> Result<CpuTensor> {
        let n = crate::tensor::checked_numel(shape)
            .ok_or_else(|| crate::Error::Invalid(format!("tensor of shape {shape:?}: more elements than can be counted")))?;
        Ok(Tensor::from_parts(shape, crate::tensor::try_zeros(n)?))
    }

    fn write_unchecked(&self, t: &mut CpuTensor, data: &[f32]) -> Result<()> {
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

    fn matmul_unchecked(&self, a: &CpuTensor, b: &CpuTensor, c: &mut CpuTensor, d: &MatmulDims, spec: MatmulSpec) -> Result<()> {
        matmul::matmul(&a.storage, &b.storage, &mut c.storage, d, spec);
        Ok(())
    }

    fn conv2d_unchecked(&self, x: &CpuTensor, w: &CpuTensor, bias: Option<&CpuTensor>, y: &mut CpuTensor, d: &ConvDims) -> Result<()> {
        conv2d::forward(&x.storage, &w.storage, bias.map(|b| b.data()), &mut y.storage, d);
        Ok(())
    }

    fn conv2d_backward_data_unchecked(&self, dy: &CpuTensor, w: &CpuTensor, dx: &mut CpuTensor, d: &ConvDims) -> Result<()> {
        conv2d::backward_data(&dy.storage, &w.storage, &mut dx.storage, d);
        Ok(())
    }

    fn conv2d_backward_filter_unchecked(&self, x: &CpuTensor, dy: &CpuTensor, dw: &mut CpuTensor, d: &ConvDims) -> Result<()> {
        conv2d::backward_filter(&x.storage, &dy.storage, &mut dw.storage, d);
        Ok(())
    }

    fn max_pool2d_unchecked(&self, x: &CpuTensor, y: &mut CpuTensor, idx: &mut CpuTensor, d: &PoolDims) -> Result<()> {
        pool::max_pool_forward(&x.storage, &mut y.storage, &mut idx.storage, d);
        Ok(())
    }

    fn max_pool2d_backward_unchecked(&self, dy: &CpuTensor, idx: &CpuTensor, dx: &mut CpuTensor, d: &PoolDims) -> Result<()> {
        pool::max_pool_backward(&dy.storage, &idx.storage, &mut dx.storage, d);
        Ok(())
    }

    fn avg_pool2d_unchecked(&self, x: &CpuTensor, y: &mut CpuTensor, d: &PoolDims) -> Result<()> {
        pool::avg_pool_forward(&x.storage, &mut y.storage, d);
        Ok(())
    }

    fn avg_pool2d_backward_unchecked(&self, dy: &CpuTensor, dx: &mut CpuTensor, d: &PoolDims) -> Result<()> {
        pool::avg_pool_backward(&dy.storage, &mut dx.storage, d);
        Ok(())
    }

    fn global_avg_pool_unchecked(&self, x: &CpuTensor, y: &mut CpuTensor, d: &GlobalPoolDims) -> Result<()> {
        pool::global_avg_forward(&x.storage, &mut y.storage, d.hw);
        Ok(())
    }

    fn global_avg_pool_backward_unchecked(&self, dy: &CpuTensor, dx: &mut CpuTensor, d: &GlobalPoolDims) -> Result<()> {
        pool::global_avg_backward(&dy.storage, &mut dx.storage, d.hw);
        Ok(())
    }

    fn batch_norm_train_unchecked(
        &self,
        x: &CpuTensor,
        gamma: &CpuTensor,
        beta: &CpuTensor,
        running_mean: &mut CpuTensor,
        running_var: &mut CpuTensor,
        y: &mut CpuTensor,
        save_mean: &mut CpuTensor,
        save_invstd: &mut CpuTensor,
        d: &BatchNormDims,
        momentum: f32,
        eps: f32,
    ) -> Result<()> {
        batch_norm::forward_train(
            &x.storage,
            &gamma.storage,
            &beta.storage,
            &mut running_mean.storage,
            &mut running_var.storage,
            &mut y.storage,
            &mut save_mean.storage,
            &mut save_invstd.storage,
            (d.n, d.c, d.p),
            momentum,
            eps,
        );
        activate(&mut y.storage, d.act);
        Ok(())
    }

    fn batch_norm_eval_unchecked(
        &self,
        x: &CpuTensor,
        gamma: &CpuTensor,
        beta: &CpuTensor,
        running_mean: &CpuTensor,
        running_var: &CpuTensor,
        y: &mut CpuTensor,
        d: &BatchNormDims,
        eps: f32,
    ) -> Result<()> {
        batch_norm::forward_eval(
            &x.storage,
            &gamma.storage,
            &beta.storage,
            &running_mean.storage,
            &running_var.storage,
            &mut y.storage,
            (d.n, d.c, d.p),
            eps,
        );
        activate(&mut y.storage, d.act);
        Ok(())
    }

    fn batch_norm_backward_unchecked(
        &self,
        x: &CpuTensor,
        dy: &CpuTensor,
        gamma: &CpuTensor,
        save_mean: &CpuTensor,
        save_invstd: &CpuTensor,
        dx: &mut CpuTensor,
        dgamma: &mut CpuTensor,
        dbeta: &mut CpuTensor,
        d: &BatchNormDims,
    ) -> Result<()> {
        batch_norm::backward(
            &x.storage,
            &dy.storage,
            &gamma.storage,
            &save_mean.storage,
            &save_invstd.storage,
            &mut dx.storage,
            &mut dgamma.storage,
            &mut dbeta.storage,
            (d.n, d.c, d.p),
        );
        Ok(())
    }

    fn batch_norm_backward_eval_unchecked(
        &self,
        x: &CpuTensor,
        dy: &CpuTensor,
        gamma: &CpuTensor,
        running_mean: &CpuTensor,
        running_var: &CpuTensor,
        dx: Option<&mut CpuTensor>,
        param_grads: Option<(&mut CpuTensor, &mut CpuTensor)>,
        d: &BatchNormDims,
        eps: f32,
    ) -> Result<()> {
        batch_norm::backward_eval(
            &x.storage,
            &dy.storage,
            &gamma.storage,
            &running_mean.storage,
            &running_var.storage,
            dx.map(|t| &mut t.storage[..]),
            param_grads.map(|(g, b)| (&mut g.storage[..], &mut b.storage[..])),
            (d.n, d.c, d.p),
            eps,
        );
        Ok(())
    }

    fn batch_norm_stats_unchecked(&self, x: &CpuTensor, mean: &mut CpuTensor, var: &mut CpuTensor, d: &BatchNormDims) -> Result<()> {
        batch_norm::stats(&x.storage, &mut mean.storage, &mut var.storage, (d.n, d.c, d.p));
        Ok(())
    }

    fn batch_norm_train_from_stats_unchecked(
        &self,
        x: &CpuTensor,
        gamma: &CpuTensor,
        beta: &CpuTensor,
        mean: &CpuTensor,
        var: &CpuTensor,
        count: f32,
        running_mean: &mut CpuTensor,
        running_var: &mut CpuTensor,
        y: &mut CpuTensor,
        save_mean: &mut CpuTensor,
        save_invstd: &mut CpuTensor,
        d: &BatchNormDims,
        momentum: f32,
        eps: f32,
    ) -> Result<()> {
        batch_norm::forward_from_stats(
            &x.storage,
            &gamma.storage,
            &beta.storage,
            &mean.storage,
            &var.storage,
            count,
            &mut running_mean.storage,
            &mut running_var.storage,
            &mut y.storage,
            &mut save_mean.storage,
            &mut save_invstd.storage,
            (d.n, d.c, d.p),
            momentum,
            eps,
        );
        activate(&mut y.storage, d.act);
        Ok(())
    }

    fn batch_norm_backward_sums_unchecked(
        &self,
        x: &CpuTensor,
        dy: &CpuTensor,
        save_mean: &CpuTensor,
        sdy: &mut CpuTensor,
        sdyx: &mut CpuTensor,
        d: &BatchNormDims,
    ) -> Result<()> {
        batch_norm::backward_sums(&x.storage, &dy.storage, &save_mean.storage, &mut sdy.storage, &mut sdyx.storage, (d.n, d.c, d.p));
        Ok(())
    }

    fn batch_norm_backward_from_sums_unchecked(
        &self,
        x: &CpuTensor,
        dy: &CpuTensor,
        gamma: &CpuTensor,
        save_mean: &CpuTensor,
        save_invstd: &CpuTensor,
        local: (&CpuTensor, &CpuTensor),
        global: (&CpuTensor, &CpuTensor),
        count: f32,
        dx: &mut CpuTensor,
        dgamma: &mut CpuTensor,
        dbeta: &mut CpuTensor,
        d: &BatchNormDims,
    ) -> Result<()> {
        batch_norm::backward_from_sums(
            &x.storage,
            &dy.storage,
            &gamma.storage,
            &save_mean.storage,
            &save_invstd.storage,
            (&local.0.storage, &local.1.storage),
            (&global.0.storage, &global.1.storage),
            count,
            &mut dx.storage,
            &mut dgamma.storage,
            &mut dbeta.storage,
            (d.n, d.c, d.p),
        );
        Ok(())
    }

    fn cross_entropy_unchecked(
        &self,
        logits: &CpuTensor,
        target: &CpuTensor,
        soft: bool,
        label_smoothing: f32,
        loss: &mut CpuTensor,
        grad: &mut CpuTensor,
        d: &CrossEntropyDims,
    ) -> Result<()> {
        let target = if soft {
            loss::Target::Probs(target.data())
        } else {
            // The values of labels can only be checked where they are on the host.
            ops::loss::check_labels(target.data(), d.c)?;
            loss::Target::Labels(target.data())
        };
        let mut rows = vec![0.0; d.n];
        loss::cross_entropy(logits.data(), &target, d.n, d.c, label_smoothing, &mut rows, &mut grad.storage);
        loss.storage[0] = rows.iter().map(|&v| v as f64).sum::<f64>() as f32;
        Ok(())
    }

    fn argmax_rows_unchecked(&self, x: &CpuTensor, out: &mut CpuTensor, d: &CrossEntropyDims) -> Result<()> {
        loss::argmax_rows(x.data(), d.n, d.c, &mut out.storage);
        Ok(())
    }

    fn correct_rows_unchecked(&self, logits: &CpuTensor, labels: &CpuTensor, out: &mut CpuTensor, d: &CrossEntropyDims) -> Result<()> {
        loss::argmax_rows(logits.data(), d.n, d.c, &mut out.storage);
        for (o, l) in out.storage.iter_mut().zip(labels.data()) {
            *o = (*o == *l) as u8 as f32;
        }
        Ok(())
    }

    fn bias_act_unchecked(&self, y: &mut CpuTensor, bias: &CpuTensor, d: &ChannelDims, act: Activation) -> Result<()> {
        channel::bias_act(&mut y.storage, &bias.storage, d.c, d.p, act);
        Ok(())
    }

    fn act_backward_unchecked(&self, y: &CpuTensor, dy: &CpuTensor, dz: &mut CpuTensor, act: Activation) -> Result<()> {
        channel::act_backward(&y.storage, &dy.storage, &mut dz.storage, act);
        Ok(())
    }

    fn channel_sum_unchecked(&self, a: &CpuTensor, out: &mut CpuTensor, d: &ChannelDims) -> Result<()> {
        channel::channel_sum(&a.storage, d.n, d.c, d.p, 1.0, &mut out.storage);
        Ok(())
    }

    fn add_unchecked(&self, a: &CpuTensor, b: &CpuTensor, out: &mut CpuTensor, _n: usize) -> Result<()> {
        elementwise::add(&a.storage, &b.storage, &mut out.storage);
        Ok(())
    }

    fn add_relu_unchecked(&self, a: &CpuTensor, b: &CpuTensor, out: &mut CpuTensor, _n: usize) -> Result<()> {
        elementwise::add_relu(&a.storage, &b.storage, &mut out.storage);
        Ok(())
    }

    fn mul_unchecked(&self, a: &CpuTensor, b: &CpuTensor, out: &mut CpuTensor, _n: usize) -> Result<()> {
        elementwise::mul(&a.storage, &b.storage, &mut out.storage);
        Ok(())
    }

    fn copy_unchecked(&self, x: &CpuTensor, y: &mut CpuTensor, _n: usize) -> Result<()> {
        y.storage.copy_from_slice(&x.storage);
        Ok(())
    }

    fn scale_unchecked(&self, a: &CpuTensor, alpha: f32, out: &mut CpuTensor, _n: usize) -> Result<()> {
        elementwise::scale(&a.storage, alpha, &mut out.storage);
        Ok(())
    }

    fn relu_unchecked(&self, x: &CpuTensor, y: &mut CpuTensor, _n: usize) -> Result<()> {
        relu::relu_forward(&x.storage, &mut y.storage);
        Ok(())
    }

    fn relu_in_place_unchecked(&self, y: &mut CpuTensor, _n: usize) -> Result<()> {
        relu::relu_in_place(&mut y.storage);
        Ok(())
    }

    fn relu_backward_in_place_unchecked(&self, y: &CpuTensor, dy: &mut CpuTensor, _n: usize) -> Result<()> {
        relu::relu_backward_in_place(&y.storage, &mut dy.storage);
        Ok(())
    }

    fn relu_backward_unchecked(&self, x: &CpuTensor, dy: &CpuTensor, dx: &mut CpuTensor, _n: usize) -> Result<()> {
        relu::relu_backward(&x.storage, &dy.storage, &mut dx.storage);
        Ok(())
    }

    fn dropout_unchecked(&self, x: &CpuTensor, out: &mut CpuTensor, mask: &DropoutMask, _n: usize) -> Result<()> {
        dropout::dropout(mask, &x.storage, &mut out.storage);
        Ok(())
    }

    fn sum_unchecked(&self, x: &CpuTensor, out: &mut CpuTensor, _n: usize, squares: bool) -> Result<()> {
        out.storage[0] = if squares { reduce::sum_squares(&x.storage) } else { reduce::sum(&x.storage) };
        Ok(())
    }

    fn optimizer_step_unchecked(
        &self,
        opt: &Optimizer,
        t: u64,
        n: usize,
        param: &mut CpuTensor,
        grad: &CpuTensor,
        s1: &mut CpuTensor,
        s2: &mut CpuTensor,
    ) -> Result<()> {
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

    fn clip_grad_norm_all_unchecked(&self, grads: &mut [T<Self>], max_norm: f32, sumsq: &mut CpuTensor) -> Result<()> {
        let total: f64 = grads.iter().map(|g| reduce::sum_squares(g.data()) as f64).sum();
        sumsq.storage[0] = total as f32;
        for g in grads.iter_mut() {
            optimizer::clip_by_norm(&mut g.storage, total as f32, max_norm);
        }
        Ok(())
    }
}
