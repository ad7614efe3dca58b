// matmul_v3_regblock — register blocking without workgroup memory and without barriers:
// each invocation computes a 4x4 block of C straight from global memory (a 32x32 tile per
// 8x8 workgroup). Out-of-range rows and columns are clamped for loading, so the inner loop
// has no branches, and masked only on store.
// Made for CPU-type adapters (lavapipe/llvmpipe), where invocations are SIMD lanes, caches
// do the staging, and a workgroupBarrier() costs more than the arithmetic it protects.
//
//   C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b]   (see matmul_v1_naive.wgsl for the contract)

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

override TRANS_A: bool = false;
override TRANS_B: bool = false;

@group(0) @binding(0) var<uniform> p: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let batch = p.batch_base + wid.z;
    let row0 = p.m_base + wid.y * 32u + lid.y * 4u;
    let col0 = p.n_base + wid.x * 32u + lid.x * 4u;

    // Start index and per-k step of rows row0..row0+3 of op(A) and columns col0..col0+3 of op(B).
    let a_step = select(1u, p.m, TRANS_A);
    let b_step = select(p.n, 1u, TRANS_B);
    var ai: array<u32, 4>;
    var bi: array<u32, 4>;
    for (var i = 0u; i < 4u; i++) {
        let r = min(row0 + i, p.m - 1u);
        ai[i] = p.a_off + batch * p.stride_a + select(r * p.k, r, TRANS_A);
        let cc = min(col0 + i, p.n - 1u);
        bi[i] = p.b_off + batch * p.stride_b + select(cc, cc * p.k, TRANS_B);
    }

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kk = 0u; kk < p.k; kk++) {
        let off_a = kk * a_step;
        let off_b = kk * b_step;
        let bv = vec4<f32>(b[bi[0] + off_b], b[bi[1] + off_b], b[bi[2] + off_b], b[bi[3] + off_b]);
        acc0 = fma(vec4<f32>(a[ai[0] + off_a]), bv, acc0);
        acc1 = fma(vec4<f32>(a[ai[1] + off_a]), bv, acc1);
        acc2 = fma(vec4<f32>(a[ai[2] + off_a]), bv, acc2);
        acc3 = fma(vec4<f32>(a[ai[3] + off_a]), bv, acc3);
    }

    var acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + j;
            if (row < p.m && col < p.n) {
                let out = p.c_off + batch * p.stride_c + row * p.n + col;
                var v = p.alpha * acc[i][j];
                if (p.beta != 0.0) {
                    v = fma(p.beta, c[out], v);
                }
                c[out] = v;
            }
        }
    }
}
