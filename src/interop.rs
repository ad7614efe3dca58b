//! PyTorch interop: weights-only safetensors files, both ways.
//!
//! - [`export_state_dict`] writes exactly the `state_dict()` of the same architecture built in
//!   PyTorch (`tools/torch_model.py`): parameters and batch-norm buffers under the names
//!   `torch.nn` gives them (`layers.0.weight`, `layers.1.running_mean`,
//!   `layers.3.body.0.weight`), no optimizer state, as F32, F16 or BF16, with the model name,
//!   input shape, class names and input normalisation as `__metadata__` strings.
//! - [`read_weights`] reads such a file, or one written by
//!   `safetensors.torch.save_file(model.state_dict())`: F32, F16 and BF16 tensors (converted to
//!   f32), integer tensors kept apart; [`load_weights`] puts them into a [`Model`], matching by
//!   name and shape, with one error that lists every missing, unexpected and mis-shaped tensor.
//!
//! `num_batches_tracked`: PyTorch's batch norm keeps this int64 scalar beside its running
//! statistics, and `load_state_dict(strict=True)` wants it. wgtrain counts no batches per
//! layer, so an export writes the model's optimizer step count there (the number of training
//! batches every batch norm has seen in a run of wgtrain's own), as an I64 scalar. On import it
//! is accepted (any integer or float dtype, shape `[]` or `[1]`) where the model has a batch
//! norm of that name, and ignored: PyTorch only reads it when a batch norm's momentum is
//! `None` (a cumulative average), which no wgtrain model uses.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::backend::Backend;
use crate::nn::{Model, NamedTensor, Op};
use crate::{Error, Result};

/// A floating-point storage type of an exported file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// IEEE single precision (what wgtrain computes in).
    F32,
    /// IEEE half precision: 11 significant bits, largest finite value 65504.
    F16,
    /// bfloat16: f32's exponent range with 8 significant bits.
    Bf16,
}

impl Dtype {
    /// Names `--dtype` accepts.
    pub const NAMES: [&'static str; 3] = ["f32", "f16", "bf16"];

    /// The dtype of a `--dtype` name.
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(Dtype::F32),
            "f16" | "float16" | "half" => Ok(Dtype::F16),
            "bf16" | "bfloat16" => Ok(Dtype::Bf16),
            _ => Err(Error::Invalid(format!("dtype '{s}': expected one of {}", Self::NAMES.join(", ")))),
        }
    }

    /// The safetensors name (`F32`, `F16`, `BF16`).
    pub fn safetensors_name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            Dtype::Bf16 => "BF16",
        }
    }

    fn encode(self, v: f32, out: &mut Vec<u8>) {
        match self {
            Dtype::F32 => out.extend_from_slice(&v.to_le_bytes()),
            Dtype::F16 => out.extend_from_slice(&f32_to_f16(v).to_le_bytes()),
            Dtype::Bf16 => out.extend_from_slice(&f32_to_bf16(v).to_le_bytes()),
        }
    }
}

/// f32 -> IEEE half, rounded to nearest, ties to even; beyond 65504 it becomes infinite,
/// below 2^-24 zero (through the subnormals).
pub fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 0xff {
        // Infinity stays infinite; NaN stays NaN (quiet, keeping the top payload bits).
        return sign | 0x7c00 | if man != 0 { 0x200 | (man >> 13) as u16 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // A subnormal half: the value is r * 2^-24, r = (1.m * 2^23) >> (14 - e).
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let (r, rem, half) = (m >> shift, m & ((1 << shift) - 1), 1u32 << (shift - 1));
        let r = if rem > half || (rem == half && r & 1 == 1) { r + 1 } else { r };
        return sign | r as u16;
    }
    let r = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    // A carry out of the mantissa raises the exponent (to infinity at the top): still correct.
    let r = if rem > 0x1000 || (rem == 0x1000 && r & 1 == 1) { r + 1 } else { r };
    sign | r as u16
}

/// IEEE half -> f32 (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = (u32::from(h) & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    match exp {
        0 => {
            let v = man as f32 * (2.0f32).powi(-24);
            if sign != 0 {
                -v
            } else {
                v
            }
        }
        0x1f => f32::from_bits(sign | 0x7f80_0000 | (man << 13)),
        _ => f32::from_bits(sign | ((exp + 112) << 23) | (man << 13)),
    }
}

