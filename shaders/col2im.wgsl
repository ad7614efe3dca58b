// col2im — folds column gradients back onto the image: the adjoint of im2col.
//   dx[n, c, y, x] = sum over taps (i, j) and outputs (oh, ow) with
//                    oh*sh - ph + i*dh == y and ow*sw - pw + j*dw == x  of  dcol[n, (c, i, j), (oh, ow)]
// Written as a gather (one invocation per dx element, no atomics), into dx from element x_off.
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
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: ConvParams;
@group(0) @binding(1) var<storage, read> dcol: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.y * p.row_stride + gid.x;
    if (idx >= p.total) {
        return;
    }
    let xx = i32(idx % p.w);
    let yy = i32((idx / p.w) % p.h);
    let ch = (idx / (p.w * p.h)) % p.c;
    let n = idx / (p.w * p.h * p.c);
    let positions = p.oh * p.ow;
    let row0 = (n * p.c + ch) * p.kh * p.kw;
    var acc = 0.0;
    for (var i = 0u; i < p.kh; i++) {
        let ty = yy + i32(p.ph) - i32(i * p.dh);
        if (ty < 0 || ty % i32(p.sh) != 0) {
            continue;
        }
        let oy = u32(ty) / p.sh;
        if (oy >= p.oh) {
            continue;
        }
        for (var j = 0u; j < p.kw; j++) {
            let tx = xx + i32(p.pw) - i32(j * p.dw);
            if (tx < 0 || tx % i32(p.sw) != 0) {
                continue;
            }
            let ox = u32(tx) / p.sw;
            if (ox >= p.ow) {
                continue;
            }
            acc += dcol[(row0 + i * p.kw + j) * positions + oy * p.ow + ox];
        }
    }
    dx[p.x_off + idx] = acc;
}
