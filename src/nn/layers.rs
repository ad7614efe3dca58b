//! The built-in layers, each a plain struct implementing [`Layer`]: settings in, shapes and
//! parameters resolved by `build`, forward and backward side by side as calls to the
//! [`Backend`] ops.

use super::layer::{Backward, Build, Forward, Init, Layer, Mode};
use crate::backend::{Backend, T};
use crate::distributed::Replicas;
use crate::ops::{self, Activation, Conv2dSpec, DropoutMask, PoolSpec};
use crate::tensor::ShapeFmt;
use crate::{Error, Result};

fn chw(input: &[usize]) -> Result<[usize; 3]> {
    match *input {
        [c, h, w] => Ok([c, h, w]),
        _ => Err(Error::Invalid(format!("needs a [C, H, W] input, got {}", ShapeFmt(input)))),
    }
}

/// The end of a layer with a ReLU fused in: y = max(y + bias, 0) in the bias pass, or
/// max(y, 0) in place without a bias.
fn bias_relu<B: Backend>(be: &B, y: &mut T<B>, bias: Option<&T<B>>) -> Result<()> {
    match bias {
        Some(b) => be.bias_act(y, b, Activation::Relu),
        None => be.relu_in_place(y),
    }
}

/// The gradient of x, or a temporary when the caller does not need it but the kernel writes it.
fn dx_or_temp<'a, B: Backend>(be: &B, dx: Option<&'a mut T<B>>, x: &T<B>, temp: &'a mut Option<T<B>>) -> Result<&'a mut T<B>> {
    match dx {
        Some(dx) => Ok(dx),
        None => Ok(temp.insert(be.zeros(x.shape())?)),
    }
}

/// 2D convolution (PyTorch's `nn.Conv2d`): weight [K, C/groups, KH, KW], optional bias \[K\].
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2d {
    /// Output channels K.
    pub out: usize,
    /// Kernel size [KH, KW].
    pub kernel: [usize; 2],
    /// Stride, padding, dilation, groups.
    pub spec: Conv2dSpec,
    /// Whether it has a bias.
    pub bias: bool,
    macs: usize,
}

impl Conv2d {
    /// A k x k convolution to `out` channels, stride 1, no padding, with bias.
    pub fn new(out: usize, k: usize) -> Self {
        Self { out, kernel: [k, k], spec: Conv2dSpec::default(), bias: true, macs: 0 }
    }
    /// The same with stride `s`.
    pub fn stride(mut self, s: usize) -> Self {
        self.spec.stride = [s, s];
        self
    }
    /// The same with padding `p` on every side.
    pub fn padding(mut self, p: usize) -> Self {
        self.spec.padding = [p, p];
        self
    }
    /// The same with all of `spec`.
    pub fn with_spec(mut self, spec: Conv2dSpec) -> Self {
        self.spec = spec;
        self
    }
    /// The same with a non-square kernel.
    pub fn kernel(mut self, kh: usize, kw: usize) -> Self {
        self.kernel = [kh, kw];
        self
    }
    /// The same without a bias (before batch norm, whose beta takes its place).
    pub fn no_bias(mut self) -> Self {
        self.bias = false;
        self
    }
}

impl<B: Backend> Layer<B> for Conv2d {
    fn kind(&self) -> &str {
        "conv2d"
    }
    fn build(&mut self, input: &[usize], ctx: &mut Build) -> Result<Vec<usize>> {
        let [c, h, w] = chw(input)?;
        let g = self.spec.groups.max(1);
        let weight = [self.out, c / g, self.kernel[0], self.kernel[1]];
        let d = ops::conv2d_dims("conv2d", &[1, c, h, w], &weight, self.spec).map_err(|e| Error::Invalid(e.to_string()))?;
        let fan_in = d.patch().max(1);
        ctx.param("weight", &weight, Init::Weight { fan_in });
        if self.bias {
            ctx.param("bias", &[self.out], Init::Uniform { bound: 1.0 / (fan_in as f32).sqrt() });
        }
        self.macs = d.macs();
        Ok(vec![self.out, d.oh, d.ow])
    }
    fn forward(&self, be: &B, io: Forward<'_, B>) -> Result<()> {
        if !io.relu {
            return be.conv2d(io.x, &io.params[0], io.params.get(1), io.y, self.spec);
        }
        be.conv2d(io.x, &io.params[0], None, io.y, self.spec)?;
        bias_relu(be, io.y, io.params.get(1))
    }
    fn fuses_relu(&self) -> bool {
        true
    }
    fn backward(&self, be: &B, io: Backward<'_, B>) -> Result<()> {
        let (dw, db) = io.grads.split_at_mut(1);
        be.conv2d_backward_filter(io.x, io.dy, &mut dw[0], self.spec)?;
        if let Some(db) = db.first_mut() {
            be.channel_sum(io.dy, db)?;
        }
        match io.dx {
            Some(dx) => be.conv2d_backward_data(io.dy, &io.params[0], dx, self.spec),
            None => Ok(()),
        }
    }
    fn macs(&self) -> usize {
        self.macs
    }
    fn describe(&self) -> String {
        let s = self.spec;
        let mut d = format!("{}x{} s{} p{}", self.kernel[0], self.kernel[1], s.stride[0], s.padding[0]);
        if s.dilation != [1, 1] {
            d.push_str(&format!(" d{}", s.dilation[0]));
        }
        if s.groups != 1 {
            d.push_str(&format!(" g{}", s.groups));
        }
        d
    }
}

