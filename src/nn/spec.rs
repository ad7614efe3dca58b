//! Model descriptions: a sequence of layers, the shapes they produce, their parameters, and the
//! model zoo. Nothing here touches a device; `nn::model` turns a spec into buffers and kernels.

use std::fmt::Write as _;

use crate::ops::{Conv2dSpec, PoolSpec};
use crate::{Error, Result};

/// One layer. Shapes exclude the batch dimension.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Conv2d { out: usize, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2], dilation: [usize; 2], groups: usize, bias: bool },
    BatchNorm2d { eps: f32, momentum: f32 },
    Relu,
    MaxPool2d(PoolSpec),
    AvgPool2d(PoolSpec),
    GlobalAvgPool,
    Dropout { p: f32 },
    Flatten,
    Linear { out: usize, bias: bool },
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

fn err(model: &str, i: usize, layer: &Layer, msg: String) -> Error {
    Error::Invalid(format!("model {model}: layer {i} ({}): {msg}", layer.name()))
}

impl ModelSpec {
    /// Shapes, parameter counts and costs per layer for one input of shape `input` [C, H, W];
    /// an error names the layer that does not fit.
    pub fn infer(&self, input: &[usize]) -> Result<Vec<LayerInfo>> {
        let mut shape = input.to_vec();
        let mut out = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let e = |msg: String| err(&self.name, i, layer, msg);
            let (next, weights, biases, macs) = match layer {
                Layer::Conv2d { out: k, kernel, bias, .. } => {
                    let [c, h, w] = shape[..] else { return Err(e(format!("needs a [C, H, W] input, got {shape:?}"))) };
                    let spec = layer.conv_spec().unwrap_or_default();
                    let d = crate::ops::conv2d_dims("conv2d", &[1, c, h, w], &[*k, c / spec.groups.max(1), kernel[0], kernel[1]], spec)
                        .map_err(|x| e(x.to_string()))?;
                    let weights = k * d.cg() * kernel[0] * kernel[1];
                    (vec![*k, d.oh, d.ow], weights, if *bias { *k } else { 0 }, d.macs())
                }
                Layer::BatchNorm2d { .. } => {
                    if shape.is_empty() {
                        return Err(e("needs a [C, ...] input".into()));
                    }
                    (shape.clone(), shape[0], shape[0], 0)
                }
                Layer::Relu | Layer::Dropout { .. } => (shape.clone(), 0, 0, 0),
                Layer::MaxPool2d(p) | Layer::AvgPool2d(p) => {
                    let [c, h, w] = shape[..] else { return Err(e(format!("needs a [C, H, W] input, got {shape:?}"))) };
                    let d = crate::ops::pool_dims("pool", &[1, c, h, w], *p).map_err(|x| e(x.to_string()))?;
                    (vec![c, d.oh, d.ow], 0, 0, 0)
                }
                Layer::GlobalAvgPool => {
                    let [c, _, _] = shape[..] else { return Err(e(format!("needs a [C, H, W] input, got {shape:?}"))) };
                    (vec![c], 0, 0, 0)
                }
                Layer::Flatten => (vec![shape.iter().product()], 0, 0, 0),
                Layer::Linear { out: o, bias } => {
                    let [n_in] = shape[..] else { return Err(e(format!("needs a flat input (add a flatten layer), got {shape:?}"))) };
                    (vec![*o], o * n_in, if *bias { *o } else { 0 }, o * n_in)
                }
            };
            out.push(LayerInfo { input: shape.clone(), output: next.clone(), weights, biases, macs });
            shape = next;
        }
        Ok(out)
    }

    /// The trained tensors, in order, named as a PyTorch state dict would name them.
    pub fn params(&self, input: &[usize]) -> Result<Vec<ParamInfo>> {
        let infos = self.infer(input)?;
        let mut out = Vec::new();
        for (i, (layer, info)) in self.layers.iter().zip(&infos).enumerate() {
            let mut push =
                |kind: &'static str, shape: Vec<usize>| out.push(ParamInfo { name: format!("layers.{i}.{kind}"), shape, layer: i, kind });
            match layer {
                Layer::Conv2d { out: k, kernel, groups, bias, .. } => {
                    push("weight", vec![*k, info.input[0] / groups, kernel[0], kernel[1]]);
                    if *bias {
                        push("bias", vec![*k]);
                    }
                }
                Layer::BatchNorm2d { .. } => {
                    push("weight", vec![info.input[0]]);
                    push("bias", vec![info.input[0]]);
                }
                Layer::Linear { out: o, bias } => {
                    push("weight", vec![*o, info.input[0]]);
                    if *bias {
                        push("bias", vec![*o]);
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Whether the convolution or linear layer `i` feeds a ReLU (through batch norm, pooling
    /// or dropout, before any other weighted layer): then it gets He initialisation.
    pub fn feeds_relu(&self, i: usize) -> bool {
        for l in &self.layers[i + 1..] {
            match l {
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
