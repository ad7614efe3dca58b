// dropout — inverted dropout with a counter-based random generator: element i of step `step`
// of a run seeded with `seed` is kept when hash(i, key) >= threshold, where the key comes
// from (seed, step) (src/ops.rs: dropout_keys) and threshold = p * 2^32. Nothing is stored:
// the backward recomputes the same mask, and the CPU twin reproduces it bit for bit.
//   forward:  y  = x  * scale  where kept, else 0      scale = 1 / (1 - p)
//   backward: dx = dy * scale  where kept, else 0
// Host side: src/gpu/elementwise.rs. CPU twin: src/cpu/dropout.rs.

struct DropoutParams {
    n: u32,
    row_stride: u32,
    threshold: u32,
    scale: f32,
    key1: u32,
    key2: u32,
    base: u32, // index of this dispatch's first element (chunked dispatches)
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: DropoutParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// "lowbias32" integer mixer (C. Wellons): a bijection on u32 with low bias.
fn mix(v: u32) -> u32 {
    var h = v;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

fn kept(i: u32) -> bool {
    return mix(mix(i + p.key1) ^ p.key2) >= p.threshold;
}

// out = y = dropout(x); also the backward, out = dx = dropout(dy), with the same mask.
@compute @workgroup_size(256, 1, 1)
fn dropout(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if (i < p.n) {
        out[i] = select(0.0, x[i] * p.scale, kept(p.base + i));
    }
}
