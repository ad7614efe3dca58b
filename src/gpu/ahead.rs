//! Compiling ahead where the driver compiles late.
//!
//! lavapipe (Mesa's llvmpipe) turns a compute pipeline into machine code at its first
//! dispatch, on the queue's one thread, not when the pipeline is created. A fresh process
//! therefore spends its first training step compiling 30-40 pipelines one after another on one
//! core, about 2 s on the 2-core machine of BENCHMARKS.md, while the other cores wait.
//!
//! When a submission brings two or more new (pipeline, parameters) pairs, the helper here
//! builds the same pipelines on a second device of the same adapter and dispatches each once
//! with the same parameters and no workgroups, which is enough for llvmpipe to compile it. It
//! works from the end of the list while the queue compiles from the start. Each pipeline it
//! finishes lands in Mesa's shader cache, where the queue's first dispatch of it finds the
//! machine code instead of compiling it again. Nothing tells either side where the other has
//! got to: around the middle both may compile the same kernel. The helper skips the pairs of a
//! submission that has finished (known at the main device's next poll), and retires for good
//! once three new pipelines in a row turn out to be compiled already (the queue got there
//! first, or the cache was warm): from then on nothing is tracked or handed over.
//!
//! It is used only on llvmpipe, where compiling late was measured, and only where a cache
//! looks cold: Mesa's shader cache is absent or empty, or the kernel cache
//! (`gpu::autotune`) has no entry for this adapter and driver yet. Where the shader cache is
//! warm after all, the helper finds its first pipelines compiled and leaves. It is not used
//! where Mesa's shader cache is switched off (`MESA_SHADER_CACHE_DISABLE`), nor with
//! `WGTRAIN_SERIAL_COMPILE=1` or `GpuOptions::serial_compile`. Drivers that compile when a
//! pipeline is created gain nothing from it. The helper opens its device when the `Gpu` opens
//! its own; it is joined when the `Gpu` is dropped, and stopped at process exit (`gpu::exit`)
//! when the `Gpu` never is.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use super::context::{GpuContext, GpuOptions};
use super::kernels::{PipelineCache, PipelineRecipe};

/// A batch's pipelines are handed to the helper only from this many on: a single new
/// pipeline would be compiled twice at once, by the queue and by the helper.
pub(crate) const MIN_BATCH: usize = 2;
/// Storage bindings a kernel may have (the helper binds one small buffer to each).
const MAX_STORAGE: usize = 16;
/// A dispatch that compiles nothing (its machine code was in the shader cache) takes about a
/// millisecond on lavapipe; compiling the smallest kernel takes 10-20 ms.
const FOUND_SECONDS: f64 = 0.005;
/// Pipelines found compiled in a row after which the helper leaves the rest of the batch.
const FOUND_IN_A_ROW: usize = 3;
/// How long a helper out of work waits for another batch before it leaves with its device.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);
/// Helper threads that have not yet finished (their device closed), and its signal.
static LIVE: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

/// Waits until every helper thread has closed its device, or until `deadline`; whether all have.
pub(crate) fn wait_all(deadline: Instant) -> bool {
    let mut live = LIVE.0.lock().unwrap_or_else(|p| p.into_inner());
    while *live > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        live = LIVE.1.wait_timeout(live, left).unwrap_or_else(|p| p.into_inner()).0;
    }
    true
}

/// Stops a helper after the job it is on, without owning it.
pub(crate) struct Closer(std::sync::Weak<Shared>);

impl Closer {
    pub(crate) fn close(&self) {
        if let Some(shared) = self.0.upgrade() {
            shared.state.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
            shared.wake.notify_all();
        }
    }
}

/// Counts a helper thread as live from its start until it is dropped, after its device.
struct Live;

impl Live {
    fn new() -> Self {
        *LIVE.0.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        Live
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        *LIVE.0.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        LIVE.1.notify_all();
    }
}
/// Bytes of each placeholder buffer: at least any kernel's parameters and one array element.
const PLACEHOLDER_BYTES: u64 = 256;

/// Whether Mesa's on-disk shader cache has anything in it: the folder `mesa_shader_cache` (or
/// the newer single-file `mesa_shader_cache_db`) under `MESA_SHADER_CACHE_DIR`, else
/// `XDG_CACHE_HOME`, else `~/.cache`. Absent or empty means every kernel will be compiled.
pub(crate) fn shader_cache_present() -> bool {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
    env("MESA_SHADER_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME"))
        .or_else(|| env("HOME").map(|h| h.join(".cache")))
        .is_some_and(|base| shader_cache_in(&base))
}

