//! PyTorch interop: `wgtrain export`, weights-only safetensors files in (F32, F16, BF16),
//! `train --init-from` (with `--reset-head`) and `eval --weights`, and — where PyTorch is
//! installed — a round trip of every zoo model through PyTorch with its logits compared.
//!
//! Run: `cargo test --release --test interop`. The PyTorch test prints a visible
//! `SKIPPED: PyTorch not installed` line where `python3 -c 'import torch'` fails, and fails
//! instead when `WGTRAIN_REQUIRE_TORCH` is set. The command-line tests run the binary on the
//! GPU (lavapipe is enough), which fails when no adapter exists; the library tests use the CPU
//! backend.

mod common;

use common::{s, temp, wgtrain};

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use wgtrain::interop::{self, Dtype, ExportData, ExportTensor, LoadOptions};
use wgtrain::nn::{zoo, Model};
use wgtrain::rng::Rng;
use wgtrain::{checkpoint, Cpu};

/// A model of the zoo on the CPU backend, with batch norm's weights and running statistics
/// randomised (so that eval-mode batch norm is not the identity).
fn zoo_model(name: &str, classes: usize, input: &[usize], seed: u64) -> Model<Cpu> {
    let spec = zoo::model(name, classes).unwrap();
    let mut m = Model::from_spec(&Cpu, &spec, input, seed).unwrap();
    let mut rng = Rng::new(seed + 1000);
    let mut state = m.state_dict(&Cpu).unwrap();
    let bn: Vec<String> = m.buffer_info().iter().filter_map(|b| b.name.strip_suffix(".running_mean").map(str::to_string)).collect();
    for t in state.iter_mut() {
        let Some(prefix) = t.name.rsplit_once('.').map(|(p, _)| p.to_string()).filter(|p| bn.contains(p)) else { continue };
        let (lo, hi) = match t.name.strip_prefix(&prefix).unwrap_or_default() {
            ".weight" => (0.5, 1.5),
            ".bias" | ".running_mean" => (-0.2, 0.2),
            _ => (0.5, 2.0), // running_var
        };
        t.data = rng.vec(t.data.len(), lo, hi);
    }
    m.load_state_dict(&Cpu, &state).unwrap();
    m
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The names and shapes PyTorch's `state_dict()` has for a model: its parameters and buffers,
/// and a `num_batches_tracked` scalar per batch norm.
fn torch_names(m: &Model<Cpu>) -> BTreeMap<String, Vec<usize>> {
    let mut want: BTreeMap<String, Vec<usize>> = m
        .param_info()
        .iter()
        .map(|p| (p.name.clone(), p.shape.clone()))
        .chain(m.buffer_info().iter().map(|b| (b.name.clone(), b.shape.clone())))
        .collect();
    for b in m.buffer_info() {
        if let Some(p) = b.name.strip_suffix(".running_mean") {
            want.insert(format!("{p}.num_batches_tracked"), Vec::new());
        }
    }
    want
}

/// A trained checkpoint (the default CNN, which has batch norm, one epoch of 200 shapes), its
/// export, and the folder they are in.
fn trained_and_exported(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let d = temp(name);
    let (ck, out) = (d.join("ck.safetensors"), d.join("weights.safetensors"));
    let (ok, o, e) =
        wgtrain(&["train", "--epochs", "1", "--train-size", "200", "--batch-size", "32", "--val-fraction", "0", "--checkpoint", s(&ck)]);
    assert!(ok, "train failed:\n{o}\n{e}");
    let (ok, o, e) = wgtrain(&["export", "--checkpoint", s(&ck), "--out", s(&out)]);
    assert!(ok, "export failed:\n{o}\n{e}");
    assert!(o.contains("load_state_dict"), "export says how to load it in PyTorch:\n{o}");
    let (ok, _, e) = wgtrain(&["export", "--checkpoint", s(&ck), "--out", s(&ck)]);
    assert!(!ok && e.contains("the checkpoint itself"), "{e}");
    (d, ck, out)
}

/// The export of a trained checkpoint holds exactly PyTorch's state dict of the model: every
/// name with its shape, nothing else (no optimizer state), F32 floats and I64
/// `num_batches_tracked` (the step count), with the model, input, classes and normalisation
/// in the metadata.
#[test]
fn export_is_exactly_the_torch_state_dict() {
    let (_d, ck, out) = trained_and_exported("names");
    let w = interop::read_weights(&out).unwrap();
    let meta = checkpoint::read_meta(&ck).unwrap();
    let model = Model::from_spec(&Cpu, &zoo::model("default", 10).unwrap(), &[1, 28, 28], 1).unwrap();
    let want = torch_names(&model);
    let got: BTreeMap<String, Vec<usize>> =
        w.tensors.iter().map(|(n, (s, _))| (n.clone(), s.clone())).chain(w.ints.iter().map(|(n, (s, _))| (n.clone(), s.clone()))).collect();
    assert_eq!(got, want, "names and shapes of the export");
    assert!(got.keys().all(|k| !k.starts_with("optimizer.")));
    assert_eq!(w.ints.len(), 2, "the default CNN has two batch norms");
    for (name, (_, v)) in &w.ints {
        assert_eq!(w.dtypes[name], "I64");
        assert_eq!(v, &vec![meta.progress.step as i64], "{name} holds the step count");
    }
    assert!(w.tensors.keys().all(|n| w.dtypes[n] == "F32"));
    // The values are the checkpoint's.
    let (ckt, _) = checkpoint::read_safetensors(&ck).unwrap();
    for (name, (_, v)) in &w.tensors {
        assert_eq!(&ckt[name].1, v, "{name}");
    }
    assert_eq!(w.metadata["model_name"], "default");
    assert_eq!(w.metadata["input"], "[1,28,28]");
    assert_eq!(w.classes().unwrap().unwrap(), meta.classes);
    assert_eq!(w.normalization().unwrap().unwrap(), meta.normalization);
}

/// `eval --weights` on the export reports the checkpoint's loss and accuracy; the export loaded
/// into a model gives bit-identical logits; `train --init-from` with a learning rate of 0
/// starts (and so ends) with the file's parameters, at epoch 0 with a fresh optimizer.
#[test]
fn export_then_eval_weights_and_init_from_match_the_checkpoint() {
    let (d, ck, out) = trained_and_exported("same");
    // The same data flags for both: a weights file records no run, so its data is the flags'.
    let (ok, o1, e) = wgtrain(&["eval", "--checkpoint", s(&ck), "--train-size", "200", "--val-fraction", "0"]);
    assert!(ok, "{o1}\n{e}");
    let (ok, o2, e) = wgtrain(&["eval", "--weights", s(&out), "--model", "default", "--train-size", "200", "--val-fraction", "0"]);
    assert!(ok, "{o2}\n{e}");
    let line = |o: &str| o.lines().find(|l| l.starts_with("loss ")).map(str::to_string).unwrap();
    assert_eq!(line(&o1), line(&o2), "eval of the checkpoint and of its export:\n{o1}\n{o2}");
    assert!(o2.contains("normalisation: from") && o2.contains("metadata"), "says where the normalisation came from:\n{o2}");
    // Without --model: the file's own description.
    let (ok, o3, e) = wgtrain(&["eval", "--weights", s(&out), "--train-size", "200", "--val-fraction", "0"]);
    assert!(ok && line(&o3) == line(&o1), "{o3}\n{e}");

    // Logits through the library: same weights, same numbers.
    let meta = checkpoint::read_meta(&ck).unwrap();
    let spec = checkpoint::spec_of(&ck, &meta).unwrap();
    let mut a = Model::from_spec(&Cpu, &spec, &meta.input, 1).unwrap();
    checkpoint::load(&Cpu, &ck, &mut a).unwrap();
    let mut b = Model::from_spec(&Cpu, &spec, &meta.input, 2).unwrap();
    let w = interop::read_weights(&out).unwrap();
    let done = interop::load_weights(&Cpu, &mut b, &w, LoadOptions::default()).unwrap();
    assert_eq!(done.ignored.len(), 2, "num_batches_tracked accepted and ignored");
    let x = Rng::new(5).vec(3 * 28 * 28, -1.0, 1.0);
    assert_eq!(a.predict_logits(&Cpu, &x).unwrap(), b.predict_logits(&Cpu, &x).unwrap());
    // A checkpoint read as weights: the same, its optimizer state ignored (a fresh start).
    let mut c = Model::from_spec(&Cpu, &spec, &meta.input, 3).unwrap();
    let done = interop::load_weights(&Cpu, &mut c, &interop::read_weights(&ck).unwrap(), LoadOptions::default()).unwrap();
    assert_eq!(done.ignored.len(), 2 * a.param_info().len(), "optimizer.state1/2 of every parameter: {:?}", done.ignored);
    assert_eq!(a.predict_logits(&Cpu, &x).unwrap(), c.predict_logits(&Cpu, &x).unwrap());

    // train --init-from: lr 0 leaves the parameters as loaded (batch norm's running statistics
    // move, they are not trained).
    let ck2 = d.join("ck2.safetensors");
    let (ok, o, e) = wgtrain(&[
        "train",
        "--init-from",
        s(&out),
        "--epochs",
        "1",
        "--train-size",
        "200",
        "--batch-size",
        "32",
        "--optimizer",
        "sgd",
        "--lr",
        "0",
        "--checkpoint",
        s(&ck2),
    ]);
    assert!(ok, "{o}\n{e}");
    assert!(o.contains(&format!("initialised from {}", out.display())) && o.contains("normalisation: from"), "{o}");
    let (t2, _) = checkpoint::read_safetensors(&ck2).unwrap();
    for p in a.param_info() {
        assert_eq!(t2[&p.name].1, w.tensors[&p.name].1, "{} after an epoch at lr 0", p.name);
    }
    let m2 = checkpoint::read_meta(&ck2).unwrap();
    assert_eq!(m2.progress.epoch, 1, "starts at epoch 0");
    assert_eq!(m2.progress.step, 5, "a fresh step count: 180 images in full batches of 32 (the checkpoint had 6)");
    // A weights file is not a checkpoint to resume, and --reset-head needs --init-from.
    let (ok, _, e) = wgtrain(&["train", "--init-from", s(&out), "--resume", s(&ck)]);
    assert!(!ok && e.contains("--init-from") && e.contains("--resume"), "{e}");
    let (ok, _, e) = wgtrain(&["train", "--reset-head"]);
    assert!(!ok && e.contains("--init-from"), "{e}");
}

/// Round to nearest even of `x` to a float with `bits` significant bits and the smallest
/// normal exponent `emin` (f16: 11 bits, emin -14; below it, spacing 2^(emin - bits + 1)),
/// computed by arithmetic, independently of the library's bit manipulation; then the f16 bit
/// pattern. Inputs here are far below f16's largest value.
fn f16_bits_by_arithmetic(x: f32) -> u16 {
    let sign = if x.is_sign_negative() { 0x8000u16 } else { 0 };
    let a = f64::from(x.abs());
    if a < 2f64.powi(-14) {
        let r = (a / 2f64.powi(-24)).round_ties_even() as u16; // subnormal count of 2^-24
        return sign | r; // r == 1024 is the smallest normal's pattern: still right
    }
    let mut e = a.log2().floor() as i32;
    let mut m = (a / 2f64.powi(e - 10)).round_ties_even();
    if m >= 2048.0 {
        e += 1;
        m /= 2.0;
    }
    sign | (((e + 15) as u16) << 10) | (m as u16 - 1024)
}

/// F16 and BF16 files load to within their rounding. A value stored with p significant bits
/// and rounded to nearest is within 2^-p of it, relative: f16 (p = 11) |x' - x| <= 2^-11 |x|
/// (plus half its subnormal spacing, 2^-25, for tiny values), bf16 (p = 8) <= 2^-8 |x|. Checked
/// on a file written by the test and on `export --dtype` of the library; and every one of the
/// 65,536 bit patterns of each format converts to f32 and back unchanged.
#[test]
fn f16_and_bf16_files_load_within_their_rounding() {
    let d = temp("half");
    let model = zoo_model("lenet5", 10, &[1, 28, 28], 3);
    let state = model.state_dict(&Cpu).unwrap();
    let bf16 = |x: f32| -> u16 {
        let b = x.to_bits();
        ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
    };
    for (dtype, tol) in [("F16", 2f32.powi(-11)), ("BF16", 2f32.powi(-8))] {
        // A file as PyTorch would write it, by hand: header, then the 2-byte values.
        let mut header = serde_json::Map::new();
        let mut body = Vec::new();
        for t in &state {
            let start = body.len();
            for &x in &t.data {
                let h = if dtype == "F16" { f16_bits_by_arithmetic(x) } else { bf16(x) };
                body.extend_from_slice(&h.to_le_bytes());
            }
            header.insert(t.name.clone(), serde_json::json!({"dtype": dtype, "shape": t.shape, "data_offsets": [start, body.len()]}));
        }
        let head = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap();
        let path = d.join(format!("{dtype}.safetensors"));
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&(head.len() as u64).to_le_bytes()).unwrap();
        f.write_all(&head).unwrap();
        f.write_all(&body).unwrap();
        drop(f);
        // The library's export in the same dtype.
        let exported = d.join(format!("{dtype}-export.safetensors"));
        interop::export_state_dict(&Cpu, &model, &exported, Dtype::parse(dtype).unwrap()).unwrap();
        for file in [&path, &exported] {
            let w = interop::read_weights(file).unwrap();
            let mut m = Model::from_spec(&Cpu, model.spec.as_ref().unwrap(), &[1, 28, 28], 9).unwrap();
            interop::load_weights(&Cpu, &mut m, &w, LoadOptions::default()).unwrap();
            let loaded = m.state_dict(&Cpu).unwrap();
            let mut worst = 0f32;
            for (a, b) in state.iter().zip(&loaded) {
                assert_eq!(w.dtypes[&a.name], dtype);
                for (x, y) in a.data.iter().zip(&b.data) {
                    let bound = tol * x.abs() + if dtype == "F16" { 2f32.powi(-25) } else { 0.0 };
                    assert!((x - y).abs() <= bound, "{dtype} {}: {x} loaded as {y} (bound {bound})", a.name);
                    worst = worst.max((x - y).abs() / x.abs().max(1e-30));
                }
            }
            assert!(worst > 0.0, "{dtype}: the values were rounded, so some differ");
        }
    }
    for h in 0..=u16::MAX {
        let x = interop::f16_to_f32(h);
        if x.is_nan() {
            assert!(interop::f32_to_f16(x) & 0x7c00 == 0x7c00 && interop::f32_to_f16(x) & 0x3ff != 0);
        } else {
            assert_eq!(interop::f32_to_f16(x), h, "f16 {h:#06x} = {x}");
            assert_eq!(f16_bits_by_arithmetic(x) & 0x7fff, h & 0x7fff, "the test's rounding agrees on {x}");
        }
        let y = interop::bf16_to_f32(h);
        if !y.is_nan() {
            assert_eq!(interop::f32_to_bf16(y), h, "bf16 {h:#06x} = {y}");
        }
    }
    // Rounding at the edges: ties to even, overflow to infinity, underflow to zero.
    assert_eq!(interop::f32_to_f16(65504.0), 0x7bff);
    assert_eq!(interop::f32_to_f16(65520.0), 0x7c00);
    assert_eq!(interop::f32_to_f16(1.0 + 2f32.powi(-11)), 0x3c00);
    assert_eq!(interop::f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
    assert_eq!(interop::f32_to_f16(2f32.powi(-25)), 0);
    assert_eq!(interop::f32_to_f16(-(2f32.powi(-24))), 0x8001);
    assert_eq!(interop::f32_to_bf16(1.0 + 2f32.powi(-8)), 0x3f80);
    // f16 cannot hold every f32 export: refused, naming the tensor.
    let mut big = zoo_model("lenet5", 10, &[1, 28, 28], 3);
    let mut st = big.state_dict(&Cpu).unwrap();
    st[0].data[0] = 1e5;
    big.load_state_dict(&Cpu, &st).unwrap();
    let e = interop::export_state_dict(&Cpu, &big, &d.join("big.safetensors"), Dtype::F16).unwrap_err().to_string();
    assert!(e.contains("layers.0.weight") && e.contains("65504"), "{e}");
}

/// A file with a missing, an unexpected and a mis-shaped tensor: one error naming the file and
/// all three (with the file's and the model's shapes); a head for another class count suggests
/// --reset-head; a tensor of an unsupported dtype is named.
#[test]
fn mismatched_files_give_one_error_listing_every_problem() {
    let d = temp("mismatch");
    let model = zoo_model("lenet5", 10, &[1, 28, 28], 4);
    let mut tensors = interop::export_tensors(&Cpu, &model).unwrap();
    tensors.retain(|t| t.name != "layers.3.bias"); // missing
    tensors.push(ExportTensor { name: "layers.99.weight".into(), shape: vec![2, 2], data: ExportData::Float(vec![0.0; 4]) });
    let t = tensors.iter_mut().find(|t| t.name == "layers.7.weight").unwrap(); // [120, 400]
    t.shape = vec![120, 399];
    t.data = ExportData::Float(vec![0.0; 120 * 399]);
    let path = d.join("bad.safetensors");
    interop::write_tensors(&path, &tensors, Dtype::F32, &BTreeMap::new()).unwrap();
    let (ok, o, e) = wgtrain(&["eval", "--weights", s(&path), "--model", "lenet5"]);
    assert!(!ok, "{o}");
    assert_eq!(e.matches("error").count(), 1, "one error:\n{e}");
    for part in [
        s(&path),
        "missing: layers.3.bias [16]",
        "unexpected: layers.99.weight [2, 2]",
        "layers.7.weight (file [120, 399], model [120, 400])",
    ] {
        assert!(e.contains(part), "error names {part}:\n{e}");
    }
    assert!(!e.contains("panicked"), "{e}");

    // A head of 10 classes for a 3-class model: the error suggests --reset-head.
    let ten = d.join("ten.safetensors");
    interop::export_state_dict(&Cpu, &model, &ten, Dtype::F32).unwrap();
    let mut three = Model::from_spec(&Cpu, &zoo::model("lenet5", 3).unwrap(), &[1, 28, 28], 1).unwrap();
    let w = interop::read_weights(&ten).unwrap();
    let e = interop::load_weights(&Cpu, &mut three, &w, LoadOptions::default()).unwrap_err().to_string();
    assert!(e.contains("--reset-head") && e.contains("10 classes") && e.contains("layers.11.weight (file [10, 84], model [3, 84])"), "{e}");

    // Unsupported dtypes and broken files are errors that name the file and the tensor.
    let mut raw = std::fs::read(&ten).unwrap();
    let pos = raw.windows(5).position(|w| w == b"\"F32\"").unwrap();
    raw[pos + 1..pos + 4].copy_from_slice(b"C64");
    let odd = d.join("odd.safetensors");
    std::fs::write(&odd, &raw).unwrap();
    let e = interop::read_weights(&odd).unwrap_err().to_string();
    assert!(e.contains("odd.safetensors") && e.contains("dtype C64") && e.contains("expected F32, F16, BF16"), "{e}");
    let short = d.join("short.safetensors");
    let good = std::fs::read(&ten).unwrap();
    std::fs::write(&short, &good[..good.len() - 4]).unwrap();
    let e = interop::read_weights(&short).unwrap_err().to_string();
    assert!(e.contains("short.safetensors") && e.contains("truncated"), "{e}");
}

/// Writes a 3-class image folder (RGB PNGs, 28x28): a bright, a dark and a striped class.
fn three_class_folder(dir: &Path) {
    for (c, class) in ["bright", "dark", "striped"].iter().enumerate() {
        let sub = dir.join(class);
        std::fs::create_dir_all(&sub).unwrap();
        for i in 0..12u32 {
            let img = image::RgbImage::from_fn(28, 28, |x, y| {
                let v = match c {
                    0 => 200 + (x + y + i) as u8 % 50,
                    1 => 10 + (x * y + i) as u8 % 40,
                    _ => ((x / 3 + i) % 2 * 255) as u8,
                };
                image::Rgb([v, v / 2, 255 - v])
            });
            img.save(sub.join(format!("{i}.png"))).unwrap();
        }
    }
}

/// `--reset-head`: a file of a 10-class model fine-tunes on a 3-class data set, its head
/// replaced by a fresh [3, 128] one and every other layer starting from the file; without the
/// flag the class-count mismatch is an error that suggests it.
#[test]
fn reset_head_fine_tunes_a_10_class_file_on_3_classes() {
    let d = temp("head");
    let folder = d.join("three");
    three_class_folder(&folder);
    let mut ten = zoo_model("default", 10, &[3, 28, 28], 6);
    ten.normalization = vec![(0.5, 0.25); 3];
    let file = d.join("ten.safetensors");
    interop::export_state_dict(&Cpu, &ten, &file, Dtype::F32).unwrap();
    let ck = d.join("ft.safetensors");
    let args = |head: bool| {
        let mut v = vec!["train", "--dataset", "folder", "--data", s(&folder), "--image-size", "28", "--epochs", "1"];
        v.extend(["--batch-size", "8", "--val-fraction", "0", "--init-from", s(&file), "--checkpoint", s(&ck)]);
        if head {
            v.push("--reset-head");
        }
        v
    };
    let (ok, o, e) = wgtrain(&args(false));
    assert!(!ok && e.contains("--reset-head") && e.contains("10 classes and the model 3"), "{o}\n{e}");
    let (ok, o, e) = wgtrain(&args(true));
    assert!(ok, "{o}\n{e}");
    assert!(o.contains("head (layers.14.weight, layers.14.bias) new for 3 classes"), "{o}");
    assert!(o.contains("normalisation: from") && o.contains("mean 0.5000, 0.5000, 0.5000"), "{o}");
    let (t, meta) = checkpoint::read_safetensors(&ck).unwrap();
    assert_eq!(t["layers.14.weight"].0, vec![3, 128]);
    assert_eq!(t["layers.14.bias"].0, vec![3]);
    assert_eq!(meta["classes"], "[\"bright\",\"dark\",\"striped\"]");
    // The body started from the file: after one epoch it is near it, while a fresh model
    // (another seed's initialisation) is far from it.
    let src = interop::read_weights(&file).unwrap();
    let moved = max_abs_diff(&t["layers.11.weight"].1, &src.tensors["layers.11.weight"].1);
    let fresh = zoo_model("default", 3, &[3, 28, 28], 1).state_dict(&Cpu).unwrap();
    let other = max_abs_diff(&fresh.iter().find(|t| t.name == "layers.11.weight").unwrap().data, &src.tensors["layers.11.weight"].1);
    assert!(moved < 0.25 * other, "fine-tuned layers.11 moved {moved} from the file; an unrelated initialisation differs by {other}");
}

/// Whether `python3` has torch and safetensors; `None` (after a visible SKIPPED line) when it
/// has not, unless WGTRAIN_REQUIRE_TORCH is set, which makes that a failure.
fn torch_available() -> bool {
    let ok = Command::new("python3").args(["-c", "import torch, safetensors"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("WGTRAIN_REQUIRE_TORCH").is_none(),
            "WGTRAIN_REQUIRE_TORCH is set but python3 -c 'import torch, safetensors' failed"
        );
        // Written past the test harness's capture, so it shows in a passing run.
        let _ = writeln!(std::io::stderr(), "\nSKIPPED: PyTorch not installed (python3 -c 'import torch' failed)\n");
    }
    ok
}

/// Every zoo model, both ways, on its natural input (batch 2): wgtrain's weights exported,
/// loaded by PyTorch with `load_state_dict(strict=True)`, give wgtrain's logits; PyTorch's own
/// random initialisation saved with `save_file(model.state_dict())` and loaded by wgtrain gives
/// PyTorch's logits. Tolerance: |a - b| <= 1e-4 * max |logit| + 1e-7: both sides compute in
/// f32 with sums in different orders (im2col GEMMs vs oneDNN), dot products of up to 9,216
/// terms through up to 20 layers; rounding of a k-term f32 sum grows like sqrt(k) * 6e-8
/// typically, about 1e-5 relative here, and 1e-4 relative still catches any wrong weight or
/// layout (measured: at most 3e-6 for logits up to 8). Relative to the largest logit, not to
/// 1: PyTorch's own initialisation gives logits of 0.02 to 0.4.
#[test]
fn torch_round_trip_for_every_zoo_model() {
    if !torch_available() {
        return;
    }
    let d = temp("torch");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/torch_roundtrip.py");
    for name in zoo::NAMES {
        let [c, h, w] = zoo::natural_input(name).unwrap();
        let mut model = zoo_model(name, 10, &[c, h, w], 11);
        let dir = d.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let (wg, xf) = (dir.join("wgtrain.safetensors"), dir.join("x.safetensors"));
        interop::export_state_dict(&Cpu, &model, &wg, Dtype::F32).unwrap();
        let x = Rng::new(12).vec(2 * c * h * w, -1.0, 1.0);
        let xt = ExportTensor { name: "x".into(), shape: vec![2, c, h, w], data: ExportData::Float(x.clone()) };
        interop::write_tensors(&xf, &[xt], Dtype::F32, &BTreeMap::new()).unwrap();
        let out = Command::new("python3")
            .arg(&script)
            .args(["--model", name, "--classes", "10", "--input", s(&xf), "--wgtrain-weights", s(&wg), "--out", s(&dir)])
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let logits = |f: &str| interop::read_weights(&dir.join(f)).unwrap().tensors.remove("logits").unwrap().1;
        let tol = |r: &[f32]| 1e-4 * r.iter().fold(0f32, |m, v| m.max(v.abs())) + 1e-7;

        let ours = model.predict_logits(&Cpu, &x).unwrap();
        let theirs = logits("logits_of_wgtrain_weights.safetensors");
        let d1 = max_abs_diff(&ours, &theirs);
        assert!(d1 <= tol(&ours), "{name}: wgtrain -> PyTorch: logits differ by {d1}:\n{ours:?}\n{theirs:?}");

        let torch_file = interop::read_weights(&dir.join("torch_init.safetensors")).unwrap();
        let mut m = Model::from_spec(&Cpu, model.spec.as_ref().unwrap(), &[c, h, w], 99).unwrap();
        interop::load_weights(&Cpu, &mut m, &torch_file, LoadOptions::default()).unwrap();
        let torch_logits = logits("torch_logits.safetensors");
        let ours2 = m.predict_logits(&Cpu, &x).unwrap();
        let d2 = max_abs_diff(&ours2, &torch_logits);
        assert!(d2 <= tol(&torch_logits), "{name}: PyTorch -> wgtrain: logits differ by {d2}:\n{ours2:?}\n{torch_logits:?}");
        let big = |v: &[f32]| v.iter().fold(0f32, |m, x| m.max(x.abs()));
        let _ = writeln!(
            std::io::stderr(),
            "torch round trip {name:<8} wgtrain->torch max |dlogit| {d1:.2e} (max |logit| {:.3}), torch->wgtrain {d2:.2e} (max |logit| {:.3})",
            big(&ours),
            big(&torch_logits)
        );
    }
}
