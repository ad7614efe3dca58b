//! Model descriptions: a sequence of layers, the shapes they produce, their parameters, and the
//! model zoo. Nothing here touches a device; `nn::model` turns a spec into buffers and kernels.

use std::fmt::Write as _;

use crate::ops::{Conv2dSpec, PoolSpec};
use crate::{Error, Result};

/// One layer. Shapes exclude the batch dimension.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Conv2d {
        out: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
        bias: bool,
    },
    BatchNorm2d {
        eps: f32,
        momentum: f32,
    },
    Relu,
    MaxPool2d(PoolSpec),
    AvgPool2d(PoolSpec),
    GlobalAvgPool,
    Dropout {
        p: f32,
    },
    Flatten,
    Linear {
        out: usize,
        bias: bool,
    },
    /// A residual block: y = relu(body(x) + shortcut(x)); an empty shortcut is the identity.
    Residual {
        body: Vec<Layer>,
        shortcut: Vec<Layer>,
    },
    /// The sum inside a residual block (made by the model from `Residual`, not written by users).
    Add,
}

impl Layer {
    /// A k x k convolution with stride 1, "same" padding when `pad`, bias on.
    pub fn conv(out: usize, k: usize, stride: usize, padding: usize) -> Self {
        Layer::Conv2d {
            out,
            kernel: [k, k],
            stride: [stride, stride],
            padding: [padding, padding],
            dilation: [1, 1],
            groups: 1,
            bias: true,
        }
    }
    pub fn bn() -> Self {
        Layer::BatchNorm2d { eps: 1e-5, momentum: 0.1 }
    }
    pub fn max_pool(k: usize, stride: usize, padding: usize) -> Self {
        Layer::MaxPool2d(PoolSpec { kernel: [k, k], stride: [stride, stride], padding: [padding, padding], count_include_pad: true })
    }
    pub fn linear(out: usize) -> Self {
        Layer::Linear { out, bias: true }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Layer::Conv2d { .. } => "conv2d",
            Layer::BatchNorm2d { .. } => "batch_norm2d",
            Layer::Relu => "relu",
            Layer::MaxPool2d(_) => "max_pool2d",
            Layer::AvgPool2d(_) => "avg_pool2d",
            Layer::GlobalAvgPool => "global_avg_pool",
            Layer::Dropout { .. } => "dropout",
            Layer::Flatten => "flatten",
            Layer::Linear { .. } => "linear",
            Layer::Residual { .. } => "residual",
            Layer::Add => "add",
        }
    }

    pub fn conv_spec(&self) -> Option<Conv2dSpec> {
        match *self {
            Layer::Conv2d { stride, padding, dilation, groups, .. } => Some(Conv2dSpec { stride, padding, dilation, groups }),
            _ => None,
        }
    }
}

/// A named sequence of layers for inputs of shape [C, H, W].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelSpec {
    pub name: String,
    pub layers: Vec<Layer>,
}

/// A trained tensor of a layer (weights and biases; batch norm's gamma and beta).
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    /// State-dict name, e.g. `layers.0.weight`.
    pub name: String,
    pub shape: Vec<usize>,
    /// Index of the node (see `ModelSpec::nodes`) it belongs to.
    pub layer: usize,
    /// "weight" or "bias".
    pub kind: &'static str,
}

/// One layer's place in a model: what goes in and out, what it holds and costs.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerInfo {
    pub input: Vec<usize>,
    pub output: Vec<usize>,
    pub weights: usize,
    pub biases: usize,
    /// Multiply-accumulates per sample.
    pub macs: usize,
}

/// One step of a model as it runs: a layer (or the sum of a residual block) reading activation
/// `input` (0 is the model's input, k + 1 the output of node k) and, for `Add`, `input2`.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// State-dict prefix, e.g. `layers.3.body.0`.
    pub name: String,
    pub layer: Layer,
    pub input: usize,
    pub input2: Option<usize>,
    pub info: LayerInfo,
}

