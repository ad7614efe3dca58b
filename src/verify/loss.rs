//! Loss-head cases and their runner: softmax cross-entropy with its gradient (hard labels with
//! and without label smoothing, soft targets), argmax and accuracy per row
//! (shaders/loss.wgsl; CPU twin src/cpu/loss.rs).

use super::{Report, Tolerance, VerifyTarget};
use crate::backend::CeTarget;
use crate::rng::Rng;
use crate::{Cpu, Result};

/// One loss-head op on logits [n, c].
#[derive(Clone, Debug)]
pub enum Case {
    /// Mean cross-entropy of random logits [n, c]: loss and gradient together.
    CrossEntropy {
        /// Rows (batch size).
        n: usize,
        /// Classes.
        c: usize,
        /// Label smoothing eps (0: none).
        smoothing: f32,
        /// Probability rows [n, c] as targets instead of class indices.
        soft: bool,
    },
    /// argmax_rows and correct_rows of [n, c].
    Argmax {
        /// Rows (batch size).
        n: usize,
        /// Classes.
        c: usize,
    },
}

impl Case {
    /// The op and its options, for reports.
    pub fn op(&self) -> String {
        match self {
            Case::CrossEntropy { smoothing, soft, .. } => format!(
                "cross_entropy {}{}",
                if *soft { "soft" } else { "hard" },
                if *smoothing > 0.0 { format!(" smoothing {smoothing}") } else { String::new() }
            ),
            Case::Argmax { .. } => "argmax_rows, correct_rows".into(),
        }
    }

    /// The sizes, for reports.
    pub fn shape(&self) -> String {
        match self {
            Case::CrossEntropy { n, c, .. } | Case::Argmax { n, c } => format!("[{n}, {c}]"),
        }
    }
}

/// Batch 1 with 2 classes, 10 classes at odd and even batch sizes, 1000 classes; each target
/// kind, and argmax/accuracy on the same shapes.
pub fn cases(_large: bool) -> Vec<super::Case> {
    let mut v = Vec::new();
    for (n, c) in [(1, 2), (7, 10), (64, 10), (5, 1000)] {
        v.push(Case::CrossEntropy { n, c, smoothing: 0.0, soft: false });
        v.push(Case::CrossEntropy { n, c, smoothing: 0.1, soft: false });
        v.push(Case::CrossEntropy { n, c, smoothing: 0.0, soft: true });
        v.push(Case::Argmax { n, c });
    }
    v.push(Case::CrossEntropy { n: 33, c: 10, smoothing: 0.2, soft: true });
    v.into_iter().map(super::Case::Loss).collect()
}

/// Cross-entropy: the loss, then the gradient. Argmax: the argmax of each row, then whether it
/// is the label. `target` holds labels [n] or probability rows [n, c].
fn compute<X: VerifyTarget>(be: &X, case: &Case, z: &[f32], target: &[f32]) -> Result<Vec<f32>> {
    match *case {
        Case::CrossEntropy { n, c, smoothing, soft } => {
            let shape = if soft { vec![n, c] } else { vec![n] };
            let t = be.upload(&shape, target)?;
            let t = if soft { CeTarget::Probs(&t) } else { CeTarget::Labels(&t) };
            let (mut loss, mut grad) = (be.zeros(&[1])?, be.zeros(&[n, c])?);
            be.cross_entropy(&be.upload(&[n, c], z)?, t, smoothing, &mut loss, &mut grad)?;
            Ok([be.download(&loss)?, be.download(&grad)?].concat())
        }
        Case::Argmax { n, c } => {
            let (mut arg, mut correct) = (be.zeros(&[n])?, be.zeros(&[n])?);
            let zt = be.upload(&[n, c], z)?;
            be.argmax_rows(&zt, &mut arg)?;
            be.correct_rows(&zt, &be.upload(&[n], target)?, &mut correct)?;
            Ok([be.download(&arg)?, be.download(&correct)?].concat())
        }
    }
}

/// Runs `case` on `be` and on the CPU reference with inputs drawn from `seed`.
pub fn run_case<B: VerifyTarget>(be: &B, case: &Case, seed: u64) -> Result<Report> {
    let mut rng = Rng::new(seed);
    let (z, target, tolerance) = match *case {
        Case::CrossEntropy { n, c, soft, .. } => {
            let z = rng.vec(n * c, -4.0, 4.0);
            let target: Vec<f32> = if soft {
                // Rows of a mixup-like distribution: two classes mixed.
                let mut t = vec![0.0; n * c];
                for i in 0..n {
                    let lam = rng.next_f32();
                    t[i * c + rng.below(c)] += lam;
                    t[i * c + rng.below(c)] += 1.0 - lam;
                }
                t
            } else {
                (0..n).map(|_| rng.below(c) as f32).collect()
            };
            (z, target, Tolerance::softmax(c))
        }
        Case::Argmax { n, c } => {
            let z = rng.vec(n * c, -1.0, 1.0);
            let labels = (0..n).map(|_| rng.below(c) as f32).collect();
            (z, labels, Tolerance::EXACT)
        }
    };
    let got = compute(be, case, &z, &target)?;
    let want = compute(&Cpu, case, &z, &target)?;
    Ok(Report::new(be, case.op(), case.shape(), tolerance, &got, &want))
}
