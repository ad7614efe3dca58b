#![warn(missing_docs)]
//! wgtrain — a CNN training engine whose compute runs as WGSL compute shaders through wgpu
//! (Vulkan, Metal, DX12; lavapipe on machines with no GPU), with a plain-Rust CPU twin of every
//! kernel that defines what "correct" means.
//!
//! Where things are, by op name (e.g. `matmul`):
//! - `shaders/matmul_v*.wgsl`   the kernels (numbered variants)
//! - `src/gpu/matmul.rs`        their host side (parameters, grid, variant choice)
//! - `src/cpu/matmul.rs`        the CPU twin, the reference
//! - `kernels-tests/matmul.rs`  GPU vs CPU on random inputs
//! - `benches/matmul.rs`        GFLOP/s (also `wgtrain bench matmul`)

pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod cpu;
pub mod data;
pub mod error;
pub mod gpu;
pub mod nn;
pub mod ops;
pub mod rng;
pub mod tensor;
pub mod train;
pub mod verify;

pub use backend::{Backend, CeTarget};
pub use cpu::Cpu;
pub use error::{Error, Result};
pub use gpu::{Gpu, GpuOptions, MatmulVariant};
pub use ops::{Activation, Conv2dSpec, MatmulSpec, Optimizer, OptimizerKind, PoolSpec};
pub use tensor::{CpuTensor, Tensor};
