//! The `Layer` trait: what a layer of a model is, for the model that runs it.
//!
//! A layer is a plain struct holding its settings. [`Model`](super::Model) asks it, once, to
//! [`build`](Layer::build) for an input shape: it registers its trained parameters and its
//! persistent buffers with a [`Build`] context (which names them as a PyTorch state dict
//! would, `layers.0.weight`) and returns its output shape. The model keeps every parameter of
//! every layer in one arena (so the optimizer updates them all in one dispatch) and, per batch
//! size, every activation; it hands the layer its slices in [`Forward`] and [`Backward`].
//!
//! A user's crate adds a layer by implementing this trait: `examples/custom_layer.rs` adds a
//! LeakyReLU with its own WGSL kernel and CPU twin.

use crate::backend::{Backend, T};
use crate::distributed::Replicas;
use crate::Result;

/// How a parameter starts (drawn from the model's seeded generator, in registration order).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Every element this value (batch norm's gamma 1 and beta 0).
    Const(f32),
    /// Uniform in [-bound, bound].
    Uniform {
        /// Half the width of the interval.
        bound: f32,
    },
    /// A weight with `fan_in` inputs per output: He (Kaiming) uniform, bound sqrt(6 / fan_in),
    /// when the layer feeds a rectifier (see [`Layer::is_rectifier`]) before any other
    /// weighted layer; PyTorch's default bound 1 / sqrt(fan_in) otherwise.
    Weight {
        /// Inputs that each output sums over.
        fan_in: usize,
    },
}

/// A trained tensor of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    /// State-dict name, e.g. `layers.0.weight`.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// How it starts.
    pub init: Init,
    /// Index of the node (see [`Model::nodes`](super::Model::nodes)) it belongs to.
    pub node: usize,
}

/// A persistent tensor that is not trained (batch norm's running statistics).
#[derive(Clone, Debug, PartialEq)]
pub struct BufferInfo {
    /// State-dict name, e.g. `layers.1.running_mean`.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its starting value.
    pub fill: f32,
    /// Index of the node it belongs to.
    pub node: usize,
}

/// What a layer registers while it builds. Names are relative to the layer (`weight`); the
/// context prefixes them with the layer's place in the model (`layers.3.body.0.weight`).
#[derive(Debug, Default)]
pub struct Build {
    pub(crate) prefix: String,
    pub(crate) node: usize,
    pub(crate) params: Vec<ParamInfo>,
    pub(crate) buffers: Vec<BufferInfo>,
}

impl Build {
    /// A context for a layer at `prefix` (e.g. `layers.0`), to build a layer on its own (the
    /// model makes one per layer).
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_string(), ..Self::default() }
    }

    /// The parameters registered so far.
    pub fn params(&self) -> &[ParamInfo] {
        &self.params
    }

    /// The buffers registered so far.
    pub fn buffers(&self) -> &[BufferInfo] {
        &self.buffers
    }

    /// Registers a trained parameter; the layer finds it at the same position in
    /// [`Forward::params`] (and its gradient in [`Backward::grads`]).
    pub fn param(&mut self, name: &str, shape: &[usize], init: Init) {
        self.params.push(ParamInfo { name: format!("{}.{name}", self.prefix), shape: shape.to_vec(), init, node: self.node });
    }

    /// Registers a persistent buffer (saved in checkpoints, not trained); the layer finds it at
    /// the same position in [`Forward::buffers`].
    pub fn buffer(&mut self, name: &str, shape: &[usize], fill: f32) {
        self.buffers.push(BufferInfo { name: format!("{}.{name}", self.prefix), shape: shape.to_vec(), fill, node: self.node });
    }

    /// The layer's place in the model, e.g. `layers.3` (for error messages).
    pub fn name(&self) -> &str {
        &self.prefix
    }
}

/// Training or evaluation (batch norm's statistics, dropout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Batch statistics, dropout on.
    Train,
    /// Running statistics, dropout off.
    Eval,
}

