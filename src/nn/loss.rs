//! The `Loss` trait: how far a batch of logits is from its targets, and the gradient that
//! starts the backward pass. The built-in softmax cross-entropy implements it; a user's crate
//! adds its own the same way.

use crate::backend::{Backend, CeTarget, T};
use crate::Result;

/// The targets of a batch, on the device.
pub struct LossTarget<'a, B: Backend> {
    /// Class indices \[N\], stored as f32 (for mixed batches, the class with the larger share).
    pub labels: &'a T<B>,
    /// Probability rows [N, C], when the batch was mixed (mixup, cutmix).
    pub probs: Option<&'a T<B>>,
}

/// A training objective on the model's output (logits [N, C]).
pub trait Loss<B: Backend> {
    /// A short name for logs (`cross_entropy`).
    fn name(&self) -> &str;

    /// Writes the batch's mean loss into `loss` (one element) and its gradient with respect to
    /// the logits into `grad` ([N, C]), in one pass if the backend can.
    fn forward_backward(&self, be: &B, logits: &T<B>, target: LossTarget<'_, B>, loss: &mut T<B>, grad: &mut T<B>) -> Result<()>;
}

/// Softmax cross-entropy (PyTorch's `nn.CrossEntropyLoss`, mean reduction): hard labels with
/// optional label smoothing, or soft target rows.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CrossEntropy {
    /// Weight moved from the true class to a uniform distribution, in [0, 1].
    pub label_smoothing: f32,
}

impl CrossEntropy {
    /// Cross-entropy with the given label smoothing.
    pub fn new(label_smoothing: f32) -> Self {
        Self { label_smoothing }
    }
}

impl<B: Backend> Loss<B> for CrossEntropy {
    fn name(&self) -> &str {
        "cross_entropy"
    }

    fn forward_backward(&self, be: &B, logits: &T<B>, target: LossTarget<'_, B>, loss: &mut T<B>, grad: &mut T<B>) -> Result<()> {
        let target = match target.probs {
            Some(p) => CeTarget::Probs(p),
            None => CeTarget::Labels(target.labels),
        };
        be.cross_entropy(logits, target, self.label_smoothing, loss, grad)
    }
}
