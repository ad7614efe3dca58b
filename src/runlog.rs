//! Training logs read back and drawn: the CSV files of `wgtrain train --log FILE.csv`, and the
//! figure of `wgtrain plot` (loss and accuracy per epoch, several runs overlaid).
//!
//! Columns are found by their header name, so both formats are read:
//! - with settings (one file may hold several runs, told apart by `run`):
//!   `run,model,dataset,optimizer,base_lr,batch,seed,epoch,lr,train_loss,train_accuracy,val_loss,val_accuracy,images_per_s,seconds`
//! - the older one, without them (the runs of a file are told apart where the epoch count
//!   starts again): `epoch,lr,train_loss,train_accuracy,val_loss,val_accuracy,images_per_s,seconds`
//!
//! Validation columns may be empty; accuracies are fractions in [0, 1]. A header line met again
//! inside a file (logs of both formats appended to one file) starts reading by the new one. A
//! resumed run that logs an epoch again replaces the rows from that epoch on. Every error names
//! the file, the line and the column.
//!
//! ```no_run
//! # fn main() -> wgtrain::Result<()> {
//! let runs = wgtrain::runlog::read(std::path::Path::new("log.csv"))?;
//! wgtrain::runlog::plot(&runs, std::path::Path::new("curves.png"))?;
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};

use crate::plot::{save_panels_with_colours, LinePlot, Series};
use crate::{Error, Result};

/// The columns every log has, in the older format's order.
pub const REQUIRED: [&str; 4] = ["epoch", "train_loss", "train_accuracy", "val_loss"];

/// The settings columns of the newer format, as in its header.
pub const SETTINGS: [&str; 7] = ["run", "model", "dataset", "optimizer", "base_lr", "batch", "seed"];

/// One logged epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochRow {
    /// The epoch's number (1 for the first).
    pub epoch: u64,
    /// Learning rate of the epoch, when logged.
    pub lr: Option<f64>,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy, a fraction in [0, 1].
    pub train_accuracy: f64,
    /// Validation loss (none when the run had no validation part).
    pub val_loss: Option<f64>,
    /// Validation accuracy, a fraction in [0, 1].
    pub val_accuracy: Option<f64>,
    /// Training throughput, when logged.
    pub images_per_s: Option<f64>,
    /// Seconds of the epoch, when logged.
    pub seconds: Option<f64>,
}

/// One training run of a log file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Run {
    /// The file it was read from.
    pub file: PathBuf,
    /// Its number among the runs of that file (1 for the first).
    pub index: usize,
    /// The `run` column (none in the older format).
    pub id: Option<String>,
    /// The settings columns present in the file, as (name, value) in [`SETTINGS`] order
    /// (without `run`), empty values left out.
    pub settings: Vec<(String, String)>,
    /// Its epochs in order.
    pub epochs: Vec<EpochRow>,
}

impl Run {
    /// The value of a settings column (`model`, `optimizer`, ...), if the file has it.
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// A label from its settings (`default · adam lr 0.001 · batch 64`), or, for a log without
    /// settings, the file's name (with the run's number where the file holds several).
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = self.setting("model") {
            parts.push(m.to_string());
        }
        match (self.setting("optimizer"), self.setting("base_lr")) {
            (Some(o), Some(lr)) => parts.push(format!("{o} lr {lr}")),
            (Some(o), None) => parts.push(o.to_string()),
            (None, Some(lr)) => parts.push(format!("lr {lr}")),
            (None, None) => {}
        }
        if let Some(b) = self.setting("batch") {
            parts.push(format!("batch {b}"));
        }
        if parts.is_empty() {
            let name = self.file.file_name().map_or_else(|| self.file.display().to_string(), |n| n.to_string_lossy().into_owned());
            return if self.index > 1 { format!("{name} (run {})", self.index) } else { name };
        }
        parts.join(" · ")
    }
}

/// Labels for `runs`, one each, told apart: [`Run::label`], then, where two are the same, the
/// setting that differs between them (data set, seed), then the run id, then the file.
pub fn labels(runs: &[Run]) -> Vec<String> {
    let mut labels: Vec<String> = runs.iter().map(Run::label).collect();
    let collides = |labels: &[String], i: usize| labels.iter().enumerate().any(|(j, l)| j != i && *l == labels[i]);
    type Extra = fn(&Run) -> Option<String>;
    let extras: [Extra; 4] = [
        |r| r.setting("dataset").map(str::to_string),
        |r| r.setting("seed").map(|s| format!("seed {s}")),
        |r| r.id.as_ref().map(|id| format!("run {id}")),
        |r| Some(r.file.display().to_string()),
    ];
    for extra in extras {
        let clashing: Vec<usize> = (0..runs.len()).filter(|&i| collides(&labels, i)).collect();
        if clashing.is_empty() {
            break;
        }
        // Only where the extra tells the clashing runs apart (the same seed twice says nothing).
        let values: Vec<Option<String>> = clashing.iter().map(|&i| extra(&runs[i])).collect();
        if values.iter().all(|v| *v == values[0]) {
            continue;
        }
        for (&i, v) in clashing.iter().zip(values) {
            if let Some(v) = v {
                labels[i] = format!("{} · {v}", labels[i]);
            }
        }
    }
    labels
}

