//! Layers and models: descriptions (`spec`), the zoo (`zoo`), and a model living on a backend
//! (`model`).

pub mod model;
pub mod spec;
pub mod toml_model;
pub mod zoo;

pub use model::{Metrics, Model, Targets};
pub use spec::{Layer, LayerInfo, ModelSpec, ParamInfo};
