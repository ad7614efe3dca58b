#!/usr/bin/env python3
"""Writes the reference case files of kernels-tests/cases/ for `wgtrain verify --case`.

The expected values come from this file's own NumPy implementations, written independently
of wgtrain's Rust code, in float64, from PyTorch's documented definitions:
convolution as a sum of shifted slices (not im2col, not per-output loops), pooling with
PyTorch's divisor rules, batch norm with its running-statistics update, linear, ReLU,
cross-entropy with label smoothing and probability targets, and the torch.optim update rules
(foreach=False). Inputs are float32 values, so both sides start from identical numbers.

Usage: python3 tools/gen_cases.py [OUT_DIR]     (default: kernels-tests/cases; needs numpy)
Anyone can produce case files in this format with PyTorch instead; see README.md.
"""

import json
import os
import sys

import numpy as np

rng = np.random.default_rng(20261128)


def rand(*shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32).astype(np.float64)


def t(a):
    a = np.asarray(a, dtype=np.float64)
    return {"shape": list(a.shape), "data": [float(v) for v in a.ravel()]}


# ---- convolution ---------------------------------------------------------------------------

def conv_out(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def conv_tap_slices(x_pad, i, j, sh, sw, dh, dw, oh, ow):
    """The input values tap (i, j) meets at every output position: [N, C, OH, OW]."""
    return x_pad[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw]


def conv2d(x, w, b, stride, padding, dilation, groups, dy=None):
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    oh, ow = conv_out(h, kh, sh, ph, dh), conv_out(wd, kw, sw, pw, dw)
    kg = k // groups
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros((n, k, oh, ow))
    dxp, dw_ = np.zeros_like(xp), np.zeros_like(w)
    for g in range(groups):
        cs, ks = slice(g * cg, (g + 1) * cg), slice(g * kg, (g + 1) * kg)
        for i in range(kh):
            for j in range(kw):
                patch = conv_tap_slices(xp[:, cs], i, j, sh, sw, dh, dw, oh, ow)
                y[:, ks] += np.einsum("nchw,kc->nkhw", patch, w[ks, :, i, j])
                if dy is not None:
                    dw_[ks, :, i, j] += np.einsum("nkhw,nchw->kc", dy[:, ks], patch)
                    view = conv_tap_slices(dxp[:, cs], i, j, sh, sw, dh, dw, oh, ow)
                    view += np.einsum("nkhw,kc->nchw", dy[:, ks], w[ks, :, i, j])
    if b is not None:
        y += b[None, :, None, None]
    if dy is None:
        return y, None
    grads = {"grad_x": dxp[:, :, ph:ph + h, pw:pw + wd], "grad_weight": dw_}
    if b is not None:
        grads["grad_bias"] = dy.sum(axis=(0, 2, 3))
    return y, grads


def conv_case(name, x_shape, k, kernel, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, bias=True):
    x = rand(*x_shape)
    w = rand(k, x_shape[1] // groups, *kernel)
    b = rand(k) if bias else None
    oh = conv_out(x_shape[2], kernel[0], stride[0], padding[0], dilation[0])
    ow = conv_out(x_shape[3], kernel[1], stride[1], padding[1], dilation[1])
    dy = rand(x_shape[0], k, oh, ow)
    y, grads = conv2d(x, w, b, stride, padding, dilation, groups, dy)
    inputs = {"x": t(x), "weight": t(w), "grad_y": t(dy)}
    if bias:
        inputs["bias"] = t(b)
    outputs = {"y": t(y), **{key: t(v) for key, v in grads.items()}}
    params = {"stride": list(stride), "padding": list(padding), "dilation": list(dilation), "groups": groups}
    return name, {"op": "conv2d", "params": params, "inputs": inputs, "outputs": outputs, "dtype": "float64"}


# ---- pooling -------------------------------------------------------------------------------

def max_pool(x, kernel, stride, padding, dy):
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    y = np.zeros((n, c, oh, ow))
    dxp = np.zeros_like(xp)
    for a in range(oh):
        for b in range(ow):
            win = xp[:, :, a * sh:a * sh + kh, b * sw:b * sw + kw].reshape(n, c, -1)
            arg = win.argmax(axis=2)
            y[:, :, a, b] = win.max(axis=2)
            ii, jj = arg // kw + a * sh, arg % kw + b * sw
            for ni in range(n):
                for ci in range(c):
                    dxp[ni, ci, ii[ni, ci], jj[ni, ci]] += dy[ni, ci, a, b]
    return y, dxp[:, :, ph:ph + h, pw:pw + w]


def avg_pool(x, kernel, stride, padding, count_include_pad, dy):
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    y = np.zeros((n, c, oh, ow))
    dx = np.zeros_like(x)
    for a in range(oh):
        for b in range(ow):
            hs, ws = a * sh - ph, b * sw - pw
            he, we = min(hs + kh, h + ph), min(ws + kw, w + pw)
            pool_size = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            div = pool_size if count_include_pad else (he - hs) * (we - ws)
            y[:, :, a, b] = x[:, :, hs:he, ws:we].sum(axis=(2, 3)) / div
            dx[:, :, hs:he, ws:we] += (dy[:, :, a, b] / div)[:, :, None, None]
    return y, dx


def pool_case(name, op, x_shape, kernel, stride, padding, count_include_pad=True):
    x = rand(*x_shape)
    n, c, h, w = x_shape
    oh, ow = (h + 2 * padding[0] - kernel[0]) // stride[0] + 1, (w + 2 * padding[1] - kernel[1]) // stride[1] + 1
    dy = rand(n, c, oh, ow)
    params = {"kernel": list(kernel), "stride": list(stride), "padding": list(padding)}
    if op == "max_pool2d":
        y, dx = max_pool(x, kernel, stride, padding, dy)
    else:
        params["count_include_pad"] = count_include_pad
        y, dx = avg_pool(x, kernel, stride, padding, count_include_pad, dy)
    return name, {"op": op, "params": params, "inputs": {"x": t(x), "grad_y": t(dy)}, "outputs": {"y": t(y), "grad_x": t(dx)}, "dtype": "float64"}


def global_avg_case():
    x = rand(3, 5, 4, 6)
    dy = rand(3, 5, 1, 1)
    y = x.mean(axis=(2, 3), keepdims=True)
    dx = np.broadcast_to(dy / 24.0, x.shape)
    return "global_avg_pool2d", {"op": "global_avg_pool2d", "params": {}, "inputs": {"x": t(x), "grad_y": t(dy)}, "outputs": {"y": t(y), "grad_x": t(dx)}, "dtype": "float64"}


# ---- batch norm ------------------------------------------------------------------------------

def batch_norm_case(name, training):
    x = rand(4, 3, 5, 5) * np.array([1.0, 2.0, 0.5])[None, :, None, None] + np.array([0.3, -1.0, 2.0])[None, :, None, None]
    x = x.astype(np.float32).astype(np.float64)
    gamma, beta = rand(3, lo=0.5, hi=1.5), rand(3, lo=-0.5, hi=0.5)
    rm, rv = rand(3, lo=-0.2, hi=0.2), rand(3, lo=0.5, hi=1.5)
    momentum, eps = 0.1, 1e-5
    axes = (0, 2, 3)
    shape = (1, 3, 1, 1)
    inputs = {"x": t(x), "gamma": t(gamma), "beta": t(beta), "running_mean": t(rm), "running_var": t(rv)}
    if training:
        cnt = x.size / 3
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        xhat = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
        y = gamma.reshape(shape) * xhat + beta.reshape(shape)
        rm2 = (1 - momentum) * rm + momentum * mean
        rv2 = (1 - momentum) * rv + momentum * var * cnt / (cnt - 1)
        dy = rand(*x.shape)
        dbeta = dy.sum(axis=axes)
        dgamma = (dy * xhat).sum(axis=axes)
        dx = gamma.reshape(shape) / np.sqrt(var.reshape(shape) + eps) / cnt * (cnt * dy - dbeta.reshape(shape) - xhat * dgamma.reshape(shape))
        inputs["grad_y"] = t(dy)
        outputs = {"y": t(y), "running_mean": t(rm2), "running_var": t(rv2), "grad_x": t(dx), "grad_gamma": t(dgamma), "grad_beta": t(dbeta)}
    else:
        y = gamma.reshape(shape) * (x - rm.reshape(shape)) / np.sqrt(rv.reshape(shape) + eps) + beta.reshape(shape)
        outputs = {"y": t(y), "running_mean": t(rm), "running_var": t(rv)}
    params = {"training": training, "momentum": momentum, "eps": eps}
    return name, {"op": "batch_norm2d", "params": params, "inputs": inputs, "outputs": outputs, "dtype": "float64"}


# ---- linear, relu, cross-entropy -------------------------------------------------------------

def linear_case():
    x, w, b = rand(6, 9), rand(4, 9), rand(4)
    dy = rand(6, 4)
    outputs = {"y": t(x @ w.T + b), "grad_x": t(dy @ w), "grad_weight": t(dy.T @ x), "grad_bias": t(dy.sum(axis=0))}
    return "linear", {"op": "linear", "params": {}, "inputs": {"x": t(x), "weight": t(w), "bias": t(b), "grad_y": t(dy)}, "outputs": outputs, "dtype": "float64"}


def relu_case():
    x, dy = rand(2, 3, 4, 5), rand(2, 3, 4, 5)
    return "relu", {"op": "relu", "params": {}, "inputs": {"x": t(x), "grad_y": t(dy)}, "outputs": {"y": t(np.maximum(x, 0)), "grad_x": t(dy * (x > 0))}, "dtype": "float64"}


def cross_entropy_case(name, soft, smoothing):
    n, c = 5, 7
    z = rand(n, c, lo=-3, hi=3)
    if soft:
        q0 = rng.dirichlet(np.ones(c), size=n).astype(np.float32).astype(np.float64)
        target = {"target_probs": t(q0)}
    else:
        labels = rng.integers(0, c, size=n)
        q0 = np.eye(c)[labels]
        target = {"target": t(labels.astype(np.float64))}
    q = (1 - smoothing) * q0 + smoothing / c
    lse = np.log(np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True)) + z.max(axis=1, keepdims=True)
    logp = z - lse
    loss = -(q * logp).sum(axis=1).mean()
    grad = (np.exp(logp) * q.sum(axis=1, keepdims=True) - q) / n
    return name, {"op": "cross_entropy", "params": {"label_smoothing": smoothing}, "inputs": {"logits": t(z), **target}, "outputs": {"loss": t(np.array(loss)), "grad_logits": t(grad)}, "dtype": "float64"}


# ---- optimizers (torch.optim, foreach=False) -------------------------------------------------

def optimizer_case(name, opt_name, steps=4, **hp):
    n = 11
    p0 = rand(n)
    grads = rand(steps, n)
    p = p0.copy()
    lr = hp.get("lr")
    wd = hp.get("weight_decay", 0.0)
    out = []
    state = {}
    for step in range(1, steps + 1):
        g = grads[step - 1].copy()
        if opt_name == "adamw":
            p = p * (1 - lr * wd)
        elif wd:
            g = g + wd * p
        if opt_name == "sgd":
            mom, damp = hp.get("momentum", 0.0), hp.get("dampening", 0.0)
            if mom:
                buf = g.copy() if step == 1 else mom * state["buf"] + (1 - damp) * g
                state["buf"] = buf
                g = g + mom * buf if hp.get("nesterov", False) else buf
            p = p - lr * g
        elif opt_name == "adagrad":
            s = state.get("sum", np.full(n, hp.get("initial_accumulator_value", 0.0))) + g * g
            state["sum"] = s
            clr = lr / (1 + (step - 1) * hp.get("lr_decay", 0.0))
            p = p - clr * g / (np.sqrt(s) + hp.get("eps", 1e-10))
        elif opt_name == "adadelta":
            rho, eps = hp.get("rho", 0.9), hp.get("eps", 1e-6)
            sq = rho * state.get("sq", np.zeros(n)) + (1 - rho) * g * g
            acc = state.get("acc", np.zeros(n))
            delta = np.sqrt(acc + eps) / np.sqrt(sq + eps) * g
            state["sq"], state["acc"] = sq, rho * acc + (1 - rho) * delta * delta
            p = p - lr * delta
        elif opt_name == "rmsprop":
            alpha, eps, mom = hp.get("alpha", 0.99), hp.get("eps", 1e-8), hp.get("momentum", 0.0)
            sq = alpha * state.get("sq", np.zeros(n)) + (1 - alpha) * g * g
            state["sq"] = sq
            avg = np.sqrt(sq) + eps
            if mom:
                buf = mom * state.get("buf", np.zeros(n)) + g / avg
                state["buf"] = buf
                p = p - lr * buf
            else:
                p = p - lr * g / avg
        else:  # adam, adamw
            b1, b2 = hp.get("betas", (0.9, 0.999))
            eps = hp.get("eps", 1e-8)
            m = b1 * state.get("m", np.zeros(n)) + (1 - b1) * g
            v = b2 * state.get("v", np.zeros(n)) + (1 - b2) * g * g
            state["m"], state["v"] = m, v
            denom = np.sqrt(v) / np.sqrt(1 - b2 ** step) + eps
            p = p - lr / (1 - b1 ** step) * m / denom
        out.append(p.copy())
    params = {"name": opt_name, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in hp.items()}}
    return name, {"op": "optimizer", "params": params, "inputs": {"param": t(p0), "grads": t(grads)}, "outputs": {"params": t(np.array(out))}, "dtype": "float64"}


