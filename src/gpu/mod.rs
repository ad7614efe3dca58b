//! The GPU backend: WGSL kernels dispatched through wgpu.
//!
//! Work is *recorded*, not run: each op appends a dispatch to one open compute pass, with its
//! parameters written into a per-submission uniform arena (bound at a dynamic offset), and
//! nothing is submitted until the host needs a result (`download`, `sync`) or writes a buffer
//! (`write`). A training step is thus one submission, and the host never waits inside it.
//!
//! Op families live in their own files, named as their shaders: matmul.rs, elementwise.rs
//! (with ReLU), reduce.rs.

pub mod batch_norm;
pub mod buffers;
pub mod channel;
pub mod context;
pub mod conv2d;
pub mod elementwise;
pub mod kernels;
pub mod loss;
pub mod matmul;
pub mod optimizer;
pub mod permute;
pub mod pool;
pub mod reduce;

use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

pub use buffers::{GpuBuffer, Pool};
pub use context::{list_adapters, AdapterSummary, GpuContext, GpuOptions};
use kernels::{Kernel, KernelParams, Pipeline, PipelineCache};
pub use matmul::MatmulVariant;

use crate::backend::{Backend, CeTarget};
use crate::ops::{self, Activation, Conv2dSpec, DropoutMask, MatmulSpec, PoolSpec};
use crate::optim::Optimizer;
use crate::tensor::{numel, Tensor};
use crate::{Error, Result};

pub type GpuTensor = Tensor<GpuBuffer>;

/// Parameter slots per submission; a step with more dispatches than this is split.
const PARAM_SLOTS: u64 = 2048;

/// One storage binding: a byte range of a pooled buffer.
pub(crate) struct Bind<'a> {
    pub buf: &'a GpuBuffer,
    pub offset: u64,
    pub size: u64,
}

impl<'a> Bind<'a> {
    pub fn whole(t: &'a GpuTensor) -> Self {
        Self { buf: &t.storage, offset: t.storage.offset(), size: (t.numel() as u64 * 4).max(4) }
    }

    /// All of the view `buf`.
    pub fn buffer(buf: &'a GpuBuffer) -> Self {
        Self { buf, offset: buf.offset(), size: buf.bytes().max(4) }
    }
}

type BindKey = (u64, Vec<(u64, u64, u64)>);

/// What has been recorded and not yet submitted.
#[derive(Default)]
struct Recorder {
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    params: Vec<u8>,
    dispatches: u64,
    bind_groups: HashMap<BindKey, wgpu::BindGroup>,
}

/// The GPU backend. Cheap to share between threads (`&Gpu` is enough; recording is serialised).
pub struct Gpu {
    ctx: GpuContext,
    cache: PipelineCache,
    pool: Arc<Pool>,
    staging: Arc<Pool>,
    arena: wgpu::Buffer,
    slot: u64,
    rec: Mutex<Recorder>,
    matmul_variant: MatmulVariant,
    max_binding: u64,
    submissions: std::sync::atomic::AtomicU64,
    dispatch_count: std::sync::atomic::AtomicU64,
}

