//! Fine-tuning: which parameters of a model are frozen, chosen by glob patterns on their
//! state-dict names (`layers.0.*`, `layers.[0-3].*`, `*.bias`), and what follows from it for
//! the model's forward, backward and update (see [`Model::freeze`](super::Model::freeze)):
//! - a frozen parameter gets no update and no optimizer state: the model lays its parameter
//!   arena out with the trainable tensors first and the frozen ones after, so the trainable
//!   ones are one contiguous span and the fused update stays one dispatch over them (weight
//!   decay cannot reach a frozen tensor, as the kernel never sees it); the state arenas hold
//!   the trainable tensors only;
//! - a layer whose every parameter is frozen runs in eval mode during training (batch norm
//!   then uses and keeps its running statistics, and backpropagates with the eval backward);
//! - no gradient is computed for an activation that nothing trainable lies before, so a
//!   frozen stem costs a forward only.

use super::model::Node;
use crate::backend::Backend;
use crate::{Error, Result};

/// Whether `name` matches the glob `pattern`: `*` any run of characters (dots included),
/// `?` any one character, `[abc]`, `[0-3]`, `[!0-3]` (or `[^0-3]`) one character of (not of)
/// a set; everything else stands for itself. Errors on an unclosed `[`.
pub fn glob_match(pattern: &str, name: &str) -> Result<bool> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Check the pattern's syntax once, whatever the name.
    let mut i = 0;
    while i < p.len() {
        if p[i] == '[' {
            i = class_end(&p, i).ok_or_else(|| Error::Invalid(format!("pattern '{pattern}': '[' without a closing ']'")))?;
        }
        i += 1;
    }
    Ok(matches(&p, &n))
}

/// Index of the `]` closing the class that opens at `p[open]`.
fn class_end(p: &[char], open: usize) -> Option<usize> {
    let mut i = open + 1;
    if i < p.len() && (p[i] == '!' || p[i] == '^') {
        i += 1;
    }
    if i < p.len() && p[i] == ']' {
        i += 1; // a leading ']' is a member
    }
    (i..p.len()).find(|&j| p[j] == ']')
}

/// Whether `c` is in the class `p[open..=end]`.
fn in_class(p: &[char], open: usize, end: usize, c: char) -> bool {
    let mut i = open + 1;
    let negated = p[i] == '!' || p[i] == '^';
    if negated {
        i += 1;
    }
    let mut hit = false;
    while i < end {
        if i + 2 < end && p[i + 1] == '-' {
            hit |= p[i] <= c && c <= p[i + 2];
            i += 3;
        } else {
            hit |= p[i] == c;
            i += 1;
        }
    }
    hit != negated
}

