//! CPU twin of shaders/elementwise.wgsl.

/// out = a + b
pub fn add(a: &[f32], b: &[f32], out: &mut [f32]) {
    for i in 0..out.len() {
        out[i] = a[i] + b[i];
    }
}

/// out = max(a + b, 0): a residual sum with its ReLU fused (NaN passes, as relu::relu)
pub fn add_relu(a: &[f32], b: &[f32], out: &mut [f32]) {
    for i in 0..out.len() {
        out[i] = super::relu::relu(a[i] + b[i]);
    }
}

/// out = a * b
pub fn mul(a: &[f32], b: &[f32], out: &mut [f32]) {
    for i in 0..out.len() {
        out[i] = a[i] * b[i];
    }
}

/// out = alpha * a
pub fn scale(a: &[f32], alpha: f32, out: &mut [f32]) {
    for i in 0..out.len() {
        out[i] = alpha * a[i];
    }
}
