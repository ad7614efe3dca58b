//! CPU twin of batch norm 2d (shaders/batch_norm.wgsl, bn_stats.wgsl and the per-channel
//! reductions of channel.wgsl; batch_norm_eval_backward.wgsl), PyTorch's definition. x, y, dy, dx are [N, C, P]; the rest \[C\].
//! Statistics accumulate in f64.

/// Per-channel mean and biased variance over N and P.
fn moments(x: &[f32], n: usize, c: usize, p: usize) -> (Vec<f64>, Vec<f64>) {
    let cnt = (n * p) as f64;
    let mut mean = vec![0.0f64; c];
    let mut var = vec![0.0f64; c];
    for ch in 0..c {
        let values = (0..n).flat_map(|b| &x[(b * c + ch) * p..(b * c + ch + 1) * p]);
        mean[ch] = values.clone().map(|&v| v as f64).sum::<f64>() / cnt;
        var[ch] = values.map(|&v| (v as f64 - mean[ch]).powi(2)).sum::<f64>() / cnt;
    }
    (mean, var)
}

/// Training forward: normalise with the batch statistics, save mean and 1/sqrt(var + eps),
/// and update the running statistics (running_var from the unbiased variance).
#[allow(clippy::too_many_arguments)]
pub fn forward_train(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &mut [f32],
    running_var: &mut [f32],
    y: &mut [f32],
    save_mean: &mut [f32],
    save_invstd: &mut [f32],
    (n, c, p): (usize, usize, usize),
    momentum: f32,
    eps: f32,
) {
    let (mean, var) = moments(x, n, c, p);
    normalize(x, gamma, beta, &mean, &var, (n * p) as f64, running_mean, running_var, y, save_mean, save_invstd, (c, p), momentum, eps);
}

/// The batch statistics alone: per-channel mean and biased variance (the first half of
/// `forward_train`, for synchronised batch norm).
pub fn stats(x: &[f32], mean: &mut [f32], var: &mut [f32], (n, c, p): (usize, usize, usize)) {
    let (m, v) = moments(x, n, c, p);
    for ch in 0..c {
        mean[ch] = m[ch] as f32;
        var[ch] = v[ch] as f32;
    }
}

/// The second half of `forward_train`, from given statistics of `count` values per channel.
#[allow(clippy::too_many_arguments)]
pub fn forward_from_stats(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    count: f32,
    running_mean: &mut [f32],
    running_var: &mut [f32],
    y: &mut [f32],
    save_mean: &mut [f32],
    save_invstd: &mut [f32],
    (_, c, p): (usize, usize, usize),
    momentum: f32,
    eps: f32,
) {
    let (mean, var): (Vec<f64>, Vec<f64>) = (mean.iter().map(|&v| v as f64).collect(), var.iter().map(|&v| v as f64).collect());
    normalize(x, gamma, beta, &mean, &var, count as f64, running_mean, running_var, y, save_mean, save_invstd, (c, p), momentum, eps);
}

#[allow(clippy::too_many_arguments)]
fn normalize(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f64],
    var: &[f64],
    cnt: f64,
    running_mean: &mut [f32],
    running_var: &mut [f32],
    y: &mut [f32],
    save_mean: &mut [f32],
    save_invstd: &mut [f32],
    (c, p): (usize, usize),
    momentum: f32,
    eps: f32,
) {
    for ch in 0..c {
        let invstd = 1.0 / (var[ch] + eps as f64).sqrt();
        save_mean[ch] = mean[ch] as f32;
        save_invstd[ch] = invstd as f32;
        let m = momentum as f64;
        running_mean[ch] = ((1.0 - m) * running_mean[ch] as f64 + m * mean[ch]) as f32;
        running_var[ch] = ((1.0 - m) * running_var[ch] as f64 + m * var[ch] * cnt / (cnt - 1.0)) as f32;
    }
    apply(x, gamma, beta, save_mean, save_invstd, y, c, p);
}

/// Eval forward: normalise with the running statistics.
pub fn forward_eval(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    y: &mut [f32],
    (_, c, p): (usize, usize, usize),
    eps: f32,
) {
    let invstd: Vec<f32> = running_var.iter().map(|&v| (1.0 / (v as f64 + eps as f64).sqrt()) as f32).collect();
    apply(x, gamma, beta, running_mean, &invstd, y, c, p);
}

/// y = (x - mean) * invstd * gamma + beta
#[allow(clippy::too_many_arguments)]
fn apply(x: &[f32], gamma: &[f32], beta: &[f32], mean: &[f32], invstd: &[f32], y: &mut [f32], c: usize, p: usize) {
    for (i, out) in y.iter_mut().enumerate() {
        let ch = (i / p) % c;
        *out = (((x[i] - mean[ch]) as f64 * invstd[ch] as f64) * gamma[ch] as f64 + beta[ch] as f64) as f32;
    }
}

