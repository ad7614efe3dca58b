//! The batch-size experiment: what the batch size does to the speed of training and to what is
//! learned.
//!
//! 1. **Throughput** at each batch size: training steps (forward, loss, backward, optimizer
//!    update, the batch's upload included; the data loader is not) after `warmup_steps` untimed
//!    steps, then `windows` timed windows of `steps_per_window` steps, the device waited on at
//!    each window's end; medians of the windows. Achieved GFLOP/s counts
//!    [`FLOPS_PER_MAC`] = 6 floating-point operations per multiply-accumulate of the forward
//!    (2 per MAC forward, about twice that backward: gradients of the inputs and of the
//!    weights). Device memory is the [planned](MemoryPlan) figure; on a GPU whose wgpu backend
//!    keeps an allocator report (Vulkan, DX12) the live bytes it reports are given next to it.
//! 2. **Training** (with [`Options::train`]) at each batch size and seed from the same initial
//!    weights per seed, the learning rate per [`LrRule`]; train and test loss and accuracy of the
//!    final weights in eval mode, the generalization gap, and the **sharpness** of the final
//!    weights (Keskar et al. 2017, metric 2.1 in the full parameter space,
//!    [`stats::sharpness`](super::stats::sharpness)) of the mean cross-entropy (no label
//!    smoothing) over a fixed stratified subset of the training part, in eval mode: batch norm
//!    uses its running statistics and dropout is off, so the measure is a function of the weights
//!    alone. Its gradient comes from [`eval_loss_and_grad`], the model's backward of its eval
//!    forward ([`Model::loss_and_gradients`] in eval mode; the training backward differentiates
//!    batch norm through the batch statistics, which is not the function measured).
//! 3. **Interpolation** between the first seed's smallest- and largest-batch weights,
//!    θ(α) = (1 − α) θ_small + α θ_large for α in [−0.5, 1.5] (Goodfellow et al. 2015; Keskar et
//!    al. 2017, Fig. 3): train and test loss and accuracy at each α. Batch norm's running
//!    statistics are interpolated alike (a running variance that the extrapolation would make
//!    negative is clamped to 0 and counted).
//!
//! Which batch sizes fit is decided before anything is allocated, from a [`MemoryPlan`] of the
//! model's buffers against the device's [`MemoryLimits`] (see [`largest_batch_that_fits`]).
//!
//! Output: `results.csv` (tidy: `kind,batch,batch_size,seed,alpha,metric,value`), `report.md`,
//! `throughput.png`, `generalization.png`, `interpolation.png`, and the two interpolated models'
//! weights (`params-b<batch>-seed<seed>.safetensors`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::results::{fmt, num_pm, pct_pm, table, Results};
use super::stats::{mean_std, sharpness, stratified_subset};
use super::{train_and_test, RunSummary, Setup};
use crate::backend::MemoryKind;
use crate::bench::Timing;
use crate::data::{Dataset, Label, Splits};
use crate::gpu::buffers::size_class;
use crate::nn::{CrossEntropy, Graph, Mode, Model, NamedTensor, Op, Targets};
use crate::plot::{save_panels, LinePlot, Scale, Series};
use crate::train::{evaluate, BatchSize, Evaluation};
use crate::{Backend, Cpu, Error, Result};

/// Floating-point operations per forward multiply-accumulate in one training step: 2 for the
/// forward and about 4 for the backward (the gradients of the inputs and of the weights each
/// cost about as much as the forward).
pub const FLOPS_PER_MAC: f64 = 6.0;

/// Share of the host's available memory (`MemAvailable` of `/proc/meminfo`) that the CPU
/// backend, and a GPU adapter that runs on the host (lavapipe), may plan to use.
pub const HOST_BUDGET_FRACTION: f64 = 0.5;

/// The host-memory budget where the available memory cannot be read (not Linux): 4 GiB.
pub const HOST_FALLBACK_BUDGET: u64 = 4 << 30;

/// The budget of a discrete, integrated or virtual GPU, whose memory size wgpu does not report:
/// 4 GiB, unless [`Options::memory_budget`] says otherwise.
pub const GPU_DEFAULT_BUDGET: u64 = 4 << 30;

/// The GPU backend's own device memory, whatever the model: its kernel-parameter arena
/// (2048 slots of 256 bytes) and about as much that wgpu keeps (measured on lavapipe): 1 MiB.
pub const GPU_BACKEND_BYTES: u64 = 1 << 20;

/// Per-step fraction of the box half-width that the sharpness's projected sign ascent moves
/// each coordinate: `min(1, 2 / steps)`, so the box's corner is reachable by half the steps.
fn step_fraction(steps: usize) -> f32 {
    (2.0 / steps.max(1) as f32).min(1.0)
}

/// How the learning rate follows the batch size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum LrRule {
    /// The base configuration's learning rate (and warm-up) at every batch size.
    Fixed,
    /// Goyal et al. 2017's linear scaling: lr = base lr × batch / `base_batch`, after a linear
    /// warm-up of `warmup_epochs` epochs ([`TrainConfig::lr_at`](crate::train::TrainConfig::lr_at):
    /// epoch e < w runs at lr × (e + 1) / (w + 1)), which replaces the base configuration's.
    Linear {
        /// The batch size the base learning rate is meant for; 0: the base configuration's
        /// batch size (the whole training part for `full`).
        base_batch: usize,
        /// Epochs of linear warm-up.
        warmup_epochs: usize,
    },
}

impl std::fmt::Display for LrRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LrRule::Fixed => write!(f, "fixed"),
            LrRule::Linear { base_batch: 0, warmup_epochs: 0 } => write!(f, "linear"),
            LrRule::Linear { base_batch, warmup_epochs } => write!(f, "linear:{base_batch}:{warmup_epochs}"),
        }
    }
}

impl std::str::FromStr for LrRule {
    type Err = Error;
    /// `fixed`; `linear` (base batch: the base configuration's, no warm-up), `linear:B` (base
    /// batch B) or `linear:B:W` (and W warm-up epochs).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::Invalid(format!(
                "learning-rate rule '{s}': expected fixed, linear, linear:BASE_BATCH or linear:BASE_BATCH:WARMUP_EPOCHS"
            ))
        };
        let mut parts = s.split(':');
        match parts.next() {
            Some("fixed") if parts.next().is_none() => Ok(LrRule::Fixed),
            Some("linear") => {
                let base_batch = parts.next().map(|p| p.parse::<usize>().map_err(|_| bad())).transpose()?.unwrap_or(0);
                let warmup_epochs = parts.next().map(|p| p.parse::<usize>().map_err(|_| bad())).transpose()?.unwrap_or(0);
                if parts.next().is_some() {
                    return Err(bad());
                }
                Ok(LrRule::Linear { base_batch, warmup_epochs })
            }
            _ => Err(bad()),
        }
    }
}

/// The learning rate and the warm-up epochs that `rule` gives a run with `batch` samples per
/// step, from the base configuration of `setup`.
pub fn lr_for(setup: &Setup, rule: LrRule, batch: usize) -> Result<(f32, usize)> {
    let base = setup.config.optimizer.lr;
    match rule {
        LrRule::Fixed => Ok((base, setup.config.warmup_epochs)),
        LrRule::Linear { base_batch, warmup_epochs } => {
            let reference = match (base_batch, setup.config.batch) {
                (0, BatchSize::Fixed(n)) => n.min(full_batch(setup)),
                (0, BatchSize::Full) => full_batch(setup),
                (n, _) => n,
            };
            if reference == 0 {
                return Err(Error::Invalid("linear learning-rate rule: base batch size 0".into()));
            }
            Ok((base * batch as f32 / reference as f32, warmup_epochs))
        }
    }
}

/// What to measure.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Options {
    /// The batch sizes; `None`: powers of two from 1 up to the largest that fits the device
    /// ([`largest_batch_that_fits`]), [`Options::max_batch`] and the training part.
    pub batch_sizes: Option<Vec<BatchSize>>,
    /// Also train at each batch size (and measure the sharpness and the interpolation).
    pub train: bool,
    /// How the learning rate follows the batch size.
    pub lr_rule: LrRule,
    /// Timed windows per batch size.
    pub windows: usize,
    /// Training steps per timed window.
    pub steps_per_window: usize,
    /// Untimed steps before the windows (pipelines compiled, buffers allocated); at least 1.
    pub warmup_steps: usize,
    /// Half-width of the sharpness box, relative: |z_i| ≤ eps (|w_i| + 1). Keskar et al. used
    /// 1e-3 and 5e-4.
    pub sharpness_eps: f32,
    /// Steps of projected sign ascent (Keskar et al.: 10 iterations of L-BFGS-B).
    pub sharpness_steps: usize,
    /// Training images (a fixed stratified subset of each seed's training part) the sharpness's
    /// loss is measured on.
    pub sharpness_samples: usize,
    /// Largest batch size of the automatic list.
    pub max_batch: Option<usize>,
    /// Points of the interpolation on [−0.5, 1.5], evenly spaced (α = 0 and 1 always added).
    pub interpolation_points: usize,
    /// The total device memory the plan may use, in bytes, instead of the stated default (see
    /// [`memory_limits`]).
    pub memory_budget: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            batch_sizes: None,
            train: false,
            lr_rule: LrRule::Fixed,
            windows: 5,
            steps_per_window: 10,
            warmup_steps: 3,
            sharpness_eps: 1e-3,
            sharpness_steps: 10,
            sharpness_samples: 1000,
            max_batch: None,
            interpolation_points: 21,
            memory_budget: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Memory

