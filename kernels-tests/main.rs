//! Kernel tests: every WGSL kernel against its CPU twin, the CPU reference against itself,
//! reference cases from outside, and the shader, dispatch and error rules around them.
//! Run with `cargo test --release`; filter as usual: `cargo test --release -- conv2d`.
//!
//! GPU tests need an adapter (lavapipe is enough). Without one they fail — under CI (`CI` set)
//! always; elsewhere unless WGTRAIN_ALLOW_NO_GPU=1, which marks them *ignored*: the summary
//! line counts them ("... 36 ignored") and a line above the run says why. A skipped GPU test
//! never counts as passed.
//!
//! The harness is libtest-mimic (same flags and output as libtest) because libtest cannot
//! decide at run time that a test is ignored. Each module lists its tests in `tests()`, one
//! line each, as `Test::cpu` or `Test::gpu`; they are registered here as `module::name`.

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
mod suite;
mod tolerance;

use std::cell::{Cell, RefCell};
use std::panic::catch_unwind;

use libtest_mimic::{Arguments, Failed, Trial};

use common::Test;

/// Every test module, by the name its tests are registered under.
const MODULES: &[(&str, fn() -> Vec<Test>)] = &[
    ("batch_norm", batch_norm::tests),
    ("buffers", buffers::tests),
    ("cases", cases::tests),
    ("channel", channel::tests),
    ("conv2d", conv2d::tests),
    ("dispatch", dispatch::tests),
    ("dropout", dropout::tests),
    ("elementwise", elementwise::tests),
    ("errors", errors::tests),
    ("loss", loss::tests),
    ("matmul", matmul::tests),
    ("optimizer", optimizer::tests),
    ("permute", permute::tests),
    ("pool", pool::tests),
    ("reduce", reduce::tests),
    ("relu", relu::tests),
    ("shaders", shaders::tests),
    ("suite", suite::tests),
    ("tolerance", tolerance::tests),
];

thread_local! {
    /// Whether this thread is running a test body.
    static IN_TEST: Cell<bool> = const { Cell::new(false) };
    /// Where and why the running test panicked ("panicked at file:line:col:\nmessage").
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs a test body; a panic becomes the failure's message, with its location, printed once
/// in the failures section as libtest does (not also on stderr in the middle of the run).
fn run_body(body: fn()) -> Result<(), Failed> {
    IN_TEST.set(true);
    let outcome = catch_unwind(body);
    IN_TEST.set(false);
    outcome.map_err(|_| Failed::from(PANIC.take().unwrap_or_else(|| "panicked".into())))
}

fn main() {
    if std::env::var_os(dispatch::EXIT_CHILD).is_some() {
        dispatch::exit_while_compiling_ahead();
    }
    // Panics in a test body are kept for its report; any other thread's go to stderr as usual.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if IN_TEST.get() {
            PANIC.set(Some(info.to_string()));
        } else {
            default_hook(info);
        }
    }));
    let args = Arguments::from_args();
    let mut tests: Vec<(Trial, bool)> = MODULES
        .iter()
        .flat_map(|&(module, tests)| {
            tests().into_iter().map(move |t| {
                let body = t.body;
                (Trial::test(format!("{module}::{}", t.name), move || run_body(body)), t.gpu)
            })
        })
        .collect();
    tests.sort_by(|a, b| a.0.name().cmp(b.0.name()));

    // Look for an adapter only when a GPU test is selected (not for `--list` or a CPU filter).
    let by_name = Arguments { ignored: false, ..args.clone() };
    let gpu_selected = tests.iter().any(|(t, gpu)| *gpu && !by_name.is_filtered_out(t));
    let skip = if gpu_selected && !args.list { common::gpu_skip_reason() } else { None };
    if let Some(why) = &skip {
        let count = tests.iter().filter(|(t, gpu)| *gpu && !by_name.is_filtered_out(t)).count();
        eprintln!("\nNOTE: {count} GPU tests are IGNORED, not run: {why}\n");
    }
    let trials = tests.into_iter().map(|(t, gpu)| if gpu && skip.is_some() { t.with_ignored_flag(true) } else { t }).collect();
    libtest_mimic::run(&args, trials).exit()
}
