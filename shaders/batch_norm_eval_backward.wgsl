// batch_norm_eval_backward — the gradient of batch norm 2d's eval forward, whose running
// statistics are constants (a frozen batch norm while fine-tuning, measurements of the trained
// function), over [N, C, P] (channel = dim 1):
//   y = gamma[c] * (x - running_mean[c]) * invstd[c] + beta[c],  invstd = 1 / sqrt(running_var + eps)
//   bn_eval_backward_dx:     dx = dy * gamma[c] * invstd[c]                 (one invocation per element)
//   bn_eval_backward_params: dgamma[c] = invstd[c] * sum dy * (x - running_mean[c])
//                            dbeta[c]  = sum dy                            (one workgroup per channel)
// Both overwrite their outputs; nothing is allocated per call. The reduction is channel.wgsl's:
// invocation l sums positions l, l+256, ... of the channel's plane in every image, then the
// workgroup combines its 256 partial sums by a tree.
// Host side: src/gpu/batch_norm.rs. CPU twin: src/cpu/batch_norm.rs (backward_eval).

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
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<storage, read> running_mean: array<f32>;
@group(0) @binding(5) var<storage, read> running_var: array<f32>;
@group(0) @binding(6) var<storage, read> gamma: array<f32>;
// dgamma and dbeta may be views of one gradient arena: both are written, neither read.
@group(0) @binding(7) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(8) var<storage, read_write> dbeta: array<f32>;

var<workgroup> sum_dy: array<f32, 256>;
var<workgroup> sum_dyx: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn bn_eval_backward_dx(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i >= p.total) {
        return;
    }
    let c = (i / p.p) % p.c;
    dx[i] = dy[i] * (gamma[c] / sqrt(running_var[c] + p.eps));
}

@compute @workgroup_size(256, 1, 1)
fn bn_eval_backward_params(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let ch = wid.x;
    let mean = running_mean[ch];
    var a = 0.0;
    var b = 0.0;
    for (var n = 0u; n < p.n; n++) {
        let base = (n * p.c + ch) * p.p;
        for (var q = lid.x; q < p.p; q += 256u) {
            let g = dy[base + q];
            a += g;
            b = fma(g, x[base + q] - mean, b);
        }
    }
    sum_dy[lid.x] = a;
    sum_dyx[lid.x] = b;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid.x < s) {
            sum_dy[lid.x] += sum_dy[lid.x + s];
            sum_dyx[lid.x] += sum_dyx[lid.x + s];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        dbeta[ch] = sum_dy[0];
        dgamma[ch] = sum_dyx[0] / sqrt(running_var[ch] + p.eps);
    }
}
