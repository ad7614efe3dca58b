//! Data-parallel training (src/distributed): replicas in threads of one process, on the CPU
//! reference and on the GPU (two devices on one adapter: lavapipe in CI).
//!
//! The equivalence tests train N replicas with a batch of N·b (b rows each) and one model with
//! the same batch of N·b, from the same start, on the same batches, and compare the parameters
//! after k steps. They differ only by the order of float additions: the gradient of a batch
//! is formed as one sum over N·b rows on one device, and as N sums over b rows, each weighted
//! by its share and added on the host, with the replicas. Over 4 steps of SGD with momentum
//! (lr 0.05) the parameters then differ by at most 1.2e-7 on the CPU and 3e-7 on lavapipe
//! (measured 2026-11-30; each test prints its figure with --nocapture). The tolerance,
//! TOL = 1e-5, leaves room for other devices' rounding (fused multiply-adds, other
//! reduction orders); a shard weighted wrongly, or a replica's gradient left out, moves the
//! parameters by 1e-3 and more, as does per-replica batch norm against the whole batch's
//! (2.3e-2, checked below), so the tests can fail.

mod common;

use common::{s, temp, wgtrain};
use wgtrain::data::{self, Source, Splits};
use wgtrain::distributed::{LocalGroup, Replicas};
use wgtrain::nn::{BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, Model, NamedTensor, Relu, Sequential};
use wgtrain::train::{BatchSize, TrainConfig, Trainer};
use wgtrain::{Backend, Cpu, Optimizer};

const TOL: f32 = 1e-5;

fn splits() -> Splits {
    let (train, test) = data::load(Source::Shapes, None, 1, 240, 28).unwrap();
    data::split(train, test, 0.1, 1).unwrap()
}

fn net<B: Backend>(bn: bool, classes: usize) -> Sequential<B> {
    let mut s = Sequential::new().push(Conv2d::new(6, 3).padding(1));
    if bn {
        s = s.push(BatchNorm2d::new());
    }
    s.push(Relu).push(MaxPool2d::new(2, 2, 0)).push(Flatten).push(Linear::new(classes))
}

#[derive(Clone, Copy)]
struct Run {
    replicas: usize,
    batch: usize,
    steps: u64,
    bn: bool,
    sync_bn: bool,
    gpu: bool,
    /// Clipping by global norm and mixup/cutmix on (they act on the summed gradient and on
    /// the global batch).
    clip_and_mix: bool,
}

/// Trains as `run` says; returns every replica's state dict (parameters, then buffers).
fn train(run: Run, splits: &Splits) -> Vec<Vec<NamedTensor>> {
    LocalGroup::run(run.replicas, |r| {
        if run.gpu {
            let gpu = common::open_gpu().expect("a GPU adapter");
            replica(&gpu, r, run, splits)
        } else {
            replica(&Cpu, r, run, splits)
        }
    })
    .unwrap()
}

fn replica<B: Backend>(be: &B, r: Replicas, run: Run, splits: &Splits) -> wgtrain::Result<Vec<NamedTensor>> {
    // Each replica draws its own initial weights (seed by rank): replica 0's must reach all.
    let seed = 7 + r.rank() as u64;
    let mut model = Model::new(be, net(run.bn, splits.train.classes.len()), &[1, 28, 28], seed, "t")?;
    model.sync_batch_norm(run.sync_bn);
    let mut optimizer = Optimizer::preset("momentum")?;
    optimizer.lr = 0.05;
    let config = TrainConfig {
        epochs: 1,
        batch: BatchSize::Fixed(run.batch),
        optimizer,
        max_steps: Some(run.steps),
        seed: 5,
        clip_norm: run.clip_and_mix.then_some(0.05),
        augment: wgtrain::data::loader::Augment {
            mixup: if run.clip_and_mix { 0.4 } else { 0.0 },
            cutmix: if run.clip_and_mix { 1.0 } else { 0.0 },
            ..Default::default()
        },
        ..TrainConfig::default()
    };
    let report = Trainer::new(config).replicas(r.clone()).fit(be, &mut model, splits)?;
    assert_eq!(report.replicas, run.replicas);
    assert_eq!(report.test_accuracy.is_nan(), r.rank() != 0, "replica 0 alone tests");
    model.state_dict(be)
}

/// The largest difference between two state dicts' tensors whose names pass `keep`.
fn max_diff(a: &[NamedTensor], b: &[NamedTensor], keep: impl Fn(&str) -> bool) -> f32 {
    let mut worst = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.name, y.name);
        if keep(&x.name) {
            for (p, q) in x.data.iter().zip(&y.data) {
                worst = worst.max((p - q).abs());
            }
        }
    }
    worst
}

