//! Models described in TOML, trainable without recompiling (`--model FILE.toml`):
//!
//! ```toml
//! name = "small-cnn"
//! [[layer]]
//! type = "conv2d"      # out, kernel (k or [h, w]), stride, padding, dilation, groups, bias
//! out = 16
//! kernel = 3
//! padding = 1
//! [[layer]]
//! type = "batch_norm2d" # eps, momentum
//! [[layer]]
//! type = "relu"
//! [[layer]]
//! type = "max_pool2d"   # kernel, stride (default: kernel), padding; also avg_pool2d
//! kernel = 2
//! [[layer]]
//! type = "flatten"      # also global_avg_pool
//! [[layer]]
//! type = "dropout"      # p
//! p = 0.25
//! [[layer]]
//! type = "linear"       # out, bias
//! out = 10
//! ```
//! The last linear layer may say `out = "classes"` to follow the data set. A residual block,
//! y = relu(body(x) + shortcut(x)), lists its layers inline (an empty shortcut is the identity):
//!
//! ```toml
//! [[layer]]
//! type = "residual"
//! body = [ { type = "conv2d", out = 16, kernel = 3, padding = 1 }, { type = "batch_norm2d" } ]
//! shortcut = []
//! ```

use std::path::Path;

use toml::Value;

use super::spec::{LayerSpec, ModelSpec};
use crate::ops::PoolSpec;
use crate::{Error, Result};

struct Fields<'a> {
    path: &'a Path,
    index: usize,
    table: &'a toml::Table,
}

impl Fields<'_> {
    fn err(&self, field: &str, msg: impl Into<String>) -> Error {
        Error::Invalid(format!(
            "{}: layer {} ({}): field '{field}': {}",
            self.path.display(),
            self.index,
            self.table.get("type").and_then(Value::as_str).unwrap_or("?"),
            msg.into()
        ))
    }
    fn usize_or(&self, key: &str, default: Option<usize>) -> Result<usize> {
        match self.table.get(key) {
            None => default.ok_or_else(|| self.err(key, "missing")),
            Some(v) => v
                .as_integer()
                .filter(|&i| i >= 0)
                .map(|i| i as usize)
                .ok_or_else(|| self.err(key, format!("is {v}, expected a non-negative integer"))),
        }
    }
    fn pair(&self, key: &str, default: Option<[usize; 2]>) -> Result<[usize; 2]> {
        match self.table.get(key) {
            None => default.ok_or_else(|| self.err(key, "missing")),
            Some(Value::Integer(i)) if *i >= 0 => Ok([*i as usize; 2]),
            Some(Value::Array(a)) if a.len() == 2 => match (a[0].as_integer(), a[1].as_integer()) {
                (Some(h), Some(w)) if h >= 0 && w >= 0 => Ok([h as usize, w as usize]),
                _ => Err(self.err(key, "expected [h, w] of non-negative integers")),
            },
            Some(v) => Err(self.err(key, format!("is {v}, expected an integer or [h, w]"))),
        }
    }
    fn f32_or(&self, key: &str, default: f32) -> Result<f32> {
        match self.table.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_float()
                .or_else(|| v.as_integer().map(|i| i as f64))
                .map(|f| f as f32)
                .ok_or_else(|| self.err(key, format!("is {v}, expected a number"))),
        }
    }
    fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.table.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.err(key, format!("is {v}, expected true or false"))),
        }
    }
}

/// Parses a TOML model; `classes` fills in `out = "classes"`.
pub fn parse(path: &Path, text: &str, classes: usize) -> Result<ModelSpec> {
    let doc: toml::Table =
        text.parse().map_err(|e: toml::de::Error| Error::Invalid(format!("{}: not valid TOML: {}", path.display(), e.message())))?;
    let name = doc
        .get("name")
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or_else(|| path.file_stem().and_then(|s| s.to_str()).unwrap_or("model").to_string());
    let layers = doc
        .get("layer")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Invalid(format!("{}: no [[layer]] tables (expected a list of layers)", path.display())))?;
    let out = parse_layers(path, layers, classes)?;
    if out.is_empty() {
        return Err(Error::Invalid(format!("{}: the model has no layers", path.display())));
    }
    Ok(ModelSpec { name, layers: out })
}

