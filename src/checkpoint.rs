//! Checkpoints in the safetensors format: an 8-byte little-endian header length, a JSON header
//! (name -> dtype, shape, byte range; plus "__metadata__": string -> string), then the raw
//! little-endian f32 data. Tensor names follow a PyTorch state dict (`layers.0.weight`,
//! `layers.1.running_mean`); optimizer state is `optimizer.state1.<param>` and
//! `optimizer.state2.<param>` (trainable parameters only). Metadata: the model spec and input
//! shape, the optimizer, the frozen parameters' names, and where training stood (epoch, batch
//! within it, step, seed, early-stopping state).
//! Written atomically: a temporary file in the same folder, synced, then renamed over.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};

use crate::backend::Backend;
use crate::nn::{Model, ModelSpec, NamedTensor};
use crate::ops::Optimizer;
use crate::{Error, Result};

/// Where a run stood when it was saved.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// Epochs completed.
    pub epoch: usize,
    /// Batches of the next epoch already trained (a save inside an epoch).
    pub batch_in_epoch: usize,
    /// Optimizer steps taken.
    pub step: u64,
    /// The run's seed (split, batch order, dropout).
    pub seed: u64,
    /// Best validation score so far: the loss, or minus the accuracy (`--monitor accuracy`).
    pub best_val_loss: Option<f64>,
    /// The best validation epoch so far (1-based).
    pub best_epoch: Option<usize>,
    /// Epochs since then.
    pub epochs_since_best: usize,
}

/// What a checkpoint file holds besides the tensors.
#[derive(Clone, Debug)]
pub struct Meta {
    /// The model's description (absent for a model built from layers written in Rust).
    pub spec: Option<ModelSpec>,
    /// Shape of one input sample.
    pub input: Vec<usize>,
    /// The optimizer it was trained with.
    pub optimizer: Option<Optimizer>,
    /// Where training stood.
    pub progress: Progress,
    /// Class names.
    pub classes: Vec<String>,
    /// Per-channel input normalisation (mean, std).
    pub normalization: Vec<(f32, f32)>,
    /// Names of the parameters frozen in training (see `Model::freeze`); empty if none.
    pub frozen: Vec<String>,
    /// f32 values the file holds in all its tensors (a model needing more cannot be in it).
    pub stored_values: usize,
    /// The run that wrote it: id, model, data and settings (absent in files of older versions
    /// and of runs driven from Rust without them).
    pub run: Option<crate::train::RunSettings>,
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
    crate::atomic::write_with(path, |f| {
        f.write_all(&(head.len() as u64).to_le_bytes())?;
        f.write_all(&head)?;
        for (_, _, data) in tensors {
            for v in data {
                f.write_all(&v.to_le_bytes())?;
            }
        }
        Ok(())
    })
}

/// Tensors by name: (shape, values).
pub type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Reads a safetensors file: tensors by name (F32, or F16/BF16/F64 converted to f32) and the
/// metadata.
pub fn read_safetensors(path: &Path) -> Result<(Tensors, BTreeMap<String, String>)> {
    // One parser for every safetensors file: the weights reader (F16/BF16/F64 become f32).
    let w = crate::interop::read_weights(path)?;
    if let Some(name) = w.ints.keys().next() {
        return Err(bad(
            path,
            format!("tensor {name} has dtype {}, a checkpoint holds floats", w.dtypes.get(name).map_or("?", String::as_str)),
        ));
    }
    Ok((w.tensors, w.metadata))
}

/// Saves the model (parameters, buffers such as batch-norm statistics, optimizer state) and
/// `progress`.
pub fn save<B: Backend>(be: &B, path: &Path, model: &Model<B>, optimizer: &Optimizer, progress: &Progress) -> Result<()> {
    save_run(be, path, model, optimizer, progress, None)
}

