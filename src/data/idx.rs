//! MNIST and Fashion-MNIST: IDX files, gzipped or not.
//! Images: magic 0x00000803, count, rows, cols, then bytes. Labels: magic 0x00000801, count, bytes.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::Dataset;
use crate::{Error, Result};

fn bad(path: &Path, msg: String) -> Error {
    Error::Invalid(format!("{}: {msg}", path.display()))
}

/// The file `stem` in `dir`, gzipped or not (also the `t10k-images.idx3-ubyte` spelling).
fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    let dotted = stem.replacen("-idx", ".idx", 1);
    for name in [format!("{stem}.gz"), stem.to_string(), format!("{dotted}.gz"), dotted.clone()] {
        let p = dir.join(&name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::Invalid(format!("{}: no {stem}[.gz] in this folder (expected the IDX files of MNIST or Fashion-MNIST)", dir.display())))
}

/// The file's bytes, gunzipped when it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(|e| bad(path, format!("corrupt gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// (count, rows, cols, pixels) of an IDX3 image file.
pub fn parse_images(path: &Path, b: &[u8]) -> Result<(usize, usize, usize, Vec<u8>)> {
    if b.len() < 16 {
        return Err(bad(path, format!("{} bytes is too short for an IDX image header (16 bytes)", b.len())));
    }
    let magic = be_u32(b, 0);
    if magic != 0x0803 {
        return Err(bad(path, format!("magic number {magic:#010x}, expected 0x00000803 (IDX images)")));
    }
    let (n, r, c) = (be_u32(b, 4) as usize, be_u32(b, 8) as usize, be_u32(b, 12) as usize);
    let want = 16 + n * r * c;
    if b.len() != want {
        return Err(bad(path, format!("{} bytes, but the header ({n} images of {r}x{c}) needs {want}: truncated or corrupt", b.len())));
    }
    Ok((n, r, c, b[16..].to_vec()))
}

/// Labels of an IDX1 label file.
pub fn parse_labels(path: &Path, b: &[u8]) -> Result<Vec<u8>> {
    if b.len() < 8 {
        return Err(bad(path, format!("{} bytes is too short for an IDX label header (8 bytes)", b.len())));
    }
    let magic = be_u32(b, 0);
    if magic != 0x0801 {
        return Err(bad(path, format!("magic number {magic:#010x}, expected 0x00000801 (IDX labels)")));
    }
    let n = be_u32(b, 4) as usize;
    if b.len() != 8 + n {
        return Err(bad(path, format!("{} bytes, but the header ({n} labels) needs {}: truncated or corrupt", b.len(), 8 + n)));
    }
    Ok(b[8..].to_vec())
}

fn load_pair(dir: &Path, prefix: &str, name: &str, classes: &[&str]) -> Result<Dataset> {
    let ip = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lp = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let (n, r, c, px) = parse_images(&ip, &read_maybe_gz(&ip)?)?;
    let labels = parse_labels(&lp, &read_maybe_gz(&lp)?)?;
    if labels.len() != n {
        return Err(bad(&lp, format!("{} labels for {n} images in {}", labels.len(), ip.display())));
    }
    let d = Dataset {
        name: name.into(),
        shape: [1, r, c],
        classes: classes.iter().map(|s| s.to_string()).collect(),
        images: px.iter().map(|&v| v as f32 / 255.0).collect(),
        labels,
    };
    d.check_labels(&lp)?;
    Ok(d)
}

/// (train, test) from `dir`.
pub fn load_mnist(dir: &Path, name: &str, classes: &[&str]) -> Result<(Dataset, Dataset)> {
    Ok((load_pair(dir, "train", name, classes)?, load_pair(dir, "t10k", name, classes)?))
}
