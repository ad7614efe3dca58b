// matmul_v1_naive — one invocation per output element, no reuse at all.
// The baseline every faster variant is measured against (see `wgtrain bench matmul`).
//
//   C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b]      for b in [batch_base, batch_base + groups.z)
//   op(A) is M x K: A is stored [M, K], or [K, M] when TRANS_A
//   op(B) is K x N: B is stored [K, N], or [N, K] when TRANS_B
// C is never read when beta == 0 (it may hold garbage, as in BLAS).
// Host side: src/gpu/matmul.rs. CPU twin: src/cpu/matmul.rs.

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

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let col = p.n_base + wid.x * 16u + lid.x;
    let row = p.m_base + wid.y * 16u + lid.y;
    let batch = p.batch_base + wid.z;
    if (row >= p.m || col >= p.n) {
        return;
    }
    // Element (row, kk) of op(A) is at a_idx + kk * a_step; likewise for op(B).
    var a_idx = p.a_off + batch * p.stride_a + select(row * p.k, row, TRANS_A);
    let a_step = select(1u, p.m, TRANS_A);
    var b_idx = p.b_off + batch * p.stride_b + select(col, col * p.k, TRANS_B);
    let b_step = select(p.n, 1u, TRANS_B);
    var acc = 0.0;
    for (var kk = 0u; kk < p.k; kk++) {
        acc = fma(a[a_idx], b[b_idx], acc);
        a_idx += a_step;
        b_idx += b_step;
    }
    let out = p.c_off + batch * p.stride_c + row * p.n + col;
    var v = p.alpha * acc;
    if (p.beta != 0.0) {
        v = fma(p.beta, c[out], v);
    }
    c[out] = v;
}
