//! Data-parallel training over MPI: `mpirun -np 2 wgtrain train ... --distributed mpi`, two
//! ranks on this machine (both on the one adapter here: lavapipe in CI). Built only with the
//! `mpi` feature: `cargo test --release --features mpi --test mpi` (.ci/run runs it).
//!
//! The tolerance is that of tests/distributed.rs, 1e-5 after 4 steps (measured here: 3.7e-7
//! for the default CNN, 4.2e-7 with an uneven batch of 7, 3.2e-6 for LeNet-5, whose larger
//! gradients round more): two ranks differ from one process with the whole batch only by the
//! order of float additions in the gradient sums. Ranks and in-process replicas form the same sums
//! in the same order (a reduction to rank 0, then a broadcast), so they agree exactly.
#![cfg(feature = "mpi")]

mod common;

use std::process::Command;

use common::{s, temp, tensors, wgtrain};

const TOL: f32 = 1e-5;

/// `mpirun -np 2` on this machine: as root where CI runs as root, oversubscribed where there
/// are fewer cores than ranks. Returns (success, stdout, stderr).
fn mpirun(ranks: &[&[&str]]) -> (bool, String, String) {
    let root = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false);
    let mut cmd = Command::new("timeout");
    cmd.args(["300", "mpirun", "--oversubscribe"]);
    if root {
        cmd.arg("--allow-run-as-root");
    }
    // One program per rank (MPMD: `-np 1 A : -np 1 B`), or one for both.
    for (i, args) in ranks.iter().enumerate() {
        if i > 0 {
            cmd.arg(":");
        }
        cmd.args(["-np", if ranks.len() == 1 { "2" } else { "1" }, env!("CARGO_BIN_EXE_wgtrain")]).args(*args);
    }
    let out = cmd.env("RUST_LOG", "warn").output().expect("mpirun (install openmpi-bin)");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn max_diff(a: &std::path::Path, b: &std::path::Path) -> f32 {
    let (a, b) = (tensors(a), tensors(b));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let mut worst = 0.0f32;
    for (name, (_, va)) in &a {
        for (p, q) in va.iter().zip(&b[name].1) {
            worst = worst.max((p - q).abs());
        }
    }
    worst
}

/// Dropout off: its masks differ per replica by construction (each draws its own samples').
const BASE: [&str; 13] =
    ["train", "--train-size", "256", "--test-size", "60", "--optimizer", "momentum", "--lr", "0.05", "--seed", "4", "--dropout", "0"];

#[test]
fn two_ranks_train_like_one_process_with_the_whole_batch() {
    let d = temp("mpi-equiv");
    // The default CNN (batch norm, synchronised), an even and an uneven batch; and LeNet-5
    // (no batch norm) with per-replica defaults.
    for (model, batch, sync) in [("default", "16", true), ("default", "7", true), ("lenet5", "16", false)] {
        let case = format!("{model}-{batch}");
        let (mpi, one, local) = (d.join(format!("{case}-mpi.st")), d.join(format!("{case}-one.st")), d.join(format!("{case}-local.st")));
        let mut args: Vec<&str> = [&BASE[..], &["--model", model, "--batch-size", batch, "--max-steps", "4"]].concat();
        if sync {
            args.push("--sync-bn");
        }
        let with = |extra: &[&str], ck: &std::path::Path| -> Vec<String> {
            args.iter().chain(extra).map(|a| a.to_string()).chain(["--checkpoint".to_string(), s(ck).to_string()]).collect()
        };
        let m = with(&["--distributed", "mpi"], &mpi);
        let (ok, out, err) = mpirun(&[&m.iter().map(String::as_str).collect::<Vec<_>>()]);
        assert!(ok, "mpirun failed:\n{out}\n{err}");
        // Rank 0 alone prints.
        assert_eq!(out.matches("test accuracy").count(), 1, "{out}");
        assert!(out.contains("data parallel: 2 replicas (MPI ranks)"), "{out}");
        let o = with(&[], &one);
        let (ok, out, err) = wgtrain(&o.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(ok, "{out}\n{err}");
        let diff = max_diff(&mpi, &one);
        assert!(diff <= TOL, "{model} batch {batch}: 2 ranks against one process differ by {diff:e} (tolerance {TOL:e})");
        let l = with(&["--devices", "0,0"], &local);
        let (ok, out, err) = wgtrain(&l.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(ok, "{out}\n{err}");
        assert_eq!(max_diff(&mpi, &local), 0.0, "{model} batch {batch}: MPI ranks and in-process replicas should agree exactly");
        eprintln!("{model} batch {batch}: 2 ranks vs one process max |Δ| {diff:e}");
    }
}

#[test]
fn every_rank_resumes_from_the_same_checkpoint() {
    let d = temp("mpi-resume");
    let (whole, part) = (d.join("whole.st"), d.join("part.st"));
    let run = |extra: &[&str]| {
        let args: Vec<&str> = [&BASE[..], &["--batch-size", "16", "--sync-bn", "--distributed", "mpi"], extra].concat();
        let (ok, out, err) = mpirun(&[&args]);
        assert!(ok, "{out}\n{err}");
    };
    run(&["--max-steps", "6", "--checkpoint", s(&whole)]);
    run(&["--max-steps", "3", "--checkpoint", s(&part)]);
    let (ok, out, err) = mpirun(&[&["train", "--resume", s(&part), "--checkpoint", s(&part), "--max-steps", "6", "--distributed", "mpi"]]);
    assert!(ok, "{out}\n{err}");
    assert_eq!(max_diff(&whole, &part), 0.0, "the resumed MPI run differs from the uninterrupted one");
}

#[test]
fn a_failing_rank_ends_the_job_with_its_error() {
    // Rank 1 is given a data folder that does not exist; rank 0 would wait for it for ever.
    let t = std::time::Instant::now();
    let good: Vec<&str> = [&BASE[..], &["--epochs", "1", "--distributed", "mpi"]].concat();
    let bad: Vec<&str> = [&good[..], &["--dataset", "mnist", "--data", "/nonexistent/mnist"]].concat();
    let (ok, out, err) = mpirun(&[&good, &bad]);
    assert!(!ok, "the job should fail:\n{out}\n{err}");
    assert!(t.elapsed().as_secs() < 200, "the job hung for {:?}", t.elapsed());
    // Printed by rank 0 ("failed:"), which took rank 1's report and ended the job.
    assert!(err.contains("error: rank 1 of 2 failed: ") && err.contains("/nonexistent/mnist"), "{err}");
}
