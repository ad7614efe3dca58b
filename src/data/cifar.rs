//! CIFAR-10 binary batches: records of 1 label byte + 3072 pixel bytes (1024 R, 1024 G,
//! 1024 B, row-major 32x32). Training: every `data_batch*.bin` in the folder; test:
//! every `test_batch*.bin`.

use std::path::{Path, PathBuf};

use super::{Dataset, Label};
use crate::{Error, Result};

/// Class names, by label.
pub const CLASSES: [&str; 10] = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];
const RECORD: usize = 1 + 3072;

fn files(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix) && n.ends_with(".bin")))
        .collect();
    v.sort();
    if v.is_empty() {
        return Err(Error::Invalid(format!("{}: no {prefix}*.bin files (expected CIFAR-10 binary batches)", dir.display())));
    }
    Ok(v)
}

/// Parses one binary batch file.
pub fn parse(path: &Path, bytes: &[u8], into: &mut Dataset) -> Result<()> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(Error::Invalid(format!(
            "{}: {} bytes is not a whole number of {RECORD}-byte CIFAR-10 records: truncated or corrupt",
            path.display(),
            bytes.len()
        )));
    }
    for (i, rec) in bytes.chunks(RECORD).enumerate() {
        if rec[0] as usize >= CLASSES.len() {
            return Err(Error::Invalid(format!("{}: record {i} has label {}, expected 0..9", path.display(), rec[0])));
        }
        into.labels.push(Label::from(rec[0]));
        into.images.extend(rec[1..].iter().map(|&v| v as f32 / 255.0));
    }
    Ok(())
}

fn load_set(dir: &Path, prefix: &str) -> Result<Dataset> {
    let mut d = Dataset {
        name: "cifar10".into(),
        shape: [3, 32, 32],
        classes: CLASSES.iter().map(|s| s.to_string()).collect(),
        images: Vec::new(),
        labels: Vec::new(),
    };
    for f in files(dir, prefix)? {
        let bytes = std::fs::read(&f).map_err(|e| Error::Io { path: f.clone(), source: e })?;
        parse(&f, &bytes, &mut d)?;
    }
    Ok(d)
}

/// (train, test) from `dir`.
pub fn load(dir: &Path) -> Result<(Dataset, Dataset)> {
    Ok((load_set(dir, "data_batch")?, load_set(dir, "test_batch")?))
}