/// [`save`], recording the run's settings too (what `eval`, `predict` and `--resume` read).
pub fn save_run<B: Backend>(
    be: &B,
    path: &Path,
    model: &Model<B>,
    optimizer: &Optimizer,
    progress: &Progress,
    run: Option<&crate::train::RunSettings>,
) -> Result<()> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = model.state_dict(be)?.into_iter().map(|t| (t.name, t.shape, t.data)).collect();
    for (k, i) in model.trainable().into_iter().enumerate() {
        let info = &model.param_info()[i];
        tensors.push((format!("optimizer.state1.{}", info.name), info.shape.clone(), be.download(&model.state1[k])?));
        tensors.push((format!("optimizer.state2.{}", info.name), info.shape.clone(), be.download(&model.state2[k])?));
    }
    let js = |v: Result<String, serde_json::Error>| v.map_err(|e| bad(path, e.to_string()));
    let mut meta = BTreeMap::new();
    meta.insert("format".into(), "wgtrain-checkpoint-1".into());
    if let Some(spec) = &model.spec {
        meta.insert("model".into(), js(serde_json::to_string(spec))?);
    }
    meta.insert("model_name".into(), model.name.clone());
    meta.insert("input".into(), js(serde_json::to_string(&model.input))?);
    meta.insert("optimizer".into(), js(serde_json::to_string(optimizer))?);
    meta.insert("progress".into(), js(serde_json::to_string(progress))?);
    meta.insert("classes".into(), js(serde_json::to_string(&model.classes))?);
    meta.insert("normalization".into(), js(serde_json::to_string(&model.normalization))?);
    if let Some(run) = run {
        meta.insert("run".into(), js(serde_json::to_string(run))?);
    }
    meta.insert("frozen".into(), js(serde_json::to_string(&model.frozen()))?);
    write_safetensors(path, &tensors, &meta)
}

/// Reads a checkpoint's metadata (to build the model it belongs to).
pub fn read_meta(path: &Path) -> Result<Meta> {
    let (tensors, meta) = read_safetensors(path)?;
    let field = |k: &str| meta.get(k).ok_or_else(|| bad(path, format!("not a wgtrain checkpoint: metadata has no '{k}'")));
    let parse = |k: &str, v: &str| -> Result<Value> { serde_json::from_str(v).map_err(|e| bad(path, format!("metadata '{k}': {e}"))) };
    let spec: Option<ModelSpec> = match meta.get("model") {
        Some(v) => Some(serde_json::from_value(parse("model", v)?).map_err(|e| bad(path, format!("metadata 'model': {e}")))?),
        None => None,
    };
    let input: Vec<usize> =
        serde_json::from_value(parse("input", field("input")?)?).map_err(|e| bad(path, format!("metadata 'input': {e}")))?;
    // Optional fields may be absent; present and unreadable is an error, not a silent default.
    let optional = |k: &str| -> Result<Option<Value>> { meta.get(k).map(|v| parse(k, v)).transpose() };
    let optimizer: Option<Optimizer> =
        optional("optimizer")?.map(serde_json::from_value).transpose().map_err(|e| bad(path, format!("metadata 'optimizer': {e}")))?;
    let progress: Progress =
        serde_json::from_value(parse("progress", field("progress")?)?).map_err(|e| bad(path, format!("metadata 'progress': {e}")))?;
    let classes: Vec<String> = optional("classes")?
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| bad(path, format!("metadata 'classes': {e}")))?
        .unwrap_or_default();
    let normalization: Vec<(f32, f32)> = optional("normalization")?
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| bad(path, format!("metadata 'normalization': {e}")))?
        .unwrap_or_default();
    let run = optional("run")?.map(serde_json::from_value).transpose().map_err(|e| bad(path, format!("metadata 'run': {e}")))?;
    let frozen: Vec<String> = optional("frozen")?
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| bad(path, format!("metadata 'frozen': {e}")))?
        .unwrap_or_default();
    let stored_values = tensors.values().map(|(_, v)| v.len()).sum();
    Ok(Meta { spec, input, optimizer, progress, classes, normalization, frozen, stored_values, run })
}

/// The model spec a checkpoint was saved with; an error when it has none (a model built from
/// layers written in Rust: rebuild it in Rust and use [`load`]).
/// Checked before anything is allocated: the spec's parameters and buffers must be in the file
/// (a corrupt or crafted header cannot make the model allocate more than the file holds).
pub fn spec_of(path: &Path, meta: &Meta) -> Result<ModelSpec> {
    let spec = meta.spec.clone().ok_or_else(|| {
        bad(path, "not a wgtrain checkpoint: metadata has no 'model' (a model defined in Rust: build it and load the checkpoint into it)")
    })?;
    let graph = spec.graph(&meta.input).map_err(|e| bad(path, format!("metadata 'model': {e}")))?;
    let needed = graph
        .params
        .iter()
        .map(|p| &p.shape)
        .chain(graph.buffers.iter().map(|b| &b.shape))
        .try_fold(0usize, |sum, s| crate::tensor::checked_numel(s).and_then(|n| sum.checked_add(n)));
    match needed {
        Some(n) if n <= meta.stored_values => Ok(spec),
        _ => Err(bad(
            path,
            format!(
                "metadata 'model' ({}) needs {} values, the file holds {}: corrupt or not this model's checkpoint",
                spec.name,
                needed.map_or("more than memory can hold".into(), |n| n.to_string()),
                meta.stored_values
            ),
        )),
    }
}