/// Whether `base` holds a non-empty `mesa_shader_cache` folder or `mesa_shader_cache_db`.
fn shader_cache_in(base: &std::path::Path) -> bool {
    ["mesa_shader_cache", "mesa_shader_cache_db"].iter().any(|name| {
        let path = base.join(name);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => std::fs::read_dir(&path).is_ok_and(|mut entries| entries.next().is_some()),
            Ok(m) => m.len() > 0,
            Err(_) => false,
        }
    })
}

/// The helper: a queue of pipelines to compile and the thread that compiles them.
pub(crate) struct Ahead {
    /// How the helper opens its device: the `Gpu`'s features, without profiling.
    opts: GpuOptions,
    /// The `Gpu`'s adapter: name and backend (the helper finds its index).
    adapter: (String, String),
    shared: Arc<Shared>,
    /// The helper threads started and not yet joined (one runs at a time; one that has left
    /// may still be closing its device).
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    handed: AtomicU64,
    compiled: AtomicU64,
    failed: AtomicU64,
    /// 1 while the helper compiles a job it has taken.
    busy: AtomicU64,
}

/// What the compile-ahead helper of a `Gpu` has done so far (`Gpu::compile_ahead_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompileAheadStats {
    /// (pipeline, parameters) pairs handed to the helper.
    pub handed: u64,
    /// Of those, compiled (or found in the shader cache) on the helper's device.
    pub compiled: u64,
    /// Of those, failed on the helper's device (logged; the queue compiles them as ever).
    pub failed: u64,
}

#[derive(Default)]
struct State {
    /// Taken from the end: the last pipeline of the newest batch first.
    jobs: Vec<Job>,
    /// Whether a helper thread is running (it leaves when it has run out of work).
    running: bool,
    /// The `Gpu` is gone.
    closed: bool,
    /// The helper found kernels compiled already, or could not open its device: no more jobs.
    retired: bool,
}

struct Job {
    recipe: PipelineRecipe,
    /// Set when the main device learns (at a poll) that the submission that first uses the
    /// pair has finished: the queue compiled it.
    done: Arc<AtomicBool>,
}

impl Ahead {
    /// The helper for a device opened with `opts` on adapter `ctx`, where it can help. Its
    /// thread starts now and opens its device while this one goes on (the first batch, an
    /// autotune's candidates or a first step, comes soon after).
    pub(crate) fn for_device(ctx: &GpuContext, opts: &GpuOptions) -> Option<Self> {
        let off =
            |name: &str| std::env::var(name).is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "y" | "yes"));
        let compiles_late = ctx.is_cpu_adapter() && ctx.info.driver.to_ascii_lowercase().contains("llvmpipe");
        if !compiles_late || opts.serial_compile || off("WGTRAIN_SERIAL_COMPILE") || off("MESA_SHADER_CACHE_DISABLE") {
            return None;
        }
        let opts = GpuOptions { device: None, profile: false, ..opts.clone() };
        let adapter = (ctx.info.name.clone(), format!("{:?}", ctx.info.backend));
        let ahead = Self { opts, adapter, shared: Arc::default(), threads: Mutex::default() };
        let mut state = ahead.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        ahead.start(&mut state);
        drop(state);
        Some(ahead)
    }

    /// Hands over the pipelines a submission brings (in the order it uses them); `done` is set
    /// when that submission has finished.
    pub(crate) fn compile(&self, batch: Vec<PipelineRecipe>, done: Arc<AtomicBool>) {
        if batch.len() < MIN_BATCH {
            return;
        }
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.retired || state.closed {
            return;
        }
        self.shared.handed.fetch_add(batch.len() as u64, Ordering::Relaxed);
        state.jobs.extend(batch.into_iter().map(|recipe| Job { recipe, done: done.clone() }));
        if state.running {
            self.shared.wake.notify_one();
        } else {
            self.start(&mut state);
        }
    }

    /// What stops this helper at process exit, when the `Gpu` is never dropped (`gpu::exit`).
    pub(crate) fn closer(&self) -> Closer {
        Closer(Arc::downgrade(&self.shared))
    }

    fn start(&self, state: &mut State) {
        let (opts, adapter, shared) = (self.opts.clone(), self.adapter.clone(), self.shared.clone());
        // Counted before the thread starts, so that an exit right after sees it.
        let live = Live::new();
        let run = move || {
            let _live = live;
            helper(opts, adapter, shared)
        };
        match std::thread::Builder::new().name("wgtrain-compile-ahead".into()).spawn(run) {
            Ok(handle) => {
                state.running = true;
                let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
                threads.retain(|t| !t.is_finished());
                threads.push(handle);
            }
            Err(e) => {
                log::debug!("no thread for compiling ahead: {e}");
                state.jobs.clear();
            }
        }
    }
}

