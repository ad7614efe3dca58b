//! A model on a backend: parameters, gradients and optimizer state in arenas (one buffer each
//! on the GPU, so the optimizer step is one dispatch), and per batch size a plan of every
//! activation and gradient buffer, allocated on first use and reused by every later step.
//! A training step records forward, loss, backward and update without reading anything back;
//! loss and accuracy accumulate on the device until `take_metrics`.

use std::collections::HashMap;
use std::ops::Range;

use super::spec::{Layer, LayerInfo, ModelSpec, Node, ParamInfo};
use crate::backend::{Backend, CeTarget};
use crate::ops::DropoutMask;
use crate::optim::Optimizer;
use crate::rng::Rng;
use crate::tensor::Tensor;
use crate::{Error, Result};

/// What a step learns from: class indices, or probability rows (mixup, cutmix) together with
/// the dominant class of each row (for accuracy).
pub enum Targets<'a> {
    Labels(&'a [f32]),
    Probs { probs: &'a [f32], labels: &'a [f32] },
}

enum Aux<S> {
    None,
    /// Max pooling's argmax.
    Pool(Tensor<S>),
    /// Batch norm's saved mean and 1/sqrt(var + eps).
    Bn(Tensor<S>, Tensor<S>),
}

/// The buffers of one batch size.
struct Plan<S> {
    /// acts[0] is the input; acts[i + 1] the output of layer i.
    acts: Vec<Tensor<S>>,
    /// Gradients of the loss with respect to acts[i].
    dacts: Vec<Tensor<S>>,
    aux: Vec<Aux<S>>,
    /// Per multi-consumer activation: (gradient scratch, sum scratch).
    scratch: HashMap<usize, (Tensor<S>, Tensor<S>)>,
    labels: Tensor<S>,
    probs: Tensor<S>,
    loss: Tensor<S>,
    flags: Tensor<S>,
    scalar: Tensor<S>,
    weighted: Tensor<S>,
}

/// Loss and correct-count sums on the device (two buffers each, added into alternately).
struct Accumulators<S> {
    loss: [Tensor<S>; 2],
    correct: [Tensor<S>; 2],
    current: usize,
    samples: usize,
}

pub struct Model<B: Backend> {
    pub spec: ModelSpec,
    pub input: Vec<usize>,
    pub infos: Vec<LayerInfo>,
    /// The layers as they run (residual blocks unrolled); activations and parameters follow it.
    pub nodes: Vec<Node>,
    /// How many nodes read each activation (0: the input, k + 1: node k's output).
    consumers: Vec<usize>,
    pub param_info: Vec<ParamInfo>,
    pub params: Vec<Tensor<B::Storage>>,
    pub grads: Vec<Tensor<B::Storage>>,
    pub state1: Vec<Tensor<B::Storage>>,
    pub state2: Vec<Tensor<B::Storage>>,
    /// Batch norm running mean and variance, by node.
    pub running: Vec<Option<(Tensor<B::Storage>, Tensor<B::Storage>)>>,
    layer_params: Vec<Range<usize>>,
    plans: HashMap<usize, Plan<B::Storage>>,
    acc: Accumulators<B::Storage>,
    grad_sumsq: Tensor<B::Storage>,
    /// Optimizer steps taken (1-based step of the next update is `step + 1`).
    pub step: u64,
    /// Seeds dropout masks.
    pub seed: u64,
    /// Class names and the input normalisation (per-channel mean, std) of the data it learns
    /// from: saved with checkpoints so `predict` can prepare new images.
    pub classes: Vec<String>,
    pub normalization: Vec<(f32, f32)>,
}