/// A list of layer tables (the file's [[layer]], or a residual block's body and shortcut).
fn parse_layers(path: &Path, layers: &[Value], classes: usize) -> Result<Vec<LayerSpec>> {
    let mut out = Vec::with_capacity(layers.len());
    for (index, v) in layers.iter().enumerate() {
        let table = v.as_table().ok_or_else(|| Error::Invalid(format!("{}: layer {index} is not a table", path.display())))?;
        let f = Fields { path, index, table };
        let kind = table.get("type").and_then(Value::as_str).ok_or_else(|| {
            f.err("type", "missing (conv2d, batch_norm2d, relu, max_pool2d, avg_pool2d, global_avg_pool, dropout, flatten, linear)")
        })?;
        let outs = |key: &str| -> Result<usize> {
            match table.get(key) {
                Some(Value::String(s)) if s == "classes" => Ok(classes),
                _ => f.usize_or(key, None),
            }
        };
        let layer = match kind {
            "conv2d" => {
                let kernel = f.pair("kernel", None)?;
                LayerSpec::Conv2d {
                    out: outs("out")?,
                    kernel,
                    stride: f.pair("stride", Some([1, 1]))?,
                    padding: f.pair("padding", Some([0, 0]))?,
                    dilation: f.pair("dilation", Some([1, 1]))?,
                    groups: f.usize_or("groups", Some(1))?,
                    bias: f.bool_or("bias", true)?,
                }
            }
            "batch_norm2d" => LayerSpec::BatchNorm2d { eps: f.f32_or("eps", 1e-5)?, momentum: f.f32_or("momentum", 0.1)? },
            "relu" => LayerSpec::Relu,
            "max_pool2d" | "avg_pool2d" => {
                let kernel = f.pair("kernel", None)?;
                let spec = PoolSpec {
                    kernel,
                    stride: f.pair("stride", Some(kernel))?,
                    padding: f.pair("padding", Some([0, 0]))?,
                    count_include_pad: f.bool_or("count_include_pad", true)?,
                };
                if kind == "max_pool2d" {
                    LayerSpec::MaxPool2d(spec)
                } else {
                    LayerSpec::AvgPool2d(spec)
                }
            }
            "global_avg_pool" => LayerSpec::GlobalAvgPool,
            "dropout" => {
                let p = f.f32_or("p", 0.5)?;
                if !(0.0..1.0).contains(&p) {
                    return Err(f.err("p", format!("is {p}, expected a probability in [0, 1)")));
                }
                LayerSpec::Dropout { p }
            }
            "flatten" => LayerSpec::Flatten,
            "linear" => LayerSpec::Linear { out: outs("out")?, bias: f.bool_or("bias", true)? },
            "residual" => {
                let list = |key: &str| -> Result<Vec<LayerSpec>> {
                    match table.get(key) {
                        None => Ok(Vec::new()),
                        Some(Value::Array(a)) => parse_layers(path, a, classes).map_err(|e| f.err(key, e.to_string())),
                        Some(v) => Err(f.err(key, format!("is {v}, expected a list of layer tables"))),
                    }
                };
                let body = list("body")?;
                if body.is_empty() {
                    return Err(f.err("body", "missing or empty (the layers of the block)"));
                }
                LayerSpec::Residual { body, shortcut: list("shortcut")? }
            }
            other => return Err(f.err("type", format!("unknown layer '{other}'"))),
        };
        out.push(layer);
    }
    Ok(out)
}

/// Reads `path` as a TOML model.
pub fn load(path: &Path, classes: usize) -> Result<ModelSpec> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    parse(path, &text, classes)
}
