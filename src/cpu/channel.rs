//! CPU twin of shaders/channel.wgsl (per-channel reductions over [N, C, P]) and
//! shaders/bias_act.wgsl (bias add fused with an activation, and its backward).

use crate::ops::Activation;

/// `out[c] = scale * sum over n, p of a[n, c, p]`   (a is [N, C, P])
pub fn channel_sum(a: &[f32], n: usize, c: usize, p: usize, scale: f32, out: &mut [f32]) {
    for ch in 0..c {
        let mut acc = 0.0f64;
        for b in 0..n {
            for v in &a[(b * c + ch) * p..(b * c + ch + 1) * p] {
                acc += *v as f64;
            }
        }
        out[ch] = (scale as f64 * acc) as f32;
    }
}

/// `y[n, c, p] = act(y[n, c, p] + bias[c])`   (in place)
pub fn bias_act(y: &mut [f32], bias: &[f32], c: usize, p: usize, act: Activation) {
    for (i, v) in y.iter_mut().enumerate() {
        let z = *v + bias[(i / p) % c];
        *v = match act {
            Activation::Identity => z,
            Activation::Relu => super::relu::relu(z),
        };
    }
}

/// dz = dy * act'(z), from the activated output y: ReLU passes where y > 0.
pub fn act_backward(y: &[f32], dy: &[f32], dz: &mut [f32], act: Activation) {
    for i in 0..dz.len() {
        dz[i] = match act {
            Activation::Identity => dy[i],
            Activation::Relu => {
                if y[i] > 0.0 {
                    dy[i]
                } else {
                    0.0
                }
            }
        };
    }
}

/// `out[c] = scale * sum over n, p of (a - m[c])^2`
pub fn channel_sum_sq_dev(a: &[f32], m: &[f32], n: usize, c: usize, p: usize, scale: f32, out: &mut [f32]) {
    for ch in 0..c {
        let mut acc = 0.0f64;
        for b in 0..n {
            for v in &a[(b * c + ch) * p..(b * c + ch + 1) * p] {
                let d = *v as f64 - m[ch] as f64;
                acc += d * d;
            }
        }
        out[ch] = (scale as f64 * acc) as f32;
    }
}

/// `out[c] = scale * sum over n, p of b * (a - m[c])`
pub fn channel_sum_prod_dev(a: &[f32], b: &[f32], m: &[f32], n: usize, c: usize, p: usize, scale: f32, out: &mut [f32]) {
    for ch in 0..c {
        let mut acc = 0.0f64;
        for bn in 0..n {
            let r = (bn * c + ch) * p..(bn * c + ch + 1) * p;
            for (av, bv) in a[r.clone()].iter().zip(&b[r]) {
                acc += *bv as f64 * (*av as f64 - m[ch] as f64);
            }
        }
        out[ch] = (scale as f64 * acc) as f32;
    }
}
