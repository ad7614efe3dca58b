// bn_stats — batch norm's per-channel steps (one invocation per channel), around the
// per-channel reductions of channel.wgsl:
//   bn_finalize:      from the batch mean and biased variance:
//                     invstd = 1 / sqrt(var + eps)
//                     running_mean = (1 - momentum) * running_mean + momentum * mean
//                     running_var  = (1 - momentum) * running_var + momentum * var * cnt / (cnt - 1)
//                     (PyTorch: the running variance uses the unbiased estimate)
//   bn_eval_invstd:   invstd = 1 / sqrt(running_var + eps)
//   bn_backward_coef: from sdy = sum dy and sdyx = sum dy * (x - mean):
//                     dgamma = sdyx * invstd, dbeta = sdy
//                     coef = [gamma * invstd, sdy / cnt, invstd^2 * sdyx / cnt] for batch_norm.wgsl
// Bindings are shared by the entries under neutral names; each entry says what they hold.
// Host side: src/gpu/batch_norm.rs. CPU twin: src/cpu/batch_norm.rs.

struct BnParams {
    n: u32,
    c: u32,
    p: u32,
    total: u32,
    row_stride: u32,
    cnt: f32,
    momentum: f32,
    eps: f32,
    act: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: BnParams;
@group(0) @binding(1) var<storage, read> in1: array<f32>;
@group(0) @binding(2) var<storage, read> in2: array<f32>;
@group(0) @binding(3) var<storage, read_write> out3: array<f32>;
@group(0) @binding(4) var<storage, read_write> out4: array<f32>;
@group(0) @binding(5) var<storage, read_write> out5: array<f32>;
@group(0) @binding(6) var<storage, read> in6: array<f32>;
@group(0) @binding(7) var<storage, read> in7: array<f32>;

// in1 = mean, in2 = var; out3 = invstd, out4 = running_mean, out5 = running_var
@compute @workgroup_size(64, 1, 1)
fn bn_finalize(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= p.c) {
        return;
    }
    let var_b = in2[c];
    out3[c] = 1.0 / sqrt(var_b + p.eps);
    out4[c] = (1.0 - p.momentum) * out4[c] + p.momentum * in1[c];
    out5[c] = (1.0 - p.momentum) * out5[c] + p.momentum * var_b * p.cnt / (p.cnt - 1.0);
}

// in2 = running_var; out3 = invstd
@compute @workgroup_size(64, 1, 1)
fn bn_eval_invstd(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c < p.c) {
        out3[c] = 1.0 / sqrt(in2[c] + p.eps);
    }
}

// in1 = sdy, in2 = sdyx, in6 = gamma, in7 = invstd; out3 = coef [3C], out4 = dgamma, out5 = dbeta
// (dgamma and dbeta may be views of one gradient arena: both are written, neither read)
@compute @workgroup_size(64, 1, 1)
fn bn_backward_coef(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= p.c) {
        return;
    }
    let invstd = in7[c];
    out4[c] = in2[c] * invstd;
    out5[c] = in1[c];
    out3[c] = in6[c] * invstd;
    out3[p.c + c] = in1[c] / p.cnt;
    out3[2u * p.c + c] = invstd * invstd * in2[c] / p.cnt;
}
