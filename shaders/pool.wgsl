// pool — 2D pooling over NCHW planes (PyTorch semantics, ceil_mode = false), forward and
// backward side by side. One invocation per output element (forward) or per input element
// (backward, a gather: no atomics).
//   max_pool_forward:   y = max over the window (padding never wins; NaN wins, as in
//                       PyTorch); idx = position of the first maximum in its plane (as f32)
//   max_pool_backward:  dx[h, w] = sum of dy over the windows whose idx is (h, w)
//   max_pool_backward_tiled: the same for windows that tile the input (stride = kernel, no
//                       padding): one invocation per window writes its kh*kw gradients
//                       (4x fewer loads than the gather; dx is cleared first for the edges)
//   max_pool_2x2_vec4, max_pool_2x2_backward_vec4: the two above for 2x2 windows with stride
//                       2 and no padding on planes whose width is a multiple of 4, one
//                       invocation per row of windows (two neighbouring windows at a time),
//                       reading and writing whole vec2s and vec4s (each storage access is a loop over SIMD lanes on
//                       lavapipe); max_pool_2x2_vec2 and max_pool_2x2_backward_vec2 for
//                       even widths that are not a multiple of 4, one row of windows per
//                       invocation
//   avg_pool_forward:   y = sum over the window / divisor, where the divisor counts the
//                       window clipped to the padded input (count_include_pad) or to the input
//   avg_pool_backward:  dx[h, w] = sum over windows containing (h, w) of dy / divisor
//   global_avg_forward: y[plane] = mean of the plane;  global_avg_backward: dx = dy[plane] / (H*W)
// Host side: src/gpu/pool.rs. CPU twin: src/cpu/pool.rs.

struct PoolParams {
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    count_include_pad: u32,
    total: u32,
    row_stride: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: PoolParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> aux: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read_write> idx_out: array<f32>;

fn flat(gid: vec3<u32>) -> u32 {
    return gid.y * p.row_stride + gid.x;
}

@compute @workgroup_size(256, 1, 1)
fn max_pool_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat(gid);
    if (i >= p.total) {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let plane = i / (p.ow * p.oh);
    let y0 = i32(oy * p.sh) - i32(p.ph);
    let x0 = i32(ox * p.sw) - i32(p.pw);
    var best = 0.0;
    var best_at = -1;
    for (var a = 0; a < i32(p.kh); a++) {
        let yy = y0 + a;
        if (yy < 0 || yy >= i32(p.h)) {
            continue;
        }
        for (var b = 0; b < i32(p.kw); b++) {
            let xx = x0 + b;
            if (xx < 0 || xx >= i32(p.w)) {
                continue;
            }
            let at = yy * i32(p.w) + xx;
            let v = src[plane * p.h * p.w + u32(at)];
            if (best_at < 0 || v > best || v != v) {
                best = v;
                best_at = at;
            }
        }
    }
    dst[i] = best;
    idx_out[i] = f32(best_at);
}

// Output rows (or columns) whose windows cover input coordinate c: [lo, hi], maybe empty.
fn covering(c: u32, k: u32, s: u32, pad: u32, n_out: u32) -> vec2<i32> {
    let first = i32(c + pad) - i32(k) + 1; // the lowest window start that still reaches c
    let lo = select(0, (first + i32(s) - 1) / i32(s), first > 0);
    let hi = min(i32(c + pad) / i32(s), i32(n_out) - 1);
    return vec2<i32>(lo, hi);
}

@compute @workgroup_size(256, 1, 1)
fn max_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat(gid);
    if (i >= p.total) {
        return;
    }
    let xx = i % p.w;
    let yy = (i / p.w) % p.h;
    let plane = i / (p.w * p.h);
    let me = f32(yy * p.w + xx);
    let rows = covering(yy, p.kh, p.sh, p.ph, p.oh);
    let cols = covering(xx, p.kw, p.sw, p.pw, p.ow);
    var acc = 0.0;
    for (var oy = rows.x; oy <= rows.y; oy++) {
        for (var ox = cols.x; ox <= cols.y; ox++) {
            let o = (plane * p.oh + u32(oy)) * p.ow + u32(ox);
            if (aux[o] == me) {
                acc += src[o];
            }
        }
    }
    dst[i] = acc;
}

