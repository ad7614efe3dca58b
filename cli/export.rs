//! `wgtrain export`: a checkpoint's weights as a PyTorch state dict (safetensors), and the
//! other direction's helpers for `train --init-from` and `eval --weights`. The work is done by
//! the library (`wgtrain::interop`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::builder::PossibleValuesParser;
use wgtrain::interop::{self, Dtype, LoadOptions, Weights};
use wgtrain::nn::{zoo, Model, ModelSpec};
use wgtrain::{checkpoint, Backend, Cpu};

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// The checkpoint to export (from `train --checkpoint`)
    #[arg(long)]
    checkpoint: PathBuf,
    /// The safetensors file to write: the model's PyTorch state dict, no optimizer state
    #[arg(long)]
    out: PathBuf,
    /// Storage type of the weights
    #[arg(long, default_value = "f32", value_parser = PossibleValuesParser::new(Dtype::NAMES))]
    dtype: String,
}

pub fn run(a: &ExportArgs) -> anyhow::Result<ExitCode> {
    let dtype = Dtype::parse(&a.dtype)?;
    if a.out.is_dir() {
        anyhow::bail!("--out {}: is a folder, expected a file name", a.out.display());
    }
    if a.out.canonicalize().ok().is_some_and(|o| a.checkpoint.canonicalize().ok() == Some(o)) {
        anyhow::bail!("--out {}: is the checkpoint itself; the export would replace it (choose another file name)", a.out.display());
    }
    // The CPU backend: exporting reads and writes host memory only, no GPU needed.
    let (model, meta) = crate::eval::model_from_checkpoint(&Cpu, &a.checkpoint)?;
    interop::export_state_dict(&Cpu, &model, &a.out, dtype)?;
    let tensors = model.param_info().len() + model.buffer_info().len();
    println!(
        "wrote {}: {} ({} tensors, {} parameters, {}) after epoch {}, for inputs {} and {} classes",
        a.out.display(),
        model.name,
        tensors,
        wgtrain::nn::spec::group(model.num_params()),
        a.dtype,
        meta.progress.epoch,
        shape(&model.input),
        model.classes()
    );
    println!(
        "in PyTorch: model = build(\"{}\", {}, {}, ({}, {})) from tools/torch_model.py, then",
        model.name,
        model.input[0],
        model.classes(),
        model.input[1],
        model.input[2]
    );
    println!("            model.load_state_dict(safetensors.torch.load_file(\"{}\"))", a.out.display());
    Ok(ExitCode::SUCCESS)
}

fn shape(s: &[usize]) -> String {
    s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")
}

/// Where a model's input normalisation comes from, in words (printed by train and eval).
fn normalization_note(path: &Path, from_file: Option<&[(f32, f32)]>) -> String {
    match from_file {
        Some(st) => {
            let (m, s): (Vec<String>, Vec<String>) = st.iter().map(|(m, s)| (format!("{m:.4}"), format!("{s:.4}"))).unzip();
            format!("normalisation: from {}'s metadata (mean {}, std {})", path.display(), m.join(", "), s.join(", "))
        }
        None => format!("normalisation: the training set's statistics ({} has no 'mean' and 'std' metadata)", path.display()),
    }
}

/// Reads `--init-from`'s file and its normalisation (when its metadata has one).
pub fn read_init(path: &Path) -> anyhow::Result<(Weights, Option<Vec<(f32, f32)>>)> {
    let w = interop::read_weights(path)?;
    let stats = w.normalization()?;
    Ok((w, stats))
}

/// `train --init-from`: loads the weights into the freshly built `model` (its optimizer state
/// stays fresh, training starts at epoch 0) and says what was used.
pub fn init_from<B: Backend>(be: &B, model: &mut Model<B>, w: &Weights, reset_head: bool, stats_from_file: bool) -> anyhow::Result<()> {
    let done = interop::load_weights(be, model, w, LoadOptions { reset_head })?;
    if reset_head && done.reset.is_empty() {
        anyhow::bail!("--reset-head: model {} has no linear layer to replace", model.name);
    }
    let mut line = format!("initialised from {}: {} tensors", w.path.display(), done.loaded);
    if !done.reset.is_empty() {
        line.push_str(&format!(", head ({}) new for {} classes", done.reset.join(", "), model.classes()));
    }
    println!("{line}");
    println!("{}", normalization_note(&w.path, if stats_from_file { Some(&model.normalization) } else { None }));
    Ok(())
}

/// The seed `eval --weights` loads and splits the data with: train's default, so a default
/// run's split is found again.
pub const WEIGHTS_SEED: u64 = 1;

/// `eval --weights`: the model `name` (a zoo name or .toml file; default: the description in
/// the file's metadata) for the data set's input shape and class count, with the file's
/// weights. Its normalisation is the file's, or none (eval then uses the training set's).
pub fn model_from_weights<B: Backend>(
    be: &B,
    path: &Path,
    name: Option<&str>,
    train_set: &wgtrain::data::Dataset,
) -> anyhow::Result<(Model<B>, checkpoint::Meta)> {
    let (w, stats) = read_init(path)?;
    let seed = WEIGHTS_SEED;
    // The data set fixes the input shape and class count (a PyTorch file does not say them).
    let (input, classes) = (train_set.shape.to_vec(), train_set.classes.len());
    let spec: ModelSpec = match (name, w.metadata.get("model")) {
        (Some(n), _) => zoo::model(n, classes)?,
        (None, Some(js)) => serde_json::from_str(js).map_err(|e| anyhow::anyhow!("{}: metadata 'model': {e}", path.display()))?,
        (None, None) => anyhow::bail!(
            "--weights {}: the file does not say its architecture; pass --model NAME ({} or a .toml model file)",
            path.display(),
            zoo::NAMES.join(", ")
        ),
    };
    let mut model = Model::from_spec(be, &spec, &input, seed)?;
    let done = interop::load_weights(be, &mut model, &w, LoadOptions::default())?;
    println!("{} tensors from {} into {}", done.loaded, path.display(), model.name);
    println!("{}", normalization_note(path, stats.as_deref()));
    let stored_values = w.tensors.values().map(|(_, v)| v.len()).sum();
    let meta = checkpoint::Meta {
        spec: Some(spec),
        input,
        optimizer: None,
        progress: checkpoint::Progress {
            epoch: 0,
            batch_in_epoch: 0,
            step: 0,
            seed,
            best_val_loss: None,
            best_epoch: None,
            epochs_since_best: 0,
        },
        classes: w.classes()?.unwrap_or_default(),
        normalization: stats.unwrap_or_default(),
        frozen: Vec::new(),
        stored_values,
        run: None,
    };
    Ok((model, meta))
}