fn is_param(name: &str) -> bool {
    !name.contains("running_")
}

/// Every replica holds the same bits: they start from replica 0 and apply the same update.
fn assert_replicas_agree(states: &[Vec<NamedTensor>], keep: impl Fn(&str) -> bool + Copy) {
    for (r, st) in states.iter().enumerate().skip(1) {
        assert_eq!(max_diff(&states[0], st, keep), 0.0, "replica {r} differs from replica 0");
    }
}

fn equivalence(gpu: bool) {
    let splits = splits();
    // On the CPU also with clipping (to a global norm of 0.05) and mixed batches (mixup or cutmix).
    let mixed = if gpu { &[false][..] } else { &[false, true][..] };
    for (replicas, batch, clip_and_mix) in [(2, 16), (2, 7), (3, 16)].into_iter().flat_map(|(r, b)| mixed.iter().map(move |&m| (r, b, m))) {
        let run = Run { replicas, batch, steps: 4, bn: false, sync_bn: false, gpu, clip_and_mix };
        let many = train(run, &splits);
        let one = train(Run { replicas: 1, ..run }, &splits);
        assert_replicas_agree(&many, is_param);
        let d = max_diff(&many[0], &one[0], |_| true);
        assert!(
            d <= TOL,
            "{replicas} replicas of a batch of {batch} (clipping and mixing {clip_and_mix}) against one device: parameters differ by {d:e} (tolerance {TOL:e})"
        );
        eprintln!("gpu {gpu}: {replicas} replicas, batch {batch}, clipping and mixing {clip_and_mix}: max |Δ| {d:e}");
    }
}

#[test]
fn replicas_train_like_one_device_with_the_whole_batch_cpu() {
    equivalence(false);
}

#[test]
fn replicas_train_like_one_device_with_the_whole_batch_gpu() {
    if common::open_gpu().is_none() {
        return;
    }
    equivalence(true);
}

fn sync_bn(gpu: bool) {
    let splits = splits();
    let run = Run { replicas: 2, batch: 16, steps: 4, bn: true, sync_bn: true, gpu, clip_and_mix: false };
    let synced = train(run, &splits);
    let one = train(Run { replicas: 1, ..run }, &splits);
    // With synchronised statistics the running statistics agree too.
    assert_replicas_agree(&synced, |_| true);
    let d = max_diff(&synced[0], &one[0], |_| true);
    assert!(d <= TOL, "synchronised batch norm against one device: parameters and running statistics differ by {d:e} (tolerance {TOL:e})");
    // Per-replica statistics (DDP's default) train another function: far outside the tolerance.
    let own = train(Run { sync_bn: false, ..run }, &splits);
    assert_replicas_agree(&own, is_param);
    let apart = max_diff(&own[0], &one[0], is_param);
    assert!(apart > 50.0 * TOL, "per-replica batch norm should differ from the whole batch's, by {apart:e} only");
    eprintln!("gpu {gpu}: synchronised max |Δ| {d:e}; per replica {apart:e}");
}

#[test]
fn synchronised_batch_norm_matches_the_whole_batch_cpu() {
    sync_bn(false);
}

#[test]
fn synchronised_batch_norm_matches_the_whole_batch_gpu() {
    if common::open_gpu().is_none() {
        return;
    }
    sync_bn(true);
}

/// The two halves of batch norm that synchronised batch norm runs with an exchange between
/// them give the whole op: stats + train_from_stats = train, backward_sums + from_sums (own
/// sums, own count) = backward; on the GPU against the CPU twin, at awkward sizes (one image,
/// one channel, primes, planes below and above the 32 values where the 3-D grid is used).
#[test]
fn batch_norm_in_halves_is_batch_norm() {
    let gpu = common::open_gpu();
    let mut rng = wgtrain::rng::Rng::new(11);
    for shape in [[1usize, 1, 1, 2], [2, 3, 5, 7], [3, 13, 1, 1], [5, 7, 6, 6], [1, 2, 17, 3]] {
        let n: usize = shape.iter().product();
        let c = shape[1];
        let x = rng.vec(n, -2.0, 3.0);
        let dy = rng.vec(n, -1.0, 1.0);
        let gamma = rng.vec(c, 0.5, 1.5);
        let beta = rng.vec(c, -0.5, 0.5);
        let cpu = halves(&Cpu, &shape, &x, &dy, &gamma, &beta);
        for (what, (whole, split)) in
            ["y", "save_mean", "save_invstd", "running_mean", "running_var", "dx", "dgamma", "dbeta"].iter().zip(&cpu)
        {
            let d = whole.iter().zip(split).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            // Both halves run the same f64 arithmetic on the CPU except the statistics, which
            // pass through f32 in between: 1 ulp of values up to ~10.
            assert!(d <= 2e-6, "cpu {shape:?} {what}: halves differ from the whole op by {d:e}");
        }
        if let Some(gpu) = &gpu {
            let g = halves(gpu, &shape, &x, &dy, &gamma, &beta);
            for (what, ((_, cs), (_, gs))) in
                ["y", "save_mean", "save_invstd", "running_mean", "running_var", "dx", "dgamma", "dbeta"].iter().zip(cpu.iter().zip(&g))
            {
                let d = cs.iter().zip(gs).map(|(a, b)| (a - b).abs() / (1.0 + a.abs())).fold(0.0f32, f32::max);
                // The tolerance of batch norm's kernel tests: f32 sums on the GPU against f64.
                assert!(d <= 1e-4, "gpu {shape:?} {what}: the halves differ from the CPU twin's by {d:e} (relative)");
            }
        }
    }
}

