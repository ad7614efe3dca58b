//! The one trait both backends implement. [`Cpu`](crate::Cpu) (src/cpu) is the reference that
//! defines correct results; [`Gpu`](crate::Gpu) (src/gpu) runs the WGSL kernels in shaders/.
//!
//! Every op comes in two halves:
//! - a public, *provided* method (`conv2d`, `max_pool2d`, ...) that validates the operands with
//!   the op's check in [`crate::ops`] and resolves their sizes, once for every backend; a
//!   mismatch is an [`Error::Shape`](crate::Error::Shape) naming the op and the shapes;
//! - a *required* `*_unchecked` method that a backend implements, taking the resolved sizes.
//!   It is only called with operands that passed the check: call the checked method instead.
//!
//! Ops write into tensors the caller allocated (a training loop plans its buffers once and
//! reuses them).

use crate::ops::{self, Activation, Conv2dSpec, DropoutMask, MatmulSpec, Optimizer, PoolSpec};
use crate::ops::{BatchNormDims, ChannelDims, ConvDims, CrossEntropyDims, MatmulDims, PoolDims};
use crate::tensor::Tensor;
use crate::Result;

/// What a cross-entropy is measured against.
pub enum CeTarget<'a, S> {
    /// Class indices \[N\], stored as f32.
    Labels(&'a Tensor<S>),
    /// Probability rows [N, C] (mixup, cutmix).
    Probs(&'a Tensor<S>),
}

/// Shorthand for a backend's tensor type.
pub type T<B> = Tensor<<B as Backend>::Storage>;

/// Where a backend's tensors live, for planning memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MemoryKind {
    /// Host memory, allocated exactly (the CPU reference).
    Host,
    /// A GPU's buffers, from the buffer pool's size classes (powers of two up to 1 MiB, whole
    /// MiB above); `on_host` when the adapter runs on the CPU (lavapipe) and so shares its memory.
    Gpu {
        /// The adapter is a CPU device using host memory.
        on_host: bool,
    },
}

/// What a backend can tell about its memory.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryInfo {
    /// Where tensors live.
    pub kind: MemoryKind,
    /// The largest tensor a kernel can take, in bytes (on a GPU the largest storage binding).
    pub max_tensor_bytes: u64,
    /// Alignment of the tensors of an [`Backend::arena`], in f32 elements.
    pub arena_align: usize,
    /// Bytes allocated on the device now, where the backend can count them (wgpu's allocator
    /// report; `None` where it cannot). wgpu does not report a device's total memory size.
    pub allocated_bytes: Option<u64>,
}

/// A place where tensors live and ops run: the CPU reference or a GPU.
pub trait Backend {
    /// Where a tensor's data lives.
    type Storage;

    /// A human-readable name, e.g. `gpu (llvmpipe, Vulkan)`.
    fn name(&self) -> String;

    // ---- memory ----

    /// A tensor of zeros.
    fn zeros(&self, shape: &[usize]) -> Result<Tensor<Self::Storage>>;
    /// A tensor holding `data` (row-major, as many values as the shape has elements).
    fn upload(&self, shape: &[usize], data: &[f32]) -> Result<Tensor<Self::Storage>> {
        let mut t = self.zeros(shape)?;
        self.write(&mut t, data)?;
        Ok(t)
    }
    /// Overwrites `t` with `data` (same number of elements).
    fn write(&self, t: &mut Tensor<Self::Storage>, data: &[f32]) -> Result<()> {
        ops::same_numel("write", &[("tensor", t.shape()), ("data", &[data.len()])])?;
        self.write_unchecked(t, data)
    }
    /// Reads a tensor back to the host (on the GPU: waits for the work it depends on).
    fn download(&self, t: &Tensor<Self::Storage>) -> Result<Vec<f32>>;
    /// Waits until every op issued so far has finished.
    fn sync(&self) -> Result<()>;
    /// What the backend can tell about its memory (for planning batch sizes). The default is
    /// a host backend: unlimited tensors, host memory, nothing counted.
    fn memory(&self) -> MemoryInfo {
        MemoryInfo { kind: MemoryKind::Host, max_tensor_bytes: isize::MAX as u64, arena_align: 1, allocated_bytes: None }
    }
    /// Names the work recorded next (a layer such as `layers.3`, and a phase: `forward`,
    /// `backward`, `loss`, `optimizer`) for a profile of per-kernel times. Does nothing
    /// unless the backend profiles (a GPU opened with `GpuOptions::profile`).
    fn profile_scope(&self, layer: &str, phase: &'static str) {
        let _ = (layer, phase);
    }
    /// Releases cached memory not in use (on the GPU, the buffer pool's free buffers), so that
    /// what follows holds only its own. The default does nothing.
    fn trim(&self) {}
    /// The values of several tensors, one after the other (a model's gradient arena, for a
    /// data-parallel all-reduce). The default downloads each in turn.
    fn download_all(&self, ts: &[&Tensor<Self::Storage>]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(ts.iter().map(|t| t.numel()).sum());
        for t in ts {
            out.extend(self.download(t)?);
        }
        Ok(out)
    }
    /// Overwrites several tensors from consecutive values, the inverse of
    /// [`Backend::download_all`] (`data` holds exactly their elements).
    fn write_all(&self, ts: &mut [Tensor<Self::Storage>], data: &[f32]) -> Result<()> {
        let total: usize = ts.iter().map(Tensor::numel).sum();
        ops::same_numel("write_all", &[("tensors", &[total]), ("data", &[data.len()])])?;
        let mut at = 0;
        for t in ts {
            let n = t.numel();
            self.write_unchecked(t, &data[at..at + n])?;
            at += n;
        }
        Ok(())
    }
    /// Zeroed tensors of these shapes sharing one allocation, in order. On the GPU they are
    /// views of one buffer at offsets aligned for binding, so whole-model operations
    /// (`optimizer_step_all`, `clip_grad_norm_all`) run as one dispatch over all of it.
    fn arena(&self, shapes: &[Vec<usize>]) -> Result<Vec<Tensor<Self::Storage>>>;

