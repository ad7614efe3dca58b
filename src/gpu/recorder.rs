//! The recorder: how ops become GPU work. Each op appends a dispatch to one open compute pass,
//! with its parameters written into a per-submission uniform arena (one slot per dispatch,
//! bound at a dynamic offset) and its bind group taken from a cache keyed by buffer identity
//! and byte range. Nothing is submitted until the host needs a result (`download`, `sync`) or
//! writes a buffer (`write`), so a training step is one submission and the host never waits
//! inside it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, MutexGuard};

use super::kernels::{KernelParams, Pipeline};
use super::{Gpu, GpuBuffer, GpuTensor, PARAM_SLOTS};
use crate::{Error, Result};

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

pub(crate) type BindKey = (u64, Vec<(u64, u64, u64)>);

/// What has been recorded and not yet submitted.
#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) encoder: Option<wgpu::CommandEncoder>,
    pub(crate) pass: Option<wgpu::ComputePass<'static>>,
    pub(crate) params: Vec<u8>,
    pub(crate) dispatches: u64,
    pub(crate) bind_groups: HashMap<BindKey, wgpu::BindGroup>,
    /// Per-dispatch timing, when the device was opened with profiling.
    pub(crate) profiler: Option<super::profile::Profiler>,
}

impl Gpu {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Recorder> {
        self.rec.lock().unwrap_or_else(|p| p.into_inner())
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
        if rec.profiler.is_some() {
            // Before this dispatch's parameters take a slot: a submission here reuses the slots.
            self.before_profiled_dispatch(&mut rec)?;
        }
        if rec.params.len() as u64 + self.slot > self.slot * PARAM_SLOTS {
            self.flush_locked(&mut rec)?;
        }
        let offset = rec.params.len() as u32;
        rec.params.extend_from_slice(bytes);
        self.cache.dispatched(pipeline, bytes);
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
        let record = |pass: &mut wgpu::ComputePass<'_>| {
            pass.set_pipeline(&pipeline.pipeline);
            pass.set_bind_group(0, &bg, &[offset]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        };
        if rec.profiler.is_some() {
            self.dispatch_profiled(&mut rec, op, record)?;
        } else {
            record(self.pass_locked(&mut rec));
        }
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

    pub(crate) fn encoder_locked<'r>(&self, rec: &'r mut Recorder) -> &'r mut wgpu::CommandEncoder {
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
    pub(crate) fn flush_locked(&self, rec: &mut Recorder) -> Result<Option<wgpu::SubmissionIndex>> {
        rec.pass = None;
        let timestamps = rec.profiler.is_some() && self.resolve_timestamps_locked(rec);
        let Some(encoder) = rec.encoder.take() else {
            return Ok(None);
        };
        if !rec.params.is_empty() {
            self.ctx.queue.write_buffer(&self.arena, 0, &rec.params);
            rec.params.clear();
        }
        rec.dispatches = 0;
        let index = self.ctx.scoped("submitting recorded kernels", || self.ctx.queue.submit([encoder.finish()]))?;
        if let Some(ahead) = &self.ahead {
            // The pairs this submission is the first to use: the helper compiles them from the
            // last while the queue compiles from the first (see gpu::ahead).
            let fresh = self.cache.take_fresh();
            if fresh.len() >= super::ahead::MIN_BATCH {
                if ahead.retired() {
                    self.cache.stop_tracking();
                } else {
                    let done = Arc::new(AtomicBool::new(false));
                    let flag = done.clone();
                    self.ctx.queue.on_submitted_work_done(move || flag.store(true, Ordering::Release));
                    ahead.compile(fresh, done);
                }
            }
        }
        self.submissions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if timestamps {
            self.read_timestamps_locked(rec, Some(index.clone()))?;
        }
        Ok(Some(index))
    }

    /// Submits recorded work without waiting for it.
    pub fn flush(&self) -> Result<()> {
        let mut rec = self.lock();
        self.flush_locked(&mut rec).map(|_| ())
    }

    pub(crate) fn wait(&self, index: Option<wgpu::SubmissionIndex>) -> Result<()> {
        self.ctx
            .device
            .poll(wgpu::PollType::Wait { submission_index: index, timeout: None })
            .map_err(|e| Error::Gpu { context: "waiting for the device".into(), message: e.to_string() })?;
        super::exit::work_done();
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
}
