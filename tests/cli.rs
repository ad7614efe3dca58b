//! The command line, end to end: train with checkpoint, log and JSON, then eval and predict
//! from the checkpoint; summary; and bad options, which must fail with a clear message and no
//! panic. Uses the GPU (lavapipe is enough), like the other tests.

mod common;

use std::process::Command;

use common::{s, shared_data, temp, wgtrain};

#[test]
fn train_then_eval_and_predict_from_the_checkpoint() {
    let d = temp("run");
    let (ck, log, json) = (d.join("m.safetensors"), d.join("log.csv"), d.join("m.json"));
    let (ok, out, err) = wgtrain(&[
        "train",
        "--model",
        "examples/models/small-cnn.toml",
        "--epochs",
        "2",
        "--train-size",
        "400",
        "--batch-size",
        "32",
        "--checkpoint",
        s(&ck),
        "--log",
        s(&log),
        "--json",
        s(&json),
    ]);
    assert!(ok, "train failed:\n{out}\n{err}");
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with("test accuracy: ") && last.ends_with('%'), "last line: {last}");
    let csv = std::fs::read_to_string(&log).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.starts_with("run,model,dataset,optimizer,base_lr,batch,seed,epoch,lr,train_loss"), "{csv}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(report["test_accuracy"].as_f64().is_some());

    let (ok, out, err) = wgtrain(&["eval", "--checkpoint", s(&ck), "--train-size", "400", "--split", "val", "--val-fraction", "0"]);
    assert!(!ok && err.contains("val split") && err.contains("--val-fraction 0"), "an empty split is an error, not 0.00%:\n{out}\n{err}");
    // A checkpoint of 1-channel 28x28 inputs on a folder of RGB images: refused, naming both.
    let folder = d.join("rgb");
    for class in ["cats", "dogs"] {
        std::fs::create_dir_all(folder.join(class)).unwrap();
        for i in 0..5 {
            image::RgbImage::from_pixel(8, 8, image::Rgb([i * 40, 0, 200])).save(folder.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    let (ok, out, err) = wgtrain(&["eval", "--checkpoint", s(&ck), "--dataset", "folder", "--data", s(&folder), "--other-data"]);
    assert!(!ok && err.contains("m.safetensors") && err.contains("[1, 28, 28]") && err.contains("[3, 32, 32]"), "{out}\n{err}");
    let (ok, out, err) = wgtrain(&["eval", "--checkpoint", s(&ck), "--train-size", "400"]);
    assert!(ok, "eval failed:\n{out}\n{err}");
    assert!(out.contains("accuracy") && out.contains("confusion matrix") && out.contains("disk"), "{out}");

    let png = d.join("one.png");
    image::GrayImage::from_fn(28, 28, |x, y| image::Luma([if (x as i32 - 14).pow(2) + (y as i32 - 14).pow(2) < 64 { 255 } else { 0 }]))
        .save(&png)
        .unwrap();
    let pj = d.join("predict.json");
    let (ok, out, err) = wgtrain(&["predict", "--checkpoint", s(&ck), "--top-k", "2", s(&png), "--json", s(&pj)]);
    assert!(ok, "predict failed:\n{out}\n{err}");
    assert!(out.contains("one.png:") && out.contains('%'), "{out}");
    assert!(out.contains("trained on shapes, 10 classes (disk"), "predict says what the model knows: {out}");
    let p: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&pj).unwrap()).unwrap();
    let top = p["predictions"][0]["top"].as_array().unwrap();
    assert_eq!(top.len(), 2);
    let (p0, p1) = (top[0]["probability"].as_f64().unwrap(), top[1]["probability"].as_f64().unwrap());
    assert!(p0 >= p1 && p0 + p1 <= 1.0 + 1e-6 && top[0]["class"].is_string(), "{p}");

    // verify --json: every check with its error, and whether all passed.
    let vj = d.join("verify.json");
    let (ok, out, err) = wgtrain(&["verify", "--case", "kernels-tests/cases/conv2d_1x1.json", "--backend", "cpu", "--json", s(&vj)]);
    assert!(ok, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&vj).unwrap()).unwrap();
    let checks = v["checks"].as_array().unwrap();
    assert!(v["passed"] == true && !checks.is_empty(), "{v}");
    assert!(checks.iter().all(|c| c["max_abs_err"].as_f64().is_some_and(|e| e <= c["allowed"].as_f64().unwrap())), "{v}");
}