    // ---- ops, checked ----

    /// c = alpha * op(a) @ op(b) + beta * c; rank 2, or rank 3 with a leading batch dim
    /// (a rank-2 operand is shared by every batch entry).
    fn matmul(&self, a: &T<Self>, b: &T<Self>, c: &mut T<Self>, spec: MatmulSpec) -> Result<()> {
        let d = ops::matmul_dims(a.shape(), b.shape(), c.shape(), spec)?;
        self.matmul_unchecked(a, b, c, &d, spec)
    }
    /// y = conv2d(x, w) + bias: x [N, C, H, W], w [K, C/groups, KH, KW], y [N, K, OH, OW].
    fn conv2d(&self, x: &T<Self>, w: &T<Self>, bias: Option<&T<Self>>, y: &mut T<Self>, spec: Conv2dSpec) -> Result<()> {
        let d = ops::conv2d::check_forward(x.shape(), w.shape(), bias.map(|b| b.shape()), y.shape(), spec)?;
        self.conv2d_unchecked(x, w, bias, y, &d)
    }
    /// dx = gradient of conv2d with respect to x, from dy.
    fn conv2d_backward_data(&self, dy: &T<Self>, w: &T<Self>, dx: &mut T<Self>, spec: Conv2dSpec) -> Result<()> {
        let d = ops::conv2d::check_backward_data(dy.shape(), w.shape(), dx.shape(), spec)?;
        self.conv2d_backward_data_unchecked(dy, w, dx, &d)
    }
    /// dw = gradient of conv2d with respect to w, from x and dy.
    fn conv2d_backward_filter(&self, x: &T<Self>, dy: &T<Self>, dw: &mut T<Self>, spec: Conv2dSpec) -> Result<()> {
        let d = ops::conv2d::check_backward_filter(x.shape(), dy.shape(), dw.shape(), spec)?;
        self.conv2d_backward_filter_unchecked(x, dy, dw, &d)
    }
    /// y = max over each window; idx = where the maximum was (for the backward).
    fn max_pool2d(&self, x: &T<Self>, y: &mut T<Self>, idx: &mut T<Self>, spec: PoolSpec) -> Result<()> {
        let d = ops::pool::check("max_pool2d", x.shape(), &[("y", y.shape()), ("idx", idx.shape())], spec)?;
        self.max_pool2d_unchecked(x, y, idx, &d)
    }
    /// dx = dy routed to where each window's maximum was.
    fn max_pool2d_backward(&self, dy: &T<Self>, idx: &T<Self>, dx: &mut T<Self>, spec: PoolSpec) -> Result<()> {
        let d = ops::pool::check("max_pool2d_backward", dx.shape(), &[("dy", dy.shape()), ("idx", idx.shape())], spec)?;
        self.max_pool2d_backward_unchecked(dy, idx, dx, &d)
    }
    /// y = mean over each window (PyTorch's divisors).
    fn avg_pool2d(&self, x: &T<Self>, y: &mut T<Self>, spec: PoolSpec) -> Result<()> {
        let d = ops::pool::check("avg_pool2d", x.shape(), &[("y", y.shape())], spec)?;
        self.avg_pool2d_unchecked(x, y, &d)
    }
    /// dx = dy spread evenly over each window.
    fn avg_pool2d_backward(&self, dy: &T<Self>, dx: &mut T<Self>, spec: PoolSpec) -> Result<()> {
        let d = ops::pool::check("avg_pool2d_backward", dx.shape(), &[("dy", dy.shape())], spec)?;
        self.avg_pool2d_backward_unchecked(dy, dx, &d)
    }
    /// y [N, C, 1, 1] (or [N, C]) = mean of each plane of x [N, C, H, W].
    fn global_avg_pool(&self, x: &T<Self>, y: &mut T<Self>) -> Result<()> {
        let d = ops::pool::check_global("global_avg_pool", x.shape(), y.shape())?;
        self.global_avg_pool_unchecked(x, y, &d)
    }
    /// dx = dy / (H * W) over each plane.
    fn global_avg_pool_backward(&self, dy: &T<Self>, dx: &mut T<Self>) -> Result<()> {
        let d = ops::pool::check_global("global_avg_pool_backward", dx.shape(), dy.shape())?;
        self.global_avg_pool_backward_unchecked(dy, dx, &d)
    }
    /// Batch norm 2d in training mode (x, y [N, C, ...]; the rest \[C\]): y from the batch
    /// statistics, running statistics updated as PyTorch does, mean and 1/sqrt(var + eps) saved.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_train(
        &self,
        x: &T<Self>,
        gamma: &T<Self>,
        beta: &T<Self>,
        running_mean: &mut T<Self>,
        running_var: &mut T<Self>,
        y: &mut T<Self>,
        save_mean: &mut T<Self>,
        save_invstd: &mut T<Self>,
        momentum: f32,
        eps: f32,
    ) -> Result<()> {
        self.batch_norm_train_act(x, gamma, beta, running_mean, running_var, y, save_mean, save_invstd, momentum, eps, Activation::Identity)
    }
    /// [`Backend::batch_norm_train`] with y passed through `act` in the same pass (a ReLU
    /// fused into the batch norm before it).
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_train_act(
        &self,
        x: &T<Self>,
        gamma: &T<Self>,
        beta: &T<Self>,
        running_mean: &mut T<Self>,
        running_var: &mut T<Self>,
        y: &mut T<Self>,
        save_mean: &mut T<Self>,
        save_invstd: &mut T<Self>,
        momentum: f32,
        eps: f32,
        act: Activation,
    ) -> Result<()> {
        let mut d = ops::batch_norm::check(
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
        d.act = act;
        self.batch_norm_train_unchecked(x, gamma, beta, running_mean, running_var, y, save_mean, save_invstd, &d, momentum, eps)
    }
    /// Batch norm 2d in eval mode: y from the running statistics.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_eval(
        &self,
        x: &T<Self>,
        gamma: &T<Self>,
        beta: &T<Self>,
        running_mean: &T<Self>,
        running_var: &T<Self>,
        y: &mut T<Self>,
        eps: f32,
    ) -> Result<()> {
        self.batch_norm_eval_act(x, gamma, beta, running_mean, running_var, y, eps, Activation::Identity)
    }
    /// [`Backend::batch_norm_eval`] with y passed through `act` in the same pass.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_eval_act(
        &self,
        x: &T<Self>,
        gamma: &T<Self>,
        beta: &T<Self>,
        running_mean: &T<Self>,
        running_var: &T<Self>,
        y: &mut T<Self>,
        eps: f32,
        act: Activation,
    ) -> Result<()> {
        let mut d = ops::batch_norm::check(
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
        d.act = act;
        self.batch_norm_eval_unchecked(x, gamma, beta, running_mean, running_var, y, &d, eps)
    }
    /// Backward of `batch_norm_train` from its saved statistics.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_backward(
        &self,
        x: &T<Self>,
        dy: &T<Self>,
        gamma: &T<Self>,
        save_mean: &T<Self>,
        save_invstd: &T<Self>,
        dx: &mut T<Self>,
        dgamma: &mut T<Self>,
        dbeta: &mut T<Self>,
    ) -> Result<()> {
        ops::expect_shape("batch_norm_backward", "dy", dy.shape(), x.shape())?;
        let d = ops::batch_norm::check(
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
        self.batch_norm_backward_unchecked(x, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta, &d)
    }
    /// Batch norm's batch statistics alone: the per-channel mean and biased variance of x
    /// [N, C, ...]. With [`Backend::batch_norm_train_from_stats`] it is `batch_norm_train` in
    /// two halves, so that replicas can combine their statistics in between (synchronised
    /// batch norm).
    fn batch_norm_stats(&self, x: &T<Self>, mean: &mut T<Self>, var: &mut T<Self>) -> Result<()> {
        let d = ops::batch_norm::check("batch_norm_stats", x.shape(), x.shape(), &[("mean", mean.shape()), ("var", var.shape())], true)?;
        self.batch_norm_stats_unchecked(x, mean, var, &d)
    }
    /// The training forward from given statistics (`mean`, biased `var`) of `count` values per
    /// channel (`count` > 1; the running variance takes the unbiased `var * count / (count - 1)`):
    /// saves the mean and 1/√(var + ε) for the backward like `batch_norm_train`.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_train_from_stats(
        &self,
        x: &T<Self>,
        gamma: &T<Self>,
        beta: &T<Self>,
        mean: &T<Self>,
        var: &T<Self>,
        count: f32,
        running_mean: &mut T<Self>,
        running_var: &mut T<Self>,
        y: &mut T<Self>,
        save_mean: &mut T<Self>,
        save_invstd: &mut T<Self>,
        momentum: f32,
        eps: f32,
    ) -> Result<()> {
        self.batch_norm_train_from_stats_act(
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
            momentum,
            eps,
            Activation::Identity,
        )
    }
    /// [`Backend::batch_norm_train_from_stats`] with y passed through `act` in the same pass.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_train_from_stats_act(
        &self,
        x: &T<Self>,
        gamma: &T<Self>,
        beta: &T<Self>,
        mean: &T<Self>,
        var: &T<Self>,
        count: f32,
        running_mean: &mut T<Self>,
        running_var: &mut T<Self>,
        y: &mut T<Self>,
        save_mean: &mut T<Self>,
        save_invstd: &mut T<Self>,
        momentum: f32,
        eps: f32,
        act: Activation,
    ) -> Result<()> {
        let mut d = ops::batch_norm::check(
            "batch_norm_train_from_stats",
            x.shape(),
            y.shape(),
            &[
                ("gamma", gamma.shape()),
                ("beta", beta.shape()),
                ("mean", mean.shape()),
                ("var", var.shape()),
                ("running_mean", running_mean.shape()),
                ("running_var", running_var.shape()),
                ("save_mean", save_mean.shape()),
                ("save_invstd", save_invstd.shape()),
            ],
            true,
        )?;
        d.act = act;
        if !(count.is_finite() && count > 1.0) {
            return Err(crate::Error::Invalid(format!(
                "batch_norm_train_from_stats: count {count}: expected more than 1 value per channel"
            )));
        }
        self.batch_norm_train_from_stats_unchecked(
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
            &d,
            momentum,
            eps,
        )
    }
    /// The per-channel sums batch norm's backward needs: `sdy` = Σ dy, `sdyx` = Σ dy (x − mean).
    fn batch_norm_backward_sums(
        &self,
        x: &T<Self>,
        dy: &T<Self>,
        save_mean: &T<Self>,
        sdy: &mut T<Self>,
        sdyx: &mut T<Self>,
    ) -> Result<()> {
        ops::expect_shape("batch_norm_backward_sums", "dy", dy.shape(), x.shape())?;
        let d = ops::batch_norm::check(
            "batch_norm_backward_sums",
            x.shape(),
            x.shape(),
            &[("save_mean", save_mean.shape()), ("sdy", sdy.shape()), ("sdyx", sdyx.shape())],
            true,
        )?;
        self.batch_norm_backward_sums_unchecked(x, dy, save_mean, sdy, sdyx, &d)
    }
    /// Batch norm's backward from per-channel sums: dγ = `local.1` / σ and dβ = `local.0` (this
    /// batch's own sums, from `batch_norm_backward_sums`), and dx from `global` sums over
    /// `count` values per channel, dx = γ/σ (dy − Σdy/count − (x − mean) Σdy(x − mean)/(σ² count))
    /// with 1/σ = `save_invstd`. With `global` = `local` and `count` the batch's, it is
    /// `batch_norm_backward`.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_backward_from_sums(
        &self,
        x: &T<Self>,
        dy: &T<Self>,
        gamma: &T<Self>,
        save_mean: &T<Self>,
        save_invstd: &T<Self>,
        local: (&T<Self>, &T<Self>),
        global: (&T<Self>, &T<Self>),
        count: f32,
        dx: &mut T<Self>,
        dgamma: &mut T<Self>,
        dbeta: &mut T<Self>,
    ) -> Result<()> {
        ops::expect_shape("batch_norm_backward_from_sums", "dy", dy.shape(), x.shape())?;
        let d = ops::batch_norm::check(
            "batch_norm_backward_from_sums",
            x.shape(),
            dx.shape(),
            &[
                ("gamma", gamma.shape()),
                ("save_mean", save_mean.shape()),
                ("save_invstd", save_invstd.shape()),
                ("local sdy", local.0.shape()),
                ("local sdyx", local.1.shape()),
                ("global sdy", global.0.shape()),
                ("global sdyx", global.1.shape()),
                ("dgamma", dgamma.shape()),
                ("dbeta", dbeta.shape()),
            ],
            true,
        )?;
        if !(count.is_finite() && count > 0.0) {
            return Err(crate::Error::Invalid(format!("batch_norm_backward_from_sums: count {count}: expected a positive count")));
        }
        self.batch_norm_backward_from_sums_unchecked(x, dy, gamma, save_mean, save_invstd, local, global, count, dx, dgamma, dbeta, &d)
    }
    /// Backward of `batch_norm_eval`, the running statistics constant (a frozen batch norm
    /// while fine-tuning): dx = dy γ / √(running_var + ε), dγ = Σ dy (x − running_mean) /
    /// √(running_var + ε), dβ = Σ dy per channel. Each is written (overwritten) only where
    /// given: `dx` when something upstream needs it, `param_grads` = (dγ, dβ) when they are trained.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_backward_eval(
        &self,
        x: &T<Self>,
        dy: &T<Self>,
        gamma: &T<Self>,
        running_mean: &T<Self>,
        running_var: &T<Self>,
        dx: Option<&mut T<Self>>,
        param_grads: Option<(&mut T<Self>, &mut T<Self>)>,
        eps: f32,
    ) -> Result<()> {
        const OP: &str = "batch_norm_backward_eval";
        ops::expect_shape(OP, "dy", dy.shape(), x.shape())?;
        let mut per_channel = vec![("gamma", gamma.shape()), ("running_mean", running_mean.shape()), ("running_var", running_var.shape())];
        if let Some((g, b)) = &param_grads {
            per_channel.extend([("dgamma", g.shape()), ("dbeta", b.shape())]);
        }
        let dx_shape = dx.as_ref().map_or(x.shape(), |t| t.shape());
        let d = ops::batch_norm::check(OP, x.shape(), dx_shape, &per_channel, false)?;
        self.batch_norm_backward_eval_unchecked(x, dy, gamma, running_mean, running_var, dx, param_grads, &d, eps)
    }
    /// Mean softmax cross-entropy of logits [N, C] with label smoothing: loss \[1\] and the
    /// gradient of the mean loss, in one pass.
    fn cross_entropy(
        &self,
        logits: &T<Self>,
        target: CeTarget<'_, Self::Storage>,
        label_smoothing: f32,
        loss: &mut T<Self>,
        grad: &mut T<Self>,
    ) -> Result<()> {
        let (t, soft) = match target {
            CeTarget::Labels(t) => (t, false),
            CeTarget::Probs(t) => (t, true),
        };
        let d = ops::loss::check_cross_entropy(logits.shape(), t.shape(), soft, label_smoothing, loss.shape(), grad.shape())?;
        self.cross_entropy_unchecked(logits, t, soft, label_smoothing, loss, grad, &d)
    }
    /// out\[i\] = index of the first maximum of row i of x [N, C].
    fn argmax_rows(&self, x: &T<Self>, out: &mut T<Self>) -> Result<()> {
        let d = ops::loss::check_rows("argmax_rows", x.shape(), out.shape(), None)?;
        self.argmax_rows_unchecked(x, out, &d)
    }
    /// out\[i\] = 1 where row i's argmax equals labels\[i\], else 0 (sum it for accuracy).
    fn correct_rows(&self, logits: &T<Self>, labels: &T<Self>, out: &mut T<Self>) -> Result<()> {
        let d = ops::loss::check_rows("correct_rows", logits.shape(), out.shape(), Some(labels.shape()))?;
        self.correct_rows_unchecked(logits, labels, out, &d)
    }
    /// y = x @ wᵀ + bias: x [N, in], w [out, in], y [N, out].
    fn linear(&self, x: &T<Self>, w: &T<Self>, bias: Option<&T<Self>>, y: &mut T<Self>) -> Result<()> {
        ops::linear::check(x.shape(), w.shape(), y.shape(), bias.map(|b| b.shape()))?;
        self.matmul(x, w, y, MatmulSpec::trans(false, true))?;
        match bias {
            Some(b) => self.bias_act(y, b, Activation::Identity),
            None => Ok(()),
        }
    }
    /// Gradients of `linear`: dx = dy @ w (if wanted), dw = dyᵀ @ x, db = column sums of dy.
    fn linear_backward(
        &self,
        x: &T<Self>,
        w: &T<Self>,
        dy: &T<Self>,
        dx: Option<&mut T<Self>>,
        dw: &mut T<Self>,
        db: Option<&mut T<Self>>,
    ) -> Result<()> {
        ops::linear::check(x.shape(), w.shape(), dy.shape(), db.as_ref().map(|b| b.shape()))?;
        if let Some(dx) = dx {
            self.matmul(dy, w, dx, MatmulSpec::default())?;
        }
        self.matmul(dy, x, dw, MatmulSpec::trans(true, false))?;
        match db {
            Some(db) => self.channel_sum(dy, db),
            None => Ok(()),
        }
    }
    /// y = act(y + bias\[c\]) in place, y [N, C, ...].
    fn bias_act(&self, y: &mut T<Self>, bias: &T<Self>, act: Activation) -> Result<()> {
        let d = ops::elementwise::channels("bias_act", y.shape(), bias.numel())?;
        self.bias_act_unchecked(y, bias, &d, act)
    }
    /// dz = dy * act'(z), from the activated output y.
    fn act_backward(&self, y: &T<Self>, dy: &T<Self>, dz: &mut T<Self>, act: Activation) -> Result<()> {
        ops::same_shape("act_backward", &[("y", y.shape()), ("dy", dy.shape()), ("dz", dz.shape())])?;
        self.act_backward_unchecked(y, dy, dz, act)
    }
    /// out\[c\] = sum of a[n, c, ...] over every dim but 1 (bias gradients).
    fn channel_sum(&self, a: &T<Self>, out: &mut T<Self>) -> Result<()> {
        let d = ops::elementwise::channels("channel_sum", a.shape(), out.numel())?;
        self.channel_sum_unchecked(a, out, &d)
    }
    /// out = a + b
    fn add(&self, a: &T<Self>, b: &T<Self>, out: &mut T<Self>) -> Result<()> {
        let n = ops::same_shape("add", &[("a", a.shape()), ("b", b.shape()), ("out", out.shape())])?;
        self.add_unchecked(a, b, out, n)
    }
    /// out = max(a + b, 0): a residual sum with its ReLU fused, in one pass.
    fn add_relu(&self, a: &T<Self>, b: &T<Self>, out: &mut T<Self>) -> Result<()> {
        let n = ops::same_shape("add_relu", &[("a", a.shape()), ("b", b.shape()), ("out", out.shape())])?;
        self.add_relu_unchecked(a, b, out, n)
    }
    /// out = a * b (element-wise)
    fn mul(&self, a: &T<Self>, b: &T<Self>, out: &mut T<Self>) -> Result<()> {
        let n = ops::same_shape("mul", &[("a", a.shape()), ("b", b.shape()), ("out", out.shape())])?;
        self.mul_unchecked(a, b, out, n)
    }
    /// y = x, element for element (shapes may differ; element counts may not).
    fn copy(&self, x: &T<Self>, y: &mut T<Self>) -> Result<()> {
        let n = ops::same_numel("copy", &[("x", x.shape()), ("y", y.shape())])?;
        self.copy_unchecked(x, y, n)
    }
    /// out = alpha * a
    fn scale(&self, a: &T<Self>, alpha: f32, out: &mut T<Self>) -> Result<()> {
        let n = ops::same_shape("scale", &[("a", a.shape()), ("out", out.shape())])?;
        self.scale_unchecked(a, alpha, out, n)
    }
    /// y = max(x, 0)
    fn relu(&self, x: &T<Self>, y: &mut T<Self>) -> Result<()> {
        let n = ops::same_shape("relu", &[("x", x.shape()), ("y", y.shape())])?;
        self.relu_unchecked(x, y, n)
    }
    /// dx = dy * \[x > 0\]
    fn relu_backward(&self, x: &T<Self>, dy: &T<Self>, dx: &mut T<Self>) -> Result<()> {
        let n = ops::same_shape("relu_backward", &[("x", x.shape()), ("dy", dy.shape()), ("dx", dx.shape())])?;
        self.relu_backward_unchecked(x, dy, dx, n)
    }
    /// y = max(y, 0) in place (a ReLU fused into the node that wrote y).
    fn relu_in_place(&self, y: &mut T<Self>) -> Result<()> {
        let n = y.numel();
        self.relu_in_place_unchecked(y, n)
    }
    /// dy = dy * \[y > 0\] in place, from the rectified output y (the backward of a fused ReLU:
    /// y > 0 exactly where its input was).
    fn relu_backward_in_place(&self, y: &T<Self>, dy: &mut T<Self>) -> Result<()> {
        let n = ops::same_shape("relu_backward_in_place", &[("y", y.shape()), ("dy", dy.shape())])?;
        self.relu_backward_in_place_unchecked(y, dy, n)
    }
    /// Inverted dropout: out = x / (1 - p) where `mask` keeps the element, else 0. The mask is
    /// a function of (p, seed, step, index), so the backward is the same call on dy.
    fn dropout(&self, x: &T<Self>, out: &mut T<Self>, mask: &DropoutMask) -> Result<()> {
        let n = ops::same_shape("dropout", &[("x", x.shape()), ("out", out.shape())])?;
        self.dropout_unchecked(x, out, mask, n)
    }
    /// out\[0\] = sum of all elements of x; `out` has one element.
    fn sum(&self, x: &T<Self>, out: &mut T<Self>) -> Result<()> {
        let n = ops::scalar_out("sum", x.shape(), out.shape())?;
        self.sum_unchecked(x, out, n, false)
    }
    /// out\[0\] = sum of x²; `out` has one element.
    fn sum_squares(&self, x: &T<Self>, out: &mut T<Self>) -> Result<()> {
        let n = ops::scalar_out("sum_squares", x.shape(), out.shape())?;
        self.sum_unchecked(x, out, n, true)
    }

    // ---- training ----

    /// One update of a flat parameter arena (one dispatch for the whole model). `t` is the
    /// 1-based step; `s1`, `s2` hold the optimizer's state, as long as `param` where
    /// `opt.state_tensors()` says they are used (placeholders of any size otherwise).
    fn optimizer_step(
        &self,
        opt: &Optimizer,
        t: u64,
        param: &mut T<Self>,
        grad: &T<Self>,
        s1: &mut T<Self>,
        s2: &mut T<Self>,
    ) -> Result<()> {
        let n = ops::optimizer::check(opt, param.shape(), grad.shape(), s1.shape(), s2.shape())?;
        self.optimizer_step_unchecked(opt, t, n, param, grad, s1, s2)
    }
    /// `optimizer_step` for every parameter tensor of a model (lists in the same order; each
    /// list from one `arena` lets the GPU do it in one dispatch).
    fn optimizer_step_all(
        &self,
        opt: &Optimizer,
        t: u64,
        params: &mut [T<Self>],
        grads: &[T<Self>],
        s1: &mut [T<Self>],
        s2: &mut [T<Self>],
    ) -> Result<()> {
        ops::same_len("optimizer_step_all", &[params.len(), grads.len(), s1.len(), s2.len()])?;
        opt.validate()?;
        for (((p, g), a), b) in params.iter().zip(grads).zip(s1.iter()).zip(s2.iter()) {
            ops::optimizer::check(opt, p.shape(), g.shape(), a.shape(), b.shape())?;
        }
        self.optimizer_step_all_unchecked(opt, t, params, grads, s1, s2)
    }
    /// Global-norm clipping: grad *= min(1, max_norm / (‖grad‖ + 1e-6)); `sumsq` receives ‖grad‖²
    /// (on the device: read it only when logging).
    fn clip_grad_norm(&self, grad: &mut T<Self>, max_norm: f32, sumsq: &mut T<Self>) -> Result<()> {
        ops::scalar_out("clip_grad_norm", grad.shape(), sumsq.shape())?;
        self.clip_grad_norm_all(std::slice::from_mut(grad), max_norm, sumsq)
    }
    /// Clips all gradients of a model by their global norm; `sumsq` receives the total ‖g‖².
    fn clip_grad_norm_all(&self, grads: &mut [T<Self>], max_norm: f32, sumsq: &mut T<Self>) -> Result<()> {
        ops::scalar_out("clip_grad_norm_all", &[1], sumsq.shape())?;
        if !(max_norm.is_finite() && max_norm > 0.0) {
            return Err(crate::Error::Invalid(format!("clip_grad_norm: max_norm is {max_norm}, expected a finite value > 0")));
        }
        self.clip_grad_norm_all_unchecked(grads, max_norm, sumsq)
    }

    // ---- kernels: what a backend implements (operands already checked) ----

    /// `write`, after the element count was checked.
    fn write_unchecked(&self, t: &mut T<Self>, data: &[f32]) -> Result<()>;
    /// `matmul` with resolved sizes.
    fn matmul_unchecked(&self, a: &T<Self>, b: &T<Self>, c: &mut T<Self>, d: &MatmulDims, spec: MatmulSpec) -> Result<()>;
    /// `conv2d` with resolved sizes.
    fn conv2d_unchecked(&self, x: &T<Self>, w: &T<Self>, bias: Option<&T<Self>>, y: &mut T<Self>, d: &ConvDims) -> Result<()>;
    /// `conv2d_backward_data` with resolved sizes.
    fn conv2d_backward_data_unchecked(&self, dy: &T<Self>, w: &T<Self>, dx: &mut T<Self>, d: &ConvDims) -> Result<()>;
    /// `conv2d_backward_filter` with resolved sizes.
    fn conv2d_backward_filter_unchecked(&self, x: &T<Self>, dy: &T<Self>, dw: &mut T<Self>, d: &ConvDims) -> Result<()>;
    /// `max_pool2d` with resolved sizes.
    fn max_pool2d_unchecked(&self, x: &T<Self>, y: &mut T<Self>, idx: &mut T<Self>, d: &PoolDims) -> Result<()>;
    /// `max_pool2d_backward` with resolved sizes.
    fn max_pool2d_backward_unchecked(&self, dy: &T<Self>, idx: &T<Self>, dx: &mut T<Self>, d: &PoolDims) -> Result<()>;
    /// `avg_pool2d` with resolved sizes.
    fn avg_pool2d_unchecked(&self, x: &T<Self>, y: &mut T<Self>, d: &PoolDims) -> Result<()>;
    /// `avg_pool2d_backward` with resolved sizes.
    fn avg_pool2d_backward_unchecked(&self, dy: &T<Self>, dx: &mut T<Self>, d: &PoolDims) -> Result<()>;
    /// `global_avg_pool` with resolved sizes.
    fn global_avg_pool_unchecked(&self, x: &T<Self>, y: &mut T<Self>, d: &ops::pool::GlobalPoolDims) -> Result<()>;
    /// `global_avg_pool_backward` with resolved sizes.
    fn global_avg_pool_backward_unchecked(&self, dy: &T<Self>, dx: &mut T<Self>, d: &ops::pool::GlobalPoolDims) -> Result<()>;
    /// `batch_norm_train` with resolved sizes.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_train_unchecked(
        &self,
        x: &T<Self>,
        gamma: &T<Self>,
        beta: &T<Self>,
        running_mean: &mut T<Self>,
        running_var: &mut T<Self>,
        y: &mut T<Self>,
        save_mean: &mut T<Self>,
        save_invstd: &mut T<Self>,
        d: &BatchNormDims,
        momentum: f32,
        eps: f32,
    ) -> Result<()>;
    /// `batch_norm_eval` with resolved sizes.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_eval_unchecked(
        &self,
        x: &T<Self>,
        gamma: &T<Self>,
        beta: &T<Self>,
        running_mean: &T<Self>,
        running_var: &T<Self>,
        y: &mut T<Self>,
        d: &BatchNormDims,
        eps: f32,
    ) -> Result<()>;
    /// `batch_norm_backward` with resolved sizes.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_backward_unchecked(
        &self,
        x: &T<Self>,
        dy: &T<Self>,
        gamma: &T<Self>,
        save_mean: &T<Self>,
        save_invstd: &T<Self>,
        dx: &mut T<Self>,
        dgamma: &mut T<Self>,
        dbeta: &mut T<Self>,
        d: &BatchNormDims,
    ) -> Result<()>;
    /// `batch_norm_backward_eval` with resolved sizes.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_backward_eval_unchecked(
        &self,
        x: &T<Self>,
        dy: &T<Self>,
        gamma: &T<Self>,
        running_mean: &T<Self>,
        running_var: &T<Self>,
        dx: Option<&mut T<Self>>,
        param_grads: Option<(&mut T<Self>, &mut T<Self>)>,
        d: &BatchNormDims,
        eps: f32,
    ) -> Result<()>;
    /// See [`Backend::batch_norm_stats`].
    fn batch_norm_stats_unchecked(&self, x: &T<Self>, mean: &mut T<Self>, var: &mut T<Self>, d: &BatchNormDims) -> Result<()>;
    /// See [`Backend::batch_norm_train_from_stats`].
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_train_from_stats_unchecked(
        &self,
        x: &T<Self>,
        gamma: &T<Self>,
        beta: &T<Self>,
        mean: &T<Self>,
        var: &T<Self>,
        count: f32,
        running_mean: &mut T<Self>,
        running_var: &mut T<Self>,
        y: &mut T<Self>,
        save_mean: &mut T<Self>,
        save_invstd: &mut T<Self>,
        d: &BatchNormDims,
        momentum: f32,
        eps: f32,
    ) -> Result<()>;
    /// See [`Backend::batch_norm_backward_sums`].
    fn batch_norm_backward_sums_unchecked(
        &self,
        x: &T<Self>,
        dy: &T<Self>,
        save_mean: &T<Self>,
        sdy: &mut T<Self>,
        sdyx: &mut T<Self>,
        d: &BatchNormDims,
    ) -> Result<()>;
    /// See [`Backend::batch_norm_backward_from_sums`].
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_backward_from_sums_unchecked(
        &self,
        x: &T<Self>,
        dy: &T<Self>,
        gamma: &T<Self>,
        save_mean: &T<Self>,
        save_invstd: &T<Self>,
        local: (&T<Self>, &T<Self>),
        global: (&T<Self>, &T<Self>),
        count: f32,
        dx: &mut T<Self>,
        dgamma: &mut T<Self>,
        dbeta: &mut T<Self>,
        d: &BatchNormDims,
    ) -> Result<()>;
    /// `cross_entropy` with resolved sizes; `soft`: `target` holds probability rows.
    #[allow(clippy::too_many_arguments)]
    fn cross_entropy_unchecked(
        &self,
        logits: &T<Self>,
        target: &T<Self>,
        soft: bool,
        label_smoothing: f32,
        loss: &mut T<Self>,
        grad: &mut T<Self>,
        d: &CrossEntropyDims,
    ) -> Result<()>;
    /// `argmax_rows` with resolved sizes.
    fn argmax_rows_unchecked(&self, x: &T<Self>, out: &mut T<Self>, d: &CrossEntropyDims) -> Result<()>;
    /// `correct_rows` with resolved sizes.
    fn correct_rows_unchecked(&self, logits: &T<Self>, labels: &T<Self>, out: &mut T<Self>, d: &CrossEntropyDims) -> Result<()>;
    /// `bias_act` with resolved sizes.
    fn bias_act_unchecked(&self, y: &mut T<Self>, bias: &T<Self>, d: &ChannelDims, act: Activation) -> Result<()>;
    /// `act_backward` on equal shapes.
    fn act_backward_unchecked(&self, y: &T<Self>, dy: &T<Self>, dz: &mut T<Self>, act: Activation) -> Result<()>;
    /// `channel_sum` with resolved sizes.
    fn channel_sum_unchecked(&self, a: &T<Self>, out: &mut T<Self>, d: &ChannelDims) -> Result<()>;
    /// `add` of `n` elements.
    fn add_unchecked(&self, a: &T<Self>, b: &T<Self>, out: &mut T<Self>, n: usize) -> Result<()>;
    /// [`Backend::add_relu`] of `n` elements. Default: `add`, then `relu_in_place` (two passes).
    fn add_relu_unchecked(&self, a: &T<Self>, b: &T<Self>, out: &mut T<Self>, n: usize) -> Result<()> {
        self.add_unchecked(a, b, out, n)?;
        self.relu_in_place_unchecked(out, n)
    }
    /// `mul` of `n` elements.
    fn mul_unchecked(&self, a: &T<Self>, b: &T<Self>, out: &mut T<Self>, n: usize) -> Result<()>;
    /// `copy` of `n` elements.
    fn copy_unchecked(&self, x: &T<Self>, y: &mut T<Self>, n: usize) -> Result<()>;
    /// `scale` of `n` elements.
    fn scale_unchecked(&self, a: &T<Self>, alpha: f32, out: &mut T<Self>, n: usize) -> Result<()>;
    /// `relu` of `n` elements.
    fn relu_unchecked(&self, x: &T<Self>, y: &mut T<Self>, n: usize) -> Result<()>;
    /// `relu_backward` of `n` elements.
    fn relu_backward_unchecked(&self, x: &T<Self>, dy: &T<Self>, dx: &mut T<Self>, n: usize) -> Result<()>;
    /// [`Backend::relu_in_place`] on `n` values.
    fn relu_in_place_unchecked(&self, y: &mut T<Self>, n: usize) -> Result<()>;
    /// [`Backend::relu_backward_in_place`] on `n` values.
    fn relu_backward_in_place_unchecked(&self, y: &T<Self>, dy: &mut T<Self>, n: usize) -> Result<()>;
    /// `dropout` of `n` elements.
    fn dropout_unchecked(&self, x: &T<Self>, out: &mut T<Self>, mask: &DropoutMask, n: usize) -> Result<()>;
    /// `sum` (or, with `squares`, `sum_squares`) of `n` elements.
    fn sum_unchecked(&self, x: &T<Self>, out: &mut T<Self>, n: usize, squares: bool) -> Result<()>;
    /// `optimizer_step` of `n` parameters.
    #[allow(clippy::too_many_arguments)]
    fn optimizer_step_unchecked(
        &self,
        opt: &Optimizer,
        t: u64,
        n: usize,
        param: &mut T<Self>,
        grad: &T<Self>,
        s1: &mut T<Self>,
        s2: &mut T<Self>,
    ) -> Result<()>;
    /// `optimizer_step_all`, every pair checked. The default runs one update per tensor; the
    /// GPU fuses arenas into one dispatch.
    fn optimizer_step_all_unchecked(
        &self,
        opt: &Optimizer,
        t: u64,
        params: &mut [T<Self>],
        grads: &[T<Self>],
        s1: &mut [T<Self>],
        s2: &mut [T<Self>],
    ) -> Result<()> {
        for (((p, g), a), b) in params.iter_mut().zip(grads).zip(s1.iter_mut()).zip(s2.iter_mut()) {
            let n = p.numel();
            self.optimizer_step_unchecked(opt, t, n, p, g, a, b)?;
        }
        Ok(())
    }
    /// `clip_grad_norm_all` (one list entry for `clip_grad_norm`).
    fn clip_grad_norm_all_unchecked(&self, grads: &mut [T<Self>], max_norm: f32, sumsq: &mut T<Self>) -> Result<()>;
}