/// Reads every run of the log at `path`.
pub fn read(path: &Path) -> Result<Vec<Run>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    parse(&text, path)
}

/// Splits one CSV line into fields (double-quoted fields may hold commas and `""`).
fn fields(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cur.push(c),
            (false, '"') if cur.is_empty() => quoted = true,
            (false, ',') => out.push(std::mem::take(&mut cur)),
            (false, c) => cur.push(c),
        }
    }
    if quoted {
        return None;
    }
    out.push(cur);
    Some(out.into_iter().map(|f| f.trim().to_string()).collect())
}

/// Where each known column is in the current header.
struct Header {
    names: Vec<String>,
    settings: bool,
}

impl Header {
    fn parse(cells: &[String], path: &Path, line: usize) -> Result<Header> {
        let names: Vec<String> = cells.to_vec();
        if let Some(missing) = REQUIRED.iter().find(|c| !names.iter().any(|n| n == *c)) {
            return Err(Error::Invalid(format!(
                "{}: line {line}: the header has no column '{missing}' (expected a training log of `wgtrain train --log`, whose header starts with `epoch,lr,train_loss` or `run,model,dataset`)",
                path.display()
            )));
        }
        if let Some((i, dup)) = names.iter().enumerate().find(|(i, n)| names[..*i].contains(n)) {
            return Err(Error::Invalid(format!("{}: line {line}, column {}: '{dup}' appears twice in the header", path.display(), i + 1)));
        }
        Ok(Header { settings: names.iter().any(|n| n == "run"), names })
    }

    fn col(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

/// Reads the runs of a log whose text is `text`; `path` names the file in errors and labels.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Run>> {
    let mut runs: Vec<Run> = Vec::new();
    let mut header: Option<Header> = None;
    // For the older format: the run now being read in this file (by its index in `runs`).
    let mut current: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let bad =
            |col: usize, name: &str, msg: String| Error::Invalid(format!("{}: line {line}, column {col} ({name}): {msg}", path.display()));
        let cells = fields(raw).ok_or_else(|| Error::Invalid(format!("{}: line {line}: a quoted field is not closed", path.display())))?;
        // The first line is the header; a header met again starts a new one (logs of both
        // formats appended to one file).
        if header.is_none() || (cells.iter().any(|c| c == "epoch") && cells.iter().any(|c| c == "train_loss")) {
            header = Some(Header::parse(&cells, path, line)?);
            current = None;
            continue;
        }
        let Some(h) = &header else { continue }; // set above for the first line
        if cells.len() != h.names.len() {
            return Err(Error::Invalid(format!(
                "{}: line {line}: {} fields, expected {} as in the header",
                path.display(),
                cells.len(),
                h.names.len()
            )));
        }
        let cell = |name: &str| h.col(name).map(|c| (c + 1, cells[c].as_str()));
        let number = |name: &str| -> Result<Option<f64>> {
            match cell(name) {
                None | Some((_, "")) => Ok(None),
                Some((col, v)) => v.parse::<f64>().map(Some).map_err(|_| bad(col, name, format!("'{v}' is not a number"))),
            }
        };
        let required = |name: &str| -> Result<f64> {
            number(name)?.ok_or_else(|| {
                let col = h.col(name).map_or(0, |c| c + 1);
                bad(col, name, "empty, expected a number".into())
            })
        };
        let fraction = |name: &str, v: Option<f64>| -> Result<Option<f64>> {
            match v {
                Some(v) if !(0.0..=1.0).contains(&v) => {
                    let col = h.col(name).map_or(0, |c| c + 1);
                    Err(bad(col, name, format!("{v} is not a fraction in [0, 1]")))
                }
                v => Ok(v),
            }
        };
        let (ecol, etext) = cell("epoch").unwrap_or((0, ""));
        let epoch: u64 = etext.parse().map_err(|_| bad(ecol, "epoch", format!("'{etext}' is not an epoch number (1, 2, ...)")))?;
        let row = EpochRow {
            epoch,
            lr: number("lr")?,
            train_loss: required("train_loss")?,
            train_accuracy: fraction("train_accuracy", Some(required("train_accuracy")?))?.unwrap_or(0.0),
            val_loss: number("val_loss")?,
            val_accuracy: fraction("val_accuracy", number("val_accuracy")?)?,
            images_per_s: number("images_per_s")?,
            seconds: number("seconds")?,
        };
        let settings: Vec<(String, String)> = SETTINGS[1..]
            .iter()
            .filter_map(|s| cell(s).filter(|(_, v)| !v.is_empty()).map(|(_, v)| (s.to_string(), v.to_string())))
            .collect();
        let idx = if h.settings {
            let id = cell("run").map(|(_, v)| v.to_string()).unwrap_or_default();
            match runs.iter().position(|r| r.id.as_deref() == Some(id.as_str())) {
                Some(k) => k,
                None => {
                    runs.push(Run { file: path.to_path_buf(), index: runs.len() + 1, id: Some(id), settings, epochs: vec![] });
                    runs.len() - 1
                }
            }
        } else {
            // Older format: the epoch count starting again means another run.
            match current {
                Some(k) if runs[k].epochs.last().is_some_and(|r| r.epoch < epoch) => k,
                _ => {
                    runs.push(Run { file: path.to_path_buf(), index: runs.len() + 1, id: None, settings, epochs: vec![] });
                    runs.len() - 1
                }
            }
        };
        current = Some(idx);
        // A resumed run that logs an epoch again replaces what it logged from there on.
        let epochs = &mut runs[idx].epochs;
        epochs.retain(|r| r.epoch < epoch);
        epochs.push(row);
    }
    if header.is_none() {
        return Err(Error::Invalid(format!(
            "{}: empty, expected a training log of `wgtrain train --log` (a header `epoch,lr,train_loss,...` and one row per epoch)",
            path.display()
        )));
    }
    if runs.is_empty() {
        return Err(Error::Invalid(format!("{}: a header but no epochs: nothing to plot", path.display())));
    }
    Ok(runs)
}