/// What the device allows: the largest single buffer and the total memory a plan may use.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MemoryLimits {
    /// The backend's name.
    pub device: String,
    /// The largest tensor in bytes: on a GPU the largest storage binding (the smaller of
    /// `max_storage_buffer_binding_size` and `max_buffer_size`; kernels bind whole tensors),
    /// on the CPU unlimited (`isize::MAX`).
    pub max_tensor_bytes: u64,
    /// The total the plan may use, in bytes.
    pub budget_bytes: u64,
    /// Where the budget comes from.
    pub budget_source: String,
    /// Whether this is the GPU backend: tensors take pool size classes (powers of two up to
    /// 1 MiB, whole MiB above), arena entries are aligned, convolutions use bounded im2col
    /// column buffers. On the CPU a backward convolution holds an f64 copy of its input gradient.
    pub gpu: bool,
    /// Arena alignment in f32 elements (GPU: the storage offset alignment).
    pub arena_align: usize,
}

/// Half (`HOST_BUDGET_FRACTION`) of the host's available memory, or the fallback, and a
/// description.
fn host_budget() -> (u64, String) {
    let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines().find(|l| l.starts_with("MemAvailable:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok())
    });
    match available {
        Some(kb) => {
            let bytes = kb * 1024;
            (
                (bytes as f64 * HOST_BUDGET_FRACTION) as u64,
                format!("{:.0}% of the host's available memory ({} available)", 100.0 * HOST_BUDGET_FRACTION, human_bytes(bytes)),
            )
        }
        None => (HOST_FALLBACK_BUDGET, format!("the host's available memory is unknown: a stated {}", human_bytes(HOST_FALLBACK_BUDGET))),
    }
}

/// The limits of `be`: on a GPU, from its wgpu limits (largest binding) and, for the total,
/// the host budget when the adapter runs on the host (lavapipe) or [`GPU_DEFAULT_BUDGET`]
/// (wgpu does not report a device's memory size); on the CPU, the host budget.
pub fn memory_limits<B: Backend>(be: &B) -> MemoryLimits {
    let info = be.memory();
    let (budget, source, gpu) = match info.kind {
        MemoryKind::Gpu { on_host: true } => {
            let (b, s) = host_budget();
            (b, format!("{s} (the adapter runs on the host)"), true)
        }
        MemoryKind::Gpu { on_host: false } => (
            GPU_DEFAULT_BUDGET,
            format!("a stated {} (wgpu does not report the device's memory size)", human_bytes(GPU_DEFAULT_BUDGET)),
            true,
        ),
        MemoryKind::Host => {
            let (b, s) = host_budget();
            (b, s, false)
        }
    };
    MemoryLimits {
        device: be.name(),
        max_tensor_bytes: info.max_tensor_bytes,
        budget_bytes: budget,
        budget_source: source,
        gpu,
        arena_align: info.arena_align,
    }
}

/// The device memory a training run at one batch size is planned to hold, from the model's
/// buffers (nothing allocated): what `Model` allocates (parameter, gradient and two optimizer
/// state arenas, buffers, and per batch size every activation, activation gradient, saved
/// tensor and residual scratch), the evaluation batches it also keeps plans for, the
/// convolutions' scratch, and the sharpness pass.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MemoryPlan {
    /// Samples per step.
    pub batch: usize,
    /// Parameters, gradients, the two optimizer-state arenas and buffers.
    pub model_bytes: u64,
    /// The plan of this batch size: activations, their gradients, saved tensors, scratch, targets.
    pub batch_bytes: u64,
    /// Plans of the evaluation batch sizes (the eval batch and the remainders of the training
    /// part, validation and test sets; counted even where one equals `batch`).
    pub eval_bytes: u64,
    /// Convolution scratch of the whole run (training steps, evaluation and sharpness batches;
    /// GPU: the pooled column buffers of every size used; CPU: the largest f64 input gradient).
    pub scratch_bytes: u64,
    /// Convolution scratch of training steps at this batch size alone.
    pub step_scratch_bytes: u64,
    /// The backend's own buffers (GPU: the kernel-parameter arena and wgpu's, [`GPU_BACKEND_BYTES`]).
    pub backend_bytes: u64,
    /// The eval-mode gradient pass of the sharpness (its plan and a gradient list).
    pub sharpness_bytes: u64,
    /// The largest single tensor.
    pub largest_tensor_bytes: u64,
    /// Which tensor that is.
    pub largest_tensor: String,
}

impl MemoryPlan {
    /// Everything a training run holds at its peak.
    pub fn total(&self) -> u64 {
        self.model_bytes + self.batch_bytes + self.eval_bytes + self.scratch_bytes + self.sharpness_bytes + self.backend_bytes
    }
    /// What a throughput measurement holds: the model, this batch's plan, its scratch and the
    /// backend's own buffers.
    pub fn step_bytes(&self) -> u64 {
        self.model_bytes + self.batch_bytes + self.step_scratch_bytes + self.backend_bytes
    }
}

/// The training part's size: the training images less the validation share, as
/// [`data::split`](crate::data::split) rounds it.
pub fn full_batch(setup: &Setup) -> usize {
    let n = setup.train.len();
    n - (n as f64 * setup.val_fraction).round() as usize
}

/// The model's graph, compiled once, and what the plan of a batch size needs.
struct Planner {
    graph: Graph<Cpu>,
    input: Vec<usize>,
    classes: usize,
    consumers: Vec<usize>,
    limits: MemoryLimits,
    eval_sizes: Vec<usize>,
    sharpness_chunk: usize,
}

impl Planner {
    fn new(setup: &Setup, limits: &MemoryLimits, sharpness_samples: usize) -> Result<Self> {
        let input = setup.train.shape.to_vec();
        let graph = setup.model.graph(&input)?;
        let mut consumers = vec![0usize; graph.nodes.len() + 1];
        for n in &graph.nodes {
            consumers[n.input] += 1;
            if let Some(j) = n.input2 {
                consumers[j] += 1;
            }
        }
        let e = setup.config.eval_batch.max(1);
        let full = full_batch(setup);
        let mut eval_sizes = Vec::new();
        for n in [full, setup.train.len() - full, setup.test.len()] {
            if n == 0 {
                continue;
            }
            eval_sizes.push(e.min(n));
            if n > e && n % e != 0 {
                eval_sizes.push(n % e);
            }
        }
        eval_sizes.sort_unstable();
        eval_sizes.dedup();
        let classes = graph.output.iter().product();
        Ok(Self {
            graph,
            input,
            classes,
            consumers,
            limits: limits.clone(),
            eval_sizes,
            sharpness_chunk: sharpness_samples.min(full).min(e).max(1),
        })
    }

    fn bytes(&self, elems: usize) -> u64 {
        let b = elems as u64 * 4;
        if self.limits.gpu {
            size_class(b)
        } else {
            b
        }
    }

    fn num_params(&self) -> usize {
        self.graph.params.iter().map(|p| p.shape.iter().product::<usize>()).sum()
    }

    /// The four arenas and the buffers; the largest arena.
    fn model_bytes(&self) -> (u64, u64) {
        let a = self.limits.arena_align.max(1);
        let arena: usize = self.graph.params.iter().map(|p| p.shape.iter().product::<usize>().next_multiple_of(a).max(a)).sum();
        let arena_bytes = self.bytes(arena);
        let buffers: u64 = self.graph.buffers.iter().map(|b| self.bytes(b.shape.iter().product())).sum();
        (4 * arena_bytes + buffers + 5 * self.bytes(1), arena_bytes)
    }

