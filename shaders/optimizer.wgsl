// optimizer — one fused update step over the whole model's flat parameter arena: one dispatch
// per step, whatever the number of tensors. Rules and defaults are PyTorch's torch.optim
// (foreach=False, maximize=False); g below is the gradient after coupled weight decay,
// g = grad + weight_decay * p, except for AdamW. t is the 1-based step.
//
//   sgd       buf = g (t = 1) | momentum*buf + (1-dampening)*g       (only with momentum)
//             g = g + momentum*buf (Nesterov) | buf;        p -= lr*g
//   adagrad   sum += g^2;                                    p -= clr*g/(sqrt(sum)+eps),
//             clr = lr/(1+(t-1)*lr_decay)
//   adadelta  sq = rho*sq + (1-rho)*g^2;  d = sqrt(acc+eps)/sqrt(sq+eps)*g
//             acc = rho*acc + (1-rho)*d^2;                   p -= lr*d
//   rmsprop   sq = alpha*sq + (1-alpha)*g^2;  avg = sqrt(sq)+eps
//             buf = momentum*buf + g/avg, p -= lr*buf (momentum) | p -= lr*g/avg
//   adam      (adamw: p *= 1 - lr*weight_decay first, no coupled decay)
//             m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
//             p -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps),  bc_i = 1 - b_i^t
//
// State: s1 = buf | sum | sq | sq | m;   s2 = - | - | acc | buf | v.
// Bias corrections and clr are computed once per step on the host (src/optim.rs) so both
// backends use the same f32 values. Same 2D layout as elementwise.wgsl.
// Host side: src/gpu/optimizer.rs. CPU twin: src/cpu/optimizer.rs.

struct OptimizerParams {
    n: u32,
    row_stride: u32,
    first_step: u32,
    nesterov: u32,
    lr: f32,
    weight_decay: f32,
    momentum: f32,
    dampening: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    bias_correction1: f32,
    bias_correction2_sqrt: f32,
    decay: f32, // adadelta's rho, rmsprop's alpha
    adagrad_lr: f32,
    decoupled: u32,
}

@group(0) @binding(0) var<uniform> p: OptimizerParams;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> s1: array<f32>;
@group(0) @binding(4) var<storage, read_write> s2: array<f32>;

fn index(gid: vec3<u32>) -> u32 {
    return gid.y * p.row_stride + gid.x;
}

// The gradient with coupled L2 weight decay.
fn decayed_grad(i: u32) -> f32 {
    var g = grad[i];
    if (p.decoupled == 0u && p.weight_decay != 0.0) {
        g = fma(p.weight_decay, param[i], g);
    }
    return g;
}

@compute @workgroup_size(256, 1, 1)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i >= p.n) {
        return;
    }
    var g = decayed_grad(i);
    if (p.momentum != 0.0) {
        var buf = g;
        if (p.first_step == 0u) {
            buf = p.momentum * s1[i] + (1.0 - p.dampening) * g;
        }
        s1[i] = buf;
        g = select(buf, g + p.momentum * buf, p.nesterov != 0u);
    }
    param[i] -= p.lr * g;
}

@compute @workgroup_size(256, 1, 1)
fn adagrad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i >= p.n) {
        return;
    }
    let g = decayed_grad(i);
    let sum = s1[i] + g * g;
    s1[i] = sum;
    param[i] -= p.adagrad_lr * g / (sqrt(sum) + p.eps);
}

@compute @workgroup_size(256, 1, 1)
fn adadelta(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i >= p.n) {
        return;
    }
    let g = decayed_grad(i);
    let rho = p.decay;
    let sq = rho * s1[i] + (1.0 - rho) * g * g;
    s1[i] = sq;
    let delta = sqrt(s2[i] + p.eps) / sqrt(sq + p.eps) * g;
    s2[i] = rho * s2[i] + (1.0 - rho) * delta * delta;
    param[i] -= p.lr * delta;
}

@compute @workgroup_size(256, 1, 1)
fn rmsprop(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i >= p.n) {
        return;
    }
    let g = decayed_grad(i);
    let alpha = p.decay;
    let sq = alpha * s1[i] + (1.0 - alpha) * g * g;
    s1[i] = sq;
    let avg = sqrt(sq) + p.eps;
    if (p.momentum != 0.0) {
        let buf = p.momentum * s2[i] + g / avg;
        s2[i] = buf;
        param[i] -= p.lr * buf;
    } else {
        param[i] -= p.lr * g / avg;
    }
}

// Adam, and AdamW when p.decoupled == 1.
@compute @workgroup_size(256, 1, 1)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if (i >= p.n) {
        return;
    }
    var w = param[i];
    if (p.decoupled != 0u) {
        w *= 1.0 - p.lr * p.weight_decay;
    }
    let g = decayed_grad(i);
    let m = p.beta1 * s1[i] + (1.0 - p.beta1) * g;
    let v = p.beta2 * s2[i] + (1.0 - p.beta2) * g * g;
    s1[i] = m;
    s2[i] = v;
    let denom = sqrt(v) / p.bias_correction2_sqrt + p.eps;
    param[i] = w - p.lr / p.bias_correction1 * m / denom;
}
