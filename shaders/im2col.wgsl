// im2col — unfolds image patches into matrix columns so a convolution becomes a matmul.
//   im2col:   col [n, groups * R, OH*OW]      row (g, c, i, j), column (oh, ow)
//             col = x[n, g*Cg + c, oh*sh - ph + i*dh, ow*sw - pw + j*dw], 0 outside the image
//             (the rows of one group are contiguous: the forward GEMM is W_g @ col_g)
//             or, with rows_outer = 1, [groups * R, n, OH*OW]: each row runs over every
//             image of the chunk, so the backward-filter GEMM dw_g = dy_g[K_g, n*P] @ col_gᵀ
//             is one product with B transposed
// R = patch_pad >= Cg*KH*KW: rows past the patch are zeros, so that a patch of, say, 25 values
// becomes 28 and the GEMM gets the multiple of 4 its fastest kernels need.
// 2D grids (see each entry). x is read from element x_off (the first image of this chunk).
// Host side: src/gpu/conv2d.rs. CPU twin: src/cpu/conv2d.rs (direct loops).

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
    flip: u32, // im2col_s1_vec4: read the taps mirrored (backward data)
    rows_outer: u32, // columns [groups * patch_pad, n, OH*OW] (backward filter)
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
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

// Which row of the chunk's columns holds row r (of groups * patch_pad) of image n's patches.
fn column_row(n: u32, r: u32) -> u32 {
    if (p.rows_outer != 0u) {
        return r * p.n + n;
    }
    return n * p.groups * p.patch_pad + r;
}

// Row r of image n's patches, as the entries with one invocation per row (im2col,
// im2col_vec4, im2col_same_vec4) unfold it: `first` its first value in the columns, `ch` the
// source channel and `tap` the kernel tap (i * KW + j) it holds, or `zeros` for a row past its
// group's patch. The divisions that locate the row happen once per row; its OH*OW values
// follow with counters (integer division is slow on CPU adapters). `valid` is false past the
// last row (gid.y * row_stride + gid.x over n * groups * patch_pad).
struct PatchRow {
    valid: bool,
    zeros: bool,
    first: u32,
    n: u32,
    ch: u32,
    tap: u32,
}

fn patch_row(gid: vec3<u32>, values_per_row: u32) -> PatchRow {
    let row = gid.y * p.row_stride + gid.x;
    let rows = p.groups * p.patch_pad;
    let kk = p.kh * p.kw;
    let cg = p.c / p.groups;
    let n = row / rows;
    let r = row % rows;
    let rr = r % p.patch_pad;
    let ch = (r / p.patch_pad) * cg + rr / kk;
    let valid = row < p.n * rows;
    let zeros = rr >= cg * kk;
    return PatchRow(valid, zeros, column_row(n, r) * values_per_row, n, ch, rr % kk);
}

// One invocation per row (see PatchRow).
@compute @workgroup_size(64, 1, 1)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>) {
    let pr = patch_row(gid, p.oh * p.ow);
    if (!pr.valid) {
        return;
    }
    var out = pr.first;
    if (pr.zeros) {
        for (var q = 0u; q < p.oh * p.ow; q++) {
            col[out + q] = 0.0;
        }
        return;
    }
    let i = pr.tap / p.kw;
    let j = pr.tap % p.kw;
    for (var oy = 0u; oy < p.oh; oy++) {
        for (var ox = 0u; ox < p.ow; ox++) {
            col[out] = tap(pr.n, pr.ch, oy, ox, i, j);
            out++;
        }
    }
}

// The same unfolding writing vec4s (a quarter of the store instructions, each a loop over SIMD
// lanes on lavapipe) where a row's OH*OW values are a multiple of 4. The taps are still read
// one by one, found by counters.
@group(0) @binding(4) var<storage, read_write> col4: array<vec4<f32>>;

