//! Where a training step's time goes: every kernel of one step timed on the device (see
//! [`crate::gpu::profile`]), grouped by layer, phase and op, against the step's wall time
//! measured without profiling.

use crate::gpu::{Gpu, KernelTime, ProfileMethod};
use crate::nn::{CrossEntropy, Model, ModelSpec, Targets};
use crate::rng::Rng;
use crate::{Backend, Optimizer, Result};

/// One op of one layer and phase, per step.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OpTime {
    /// The op (`matmul`, `im2col`, `bias_act`, ...).
    pub op: String,
    /// Dispatches per step.
    pub count: usize,
    /// Device seconds per step.
    pub seconds: f64,
}

/// A layer's phase (`layers.3` forward), per step.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerTime {
    /// `layers.3`, or `""` for the loss and the optimizer.
    pub layer: String,
    /// The layer's kind (`conv2d`, `linear`, ...), or the phase for the loss and optimizer.
    pub kind: String,
    /// `forward`, `backward`, `loss` or `optimizer`.
    pub phase: String,
    /// Device seconds per step.
    pub seconds: f64,
    /// Share of the step's kernel time.
    pub share: f64,
    /// Floating-point operations per step of the layer's products (2 per multiply-add;
    /// backward counts both the input and the weight gradients), where the layer has any.
    pub flops: Option<f64>,
    /// The ops, in the order first dispatched.
    pub ops: Vec<OpTime>,
}

/// One training step, explained.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepProfile {
    /// The adapter.
    pub device: String,
    /// How the kernel times were taken.
    pub method: ProfileMethod,
    /// The model's name.
    pub model: String,
    /// Samples per step.
    pub batch: usize,
    /// Steps profiled (times are their mean).
    pub steps: usize,
    /// The layers' phases, in step order.
    pub layers: Vec<LayerTime>,
    /// Sum of every kernel's time, per step.
    pub kernel_seconds: f64,
    /// From the first kernel's start to the last one's end, per step (mean): the kernels and
    /// the device's idle time between them. Profiling puts each dispatch in a compute pass of
    /// its own, so this can exceed the unprofiled step's share.
    pub timeline_seconds: f64,
    /// Median wall time of one step on the same adapter without profiling (recording,
    /// submission and waiting included).
    pub step_seconds: f64,
    /// Dispatches per step.
    pub dispatches: usize,
}

impl StepProfile {
    /// Kernel time over step time (1.0: the kernels explain the whole step).
    pub fn coverage(&self) -> f64 {
        self.kernel_seconds / self.step_seconds
    }

    /// Time per step the device spent between the step's kernels.
    pub fn idle_seconds(&self) -> f64 {
        (self.timeline_seconds - self.kernel_seconds).max(0.0)
    }
}

