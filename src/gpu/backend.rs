//! [`Backend`] for [`Gpu`]: memory (pooled buffers, arenas, uploads and read-backs through the
//! recorder) and each op's `*_unchecked` kernel, which hands its resolved sizes to the op
//! family's host file (`conv2d.rs`, `pool.rs`, ...). Shapes were checked by the trait's public
//! methods; only device limits (dispatch sizes, binding sizes, u32 indices) are checked here.

use std::sync::mpsc;

use super::{kernels, Gpu, GpuBuffer, GpuTensor};
use crate::backend::{Backend, T};
use crate::ops::pool::GlobalPoolDims;
use crate::ops::PoolDims;
use crate::ops::{Activation, BatchNormDims, ChannelDims, ConvDims, CrossEntropyDims, DropoutMask, MatmulDims, MatmulSpec, Optimizer};
use crate::tensor::{numel, Tensor};
use crate::{Error, Result};

impl Backend for Gpu {
    type Storage = GpuBuffer;

    fn name(&self) -> String {
        format!("gpu ({}, {:?})", self.ctx.info.name, self.ctx.info.backend)
    }

    fn profile_scope(&self, layer: &str, phase: &'static str) {
        self.set_profile_scope(layer, phase);
    }

    fn zeros(&self, shape: &[usize]) -> Result<GpuTensor> {
        let t = self.alloc(shape)?;
        self.clear(&t);
        Ok(t)
    }

    fn upload(&self, shape: &[usize], data: &[f32]) -> Result<GpuTensor> {
        // No clear first: the write covers the whole tensor.
        let mut t = self.alloc(shape)?;
        self.write(&mut t, data)?;
        Ok(t)
    }

    fn write_unchecked(&self, t: &mut GpuTensor, data: &[f32]) -> Result<()> {
        // Commands recorded before this write must see the old contents: submit them first
        // (queue writes take effect before the *next* submission).
        let mut rec = self.lock();
        if rec.encoder.is_some() {
            self.flush_locked(&mut rec)?;
        }
        if !data.is_empty() {
            self.ctx.queue.write_buffer(t.storage.buffer(), t.storage.offset(), bytemuck::cast_slice(data));
        }
        Ok(())
    }

    fn download(&self, t: &GpuTensor) -> Result<Vec<f32>> {
        self.download_all(&[t])
    }