/// Batch norm over the channels of [C, ...] inputs (PyTorch's `nn.BatchNorm2d`): weight
/// (gamma) and bias (beta) \[C\], running mean and variance as buffers.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm2d {
    /// Added to the variance.
    pub eps: f32,
    /// Weight of the new batch in the running statistics.
    pub momentum: f32,
}

impl Default for BatchNorm2d {
    fn default() -> Self {
        Self { eps: 1e-5, momentum: 0.1 }
    }
}

impl BatchNorm2d {
    /// PyTorch's defaults: eps 1e-5, momentum 0.1.
    pub fn new() -> Self {
        Self::default()
    }
}

impl BatchNorm2d {
    /// The gradient of the eval forward y = γ (x − μ) / √(σ² + ε) + β, with the running μ, σ²
    /// constant: dx = γ dy / √(σ² + ε), dγ = Σ dy x̂, dβ = Σ dy, by the backend's
    /// `batch_norm_backward_eval` kernel (no temporaries). Used for measurements of the trained
    /// function and for a frozen batch norm while fine-tuning.
    fn backward_eval<B: Backend>(&self, be: &B, io: Backward<'_, B>) -> Result<()> {
        let [rm, rv] = io.buffers else { unreachable!("batch norm registers two buffers") };
        let (dgamma, dbeta) = io.grads.split_at_mut(1);
        be.batch_norm_backward_eval(io.x, io.dy, &io.params[0], rm, rv, io.dx, Some((&mut dgamma[0], &mut dbeta[0])), self.eps)
    }
}

impl BatchNorm2d {
    /// The training forward with the mean and variance of the whole global batch (PyTorch's
    /// `SyncBatchNorm`): every replica's count, mean and biased variance per channel are
    /// gathered and combined exactly (Chan et al.: the pooled mean, and the pooled variance as
    /// the mean of each part's variance plus its mean's squared distance from the pooled mean).
    fn forward_synced<B: Backend>(&self, be: &B, io: Forward<'_, B>, replicas: &Replicas) -> Result<()> {
        let (p, [rm, rv], [sm, si]) = (io.params, io.buffers, io.saved) else {
            unreachable!("batch norm registers two buffers and saves two tensors")
        };
        let c = io.x.shape()[1];
        let count = (io.x.numel() / c.max(1)) as f32;
        let (mut mean, mut var) = (be.zeros(&[c])?, be.zeros(&[c])?);
        be.batch_norm_stats(io.x, &mut mean, &mut var)?;
        let mine = [vec![count], be.download(&mean)?, be.download(&var)?].concat();
        let parts = crate::distributed::all_gather(replicas, &mine)?;
        let total: f64 = parts.iter().map(|q| q[0] as f64).sum();
        let (mut mu, mut sigma2) = (vec![0.0f64; c], vec![0.0f64; c]);
        for q in &parts {
            for ch in 0..c {
                mu[ch] += q[0] as f64 * q[1 + ch] as f64 / total;
            }
        }
        for q in &parts {
            for ch in 0..c {
                let d = q[1 + ch] as f64 - mu[ch];
                sigma2[ch] += q[0] as f64 * (q[1 + c + ch] as f64 + d * d) / total;
            }
        }
        be.write(&mut mean, &mu.iter().map(|&v| v as f32).collect::<Vec<_>>())?;
        be.write(&mut var, &sigma2.iter().map(|&v| v as f32).collect::<Vec<_>>())?;
        be.batch_norm_train_from_stats_act(
            io.x,
            &p[0],
            &p[1],
            &mean,
            &var,
            total as f32,
            rm,
            rv,
            io.y,
            sm,
            si,
            self.momentum,
            self.eps,
            Activation::relu_if(io.relu),
        )
    }

