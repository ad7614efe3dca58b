//! What every test module shares: the `Test` entry, the GPU and its skip policy, and `check`,
//! the one test body every op instance goes through.

use std::sync::OnceLock;

use wgtrain::verify::{self, Case, VerifyTarget};
use wgtrain::{Gpu, GpuOptions};

/// One test as a module lists it; main.rs registers it as `module::name`. The body fails by
/// panicking (assert!, unwrap), as a #[test] function does.
pub struct Test {
    pub name: &'static str,
    /// Needs a GPU adapter: ignored, not passed, where none exists and skipping is allowed.
    pub gpu: bool,
    pub body: fn(),
}

impl Test {
    /// A test that runs without a GPU.
    pub fn cpu(name: &'static str, body: fn()) -> Self {
        Self { name, gpu: false, body }
    }

    /// A test that runs on the GPU.
    pub fn gpu(name: &'static str, body: fn()) -> Self {
        Self { name, gpu: true, body }
    }
}

/// The device shared by all GPU tests, or why there is none.
fn shared() -> &'static Result<Gpu, String> {
    static GPU: OnceLock<Result<Gpu, String>> = OnceLock::new();
    // Compiles serially: tests run on parallel threads, which keep the cores busy already, and
    // the exit handler (src/gpu/exit.rs) would wait for a helper still compiling at exit.
    // The helper has its own tests, on Gpus of their own.
    GPU.get_or_init(|| Gpu::new(&GpuOptions { serial_compile: true, ..Default::default() }).map_err(|e| e.to_string()))
}

fn ci() -> bool {
    std::env::var_os("CI").is_some()
}

fn allow_no_gpu() -> bool {
    std::env::var("WGTRAIN_ALLOW_NO_GPU").as_deref() == Ok("1")
}

fn no_gpu(e: &str) -> String {
    if ci() {
        format!("CI is set and no GPU adapter could be opened: {e}")
    } else {
        format!("no GPU adapter could be opened: {e}\n(or set WGTRAIN_ALLOW_NO_GPU=1 to report GPU tests as ignored)")
    }
}

/// Some(why) when GPU tests are to be marked ignored: no adapter, WGTRAIN_ALLOW_NO_GPU=1, and
/// CI unset. Otherwise None, and GPU tests run — and fail if there is no adapter.
pub fn gpu_skip_reason() -> Option<String> {
    let Err(e) = shared() else { return None };
    (allow_no_gpu() && !ci()).then(|| format!("no GPU adapter could be opened ({e}); WGTRAIN_ALLOW_NO_GPU=1 allows that outside CI"))
}

/// The device all GPU tests share. A GPU test only runs when one exists or must exist (see
/// main.rs), so a missing one fails the test with the reason and the fix.
pub fn gpu() -> &'static Gpu {
    match shared() {
        Ok(g) => g,
        Err(e) => panic!("{}", no_gpu(e)),
    }
}

/// A device of its own with `opts`, for tests that count allocations or shrink limits.
pub fn open(opts: &GpuOptions) -> Gpu {
    Gpu::new(opts).unwrap_or_else(|e| panic!("{}", no_gpu(&e.to_string())))
}

/// Runs every case on `be` and on the CPU reference; fails with the full report of each
/// mismatch. On the reference itself the results must be identical (`Tolerance::IDENTICAL`).
pub fn check<B: VerifyTarget>(be: &B, cases: &[Case]) {
    assert!(!cases.is_empty(), "no cases to check");
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        match verify::run_case(be, case, 1000 + i as u64) {
            Ok(r) if r.passed() => {}
            Ok(r) => failures.push(r.to_string()),
            Err(e) => failures.push(format!("{} {}: error: {e}", case.op(), case.shape())),
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed on {}:\n{}", failures.len(), cases.len(), be.name(), failures.join("\n"));
}

/// The cases of `all` that `keep` selects (at least one).
pub fn only(all: Vec<Case>, keep: impl Fn(&Case) -> bool) -> Vec<Case> {
    let v: Vec<Case> = all.into_iter().filter(keep).collect();
    assert!(!v.is_empty(), "the filter selected no case");
    v
}

/// The element-wise and reduction cases of one op, by name ("add", "relu", "sum", ...).
pub fn op_cases(op: &str) -> Vec<Case> {
    let all = [verify::elementwise::cases(true), verify::reduce::cases(true)].concat();
    only(all, |c| c.op() == op)
}