/// Profiles training steps of `spec` on `input` at `batch` with `opt`: the wall time of a step
/// on `plain` (median of `steps` after two warm-up steps), and every kernel's time on
/// `profiled` (the same adapter opened with profiling) averaged over `steps` steps, the two
/// kinds of step alternating.
pub fn profile_training(
    plain: &Gpu,
    profiled: &Gpu,
    spec: &ModelSpec,
    input: &[usize],
    batch: usize,
    opt: &Optimizer,
    steps: usize,
) -> Result<StepProfile> {
    let steps = steps.max(1);
    let mut rng = Rng::new(7);
    let x = rng.vec(batch * input.iter().product::<usize>(), -1.0, 1.0);
    let loss = CrossEntropy::default();

    // The same model on both devices. Unprofiled and profiled steps alternate after the
    // warm-up (which compiles the pipelines and allocates), so that a machine whose speed drifts
    // slows both alike and the kernels' sum can be held against the step it claims to explain.
    let mut model = Model::from_spec(plain, spec, input, 1)?;
    model.check_batch(batch, plain.memory().max_tensor_bytes)?;
    model.reset_optimizer(plain, opt)?;
    let labels: Vec<f32> = (0..batch).map(|_| rng.below(model.classes()) as f32).collect();
    let mut traced = Model::from_spec(profiled, spec, input, 1)?;
    traced.reset_optimizer(profiled, opt)?;
    for _ in 0..2 {
        model.train_step(plain, &x, Targets::Labels(&labels), opt, &loss, None)?;
    }
    traced.train_step(profiled, &x, Targets::Labels(&labels), opt, &loss, None)?;
    profiled.take_profile()?;
    let mut walls = Vec::new();
    let mut times = Vec::new();
    let mut timeline = 0.0;
    for _ in 0..steps {
        plain.sync()?;
        let t = std::time::Instant::now();
        model.train_step(plain, &x, Targets::Labels(&labels), opt, &loss, None)?;
        plain.sync()?;
        walls.push(t.elapsed().as_secs_f64());
        traced.train_step(profiled, &x, Targets::Labels(&labels), opt, &loss, None)?;
        let step = profiled.take_profile()?;
        let first = step.iter().map(|t| t.start).fold(f64::INFINITY, f64::min);
        let last = step.iter().map(|t| t.start + t.seconds).fold(f64::NEG_INFINITY, f64::max);
        timeline += (last - first).max(0.0) / steps as f64;
        times.extend(step);
    }
    walls.sort_by(f64::total_cmp);
    let step_seconds = walls[walls.len() / 2];
    let kinds: std::collections::HashMap<String, (String, usize)> =
        traced.nodes().iter().map(|n| (n.name.clone(), (n.kind().to_string() + if n.relu { "+relu" } else { "" }, n.macs()))).collect();
    let mut layers = group(&times, steps, &kinds, batch);
    let kernel_seconds: f64 = layers.iter().map(|l| l.seconds).sum();
    for l in &mut layers {
        l.share = l.seconds / kernel_seconds.max(1e-12);
    }
    Ok(StepProfile {
        device: profiled.adapter_name().to_string(),
        method: profiled.profile_method().unwrap_or(ProfileMethod::HostPerSubmission),
        model: spec.name.clone(),
        batch,
        steps,
        layers,
        kernel_seconds,
        timeline_seconds: timeline.max(kernel_seconds),
        step_seconds,
        dispatches: times.len() / steps,
    })
}

/// Kernel times grouped by (layer, phase) in step order, then by op, averaged over `steps`.
fn group(times: &[KernelTime], steps: usize, kinds: &std::collections::HashMap<String, (String, usize)>, batch: usize) -> Vec<LayerTime> {
    let mut layers: Vec<LayerTime> = Vec::new();
    let per = steps as f64;
    for t in times {
        let i = match layers.iter().position(|l| l.layer == t.layer && l.phase == t.phase) {
            Some(i) => i,
            None => {
                let (kind, macs) = kinds.get(&t.layer).cloned().unwrap_or_else(|| (t.phase.to_string(), 0));
                let factor = if t.phase == "backward" { 4.0 } else { 2.0 };
                let flops = (macs > 0 && (t.phase == "forward" || t.phase == "backward")).then(|| factor * (macs * batch) as f64);
                layers.push(LayerTime {
                    layer: t.layer.clone(),
                    kind,
                    phase: t.phase.to_string(),
                    seconds: 0.0,
                    share: 0.0,
                    flops,
                    ops: Vec::new(),
                });
                layers.len() - 1
            }
        };
        let l = &mut layers[i];
        l.seconds += t.seconds / per;
        match l.ops.iter_mut().find(|o| o.op == t.op) {
            Some(o) => {
                o.count += 1;
                o.seconds += t.seconds / per;
            }
            None => l.ops.push(OpTime { op: t.op.to_string(), count: 1, seconds: t.seconds / per }),
        }
    }
    for l in &mut layers {
        for o in &mut l.ops {
            o.count = o.count.div_ceil(steps);
        }
    }
    layers
}

/// Kernel time per op over the whole step (every layer and phase), largest first: (op,
/// dispatches per step, seconds per step).
pub fn by_op(p: &StepProfile) -> Vec<OpTime> {
    let mut ops: Vec<OpTime> = Vec::new();
    for o in p.layers.iter().flat_map(|l| &l.ops) {
        match ops.iter_mut().find(|t| t.op == o.op) {
            Some(t) => {
                t.count += o.count;
                t.seconds += o.seconds;
            }
            None => ops.push(o.clone()),
        }
    }
    ops.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    ops
}

