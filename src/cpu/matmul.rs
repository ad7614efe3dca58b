//! CPU twin of shaders/matmul_v*.wgsl: the definition of a correct (batched, transposed) matmul.

use crate::ops::{MatmulDims, MatmulSpec};

/// `c[b] = alpha * op(a[b]) @ op(b[b]) + beta * c[b]`
///   a: [batch?, M, K] (or [batch?, K, M] when trans_a)
///   b: [batch?, K, N] (or [batch?, N, K] when trans_b)
///   c: [batch, M, N]
/// Dot products accumulate in f64, so the reference is more accurate than any f32 kernel;
/// `c` is not read when beta == 0.
pub fn matmul(a: &[f32], b: &[f32], c: &mut [f32], d: &MatmulDims, spec: MatmulSpec) {
    let (m, n, k) = (d.m, d.n, d.k);
    for batch in 0..d.batch {
        let a = &a[batch * d.stride_a..];
        let b = &b[batch * d.stride_b..];
        let c = &mut c[batch * d.stride_c..];
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0f64;
                for p in 0..k {
                    let a_ip = if spec.trans_a { a[p * m + i] } else { a[i * k + p] };
                    let b_pj = if spec.trans_b { b[j * k + p] } else { b[p * n + j] };
                    acc += a_ip as f64 * b_pj as f64;
                }
                let mut v = spec.alpha as f64 * acc;
                if spec.beta != 0.0 {
                    v += spec.beta as f64 * c[i * n + j] as f64;
                }
                c[i * n + j] = v as f32;
            }
        }
    }
}
