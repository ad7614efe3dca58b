//! The one trait both backends implement. `Cpu` (src/cpu) is the reference that defines
//! correct results; `Gpu` (src/gpu) runs the WGSL kernels in shaders/.
//!
//! Ops write into tensors the caller allocated (a training loop plans its buffers once and
//! reuses them). Shapes are checked by `crate::ops` for both backends alike; a mismatch is an
//! `Error::Shape` naming the op and the shapes, never a panic.

use crate::ops::{self, Activation, Conv2dSpec, DropoutMask, MatmulSpec, PoolSpec};
use crate::optim::Optimizer;
use crate::tensor::Tensor;
use crate::Result;

/// What a cross-entropy is measured against.
pub enum CeTarget<'a, S> {
    /// Class indices [N], stored as f32.
    Labels(&'a Tensor<S>),
    /// Probability rows [N, C] (mixup, cutmix).
    Probs(&'a Tensor<S>),
}

pub trait Backend {
    /// Where a tensor's data lives.
    type Storage;

    fn name(&self) -> String;

    // ---- memory ----
    fn zeros(&self, shape: &[usize]) -> Result<Tensor<Self::Storage>>;
    fn upload(&self, shape: &[usize], data: &[f32]) -> Result<Tensor<Self::Storage>>;
    /// Overwrites `t` with `data` (same number of elements).
    fn write(&self, t: &mut Tensor<Self::Storage>, data: &[f32]) -> Result<()>;
    /// Reads a tensor back to the host (on the GPU: waits for the work it depends on).
    fn download(&self, t: &Tensor<Self::Storage>) -> Result<Vec<f32>>;
    /// Waits until every op issued so far has finished.
    fn sync(&self) -> Result<()>;
    /// Zeroed tensors of these shapes sharing one allocation, in order. On the GPU they are
    /// views of one buffer at offsets aligned for binding, so whole-model operations
    /// (`optimizer_step_all`, `clip_grad_norm_all`) run as one dispatch over all of it.
    fn arena(&self, shapes: &[Vec<usize>]) -> Result<Vec<Tensor<Self::Storage>>>;

    // ---- ops ----
    /// c = alpha * op(a) @ op(b) + beta * c; rank 2, or rank 3 with a leading batch dim
    /// (a rank-2 operand is shared by every batch entry).
    fn matmul(&self, a: &Tensor<Self::Storage>, b: &Tensor<Self::Storage>, c: &mut Tensor<Self::Storage>, spec: MatmulSpec) -> Result<()>;
    /// y = conv2d(x, w) + bias: x [N, C, H, W], w [K, C/groups, KH, KW], y [N, K, OH, OW].
    fn conv2d(
        &self,
        x: &Tensor<Self::Storage>,
        w: &Tensor<Self::Storage>,
        bias: Option<&Tensor<Self::Storage>>,
        y: &mut Tensor<Self::Storage>,
        spec: Conv2dSpec,
    ) -> Result<()>;
    /// dx = gradient of conv2d with respect to x, from dy.
    fn conv2d_backward_data(
        &self,
        dy: &Tensor<Self::Storage>,
        w: &Tensor<Self::Storage>,
        dx: &mut Tensor<Self::Storage>,
        spec: Conv2dSpec,
    ) -> Result<()>;
    /// dw = gradient of conv2d with respect to w, from x and dy.
    fn conv2d_backward_filter(
        &self,
        x: &Tensor<Self::Storage>,
        dy: &Tensor<Self::Storage>,
        dw: &mut Tensor<Self::Storage>,
        spec: Conv2dSpec,
    ) -> Result<()>;
    /// y = max over each window; idx = where the maximum was (for the backward).
    fn max_pool2d(
        &self,
        x: &Tensor<Self::Storage>,
        y: &mut Tensor<Self::Storage>,
        idx: &mut Tensor<Self::Storage>,
        spec: PoolSpec,
    ) -> Result<()>;
    fn max_pool2d_backward(
        &self,
        dy: &Tensor<Self::Storage>,
        idx: &Tensor<Self::Storage>,
        dx: &mut Tensor<Self::Storage>,
        spec: PoolSpec,
    ) -> Result<()>;
    fn avg_pool2d(&self, x: &Tensor<Self::Storage>, y: &mut Tensor<Self::Storage>, spec: PoolSpec) -> Result<()>;
    fn avg_pool2d_backward(&self, dy: &Tensor<Self::Storage>, dx: &mut Tensor<Self::Storage>, spec: PoolSpec) -> Result<()>;
    /// y [N, C, 1, 1] (or [N, C]) = mean of each plane of x [N, C, H, W].
    fn global_avg_pool(&self, x: &Tensor<Self::Storage>, y: &mut Tensor<Self::Storage>) -> Result<()>;
    fn global_avg_pool_backward(&self, dy: &Tensor<Self::Storage>, dx: &mut Tensor<Self::Storage>) -> Result<()>;
    /// Batch norm 2d in training mode (x, y [N, C, ...]; the rest [C]): y from the batch
    /// statistics, running statistics updated as PyTorch does, mean and 1/sqrt(var + eps) saved.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_train(
        &self,
        x: &Tensor<Self::Storage>,
        gamma: &Tensor<Self::Storage>,
        beta: &Tensor<Self::Storage>,
        running_mean: &mut Tensor<Self::Storage>,
        running_var: &mut Tensor<Self::Storage>,
        y: &mut Tensor<Self::Storage>,
        save_mean: &mut Tensor<Self::Storage>,
        save_invstd: &mut Tensor<Self::Storage>,
        momentum: f32,
        eps: f32,
    ) -> Result<()>;
    /// Batch norm 2d in eval mode: y from the running statistics.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_eval(
        &self,
        x: &Tensor<Self::Storage>,
        gamma: &Tensor<Self::Storage>,
        beta: &Tensor<Self::Storage>,
        running_mean: &Tensor<Self::Storage>,
        running_var: &Tensor<Self::Storage>,
        y: &mut Tensor<Self::Storage>,
        eps: f32,
    ) -> Result<()>;
    /// Backward of `batch_norm_train` from its saved statistics.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_backward(
        &self,
        x: &Tensor<Self::Storage>,
        dy: &Tensor<Self::Storage>,
        gamma: &Tensor<Self::Storage>,
        save_mean: &Tensor<Self::Storage>,
        save_invstd: &Tensor<Self::Storage>,
        dx: &mut Tensor<Self::Storage>,
        dgamma: &mut Tensor<Self::Storage>,
        dbeta: &mut Tensor<Self::Storage>,
    ) -> Result<()>;
    /// Mean softmax cross-entropy of logits [N, C] with label smoothing: loss [1] and the
    /// gradient of the mean loss, in one pass.
    fn cross_entropy(
        &self,
        logits: &Tensor<Self::Storage>,
        target: CeTarget<'_, Self::Storage>,
        label_smoothing: f32,
        loss: &mut Tensor<Self::Storage>,
        grad: &mut Tensor<Self::Storage>,
    ) -> Result<()>;
    /// out[i] = index of the first maximum of row i of x [N, C].
    fn argmax_rows(&self, x: &Tensor<Self::Storage>, out: &mut Tensor<Self::Storage>) -> Result<()>;
    /// out[i] = 1 where row i's argmax equals labels[i], else 0 (sum it for accuracy).
    fn correct_rows(&self, logits: &Tensor<Self::Storage>, labels: &Tensor<Self::Storage>, out: &mut Tensor<Self::Storage>) -> Result<()>;

    /// y = x @ wᵀ + bias: x [N, in], w [out, in], y [N, out].
    fn linear(
        &self,
        x: &Tensor<Self::Storage>,
        w: &Tensor<Self::Storage>,
        bias: Option<&Tensor<Self::Storage>>,
        y: &mut Tensor<Self::Storage>,
    ) -> Result<()> {
        ops::linear_check(x.shape(), w.shape(), y.shape(), bias.map(|b| b.shape()))?;
        self.matmul(x, w, y, MatmulSpec::trans(false, true))?;
        match bias {
            Some(b) => self.bias_act(y, b, Activation::Identity),
            None => Ok(()),
        }
    }
    /// Gradients of `linear`: dx = dy @ w (if wanted), dw = dyᵀ @ x, db = column sums of dy.
    fn linear_backward(
        &self,
        x: &Tensor<Self::Storage>,
        w: &Tensor<Self::Storage>,
        dy: &Tensor<Self::Storage>,
        dx: Option<&mut Tensor<Self::Storage>>,
        dw: &mut Tensor<Self::Storage>,
        db: Option<&mut Tensor<Self::Storage>>,
    ) -> Result<()> {
        ops::linear_check(x.shape(), w.shape(), dy.shape(), db.as_ref().map(|b| b.shape()))?;
        if let Some(dx) = dx {
            self.matmul(dy, w, dx, MatmulSpec::default())?;
        }
        self.matmul(dy, x, dw, MatmulSpec::trans(true, false))?;
        match db {
            Some(db) => self.channel_sum(dy, db),
            None => Ok(()),
        }
    }

    /// y = act(y + bias[c]) in place, y [N, C, ...].
    fn bias_act(&self, y: &mut Tensor<Self::Storage>, bias: &Tensor<Self::Storage>, act: Activation) -> Result<()>;
    /// dz = dy * act'(z), from the activated output y.
    fn act_backward(
        &self,
        y: &Tensor<Self::Storage>,
        dy: &Tensor<Self::Storage>,
        dz: &mut Tensor<Self::Storage>,
        act: Activation,
    ) -> Result<()>;
    /// out[c] = sum of a[n, c, ...] over every dim but 1 (bias gradients).
    fn channel_sum(&self, a: &Tensor<Self::Storage>, out: &mut Tensor<Self::Storage>) -> Result<()>;
    /// out = a + b
    fn add(&self, a: &Tensor<Self::Storage>, b: &Tensor<Self::Storage>, out: &mut Tensor<Self::Storage>) -> Result<()>;
    /// out = a * b (element-wise)
    fn mul(&self, a: &Tensor<Self::Storage>, b: &Tensor<Self::Storage>, out: &mut Tensor<Self::Storage>) -> Result<()>;
    /// y = x, element for element (shapes may differ; element counts may not).
    fn copy(&self, x: &Tensor<Self::Storage>, y: &mut Tensor<Self::Storage>) -> Result<()>;
    /// out = alpha * a
    fn scale(&self, a: &Tensor<Self::Storage>, alpha: f32, out: &mut Tensor<Self::Storage>) -> Result<()>;
    /// y = max(x, 0)
    fn relu(&self, x: &Tensor<Self::Storage>, y: &mut Tensor<Self::Storage>) -> Result<()>;
    /// dx = dy * [x > 0]
    fn relu_backward(&self, x: &Tensor<Self::Storage>, dy: &Tensor<Self::Storage>, dx: &mut Tensor<Self::Storage>) -> Result<()>;
    /// Inverted dropout: out = x / (1 - p) where `mask` keeps the element, else 0. The mask is
    /// a function of (p, seed, step, index), so the backward is the same call on dy.
    fn dropout(&self, x: &Tensor<Self::Storage>, out: &mut Tensor<Self::Storage>, mask: &DropoutMask) -> Result<()>;
    /// out[0] = sum of all elements of x; `out` has one element.
    fn sum(&self, x: &Tensor<Self::Storage>, out: &mut Tensor<Self::Storage>) -> Result<()>;
    /// out[0] = sum of x²; `out` has one element.
    fn sum_squares(&self, x: &Tensor<Self::Storage>, out: &mut Tensor<Self::Storage>) -> Result<()>;

    // ---- training ----
    /// One update of a flat parameter arena (one dispatch for the whole model). `t` is the
    /// 1-based step; `s1`, `s2` hold the optimizer's state, as long as `param` where
    /// `opt.state_tensors()` says they are used (placeholders of any size otherwise).
    fn optimizer_step(
        &self,
        opt: &Optimizer,
        t: u64,
        param: &mut Tensor<Self::Storage>,
        grad: &Tensor<Self::Storage>,
        s1: &mut Tensor<Self::Storage>,
        s2: &mut Tensor<Self::Storage>,
    ) -> Result<()>;
    /// Global-norm clipping: grad *= min(1, max_norm / (‖grad‖ + 1e-6)); `sumsq` receives ‖grad‖²
    /// (on the device: read it only when logging).
    fn clip_grad_norm(&self, grad: &mut Tensor<Self::Storage>, max_norm: f32, sumsq: &mut Tensor<Self::Storage>) -> Result<()>;
    /// `optimizer_step` for every parameter tensor of a model (lists in the same order; each
    /// list from one `arena` lets the GPU do it in one dispatch).
    fn optimizer_step_all(
        &self,
        opt: &Optimizer,
        t: u64,
        params: &mut [Tensor<Self::Storage>],
        grads: &[Tensor<Self::Storage>],
        s1: &mut [Tensor<Self::Storage>],
        s2: &mut [Tensor<Self::Storage>],
    ) -> Result<()> {
        ops::same_len("optimizer_step_all", &[params.len(), grads.len(), s1.len(), s2.len()])?;
        for (((p, g), a), b) in params.iter_mut().zip(grads).zip(s1.iter_mut()).zip(s2.iter_mut()) {
            self.optimizer_step(opt, t, p, g, a, b)?;
        }
        Ok(())
    }
    /// Clips all gradients of a model by their global norm; `sumsq` receives the total ‖g‖².
    fn clip_grad_norm_all(&self, grads: &mut [Tensor<Self::Storage>], max_norm: f32, sumsq: &mut Tensor<Self::Storage>) -> Result<()>;
}
