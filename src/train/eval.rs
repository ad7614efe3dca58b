//! Evaluation of a model on a data set: loss, accuracy, per-class accuracy, the confusion
//! matrix and, on request, every sample's class probabilities.

use crate::backend::Backend;
use crate::data::Dataset;
use crate::nn::model::softmax;
use crate::nn::Model;
use crate::tensor::ShapeFmt;
use crate::{Error, Result};

/// How a model did on a data set.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// Mean cross-entropy per sample (natural log).
    pub loss: f64,
    /// Share of samples whose top class is the label.
    pub accuracy: f64,
    /// Accuracy per true class (NaN for a class with no samples).
    pub per_class: Vec<f64>,
    /// confusion[true]\[predicted\] counts.
    pub confusion: Vec<Vec<usize>>,
    /// Samples evaluated.
    pub samples: usize,
    /// Class probabilities per sample, [samples, classes] row-major, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<Vec<f32>>,
}

/// Runs `model` in eval mode over `data` in batches of `batch` (the last one smaller; at most
/// the largest batch the device holds, [`Model::largest_batch`]: each sample's outputs are the
/// same whatever the batch) and scores it; with `keep_probabilities`, also returns every
/// sample's probabilities.
pub fn evaluate<B: Backend>(be: &B, model: &mut Model<B>, data: &Dataset, batch: usize, keep_probabilities: bool) -> Result<Evaluation> {
    if data.shape[..] != model.input[..] {
        return Err(Error::Invalid(format!(
            "{}: images are {}, the model takes {}",
            data.name,
            ShapeFmt(&data.shape),
            ShapeFmt(&model.input)
        )));
    }
    let k = model.classes();
    if data.classes.len() > k {
        return Err(Error::Invalid(format!("{}: {} classes, the model has {k} outputs", data.name, data.classes.len())));
    }
    let per = data.image_len();
    let batch = batch.min(model.largest_batch(be.memory().max_tensor_bytes)).max(1);
    let mut confusion = vec![vec![0usize; k]; k];
    let mut loss = 0.0f64;
    let mut probabilities = keep_probabilities.then(|| Vec::with_capacity(data.len() * k));
    let mut start = 0;
    while start < data.len() {
        let end = (start + batch.max(1)).min(data.len());
        let logits = model.predict_logits(be, &data.images[start * per..end * per])?;
        for (row, i) in logits.chunks(k).zip(start..end) {
            let label = data.labels[i] as usize;
            // Cross-entropy from the logits, stably: logsumexp(z) - z[label].
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v)) as f64;
            let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
            loss += lse - row[label] as f64;
            let guess = row.iter().enumerate().fold(0, |b, (c, &v)| if v > row[b] { c } else { b });
            confusion[label][guess] += 1;
            if let Some(p) = probabilities.as_mut() {
                p.extend(softmax(row));
            }
        }
        start = end;
    }
    let n = data.len();
    let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
    let per_class = (0..k)
        .map(|c| {
            let total: usize = confusion[c].iter().sum();
            if total == 0 {
                f64::NAN
            } else {
                confusion[c][c] as f64 / total as f64
            }
        })
        .collect();
    Ok(Evaluation {
        loss: loss / n.max(1) as f64,
        accuracy: correct as f64 / n.max(1) as f64,
        per_class,
        confusion,
        samples: n,
        probabilities,
    })
}

impl Evaluation {
    /// The confusion matrix as text, rows (true classes) and columns (predicted classes) named
    /// by `classes` (numbered where missing; column names cut to 10 characters).
    pub fn confusion_table(&self, classes: &[String]) -> String {
        let k = self.confusion.len();
        let name = |i: usize| classes.get(i).cloned().unwrap_or_else(|| i.to_string());
        let short = |i: usize| name(i).chars().take(10).collect::<String>();
        let widest_count = self.confusion.iter().flatten().map(|v| v.to_string().len()).max().unwrap_or(1);
        let col = (0..k).map(|i| short(i).chars().count()).max().unwrap_or(1).max(widest_count) + 2;
        let label = (0..k).map(|i| name(i).chars().count()).max().unwrap_or(1).clamp(4, 24);
        let mut s = format!("  {:<label$}", "");
        for c in 0..k {
            s.push_str(&format!("{:>col$}", short(c)));
        }
        s.push('\n');
        for (r, row) in self.confusion.iter().enumerate() {
            let n: String = name(r).chars().take(label).collect();
            s.push_str(&format!("  {n:<label$}"));
            for v in row {
                s.push_str(&format!("{v:>col$}"));
            }
            s.push('\n');
        }
        s
    }
}
