// conv2d_s1_subgroup — a stride-1 convolution as matmul_v5_subgroup's product with the
// columns made in registers instead of by im2col (an implicit GEMM, llvmpipe).
//
//   y[n, k, oy, ox] = sum over (c, i, j) of a[k, c, i, j] * x[n, c, oy + i - ph, ox + j - pw]
//
// (0 outside the image) for kernels at most 4 wide, stride and dilation 1, one group, and
// rows of whole vec4s on both sides (W and OW multiples of 4, every tap offset j - pw within
// [-4, 4]). The weights come as vec4s of one kernel row, [K, C, KH, 4] with zero taps past KW,
// so one step of the product is one (c, i): A's vec4 holds its 4 taps, and the 4 matching
// rows of the columns are 4 windows of x's row oy + i - ph, cut out of three aligned vec4
// loads (im2col_s1_vec4 in im2col.wgsl writes the same windows to memory). As in v5, a
// workgroup owns 16 output channels and a lane 4 positions (a quad of one output row); lane
// s of each subgroup loads rows s and s + 8 of A and subgroupBroadcast shares them. Per step:
// 2 loads of A and 3 of x for 256 multiply-adds (a quarter of them on zero taps when KW is 3),
// and no columns written or read.
//
// With p.flip = 1 the taps are read mirrored (tap (i, j) from (KH-1-i, KW-1-j)): run on dy
// with pads KH-1-ph and KW-1-pw and the weights regrouped to [C, K, KH, 4], it computes the
// backward data dx (src/gpu/conv2d.rs). One image per workgroup row z. Needs subgroups of at
// least 8 invocations.
//
// backward_filter: dw = dy [K, N*OH*OW] @ colsᵀ the same way (see the entry).
// Host side: Gpu::conv2d_direct in src/gpu/conv2d.rs. CPU twin: src/cpu/conv2d.rs. Test:
// kernels-tests/conv2d.rs (the verify cases with stride 1 on rows of whole vec4s).

struct DirectConvParams {
    n: u32,
    c: u32, // input channels
    h: u32, // input rows
    w: u32, // input columns (a multiple of 4)
    k: u32, // output channels
    kh: u32,
    kw: u32, // at most 4
    oh: u32,
    ow: u32, // a multiple of 4
    ph: u32,
    pw: u32,
    flip: u32,
    x_off: u32, // element offsets of x and y (multiples of 4)
    y_off: u32,
    batch_base: u32, // first image of this dispatch
    accumulate: u32, // backward_filter: add to y (a later chunk of images) instead of writing it
}

@group(0) @binding(0) var<uniform> p: DirectConvParams;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;

const ROWS: u32 = 16u;
override LANES: u32 = 64u;

// The 4 values starting s places after the start of m, out of the 12 of (l, m, r); zeros for
// an offset outside [-4, 4] (a tap past the kernel's width). As im2col.wgsl's window.
fn window(l: vec4<f32>, m: vec4<f32>, r: vec4<f32>, s: i32) -> vec4<f32> {
    switch s {
        case -4: { return l; }
        case -3: { return vec4<f32>(l.y, l.z, l.w, m.x); }
        case -2: { return vec4<f32>(l.z, l.w, m.x, m.y); }
        case -1: { return vec4<f32>(l.w, m.x, m.y, m.z); }
        case 0: { return m; }
        case 1: { return vec4<f32>(m.y, m.z, m.w, r.x); }
        case 2: { return vec4<f32>(m.z, m.w, r.x, r.y); }
        case 3: { return vec4<f32>(m.w, r.x, r.y, r.z); }
        case 4: { return r; }
        default: { return vec4<f32>(0.0); }
    }
}

// acc + av.x * b0 + av.y * b1 + av.z * b2 + av.w * b3, one fma at a time (as in v5).
fn mac(acc: vec4<f32>, av: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) -> vec4<f32> {
    var s = fma(vec4<f32>(av.x), b0, acc);
    s = fma(vec4<f32>(av.y), b1, s);
    s = fma(vec4<f32>(av.z), b2, s);
    return fma(vec4<f32>(av.w), b3, s);
}

// acc + (av . b0, av . b1, av . b2, av . b3): one row's 4 positions against 4 taps' windows.
fn dots(acc: vec4<f32>, av: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) -> vec4<f32> {
    return acc + vec4<f32>(dot(av, b0), dot(av, b1), dot(av, b2), dot(av, b3));
}

// The three vec4s of x's row iy (of the plane starting at vec4 `plane`, src_quads vec4s a
// row) around quad q: the quad's own and its two neighbours, zeros outside the image.
struct Around {
    l: vec4<f32>,
    m: vec4<f32>,
    r: vec4<f32>,
}