#[test]
fn summary_of_alexnet() {
    let (ok, out, _) = wgtrain(&["summary", "--model", "alexnet", "--input", "3,227,227"]);
    assert!(ok);
    assert!(out.contains("37,748,736") && out.contains("4,096,000"), "{out}");
    // Without --input, each zoo model is shown for the input it was designed for.
    let (ok, natural, err) = wgtrain(&["summary", "--model", "alexnet"]);
    assert!(ok && natural == out, "{natural}{err}");
    let (ok, out, err) = wgtrain(&["summary", "--model", "resnet20"]);
    assert!(ok && out.starts_with("model resnet20 for input [3, 32, 32]"), "{out}{err}");
}

#[test]
fn bad_options_fail_cleanly() {
    let cases: &[(&[&str], &str)] = &[
        (&["train", "--batch-size", "0"], "batch size 0"),
        (&["train", "--lr", "-1", "--epochs", "1", "--train-size", "100"], "--lr -1: expected a finite value >= 0"),
        (&["train", "--model", "resnet-9000"], "unknown model 'resnet-9000'"),
        (&["train", "--dataset", "mnist"], "--data"),
        (&["train", "--dataset", "mnist", "--data", "/no/such/folder"], "/no/such/folder"),
        (&["train", "--epochs", "0", "--train-size", "100"], "--epochs 0"),
        (&["train", "--mixup", "inf", "--train-size", "100"], "--mixup inf"),
        (
            &["train", "--train-size", "100", "--checkpoint", "/no/such/dir/m.safetensors"],
            "--checkpoint /no/such/dir/m.safetensors: cannot write",
        ),
        (&["train", "--train-size", "100", "--log", "/no/such/dir/log.csv"], "--log /no/such/dir/log.csv: cannot write"),
        (&["train", "--train-size", "100", "--json", "/tmp"], "--json /tmp: is a folder"),
        (&["augment-preview", "--cutmix", "inf", "--out", "/tmp/never.png"], "--cutmix inf"),
        (&["summary", "--input", "3,227"], "--input"),
        (&["eval", "--checkpoint", "/no/such.safetensors"], "/no/such.safetensors"),
        (&["predict", "--checkpoint", "/no/such.safetensors", "x.png"], "/no/such.safetensors"),
        (&["verify", "--case", "/no/such/case.json"], "/no/such/case.json"),
        (&["--device", "no-such-gpu", "verify"], "no-such-gpu"),
    ];
    for (args, expect) in cases {
        let (ok, out, err) = wgtrain(args);
        let all = format!("{out}{err}");
        assert!(!ok, "{args:?} succeeded:\n{all}");
        assert!(all.lines().all(|l| l.matches("(os error").count() <= 1), "{args:?}: the OS error is repeated:\n{all}");
        assert!(all.contains(expect), "{args:?}: expected '{expect}' in:\n{all}");
        assert!(!all.contains("panicked"), "{args:?} panicked:\n{all}");
    }
}

/// An optimizer flag given as 0 means 0, even where the preset's default is not: AdamW's
/// weight decay (0.01) and the momentum of `nesterov` (which then cannot run and is refused).
#[test]
fn optimizer_flags_override_the_preset_even_with_zero() {
    let d = temp("opt");
    let ck = d.join("adamw.safetensors");
    let base = ["train", "--model", "lenet5", "--epochs", "1", "--train-size", "100", "--checkpoint", s(&ck)];
    let (ok, out, err) = wgtrain(&[&base[..], &["--optimizer", "adamw", "--weight-decay", "0"]].concat());
    assert!(ok, "{out}{err}");
    let meta = wgtrain::checkpoint::read_meta(&ck).unwrap();
    let opt = meta.optimizer.expect("the checkpoint records the optimizer");
    assert_eq!((opt.kind, opt.weight_decay), (wgtrain::OptimizerKind::AdamW, 0.0));
    // A new run does not silently replace another run's checkpoint.
    let (ok, out, err) = wgtrain(&[&base[..], &["--optimizer", "adamw"]].concat());
    assert!(!ok && err.contains("already holds a checkpoint of model 'lenet5' after epoch 1") && err.contains("--overwrite"), "{out}{err}");
    let (ok, out, err) = wgtrain(&[&base[..], &["--optimizer", "adamw", "--overwrite"]].concat());
    assert!(ok, "{out}{err}");
    assert_eq!(wgtrain::checkpoint::read_meta(&ck).unwrap().optimizer.unwrap().weight_decay, 0.01);
    let (ok, out, err) = wgtrain(&["train", "--optimizer", "nesterov", "--momentum", "0", "--epochs", "1", "--train-size", "100"]);
    assert!(!ok && err.contains("nesterov needs momentum > 0"), "{out}{err}");
}

