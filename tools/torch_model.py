"""The wgtrain model zoo in PyTorch, with the parameter names wgtrain uses.

`build(name, in_channels, classes, input_hw)` returns a `torch.nn.Module` whose
`state_dict()` has exactly the names and shapes of `wgtrain export` for the same model
(`layers.0.weight`, `layers.1.running_mean`, `layers.3.body.0.weight`), so weights go both ways:

    import safetensors.torch
    from torch_model import build
    model = build("lenet5", 1, 10, (28, 28))
    model.load_state_dict(safetensors.torch.load_file("weights.safetensors"))
    model.eval()  # batch norm's running statistics, dropout off: what wgtrain's eval does
    # inputs: pixels in [0, 1], normalised per channel with the file's metadata 'mean'/'std'

and `safetensors.torch.save_file(model.state_dict(), "w.safetensors")` gives a file for
`wgtrain train --init-from` / `wgtrain eval --weights`.

Mirrors src/nn/zoo.rs layer by layer (order, padding, bias flags, the residual shortcut,
flatten order): keep the two in step. Layers without parameters (ReLU, pooling, dropout,
flatten) still take an index in `layers`, as in wgtrain.
"""

import torch
from torch import nn

NAMES = ["default", "lenet5", "vgg", "resnet20", "alexnet"]

# The inputs each model was designed for, (C, H, W): src/nn/zoo.rs natural_input.
NATURAL_INPUT = {
    "default": (1, 28, 28),
    "lenet5": (1, 28, 28),
    "vgg": (3, 32, 32),
    "resnet20": (3, 32, 32),
    "alexnet": (3, 227, 227),
}


# Layer descriptions, as in src/nn/spec.rs (LayerSpec): tuples turned into modules by _make.
def conv(out, k, stride=1, padding=0, groups=1, bias=True):
    return ("conv", out, k, stride, padding, groups, bias)


def conv_bn(out, k, stride, padding):
    """A convolution that feeds batch norm: no bias (zoo.rs conv_bn)."""
    return conv(out, k, stride, padding, bias=False)


BN = ("bn",)
RELU = ("relu",)
FLATTEN = ("flatten",)
GAP = ("gap",)


def max_pool(k, stride, padding=0):
    return ("maxpool", k, stride, padding)


def dropout(p):
    return ("dropout", p)


def linear(out):
    return ("linear", out)


def residual(body, shortcut):
    return ("residual", body, shortcut)


def default_cnn(classes):
    return [
        conv_bn(32, 5, 1, 2), BN, RELU, max_pool(2, 2),
        conv_bn(64, 3, 1, 1), BN, RELU, max_pool(2, 2),
        conv(32, 1), RELU,
        FLATTEN, linear(128), RELU, dropout(0.25), linear(classes),
    ]


def lenet5(classes):
    return [
        conv(6, 5, 1, 2), RELU, max_pool(2, 2),
        conv(16, 5), RELU, max_pool(2, 2),
        FLATTEN, linear(120), RELU, linear(84), RELU, linear(classes),
    ]


def vgg_small(classes):
    layers = []
    for width in [32, 64, 128]:
        for _ in range(2):
            layers += [conv_bn(width, 3, 1, 1), BN, RELU]
        layers.append(max_pool(2, 2))
    return layers + [GAP, dropout(0.3), linear(classes)]


def alexnet(classes):
    return [
        conv(96, 11, 4, 0), RELU, max_pool(3, 2),
        conv(256, 5, 1, 2, groups=2), RELU, max_pool(3, 2),
        conv(384, 3, 1, 1), RELU,
        conv(384, 3, 1, 1, groups=2), RELU,
        conv(256, 3, 1, 1, groups=2), RELU, max_pool(3, 2),
        FLATTEN, dropout(0.5), linear(4096), RELU, dropout(0.5), linear(4096), RELU, linear(classes),
    ]


def basic_block(in_ch, out, stride):
    body = [conv_bn(out, 3, stride, 1), BN, RELU, conv_bn(out, 3, 1, 1), BN]
    shortcut = [conv_bn(out, 1, stride, 0), BN] if stride != 1 or in_ch != out else []
    return residual(body, shortcut)


def resnet(n, classes):
    layers = [conv_bn(16, 3, 1, 1), BN, RELU]
    ch = 16
    for stage, width in enumerate([16, 32, 64]):
        for b in range(n):
            stride = 2 if stage > 0 and b == 0 else 1
            layers.append(basic_block(ch, width, stride))
            ch = width
    return layers + [GAP, linear(classes)]


class GlobalAvgPool(nn.Module):
    """The mean of each channel: [N, C, H, W] -> [N, C] (wgtrain's global_avg_pool)."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


class Residual(nn.Module):
    """y = relu(body(x) + shortcut(x)); an empty shortcut is the identity."""

    def __init__(self, body, shortcut):
        super().__init__()
        self.body = body
        self.shortcut = shortcut
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


def _make(specs, shape):
    """An nn.Sequential of `specs` for inputs of `shape` (C, H, W); returns it and its output shape."""
    mods = []
    for s in specs:
        kind = s[0]
        if kind == "conv":
            _, out, k, stride, padding, groups, bias = s
            mods.append(nn.Conv2d(shape[0], out, k, stride=stride, padding=padding, groups=groups, bias=bias))
        elif kind == "bn":
            mods.append(nn.BatchNorm2d(shape[0], eps=1e-5, momentum=0.1))
        elif kind == "relu":
            mods.append(nn.ReLU())
        elif kind == "maxpool":
            _, k, stride, padding = s
            mods.append(nn.MaxPool2d(k, stride=stride, padding=padding))
        elif kind == "dropout":
            mods.append(nn.Dropout(s[1]))
        elif kind == "flatten":
            mods.append(nn.Flatten())
        elif kind == "gap":
            mods.append(GlobalAvgPool())
        elif kind == "linear":
            n_in = 1
            for d in shape:
                n_in *= d
            mods.append(nn.Linear(n_in, s[1]))
        elif kind == "residual":
            body, out = _make(s[1], shape)
            shortcut, _ = _make(s[2], shape)
            mods.append(Residual(body, shortcut))
            shape = out
            continue
        else:
            raise ValueError(f"unknown layer {kind}")
        shape = _out_shape(mods[-1], shape)
    return nn.Sequential(*mods), shape


def _out_shape(module, shape):
    with torch.no_grad():
        was = module.training
        module.eval()
        y = module(torch.zeros(1, *shape))
        module.train(was)
    return tuple(y.shape[1:])


class ZooModel(nn.Module):
    """A zoo model: its layers in `self.layers` (so names are `layers.N...`, as in wgtrain)."""

    def __init__(self, name, layers):
        super().__init__()
        self.name = name
        self.layers = layers

    def forward(self, x):
        return self.layers(x)


def build(name, in_channels, classes, input_hw):
    """The zoo model `name` for inputs of in_channels x input_hw[0] x input_hw[1] and `classes` outputs."""
    builders = {"default": default_cnn, "default-cnn": default_cnn, "lenet5": lenet5, "lenet": lenet5,
                "vgg": vgg_small, "vgg-small": vgg_small, "alexnet": alexnet,
                "resnet20": lambda c: resnet(3, c), "resnet-20": lambda c: resnet(3, c)}
    if name not in builders:
        raise ValueError(f"unknown model {name!r}: expected one of {', '.join(NAMES)}")
    layers, _ = _make(builders[name](classes), (in_channels, input_hw[0], input_hw[1]))
    return ZooModel(name, layers)