/// Writes the figure of `wgtrain plot` to `path`: two panels, loss and accuracy (%) per epoch,
/// each run in its own colour, training solid and validation dashed, labelled by [`labels`].
/// The title says which runs (models, data sets) and files it shows.
pub fn plot(runs: &[Run], path: &Path) -> Result<()> {
    let labels = labels(runs);
    let (mut loss, mut acc, mut colours) = (Vec::new(), Vec::new(), Vec::new());
    for (k, (run, label)) in runs.iter().zip(&labels).enumerate() {
        let pts = |f: &dyn Fn(&EpochRow) -> Option<f64>| -> Vec<(f64, f64)> {
            run.epochs.iter().filter_map(|r| f(r).map(|v| (r.epoch as f64, v))).collect()
        };
        let train_loss = pts(&|r| Some(r.train_loss));
        let train_acc = pts(&|r| Some(100.0 * r.train_accuracy));
        let val_loss = pts(&|r| r.val_loss);
        let val_acc = pts(&|r| r.val_accuracy.map(|a| 100.0 * a));
        // The legend names each run once, by its training line (or its validation line if it has
        // no training figures).
        loss.push(Series::new(label.clone(), train_loss));
        acc.push(Series::new(label.clone(), train_acc));
        colours.push(k);
        if !val_loss.is_empty() || !val_acc.is_empty() {
            loss.push(Series::new("", val_loss).dashed());
            acc.push(Series::new("", val_acc).dashed());
            colours.push(k);
        }
    }
    let has_val = runs.iter().any(|r| r.epochs.iter().any(|e| e.val_loss.is_some() || e.val_accuracy.is_some()));
    let panels = [
        LinePlot {
            title: "Loss".into(),
            x_label: "epoch".into(),
            y_label: "cross-entropy loss (nats)".into(),
            series: loss,
            markers: true,
            ..LinePlot::default()
        },
        LinePlot {
            title: "Accuracy".into(),
            x_label: "epoch".into(),
            y_label: "accuracy (%)".into(),
            series: acc,
            markers: true,
            ..LinePlot::default()
        },
    ];
    save_panels_with_colours(path, &title(runs, has_val), &panels, &colours)
}

/// "Training curves of 2 runs (default, lenet5 on shapes) from log.csv" and a line on what the
/// line styles mean.
fn title(runs: &[Run], has_val: bool) -> String {
    fn distinct<'a>(it: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
        let mut v: Vec<&str> = Vec::new();
        for s in it {
            if !v.contains(&s) {
                v.push(s);
            }
        }
        v
    }
    let models = distinct(runs.iter().filter_map(|r| r.setting("model")));
    let datasets = distinct(runs.iter().filter_map(|r| r.setting("dataset")));
    let files = distinct(runs.iter().filter_map(|r| r.file.file_name().and_then(|n| n.to_str())));
    let n = runs.len();
    let mut t = if n == 1 { "Training curves of 1 run".to_string() } else { format!("Training curves of {n} runs") };
    match (models.is_empty(), datasets.is_empty()) {
        (false, false) => t += &format!(" ({} on {})", models.join(", "), datasets.join(", ")),
        (false, true) => t += &format!(" ({})", models.join(", ")),
        (true, false) => t += &format!(" (on {})", datasets.join(", ")),
        (true, true) => {}
    }
    t += &format!(" from {}", files.join(", "));
    t += if has_val { "\nsolid: training, dashed: validation" } else { "\ntraining figures (the logs have no validation)" };
    t
}