/// Every experiment through the command line: the README's experiment commands, exactly as
/// written but with fewer images, epochs, members and folds, on the GPU (lavapipe in CI). Each
/// writes its four kinds of output; a second run on the same folder resumes (redoes nothing);
/// bad experiment flags are clear errors.
#[test]
fn the_readme_experiments_run_small_and_resume() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let commands: Vec<Vec<String>> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("cargo run --release -- experiment "))
        .map(|l| {
            // Split on spaces, keeping 'quoted' words whole.
            let mut words = Vec::new();
            for (i, part) in l.split('\'').enumerate() {
                if i % 2 == 1 {
                    words.push(part.to_string());
                } else {
                    words.extend(part.split_whitespace().map(String::from));
                }
            }
            words
        })
        .collect();
    let names: Vec<&str> = commands.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(names, ["batch-size", "optimizers", "cv", "bagging", "boosting", "regularization"], "the README's experiment commands");
    let smaller =
        [("--train-size", "120"), ("--test-size", "40"), ("--epochs", "1"), ("--members", "2"), ("--learners", "2"), ("--folds", "2")];
    let pngs: [(&str, &[&str]); 6] = [
        ("batch-size", &["throughput.png", "generalization.png", "interpolation.png"]),
        ("optimizers", &["curves.png", "paths-beale.png"]),
        ("cv", &["grid.png"]),
        ("bagging", &["accuracy_vs_members.png"]),
        ("boosting", &["accuracy_vs_learners.png"]),
        ("regularization", &["test_accuracy.png", "gap.png"]),
    ];
    for mut args in commands {
        let name = args[0].clone();
        let d = temp(&format!("exp-{name}"));
        for k in 1..args.len() {
            if let Some((_, v)) = smaller.iter().find(|(f, _)| *f == args[k - 1]) {
                args[k] = v.to_string();
            }
            if args[k - 1] == "--out" {
                args[k] = s(&d).to_string();
            }
        }
        let mut full = vec!["experiment".to_string()];
        full.extend(args);
        if name == "batch-size" {
            full.extend(["--windows", "2", "--steps-per-window", "2", "--sharpness-samples", "40"].map(String::from));
        }
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        let (ok, out, err) = wgtrain(&full);
        assert!(ok, "experiment {name} failed:\n{out}\n{err}");
        assert!(out.contains("[1/"), "{name}: no run counter in\n{out}");
        let expected = pngs.iter().find(|(n, _)| *n == name).unwrap().1;
        for f in ["settings.json", "results.csv", "report.md"].iter().chain(expected) {
            assert!(d.join(f).is_file(), "{name}: no {f}:\n{out}");
        }
        let settings: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("settings.json")).unwrap()).unwrap();
        assert_eq!(settings["experiment"], name.as_str());
        assert!(settings["environment"]["device"].as_str().is_some_and(|d| !d.is_empty()), "{settings}");
        assert!(settings["environment"]["wgtrain"].is_string());
        let csv = std::fs::read_to_string(d.join("results.csv")).unwrap();
        assert!(csv.lines().count() >= 2, "{name}: {csv}");
        let (ok, again, err) = wgtrain(&full);
        assert!(ok, "{name} resume failed:\n{again}\n{err}");
        assert!(again.contains("done before") && !again.contains("epoch   1/"), "{name}: the resumed run trained again:\n{again}");
        assert_eq!(std::fs::read_to_string(d.join("results.csv")).unwrap(), csv, "{name}: resumed results differ");
    }
    let d = temp("exp-bad");
    for (args, want) in [
        (vec!["experiment", "cv", "--out", s(&d), "--grid", "speed=1"], "weight-decay"),
        (vec!["experiment", "cv", "--out", s(&d), "--folds", "1"], "2"),
        (vec!["experiment", "optimizers", "--out", s(&d), "--lrs", "sgd=fast"], "sgd=fast"),
        (vec!["experiment", "regularization", "--out", s(&d), "--only", "magic"], "magic"),
        (vec!["experiment", "bagging", "--out", s(&d), "--dataset", "mnist"], "--data"),
        (vec!["experiment", "bagging", "--out", s(&d), "--seeds", "0"], "--seeds 0"),
    ] {
        let (ok, out, err) = wgtrain(&args);
        assert!(!ok && err.contains(want) && !err.contains("panicked"), "{args:?}: {out}\n{err}");
    }
}

