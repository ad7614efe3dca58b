// col2im — folds column gradients back onto the image: the adjoint of im2col.
//   dx[n, c, y, x] = sum over taps (i, j) and outputs (oh, ow) with
//                    oh*sh - ph + i*dh == y and ow*sw - pw + j*dw == x  of  dcol[n, (c, i, j), (oh, ow)]
// Written as a gather (no atomics), into dx from element x_off.
// Host side: src/gpu/conv2d.rs. CPU twin: src/cpu/conv2d.rs (backward_data).

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
    patch_pad: u32, // unused here (dcol rows are not padded)
    flip: u32,
    rows_outer: u32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

@group(0) @binding(0) var<uniform> p: ConvParams;
@group(0) @binding(1) var<storage, read> dcol: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

// Output row (or column) that tap offset t lands on, or -1: t must be a non-negative multiple
// of the stride below the output size. Stride 1 needs no division (slow on CPU adapters).
fn out_pos(t: i32, s: u32, n_out: u32) -> i32 {
    if (t < 0) {
        return -1;
    }
    var o = u32(t);
    if (s != 1u) {
        if (o % s != 0u) {
            return -1;
        }
        o = o / s;
    }
    return select(-1, i32(o), o < n_out);
}

// One invocation per row (image, channel, y) of dx, walking x with a counter. With dilation 1
// only the taps that land on an output are visited: for stride s, tap i reaches row y from
// output row (y + ph - i) / s exactly when i = (y + ph) mod s, + s, + 2s, ..., the output row
// falling by one each step (the same along x, the remainder and quotient kept as counters).
// Other dilations try every tap.
@compute @workgroup_size(64, 1, 1)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.y * p.row_stride + gid.x; // over n * C * H
    if (row >= p.n * p.c * p.h) {
        return;
    }
    let yy = i32(row % p.h);
    let ch = (row / p.h) % p.c;
    let n = row / (p.h * p.c);
    let positions = p.oh * p.ow;
    let row0 = (n * p.c + ch) * p.kh * p.kw;
    var out = p.x_off + row * p.w;
    if (p.dh == 1u && p.dw == 1u) {
        let ty = u32(yy) + p.ph;
        let i0 = ty % p.sh;
        let oy0 = i32(ty / p.sh);
        var j0 = p.pw % p.sw; // (x + pw) mod sw
        var ox0 = i32(p.pw / p.sw); // (x + pw) / sw
        for (var xx = 0u; xx < p.w; xx++) {
            var acc = 0.0;
            var oy = oy0;
            for (var i = i0; i < p.kh; i += p.sh) {
                if (oy >= 0 && oy < i32(p.oh)) {
                    var ox = ox0;
                    for (var j = j0; j < p.kw; j += p.sw) {
                        if (ox >= 0 && ox < i32(p.ow)) {
                            acc += dcol[(row0 + i * p.kw + j) * positions + u32(oy) * p.ow + u32(ox)];
                        }
                        ox--;
                    }
                }
                oy--;
            }
            dx[out] = acc;
            out++;
            j0++;
            if (j0 == p.sw) {
                j0 = 0u;
                ox0++;
            }
        }
        return;
    }
    for (var xx = 0; xx < i32(p.w); xx++) {
        var acc = 0.0;
        for (var i = 0u; i < p.kh; i++) {
            let oy = out_pos(yy + i32(p.ph) - i32(i * p.dh), p.sh, p.oh);
            if (oy < 0) {
                continue;
            }
            for (var j = 0u; j < p.kw; j++) {
                let ox = out_pos(xx + i32(p.pw) - i32(j * p.dw), p.sw, p.ow);
                if (ox >= 0) {
                    acc += dcol[(row0 + i * p.kw + j) * positions + u32(oy) * p.ow + u32(ox)];
                }
            }
        }
        dx[out] = acc;
        out++;
    }
}