/// f32 -> bfloat16, rounded to nearest, ties to even (NaN stays NaN).
pub fn f32_to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// bfloat16 -> f32 (exact).
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// A weights-only safetensors file, read.
#[derive(Clone, Debug, Default)]
pub struct Weights {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    /// Floating-point tensors by name, converted to f32: (shape, values).
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    /// Integer tensors by name (`num_batches_tracked`): (shape, values).
    pub ints: BTreeMap<String, (Vec<usize>, Vec<i64>)>,
    /// The `__metadata__` strings.
    pub metadata: BTreeMap<String, String>,
    /// The dtype of each tensor as the file stores it (`F32`, `BF16`, `I64`, ...).
    pub dtypes: BTreeMap<String, String>,
}

impl Weights {
    /// Per-channel (mean, std) from the metadata (`mean` and `std`, JSON lists of equal
    /// length), when the file has them; an error when present but unreadable.
    pub fn normalization(&self) -> Result<Option<Vec<(f32, f32)>>> {
        let (m, s) = match (self.metadata.get("mean"), self.metadata.get("std")) {
            (Some(m), Some(s)) => (m, s),
            (None, None) => return Ok(None),
            (m, _) => {
                let (has, lacks) = if m.is_some() { ("mean", "std") } else { ("std", "mean") };
                return Err(bad(
                    &self.path,
                    format!("metadata has '{has}' but no '{lacks}': expected both (per-channel normalisation) or neither"),
                ));
            }
        };
        let list = |k: &str, v: &str| -> Result<Vec<f32>> {
            serde_json::from_str(v)
                .map_err(|e| bad(&self.path, format!("metadata '{k}' is {v:?}, expected a JSON list of numbers, one per channel ({e})")))
        };
        let (m, s) = (list("mean", m)?, list("std", s)?);
        if m.len() != s.len() || m.is_empty() {
            return Err(bad(
                &self.path,
                format!("metadata 'mean' has {} values and 'std' {}: expected one each per channel", m.len(), s.len()),
            ));
        }
        if let Some(v) = s.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
            return Err(bad(&self.path, format!("metadata 'std' holds {v}: expected finite values > 0")));
        }
        if let Some(v) = m.iter().find(|v| !v.is_finite()) {
            return Err(bad(&self.path, format!("metadata 'mean' holds {v}: expected finite values")));
        }
        Ok(Some(m.into_iter().zip(s).collect()))
    }

    /// Class names from the metadata (`classes`, a JSON list of strings), when present.
    pub fn classes(&self) -> Result<Option<Vec<String>>> {
        self.metadata
            .get("classes")
            .map(|v| {
                serde_json::from_str(v)
                    .map_err(|e| bad(&self.path, format!("metadata 'classes' is {v:?}, expected a JSON list of names ({e})")))
            })
            .transpose()
    }

    /// The input shape [C, H, W] from the metadata (`input`), when present.
    pub fn input(&self) -> Result<Option<Vec<usize>>> {
        self.metadata
            .get("input")
            .map(|v| serde_json::from_str(v).map_err(|e| bad(&self.path, format!("metadata 'input' is {v:?}, expected [C, H, W] ({e})"))))
            .transpose()
    }
}

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::Invalid(format!("{}: {}", path.display(), msg.into()))
}