type Pair = (Vec<f32>, Vec<f32>);

/// (whole op, op in halves) for each output.
fn halves<B: Backend>(be: &B, shape: &[usize], x: &[f32], dy: &[f32], gamma: &[f32], beta: &[f32]) -> Vec<Pair> {
    let c = shape[1];
    let count = (x.len() / c) as f32;
    let up = |d: &[f32], s: &[usize]| be.upload(s, d).unwrap();
    let (xt, dyt, g, b) = (up(x, shape), up(dy, shape), up(gamma, &[c]), up(beta, &[c]));
    let ones = vec![1.0; c];
    let run = |split: bool| -> Vec<Vec<f32>> {
        let (mut rm, mut rv) = (be.zeros(&[c]).unwrap(), up(&ones, &[c]));
        let (mut y, mut sm, mut si) = (be.zeros(shape).unwrap(), be.zeros(&[c]).unwrap(), be.zeros(&[c]).unwrap());
        let (mut dx, mut dg, mut db) = (be.zeros(shape).unwrap(), be.zeros(&[c]).unwrap(), be.zeros(&[c]).unwrap());
        if split {
            let (mut mean, mut var) = (be.zeros(&[c]).unwrap(), be.zeros(&[c]).unwrap());
            be.batch_norm_stats(&xt, &mut mean, &mut var).unwrap();
            be.batch_norm_train_from_stats(&xt, &g, &b, &mean, &var, count, &mut rm, &mut rv, &mut y, &mut sm, &mut si, 0.1, 1e-5).unwrap();
            let (mut sdy, mut sdyx) = (be.zeros(&[c]).unwrap(), be.zeros(&[c]).unwrap());
            be.batch_norm_backward_sums(&xt, &dyt, &sm, &mut sdy, &mut sdyx).unwrap();
            be.batch_norm_backward_from_sums(&xt, &dyt, &g, &sm, &si, (&sdy, &sdyx), (&sdy, &sdyx), count, &mut dx, &mut dg, &mut db)
                .unwrap();
        } else {
            be.batch_norm_train(&xt, &g, &b, &mut rm, &mut rv, &mut y, &mut sm, &mut si, 0.1, 1e-5).unwrap();
            be.batch_norm_backward(&xt, &dyt, &g, &sm, &si, &mut dx, &mut dg, &mut db).unwrap();
        }
        [&y, &sm, &si, &rm, &rv, &dx, &dg, &db].iter().map(|t| be.download(t).unwrap()).collect()
    };
    run(false).into_iter().zip(run(true)).collect()
}

#[test]
fn a_distributed_run_resumes_like_an_uninterrupted_one() {
    let d = temp("dp-resume");
    let (whole, part) = (d.join("whole.safetensors"), d.join("part.safetensors"));
    let base = ["train", "--train-size", "256", "--test-size", "60", "--batch-size", "16", "--devices", "0,0", "--sync-bn", "--seed", "4"];
    let (ok, out, err) = wgtrain(&[&base[..], &["--max-steps", "6", "--checkpoint", s(&whole)]].concat());
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("data parallel: 2 replicas (--devices 0,0), each 8 rows of every batch of 16; batch norm synchronised"), "{out}");
    let (ok, out, err) = wgtrain(&[&base[..], &["--max-steps", "3", "--checkpoint", s(&part)]].concat());
    assert!(ok, "{out}\n{err}");
    // The resumed run gets its replicas from the flags and the rest from the checkpoint.
    let (ok, out, err) = wgtrain(&["train", "--resume", s(&part), "--checkpoint", s(&part), "--max-steps", "6", "--devices", "0,0"]);
    assert!(ok, "{out}\n{err}");
    let (a, b) = (common::tensors(&whole), common::tensors(&part));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, (_, va)) in &a {
        assert_eq!(va, &b[name].1, "{name}: the resumed distributed run differs from the uninterrupted one");
    }
    // The checkpoint records the replicas and synchronised batch norm.
    let meta = wgtrain::checkpoint::read_meta(&whole).unwrap();
    let run = meta.run.expect("run settings");
    assert_eq!((run.replicas, run.sync_bn), (2, true));
}

