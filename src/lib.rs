#![warn(missing_docs)]
//! wgtrain — a CNN training engine whose compute runs as WGSL compute shaders through wgpu
//! (Vulkan, Metal, DX12; lavapipe on machines with no GPU), with a plain-Rust CPU twin of every
//! kernel that defines what "correct" means.
//!
//! # Quick start
//!
//! A model defined in Rust, trained and evaluated (`examples/train_mnist.rs` is the same on
//! MNIST):
//!
//! ```no_run
//! use wgtrain::nn::{BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, Model, Relu, Sequential};
//! use wgtrain::train::{evaluate, Printer, TrainConfig, Trainer};
//! use wgtrain::{data, Gpu, GpuOptions, Optimizer};
//!
//! # fn main() -> wgtrain::Result<()> {
//! let gpu = Gpu::new(&GpuOptions::default())?; // the best adapter; lavapipe without a GPU
//! let (train, test) = data::load(data::Source::Shapes, None, 1, 2000, 28)?; // built in
//! let splits = data::split(train, test, 0.1, 1)?; // validation split, normalisation
//! let net = Sequential::new()
//!     .push(Conv2d::new(16, 3).padding(1).no_bias())
//!     .push(BatchNorm2d::new())
//!     .push(Relu)
//!     .push(MaxPool2d::new(2, 2, 0))
//!     .push(Flatten)
//!     .push(Linear::new(10));
//! let mut model = Model::new(&gpu, net, &[1, 28, 28], 1, "small")?;
//! let config = TrainConfig { epochs: 2, optimizer: Optimizer::preset("momentum")?, ..TrainConfig::default() };
//! let report = Trainer::new(config).callback(Printer::new()).fit(&gpu, &mut model, &splits)?;
//! let test = evaluate(&gpu, &mut model, &splits.test, 256, true)?; // loss, accuracy, confusion, probabilities
//! println!("{:.2}% ({:.2}% in the report)", 100.0 * test.accuracy, 100.0 * report.test_accuracy);
//! # Ok(())
//! # }
//! ```
//!
//! # The crate, from the bottom up
//!
//! - [`ops`]: what each op is — its options, resolved sizes and the one shape check — one
//!   file per family.
//! - [`Backend`]: the trait both backends implement; its public methods check with [`ops`]
//!   and call the backend's kernels. [`Cpu`] is the reference (plain loops, [`cpu`]); [`Gpu`]
//!   records WGSL kernels ([`gpu`], shaders in `shaders/`).
//! - [`nn`]: the [`nn::Layer`] and [`nn::Loss`] traits, the built-in layers, containers
//!   ([`nn::Sequential`], [`nn::Residual`]) and [`nn::Model`] (arenas, per-batch plans, the
//!   training step whole or in parts); [`nn::ModelSpec`] for models as data (zoo, TOML files).
//! - [`train`]: [`train::Trainer`] runs the loop; printing, logs, checkpoints and early
//!   stopping are [`train::Callback`]s; [`train::evaluate`] scores a model.
//! - [`data`] (data sets, split, background loader with augmentation), [`checkpoint`]
//!   (safetensors), [`verify`] (every kernel against its twin, reference case files),
//!   [`mod@bench`] (the figures of `wgtrain bench` and `cargo bench`), [`plot`] (PNG figures)
//!   and [`runlog`] (training logs read back and drawn, `wgtrain plot`); [`scaling`] (data-parallel
//!   step time on N GPUs, modelled: `wgtrain bench scaling`).
//!
//! Where an op lives, by name (e.g. `matmul`): `shaders/matmul_v*.wgsl` (kernels),
//! `src/gpu/matmul.rs` (host side), `src/cpu/matmul.rs` (the twin), `src/ops/matmul.rs` (spec
//! and check), `src/verify/matmul.rs` (cases and runner), `kernels-tests/matmul.rs` (test),
//! `benches/matmul.rs` (GFLOP/s).

pub mod atomic;
pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod cpu;
pub mod data;
pub mod distributed;
pub mod error;
pub mod experiment;
pub mod gpu;
pub mod interop;
pub mod nn;
pub mod ops;
pub mod plot;
pub mod profile;
pub mod rng;
pub mod runlog;
pub mod scaling;
pub mod tensor;
pub mod train;
pub mod verify;

pub use backend::{Backend, CeTarget, MemoryInfo, MemoryKind};
pub use cpu::Cpu;
pub use error::{Error, Result};
pub use gpu::{Gpu, GpuOptions, MatmulVariant};
pub use ops::{Activation, Conv2dSpec, MatmulSpec, Optimizer, OptimizerKind, PoolSpec};
pub use tensor::{CpuTensor, Tensor};
