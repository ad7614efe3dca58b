//! Model descriptions: data that says which built-in layers a model has, in order — what the
//! zoo and TOML model files produce and checkpoints store — and the summary table. A spec
//! turns into layer objects with [`ModelSpec::build`]; a model built from layers written in
//! Rust needs no spec.

use super::container::Sequential;
use super::layer::Layer;
use super::layers::{AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, GlobalAvgPool, Linear, MaxPool2d, Relu};
use super::model::Graph;
use crate::backend::Backend;
use crate::ops::{Conv2dSpec, PoolSpec};
use crate::{Cpu, Error, Result};

/// One built-in layer, as data. Shapes exclude the batch dimension.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)] // the fields are those of the layer structs in `nn::layers`
pub enum LayerSpec {
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
        body: Vec<LayerSpec>,
        shortcut: Vec<LayerSpec>,
    },
}

impl LayerSpec {
    /// This layer with its bias off (a convolution or linear layer that feeds batch norm, whose
    /// β takes the bias's place); other layers are returned as they are.
    pub fn without_bias(mut self) -> Self {
        if let LayerSpec::Conv2d { bias, .. } | LayerSpec::Linear { bias, .. } = &mut self {
            *bias = false;
        }
        self
    }

    /// A k x k convolution with the given stride and padding on both axes, bias on.
    pub fn conv(out: usize, k: usize, stride: usize, padding: usize) -> Self {
        LayerSpec::Conv2d {
            out,
            kernel: [k, k],
            stride: [stride, stride],
            padding: [padding, padding],
            dilation: [1, 1],
            groups: 1,
            bias: true,
        }
    }
    /// Batch norm with PyTorch's defaults.
    pub fn bn() -> Self {
        LayerSpec::BatchNorm2d { eps: 1e-5, momentum: 0.1 }
    }
    /// A k x k max pooling.
    pub fn max_pool(k: usize, stride: usize, padding: usize) -> Self {
        LayerSpec::MaxPool2d(PoolSpec { kernel: [k, k], stride: [stride, stride], padding: [padding, padding], count_include_pad: true })
    }
    /// A linear layer with bias.
    pub fn linear(out: usize) -> Self {
        LayerSpec::Linear { out, bias: true }
    }

    /// The layer's kind, as in model files.
    pub fn name(&self) -> &'static str {
        match self {
            LayerSpec::Conv2d { .. } => "conv2d",
            LayerSpec::BatchNorm2d { .. } => "batch_norm2d",
            LayerSpec::Relu => "relu",
            LayerSpec::MaxPool2d(_) => "max_pool2d",
            LayerSpec::AvgPool2d(_) => "avg_pool2d",
            LayerSpec::GlobalAvgPool => "global_avg_pool",
            LayerSpec::Dropout { .. } => "dropout",
            LayerSpec::Flatten => "flatten",
            LayerSpec::Linear { .. } => "linear",
            LayerSpec::Residual { .. } => "residual",
        }
    }

    /// A convolution's options.
    pub fn conv_spec(&self) -> Option<Conv2dSpec> {
        match *self {
            LayerSpec::Conv2d { stride, padding, dilation, groups, .. } => Some(Conv2dSpec { stride, padding, dilation, groups }),
            _ => None,
        }
    }
}

/// A named sequence of layers for inputs of shape [C, H, W].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelSpec {
    /// A name for messages and checkpoints (`default`, `resnet20`, a file's name).
    pub name: String,
    /// The layers, in order.
    pub layers: Vec<LayerSpec>,
}

/// One top-level layer's place in a model: what goes in and out, what it holds and costs
/// (a residual block counts everything inside it).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerInfo {
    /// Shape of one input sample.
    pub input: Vec<usize>,
    /// Shape of one output sample.
    pub output: Vec<usize>,
    /// Trained values in weights (everything but biases).
    pub weights: usize,
    /// Trained values in biases (and batch norm's beta).
    pub biases: usize,
    /// Multiply-accumulates per sample.
    pub macs: usize,
}

impl LayerSpec {
    /// The layer object this description stands for (residual blocks are built by
    /// [`ModelSpec::build`]).
    pub fn build<B: Backend>(&self) -> Result<Box<dyn Layer<B>>> {
        Ok(match self {
            LayerSpec::Conv2d { out, kernel, stride, padding, dilation, groups, bias } => {
                let mut c = Conv2d::new(*out, 1).kernel(kernel[0], kernel[1]).with_spec(Conv2dSpec {
                    stride: *stride,
                    padding: *padding,
                    dilation: *dilation,
                    groups: *groups,
                });
                c.bias = *bias;
                Box::new(c)
            }
            LayerSpec::BatchNorm2d { eps, momentum } => Box::new(BatchNorm2d { eps: *eps, momentum: *momentum }),
            LayerSpec::Relu => Box::new(Relu),
            LayerSpec::MaxPool2d(p) => Box::new(MaxPool2d(*p)),
            LayerSpec::AvgPool2d(p) => Box::new(AvgPool2d(*p)),
            LayerSpec::GlobalAvgPool => Box::new(GlobalAvgPool),
            LayerSpec::Dropout { p } => Box::new(Dropout::new(*p)),
            LayerSpec::Flatten => Box::new(Flatten),
            LayerSpec::Linear { out, bias } => {
                let l = Linear::new(*out);
                Box::new(if *bias { l } else { l.no_bias() })
            }
            LayerSpec::Residual { .. } => return Err(Error::Invalid("a residual block is not a single layer".into())),
        })
    }
}

impl ModelSpec {
    /// The layers this spec describes, as a [`Sequential`] on backend `B`.
    pub fn build<B: Backend>(&self) -> Result<Sequential<B>> {
        fn seq<B: Backend>(layers: &[LayerSpec]) -> Result<Sequential<B>> {
            let mut s = Sequential::new();
            for l in layers {
                s = match l {
                    LayerSpec::Residual { body, shortcut } => s.residual(seq(body)?, seq(shortcut)?),
                    l => s.push_boxed(l.build()?),
                };
            }
            Ok(s)
        }
        seq(&self.layers)
    }

    /// The model unrolled into nodes for inputs of shape `input` [C, H, W], with every
    /// parameter it declares; nothing is allocated. An error names the layer.
    pub fn graph(&self, input: &[usize]) -> Result<Graph<Cpu>> {
        Graph::compile(self.build::<Cpu>()?, input, &self.name)
    }

    /// Shapes, parameter counts and costs per top-level layer for one input of shape `input`
    /// [C, H, W]; a residual block counts everything inside it. An error names the layer.
    pub fn infer(&self, input: &[usize]) -> Result<Vec<LayerInfo>> {
        let g = self.graph(input)?;
        let mut out: Vec<LayerInfo> = Vec::with_capacity(self.layers.len());
        for node in &g.nodes {
            if out.len() <= node.top {
                out.push(LayerInfo { input: node.in_shape.clone(), output: Vec::new(), weights: 0, biases: 0, macs: 0 });
            }
            let info = &mut out[node.top];
            info.output = node.out_shape.clone();
            info.macs += node.macs();
            for p in &g.params[node.params.clone()] {
                let n: usize = p.shape.iter().product();
                if p.name.ends_with(".bias") {
                    info.biases += n;
                } else {
                    info.weights += n;
                }
            }
        }
        Ok(out)
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