impl Gpu {
    pub fn new(opts: &GpuOptions) -> Result<Self> {
        let ctx = GpuContext::new(opts)?;
        let device = ctx.device.clone();
        let slot = (ctx.limits.min_uniform_buffer_offset_alignment as u64).max(256);
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kernel parameters"),
            size: slot * PARAM_SLOTS,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let chosen = match opts.matmul_variant.clone().or_else(|| std::env::var("WGTRAIN_MATMUL").ok().filter(|s| !s.is_empty())) {
            Some(name) => MatmulVariant::parse(&name)?,
            None => MatmulVariant::default_for(&ctx),
        };
        log::info!("matmul variant: {} ({})", chosen.name(), chosen.describe());
        let mut max_binding = ctx.limits.max_storage_buffer_binding_size.min(ctx.limits.max_buffer_size);
        if let Some(cap) = opts.max_binding_bytes {
            max_binding = max_binding.min(cap);
        }
        Ok(Self {
            pool: Pool::new(
                device.clone(),
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                "tensor",
            ),
            staging: Pool::new(device, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST, "read-back"),
            cache: PipelineCache::default(),
            arena,
            slot,
            rec: Mutex::new(Recorder::default()),
            matmul_variant: chosen,
            max_binding,
            submissions: Default::default(),
            dispatch_count: Default::default(),
            ctx,
        })
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    pub fn adapter_name(&self) -> &str {
        &self.ctx.info.name
    }

    /// The matmul variant `matmul` uses on this device.
    pub fn matmul_variant(&self) -> MatmulVariant {
        self.matmul_variant
    }

    /// Buffers allocated from the device so far (tensors and read-back staging).
    pub fn buffers_created(&self) -> u64 {
        self.pool.created() + self.staging.created()
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

    pub(crate) fn max_groups(&self) -> u32 {
        self.ctx.limits.max_compute_workgroups_per_dimension
    }

    /// Frees pooled buffers not in use and forgets cached bind groups.
    pub fn trim(&self) {
        self.lock().bind_groups.clear();
        self.pool.trim();
        self.staging.trim();
    }

    fn lock(&self) -> MutexGuard<'_, Recorder> {
        self.rec.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn pipeline<P: KernelParams>(&self, kernel: &Kernel, constants: &[(&str, f64)]) -> Result<Arc<Pipeline>> {
        self.cache.get::<P>(&self.ctx, kernel, constants)
    }

    /// Records one dispatch of `kernel` over `groups` workgroups.
    pub(crate) fn dispatch<P: KernelParams>(
        &self,
        op: &'static str,
        pipeline: &Pipeline,
        params: &P,
        binds: &[Bind<'_>],
        groups: [u32; 3],
    ) -> Result<()> {
        let max = self.max_groups();
        if let Some(&g) = groups.iter().find(|&&g| g > max) {
            return Err(Error::Limit { op, what: "workgroups in one dispatch dimension".into(), got: g as u64, limit: max as u64 });
        }
        if groups.contains(&0) {
            return Ok(());
        }
        for b in binds {
            if b.size > self.max_binding {
                return Err(Error::Limit { op, what: "a storage binding in bytes".into(), got: b.size, limit: self.max_binding });
            }
        }
        let bytes = bytemuck::bytes_of(params);
        debug_assert!(bytes.len() as u64 <= self.slot);
        let mut rec = self.lock();
        if rec.params.len() as u64 + self.slot > self.slot * PARAM_SLOTS {
            self.flush_locked(&mut rec)?;
        }
        let offset = rec.params.len() as u32;
        rec.params.extend_from_slice(bytes);
        rec.params.resize(offset as usize + self.slot as usize, 0);

        let key: BindKey = (pipeline.id, binds.iter().map(|b| (b.buf.id(), b.offset, b.size)).collect());
        if !rec.bind_groups.contains_key(&key) {
            if rec.bind_groups.len() > 8192 {
                rec.bind_groups.clear();
            }
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &self.arena,
                    offset: 0,
                    size: std::num::NonZeroU64::new(pipeline.params_size),
                }),
            }];
            // Kernel::storage and `binds` list the storage bindings in the same order.
            let numbers = self.cache_storage_numbers(pipeline, binds.len(), op)?;
            for (b, number) in binds.iter().zip(numbers) {
                entries.push(wgpu::BindGroupEntry {
                    binding: number,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: b.buf.buffer(),
                        offset: b.offset,
                        size: std::num::NonZeroU64::new(b.size),
                    }),
                });
            }
            let bg = self.ctx.scoped(op, || {
                self.ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(op),
                    layout: &pipeline.layout,
                    entries: &entries,
                })
            })?;
            rec.bind_groups.insert(key.clone(), bg);
        }
        let bg = rec.bind_groups[&key].clone();
        let pass = self.pass_locked(&mut rec);
        pass.set_pipeline(&pipeline.pipeline);
        pass.set_bind_group(0, &bg, &[offset]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        rec.dispatches += 1;
        self.dispatch_count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn cache_storage_numbers(&self, pipeline: &Pipeline, n: usize, op: &'static str) -> Result<Vec<u32>> {
        if pipeline.storage.len() != n {
            return Err(Error::Invalid(format!("{op}: kernel has {} storage bindings, {n} given", pipeline.storage.len())));
        }
        Ok(pipeline.storage.to_vec())
    }

    fn encoder_locked<'r>(&self, rec: &'r mut Recorder) -> &'r mut wgpu::CommandEncoder {
        rec.pass = None; // ends the open compute pass, if any
        rec.encoder
            .get_or_insert_with(|| self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("wgtrain") }))
    }

    fn pass_locked<'r>(&self, rec: &'r mut Recorder) -> &'r mut wgpu::ComputePass<'static> {
        if rec.pass.is_none() {
            let enc = self.encoder_locked(rec);
            let pass =
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("wgtrain"), timestamp_writes: None }).forget_lifetime();
            rec.pass = Some(pass);
        }
        rec.pass.as_mut().expect("pass just opened")
    }

    /// Submits everything recorded so far (one command buffer). Does not wait.
    fn flush_locked(&self, rec: &mut Recorder) -> Result<Option<wgpu::SubmissionIndex>> {
        rec.pass = None;
        let Some(encoder) = rec.encoder.take() else {
            return Ok(None);
        };
        if !rec.params.is_empty() {
            self.ctx.queue.write_buffer(&self.arena, 0, &rec.params);
            rec.params.clear();
        }
        rec.dispatches = 0;
        let index = self.ctx.scoped("submitting recorded kernels", || self.ctx.queue.submit([encoder.finish()]))?;
        self.submissions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Some(index))
    }

    /// Submits recorded work without waiting for it.
    pub fn flush(&self) -> Result<()> {
        let mut rec = self.lock();
        self.flush_locked(&mut rec).map(|_| ())
    }

    fn wait(&self, index: Option<wgpu::SubmissionIndex>) -> Result<()> {
        self.ctx
            .device
            .poll(wgpu::PollType::Wait { submission_index: index, timeout: None })
            .map_err(|e| Error::Gpu { context: "waiting for the device".into(), message: e.to_string() })?;
        self.ctx.check("waiting for the device")
    }

    /// Records zeroing `t`.
    pub(crate) fn clear(&self, t: &GpuTensor) {
        let size = t.storage.bytes().div_ceil(4) * 4;
        if size > 0 {
            let mut rec = self.lock();
            self.encoder_locked(&mut rec).clear_buffer(t.storage.buffer(), t.storage.offset(), Some(size));
        }
    }

    fn alloc(&self, shape: &[usize]) -> Result<GpuTensor> {
        let bytes = numel(shape) as u64 * 4;
        if bytes > self.ctx.limits.max_buffer_size {
            return Err(Error::Limit { op: "alloc", what: "a tensor in bytes".into(), got: bytes, limit: self.ctx.limits.max_buffer_size });
        }
        Ok(Tensor::from_parts(shape, self.pool.get(bytes)))
    }
}

