//! CPU twin of shaders/dropout.wgsl: the same counter-based mask, bit for bit.

use crate::ops::DropoutMask;

/// "lowbias32" integer mixer (C. Wellons).
pub fn mix(v: u32) -> u32 {
    let mut h = v;
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb_352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846c_a68b);
    h ^= h >> 16;
    h
}

/// Is element `i` kept?
pub fn kept(m: &DropoutMask, i: u32) -> bool {
    mix(mix(i.wrapping_add(m.key1)) ^ m.key2) >= m.threshold
}

/// out = x * scale where kept, else 0 (forward on x, backward on dy).
pub fn dropout(m: &DropoutMask, x: &[f32], out: &mut [f32]) {
    for i in 0..out.len() {
        out[i] = if kept(m, i as u32) { x[i] * m.scale } else { 0.0 };
    }
}
