//! A model on a backend. Built from a [`Sequential`] of layers (or a [`ModelSpec`]), unrolled
//! into a graph of nodes; parameters, gradients and optimizer state live in arenas (one buffer
//! each on the GPU, so the optimizer step is one dispatch), and per batch size a plan holds
//! every activation, gradient and saved tensor, allocated on first use and reused by every
//! later step. A training step — forward, loss, backward, update — is recorded without
//! reading anything back; loss and accuracy accumulate on the device until `take_metrics`.
//!
//! The step in its parts, for a hand-written loop (`examples/custom_loop.rs`):
//! ```ignore
//! let batch = model.load_batch(&be, &x, Targets::Labels(&labels))?;
//! model.forward(&be, batch, Mode::Train)?;
//! model.loss(&be, batch, &CrossEntropy::default())?;
//! model.backward(&be, batch)?;
//! model.update(&be, &optimizer, None)?;
//! ```

use std::collections::HashMap;
use std::ops::Range;

use super::container::{Block, Sequential};
use super::freeze::{self, Freezing};
use super::layer::{Backward, BufferInfo, Build, Forward, Init, Layer, Mode, ParamInfo};
use super::layers::Relu;
use super::loss::{Loss, LossTarget};
use super::spec::ModelSpec;
use crate::backend::{Backend, T};
use crate::distributed::Replicas;
use crate::ops::Optimizer;
use crate::rng::Rng;
use crate::tensor::ShapeFmt;
use crate::{Error, Result};

/// What a step learns from: class indices, or probability rows (mixup, cutmix) together with
/// the dominant class of each row (for accuracy).
pub enum Targets<'a> {
    /// Class indices \[N\] as f32.
    Labels(&'a [f32]),
    /// Rows [N, C] of target probabilities, and the class with the larger share of each.
    Probs {
        /// [N, C]
        probs: &'a [f32],
        /// \[N\]
        labels: &'a [f32],
    },
}

/// What a node computes.
pub enum Op<B: Backend> {
    /// A layer.
    Layer(Box<dyn Layer<B>>),
    /// The sum of a residual block's two paths.
    Add,
}

/// One step of a model as it runs: a layer (or the sum of a residual block) reading activation
/// `input` (0 is the model's input, k + 1 the output of node k) and, for a sum, `input2`.
pub struct Node<B: Backend> {
    /// State-dict prefix, e.g. `layers.3.body.0`.
    pub name: String,
    /// What it computes.
    pub op: Op<B>,
    /// The activation it reads.
    pub input: usize,
    /// The second activation a sum reads.
    pub input2: Option<usize>,
    /// Shape of one sample of its input.
    pub in_shape: Vec<usize>,
    /// Shape of one sample of its output.
    pub out_shape: Vec<usize>,
    /// Its parameters in the model's lists.
    pub params: Range<usize>,
    /// Its buffers in the model's lists.
    pub buffers: Range<usize>,
    /// The index of the top-level element of the model it belongs to.
    pub top: usize,
    /// A ReLU that read this node's output alone is fused into it (see [`Layer::fuses_relu`]):
    /// the node's output is rectified and the ReLU has no node of its own.
    pub relu: bool,
    /// Its index in the graph before ReLUs were fused: it seeds the node's random masks, so
    /// that fusing changes no dropout mask.
    pub unfused: usize,
    /// Its fused ReLU's backward runs at the output gradient of its only reader, a layer that
    /// takes the mask ([`Layer::takes_relu_mask`]: max pooling): the same gradient from the
    /// same mask, over the reader's fewer values.
    pub relu_mask_after: bool,
}

impl<B: Backend> Node<B> {
    /// The layer's kind (`add` for a residual sum), without a fused ReLU ([`Node::relu`]).
    pub fn kind(&self) -> &str {
        match &self.op {
            Op::Layer(l) => l.kind(),
            Op::Add => "add",
        }
    }
    /// Settings for a summary.
    pub fn describe(&self) -> String {
        match &self.op {
            Op::Layer(l) => l.describe(),
            Op::Add => String::new(),
        }
    }
    /// Multiply-accumulates per sample.
    pub fn macs(&self) -> usize {
        match &self.op {
            Op::Layer(l) => l.macs(),
            Op::Add => 0,
        }
    }
}

/// A model unrolled into nodes, with every parameter and buffer it declares: what
/// [`Model::new`] allocates, and what summaries read without allocating anything.
pub struct Graph<B: Backend> {
    /// The nodes, each after its inputs.
    pub nodes: Vec<Node<B>>,
    /// Every trained tensor, in node order.
    pub params: Vec<ParamInfo>,
    /// Every persistent untrained tensor, in node order.
    pub buffers: Vec<BufferInfo>,
    /// Shape of one sample of the output.
    pub output: Vec<usize>,
}

impl<B: Backend> Graph<B> {
    /// Builds every layer of `net` for inputs of shape `input` ([C, H, W]); `model` names the
    /// model in errors, which also name the layer (`model default: layers.11 (linear): ...`).
    pub fn compile(net: Sequential<B>, input: &[usize], model: &str) -> Result<Self> {
        let mut g = Graph { nodes: Vec::new(), params: Vec::new(), buffers: Vec::new(), output: Vec::new() };
        let (_, out) = g.flatten(net, "layers", 0, input.to_vec(), None, model)?;
        g.output = out;
        Ok(g)
    }

    fn flatten(
        &mut self,
        seq: Sequential<B>,
        prefix: &str,
        mut cur: usize,
        mut shape: Vec<usize>,
        top: Option<usize>,
        model: &str,
    ) -> Result<(usize, Vec<usize>)> {
        for (j, block) in seq.items.into_iter().enumerate() {
            let name = format!("{prefix}.{j}");
            let top = top.unwrap_or(j);
            (cur, shape) = match block {
                Block::Layer(layer) => self.push_layer(layer, name, cur, shape, top, model)?,
                Block::Residual(r) => {
                    let (b, bs) = self.flatten(r.body, &format!("{name}.body"), cur, shape.clone(), Some(top), model)?;
                    let (s, ss) = if r.shortcut.is_empty() {
                        (cur, shape)
                    } else {
                        self.flatten(r.shortcut, &format!("{name}.shortcut"), cur, shape, Some(top), model)?
                    };
                    if bs != ss {
                        return Err(Error::Invalid(format!(
                            "model {model}: {name} (residual): the body gives {} but the shortcut {}",
                            ShapeFmt(&bs),
                            ShapeFmt(&ss)
                        )));
                    }
                    let n = self.nodes.len();
                    self.nodes.push(Node {
                        name: format!("{name}.add"),
                        op: Op::Add,
                        input: b,
                        input2: Some(s),
                        in_shape: bs.clone(),
                        out_shape: bs.clone(),
                        params: 0..0,
                        buffers: 0..0,
                        top,
                        relu: false,
                        unfused: n,
                        relu_mask_after: false,
                    });
                    self.push_layer(Box::new(Relu), format!("{name}.relu"), n + 1, bs, top, model)?
                }
            };
        }
        Ok((cur, shape))
    }

