// permute — a strided copy of a [d0, d1, d2] index space:
//   out[i0*s0 + i1*s1 + i2*s2] = in[in_off + i0*t0 + i1*t1 + i2*t2]
// Any axis order (a batch of transposes [B, R, C] -> [B, C, R]; swapping the batch and
// channel axes of [N, K, P] -> [K, N, P]), and padding or cropping rows (different row
// strides on the two sides). permute3 runs over the flat index (three divisions each);
// permute3_grid over a 3-D grid (x: i2, y: i1, z: i0) with none, used where rows are at least
// 32 long, permute3_rows (one row per invocation) for rows of 4 to 63 values on CPU adapters,
// and permute3_grid_vec4 (at the end) where rows stay whole and line up with vec4s.
// pad_rows_vec4 and crop_rows_vec4 (at the end) pad short rows to whole vec4s and back.
// Host side: src/gpu/permute.rs. CPU twin: src/cpu/permute.rs.

struct PermuteParams {
    d0: u32,
    d1: u32,
    d2: u32,
    s0: u32,
    s1: u32,
    s2: u32,
    total: u32,
    row_stride: u32,
    in_off: u32,
    t0: u32,
    t1: u32,
    t2: u32,
}

@group(0) @binding(0) var<uniform> p: PermuteParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn permute3(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.y * p.row_stride + gid.x;
    if (idx >= p.total) {
        return;
    }
    let i2 = idx % p.d2;
    let i1 = (idx / p.d2) % p.d1;
    let i0 = idx / (p.d2 * p.d1);
    dst[i0 * p.s0 + i1 * p.s1 + i2 * p.s2] = src[p.in_off + i0 * p.t0 + i1 * p.t1 + i2 * p.t2];
}

@compute @workgroup_size(64, 1, 1)
fn permute3_grid(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.d2) {
        return;
    }
    dst[gid.z * p.s0 + gid.y * p.s1 + gid.x * p.s2] = src[p.in_off + gid.z * p.t0 + gid.y * p.t1 + gid.x * p.t2];
}

// One invocation per row (i0, i1), walking its d2 values with counters: for CPU adapters,
// where a workgroup per short row (permute3_grid) costs more than the row's copy (llvmpipe,
// the default CNN's 1x1 backward at batch 64: five copies of rows of 49, 25 -> 9 ms a step).
@compute @workgroup_size(64, 1, 1)
fn permute3_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.y * p.row_stride + gid.x;
    if (row >= p.d0 * p.d1) {
        return;
    }
    let i1 = row % p.d1;
    let i0 = row / p.d1;
    var to = i0 * p.s0 + i1 * p.s1;
    var at = p.in_off + i0 * p.t0 + i1 * p.t1;
    for (var i2 = 0u; i2 < p.d2; i2++) {
        dst[to] = src[at];
        to += p.s2;
        at += p.t2;
    }
}

// permute3_grid on vec4s, where rows are contiguous on both sides (s2 = t2 = 1) and every
// length, stride and offset is a multiple of 4: the host passes them in vec4s.
@group(0) @binding(4) var<storage, read> src4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> dst4: array<vec4<f32>>;

@compute @workgroup_size(64, 1, 1)
fn permute3_grid_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.d2) {
        return;
    }
    dst4[gid.z * p.s0 + gid.y * p.s1 + gid.x] = src4[p.in_off + gid.z * p.t0 + gid.y * p.t1 + gid.x];
}

// Rows of d1 values to rows of 4 * d2 (>= d1) and back: pad_rows_vec4 copies each of d0 rows
// and fills the rest with zeros, crop_rows_vec4 keeps the first d1 of each padded row. One
// invocation per row (no division per element), on vec4s on the padded side (the rows being
// padded or cropped are not whole vec4s, so that side is read or written value by value).
// The output starts at element s0 (a multiple of 4 for pad_rows_vec4), the input at in_off
// (in vec4s for crop_rows_vec4).
@compute @workgroup_size(64, 1, 1)
fn pad_rows_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.y * p.row_stride + gid.x;
    if (row >= p.d0) {
        return;
    }
    var at = p.in_off + row * p.d1;
    var c = 0u;
    for (var q = 0u; q < p.d2; q++) {
        var v = vec4<f32>(0.0);
        for (var l = 0u; l < 4u; l++) {
            if (c < p.d1) {
                v[l] = src[at];
                at++;
            }
            c++;
        }
        dst4[p.s0 / 4u + row * p.d2 + q] = v;
    }
}

@compute @workgroup_size(64, 1, 1)
fn crop_rows_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.y * p.row_stride + gid.x;
    if (row >= p.d0) {
        return;
    }
    var to = p.s0 + row * p.d1;
    var c = 0u;
    for (var q = 0u; q < p.d2; q++) {
        let v = src4[p.in_off + row * p.d2 + q];
        for (var l = 0u; l < 4u; l++) {
            if (c < p.d1) {
                dst[to] = v[l];
                to++;
            }
            c++;
        }
    }
}
