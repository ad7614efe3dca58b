//! The library as a user's crate sees it: optimizer presets, layers and losses of one's own,
//! the trainer's callbacks, evaluation, named weights, and the layering of the source tree.

use std::cell::RefCell;
use std::rc::Rc;

use wgtrain::backend::T;
use wgtrain::nn::{Backward, Build, Flatten, Forward, Init, Layer, Linear, Loss, LossTarget, Model, Relu, Sequential, Targets};
use wgtrain::train::{evaluate, Callback, Control, EpochEnd, RunInfo, StepInfo, TrainConfig, TrainReport, Trainer};
use wgtrain::{data, Backend, Cpu, Optimizer, OptimizerKind};

#[test]
fn presets_are_what_their_names_say() {
    for name in Optimizer::PRESETS {
        let o = Optimizer::preset(name).unwrap();
        o.validate().unwrap();
        assert_eq!(o.preset_name(), name, "{name} round trip");
    }
    let m = Optimizer::preset("momentum").unwrap();
    assert_eq!((m.kind, m.momentum, m.nesterov, m.lr), (OptimizerKind::Sgd, 0.9, false, 1e-2));
    let n = Optimizer::preset("nesterov").unwrap();
    assert_eq!((n.kind, n.momentum, n.nesterov), (OptimizerKind::Sgd, 0.9, true));
    assert_eq!(Optimizer::preset("sgd").unwrap().momentum, 0.0);
    assert_eq!(Optimizer::preset("adamw").unwrap().weight_decay, 1e-2);
    assert_eq!(Optimizer::preset("adam").unwrap(), Optimizer::new(OptimizerKind::Adam));
    assert_eq!(Optimizer::preset("Adagrad").unwrap().eps, 1e-10);
    let err = Optimizer::preset("lion").unwrap_err().to_string();
    assert!(err.contains("lion") && err.contains("nesterov"), "{err}");
}

#[test]
fn state_tensors_follow_the_rule() {
    assert_eq!(Optimizer::preset("sgd").unwrap().state_tensors(), 0);
    assert_eq!(Optimizer::preset("momentum").unwrap().state_tensors(), 1);
    assert_eq!(Optimizer::preset("adam").unwrap().state_tensors(), 2);
    let bad = Optimizer { momentum: 0.0, ..Optimizer::preset("nesterov").unwrap() };
    assert!(bad.validate().is_err(), "nesterov without momentum must be refused");
}
/// A layer written outside the crate: y = scale * x with a trained scalar `scale`.
struct Scale;

impl Layer<Cpu> for Scale {
    fn kind(&self) -> &str {
        "scale"
    }
    fn build(&mut self, input: &[usize], ctx: &mut Build) -> wgtrain::Result<Vec<usize>> {
        ctx.param("scale", &[1], Init::Const(2.0));
        Ok(input.to_vec())
    }
    fn forward(&self, be: &Cpu, io: Forward<'_, Cpu>) -> wgtrain::Result<()> {
        let s = io.params[0].data()[0];
        be.scale(io.x, s, io.y)
    }
    fn backward(&self, be: &Cpu, io: Backward<'_, Cpu>) -> wgtrain::Result<()> {
        // d/ds sum(dy * s * x) = sum(dy * x); dx = s * dy
        let g: f32 = io.dy.data().iter().zip(io.x.data()).map(|(a, b)| a * b).sum();
        io.grads[0].data_mut()[0] = g;
        match io.dx {
            Some(dx) => be.scale(io.dy, io.params[0].data()[0], dx),
            None => Ok(()),
        }
    }
}

/// A loss written outside the crate: half the squared distance of the logits to the one-hot
/// labels, averaged over the batch.
struct HalfSquared;

impl Loss<Cpu> for HalfSquared {
    fn name(&self) -> &str {
        "half_squared"
    }
    fn forward_backward(
        &self,
        _: &Cpu,
        logits: &T<Cpu>,
        target: LossTarget<'_, Cpu>,
        loss: &mut T<Cpu>,
        grad: &mut T<Cpu>,
    ) -> wgtrain::Result<()> {
        let [n, c] = logits.shape()[..] else { unreachable!() };
        let (z, labels) = (logits.data().to_vec(), target.labels.data().to_vec());
        let mut total = 0.0;
        for i in 0..n {
            for k in 0..c {
                let d = z[i * c + k] - if labels[i] as usize == k { 1.0 } else { 0.0 };
                total += 0.5 * d * d / n as f32;
                grad.data_mut()[i * c + k] = d / n as f32;
            }
        }
        loss.data_mut()[0] = total;
        Ok(())
    }
}

