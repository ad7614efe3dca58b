//! CPU twin of shaders/relu.wgsl.

/// y = max(x, 0)
pub fn relu_forward(x: &[f32], y: &mut [f32]) {
    for i in 0..y.len() {
        y[i] = x[i].max(0.0);
    }
}

/// dx = dy where x > 0, else 0 (PyTorch's subgradient at 0)
pub fn relu_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    for i in 0..dx.len() {
        dx[i] = if x[i] > 0.0 { dy[i] } else { 0.0 };
    }
}
