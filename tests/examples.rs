//! The examples a user copies to start, run on tiny settings: they must build (cargo test
//! builds them) and work. GPU rule as everywhere: no adapter fails under CI.

use std::path::PathBuf;
use std::process::Command;

/// target/<profile>/examples/<name>, next to this test's own binary in target/<profile>/deps.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>");
    dir.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// Runs an example; None when there is no GPU and skipping is allowed (outside CI).
fn run(name: &str, args: &[&str]) -> Option<String> {
    if wgtrain::gpu::list_adapters().is_empty() {
        assert!(std::env::var_os("CI").is_none(), "CI is set and no GPU adapter exists");
        assert_eq!(std::env::var("WGTRAIN_ALLOW_NO_GPU").as_deref(), Ok("1"), "no GPU adapter (WGTRAIN_ALLOW_NO_GPU=1 skips)");
        eprintln!("\n!!!!!!!! SKIPPED example {name}: no GPU adapter !!!!!!!!\n");
        return None;
    }
    let path = example(name);
    assert!(path.exists(), "{} was not built (cargo test builds the examples)", path.display());
    let out = Command::new(&path).args(args).env("RUST_LOG", "warn").output().expect("run the example");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{name} {args:?} failed:\n{text}");
    Some(text)
}

#[test]
fn train_mnist_trains_a_model_defined_in_rust() {
    // ../shared beside the checkout, or WGTRAIN_SHARED_DATA for a checkout elsewhere.
    let data = std::env::var("WGTRAIN_SHARED_DATA")
        .map(|d| format!("{d}/mnist"))
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist").to_string());
    let data = data.as_str();
    if !std::path::Path::new(data).is_dir() {
        assert!(std::env::var_os("CI").is_none(), "CI is set but {data} is missing");
        eprintln!("\n!!!!!!!! SKIPPED: {data} is missing !!!!!!!!\n");
        return;
    }
    let Some(out) = run("train_mnist", &[data, "1000", "1", "500"]) else { return };
    assert!(out.contains("epoch   1/1") && out.contains("on 500 images") && out.contains("digit 9:"), "{out}");
    // 900 images, one epoch: well above chance (10%) on MNIST.
    let acc: f64 = out.split("accuracy ").nth(1).and_then(|s| s.split('%').next()).and_then(|s| s.parse().ok()).expect("accuracy");
    assert!(acc > 40.0, "test accuracy {acc}%:\n{out}");
}

#[test]
fn custom_layer_verifies_its_kernel_and_trains() {
    let Some(out) = run("custom_layer", &["300", "1"]) else { return };
    assert_eq!(out.matches(": pass").count(), 5, "{out}");
    assert!(!out.contains("FAIL") && out.contains("test accuracy with LeakyReLU"), "{out}");
}

#[test]
fn custom_loop_trains_evaluates_and_saves() {
    let dir = std::env::temp_dir().join(format!("wgtrain-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = dir.join("loop.safetensors");
    let Some(out) = run("custom_loop", &["300", "2", ck.to_str().unwrap()]) else { return };
    assert!(out.contains("epoch 2: train loss") && out.contains("test accuracy"), "{out}");
    let meta = wgtrain::checkpoint::read_meta(&ck).unwrap();
    assert_eq!(meta.progress.epoch, 2);
    assert!(meta.progress.step > 0);
}

#[test]
fn verify_op_checks_one_family() {
    let Some(out) = run("verify_op", &["conv2d"]) else { return };
    assert!(out.contains("passed, 0 failed") && out.contains("conv2d"), "{out}");
}
