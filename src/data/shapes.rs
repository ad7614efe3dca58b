//! The built-in data set: 28x28 grayscale drawings of 10 kinds of shapes at random position,
//! size and rotation, with random brightness and Gaussian noise. Deterministic per seed, no
//! download. Rotation, position and noise make it hard for a linear model and easy for a CNN.

use super::{Dataset, Label};
use crate::rng::Rng;

/// Class names, by label (the `kind` of [`draw`]).
pub const CLASSES: [&str; 10] = ["disk", "ring", "square", "hollow square", "triangle", "plus", "star", "ellipse", "two bars", "crescent"];
/// Image height and width in pixels (one channel).
pub const SIZE: usize = 28;

/// Whether the point (x, y) of the shape's unit frame is inside shape `kind`.
fn inside(kind: usize, x: f32, y: f32) -> bool {
    let r2 = x * x + y * y;
    match kind {
        0 => r2 <= 1.0,
        1 => (0.3..=1.0).contains(&r2),
        2 => x.abs() <= 0.8 && y.abs() <= 0.8,
        3 => x.abs().max(y.abs()) <= 0.85 && x.abs().max(y.abs()) >= 0.5,
        // Equilateral triangle with vertices (0, 1), (±0.866, -0.5).
        4 => y >= -0.5 && y <= 1.0 - 1.732_050_8 * x.abs(),
        5 => (x.abs() <= 0.28 && y.abs() <= 1.0) || (y.abs() <= 0.28 && x.abs() <= 1.0),
        6 => {
            let phi = y.atan2(x);
            let lobes = ((5.0 * phi).cos() + 1.0) / 2.0;
            r2.sqrt() <= 0.35 + 0.65 * lobes * lobes
        }
        7 => x * x + (y / 0.45) * (y / 0.45) <= 1.0,
        8 => x.abs() <= 1.0 && (0.25..=0.65).contains(&y.abs()),
        9 => r2 <= 1.0 && (x - 0.45) * (x - 0.45) + y * y > 0.5,
        _ => false,
    }
}

/// One image of shape `kind` drawn from `rng`, values about in [0, 1].
pub fn draw(kind: usize, rng: &mut Rng) -> Vec<f32> {
    let s = SIZE as f32;
    let (cx, cy) = (rng.uniform(0.35 * s, 0.65 * s), rng.uniform(0.35 * s, 0.65 * s));
    let scale = rng.uniform(0.18 * s, 0.32 * s);
    let theta = rng.uniform(0.0, std::f32::consts::TAU);
    let (sin, cos) = theta.sin_cos();
    let brightness = rng.uniform(0.5, 1.0);
    let mut img = vec![0.0f32; SIZE * SIZE];
    for py in 0..SIZE {
        for px in 0..SIZE {
            // 2x2 supersampling for smooth edges.
            let mut cover = 0.0;
            for (ox, oy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                let (dx, dy) = (px as f32 + ox - cx, py as f32 + oy - cy);
                let (u, v) = ((cos * dx + sin * dy) / scale, (-sin * dx + cos * dy) / scale);
                if inside(kind, u, v) {
                    cover += 0.25;
                }
            }
            img[py * SIZE + px] = brightness * cover + 0.15 * rng.normal();
        }
    }
    img
}

/// `n` images, classes in turn (so every class has n/10), each from its own seeded stream.
pub fn generate(n: usize, seed: u64) -> Dataset {
    let mut images = Vec::with_capacity(n * SIZE * SIZE);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let mut rng = Rng::new(seed.wrapping_mul(0x100_0000_01B3).wrapping_add(i as u64));
        let kind = i % CLASSES.len();
        images.extend(draw(kind, &mut rng));
        labels.push(kind as Label);
    }
    Dataset { name: "shapes".into(), shape: [1, SIZE, SIZE], classes: CLASSES.iter().map(|c| c.to_string()).collect(), images, labels }
}
