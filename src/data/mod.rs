//! Data sets in memory: images as normalised f32 [N, C, H, W] and labels, from MNIST /
//! Fashion-MNIST (IDX), CIFAR-10 (binary batches), an image folder, or the built-in synthetic
//! shapes; the train/validation split; and the background loader that shuffles, augments and
//! batches (`loader`).

pub mod cifar;
pub mod folder;
pub mod idx;
pub mod loader;
pub mod preview;
pub mod shapes;
pub mod spec;

pub use spec::DataSpec;

use std::path::Path;

use crate::rng::Rng;
use crate::{Error, Result};

/// A class index. Labels travel to the loss kernels as f32, which holds every integer up to
/// 2^24 exactly, so that is the most classes a data set may have ([`MAX_CLASSES`]).
pub type Label = u32;

/// The most classes a data set may have: 2^24, the integers an f32 label holds exactly.
pub const MAX_CLASSES: usize = 1 << 24;

/// Images and labels. `images` holds `len() * shape` values, channel-major per image.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The source's name (`mnist`, `cifar10`, the folder's name, ...), for messages.
    pub name: String,
    /// [C, H, W]
    pub shape: [usize; 3],
    /// Class names; label `l` is `classes[l]`.
    pub classes: Vec<String>,
    /// Pixel values [N, C, H, W], in [0, 1] as loaded and per-channel normalised after [`split`].
    pub images: Vec<f32>,
    /// Class index of each image, \[N\].
    pub labels: Vec<Label>,
}

impl Dataset {
    /// Number of images N.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image, C * H * W.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Image `i`, [C, H, W].
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut images = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        Dataset {
            name: self.name.clone(),
            shape: self.shape,
            classes: self.classes.clone(),
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// Per-channel mean and standard deviation.
    pub fn channel_stats(&self) -> Vec<(f32, f32)> {
        let [c, h, w] = self.shape;
        (0..c)
            .map(|ch| {
                let (mut s, mut s2) = (0.0f64, 0.0f64);
                for i in 0..self.len() {
                    for &v in &self.image(i)[ch * h * w..(ch + 1) * h * w] {
                        s += v as f64;
                        s2 += (v as f64) * (v as f64);
                    }
                }
                let n = (self.len() * h * w).max(1) as f64;
                let mean = s / n;
                (mean as f32, ((s2 / n - mean * mean).max(1e-12)).sqrt() as f32)
            })
            .collect()
    }

    /// `x <- (x - mean[c]) / std[c]`
    pub fn normalize(&mut self, stats: &[(f32, f32)]) {
        let [c, h, w] = self.shape;
        let plane = h * w;
        for (k, v) in self.images.iter_mut().enumerate() {
            let (m, s) = stats[(k / plane) % c];
            *v = (*v - m) / s;
        }
    }

    /// Checks every label against the class count.
    pub fn check_labels(&self, source: &Path) -> Result<()> {
        if let Some((i, &l)) = self.labels.iter().enumerate().find(|(_, &l)| l as usize >= self.classes.len()) {
            return Err(Error::Invalid(format!(
                "{}: label {l} of sample {i} is out of range: expected 0..{}",
                source.display(),
                self.classes.len() - 1
            )));
        }
        Ok(())
    }
}

/// Training, validation (taken from the training files) and test data.
pub struct Splits {
    /// What the model is trained on.
    pub train: Dataset,
    /// Held out of the training files to watch generalisation during training (may be empty).
    pub val: Dataset,
    /// The source's own test files.
    pub test: Dataset,
    /// Per-channel (mean, std) of the training part, applied to all three.
    pub stats: Vec<(f32, f32)>,
}

/// Like `split`, but normalising with given statistics (those a checkpoint was trained with).
pub fn split_with(train: Dataset, test: Dataset, val_fraction: f64, seed: u64, stats: &[(f32, f32)]) -> Result<Splits> {
    if stats.len() != train.shape[0] {
        return Err(Error::Invalid(format!(
            "normalisation for {} channel(s), but {} has {} (images {:?}): a model trained on other images",
            stats.len(),
            train.name,
            train.shape[0],
            train.shape
        )));
    }
    if let Some((m, s)) = stats.iter().find(|(m, s)| !(m.is_finite() && s.is_finite() && *s > 0.0)) {
        return Err(Error::Invalid(format!("normalisation mean {m}, std {s}: expected finite values and a std > 0")));
    }
    let mut s = split(train, test, val_fraction, seed)?;
    // Undo the fresh statistics, apply the given ones.
    for d in [&mut s.train, &mut s.val, &mut s.test] {
        let inverse: Vec<(f32, f32)> = s.stats.iter().map(|&(m, sd)| (-m / sd, 1.0 / sd)).collect();
        d.normalize(&inverse);
        d.normalize(stats);
    }
    s.stats = stats.to_vec();
    Ok(s)
}

/// Splits `val_fraction` of `train` off for validation (a seeded shuffle), then normalises all
/// three with the training part's per-channel statistics. The test set is never looked at.
pub fn split(train: Dataset, test: Dataset, val_fraction: f64, seed: u64) -> Result<Splits> {
    if !(0.0..1.0).contains(&val_fraction) {
        return Err(Error::Invalid(format!("validation fraction {val_fraction}: expected a value in [0, 1)")));
    }
    let mut order: Vec<usize> = (0..train.len()).collect();
    shuffle(&mut order, &mut Rng::new(seed ^ 0x5EED_5A1D));
    let n_val = (train.len() as f64 * val_fraction).round() as usize;
    let (val_idx, train_idx) = order.split_at(n_val);
    let (mut tr, mut va, mut te) = (train.subset(train_idx), train.subset(val_idx), test);
    if tr.is_empty() {
        return Err(Error::Invalid(format!("{}: no training samples left after the validation split", tr.name)));
    }
    let stats = tr.channel_stats();
    tr.normalize(&stats);
    va.normalize(&stats);
    te.normalize(&stats);
    Ok(Splits { train: tr, val: va, test: te, stats })
}

/// Normalises one image [C, H, W] in place with per-channel (mean, std), as the training data
/// was (channels beyond `stats` are left as they are).
pub fn normalize_image(image: &mut [f32], stats: &[(f32, f32)], plane: usize) {
    for (i, v) in image.iter_mut().enumerate() {
        if let Some(&(m, s)) = stats.get(i / plane.max(1)) {
            *v = (*v - m) / s;
        }
    }
}

/// Fisher-Yates with our RNG (deterministic per seed).
pub fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i + 1));
    }
}