impl<B: Backend> Model<B> {
    /// Builds the model for inputs [C, H, W], initialised from `seed`: He (Kaiming) uniform for
    /// convolutions and linear layers that feed a ReLU, PyTorch's default uniform otherwise
    /// (weights and biases in ±1/sqrt(fan_in)); batch norm gamma 1, beta 0.
    pub fn new(be: &B, spec: ModelSpec, input: &[usize], seed: u64) -> Result<Self> {
        let infos = spec.infer(input)?;
        let nodes = spec.nodes(input)?;
        let param_info = spec.params(input)?;
        let mut consumers = vec![0usize; nodes.len() + 1];
        for n in &nodes {
            consumers[n.input] += 1;
            if let Some(j) = n.input2 {
                consumers[j] += 1;
            }
        }
        let shapes: Vec<Vec<usize>> = param_info.iter().map(|p| p.shape.clone()).collect();
        let mut params = be.arena(&shapes)?;
        let mut rng = Rng::new(seed);
        for (p, info) in params.iter_mut().zip(&param_info) {
            let layer = &nodes[info.layer].layer;
            let values: Vec<f32> = match (layer, info.kind) {
                (Layer::BatchNorm2d { .. }, "weight") => vec![1.0; p.numel()],
                (Layer::BatchNorm2d { .. }, _) => vec![0.0; p.numel()],
                _ => {
                    let fan_in = param_info
                        .iter()
                        .find(|q| q.layer == info.layer && q.kind == "weight")
                        .map_or(1, |w| w.shape[1..].iter().product::<usize>())
                        .max(1) as f32;
                    let bound = if info.kind == "weight" && ModelSpec::feeds_relu(&nodes, info.layer) {
                        (6.0 / fan_in).sqrt()
                    } else {
                        1.0 / fan_in.sqrt()
                    };
                    rng.vec(p.numel(), -bound, bound)
                }
            };
            be.write(p, &values)?;
        }
        let mut layer_params = Vec::new();
        for i in 0..nodes.len() {
            let idx: Vec<usize> = param_info.iter().enumerate().filter(|(_, p)| p.layer == i).map(|(k, _)| k).collect();
            layer_params.push(idx.first().map_or(0..0, |&a| a..a + idx.len()));
        }
        let mut running = Vec::new();
        for node in &nodes {
            running.push(match node.layer {
                Layer::BatchNorm2d { .. } => {
                    let c = node.info.input[0];
                    Some((be.zeros(&[c])?, be.upload(&[c], &vec![1.0; c])?))
                }
                _ => None,
            });
        }
        let acc =
            Accumulators { loss: [be.zeros(&[1])?, be.zeros(&[1])?], correct: [be.zeros(&[1])?, be.zeros(&[1])?], current: 0, samples: 0 };
        Ok(Self {
            grads: be.arena(&shapes)?,
            state1: be.arena(&shapes)?,
            state2: be.arena(&shapes)?,
            grad_sumsq: be.zeros(&[1])?,
            spec,
            input: input.to_vec(),
            infos,
            nodes,
            consumers,
            param_info,
            params,
            running,
            layer_params,
            plans: HashMap::new(),
            acc,
            step: 0,
            seed,
            classes: Vec::new(),
            normalization: Vec::new(),
        })
    }

    pub fn classes(&self) -> usize {
        self.infos.last().map_or(0, |i| i.output.iter().product())
    }

    pub fn num_params(&self) -> usize {
        self.params.iter().map(|p| p.numel()).sum()
    }

    /// Sets the optimizer state to its starting values (Adagrad's initial accumulator).
    pub fn reset_optimizer(&mut self, be: &B, opt: &Optimizer) -> Result<()> {
        for (a, b) in self.state1.iter_mut().zip(self.state2.iter_mut()) {
            be.write(a, &vec![opt.initial_state(); a.numel()])?;
            be.write(b, &vec![0.0; b.numel()])?;
        }
        self.step = 0;
        Ok(())
    }

    fn plan(&mut self, be: &B, batch: usize) -> Result<()> {
        if batch == 0 {
            return Err(Error::Invalid("batch size 0: expected at least 1".into()));
        }
        if self.plans.contains_key(&batch) {
            return Ok(());
        }
        self.make_plan(be, batch).map_err(|e| match e {
            Error::Limit { .. } => Error::Invalid(format!("batch size {batch} does not fit the device ({e}); use a smaller --batch-size")),
            e => e,
        })
    }

