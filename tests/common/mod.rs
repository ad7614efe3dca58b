//! Helpers shared by the test binaries that include this module (`mod common;`): running the
//! `wgtrain` binary, temporary folders, the shared data, and opening GPU devices.
#![allow(dead_code)] // each binary uses its own part

use std::path::{Path, PathBuf};
use std::process::Command;

use wgtrain::{Gpu, GpuOptions};

/// Runs the `wgtrain` binary: (success, stdout, stderr).
pub fn wgtrain(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wgtrain")).args(args).env("RUST_LOG", "warn").output().expect("run wgtrain");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A fresh, empty temporary folder for one test.
pub fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgtrain-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The project's data beside the checkout (../shared/data), or WGTRAIN_SHARED_DATA.
pub fn shared_data() -> PathBuf {
    std::env::var_os("WGTRAIN_SHARED_DATA").map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"), PathBuf::from)
}

/// A path as a string argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Opens a new device on the default adapter; `None` (with a loud note) only outside CI when
/// `WGTRAIN_ALLOW_NO_GPU=1`: under CI a missing adapter fails the test.
pub fn open_gpu() -> Option<Gpu> {
    open_gpu_with(&GpuOptions::default())
}

fn open_gpu_with(opts: &GpuOptions) -> Option<Gpu> {
    match Gpu::new(opts) {
        Ok(g) => Some(g),
        Err(e) if std::env::var_os("CI").is_none() && std::env::var("WGTRAIN_ALLOW_NO_GPU").as_deref() == Ok("1") => {
            eprintln!("\n!!!!!!!! SKIPPED: no GPU adapter ({e}) !!!!!!!!\n");
            None
        }
        Err(e) => panic!("no GPU adapter: {e} (install mesa-vulkan-drivers, or WGTRAIN_ALLOW_NO_GPU=1 outside CI)"),
    }
}

/// One device on the default adapter shared by every test of the binary (see [`open_gpu`]).
pub fn shared_gpu() -> Option<&'static Gpu> {
    static GPU: std::sync::OnceLock<Option<Gpu>> = std::sync::OnceLock::new();
    // Compiles serially: tests run on parallel threads, which keep the cores busy already, and
    // the exit handler (src/gpu/exit.rs) would wait for a helper still compiling at exit.
    GPU.get_or_init(|| open_gpu_with(&GpuOptions { serial_compile: true, ..Default::default() })).as_ref()
}

/// The parameters and buffers of a checkpoint or weights file, by name.
pub fn tensors(path: &Path) -> std::collections::BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    wgtrain::interop::read_weights(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).tensors
}