// src = dy, aux = idx, dst = dx (over outputs)
@compute @workgroup_size(256, 1, 1)
fn max_pool_backward_tiled(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat(gid);
    if (i >= p.total) {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let plane = i / (p.ow * p.oh);
    let g = src[i];
    let at = u32(aux[i]);
    for (var a = 0u; a < p.kh; a++) {
        for (var b = 0u; b < p.kw; b++) {
            let pos = (oy * p.sh + a) * p.w + ox * p.sw + b;
            dst[plane * p.h * p.w + pos] = select(0.0, g, pos == at);
        }
    }
}

// The first maximum of a 2x2 window, visited as the loops of max_pool_forward do: a at
// position `at`, b at + 1, then c at + w, d at + w + 1 (a NaN replaces the best so far).
fn first_max4(a: f32, b: f32, c: f32, d: f32, at: f32, w: f32) -> vec2<f32> {
    var best = vec2<f32>(a, at);
    if (b > best.x || b != b) {
        best = vec2<f32>(b, at + 1.0);
    }
    if (c > best.x || c != c) {
        best = vec2<f32>(c, at + w);
    }
    if (d > best.x || d != d) {
        best = vec2<f32>(d, at + w + 1.0);
    }
    return best;
}

// Row `row` (plane * OH + oy) of 2x2/2 windows over input rows read as vectors of `lanes`
// values: the vector index of its top input row's start, and that position within the plane.
fn window_row(row: u32, lanes: u32) -> vec2<u32> {
    let oy = row % p.oh;
    let plane = row / p.oh;
    return vec2<u32>((plane * p.h + 2u * oy) * (p.w / lanes), 2u * oy * p.w);
}

@group(0) @binding(5) var<storage, read> src4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> dst2: array<vec2<f32>>;
@group(0) @binding(7) var<storage, read_write> idx2: array<vec2<f32>>;

// One invocation per row oy of outputs, walking its pairs (ox = 2 * ox2, 2 * ox2 + 1) with
// counters: the four inputs of both windows in each of the two input rows are one vec4.
// total = planes * OH.
@compute @workgroup_size(256, 1, 1)
fn max_pool_2x2_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = flat(gid); // plane * oh + oy
    if (row >= p.total) {
        return;
    }
    let quads = p.w / 4u; // vec4s an input row
    let o = window_row(row, 4u);
    var top = o.x;
    var at = f32(o.y);
    let w = f32(p.w);
    var out = row * (p.ow / 2u);
    for (var ox2 = 0u; ox2 < p.ow / 2u; ox2++) {
        let t = src4[top];
        let b = src4[top + quads];
        let left = first_max4(t.x, t.y, b.x, b.y, at, w);
        let right = first_max4(t.z, t.w, b.z, b.w, at + 2.0, w);
        dst2[out] = vec2<f32>(left.x, right.x);
        idx2[out] = vec2<f32>(left.y, right.y);
        top++;
        at += 4.0;
        out++;
    }
}

@group(0) @binding(8) var<storage, read> src2: array<vec2<f32>>;
@group(0) @binding(9) var<storage, read> aux2: array<vec2<f32>>;
@group(0) @binding(10) var<storage, read_write> dst4: array<vec4<f32>>;

// src = dy, aux = idx, dst = dx, as in max_pool_backward_tiled; one invocation per row of
// outputs, each pair of windows writing their two rows of 4 gradients. total = planes * OH.
@compute @workgroup_size(256, 1, 1)
fn max_pool_2x2_backward_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = flat(gid); // plane * oh + oy
    if (row >= p.total) {
        return;
    }
    let quads = p.w / 4u;
    let o = window_row(row, 4u);
    var top = o.x;
    var pos = f32(o.y);
    let w = f32(p.w);
    var i = row * (p.ow / 2u);
    for (var ox2 = 0u; ox2 < p.ow / 2u; ox2++) {
        let g = src2[i];
        let at = aux2[i];
        let bottom = pos + w;
        dst4[top] = vec4<f32>(
            select(0.0, g.x, at.x == pos),
            select(0.0, g.x, at.x == pos + 1.0),
            select(0.0, g.y, at.y == pos + 2.0),
            select(0.0, g.y, at.y == pos + 3.0),
        );
        dst4[top + quads] = vec4<f32>(
            select(0.0, g.x, at.x == bottom),
            select(0.0, g.x, at.x == bottom + 1.0),
            select(0.0, g.y, at.y == bottom + 2.0),
            select(0.0, g.y, at.y == bottom + 3.0),
        );
        top++;
        pos += 4.0;
        i++;
    }
}