    fn push_layer(
        &mut self,
        mut layer: Box<dyn Layer<B>>,
        name: String,
        input: usize,
        shape: Vec<usize>,
        top: usize,
        model: &str,
    ) -> Result<(usize, Vec<usize>)> {
        let mut ctx = Build { prefix: name.clone(), node: self.nodes.len(), ..Default::default() };
        let out = layer.build(&shape, &mut ctx).map_err(|e| {
            let msg = match e {
                Error::Invalid(m) => m,
                e => e.to_string(),
            };
            Error::Invalid(format!("model {model}: {name} ({}): {msg}", layer.kind()))
        })?;
        // Every size the layer asks for must be countable (`summary` and the planners multiply them).
        let too_big = std::iter::once(("output", &out))
            .chain(ctx.params.iter().map(|p| ("parameter", &p.shape)))
            .chain(ctx.buffers.iter().map(|b| ("buffer", &b.shape)))
            .find(|(_, s)| crate::tensor::checked_numel(s).and_then(|n| n.checked_mul(4)).is_none());
        if let Some((what, s)) = too_big {
            return Err(Error::Invalid(format!(
                "model {model}: {name} ({}): {what} of shape {s:?} has more elements than can be counted",
                layer.kind()
            )));
        }
        // An empty output or parameter (a layer of 0 channels or outputs) leaves nothing to
        // train and ops later refuse it mid-run: refused here, where the layer can be named.
        let empty =
            std::iter::once(("output", &out)).chain(ctx.params.iter().map(|p| ("parameter", &p.shape))).find(|(_, s)| s.contains(&0));
        if let Some((what, s)) = empty {
            return Err(Error::Invalid(format!("model {model}: {name} ({}): {what} of shape {s:?} is empty", layer.kind())));
        }
        let (p0, b0) = (self.params.len(), self.buffers.len());
        self.params.extend(ctx.params);
        self.buffers.extend(ctx.buffers);
        self.nodes.push(Node {
            name,
            op: Op::Layer(layer),
            input,
            input2: None,
            in_shape: shape,
            out_shape: out.clone(),
            params: p0..self.params.len(),
            buffers: b0..self.buffers.len(),
            top,
            relu: false,
            unfused: self.nodes.len(),
            relu_mask_after: false,
        });
        Ok((self.nodes.len(), out))
    }

    /// Whether node `k` feeds a rectifier through layers without weights (batch norm, pooling,
    /// dropout, a residual sum) before any other weighted layer: then its weights get He
    /// initialisation.
    pub fn feeds_rectifier(&self, k: usize) -> bool {
        if self.nodes[k].relu {
            return true;
        }
        for n in &self.nodes[k + 1..] {
            if n.relu {
                return true;
            }
            if let Op::Layer(l) = &n.op {
                if l.is_rectifier() {
                    return true;
                }
            }
            if self.params[n.params.clone()].iter().any(|p| matches!(p.init, Init::Weight { .. })) {
                return false;
            }
        }
        false
    }

    /// Fuses each ReLU into the node before it where that node allows it (a sum, or a layer
    /// whose [`Layer::fuses_relu`] says so) and the ReLU is the only reader of its output: the
    /// ReLU's node goes, and with it an activation and its gradient per batch size. Returns how
    /// many were fused. Parameters and buffers keep their names; their node indices follow.
    pub fn fuse_relus(&mut self) -> usize {
        let mut readers = vec![0usize; self.nodes.len() + 1];
        for n in &self.nodes {
            readers[n.input] += 1;
            if let Some(j) = n.input2 {
                readers[j] += 1;
            }
        }
        // act[a]: what activation a of the old graph is in the new one; node[k] likewise.
        let mut act: Vec<usize> = (0..=self.nodes.len()).collect();
        let mut node = vec![0usize; self.nodes.len()];
        let mut kept: Vec<Node<B>> = Vec::with_capacity(self.nodes.len());
        for (k, mut n) in std::mem::take(&mut self.nodes).into_iter().enumerate() {
            let single = readers[n.input] == 1;
            n.input = act[n.input];
            n.input2 = n.input2.map(|j| act[j]);
            // The built-in ReLU (a rectifier of kind `relu` with nothing to train).
            let is_relu =
                matches!(&n.op, Op::Layer(l) if l.kind() == "relu" && l.is_rectifier()) && n.params.is_empty() && n.buffers.is_empty();
            if is_relu && single && n.input > 0 {
                let p = &mut kept[n.input - 1];
                let fusable = match &p.op {
                    Op::Add => true,
                    Op::Layer(l) => l.fuses_relu(),
                };
                if fusable && !p.relu && p.out_shape == n.out_shape {
                    p.relu = true;
                    act[k + 1] = n.input;
                    node[k] = n.input - 1;
                    continue;
                }
            }
            node[k] = kept.len();
            kept.push(n);
            act[k + 1] = kept.len();
        }
        let fused = node.len() - kept.len();
        // A fused ReLU whose output only a mask-taking layer reads leaves its mask to it.
        let mut readers = vec![Vec::new(); kept.len() + 1];
        for (k, n) in kept.iter().enumerate() {
            readers[n.input].push(k);
            if let Some(j) = n.input2 {
                readers[j].push(k);
            }
        }
        for j in 0..kept.len() {
            if let [k] = readers[j + 1][..] {
                let takes = matches!(&kept[k].op, Op::Layer(l) if l.takes_relu_mask()) && kept[k].input2.is_none();
                kept[j].relu_mask_after = kept[j].relu && takes;
            }
        }
        self.nodes = kept;
        for p in &mut self.params {
            p.node = node[p.node];
        }
        for b in &mut self.buffers {
            b.node = node[b.node];
        }
        fused
    }
}

