//! Containers that compose layers: [`Sequential`] (one after another) and [`Residual`]
//! (y = relu(body(x) + shortcut(x))). A model is a `Sequential`; the model unrolls the tree
//! into a graph of nodes (see [`Model::nodes`](super::Model::nodes)), named as PyTorch would
//! name the same modules: `layers.3.body.0.weight`.

use super::layer::Layer;
use crate::backend::Backend;

/// One element of a [`Sequential`].
pub enum Block<B: Backend> {
    /// A layer.
    Layer(Box<dyn Layer<B>>),
    /// A residual block.
    Residual(Residual<B>),
}

/// Layers applied one after another.
pub struct Sequential<B: Backend> {
    /// The elements, in order.
    pub items: Vec<Block<B>>,
}

impl<B: Backend> Default for Sequential<B> {
    fn default() -> Self {
        Self { items: Vec::new() }
    }
}

impl<B: Backend> Sequential<B> {
    /// An empty sequence.
    pub fn new() -> Self {
        Self::default()
    }

    /// The sequence with `layer` appended.
    pub fn push(mut self, layer: impl Layer<B> + 'static) -> Self {
        self.items.push(Block::Layer(Box::new(layer)));
        self
    }

    /// The sequence with a boxed layer appended.
    pub fn push_boxed(mut self, layer: Box<dyn Layer<B>>) -> Self {
        self.items.push(Block::Layer(layer));
        self
    }

    /// The sequence with a residual block appended: relu(body(x) + shortcut(x)); an empty
    /// shortcut is the identity.
    pub fn residual(mut self, body: Sequential<B>, shortcut: Sequential<B>) -> Self {
        self.items.push(Block::Residual(Residual { body, shortcut }));
        self
    }

    /// Number of elements (a residual block counts as one).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// y = relu(body(x) + shortcut(x)), the block of a ResNet.
pub struct Residual<B: Backend> {
    /// The main path.
    pub body: Sequential<B>,
    /// The skip path (empty: the identity).
    pub shortcut: Sequential<B>,
}
