//! Kernel tests: every WGSL kernel against its CPU twin, plus the shader, dispatch and error
//! rules around them. Run with `cargo test --release`.
//!
//! GPU tests need an adapter (lavapipe is enough). Without one they fail — under CI always,
//! elsewhere unless WGTRAIN_ALLOW_NO_GPU=1, which makes them skip *loudly*.

mod batch_norm;
mod buffers;
mod cases;
mod channel;
mod common;
mod conv2d;
mod dispatch;
mod dropout;
mod elementwise;
mod errors;
mod loss;
mod matmul;
mod optimizer;
mod permute;
mod pool;
mod reduce;
mod relu;
mod shaders;
mod tolerance;
