//! `wgtrain`, the command line: a thin client of the `wgtrain` library. This file holds the
//! command list and hands each command to its own file; everything they compute comes from
//! the library. `wgtrain --help` lists the commands.

mod args;
mod augment_preview;
mod bench;
mod devices;
mod eval;
mod experiment;
mod export;
mod parallel;
mod plot;
mod predict;
mod profile;
mod summary;
mod train;
mod verify;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "wgtrain",
    version,
    about = "Train CNNs with WGSL compute shaders on any GPU (or lavapipe), checked against a CPU reference"
)]
struct Cli {
    /// Adapter to use: an index from `wgtrain devices` or part of its name (default: the best one)
    #[arg(long, global = true, env = "WGTRAIN_DEVICE")]
    device: Option<String>,
    /// Matmul kernel variant (v1_naive, v2_tiled, v3_regblock, v4_lanes, v5_subgroup; default: chosen per device)
    #[arg(long, global = true, env = "WGTRAIN_MATMUL")]
    matmul_variant: Option<String>,
    /// Time the kernel variants now instead of reading the per-device choice cached on first use (and do not write it)
    #[arg(long, global = true)]
    no_cache: bool,
    /// Log more: -v shows the device and kernel choices, -vv everything (RUST_LOG overrides)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a CNN (default: the default CNN on the built-in shapes data set, no download)
    Train(Box<train::TrainArgs>),
    /// Loss, accuracy, per-class accuracy and confusion matrix of a checkpoint on a data set
    Eval(eval::EvalArgs),
    /// Write a checkpoint's weights as a PyTorch state dict (safetensors, no optimizer state)
    Export(export::ExportArgs),
    /// Top-k classes with probabilities for images, from a checkpoint
    Predict(predict::PredictArgs),
    /// Write a PNG grid of augmented training samples (what the model is fed)
    AugmentPreview(augment_preview::PreviewArgs),
    /// Loss and accuracy per epoch of training logs (`train --log`) as a PNG, several runs overlaid
    Plot(plot::PlotArgs),
    /// Per-layer shapes, parameters, multiply-accumulates and memory of a model
    Summary(summary::SummaryArgs),
    /// List every GPU adapter wgpu can see (WGPU_BACKEND restricts the backends)
    Devices,
    /// Check every kernel on the chosen device against the CPU reference; exit 1 on any failure
    Verify(verify::VerifyArgs),
    /// Run an experiment (batch-size, optimizers, cv, bagging, boosting, regularization) into --out DIR
    Experiment {
        #[command(subcommand)]
        which: Box<experiment::ExperimentCmd>,
    },
    /// Time every kernel of a training step on the device, grouped by layer, phase and op
    Profile(profile::ProfileArgs),
    /// Measure kernels and training (median of timed runs, pipeline creation excluded)
    Bench {
        #[command(subcommand)]
        what: bench::BenchWhat,
    },
}

/// When the process started (the clock of "time to the first step").
static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Set by the first Ctrl-C or SIGTERM while a command that can stop cleanly watches it.
static STOP: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));
/// Whether the running command watches [`STOP`] (training with a checkpoint does).
static WATCHED: AtomicBool = AtomicBool::new(false);

/// The flag a command watches to stop cleanly on the first Ctrl-C or SIGTERM; without one, or
/// on the second signal, the process exits at once with status 130.
fn stop_flag() -> Arc<AtomicBool> {
    WATCHED.store(true, Ordering::SeqCst);
    STOP.clone()
}

/// One handler for SIGINT and SIGTERM in every command. Exiting at once removes the temporary
/// files of atomic writes still under way (a checkpoint being saved), so no `.tmp` is left.
fn install_interrupt_handler() {
    let handler = || {
        if WATCHED.load(Ordering::SeqCst) && !STOP.swap(true, Ordering::SeqCst) {
            eprintln!("interrupted: stopping after this step (Ctrl-C again to quit at once)");
            return;
        }
        let _no_new_files = wgtrain::atomic::remove_pending();
        eprintln!("interrupted");
        exit_at_once(130);
    };
    if let Err(e) = ctrlc::set_handler(handler) {
        log::warn!("cannot handle Ctrl-C and SIGTERM ({e}): they will stop the process without cleaning up");
    }
}

/// Ends the process with `code` from the signal-handling thread while the main thread may be
/// in the middle of a GPU call: on Unix with `_exit`, skipping the `atexit` teardown of the
/// driver, which can crash under a thread still using it (3 of 10 interrupted cold starts did,
/// with the compile-ahead helper at work). Output written so far is flushed first.
fn exit_at_once(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    #[cfg(unix)]
    // SAFETY: `_exit` ends the process without running anything more; nothing is left
    // half-written that it must finish (pending atomic writes were just removed).
    unsafe {
        libc::_exit(code)
    }
    #[cfg(not(unix))]
    std::process::exit(code)
}

/// Mesa's Vulkan drivers warn twice per process when `XDG_RUNTIME_DIR` is unset (common in
/// containers and under cron): give the process a private one, created mode 0700 as the spec
/// asks, before any thread or driver starts.
fn ensure_runtime_dir() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir()) {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("wgtrain-runtime-{uid}"));
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        let ours = std::fs::metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0);
        if ours {
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    }
}

fn main() -> ExitCode {
    START.get_or_init(std::time::Instant::now);
    ensure_runtime_dir();
    // The matches are kept beside the parsed flags: `train --resume` and `eval` tell a flag
    // typed on the command line from its default.
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let level = ["warn", "info", "debug"][usize::from(cli.verbose.min(2))];
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).format_timestamp(None).init();
    install_interrupt_handler();
    match run(cli, &matches) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, each cause added only where the message does not already say it
/// (library errors carry their OS error in the message: `path: No such file or directory`).
fn message(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}

fn run(cli: Cli, matches: &clap::ArgMatches) -> anyhow::Result<ExitCode> {
    let gpu = || args::gpu(&cli.device, &cli.matmul_variant, cli.no_cache);
    // Data-parallel replicas open their own adapters: one named here wins over the global --device.
    let gpu_on = |device: Option<String>| args::gpu(&device.or_else(|| cli.device.clone()), &cli.matmul_variant, cli.no_cache);
    match &cli.command {
        Command::Train(a) => train::run(a, matches.subcommand_matches("train"), &gpu_on),
        Command::Eval(a) => eval::run(a, matches.subcommand_matches("eval"), gpu),
        Command::Export(a) => export::run(a),
        Command::Predict(a) => predict::run(a, gpu),
        Command::AugmentPreview(a) => augment_preview::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Summary(a) => summary::run(a),
        Command::Devices => devices::run(),
        Command::Verify(a) => verify::run(a, gpu),
        Command::Experiment { which } => experiment::run(which, gpu),
        Command::Profile(a) => profile::run(a, &cli.device, &cli.matmul_variant, cli.no_cache),
        Command::Bench { what } => {
            let options = args::gpu_options(&cli.device, &cli.matmul_variant, cli.no_cache);
            bench::run(what, &gpu_on, &options, *START.get_or_init(std::time::Instant::now))
        }
    }
}
