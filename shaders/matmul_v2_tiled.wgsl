// matmul_v2_tiled — shared-memory tiling: a 64x64 tile of C per workgroup of 16x16 invocations,
// each invocation accumulating a 4x4 block (strided by 16 so neighbours touch neighbouring
// words), K walked in slabs of 16 staged through workgroup memory.
// Fast on discrete GPUs; slow on CPU-type adapters (lavapipe), where every workgroupBarrier()
// is a full synchronisation of the emulated invocations — there use matmul_v3_regblock.
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

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> a_tile: array<f32, 1024>; // [TK][TM]
var<workgroup> b_tile: array<f32, 1024>; // [TK][TN]

fn load_a(base: u32, row: u32, kk: u32) -> f32 {
    if (row >= p.m || kk >= p.k) {
        return 0.0;
    }
    return a[base + select(row * p.k + kk, kk * p.m + row, TRANS_A)];
}

fn load_b(base: u32, kk: u32, col: u32) -> f32 {
    if (kk >= p.k || col >= p.n) {
        return 0.0;
    }
    return b[base + select(kk * p.n + col, col * p.k + kk, TRANS_B)];
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let batch = p.batch_base + wid.z;
    let row0 = p.m_base + wid.y * TM;
    let col0 = p.n_base + wid.x * TN;
    let a_base = p.a_off + batch * p.stride_a;
    let b_base = p.b_off + batch * p.stride_b;
    let tid = lid.y * 16u + lid.x;

    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }

    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        // 256 invocations stage 1024 values of each operand: 4 apiece.
        for (var i = 0u; i < 4u; i++) {
            let e = tid + i * 256u;
            let kk = e / TM;
            let mm = e % TM;
            a_tile[e] = load_a(a_base, row0 + mm, k0 + kk);
            let nn = e % TN;
            b_tile[e] = load_b(b_base, k0 + kk, col0 + nn);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                av[i] = a_tile[kk * TM + lid.y + 16u * i];
                bv[i] = b_tile[kk * TN + lid.x + 16u * i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(av[i], bv[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let row = row0 + lid.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lid.x + 16u * j;
            if (row < p.m && col < p.n) {
                let out = p.c_off + batch * p.stride_c + row * p.n + col;
                var v = p.alpha * acc[i * 4u + j];
                if (p.beta != 0.0) {
                    v = fma(p.beta, c[out], v);
                }
                c[out] = v;
            }
        }
    }
}