/// What a layer's forward reads and writes. Shapes include the batch dimension.
pub struct Forward<'a, B: Backend> {
    /// The input.
    pub x: &'a T<B>,
    /// The output, to overwrite.
    pub y: &'a mut T<B>,
    /// The parameters the layer registered, in order.
    pub params: &'a [T<B>],
    /// The buffers the layer registered, in order.
    pub buffers: &'a mut [T<B>],
    /// Tensors kept for the backward, as [`Layer::saved`] asked for.
    pub saved: &'a mut [T<B>],
    /// Training or evaluation.
    pub mode: Mode,
    /// A seed unique to this layer in this model (for random masks).
    pub seed: u64,
    /// Optimizer steps taken so far (random masks differ per step).
    pub step: u64,
    /// The replicas of a data-parallel run when the layer should compute its batch statistics
    /// over all of them ([`crate::nn::Model::sync_batch_norm`]); `None` otherwise, and for
    /// every layer that has no batch statistics.
    pub replicas: Option<&'a Replicas>,
    /// A ReLU is fused into this layer (see [`Layer::fuses_relu`]): `y` must end rectified,
    /// max(y, 0). Never set for a layer that does not fuse one.
    pub relu: bool,
}

/// What a layer's backward reads and writes. Shapes include the batch dimension.
pub struct Backward<'a, B: Backend> {
    /// The forward's input.
    pub x: &'a T<B>,
    /// The forward's output.
    pub y: &'a T<B>,
    /// Gradient of the loss with respect to `y`.
    pub dy: &'a T<B>,
    /// Where the gradient with respect to `x` goes; `None` when nothing needs it (the
    /// model's first layer), so the layer can skip computing it.
    pub dx: Option<&'a mut T<B>>,
    /// The parameters, in registration order.
    pub params: &'a [T<B>],
    /// Their gradients, to overwrite.
    pub grads: &'a mut [T<B>],
    /// The buffers.
    pub buffers: &'a [T<B>],
    /// What the forward saved.
    pub saved: &'a [T<B>],
    /// The mode of the forward being differentiated. Training is the usual case; eval mode
    /// differentiates the eval forward (batch norm with its running statistics, dropout as
    /// the identity), for sharpness and other measurements of the trained function.
    pub mode: Mode,
    /// As in the forward.
    pub seed: u64,
    /// As in the forward.
    pub step: u64,
    /// As in the forward.
    pub replicas: Option<&'a Replicas>,
}

/// One layer of a model. Implemented by every built-in layer (`nn::layers`) and by a user's own.
pub trait Layer<B: Backend> {
    /// The layer's kind, as summaries and model files call it (`conv2d`, `relu`, ...).
    fn kind(&self) -> &str;

    /// Resolves the layer for one sample of shape `input` (no batch dimension): registers its
    /// parameters and buffers with `ctx` and returns the output shape. Called once per model.
    fn build(&mut self, input: &[usize], ctx: &mut Build) -> Result<Vec<usize>>;

    /// y from x (and the parameters), for a batch.
    fn forward(&self, be: &B, io: Forward<'_, B>) -> Result<()>;

    /// The gradients of the parameters (overwritten) and, if asked, of x, from dy.
    fn backward(&self, be: &B, io: Backward<'_, B>) -> Result<()>;

    /// Shapes of the tensors the forward keeps for the backward, for a batch input of shape
    /// `x` (max pooling's argmax, batch norm's statistics). Allocated once per batch size.
    fn saved(&self, _x: &[usize]) -> Vec<Vec<usize>> {
        Vec::new()
    }

    /// Multiply-accumulates of the forward per sample (after `build`), for summaries and GFLOP/s.
    fn macs(&self) -> usize {
        0
    }

    /// Settings worth a column in a summary, e.g. `5x5 s1 p2`.
    fn describe(&self) -> String {
        String::new()
    }

    /// Whether this is a rectifier (ReLU and its kin): weighted layers that feed one get He
    /// initialisation.
    fn is_rectifier(&self) -> bool {
        false
    }

    /// Whether a ReLU that reads this layer's output (and nothing else does) may be fused into
    /// it. The model then drops the ReLU's node and its two activation-sized buffers, sets
    /// [`Forward::relu`], and the forward writes max(y, 0) itself: in its own last pass where it
    /// can (batch norm's apply, a bias add), or by [`Backend::relu_in_place`]. In the backward
    /// the model masks dy by the rectified y before the layer sees it (or the one layer that
    /// reads y masked its own output's gradient, see [`Layer::takes_relu_mask`]), so the
    /// layer's backward is unchanged, but it must not read `y` (which is rectified). Off by
    /// default.
    fn fuses_relu(&self) -> bool {
        false
    }

    /// Whether the backward of a ReLU fused into the layer before this one may run at this
    /// layer's output gradient instead (dy masked where this layer's output is not > 0), when
    /// this layer alone reads that output. True for a layer whose every output is one of its
    /// input's values, its gradient going to that value alone (max pooling): the ReLU's mask
    /// at that value is then the output's, and the mask covers fewer values. Off by default.
    fn takes_relu_mask(&self) -> bool {
        false
    }
}