    /// Every tensor copied into one staging buffer in one submission, and one wait (a model's
    /// gradient arena read back per data-parallel step).
    fn download_all(&self, ts: &[&GpuTensor]) -> Result<Vec<f32>> {
        let bytes: u64 = ts.iter().map(|t| t.numel() as u64 * 4).sum();
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = self.staging.get(bytes);
        let index = {
            let mut rec = self.lock();
            let encoder = self.encoder_locked(&mut rec);
            let mut at = 0;
            for t in ts {
                let n = t.numel() as u64 * 4;
                if n > 0 {
                    encoder.copy_buffer_to_buffer(t.storage.buffer(), t.storage.offset(), staging.buffer(), at, n);
                }
                at += n;
            }
            self.flush_locked(&mut rec)?
        };
        let (tx, rx) = mpsc::channel();
        staging.buffer().slice(..bytes).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait(index)?;
        rx.recv()
            .map_err(|_| Error::Gpu { context: "reading back a tensor".into(), message: "map callback never ran".into() })?
            .map_err(|e| Error::Gpu { context: "reading back a tensor".into(), message: e.to_string() })?;
        let out = {
            let view = staging
                .buffer()
                .slice(..bytes)
                .get_mapped_range()
                .map_err(|e| Error::Gpu { context: "reading back a tensor".into(), message: e.to_string() })?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        staging.buffer().unmap();
        Ok(out)
    }

    fn memory(&self) -> crate::backend::MemoryInfo {
        let ctx = self.context();
        // Dropout masks and sums index elements with u32.
        let max_tensor_bytes = self.max_binding_bytes().min(ctx.limits.max_buffer_size).min(u32::MAX as u64 * 4);
        crate::backend::MemoryInfo {
            kind: crate::backend::MemoryKind::Gpu { on_host: ctx.info.device_type == wgpu::DeviceType::Cpu },
            max_tensor_bytes,
            arena_align: self.binding_align(),
            allocated_bytes: ctx.device.generate_allocator_report().map(|r| r.total_allocated_bytes),
        }
    }

    fn trim(&self) {
        Gpu::trim(self);
    }

    fn sync(&self) -> Result<()> {
        let index = {
            let mut rec = self.lock();
            self.flush_locked(&mut rec)?
        };
        self.wait(index)
    }

    fn arena(&self, shapes: &[Vec<usize>]) -> Result<Vec<GpuTensor>> {
        let align = self.binding_align();
        let mut offsets = Vec::with_capacity(shapes.len());
        let mut total = 0usize;
        for s in shapes {
            offsets.push(total);
            total += numel(s).next_multiple_of(align).max(align);
        }
        let whole = self.zeros(&[total])?;
        Ok(shapes
            .iter()
            .zip(offsets)
            .map(|(s, off)| Tensor::from_parts(s, whole.storage.view(off as u64 * 4, numel(s) as u64 * 4)))
            .collect())
    }

    fn matmul_unchecked(&self, a: &GpuTensor, b: &GpuTensor, c: &mut GpuTensor, d: &MatmulDims, spec: MatmulSpec) -> Result<()> {
        self.gemm(
            self.tuned_variant(d, spec),
            super::matmul::Operand::of(a),
            super::matmul::Operand::of(b),
            super::matmul::Operand::of(c),
            d,
            spec,
        )
    }

    fn conv2d_unchecked(&self, x: &GpuTensor, w: &GpuTensor, bias: Option<&GpuTensor>, y: &mut GpuTensor, d: &ConvDims) -> Result<()> {
        self.conv2d_impl(x, w, bias, y, d)
    }

    fn conv2d_backward_data_unchecked(&self, dy: &GpuTensor, w: &GpuTensor, dx: &mut GpuTensor, d: &ConvDims) -> Result<()> {
        self.conv2d_backward_data_impl(dy, w, dx, d)
    }

    fn conv2d_backward_filter_unchecked(&self, x: &GpuTensor, dy: &GpuTensor, dw: &mut GpuTensor, d: &ConvDims) -> Result<()> {
        self.conv2d_backward_filter_impl(x, dy, dw, d)
    }

    fn max_pool2d_unchecked(&self, x: &GpuTensor, y: &mut GpuTensor, idx: &mut GpuTensor, d: &PoolDims) -> Result<()> {
        self.max_pool_impl(x, y, idx, d)
    }

    fn max_pool2d_backward_unchecked(&self, dy: &GpuTensor, idx: &GpuTensor, dx: &mut GpuTensor, d: &PoolDims) -> Result<()> {
        self.max_pool_backward_impl(dy, idx, dx, d)
    }

    fn avg_pool2d_unchecked(&self, x: &GpuTensor, y: &mut GpuTensor, d: &PoolDims) -> Result<()> {
        self.avg_pool_impl(x, y, d)
    }

    fn avg_pool2d_backward_unchecked(&self, dy: &GpuTensor, dx: &mut GpuTensor, d: &PoolDims) -> Result<()> {
        self.avg_pool_backward_impl(dy, dx, d)
    }

    fn global_avg_pool_unchecked(&self, x: &GpuTensor, y: &mut GpuTensor, d: &GlobalPoolDims) -> Result<()> {
        self.global_avg_impl(x, y, d.planes, d.hw, false)
    }

    fn global_avg_pool_backward_unchecked(&self, dy: &GpuTensor, dx: &mut GpuTensor, d: &GlobalPoolDims) -> Result<()> {
        self.global_avg_impl(dy, dx, d.planes, d.hw, true)
    }

    fn batch_norm_train_unchecked(
        &self,
        x: &GpuTensor,
        gamma: &GpuTensor,
        beta: &GpuTensor,
        running_mean: &mut GpuTensor,
        running_var: &mut GpuTensor,
        y: &mut GpuTensor,
        save_mean: &mut GpuTensor,
        save_invstd: &mut GpuTensor,
        d: &BatchNormDims,
        momentum: f32,
        eps: f32,
    ) -> Result<()> {
        self.batch_norm_train_impl(
            x,
            gamma,
            beta,
            running_mean,
            running_var,
            y,
            save_mean,
            save_invstd,
            (d.n, d.c, d.p),
            momentum,
            eps,
            d.act,
        )
    }

    fn batch_norm_eval_unchecked(
        &self,
        x: &GpuTensor,
        gamma: &GpuTensor,
        beta: &GpuTensor,
        running_mean: &GpuTensor,
        running_var: &GpuTensor,
        y: &mut GpuTensor,
        d: &BatchNormDims,
        eps: f32,
    ) -> Result<()> {
        self.batch_norm_eval_impl(x, gamma, beta, running_mean, running_var, y, (d.n, d.c, d.p), eps, d.act)
    }

    fn batch_norm_backward_unchecked(
        &self,
        x: &GpuTensor,
        dy: &GpuTensor,
        gamma: &GpuTensor,
        save_mean: &GpuTensor,
        save_invstd: &GpuTensor,
        dx: &mut GpuTensor,
        dgamma: &mut GpuTensor,
        dbeta: &mut GpuTensor,
        d: &BatchNormDims,
    ) -> Result<()> {
        self.batch_norm_backward_impl(x, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta, (d.n, d.c, d.p))
    }

    fn batch_norm_stats_unchecked(&self, x: &GpuTensor, mean: &mut GpuTensor, var: &mut GpuTensor, d: &BatchNormDims) -> Result<()> {
        self.batch_norm_stats_impl(x, mean, var, (d.n, d.c, d.p))
    }

    fn batch_norm_train_from_stats_unchecked(
        &self,
        x: &GpuTensor,
        gamma: &GpuTensor,
        beta: &GpuTensor,
        mean: &GpuTensor,
        var: &GpuTensor,
        count: f32,
        running_mean: &mut GpuTensor,
        running_var: &mut GpuTensor,
        y: &mut GpuTensor,
        save_mean: &mut GpuTensor,
        save_invstd: &mut GpuTensor,
        d: &BatchNormDims,
        momentum: f32,
        eps: f32,
    ) -> Result<()> {
        let dims = (d.n, d.c, d.p);
        self.batch_norm_train_from_stats_impl(
            x,
            gamma,
            beta,
            mean,
            var,
            count,
            running_mean,
            running_var,
            y,
            save_mean,
            save_invstd,
            dims,
            momentum,
            eps,
            d.act,
        )
    }

    fn batch_norm_backward_sums_unchecked(
        &self,
        x: &GpuTensor,
        dy: &GpuTensor,
        save_mean: &GpuTensor,
        sdy: &mut GpuTensor,
        sdyx: &mut GpuTensor,
        d: &BatchNormDims,
    ) -> Result<()> {
        self.batch_norm_backward_sums_impl(x, dy, save_mean, sdy, sdyx, (d.n, d.c, d.p))
    }

    fn batch_norm_backward_from_sums_unchecked(
        &self,
        x: &GpuTensor,
        dy: &GpuTensor,
        gamma: &GpuTensor,
        save_mean: &GpuTensor,
        save_invstd: &GpuTensor,
        local: (&GpuTensor, &GpuTensor),
        global: (&GpuTensor, &GpuTensor),
        count: f32,
        dx: &mut GpuTensor,
        dgamma: &mut GpuTensor,
        dbeta: &mut GpuTensor,
        d: &BatchNormDims,
    ) -> Result<()> {
        let dims = (d.n, d.c, d.p);
        self.batch_norm_backward_from_sums_impl(x, dy, gamma, save_mean, save_invstd, local, Some(global), count, dx, dgamma, dbeta, dims)
    }

    fn batch_norm_backward_eval_unchecked(
        &self,
        x: &GpuTensor,
        dy: &GpuTensor,
        gamma: &GpuTensor,
        running_mean: &GpuTensor,
        running_var: &GpuTensor,
        dx: Option<&mut GpuTensor>,
        param_grads: Option<(&mut GpuTensor, &mut GpuTensor)>,
        d: &BatchNormDims,
        eps: f32,
    ) -> Result<()> {
        let grads = param_grads.map(|(g, b)| (&*g, &*b));
        self.batch_norm_backward_eval_impl(x, dy, gamma, running_mean, running_var, dx.map(|t| &*t), grads, (d.n, d.c, d.p), eps)
    }

    fn cross_entropy_unchecked(
        &self,
        logits: &GpuTensor,
        target: &GpuTensor,
        soft: bool,
        label_smoothing: f32,
        loss: &mut GpuTensor,
        grad: &mut GpuTensor,
        d: &CrossEntropyDims,
    ) -> Result<()> {
        self.cross_entropy_impl(logits, target, soft, (d.n, d.c), label_smoothing, loss, grad)
    }

    fn argmax_rows_unchecked(&self, x: &GpuTensor, out: &mut GpuTensor, d: &CrossEntropyDims) -> Result<()> {
        self.argmax_impl(x, None, (d.n, d.c), out)
    }

    fn correct_rows_unchecked(&self, logits: &GpuTensor, labels: &GpuTensor, out: &mut GpuTensor, d: &CrossEntropyDims) -> Result<()> {
        self.argmax_impl(logits, Some(labels), (d.n, d.c), out)
    }

    fn bias_act_unchecked(&self, y: &mut GpuTensor, bias: &GpuTensor, d: &ChannelDims, act: Activation) -> Result<()> {
        self.bias_act_impl(y, bias, (d.c, d.p), act)
    }

    fn act_backward_unchecked(&self, y: &GpuTensor, dy: &GpuTensor, dz: &mut GpuTensor, act: Activation) -> Result<()> {
        self.act_backward_impl(y, dy, dz, act)
    }

    fn channel_sum_unchecked(&self, a: &GpuTensor, out: &mut GpuTensor, d: &ChannelDims) -> Result<()> {
        self.channel_reduce(&kernels::CHANNEL_SUM, a, None, None, (d.n, d.c, d.p), 1.0, &[out])
    }

    fn add_unchecked(&self, a: &GpuTensor, b: &GpuTensor, out: &mut GpuTensor, n: usize) -> Result<()> {
        self.elementwise("add", &kernels::ADD, n, &[a, b], out, 0.0)
    }

    fn add_relu_unchecked(&self, a: &GpuTensor, b: &GpuTensor, out: &mut GpuTensor, n: usize) -> Result<()> {
        self.elementwise("add_relu", &kernels::ADD_RELU, n, &[a, b], out, 0.0)
    }

    fn mul_unchecked(&self, a: &GpuTensor, b: &GpuTensor, out: &mut GpuTensor, n: usize) -> Result<()> {
        self.elementwise("mul", &kernels::MUL, n, &[a, b], out, 0.0)
    }

    fn copy_unchecked(&self, x: &GpuTensor, y: &mut GpuTensor, n: usize) -> Result<()> {
        // out = 1 * x is exact.
        self.elementwise("copy", &kernels::SCALE, n, &[x], y, 1.0)
    }

    fn scale_unchecked(&self, a: &GpuTensor, alpha: f32, out: &mut GpuTensor, n: usize) -> Result<()> {
        self.elementwise("scale", &kernels::SCALE, n, &[a], out, alpha)
    }

    fn relu_unchecked(&self, x: &GpuTensor, y: &mut GpuTensor, n: usize) -> Result<()> {
        self.elementwise("relu", &kernels::RELU_FORWARD, n, &[x], y, 0.0)
    }

    fn relu_backward_unchecked(&self, x: &GpuTensor, dy: &GpuTensor, dx: &mut GpuTensor, n: usize) -> Result<()> {
        self.elementwise("relu_backward", &kernels::RELU_BACKWARD, n, &[x, dy], dx, 0.0)
    }

    fn relu_in_place_unchecked(&self, y: &mut GpuTensor, n: usize) -> Result<()> {
        self.elementwise("relu", &kernels::RELU_IN_PLACE, n, &[], y, 0.0)
    }

    fn relu_backward_in_place_unchecked(&self, y: &GpuTensor, dy: &mut GpuTensor, n: usize) -> Result<()> {
        self.elementwise("relu_backward", &kernels::RELU_BACKWARD_IN_PLACE, n, &[y], dy, 0.0)
    }

    fn dropout_unchecked(&self, x: &GpuTensor, out: &mut GpuTensor, mask: &DropoutMask, n: usize) -> Result<()> {
        if n as u64 > u32::MAX as u64 {
            return Err(Error::Limit {
                op: "dropout",
                what: "elements (mask indices are u32)".into(),
                got: n as u64,
                limit: u32::MAX as u64,
            });
        }
        self.dropout_impl(x, out, mask)
    }

    fn sum_unchecked(&self, x: &GpuTensor, out: &mut GpuTensor, _n: usize, squares: bool) -> Result<()> {
        self.sum_into(x, out, squares)
    }

    fn optimizer_step_unchecked(
        &self,
        opt: &Optimizer,
        t: u64,
        n: usize,
        param: &mut GpuTensor,
        grad: &GpuTensor,
        s1: &mut GpuTensor,
        s2: &mut GpuTensor,
    ) -> Result<()> {
        self.optimizer_step_impl(opt, t, n, param, grad, s1, s2)
    }

    fn optimizer_step_all_unchecked(
        &self,
        opt: &Optimizer,
        t: u64,
        params: &mut [GpuTensor],
        grads: &[GpuTensor],
        s1: &mut [GpuTensor],
        s2: &mut [GpuTensor],
    ) -> Result<()> {
        let used = opt.state_tensors();
        // One dispatch when every list is one arena laid out alike (padding included: it is
        // zero in all of them and stays zero); otherwise one per tensor.
        let fused = || -> Option<[GpuTensor; 4]> {
            let state = |list: &[GpuTensor], needed: bool| -> Option<GpuTensor> {
                if !needed {
                    return self.alloc(&[1]).ok(); // placeholder, never touched
                }
                if same_layout(params, list) {
                    span(list)
                } else {
                    None
                }
            };
            if !same_layout(params, grads) {
                return None;
            }
            Some([span(params)?, span(grads)?, state(s1, used >= 1)?, state(s2, used >= 2)?])
        };
        if let Some([p, g, a, b]) = fused() {
            return self.optimizer_step_impl(opt, t, p.numel(), &p, &g, &a, &b);
        }
        for (((p, g), a), b) in params.iter_mut().zip(grads).zip(s1.iter_mut()).zip(s2.iter_mut()) {
            self.optimizer_step_impl(opt, t, p.numel(), p, g, a, b)?;
        }
        Ok(())
    }

    fn clip_grad_norm_all_unchecked(&self, grads: &mut [T<Self>], max_norm: f32, sumsq: &mut GpuTensor) -> Result<()> {
        match span(grads) {
            Some(all) => self.clip_impl(&all, max_norm, sumsq),
            None => Err(Error::Invalid("clip_grad_norm_all: the gradients must come from one arena".into())),
        }
    }
}

/// One tensor covering a list of views of one buffer, from the first's start to the last's
/// end (padding between them included), if the list is such a list in increasing order.
fn span(list: &[GpuTensor]) -> Option<GpuTensor> {
    let first = list.first()?;
    let last = list.last()?;
    let ordered = list
        .windows(2)
        .all(|w| w[0].storage.same_buffer(&w[1].storage) && w[0].storage.offset() + w[0].storage.bytes() <= w[1].storage.offset());
    if !ordered {
        return None;
    }
    let bytes = last.storage.offset() + last.storage.bytes() - first.storage.offset();
    Some(Tensor::from_parts(&[(bytes / 4) as usize], first.storage.view(0, 0).widen(bytes)))
}

/// Whether two lists have the same relative layout in their buffers.
fn same_layout(a: &[GpuTensor], b: &[GpuTensor]) -> bool {
    let rel = |l: &[GpuTensor]| -> Vec<(u64, u64)> {
        l.iter().map(|t| (t.storage.offset() - l[0].storage.offset(), t.storage.bytes())).collect()
    };
    a.len() == b.len() && rel(a) == rel(b)
}
