//! An image folder: one sub-folder per class holding PNG or JPEG files, resized to SxS RGB.
//! With `train/` and `test/` sub-folders those are the splits; otherwise a seeded fifth of each
//! class is held out as the test set.

use std::path::{Path, PathBuf};

use super::{shuffle, Dataset, Label, MAX_CLASSES};
use crate::rng::Rng;
use crate::{Error, Result};

fn class_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    if v.is_empty() {
        return Err(Error::Invalid(format!("{}: no class sub-folders (expected one folder of images per class)", dir.display())));
    }
    Ok(v)
}

fn images_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e.to_lowercase().as_str(), "png" | "jpg" | "jpeg")))
        .collect();
    v.sort();
    if v.is_empty() {
        return Err(Error::Invalid(format!("{}: empty class folder (expected .png or .jpg images)", dir.display())));
    }
    Ok(v)
}

/// One image as [3, size, size] values in [0, 1].
pub fn read_image(path: &Path, size: usize) -> Result<Vec<f32>> {
    read_image_as(path, [3, size, size])
}

/// One image file (PNG, JPEG) as `shape` = [C, H, W] values in [0, 1]: resized to H x W,
/// grey for C = 1, RGB for C = 3.
pub fn read_image_as(path: &Path, shape: [usize; 3]) -> Result<Vec<f32>> {
    let [c, h, w] = shape;
    if c != 1 && c != 3 {
        return Err(Error::Invalid(format!("{}: inputs with {c} channels cannot come from an image file (1 or 3)", path.display())));
    }
    let img = image::open(path).map_err(|e| Error::Invalid(format!("{}: cannot read the image: {e}", path.display())))?;
    let img = img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle);
    let mut out = vec![0.0; c * h * w];
    if c == 1 {
        for (x, y, p) in img.to_luma8().enumerate_pixels() {
            out[y as usize * w + x as usize] = p[0] as f32 / 255.0;
        }
    } else {
        for (x, y, p) in img.to_rgb8().enumerate_pixels() {
            for ch in 0..3 {
                out[(ch * h + y as usize) * w + x as usize] = p[ch] as f32 / 255.0;
            }
        }
    }
    Ok(out)
}

fn read_classes(dir: &Path, size: usize, names: &[String]) -> Result<Vec<(Vec<f32>, Label)>> {
    let mut out = Vec::new();
    for (k, name) in names.iter().enumerate() {
        for f in images_in(&dir.join(name))? {
            out.push((read_image(&f, size)?, k as Label));
        }
    }
    Ok(out)
}

fn dataset(name: &str, size: usize, classes: &[String], items: Vec<(Vec<f32>, Label)>) -> Dataset {
    let mut d = Dataset { name: name.into(), shape: [3, size, size], classes: classes.to_vec(), images: Vec::new(), labels: Vec::new() };
    for (img, l) in items {
        d.images.extend(img);
        d.labels.push(l);
    }
    d
}

/// At most [`MAX_CLASSES`] classes: labels must survive the trip through f32 exactly.
fn check_class_count(dir: &Path, names: &[String]) -> Result<()> {
    if names.len() > MAX_CLASSES {
        return Err(Error::Invalid(format!("{}: {} class folders: expected at most {MAX_CLASSES}", dir.display(), names.len())));
    }
    Ok(())
}

/// (train, test) from `dir`, images resized to `size`.
pub fn load(dir: &Path, size: usize, seed: u64) -> Result<(Dataset, Dataset)> {
    if size == 0 {
        return Err(Error::Invalid("image size 0: expected a positive size".into()));
    }
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("folder");
    if dir.join("train").is_dir() && dir.join("test").is_dir() {
        let names: Vec<String> =
            class_dirs(&dir.join("train"))?.iter().filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(String::from)).collect();
        check_class_count(&dir.join("train"), &names)?;
        // A test class the training set lacks would be dropped without a word.
        for t in class_dirs(&dir.join("test"))? {
            let n = t.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if !names.iter().any(|c| c == n) {
                return Err(Error::Invalid(format!(
                    "{}: a test class with no folder in {} (expected the same class folders in train/ and test/)",
                    t.display(),
                    dir.join("train").display()
                )));
            }
        }
        return Ok((
            dataset(name, size, &names, read_classes(&dir.join("train"), size, &names)?),
            dataset(name, size, &names, read_classes(&dir.join("test"), size, &names)?),
        ));
    }
    let names: Vec<String> = class_dirs(dir)?.iter().filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(String::from)).collect();
    check_class_count(dir, &names)?;
    let mut all = read_classes(dir, size, &names)?;
    shuffle(&mut all, &mut Rng::new(seed ^ 0xF01D));
    let n_test = all.len() / 5;
    let train = all.split_off(n_test);
    Ok((dataset(name, size, &names, train), dataset(name, size, &names, all)))
}
