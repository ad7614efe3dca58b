//! The table of `wgtrain summary`, like torchinfo's: one row per layer with its kernel, stride,
//! padding, dilation and groups where it has them, its output shape, parameters, MACs and
//! activation memory; residual blocks as a row of their totals followed by their body and
//! shortcut layers, the sum and the rectifier, indented. Below, memory totals for a batch size
//! and an optimizer ([`MemoryEstimate`]). Nothing is allocated: everything comes from the
//! model's graph.

use std::fmt::Write as _;

use super::model::{Graph, Op};
use super::spec::{group, LayerSpec, ModelSpec};
use crate::ops::Optimizer;
use crate::tensor::ShapeFmt;
use crate::{Cpu, Result};

/// Bytes of one value (every tensor is f32).
const F32: u64 = 4;

/// The memory of training a model on batches of [`MemoryEstimate::batch`] samples, in bytes,
/// f32 throughout, as wgtrain's [`Model`](super::Model) holds it (every buffer of a batch size
/// lives for the whole run, so the peak is their sum).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MemoryEstimate {
    /// Samples per step.
    pub batch: usize,
    /// The optimizer preset (`adam`, `sgd`, ...).
    pub optimizer: String,
    /// State tensors the optimizer keeps per parameter tensor ([`Optimizer::state_tensors`]).
    pub state_tensors: usize,
    /// Trained values.
    pub parameter_bytes: u64,
    /// Their gradients (as large as the parameters).
    pub gradient_bytes: u64,
    /// The optimizer's state: `state_tensors` × the parameters.
    pub optimizer_bytes: u64,
    /// Persistent untrained tensors (batch norm's running statistics).
    pub buffer_bytes: u64,
    /// The forward's activations: the input batch and every layer's output (all kept for the
    /// backward).
    pub activation_bytes: u64,
    /// What layers keep from the forward for the backward besides activations (max pooling's
    /// indices, batch norm's batch statistics, dropout's masks).
    pub saved_bytes: u64,
    /// Gradients of the activations, and the scratch where a residual block's input gathers
    /// its two gradients.
    pub activation_gradient_bytes: u64,
}

impl MemoryEstimate {
    /// Everything at once: parameters, gradients, optimizer state, buffers, activations, saved
    /// tensors and activation gradients.
    pub fn peak(&self) -> u64 {
        [
            self.parameter_bytes,
            self.gradient_bytes,
            self.optimizer_bytes,
            self.buffer_bytes,
            self.activation_bytes,
            self.saved_bytes,
            self.activation_gradient_bytes,
        ]
        .into_iter()
        .fold(0, u64::saturating_add)
    }
}

/// One row of the table: a layer (a node of the graph) or the head of a residual block.
struct Row {
    depth: usize,
    /// Place in the model: `3`, `3.body.0`, `3.add`.
    name: String,
    kind: String,
    /// The spec of a layer, for its kernel columns.
    spec: Option<LayerSpec>,
    output: Vec<usize>,
    weights: usize,
    biases: usize,
    macs: usize,
    /// Activation bytes per sample (layers only; a block's head shows none).
    act: Option<usize>,
    /// For a block's head: how many layer rows (graph nodes) it stands for.
    head_of: Option<usize>,
}

/// The rows of `layers` in the graph's node order, with the blocks' heads before their nodes;
/// returns how many graph nodes the rows stand for.
fn walk(layers: &[LayerSpec], prefix: &str, depth: usize, rows: &mut Vec<Row>) -> usize {
    let mut nodes = 0;
    for (j, l) in layers.iter().enumerate() {
        let name = if prefix.is_empty() { j.to_string() } else { format!("{prefix}.{j}") };
        let row = |name: String, kind: &str, depth: usize, spec: Option<LayerSpec>| Row {
            depth,
            name,
            kind: kind.into(),
            spec,
            output: vec![],
            weights: 0,
            biases: 0,
            macs: 0,
            act: None,
            head_of: None,
        };
        match l {
            LayerSpec::Residual { body, shortcut } => {
                let head = rows.len();
                rows.push(row(name.clone(), "residual", depth, None));
                let mut n = walk(body, &format!("{name}.body"), depth + 1, rows);
                n += walk(shortcut, &format!("{name}.shortcut"), depth + 1, rows);
                rows.push(row(format!("{name}.add"), "add", depth + 1, None));
                rows.push(row(format!("{name}.relu"), "relu", depth + 1, Some(LayerSpec::Relu)));
                n += 2;
                rows[head].head_of = Some(n);
                nodes += n;
            }
            l => {
                rows.push(row(name, l.name(), depth, Some(l.clone())));
                nodes += 1;
            }
        }
    }
    nodes
}