/// Where a data set comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Built in, no download: 28x28 drawings of 10 kinds of shapes.
    Shapes,
    /// MNIST handwritten digits (IDX files).
    Mnist,
    /// Fashion-MNIST (IDX files).
    FashionMnist,
    /// CIFAR-10 (binary batches).
    Cifar10,
    /// One sub-folder of PNG/JPEG images per class.
    Folder,
}

impl Source {
    /// Every source, in the order they are listed to users.
    pub const ALL: [Source; 5] = [Source::Shapes, Source::Mnist, Source::FashionMnist, Source::Cifar10, Source::Folder];

    /// The name users write (`shapes`, `mnist`, `fashion-mnist`, `cifar10`, `folder`).
    pub fn name(self) -> &'static str {
        match self {
            Source::Shapes => "shapes",
            Source::Mnist => "mnist",
            Source::FashionMnist => "fashion-mnist",
            Source::Cifar10 => "cifar10",
            Source::Folder => "folder",
        }
    }
}

impl std::str::FromStr for Source {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Source::ALL.into_iter().find(|x| x.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Source::ALL.iter().map(|x| x.name()).collect();
            Error::Invalid(format!("unknown data set '{s}': expected one of {}", names.join(", ")))
        })
    }
}

/// Loads (train, test) for a source; `dir` is the data folder for file-based sets.
pub fn load(source: Source, dir: Option<&Path>, seed: u64, shapes_train: usize, image_size: usize) -> Result<(Dataset, Dataset)> {
    let need_dir = || dir.ok_or_else(|| Error::Invalid(format!("data set {} needs the folder with its files", source.name())));
    match source {
        Source::Shapes => Ok((shapes::generate(shapes_train, seed), shapes::generate(shapes_train / 5, seed ^ 0x7E57))),
        Source::Mnist => idx::load_mnist(need_dir()?, "mnist", &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]),
        Source::FashionMnist => idx::load_mnist(
            need_dir()?,
            "fashion-mnist",
            &["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"],
        ),
        Source::Cifar10 => cifar::load(need_dir()?),
        Source::Folder => folder::load(need_dir()?, image_size, seed),
    }
}