impl Backend for Gpu {
    type Storage = GpuBuffer;

    fn name(&self) -> String {
        format!("gpu ({}, {:?})", self.ctx.info.name, self.ctx.info.backend)
    }

    fn zeros(&self, shape: &[usize]) -> Result<GpuTensor> {
        let t = self.alloc(shape)?;
        self.clear(&t);
        Ok(t)
    }

    fn upload(&self, shape: &[usize], data: &[f32]) -> Result<GpuTensor> {
        let mut t = self.alloc(shape)?;
        self.write(&mut t, data)?;
        Ok(t)
    }

    fn write(&self, t: &mut GpuTensor, data: &[f32]) -> Result<()> {
        ops::same_shape("write", &[("tensor", &[t.numel()]), ("data", &[data.len()])])?;
        // Commands recorded before this write must see the old contents: submit them first
        // (queue writes take effect before the *next* submission).
        let mut rec = self.lock();
        if rec.encoder.is_some() {
            self.flush_locked(&mut rec)?;
        }
        if !data.is_empty() {
            self.ctx.queue.write_buffer(t.storage.buffer(), t.storage.offset(), bytemuck::cast_slice(data));
        }
        Ok(())
    }

    fn download(&self, t: &GpuTensor) -> Result<Vec<f32>> {
        let bytes = t.numel() as u64 * 4;
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = self.staging.get(bytes);
        let index = {
            let mut rec = self.lock();
            self.encoder_locked(&mut rec).copy_buffer_to_buffer(t.storage.buffer(), t.storage.offset(), staging.buffer(), 0, bytes);
            self.flush_locked(&mut rec)?
        };
        let (tx, rx) = mpsc::channel();
        staging.buffer().slice(..bytes).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait(index)?;
        rx.recv()
            .map_err(|_| Error::Gpu { context: "reading back a tensor".into(), message: "map callback never ran".into() })?
            .map_err(|e| Error::Gpu { context: "reading back a tensor".into(), message: e.to_string() })?;
        let out = {
            let view = staging
                .buffer()
                .slice(..bytes)
                .get_mapped_range()
                .map_err(|e| Error::Gpu { context: "reading back a tensor".into(), message: e.to_string() })?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        staging.buffer().unmap();
        Ok(out)
    }

    fn arena(&self, shapes: &[Vec<usize>]) -> Result<Vec<GpuTensor>> {
        let align = (self.ctx.limits.min_storage_buffer_offset_alignment as usize).max(16) / 4;
        let mut offsets = Vec::with_capacity(shapes.len());
        let mut total = 0usize;
        for s in shapes {
            offsets.push(total);
            total += numel(s).next_multiple_of(align).max(align);
        }
        let whole = self.zeros(&[total])?;
        Ok(shapes
            .iter()
            .zip(offsets)
            .map(|(s, off)| Tensor::from_parts(s, whole.storage.view(off as u64 * 4, numel(s) as u64 * 4)))
            .collect())
    }

    fn optimizer_step_all(
        &self,
        opt: &Optimizer,
        t: u64,
        params: &mut [GpuTensor],
        grads: &[GpuTensor],
        s1: &mut [GpuTensor],
        s2: &mut [GpuTensor],
    ) -> Result<()> {
        ops::same_len("optimizer_step_all", &[params.len(), grads.len(), s1.len(), s2.len()])?;
        opt.validate()?;
        let used = opt.state_tensors();
        // One dispatch when every list is one arena laid out alike (padding included: it is
        // zero in all of them and stays zero); otherwise one per tensor.
        let fused = || -> Option<[GpuTensor; 4]> {
            let state = |list: &[GpuTensor], needed: bool| -> Option<GpuTensor> {
                if !needed {
                    return self.alloc(&[1]).ok(); // placeholder, never touched
                }
                if same_layout(params, list) {
                    span(list)
                } else {
                    None
                }
            };
            if !same_layout(params, grads) {
                return None;
            }
            Some([span(params)?, span(grads)?, state(s1, used >= 1)?, state(s2, used >= 2)?])
        };
        if let Some([p, g, a, b]) = fused() {
            return self.optimizer_step_impl(opt, t, p.numel(), &p, &g, &a, &b);
        }
        for (((p, g), a), b) in params.iter_mut().zip(grads).zip(s1.iter_mut()).zip(s2.iter_mut()) {
            self.optimizer_step(opt, t, p, g, a, b)?;
        }
        Ok(())
    }

    fn clip_grad_norm_all(&self, grads: &mut [GpuTensor], max_norm: f32, sumsq: &mut GpuTensor) -> Result<()> {
        ops::scalar_out("clip_grad_norm_all", &[1], sumsq.shape())?;
        match span(grads) {
            Some(all) => self.clip_impl(&all, max_norm, sumsq),
            None => Err(Error::Invalid("clip_grad_norm_all: the gradients must come from one arena".into())),
        }
    }

    fn sync(&self) -> Result<()> {
        let index = {
            let mut rec = self.lock();
            self.flush_locked(&mut rec)?
        };
        self.wait(index)
    }

    fn matmul(&self, a: &GpuTensor, b: &GpuTensor, c: &mut GpuTensor, spec: MatmulSpec) -> Result<()> {
        self.matmul_with(self.matmul_variant, a, b, c, spec)
    }

    fn conv2d(&self, x: &GpuTensor, w: &GpuTensor, bias: Option<&GpuTensor>, y: &mut GpuTensor, spec: Conv2dSpec) -> Result<()> {
        let d = ops::conv2d_check("conv2d", x.shape(), w.shape(), y.shape(), spec)?;
        if let Some(b) = bias {
            ops::expect_shape("conv2d", "bias", b.shape(), &[d.k])?;
        }
        self.conv2d_impl(x, w, bias, y, &d)
    }

    fn conv2d_backward_data(&self, dy: &GpuTensor, w: &GpuTensor, dx: &mut GpuTensor, spec: Conv2dSpec) -> Result<()> {
        let d = ops::conv2d_check("conv2d_backward_data", dx.shape(), w.shape(), dy.shape(), spec)?;
        self.conv2d_backward_data_impl(dy, w, dx, &d)
    }

    fn conv2d_backward_filter(&self, x: &GpuTensor, dy: &GpuTensor, dw: &mut GpuTensor, spec: Conv2dSpec) -> Result<()> {
        let d = ops::conv2d_check("conv2d_backward_filter", x.shape(), dw.shape(), dy.shape(), spec)?;
        self.conv2d_backward_filter_impl(x, dy, dw, &d)
    }

    fn max_pool2d(&self, x: &GpuTensor, y: &mut GpuTensor, idx: &mut GpuTensor, spec: PoolSpec) -> Result<()> {
        let d = ops::pool_check("max_pool2d", x.shape(), &[("y", y.shape()), ("idx", idx.shape())], spec)?;
        self.max_pool_impl(x, y, idx, &d)
    }

    fn max_pool2d_backward(&self, dy: &GpuTensor, idx: &GpuTensor, dx: &mut GpuTensor, spec: PoolSpec) -> Result<()> {
        let d = ops::pool_check("max_pool2d_backward", dx.shape(), &[("dy", dy.shape()), ("idx", idx.shape())], spec)?;
        self.max_pool_backward_impl(dy, idx, dx, &d)
    }

    fn avg_pool2d(&self, x: &GpuTensor, y: &mut GpuTensor, spec: PoolSpec) -> Result<()> {
        let d = ops::pool_check("avg_pool2d", x.shape(), &[("y", y.shape())], spec)?;
        self.avg_pool_impl(x, y, &d)
    }

    fn avg_pool2d_backward(&self, dy: &GpuTensor, dx: &mut GpuTensor, spec: PoolSpec) -> Result<()> {
        let d = ops::pool_check("avg_pool2d_backward", dx.shape(), &[("dy", dy.shape())], spec)?;
        self.avg_pool_backward_impl(dy, dx, &d)
    }

    fn global_avg_pool(&self, x: &GpuTensor, y: &mut GpuTensor) -> Result<()> {
        let (planes, hw) = ops::global_pool_dims("global_avg_pool", x.shape(), y.shape())?;
        self.global_avg_impl(x, y, planes, hw, false)
    }

    fn global_avg_pool_backward(&self, dy: &GpuTensor, dx: &mut GpuTensor) -> Result<()> {
        let (planes, hw) = ops::global_pool_dims("global_avg_pool_backward", dx.shape(), dy.shape())?;
        self.global_avg_impl(dy, dx, planes, hw, true)
    }

    fn batch_norm_train(
        &self,
        x: &GpuTensor,
        gamma: &GpuTensor,
        beta: &GpuTensor,
        running_mean: &mut GpuTensor,
        running_var: &mut GpuTensor,
        y: &mut GpuTensor,
        save_mean: &mut GpuTensor,
        save_invstd: &mut GpuTensor,
        momentum: f32,
        eps: f32,
    ) -> Result<()> {
        let dims = ops::batch_norm_check(
            "batch_norm",
            x.shape(),
            y.shape(),
            &[
                ("gamma", gamma.shape()),
                ("beta", beta.shape()),
                ("running_mean", running_mean.shape()),
                ("running_var", running_var.shape()),
                ("save_mean", save_mean.shape()),
                ("save_invstd", save_invstd.shape()),
            ],
            true,
        )?;
        self.batch_norm_train_impl(x, gamma, beta, running_mean, running_var, y, save_mean, save_invstd, dims, momentum, eps)
    }

    fn batch_norm_eval(
        &self,
        x: &GpuTensor,
        gamma: &GpuTensor,
        beta: &GpuTensor,
        running_mean: &GpuTensor,
        running_var: &GpuTensor,
        y: &mut GpuTensor,
        eps: f32,
    ) -> Result<()> {
        let dims = ops::batch_norm_check(
            "batch_norm",
            x.shape(),
            y.shape(),
            &[
                ("gamma", gamma.shape()),
                ("beta", beta.shape()),
                ("running_mean", running_mean.shape()),
                ("running_var", running_var.shape()),
            ],
            false,
        )?;
        self.batch_norm_eval_impl(x, gamma, beta, running_mean, running_var, y, dims, eps)
    }

    fn batch_norm_backward(
        &self,
        x: &GpuTensor,
        dy: &GpuTensor,
        gamma: &GpuTensor,
        save_mean: &GpuTensor,
        save_invstd: &GpuTensor,
        dx: &mut GpuTensor,
        dgamma: &mut GpuTensor,
        dbeta: &mut GpuTensor,
    ) -> Result<()> {
        ops::expect_shape("batch_norm_backward", "dy", dy.shape(), x.shape())?;
        let dims = ops::batch_norm_check(
            "batch_norm_backward",
            x.shape(),
            dx.shape(),
            &[
                ("gamma", gamma.shape()),
                ("save_mean", save_mean.shape()),
                ("save_invstd", save_invstd.shape()),
                ("dgamma", dgamma.shape()),
                ("dbeta", dbeta.shape()),
            ],
            true,
        )?;
        self.batch_norm_backward_impl(x, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta, dims)
    }

    fn cross_entropy(
        &self,
        logits: &GpuTensor,
        target: CeTarget<'_, GpuBuffer>,
        label_smoothing: f32,
        loss: &mut GpuTensor,
        grad: &mut GpuTensor,
    ) -> Result<()> {
        let (t, soft) = match target {
            CeTarget::Labels(t) => (t, false),
            CeTarget::Probs(t) => (t, true),
        };
        let dims = ops::cross_entropy_check(logits.shape(), t.shape(), soft, label_smoothing, loss.shape(), grad.shape())?;
        self.cross_entropy_impl(logits, t, soft, dims, label_smoothing, loss, grad)
    }

    fn argmax_rows(&self, x: &GpuTensor, out: &mut GpuTensor) -> Result<()> {
        let dims = ops::rows_check("argmax_rows", x.shape(), out.shape())?;
        self.argmax_impl(x, None, dims, out)
    }

    fn correct_rows(&self, logits: &GpuTensor, labels: &GpuTensor, out: &mut GpuTensor) -> Result<()> {
        let dims = ops::rows_check("correct_rows", logits.shape(), out.shape())?;
        ops::expect_shape("correct_rows", "labels", labels.shape(), &[dims.0])?;
        self.argmax_impl(logits, Some(labels), dims, out)
    }

    fn bias_act(&self, y: &mut GpuTensor, bias: &GpuTensor, act: Activation) -> Result<()> {
        let (_, c, p) = ops::channels("bias_act", y.shape(), bias.numel())?;
        self.bias_act_impl(y, bias, (c, p), act)
    }

    fn act_backward(&self, y: &GpuTensor, dy: &GpuTensor, dz: &mut GpuTensor, act: Activation) -> Result<()> {
        ops::same_shape("act_backward", &[("y", y.shape()), ("dy", dy.shape()), ("dz", dz.shape())])?;
        self.act_backward_impl(y, dy, dz, act)
    }

    fn channel_sum(&self, a: &GpuTensor, out: &mut GpuTensor) -> Result<()> {
        let dims = ops::channels("channel_sum", a.shape(), out.numel())?;
        self.channel_reduce(&kernels::CHANNEL_SUM, a, None, None, dims, 1.0, out)
    }

    fn add(&self, a: &GpuTensor, b: &GpuTensor, out: &mut GpuTensor) -> Result<()> {
        let n = ops::same_shape("add", &[("a", a.shape()), ("b", b.shape()), ("out", out.shape())])?;
        self.elementwise("add", &kernels::ADD, n, &[a, b], out, 0.0)
    }

    fn mul(&self, a: &GpuTensor, b: &GpuTensor, out: &mut GpuTensor) -> Result<()> {
        let n = ops::same_shape("mul", &[("a", a.shape()), ("b", b.shape()), ("out", out.shape())])?;
        self.elementwise("mul", &kernels::MUL, n, &[a, b], out, 0.0)
    }

    fn copy(&self, x: &GpuTensor, y: &mut GpuTensor) -> Result<()> {
        let n = ops::same_shape("copy", &[("x", &[x.numel()]), ("y", &[y.numel()])])?;
        // out = 1 * x is exact.
        self.elementwise("copy", &kernels::SCALE, n, &[x], y, 1.0)
    }

    fn scale(&self, a: &GpuTensor, alpha: f32, out: &mut GpuTensor) -> Result<()> {
        let n = ops::same_shape("scale", &[("a", a.shape()), ("out", out.shape())])?;
        self.elementwise("scale", &kernels::SCALE, n, &[a], out, alpha)
    }

    fn relu(&self, x: &GpuTensor, y: &mut GpuTensor) -> Result<()> {
        let n = ops::same_shape("relu", &[("x", x.shape()), ("y", y.shape())])?;
        self.elementwise("relu", &kernels::RELU_FORWARD, n, &[x], y, 0.0)
    }

    fn relu_backward(&self, x: &GpuTensor, dy: &GpuTensor, dx: &mut GpuTensor) -> Result<()> {
        let n = ops::same_shape("relu_backward", &[("x", x.shape()), ("dy", dy.shape()), ("dx", dx.shape())])?;
        self.elementwise("relu_backward", &kernels::RELU_BACKWARD, n, &[x, dy], dx, 0.0)
    }

    fn dropout(&self, x: &GpuTensor, out: &mut GpuTensor, mask: &DropoutMask) -> Result<()> {
        ops::same_shape("dropout", &[("x", x.shape()), ("out", out.shape())])?;
        if x.numel() as u64 > u32::MAX as u64 {
            return Err(Error::Limit {
                op: "dropout",
                what: "elements (mask indices are u32)".into(),
                got: x.numel() as u64,
                limit: u32::MAX as u64,
            });
        }
        self.dropout_impl(x, out, mask)
    }

    fn sum(&self, x: &GpuTensor, out: &mut GpuTensor) -> Result<()> {
        ops::scalar_out("sum", x.shape(), out.shape())?;
        self.sum_into(x, out, false)
    }

    fn sum_squares(&self, x: &GpuTensor, out: &mut GpuTensor) -> Result<()> {
        ops::scalar_out("sum_squares", x.shape(), out.shape())?;
        self.sum_into(x, out, true)
    }

    fn optimizer_step(
        &self,
        opt: &Optimizer,
        t: u64,
        param: &mut GpuTensor,
        grad: &GpuTensor,
        s1: &mut GpuTensor,
        s2: &mut GpuTensor,
    ) -> Result<()> {
        let n = ops::optimizer_shapes(opt, param.shape(), grad.shape(), s1.shape(), s2.shape())?;
        self.optimizer_step_impl(opt, t, n, param, grad, s1, s2)
    }

    fn clip_grad_norm(&self, grad: &mut GpuTensor, max_norm: f32, sumsq: &mut GpuTensor) -> Result<()> {
        ops::scalar_out("clip_grad_norm", grad.shape(), sumsq.shape())?;
        self.clip_impl(grad, max_norm, sumsq)
    }
}

/// One tensor covering a list of views of one buffer, from the first's start to the last's
/// end (padding between them included), if the list is such a list in increasing order.
fn span(list: &[GpuTensor]) -> Option<GpuTensor> {
    let first = list.first()?;
    let last = list.last()?;
    let ordered = list
        .windows(2)
        .all(|w| w[0].storage.same_buffer(&w[1].storage) && w[0].storage.offset() + w[0].storage.bytes() <= w[1].storage.offset());
    if !ordered {
        return None;
    }
    let bytes = last.storage.offset() + last.storage.bytes() - first.storage.offset();
    Some(Tensor::from_parts(&[(bytes / 4) as usize], first.storage.view(0, 0).widen(bytes)))
}

/// Whether two lists have the same relative layout in their buffers.
fn same_layout(a: &[GpuTensor], b: &[GpuTensor]) -> bool {
    let rel = |l: &[GpuTensor]| -> Vec<(u64, u64)> {
        l.iter().map(|t| (t.storage.offset() - l[0].storage.offset(), t.storage.bytes())).collect()
    };
    a.len() == b.len() && rel(a) == rel(b)
}

/// Splits a grid of workgroups into dispatches of at most `max` per dimension:
/// returns (first workgroup, workgroup count) per dispatch.
pub fn split_grid(groups: [u32; 3], max: u32) -> Vec<([u32; 3], [u32; 3])> {
    let spans = |total: u32| -> Vec<(u32, u32)> { (0..total.div_ceil(max)).map(|i| (i * max, (total - i * max).min(max))).collect() };
    let mut out = Vec::new();
    for &(z0, zn) in &spans(groups[2]) {
        for &(y0, yn) in &spans(groups[1]) {
            for &(x0, xn) in &spans(groups[0]) {
                out.push(([x0, y0, z0], [xn, yn, zn]));
            }
        }
    }
    out
}
