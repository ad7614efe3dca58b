// permute — a strided copy of a [d0, d1, d2] index space:
//   out[i0*s0 + i1*s1 + i2*s2] = in[in_off + i0*t0 + i1*t1 + i2*t2]
// Any axis order (a batch of transposes [B, R, C] -> [B, C, R]; swapping the batch and
// channel axes of [N, K, P] -> [K, N, P]), and padding or cropping rows (different row
// strides on the two sides). permute3 runs over the flat index (three divisions each);
// permute3_grid over a 3-D grid (x: i2, y: i1, z: i0) with none, used where rows are at least
// 32 long. Host side: src/gpu/permute.rs. CPU twin: src/cpu/permute.rs.

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