/// The buffers of one batch size.
struct Plan<S> {
    /// acts[0] is the input; acts[i + 1] the output of node i.
    acts: Vec<crate::tensor::Tensor<S>>,
    /// Gradients of the loss with respect to acts[i].
    dacts: Vec<crate::tensor::Tensor<S>>,
    /// What each node keeps from its forward for its backward.
    saved: Vec<Vec<crate::tensor::Tensor<S>>>,
    /// Per multi-consumer activation: (gradient scratch, sum scratch).
    scratch: HashMap<usize, (crate::tensor::Tensor<S>, crate::tensor::Tensor<S>)>,
    labels: crate::tensor::Tensor<S>,
    probs: crate::tensor::Tensor<S>,
    /// Whether the batch now loaded came with probability rows.
    soft: bool,
    /// The mode of the last forward, which `backward` differentiates.
    mode: Mode,
    loss: crate::tensor::Tensor<S>,
    flags: crate::tensor::Tensor<S>,
    scalar: crate::tensor::Tensor<S>,
    weighted: crate::tensor::Tensor<S>,
}

/// Loss and correct-count sums on the device (two buffers each, added into alternately).
struct Accumulators<S> {
    loss: [crate::tensor::Tensor<S>; 2],
    correct: [crate::tensor::Tensor<S>; 2],
    current: usize,
    samples: usize,
}

/// A tensor on the host with its state-dict name.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// State-dict name, e.g. `layers.0.weight`.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub data: Vec<f32>,
}

/// A model with its parameters, gradients, optimizer state and buffers on a backend.
pub struct Model<B: Backend> {
    /// The description it was built from, when it was built from one (zoo, model files):
    /// saved with checkpoints so the model can be rebuilt.
    pub spec: Option<ModelSpec>,
    /// A name for messages (the spec's, or the one given).
    pub name: String,
    /// Shape of one input sample, [C, H, W].
    pub input: Vec<usize>,
    graph: Graph<B>,
    /// How many nodes read each activation (0: the input, k + 1: node k's output).
    consumers: Vec<usize>,
    /// The trained tensors, in node order (one arena).
    pub params: Vec<T<B>>,
    /// Their gradients (one arena laid out alike).
    pub grads: Vec<T<B>>,
    /// The optimizer's first state tensor per trainable parameter (all of them unless some are
    /// frozen: see [`Model::freeze`] and [`Model::trainable`]).
    pub state1: Vec<T<B>>,
    /// The optimizer's second state tensor per trainable parameter.
    pub state2: Vec<T<B>>,
    /// Persistent untrained tensors (batch norm's running statistics), in node order.
    pub buffers: Vec<T<B>>,
    plans: HashMap<usize, Plan<B::Storage>>,
    freezing: Freezing,
    acc: Accumulators<B::Storage>,
    grad_sumsq: T<B>,
    /// Optimizer steps taken (the 1-based step of the next update is `step + 1`).
    pub step: u64,
    /// Seeds the initialisation and dropout masks.
    pub seed: u64,
    /// Class names of the data it learns from (saved with checkpoints for `predict`).
    pub classes: Vec<String>,
    /// Per-channel input normalisation (mean, std) of that data.
    pub normalization: Vec<(f32, f32)>,
    /// The replicas of a data-parallel run: this replica's rank varies the dropout masks, and
    /// with [`Model::sync_batch_norm`] batch norm takes its statistics over every replica.
    replicas: Option<Replicas>,
    sync_bn: bool,
}

/// In `Model::backward`: what a node leaves to be added to an activation's gradient.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Added {
    Nothing,
    /// The node's dy (a sum passes it on unchanged).
    Dy,
    /// The layer's gradient, written into the activation's scratch.
    Scratch,
}

impl<B: Backend> Model<B> {
    /// Builds `net` for inputs of shape `input` ([C, H, W]), initialised from `seed`: layers
    /// register their parameters, which start as their [`Init`] says (He uniform for weights
    /// that feed a rectifier, PyTorch's default uniform otherwise); buffers start at their fill.
    /// Each ReLU that alone reads a batch norm, convolution, linear layer or residual sum is
    /// fused into it ([`Graph::fuse_relus`]; `WGTRAIN_FUSE=0` turns that off, to measure it).
    pub fn new(be: &B, net: Sequential<B>, input: &[usize], seed: u64, name: &str) -> Result<Self> {
        let fuse = std::env::var("WGTRAIN_FUSE").map_or(true, |v| v != "0");
        Self::with_fusion(be, net, input, seed, name, fuse)
    }

    /// [`Model::new`], fusing ReLUs into the nodes before them or not: the same function
    /// either way, from the same initial parameters; fused, a step has fewer passes and the
    /// model two fewer activation-sized buffers per fused ReLU.
    pub fn with_fusion(be: &B, net: Sequential<B>, input: &[usize], seed: u64, name: &str, fuse: bool) -> Result<Self> {
        let mut graph = Graph::compile(net, input, name)?;
        if fuse {
            graph.fuse_relus();
        }
        let mut consumers = vec![0usize; graph.nodes.len() + 1];
        for n in &graph.nodes {
            consumers[n.input] += 1;
            if let Some(j) = n.input2 {
                consumers[j] += 1;
            }
        }
        let shapes: Vec<Vec<usize>> = graph.params.iter().map(|p| p.shape.clone()).collect();
        let mut params = be.arena(&shapes)?;
        let mut rng = Rng::new(seed);
        for (p, info) in params.iter_mut().zip(&graph.params) {
            let values = match info.init {
                Init::Const(v) => vec![v; p.numel()],
                Init::Uniform { bound } => rng.vec(p.numel(), -bound, bound),
                Init::Weight { fan_in } => {
                    let fan_in = fan_in.max(1) as f32;
                    let bound = if graph.feeds_rectifier(info.node) { (6.0 / fan_in).sqrt() } else { 1.0 / fan_in.sqrt() };
                    rng.vec(p.numel(), -bound, bound)
                }
            };
            be.write(p, &values)?;
        }
        let mut buffers = Vec::with_capacity(graph.buffers.len());
        for b in &graph.buffers {
            buffers.push(be.upload(&b.shape, &vec![b.fill; b.shape.iter().product()])?);
        }
        let freezing = Freezing::new(&graph.nodes, vec![false; graph.params.len()]);
        let acc =
            Accumulators { loss: [be.zeros(&[1])?, be.zeros(&[1])?], correct: [be.zeros(&[1])?, be.zeros(&[1])?], current: 0, samples: 0 };
        Ok(Self {
            grads: be.arena(&shapes)?,
            state1: be.arena(&shapes)?,
            state2: be.arena(&shapes)?,
            grad_sumsq: be.zeros(&[1])?,
            spec: None,
            name: name.to_string(),
            input: input.to_vec(),
            graph,
            consumers,
            params,
            buffers,
            plans: HashMap::new(),
            freezing,
            acc,
            step: 0,
            seed,
            classes: Vec::new(),
            normalization: Vec::new(),
            replicas: None,
            sync_bn: false,
        })
    }

