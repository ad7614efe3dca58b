//! CPU twin of shaders/relu.wgsl.

/// max(x, 0) with a NaN passing through (PyTorch's; `f32::max` would turn it into 0): what
/// every ReLU kernel computes, fused or not.
pub fn relu(x: f32) -> f32 {
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

/// y = max(x, 0)
pub fn relu_forward(x: &[f32], y: &mut [f32]) {
    for i in 0..y.len() {
        y[i] = relu(x[i]);
    }
}

/// dx = dy where x > 0, else 0 (PyTorch's subgradient at 0)
pub fn relu_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    for i in 0..dx.len() {
        dx[i] = if x[i] > 0.0 { dy[i] } else { 0.0 };
    }
}

/// y = max(y, 0) in place (a fused ReLU's forward)
pub fn relu_in_place(y: &mut [f32]) {
    for v in y {
        *v = relu(*v);
    }
}

/// dy = dy where y > 0, else 0, in place; y is the rectified output (a fused ReLU's backward)
pub fn relu_backward_in_place(y: &[f32], dy: &mut [f32]) {
    for (g, &v) in dy.iter_mut().zip(y) {
        *g = if v > 0.0 { *g } else { 0.0 };
    }
}
