//! Checks the ops whose name contains a word on your device against the CPU reference, with
//! the same cases and tolerances as `wgtrain verify` and the test suite, and prints each one's
//! error next to what is allowed.
//!
//! Run: `cargo run --release --example verify_op -- [OP] [--large]` (e.g. `conv2d`, `adam`,
//! `batch_norm`; default: every op)

use wgtrain::verify::{self, Case};
use wgtrain::{Gpu, GpuOptions};

fn main() -> wgtrain::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let large = args.iter().any(|a| a == "--large");
    let word = args.iter().find(|a| !a.starts_with("--")).cloned().unwrap_or_default();
    let gpu = Gpu::new(&GpuOptions::default())?;
    let cases: Vec<Case> = verify::suite(large).into_iter().filter(|c| c.op().contains(&word)).collect();
    if cases.is_empty() {
        return Err(wgtrain::Error::Invalid(format!("no op matches '{word}'")));
    }
    println!("{} cases of '{word}' on {}", cases.len(), gpu.adapter_name());
    let mut failed = 0;
    for (i, case) in cases.iter().enumerate() {
        let report = verify::run_case(&gpu, case, 42 + i as u64)?;
        failed += !report.passed() as usize;
        println!("{report}");
    }
    println!("{} passed, {failed} failed", cases.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