/// One line per op for a benchmark's report: `matmul 152.3 ms (46%, 24 dispatches)`, the
/// largest first, and the kernels' share of the step.
pub fn op_summary(p: &StepProfile) -> String {
    let mut s = format!(
        "  batch {}: kernels {:.1} ms of a {:.1} ms step ({:.0}%), {} dispatches, device idle between them {:.1} ms; by op:",
        p.batch,
        p.kernel_seconds * 1e3,
        p.step_seconds * 1e3,
        100.0 * p.coverage(),
        p.dispatches,
        p.idle_seconds() * 1e3
    );
    for o in by_op(p) {
        s.push_str(&format!(
            "\n    {:<24} {:>9.2} ms {:>5.1}% {:>5} dispatches",
            o.op,
            o.seconds * 1e3,
            100.0 * o.seconds / p.kernel_seconds.max(1e-12),
            o.count
        ));
    }
    s.push('\n');
    s
}

/// The profile as a table for people.
pub fn table(p: &StepProfile) -> String {
    let mut s = format!(
        "one training step of {} at batch {} on {} ({}; mean of {} step{})\n",
        p.model,
        p.batch,
        p.device,
        p.method.describe(),
        p.steps,
        if p.steps == 1 { "" } else { "s" }
    );
    // Columns as wide as their longest entry (`layers.7.body.1`, `batch_norm2d+relu`).
    let lw = p.layers.iter().map(|l| l.layer.len()).max().unwrap_or(0).max(12);
    let kw = p.layers.iter().map(|l| l.kind.len()).max().unwrap_or(0).max(12);
    s.push_str(&format!(
        "{:<lw$} {:<kw$} {:<9} {:<22} {:>6} {:>10} {:>7} {:>9}\n",
        "layer", "kind", "phase", "op", "count", "ms", "share", "GFLOP/s"
    ));
    for l in &p.layers {
        let gflops = l.flops.map_or(String::new(), |f| format!("{:.2}", f / l.seconds.max(1e-12) / 1e9));
        s.push_str(&format!(
            "{:<lw$} {:<kw$} {:<9} {:<22} {:>6} {:>10.3} {:>6.1}% {:>9}\n",
            if l.layer.is_empty() { "-" } else { &l.layer },
            l.kind,
            l.phase,
            "(all)",
            l.ops.iter().map(|o| o.count).sum::<usize>(),
            l.seconds * 1e3,
            100.0 * l.share,
            gflops
        ));
        if l.ops.len() > 1 {
            for o in &l.ops {
                s.push_str(&format!(
                    "{:<lw$} {:<kw$} {:<9} {:<22} {:>6} {:>10.3} {:>6.1}%\n",
                    "",
                    "",
                    "",
                    o.op,
                    o.count,
                    o.seconds * 1e3,
                    100.0 * o.seconds / p.kernel_seconds.max(1e-12)
                ));
            }
        }
    }
    s.push_str(&format!(
        "kernels: {:.3} ms in {} dispatches per step; the step without profiling: {:.3} ms (kernels {:.1}% of it)\n",
        p.kernel_seconds * 1e3,
        p.dispatches,
        p.step_seconds * 1e3,
        100.0 * p.coverage()
    ));
    s.push_str(&timeline_line(p));
    s
}

/// What the kernels leave of the step: the device's idle time between them, and the host's.
fn timeline_line(p: &StepProfile) -> String {
    let rest = p.step_seconds - p.timeline_seconds;
    let host = if rest >= 0.0 {
        format!("the other {:.3} ms the host's (recording, submitting, reading the loss back)", rest * 1e3)
    } else {
        format!("the profiled timeline is {:.3} ms longer than the step without profiling (a compute pass per dispatch)", -rest * 1e3)
    };
    format!(
        "between the kernels the device idled {:.3} ms a step ({:.1}% of the step; first kernel's start to last one's end: {:.3} ms); {host}\n",
        p.idle_seconds() * 1e3,
        100.0 * p.idle_seconds() / p.step_seconds.max(1e-12),
        p.timeline_seconds * 1e3,
    )
}