/// Quiet by default: no INFO lines unless asked for with -v, and no Mesa warning about a missing
/// XDG_RUNTIME_DIR (the process gives itself a private one).
#[test]
fn output_is_quiet_unless_asked() {
    let run = |args: &[&str]| {
        let out =
            Command::new(env!("CARGO_BIN_EXE_wgtrain")).args(args).env_remove("RUST_LOG").env_remove("XDG_RUNTIME_DIR").output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&["verify", "--case", "kernels-tests/cases/relu.json"]);
    assert!(!err.contains("INFO") && !err.contains("XDG_RUNTIME_DIR"), "stderr should be empty:\n{err}");
    let err = run(&["-v", "verify", "--case", "kernels-tests/cases/relu.json"]);
    assert!(err.contains("INFO") && err.contains("device:"), "-v shows the device:\n{err}");
}

/// The help lists what the code accepts: every zoo model, every matmul variant, every optimizer
/// preset, and no command or flag without a description.
#[test]
fn help_lists_every_choice_and_describes_every_flag() {
    let help = |args: &[&str]| wgtrain(&[args, &["--help"]].concat()).1;
    let train = help(&["train"]);
    for m in wgtrain::nn::zoo::NAMES {
        assert!(train.contains(m), "train --help misses model {m}:\n{train}");
    }
    for o in wgtrain::Optimizer::PRESETS {
        assert!(train.contains(o), "train --help misses optimizer {o}");
    }
    let top = help(&[]);
    for v in wgtrain::MatmulVariant::ALL {
        assert!(top.contains(v.name()), "--help misses matmul variant {}", v.name());
    }
    for cmd in ["train", "eval", "predict", "augment-preview", "summary", "verify", "experiment cv"] {
        let text = help(&cmd.split(' ').collect::<Vec<_>>());
        // In long help a flag's line is followed by its description, indented further; clap
        // prints a flag with no doc comment with nothing (or the next flag) below it.
        let lines: Vec<&str> = text.lines().collect();
        let is_flag =
            |l: &str| l.trim_start().strip_prefix('-').is_some_and(|r| r.starts_with(|c: char| c == '-' || c.is_ascii_alphanumeric()));
        let flags: Vec<usize> = (0..lines.len()).filter(|&i| is_flag(lines[i])).collect();
        assert!(flags.len() >= 3, "{cmd} --help: no flags found:\n{text}");
        for i in flags {
            let described =
                lines.get(i + 1).is_some_and(|n| n.starts_with("          ") && !n.trim().is_empty() && !n.trim_start().starts_with('-'));
            assert!(described, "{cmd} --help: {} has no description", lines[i].trim());
        }
    }
}