    /// Builds the model a [`ModelSpec`] describes (zoo, model files, checkpoints).
    pub fn from_spec(be: &B, spec: &ModelSpec, input: &[usize], seed: u64) -> Result<Self> {
        let mut m = Self::new(be, spec.build()?, input, seed, &spec.name)?;
        m.spec = Some(spec.clone());
        Ok(m)
    }

    /// The nodes as they run (residual blocks unrolled into their layers, a sum and a ReLU;
    /// a fused ReLU is a flag of the node before it, [`Node::relu`]).
    pub fn nodes(&self) -> &[Node<B>] {
        &self.graph.nodes
    }

    /// Every trained tensor's name, shape and initialisation, in the order of `params`.
    pub fn param_info(&self) -> &[ParamInfo] {
        &self.graph.params
    }

    /// Every buffer's name, shape and starting value, in the order of `buffers`.
    pub fn buffer_info(&self) -> &[BufferInfo] {
        &self.graph.buffers
    }

    /// Shape of one output sample.
    pub fn output_shape(&self) -> &[usize] {
        &self.graph.output
    }

    /// Number of classes (outputs per sample).
    pub fn classes(&self) -> usize {
        self.graph.output.iter().product()
    }

    /// The input or node output with the most values per sample (the first of them): what it
    /// is, for messages, its shape and its bytes per sample.
    fn largest_activation(&self) -> (String, &[usize], u64) {
        let input = ("the input".to_string(), &self.input[..]);
        let outputs = self.graph.nodes.iter().map(|n| (format!("the output of {} ({})", n.name, n.kind()), &n.out_shape[..]));
        // The first of the largest (a convolution's output before the batch norm that keeps it).
        let size = |s: &[usize]| s.iter().product::<usize>();
        let (what, shape) = std::iter::once(input)
            .chain(outputs)
            .reduce(|a, b| if size(b.1) > size(a.1) { b } else { a })
            .expect("the input is always there");
        (what, shape, size(shape).max(1) as u64 * 4)
    }

    /// The largest batch whose input and every node's output fit the device's largest tensor
    /// (`Backend::memory().max_tensor_bytes`; on a GPU one storage binding, which batch norm,
    /// pooling and the other per-layer kernels bind whole).
    pub fn largest_batch(&self, max_tensor_bytes: u64) -> usize {
        usize::try_from(max_tensor_bytes / self.largest_activation().2).unwrap_or(usize::MAX)
    }

    /// Refuses a training batch larger than [`Model::largest_batch`], naming the tensor that
    /// would not fit, its size and the largest batch that does, before anything is allocated.
    pub fn check_batch(&self, batch: usize, max_tensor_bytes: u64) -> Result<()> {
        let most = self.largest_batch(max_tensor_bytes);
        if batch <= most {
            return Ok(());
        }
        let (what, shape, per_sample) = self.largest_activation();
        let mib = |b: u64| format!("{:.1} MiB", b as f64 / f64::from(1 << 20));
        let bytes = per_sample.saturating_mul(batch as u64);
        let dims: Vec<String> = std::iter::once(batch).chain(shape.iter().copied()).map(|d| d.to_string()).collect();
        Err(Error::Invalid(format!(
            "batch size {batch}: {what}, [{}] in f32, would be {}, more than this device's largest tensor ({}); \
             use a batch size of at most {most}",
            dims.join(", "),
            mib(bytes),
            mib(max_tensor_bytes),
        )))
    }

    /// Number of trained values.
    pub fn num_params(&self) -> usize {
        self.params.iter().map(|p| p.numel()).sum()
    }

    /// Sets the optimizer state to its starting values (Adagrad's initial accumulator) and the
    /// step count to 0.
    pub fn reset_optimizer(&mut self, be: &B, opt: &Optimizer) -> Result<()> {
        for (a, b) in self.state1.iter_mut().zip(self.state2.iter_mut()) {
            be.write(a, &vec![opt.initial_state(); a.numel()])?;
            be.write(b, &vec![0.0; b.numel()])?;
        }
        self.step = 0;
        Ok(())
    }

    /// Freezes the parameters whose state-dict names match any of the glob `patterns`
    /// (`layers.0.*`, `layers.[0-3].*`, `*.bias`; see [`freeze::glob_match`]) and returns the
    /// names it froze. Frozen parameters are never updated (weight decay included) and keep no
    /// optimizer state; a layer whose every parameter is frozen runs in eval mode in training
    /// (batch norm keeps its running statistics and uses them); no gradient is computed where
    /// nothing trainable lies upstream. A pattern matching nothing is an error listing the
    /// names, as is freezing everything. Cumulative: a second call freezes more. The optimizer
    /// state of parameters that stay trainable is kept. The `grads` of frozen parameters are
    /// not kept current (a frozen stem is not differentiated at all).
    pub fn freeze(&mut self, be: &B, patterns: &[impl AsRef<str>]) -> Result<Vec<String>> {
        let names: Vec<&str> = self.graph.params.iter().map(|p| p.name.as_str()).collect();
        let hit = freeze::select(&self.name, &names, patterns)?;
        let frozen: Vec<bool> = self.freezing.params.iter().zip(&hit).map(|(a, b)| *a || *b).collect();
        if frozen.iter().all(|&f| f) {
            return Err(Error::Invalid(format!("freezing every parameter of model {} leaves nothing to train", self.name)));
        }
        let matched = names.iter().zip(&hit).filter(|(_, h)| **h).map(|(n, _)| n.to_string()).collect();
        let old_trainable = self.freezing.trainable();
        let next = Freezing::new(&self.graph.nodes, frozen);
        // Lay the arenas out anew: trainable tensors first, so they are one span.
        let order = next.arena_order();
        let shapes: Vec<Vec<usize>> = order.iter().map(|&i| self.graph.params[i].shape.clone()).collect();
        let trainable = next.trainable();
        let state_shapes: Vec<Vec<usize>> = trainable.iter().map(|&i| self.graph.params[i].shape.clone()).collect();
        let (mut params, grads) = (be.arena(&shapes)?, be.arena(&shapes)?);
        let (mut s1, mut s2) = (be.arena(&state_shapes)?, be.arena(&state_shapes)?);
        for (slot, &i) in order.iter().enumerate() {
            be.copy(&self.params[i], &mut params[slot])?;
        }
        for (k, i) in trainable.iter().enumerate() {
            if let Some(old) = old_trainable.iter().position(|j| j == i) {
                be.copy(&self.state1[old], &mut s1[k])?;
                be.copy(&self.state2[old], &mut s2[k])?;
            }
        }
        // The copies read the old arenas: let them finish before those are released.
        be.sync()?;
        self.params = freeze::unpermute(params, &order);
        self.grads = freeze::unpermute(grads, &order);
        (self.state1, self.state2) = (s1, s2);
        self.freezing = next;
        Ok(matched)
    }

