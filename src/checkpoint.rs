//! Checkpoints in the safetensors format: an 8-byte little-endian header length, a JSON header
//! (name -> dtype, shape, byte range; plus "__metadata__": string -> string), then the raw
//! little-endian f32 data. Tensor names follow a PyTorch state dict (`layers.0.weight`,
//! `layers.1.running_mean`); optimizer state is `optimizer.state1.<param>` and
//! `optimizer.state2.<param>`. Metadata: the model spec and input shape, the optimizer, and
//! where training stood (epoch, batch within it, step, seed, early-stopping state).
//! Written atomically: a temporary file in the same folder, synced, then renamed over.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::backend::Backend;
use crate::nn::{Model, ModelSpec};
use crate::optim::Optimizer;
use crate::{Error, Result};

/// Where a run stood when it was saved.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// Epochs completed.
    pub epoch: usize,
    /// Batches of the next epoch already trained (a save inside an epoch).
    pub batch_in_epoch: usize,
    pub step: u64,
    pub seed: u64,
    /// Best validation score so far: the loss, or minus the accuracy (`--monitor accuracy`).
    pub best_val_loss: Option<f64>,
    pub best_epoch: Option<usize>,
    pub epochs_since_best: usize,
}

/// What a checkpoint file holds besides the tensors.
#[derive(Clone, Debug)]
pub struct Meta {
    pub spec: ModelSpec,
    pub input: Vec<usize>,
    pub optimizer: Option<Optimizer>,
    pub progress: Progress,
    pub classes: Vec<String>,
    pub normalization: Vec<(f32, f32)>,
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Io { path: path.to_path_buf(), source: e }
}

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::Invalid(format!("{}: {}", path.display(), msg.into()))
}

/// Writes `tensors` (name, shape, data) and `metadata` as safetensors, atomically.
pub fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)], metadata: &BTreeMap<String, String>) -> Result<()> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), json!(metadata));
    let mut offset = 0usize;
    for (name, shape, data) in tensors {
        let bytes = data.len() * 4;
        header.insert(name.clone(), json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + bytes]}));
        offset += bytes;
    }
    let mut head = serde_json::to_vec(&Value::Object(header)).map_err(|e| bad(path, e.to_string()))?;
    while head.len() % 8 != 0 {
        head.push(b' ');
    }
    let tmp: PathBuf = {
        let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".tmp");
        path.with_file_name(name)
    };
    let write = || -> std::io::Result<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        f.write_all(&(head.len() as u64).to_le_bytes())?;
        f.write_all(&head)?;
        for (_, _, data) in tensors {
            for v in data {
                f.write_all(&v.to_le_bytes())?;
            }
        }
        let f = f.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(path, e)
    })
}

/// Reads a safetensors file: tensors by name (f32 only) and the metadata.
pub fn read_safetensors(path: &Path) -> Result<(BTreeMap<String, (Vec<usize>, Vec<f32>)>, BTreeMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    if bytes.len() < 8 {
        return Err(bad(path, "too short for a safetensors file (no header length)"));
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8])) as usize;
    if n > bytes.len() - 8 {
        return Err(bad(path, format!("header length {n} exceeds the file ({} bytes): truncated or not safetensors", bytes.len())));
    }
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(&bytes[8..8 + n]).map_err(|e| bad(path, format!("header is not valid JSON: {e}")))?;
    let data = &bytes[8 + n..];
    let mut tensors = BTreeMap::new();
    let mut meta = BTreeMap::new();
    for (name, v) in header {
        if name == "__metadata__" {
            if let Some(m) = v.as_object() {
                for (k, s) in m {
                    meta.insert(k.clone(), s.as_str().unwrap_or_default().to_string());
                }
            }
            continue;
        }
        let dtype = v.get("dtype").and_then(Value::as_str).unwrap_or("?");
        if dtype != "F32" {
            return Err(bad(path, format!("tensor {name} has dtype {dtype}, expected F32")));
        }
        let shape: Vec<usize> = v
            .get("shape")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|d| d.as_u64().map(|d| d as usize)).collect())
            .unwrap_or_default();
        let off: Vec<usize> = v
            .get("data_offsets")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|d| d.as_u64().map(|d| d as usize)).collect())
            .unwrap_or_default();
        let [a, b] = off[..] else { return Err(bad(path, format!("tensor {name}: missing data_offsets"))) };
        if a > b || b > data.len() || b - a != shape.iter().product::<usize>() * 4 {
            return Err(bad(
                path,
                format!("tensor {name}: data_offsets [{a}, {b}] do not fit its shape {shape:?} and the file: truncated or corrupt"),
            ));
        }
        let values = data[a..b].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        tensors.insert(name, (shape, values));
    }
    Ok((tensors, meta))
}

