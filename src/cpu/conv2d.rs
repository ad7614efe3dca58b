//! CPU twin of the convolution (shaders/im2col.wgsl, col2im.wgsl and the matmuls between them):
//! direct loops over the definition, no im2col, so the reference shares nothing with the GPU
//! path it checks. Dot products accumulate in f64.
//!   x [N, C, H, W], w [K, C/groups, KH, KW], y [N, K, OH, OW]

use crate::ops::ConvDims;

/// Input coordinate of output coordinate `o` and kernel tap `t`, if inside the image.
fn src(o: usize, t: usize, stride: usize, pad: usize, dil: usize, size: usize) -> Option<usize> {
    (o * stride + t * dil).checked_sub(pad).filter(|&v| v < size)
}

/// `y[n,k,oh,ow] = bias[k] + sum over c in k's group, i, j of w[k,c,i,j] * x[n,c,oh*s-p+i*d,ow*s-p+j*d]`
pub fn forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32], d: &ConvDims) {
    let (s, p, dl) = (d.spec.stride, d.spec.padding, d.spec.dilation);
    let (cg, kg) = (d.cg(), d.kg());
    for n in 0..d.n {
        for k in 0..d.k {
            let g = k / kg;
            for oh in 0..d.oh {
                for ow in 0..d.ow {
                    let mut acc = bias.map_or(0.0, |b| b[k] as f64);
                    for cl in 0..cg {
                        let c = g * cg + cl;
                        for i in 0..d.kh {
                            let Some(ih) = src(oh, i, s[0], p[0], dl[0], d.h) else { continue };
                            for j in 0..d.kw {
                                let Some(iw) = src(ow, j, s[1], p[1], dl[1], d.w) else { continue };
                                let wv = w[((k * cg + cl) * d.kh + i) * d.kw + j];
                                acc += wv as f64 * x[((n * d.c + c) * d.h + ih) * d.w + iw] as f64;
                            }
                        }
                    }
                    y[((n * d.k + k) * d.oh + oh) * d.ow + ow] = acc as f32;
                }
            }
        }
    }
}

/// `dx[n,c,h,w] = sum of w[k,c,i,j] * dy[n,k,oh,ow]` over the (k, i, j, oh, ow) that read `x[n,c,h,w]`
pub fn backward_data(dy: &[f32], w: &[f32], dx: &mut [f32], d: &ConvDims) {
    let (s, p, dl) = (d.spec.stride, d.spec.padding, d.spec.dilation);
    let (cg, kg) = (d.cg(), d.kg());
    let mut acc = vec![0.0f64; dx.len()];
    for n in 0..d.n {
        for k in 0..d.k {
            let g = k / kg;
            for oh in 0..d.oh {
                for ow in 0..d.ow {
                    let g_out = dy[((n * d.k + k) * d.oh + oh) * d.ow + ow] as f64;
                    for cl in 0..cg {
                        let c = g * cg + cl;
                        for i in 0..d.kh {
                            let Some(ih) = src(oh, i, s[0], p[0], dl[0], d.h) else { continue };
                            for j in 0..d.kw {
                                let Some(iw) = src(ow, j, s[1], p[1], dl[1], d.w) else { continue };
                                acc[((n * d.c + c) * d.h + ih) * d.w + iw] += w[((k * cg + cl) * d.kh + i) * d.kw + j] as f64 * g_out;
                            }
                        }
                    }
                }
            }
        }
    }
    for (o, a) in dx.iter_mut().zip(acc) {
        *o = a as f32;
    }
}

/// `dw[k,c,i,j] = sum over n, oh, ow of dy[n,k,oh,ow] * x[n, g*Cg+c, oh*s-p+i*d, ow*s-p+j*d]`
pub fn backward_filter(x: &[f32], dy: &[f32], dw: &mut [f32], d: &ConvDims) {
    let (s, p, dl) = (d.spec.stride, d.spec.padding, d.spec.dilation);
    let (cg, kg) = (d.cg(), d.kg());
    for k in 0..d.k {
        let g = k / kg;
        for cl in 0..cg {
            let c = g * cg + cl;
            for i in 0..d.kh {
                for j in 0..d.kw {
                    let mut acc = 0.0f64;
                    for n in 0..d.n {
                        for oh in 0..d.oh {
                            let Some(ih) = src(oh, i, s[0], p[0], dl[0], d.h) else { continue };
                            for ow in 0..d.ow {
                                let Some(iw) = src(ow, j, s[1], p[1], dl[1], d.w) else { continue };
                                acc += dy[((n * d.k + k) * d.oh + oh) * d.ow + ow] as f64 * x[((n * d.c + c) * d.h + ih) * d.w + iw] as f64;
                            }
                        }
                    }
                    dw[((k * cg + cl) * d.kh + i) * d.kw + j] = acc as f32;
                }
            }
        }
    }
}
