//! CPU twin of shaders/optimizer.wgsl: one update step of every optimizer over flat arenas,
//! written as PyTorch's `torch.optim` documents them (foreach=False, maximize=False).
//! `p`: parameters, `g`: gradients, `s1`/`s2`: the optimizer's state (see each rule).

use crate::ops::{Optimizer, OptimizerKind, StepScalars};

/// One update of every element of `p` by `o`'s rule, with the step-dependent values `k`.
pub fn step(o: &Optimizer, k: &StepScalars, p: &mut [f32], g: &[f32], s1: &mut [f32], s2: &mut [f32]) {
    for i in 0..p.len() {
        // Coupled L2: g <- g + wd * p (AdamW decays the parameter instead).
        let mut gi = g[i];
        if o.kind != OptimizerKind::AdamW && o.weight_decay != 0.0 {
            gi += o.weight_decay * p[i];
        }
        match o.kind {
            // buf <- g (first step) or momentum * buf + (1 - dampening) * g
            // g <- g + momentum * buf (Nesterov) or buf;   p <- p - lr * g
            OptimizerKind::Sgd => {
                if o.momentum != 0.0 {
                    s1[i] = if k.first_step { gi } else { o.momentum * s1[i] + (1.0 - o.dampening) * gi };
                    gi = if o.nesterov { gi + o.momentum * s1[i] } else { s1[i] };
                }
                p[i] -= o.lr * gi;
            }
            // sum <- sum + g^2;   p <- p - clr * g / (sqrt(sum) + eps),  clr = lr / (1 + (t-1) lr_decay)
            OptimizerKind::Adagrad => {
                s1[i] += gi * gi;
                p[i] -= k.adagrad_lr * gi / (s1[i].sqrt() + o.eps);
            }
            // sq <- rho sq + (1-rho) g^2;  d <- sqrt(acc + eps) / sqrt(sq + eps) * g
            // acc <- rho acc + (1-rho) d^2;  p <- p - lr d
            OptimizerKind::Adadelta => {
                s1[i] = o.rho * s1[i] + (1.0 - o.rho) * gi * gi;
                let delta = (s2[i] + o.eps).sqrt() / (s1[i] + o.eps).sqrt() * gi;
                s2[i] = o.rho * s2[i] + (1.0 - o.rho) * delta * delta;
                p[i] -= o.lr * delta;
            }
            // sq <- alpha sq + (1-alpha) g^2;  avg <- sqrt(sq) + eps
            // with momentum: buf <- momentum buf + g / avg, p <- p - lr buf;  else p <- p - lr g / avg
            OptimizerKind::Rmsprop => {
                s1[i] = o.alpha * s1[i] + (1.0 - o.alpha) * gi * gi;
                let avg = s1[i].sqrt() + o.eps;
                if o.momentum != 0.0 {
                    s2[i] = o.momentum * s2[i] + gi / avg;
                    p[i] -= o.lr * s2[i];
                } else {
                    p[i] -= o.lr * gi / avg;
                }
            }
            // (AdamW first: p <- p (1 - lr wd))
            // m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2
            // p <- p - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),  bc_i = 1 - b_i^t
            OptimizerKind::Adam | OptimizerKind::AdamW => {
                if o.kind == OptimizerKind::AdamW {
                    p[i] *= 1.0 - o.lr * o.weight_decay;
                }
                let (b1, b2) = o.betas;
                s1[i] = b1 * s1[i] + (1.0 - b1) * gi;
                s2[i] = b2 * s2[i] + (1.0 - b2) * gi * gi;
                let denom = s2[i].sqrt() / k.bias_correction2_sqrt + o.eps;
                p[i] -= o.lr / k.bias_correction1 * s1[i] / denom;
            }
        }
    }
}

/// Global-norm clipping (torch.nn.utils.clip_grad_norm_): with `sumsq` = sum of g^2,
/// g <- g * min(1, max_norm / (sqrt(sumsq) + 1e-6)).
pub fn clip_by_norm(g: &mut [f32], sumsq: f32, max_norm: f32) {
    let coef = (max_norm / (sumsq.sqrt() + 1e-6)).min(1.0);
    for v in g.iter_mut() {
        *v *= coef;
    }
}
