//! CPU twin of shaders/reduce.wgsl.

/// Sum of all elements, accumulated in f64 (a reference more accurate than any f32 kernel).
pub fn sum(x: &[f32]) -> f32 {
    x.iter().map(|&v| v as f64).sum::<f64>() as f32
}

/// Sum of squares, accumulated in f64.
pub fn sum_squares(x: &[f32]) -> f32 {
    x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() as f32
}
