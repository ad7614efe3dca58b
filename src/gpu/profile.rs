//! Per-kernel GPU time. With profiling on ([`GpuOptions::profile`](super::GpuOptions)), every
//! dispatch runs in its own compute pass whose start and end write timestamp queries (where the
//! adapter offers `TIMESTAMP_QUERY`); the queries are resolved and read back at each
//! submission. Where the adapter has no timestamps, each dispatch is submitted alone and timed
//! on the host from submission to completion (which includes the submission's overhead).
//! With profiling off nothing of this runs: the recorder checks one `Option`.

use std::time::Instant;

use super::recorder::Recorder;
use super::Gpu;
use crate::{Error, Result};

/// One dispatch's time.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KernelTime {
    /// The op that recorded it (`matmul`, `conv2d im2col`, `relu`, ...).
    pub op: &'static str,
    /// The layer it belonged to (`layers.3`), or `""` outside any.
    pub layer: String,
    /// `forward`, `backward`, `loss`, `optimizer`, or `""`.
    pub phase: &'static str,
    /// Seconds on the device.
    pub seconds: f64,
    /// When it started, in seconds from an arbitrary origin fixed for the device: on the
    /// device's clock (timestamps) or the host's (host timing). The gaps between one dispatch's
    /// end and the next one's start are time the device spent on no kernel of the step.
    pub start: f64,
}

/// How the times were taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ProfileMethod {
    /// GPU timestamp queries around each dispatch.
    Timestamps,
    /// Host time from submitting each dispatch alone to its completion.
    HostPerSubmission,
}

impl ProfileMethod {
    /// For people.
    pub fn describe(self) -> &'static str {
        match self {
            ProfileMethod::Timestamps => "GPU timestamp queries around each dispatch",
            ProfileMethod::HostPerSubmission => "host time per dispatch, each submitted alone (no timestamp queries on this adapter)",
        }
    }
}

/// Timestamp queries in flight.
pub(crate) struct Timestamps {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// Dispatches the query set holds (two queries each).
    capacity: usize,
    period_ns: f64,
}

/// The profiler's state, kept in the recorder.
pub(crate) struct Profiler {
    timestamps: Option<Timestamps>,
    scope: (String, &'static str),
    /// Labels of the dispatches whose queries are recorded and not yet read.
    pending: Vec<(&'static str, String, &'static str)>,
    done: Vec<KernelTime>,
    /// The origin of host-timed starts.
    opened: Instant,
}

impl Profiler {
    pub(crate) fn new(gpu: &Gpu) -> Self {
        let timestamps = gpu.ctx.device.features().contains(wgpu::Features::TIMESTAMP_QUERY).then(|| {
            let capacity = 1024usize;
            let bytes = (capacity * 2 * 8) as u64;
            let device = &gpu.ctx.device;
            Timestamps {
                set: device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("kernel timestamps"),
                    ty: wgpu::QueryType::Timestamp,
                    count: (capacity * 2) as u32,
                }),
                resolve: device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("timestamp resolve"),
                    size: bytes,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }),
                readback: device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("timestamp read-back"),
                    size: bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
                capacity,
                period_ns: f64::from(gpu.ctx.queue.get_timestamp_period()),
            }
        });
        Self { timestamps, scope: (String::new(), ""), pending: Vec::new(), done: Vec::new(), opened: Instant::now() }
    }

    pub(crate) fn method(&self) -> ProfileMethod {
        if self.timestamps.is_some() {
            ProfileMethod::Timestamps
        } else {
            ProfileMethod::HostPerSubmission
        }
    }
}

impl Gpu {
    /// Whether this device was opened with profiling on.
    pub fn profiling(&self) -> bool {
        self.lock().profiler.is_some()
    }

    /// How this device's profile is taken, when profiling is on.
    pub fn profile_method(&self) -> Option<ProfileMethod> {
        self.lock().profiler.as_ref().map(Profiler::method)
    }

    /// Names the work recorded next, for the profile (see `Backend::profile_scope`).
    pub(crate) fn set_profile_scope(&self, layer: &str, phase: &'static str) {
        if !self.profiled.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        if let Some(p) = self.lock().profiler.as_mut() {
            p.scope.0.clear();
            p.scope.0.push_str(layer);
            p.scope.1 = phase;
        }
    }

    /// Waits for everything recorded and returns the time of every dispatch since the last
    /// call (or since the device was opened), in order.
    pub fn take_profile(&self) -> Result<Vec<KernelTime>> {
        crate::Backend::sync(self)?;
        let mut rec = self.lock();
        let p = rec.profiler.as_mut().ok_or_else(|| Error::Invalid("take_profile: the GPU was opened without profiling".into()))?;
        Ok(std::mem::take(&mut p.done))
    }

