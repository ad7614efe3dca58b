// matmul_v4_lanes — for CPU-type adapters whose invocations are SIMD lanes (llvmpipe).
//
// On llvmpipe every storage-buffer load instruction becomes a loop over the 8 lanes, whatever
// its address, so what matters is how many *load instructions* feed each FMA. Here:
//   - a workgroup is one row of LANES invocations and owns 8 rows of C;
//   - each lane owns 8 columns of C (two vec4 blocks, LANES vec4s apart), so a workgroup
//     covers 8 * LANES columns; the host sets LANES per device (8 on CPU adapters, one SIMD
//     group of llvmpipe's, so a workgroup is one subgroup; 64 elsewhere);
//   - per 4 steps of k a lane issues 8 vec4 loads of B and 8 vec4 loads of A (4 values of k
//     at once) for 256 multiply-adds: 16 loads where v3 needs 128.
// Requires K, N, the offsets and the batch strides to be multiples of 4; the host falls back
// to v3 otherwise (MatmulVariant::applicable). Transposed operands have their own loops:
//   - TRANS_A (A stored K x M): per step of k, the 8 rows of a lane are two vec4 loads of A's
//     row k (needs M a multiple of 4 too), each value broadcast against B's vec4s;
//   - TRANS_B (B stored N x K): each of a lane's 8 columns is one vec4 load of 4 values of k
//     from B's row, and each C element gathers dot(A's 4 values, B's 4 values);
//   so both keep 16 loads per 256 multiply-adds. Both transposed: v3.
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
override TRANS_A: bool = false;
override TRANS_B: bool = false;

// acc[0..4] += lo.xyzw * bk and acc[4..8] += hi.xyzw * bk: one k of 8 rows (A transposed).
fn rank1(acc: ptr<function, array<vec4<f32>, ROWS>>, lo: vec4<f32>, hi: vec4<f32>, bk: vec4<f32>) {
    (*acc)[0] = fma(vec4<f32>(lo.x), bk, (*acc)[0]);
    (*acc)[1] = fma(vec4<f32>(lo.y), bk, (*acc)[1]);
    (*acc)[2] = fma(vec4<f32>(lo.z), bk, (*acc)[2]);
    (*acc)[3] = fma(vec4<f32>(lo.w), bk, (*acc)[3]);
    (*acc)[4] = fma(vec4<f32>(hi.x), bk, (*acc)[4]);
    (*acc)[5] = fma(vec4<f32>(hi.y), bk, (*acc)[5]);
    (*acc)[6] = fma(vec4<f32>(hi.z), bk, (*acc)[6]);
    (*acc)[7] = fma(vec4<f32>(hi.w), bk, (*acc)[7]);
}

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

    var acc: array<vec4<f32>, ROWS>;
    var acd: array<vec4<f32>, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        acc[r] = vec4<f32>(0.0);
        acd[r] = vec4<f32>(0.0);
    }
    let a_base = (p.a_off + batch * p.stride_a) / 4u;
    let b_base = (p.b_off + batch * p.stride_b) / 4u;

    if (TRANS_B) {
        // B is N x K: each column is a row of B, read 4 values of k at a time. Columns beyond
        // N (and rows beyond M) are clamped for loading and skipped on store.
        var bi: array<u32, 8>;
        for (var j = 0u; j < 4u; j++) {
            bi[j] = b_base + min(col4 * 4u + j, p.n - 1u) * k4s;
            bi[j + 4u] = b_base + min((col4 + LANES) * 4u + j, p.n - 1u) * k4s;
        }
        var ai: array<u32, ROWS>;
        for (var r = 0u; r < ROWS; r++) {
            ai[r] = a_base + min(row0 + r, p.m - 1u) * k4s;
        }
        for (var k4 = 0u; k4 < k4s; k4++) {
            let b0 = b[bi[0] + k4];
            let b1 = b[bi[1] + k4];
            let b2 = b[bi[2] + k4];
            let b3 = b[bi[3] + k4];
            let d0 = b[bi[4] + k4];
            let d1 = b[bi[5] + k4];
            let d2 = b[bi[6] + k4];
            let d3 = b[bi[7] + k4];
            for (var r = 0u; r < ROWS; r++) {
                let av = a[ai[r] + k4];
                acc[r] += vec4<f32>(dot(av, b0), dot(av, b1), dot(av, b2), dot(av, b3));
                acd[r] += vec4<f32>(dot(av, d0), dot(av, d1), dot(av, d2), dot(av, d3));
            }
        }
    } else {
        // Columns beyond N are clamped for loading and skipped on store.
        var b_idx = b_base + min(col4, n4 - 1u);
        var d_idx = b_base + min(col4 + LANES, n4 - 1u);
        if (TRANS_A) {
            // A is K x M: rows row0..row0+8 of step k are two vec4s of A's row k.
            let m4 = p.m / 4u;
            var lo_idx = a_base + min(row0 / 4u, m4 - 1u);
            var hi_idx = a_base + min(row0 / 4u + 1u, m4 - 1u);
            for (var k = 0u; k < p.k; k++) {
                let lo = a[lo_idx];
                let hi = a[hi_idx];
                rank1(&acc, lo, hi, b[b_idx]);
                rank1(&acd, lo, hi, b[d_idx]);
                lo_idx += m4;
                hi_idx += m4;
                b_idx += n4;
                d_idx += n4;
            }
        } else {
            var ai: array<u32, ROWS>;
            for (var r = 0u; r < ROWS; r++) {
                ai[r] = a_base + min(row0 + r, p.m - 1u) * k4s;
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