fn matches(p: &[char], n: &[char]) -> bool {
    // Iterative matching with one backtrack point for the last `*` (linear in practice).
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => {
                let end = class_end(p, pi).unwrap_or(p.len() - 1);
                in_class(p, pi, end, n[ni]).then_some(end + 1)
            }
            Some(&c) => (c == n[ni]).then_some(pi + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                pi = next;
                ni += 1;
            }
            (None, Some((sp, sn))) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Which of `names` the patterns match (per name). A pattern that matches nothing is an
/// error listing every name, as is a malformed one; `model` names the model in messages.
pub fn select(model: &str, names: &[&str], patterns: &[impl AsRef<str>]) -> Result<Vec<bool>> {
    let mut hit = vec![false; names.len()];
    for pattern in patterns {
        let pattern = pattern.as_ref();
        let mut any = false;
        for (h, name) in hit.iter_mut().zip(names) {
            if glob_match(pattern, name)? {
                *h = true;
                any = true;
            }
        }
        if !any {
            return Err(Error::Invalid(format!(
                "freeze pattern '{pattern}' matches no parameter of model {model}; its parameters are: {}",
                names.join(", ")
            )));
        }
    }
    Ok(hit)
}

/// What the model derives from its frozen set, per parameter, node and activation.
#[derive(Clone, Debug, Default)]
pub(crate) struct Freezing {
    /// Per parameter: frozen.
    pub params: Vec<bool>,
    /// Per node: it has parameters and every one is frozen (runs in eval mode in training).
    pub nodes: Vec<bool>,
    /// Per node: at least one of its parameters is trained (its backward must run).
    pub trains: Vec<bool>,
    /// Per activation (0: the input, k + 1: node k's output): its gradient is needed, i.e.
    /// something trainable produced it or lies before it. All true (but the input) when
    /// nothing is frozen, so an unfrozen model backpropagates exactly as before.
    pub needs_grad: Vec<bool>,
}

impl Freezing {
    pub(crate) fn new<B: Backend>(nodes: &[Node<B>], params: Vec<bool>) -> Self {
        let any = params.contains(&true);
        let frozen_node: Vec<bool> = nodes.iter().map(|n| !n.params.is_empty() && n.params.clone().all(|i| params[i])).collect();
        let trains: Vec<bool> = nodes.iter().map(|n| n.params.clone().any(|i| !params[i])).collect();
        let mut needs_grad = vec![false; nodes.len() + 1];
        for (k, n) in nodes.iter().enumerate() {
            needs_grad[k + 1] = !any || trains[k] || needs_grad[n.input] || n.input2.is_some_and(|j| needs_grad[j]);
        }
        Self { params, nodes: frozen_node, trains, needs_grad }
    }

    /// Whether any parameter is frozen.
    pub(crate) fn any(&self) -> bool {
        self.params.contains(&true)
    }

    /// Indices of the trainable parameters, in order (state tensor k belongs to the k-th).
    pub(crate) fn trainable(&self) -> Vec<usize> {
        (0..self.params.len()).filter(|&i| !self.params[i]).collect()
    }

    /// The arena order: trainable parameters first, then frozen ones, each in model order.
    pub(crate) fn arena_order(&self) -> Vec<usize> {
        let frozen = (0..self.params.len()).filter(|&i| self.params[i]);
        self.trainable().into_iter().chain(frozen).collect()
    }

    /// Moves a per-parameter list apart into (trainable, frozen), each in model order.
    pub(crate) fn split<T>(&self, list: Vec<T>) -> (Vec<T>, Vec<T>) {
        let (mut t, mut f) = (Vec::new(), Vec::new());
        for (x, &frozen) in list.into_iter().zip(&self.params) {
            if frozen {
                f.push(x)
            } else {
                t.push(x)
            }
        }
        (t, f)
    }

    /// The inverse of [`Freezing::split`].
    pub(crate) fn merge<T>(&self, trainable: Vec<T>, frozen: Vec<T>) -> Vec<T> {
        let (mut t, mut f) = (trainable.into_iter(), frozen.into_iter());
        self.params.iter().filter_map(|&fz| if fz { f.next() } else { t.next() }).collect()
    }
}

/// Puts a list laid out in `order` (entry k belongs to index order\[k\]) back in index order.
pub(crate) fn unpermute<T>(list: Vec<T>, order: &[usize]) -> Vec<T> {
    let mut slots: Vec<Option<T>> = (0..order.len()).map(|_| None).collect();
    for (x, &i) in list.into_iter().zip(order) {
        slots[i] = Some(x);
    }
    slots.into_iter().map(|s| s.expect("an order is a permutation")).collect()
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        let m = |p: &str, n: &str| glob_match(p, n).unwrap();
        assert!(m("layers.0.*", "layers.0.weight"));
        assert!(!m("layers.0.*", "layers.10.weight"));
        assert!(m("layers.[0-3].*", "layers.3.bias"));
        assert!(!m("layers.[0-3].*", "layers.4.bias"));
        assert!(m("layers.[!0-3].*", "layers.4.bias"));
        assert!(m("*.bias", "layers.3.body.0.bias"));
        assert!(m("layers.?.weight", "layers.7.weight"));
        assert!(!m("layers.?.weight", "layers.17.weight"));
        assert!(m("layers.3.*.weight", "layers.3.body.0.weight"));
        assert!(m("layers.1.weight", "layers.1.weight"));
        assert!(!m("layers.1.weight", "layers.1.weights"));
        assert!(m("*", "x"));
        assert!(glob_match("layers.[0-3", "layers.0").is_err());
    }
}
