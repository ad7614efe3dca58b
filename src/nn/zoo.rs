//! The model zoo. Input channels and classes follow the data set.

use super::spec::{LayerSpec, ModelSpec};
use crate::{Error, Result};

/// Names `--model` accepts.
pub const NAMES: [&str; 5] = ["default", "lenet5", "vgg", "resnet20", "alexnet"];

/// The input a zoo model was designed for, [C, H, W]: what `summary` shows when no input is
/// given. (Every model takes other sizes too; `None` for names outside the zoo.)
pub fn natural_input(name: &str) -> Option<[usize; 3]> {
    match name {
        "default" | "default-cnn" | "lenet5" | "lenet" => Some([1, 28, 28]),
        "vgg" | "vgg-small" | "resnet20" | "resnet-20" => Some([3, 32, 32]),
        "alexnet" => Some([3, 227, 227]),
        _ => None,
    }
}

/// A zoo model for `classes` classes, or the TOML model file `name` (ending in .toml).
pub fn model(name: &str, classes: usize) -> Result<ModelSpec> {
    if classes == 0 || classes > crate::data::MAX_CLASSES {
        return Err(Error::Invalid(format!("model {name} for {classes} classes: expected 1 to {}", crate::data::MAX_CLASSES)));
    }
    if name.ends_with(".toml") {
        return super::toml_model::load(std::path::Path::new(name), classes);
    }
    let layers = match name {
        "default" | "default-cnn" => default_cnn(classes),
        "lenet5" | "lenet" => lenet5(classes),
        "vgg" | "vgg-small" => vgg_small(classes),
        "alexnet" => alexnet(classes),
        "resnet20" | "resnet-20" => resnet(3, classes),
        other => {
            return Err(Error::Invalid(format!("unknown model '{other}': expected one of {} or a .toml model file", NAMES.join(", "))))
        }
    };
    Ok(ModelSpec { name: name.to_string(), layers })
}

/// A convolution that feeds batch norm: no bias (BN's beta takes its place).
fn conv_bn(out: usize, k: usize, stride: usize, padding: usize) -> LayerSpec {
    LayerSpec::conv(out, k, stride, padding).without_bias()
}

/// conv 5x5 ->32 pad 2, BN, ReLU, maxpool 2; conv 3x3 32->64 pad 1, BN, ReLU, maxpool 2;
/// conv 1x1 64->32, ReLU; flatten; linear 128, ReLU, dropout 0.25; linear `classes`.
/// (The convolutions before batch norm have no bias: it would be cancelled by the mean.)
pub fn default_cnn(classes: usize) -> Vec<LayerSpec> {
    vec![
        conv_bn(32, 5, 1, 2),
        LayerSpec::bn(),
        LayerSpec::Relu,
        LayerSpec::max_pool(2, 2, 0),
        conv_bn(64, 3, 1, 1),
        LayerSpec::bn(),
        LayerSpec::Relu,
        LayerSpec::max_pool(2, 2, 0),
        LayerSpec::conv(32, 1, 1, 0),
        LayerSpec::Relu,
        LayerSpec::Flatten,
        LayerSpec::linear(128),
        LayerSpec::Relu,
        LayerSpec::Dropout { p: 0.25 },
        LayerSpec::linear(classes),
    ]
}

/// LeNet-5 (ReLU and max pooling, as commonly trained today) for 28x28 inputs: the first
/// convolution pads by 2 to get LeNet's 32x32.
pub fn lenet5(classes: usize) -> Vec<LayerSpec> {
    vec![
        LayerSpec::conv(6, 5, 1, 2),
        LayerSpec::Relu,
        LayerSpec::max_pool(2, 2, 0),
        LayerSpec::conv(16, 5, 1, 0),
        LayerSpec::Relu,
        LayerSpec::max_pool(2, 2, 0),
        LayerSpec::Flatten,
        LayerSpec::linear(120),
        LayerSpec::Relu,
        LayerSpec::linear(84),
        LayerSpec::Relu,
        LayerSpec::linear(classes),
    ]
}

/// A small VGG-style net: blocks of two 3x3 convolutions with batch norm, then pooling.
pub fn vgg_small(classes: usize) -> Vec<LayerSpec> {
    let mut l = Vec::new();
    for width in [32, 64, 128] {
        for _ in 0..2 {
            l.extend([conv_bn(width, 3, 1, 1), LayerSpec::bn(), LayerSpec::Relu]);
        }
        l.push(LayerSpec::max_pool(2, 2, 0));
    }
    l.extend([LayerSpec::GlobalAvgPool, LayerSpec::Dropout { p: 0.3 }, LayerSpec::linear(classes)]);
    l
}

/// AlexNet in its original two-tower form (groups = 2 in conv2, conv4, conv5), for 3x227x227.
pub fn alexnet(classes: usize) -> Vec<LayerSpec> {
    let conv = |out, k, s, p, groups| LayerSpec::Conv2d {
        out,
        kernel: [k, k],
        stride: [s, s],
        padding: [p, p],
        dilation: [1, 1],
        groups,
        bias: true,
    };
    vec![
        conv(96, 11, 4, 0, 1),
        LayerSpec::Relu,
        LayerSpec::max_pool(3, 2, 0),
        conv(256, 5, 1, 2, 2),
        LayerSpec::Relu,
        LayerSpec::max_pool(3, 2, 0),
        conv(384, 3, 1, 1, 1),
        LayerSpec::Relu,
        conv(384, 3, 1, 1, 2),
        LayerSpec::Relu,
        conv(256, 3, 1, 1, 2),
        LayerSpec::Relu,
        LayerSpec::max_pool(3, 2, 0),
        LayerSpec::Flatten,
        LayerSpec::Dropout { p: 0.5 },
        LayerSpec::linear(4096),
        LayerSpec::Relu,
        LayerSpec::Dropout { p: 0.5 },
        LayerSpec::linear(4096),
        LayerSpec::Relu,
        LayerSpec::linear(classes),
    ]
}

/// A basic residual block: relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)), the shortcut a
/// 1x1 convolution with batch norm when the shape changes (He et al., option B).
pub fn basic_block(in_ch: usize, out: usize, stride: usize) -> LayerSpec {
    let body = vec![conv_bn(out, 3, stride, 1), LayerSpec::bn(), LayerSpec::Relu, conv_bn(out, 3, 1, 1), LayerSpec::bn()];
    let shortcut = if stride != 1 || in_ch != out { vec![conv_bn(out, 1, stride, 0), LayerSpec::bn()] } else { Vec::new() };
    LayerSpec::Residual { body, shortcut }
}

/// The CIFAR ResNet of He et al. with 6n + 2 layers (n = 3: ResNet-20): a 3x3 convolution to 16
/// channels, three stages of n blocks at 16, 32 and 64 channels (the later stages start with
/// stride 2), global average pooling and a linear layer.
pub fn resnet(n: usize, classes: usize) -> Vec<LayerSpec> {
    let mut l = vec![conv_bn(16, 3, 1, 1), LayerSpec::bn(), LayerSpec::Relu];
    let mut ch = 16;
    for (stage, width) in [16, 32, 64].into_iter().enumerate() {
        for b in 0..n {
            let stride = if stage > 0 && b == 0 { 2 } else { 1 };
            l.push(basic_block(ch, width, stride));
            ch = width;
        }
    }
    l.extend([LayerSpec::GlobalAvgPool, LayerSpec::linear(classes)]);
    l
}
