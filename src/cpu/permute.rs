//! CPU twin of shaders/permute.wgsl.

/// out[i0*s0 + i1*s1 + i2*s2] = src[i0*t0 + i1*t1 + i2*t2] over the index space [d0, d1, d2]
pub fn strided_copy(src: &[f32], d: [usize; 3], t: [usize; 3], s: [usize; 3], out: &mut [f32]) {
    for i0 in 0..d[0] {
        for i1 in 0..d[1] {
            for i2 in 0..d[2] {
                out[i0 * s[0] + i1 * s[1] + i2 * s[2]] = src[i0 * t[0] + i1 * t[1] + i2 * t[2]];
            }
        }
    }
}
