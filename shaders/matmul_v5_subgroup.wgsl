// matmul_v5_subgroup — v4's layout with A's rows shared through the subgroup (llvmpipe).
//
// On llvmpipe every storage-buffer load is a loop over the 8 SIMD lanes of a subgroup, even
// when all lanes read the same address, so in v4 each lane loading the same rows of A is 8
// times the work of one load. Here a workgroup is one row of LANES invocations that owns 16
// rows of C, and each lane owns 4 columns (one vec4). Per 4 steps of k:
//   - lane s of each subgroup loads 4 values of k of rows s and s + 8 (two vec4 loads), and
//     every lane takes each of the 16 rows from the lane that holds it (subgroupBroadcast,
//     a register move on llvmpipe);
//   - each lane loads its 4 columns of B's 4 rows (four vec4 loads);
//   so 6 loads per 256 multiply-adds, where v4 needs 16.
// TRANS_B (B stored N x K, as in the backward-filter and linear products): each lane loads
// the 4 rows of B that are its columns, 4 values of k each (four vec4 loads), and each C
// element gathers dot(A's 4 values, B's 4 values): still 6 loads per 256 multiply-adds.
// Needs subgroups of at least 8 invocations (the host checks the adapter), K, N, the offsets
// and the batch strides multiples of 4, and A untransposed; the host runs v4 otherwise
// (MatmulVariant::applicable and Gpu::gemm).
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

const ROWS: u32 = 16u;
override LANES: u32 = 64u;
override TRANS_B: bool = false;

// acc + (av . b0, av . b1, av . b2, av . b3): 4 values of k of one row against 4 columns
// stored as rows (TRANS_B).
fn dots(acc: vec4<f32>, av: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) -> vec4<f32> {
    return acc + vec4<f32>(dot(av, b0), dot(av, b1), dot(av, b2), dot(av, b3));
}

// acc + av.x * b0 + av.y * b1 + av.z * b2 + av.w * b3, one fma at a time in that order
// (llvmpipe schedules the nested expression much worse).
fn mac(acc: vec4<f32>, av: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) -> vec4<f32> {
    var s = fma(vec4<f32>(av.x), b0, acc);
    s = fma(vec4<f32>(av.y), b1, s);
    s = fma(vec4<f32>(av.z), b2, s);
    return fma(vec4<f32>(av.w), b3, s);
}