    /// The state-dict names of the frozen parameters, in model order.
    pub fn frozen(&self) -> Vec<String> {
        self.graph.params.iter().zip(&self.freezing.params).filter(|(_, f)| **f).map(|(p, _)| p.name.clone()).collect()
    }

    /// Indices (into `params`) of the trainable parameters, in order: `state1[k]` and
    /// `state2[k]` belong to `params[trainable()[k]]`.
    pub fn trainable(&self) -> Vec<usize> {
        self.freezing.trainable()
    }

    /// Number of trained values (the frozen ones excluded).
    pub fn num_trainable(&self) -> usize {
        self.trainable().iter().map(|&i| self.params[i].numel()).sum()
    }

    /// The mode node `k` runs in when the model runs in `mode`: eval for a fully frozen layer.
    fn node_mode(&self, k: usize, mode: Mode) -> Mode {
        if self.freezing.nodes[k] {
            Mode::Eval
        } else {
            mode
        }
    }

    fn plan(&mut self, be: &B, batch: usize) -> Result<()> {
        if batch == 0 {
            return Err(Error::Invalid("batch size 0: expected at least 1".into()));
        }
        if self.plans.contains_key(&batch) {
            return Ok(());
        }
        self.make_plan(be, batch).map_err(|e| match e {
            Error::Limit { .. } => Error::Invalid(format!("batch size {batch} does not fit the device ({e}); use a smaller batch size")),
            Error::Invalid(m) if m.starts_with("cannot allocate") => Error::Invalid(format!(
                "model {}: the activations of a batch of {batch} do not fit: {m}; use a smaller batch size or smaller layers",
                self.name
            )),
            e => e,
        })
    }

    fn make_plan(&mut self, be: &B, batch: usize) -> Result<()> {
        let with_batch = |s: &[usize]| [&[batch][..], s].concat();
        let mut acts = vec![be.zeros(&with_batch(&self.input))?];
        let mut dacts = vec![be.zeros(&with_batch(&self.input))?];
        let mut saved = Vec::new();
        for node in &self.graph.nodes {
            acts.push(be.zeros(&with_batch(&node.out_shape))?);
            dacts.push(be.zeros(&with_batch(&node.out_shape))?);
            let shapes = match &node.op {
                Op::Layer(l) => l.saved(&with_batch(&node.in_shape)),
                Op::Add => Vec::new(),
            };
            saved.push(shapes.iter().map(|s| be.zeros(s)).collect::<Result<Vec<_>>>()?);
        }
        // Activations read by two nodes (a residual block's input) gather two gradients: the
        // second goes through scratch buffers and is added.
        let mut scratch = HashMap::new();
        for (a, &n) in self.consumers.iter().enumerate() {
            if n > 1 {
                let shape = acts[a].shape().to_vec();
                scratch.insert(a, (be.zeros(&shape)?, be.zeros(&shape)?));
            }
        }
        let classes = self.classes();
        let plan = Plan {
            acts,
            dacts,
            saved,
            scratch,
            labels: be.zeros(&[batch])?,
            probs: be.zeros(&[batch, classes])?,
            soft: false,
            mode: Mode::Train,
            loss: be.zeros(&[1])?,
            flags: be.zeros(&[batch])?,
            scalar: be.zeros(&[1])?,
            weighted: be.zeros(&[1])?,
        };
        self.plans.insert(batch, plan);
        Ok(())
    }

    /// The seed of node `k`'s random masks (different on every replica of a data-parallel run:
    /// each replica draws the masks of its own samples; the same fused or not).
    fn node_seed(&self, k: usize) -> u64 {
        let rank = self.replicas.as_ref().map_or(0, |r| r.rank() as u64);
        let k = self.graph.nodes[k].unfused as u64;
        self.seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ rank.wrapping_mul(0xD6E8_FEB8_6659_FD93)
    }

    /// Makes this model one replica of a data-parallel run (`None`: a model of its own again).
    /// The trainer sets it from [`crate::train::Trainer::replicas`].
    pub fn set_replicas(&mut self, replicas: Option<Replicas>) {
        self.replicas = replicas;
    }

    /// The replicas set by [`Model::set_replicas`].
    pub fn replicas(&self) -> Option<&Replicas> {
        self.replicas.as_ref()
    }

    /// Batch norm in training mode normalises with the mean and variance of the whole global
    /// batch, summed over the replicas (PyTorch's `SyncBatchNorm`), instead of each replica's
    /// own: two exchanges of per-channel sums per batch-norm layer and step, forward and
    /// backward. Does nothing without replicas.
    pub fn sync_batch_norm(&mut self, on: bool) {
        self.sync_bn = on;
    }

    /// Whether batch norm statistics are synchronised (see [`Model::sync_batch_norm`]).
    pub fn syncs_batch_norm(&self) -> bool {
        self.sync_bn
    }

    /// The replicas batch norm synchronises over, when it does.
    fn bn_replicas(&self) -> Option<Replicas> {
        self.replicas.clone().filter(|r| self.sync_bn && r.size() > 1)
    }

    fn planned(&self, batch: usize) -> Result<&Plan<B::Storage>> {
        self.plans.get(&batch).ok_or_else(|| Error::Invalid(format!("no batch of {batch} was loaded (call load_batch first)")))
    }

    /// Uploads a batch: inputs [batch, C, H, W] (flat), labels and (mixed batches) target
    /// distributions; returns the batch size. All writes come before the step's kernels are
    /// recorded, so a step stays one submission.
    pub fn load_batch(&mut self, be: &B, x: &[f32], targets: Targets<'_>) -> Result<usize> {
        let batch = self.batch_of(x)?;
        self.plan(be, batch)?;
        let plan = self.plans.get_mut(&batch).ok_or_else(|| Error::Invalid("no plan for this batch size".into()))?;
        be.write(&mut plan.acts[0], x)?;
        match targets {
            Targets::Labels(l) => {
                be.write(&mut plan.labels, l)?;
                plan.soft = false;
            }
            Targets::Probs { probs, labels } => {
                be.write(&mut plan.labels, labels)?;
                be.write(&mut plan.probs, probs)?;
                plan.soft = true;
            }
        }
        Ok(batch)
    }