/// `3x3`, or `3` where both axes are the same and `square` allows.
fn pair(v: [usize; 2], square: bool) -> String {
    if square && v[0] == v[1] {
        v[0].to_string()
    } else {
        format!("{}x{}", v[0], v[1])
    }
}

/// The kernel, stride, padding, dilation and groups columns of a layer ("" where it has none).
fn kernel_columns(spec: Option<&LayerSpec>) -> [String; 5] {
    match spec {
        Some(LayerSpec::Conv2d { kernel, stride, padding, dilation, groups, .. }) => {
            [pair(*kernel, false), pair(*stride, true), pair(*padding, true), pair(*dilation, true), groups.to_string()]
        }
        Some(LayerSpec::MaxPool2d(p) | LayerSpec::AvgPool2d(p)) => {
            [pair(p.kernel, false), pair(p.stride, true), pair(p.padding, true), String::new(), String::new()]
        }
        _ => Default::default(),
    }
}

impl ModelSpec {
    /// The memory of training this model on inputs of shape `input` [C, H, W] in batches of
    /// `batch` with `optimizer` (nothing is allocated). An error names the layer that does not
    /// fit its input.
    pub fn memory(&self, input: &[usize], batch: usize, optimizer: &Optimizer) -> Result<MemoryEstimate> {
        let mut g = self.graph(input)?;
        g.fuse_relus();
        memory_of(&g, input, batch, optimizer)
    }

    /// The table of `wgtrain summary` for inputs of shape `input` [C, H, W], with the memory
    /// totals of a batch of one trained with Adam.
    pub fn summary(&self, input: &[usize]) -> Result<String> {
        self.summary_for(input, 1, &Optimizer::preset("adam")?)
    }

    /// The table of `wgtrain summary` for inputs of shape `input` [C, H, W], with the memory
    /// totals of training on batches of `batch` with `optimizer`.
    pub fn summary_for(&self, input: &[usize], batch: usize, optimizer: &Optimizer) -> Result<String> {
        let g = self.graph(input)?;
        let mut rows = Vec::new();
        walk(&self.layers, "", 0, &mut rows);
        // Fill in the layers' figures from the graph's nodes, in order, then the heads' from
        // the layers under them.
        let mut nodes = g.nodes.iter();
        for row in rows.iter_mut().filter(|r| r.head_of.is_none()) {
            let Some(node) = nodes.next() else { break };
            row.output = node.out_shape.clone();
            row.macs = node.macs();
            row.act = Some(node.out_shape.iter().product::<usize>() * F32 as usize);
            for p in &g.params[node.params.clone()] {
                let n: usize = p.shape.iter().product();
                if p.name.ends_with(".bias") {
                    row.biases += n;
                } else {
                    row.weights += n;
                }
            }
            row.kind = node.kind().to_string();
        }
        for i in 0..rows.len() {
            let Some(n) = rows[i].head_of else { continue };
            let layers: Vec<&Row> = rows[i + 1..].iter().filter(|r| r.head_of.is_none()).take(n).collect();
            let (w, b, m) = layers.iter().fold((0, 0, 0), |(w, b, m), r| (w + r.weights, b + r.biases, m + r.macs));
            let out = layers.last().map(|r| r.output.clone()).unwrap_or_default();
            let head = &mut rows[i];
            (head.weights, head.biases, head.macs, head.output) = (w, b, m, out);
        }

        let name_w = rows.iter().map(|r| r.name.len()).max().unwrap_or(1).max(2);
        let kind_w = rows.iter().map(|r| 2 * r.depth + r.kind.len()).max().unwrap_or(5).max(5);
        let shape = |s: &[usize]| ShapeFmt(s).to_string();
        let out_w = rows.iter().map(|r| shape(&r.output).len()).max().unwrap_or(6).max(6);
        let mut s = String::new();
        let _ = writeln!(s, "model {} for input {}", self.name, ShapeFmt(input));
        let line = |s: &mut String, cells: [&str; 13]| {
            let [a, b, c, d, e, f, g, h, i, j, k, l, m] = cells;
            let _ = writeln!(
                s,
                "{a:<name_w$}  {b:<kind_w$}  {c:>6} {d:>6} {e:>5} {f:>5} {g:>6}  {h:<out_w$} {i:>12} {j:>10} {k:>12} {l:>14} {m:>12}"
            );
        };
        line(
            &mut s,
            ["#", "layer", "kernel", "stride", "pad", "dil", "groups", "output", "weights", "biases", "parameters", "MACs", "act. memory"],
        );
        let (mut w, mut b, mut m, mut a) = (0, 0, 0, 0);
        for row in &rows {
            let kind = format!("{}{}", "  ".repeat(row.depth), row.kind);
            let [kernel, stride, pad, dil, groups] = kernel_columns(row.spec.as_ref());
            let act = row.act.map(|v| bytes(v as u64)).unwrap_or_default();
            line(
                &mut s,
                [
                    &row.name,
                    &kind,
                    &kernel,
                    &stride,
                    &pad,
                    &dil,
                    &groups,
                    &shape(&row.output),
                    &group(row.weights),
                    &group(row.biases),
                    &group(row.weights + row.biases),
                    &group(row.macs),
                    &act,
                ],
            );
            if row.head_of.is_none() {
                w += row.weights;
                b += row.biases;
                m += row.macs;
                a += row.act.unwrap_or(0);
            }
        }
        line(&mut s, ["", "total", "", "", "", "", "", "", &group(w), &group(b), &group(w + b), &group(m), &bytes(a as u64)]);
        let _ = writeln!(s, "(per sample; activation memory counts each layer's output once, in f32)");

        let e = self.memory(input, batch, optimizer)?;
        let s_ = if e.batch == 1 { "" } else { "s" };
        let _ = writeln!(s, "\ntraining memory for a batch of {} sample{s_} with {} (f32):", e.batch, e.optimizer);
        let state = match e.state_tensors {
            0 => "no state".to_string(),
            1 => "1 tensor per parameter".to_string(),
            n => format!("{n} tensors per parameter"),
        };
        let rows = [
            ("parameters", e.parameter_bytes, format!("{} values", group(w + b))),
            ("parameter gradients", e.gradient_bytes, "one per parameter".into()),
            ("optimizer state", e.optimizer_bytes, format!("{}: {state}", e.optimizer)),
            ("buffers", e.buffer_bytes, "batch norm's running statistics".into()),
            (
                "activations (forward)",
                e.activation_bytes,
                "the input and every layer's output but a fused ReLU's, kept for the backward".into(),
            ),
            ("saved for backward", e.saved_bytes, "pooling indices, batch statistics, dropout masks".into()),
            ("activation gradients", e.activation_gradient_bytes, "one per activation, and residual scratch".into()),
        ];
        for (what, v, note) in rows {
            let _ = writeln!(s, "  {what:<22} {:>12}  {note}", bytes(v));
        }
        let _ = writeln!(s, "  {:<22} {:>12}  all of the above, held together for the whole run", "estimated peak", bytes(e.peak()));
        Ok(s)
    }
}

