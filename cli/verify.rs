//! `wgtrain verify`: every kernel on the chosen device against the CPU reference, or
//! reference cases from other frameworks (`--case`) on every backend.

use std::path::PathBuf;
use std::process::ExitCode;

use wgtrain::verify;
use wgtrain::Gpu;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    All,
    Cpu,
    Gpu,
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Also run the large cases
    #[arg(long)]
    large: bool,
    /// Seed of the random inputs
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Check reference case files instead (JSON; files or folders, repeatable)
    #[arg(long = "case", value_name = "FILE|DIR")]
    cases: Vec<PathBuf>,
    /// Backends to check the case files on
    #[arg(long, value_enum, default_value = "all")]
    backend: BackendChoice,
    /// Also write every check as JSON to this file
    #[arg(long)]
    json: Option<PathBuf>,
}

impl std::fmt::Debug for BackendChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendChoice::All => "all",
            BackendChoice::Cpu => "cpu",
            BackendChoice::Gpu => "gpu",
        })
    }
}

pub fn run(a: &VerifyArgs, gpu: impl Fn() -> anyhow::Result<Gpu>) -> anyhow::Result<ExitCode> {
    if let Some(p) = &a.json {
        crate::train::check_writable("--json", p)?;
    }
    let mut json = Vec::new();
    let code = if !a.cases.is_empty() { case_files(&a.cases, a.backend, gpu, &mut json)? } else { kernels(a, gpu, &mut json)? };
    if let Some(p) = &a.json {
        let out = serde_json::json!({"passed": code == ExitCode::SUCCESS, "checks": json});
        wgtrain::atomic::write(p, serde_json::to_string_pretty(&out)?.as_bytes())?;
    }
    Ok(code)
}

/// Every kernel of the suite on the GPU against the CPU reference.
fn kernels(a: &VerifyArgs, gpu: impl Fn() -> anyhow::Result<Gpu>, json: &mut Vec<serde_json::Value>) -> anyhow::Result<ExitCode> {
    let gpu = gpu()?;
    println!("verifying kernels on {} against the CPU reference (matmul default: {})", gpu.adapter_name(), gpu.matmul_variant().name());
    println!("{:<44} {:<22} {:>12} {:>12} {:>20}  result", "op", "shape", "max abs err", "max rel err", "tolerance (abs, rel)");
    let (mut passed, mut failed) = (0, 0);
    for (i, case) in verify::suite(a.large).iter().enumerate() {
        match verify::run_case(&gpu, case, a.seed.wrapping_add(i as u64)) {
            Ok(r) => {
                println!(
                    "{:<44} {:<22} {:>12.3e} {:>12.3e} {:>9.1e}, {:>8.1e}  {}",
                    r.op,
                    r.shape,
                    r.cmp.max_abs,
                    r.cmp.max_rel,
                    r.tolerance.atol,
                    r.tolerance.rtol,
                    if r.passed() { "pass".to_string() } else { format!("FAIL {r}") }
                );
                json.push(serde_json::json!({
                    "device": gpu.adapter_name(),
                    "op": r.op,
                    "shape": r.shape,
                    "max_abs_err": r.cmp.max_abs,
                    "max_rel_err": r.cmp.max_rel,
                    "atol": r.tolerance.atol,
                    "rtol": r.tolerance.rtol,
                    "passed": r.passed(),
                }));
                if r.passed() {
                    passed += 1
                } else {
                    failed += 1
                }
            }
            Err(e) => {
                println!("{:<44} {:<22} error: {e}", case.op(), case.shape());
                json.push(serde_json::json!({"op": case.op(), "shape": case.shape(), "error": e.to_string(), "passed": false}));
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `wgtrain verify --case ...`: every case on every chosen backend; a case passes when all its
/// outputs pass on all of them, errs when it cannot be run.
fn case_files(
    paths: &[PathBuf],
    backend: BackendChoice,
    gpu: impl Fn() -> anyhow::Result<Gpu>,
    json: &mut Vec<serde_json::Value>,
) -> anyhow::Result<ExitCode> {
    use wgtrain::verify::case_file;
    let files = case_file::collect(paths)?;
    let gpu = match backend {
        BackendChoice::Cpu => None,
        _ => Some(gpu().map_err(|e| e.to_string())),
    };
    let cpu = (backend != BackendChoice::Gpu).then_some(wgtrain::Cpu);
    let (mut passed, mut failed, mut errored) = (0, 0, 0);
    for file in &files {
        let name = file.file_name().map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
        let mut outcomes: Vec<(&str, Result<(case_file::CaseFile, Vec<case_file::OutputCheck>), String>)> = Vec::new();
        if let Some(cpu) = &cpu {
            outcomes.push(("cpu", case_file::check(cpu, file).map_err(|e| e.to_string())));
        }
        match &gpu {
            Some(Ok(g)) => outcomes.push(("gpu", case_file::check(g, file).map_err(|e| e.to_string()))),
            Some(Err(e)) => outcomes.push(("gpu", Err(format!("no GPU: {e}")))),
            None => {}
        }
        let (mut any_error, mut any_fail) = (false, false);
        for (be, outcome) in outcomes {
            match outcome {
                Ok((case, checks)) => {
                    for c in checks {
                        any_fail |= !c.passed;
                        json.push(serde_json::json!({
                            "case": name, "op": case.op, "backend": be, "output": c.name,
                            "max_abs_err": c.max_abs, "allowed": c.allowed, "passed": c.passed,
                        }));
                        println!(
                            "{name:<40} {:<18} {be:<4} {:<12} max abs err {:>10.3e}  allowed {:>10.3e}  {}",
                            case.op,
                            c.name,
                            c.max_abs,
                            c.allowed,
                            if c.passed { "pass" } else { "FAIL" }
                        );
                    }
                }
                Err(e) => {
                    any_error = true;
                    println!("{name:<40} {be:<4} error: {e}");
                    json.push(serde_json::json!({"case": name, "backend": be, "error": e, "passed": false}));
                }
            }
        }
        if any_error {
            errored += 1;
        } else if any_fail {
            failed += 1;
        } else {
            passed += 1;
        }
    }
    println!("cases: {passed} passed, {failed} failed, {errored} errored");
    Ok(if failed + errored == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