    /// Before a profiled dispatch takes its parameter slot: submit when the query set is full
    /// (timestamps), or submit and wait for everything before it (host timing).
    pub(crate) fn before_profiled_dispatch(&self, rec: &mut Recorder) -> Result<()> {
        let Some(p) = rec.profiler.as_ref() else { return Ok(()) };
        match &p.timestamps {
            Some(t) if p.pending.len() < t.capacity => Ok(()),
            Some(_) => self.flush_locked(rec).map(|_| ()),
            None => self.flush_and_wait_locked(rec),
        }
    }

    /// Records `dispatch` (which records one dispatch into the given pass) timed: in its own
    /// pass between two timestamps, or submitted alone and waited for.
    pub(crate) fn dispatch_profiled(
        &self,
        rec: &mut Recorder,
        op: &'static str,
        dispatch: impl FnOnce(&mut wgpu::ComputePass<'_>),
    ) -> Result<()> {
        let Some(p) = rec.profiler.as_mut() else { return Err(Error::Invalid("dispatch_profiled without a profiler".into())) };
        let label = (op, p.scope.0.clone(), p.scope.1);
        match &p.timestamps {
            Some(t) => {
                let i = p.pending.len() as u32;
                let set = t.set.clone();
                p.pending.push(label);
                let enc = self.encoder_locked(rec);
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(op),
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: &set,
                        beginning_of_pass_write_index: Some(2 * i),
                        end_of_pass_write_index: Some(2 * i + 1),
                    }),
                });
                dispatch(&mut pass);
                Ok(())
            }
            None => {
                // Everything before this dispatch was waited for (`before_profiled_dispatch`).
                {
                    let enc = self.encoder_locked(rec);
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(op), timestamp_writes: None });
                    dispatch(&mut pass);
                }
                let t0 = Instant::now();
                self.flush_and_wait_locked(rec)?;
                let (op, layer, phase) = label;
                if let Some(p) = rec.profiler.as_mut() {
                    let start = t0.duration_since(p.opened).as_secs_f64();
                    p.done.push(KernelTime { op, layer, phase, seconds: t0.elapsed().as_secs_f64(), start });
                }
                Ok(())
            }
        }
    }

    fn flush_and_wait_locked(&self, rec: &mut Recorder) -> Result<()> {
        let index = self.flush_locked(rec)?;
        self.wait(index)
    }

    /// Before a submission with pending timestamps: resolve them into the read-back buffer.
    pub(crate) fn resolve_timestamps_locked(&self, rec: &mut Recorder) -> bool {
        let Some(p) = rec.profiler.as_ref() else { return false };
        let (Some(t), n) = (&p.timestamps, p.pending.len()) else { return false };
        if n == 0 {
            return false;
        }
        let (set, resolve, readback) = (t.set.clone(), t.resolve.clone(), t.readback.clone());
        let enc = self.encoder_locked(rec);
        enc.resolve_query_set(&set, 0..(2 * n) as u32, &resolve, 0);
        enc.copy_buffer_to_buffer(&resolve, 0, &readback, 0, (16 * n) as u64);
        true
    }

    /// After that submission: wait for it and turn the timestamps into times.
    pub(crate) fn read_timestamps_locked(&self, rec: &mut Recorder, index: Option<wgpu::SubmissionIndex>) -> Result<()> {
        self.wait(index)?;
        let Some(p) = rec.profiler.as_mut() else { return Ok(()) };
        let Some(t) = &p.timestamps else { return Ok(()) };
        let n = p.pending.len();
        let slice = t.readback.slice(..(16 * n) as u64);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait(None)?;
        rx.recv()
            .map_err(|e| Error::Gpu { context: "reading timestamps".into(), message: e.to_string() })?
            .map_err(|e| Error::Gpu { context: "reading timestamps".into(), message: e.to_string() })?;
        let ticks: Vec<u64> = {
            let view = slice.get_mapped_range().map_err(|e| Error::Gpu { context: "reading timestamps".into(), message: e.to_string() })?;
            bytemuck::cast_slice::<u8, u64>(&view).to_vec()
        };
        t.readback.unmap();
        let period = t.period_ns;
        for (i, (op, layer, phase)) in p.pending.drain(..).enumerate() {
            let (a, b) = (ticks[2 * i], ticks[2 * i + 1]);
            let (seconds, start) = (b.saturating_sub(a) as f64 * period * 1e-9, a as f64 * period * 1e-9);
            p.done.push(KernelTime { op, layer, phase, seconds, start });
        }
        Ok(())
    }
}