/// A run records its data and settings: `eval` finds the same test subset without being told,
/// refuses another data set unless asked, `--resume` refuses flags that change the run and
/// takes more epochs, `--max-steps`/`--steps-per-epoch` bound the steps, and every CSV line
/// names its run.
#[test]
fn runs_remember_their_data_and_settings() {
    let d = temp("remember");
    let (ck, log, json) = (d.join("m.safetensors"), d.join("log.csv"), d.join("r.json"));
    let base = ["train", "--train-size", "300", "--test-size", "70", "--batch-size", "32", "--optimizer", "sgd", "--seed", "5"];
    let mut args = base.to_vec();
    args.extend(["--epochs", "1", "--steps-per-epoch", "3", "--checkpoint", s(&ck), "--log", s(&log), "--json", s(&json)]);
    let (ok, out, err) = wgtrain(&args);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("270 train / 30 validation / 70 test images of 1x28x28"), "{out}");
    let meta = wgtrain::checkpoint::read_meta(&ck).unwrap();
    assert_eq!(meta.progress.step, 3, "--steps-per-epoch 3 for 1 epoch");
    let run = meta.run.expect("the checkpoint records the run");
    assert_eq!((run.data.train_size, run.data.test_size, run.config.seed), (Some(300), Some(70), 5));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["run_id"], run.run_id.as_str());
    assert_eq!(report["settings"]["config"]["steps_per_epoch"], 3);

    // eval with no data flags: the run's own 70 test images; the JSON names them.
    let ej = d.join("eval.json");
    let (ok, out, err) = wgtrain(&["eval", "--checkpoint", s(&ck), "--json", s(&ej)]);
    assert!(ok && out.contains("(test split, 70 images)") && out.contains(&run.run_id), "{out}\n{err}");
    let e: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&ej).unwrap()).unwrap();
    assert_eq!(e["evaluation"]["samples"], 70);
    assert_eq!(e["data"]["source"], "shapes");
    // Another data set is refused unless asked for.
    let mnist = shared_data().join("mnist");
    let (ok, _, err) = wgtrain(&["eval", "--checkpoint", s(&ck), "--dataset", "mnist", "--data", s(&mnist)]);
    assert!(!ok && err.contains("trained on shapes") && err.contains("--other-data"), "{err}");

    // --resume refuses flags that change the run, naming each; more epochs continue it.
    let (ok, _, err) = wgtrain(&["train", "--resume", s(&ck), "--checkpoint", s(&ck), "--lr", "0.5", "--batch-size", "16"]);
    assert!(!ok && err.contains("--lr") && err.contains("--batch-size") && err.contains("recorded: 32"), "{err}");
    let (ok, out, err) = wgtrain(&["train", "--resume", s(&ck), "--checkpoint", s(&ck), "--epochs", "2", "--log", s(&log)]);
    assert!(ok && out.contains("continuing to 2 epochs"), "{out}\n{err}");
    assert_eq!(wgtrain::checkpoint::read_meta(&ck).unwrap().progress.step, 6, "the recorded --steps-per-epoch 3 kept");

    // A second run appended to the same log: every line names its run and settings.
    let mut args = base.to_vec();
    args[8] = "adam";
    args.extend(["--epochs", "1", "--max-steps", "2", "--log", s(&log)]);
    let (ok, out, err) = wgtrain(&args[..]);
    assert!(ok && out.contains("at most 2 steps"), "{out}\n{err}");
    let csv = std::fs::read_to_string(&log).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert_eq!((rows[0][0], rows[1][0]), (run.run_id.as_str(), run.run_id.as_str()), "a resumed run keeps its id");
    assert_ne!(rows[2][0], run.run_id, "{csv}");
    assert_eq!((rows[0][3], rows[2][3], rows[2][5], rows[2][6]), ("sgd", "adam", "32", "5"), "{csv}");
    // A file that is not a wgtrain log is refused before training.
    let other = d.join("other.csv");
    std::fs::write(&other, "a,b\n1,2\n").unwrap();
    let (ok, _, err) = wgtrain(&["train", "--train-size", "100", "--log", s(&other)]);
    assert!(!ok && err.contains("other.csv") && err.contains("header"), "{err}");
}

