// im2col — unfolds image patches into matrix columns so a convolution becomes a matmul.
//   im2col:   col [n, groups * R, OH*OW]      row (g, c, i, j), column (oh, ow)
//             col = x[n, g*Cg + c, oh*sh - ph + i*dh, ow*sw - pw + j*dw], 0 outside the image
//             (the rows of one group are contiguous: the forward GEMM is W_g @ col_g)
//   im2col_t: colT [groups, n, OH*OW, R]       the same values, transposed per group
//             (the backward-filter GEMM is dy_g[K_g, n*P] @ colT_g[n*P, R])
// R = patch_pad >= Cg*KH*KW: rows past the patch are zeros, so that a patch of, say, 25 values
// becomes 28 and the GEMM gets the multiple of 4 its fastest kernels need.
// 2D grids of rows or cells (see each entry). x is read from element x_off (the first image
// of this chunk). Host side: src/gpu/conv2d.rs. CPU twin: src/cpu/conv2d.rs (direct loops).

struct ConvParams {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    kh: u32,
    kw: u32,
    oh: u32,
    ow: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    dh: u32,
    dw: u32,
    groups: u32,
    total: u32,
    row_stride: u32,
    x_off: u32,
    patch_pad: u32, // rows of a group's patch, rounded up (extra rows are zeros)
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: ConvParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> col: array<f32>;

// x[n, ch, oy*sh - ph + i*dh, ox*sw - pw + j*dw], or 0 in the padding.
fn tap(n: u32, ch: u32, oy: u32, ox: u32, i: u32, j: u32) -> f32 {
    let iy = i32(oy * p.sh + i * p.dh) - i32(p.ph);
    let ix = i32(ox * p.sw + j * p.dw) - i32(p.pw);
    if (iy < 0 || iy >= i32(p.h) || ix < 0 || ix >= i32(p.w)) {
        return 0.0;
    }
    return x[p.x_off + ((n * p.c + ch) * p.h + u32(iy)) * p.w + u32(ix)];
}

// One invocation per row (image n, patch row r): the divisions that locate the row happen once
// and the row's OH*OW values follow with counters (integer division is slow on CPU adapters).
@compute @workgroup_size(64, 1, 1)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.y * p.row_stride + gid.x; // over n * groups * patch_pad
    let rows = p.groups * p.patch_pad;
    if (row >= p.n * rows) {
        return;
    }
    let kk = p.kh * p.kw;
    let cg = p.c / p.groups;
    let n = row / rows;
    let r = row % rows;
    let rr = r % p.patch_pad;
    var out = row * p.oh * p.ow;
    if (rr >= cg * kk) {
        for (var q = 0u; q < p.oh * p.ow; q++) {
            col[out + q] = 0.0;
        }
        return;
    }
    let ch = (r / p.patch_pad) * cg + rr / kk;
    let t = rr % kk;
    let i = t / p.kw;
    let j = t % p.kw;
    for (var oy = 0u; oy < p.oh; oy++) {
        for (var ox = 0u; ox < p.ow; ox++) {
            col[out] = tap(n, ch, oy, ox, i, j);
            out++;
        }
    }
}

// One invocation per (group, image, output position): its patch_pad values, in (c, i, j) order.
@compute @workgroup_size(64, 1, 1)
fn im2col_t(@builtin(global_invocation_id) gid: vec3<u32>) {
    let cell = gid.y * p.row_stride + gid.x; // over groups * n * OH*OW
    let positions = p.oh * p.ow;
    if (cell >= p.groups * p.n * positions) {
        return;
    }
    let cg = p.c / p.groups;
    let q = cell % positions;
    let n = (cell / positions) % p.n;
    let g = cell / (positions * p.n);
    let oy = q / p.ow;
    let ox = q % p.ow;
    var out = cell * p.patch_pad;
    for (var c = 0u; c < cg; c++) {
        for (var i = 0u; i < p.kh; i++) {
            for (var j = 0u; j < p.kw; j++) {
                col[out] = tap(n, g * cg + c, oy, ox, i, j);
                out++;
            }
        }
    }
    for (var rest = cg * p.kh * p.kw; rest < p.patch_pad; rest++) {
        col[out] = 0.0;
        out++;
    }
}

// The same two unfoldings writing vec4s (a quarter of the store instructions, each a loop over
// SIMD lanes on lavapipe): im2col_vec4 where a row's OH*OW values are a multiple of 4,
// im2col_t_vec4 always (patch_pad is). The taps are still read one by one, found by counters.
@group(0) @binding(4) var<storage, read_write> col4: array<vec4<f32>>;

@compute @workgroup_size(64, 1, 1)
fn im2col_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.y * p.row_stride + gid.x; // over n * groups * patch_pad
    let rows = p.groups * p.patch_pad;
    if (row >= p.n * rows) {
        return;
    }
    let kk = p.kh * p.kw;
    let cg = p.c / p.groups;
    let n = row / rows;
    let r = row % rows;
    let rr = r % p.patch_pad;
    let quads = p.oh * p.ow / 4u;
    var out = row * quads;
    if (rr >= cg * kk) {
        for (var q = 0u; q < quads; q++) {
            col4[out + q] = vec4<f32>(0.0);
        }
        return;
    }
    let ch = (r / p.patch_pad) * cg + rr / kk;
    let t = rr % kk;
    let i = t / p.kw;
    let j = t % p.kw;
    var oy = 0u;
    var ox = 0u;
    for (var q = 0u; q < quads; q++) {
        var v = vec4<f32>(0.0);
        for (var l = 0u; l < 4u; l++) {
            v[l] = tap(n, ch, oy, ox, i, j);
            ox++;
            if (ox == p.ow) {
                ox = 0u;
                oy++;
            }
        }
        col4[out] = v;
        out++;
    }
}

@compute @workgroup_size(64, 1, 1)
fn im2col_t_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let cell = gid.y * p.row_stride + gid.x; // over groups * n * OH*OW
    let positions = p.oh * p.ow;
    if (cell >= p.groups * p.n * positions) {
        return;
    }
    let cg = p.c / p.groups;
    let q = cell % positions;
    let n = (cell / positions) % p.n;
    let g = cell / (positions * p.n);
    let oy = q / p.ow;
    let ox = q % p.ow;
    let real = cg * p.kh * p.kw;
    var out = cell * (p.patch_pad / 4u);
    var c = 0u;
    var i = 0u;
    var j = 0u;
    for (var t = 0u; t < p.patch_pad; t += 4u) {
        var v = vec4<f32>(0.0);
        for (var l = 0u; l < 4u; l++) {
            if (t + l < real) {
                v[l] = tap(n, g * cg + c, oy, ox, i, j);
                j++;
                if (j == p.kw) {
                    j = 0u;
                    i++;
                    if (i == p.kh) {
                        i = 0u;
                        c++;
                    }
                }
            }
        }
        col4[out] = v;
        out++;
    }
}