#[test]
fn bad_replica_settings_fail_cleanly() {
    let (ok, _, err) = wgtrain(&["train", "--devices", "0,0", "--batch-size", "1", "--train-size", "64", "--epochs", "1"]);
    assert!(!ok && err.contains("a batch of 1 over 2 replicas"), "{err}");
    let (ok, _, err) = wgtrain(&["train", "--devices", "0,,1", "--epochs", "1"]);
    assert!(!ok && err.contains("--devices '0,,1'"), "{err}");
    let (ok, _, err) = wgtrain(&["train", "--devices", "all", "--backend", "cpu", "--epochs", "1"]);
    assert!(!ok && err.contains("the CPU backend has no adapters"), "{err}");
    if !cfg!(feature = "mpi") {
        let (ok, _, err) = wgtrain(&["train", "--distributed", "mpi", "--epochs", "1"]);
        assert!(!ok && err.contains("--features mpi"), "{err}");
    }
}

#[test]
fn a_failing_replica_ends_the_run_with_its_error() {
    // Replica 1's device does not exist: replica 0 must not wait for it.
    let (ok, _, err) = wgtrain(&["train", "--devices", "0,99", "--train-size", "64", "--epochs", "1"]);
    assert!(!ok, "{err}");
    assert!(err.contains("replica 1") && err.contains("99"), "{err}");
}

#[test]
fn bench_train_reports_the_replicas_and_their_exchange() {
    let d = temp("dp-bench");
    let json = d.join("b.json");
    let (ok, out, err) =
        wgtrain(&["bench", "train", "--batch-sizes", "8", "--windows", "1", "--steps", "2", "--devices", "0,0", "--json", s(&json)]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("2 data-parallel replicas") && out.contains("all-reduce ms/step") && out.contains("efficiency"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let row = &v["results"][0];
    assert_eq!((row["batch"].as_u64(), row["replicas"].as_u64()), (Some(16), Some(2)), "{row}");
    let (all, per, one) = (
        row["images_per_s"].as_f64().unwrap(),
        row["images_per_s_per_replica"].as_f64().unwrap(),
        row["one_device_images_per_s"].as_f64().unwrap(),
    );
    assert!((all - 2.0 * per).abs() < 1e-9 * all && one > 0.0, "{row}");
    let eff = row["scaling_efficiency"].as_f64().unwrap();
    assert!((eff - all / (2.0 * one)).abs() < 1e-9, "{row}");
    assert!(row["allreduce_ms_per_step"].as_f64().unwrap() > 0.0, "{row}");
}

/// Replica 0's callbacks decide for every replica: a stop it asks inside an epoch stops all
/// of them after the same step (an interruption), and a stop after an epoch (early stopping)
/// ends every replica's run there.
#[test]
fn replica_0_stops_every_replica() {
    use wgtrain::train::{Callback, Control, EpochEnd, StepInfo};
    struct StopAtStep(u64);
    impl<B: Backend> Callback<B> for StopAtStep {
        fn on_step(&mut self, step: &StepInfo) -> wgtrain::Result<Control> {
            Ok(if step.step >= self.0 { Control::Stop("test".into()) } else { Control::Continue })
        }
    }
    struct StopAfterEpoch;
    impl<B: Backend> Callback<B> for StopAfterEpoch {
        fn on_epoch_end(&mut self, _: &mut EpochEnd<'_, B>) -> wgtrain::Result<Control> {
            Ok(Control::Stop("enough".into()))
        }
    }
    let splits = splits();
    for inside in [true, false] {
        let out = LocalGroup::run(2, |r| {
            let mut model = Model::new(&Cpu, net(false, splits.train.classes.len()), &[1, 28, 28], 7, "t")?;
            let config = TrainConfig { epochs: 3, batch: BatchSize::Fixed(32), ..TrainConfig::default() };
            let mut trainer = Trainer::new(config).replicas(r.clone());
            if r.rank() == 0 {
                trainer = if inside { trainer.callback(StopAtStep(3)) } else { trainer.callback(StopAfterEpoch) };
            }
            let report = trainer.fit(&Cpu, &mut model, &splits)?;
            Ok((report.interrupted, report.stopped_early.is_some(), model.step))
        })
        .unwrap();
        let per_epoch = (splits.train.len() / 32) as u64;
        let want = if inside { (true, false, 3) } else { (false, true, per_epoch) };
        assert_eq!(out, vec![want; 2], "stop inside an epoch: {inside}");
    }
}