/// Loads a checkpoint into `model`, which must be the same architecture (same tensor names and
/// shapes, and the same spec when both have one); returns its metadata.
pub fn load<B: Backend>(be: &B, path: &Path, model: &mut Model<B>) -> Result<Meta> {
    let meta = read_meta(path)?;
    if meta.input != model.input {
        return Err(bad(path, format!("checkpoint for inputs {:?}, the model takes {:?}", meta.input, model.input)));
    }
    if let (Some(a), Some(b)) = (&meta.spec, &model.spec) {
        if a.layers != b.layers {
            // Name the first difference: the same zoo name can differ in its classes or in a
            // layer's setting (a dropout rate, say).
            let what = match a.layers.iter().zip(&b.layers).position(|(x, y)| x != y) {
                Some(i) => format!("layer {i} is {:?} in the checkpoint, {:?} in the model", a.layers[i], b.layers[i]),
                None => format!("{} layers in the checkpoint, {} in the model", a.layers.len(), b.layers.len()),
            };
            return Err(bad(path, format!("checkpoint of model '{}' differs from the model '{}': {what}", a.name, b.name)));
        }
    }
    let (mut tensors, _) = read_safetensors(path)?;
    let mut take = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
        let (s, v) = tensors.remove(name).ok_or_else(|| bad(path, format!("tensor {name} is missing")))?;
        if s != shape {
            return Err(bad(path, format!("tensor {name} has shape {s:?}, the model needs {shape:?}")));
        }
        Ok(v)
    };
    let mut state = Vec::new();
    for info in model.param_info().to_vec() {
        state.push(NamedTensor { name: info.name.clone(), shape: info.shape.clone(), data: take(&info.name, &info.shape)? });
    }
    for info in model.buffer_info().to_vec() {
        state.push(NamedTensor { name: info.name.clone(), shape: info.shape.clone(), data: take(&info.name, &info.shape)? });
    }
    // The checkpoint's frozen parameters: a model with none frozen takes them over (a resumed
    // fine-tuning run stays one; eval and predict do not care); a model frozen otherwise is
    // refused, unless the checkpoint froze nothing (freezing starts from here: the frozen
    // parameters' optimizer state is left in the file).
    let frozen = model.frozen();
    if frozen != meta.frozen && !meta.frozen.is_empty() {
        if frozen.is_empty() {
            model.freeze(be, &meta.frozen).map_err(|e| bad(path, format!("metadata 'frozen': {e}")))?;
        } else {
            let list = |l: &[String]| if l.is_empty() { "none".to_string() } else { l.join(", ") };
            return Err(bad(
                path,
                format!(
                    "the checkpoint was trained with frozen parameters {}, the model has {} frozen: freeze the same (or nothing, to take the checkpoint's)",
                    list(&meta.frozen),
                    list(&frozen)
                ),
            ));
        }
    }
    let mut opt_state = Vec::new();
    for info in model.trainable().into_iter().map(|i| model.param_info()[i].clone()) {
        opt_state.push((
            take(&format!("optimizer.state1.{}", info.name), &info.shape)?,
            take(&format!("optimizer.state2.{}", info.name), &info.shape)?,
        ));
    }
    model.load_state_dict(be, &state).map_err(|e| bad(path, e.to_string()))?;
    for (i, (a, b)) in opt_state.iter().enumerate() {
        be.write(&mut model.state1[i], a)?;
        be.write(&mut model.state2[i], b)?;
    }
    model.step = meta.progress.step;
    model.seed = meta.progress.seed;
    model.classes = meta.classes.clone();
    model.normalization = meta.normalization.clone();
    Ok(meta)
}