fn around(plane: u32, iy: i32, q: u32, src_quads: u32) -> Around {
    var v: Around;
    if (iy < 0 || iy >= i32(p.h)) {
        return v;
    }
    let base = plane + u32(iy) * src_quads;
    if (q >= 1u && q - 1u < src_quads) {
        v.l = x[base + q - 1u];
    }
    if (q < src_quads) {
        v.m = x[base + q];
    }
    if (q + 1u < src_quads) {
        v.r = x[base + q + 1u];
    }
    return v;
}

// The offset of tap j's window: (j or KW-1-j) - pw, or out of range past the kernel.
fn shift(j: u32) -> i32 {
    if (j >= p.kw) {
        return 99;
    }
    return i32(select(j, p.kw - 1u - j, p.flip != 0u)) - i32(p.pw);
}

@compute @workgroup_size(LANES, 1, 1)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_invocation_id) sid: u32,
) {
    let n = p.batch_base + wid.z;
    let quads = p.oh * p.ow / 4u;
    let qq = wid.x * LANES + lid.x;
    // Positions beyond the plane (and channels beyond K) are clamped for loading, not stored.
    let pos = min(qq, quads - 1u) * 4u;
    let oy = pos / p.ow;
    let q = (pos % p.ow) / 4u;
    let row0 = wid.y * ROWS;
    let lane = sid & 7u;
    let steps = p.c * p.kh;
    let lo_idx = min(row0 + lane, p.k - 1u) * steps;
    let hi_idx = min(row0 + 8u + lane, p.k - 1u) * steps;
    let src_quads = p.w / 4u;
    let s0 = shift(0u);
    let s1 = shift(1u);
    let s2 = shift(2u);
    let s3 = shift(3u);

    var acc: array<vec4<f32>, ROWS>;
    var plane = p.x_off / 4u + n * p.c * p.h * src_quads;
    var step = 0u;
    for (var ch = 0u; ch < p.c; ch++) {
        for (var i = 0u; i < p.kh; i++) {
            let iy = i32(oy + select(i, p.kh - 1u - i, p.flip != 0u)) - i32(p.ph);
            let v = around(plane, iy, q, src_quads);
            let b0 = window(v.l, v.m, v.r, s0);
            let b1 = window(v.l, v.m, v.r, s1);
            let b2 = window(v.l, v.m, v.r, s2);
            let b3 = window(v.l, v.m, v.r, s3);
            let lo = a[lo_idx + step];
            let hi = a[hi_idx + step];
            acc[0] = mac(acc[0], subgroupBroadcast(lo, 0u), b0, b1, b2, b3);
            acc[1] = mac(acc[1], subgroupBroadcast(lo, 1u), b0, b1, b2, b3);
            acc[2] = mac(acc[2], subgroupBroadcast(lo, 2u), b0, b1, b2, b3);
            acc[3] = mac(acc[3], subgroupBroadcast(lo, 3u), b0, b1, b2, b3);
            acc[4] = mac(acc[4], subgroupBroadcast(lo, 4u), b0, b1, b2, b3);
            acc[5] = mac(acc[5], subgroupBroadcast(lo, 5u), b0, b1, b2, b3);
            acc[6] = mac(acc[6], subgroupBroadcast(lo, 6u), b0, b1, b2, b3);
            acc[7] = mac(acc[7], subgroupBroadcast(lo, 7u), b0, b1, b2, b3);
            acc[8] = mac(acc[8], subgroupBroadcast(hi, 0u), b0, b1, b2, b3);
            acc[9] = mac(acc[9], subgroupBroadcast(hi, 1u), b0, b1, b2, b3);
            acc[10] = mac(acc[10], subgroupBroadcast(hi, 2u), b0, b1, b2, b3);
            acc[11] = mac(acc[11], subgroupBroadcast(hi, 3u), b0, b1, b2, b3);
            acc[12] = mac(acc[12], subgroupBroadcast(hi, 4u), b0, b1, b2, b3);
            acc[13] = mac(acc[13], subgroupBroadcast(hi, 5u), b0, b1, b2, b3);
            acc[14] = mac(acc[14], subgroupBroadcast(hi, 6u), b0, b1, b2, b3);
            acc[15] = mac(acc[15], subgroupBroadcast(hi, 7u), b0, b1, b2, b3);
            step++;
        }
        plane += p.h * src_quads;
    }

    if (qq < quads) {
        let base = p.y_off / 4u + n * p.k * quads + qq;
        for (var r = 0u; r < ROWS; r++) {
            let row = row0 + r;
            if (row < p.k) {
                y[base + row * quads] = acc[r];
            }
        }
    }
}