    /// The plan of batch `b` as `Model` allocates it: total bytes and the largest tensor.
    fn plan(&self, b: usize) -> (u64, u64, String) {
        let mut total = 0u64;
        let mut largest = (0u64, String::new());
        let mut add = |elems: usize, count: u64, what: &dyn Fn() -> String| {
            let bytes = self.bytes(elems);
            total += count * bytes;
            if bytes > largest.0 {
                largest = (bytes, what());
            }
        };
        let per = |s: &[usize]| b * s.iter().product::<usize>();
        let act_elems: Vec<usize> = std::iter::once(per(&self.input)).chain(self.graph.nodes.iter().map(|n| per(&n.out_shape))).collect();
        add(act_elems[0], 2, &|| "the input batch".into());
        for (k, node) in self.graph.nodes.iter().enumerate() {
            add(act_elems[k + 1], 2, &|| format!("the output of {} ({})", node.name, node.kind()));
            if let Op::Layer(l) = &node.op {
                let x: Vec<usize> = std::iter::once(b).chain(node.in_shape.iter().copied()).collect();
                for s in l.saved(&x) {
                    add(s.iter().product(), 1, &|| format!("what {} ({}) saves", node.name, node.kind()));
                }
            }
        }
        for (a, &c) in self.consumers.iter().enumerate() {
            if c > 1 {
                add(act_elems[a], 2, &|| "residual gradient scratch".into());
            }
        }
        add(b, 2, &|| "labels".into());
        add(b * self.classes, 1, &|| "target probabilities".into());
        add(1, 3, &|| "scalars".into());
        (total, largest.0, largest.1)
    }

    /// Convolution scratch for steps at the batch sizes `runs` (with the backward where the
    /// flag says so), and a column buffer of one image too large for the GPU.
    ///
    /// GPU (mirrors `gpu::conv2d`): the forward's im2col columns (patch rows padded to a
    /// multiple of 4) and padded weights; the backward's transposed weights and column
    /// gradients (not for a first layer, whose input gets no gradient); the filter gradient's
    /// transposed columns and regrouped dy, both alive at once. Images are chunked so each
    /// column buffer stays within 64 MiB (2 MiB on CPU adapters: there the figure is an upper
    /// bound). Freed buffers stay in the pool, one per size class
    /// (as many as one op holds at once), so the figure is the sum over every class any of
    /// the runs uses. CPU: the backward of a convolution holds an f64 copy of its input
    /// gradient (twice its size), freed after the op: the largest.
    fn scratch(&self, runs: &[(usize, bool)]) -> (u64, Option<String>) {
        let col_budget = crate::gpu::conv2d::COL_BUDGET.min(self.limits.max_tensor_bytes) / 4;
        let mut pool: BTreeMap<u64, u64> = BTreeMap::new();
        let mut peak = 0u64;
        let mut problem = None;
        for node in self.graph.nodes.iter().filter(|n| n.kind() == "conv2d") {
            let Some(w) = self.graph.params.get(node.params.start) else { continue };
            let [k, cg, kh, kw] = w.shape[..] else { continue };
            let (c, out) = (node.in_shape[0], &node.out_shape);
            let g = (c / cg.max(1)).max(1);
            let p = out[1] * out[2];
            let (patch, rows) = (cg * kh * kw, (cg * kh * kw).next_multiple_of(4));
            let direct = kh == 1 && kw == 1 && out[1] == node.in_shape[1] && out[2] == node.in_shape[2];
            let wants_dx = node.input != 0;
            for &(n, backward) in runs {
                if !self.limits.gpu {
                    if backward && wants_dx {
                        peak = peak.max(2 * self.bytes(n * node.in_shape.iter().product::<usize>()));
                    }
                    continue;
                }
                let mut chunk = |per_image: usize| -> usize {
                    if per_image as u64 > col_budget {
                        problem = Some(format!("the im2col columns of one image for {} ({} bytes)", node.name, per_image * 4));
                    }
                    ((col_budget / per_image.max(1) as u64) as usize).clamp(1, n)
                };
                let mut ops: Vec<Vec<usize>> = Vec::new();
                if !direct {
                    let mut fwd = vec![chunk(g * rows * p) * g * rows * p];
                    if rows != patch {
                        fwd.push(k * rows);
                    }
                    ops.push(fwd);
                }
                if backward {
                    if wants_dx {
                        let mut data = vec![k * patch];
                        if !direct {
                            data.push(chunk(c * kh * kw * p) * c * kh * kw * p);
                        }
                        ops.push(data);
                    }
                    let nb = chunk((g * rows * p).max(k * p));
                    let mut filter = vec![nb * g * rows * p, nb * k * p];
                    if rows != patch {
                        filter.push(k * rows);
                    }
                    ops.push(filter);
                }
                for op in ops {
                    let mut here: BTreeMap<u64, u64> = BTreeMap::new();
                    for elems in op {
                        *here.entry(self.bytes(elems)).or_default() += 1;
                    }
                    for (class, count) in here {
                        let e = pool.entry(class).or_default();
                        *e = (*e).max(count);
                    }
                }
            }
        }
        let pooled: u64 = pool.iter().map(|(class, count)| class * count).sum();
        (if self.limits.gpu { pooled } else { peak }, problem)
    }

    fn memory(&self, b: usize, train: bool) -> MemoryPlan {
        let (model_bytes, arena) = self.model_bytes();
        let (batch_bytes, mut largest_bytes, mut largest) = self.plan(b);
        let mut eval_bytes = 0;
        // Counted even where one equals `b` (then `Model` shares the plan), so the total grows
        // with the batch and the largest batch that fits is well defined.
        for &e in &self.eval_sizes {
            let (bytes, l, what) = self.plan(e);
            eval_bytes += bytes;
            if l > largest_bytes {
                (largest_bytes, largest) = (l, format!("{what} at eval batch {e}"));
            }
        }
        if arena > largest_bytes {
            (largest_bytes, largest) = (arena, "the parameter arena".into());
        }
        let mut runs = vec![(b, true)];
        runs.extend(self.eval_sizes.iter().map(|&e| (e, false)));
        if train {
            runs.push((self.sharpness_chunk, true));
        }
        let (scratch_bytes, problem) = self.scratch(&runs);
        let (step_scratch_bytes, _) = self.scratch(&[(b, true)]);
        if let Some(p) = problem {
            (largest_bytes, largest) = (u64::MAX, format!("{p}, over the column budget"));
        }
        let sharpness_bytes = if train { self.plan(self.sharpness_chunk).0 + self.bytes(self.num_params()) } else { 0 };
        MemoryPlan {
            batch: b,
            model_bytes,
            batch_bytes,
            eval_bytes,
            scratch_bytes,
            step_scratch_bytes,
            sharpness_bytes,
            backend_bytes: if self.limits.gpu { GPU_BACKEND_BYTES } else { 0 },
            largest_tensor_bytes: largest_bytes,
            largest_tensor: largest,
        }
    }

    fn fits(&self, p: &MemoryPlan) -> bool {
        p.total() <= self.limits.budget_bytes && p.largest_tensor_bytes <= self.limits.max_tensor_bytes
    }

    /// Why a plan does not fit.
    fn why_not(&self, p: &MemoryPlan) -> String {
        if p.largest_tensor_bytes > self.limits.max_tensor_bytes {
            format!(
                "{} would be {}, over the largest buffer of {}",
                p.largest_tensor,
                human_bytes(p.largest_tensor_bytes),
                human_bytes(self.limits.max_tensor_bytes)
            )
        } else {
            format!("planned {}, over the budget of {}", human_bytes(p.total()), human_bytes(self.limits.budget_bytes))
        }
    }