/// Saves the model (parameters, batch-norm statistics, optimizer state) and `progress`.
pub fn save<B: Backend>(be: &B, path: &Path, model: &Model<B>, optimizer: &Optimizer, progress: &Progress) -> Result<()> {
    let mut tensors = Vec::new();
    for (i, info) in model.param_info.iter().enumerate() {
        tensors.push((info.name.clone(), info.shape.clone(), be.download(&model.params[i])?));
    }
    for (node, r) in model.nodes.iter().zip(&model.running) {
        if let Some((m, v)) = r {
            tensors.push((format!("{}.running_mean", node.name), m.shape().to_vec(), be.download(m)?));
            tensors.push((format!("{}.running_var", node.name), v.shape().to_vec(), be.download(v)?));
        }
    }
    for (i, info) in model.param_info.iter().enumerate() {
        tensors.push((format!("optimizer.state1.{}", info.name), info.shape.clone(), be.download(&model.state1[i])?));
        tensors.push((format!("optimizer.state2.{}", info.name), info.shape.clone(), be.download(&model.state2[i])?));
    }
    let js = |v: Result<String, serde_json::Error>| v.map_err(|e| bad(path, e.to_string()));
    let mut meta = BTreeMap::new();
    meta.insert("format".into(), "wgtrain-checkpoint-1".into());
    meta.insert("model".into(), js(serde_json::to_string(&model.spec))?);
    meta.insert("input".into(), js(serde_json::to_string(&model.input))?);
    meta.insert("optimizer".into(), js(serde_json::to_string(optimizer))?);
    meta.insert("progress".into(), js(serde_json::to_string(progress))?);
    meta.insert("classes".into(), js(serde_json::to_string(&model.classes))?);
    meta.insert("normalization".into(), js(serde_json::to_string(&model.normalization))?);
    write_safetensors(path, &tensors, &meta)
}

/// Reads a checkpoint's metadata (to build the model it belongs to).
pub fn read_meta(path: &Path) -> Result<Meta> {
    let (_, meta) = read_safetensors(path)?;
    let field = |k: &str| meta.get(k).ok_or_else(|| bad(path, format!("not a wgtrain checkpoint: metadata has no '{k}'")));
    let parse = |k: &str, v: &str| -> Result<Value> { serde_json::from_str(v).map_err(|e| bad(path, format!("metadata '{k}': {e}"))) };
    let spec: ModelSpec =
        serde_json::from_value(parse("model", field("model")?)?).map_err(|e| bad(path, format!("metadata 'model': {e}")))?;
    let input: Vec<usize> =
        serde_json::from_value(parse("input", field("input")?)?).map_err(|e| bad(path, format!("metadata 'input': {e}")))?;
    let optimizer: Option<Optimizer> = meta.get("optimizer").and_then(|v| serde_json::from_str(v).ok());
    let progress: Progress =
        serde_json::from_value(parse("progress", field("progress")?)?).map_err(|e| bad(path, format!("metadata 'progress': {e}")))?;
    let classes: Vec<String> = meta.get("classes").and_then(|v| serde_json::from_str(v).ok()).unwrap_or_default();
    let normalization: Vec<(f32, f32)> = meta.get("normalization").and_then(|v| serde_json::from_str(v).ok()).unwrap_or_default();
    Ok(Meta { spec, input, optimizer, progress, classes, normalization })
}

/// Loads a checkpoint into `model`, which must be the same architecture; returns the progress.
pub fn load<B: Backend>(be: &B, path: &Path, model: &mut Model<B>) -> Result<Meta> {
    let meta = read_meta(path)?;
    if meta.spec.layers != model.spec.layers || meta.input != model.input {
        return Err(bad(
            path,
            format!(
                "checkpoint of model '{}' for input {:?}, not of the model being trained ('{}' for {:?})",
                meta.spec.name, meta.input, model.spec.name, model.input
            ),
        ));
    }
    let (tensors, _) = read_safetensors(path)?;
    let get = |name: &str, shape: &[usize]| -> Result<&Vec<f32>> {
        let (s, v) = tensors.get(name).ok_or_else(|| bad(path, format!("tensor {name} is missing")))?;
        if s != shape {
            return Err(bad(path, format!("tensor {name} has shape {s:?}, the model needs {shape:?}")));
        }
        Ok(v)
    };
    for i in 0..model.param_info.len() {
        let info = model.param_info[i].clone();
        be.write(&mut model.params[i], get(&info.name, &info.shape)?)?;
        be.write(&mut model.state1[i], get(&format!("optimizer.state1.{}", info.name), &info.shape)?)?;
        be.write(&mut model.state2[i], get(&format!("optimizer.state2.{}", info.name), &info.shape)?)?;
    }
    for k in 0..model.running.len() {
        let name = model.nodes[k].name.clone();
        if let Some((m, v)) = &mut model.running[k] {
            let shape = m.shape().to_vec();
            be.write(m, get(&format!("{name}.running_mean"), &shape)?)?;
            be.write(v, get(&format!("{name}.running_var"), &shape)?)?;
        }
    }
    model.step = meta.progress.step;
    model.seed = meta.progress.seed;
    model.classes = meta.classes.clone();
    model.normalization = meta.normalization.clone();
    Ok(meta)
}
