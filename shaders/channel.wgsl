// channel — per-channel reductions over a tensor seen as [N, C, P] (channel = dim 1): one
// workgroup per channel; invocation l sums positions l, l+256, ... of the channel's plane in
// every image (N * P/256 values, no division per element), then the workgroup combines its
// 256 sums by a tree. Used by bias gradients, batch norm
// statistics and batch norm's backward. The *_vec4 entries (below) do the same reading vec4s;
// channel_sum_columns sums planes of one value; channel_sum_prod_dev_and_sum (and its vec4
// form) makes batch norm's two backward sums in one pass.
//   channel_sum:         out[c] = scale * sum a
//   channel_sum_sq_dev:  out[c] = scale * sum (a - m[c])^2
//   channel_sum_prod_dev_and_sum: out[c] = scale * sum b * (a - m[c]), out2[c] = scale * sum b
// Host side: src/gpu/channel.rs. CPU twin: src/cpu/channel.rs.

struct ChannelParams {
    n: u32,
    c: u32,
    p: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: ChannelParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> m: array<f32>;

var<workgroup> scratch: array<f32, 256>;

fn finish(lid: u32, ch: u32, acc: f32) {
    scratch[lid] = acc;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s) {
            scratch[lid] += scratch[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        out[ch] = p.scale * scratch[0];
    }
}

@compute @workgroup_size(256, 1, 1)
fn channel_sum(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    var acc = 0.0;
    for (var n = 0u; n < p.n; n++) {
        let base = (n * p.c + wid.x) * p.p;
        for (var q = lid.x; q < p.p; q += 256u) {
            acc += a[base + q];
        }
    }
    finish(lid.x, wid.x, acc);
}

@compute @workgroup_size(256, 1, 1)
fn channel_sum_sq_dev(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let mean = m[wid.x];
    var acc = 0.0;
    for (var n = 0u; n < p.n; n++) {
        let base = (n * p.c + wid.x) * p.p;
        for (var q = lid.x; q < p.p; q += 256u) {
            let d = a[base + q] - mean;
            acc = fma(d, d, acc);
        }
    }
    finish(lid.x, wid.x, acc);
}

// Batch norm's two backward sums in one pass over a = x and b = dy: out[c] = scale * sum
// dy * (x - mean[c]) and out2[c] = scale * sum dy, each in channel_sum's order.
@group(0) @binding(7) var<storage, read_write> out2: array<f32>;

var<workgroup> scratch2: array<vec2<f32>, 256>;

@compute @workgroup_size(256, 1, 1)
fn channel_sum_prod_dev_and_sum(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let mean = m[wid.x];
    var acc = vec2<f32>(0.0);
    for (var n = 0u; n < p.n; n++) {
        let base = (n * p.c + wid.x) * p.p;
        for (var q = lid.x; q < p.p; q += 256u) {
            let g = b[base + q];
            acc = vec2<f32>(fma(g, a[base + q] - mean, acc.x), acc.y + g);
        }
    }
    scratch2[lid.x] = acc;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid.x < s) {
            scratch2[lid.x] += scratch2[lid.x + s];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        out[wid.x] = p.scale * scratch2[0].x;
        out2[wid.x] = p.scale * scratch2[0].y;
    }
}

// channel_sum over planes of one value ([N, C], a linear layer's bias gradient): one
// invocation per channel adds up its column in order, where a workgroup per channel would
// leave 255 of its 256 invocations idle.
@compute @workgroup_size(64, 1, 1)
fn channel_sum_columns(@builtin(global_invocation_id) gid: vec3<u32>) {
    let ch = gid.x;
    if (ch >= p.c) {
        return;
    }
    var acc = 0.0;
    for (var n = 0u; n < p.n; n++) {
        acc += a[n * p.c + ch];
    }
    out[ch] = p.scale * acc;
}

// The same three reductions reading vec4s, for planes whose size is a multiple of 4 (the host
// checks it; a plane then starts on a vec4): a quarter of the load instructions, which is
// what these passes spend their time on where each storage load is a loop over SIMD lanes
// (lavapipe). 64 invocations per channel; invocation l sums vec4s l, l+64, ... of each plane.
@group(0) @binding(5) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> b4: array<vec4<f32>>;

var<workgroup> scratch64: array<f32, 64>;

fn finish64(lid: u32, ch: u32, acc: vec4<f32>) {
    scratch64[lid] = (acc.x + acc.y) + (acc.z + acc.w);
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (lid < s) {
            scratch64[lid] += scratch64[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        out[ch] = p.scale * scratch64[0];
    }
}

@compute @workgroup_size(64, 1, 1)
fn channel_sum_vec4(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let p4 = p.p / 4u;
    var acc = vec4<f32>(0.0);
    for (var n = 0u; n < p.n; n++) {
        let base = (n * p.c + wid.x) * p4;
        for (var q = lid.x; q < p4; q += 64u) {
            acc += a4[base + q];
        }
    }
    finish64(lid.x, wid.x, acc);
}

@compute @workgroup_size(64, 1, 1)
fn channel_sum_sq_dev_vec4(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let p4 = p.p / 4u;
    let mean = vec4<f32>(m[wid.x]);
    var acc = vec4<f32>(0.0);
    for (var n = 0u; n < p.n; n++) {
        let base = (n * p.c + wid.x) * p4;
        for (var q = lid.x; q < p4; q += 64u) {
            let d = a4[base + q] - mean;
            acc = fma(d, d, acc);
        }
    }
    finish64(lid.x, wid.x, acc);
}

var<workgroup> scratch64_2: array<vec2<f32>, 64>;

@compute @workgroup_size(64, 1, 1)
fn channel_sum_prod_dev_and_sum_vec4(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let p4 = p.p / 4u;
    let mean = vec4<f32>(m[wid.x]);
    var prod = vec4<f32>(0.0);
    var sum = vec4<f32>(0.0);
    for (var n = 0u; n < p.n; n++) {
        let base = (n * p.c + wid.x) * p4;
        for (var q = lid.x; q < p4; q += 64u) {
            let g = b4[base + q];
            prod = fma(g, a4[base + q] - mean, prod);
            sum += g;
        }
    }
    scratch64_2[lid.x] = vec2<f32>((prod.x + prod.y) + (prod.z + prod.w), (sum.x + sum.y) + (sum.z + sum.w));
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (lid.x < s) {
            scratch64_2[lid.x] += scratch64_2[lid.x + s];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        out[wid.x] = p.scale * scratch64_2[0].x;
        out2[wid.x] = p.scale * scratch64_2[0].y;
    }
}