/// `--train-size`/`--test-size` take stratified subsets of a real data set.
#[test]
fn subsets_of_a_real_data_set() {
    let mnist = shared_data().join("mnist");
    let (ok, out, err) =
        wgtrain(&["train", "--dataset", "mnist", "--data", s(&mnist), "--train-size", "200", "--test-size", "50", "--max-steps", "1"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("180 train / 20 validation / 50 test images") && out.contains("for 1 epoch"), "{out}");
}

/// Every optimizer flag reaches the optimizer the run trains with (read back from the
/// checkpoint's metadata), one short run per optimizer family.
#[test]
fn every_optimizer_flag_reaches_the_optimizer() {
    use wgtrain::{Optimizer, OptimizerKind};
    let d = temp("opt-flags");
    let ck = d.join("m.safetensors");
    type Check = Box<dyn Fn(&Optimizer) -> bool>;
    let runs: Vec<(Vec<&str>, Check)> = vec![
        (
            vec!["--optimizer", "sgd", "--lr", "0.02", "--momentum", "0.8", "--dampening", "0.3", "--weight-decay", "0.001"],
            Box::new(|o| {
                (o.kind, o.lr, o.momentum, o.dampening, o.weight_decay, o.nesterov) == (OptimizerKind::Sgd, 0.02, 0.8, 0.3, 0.001, false)
            }),
        ),
        (
            vec!["--optimizer", "momentum", "--nesterov", "--momentum", "0.7"],
            Box::new(|o| (o.kind, o.momentum, o.nesterov) == (OptimizerKind::Sgd, 0.7, true)),
        ),
        (
            vec!["--optimizer", "adagrad", "--lr-decay", "0.01", "--initial-accumulator-value", "0.1", "--eps", "1e-9"],
            Box::new(|o| (o.kind, o.lr_decay, o.initial_accumulator_value, o.eps) == (OptimizerKind::Adagrad, 0.01, 0.1, 1e-9)),
        ),
        (vec!["--optimizer", "adadelta", "--rho", "0.8"], Box::new(|o| (o.kind, o.rho) == (OptimizerKind::Adadelta, 0.8))),
        (
            vec!["--optimizer", "rmsprop", "--alpha", "0.9", "--momentum", "0.5"],
            Box::new(|o| (o.kind, o.alpha, o.momentum) == (OptimizerKind::Rmsprop, 0.9, 0.5)),
        ),
        (
            vec!["--optimizer", "adamw", "--betas", "0.8,0.99", "--eps", "1e-6"],
            Box::new(|o| (o.kind, o.betas, o.eps) == (OptimizerKind::AdamW, (0.8, 0.99), 1e-6)),
        ),
    ];
    for (flags, check) in runs {
        let base = ["train", "--model", "examples/models/small-cnn.toml", "--epochs", "1", "--train-size", "100", "--overwrite"];
        let (ok, out, err) = wgtrain(&[&base[..], &["--checkpoint", s(&ck)], &flags[..]].concat());
        assert!(ok, "{flags:?}:\n{out}{err}");
        let opt = wgtrain::checkpoint::read_meta(&ck).unwrap().optimizer.expect("the checkpoint records the optimizer");
        assert!(check(&opt), "{flags:?} did not reach the optimizer: {opt:?}");
    }
}

/// Each optimizer flag's help lists the default of every preset that takes it, read from
/// `Optimizer::preset` (not a second copy in prose), and no other preset.
#[test]
fn optimizer_help_lists_the_presets_defaults() {
    use wgtrain::ops::Hyper;
    use wgtrain::Optimizer;
    let help = wgtrain(&["train", "--help"]).1;
    for h in Hyper::ALL {
        let flag = format!("--{}", h.name().replace('_', "-"));
        let start = help.lines().position(|l| l.trim_start().starts_with(&format!("{flag} ")) || l.trim() == flag);
        let Some(start) = start else { panic!("train --help has no {flag}:\n{help}") };
        let text: String = help.lines().skip(start + 1).take_while(|l| !l.trim_start().starts_with('-')).collect::<Vec<_>>().join(" ");
        let defaults = text.split("[default: ").nth(1).unwrap_or_else(|| panic!("{flag}: no defaults in '{text}'"));
        for p in Optimizer::PRESETS {
            let o = Optimizer::preset(p).unwrap();
            let named = defaults.contains(&format!("{p},")) || defaults.contains(&format!("{p})"));
            assert_eq!(named, h.applies_to(o.kind), "{flag}: preset {p} listed wrongly in '{defaults}'");
            if named {
                // The preset's value stands before the group that names it.
                let value = h.value(&o);
                let group = defaults.split(')').find(|g| g.contains(&format!(" {p}")) || g.contains(&format!("({p}"))).unwrap();
                assert!(
                    group.trim_start_matches([',', ' ']).starts_with(&format!("{value} (")),
                    "{flag}: {p} is {value}, help says '{group}'"
                );
            }
        }
    }
    // The numbers themselves, as PyTorch documents them, for the ones people look up.
    for expect in ["0.9,0.999 (adam, adamw)", "1e-10 (adagrad)", "0.9 (adadelta)", "0.99 (rmsprop)", "0.01 (sgd, momentum, nesterov"] {
        assert!(help.contains(expect), "train --help misses '{expect}'");
    }
}

/// `train --freeze`: what is frozen is printed (tensors and values) and stays bit-identical
/// in the checkpoint, which records it; a resumed run keeps it and refuses another; a pattern
/// that matches nothing is refused, listing the parameter names.
#[test]
fn train_freeze_keeps_parameters_and_says_so() {
    let d = temp("freeze");
    let (ck, first) = (d.join("m.safetensors"), d.join("first.safetensors"));
    let base = ["train", "--model", "examples/models/small-cnn.toml", "--train-size", "100", "--seed", "4"];
    // The untrained model of this seed, to compare with.
    let (ok, out, err) = wgtrain(&[&base[..], &["--epochs", "1", "--lr", "0", "--checkpoint", s(&first)]].concat());
    assert!(ok, "{out}{err}");
    let (ok, out, err) =
        wgtrain(&[&base[..], &["--epochs", "1", "--freeze", "layers.[0-1].*", "--weight-decay", "0.1", "--checkpoint", s(&ck)]].concat());
    assert!(ok, "{out}{err}");
    // small-cnn: a 3x3 conv of 16 channels without bias (144), then batch norm (16 + 16).
    assert!(out.contains("frozen: 3 tensors, 176 parameters (layers.0.weight, layers.1.weight, layers.1.bias)"), "{out}");
    let (a, _) = wgtrain::checkpoint::read_safetensors(&first).unwrap();
    let (b, meta) = wgtrain::checkpoint::read_safetensors(&ck).unwrap();
    for name in ["layers.0.weight", "layers.1.weight", "layers.1.bias"] {
        assert_eq!(a[name], b[name], "{name} is frozen but changed");
    }
    // The frozen batch norm ran in eval mode: its running statistics are still the initial ones.
    assert_eq!(b["layers.1.running_mean"].1, vec![0.0; 16]);
    assert_eq!(b["layers.1.running_var"].1, vec![1.0; 16]);
    assert_ne!(a["layers.4.weight"], b["layers.4.weight"], "the unfrozen conv did not train");
    assert!(meta["frozen"].contains("layers.0.weight") && !b.contains_key("optimizer.state1.layers.0.weight"), "{meta:?}");
    // Resumed without --freeze: still frozen; with another pattern: refused.
    let (ok, out, err) = wgtrain(&[&base[..], &["--epochs", "2", "--resume", s(&ck), "--checkpoint", s(&ck)]].concat());
    assert!(ok && out.contains("frozen: 3 tensors"), "{out}{err}");
    let (ok, out, err) = wgtrain(&[&base[..], &["--epochs", "3", "--resume", s(&ck), "--freeze", "layers.4.*"]].concat());
    assert!(!ok && err.contains("trained with frozen parameters layers.0.weight"), "{out}{err}");
    let (ok, out, err) = wgtrain(&[&base[..], &["--epochs", "1", "--freeze", "layers.9.*"]].concat());
    assert!(!ok && err.contains("'layers.9.*' matches no parameter") && err.contains("layers.0.weight, layers.1.weight"), "{out}{err}");
    assert!(!format!("{out}{err}").contains("panicked"));
}

/// Ctrl-C in a command that does not stop cleanly quits at once with status 130, even in a
/// cold first step, while the queue and the compile-ahead helper compile: there `exit` ran
/// the driver's teardown under them and 3 of 10 interrupts ended in SIGSEGV or an abort
/// instead (interrupts 1.0-3.5 s after start, on the 2-core machine of BENCHMARKS.md).
#[cfg(unix)]
#[test]
fn an_interrupt_during_a_cold_first_step_exits_with_130() {
    let cache = temp("cold-interrupt");
    for (round, ms) in [700u64, 1200, 1700, 2200, 2700].into_iter().enumerate() {
        let dir = cache.join(round.to_string());
        let child = Command::new(env!("CARGO_BIN_EXE_wgtrain"))
            .args(["bench", "train", "--batch-sizes", "64", "--windows", "1", "--steps", "1"])
            .env("RUST_LOG", "warn")
            .env("XDG_CACHE_HOME", &dir)
            .env_remove("MESA_SHADER_CACHE_DIR")
            .env_remove("WGTRAIN_CACHE_DIR")
            .env_remove("WGTRAIN_SERIAL_COMPILE")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(ms));
        let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // A run that had already finished when the signal came exits 0.
        let finished = out.status.success() && !sent;
        assert!(out.status.code() == Some(130) || finished, "interrupt after {ms} ms: {}\n{stderr}", out.status);
    }
}
