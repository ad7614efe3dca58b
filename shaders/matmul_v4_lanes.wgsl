// matmul_v4_lanes — for CPU-type adapters whose invocations are SIMD lanes (llvmpipe).
//
// On llvmpipe every storage-buffer load instruction becomes a loop over the 8 lanes, whatever
// its address, so what matters is how many *load instructions* feed each FMA. Here:
//   - a workgroup is one row of LANES invocations and owns 8 rows of C;
//   - each lane owns 8 columns of C (two vec4 blocks, LANES vec4s apart), so a workgroup
//     covers 8 * LANES columns; the host picks LANES (8..64) to waste fewest lanes on narrow C;
//   - per 4 steps of k a lane issues 8 vec4 loads of B and 8 vec4 loads of A (4 values of k
//     at once) for 256 multiply-adds: 16 loads where v3 needs 128.
// Requires K, N, the offsets and the batch strides to be multiples of 4, and neither operand
// transposed; the host falls back to v3
// otherwise (MatmulVariant::applicable).
//
//   C[b] = alpha * A[b] * B[b] + beta * C[b]   (see matmul_v1_naive.wgsl for the contract)

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    batch_base: u32,
    m_base: u32,
    n_base: u32,
    stride_a: u32,
    stride_b: u32,
    stride_c: u32,
    alpha: f32,
    beta: f32,
    a_off: u32, // element offsets of A, B and C in their buffers
    b_off: u32,
    c_off: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

@group(0) @binding(0) var<uniform> p: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

const ROWS: u32 = 8u;
override LANES: u32 = 64u;

fn store(idx: u32, acc: vec4<f32>) {
    var v = p.alpha * acc;
    if (p.beta != 0.0) {
        v = fma(vec4<f32>(p.beta), c[idx], v);
    }
    c[idx] = v;
}

@compute @workgroup_size(LANES, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let batch = p.batch_base + wid.z;
    let n4 = p.n / 4u;
    let k4s = p.k / 4u;
    let col4 = p.n_base / 4u + wid.x * 2u * LANES + lid.x;
    let row0 = p.m_base + wid.y * ROWS;

    // Columns beyond N are clamped for loading and skipped on store.
    var b_idx = (p.b_off + batch * p.stride_b) / 4u + min(col4, n4 - 1u);
    var d_idx = (p.b_off + batch * p.stride_b) / 4u + min(col4 + LANES, n4 - 1u);
    var ai: array<u32, ROWS>;
    var acc: array<vec4<f32>, ROWS>;
    var acd: array<vec4<f32>, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        ai[r] = (p.a_off + batch * p.stride_a + min(row0 + r, p.m - 1u) * p.k) / 4u;
        acc[r] = vec4<f32>(0.0);
        acd[r] = vec4<f32>(0.0);
    }

    for (var k4 = 0u; k4 < k4s; k4++) {
        let b0 = b[b_idx];
        let b1 = b[b_idx + n4];
        let b2 = b[b_idx + 2u * n4];
        let b3 = b[b_idx + 3u * n4];
        let d0 = b[d_idx];
        let d1 = b[d_idx + n4];
        let d2 = b[d_idx + 2u * n4];
        let d3 = b[d_idx + 3u * n4];
        b_idx += 4u * n4;
        d_idx += 4u * n4;
        for (var r = 0u; r < ROWS; r++) {
            let av = a[ai[r] + k4];
            acc[r] = fma(vec4<f32>(av.x), b0, acc[r]);
            acc[r] = fma(vec4<f32>(av.y), b1, acc[r]);
            acc[r] = fma(vec4<f32>(av.z), b2, acc[r]);
            acc[r] = fma(vec4<f32>(av.w), b3, acc[r]);
            acd[r] = fma(vec4<f32>(av.x), d0, acd[r]);
            acd[r] = fma(vec4<f32>(av.y), d1, acd[r]);
            acd[r] = fma(vec4<f32>(av.z), d2, acd[r]);
            acd[r] = fma(vec4<f32>(av.w), d3, acd[r]);
        }
    }

    for (var r = 0u; r < ROWS; r++) {
        let row = row0 + r;
        if (row < p.m) {
            let base = (p.c_off + batch * p.stride_c) / 4u + row * n4;
            if (col4 < n4) {
                store(base + col4, acc[r]);
            }
            if (col4 + LANES < n4) {
                store(base + col4 + LANES, acd[r]);
            }
        }
    }
}