    fn largest(&self, train: bool) -> Result<usize> {
        let one = self.memory(1, train);
        if !self.fits(&one) {
            return Err(Error::Invalid(format!("the model does not fit even at batch size 1: {}", self.why_not(&one))));
        }
        let mut lo = 1usize;
        let mut hi = 2usize;
        while hi < (1 << 40) && self.fits(&self.memory(hi, train)) {
            lo = hi;
            hi *= 2;
        }
        if hi >= (1 << 40) {
            return Ok(lo);
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.fits(&self.memory(mid, train)) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }
}

/// The planned memory of training `setup`'s model at `batch` under `limits` (with the
/// sharpness pass of the default [`Options`]).
pub fn plan_memory(setup: &Setup, batch: usize, limits: &MemoryLimits) -> Result<MemoryPlan> {
    Ok(Planner::new(setup, limits, Options::default().sharpness_samples)?.memory(batch.max(1), true))
}

/// The largest batch size whose [`MemoryPlan`] for a training run fits `limits`: its total
/// within the budget and its largest tensor within the largest buffer. An error when not even
/// one sample fits.
pub fn largest_batch_within(setup: &Setup, limits: &MemoryLimits) -> Result<usize> {
    Planner::new(setup, limits, Options::default().sharpness_samples)?.largest(true)
}

/// The largest batch size that fits the device `be`, planned (nothing is allocated): the model's
/// parameters, gradients and optimizer state, the activations, their gradients and saved
/// tensors per sample times the batch, the evaluation plans and the convolution scratch, against
/// [`memory_limits`]`(be)`; every per-batch tensor must also fit the largest buffer.
pub fn largest_batch_that_fits<B: Backend>(be: &B, setup: &Setup) -> Result<usize> {
    largest_batch_within(setup, &memory_limits(be))
}

/// The batch sizes [`run`] measures: [`Options::batch_sizes`], or powers of two from 1 up to
/// the smallest of the largest that fits `limits`, [`Options::max_batch`] and the training part.
pub fn batch_sizes(setup: &Setup, opts: &Options, limits: &MemoryLimits) -> Result<Vec<BatchSize>> {
    if let Some(v) = &opts.batch_sizes {
        if v.is_empty() {
            return Err(Error::Invalid("no batch sizes: expected at least one".into()));
        }
        if v.contains(&BatchSize::Fixed(0)) {
            return Err(Error::Invalid("batch size 0: expected at least 1, or full".into()));
        }
        return Ok(v.clone());
    }
    let fit = Planner::new(setup, limits, opts.sharpness_samples)?.largest(opts.train)?;
    let cap = fit.min(opts.max_batch.unwrap_or(usize::MAX)).min(full_batch(setup)).max(1);
    Ok(std::iter::successors(Some(1usize), |b| b.checked_mul(2)).take_while(|&b| b <= cap).map(BatchSize::Fixed).collect())
}

/// `12.3 MiB`
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

// ---------------------------------------------------------------------------------------------
// Eval-mode loss and gradient

/// The mean cross-entropy of `images` and its gradient with respect to every parameter (in the
/// order of `model.params`, concatenated), in chunks of `chunk` images. Eval mode: batch norm
/// normalises with its running statistics and dropout passes everything, so this is a function
/// of the parameters alone ([`Model::loss_and_gradients`] in [`Mode::Eval`]). The model's
/// parameters and buffers are not changed; its gradients are overwritten.
pub fn eval_loss_and_grad<B: Backend>(
    be: &B,
    model: &mut Model<B>,
    images: &[f32],
    labels: &[Label],
    chunk: usize,
) -> Result<(f64, Vec<f32>)> {
    let per: usize = model.input.iter().product();
    let n = labels.len();
    if n == 0 || images.len() != n * per {
        return Err(Error::Invalid(format!("eval gradient: {} values for {n} labels of {per} values each", images.len())));
    }
    let mut loss_sum = 0.0f64;
    let mut grad = vec![0.0f64; model.num_params()];
    let chunk = chunk.max(1);
    let mut start = 0;
    while start < n {
        let end = (start + chunk).min(n);
        let l: Vec<f32> = labels[start..end].iter().map(|&v| v as f32).collect();
        let loss =
            model.loss_and_gradients(be, &images[start * per..end * per], Targets::Labels(&l), &CrossEntropy::new(0.0), Mode::Eval)?;
        let w = (end - start) as f64;
        loss_sum += loss * w;
        let mut at = 0;
        for g in &model.grads {
            for (a, v) in grad[at..].iter_mut().zip(be.download(g)?) {
                *a += v as f64 * w;
            }
            at += g.numel();
        }
        start = end;
    }
    Ok((loss_sum / n as f64, grad.into_iter().map(|v| (v / n as f64) as f32).collect()))
}

/// Every parameter of `model`, concatenated in the order of `model.params`.
pub fn flat_params<B: Backend>(be: &B, model: &Model<B>) -> Result<Vec<f32>> {
    let mut w = Vec::with_capacity(model.num_params());
    for p in &model.params {
        w.extend(be.download(p)?);
    }
    Ok(w)
}

/// Writes `w` (as [`flat_params`] lays it out) into the parameters of `model`.
pub fn set_flat_params<B: Backend>(be: &B, model: &mut Model<B>, w: &[f32]) -> Result<()> {
    if w.len() != model.num_params() {
        return Err(Error::Invalid(format!("{} values for a model of {} parameters", w.len(), model.num_params())));
    }
    let mut at = 0;
    for p in model.params.iter_mut() {
        let n = p.numel();
        be.write(p, &w[at..at + n])?;
        at += n;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Runs

/// One batch size of the throughput measurement.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Throughput {
    batch: usize,
    window_seconds: Vec<f64>,
    images_per_s: f64,
    ms_per_step: f64,
    gflops: f64,
    macs_per_image: u64,
    planned_bytes: u64,
    measured_bytes: Option<u64>,
}

/// One training run and the sharpness of its final weights.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct TrainRun {
    batch: usize,
    lr: f32,
    warmup_epochs: usize,
    steps: u64,
    summary: RunSummary,
    sharpness: f64,
    sharpness_base: f64,
    sharpness_max: f64,
    sharpness_seconds: f64,
    params_file: Option<String>,
}

/// One point of the interpolation.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct InterpPoint {
    alpha: f64,
    train_loss: f64,
    train_accuracy: f64,
    test_loss: f64,
    test_accuracy: f64,
    clamped_variances: usize,
}

/// A batch size of the list, resolved.
#[derive(Clone, Debug)]
struct Size {
    /// As given.
    spec: BatchSize,
    /// Samples per throughput step.
    n: usize,
    /// Samples per training step (the trainer clamps to the training part).
    train_n: usize,
    /// For keys and tables: `64`, `full`.
    label: String,
    plan: MemoryPlan,
    fits: Option<String>,
}

impl Size {
    fn show(&self) -> String {
        match self.spec {
            BatchSize::Full => format!("full ({})", self.n),
            BatchSize::Fixed(_) if self.train_n < self.n => format!("{} (trains as {})", self.n, self.train_n),
            BatchSize::Fixed(_) => self.label.clone(),
        }
    }
}

/// The α grid: `points` evenly spaced on [−0.5, 1.5], with 0 and 1.
fn alphas(points: usize) -> Vec<f64> {
    let n = points.max(2);
    let mut v: Vec<f64> = (0..n).map(|i| ((-0.5 + 2.0 * i as f64 / (n - 1) as f64) * 1e9).round() / 1e9).collect();
    v.extend([0.0, 1.0]);
    v.sort_by(f64::total_cmp);
    v.dedup_by(|a, b| (*a - *b).abs() < 1e-12);
    v
}

/// Images `idx` of `d`, flat.
fn gather(d: &Dataset, idx: &[usize]) -> Vec<f32> {
    let mut x = Vec::with_capacity(idx.len() * d.image_len());
    for &i in idx {
        x.extend_from_slice(d.image(i));
    }
    x
}

fn measure_throughput<B: Backend>(
    be: &B,
    setup: &Setup,
    opts: &Options,
    size: &Size,
    splits: &Splits,
    seed: u64,
    lr: f32,
) -> Result<Throughput> {
    be.trim(); // the pooled buffers of the previous size go, so the report is this size's
    let mut model = setup.build(be, &setup.model, seed, splits)?;
    let mut opt = setup.config.optimizer;
    opt.lr = lr;
    model.reset_optimizer(be, &opt)?;
    let loss = CrossEntropy::new(setup.label_smoothing);
    let b = size.n;
    let idx: Vec<usize> = (0..b).map(|i| i % splits.train.len()).collect();
    let x = gather(&splits.train, &idx);
    let labels: Vec<f32> = idx.iter().map(|&i| splits.train.labels[i] as f32).collect();
    let step = |model: &mut Model<B>| model.train_step(be, &x, Targets::Labels(&labels), &opt, &loss, setup.config.clip_norm);
    for _ in 0..opts.warmup_steps.max(1) {
        step(&mut model)?;
    }
    be.sync()?;
    let mut times = Vec::new();
    let mut measured = be.memory().allocated_bytes;
    let steps = opts.steps_per_window.max(1);
    for _ in 0..opts.windows.max(1) {
        let t = Instant::now();
        for _ in 0..steps {
            step(&mut model)?;
        }
        be.sync()?;
        times.push(t.elapsed());
        measured = match (measured, be.memory().allocated_bytes) {
            (Some(a), Some(c)) => Some(a.max(c)),
            (a, c) => a.or(c),
        };
    }
    let median = Timing::from_runs(times.clone()).median.as_secs_f64();
    let ips = (b * steps) as f64 / median;
    let macs = model.nodes().iter().map(|n| n.macs() as u64).sum::<u64>();
    Ok(Throughput {
        batch: b,
        window_seconds: times.iter().map(Duration::as_secs_f64).collect(),
        images_per_s: ips,
        ms_per_step: 1e3 * median / steps as f64,
        gflops: FLOPS_PER_MAC * macs as f64 * ips / 1e9,
        macs_per_image: macs,
        planned_bytes: size.plan.step_bytes(),
        measured_bytes: measured,
    })
}