// The same two for even widths that are not a multiple of 4 (rows then start on a vec2, not
// always a vec4): one invocation per row of windows, each window's two input rows one vec2
// each, the windows walked with counters (no division per element). total = planes * OH.
@group(0) @binding(11) var<storage, read> src2w: array<vec2<f32>>;

@compute @workgroup_size(256, 1, 1)
fn max_pool_2x2_vec2(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = flat(gid); // plane * oh + oy
    if (row >= p.total) {
        return;
    }
    let half = p.w / 2u; // vec2s an input row
    let o = window_row(row, 2u);
    var top = o.x;
    var at = f32(o.y);
    let w = f32(p.w);
    var out = row * p.ow;
    for (var ox = 0u; ox < p.ow; ox++) {
        let t = src2w[top];
        let b = src2w[top + half];
        let best = first_max4(t.x, t.y, b.x, b.y, at, w);
        dst[out] = best.x;
        idx_out[out] = best.y;
        top++;
        at += 2.0;
        out++;
    }
}

// src = dy, aux = idx, dst = dx: each window of the row writes its two rows of 2 gradients.
@compute @workgroup_size(256, 1, 1)
fn max_pool_2x2_backward_vec2(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = flat(gid); // plane * oh + oy
    if (row >= p.total) {
        return;
    }
    let half = p.w / 2u;
    let o = window_row(row, 2u);
    var top = o.x;
    var pos = f32(o.y);
    let w = f32(p.w);
    var i = row * p.ow;
    for (var ox = 0u; ox < p.ow; ox++) {
        let g = src[i];
        let at = aux[i];
        dst2[top] = vec2<f32>(select(0.0, g, at == pos), select(0.0, g, at == pos + 1.0));
        dst2[top + half] = vec2<f32>(select(0.0, g, at == pos + w), select(0.0, g, at == pos + w + 1.0));
        top++;
        pos += 2.0;
        i++;
    }
}

fn avg_divisor(oy: u32, ox: u32) -> f32 {
    let hs = i32(oy * p.sh) - i32(p.ph);
    let ws = i32(ox * p.sw) - i32(p.pw);
    let he = min(hs + i32(p.kh), i32(p.h + p.ph));
    let we = min(ws + i32(p.kw), i32(p.w + p.pw));
    if (p.count_include_pad != 0u) {
        return f32((he - hs) * (we - ws));
    }
    return f32((min(he, i32(p.h)) - max(hs, 0)) * (min(we, i32(p.w)) - max(ws, 0)));
}

@compute @workgroup_size(256, 1, 1)
fn avg_pool_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat(gid);
    if (i >= p.total) {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let plane = i / (p.ow * p.oh);
    let y0 = i32(oy * p.sh) - i32(p.ph);
    let x0 = i32(ox * p.sw) - i32(p.pw);
    var acc = 0.0;
    for (var yy = max(y0, 0); yy < min(y0 + i32(p.kh), i32(p.h)); yy++) {
        for (var xx = max(x0, 0); xx < min(x0 + i32(p.kw), i32(p.w)); xx++) {
            acc += src[(plane * p.h + u32(yy)) * p.w + u32(xx)];
        }
    }
    dst[i] = acc / avg_divisor(oy, ox);
}

@compute @workgroup_size(256, 1, 1)
fn avg_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat(gid);
    if (i >= p.total) {
        return;
    }
    let xx = i % p.w;
    let yy = (i / p.w) % p.h;
    let plane = i / (p.w * p.h);
    let rows = covering(yy, p.kh, p.sh, p.ph, p.oh);
    let cols = covering(xx, p.kw, p.sw, p.pw, p.ow);
    var acc = 0.0;
    for (var oy = rows.x; oy <= rows.y; oy++) {
        for (var ox = cols.x; ox <= cols.y; ox++) {
            acc += src[(plane * p.oh + u32(oy)) * p.ow + u32(ox)] / avg_divisor(u32(oy), u32(ox));
        }
    }
    dst[i] = acc;
}

@compute @workgroup_size(256, 1, 1)
fn global_avg_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let plane = flat(gid);
    if (plane >= p.total) {
        return;
    }
    let hw = p.h * p.w;
    var acc = 0.0;
    for (var k = 0u; k < hw; k++) {
        acc += src[plane * hw + k];
    }
    dst[plane] = acc / f32(hw);
}

@compute @workgroup_size(256, 1, 1)
fn global_avg_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat(gid);
    if (i >= p.total) {
        return;
    }
    dst[i] = src[i / (p.h * p.w)] / f32(p.h * p.w);
}