// The row of a vec4 entry (p.oh * p.ow a multiple of 4) past its group's patch: zeros.
fn zero_quads(first: u32) {
    for (var q = 0u; q < p.oh * p.ow / 4u; q++) {
        col4[first + q] = vec4<f32>(0.0);
    }
}

@compute @workgroup_size(64, 1, 1)
fn im2col_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let quads = p.oh * p.ow / 4u;
    let pr = patch_row(gid, quads);
    if (!pr.valid) {
        return;
    }
    if (pr.zeros) {
        zero_quads(pr.first);
        return;
    }
    let i = pr.tap / p.kw;
    let j = pr.tap % p.kw;
    var out = pr.first;
    var oy = 0u;
    var ox = 0u;
    for (var q = 0u; q < quads; q++) {
        var v = vec4<f32>(0.0);
        for (var l = 0u; l < 4u; l++) {
            v[l] = tap(pr.n, pr.ch, oy, ox, i, j);
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

// im2col_s1_vec4: im2col for stride 1 and dilation 1 where the source rows (W) and the column
// rows (OH*OW, with OW) are whole vec4s, and every horizontal tap offset j - pw lies in
// [-4, 4]. One invocation per (image, source channel, output row, quad of 4 output columns)
// writes all KH*KW taps of its quad: per kernel row i it loads the three aligned vec4s of
// source row oy + i - ph around the quad (the quad's own and its two neighbours, zeros
// outside the image) and cuts each tap's 4 values out of them. That is one vec4 load per
// vec4 written, where im2col_vec4 gathers four values one by one. The invocation of a group's
// last channel also writes the group's padding rows (zeros).
//
// With p.flip = 1 the taps are read mirrored (tap (i, j) from (KH-1-i, KW-1-j)): unfolding dy
// with pads KH-1-ph and KW-1-pw this way gives the columns of the backward-data convolution,
// dx = W' @ cols with W'[c, (k, i, j)] = W[k, c, i, j] (src/gpu/conv2d.rs). Here c, h and w
// are the source's (dy's) sizes, oh and ow the columns' positions (dx's H and W).
// With p.rows_outer = 1 the columns are laid out [groups * patch_pad, n, OH*OW] instead of
// [n, groups * patch_pad, OH*OW]: one row runs over every image of the chunk, so the
// backward-filter product dw = dy [K, n*P] @ colsᵀ is one GEMM with B transposed.
@group(0) @binding(5) var<storage, read> x4: array<vec4<f32>>;

// The 4 values starting s places after the start of m, out of the 12 of (l, m, r).
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
        default: { return r; }
    }
}

@compute @workgroup_size(64, 1, 1)
fn im2col_s1_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let cell = gid.y * p.row_stride + gid.x; // over n * c * oh * (ow / 4)
    let quads = p.ow / 4u;
    if (cell >= p.n * p.c * p.oh * quads) {
        return;
    }
    let q = cell % quads;
    let rest = cell / quads;
    let oy = rest % p.oh;
    let nc = rest / p.oh; // n * c + ch
    let ch = nc % p.c;
    let n = nc / p.c;
    let cg = p.c / p.groups;
    let g = ch / cg;
    let cl = ch % cg;
    let kk = p.kh * p.kw;
    let src_quads = p.w / 4u;
    let positions4 = p.oh * quads; // vec4s per column row
    // Where row r of group g of image n's columns holds this quad: vec4 (r * step + at).
    var at = oy * quads + q;
    var step = positions4;
    if (p.rows_outer != 0u) {
        at += (g * p.patch_pad * p.n + n) * positions4;
        step = p.n * positions4;
    } else {
        at += (n * p.groups + g) * p.patch_pad * positions4;
    }
    let row0 = cl * kk;
    for (var i = 0u; i < p.kh; i++) {
        let fi = select(i, p.kh - 1u - i, p.flip != 0u);
        let iy = i32(oy + fi) - i32(p.ph);
        var l = vec4<f32>(0.0);
        var m = vec4<f32>(0.0);
        var r = vec4<f32>(0.0);
        if (iy >= 0 && iy < i32(p.h)) {
            let base = p.x_off / 4u + (nc * p.h + u32(iy)) * src_quads;
            if (q >= 1u && q - 1u < src_quads) {
                l = x4[base + q - 1u];
            }
            if (q < src_quads) {
                m = x4[base + q];
            }
            if (q + 1u < src_quads) {
                r = x4[base + q + 1u];
            }
        }
        for (var j = 0u; j < p.kw; j++) {
            let fj = select(j, p.kw - 1u - j, p.flip != 0u);
            col4[(row0 + i * p.kw + j) * step + at] = window(l, m, r, i32(fj) - i32(p.pw));
        }
    }
    if (cl + 1u == cg) {
        for (var pad = cg * kk; pad < p.patch_pad; pad++) {
            col4[pad * step + at] = vec4<f32>(0.0);
        }
    }
}