fn shape_str(s: &[usize]) -> String {
    format!("[{}]", s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
}

/// Reads a safetensors file of weights: F32, F16, BF16 and F64 tensors become f32; I64, I32,
/// I16, I8, U8 and BOOL tensors are kept as integers. Any other dtype, a header that does not
/// parse, or data ranges that do not fit the shapes and the file are errors naming the file.
pub fn read_weights(path: &Path) -> Result<Weights> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    if bytes.len() < 8 {
        return Err(bad(path, format!("{} bytes: too short for a safetensors file (no header length)", bytes.len())));
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8]));
    if n > (bytes.len() - 8) as u64 {
        return Err(bad(path, format!("header length {n} exceeds the file ({} bytes): truncated or not safetensors", bytes.len())));
    }
    let n = n as usize;
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(&bytes[8..8 + n]).map_err(|e| bad(path, format!("header is not valid JSON: {e}")))?;
    let data = &bytes[8 + n..];
    let mut w = Weights { path: path.to_path_buf(), ..Default::default() };
    for (name, v) in header {
        if name == "__metadata__" {
            let Some(m) = v.as_object() else {
                return Err(bad(path, format!("__metadata__ is {v}, expected an object of strings")));
            };
            for (k, s) in m {
                let s = s.as_str().ok_or_else(|| bad(path, format!("metadata '{k}' is {s}, expected a string")))?;
                w.metadata.insert(k.clone(), s.to_string());
            }
            continue;
        }
        let dtype = v.get("dtype").and_then(Value::as_str).unwrap_or("?").to_string();
        let size = match dtype.as_str() {
            "F64" | "I64" => 8,
            "F32" | "I32" => 4,
            "F16" | "BF16" | "I16" => 2,
            "I8" | "U8" | "BOOL" => 1,
            other => {
                return Err(bad(
                    path,
                    format!("tensor {name} has dtype {other}, expected F32, F16, BF16 or F64 (or an integer type for num_batches_tracked)"),
                ))
            }
        };
        let ints = |field: &str| -> Result<Vec<usize>> {
            let list = v.get(field).and_then(Value::as_array);
            let ints: Option<Vec<usize>> = list.and_then(|a| a.iter().map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok())).collect());
            ints.ok_or_else(|| {
                bad(
                    path,
                    format!(
                        "tensor {name}: '{field}' is {}, expected a list of non-negative integers",
                        v.get(field).unwrap_or(&Value::Null)
                    ),
                )
            })
        };
        let (shape, off) = (ints("shape")?, ints("data_offsets")?);
        let [a, b] = off[..] else {
            return Err(bad(path, format!("tensor {name}: data_offsets {}, expected [begin, end]", shape_str(&off))));
        };
        let needed = crate::tensor::checked_numel(&shape).and_then(|n| n.checked_mul(size));
        if a > b || b > data.len() || Some(b - a) != needed {
            return Err(bad(
                path,
                format!(
                    "tensor {name}: data_offsets [{a}, {b}] do not fit its shape {} of {dtype} and the file: truncated or corrupt",
                    shape_str(&shape)
                ),
            ));
        }
        let raw = &data[a..b];
        let u16s = || raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
        let floats: Option<Vec<f32>> = match dtype.as_str() {
            "F32" => Some(raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
            "F64" => Some(raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32).collect()),
            "F16" => Some(u16s().map(f16_to_f32).collect()),
            "BF16" => Some(u16s().map(bf16_to_f32).collect()),
            _ => None,
        };
        match floats {
            Some(f) => {
                w.tensors.insert(name.clone(), (shape, f));
            }
            None => {
                let i: Vec<i64> = match dtype.as_str() {
                    "I64" => raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect(),
                    "I32" => raw.chunks_exact(4).map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect(),
                    "I16" => u16s().map(|u| i64::from(u as i16)).collect(),
                    "I8" => raw.iter().map(|&u| i64::from(u as i8)).collect(),
                    _ => raw.iter().map(|&u| i64::from(u)).collect(),
                };
                w.ints.insert(name.clone(), (shape, i));
            }
        }
        w.dtypes.insert(name, dtype);
    }
    Ok(w)
}

/// The state-dict names of the batch-norm layers of `model` (`layers.1`), which PyTorch gives a
/// `num_batches_tracked` each.
fn batch_norm_prefixes<B: Backend>(model: &Model<B>) -> Vec<String> {
    model.buffer_info().iter().filter_map(|b| b.name.strip_suffix(".running_mean").map(str::to_string)).collect()
}

/// The parameters of the model's head: its last linear layer (`layers.14.weight`,
/// `layers.14.bias`), what [`LoadOptions::reset_head`] leaves freshly initialised. Empty when
/// the model has no linear layer.
pub fn head_params<B: Backend>(model: &Model<B>) -> Vec<String> {
    let nodes = model.nodes();
    let Some(node) = nodes.iter().rposition(|n| matches!(&n.op, Op::Layer(l) if l.kind() == "linear")) else { return Vec::new() };
    model.param_info().iter().filter(|p| p.node == node).map(|p| p.name.clone()).collect()
}

/// How [`load_weights`] treats the file.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadOptions {
    /// Skip the file's tensors of the head ([`head_params`]) and keep the model's fresh ones:
    /// fine-tuning for another class count.
    pub reset_head: bool,
}

/// What [`load_weights`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Loaded {
    /// Tensors loaded.
    pub loaded: usize,
    /// The head's tensors left as initialised ([`LoadOptions::reset_head`]).
    pub reset: Vec<String>,
    /// Tensors accepted and ignored: `num_batches_tracked`, and the optimizer state of a
    /// wgtrain checkpoint read as weights.
    pub ignored: Vec<String>,
}

