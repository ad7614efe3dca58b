// bias_act — a bias add fused with the activation that follows it, and that activation's
// backward, over [N, C, P] (channel = dim 1; P = 1 for a linear layer's [N, C]).
//   bias_act:     y = act(y + bias[c])                      (in place on the layer output)
//   act_backward: dz = dy * act'(z), read off the activated y: ReLU passes where y > 0
// The bias gradient is then channel.wgsl's channel_sum of dz. On CPU adapters, planes of 4 or
// more values take the bias_act_rows* entries (at the end): one plane per invocation, walked
// with a counter, so no invocation divides per element to find its channel.
// act: 0 identity, 1 ReLU. Host side: src/gpu/channel.rs. CPU twin: src/cpu/channel.rs.

struct BiasActParams {
    total: u32,
    row_stride: u32,
    c: u32,
    p: u32,
    act: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: BiasActParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn activate(z: f32) -> f32 {
    if (p.act == 1u) {
        return select(z, 0.0, z < 0.0); // max(z, 0), NaN passing (see relu.wgsl)
    }
    return z;
}

fn activate4(z: vec4<f32>) -> vec4<f32> {
    return select(z, vec4<f32>(0.0), vec4<bool>(p.act == 1u) & (z < vec4<f32>(0.0)));
}

// out = act(out + a[c]); a is the bias.
@compute @workgroup_size(256, 1, 1)
fn bias_act(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i < p.total) {
        out[i] = activate(out[i] + a[(i / p.p) % p.c]);
    }
}

// out = dz = b (dy) where the activation passed a (y), else 0.
@compute @workgroup_size(256, 1, 1)
fn act_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i < p.total) {
        out[i] = select(b[i], select(0.0, b[i], a[i] > 0.0), p.act == 1u);
    }
}

// bias_act with one plane (image, channel) per invocation: the bias is loaded once per plane.
// total = n * c planes.
@compute @workgroup_size(64, 1, 1)
fn bias_act_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let plane = gid.y * p.row_stride + gid.x; // n * c + channel
    if (plane >= p.total) {
        return;
    }
    let bias = a[plane % p.c];
    var i = plane * p.p;
    for (var q = 0u; q < p.p; q++) {
        out[i] = activate(out[i] + bias);
        i++;
    }
}

// bias_act_rows on vec4s, for planes of a multiple of 4 values (the host checks it).
@group(0) @binding(4) var<storage, read_write> out4: array<vec4<f32>>;

@compute @workgroup_size(64, 1, 1)
fn bias_act_rows_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let plane = gid.y * p.row_stride + gid.x; // n * c + channel
    if (plane >= p.total) {
        return;
    }
    let bias = vec4<f32>(a[plane % p.c]);
    let p4 = p.p / 4u;
    var i = plane * p4;
    for (var q = 0u; q < p4; q++) {
        out4[i] = activate4(out4[i] + bias);
        i++;
    }
}