    /// Uploads inputs only (for `forward` in eval mode and `logits`).
    pub fn load_inputs(&mut self, be: &B, x: &[f32]) -> Result<usize> {
        let batch = self.batch_of(x)?;
        self.plan(be, batch)?;
        let plan = self.plans.get_mut(&batch).ok_or_else(|| Error::Invalid("no plan for this batch size".into()))?;
        be.write(&mut plan.acts[0], x)?;
        Ok(batch)
    }

    /// Runs every node on the loaded batch.
    pub fn forward(&mut self, be: &B, batch: usize, mode: Mode) -> Result<()> {
        self.planned(batch)?;
        let seeds: Vec<u64> = (0..self.graph.nodes.len()).map(|k| self.node_seed(k)).collect();
        let modes: Vec<Mode> = (0..self.graph.nodes.len()).map(|k| self.node_mode(k, mode)).collect();
        let replicas = self.bn_replicas();
        let Self { graph, plans, params, buffers, step, .. } = self;
        let plan = plans.get_mut(&batch).ok_or_else(|| Error::Invalid("no plan for this batch size".into()))?;
        plan.mode = mode;
        for (k, node) in graph.nodes.iter().enumerate() {
            be.profile_scope(&node.name, "forward");
            let (lo, hi) = plan.acts.split_at_mut(k + 1);
            let (x, y) = (&lo[node.input], &mut hi[0]);
            match &node.op {
                Op::Add => {
                    let x2 = &lo[node.input2.unwrap_or(node.input)];
                    if node.relu {
                        be.add_relu(x, x2, y)?;
                    } else {
                        be.add(x, x2, y)?;
                    }
                }
                Op::Layer(layer) => layer.forward(
                    be,
                    Forward {
                        x,
                        y,
                        params: &params[node.params.clone()],
                        buffers: &mut buffers[node.buffers.clone()],
                        saved: &mut plan.saved[k],
                        mode: modes[k],
                        seed: seeds[k],
                        step: *step,
                        replicas: replicas.as_ref(),
                        relu: node.relu,
                    },
                )?,
            }
        }
        Ok(())
    }

    /// The output of the last `forward` of this batch size ([batch, classes], on the device).
    pub fn logits(&self, batch: usize) -> Result<&T<B>> {
        let plan = self.planned(batch)?;
        Ok(&plan.acts[plan.acts.len() - 1])
    }

    /// The loss of the last forward and its gradient (into the output's gradient, where
    /// `backward` starts), and the correct count; both added to the running metrics.
    pub fn loss(&mut self, be: &B, batch: usize, loss: &dyn Loss<B>) -> Result<()> {
        self.planned(batch)?;
        let plan = self.plans.get_mut(&batch).ok_or_else(|| Error::Invalid("no plan for this batch size".into()))?;
        let last = plan.acts.len() - 1;
        let target = LossTarget { labels: &plan.labels, probs: plan.soft.then_some(&plan.probs) };
        be.profile_scope("", "loss");
        loss.forward_backward(be, &plan.acts[last], target, &mut plan.loss, &mut plan.dacts[last])?;
        be.correct_rows(&plan.acts[last], &plan.labels, &mut plan.flags)?;
        be.sum(&plan.flags, &mut plan.scalar)?;
        // The loss is the batch mean: weight it by the batch size so the total is per sample.
        be.scale(&plan.loss, batch as f32, &mut plan.weighted)?;
        let a = &mut self.acc;
        let (cur, next) = (a.current, 1 - a.current);
        {
            let [l0, l1] = &mut a.loss;
            let (src, dst) = if cur == 0 { (&*l0, l1) } else { (&*l1, l0) };
            be.add(src, &plan.weighted, dst)?;
        }
        {
            let [c0, c1] = &mut a.correct;
            let (src, dst) = if cur == 0 { (&*c0, c1) } else { (&*c1, c0) };
            be.add(src, &plan.scalar, dst)?;
        }
        a.current = next;
        a.samples += batch;
        Ok(())
    }

    /// The mean loss of a batch and, in `grads`, the gradient of every parameter, for the
    /// forward in `mode`; the running metrics, the optimizer state and the step count are left
    /// alone. In eval mode this is the gradient of the function the model computes at test time
    /// (batch norm with its running statistics, dropout as the identity), which the training
    /// backward cannot give. Reads the loss back (a measurement, not a training step).
    pub fn loss_and_gradients(&mut self, be: &B, x: &[f32], targets: Targets<'_>, loss: &dyn Loss<B>, mode: Mode) -> Result<f64> {
        let batch = self.load_batch(be, x, targets)?;
        self.forward(be, batch, mode)?;
        let plan = self.plans.get_mut(&batch).ok_or_else(|| Error::Invalid("no plan for this batch size".into()))?;
        let last = plan.acts.len() - 1;
        let target = LossTarget { labels: &plan.labels, probs: plan.soft.then_some(&plan.probs) };
        loss.forward_backward(be, &plan.acts[last], target, &mut plan.loss, &mut plan.dacts[last])?;
        self.backward(be, batch)?;
        let plan = self.planned(batch)?;
        Ok(be.download(&plan.loss)?[0] as f64)
    }