fn train_one<B: Backend>(
    be: &B,
    setup: &Setup,
    opts: &Options,
    size: &Size,
    seed: u64,
    save_params: Option<&std::path::Path>,
) -> Result<TrainRun> {
    be.trim();
    let splits = setup.splits(None, seed)?;
    let mut model = setup.build(be, &setup.model, seed, &splits)?;
    let (lr, warmup) = lr_for(setup, opts.lr_rule, size.train_n)?;
    let mut cfg = setup.config.clone();
    cfg.batch = size.spec;
    cfg.optimizer.lr = lr;
    cfg.warmup_epochs = warmup;
    cfg.seed = seed;
    let summary = train_and_test(be, &mut model, &splits, &cfg, setup.label_smoothing, setup.patience, false)?;
    // Sharpness of the final weights on a fixed stratified subset of the training part.
    let t0 = Instant::now();
    let idx = stratified_subset(&splits.train.labels, opts.sharpness_samples.max(1), seed ^ 0x5A4D_9E55);
    let x = gather(&splits.train, &idx);
    let labels: Vec<Label> = idx.iter().map(|&i| splits.train.labels[i]).collect();
    let chunk = setup.config.eval_batch.max(1);
    let w0 = flat_params(be, &model)?;
    let s = {
        let f = |w: &[f32]| {
            set_flat_params(be, &mut model, w)?;
            eval_loss_and_grad(be, &mut model, &x, &labels, chunk)
        };
        sharpness(f, &w0, opts.sharpness_eps, opts.sharpness_steps, step_fraction(opts.sharpness_steps))?
    };
    set_flat_params(be, &mut model, &w0)?;
    let sharpness_seconds = t0.elapsed().as_secs_f64();
    println!("    sharpness {:.4} (loss {:.4} -> {:.4}, {:.1} s)", s.value, s.base, s.max, sharpness_seconds);
    let params_file = match save_params {
        Some(path) => {
            let tensors: Vec<(String, Vec<usize>, Vec<f32>)> =
                model.state_dict(be)?.into_iter().map(|t| (t.name, t.shape, t.data)).collect();
            let meta = BTreeMap::from([
                ("model".to_string(), setup.model.name.clone()),
                ("batch".to_string(), size.label.clone()),
                ("seed".to_string(), seed.to_string()),
            ]);
            crate::checkpoint::write_safetensors(path, &tensors, &meta)?;
            path.file_name().map(|n| n.to_string_lossy().into_owned())
        }
        None => None,
    };
    Ok(TrainRun {
        batch: size.train_n,
        lr,
        warmup_epochs: warmup,
        steps: model.step,
        summary,
        sharpness: s.value,
        sharpness_base: s.base,
        sharpness_max: s.max,
        sharpness_seconds,
        params_file,
    })
}

fn read_state(path: &std::path::Path) -> Result<BTreeMap<String, (Vec<usize>, Vec<f32>)>> {
    if !path.exists() {
        return Err(Error::Invalid(format!(
            "{} is missing (the interpolation needs it): delete the training run of its batch size and seed under runs/ to train it again",
            path.display()
        )));
    }
    Ok(crate::checkpoint::read_safetensors(path)?.0)
}

fn interpolate<B: Backend>(
    be: &B,
    setup: &Setup,
    seed: u64,
    small: &std::path::Path,
    large: &std::path::Path,
    alphas: &[f64],
) -> Result<Vec<InterpPoint>> {
    be.trim();
    let splits = setup.splits(None, seed)?;
    let mut model = setup.build(be, &setup.model, seed, &splits)?;
    let (a, b) = (read_state(small)?, read_state(large)?);
    let names: Vec<String> = model.state_dict(be)?.into_iter().map(|t| t.name).collect();
    let mut out = Vec::new();
    for &alpha in alphas {
        let mut tensors = Vec::with_capacity(names.len());
        let mut clamped = 0;
        for name in &names {
            let (Some((shape, x)), Some((_, y))) = (a.get(name), b.get(name)) else {
                return Err(Error::Invalid(format!("{name} is missing from {} or {}", small.display(), large.display())));
            };
            let mut data: Vec<f32> = x.iter().zip(y).map(|(&x, &y)| ((1.0 - alpha) * x as f64 + alpha * y as f64) as f32).collect();
            if name.ends_with("running_var") {
                for v in data.iter_mut().filter(|v| **v < 0.0) {
                    *v = 0.0;
                    clamped += 1;
                }
            }
            tensors.push(NamedTensor { name: name.clone(), shape: shape.clone(), data });
        }
        model.load_state_dict(be, &tensors)?;
        let tr: Evaluation = evaluate(be, &mut model, &splits.train, setup.config.eval_batch, false)?;
        let te: Evaluation = evaluate(be, &mut model, &splits.test, setup.config.eval_batch, false)?;
        println!("    α {alpha:+.2}: train loss {:.4}, test loss {:.4}, test acc {:.2}%", tr.loss, te.loss, 100.0 * te.accuracy);
        out.push(InterpPoint {
            alpha,
            train_loss: tr.loss,
            train_accuracy: tr.accuracy,
            test_loss: te.loss,
            test_accuracy: te.accuracy,
            clamped_variances: clamped,
        });
    }
    Ok(out)
}

/// One row of `results.csv`.
fn csv_row(kind: &str, batch: &str, n: Option<usize>, seed: Option<u64>, alpha: Option<f64>, metric: &str, v: f64) -> Vec<String> {
    vec![
        kind.into(),
        batch.into(),
        n.map_or(String::new(), |n| n.to_string()),
        seed.map_or(String::new(), |x| x.to_string()),
        alpha.map_or(String::new(), |a| format!("{a}")),
        metric.into(),
        format!("{v}"),
    ]
}

/// Spearman's rank correlation of two equally long lists (NaN for fewer than 3 or no spread).
fn spearman(x: &[f64], y: &[f64]) -> f64 {
    fn ranks(v: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            for &k in &idx[i..=j] {
                r[k] = (i + j) as f64 / 2.0;
            }
            i = j + 1;
        }
        r
    }
    if x.len() < 3 || x.len() != y.len() {
        return f64::NAN;
    }
    let (rx, ry) = (ranks(x), ranks(y));
    let (mx, my) = (mean_std(&rx).0, mean_std(&ry).0);
    let cov: f64 = rx.iter().zip(&ry).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = rx.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = ry.iter().map(|b| (b - my).powi(2)).sum();
    if vx == 0.0 || vy == 0.0 {
        return f64::NAN;
    }
    cov / (vx * vy).sqrt()
}