    /// The backward of [`BatchNorm2d::forward_synced`]. Each replica's dy is the gradient of
    /// its own mean loss, so replica r's sums are weighted by its share w_r = n_r / n of the
    /// global batch: S = sum_r w_r (sum dy, sum dy (x - mean)) is the global batch's. dx takes
    /// S / w_r (dx stays in the replica's own scale, like every other gradient it computes),
    /// and dγ, dβ the replica's own sums (the trainer weights and sums them with the rest).
    fn backward_synced<B: Backend>(&self, be: &B, io: Backward<'_, B>, replicas: &Replicas) -> Result<()> {
        let [sm, si] = io.saved else { unreachable!("batch norm saves two tensors") };
        let c = io.x.shape()[1];
        let count = (io.x.numel() / c.max(1)) as f32;
        let (mut sdy, mut sdyx) = (be.zeros(&[c])?, be.zeros(&[c])?);
        be.batch_norm_backward_sums(io.x, io.dy, sm, &mut sdy, &mut sdyx)?;
        let mine = [vec![count], be.download(&sdy)?, be.download(&sdyx)?].concat();
        let parts = crate::distributed::all_gather(replicas, &mine)?;
        let total: f64 = parts.iter().map(|q| q[0] as f64).sum();
        let own = count as f64 / total;
        let mut global = vec![0.0f64; 2 * c];
        for q in &parts {
            let w = q[0] as f64 / total;
            for (g, v) in global.iter_mut().zip(&q[1..]) {
                *g += w * *v as f64 / own;
            }
        }
        let g0 = be.upload(&[c], &global[..c].iter().map(|&v| v as f32).collect::<Vec<_>>())?;
        let g1 = be.upload(&[c], &global[c..].iter().map(|&v| v as f32).collect::<Vec<_>>())?;
        let (dgamma, dbeta) = io.grads.split_at_mut(1);
        let mut temp = None;
        let dx = dx_or_temp(be, io.dx, io.x, &mut temp)?;
        be.batch_norm_backward_from_sums(
            io.x,
            io.dy,
            &io.params[0],
            sm,
            si,
            (&sdy, &sdyx),
            (&g0, &g1),
            total as f32,
            dx,
            &mut dgamma[0],
            &mut dbeta[0],
        )
    }
}

impl<B: Backend> Layer<B> for BatchNorm2d {
    fn kind(&self) -> &str {
        "batch_norm2d"
    }
    fn build(&mut self, input: &[usize], ctx: &mut Build) -> Result<Vec<usize>> {
        let Some(&c) = input.first() else { return Err(Error::Invalid("batch_norm2d needs a [C, ...] input".into())) };
        ctx.param("weight", &[c], Init::Const(1.0));
        ctx.param("bias", &[c], Init::Const(0.0));
        ctx.buffer("running_mean", &[c], 0.0);
        ctx.buffer("running_var", &[c], 1.0);
        Ok(input.to_vec())
    }
    fn saved(&self, x: &[usize]) -> Vec<Vec<usize>> {
        vec![vec![x[1]], vec![x[1]]] // mean and 1/sqrt(var + eps) of the batch
    }
    fn forward(&self, be: &B, io: Forward<'_, B>) -> Result<()> {
        if let (Mode::Train, Some(replicas)) = (io.mode, io.replicas) {
            return self.forward_synced(be, io, replicas);
        }
        let (p, [rm, rv]) = (io.params, io.buffers) else { unreachable!("batch norm registers two buffers") };
        match io.mode {
            Mode::Train => {
                let [sm, si] = io.saved else { unreachable!("batch norm saves two tensors") };
                be.batch_norm_train_act(io.x, &p[0], &p[1], rm, rv, io.y, sm, si, self.momentum, self.eps, Activation::relu_if(io.relu))
            }
            Mode::Eval => be.batch_norm_eval_act(io.x, &p[0], &p[1], rm, rv, io.y, self.eps, Activation::relu_if(io.relu)),
        }
    }
    fn fuses_relu(&self) -> bool {
        true
    }
    fn backward(&self, be: &B, io: Backward<'_, B>) -> Result<()> {
        if io.mode == Mode::Eval {
            return self.backward_eval(be, io);
        }
        if let Some(replicas) = io.replicas {
            return self.backward_synced(be, io, replicas);
        }
        let [sm, si] = io.saved else { unreachable!("batch norm saves two tensors") };
        let (dgamma, dbeta) = io.grads.split_at_mut(1);
        let mut temp = None;
        let dx = dx_or_temp(be, io.dx, io.x, &mut temp)?;
        be.batch_norm_backward(io.x, io.dy, &io.params[0], sm, si, dx, &mut dgamma[0], &mut dbeta[0])
    }
}

