//! `wgtrain eval`: a checkpoint's loss, accuracy, per-class accuracy and confusion matrix on a
//! split of a data set.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use wgtrain::data::DataSpec;
use wgtrain::nn::Model;
use wgtrain::{checkpoint, data, train, Backend, Cpu, Gpu};

use crate::args::{ComputeBackend, DataArgs};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitChoice {
    Train,
    Val,
    Test,
}

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// The checkpoint to evaluate (from `train --checkpoint`)
    #[arg(long, required_unless_present = "weights", conflicts_with = "weights")]
    checkpoint: Option<PathBuf>,
    /// Evaluate a weights-only safetensors file instead (a PyTorch state dict, or `wgtrain export`)
    #[arg(long)]
    weights: Option<PathBuf>,
    /// The architecture of --weights: a zoo name or a .toml model file (default: the file's own description)
    #[arg(long, requires = "weights")]
    model: Option<String>,
    #[command(flatten)]
    data: DataArgs,
    /// Which part of the data set
    #[arg(long, value_enum, default_value = "test")]
    split: SplitChoice,
    /// Where the ops run
    #[arg(long, value_enum, default_value = "gpu")]
    backend: ComputeBackend,
    /// Evaluate on another data set than the one the checkpoint was trained on (refused otherwise)
    #[arg(long)]
    other_data: bool,
    /// Also write the evaluation as JSON to this file
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also draw the confusion matrix (row-normalised %, class names on both axes) as this PNG
    #[arg(long, value_name = "FILE.png")]
    plot: Option<PathBuf>,
}

