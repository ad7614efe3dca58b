//! MNIST and Fashion-MNIST: IDX files, gzipped or not.
//! Images: magic 0x00000803, count, rows, cols, then bytes. Labels: magic 0x00000801, count, bytes.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Dataset, Label};
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
    read_idx(path, 0, |_, _| Ok(None))
}

/// The bytes of an IDX file (gunzipped when it starts with the gzip magic), unpacking no more
/// than its header announces: the first `header` bytes are read, `announced` gives the file's
/// whole size from them (`None`: unknown, read all), and a file longer than that is refused
/// before the rest is unpacked, so a small gzip that would expand to gigabytes costs nothing.
fn read_idx(path: &Path, header: usize, announced: impl Fn(&Path, &[u8]) -> Result<Option<usize>>) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    let gz = raw.starts_with(&[0x1f, 0x8b]);
    let mut src: Box<dyn Read + '_> = if gz { Box::new(flate2::read::GzDecoder::new(&raw[..])) } else { Box::new(&raw[..]) };
    let corrupt = |e: std::io::Error| bad(path, format!("corrupt gzip data: {e}"));
    let mut out = Vec::new();
    (&mut src).take(header as u64).read_to_end(&mut out).map_err(corrupt)?;
    let total = if out.len() == header { announced(path, &out)? } else { None };
    match total {
        Some(total) => {
            src.take((total - header) as u64 + 1).read_to_end(&mut out).map_err(corrupt)?;
            if out.len() > total {
                return Err(bad(path, format!("holds more than the {total} bytes its header announces: corrupt")));
            }
        }
        None => {
            src.read_to_end(&mut out).map_err(corrupt)?;
        }
    }
    Ok(out)
}

/// The size an IDX3 image header announces (16 + n * rows * cols); unknown for another magic
/// number (the parser names it); an error when it could not fit in memory (over 2^40 bytes).
fn images_size(path: &Path, h: &[u8]) -> Result<Option<usize>> {
    if be_u32(h, 0) != 0x0803 {
        return Ok(None);
    }
    let (n, r, c) = (be_u32(h, 4) as usize, be_u32(h, 8) as usize, be_u32(h, 12) as usize);
    let total = n.checked_mul(r).and_then(|x| x.checked_mul(c)).and_then(|x| x.checked_add(16)).filter(|&t| t <= 1 << 40);
    total.map(Some).ok_or_else(|| bad(path, format!("header announces {n} images of {r}x{c}: too large")))
}

/// The size an IDX1 label header announces (8 + n), if the magic is right.
fn labels_size(_: &Path, h: &[u8]) -> Result<Option<usize>> {
    Ok((be_u32(h, 0) == 0x0801).then(|| 8 + be_u32(h, 4) as usize))
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
    let want = images_size(path, b)?.unwrap_or(usize::MAX);
    if b.len() != want {
        return Err(bad(path, format!("{} bytes, but the header ({n} images of {r}x{c}) needs {want}: truncated or corrupt", b.len())));
    }
    Ok((n, r, c, b[16..].to_vec()))
}

/// Labels of an IDX1 label file.
pub fn parse_labels(path: &Path, b: &[u8]) -> Result<Vec<Label>> {
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
    Ok(b[8..].iter().map(|&l| Label::from(l)).collect())
}

fn load_pair(dir: &Path, prefix: &str, name: &str, classes: &[&str]) -> Result<Dataset> {
    let ip = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lp = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let (n, r, c, px) = parse_images(&ip, &read_idx(&ip, 16, images_size)?)?;
    let labels = parse_labels(&lp, &read_idx(&lp, 8, labels_size)?)?;
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