/// Runs the experiment into `out`: throughput at each batch size that fits, and with
/// [`Options::train`] the training runs, their sharpness and the interpolation; then
/// `results.csv`, `report.md` and the plots. Every measurement is a cached run of `out`, so an
/// interrupted experiment resumes.
pub fn run<B: Backend>(be: &B, setup: &Setup, opts: &Options, out: &mut Results) -> Result<()> {
    if opts.train && !(opts.sharpness_eps > 0.0 && opts.sharpness_eps.is_finite()) {
        return Err(Error::Invalid(format!("sharpness eps {}: expected a positive finite value", opts.sharpness_eps)));
    }
    if opts.train && opts.sharpness_samples == 0 {
        return Err(Error::Invalid("sharpness samples 0: expected at least 1 image".into()));
    }
    setup.config.validate()?;
    let seeds = setup.seeds();
    let mut limits = memory_limits(be);
    if let Some(bytes) = opts.memory_budget {
        limits.budget_bytes = bytes;
        limits.budget_source = format!("given: {}", human_bytes(bytes));
    }
    let planner = Planner::new(setup, &limits, opts.sharpness_samples)?;
    let full_n = full_batch(setup);
    let largest_fit = planner.largest(opts.train).ok();
    let mut sizes: Vec<Size> = Vec::new();
    for spec in batch_sizes(setup, opts, &limits)? {
        let n = match spec {
            BatchSize::Fixed(n) => n,
            BatchSize::Full => full_n,
        };
        let plan = planner.memory(n, opts.train);
        let fits = (!planner.fits(&plan)).then(|| planner.why_not(&plan));
        let label = spec.to_string();
        if sizes.iter().any(|s| s.label == label) {
            continue;
        }
        sizes.push(Size { spec, n, train_n: n.min(full_n), label, plan, fits });
    }
    sizes.sort_by_key(|s| (s.n, matches!(s.spec, BatchSize::Full)));
    let fitting: Vec<&Size> = sizes.iter().filter(|s| s.fits.is_none()).collect();
    let n_interp = usize::from(opts.train && fitting.len() >= 2);
    out.plan(fitting.len() + if opts.train { fitting.len() * seeds.len() + n_interp } else { 0 });

    // 1. Throughput.
    let splits0 = setup.splits(None, seeds[0])?;
    let mut thr: Vec<(&Size, Throughput)> = Vec::new();
    for s in &fitting {
        let (lr, _) = lr_for(setup, opts.lr_rule, s.train_n)?;
        let t: Throughput = out.run(&format!("throughput-b{}", s.label), &format!("throughput at batch {}", s.show()), || {
            measure_throughput(be, setup, opts, s, &splits0, seeds[0], lr)
        })?;
        println!("    {:.1} images/s, {:.2} ms/step, {:.2} GFLOP/s", t.images_per_s, t.ms_per_step, t.gflops);
        thr.push((s, t));
    }
    drop(splits0);

    // 2. Training.
    let mut trained: Vec<(&Size, Vec<TrainRun>)> = Vec::new();
    if opts.train {
        for (k, s) in fitting.iter().enumerate() {
            let mut runs = Vec::new();
            for &seed in &seeds {
                let keep = seed == seeds[0] && (k == 0 || k + 1 == fitting.len());
                let file = format!("params-b{}-seed{seed}.safetensors", s.label);
                let path = out.path(&file);
                let r: TrainRun =
                    out.run(&format!("train-b{}-seed{seed}", s.label), &format!("train at batch {}, seed {seed}", s.show()), || {
                        train_one(be, setup, opts, s, seed, keep.then_some(path.as_path()))
                    })?;
                runs.push(r);
            }
            trained.push((s, runs));
        }
    }

    // 3. Interpolation between the smallest and the largest batch (first seed).
    let grid = alphas(opts.interpolation_points);
    let mut interp: Option<(&Size, &Size, Vec<InterpPoint>)> = None;
    if n_interp == 1 {
        let (small, large) = (fitting[0], fitting[fitting.len() - 1]);
        let seed = seeds[0];
        let ps = out.path(&format!("params-b{}-seed{seed}.safetensors", small.label));
        let pl = out.path(&format!("params-b{}-seed{seed}.safetensors", large.label));
        let key = format!("interpolation-b{}-b{}-seed{seed}-n{}", small.label, large.label, grid.len());
        let pts: Vec<InterpPoint> = out.run(&key, &format!("interpolation between batch {} and {}", small.show(), large.show()), || {
            interpolate(be, setup, seed, &ps, &pl, &grid)
        })?;
        interp = Some((small, large, pts));
    }

    // results.csv
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (s, t) in &thr {
        let mut metrics = vec![
            ("images_per_s", t.images_per_s),
            ("ms_per_step", t.ms_per_step),
            ("gflops", t.gflops),
            ("macs_per_image", t.macs_per_image as f64),
            ("planned_bytes", t.planned_bytes as f64),
        ];
        if let Some(m) = t.measured_bytes {
            metrics.push(("measured_bytes", m as f64));
        }
        for (metric, v) in metrics {
            rows.push(csv_row("throughput", &s.label, Some(s.n), None, None, metric, v));
        }
    }
    for (s, runs) in &trained {
        for (r, &seed) in runs.iter().zip(&seeds) {
            let m = &r.summary;
            for (metric, v) in [
                ("lr", r.lr as f64),
                ("warmup_epochs", r.warmup_epochs as f64),
                ("epochs", m.epochs.len() as f64),
                ("steps", r.steps as f64),
                ("train_loss", m.train.loss),
                ("train_accuracy", m.train.accuracy),
                ("test_loss", m.test.loss),
                ("test_accuracy", m.test.accuracy),
                ("gap_accuracy", m.gap()),
                ("gap_loss", m.test.loss - m.train.loss),
                ("sharpness", r.sharpness),
                ("sharpness_base_loss", r.sharpness_base),
                ("sharpness_max_loss", r.sharpness_max),
                ("seconds", m.seconds),
            ] {
                rows.push(csv_row("train", &s.label, Some(s.train_n), Some(seed), None, metric, v));
            }
        }
    }
    if let Some((_, _, pts)) = &interp {
        for p in pts {
            for (metric, v) in [
                ("train_loss", p.train_loss),
                ("train_accuracy", p.train_accuracy),
                ("test_loss", p.test_loss),
                ("test_accuracy", p.test_accuracy),
                ("clamped_variances", p.clamped_variances as f64),
            ] {
                rows.push(csv_row("interpolation", "", None, Some(seeds[0]), Some(p.alpha), metric, v));
            }
        }
    }
    out.write_csv(&["kind", "batch", "batch_size", "seed", "alpha", "metric", "value"], &rows)?;

    // Plots.
    let desc = setup.describe();
    let x_of = |s: &Size| s.n as f64;
    save_panels(
        &out.path("throughput.png"),
        &format!("Training throughput by batch size: {desc}, on {}", be.name()),
        &[
            LinePlot {
                title: "Images per second (median of windows)".into(),
                x_label: "batch size (samples per step)".into(),
                y_label: "images / s".into(),
                x_scale: Scale::Log2,
                y_scale: Scale::Log10,
                series: vec![Series::new("images/s", thr.iter().map(|(s, t)| (x_of(s), t.images_per_s)).collect())],
                markers: true,
            },
            LinePlot {
                title: format!("Achieved GFLOP/s ({FLOPS_PER_MAC} FLOPs per forward MAC)"),
                x_label: "batch size (samples per step)".into(),
                y_label: "GFLOP/s".into(),
                x_scale: Scale::Log2,
                y_scale: Scale::Log10,
                series: vec![Series::new("GFLOP/s", thr.iter().map(|(s, t)| (x_of(s), t.gflops)).collect())],
                markers: true,
            },
        ],
    )?;
    let agg = |runs: &[TrainRun], f: &dyn Fn(&TrainRun) -> f64| mean_std(&runs.iter().map(f).collect::<Vec<_>>());
    if !trained.is_empty() {
        let xs = |f: &dyn Fn(&TrainRun) -> f64, scale: f64| -> Series {
            let mut pts = Vec::new();
            let mut err = Vec::new();
            for (s, runs) in &trained {
                let (m, sd) = agg(runs, f);
                pts.push((s.train_n as f64, scale * m));
                err.push(scale * sd);
            }
            Series::new("", pts).with_err(err)
        };
        let named = |s: Series, name: &str| Series { name: name.into(), ..s };
        save_panels(
            &out.path("generalization.png"),
            &format!(
                "Batch size and generalization: {desc}, {} seed(s), lr rule {} (error bars: std over seeds)",
                seeds.len(),
                opts.lr_rule
            ),
            &[
                LinePlot {
                    title: "Accuracy (final weights, eval mode)".into(),
                    x_label: "batch size (samples per step)".into(),
                    y_label: "accuracy (%)".into(),
                    x_scale: Scale::Log2,
                    y_scale: Scale::Linear,
                    series: vec![
                        named(xs(&|r| r.summary.test.accuracy, 100.0), "test"),
                        named(xs(&|r| r.summary.train.accuracy, 100.0), "train").dashed(),
                    ],
                    markers: true,
                },
                LinePlot {
                    title: "Generalization gap".into(),
                    x_label: "batch size (samples per step)".into(),
                    y_label: "train − test accuracy (percentage points)".into(),
                    x_scale: Scale::Log2,
                    y_scale: Scale::Linear,
                    series: vec![named(xs(&|r| r.summary.gap(), 100.0), "train − test accuracy")],
                    markers: true,
                },
                LinePlot {
                    title: format!("Sharpness (Keskar et al., ε = {:.0e})", opts.sharpness_eps),
                    x_label: "batch size (samples per step)".into(),
                    y_label: "sharpness (% loss rise in the box)".into(),
                    x_scale: Scale::Log2,
                    y_scale: Scale::Linear,
                    series: vec![named(xs(&|r| r.sharpness, 1.0), "sharpness")],
                    markers: true,
                },
            ],
        )?;
    }
    if let Some((small, large, pts)) = &interp {
        let vline = |alpha: f64, name: String, ys: &[f64]| {
            let fin: Vec<f64> = ys.iter().copied().filter(|v| v.is_finite()).collect();
            let lo = fin.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = fin.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            Series::new(name, vec![(alpha, lo), (alpha, hi)]).dashed()
        };
        let losses: Vec<f64> = pts.iter().flat_map(|p| [p.train_loss, p.test_loss]).filter(|v| *v > 0.0).collect();
        let accs: Vec<f64> = pts.iter().flat_map(|p| [100.0 * p.train_accuracy, 100.0 * p.test_accuracy]).collect();
        let small_name = format!("α = 0: small batch b = {}", small.show());
        let large_name = format!("α = 1: large batch b = {}", large.show());
        save_panels(
            &out.path("interpolation.png"),
            &format!("θ(α) = (1 − α) θ_small + α θ_large (batch-norm statistics interpolated too): {desc}, seed {}", seeds[0]),
            &[
                LinePlot {
                    title: "Cross-entropy loss".into(),
                    x_label: "α".into(),
                    y_label: "loss (nats)".into(),
                    x_scale: Scale::Linear,
                    y_scale: Scale::Log10,
                    series: vec![
                        Series::new("train", pts.iter().map(|p| (p.alpha, p.train_loss)).collect()),
                        Series::new("test", pts.iter().map(|p| (p.alpha, p.test_loss)).collect()),
                        vline(0.0, small_name.clone(), &losses),
                        vline(1.0, large_name.clone(), &losses),
                    ],
                    markers: true,
                },
                LinePlot {
                    title: "Accuracy".into(),
                    x_label: "α".into(),
                    y_label: "accuracy (%)".into(),
                    x_scale: Scale::Linear,
                    y_scale: Scale::Linear,
                    series: vec![
                        Series::new("train", pts.iter().map(|p| (p.alpha, 100.0 * p.train_accuracy)).collect()),
                        Series::new("test", pts.iter().map(|p| (p.alpha, 100.0 * p.test_accuracy)).collect()),
                        vline(0.0, small_name, &accs),
                        vline(1.0, large_name, &accs),
                    ],
                    markers: true,
                },
            ],
        )?;
    }

    // report.md
    let mut md = format!("# Batch size: {desc}\n\n");
    md.push_str(&format!(
        "Device: {}. Seeds: {seeds:?}. Learning-rate rule: `{}`. Batch sizes: {}.\n\n",
        be.name(),
        opts.lr_rule,
        sizes.iter().map(Size::show).collect::<Vec<_>>().join(", ")
    ));
    md.push_str("## Memory\n\n");
    md.push_str(&format!(
        "Planned, not allocated: parameters, gradients and two optimizer-state arenas, buffers; per batch size every activation, its gradient, the tensors layers save for the backward, residual scratch and targets; the plans `Model` keeps for the evaluation batches ({:?}); the convolution scratch ({}); when training, the sharpness pass{}. {}Largest buffer: {}. Budget: {} ({}).\n\n",
        planner.eval_sizes,
        if limits.gpu {
            "the im2col column buffers, each at most 64 MiB, that the buffer pool keeps for every size the run uses"
        } else {
            "an f64 copy of a convolution's input gradient"
        },
        if limits.gpu { format!("; and {} of the backend's own", human_bytes(GPU_BACKEND_BYTES)) } else { String::new() },
        if limits.gpu { "Sizes are rounded to the GPU buffer pool's size classes. " } else { "" },
        human_bytes(limits.max_tensor_bytes),
        human_bytes(limits.budget_bytes),
        limits.budget_source
    ));
    match largest_fit {
        Some(b) => {
            let p = planner.memory(b, opts.train);
            let next = planner.memory(b + 1, opts.train);
            md.push_str(&format!(
                "Largest batch size that fits: **{b}** (planned {}: model {}, batch {}, evaluation {}, scratch {}, sharpness {}, backend {}; largest tensor {} = {}). At {} the plan fails: {}.\n\n",
                human_bytes(p.total()),
                human_bytes(p.model_bytes),
                human_bytes(p.batch_bytes),
                human_bytes(p.eval_bytes),
                human_bytes(p.scratch_bytes),
                human_bytes(p.sharpness_bytes),
                human_bytes(p.backend_bytes),
                p.largest_tensor,
                human_bytes(p.largest_tensor_bytes),
                b + 1,
                planner.why_not(&next)
            ));
        }
        None => md.push_str("Not even batch size 1 fits the plan.\n\n"),
    }
    let skipped: Vec<String> =
        sizes.iter().filter_map(|s| s.fits.as_ref().map(|w| format!("- batch {}: skipped, does not fit ({w})", s.show()))).collect();
    if !skipped.is_empty() {
        md.push_str(&format!("{}\n\n", skipped.join("\n")));
    }

    md.push_str(&format!(
        "## Throughput\n\nPer batch size: {} untimed warm-up step(s), then {} window(s) of {} training step(s) (forward, loss, backward, {} update; the batch's upload included, data loading not), the device waited on at each window's end; the median window. Real images of the training part (cycled where the batch is larger). GFLOP/s = {FLOPS_PER_MAC} × {} MACs per image × images/s / 1e9 (2 FLOPs per MAC forward, about twice the forward backward). Memory: planned for the step (model, batch plan, its convolution scratch, backend){}.\n\n",
        opts.warmup_steps.max(1),
        opts.windows.max(1),
        opts.steps_per_window.max(1),
        setup.config.optimizer.preset_name(),
        thr.first().map_or("?".into(), |(_, t)| crate::nn::spec::group(t.macs_per_image as usize)),
        if thr.iter().any(|(_, t)| t.measured_bytes.is_some()) {
            "; measured: the largest live total of wgpu's allocator report at the windows' ends (pooled buffers included)"
        } else {
            "; no measured figure (no allocator report on this backend)"
        }
    ));
    let trows: Vec<Vec<String>> = thr
        .iter()
        .map(|(s, t)| {
            let ips: Vec<f64> = t.window_seconds.iter().map(|w| (s.n * opts.steps_per_window.max(1)) as f64 / w).collect();
            vec![
                s.show(),
                fmt(t.images_per_s, 1),
                fmt(t.ms_per_step, 3),
                fmt(t.gflops, 2),
                human_bytes(t.planned_bytes),
                t.measured_bytes.map_or("-".into(), human_bytes),
                format!(
                    "{}–{}",
                    fmt(ips.iter().copied().fold(f64::INFINITY, f64::min), 1),
                    fmt(ips.iter().copied().fold(0.0, f64::max), 1)
                ),
            ]
        })
        .collect();
    md.push_str(&table(&["batch", "images/s", "ms/step", "GFLOP/s", "planned memory", "measured memory", "windows (images/s)"], &trows));
    md.push_str("\n![throughput](throughput.png)\n\n");

    let ns = seeds.len();
    if !trained.is_empty() {
        md.push_str(&format!(
            "## Training\n\nEach batch size trains from the same initial weights per seed ({ns} seed(s)), {} epoch(s), learning rate per the `{}` rule{}. Figures of the final weights in eval mode: train = the whole training part, test = the test set. Gap = train − test accuracy (percentage points) and test − train loss. Mean ± std over seeds. With a fixed number of epochs a larger batch takes fewer steps (column `steps`).\n\n",
            setup.config.epochs,
            opts.lr_rule,
            match opts.lr_rule {
                LrRule::Fixed => String::new(),
                LrRule::Linear { .. } => {
                    let (lr1, w) = lr_for(setup, opts.lr_rule, 1)?;
                    format!(" (lr = {:.3e} × batch, {w} warm-up epoch(s))", lr1)
                }
            }
        ));
        let mut rows = Vec::new();
        for (s, runs) in &trained {
            let a = |f: &dyn Fn(&TrainRun) -> f64| agg(runs, f);
            let ((tra, tras), (tea, teas), (gap, gaps)) =
                (a(&|r| r.summary.train.accuracy), a(&|r| r.summary.test.accuracy), a(&|r| r.summary.gap()));
            let ((trl, trls), (tel, tels), (lg, lgs)) =
                (a(&|r| r.summary.train.loss), a(&|r| r.summary.test.loss), a(&|r| r.summary.test.loss - r.summary.train.loss));
            let ((sh, shs), (sec, secs)) = (a(&|r| r.sharpness), a(&|r| r.summary.seconds));
            rows.push(vec![
                s.show(),
                format!("{:.3e}", runs[0].lr),
                runs[0].warmup_epochs.to_string(),
                runs[0].steps.to_string(),
                pct_pm(tra, tras, ns, 2),
                pct_pm(tea, teas, ns, 2),
                num_pm(100.0 * gap, 100.0 * gaps, ns, 2),
                num_pm(trl, trls, ns, 4),
                num_pm(tel, tels, ns, 4),
                num_pm(lg, lgs, ns, 4),
                num_pm(sh, shs, ns, 3),
                num_pm(sec, secs, ns, 1),
            ]);
        }
        md.push_str(&table(
            &[
                "batch",
                "lr",
                "warm-up",
                "steps",
                "train acc %",
                "test acc %",
                "gap (pp)",
                "train loss",
                "test loss",
                "loss gap",
                "sharpness",
                "seconds",
            ],
            &rows,
        ));
        md.push_str("\n![generalization](generalization.png)\n\n");
        md.push_str(&format!(
            "### Sharpness\n\nKeskar et al. 2017, metric 2.1 in the full space (A = I): 100 × (max f(w + z) − f(w)) / (1 + f(w)) over the box |z_i| ≤ ε (|w_i| + 1) of every trained parameter (batch norm's γ and β included; its running statistics held at their trained values), ε = {:e}. f = mean cross-entropy (natural log, no label smoothing) over a fixed stratified subset of {} images of the seed's training part, in eval mode (running statistics, no dropout), with its exact gradient from an eval-mode backward pass. The maximum is searched by {} steps of projected sign ascent, each moving every coordinate {:.3} of its half-width along its gradient's sign (Keskar et al. used 10 iterations of L-BFGS-B); the largest value seen is kept, so the figure is a lower bound of the box maximum.\n\n",
            opts.sharpness_eps,
            opts.sharpness_samples.min(full_n),
            opts.sharpness_steps,
            step_fraction(opts.sharpness_steps)
        ));
    }
    if let Some((small, large, pts)) = &interp {
        md.push_str(&format!(
            "## Interpolation\n\nθ(α) = (1 − α) θ_small + α θ_large between the final weights of batch {} (α = 0) and batch {} (α = 1), seed {}; batch norm's running means and variances are interpolated the same way{}. Train = the whole training part, test = the test set, eval mode.\n\n",
            small.show(),
            large.show(),
            seeds[0],
            {
                let c: usize = pts.iter().map(|p| p.clamped_variances).sum();
                if c > 0 {
                    format!(" (running variances that went negative were clamped to 0: {c} values over all α)")
                } else {
                    " (no running variance went negative)".into()
                }
            }
        ));
        let irows: Vec<Vec<String>> = pts
            .iter()
            .map(|p| {
                vec![
                    format!("{:+.2}", p.alpha),
                    fmt(p.train_loss, 4),
                    fmt(100.0 * p.train_accuracy, 2),
                    fmt(p.test_loss, 4),
                    fmt(100.0 * p.test_accuracy, 2),
                ]
            })
            .collect();
        md.push_str(&table(&["α", "train loss", "train acc %", "test loss", "test acc %"], &irows));
        md.push_str("\n![interpolation](interpolation.png)\n\n");
    }

    // What it shows, from the numbers.
    md.push_str("## What it shows\n\n");
    let mut shows = Vec::new();
    if let (Some((s0, t0)), Some((s1, t1))) = (thr.first(), thr.last()) {
        if thr.len() > 1 {
            let best = thr.iter().map(|(_, t)| t.images_per_s).fold(0.0, f64::max);
            let knee = thr.iter().find(|(_, t)| t.images_per_s >= 0.9 * best).map(|(s, _)| s.show()).unwrap_or_default();
            shows.push(format!(
                "Throughput went from {:.1} images/s at batch {} to {:.1} at batch {} (× {:.2}); batch {knee} is the smallest within 10% of the best ({:.1} images/s).",
                t0.images_per_s,
                s0.show(),
                t1.images_per_s,
                s1.show(),
                t1.images_per_s / t0.images_per_s,
                best
            ));
        }
    }
    if trained.len() >= 2 {
        let m = |runs: &[TrainRun], f: &dyn Fn(&TrainRun) -> f64| agg(runs, f);
        let (first, last) = (&trained[0], &trained[trained.len() - 1]);
        let (a0, s0) = m(&first.1, &|r| r.summary.test.accuracy);
        let (a1, s1) = m(&last.1, &|r| r.summary.test.accuracy);
        let d = 100.0 * (a1 - a0);
        let noise = 100.0 * s0.max(s1);
        let verdict = if ns > 1 && d.abs() <= noise {
            format!("a change of {d:+.2} points, within the seeds' standard deviation ({noise:.2}): not separated by these runs")
        } else if d < 0.0 {
            format!("it fell by {:.2} points", -d)
        } else if d > 0.0 {
            format!("it rose by {d:.2} points")
        } else {
            "unchanged".into()
        };
        shows.push(format!(
            "Test accuracy was {:.2}% at batch {} and {:.2}% at batch {}: {verdict}.",
            100.0 * a0,
            first.0.show(),
            100.0 * a1,
            last.0.show()
        ));
        let bx: Vec<f64> = trained.iter().map(|(s, _)| (s.train_n as f64).log2()).collect();
        let rho = |f: &dyn Fn(&TrainRun) -> f64| spearman(&bx, &trained.iter().map(|(_, r)| m(r, f).0).collect::<Vec<_>>());
        let ((sh0, shs0), (sh1, shs1)) = (m(&first.1, &|r| r.sharpness), m(&last.1, &|r| r.sharpness));
        let sh_noise = shs0.max(shs1);
        let sh_separated = ns == 1 || (sh1 - sh0).abs() > sh_noise;
        let acc_separated = ns == 1 || d.abs() > noise;
        let (g0, g1) = (m(&first.1, &|r| r.summary.gap()).0, m(&last.1, &|r| r.summary.gap()).0);
        shows.push(format!(
            "Sharpness was {} at the smallest batch and {} at the largest ({}{}); the accuracy gap {:.2} and {:.2} points.",
            num_pm(sh0, shs0, ns, 3),
            num_pm(sh1, shs1, ns, 3),
            if sh1 > sh0 {
                "higher at the large batch"
            } else if sh1 < sh0 {
                "lower at the large batch"
            } else {
                "equal"
            },
            if sh_separated { "" } else { ", a difference within the seeds' standard deviation" },
            100.0 * g0,
            100.0 * g1
        ));
        let (rt, rs, rg) = (rho(&|r| r.summary.test.accuracy), rho(&|r| r.sharpness), rho(&|r| r.summary.gap()));
        if rt.is_finite() || rs.is_finite() {
            shows.push(format!(
                "Spearman rank correlation with the batch size over the {} sizes (means over seeds): test accuracy {}, sharpness {}, gap {}.",
                trained.len(),
                fmt(rt, 2),
                fmt(rs, 2),
                fmt(rg, 2)
            ));
        }
        shows.push(match (a1 < a0, sh1 > sh0, acc_separated && sh_separated) {
            (true, true, true) => {
                "As measured here, the larger batch found a sharper minimum that generalized worse: the pattern Keskar et al. report.".into()
            }
            (true, true, false) => format!(
                "The directions match Keskar et al. (larger batch: sharper, lower test accuracy), but the {ns} seeds do not separate the {}: more seeds are needed to call it.",
                match (acc_separated, sh_separated) {
                    (false, false) => "accuracies or the sharpnesses",
                    (false, true) => "accuracies",
                    _ => "sharpnesses",
                }
            ),
            _ => "As measured here, the pattern Keskar et al. report (larger batch: sharper minimum and lower test accuracy) does not hold between the smallest and the largest batch.".into(),
        });
        if opts.lr_rule == LrRule::Fixed {
            shows.push("With the learning rate fixed and the epochs fixed, the larger batches also took fewer, equally long steps: part of any difference is less optimization, not the batch size as such.".into());
        }
    }
    if let Some((small, large, pts)) = &interp {
        let at = |a: f64| pts.iter().min_by(|p, q| (p.alpha - a).abs().total_cmp(&(q.alpha - a).abs()));
        if let (Some(p0), Some(p1), Some(pm), Some(pp)) = (at(0.0), at(1.0), at(-0.5), at(1.5)) {
            let inside = pts.iter().filter(|p| p.alpha > 0.0 && p.alpha < 1.0).map(|p| p.train_loss).fold(f64::NEG_INFINITY, f64::max);
            let barrier = inside - p0.train_loss.max(p1.train_loss);
            shows.push(format!(
                "Along the line the train loss was {:.4} at the small-batch end and {:.4} at the large-batch end; {}. Beyond the ends it rose by {:.4} from α = 0 to α = {:.2} (small batch {}) and by {:.4} from α = 1 to α = {:.2} (large batch {}): {}.",
                p0.train_loss,
                p1.train_loss,
                if inside.is_finite() {
                    if barrier > 0.0 {
                        format!("between them it peaked {barrier:.4} above the higher end (a barrier)")
                    } else {
                        "between them it stayed below the higher end (no barrier)".into()
                    }
                } else {
                    "no point lies between them".into()
                },
                pm.train_loss - p0.train_loss,
                pm.alpha,
                small.show(),
                pp.train_loss - p1.train_loss,
                pp.alpha,
                large.show(),
                if pp.train_loss - p1.train_loss > pm.train_loss - p0.train_loss {
                    "steeper on the large-batch side"
                } else {
                    "steeper on the small-batch side"
                }
            ));
        }
    }
    if shows.is_empty() {
        shows.push("One batch size only: nothing to compare.".into());
    }
    md.push_str(&shows.iter().map(|s| format!("- {s}")).collect::<Vec<_>>().join("\n"));
    md.push_str(&format!(
        "\n\n## Files\n\n- `results.csv`: tidy, one row per measured value: `kind` (`throughput`, `train`, `interpolation`), `batch` (as given: a number or `full`), `batch_size` (samples per step; for `train` as trained, the training part at most), `seed` (train, interpolation), `alpha` (interpolation), `metric`, `value`. Throughput metrics: images_per_s, ms_per_step, gflops, macs_per_image, planned_bytes, measured_bytes. Train: lr, warmup_epochs, epochs, steps, train_loss, train_accuracy, test_loss, test_accuracy, gap_accuracy, gap_loss, sharpness, sharpness_base_loss, sharpness_max_loss, seconds. Interpolation: train_loss, train_accuracy, test_loss, test_accuracy, clamped_variances. Accuracies are fractions. In pandas, one wide table per kind: `df[df.kind == 'train'].pivot_table(index=['batch', 'batch_size', 'seed'], columns='metric', values='value')` (throughput: `index=['batch', 'batch_size']`; interpolation: `index='alpha'`).\n- `throughput.png`, `generalization.png`, `interpolation.png`.\n- `params-b<batch>-seed<seed>.safetensors`: the final weights and batch-norm statistics of the interpolated runs.\n- `runs/`: every finished run, one file each, read back when the experiment is run again on this folder.\n\nSettings: {}\n",
        serde_json::to_string(opts).unwrap_or_default()
    ));
    out.write_report(&md)
}
