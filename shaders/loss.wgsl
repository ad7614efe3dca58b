// loss — softmax cross-entropy fused with its gradient, and argmax for accuracy; one
// invocation per row of logits [N, C].
//   cross_entropy_hard: tgt = class indices (as f32) with label smoothing eps (PyTorch):
//                       q = (1 - eps) * onehot(label) + eps / C
//   cross_entropy_soft: tgt = probability rows t [N, C] (mixup, cutmix), smoothed as
//                       PyTorch does: q = (1 - eps) * t + eps / C
//   both:  out[i]     = sum_c q_ic (logsumexp(z_i) - z_ic) / N   (their sum is the mean loss)
//          grad[i, c] = (softmax(z_i)_c * sum_c q_ic - q_ic) / N  (gradient of the mean loss)
//   computed stably: m = max z, s = sum exp(z - m), logsumexp = m + log s.
//   A label that is not an integer in [0, C) gives a NaN loss (the host validates labels).
//   argmax_rows:  out[i] = index of the first maximum of row i (as f32)
//   correct_rows: out[i] = 1 if argmax of row i == label i, else 0 (sum it for accuracy)
// Host side: src/gpu/loss.rs. CPU twin: src/cpu/loss.rs.

struct LossParams {
    n: u32,
    c: u32,
    smoothing: f32,
    inv_n: f32,
}

@group(0) @binding(0) var<uniform> p: LossParams;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> tgt: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;

fn row_max(base: u32) -> f32 {
    var m = z[base];
    for (var c = 1u; c < p.c; c++) {
        m = max(m, z[base + c]);
    }
    return m;
}

fn row_sum_exp(base: u32, m: f32) -> f32 {
    var s = 0.0;
    for (var c = 0u; c < p.c; c++) {
        s += exp(z[base + c] - m);
    }
    return s;
}

@compute @workgroup_size(64, 1, 1)
fn cross_entropy_hard(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= p.n) {
        return;
    }
    let base = i * p.c;
    let m = row_max(base);
    let s = row_sum_exp(base, m);
    let label_f = tgt[i];
    let label = u32(max(label_f, 0.0));
    if (label_f < 0.0 || f32(label) != label_f || label >= p.c) {
        out[i] = bitcast<f32>(0x7fc00000u); // NaN: invalid label
        return;
    }
    let off = p.smoothing / f32(p.c);
    var qz = 0.0;
    for (var c = 0u; c < p.c; c++) {
        let q = select(off, 1.0 - p.smoothing + off, c == label);
        qz += q * z[base + c];
        grad[base + c] = (exp(z[base + c] - m) / s - q) * p.inv_n;
    }
    out[i] = (m + log(s) - qz) * p.inv_n;
}

@compute @workgroup_size(64, 1, 1)
fn cross_entropy_soft(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= p.n) {
        return;
    }
    let base = i * p.c;
    let m = row_max(base);
    let s = row_sum_exp(base, m);
    // q = (1 - eps) * target + eps / C; loss = sum q * (logsumexp - z)
    let off = p.smoothing / f32(p.c);
    var qz = 0.0;
    var qsum = 0.0;
    for (var c = 0u; c < p.c; c++) {
        let q = (1.0 - p.smoothing) * tgt[base + c] + off;
        qz += q * z[base + c];
        qsum += q;
    }
    for (var c = 0u; c < p.c; c++) {
        let q = (1.0 - p.smoothing) * tgt[base + c] + off;
        grad[base + c] = (exp(z[base + c] - m) / s * qsum - q) * p.inv_n;
    }
    out[i] = ((m + log(s)) * qsum - qz) * p.inv_n;
}

fn row_argmax(base: u32) -> u32 {
    var best = z[base];
    var at = 0u;
    for (var c = 1u; c < p.c; c++) {
        if (z[base + c] > best) {
            best = z[base + c];
            at = c;
        }
    }
    return at;
}

@compute @workgroup_size(64, 1, 1)
fn argmax_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i < p.n) {
        out[i] = f32(row_argmax(i * p.c));
    }
}

// tgt = labels
@compute @workgroup_size(64, 1, 1)
fn correct_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i < p.n) {
        out[i] = select(0.0, 1.0, f32(row_argmax(i * p.c)) == tgt[i]);
    }
}