// dw[k, c, i, j] = sum over (n, oy, ox) of dy[n, k, oy, ox] * x[n, c, oy + i - ph, ox + j - pw]
// (bindings: a = dy [N, K, OH, OW] from element 0, x, y = dw as [K, C, KH, 4] with zero taps
// past KW, cropped by the host). The product dy [K, N*P] @ colsᵀ with the columns made in
// registers: a workgroup owns 16 rows k and a lane one (c, i), a vec4 of its taps j; the sum
// runs over every image and quad of output positions, and per quad lane s of each subgroup
// loads dy's rows s and s + 8 (shared by broadcasts) and each lane x's 3 vec4s around the
// quad, cut into the 4 taps' windows: 5 loads per 256 multiply-adds. One workgroup column per
// LANES (c, i): few workgroups, each with a long sum, which suits a CPU's few cores (the host
// uses it on CPU adapters only).
@compute @workgroup_size(LANES, 1, 1)
fn backward_filter(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_invocation_id) sid: u32,
) {
    let cols = p.c * p.kh;
    let col = wid.x * LANES + lid.x;
    let idx = min(col, cols - 1u);
    let ch = idx / p.kh;
    let i = idx % p.kh;
    let row0 = wid.y * ROWS;
    let lane = sid & 7u;
    let quads_row = p.ow / 4u;
    let quads = p.oh * quads_row;
    let src_quads = p.w / 4u;
    let lo_row = min(row0 + lane, p.k - 1u);
    let hi_row = min(row0 + 8u + lane, p.k - 1u);
    let s0 = shift(0u);
    let s1 = shift(1u);
    let s2 = shift(2u);
    let s3 = shift(3u);

    var acc: array<vec4<f32>, ROWS>;
    for (var n = 0u; n < p.n; n++) {
        let dy_lo = (n * p.k + lo_row) * quads;
        let dy_hi = (n * p.k + hi_row) * quads;
        let plane = p.x_off / 4u + (n * p.c + ch) * p.h * src_quads;
        var oy = 0u;
        var q = 0u;
        for (var qd = 0u; qd < quads; qd++) {
            let iy = i32(oy + i) - i32(p.ph);
            let v = around(plane, iy, q, src_quads);
            let b0 = window(v.l, v.m, v.r, s0);
            let b1 = window(v.l, v.m, v.r, s1);
            let b2 = window(v.l, v.m, v.r, s2);
            let b3 = window(v.l, v.m, v.r, s3);
            let lo = a[dy_lo + qd];
            let hi = a[dy_hi + qd];
            acc[0] = dots(acc[0], subgroupBroadcast(lo, 0u), b0, b1, b2, b3);
            acc[1] = dots(acc[1], subgroupBroadcast(lo, 1u), b0, b1, b2, b3);
            acc[2] = dots(acc[2], subgroupBroadcast(lo, 2u), b0, b1, b2, b3);
            acc[3] = dots(acc[3], subgroupBroadcast(lo, 3u), b0, b1, b2, b3);
            acc[4] = dots(acc[4], subgroupBroadcast(lo, 4u), b0, b1, b2, b3);
            acc[5] = dots(acc[5], subgroupBroadcast(lo, 5u), b0, b1, b2, b3);
            acc[6] = dots(acc[6], subgroupBroadcast(lo, 6u), b0, b1, b2, b3);
            acc[7] = dots(acc[7], subgroupBroadcast(lo, 7u), b0, b1, b2, b3);
            acc[8] = dots(acc[8], subgroupBroadcast(hi, 0u), b0, b1, b2, b3);
            acc[9] = dots(acc[9], subgroupBroadcast(hi, 1u), b0, b1, b2, b3);
            acc[10] = dots(acc[10], subgroupBroadcast(hi, 2u), b0, b1, b2, b3);
            acc[11] = dots(acc[11], subgroupBroadcast(hi, 3u), b0, b1, b2, b3);
            acc[12] = dots(acc[12], subgroupBroadcast(hi, 4u), b0, b1, b2, b3);
            acc[13] = dots(acc[13], subgroupBroadcast(hi, 5u), b0, b1, b2, b3);
            acc[14] = dots(acc[14], subgroupBroadcast(hi, 6u), b0, b1, b2, b3);
            acc[15] = dots(acc[15], subgroupBroadcast(hi, 7u), b0, b1, b2, b3);
            q++;
            if (q == quads_row) {
                q = 0u;
                oy++;
            }
        }
    }

    if (col < cols) {
        let base = p.y_off / 4u + idx;
        for (var rr = 0u; rr < ROWS; rr++) {
            let row = row0 + rr;
            if (row < p.k) {
                if (p.accumulate != 0u) {
                    y[base + row * cols] += acc[rr];
                } else {
                    y[base + row * cols] = acc[rr];
                }
            }
        }
    }
}