impl Ahead {
    /// Whether the helper has retired (see the module): nothing more is worth tracking.
    pub(crate) fn retired(&self) -> bool {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner()).retired
    }

    /// What the helper has done so far.
    pub(crate) fn stats(&self) -> CompileAheadStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CompileAheadStats { handed: load(&self.shared.handed), compiled: load(&self.shared.compiled), failed: load(&self.shared.failed) }
    }

    /// Waits until the helper has no work left (or `timeout` has passed); whether it has none.
    pub(crate) fn wait_idle(&self, timeout: std::time::Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
            if !state.running || state.jobs.is_empty() && self.shared.busy.load(Ordering::Acquire) == 0 {
                return true;
            }
            drop(state);
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

impl Drop for Ahead {
    /// Stops the helper after the job it is on, and waits for it: a thread still compiling
    /// while the process exits would crash in the driver's teardown.
    fn drop(&mut self) {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.shared.wake.notify_all();
        for thread in self.threads.get_mut().unwrap_or_else(|p| p.into_inner()).drain(..) {
            let _ = thread.join();
        }
    }
}

/// The helper thread: opens its device, compiles jobs until it has done some and none are
/// left for a second, then leaves; its device and pipelines go with it (about 25 MB on lavapipe after the
/// default CNN's first step), and the next batch starts a new one. It retires instead when it
/// finds kernels compiled already or cannot open its device.
fn helper(opts: GpuOptions, adapter: (String, String), shared: Arc<Shared>) {
    /// Marks the helper stopped if it panics, so that `wait_idle` and later batches do not
    /// wait for it (every other way out says so itself, under the lock where it decides).
    struct OnPanic<'a>(&'a Shared);
    impl Drop for OnPanic<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.busy.store(0, Ordering::Release);
                let mut state = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
                state.running = false;
                state.retired = true;
            }
        }
    }
    let _on_panic = OnPanic(&shared);
    let retire = |why: &str| {
        log::debug!("compiling ahead: {why}; no more");
        let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        state.retired = true;
        state.running = false;
        state.jobs.clear();
    };
    // The same adapter as the `Gpu`'s, by index: its name alone may match an adapter of
    // another backend (llvmpipe under GL as well as Vulkan).
    let index = super::context::list_adapters().into_iter().find(|a| (&a.name, &a.backend) == (&adapter.0, &adapter.1)).map(|a| a.index);
    let Some(index) = index else {
        return retire("the adapter is not listed again");
    };
    let ctx = match GpuContext::new(&GpuOptions { device: Some(index.to_string()), ..opts }) {
        Ok(ctx) => ctx,
        Err(e) => return retire(&format!("no second device ({e})")),
    };
    let cache = PipelineCache::default();
    let buffer = |usage: wgpu::BufferUsages| {
        ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("compile-ahead placeholder"),
            size: PLACEHOLDER_BYTES,
            usage,
            mapped_at_creation: false,
        })
    };
    let uniform = buffer(wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST);
    let storage: Vec<wgpu::Buffer> = (0..MAX_STORAGE).map(|_| buffer(wgpu::BufferUsages::STORAGE)).collect();
    let mut worked = false;
    let mut found = 0;
    loop {
        let job = {
            let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if state.closed || state.retired {
                    state.running = false;
                    return;
                }
                match state.jobs.pop() {
                    Some(job) if job.done.load(Ordering::Acquire) => continue,
                    Some(job) => {
                        shared.busy.store(1, Ordering::Release);
                        break job;
                    }
                    // Out of work after some: wait a little for the next batch (an autotune's
                    // candidates are followed at once by a first step's kernels, and opening
                    // a device again costs 150-200 ms there), then leave.
                    None if worked => {
                        let (next, waited) = shared.wake.wait_timeout(state, LINGER).unwrap_or_else(|p| p.into_inner());
                        state = next;
                        if waited.timed_out() && state.jobs.is_empty() {
                            state.running = false;
                            return;
                        }
                    }
                    None => state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner()),
                }
            }
        };
        worked = true;
        let started = Instant::now();
        // Only a pipeline's first dispatch here tells whether the shader cache had it: later
        // ones may reuse what this device compiled for the first.
        let first = !cache.contains(&job.recipe.key);
        match compile(&ctx, &cache, &job.recipe, &uniform, &storage) {
            Ok(dispatch) => {
                log::debug!(
                    "compiled {} ahead in {:.1} ms ({:.1} ms dispatching)",
                    job.recipe.key,
                    started.elapsed().as_secs_f64() * 1e3,
                    dispatch * 1e3
                );
                if first {
                    found = if dispatch < FOUND_SECONDS { found + 1 } else { 0 };
                }
                shared.compiled.fetch_add(1, Ordering::Relaxed);
                super::exit::work_done();
            }
            Err(e) => {
                log::debug!("compiling {} ahead failed: {e}", job.recipe.key);
                shared.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        shared.busy.store(0, Ordering::Release);
        if found >= FOUND_IN_A_ROW {
            // The shader cache had them: warm from an earlier process, or the queue got here
            // first. The rest, and later batches, are left to the queue.
            return retire(&format!("{FOUND_IN_A_ROW} new pipelines in a row were compiled already"));
        }
    }
}

