//! CPU twin of shaders/loss.wgsl: softmax cross-entropy with its gradient, argmax. f64 inside.
//! logits [N, C]; PyTorch's definitions (mean reduction, label smoothing on hard and soft targets).

/// The target distribution of row i: smoothed one-hot of `labels[i]`, or smoothed `probs` row.
pub enum Target<'a> {
    /// Class indices \[N\], stored as f32.
    Labels(&'a [f32]),
    /// Class probabilities [N, C], soft targets (mixup, cutmix).
    Probs(&'a [f32]),
}

/// Per-row losses (already divided by N; their sum is the mean loss) and the gradient of the
/// mean loss. Labels must be integers in [0, C) (checked by the caller).
pub fn cross_entropy(z: &[f32], target: &Target<'_>, n: usize, c: usize, smoothing: f32, rows: &mut [f32], grad: &mut [f32]) {
    let eps = smoothing as f64;
    for i in 0..n {
        let row = &z[i * c..(i + 1) * c];
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
        let s: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
        let lse = m + s.ln();
        let q = |k: usize| -> f64 {
            match target {
                Target::Labels(l) => (1.0 - eps) * ((l[i] as usize == k) as u8 as f64) + eps / c as f64,
                Target::Probs(t) => (1.0 - eps) * t[i * c + k] as f64 + eps / c as f64,
            }
        };
        let qsum: f64 = (0..c).map(q).sum();
        let mut loss = 0.0;
        for k in 0..c {
            loss += q(k) * (lse - row[k] as f64);
            grad[i * c + k] = ((((row[k] as f64 - m).exp() / s) * qsum - q(k)) / n as f64) as f32;
        }
        rows[i] = (loss / n as f64) as f32;
    }
}

/// Index of the first maximum of each row.
pub fn argmax_rows(z: &[f32], n: usize, c: usize, out: &mut [f32]) {
    for i in 0..n {
        let row = &z[i * c..(i + 1) * c];
        let mut at = 0;
        for k in 1..c {
            if row[k] > row[at] {
                at = k;
            }
        }
        out[i] = at as f32;
    }
}
