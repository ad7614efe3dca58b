//! The GPU backend: WGSL kernels dispatched through wgpu.
//!
//! By role:
//! - `context.rs`: the adapter and device (choice by type or name, limits, error scopes);
//! - `kernels.rs`: the registry of shaders, their parameter structs and bindings, and the
//!   pipeline cache;
//! - `recorder.rs`: command recording (one open compute pass, the per-submission uniform
//!   arena, the bind-group cache), submission and waiting;
//! - `buffers.rs`: the buffer pool tensors borrow from, and buffer views;
//! - `grid.rs`: dispatch-grid helpers that keep every dispatch within the device's limits;
//! - `custom.rs`: kernels a user brings (element-wise WGSL of their own layers);
//! - `backend.rs`: the [`Backend`](crate::Backend) implementation, calling
//! - one file per op family, named as its shader: `matmul.rs`, `conv2d.rs` (im2col/col2im),
//!   `elementwise.rs` (add, mul, scale, ReLU, dropout), `channel.rs` (bias + activation,
//!   per-channel sums), `pool.rs`, `batch_norm.rs`, `loss.rs`, `reduce.rs`, `optimizer.rs`
//!   (with clipping), `permute.rs`.

mod ahead;
pub mod autotune;
pub mod backend;
pub mod batch_norm;
pub mod buffers;
pub mod channel;
pub mod context;
pub mod conv2d;
pub mod custom;
pub mod elementwise;
mod exit;
pub mod grid;
pub mod kernels;
pub mod loss;
pub mod matmul;
pub mod optimizer;
pub mod permute;
pub mod pool;
pub mod profile;
pub mod recorder;
pub mod reduce;

use std::sync::{Arc, Mutex};

pub use ahead::CompileAheadStats;
pub use autotune::{MatmulChoice, Tuning};
pub use buffers::{BufferPool, GpuBuffer};
pub use context::{list_adapters, AdapterSummary, GpuContext, GpuOptions};
pub use custom::ElementwiseKernel;
pub use grid::{grid_2d, split_grid};
use kernels::{Kernel, KernelParams, Pipeline, PipelineCache};
pub use matmul::MatmulVariant;
pub use profile::{KernelTime, ProfileMethod};
use recorder::Recorder;

use crate::ops::{MatmulDims, MatmulSpec};
use crate::tensor::{numel, Tensor};
use crate::{Error, Result};

/// A tensor on the GPU.
pub type GpuTensor = Tensor<GpuBuffer>;

/// Parameter slots per submission; a step with more dispatches than this is split.
pub(crate) const PARAM_SLOTS: u64 = 2048;

/// The GPU backend. Cheap to share between threads (`&Gpu` is enough; recording is serialised).
pub struct Gpu {
    /// The helper that compiles new pipelines ahead of the queue, where the driver compiles
    /// late. First, so that it is stopped and joined before anything else is dropped.
    pub(crate) ahead: Option<ahead::Ahead>,
    pub(crate) ctx: GpuContext,
    pub(crate) cache: PipelineCache,
    pub(crate) pool: Arc<BufferPool>,
    pub(crate) staging: Arc<BufferPool>,
    pub(crate) arena: wgpu::Buffer,
    pub(crate) slot: u64,
    pub(crate) rec: Mutex<Recorder>,
    pub(crate) matmul_variant: MatmulVariant,
    pub(crate) max_binding: u64,
    pub(crate) submissions: std::sync::atomic::AtomicU64,
    pub(crate) dispatch_count: std::sync::atomic::AtomicU64,
    /// Whether the recorder has a profiler (checked without the lock).
    pub(crate) profiled: std::sync::atomic::AtomicBool,
    /// The matmul variant per shape class (forced, measured, cached or by rule).
    pub(crate) matmul_choice: MatmulChoice,
    /// Where a process exiting without dropping this finds the device to wait for.
    _exit: exit::Registration,
}