fn memory_of(g: &Graph<Cpu>, input: &[usize], batch: usize, optimizer: &Optimizer) -> Result<MemoryEstimate> {
    let b = batch as u64;
    // Saturating: a batch size near the integer limit gives huge figures, not wrapped ones.
    let numel = |s: &[usize]| s.iter().fold(1u64, |n, &d| n.saturating_mul(d as u64));
    let params: u64 = g.params.iter().map(|p| numel(&p.shape)).sum();
    let buffers: u64 = g.buffers.iter().map(|p| numel(&p.shape)).sum();
    // acts[0] is the input, acts[k + 1] node k's output (per sample).
    let acts: Vec<u64> = std::iter::once(numel(input)).chain(g.nodes.iter().map(|n| numel(&n.out_shape))).collect();
    let mut consumers = vec![0usize; acts.len()];
    let mut saved = 0u64;
    for n in &g.nodes {
        consumers[n.input] += 1;
        if let Some(j) = n.input2 {
            consumers[j] += 1;
        }
        if let Op::Layer(l) = &n.op {
            let x: Vec<usize> = std::iter::once(batch).chain(n.in_shape.iter().copied()).collect();
            saved = saved.saturating_add(l.saved(&x).iter().map(|s| numel(s)).fold(0u64, u64::saturating_add));
        }
    }
    let act: u64 = acts.iter().sum::<u64>().saturating_mul(b);
    let scratch: u64 = acts.iter().zip(&consumers).filter(|(_, &c)| c > 1).map(|(a, _)| 2 * a).sum::<u64>().saturating_mul(b);
    let state_tensors = optimizer.state_tensors();
    Ok(MemoryEstimate {
        batch,
        optimizer: optimizer.preset_name().to_string(),
        state_tensors,
        parameter_bytes: F32 * params,
        gradient_bytes: F32 * params,
        optimizer_bytes: F32 * params * state_tensors as u64,
        buffer_bytes: F32 * buffers,
        activation_bytes: act.saturating_mul(F32),
        saved_bytes: saved.saturating_mul(F32),
        activation_gradient_bytes: act.saturating_add(scratch).saturating_mul(F32),
    })
}

/// 1536 -> "1.5 KiB"
fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}