// im2col_same_vec4: im2col for stride 1 and dilation 1 where the output rows are as wide as
// the source's (OW == W: a 3x3 kernel with padding 1, a 5x5 with 2) but not whole vec4s (14
// wide), while every plane is (H*W and OH*OW multiples of 4, W at least 4). Then column row
// (c, i, j) is source plane c shifted by s = (i - ph) * W + (j - pw) places, with the
// positions whose tap falls outside the image zeroed. One invocation per row (as in
// im2col_vec4) walks its quads: each is cut out of the two aligned vec4s that hold places
// [4q + s, 4q + s + 4), then masked by its positions' (oy, ox), kept as vec4 counters. That is
// two vec4 loads and no per-value bounds arithmetic per vec4 written, where im2col_vec4
// gathers the four values one by one. Both column layouts (rows_outer) and the zero rows past
// a group's patch are as in im2col.
@compute @workgroup_size(64, 1, 1)
fn im2col_same_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let quads = p.oh * p.ow / 4u;
    let pr = patch_row(gid, quads);
    if (!pr.valid) {
        return;
    }
    if (pr.zeros) {
        zero_quads(pr.first);
        return;
    }
    var out = pr.first;
    let t = pr.tap;
    let di = i32(t / p.kw) - i32(p.ph);
    let dj = i32(t % p.kw) - i32(p.pw);
    let shift = di * i32(p.w) + dj;
    let b = shift & 3; // places into the first of the two vec4s
    // The vec4 holding place 4q + s of the plane, q = 0 (x_off and the planes are whole vec4s).
    var at = i32((p.x_off + (pr.n * p.c + pr.ch) * p.h * p.w) / 4u) + (shift >> 2u);
    let last = i32(arrayLength(&x4)) - 1;
    let h = vec4<i32>(i32(p.h));
    let w = vec4<i32>(i32(p.w));
    var oy = vec4<i32>(di);
    var ox = vec4<i32>(0, 1, 2, 3) + vec4<i32>(dj);
    // Taps at ox >= W + dj wrap to the next output row (at most once per quad: W >= 4).
    for (var q = 0u; q < quads; q++) {
        let wrap = ox >= w + vec4<i32>(dj);
        ox = select(ox, ox - w, wrap);
        oy = select(oy, oy + vec4<i32>(1), wrap);
        let lo = x4[clamp(at, 0, last)];
        let hi = x4[clamp(at + 1, 0, last)];
        var v = lo;
        if (b == 1) {
            v = vec4<f32>(lo.yzw, hi.x);
        } else if (b == 2) {
            v = vec4<f32>(lo.zw, hi.xy);
        } else if (b == 3) {
            v = vec4<f32>(lo.w, hi.xyz);
        }
        // The taps' own row and column (oy, ox here already carry di and dj).
        let inside = (oy >= vec4<i32>(0)) & (oy < h) & (ox >= vec4<i32>(0)) & (ox < w);
        col4[out] = select(vec4<f32>(0.0), v, inside);
        out++;
        at++;
        ox += vec4<i32>(4);
    }
}
