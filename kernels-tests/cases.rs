//! `wgtrain verify --case`: the committed reference cases (kernels-tests/cases/, written by
//! tools/gen_cases.py from an independent NumPy implementation) pass on both backends; a case
//! that disagrees fails; a malformed one is an error naming the file and the field.
//!
//! And the comparison can fail on the errors it exists to catch: optimizers with a planted
//! mistake (weight decay ignored, decoupled instead of L2, dampening or nesterov wrong), run on
//! the cases' inputs and fed to the same `compare` that `check` uses, must fail; the same
//! planted code without the mistake must pass, so the failures come from the mistake alone.

use std::path::{Path, PathBuf};

use wgtrain::verify::case_file::{check, collect, compare, load, CaseFile, OutputCheck, Produced};
use wgtrain::{Cpu, Error};

use crate::common::{gpu, Test};

pub fn tests() -> Vec<Test> {
    vec![
        Test::cpu("reference_cases_pass_cpu", || assert_all_pass(&Cpu, "cpu")),
        Test::gpu("reference_cases_pass_gpu", || assert_all_pass(gpu(), "gpu")),
        Test::cpu("a_wrong_expected_value_fails", a_wrong_expected_value_fails),
        Test::cpu("malformed_cases_are_errors_naming_file_and_field", malformed_cases_are_errors_naming_file_and_field),
        Test::cpu("folders_expand_to_their_json_files", folders_expand_to_their_json_files),
        Test::cpu("planted_correct_optimizers_pass", planted_correct_optimizers_pass),
        Test::cpu("planted_adam_ignoring_weight_decay_fails", planted_adam_ignoring_weight_decay_fails),
        Test::cpu("planted_adam_with_decoupled_weight_decay_fails", planted_adam_with_decoupled_weight_decay_fails),
        Test::cpu("planted_adamw_with_l2_weight_decay_fails", planted_adamw_with_l2_weight_decay_fails),
        Test::cpu("planted_sgd_without_dampening_fails", planted_sgd_without_dampening_fails),
        Test::cpu("planted_sgd_with_nesterov_flipped_fails", planted_sgd_with_nesterov_flipped_fails),
    ]
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels-tests").join("cases")
}

fn assert_all_pass<B: wgtrain::Backend>(be: &B, name: &str) {
    let files = collect(&[cases_dir()]).unwrap();
    assert!(files.len() >= 20, "only {} case files", files.len());
    let mut ops = std::collections::BTreeSet::new();
    for f in files {
        let (case, checks) = check(be, &f).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!checks.is_empty());
        if case.op == "optimizer" {
            assert!(checks.iter().any(|c| c.name == "updates"), "{}: no update check", f.display());
        }
        for c in checks {
            assert!(c.passed, "{name}: {}: {} max abs err {:.3e} > {:.3e}", f.display(), c.name, c.max_abs, c.allowed);
        }
        ops.insert(case.op);
    }
    for op in ["conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool2d", "batch_norm2d", "linear", "relu", "cross_entropy", "optimizer"] {
        assert!(ops.contains(op), "no case for {op}");
    }
}

