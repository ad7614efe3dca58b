//! `wgtrain augment-preview`: a PNG grid of augmented samples, so a person can see what the
//! model is fed (crops, flips, noise, and mixup/cutmix blends), each captioned with its class
//! (and, for mixed samples, the classes it blends with their weights: `cat 0.70` over `dog 0.30`).

use std::path::Path;

use super::loader::{assemble, Augment, Batch};
use super::Dataset;
use crate::plot::{draw_captions, Caption, CAPTION_LINE};
use crate::rng::Rng;
use crate::{Error, Result};

/// Background of the grid (between and under the tiles).
pub const BACKGROUND: [u8; 3] = [40, 40, 40];

/// The caption lines of sample `s` of `batch`: its class, or for a mixed sample the (at most
/// two) classes with a weight of at least 0.01, heaviest first, with their weights.
pub fn caption_lines(batch: &Batch, s: usize, classes: &[String]) -> Vec<String> {
    let name = |c: usize| classes.get(c).cloned().unwrap_or_else(|| c.to_string());
    let k = classes.len().max(1);
    match &batch.probs {
        Some(p) if p.len() >= (s + 1) * k => {
            let row = &p[s * k..(s + 1) * k];
            let mut parts: Vec<(usize, f32)> = row.iter().copied().enumerate().filter(|(_, w)| *w >= 0.01).collect();
            parts.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            if parts.len() == 1 || parts.is_empty() {
                return vec![name(batch.labels[s] as usize)];
            }
            parts.truncate(2);
            parts.iter().map(|(c, w)| format!("{} {w:.2}", name(*c))).collect()
        }
        _ => vec![name(batch.labels[s] as usize)],
    }
}

/// Writes `count` augmented samples of `data` (one batch) as a grid, 8 a row, enlarged (at
/// least 3x, to 112 pixels or more),
/// each image stretched to its own min..max and captioned under it (one line per class, two
/// when the augmentation mixes samples). Written atomically.
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
    // Enlarged at least 3x, and to 112 pixels or more so that captions fit.
    let (cols, scale, gap) = (8usize, 112usize.div_ceil(w).max(3), 2usize);
    let lines = if aug.mixup > 0.0 || aug.cutmix > 0.0 { 2 } else { 1 };
    let caption_h = lines * CAPTION_LINE as usize + 2;
    let rows = idx.len().div_ceil(cols);
    let (cw, ch) = (w * scale + gap, h * scale + caption_h + gap);
    let mut img = image::RgbImage::from_pixel((cols * cw) as u32, (rows * ch) as u32, image::Rgb(BACKGROUND));
    let per = c * h * w;
    let mut captions = Vec::with_capacity(idx.len());
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
        captions.push(Caption {
            x: ox as u32,
            y: (oy + h * scale + 1) as u32,
            width: (w * scale) as u32,
            lines: caption_lines(&batch, s, &data.classes),
            rgb: [235, 235, 235],
        });
    }
    draw_captions(&mut img, &captions).map_err(|e| Error::Invalid(format!("{}: {e}", out.display())))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::Invalid(format!("{}: cannot encode the PNG: {e}", out.display())))?;
    crate::atomic::write(out, &png)?;
    Ok(idx.len())
}