    fn make_plan(&mut self, be: &B, batch: usize) -> Result<()> {
        let with_batch = |s: &[usize]| [&[batch][..], s].concat();
        let mut acts = vec![be.zeros(&with_batch(&self.input))?];
        let mut dacts = vec![be.zeros(&with_batch(&self.input))?];
        let mut aux = Vec::new();
        for node in &self.nodes {
            acts.push(be.zeros(&with_batch(&node.info.output))?);
            dacts.push(be.zeros(&with_batch(&node.info.output))?);
            aux.push(match node.layer {
                Layer::MaxPool2d(_) => Aux::Pool(be.zeros(&with_batch(&node.info.output))?),
                Layer::BatchNorm2d { .. } => Aux::Bn(be.zeros(&[node.info.input[0]])?, be.zeros(&[node.info.input[0]])?),
                _ => Aux::None,
            });
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
            aux,
            scratch,
            labels: be.zeros(&[batch])?,
            probs: be.zeros(&[batch, classes])?,
            loss: be.zeros(&[1])?,
            flags: be.zeros(&[batch])?,
            scalar: be.zeros(&[1])?,
            weighted: be.zeros(&[1])?,
        };
        self.plans.insert(batch, plan);
        Ok(())
    }

    fn mask(&self, node: usize, p: f32) -> Result<DropoutMask> {
        DropoutMask::new(p, self.seed ^ (node as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15), self.step)
    }

    /// Runs every node on the batch already in the plan's input.
    fn forward(&mut self, be: &B, batch: usize, train: bool) -> Result<()> {
        for k in 0..self.nodes.len() {
            let node = &self.nodes[k];
            let mask = match node.layer {
                Layer::Dropout { p } if train && p > 0.0 => Some(self.mask(k, p)?),
                _ => None,
            };
            let plan = self.plans.get_mut(&batch).ok_or_else(|| Error::Invalid("no plan for this batch size".into()))?;
            let (lo, hi) = plan.acts.split_at_mut(k + 1);
            let (x, y) = (&lo[node.input], &mut hi[0]);
            let p = &self.params[self.layer_params[k].clone()];
            match &node.layer {
                Layer::Conv2d { .. } => be.conv2d(x, &p[0], p.get(1), y, node.layer.conv_spec().unwrap_or_default())?,
                Layer::BatchNorm2d { eps, momentum } => {
                    let Some((rm, rv)) = &mut self.running[k] else { unreachable!("batch norm without running statistics") };
                    if train {
                        let Aux::Bn(sm, si) = &mut plan.aux[k] else { unreachable!("batch norm without saved statistics") };
                        be.batch_norm_train(x, &p[0], &p[1], rm, rv, y, sm, si, *momentum, *eps)?
                    } else {
                        be.batch_norm_eval(x, &p[0], &p[1], rm, rv, y, *eps)?
                    }
                }
                Layer::Relu => be.relu(x, y)?,
                Layer::MaxPool2d(s) => {
                    let Aux::Pool(idx) = &mut plan.aux[k] else { unreachable!("max pool without indices") };
                    be.max_pool2d(x, y, idx, *s)?
                }
                Layer::AvgPool2d(s) => be.avg_pool2d(x, y, *s)?,
                Layer::GlobalAvgPool => be.global_avg_pool(x, y)?,
                Layer::Dropout { .. } => match &mask {
                    Some(m) => be.dropout(x, y, m)?,
                    None => be.copy(x, y)?,
                },
                Layer::Flatten => be.copy(x, y)?,
                Layer::Linear { .. } => be.linear(x, &p[0], p.get(1), y)?,
                Layer::Add => be.add(x, &lo[node.input2.unwrap_or(node.input)], y)?,
                Layer::Residual { .. } => unreachable!("residual blocks are unrolled into nodes"),
            }
        }
        Ok(())
    }

