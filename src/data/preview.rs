//! `wgtrain augment-preview`: a PNG grid of augmented samples, so a person can see what the
//! model is fed (crops, flips, noise, and mixup/cutmix blends).

use std::path::Path;

use super::loader::{assemble, Augment};
use super::Dataset;
use crate::rng::Rng;
use crate::{Error, Result};

/// Writes `count` augmented samples of `data` (one batch) as a grid, 8 a row, 3x enlarged,
/// each image stretched to its own min..max.
pub fn write_grid(data: &Dataset, count: usize, aug: &Augment, seed: u64, out: &Path) -> Result<usize> {
    if count == 0 || data.is_empty() {
        return Err(Error::Invalid("augment preview: nothing to show (a count of 0 or an empty data set)".into()));
    }
    let mut rng = Rng::new(seed);
    let mut idx: Vec<usize> = (0..data.len()).collect();
    super::shuffle(&mut idx, &mut rng);
    idx.truncate(count.min(data.len()));
    let batch = assemble(data, &idx, aug, &mut rng);
    let [c, h, w] = data.shape;
    let (cols, scale, gap) = (8usize, 3usize, 2usize);
    let rows = idx.len().div_ceil(cols);
    let (cw, ch) = (w * scale + gap, h * scale + gap);
    let mut img = image::RgbImage::from_pixel((cols * cw) as u32, (rows * ch) as u32, image::Rgb([40, 40, 40]));
    let per = c * h * w;
    for (s, sample) in batch.x.chunks(per).enumerate() {
        let (lo, hi) = sample.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let span = (hi - lo).max(1e-6);
        let (ox, oy) = ((s % cols) * cw, (s / cols) * ch);
        for y in 0..h * scale {
            for x in 0..w * scale {
                let at = |ch_: usize| (((sample[(ch_ * h + y / scale) * w + x / scale] - lo) / span) * 255.0) as u8;
                let px = if c >= 3 { image::Rgb([at(0), at(1), at(2)]) } else { image::Rgb([at(0); 3]) };
                img.put_pixel((ox + x) as u32, (oy + y) as u32, px);
            }
        }
    }
    img.save(out).map_err(|e| Error::Invalid(format!("{}: cannot write the PNG: {e}", out.display())))?;
    Ok(idx.len())
}