/// Backward of the training forward, from the saved statistics:
///   dbeta = sum dy;  dgamma = sum dy * x_hat;  x_hat = (x - mean) * invstd
///   dx = gamma * invstd / cnt * (cnt * dy - dbeta - x_hat * dgamma)
#[allow(clippy::too_many_arguments)]
pub fn backward(
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    save_mean: &[f32],
    save_invstd: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    (n, c, p): (usize, usize, usize),
) {
    let (sdy, sdyx) = sums(x, dy, save_mean, c, p);
    backward_with(x, dy, gamma, save_mean, save_invstd, (&sdy, &sdyx), (&sdy, &sdyx), (n * p) as f64, dx, dgamma, dbeta, (c, p));
}

/// Per channel: sum dy and sum dy * (x - mean), in f64.
fn sums(x: &[f32], dy: &[f32], mean: &[f32], c: usize, p: usize) -> (Vec<f64>, Vec<f64>) {
    let mut sdy = vec![0.0f64; c];
    let mut sdyx = vec![0.0f64; c];
    for (i, &g) in dy.iter().enumerate().take(x.len()) {
        let ch = (i / p) % c;
        sdy[ch] += g as f64;
        sdyx[ch] += g as f64 * (x[i] as f64 - mean[ch] as f64);
    }
    (sdy, sdyx)
}

/// The per-channel sums of the backward (the first half of `backward`, for synchronised
/// batch norm): sdy = sum dy, sdyx = sum dy * (x - mean).
pub fn backward_sums(x: &[f32], dy: &[f32], save_mean: &[f32], sdy: &mut [f32], sdyx: &mut [f32], (_, c, p): (usize, usize, usize)) {
    let (a, b) = sums(x, dy, save_mean, c, p);
    for ch in 0..c {
        sdy[ch] = a[ch] as f32;
        sdyx[ch] = b[ch] as f32;
    }
}

/// The second half of `backward`: dgamma, dbeta from the `local` sums, dx from the `global`
/// sums over `count` values per channel.
#[allow(clippy::too_many_arguments)]
pub fn backward_from_sums(
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    save_mean: &[f32],
    save_invstd: &[f32],
    local: (&[f32], &[f32]),
    global: (&[f32], &[f32]),
    count: f32,
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    (_, c, p): (usize, usize, usize),
) {
    let wide = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
    let (l0, l1, g0, g1) = (wide(local.0), wide(local.1), wide(global.0), wide(global.1));
    backward_with(x, dy, gamma, save_mean, save_invstd, (&l0, &l1), (&g0, &g1), count as f64, dx, dgamma, dbeta, (c, p));
}

/// dbeta = local sdy, dgamma = local sdyx * invstd; dx from the global sums over `cnt` values.
#[allow(clippy::too_many_arguments)]
fn backward_with(
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    save_mean: &[f32],
    save_invstd: &[f32],
    local: (&[f64], &[f64]),
    global: (&[f64], &[f64]),
    cnt: f64,
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    (c, p): (usize, usize),
) {
    let xhat = |i: usize, ch: usize| (x[i] as f64 - save_mean[ch] as f64) * save_invstd[ch] as f64;
    for ch in 0..c {
        dbeta[ch] = local.0[ch] as f32;
        dgamma[ch] = (local.1[ch] * save_invstd[ch] as f64) as f32;
    }
    for i in 0..x.len() {
        let ch = (i / p) % c;
        let k = gamma[ch] as f64 * save_invstd[ch] as f64 / cnt;
        let sdyxhat = global.1[ch] * save_invstd[ch] as f64;
        dx[i] = (k * (cnt * dy[i] as f64 - global.0[ch] - xhat(i, ch) * sdyxhat)) as f32;
    }
}

/// Backward of the eval forward, the running statistics constant (invstd = 1/sqrt(running_var + eps)):
///   dx = dy * gamma * invstd;  dgamma = invstd * sum dy * (x - running_mean);  dbeta = sum dy
/// Each output is written (overwritten) only where given.
#[allow(clippy::too_many_arguments)]
pub fn backward_eval(
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    dx: Option<&mut [f32]>,
    param_grads: Option<(&mut [f32], &mut [f32])>,
    (_, c, p): (usize, usize, usize),
    eps: f32,
) {
    let invstd = |ch: usize| 1.0 / (running_var[ch] as f64 + eps as f64).sqrt();
    if let Some(dx) = dx {
        for (i, out) in dx.iter_mut().enumerate() {
            let ch = (i / p) % c;
            *out = (dy[i] as f64 * gamma[ch] as f64 * invstd(ch)) as f32;
        }
    }
    if let Some((dgamma, dbeta)) = param_grads {
        let mut sdy = vec![0.0f64; c];
        let mut sdyx = vec![0.0f64; c];
        for (i, &g) in dy.iter().enumerate() {
            let ch = (i / p) % c;
            sdy[ch] += g as f64;
            sdyx[ch] += g as f64 * (x[i] as f64 - running_mean[ch] as f64);
        }
        for ch in 0..c {
            dbeta[ch] = sdy[ch] as f32;
            dgamma[ch] = (sdyx[ch] * invstd(ch)) as f32;
        }
    }
}