/// Loads `w` into the model's parameters and batch-norm buffers, by name and shape. Every
/// tensor of the model must be in the file and every float tensor of the file in the model
/// (`num_batches_tracked` of its batch norms, and the optimizer state of a wgtrain checkpoint,
/// excepted); otherwise one error names the file and
/// lists every missing, unexpected and mis-shaped tensor (file shape vs model shape).
pub fn load_weights<B: Backend>(be: &B, model: &mut Model<B>, w: &Weights, opts: LoadOptions) -> Result<Loaded> {
    let head = head_params(model);
    let skip: Vec<String> = if opts.reset_head { head.clone() } else { Vec::new() };
    let wanted: Vec<(String, Vec<usize>)> = model
        .param_info()
        .iter()
        .map(|p| (p.name.clone(), p.shape.clone()))
        .chain(model.buffer_info().iter().map(|b| (b.name.clone(), b.shape.clone())))
        .collect();
    let bn: Vec<String> = batch_norm_prefixes(model).into_iter().map(|p| format!("{p}.num_batches_tracked")).collect();
    let (mut missing, mut unexpected, mut misshaped) = (Vec::new(), Vec::new(), Vec::new());
    for (name, shape) in &wanted {
        if skip.contains(name) {
            continue;
        }
        match w.tensors.get(name) {
            None if w.ints.contains_key(name) => {
                misshaped.push(format!("{name} (an integer tensor of dtype {}, the model needs floats)", w.dtypes[name]))
            }
            None => missing.push(format!("{name} {}", shape_str(shape))),
            Some((s, _)) if s != shape => misshaped.push(format!("{name} (file {}, model {})", shape_str(s), shape_str(shape))),
            Some(_) => {}
        }
    }
    // A wgtrain checkpoint given as weights: its optimizer state is not wanted (a fresh start).
    let checkpoint = w.metadata.get("format").is_some_and(|f| f.starts_with("wgtrain-checkpoint"));
    let mut ignored = Vec::new();
    let file_shapes = w.tensors.iter().map(|(n, (s, _))| (n, s)).chain(w.ints.iter().map(|(n, (s, _))| (n, s)));
    for (name, shape) in file_shapes {
        if (bn.contains(name) && shape.iter().product::<usize>() == 1) || (checkpoint && name.starts_with("optimizer.")) {
            ignored.push(name.clone());
        } else if !wanted.iter().any(|(n, _)| n == name) {
            unexpected.push(format!("{name} {}", shape_str(shape)));
        }
    }
    if !(missing.is_empty() && unexpected.is_empty() && misshaped.is_empty()) {
        let mut parts = Vec::new();
        for (what, list) in [("missing", &missing), ("unexpected", &unexpected), ("mis-shaped", &misshaped)] {
            if !list.is_empty() {
                parts.push(format!("{} {what}: {}", list.len(), list.join(", ")));
            }
        }
        let mut msg = format!("does not fit model {} for inputs {}: {}", model.name, shape_str(&model.input), parts.join("; "));
        // A head for another class count is the usual reason: say so, and how to fine-tune.
        if let Some(hw) = head.iter().find(|n| n.ends_with(".weight")) {
            if let (Some((fs, _)), Some((_, ms))) = (w.tensors.get(hw), wanted.iter().find(|(n, _)| n == hw)) {
                if !opts.reset_head && fs.len() == 2 && ms.len() == 2 && fs[1] == ms[1] && fs[0] != ms[0] {
                    msg.push_str(&format!(
                        ". The file's head ({}) has {} classes and the model {}: to fine-tune for {} classes, --reset-head \
                         (train --init-from) replaces it with a fresh one",
                        hw.trim_end_matches(".weight"),
                        fs[0],
                        ms[0],
                        ms[0]
                    ));
                }
            }
        }
        match w.metadata.get("model_name") {
            Some(name) if *name != model.name => msg.push_str(&format!(" (the file says it holds model '{name}')")),
            None if !missing.is_empty() && !unexpected.is_empty() => msg.push_str(" (weights of another architecture?)"),
            _ => {}
        }
        return Err(bad(&w.path, msg));
    }
    // Skipped head tensors: the model's own fresh values go back in.
    let current = model.state_dict(be)?;
    let mut state = Vec::with_capacity(wanted.len());
    for t in current {
        if skip.contains(&t.name) {
            state.push(t);
        } else {
            let (shape, data) = &w.tensors[&t.name];
            state.push(NamedTensor { name: t.name, shape: shape.clone(), data: data.clone() });
        }
    }
    model.load_state_dict(be, &state).map_err(|e| bad(&w.path, e.to_string()))?;
    Ok(Loaded { loaded: wanted.len() - skip.len(), reset: skip, ignored })
}