/// Builds `recipe`'s pipeline on the helper's device and dispatches it with no workgroups;
/// the seconds the dispatch took (compiling, or finding the machine code in the shader cache).
fn compile(
    ctx: &GpuContext,
    cache: &PipelineCache,
    recipe: &PipelineRecipe,
    uniform: &wgpu::Buffer,
    storage: &[wgpu::Buffer],
) -> crate::Result<f64> {
    if recipe.storage.len() > storage.len() || recipe.params_size.max(recipe.params.len() as u64) > PLACEHOLDER_BYTES {
        return Err(crate::Error::Invalid(format!("{} has more bindings than the helper holds", recipe.key)));
    }
    let pipeline = cache.get_or_build(ctx, recipe)?;
    ctx.queue.write_buffer(uniform, 0, &recipe.params);
    let started = Instant::now();
    ctx.scoped(&format!("compiling {} ahead", recipe.key), || {
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: uniform,
                offset: 0,
                size: wgpu::BufferSize::new(recipe.params_size),
            }),
        }];
        entries.extend(
            recipe
                .storage
                .iter()
                .zip(storage)
                .map(|(&(binding, _), buffer)| wgpu::BindGroupEntry { binding, resource: buffer.as_entire_binding() }),
        );
        let group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &pipeline.layout, entries: &entries });
        let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("compile ahead") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
            pass.set_pipeline(&pipeline.pipeline);
            pass.set_bind_group(0, &group, &[0]);
            pass.dispatch_workgroups(0, 0, 0);
        }
        ctx.queue.submit([encoder.finish()])
    })
    .and_then(|index| {
        ctx.device
            .poll(wgpu::PollType::Wait { submission_index: Some(index), timeout: None })
            .map(|_| started.elapsed().as_secs_f64())
            .map_err(|e| crate::Error::Gpu { context: "compiling ahead".into(), message: e.to_string() })
    })
}

#[cfg(test)]
mod tests {
    use super::shader_cache_in;

    #[test]
    fn a_shader_cache_counts_only_with_something_in_it() {
        let base = std::env::temp_dir().join(format!("wgtrain-shader-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        assert!(!shader_cache_in(&base), "no cache folder");
        std::fs::create_dir(base.join("mesa_shader_cache")).unwrap();
        assert!(!shader_cache_in(&base), "an empty cache folder");
        std::fs::write(base.join("mesa_shader_cache").join("index"), b"x").unwrap();
        assert!(shader_cache_in(&base), "a cache folder with an entry");
        std::fs::remove_dir_all(base.join("mesa_shader_cache")).unwrap();
        std::fs::create_dir(base.join("mesa_shader_cache_db")).unwrap();
        std::fs::write(base.join("mesa_shader_cache_db").join("mesa_cache.db"), b"x").unwrap();
        assert!(shader_cache_in(&base), "the single-file database layout");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