/// y = max(x, 0).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Relu;

impl<B: Backend> Layer<B> for Relu {
    fn kind(&self) -> &str {
        "relu"
    }
    fn build(&mut self, input: &[usize], _: &mut Build) -> Result<Vec<usize>> {
        Ok(input.to_vec())
    }
    fn forward(&self, be: &B, io: Forward<'_, B>) -> Result<()> {
        be.relu(io.x, io.y)
    }
    fn backward(&self, be: &B, io: Backward<'_, B>) -> Result<()> {
        match io.dx {
            Some(dx) => be.relu_backward(io.x, io.dy, dx),
            None => Ok(()),
        }
    }
    fn is_rectifier(&self) -> bool {
        true
    }
}

/// Max pooling (PyTorch's `nn.MaxPool2d`, floor mode).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaxPool2d(pub PoolSpec);

impl MaxPool2d {
    /// A k x k window moved by `stride`, padded by `padding`.
    pub fn new(k: usize, stride: usize, padding: usize) -> Self {
        Self(PoolSpec { kernel: [k, k], stride: [stride, stride], padding: [padding, padding], count_include_pad: true })
    }
}

fn pool_out(input: &[usize], spec: PoolSpec) -> Result<Vec<usize>> {
    let [c, h, w] = chw(input)?;
    let d = ops::pool_dims("pool", &[1, c, h, w], spec).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(vec![c, d.oh, d.ow])
}

fn pool_describe(s: &PoolSpec) -> String {
    format!("{}x{} s{} p{}", s.kernel[0], s.kernel[1], s.stride[0], s.padding[0])
}

impl<B: Backend> Layer<B> for MaxPool2d {
    fn kind(&self) -> &str {
        "max_pool2d"
    }
    fn build(&mut self, input: &[usize], _: &mut Build) -> Result<Vec<usize>> {
        pool_out(input, self.0)
    }
    fn saved(&self, x: &[usize]) -> Vec<Vec<usize>> {
        // Where each maximum was: one index per output.
        ops::pool_dims("max_pool2d", x, self.0).map(|d| vec![d.y_shape().to_vec()]).unwrap_or_default()
    }
    fn forward(&self, be: &B, io: Forward<'_, B>) -> Result<()> {
        let [idx] = io.saved else { unreachable!("max pooling saves its indices") };
        be.max_pool2d(io.x, io.y, idx, self.0)
    }
    fn backward(&self, be: &B, io: Backward<'_, B>) -> Result<()> {
        let [idx] = io.saved else { unreachable!("max pooling saves its indices") };
        match io.dx {
            Some(dx) => be.max_pool2d_backward(io.dy, idx, dx, self.0),
            None => Ok(()),
        }
    }
    fn describe(&self) -> String {
        pool_describe(&self.0)
    }
    fn takes_relu_mask(&self) -> bool {
        true
    }
}

/// Average pooling (PyTorch's `nn.AvgPool2d`, floor mode).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AvgPool2d(pub PoolSpec);

impl<B: Backend> Layer<B> for AvgPool2d {
    fn kind(&self) -> &str {
        "avg_pool2d"
    }
    fn build(&mut self, input: &[usize], _: &mut Build) -> Result<Vec<usize>> {
        pool_out(input, self.0)
    }
    fn forward(&self, be: &B, io: Forward<'_, B>) -> Result<()> {
        be.avg_pool2d(io.x, io.y, self.0)
    }
    fn backward(&self, be: &B, io: Backward<'_, B>) -> Result<()> {
        match io.dx {
            Some(dx) => be.avg_pool2d_backward(io.dy, dx, self.0),
            None => Ok(()),
        }
    }
    fn describe(&self) -> String {
        pool_describe(&self.0)
    }
}

/// The mean of each channel: [C, H, W] -> \[C\].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GlobalAvgPool;

impl<B: Backend> Layer<B> for GlobalAvgPool {
    fn kind(&self) -> &str {
        "global_avg_pool"
    }
    fn build(&mut self, input: &[usize], _: &mut Build) -> Result<Vec<usize>> {
        Ok(vec![chw(input)?[0]])
    }
    fn forward(&self, be: &B, io: Forward<'_, B>) -> Result<()> {
        be.global_avg_pool(io.x, io.y)
    }
    fn backward(&self, be: &B, io: Backward<'_, B>) -> Result<()> {
        match io.dx {
            Some(dx) => be.global_avg_pool_backward(io.dy, dx),
            None => Ok(()),
        }
    }
}

