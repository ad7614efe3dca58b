//! The shared GPU and the one test body every op instance goes through.

use std::sync::OnceLock;

use wgtrain::verify::{self, Case};
use wgtrain::{Gpu, GpuOptions};

/// The device all tests share, or None when skipping is allowed and no adapter exists.
pub fn gpu() -> Option<&'static Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| open(&GpuOptions::default())).as_ref()
}

/// Opens a device with `opts`, applying the no-silent-skip policy.
pub fn open(opts: &GpuOptions) -> Option<Gpu> {
    match Gpu::new(opts) {
        Ok(g) => Some(g),
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!("CI is set and no GPU adapter could be opened: {e}");
            }
            if std::env::var("WGTRAIN_ALLOW_NO_GPU").as_deref() == Ok("1") {
                eprintln!("\n!!!!!!!! SKIPPED: no GPU adapter ({e}); WGTRAIN_ALLOW_NO_GPU=1 lets GPU tests pass untested !!!!!!!!\n");
                return None;
            }
            panic!("no GPU adapter could be opened: {e}\n(install lavapipe: apt-get install mesa-vulkan-drivers libvulkan1, or set WGTRAIN_ALLOW_NO_GPU=1 to skip loudly)");
        }
    }
}

/// Runs every case on GPU and CPU and fails with the full report of each mismatch.
pub fn check_all(cases: &[Case]) {
    let Some(gpu) = gpu() else { return };
    assert!(!cases.is_empty(), "no cases to check");
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        match verify::run_case(gpu, case, 1000 + i as u64) {
            Ok(r) if r.passed() => {}
            Ok(r) => failures.push(r.to_string()),
            Err(e) => failures.push(format!("{} {}: error: {e}", case.op(), case.shape())),
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// The element-wise cases of one op (by name).
pub fn elementwise_cases(op: &str) -> Vec<Case> {
    verify::elementwise_cases(true).into_iter().filter(|c| c.op() == op).collect()
}