impl Gpu {
    /// Opens the adapter `opts` asks for (default: the best one that runs compute shaders),
    /// with the limits training needs, and chooses the matmul variant.
    pub fn new(opts: &GpuOptions) -> Result<Self> {
        // Before the device is opened: opening it creates Mesa's cache folder.
        let shader_cache_present = ahead::shader_cache_present();
        let ctx = GpuContext::new(opts)?;
        log::info!("device: {} ({:?}, {:?})", ctx.info.name, ctx.info.backend, ctx.info.device_type);
        // Where both caches say this adapter ran here before, the shader cache is likely warm
        // and the helper would only cost memory.
        let ahead = if shader_cache_present && autotune::measured_before(&ctx, opts.tuning, opts.cache_file.as_deref()) {
            None
        } else {
            ahead::Ahead::for_device(&ctx, opts)
        };
        let exit = exit::register(&ctx.device, ahead.as_ref().map(ahead::Ahead::closer));
        let device = ctx.device.clone();
        let slot = (ctx.limits.min_uniform_buffer_offset_alignment as u64).max(256);
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kernel parameters"),
            size: slot * PARAM_SLOTS,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let forced = match opts.matmul_variant.clone().or_else(|| std::env::var("WGTRAIN_MATMUL").ok().filter(|s| !s.is_empty())) {
            Some(name) => Some(MatmulVariant::parse(&name)?),
            None => None,
        };
        let chosen = forced.unwrap_or_else(|| MatmulVariant::default_for(&ctx));
        let mut max_binding = ctx.limits.max_storage_buffer_binding_size.min(ctx.limits.max_buffer_size);
        if let Some(cap) = opts.max_binding_bytes {
            max_binding = max_binding.min(cap);
        }
        Ok(Self {
            pool: BufferPool::new(
                device.clone(),
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                "tensor",
            ),
            staging: BufferPool::new(device, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST, "read-back"),
            cache: if ahead.is_some() { PipelineCache::tracking() } else { PipelineCache::default() },
            ahead,
            arena,
            slot,
            rec: Mutex::new(Recorder::default()),
            matmul_variant: chosen,
            max_binding,
            submissions: Default::default(),
            dispatch_count: Default::default(),
            profiled: Default::default(),
            matmul_choice: MatmulChoice::default(),
            ctx,
            _exit: exit,
        })
        .map(|mut gpu| {
            gpu.matmul_choice = gpu.choose_kernels(opts.tuning, forced, opts.cache_file.as_deref());
            let large = MatmulDims { batch: 1, m: 1024, n: 1024, k: 1024, stride_a: 0, stride_b: 0, stride_c: 0 };
            gpu.matmul_variant = gpu.matmul_choice.variant(&large, MatmulSpec::default(), chosen);
            log::info!(
                "matmul variant: {} for large products ({}), chosen by {}",
                gpu.matmul_variant.name(),
                gpu.matmul_variant.describe(),
                gpu.matmul_choice.source
            );
            gpu
        })
        .inspect(|gpu| {
            if opts.profile {
                let profiler = profile::Profiler::new(gpu);
                gpu.lock().profiler = Some(profiler);
                gpu.profiled.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        })
    }

    /// The device, queue, adapter information and limits.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// The adapter's name (`llvmpipe (LLVM 15.0.6, 256 bits)`).
    pub fn adapter_name(&self) -> &str {
        &self.ctx.info.name
    }

    /// The matmul variant `matmul` uses on this device for large untransposed products.
    pub fn matmul_variant(&self) -> MatmulVariant {
        self.matmul_variant
    }

    /// The matmul variant per shape class, and how it was chosen.
    pub fn matmul_choice(&self) -> &MatmulChoice {
        &self.matmul_choice
    }

    /// The variant for a product of these dimensions and transposes.
    pub(crate) fn tuned_variant(&self, d: &crate::ops::MatmulDims, spec: crate::ops::MatmulSpec) -> MatmulVariant {
        self.matmul_choice.variant(d, spec, self.matmul_variant)
    }

    /// Buffers allocated from the device so far (tensors and read-back staging).
    pub fn buffers_created(&self) -> u64 {
        self.pool.created() + self.staging.created()
    }

    /// What the compile-ahead helper has done so far; `None` where the `Gpu` has none (see
    /// `GpuOptions::serial_compile`: only on llvmpipe, and not when its adapter and driver
    /// were measured in an earlier process).
    pub fn compile_ahead_stats(&self) -> Option<CompileAheadStats> {
        self.ahead.as_ref().map(|a| a.stats())
    }

    /// Waits up to `timeout` for the compile-ahead helper to run out of work; whether it has
    /// (true where there is none).
    pub fn wait_compile_ahead(&self, timeout: std::time::Duration) -> bool {
        self.ahead.as_ref().is_none_or(|a| a.wait_idle(timeout))
    }

    /// Command submissions so far.
    pub fn submissions(&self) -> u64 {
        self.submissions.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Kernel dispatches recorded so far.
    pub fn dispatches(&self) -> u64 {
        self.dispatch_count.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The largest byte range one storage binding may cover.
    pub fn max_binding_bytes(&self) -> u64 {
        self.max_binding
    }

    /// Storage bindings (and so arena entries) start at multiples of this many f32.
    pub(crate) fn binding_align(&self) -> usize {
        (self.ctx.limits.min_storage_buffer_offset_alignment as usize).max(16) / 4
    }

    pub(crate) fn max_groups(&self) -> u32 {
        self.ctx.limits.max_compute_workgroups_per_dimension
    }

    /// Frees pooled buffers not in use and forgets cached bind groups.
    pub fn trim(&self) {
        self.lock().bind_groups.clear();
        self.pool.trim();
        self.staging.trim();
    }

    pub(crate) fn pipeline<P: KernelParams>(&self, kernel: &Kernel, constants: &[(&str, f64)]) -> Result<Arc<Pipeline>> {
        self.cache.get::<P>(&self.ctx, kernel, constants)
    }

    pub(crate) fn alloc(&self, shape: &[usize]) -> Result<GpuTensor> {
        let bytes = numel(shape) as u64 * 4;
        if bytes > self.ctx.limits.max_buffer_size {
            return Err(Error::Limit { op: "alloc", what: "a tensor in bytes".into(), got: bytes, limit: self.ctx.limits.max_buffer_size });
        }
        Ok(Tensor::from_parts(shape, self.pool.get(bytes)))
    }
}