/// Inverted dropout (PyTorch's `nn.Dropout`): in training, each element is zeroed with
/// probability `p` and the rest scaled by 1 / (1 - p); in evaluation, the identity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// Drop probability.
    pub p: f32,
}

impl Dropout {
    /// Dropout with drop probability `p`.
    pub fn new(p: f32) -> Self {
        Self { p }
    }
}

impl<B: Backend> Layer<B> for Dropout {
    fn kind(&self) -> &str {
        "dropout"
    }
    fn build(&mut self, input: &[usize], _: &mut Build) -> Result<Vec<usize>> {
        if !(0.0..1.0).contains(&self.p) {
            return Err(Error::Invalid(format!("p is {}, expected a probability in [0, 1)", self.p)));
        }
        Ok(input.to_vec())
    }
    fn forward(&self, be: &B, io: Forward<'_, B>) -> Result<()> {
        if io.mode == Mode::Train && self.p > 0.0 {
            be.dropout(io.x, io.y, &DropoutMask::new(self.p, io.seed, io.step)?)
        } else {
            be.copy(io.x, io.y)
        }
    }
    fn backward(&self, be: &B, io: Backward<'_, B>) -> Result<()> {
        let Some(dx) = io.dx else { return Ok(()) };
        if self.p > 0.0 && io.mode == Mode::Train {
            // The same mask as the forward: a function of (seed, step).
            be.dropout(io.dy, dx, &DropoutMask::new(self.p, io.seed, io.step)?)
        } else {
            be.copy(io.dy, dx)
        }
    }
    fn describe(&self) -> String {
        format!("p {}", self.p)
    }
}

/// [C, H, W] -> [C * H * W] (a copy: tensors own their storage).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Flatten;

impl<B: Backend> Layer<B> for Flatten {
    fn kind(&self) -> &str {
        "flatten"
    }
    fn build(&mut self, input: &[usize], _: &mut Build) -> Result<Vec<usize>> {
        let n = crate::tensor::checked_numel(input)
            .ok_or_else(|| Error::Invalid(format!("input {input:?} has more elements than can be counted")))?;
        Ok(vec![n])
    }
    fn forward(&self, be: &B, io: Forward<'_, B>) -> Result<()> {
        be.copy(io.x, io.y)
    }
    fn backward(&self, be: &B, io: Backward<'_, B>) -> Result<()> {
        match io.dx {
            Some(dx) => be.copy(io.dy, dx),
            None => Ok(()),
        }
    }
}

/// Fully connected (PyTorch's `nn.Linear`): y = x @ weightᵀ + bias, weight [out, in].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Linear {
    /// Output features.
    pub out: usize,
    /// Whether it has a bias.
    pub bias: bool,
    macs: usize,
}

impl Linear {
    /// A linear layer to `out` features, with bias.
    pub fn new(out: usize) -> Self {
        Self { out, bias: true, macs: 0 }
    }
    /// The same without a bias.
    pub fn no_bias(mut self) -> Self {
        self.bias = false;
        self
    }
}

impl<B: Backend> Layer<B> for Linear {
    fn kind(&self) -> &str {
        "linear"
    }
    fn build(&mut self, input: &[usize], ctx: &mut Build) -> Result<Vec<usize>> {
        let [n_in] = *input else {
            return Err(Error::Invalid(format!("linear needs a flat input (add a flatten layer), got {}", ShapeFmt(input))));
        };
        ctx.param("weight", &[self.out, n_in], Init::Weight { fan_in: n_in.max(1) });
        if self.bias {
            ctx.param("bias", &[self.out], Init::Uniform { bound: 1.0 / (n_in.max(1) as f32).sqrt() });
        }
        self.macs = self.out * n_in;
        Ok(vec![self.out])
    }
    fn forward(&self, be: &B, io: Forward<'_, B>) -> Result<()> {
        if !io.relu {
            return be.linear(io.x, &io.params[0], io.params.get(1), io.y);
        }
        be.linear(io.x, &io.params[0], None, io.y)?;
        bias_relu(be, io.y, io.params.get(1))
    }
    fn fuses_relu(&self) -> bool {
        true
    }
    fn backward(&self, be: &B, io: Backward<'_, B>) -> Result<()> {
        let (dw, db) = io.grads.split_at_mut(1);
        be.linear_backward(io.x, &io.params[0], io.dy, io.dx, &mut dw[0], db.first_mut())
    }
    fn macs(&self) -> usize {
        self.macs
    }
}