    /// Gradients of every node, from the loss gradient in dacts[last]. A node writes the
    /// gradient of its input straight into dacts[input] when it is the first to reach it (in
    /// reverse order), and adds it there through scratch when another node already did.
    fn backward(&mut self, be: &B, batch: usize) -> Result<()> {
        let mut reached = vec![false; self.nodes.len() + 1];
        for k in (0..self.nodes.len()).rev() {
            let node = &self.nodes[k];
            let mask = match node.layer {
                Layer::Dropout { p } if p > 0.0 => Some(self.mask(k, p)?),
                _ => None,
            };
            let plan = self.plans.get_mut(&batch).ok_or_else(|| Error::Invalid("no plan for this batch size".into()))?;
            let range = self.layer_params[k].clone();
            let p = &self.params[range.clone()];
            let g = &mut self.grads[range];
            let need_dx = node.input > 0 || matches!(node.layer, Layer::BatchNorm2d { .. });
            // The inputs whose gradient this node produces, and whether each is the first.
            let targets: Vec<usize> = std::iter::once(node.input).chain(node.input2).collect();
            let (lo, hi) = plan.dacts.split_at_mut(k + 1);
            let dy = &hi[0];
            let x = &plan.acts[node.input];
            for (t, &j) in targets.iter().enumerate() {
                if !need_dx && t == 0 && !matches!(node.layer, Layer::Conv2d { .. } | Layer::Linear { .. }) {
                    continue;
                }
                let first = !reached[j];
                reached[j] = true;
                let dx: &mut Tensor<B::Storage> = if first {
                    &mut lo[j]
                } else {
                    &mut plan
                        .scratch
                        .get_mut(&j)
                        .ok_or_else(|| Error::Invalid(format!("{}: a second gradient for an activation without scratch", node.name)))?
                        .0
                };
                let write_dx = node.input > 0 || t > 0;
                match &node.layer {
                    Layer::Conv2d { .. } => {
                        let spec = node.layer.conv_spec().unwrap_or_default();
                        let (dw, db) = g.split_at_mut(1);
                        be.conv2d_backward_filter(x, dy, &mut dw[0], spec)?;
                        if let Some(db) = db.first_mut() {
                            be.channel_sum(dy, db)?;
                        }
                        if write_dx {
                            be.conv2d_backward_data(dy, &p[0], dx, spec)?;
                        }
                    }
                    Layer::BatchNorm2d { .. } => {
                        let Aux::Bn(sm, si) = &plan.aux[k] else { unreachable!("batch norm without saved statistics") };
                        let (dgamma, dbeta) = g.split_at_mut(1);
                        be.batch_norm_backward(x, dy, &p[0], sm, si, dx, &mut dgamma[0], &mut dbeta[0])?;
                    }
                    Layer::Relu => be.relu_backward(x, dy, dx)?,
                    Layer::MaxPool2d(s) => {
                        let Aux::Pool(idx) = &plan.aux[k] else { unreachable!("max pool without indices") };
                        be.max_pool2d_backward(dy, idx, dx, *s)?
                    }
                    Layer::AvgPool2d(s) => be.avg_pool2d_backward(dy, dx, *s)?,
                    Layer::GlobalAvgPool => be.global_avg_pool_backward(dy, dx)?,
                    Layer::Dropout { .. } => match &mask {
                        Some(m) => be.dropout(dy, dx, m)?,
                        None => be.copy(dy, dx)?,
                    },
                    Layer::Flatten | Layer::Add => be.copy(dy, dx)?,
                    Layer::Linear { .. } => {
                        let (dw, db) = g.split_at_mut(1);
                        be.linear_backward(x, &p[0], dy, if write_dx { Some(&mut *dx) } else { None }, &mut dw[0], db.first_mut())?;
                    }
                    Layer::Residual { .. } => unreachable!("residual blocks are unrolled into nodes"),
                }
                if !first {
                    // dacts[j] += scratch  (through a second scratch: a kernel may not read what it writes)
                    let Some((part, sum)) = plan.scratch.get_mut(&j) else { unreachable!("checked above") };
                    be.add(&lo[j], part, sum)?;
                    be.copy(sum, &mut lo[j])?;
                }
            }
        }
        Ok(())
    }

    /// Uploads a batch: inputs, labels and (mixed batches) target distributions. All writes
    /// come before the step's kernels are recorded, so a step stays one submission.
    fn upload_batch(&mut self, be: &B, x: &[f32], targets: &Targets<'_>) -> Result<usize> {
        let batch = self.batch_of(x)?;
        self.plan(be, batch)?;
        let plan = self.plans.get_mut(&batch).ok_or_else(|| Error::Invalid("no plan for this batch size".into()))?;
        be.write(&mut plan.acts[0], x)?;
        match targets {
            Targets::Labels(l) => be.write(&mut plan.labels, l)?,
            Targets::Probs { probs, labels } => {
                be.write(&mut plan.labels, labels)?;
                be.write(&mut plan.probs, probs)?;
            }
        }
        Ok(batch)
    }

