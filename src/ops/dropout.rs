//! Inverted dropout with a counter-based mask: whether element i is kept is a hash of
//! (i, seed, step), so the mask needs no storage, the backward is the same op on dy, and the
//! GPU (shaders/dropout.wgsl) and the CPU twin (src/cpu/dropout.rs) draw the same mask bit for
//! bit. The hash lives here, with the op, and both twins use it.

use crate::{Error, Result};

/// Everything that defines a dropout mask: drop probability p, and the (seed, step) it is
/// drawn for. Both backends derive the same per-step keys from here.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutMask {
    /// Element i is kept when hash(i) >= threshold = p * 2^32.
    pub threshold: u32,
    /// 1 / (1 - p); 0 when p == 1 (everything dropped).
    pub scale: f32,
    /// First key of the hash, from (seed, step).
    pub key1: u32,
    /// Second key of the hash.
    pub key2: u32,
}

impl DropoutMask {
    /// The mask of drop probability `p` for `(seed, step)`.
    pub fn new(p: f32, seed: u64, step: u64) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::Invalid(format!("dropout: p is {p}, expected a probability in [0, 1]")));
        }
        let threshold = ((p as f64) * 4_294_967_296.0).min(u32::MAX as f64) as u32;
        let scale = if p >= 1.0 { 0.0 } else { 1.0 / (1.0 - p) };
        let k = mix(seed as u32 ^ mix((seed >> 32) as u32 ^ mix(step as u32 ^ mix((step >> 32) as u32))));
        Ok(Self { threshold, scale, key1: k, key2: mix(k ^ 0x9e37_79b9) })
    }

    /// Is element `i` kept? (shaders/dropout.wgsl computes the same.)
    pub fn kept(&self, i: u32) -> bool {
        mix(mix(i.wrapping_add(self.key1)) ^ self.key2) >= self.threshold
    }
}

/// "lowbias32" integer mixer (C. Wellons): the hash of the mask.
pub fn mix(v: u32) -> u32 {
    let mut h = v;
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb_352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846c_a68b);
    h ^= h >> 16;
    h
}
