//! The background loader: a thread that shuffles (seeded per epoch), augments and assembles
//! batches while the device trains on the previous ones, a few batches ahead.
//!
//! Augmentations, each optional: random crop after zero padding, horizontal flip, Gaussian
//! input noise, and batch mixing — mixup (a convex blend of two images and their labels) or
//! cutmix (a box of another image pasted in, labels mixed by area), with the mixing weight
//! drawn from Beta(alpha, alpha).

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{shuffle, Dataset};
use crate::rng::Rng;
use crate::{Error, Result};

/// Which augmentations the loader applies to training batches; the default is none.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Augment {
    /// Pad by this many zeros, then crop back at a random offset (0: off).
    pub crop_pad: usize,
    /// Mirror each image left-right with probability 1/2.
    pub hflip: bool,
    /// Standard deviation of Gaussian noise added to the (normalised) input (0: off).
    pub noise: f32,
    /// Mixup's Beta(alpha, alpha) (0: off).
    pub mixup: f32,
    /// Cutmix's Beta(alpha, alpha) (0: off). With both set, each batch picks one at random.
    pub cutmix: f32,
}

impl Augment {
    /// Checks the settings: noise, mixup and cutmix finite and >= 0 (an infinite Beta
    /// parameter would never return a sample), padding at most 1024 pixels.
    pub fn check(&self) -> Result<()> {
        for (name, v) in [("input noise", self.noise), ("mixup alpha", self.mixup), ("cutmix alpha", self.cutmix)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::Invalid(format!("{name} is {v}: expected a finite value >= 0 (0: off)")));
            }
        }
        if self.crop_pad > 1024 {
            return Err(Error::Invalid(format!("crop padding is {} pixels: expected at most 1024", self.crop_pad)));
        }
        Ok(())
    }

    /// Whether batches are mixed (mixup or cutmix), so targets are distributions.
    pub fn mixes(&self) -> bool {
        self.mixup > 0.0 || self.cutmix > 0.0
    }
}

/// A batch ready for the device.
pub struct Batch {
    /// Images [batch, C, H, W].
    pub x: Vec<f32>,
    /// Class indices (for mixed batches: the class with the larger share).
    pub labels: Vec<f32>,
    /// Target distributions [batch, classes] when the batch was mixed.
    pub probs: Option<Vec<f32>>,
}

/// Batches of one pass over a data set, produced on a background thread.
pub struct Loader {
    rx: Option<Receiver<Batch>>,
    handle: Option<JoinHandle<()>>,
    /// Number of batches this pass yields.
    pub batches: usize,
}