    /// Loss (and its gradient into dacts[L]) and the correct count, added to the accumulators.
    fn loss_and_metrics(&mut self, be: &B, batch: usize, targets: &Targets<'_>, smoothing: f32) -> Result<()> {
        let plan = self.plans.get_mut(&batch).ok_or_else(|| Error::Invalid("no plan for this batch size".into()))?;
        let last = plan.acts.len() - 1;
        let target = match targets {
            Targets::Probs { .. } => CeTarget::Probs(&plan.probs),
            Targets::Labels(_) => CeTarget::Labels(&plan.labels),
        };
        be.cross_entropy(&plan.acts[last], target, smoothing, &mut plan.loss, &mut plan.dacts[last])?;
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

    /// One training step on a batch: forward, loss, backward, optional clipping by global
    /// norm, and one optimizer update of the whole model. Nothing is read back.
    pub fn train_step(
        &mut self,
        be: &B,
        x: &[f32],
        targets: Targets<'_>,
        opt: &Optimizer,
        smoothing: f32,
        clip: Option<f32>,
    ) -> Result<()> {
        let batch = self.upload_batch(be, x, &targets)?;
        self.forward(be, batch, true)?;
        self.loss_and_metrics(be, batch, &targets, smoothing)?;
        self.backward(be, batch)?;
        if let Some(max_norm) = clip {
            be.clip_grad_norm_all(&mut self.grads, max_norm, &mut self.grad_sumsq)?;
        }
        self.step += 1;
        be.optimizer_step_all(opt, self.step, &mut self.params, &self.grads, &mut self.state1, &mut self.state2)
    }

    /// Forward in eval mode (running statistics, no dropout) and loss, added to the metrics.
    pub fn eval_batch(&mut self, be: &B, x: &[f32], labels: &[f32]) -> Result<()> {
        let targets = Targets::Labels(labels);
        let batch = self.upload_batch(be, x, &targets)?;
        self.forward(be, batch, false)?;
        self.loss_and_metrics(be, batch, &targets, 0.0)
    }

    /// Copies the last step's batch loss into `slot` (a device tensor of one element), so a
    /// diverging run can later find the first bad step without reading anything back per step.
    pub fn record_loss(&self, be: &B, batch: usize, slot: &mut Tensor<B::Storage>) -> Result<()> {
        let plan = self.plans.get(&batch).ok_or_else(|| Error::Invalid("no plan for this batch size".into()))?;
        be.copy(&plan.loss, slot)
    }

    /// Class probabilities of a batch (eval mode), read back.
    pub fn predict(&mut self, be: &B, x: &[f32]) -> Result<Vec<f32>> {
        let batch = self.batch_of(x)?;
        self.plan(be, batch)?;
        be.write(&mut self.plans.get_mut(&batch).expect("planned").acts[0], x)?;
        self.forward(be, batch, false)?;
        let plan = self.plans.get(&batch).expect("planned");
        let logits = be.download(&plan.acts[plan.acts.len() - 1])?;
        let c = self.classes();
        let mut out = Vec::with_capacity(logits.len());
        for row in logits.chunks(c) {
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
            let e: Vec<f32> = row.iter().map(|&v| (v - m).exp()).collect();
            let s: f32 = e.iter().sum();
            out.extend(e.iter().map(|v| v / s));
        }
        Ok(out)
    }

    fn batch_of(&self, x: &[f32]) -> Result<usize> {
        let per: usize = self.input.iter().product();
        if x.is_empty() || !x.len().is_multiple_of(per) {
            return Err(Error::Invalid(format!("a batch of {} values is not a whole number of {:?} inputs", x.len(), self.input)));
        }
        Ok(x.len() / per)
    }

    /// Mean loss and accuracy per sample since the last call (two read-backs), then resets them.
    pub fn take_metrics(&mut self, be: &B) -> Result<Metrics> {
        let cur = self.acc.current;
        let loss = be.download(&self.acc.loss[cur])?[0] as f64;
        let correct = be.download(&self.acc.correct[cur])?[0] as f64;
        let samples = self.acc.samples;
        for t in self.acc.loss.iter_mut().chain(self.acc.correct.iter_mut()) {
            be.write(t, &[0.0])?;
        }
        self.acc.samples = 0;
        let n = samples.max(1) as f64;
        Ok(Metrics { loss: loss / n, accuracy: correct / n, samples })
    }

    /// The last squared global gradient norm (read back; only when clipping).
    pub fn grad_norm(&self, be: &B) -> Result<f32> {
        Ok(be.download(&self.grad_sumsq)?[0].sqrt())
    }
}

/// Mean loss and accuracy over some batches.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Metrics {
    pub loss: f64,
    pub accuracy: f64,
    pub samples: usize,
}
