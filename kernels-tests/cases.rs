//! `wgtrain verify --case`: the committed reference cases (kernels-tests/cases/, written by
//! tools/gen_cases.py from an independent NumPy implementation) pass on both backends; a case
//! that disagrees fails; a malformed one is an error naming the file and the field.

use std::path::{Path, PathBuf};

use wgtrain::verify::case_file::{check, collect, load};
use wgtrain::{Cpu, Error};

use crate::common::gpu;

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
        for c in checks {
            assert!(c.passed, "{name}: {}: {} max abs err {} > {}", f.display(), c.name, c.max_abs, c.allowed);
        }
        ops.insert(case.op);
    }
    for op in ["conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool2d", "batch_norm2d", "linear", "relu", "cross_entropy", "optimizer"] {
        assert!(ops.contains(op), "no case for {op}");
    }
}

#[test]
fn reference_cases_pass_on_the_cpu() {
    assert_all_pass(&Cpu, "cpu");
}

#[test]
fn reference_cases_pass_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    assert_all_pass(gpu, "gpu");
}

fn temp_case(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgtrain-cases-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
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

#[test]
fn malformed_cases_are_errors_naming_file_and_field() {
    let t = r#"{"shape": [2], "data": [1.0, -1.0]}"#;
    expect_case_error("{not json", "(json)", "line");
    expect_case_error(&format!(r#"{{"op": "fft", "inputs": {{"x": {t}}}, "outputs": {{}}}}"#), "op", "unknown op 'fft'");
    expect_case_error(r#"{"op": "relu", "inputs": {}, "outputs": {}}"#, "inputs.x", "missing");
    expect_case_error(
        r#"{"op": "relu", "inputs": {"x": {"shape": [3], "data": [1.0]}}, "outputs": {}}"#,
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
        &format!(r#"{{"op": "conv2d", "params": {{"stride": "wide"}}, "inputs": {{"x": {t}}}, "outputs": {{}}}}"#),
        "params.stride",
        "[h, w]",
    );
    expect_case_error(r#"{"op": "relu", "dtype": "int8", "inputs": {}, "outputs": {}}"#, "dtype", "float32");
    let x = r#"{"shape": [1, 1, 2, 2], "data": [1, 2, 3, 4]}"#;
    let w = r#"{"shape": [1, 2, 3, 3], "data": [0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}"#;
    expect_case_error(&format!(r#"{{"op": "conv2d", "inputs": {{"x": {x}, "weight": {w}}}, "outputs": {{}}}}"#), "(run)", "conv2d");
    expect_case_error(r#"{"op": "optimizer", "params": {"name": "lion"}, "inputs": {}, "outputs": {}}"#, "params.name", "lion");
}

#[test]
fn folders_expand_to_their_json_files() {
    let files = collect(&[cases_dir()]).unwrap();
    assert!(files.iter().all(|f| f.extension().unwrap() == "json"));
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(files, sorted);
    assert!(load(&cases_dir().join("no-such-case.json")).unwrap_err().to_string().contains("no-such-case.json"));
}