/// The metadata an export writes: `format` = `pt` (what `safetensors.torch.save_file` writes),
/// `producer`, `model_name`, `model` (the wgtrain model description, JSON), `input` ([C, H, W]),
/// `classes` (JSON list), `mean` and `std` (JSON lists, one per channel: the normalisation
/// `x' = (x - mean) / std` the model expects, with pixels in [0, 1]).
pub fn export_metadata<B: Backend>(model: &Model<B>) -> Result<BTreeMap<String, String>> {
    let js = |v: Result<String, serde_json::Error>| v.map_err(|e| Error::Invalid(format!("metadata: {e}")));
    let mut meta = BTreeMap::new();
    meta.insert("format".into(), "pt".into());
    meta.insert("producer".into(), format!("wgtrain {}", env!("CARGO_PKG_VERSION")));
    meta.insert("model_name".into(), model.name.clone());
    if let Some(spec) = &model.spec {
        meta.insert("model".into(), js(serde_json::to_string(spec))?);
    }
    meta.insert("input".into(), js(serde_json::to_string(&model.input))?);
    if !model.classes.is_empty() {
        meta.insert("classes".into(), js(serde_json::to_string(&model.classes))?);
    }
    if !model.normalization.is_empty() {
        let (m, s): (Vec<f32>, Vec<f32>) = model.normalization.iter().copied().unzip();
        meta.insert("mean".into(), js(serde_json::to_string(&m))?);
        meta.insert("std".into(), js(serde_json::to_string(&s))?);
    }
    Ok(meta)
}

/// The tensors of an export, sorted by name: the state dict in `dtype`, plus one I64
/// `num_batches_tracked` scalar per batch norm holding the model's step count.
pub fn export_tensors<B: Backend>(be: &B, model: &Model<B>) -> Result<Vec<ExportTensor>> {
    let mut out: Vec<ExportTensor> =
        model.state_dict(be)?.into_iter().map(|t| ExportTensor { name: t.name, shape: t.shape, data: ExportData::Float(t.data) }).collect();
    for p in batch_norm_prefixes(model) {
        out.push(ExportTensor {
            name: format!("{p}.num_batches_tracked"),
            shape: Vec::new(),
            data: ExportData::I64(vec![i64::try_from(model.step).unwrap_or(i64::MAX)]),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// One tensor of an export.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportTensor {
    /// State-dict name.
    pub name: String,
    /// Shape (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// Values.
    pub data: ExportData,
}

/// Values of an [`ExportTensor`].
#[derive(Clone, Debug, PartialEq)]
pub enum ExportData {
    /// Floats, written in the export's dtype.
    Float(Vec<f32>),
    /// 64-bit integers (`num_batches_tracked`).
    I64(Vec<i64>),
}

/// Writes `tensors` as safetensors with float tensors in `dtype`, atomically.
pub fn write_tensors(path: &Path, tensors: &[ExportTensor], dtype: Dtype, metadata: &BTreeMap<String, String>) -> Result<()> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), json!(metadata));
    let mut body = Vec::new();
    for t in tensors {
        let start = body.len();
        let name = match &t.data {
            ExportData::Float(v) => {
                v.iter().for_each(|x| dtype.encode(*x, &mut body));
                dtype.safetensors_name()
            }
            ExportData::I64(v) => {
                v.iter().for_each(|x| body.extend_from_slice(&x.to_le_bytes()));
                "I64"
            }
        };
        header.insert(t.name.clone(), json!({"dtype": name, "shape": t.shape, "data_offsets": [start, body.len()]}));
    }
    let mut head = serde_json::to_vec(&Value::Object(header)).map_err(|e| bad(path, e.to_string()))?;
    while head.len() % 8 != 0 {
        head.push(b' ');
    }
    crate::atomic::write_with(path, |f| {
        f.write_all(&(head.len() as u64).to_le_bytes())?;
        f.write_all(&head)?;
        f.write_all(&body)
    })
}

/// Writes the model's PyTorch state dict to `path` ([`export_tensors`], [`export_metadata`]),
/// atomically. Values beyond f16's range (65504) are refused for F16 rather than written as
/// infinities.
pub fn export_state_dict<B: Backend>(be: &B, model: &Model<B>, path: &Path, dtype: Dtype) -> Result<()> {
    let tensors = export_tensors(be, model)?;
    if dtype == Dtype::F16 {
        for t in &tensors {
            if let ExportData::Float(v) = &t.data {
                if let Some(x) = v.iter().find(|x| x.abs() > 65504.0) {
                    return Err(bad(path, format!("tensor {} holds {x}, beyond f16's largest value 65504: export as f32 or bf16", t.name)));
                }
            }
        }
    }
    write_tensors(path, &tensors, dtype, &export_metadata(model)?)
}