impl Iterator for Loader {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Closing the channel ends the producer at its next send.
        drop(self.rx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Starts a pass over `data` in batches of `batch` (the last one smaller unless `drop_last`),
/// shuffled with (seed, epoch) when `shuffle`, augmented as `aug` says.
pub fn start(
    data: Arc<Dataset>,
    batch: usize,
    seed: u64,
    epoch: u64,
    aug: Augment,
    shuffle_order: bool,
    drop_last: bool,
) -> Result<Loader> {
    if batch == 0 {
        return Err(Error::Invalid("batch size 0: expected at least 1".into()));
    }
    let n = data.len();
    let batches = batches(n, batch, drop_last);
    if batches == 0 {
        return Err(Error::Invalid(format!("{}: {n} samples are fewer than one batch of {batch}", data.name)));
    }
    let (tx, rx) = sync_channel(4);
    let handle = std::thread::spawn(move || {
        let mut rng = Rng::new(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x10AD);
        let mut order: Vec<usize> = (0..n).collect();
        if shuffle_order {
            shuffle(&mut order, &mut rng);
        }
        for b in 0..batches {
            let idx = &order[b * batch..((b + 1) * batch).min(n)];
            if tx.send(assemble(&data, idx, &aug, &mut rng)).is_err() {
                return;
            }
        }
    });
    Ok(Loader { rx: Some(rx), handle: Some(handle), batches })
}

/// Batches in a pass over `n` samples.
pub fn batches(n: usize, batch: usize, drop_last: bool) -> usize {
    match (batch, drop_last) {
        (0, _) => 0,
        (b, true) => n / b,
        (b, false) => n.div_ceil(b),
    }
}

/// One batch of the samples `idx`, augmented.
pub fn assemble(data: &Dataset, idx: &[usize], aug: &Augment, rng: &mut Rng) -> Batch {
    let [c, h, w] = data.shape;
    let per = data.image_len();
    let mut x = Vec::with_capacity(idx.len() * per);
    for &i in idx {
        let mut img = data.image(i).to_vec();
        if aug.crop_pad > 0 {
            let p = aug.crop_pad as isize;
            let (dy, dx) = (rng.below(2 * aug.crop_pad + 1) as isize - p, rng.below(2 * aug.crop_pad + 1) as isize - p);
            img = shifted(&img, c, h, w, dy, dx);
        }
        if aug.hflip && rng.next_f32() < 0.5 {
            for row in img.chunks_mut(w) {
                row.reverse();
            }
        }
        if aug.noise > 0.0 {
            for v in img.iter_mut() {
                *v += aug.noise * rng.normal();
            }
        }
        x.extend(img);
    }
    let labels: Vec<f32> = idx.iter().map(|&i| data.labels[i] as f32).collect();
    if !aug.mixes() || idx.len() < 2 {
        return Batch { x, labels, probs: None };
    }
    // Pair each sample with the next one (a shuffled batch makes that a random partner).
    let k = data.classes.len();
    let use_cutmix = aug.cutmix > 0.0 && (aug.mixup <= 0.0 || rng.next_f32() < 0.5);
    let lam = rng.beta_sym(if use_cutmix { aug.cutmix } else { aug.mixup } as f64) as f32;
    let n = idx.len();
    let orig = x.clone();
    let mut probs = vec![0.0f32; n * k];
    let mut mixed_labels = labels.clone();
    let mut share = lam;
    if use_cutmix {
        // A box covering about (1 - lam) of the image, from the partner.
        let ratio = (1.0 - lam).sqrt();
        let (bh, bw) = ((h as f32 * ratio) as usize, (w as f32 * ratio) as usize);
        let (y0, x0) = (rng.below(h - bh + 1), rng.below(w - bw + 1));
        for s in 0..n {
            let partner = (s + 1) % n;
            for ch in 0..c {
                for yy in y0..y0 + bh {
                    for xx in x0..x0 + bw {
                        let at = ((ch * h) + yy) * w + xx;
                        x[s * per + at] = orig[partner * per + at];
                    }
                }
            }
        }
        share = 1.0 - (bh * bw) as f32 / (h * w) as f32;
    } else {
        for s in 0..n {
            let partner = (s + 1) % n;
            for j in 0..per {
                x[s * per + j] = lam * orig[s * per + j] + (1.0 - lam) * orig[partner * per + j];
            }
        }
    }
    for s in 0..n {
        let partner = (s + 1) % n;
        probs[s * k + labels[s] as usize] += share;
        probs[s * k + labels[partner] as usize] += 1.0 - share;
        if share < 0.5 {
            mixed_labels[s] = labels[partner];
        }
    }
    Batch { x, labels: mixed_labels, probs: Some(probs) }
}

/// The image moved by (dy, dx), zeros shifted in: a crop of the zero-padded image.
fn shifted(img: &[f32], c: usize, h: usize, w: usize, dy: isize, dx: isize) -> Vec<f32> {
    let mut out = vec![0.0; img.len()];
    for ch in 0..c {
        for y in 0..h as isize {
            let sy = y + dy;
            if sy < 0 || sy >= h as isize {
                continue;
            }
            for x in 0..w as isize {
                let sx = x + dx;
                if sx >= 0 && sx < w as isize {
                    out[(ch * h + y as usize) * w + x as usize] = img[(ch * h + sy as usize) * w + sx as usize];
                }
            }
        }
    }
    out
}