@compute @workgroup_size(LANES, 1, 1)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_invocation_id) sid: u32,
) {
    let batch = p.batch_base + wid.z;
    let n4 = p.n / 4u;
    let k4s = p.k / 4u;
    let col4 = p.n_base / 4u + wid.x * LANES + lid.x;
    let row0 = p.m_base + wid.y * ROWS;

    var acc: array<vec4<f32>, ROWS>;
    let a_base = (p.a_off + batch * p.stride_a) / 4u;
    // Columns beyond N and rows beyond M are clamped for loading and skipped on store.
    let lane = sid & 7u;
    let lo_idx = a_base + min(row0 + lane, p.m - 1u) * k4s;
    let hi_idx = a_base + min(row0 + 8u + lane, p.m - 1u) * k4s;
    let b_base = (p.b_off + batch * p.stride_b) / 4u;
    if (TRANS_B) {
        // B is N x K: the lane's 4 columns are rows of B (clamped beyond N, skipped on store).
        let col = min(col4, n4 - 1u) * 4u;
        let i0 = b_base + col * k4s;
        let i1 = i0 + k4s;
        let i2 = i1 + k4s;
        let i3 = i2 + k4s;
        for (var k4 = 0u; k4 < k4s; k4++) {
            let b0 = b[i0 + k4];
            let b1 = b[i1 + k4];
            let b2 = b[i2 + k4];
            let b3 = b[i3 + k4];
            let lo = a[lo_idx + k4];
            let hi = a[hi_idx + k4];
            acc[0] = dots(acc[0], subgroupBroadcast(lo, 0u), b0, b1, b2, b3);
            acc[1] = dots(acc[1], subgroupBroadcast(lo, 1u), b0, b1, b2, b3);
            acc[2] = dots(acc[2], subgroupBroadcast(lo, 2u), b0, b1, b2, b3);
            acc[3] = dots(acc[3], subgroupBroadcast(lo, 3u), b0, b1, b2, b3);
            acc[4] = dots(acc[4], subgroupBroadcast(lo, 4u), b0, b1, b2, b3);
            acc[5] = dots(acc[5], subgroupBroadcast(lo, 5u), b0, b1, b2, b3);
            acc[6] = dots(acc[6], subgroupBroadcast(lo, 6u), b0, b1, b2, b3);
            acc[7] = dots(acc[7], subgroupBroadcast(lo, 7u), b0, b1, b2, b3);
            acc[8] = dots(acc[8], subgroupBroadcast(hi, 0u), b0, b1, b2, b3);
            acc[9] = dots(acc[9], subgroupBroadcast(hi, 1u), b0, b1, b2, b3);
            acc[10] = dots(acc[10], subgroupBroadcast(hi, 2u), b0, b1, b2, b3);
            acc[11] = dots(acc[11], subgroupBroadcast(hi, 3u), b0, b1, b2, b3);
            acc[12] = dots(acc[12], subgroupBroadcast(hi, 4u), b0, b1, b2, b3);
            acc[13] = dots(acc[13], subgroupBroadcast(hi, 5u), b0, b1, b2, b3);
            acc[14] = dots(acc[14], subgroupBroadcast(hi, 6u), b0, b1, b2, b3);
            acc[15] = dots(acc[15], subgroupBroadcast(hi, 7u), b0, b1, b2, b3);
        }
    } else {
        var b_idx = b_base + min(col4, n4 - 1u);
        for (var k4 = 0u; k4 < k4s; k4++) {
            let b0 = b[b_idx];
            let b1 = b[b_idx + n4];
            let b2 = b[b_idx + 2u * n4];
            let b3 = b[b_idx + 3u * n4];
            b_idx += 4u * n4;
            let lo = a[lo_idx + k4];
            let hi = a[hi_idx + k4];
            acc[0] = mac(acc[0], subgroupBroadcast(lo, 0u), b0, b1, b2, b3);
            acc[1] = mac(acc[1], subgroupBroadcast(lo, 1u), b0, b1, b2, b3);
            acc[2] = mac(acc[2], subgroupBroadcast(lo, 2u), b0, b1, b2, b3);
            acc[3] = mac(acc[3], subgroupBroadcast(lo, 3u), b0, b1, b2, b3);
            acc[4] = mac(acc[4], subgroupBroadcast(lo, 4u), b0, b1, b2, b3);
            acc[5] = mac(acc[5], subgroupBroadcast(lo, 5u), b0, b1, b2, b3);
            acc[6] = mac(acc[6], subgroupBroadcast(lo, 6u), b0, b1, b2, b3);
            acc[7] = mac(acc[7], subgroupBroadcast(lo, 7u), b0, b1, b2, b3);
            acc[8] = mac(acc[8], subgroupBroadcast(hi, 0u), b0, b1, b2, b3);
            acc[9] = mac(acc[9], subgroupBroadcast(hi, 1u), b0, b1, b2, b3);
            acc[10] = mac(acc[10], subgroupBroadcast(hi, 2u), b0, b1, b2, b3);
            acc[11] = mac(acc[11], subgroupBroadcast(hi, 3u), b0, b1, b2, b3);
            acc[12] = mac(acc[12], subgroupBroadcast(hi, 4u), b0, b1, b2, b3);
            acc[13] = mac(acc[13], subgroupBroadcast(hi, 5u), b0, b1, b2, b3);
            acc[14] = mac(acc[14], subgroupBroadcast(hi, 6u), b0, b1, b2, b3);
            acc[15] = mac(acc[15], subgroupBroadcast(hi, 7u), b0, b1, b2, b3);
        }
    }

    if (col4 < n4) {
        let base = (p.c_off + batch * p.stride_c) / 4u + col4;
        for (var r = 0u; r < ROWS; r++) {
            let row = row0 + r;
            if (row < p.m) {
                var v = p.alpha * acc[r];
                if (p.beta != 0.0) {
                    v = fma(vec4<f32>(p.beta), c[base + row * n4], v);
                }
                c[base + row * n4] = v;
            }
        }
    }
}