    /// Gradients of every parameter, from the output's gradient that `loss` wrote, for the
    /// mode of the last forward. A node writes the gradient of its input straight into that
    /// activation's gradient when it is the first to reach it (in reverse order), and adds it
    /// there through scratch when another node already did; the model's input gets no
    /// gradient. A sum passes its gradient on without a copy: the gradient of each of its
    /// inputs is its own until another node adds to it (one pass writing the total), and the
    /// input's producer reads it from there.
    pub fn backward(&mut self, be: &B, batch: usize) -> Result<()> {
        self.planned(batch)?;
        let seeds: Vec<u64> = (0..self.graph.nodes.len()).map(|k| self.node_seed(k)).collect();
        let mode = self.plans.get(&batch).map_or(Mode::Train, |p| p.mode);
        let modes: Vec<Mode> = (0..self.graph.nodes.len()).map(|k| self.node_mode(k, mode)).collect();
        let replicas = self.bn_replicas();
        let Self { graph, plans, params, grads, buffers, step, freezing, .. } = self;
        let plan = plans.get_mut(&batch).ok_or_else(|| Error::Invalid("no plan for this batch size".into()))?;
        let mut reached = vec![false; graph.nodes.len() + 1];
        // alias[j] = i: the gradient of activation j is, so far, the gradient held at i > j.
        let mut alias: Vec<Option<usize>> = vec![None; graph.nodes.len() + 1];
        let needs = &freezing.needs_grad;
        for k in (0..graph.nodes.len()).rev() {
            let node = &graph.nodes[k];
            be.profile_scope(&node.name, "backward");
            let targets: Vec<usize> = std::iter::once(node.input).chain(node.input2).filter(|&j| needs[j]).collect();
            // A frozen stem: nothing to train here, and no one upstream needs a gradient.
            if targets.is_empty() && !freezing.trains[k] {
                continue;
            }
            // Parameters to train but no gradient to pass on: run once without dx (0 gets none).
            let targets = if targets.is_empty() { vec![0] } else { targets };
            let mut at = alias[k + 1].unwrap_or(k + 1);
            // The backward of a fused ReLU, this node's own or (at this node's output, where it
            // takes it) its input's producer's: dy masked by this node's output, in the node's
            // own gradient buffer (in place, or from the sum's gradient it stands for).
            let producer_mask = node.input > 0 && graph.nodes[node.input - 1].relu_mask_after;
            if (node.relu && !node.relu_mask_after) || producer_mask {
                if at == k + 1 {
                    be.relu_backward_in_place(&plan.acts[k + 1], &mut plan.dacts[k + 1])?;
                } else {
                    let (lo, hi) = plan.dacts.split_at_mut(at);
                    be.relu_backward(&plan.acts[k + 1], &hi[0], &mut lo[k + 1])?;
                    alias[k + 1] = None;
                    at = k + 1;
                }
            }
            for &j in &targets {
                let (lo, hi) = plan.dacts.split_at_mut(k + 1);
                let dy = &hi[at - (k + 1)];
                let first = !reached[j];
                if j > 0 {
                    reached[j] = true;
                }
                // What is still to be added to activation j's gradient: dy itself (a sum's), the
                // layer's gradient in scratch, or nothing (written in place, or no gradient).
                let added = match &node.op {
                    Op::Add if j == 0 => Added::Nothing,
                    Op::Add if first => {
                        alias[j] = Some(at);
                        Added::Nothing
                    }
                    Op::Add => Added::Dy,
                    Op::Layer(layer) => {
                        let dx: Option<&mut T<B>> = if j == 0 {
                            None
                        } else if first {
                            Some(&mut lo[j])
                        } else {
                            let (part, _) = plan.scratch.get_mut(&j).ok_or_else(|| {
                                Error::Invalid(format!("{}: a second gradient for an activation without scratch", node.name))
                            })?;
                            Some(part)
                        };
                        layer.backward(
                            be,
                            Backward {
                                x: &plan.acts[node.input],
                                y: &plan.acts[k + 1],
                                dy,
                                dx,
                                params: &params[node.params.clone()],
                                grads: &mut grads[node.params.clone()],
                                buffers: &buffers[node.buffers.clone()],
                                saved: &plan.saved[k],
                                mode: modes[k],
                                seed: seeds[k],
                                step: *step,
                                replicas: replicas.as_ref(),
                            },
                        )?;
                        if j > 0 && !first {
                            Added::Scratch
                        } else {
                            Added::Nothing
                        }
                    }
                };
                if added == Added::Nothing {
                    continue;
                }
                let (scratch, sum) =
                    plan.scratch.get_mut(&j).ok_or_else(|| Error::Invalid(format!("{}: a second gradient without scratch", node.name)))?;
                let part = if added == Added::Dy { dy } else { &*scratch };
                match alias[j].take() {
                    // dacts[j] = (the gradient it stands for) + part, in one pass.
                    Some(i) => be.add(&hi[i - (k + 1)], part, &mut lo[j])?,
                    // dacts[j] += part (through scratch: a kernel may not read what it writes).
                    None => {
                        be.add(&lo[j], part, sum)?;
                        be.copy(sum, &mut lo[j])?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Optional clipping of all gradients by their global norm, then one optimizer update of
    /// every parameter (one dispatch on the GPU). Counts the step.
    pub fn update(&mut self, be: &B, opt: &Optimizer, clip: Option<f32>) -> Result<()> {
        be.profile_scope("", "optimizer");
        if !self.freezing.any() {
            if let Some(max_norm) = clip {
                be.clip_grad_norm_all(&mut self.grads, max_norm, &mut self.grad_sumsq)?;
            }
            self.step += 1;
            return be.optimizer_step_all(opt, self.step, &mut self.params, &self.grads, &mut self.state1, &mut self.state2);
        }
        // Some parameters are frozen: the trainable ones (one span of the arenas, so still one
        // dispatch on the GPU) are moved out of the lists, updated, and put back.
        let (mut tp, fp) = self.freezing.split(std::mem::take(&mut self.params));
        let (mut tg, fg) = self.freezing.split(std::mem::take(&mut self.grads));
        let mut run = || -> Result<()> {
            if let Some(max_norm) = clip {
                be.clip_grad_norm_all(&mut tg, max_norm, &mut self.grad_sumsq)?;
            }
            self.step += 1;
            be.optimizer_step_all(opt, self.step, &mut tp, &tg, &mut self.state1, &mut self.state2)
        };
        let result = run();
        self.params = self.freezing.merge(tp, fp);
        self.grads = self.freezing.merge(tg, fg);
        result
    }

    /// One training step on a batch: forward, loss, backward, optional clipping by global
    /// norm, and one optimizer update of the whole model. Nothing is read back.
    pub fn train_step(
        &mut self,
        be: &B,
        x: &[f32],
        targets: Targets<'_>,
        opt: &Optimizer,
        loss: &dyn Loss<B>,
        clip: Option<f32>,
    ) -> Result<()> {
        self.gradients(be, x, targets, loss)?;
        self.update(be, opt, clip)
    }

    /// The first half of a training step: uploads the batch, runs forward, loss and backward,
    /// leaving the gradients of the batch's mean loss in [`Model::grads`] (a data-parallel
    /// trainer sums them over the replicas before [`Model::update`]).
    pub fn gradients(&mut self, be: &B, x: &[f32], targets: Targets<'_>, loss: &dyn Loss<B>) -> Result<()> {
        let batch = self.load_batch(be, x, targets)?;
        self.forward(be, batch, Mode::Train)?;
        self.loss(be, batch, loss)?;
        self.backward(be, batch)
    }

    /// Copies the last step's batch loss into `slot` (a device tensor of one element), so a
    /// diverging run can later find the first bad step without reading anything back per step.
    pub fn record_loss(&self, be: &B, batch: usize, slot: &mut T<B>) -> Result<()> {
        be.copy(&self.planned(batch)?.loss, slot)
    }

    /// Logits of a batch in eval mode, read back ([batch, classes], row-major).
    pub fn predict_logits(&mut self, be: &B, x: &[f32]) -> Result<Vec<f32>> {
        let batch = self.load_inputs(be, x)?;
        self.forward(be, batch, Mode::Eval)?;
        be.download(self.logits(batch)?)
    }

    /// Class probabilities (softmax of the logits) of a batch in eval mode, read back.
    pub fn predict(&mut self, be: &B, x: &[f32]) -> Result<Vec<f32>> {
        let logits = self.predict_logits(be, x)?;
        if let Some(v) = logits.iter().find(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!(
                "model {}: an output is {v} on these inputs (finite weights that overflow f32): no probabilities to give",
                self.name
            )));
        }
        let c = self.classes().max(1);
        let mut out = Vec::with_capacity(logits.len());
        for row in logits.chunks(c) {
            out.extend(softmax(row));
        }
        Ok(out)
    }

    fn batch_of(&self, x: &[f32]) -> Result<usize> {
        let per: usize = self.input.iter().product();
        if x.is_empty() || per == 0 || !x.len().is_multiple_of(per) {
            return Err(Error::Invalid(format!("a batch of {} values is not a whole number of {} inputs", x.len(), ShapeFmt(&self.input))));
        }
        Ok(x.len() / per)
    }

    /// Mean loss and accuracy per sample since the last call (one read-back), then resets them.
    pub fn take_metrics(&mut self, be: &B) -> Result<Metrics> {
        let (loss, correct) = self.read_running_sums(be)?;
        let samples = self.acc.samples;
        for t in self.acc.loss.iter_mut().chain(self.acc.correct.iter_mut()) {
            be.write(t, &[0.0])?;
        }
        self.acc.samples = 0;
        let n = samples.max(1) as f64;
        Ok(Metrics { loss: loss / n, accuracy: correct / n, samples })
    }

    /// Mean loss and accuracy per sample so far, without resetting them (one read-back, which
    /// waits for the work recorded so far).
    pub fn peek_metrics(&self, be: &B) -> Result<Metrics> {
        let (loss, correct) = self.read_running_sums(be)?;
        let n = self.acc.samples.max(1) as f64;
        Ok(Metrics { loss: loss / n, accuracy: correct / n, samples: self.acc.samples })
    }

    /// The device tensors of the summed loss and the count of correct predictions since the
    /// metrics were last taken, and the samples they cover (for a read-back that takes them
    /// together with other tensors, as a data-parallel step does).
    pub fn running_sums(&self) -> (&T<B>, &T<B>, usize) {
        let cur = self.acc.current;
        (&self.acc.loss[cur], &self.acc.correct[cur], self.acc.samples)
    }

    /// The summed loss and correct count, in one read-back.
    fn read_running_sums(&self, be: &B) -> Result<(f64, f64)> {
        let (loss, correct, _) = self.running_sums();
        let v = be.download_all(&[loss, correct])?;
        Ok((v[0] as f64, v[1] as f64))
    }

    /// The last global gradient norm (read back; only meaningful when clipping).
    pub fn grad_norm(&self, be: &B) -> Result<f32> {
        Ok(be.download(&self.grad_sumsq)?[0].sqrt())
    }

    /// The parameters and buffers as named host tensors: a PyTorch-style state dict.
    pub fn state_dict(&self, be: &B) -> Result<Vec<NamedTensor>> {
        let mut out = Vec::new();
        for (info, t) in self.graph.params.iter().zip(&self.params) {
            out.push(NamedTensor { name: info.name.clone(), shape: info.shape.clone(), data: be.download(t)? });
        }
        for (info, t) in self.graph.buffers.iter().zip(&self.buffers) {
            out.push(NamedTensor { name: info.name.clone(), shape: info.shape.clone(), data: be.download(t)? });
        }
        Ok(out)
    }

    /// Writes named host tensors into the parameters and buffers of the same names. Every
    /// parameter and buffer must be given, with its shape; an error lists what is missing,
    /// mis-shaped or unknown.
    pub fn load_state_dict(&mut self, be: &B, tensors: &[NamedTensor]) -> Result<()> {
        let by_name: HashMap<&str, &NamedTensor> = tensors.iter().map(|t| (t.name.as_str(), t)).collect();
        let mut problems = Vec::new();
        let wanted: Vec<(&str, &[usize])> = self
            .graph
            .params
            .iter()
            .map(|p| (p.name.as_str(), &p.shape[..]))
            .chain(self.graph.buffers.iter().map(|b| (b.name.as_str(), &b.shape[..])))
            .collect();
        for (name, shape) in &wanted {
            match by_name.get(name) {
                None => problems.push(format!("missing {name}")),
                Some(t) if t.shape != *shape || t.data.len() != shape.iter().product::<usize>() => {
                    problems.push(format!("{name} is {}, the model needs {}", ShapeFmt(&t.shape), ShapeFmt(shape)))
                }
                Some(t) => {
                    if let Some(v) = t.data.iter().find(|v| !v.is_finite()) {
                        problems.push(format!("{name} holds {v} (a diverged or corrupt model: every value must be finite)"));
                    } else if name.ends_with("running_var") {
                        if let Some(v) = t.data.iter().find(|v| **v < 0.0) {
                            problems.push(format!("{name} holds {v} (a variance: expected values >= 0)"));
                        }
                    }
                }
            }
        }
        for t in tensors {
            if !wanted.iter().any(|(n, _)| *n == t.name) {
                problems.push(format!("unexpected {}", t.name));
            }
        }
        if !problems.is_empty() {
            return Err(Error::Invalid(format!("state dict does not fit model {}: {}", self.name, problems.join("; "))));
        }
        let (np, _) = (self.graph.params.len(), 0);
        for (i, (name, _)) in wanted.iter().enumerate() {
            let data = &by_name[name].data;
            if i < np {
                be.write(&mut self.params[i], data)?;
            } else {
                be.write(&mut self.buffers[i - np], data)?;
            }
        }
        Ok(())
    }
}

/// The softmax of one row of logits.
pub fn softmax(row: &[f32]) -> Vec<f32> {
    let m = row.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
    let e: Vec<f32> = row.iter().map(|&v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// Mean loss and accuracy over some batches.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Metrics {
    /// Mean loss per sample.
    pub loss: f64,
    /// Share of samples whose top class is the label.
    pub accuracy: f64,
    /// Samples counted.
    pub samples: usize,
}