#[test]
fn a_users_layer_and_loss_train_in_a_model() {
    let net = Sequential::new().push(Flatten).push(Scale).push(Linear::new(3)).push(Relu).push(Linear::new(3));
    let mut model = Model::new(&Cpu, net, &[1, 2, 2], 1, "mine").unwrap();
    assert_eq!(model.param_info()[0].name, "layers.1.scale");
    assert_eq!(model.num_params(), 1 + 4 * 3 + 3 + 3 * 3 + 3);
    let x = [0.5, -1.0, 0.25, 1.0, -0.5, 1.0, 0.0, 0.75];
    let labels = [2.0, 0.0];
    let mut opt = Optimizer::preset("sgd").unwrap();
    opt.lr = 0.1;
    model.reset_optimizer(&Cpu, &opt).unwrap();
    let mut losses = Vec::new();
    for _ in 0..30 {
        model.train_step(&Cpu, &x, Targets::Labels(&labels), &opt, &HalfSquared, None).unwrap();
        losses.push(model.take_metrics(&Cpu).unwrap().loss);
    }
    assert!(losses[29] < 0.5 * losses[0], "the user's loss does not go down: {losses:?}");
    assert_ne!(Cpu.download(&model.params[0]).unwrap()[0], 2.0, "the user's parameter was not trained");
}

/// Records what the trainer tells its callbacks.
struct Recorder(Rc<RefCell<Vec<String>>>);

impl Callback<Cpu> for Recorder {
    fn on_train_begin(&mut self, run: &RunInfo) -> wgtrain::Result<()> {
        self.0.borrow_mut().push(format!("begin {} epochs of {} steps", run.epochs, run.steps_per_epoch));
        Ok(())
    }
    fn on_step(&mut self, s: &StepInfo) -> wgtrain::Result<Control> {
        self.0.borrow_mut().push(format!("step {} running {}", s.step, s.running.is_some()));
        Ok(Control::Continue)
    }
    fn on_epoch_end(&mut self, e: &mut EpochEnd<'_, Cpu>) -> wgtrain::Result<Control> {
        self.0.borrow_mut().push(format!("epoch {}", e.log.epoch));
        // Stop after the second epoch, as early stopping would.
        Ok(if e.log.epoch == 2 { Control::Stop("enough".into()) } else { Control::Continue })
    }
    fn on_train_end(&mut self, r: &TrainReport) -> wgtrain::Result<()> {
        self.0.borrow_mut().push(format!("end {} {:?}", r.epochs.len(), r.stopped_early));
        Ok(())
    }
}

#[test]
fn the_trainer_reports_to_its_callbacks_and_obeys_them() {
    let (train, test) = data::load(data::Source::Shapes, None, 4, 60, 28).unwrap();
    let splits = data::split(train, test, 0.2, 4).unwrap();
    let net = Sequential::new().push(Flatten).push(Linear::new(10));
    let mut model = Model::new(&Cpu, net, &[1, 28, 28], 4, "linear").unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let config = TrainConfig { epochs: 5, batch: wgtrain::train::BatchSize::Fixed(16), report_every: 3, ..TrainConfig::default() };
    let report = Trainer::new(config).callback(Recorder(seen.clone())).fit(&Cpu, &mut model, &splits).unwrap();
    let seen = seen.borrow();
    assert_eq!(seen[0], "begin 5 epochs of 3 steps");
    assert_eq!(seen[1..4], ["step 1 running false", "step 2 running false", "step 3 running true"]);
    assert_eq!(seen[4], "epoch 1");
    assert_eq!(seen.last().unwrap(), "end 2 Some(\"enough\")");
    assert_eq!(report.epochs.len(), 2);
    let test = report.test.expect("a test pass after an early stop");
    assert_eq!(test.samples, splits.test.len());
}

#[test]
fn evaluation_gives_the_confusion_matrix_and_probabilities() {
    let (train, test) = data::load(data::Source::Shapes, None, 5, 50, 28).unwrap();
    let splits = data::split(train, test, 0.0, 5).unwrap();
    let mut model = Model::new(&Cpu, Sequential::new().push(Flatten).push(Linear::new(10)), &[1, 28, 28], 5, "linear").unwrap();
    let e = evaluate(&Cpu, &mut model, &splits.test, 4, true).unwrap();
    let n = splits.test.len();
    assert_eq!(e.samples, n);
    assert_eq!(e.confusion.iter().flatten().sum::<usize>(), n);
    let correct: usize = (0..10).map(|c| e.confusion[c][c]).sum();
    assert!((e.accuracy - correct as f64 / n as f64).abs() < 1e-12);
    let p = e.probabilities.expect("asked for");
    assert_eq!(p.len(), n * 10);
    for row in p.chunks(10) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    // The loss is the mean of -log p(label).
    let want: f64 = p.chunks(10).zip(&splits.test.labels).map(|(r, &l)| -(r[l as usize] as f64).ln()).sum::<f64>() / n as f64;
    assert!((e.loss - want).abs() < 1e-4 * want, "loss {} vs {want}", e.loss);
}

