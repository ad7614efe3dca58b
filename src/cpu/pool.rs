//! CPU twin of shaders/pool.wgsl: pooling over NCHW planes, PyTorch semantics.
//! x [N, C, H, W] is treated as `planes` = N*C independent planes.

use crate::ops::PoolDims;

/// y = window max; idx = position (h*W + w) of the first maximum, or of the last NaN.
pub fn max_pool_forward(x: &[f32], y: &mut [f32], idx: &mut [f32], d: &PoolDims) {
    for plane in 0..d.planes {
        for oy in 0..d.oh {
            for ox in 0..d.ow {
                let (mut best, mut best_at) = (0.0f32, None);
                for a in 0..d.kh {
                    for b in 0..d.kw {
                        let (Some(yy), Some(xx)) = ((oy * d.sh + a).checked_sub(d.ph), (ox * d.sw + b).checked_sub(d.pw)) else { continue };
                        if yy >= d.h || xx >= d.w {
                            continue;
                        }
                        let v = x[(plane * d.h + yy) * d.w + xx];
                        if best_at.is_none() || v > best || v.is_nan() {
                            best = v;
                            best_at = Some(yy * d.w + xx);
                        }
                    }
                }
                let o = (plane * d.oh + oy) * d.ow + ox;
                y[o] = best;
                idx[o] = best_at.map_or(-1.0, |a| a as f32);
            }
        }
    }
}

/// dx[plane, at] = sum of dy over the outputs whose idx is `at`.
pub fn max_pool_backward(dy: &[f32], idx: &[f32], dx: &mut [f32], d: &PoolDims) {
    dx.iter_mut().for_each(|v| *v = 0.0);
    for plane in 0..d.planes {
        for o in 0..d.oh * d.ow {
            let at = idx[plane * d.oh * d.ow + o];
            if at >= 0.0 {
                dx[plane * d.h * d.w + at as usize] += dy[plane * d.oh * d.ow + o];
            }
        }
    }
}

/// PyTorch's avg_pool2d divisor for output (oy, ox).
pub fn avg_divisor(oy: usize, ox: usize, d: &PoolDims) -> f32 {
    let (hs, ws) = ((oy * d.sh) as i64 - d.ph as i64, (ox * d.sw) as i64 - d.pw as i64);
    let he = (hs + d.kh as i64).min((d.h + d.ph) as i64);
    let we = (ws + d.kw as i64).min((d.w + d.pw) as i64);
    if d.count_include_pad {
        ((he - hs) * (we - ws)) as f32
    } else {
        ((he.min(d.h as i64) - hs.max(0)) * (we.min(d.w as i64) - ws.max(0))) as f32
    }
}

/// y = sum over the window (inside the input) / divisor.
pub fn avg_pool_forward(x: &[f32], y: &mut [f32], d: &PoolDims) {
    for plane in 0..d.planes {
        for oy in 0..d.oh {
            for ox in 0..d.ow {
                let mut acc = 0.0f32;
                for a in 0..d.kh {
                    for b in 0..d.kw {
                        let (Some(yy), Some(xx)) = ((oy * d.sh + a).checked_sub(d.ph), (ox * d.sw + b).checked_sub(d.pw)) else { continue };
                        if yy < d.h && xx < d.w {
                            acc += x[(plane * d.h + yy) * d.w + xx];
                        }
                    }
                }
                y[(plane * d.oh + oy) * d.ow + ox] = acc / avg_divisor(oy, ox, d);
            }
        }
    }
}

/// dx = for every window, dy / divisor spread over the window's input elements.
pub fn avg_pool_backward(dy: &[f32], dx: &mut [f32], d: &PoolDims) {
    dx.iter_mut().for_each(|v| *v = 0.0);
    for plane in 0..d.planes {
        for oy in 0..d.oh {
            for ox in 0..d.ow {
                let g = dy[(plane * d.oh + oy) * d.ow + ox] / avg_divisor(oy, ox, d);
                for a in 0..d.kh {
                    for b in 0..d.kw {
                        let (Some(yy), Some(xx)) = ((oy * d.sh + a).checked_sub(d.ph), (ox * d.sw + b).checked_sub(d.pw)) else { continue };
                        if yy < d.h && xx < d.w {
                            dx[(plane * d.h + yy) * d.w + xx] += g;
                        }
                    }
                }
            }
        }
    }
}

/// `y[plane]` = mean of the plane (x [planes, hw]).
pub fn global_avg_forward(x: &[f32], y: &mut [f32], hw: usize) {
    for (plane, out) in y.iter_mut().enumerate() {
        *out = x[plane * hw..(plane + 1) * hw].iter().sum::<f32>() / hw as f32;
    }
}

/// `dx[plane, k] = dy[plane] / hw`
pub fn global_avg_backward(dy: &[f32], dx: &mut [f32], hw: usize) {
    for (i, v) in dx.iter_mut().enumerate() {
        *v = dy[i / hw] / hw as f32;
    }
}