def optimizer_cases():
    return [
        optimizer_case("optimizer_sgd", "sgd", lr=0.1),
        optimizer_case("optimizer_sgd_momentum", "sgd", lr=0.1, momentum=0.9),
        optimizer_case("optimizer_sgd_nesterov_wd", "sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2),
        optimizer_case("optimizer_sgd_dampening", "sgd", lr=0.1, momentum=0.5, dampening=0.3),
        optimizer_case("optimizer_adagrad", "adagrad", lr=0.1, initial_accumulator_value=0.1, lr_decay=0.01, weight_decay=1e-3),
        optimizer_case("optimizer_adadelta", "adadelta", lr=1.0, rho=0.9, eps=1e-6, weight_decay=1e-2),
        optimizer_case("optimizer_rmsprop_momentum", "rmsprop", lr=0.01, alpha=0.99, eps=1e-8, momentum=0.9),
        optimizer_case("optimizer_adam", "adam", lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2),
        optimizer_case("optimizer_adamw", "adamw", lr=1e-2, betas=(0.8, 0.99), eps=1e-8, weight_decay=1e-2),
    ]


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "kernels-tests", "cases")
    os.makedirs(out_dir, exist_ok=True)
    cases = [
        conv_case("conv2d_3x3_pad1", (2, 3, 7, 7), 4, (3, 3), padding=(1, 1)),
        conv_case("conv2d_stride2_odd", (1, 2, 9, 8), 3, (3, 3), stride=(2, 2), padding=(1, 1)),
        conv_case("conv2d_7x7_stride2_pad3", (1, 3, 15, 15), 4, (7, 7), stride=(2, 2), padding=(3, 3), bias=False),
        conv_case("conv2d_depthwise", (2, 4, 6, 6), 4, (3, 3), padding=(1, 1), groups=4),
        conv_case("conv2d_grouped_dilated", (2, 4, 9, 9), 6, (3, 3), padding=(2, 2), dilation=(2, 2), groups=2),
        conv_case("conv2d_1x1", (2, 6, 5, 5), 3, (1, 1)),
        pool_case("max_pool2d_2x2", "max_pool2d", (2, 3, 6, 6), (2, 2), (2, 2), (0, 0)),
        pool_case("max_pool2d_3x3_stride2_pad1", "max_pool2d", (1, 2, 9, 7), (3, 3), (2, 2), (1, 1)),
        pool_case("avg_pool2d_pad_counted", "avg_pool2d", (2, 2, 7, 7), (3, 3), (2, 2), (1, 1), True),
        pool_case("avg_pool2d_pad_excluded", "avg_pool2d", (2, 2, 7, 7), (3, 3), (2, 2), (1, 1), False),
        global_avg_case(),
        batch_norm_case("batch_norm2d_train", True),
        batch_norm_case("batch_norm2d_eval", False),
        linear_case(),
        relu_case(),
        cross_entropy_case("cross_entropy_hard", False, 0.0),
        cross_entropy_case("cross_entropy_label_smoothing", False, 0.1),
        cross_entropy_case("cross_entropy_soft", True, 0.0),
    ]
    cases += optimizer_cases()
    for name, case in cases:
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump(case, f, separators=(",", ":"))
            f.write("\n")
    print(f"wrote {len(cases)} cases to {out_dir}")


if __name__ == "__main__":
    main()
