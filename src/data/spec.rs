//! Which data a run trains on, as a value: the source, its folder, the image size, the subsets
//! and the validation share. Checkpoints record it, so `eval`, `predict` and `--resume` find the
//! same images again without being told.

use std::path::{Path, PathBuf};

use super::{Dataset, Source};
use crate::experiment::stats::stratified_subset;
use crate::{Error, Result};

/// Training images of the built-in shapes when no size is given (its test set is a fifth).
pub const SHAPES_TRAIN: usize = 10_000;

/// A data set and the part of it a run uses.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataSpec {
    /// Where the images come from.
    pub source: Source,
    /// The folder of its files (absolute when recorded; none for the built-in shapes).
    pub path: Option<PathBuf>,
    /// Image side for folders of images (others have their own size).
    pub image_size: usize,
    /// A seeded, stratified subset of this many training images (all when `None`; for shapes,
    /// the number generated, [`SHAPES_TRAIN`] by default).
    pub train_size: Option<usize>,
    /// The same for the test set (for shapes, a fifth of the training size by default).
    pub test_size: Option<usize>,
    /// Share of the training images held out for validation.
    pub val_fraction: f64,
}

impl DataSpec {
    /// The built-in shapes at their default size, with a tenth held out.
    pub fn shapes() -> Self {
        Self { source: Source::Shapes, path: None, image_size: 32, train_size: None, test_size: None, val_fraction: 0.1 }
    }

    /// This spec with its folder made absolute (so a recorded spec works from another folder).
    pub fn absolute(mut self) -> Self {
        if let Some(p) = &self.path {
            if let Ok(abs) = std::path::absolute(p) {
                self.path = Some(abs);
            }
        }
        self
    }

    /// Loads (train, test) with the subsets taken; `seed` fixes the subsets and the shapes.
    pub fn load(&self, seed: u64) -> Result<(Dataset, Dataset)> {
        load_subsets(self.source, self.path.as_deref(), self.image_size, self.train_size, self.test_size, seed)
    }

    /// One line for people: `mnist (/data/mnist), 5000 train / 1000 test images`.
    pub fn describe(&self) -> String {
        let mut s = self.source.name().to_string();
        if let Some(p) = &self.path {
            s.push_str(&format!(" ({})", p.display()));
        }
        if self.source == Source::Folder {
            s.push_str(&format!(", {0}x{0} images", self.image_size));
        }
        let size = |n: Option<usize>| n.map_or("all".to_string(), |n| n.to_string());
        if self.train_size.is_some() || self.test_size.is_some() {
            s.push_str(&format!(", subsets of {} train / {} test images", size(self.train_size), size(self.test_size)));
        }
        s
    }

    /// What differs between `self` (recorded) and `other` (asked for), for messages; empty
    /// when they are the same data. A moved folder of the same source is not a difference.
    pub fn differences(&self, other: &DataSpec) -> Vec<String> {
        let mut d = Vec::new();
        if self.source != other.source {
            d.push(format!("data set {} (recorded: {})", other.source.name(), self.source.name()));
        }
        if self.source == Source::Folder && self.image_size != other.image_size {
            d.push(format!("image size {} (recorded: {})", other.image_size, self.image_size));
        }
        let size = |n: Option<usize>| n.map_or("all".to_string(), |n| n.to_string());
        for (what, a, b) in [("train size", self.train_size, other.train_size), ("test size", self.test_size, other.test_size)] {
            if a != b {
                d.push(format!("{what} {} (recorded: {})", size(b), size(a)));
            }
        }
        if self.val_fraction != other.val_fraction {
            d.push(format!("validation fraction {} (recorded: {})", other.val_fraction, self.val_fraction));
        }
        d
    }
}

/// Loads a data set and takes seeded, stratified subsets of `train_size` training and
/// `test_size` test images (all of them where a size is `None`). The built-in shapes are
/// generated at the size asked for (default [`SHAPES_TRAIN`], a fifth of that for test).
pub fn load_subsets(
    source: Source,
    dir: Option<&Path>,
    image_size: usize,
    train_size: Option<usize>,
    test_size: Option<usize>,
    seed: u64,
) -> Result<(Dataset, Dataset)> {
    for (what, n) in [("train size", train_size), ("test size", test_size)] {
        if n == Some(0) {
            return Err(Error::Invalid(format!("{what} 0: expected at least 1 image")));
        }
    }
    if source == Source::Shapes {
        // Generated at the sizes asked for (the test images from their own seed).
        let n = train_size.unwrap_or(SHAPES_TRAIN);
        return Ok((super::shapes::generate(n, seed), super::shapes::generate(test_size.unwrap_or(n / 5).max(1), seed ^ 0x7E57)));
    }
    let (mut train, mut test) = super::load(source, dir, seed, 0, image_size)?;
    if let Some(n) = train_size {
        train = train.subset(&stratified_subset(&train.labels, n, seed));
    }
    if let Some(n) = test_size {
        test = test.subset(&stratified_subset(&test.labels, n, seed ^ 0x7E57));
    }
    Ok((train, test))
}
