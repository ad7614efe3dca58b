//! Leaving cleanly: GPU work still under way when the process exits is finished first.
//!
//! A process may exit while a `Gpu` it never dropped (one in a static, or any at
//! `std::process::exit`) still has work in flight, or while its compile-ahead helper compiles.
//! On lavapipe the driver's own `atexit` teardown then runs under the threads still compiling
//! and executing that work, and the process crashes: SIGSEGV, or an abort with "LLVM ERROR",
//! in 5 of 6 exits measured right after a submission of five new kernels, with and without
//! the helper.
//!
//! So a `Gpu` is registered from the moment its device opens until it is dropped, and an
//! `atexit` handler tells every compile-ahead helper to stop after the kernel it is on, waits
//! for each registered device's work to finish, then for the helpers to close their devices:
//! at most [`EXIT_WAIT`] in all. `atexit` handlers run in reverse order of registration, and
//! LLVM registers the destructors of its lazily built tables during a process's first
//! compiles; a handler registered only when the device opened ran after them, too late (6 of
//! 6 such exits still crashed). So the handler is registered again after host waits and
//! helper compiles that follow new pipelines (at most [`MAX_REGISTRATIONS`] times; it runs
//! once): 8 of 8 exits were then clean, each waiting 0.6-0.8 s for the compiles under way.
//! An exit before the process's first compile has finished (on the queue after a host wait,
//! or on the helper) can still crash.
//!
//! The CLI does not rely on it for Ctrl-C: where an interrupt means "quit at once" it ends the
//! process with `_exit`, which skips every `atexit` handler, the driver's teardown included.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::ahead::Closer;

/// How long an exit waits for GPU work and helpers to finish: the longest kernel compile
/// measured was about 0.5 s on a 2-core machine, a training step a few seconds.
pub(crate) const EXIT_WAIT: Duration = Duration::from_secs(10);

/// The `Gpu`s alive now, by registration number: the device and its compile-ahead helper.
static GPUS: Mutex<Vec<(u64, wgpu::Device, Option<Closer>)>> = Mutex::new(Vec::new());

/// A `Gpu`, registered for the exit handler until this is dropped.
pub(crate) struct Registration(u64);

/// Registers a `Gpu`'s `device` and `helper` (and, the first time, the exit handler).
pub(crate) fn register(device: &wgpu::Device, helper: Option<Closer>) -> Registration {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    work_done();
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    GPUS.lock().unwrap_or_else(|p| p.into_inner()).push((id, device.clone(), helper));
    Registration(id)
}

impl Drop for Registration {
    fn drop(&mut self) {
        GPUS.lock().unwrap_or_else(|p| p.into_inner()).retain(|(id, ..)| *id != self.0);
    }
}

/// How many times the handler may be registered (each registration costs glibc a list entry).
const MAX_REGISTRATIONS: u32 = 64;
/// Pipelines built in this process, on any device.
static BUILT: AtomicU64 = AtomicU64::new(0);
/// `BUILT` when the handler was last registered, and how often it has been.
static REGISTERED: Mutex<(u64, u32)> = Mutex::new((0, 0));

/// Counts a pipeline built (its compile, on lavapipe, comes at its first dispatch).
pub(crate) fn pipeline_built() {
    BUILT.fetch_add(1, Ordering::Relaxed);
}

/// Called after work has finished on a device (a host wait, a helper's compile) and when a
/// `Gpu` registers: registers the handler the first time, and again when pipelines were built
/// since it last was, so that it runs before the destructors those compiles registered.
pub(crate) fn work_done() {
    let built = BUILT.load(Ordering::Relaxed);
    let mut registered = REGISTERED.lock().unwrap_or_else(|p| p.into_inner());
    if (registered.1 == 0 || built > registered.0) && registered.1 < MAX_REGISTRATIONS {
        *registered = (built, registered.1 + 1);
        install();
    }
}

fn install() {
    #[cfg(unix)]
    {
        extern "C" fn handler() {
            // Once, from the last registration; unwinding out of an `extern "C"` function
            // would abort the exit.
            static RAN: AtomicBool = AtomicBool::new(false);
            if !RAN.swap(true, Ordering::SeqCst) {
                let _ = std::panic::catch_unwind(finish_gpu_work);
            }
        }
        // SAFETY: `handler` is a plain function that lives as long as the process.
        if unsafe { libc::atexit(handler) } != 0 {
            log::debug!("cannot register the exit handler that finishes GPU work");
        }
    }
    // Elsewhere no handler is registered: an exit there relies on the `Gpu` being dropped.
    #[cfg(not(unix))]
    let _ = finish_gpu_work;
}

/// Stops the compile-ahead helpers after their current kernel, waits for the registered
/// devices' work and for the helpers to close (at most [`EXIT_WAIT`]); whether all finished.
/// Run at process exit; harmless when nothing is under way.
pub(crate) fn finish_gpu_work() -> bool {
    let deadline = Instant::now() + EXIT_WAIT;
    let gpus = GPUS.lock().unwrap_or_else(|p| p.into_inner());
    gpus.iter().filter_map(|(_, _, helper)| helper.as_ref()).for_each(Closer::close);
    let devices: Vec<wgpu::Device> = gpus.iter().map(|(_, device, _)| device.clone()).collect();
    drop(gpus);
    let mut finished = true;
    for device in devices {
        let timeout = Some(deadline.saturating_duration_since(Instant::now()));
        finished &= device.poll(wgpu::PollType::Wait { submission_index: None, timeout }).is_ok();
    }
    finished &= super::ahead::wait_all(deadline);
    if !finished {
        log::debug!("exiting with GPU work still under way after {EXIT_WAIT:?}");
    }
    finished
}