/// Output shape, weights, biases and multiply-accumulates of a layer that is not a block.
fn primitive(layer: &Layer, shape: &[usize]) -> std::result::Result<(Vec<usize>, usize, usize, usize), String> {
    let chw = || -> std::result::Result<[usize; 3], String> {
        match *shape {
            [c, h, w] => Ok([c, h, w]),
            _ => Err(format!("needs a [C, H, W] input, got {shape:?}")),
        }
    };
    Ok(match layer {
        Layer::Conv2d { out: k, kernel, bias, .. } => {
            let [c, h, w] = chw()?;
            let spec = layer.conv_spec().unwrap_or_default();
            let d = crate::ops::conv2d_dims("conv2d", &[1, c, h, w], &[*k, c / spec.groups.max(1), kernel[0], kernel[1]], spec)
                .map_err(|x| x.to_string())?;
            (vec![*k, d.oh, d.ow], k * d.cg() * kernel[0] * kernel[1], if *bias { *k } else { 0 }, d.macs())
        }
        Layer::BatchNorm2d { .. } => {
            if shape.is_empty() {
                return Err("needs a [C, ...] input".into());
            }
            (shape.to_vec(), shape[0], shape[0], 0)
        }
        Layer::Relu | Layer::Dropout { .. } | Layer::Add => (shape.to_vec(), 0, 0, 0),
        Layer::MaxPool2d(p) | Layer::AvgPool2d(p) => {
            let [c, h, w] = chw()?;
            let d = crate::ops::pool_dims("pool", &[1, c, h, w], *p).map_err(|x| x.to_string())?;
            (vec![c, d.oh, d.ow], 0, 0, 0)
        }
        Layer::GlobalAvgPool => (vec![chw()?[0]], 0, 0, 0),
        Layer::Flatten => (vec![shape.iter().product()], 0, 0, 0),
        Layer::Linear { out: o, bias } => {
            let [n_in] = shape[..] else { return Err(format!("needs a flat input (add a flatten layer), got {shape:?}")) };
            (vec![*o], o * n_in, if *bias { *o } else { 0 }, o * n_in)
        }
        Layer::Residual { .. } => return Err("a residual block is not a single layer".into()),
    })
}

impl ModelSpec {
    /// The model as it runs: its layers with residual blocks unrolled into their layers, a sum
    /// and a ReLU, in an order where every node comes after its inputs.
    pub fn nodes(&self, input: &[usize]) -> Result<Vec<Node>> {
        let mut nodes = Vec::new();
        self.flatten(&self.layers, "layers", 0, input.to_vec(), &mut nodes)?;
        Ok(nodes)
    }

    fn flatten(
        &self,
        layers: &[Layer],
        prefix: &str,
        mut cur: usize,
        mut shape: Vec<usize>,
        nodes: &mut Vec<Node>,
    ) -> Result<(usize, Vec<usize>)> {
        for (j, layer) in layers.iter().enumerate() {
            (cur, shape) = self.flatten_layer(layer, &format!("{prefix}.{j}"), cur, shape, nodes)?;
        }
        Ok((cur, shape))
    }

    fn flatten_layer(
        &self,
        layer: &Layer,
        name: &str,
        cur: usize,
        shape: Vec<usize>,
        nodes: &mut Vec<Node>,
    ) -> Result<(usize, Vec<usize>)> {
        if let Layer::Residual { body, shortcut } = layer {
            let (b, bs) = self.flatten(body, &format!("{name}.body"), cur, shape.clone(), nodes)?;
            let (s, ss) =
                if shortcut.is_empty() { (cur, shape) } else { self.flatten(shortcut, &format!("{name}.shortcut"), cur, shape, nodes)? };
            if bs != ss {
                return Err(Error::Invalid(format!(
                    "model {}: {name} (residual): the body gives {bs:?} but the shortcut {ss:?}",
                    self.name
                )));
            }
            let info = LayerInfo { input: bs.clone(), output: bs.clone(), weights: 0, biases: 0, macs: 0 };
            nodes.push(Node { name: format!("{name}.add"), layer: Layer::Add, input: b, input2: Some(s), info: info.clone() });
            nodes.push(Node { name: format!("{name}.relu"), layer: Layer::Relu, input: nodes.len(), input2: None, info });
            return Ok((nodes.len(), bs));
        }
        let (out, weights, biases, macs) =
            primitive(layer, &shape).map_err(|msg| Error::Invalid(format!("model {}: {name} ({}): {msg}", self.name, layer.name())))?;
        let info = LayerInfo { input: shape, output: out.clone(), weights, biases, macs };
        nodes.push(Node { name: name.to_string(), layer: layer.clone(), input: cur, input2: None, info });
        Ok((nodes.len(), out))
    }

