//! `wgtrain bench scaling`, end to end with a given compute time (nothing is measured, no
//! device is opened): the JSON's bytes against the ring all-reduce formula for the parameter
//! count `wgtrain summary` prints, efficiency 1 on one GPU and falling with more, and bad
//! options refused by name.

use std::path::PathBuf;
use std::process::Command;

fn wgtrain(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wgtrain")).args(args).env("RUST_LOG", "warn").output().expect("run wgtrain");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgtrain-scaling-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The parameter count of `wgtrain summary --model M`: its "parameters ... N values" line.
fn summary_params(model: &str) -> u64 {
    let (ok, out, err) = wgtrain(&["summary", "--model", model]);
    assert!(ok, "summary failed:\n{out}\n{err}");
    let line = out.lines().find(|l| l.trim_start().starts_with("parameters ") && l.trim_end().ends_with(" values")).expect(&out);
    let words: Vec<&str> = line.split_whitespace().collect();
    words[words.len() - 2].replace(',', "").parse().expect(line)
}

#[test]
fn json_follows_the_ring_all_reduce_formula() {
    let d = temp("json");
    let (json, png) = (d.join("s.json"), d.join("s.png"));
    let (ok, out, err) = wgtrain(&[
        "bench",
        "scaling",
        "--model",
        "default",
        "--compute-ms",
        "10",
        "--gpus",
        "1,2,4",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        png.to_str().unwrap(),
    ]);
    assert!(ok, "bench scaling failed:\n{out}\n{err}");
    assert!(image::open(&png).is_ok(), "no readable plot at {}", png.display());
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let params = summary_params("default");
    assert_eq!(v["settings"]["params"].as_u64(), Some(params), "{}", v["settings"]);
    assert_eq!(v["settings"]["compute_s"].as_f64(), Some(0.01));
    let links: Vec<&str> = v["interconnects"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(links.len(), 4, "--interconnect all is the default: {links:?}");
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows.len(), 3 * links.len());
    for link in &links {
        let mine: Vec<&serde_json::Value> = rows.iter().filter(|r| r["interconnect"] == *link).collect();
        let gpus: Vec<u64> = mine.iter().map(|r| r["gpus"].as_u64().unwrap()).collect();
        assert_eq!(gpus, [1, 2, 4], "{link}");
        assert_eq!(mine[0]["efficiency"].as_f64(), Some(1.0), "{link}: one GPU");
        assert_eq!(mine[0]["comm_s"].as_f64(), Some(0.0), "{link}: one GPU exchanges nothing");
        for w in mine.windows(2) {
            assert!(w[1]["efficiency"].as_f64() < w[0]["efficiency"].as_f64(), "{link}: {} then {}", w[0], w[1]);
        }
        for r in &mine {
            let n = r["gpus"].as_u64().unwrap() as f64;
            let want = 2.0 * (n - 1.0) / n * 4.0 * params as f64;
            let got = r["allreduce_bytes_per_gpu"].as_f64().unwrap();
            assert!((got - want).abs() <= 1e-9 * want.max(1.0), "{link}, {n} GPUs: {got} bytes, expected {want}");
            let (step, comm) = (r["step_s"].as_f64().unwrap(), r["comm_s"].as_f64().unwrap());
            assert!((step - (0.01 + comm)).abs() < 1e-12, "{link}: step {step} is not compute + comm {comm}");
        }
    }
}

#[test]
fn bad_options_are_refused_by_name() {
    for (args, want) in [
        (&["--compute-ms", "5", "--gpus", "1,0"][..], "--gpus"),
        (&["--compute-ms", "0"], "--compute-ms 0"),
        (&["--compute-ms=-3"], "--compute-ms -3"),
        (&["--compute-ms", "5", "--interconnect", "carrier-pigeon"], "carrier-pigeon"),
        (&["--compute-ms", "5", "--batch-size", "0"], "--batch-size 0"),
        (&["--compute-ms", "5", "--model", "no-such-model"], "no-such-model"),
    ] {
        let (ok, out, err) = wgtrain(&[&["bench", "scaling"], args].concat());
        assert!(!ok && err.contains(want) && !err.contains("panicked"), "{args:?}:\n{out}\n{err}");
    }
}