pub fn run(a: &EvalArgs, m: Option<&clap::ArgMatches>, gpu: impl Fn() -> anyhow::Result<Gpu>) -> anyhow::Result<ExitCode> {
    match a.backend {
        ComputeBackend::Gpu => eval(&gpu()?, a, m)?,
        ComputeBackend::Cpu => eval(&Cpu, a, m)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The data to evaluate on: the run's own (recorded in the checkpoint), with the data flags
/// typed on the command line put over it; another data set only with `--other-data`.
fn data_spec(a: &EvalArgs, m: Option<&clap::ArgMatches>, meta: &checkpoint::Meta, file: &Path) -> anyhow::Result<DataSpec> {
    let Some(run) = &meta.run else {
        // A checkpoint of an older version: only the flags say what the data is.
        crate::args::check_data(&a.data)?;
        return Ok(a.data.spec());
    };
    let spec = a.data.over(&run.data, |id| crate::args::typed(m, id));
    if spec.source != run.data.source && !a.other_data {
        anyhow::bail!(
            "{}: trained on {}, and --dataset {} is another data set; pass --other-data to evaluate on it anyway",
            file.display(),
            run.data.describe(),
            spec.source.name()
        );
    }
    crate::args::check_data_flags(spec.source, spec.path.as_deref(), spec.val_fraction, spec.image_size)?;
    let differences = run.data.differences(&spec);
    if !differences.is_empty() {
        println!("note: not the run's own data: {}", differences.join(", "));
    }
    Ok(spec)
}

/// The model a checkpoint holds, loaded on `be`.
pub fn model_from_checkpoint<B: Backend>(be: &B, path: &std::path::Path) -> anyhow::Result<(Model<B>, checkpoint::Meta)> {
    let meta = checkpoint::read_meta(path)?;
    let spec = checkpoint::spec_of(path, &meta)?;
    let mut model = Model::from_spec(be, &spec, &meta.input, meta.progress.seed)?;
    checkpoint::load(be, path, &mut model)?;
    Ok((model, meta))
}

fn eval<B: Backend>(be: &B, a: &EvalArgs, m: Option<&clap::ArgMatches>) -> anyhow::Result<()> {
    if let Some(p) = &a.json {
        crate::train::check_writable("--json", p)?;
    }
    let (mut model, meta, d, file, loaded) = match (&a.checkpoint, &a.weights) {
        (Some(ck), _) => {
            let (model, meta) = model_from_checkpoint(be, ck)?;
            let d = data_spec(a, m, &meta, ck)?;
            (model, meta, d, ck, None)
        }
        (None, Some(w)) => {
            // A weights file records no run: the data flags say what the data is, and the data
            // (loaded once, with train's default seed) gives the model its input and classes.
            crate::args::check_data(&a.data)?;
            let d = a.data.spec();
            let sets = d.load(crate::export::WEIGHTS_SEED)?;
            let (model, meta) = crate::export::model_from_weights(be, w, a.model.as_deref(), &sets.0)?;
            (model, meta, d, w, Some(sets))
        }
        (None, None) => anyhow::bail!("eval needs --checkpoint FILE or --weights FILE"),
    };
    let seed = meta.progress.seed;
    let (train_set, test_set) = match loaded {
        Some(sets) => sets,
        None => d.load(seed)?,
    };
    // Before the split: normalising with the checkpoint's statistics needs the same channels.
    if let Some(d) = [&train_set, &test_set].into_iter().find(|d| d.shape[..] != meta.input[..]) {
        anyhow::bail!("{}: the model takes inputs {:?}, {} has {:?}", file.display(), meta.input, d.name, d.shape);
    }
    let splits = if meta.normalization.is_empty() {
        data::split(train_set, test_set, d.val_fraction, seed)?
    } else {
        data::split_with(train_set, test_set, d.val_fraction, seed, &meta.normalization)?
    };
    let set = match a.split {
        SplitChoice::Train => &splits.train,
        SplitChoice::Val => &splits.val,
        SplitChoice::Test => &splits.test,
    };
    if set.is_empty() {
        let split = format!("{:?}", a.split).to_lowercase();
        let hint = if a.split == SplitChoice::Val { format!(" (--val-fraction {} leaves none)", d.val_fraction) } else { String::new() };
        anyhow::bail!("the {split} split of {} has no images{hint}: nothing to evaluate", set.name);
    }
    if set.classes.len() != model.classes() {
        anyhow::bail!("{}: the model has {} classes, the data set {}", file.display(), model.classes(), set.classes.len());
    }
    if !meta.classes.is_empty() && meta.classes != set.classes {
        let first = meta.classes.iter().zip(&set.classes).position(|(m, s)| m != s).unwrap_or(0);
        anyhow::bail!(
            "{}: trained on the classes of another data set (class {first} is '{}' in the checkpoint, '{}' in {})",
            file.display(),
            meta.classes[first],
            set.classes[first],
            set.name
        );
    }
    let r = train::evaluate(be, &mut model, set, 256, false)?;
    let split = format!("{:?}", a.split).to_lowercase();
    let run = meta.run.as_ref().map_or(String::new(), |r| format!(", run {}", r.run_id));
    println!("{} ({}{run}) on {} ({split} split, {} images)", file.display(), model.name, set.name, r.samples);
    if let Some(path) = &a.json {
        let report = serde_json::json!({
            "checkpoint": file,
            "model": model.name,
            "run_id": meta.run.as_ref().map(|r| r.run_id.clone()),
            "data": d,
            "split": split,
            "classes": set.classes,
            "evaluation": r,
        });
        wgtrain::atomic::write(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    println!("loss {:.4}  accuracy {:.2}%", r.loss, 100.0 * r.accuracy);
    println!("per class:");
    for (c, name) in set.classes.iter().enumerate() {
        let total: usize = r.confusion[c].iter().sum();
        println!("  {name:<16} {:6.2}%  ({}/{total})", 100.0 * r.confusion[c][c] as f64 / total.max(1) as f64, r.confusion[c][c]);
    }
    println!("confusion matrix (rows: true class, columns: predicted):");
    print!("{}", r.confusion_table(&set.classes));
    if let Some(png) = &a.plot {
        let title = format!("{} on {} ({split} split, {} images): accuracy {:.2}%", model.name, set.name, r.samples, 100.0 * r.accuracy);
        wgtrain::plot::save_confusion(png, &title, &set.classes, &r.confusion, wgtrain::plot::ConfusionCells::RowPercent)?;
        println!("wrote the confusion matrix to {}", png.display());
    }
    Ok(())
}