#[test]
fn named_weights_round_trip_and_mismatches_are_listed() {
    let spec = wgtrain::nn::zoo::model("lenet5", 10).unwrap();
    let a = Model::from_spec(&Cpu, &spec, &[1, 28, 28], 1).unwrap();
    let mut b = Model::from_spec(&Cpu, &spec, &[1, 28, 28], 2).unwrap();
    let state = a.state_dict(&Cpu).unwrap();
    assert!(state.iter().any(|t| t.name == "layers.0.weight" && t.shape == [6, 1, 5, 5]));
    b.load_state_dict(&Cpu, &state).unwrap();
    assert_eq!(b.state_dict(&Cpu).unwrap(), state);
    let mut broken = state.clone();
    broken.retain(|t| t.name != "layers.0.bias");
    broken[0].shape = vec![6, 25];
    broken.push(wgtrain::nn::NamedTensor { name: "fc.weight".into(), shape: vec![1], data: vec![0.0] });
    let e = b.load_state_dict(&Cpu, &broken).unwrap_err().to_string();
    assert!(e.contains("missing layers.0.bias") && e.contains("layers.0.weight is [6, 25]") && e.contains("unexpected fc.weight"), "{e}");
}

#[test]
fn train_config_defaults_are_the_cli_defaults() {
    let c = TrainConfig::default();
    assert_eq!((c.epochs, c.batch, c.optimizer.kind, c.seed), (3, wgtrain::train::BatchSize::Fixed(64), OptimizerKind::Adam, 1));
    c.validate().unwrap();
    assert!(TrainConfig { clip_norm: Some(-1.0), ..c.clone() }.validate().is_err());
    assert!(TrainConfig { epochs: 0, ..c }.validate().is_err());
}

/// The layering the design promises: the backends depend on nothing above them, data does not
/// reach into the GPU, the CPU reference not into the GPU code, nothing into the command line,
/// and no library module uses clap; shape checks live in src/ops and src/backend.rs only.
#[test]
fn the_source_tree_keeps_its_layers() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = |dir: &str| -> Vec<(String, String)> {
        let mut out = Vec::new();
        let start = root.join(dir);
        if start.is_file() {
            return vec![(start.display().to_string(), std::fs::read_to_string(&start).unwrap())];
        }
        let mut stack = vec![start];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push((p.display().to_string(), std::fs::read_to_string(&p).unwrap()));
                }
            }
        }
        out
    };
    let forbid = |dir: &str, words: &[&str]| {
        for (path, text) in files(dir) {
            for w in words {
                assert!(!text.contains(w), "{path} uses {w}");
            }
        }
    };
    let above_backends = ["crate::nn", "crate::train", "crate::checkpoint", "crate::data", "crate::verify", "crate::bench", "clap"];
    forbid("src/cpu", &above_backends);
    forbid("src/cpu", &["crate::gpu", "super::super::gpu"]);
    forbid("src/gpu", &above_backends);
    forbid("src/ops", &["crate::cpu", "crate::gpu", "crate::nn", "crate::train"]);
    forbid("src/data", &["crate::gpu", "crate::cpu", "crate::nn"]);
    forbid("src", &["clap::", "cli::", "--batch-size", "--epochs"]);
    // The backends' kernels take resolved sizes: no shape checks in them.
    // (The CPU still checks label *values*, which only it can see: ops::loss::check_labels.)
    let shape_checks = [
        "same_shape",
        "same_numel",
        "expect_shape",
        "scalar_out",
        "::check(",
        "check_forward",
        "check_backward",
        "check_rows",
        "check_cross_entropy",
        "check_global",
        "matmul_dims",
        "conv2d_dims",
        "pool_dims",
        "channels(",
    ];
    forbid("src/cpu", &shape_checks);
    forbid("src/gpu/backend.rs", &shape_checks);
}

/// A batch whose largest activation would not fit the device's largest tensor is refused
/// before anything is allocated, naming the tensor, its size and the largest batch that fits
/// (the default CNN's first convolution: 32 x 28 x 28 f32, 100,352 bytes a sample).
#[test]
fn a_batch_too_large_for_the_device_is_refused_clearly() {
    let spec = wgtrain::nn::zoo::model("default", 10).unwrap();
    let model = Model::from_spec(&Cpu, &spec, &[1, 28, 28], 1).unwrap();
    let limit = 128 << 20;
    model.check_batch(64, limit).unwrap();
    model.check_batch(1337, limit).unwrap();
    let err = model.check_batch(1338, limit).unwrap_err().to_string();
    for part in ["batch size 1338", "layers.0 (conv2d)", "[1338, 32, 28, 28]", "128.0 MiB", "at most 1337"] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    // The input can be the largest: a model of one 1x1 convolution to a single channel.
    let tiny = Model::from_spec(&Cpu, &spec_of_one_pointwise(), &[3, 8, 8], 1).unwrap();
    let err = tiny.check_batch(100, 100 * 3 * 64 * 4 - 1).unwrap_err().to_string();
    assert!(err.contains("the input, [100, 3, 8, 8]") && err.contains("at most 99"), "{err}");
}

fn spec_of_one_pointwise() -> wgtrain::nn::ModelSpec {
    use wgtrain::nn::{LayerSpec, ModelSpec};
    ModelSpec { name: "pointwise".into(), layers: vec![LayerSpec::conv(1, 1, 1, 0)] }
}
