//! Layers, losses and models.
//!
//! - [`Layer`]: the trait every layer implements (forward and backward side by side, the
//!   parameters and buffers it registers, train/eval [`Mode`]); the built-in layers are in
//!   [`layers`]; a user's crate implements it for its own.
//! - [`Sequential`] and [`Residual`]: containers that compose layers.
//! - [`Loss`]: the trait of a training objective; [`CrossEntropy`] implements it.
//! - [`Model`]: layers on a backend, with parameter arenas and per-batch-size plans; the
//!   training step as one call or in its parts.
//! - [`ModelSpec`]: a model as data (the zoo, TOML model files, checkpoints).

pub mod container;
pub mod freeze;
pub mod layer;
pub mod layers;
pub mod loss;
pub mod model;
pub mod spec;
pub mod summary;
pub mod toml_model;
pub mod zoo;

pub use container::{Block, Residual, Sequential};
pub use layer::{Backward, BufferInfo, Build, Forward, Init, Layer, Mode, ParamInfo};
pub use layers::{AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, GlobalAvgPool, Linear, MaxPool2d, Relu};
pub use loss::{CrossEntropy, Loss, LossTarget};
pub use model::{Graph, Metrics, Model, NamedTensor, Node, Op, Targets};
pub use spec::{LayerInfo, LayerSpec, ModelSpec};
pub use summary::MemoryEstimate;