    /// Shapes, parameter counts and costs per (top-level) layer for one input of shape `input`
    /// [C, H, W]; a residual block counts everything inside it. An error names the layer.
    pub fn infer(&self, input: &[usize]) -> Result<Vec<LayerInfo>> {
        let mut shape = input.to_vec();
        let mut out = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let mut inner = Vec::new();
            let (_, next) = self.flatten_layer(layer, &format!("layers.{i}"), 0, shape.clone(), &mut inner)?;
            let sum = |f: fn(&LayerInfo) -> usize| inner.iter().map(|n| f(&n.info)).sum::<usize>();
            out.push(LayerInfo {
                input: shape.clone(),
                output: next.clone(),
                weights: sum(|i| i.weights),
                biases: sum(|i| i.biases),
                macs: sum(|i| i.macs),
            });
            shape = next;
        }
        Ok(out)
    }

    /// The trained tensors, in node order, named as a PyTorch state dict would name them.
    pub fn params(&self, input: &[usize]) -> Result<Vec<ParamInfo>> {
        let mut out = Vec::new();
        for (k, node) in self.nodes(input)?.iter().enumerate() {
            let mut push = |kind: &'static str, shape: Vec<usize>| {
                out.push(ParamInfo { name: format!("{}.{kind}", node.name), shape, layer: k, kind })
            };
            match &node.layer {
                Layer::Conv2d { out: o, kernel, groups, bias, .. } => {
                    push("weight", vec![*o, node.info.input[0] / groups, kernel[0], kernel[1]]);
                    if *bias {
                        push("bias", vec![*o]);
                    }
                }
                Layer::BatchNorm2d { .. } => {
                    push("weight", vec![node.info.input[0]]);
                    push("bias", vec![node.info.input[0]]);
                }
                Layer::Linear { out: o, bias } => {
                    push("weight", vec![*o, node.info.input[0]]);
                    if *bias {
                        push("bias", vec![*o]);
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Whether node `k` (a convolution or linear layer) feeds a ReLU through batch norm,
    /// pooling, dropout or a residual sum, before any other weighted layer: then it gets He
    /// initialisation.
    pub fn feeds_relu(nodes: &[Node], k: usize) -> bool {
        for n in &nodes[k + 1..] {
            match n.layer {
                Layer::Relu => return true,
                Layer::Conv2d { .. } | Layer::Linear { .. } => return false,
                _ => {}
            }
        }
        false
    }

    /// The table of `wgtrain summary`.
    pub fn summary(&self, input: &[usize]) -> Result<String> {
        let infos = self.infer(input)?;
        let mut s = String::new();
        let _ = writeln!(s, "model {} for input {:?}", self.name, input);
        let _ = writeln!(
            s,
            "{:<4} {:<16} {:<16} {:>12} {:>10} {:>12} {:>14} {:>12}",
            "#", "layer", "output", "weights", "biases", "parameters", "MACs", "act. memory"
        );
        let (mut w, mut b, mut m, mut a) = (0, 0, 0, 0);
        for (i, (layer, info)) in self.layers.iter().zip(&infos).enumerate() {
            let act = info.output.iter().product::<usize>() * 4;
            let _ = writeln!(
                s,
                "{:<4} {:<16} {:<16} {:>12} {:>10} {:>12} {:>14} {:>12}",
                i,
                layer.name(),
                format!("{:?}", info.output),
                group(info.weights),
                group(info.biases),
                group(info.weights + info.biases),
                group(info.macs),
                bytes(act)
            );
            w += info.weights;
            b += info.biases;
            m += info.macs;
            a += act;
        }
        let _ = writeln!(
            s,
            "{:<4} {:<16} {:<16} {:>12} {:>10} {:>12} {:>14} {:>12}",
            "",
            "total",
            "",
            group(w),
            group(b),
            group(w + b),
            group(m),
            bytes(a)
        );
        let _ = writeln!(s, "(per sample; activation memory counts each layer's output once, in f32)");
        Ok(s)
    }
}

/// 1234567 -> "1,234,567"
pub fn group(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}
