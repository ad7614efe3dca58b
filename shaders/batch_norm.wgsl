// batch_norm — batch norm 2d's element-wise passes over [N, C, P] (channel = dim 1), forward
// and backward side by side; the statistics come from channel.wgsl and bn_stats.wgsl.
//   bn_apply:          y  = act((x - mean[c]) * invstd[c] * gamma[c] + beta[c])
//                      (act: 0 identity, 1 ReLU: a ReLU fused into the batch norm before it)
//   bn_backward_apply: dx = k1[c] * (dy - k2[c] - (x - mean[c]) * k3[c]),  k = bn_backward_coef
//                      (= gamma*invstd/cnt * (cnt*dy - sum dy - x_hat * sum dy*x_hat))
// The *_planes entries do the same on a 3-D grid (x: position in the plane, y: channel,
// z: image), so no invocation divides to find its channel (integer division is slow on CPU
// adapters); the host uses them when a plane holds at least 32 values. On CPU adapters the
// *_rows_vec4 entries (at the end) walk a whole plane per invocation instead.
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
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> mean: array<f32>;
@group(0) @binding(5) var<storage, read> scale: array<f32>; // invstd (forward) or coef (backward)
@group(0) @binding(6) var<storage, read> gamma: array<f32>;
@group(0) @binding(7) var<storage, read> beta: array<f32>;

fn activate(v: f32) -> f32 {
    return select(v, 0.0, p.act == 1u && v < 0.0); // max(v, 0), NaN passing (relu.wgsl)
}

fn activate4(v: vec4<f32>) -> vec4<f32> {
    return select(v, vec4<f32>(0.0), vec4<bool>(p.act == 1u) & (v < vec4<f32>(0.0)));
}

@compute @workgroup_size(256, 1, 1)
fn bn_apply(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i >= p.total) {
        return;
    }
    let c = (i / p.p) % p.c;
    out[i] = activate(fma((x[i] - mean[c]) * scale[c], gamma[c], beta[c]));
}

@compute @workgroup_size(256, 1, 1)
fn bn_backward_apply(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i >= p.total) {
        return;
    }
    let c = (i / p.p) % p.c;
    out[i] = scale[c] * (dy[i] - scale[p.c + c] - (x[i] - mean[c]) * scale[2u * p.c + c]);
}

@compute @workgroup_size(64, 1, 1)
fn bn_apply_planes(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.p) {
        return;
    }
    let c = gid.y;
    let i = (gid.z * p.c + c) * p.p + gid.x;
    out[i] = activate(fma((x[i] - mean[c]) * scale[c], gamma[c], beta[c]));
}

@compute @workgroup_size(64, 1, 1)
fn bn_backward_apply_planes(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.p) {
        return;
    }
    let c = gid.y;
    let i = (gid.z * p.c + c) * p.p + gid.x;
    out[i] = scale[c] * (dy[i] - scale[p.c + c] - (x[i] - mean[c]) * scale[2u * p.c + c]);
}

// The *_planes entries reading and writing vec4s, for planes of a multiple of 4 values (the
// host checks it): a quarter of the storage instructions (each a loop over SIMD lanes on
// lavapipe). gid.x is a vec4 of the plane.
@group(0) @binding(8) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read_write> out4: array<vec4<f32>>;

@compute @workgroup_size(64, 1, 1)
fn bn_apply_planes_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p4 = p.p / 4u;
    if (gid.x >= p4) {
        return;
    }
    let c = gid.y;
    let i = (gid.z * p.c + c) * p4 + gid.x;
    out4[i] = activate4(fma((x4[i] - vec4<f32>(mean[c])) * scale[c], vec4<f32>(gamma[c]), vec4<f32>(beta[c])));
}

@compute @workgroup_size(64, 1, 1)
fn bn_backward_apply_planes_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p4 = p.p / 4u;
    if (gid.x >= p4) {
        return;
    }
    let c = gid.y;
    let i = (gid.z * p.c + c) * p4 + gid.x;
    out4[i] = scale[c] * (dy4[i] - vec4<f32>(scale[p.c + c]) - (x4[i] - vec4<f32>(mean[c])) * scale[2u * p.c + c]);
}

// The two vec4 entries above with one plane per invocation, walked with a counter: the
// channel's values are loaded once per plane instead of once per vec4, which is what counts
// where each storage load is a loop over SIMD lanes (CPU adapters; the host uses these there,
// the grids above elsewhere). The same arithmetic per value. total = n * c planes.
@compute @workgroup_size(64, 1, 1)
fn bn_apply_rows_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let plane = gid.y * p.row_stride + gid.x; // n * c + channel
    if (plane >= p.total) {
        return;
    }
    let c = plane % p.c;
    let m = vec4<f32>(mean[c]);
    let s = scale[c];
    let g = vec4<f32>(gamma[c]);
    let b = vec4<f32>(beta[c]);
    let p4 = p.p / 4u;
    var i = plane * p4;
    for (var q = 0u; q < p4; q++) {
        out4[i] = activate4(fma((x4[i] - m) * s, g, b));
        i++;
    }
}

@compute @workgroup_size(64, 1, 1)
fn bn_backward_apply_rows_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let plane = gid.y * p.row_stride + gid.x; // n * c + channel
    if (plane >= p.total) {
        return;
    }
    let c = plane % p.c;
    let k1 = scale[c];
    let k2 = vec4<f32>(scale[p.c + c]);
    let k3 = scale[2u * p.c + c];
    let m = vec4<f32>(mean[c]);
    let p4 = p.p / 4u;
    var i = plane * p4;
    for (var q = 0u; q < p4; q++) {
        out4[i] = k1 * (dy4[i] - k2 - (x4[i] - m) * k3);
        i++;
    }
}

