//! CPU twin of shaders/dropout.wgsl: the mask of `ops::dropout`, bit for bit.

use crate::ops::DropoutMask;

/// out = x * scale where kept, else 0 (forward on x, backward on dy).
pub fn dropout(m: &DropoutMask, x: &[f32], out: &mut [f32]) {
    for i in 0..out.len() {
        out[i] = if m.kept(i as u32) { x[i] * m.scale } else { 0.0 };
    }
}