fn temp_case(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgtrain-cases-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn a_wrong_expected_value_fails() {
    let original = std::fs::read_to_string(cases_dir().join("relu.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&original).unwrap();
    let data = v["outputs"]["y"]["data"].as_array_mut().unwrap();
    let first = data[0].as_f64().unwrap();
    data[0] = serde_json::json!(first + 0.01);
    let p = temp_case("tampered.json", &v.to_string());
    let (_, checks) = check(&Cpu, &p).unwrap();
    let y = checks.iter().find(|c| c.name == "y").unwrap();
    assert!(!y.passed && (y.max_abs - 0.01).abs() < 1e-6, "{y:?}");
    assert!(checks.iter().find(|c| c.name == "grad_x").unwrap().passed);
}

fn expect_case_error(text: &str, field: &str, mention: &str) {
    let p = temp_case("bad.json", text);
    let err = check(&Cpu, &p).unwrap_err();
    let msg = err.to_string();
    match &err {
        Error::CaseFile { path, field: f, .. } => {
            assert_eq!(path, &p);
            assert_eq!(f, field, "{msg}");
        }
        other => panic!("not a case-file error: {other}"),
    }
    assert!(msg.contains("bad.json") && msg.contains(mention), "{msg}");
}

fn malformed_cases_are_errors_naming_file_and_field() {
    let t = r#"{"shape": [2], "data": [1.0, -1.0]}"#;
    expect_case_error("{not json", "(json)", "line");
    expect_case_error(
        &format!(r#"{{"op": "fft", "inputs": {{"x": {t}}}, "outputs": {{"y": {{"shape": [1], "data": [0]}}}}}}"#),
        "op",
        "unknown op 'fft'",
    );
    expect_case_error(r#"{"op": "relu", "inputs": {}, "outputs": {"y": {"shape": [1], "data": [0]}}}"#, "inputs.x", "missing");
    expect_case_error(
        r#"{"op": "relu", "inputs": {"x": {"shape": [3], "data": [1.0]}}, "outputs": {"y": {"shape": [1], "data": [0]}}}"#,
        "inputs.x.data",
        "shape [3] needs 3",
    );
    expect_case_error(
        &format!(r#"{{"op": "relu", "inputs": {{"x": {t}}}, "outputs": {{"z": {t}}}}}"#),
        "outputs.z",
        "does not produce 'z'",
    );
    expect_case_error(
        &format!(r#"{{"op": "relu", "inputs": {{"x": {t}}}, "outputs": {{"y": {{"shape": [1, 2], "data": [1, 0]}}}}}}"#),
        "outputs.y.shape",
        "[2]",
    );
    expect_case_error(
        &format!(
            r#"{{"op": "conv2d", "params": {{"stride": "wide"}}, "inputs": {{"x": {t}}}, "outputs": {{"y": {{"shape": [1], "data": [0]}}}}}}"#
        ),
        "params.stride",
        "[h, w]",
    );
    expect_case_error(
        r#"{"op": "relu", "dtype": "int8", "inputs": {}, "outputs": {"y": {"shape": [1], "data": [0]}}}"#,
        "dtype",
        "float32",
    );
    let x = r#"{"shape": [1, 1, 2, 2], "data": [1, 2, 3, 4]}"#;
    let w = r#"{"shape": [1, 2, 3, 3], "data": [0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}"#;
    expect_case_error(
        &format!(r#"{{"op": "conv2d", "inputs": {{"x": {x}, "weight": {w}}}, "outputs": {{"y": {{"shape": [1], "data": [0]}}}}}}"#),
        "(run)",
        "conv2d",
    );
    expect_case_error(
        r#"{"op": "optimizer", "params": {"name": "lion"}, "inputs": {}, "outputs": {"y": {"shape": [1], "data": [0]}}}"#,
        "params.name",
        "lion",
    );
    // A case that compares nothing cannot pass; sizes that are zero or overflow are refused.
    expect_case_error(&format!(r#"{{"op": "relu", "inputs": {{"x": {t}}}, "outputs": {{}}}}"#), "outputs", "is empty");
    let y = r#"{"shape": [1], "data": [0]}"#;
    expect_case_error(
        &format!(r#"{{"op": "relu", "inputs": {{"x": {{"shape": [0], "data": []}}}}, "outputs": {{"y": {y}}}}}"#),
        "inputs.x.shape",
        "a dimension of 0",
    );
    expect_case_error(
        &format!(
            r#"{{"op": "relu", "inputs": {{"x": {{"shape": [4294967296, 4294967296, 4294967296], "data": []}}}}, "outputs": {{"y": {y}}}}}"#
        ),
        "inputs.x.shape",
        "more elements than can be counted",
    );
}

fn folders_expand_to_their_json_files() {
    let files = collect(&[cases_dir()]).unwrap();
    assert!(files.iter().all(|f| f.extension().unwrap() == "json"));
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(files, sorted);
    assert!(load(&cases_dir().join("no-such-case.json")).unwrap_err().to_string().contains("no-such-case.json"));
}

// ---- planted wrong optimizers ---------------------------------------------------------------

/// How a planted Adam applies weight decay.
#[derive(Clone, Copy, Debug)]
enum Decay {
    /// torch.optim.Adam: g += wd * p before the moments.
    L2,
    /// torch.optim.AdamW: p *= 1 - lr * wd before the step.
    Decoupled,
    /// Not at all.
    Ignored,
}

/// Adam in plain f32, as torch.optim writes it (foreach=False): the parameters after each step.
fn adam(case: &CaseFile, p0: &[f32], grads: &[Vec<f32>], decay: Decay) -> Vec<f32> {
    let (lr, wd, eps) = (param(case, "lr", 1e-3), param(case, "weight_decay", 0.0), param(case, "eps", 1e-8));
    let betas = case.params.get("betas").and_then(|b| b.as_array()).map(|b| (b[0].as_f64().unwrap() as f32, b[1].as_f64().unwrap() as f32));
    let (b1, b2) = betas.unwrap_or((0.9, 0.999));
    let (mut p, mut m, mut v) = (p0.to_vec(), vec![0.0f32; p0.len()], vec![0.0f32; p0.len()]);
    let mut out = Vec::new();
    for (t, grad) in grads.iter().enumerate() {
        let t = t as i32 + 1;
        let (bc1, bc2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        for i in 0..p.len() {
            let mut g = grad[i];
            match decay {
                Decay::L2 => g += wd * p[i],
                Decay::Decoupled => p[i] *= 1.0 - lr * wd,
                Decay::Ignored => {}
            }
            m[i] = b1 * m[i] + (1.0 - b1) * g;
            v[i] = b2 * v[i] + (1.0 - b2) * g * g;
            p[i] -= lr / bc1 * m[i] / (v[i].sqrt() / bc2.sqrt() + eps);
        }
        out.extend_from_slice(&p);
    }
    out
}

/// SGD with momentum in plain f32 (torch.optim.SGD), its dampening and nesterov given.
fn sgd(case: &CaseFile, p0: &[f32], grads: &[Vec<f32>], dampening: f32, nesterov: bool) -> Vec<f32> {
    let (lr, wd, mom) = (param(case, "lr", 1e-3), param(case, "weight_decay", 0.0), param(case, "momentum", 0.0));
    let (mut p, mut buf) = (p0.to_vec(), vec![0.0f32; p0.len()]);
    let mut out = Vec::new();
    for (t, grad) in grads.iter().enumerate() {
        for i in 0..p.len() {
            let mut g = grad[i] + wd * p[i];
            if mom != 0.0 {
                buf[i] = if t == 0 { g } else { mom * buf[i] + (1.0 - dampening) * g };
                g = if nesterov { g + mom * buf[i] } else { buf[i] };
            }
            p[i] -= lr * g;
        }
        out.extend_from_slice(&p);
    }
    out
}

/// A planted optimizer: (case, initial parameters, gradients per step) -> parameters after
/// each step.
type Planted = dyn Fn(&CaseFile, &[f32], &[Vec<f32>]) -> Vec<f32>;

fn param(case: &CaseFile, name: &str, default: f32) -> f32 {
    case.params.get(name).and_then(|v| v.as_f64()).map_or(default, |v| v as f32)
}

/// Runs `planted` on the inputs of cases/`file` and compares its parameters with the file's
/// through `compare`, as `check` does: (the "params" check, the "updates" check).
fn run_planted(file: &str, planted: impl Fn(&CaseFile, &[f32], &[Vec<f32>]) -> Vec<f32>) -> (OutputCheck, OutputCheck) {
    let case = load(&cases_dir().join(file)).unwrap();
    assert_eq!(case.op, "optimizer");
    let p0: Vec<f32> = case.inputs["param"].data.iter().map(|&v| v as f32).collect();
    let grads: Vec<Vec<f32>> = case.inputs["grads"].data.chunks(p0.len()).map(|g| g.iter().map(|&v| v as f32).collect()).collect();
    let params = planted(&case, &p0, &grads);
    let got: Produced = [("params".to_string(), (vec![grads.len(), p0.len()], params))].into();
    let checks = compare(&case, &got).unwrap();
    let find = |name: &str| checks.iter().find(|c| c.name == name).unwrap().clone();
    (find("params"), find("updates"))
}

/// The planted mistake must fail the update check (whatever the parameter check says).
fn expect_caught(file: &str, what: &str, planted: impl Fn(&CaseFile, &[f32], &[Vec<f32>]) -> Vec<f32>) {
    let (params, updates) = run_planted(file, planted);
    assert!(
        !updates.passed,
        "{file}: {what} was not caught: updates max err {:.3e} <= allowed {:.3e} (params max err {:.3e}, allowed {:.3e})",
        updates.max_abs, updates.allowed, params.max_abs, params.allowed
    );
}

fn planted_correct_optimizers_pass() {
    let right: [(&str, &Planted); 5] = [
        ("optimizer_adam.json", &|c, p, g| adam(c, p, g, Decay::L2)),
        ("optimizer_adamw.json", &|c, p, g| adam(c, p, g, Decay::Decoupled)),
        ("optimizer_sgd_momentum.json", &|c, p, g| sgd(c, p, g, 0.0, false)),
        ("optimizer_sgd_dampening.json", &|c, p, g| sgd(c, p, g, param(c, "dampening", 0.0), false)),
        ("optimizer_sgd_nesterov_wd.json", &|c, p, g| sgd(c, p, g, 0.0, true)),
    ];
    for (file, planted) in right {
        let (params, updates) = run_planted(file, planted);
        assert!(params.passed && updates.passed, "{file}: the correct rule fails: {params:?} {updates:?}");
    }
}

/// (a) Adam that forgets its (L2) weight decay.
fn planted_adam_ignoring_weight_decay_fails() {
    expect_caught("optimizer_adam.json", "Adam ignoring weight decay", |c, p, g| adam(c, p, g, Decay::Ignored));
}

/// (b) Adam that decays the weights directly (AdamW's rule) instead of adding wd * p to the
/// gradient.
fn planted_adam_with_decoupled_weight_decay_fails() {
    expect_caught("optimizer_adam.json", "Adam with decoupled weight decay", |c, p, g| adam(c, p, g, Decay::Decoupled));
}

/// (b) the other way round: AdamW with Adam's L2 rule, or with no decay at all.
fn planted_adamw_with_l2_weight_decay_fails() {
    expect_caught("optimizer_adamw.json", "AdamW with L2 weight decay", |c, p, g| adam(c, p, g, Decay::L2));
    expect_caught("optimizer_adamw.json", "AdamW ignoring weight decay", |c, p, g| adam(c, p, g, Decay::Ignored));
}

/// (c) momentum SGD that ignores dampening.
fn planted_sgd_without_dampening_fails() {
    expect_caught("optimizer_sgd_dampening.json", "SGD without dampening", |c, p, g| sgd(c, p, g, 0.0, false));
}

/// (c) nesterov flipped, both ways.
fn planted_sgd_with_nesterov_flipped_fails() {
    expect_caught("optimizer_sgd_nesterov_wd.json", "SGD without nesterov", |c, p, g| sgd(c, p, g, 0.0, false));
    expect_caught("optimizer_sgd_momentum.json", "SGD with nesterov", |c, p, g| sgd(c, p, g, 0.0, true));
}
