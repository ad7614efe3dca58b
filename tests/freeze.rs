//! Fine-tuning with frozen parameters (`Model::freeze`, `train --freeze`): frozen tensors and
//! the running statistics of frozen batch norms do not move (weight decay included), the rest
//! does; the optimizer state covers only the trainable tensors and the GPU update stays one
//! dispatch; CPU and GPU agree on frozen steps (a frozen batch norm backpropagating with the
//! eval-mode kernel); bad patterns are clear errors; checkpoints keep the frozen set. GPU
//! parts follow the no-silent-skip rule of the other tests (CI set: a missing adapter fails).

mod common;

use common::shared_gpu as gpu;

use wgtrain::checkpoint::{self, Progress};
use wgtrain::nn::{zoo, CrossEntropy, Model, ModelSpec, NamedTensor, Targets};
use wgtrain::rng::Rng;
use wgtrain::{Backend, Cpu, Gpu, GpuOptions, Optimizer, OptimizerKind};

/// The default CNN: layers.0 conv (no bias), layers.1 batch norm, ..., layers.4 conv,
/// layers.5 batch norm, layers.8 conv, layers.11 and layers.14 linear.
fn default_cnn() -> ModelSpec {
    ModelSpec { name: "default".into(), layers: zoo::default_cnn(10) }
}

fn batch(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(seed);
    let x = rng.vec(n * 28 * 28, -1.0, 1.0);
    let labels = (0..n).map(|_| rng.below(10) as f32).collect();
    (x, labels)
}

fn by_name(state: &[NamedTensor], name: &str) -> Vec<f32> {
    state.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no tensor {name}")).data.clone()
}

/// AdamW with weight decay, so that an update that reached a frozen tensor would move it
/// even where its gradient is zero.
fn adamw() -> Optimizer {
    Optimizer { lr: 1e-2, weight_decay: 0.1, ..Optimizer::new(OptimizerKind::AdamW) }
}

fn frozen_stay_and_the_rest_moves<B: Backend>(be: &B) {
    let mut m = Model::from_spec(be, &default_cnn(), &[1, 28, 28], 5).unwrap();
    let frozen = m.freeze(be, &["layers.[0-1].*"]).unwrap();
    assert_eq!(frozen, ["layers.0.weight", "layers.1.weight", "layers.1.bias"]);
    assert_eq!(m.frozen(), frozen);
    // Optimizer state only for the trainable tensors, as many values as they have.
    let trainable = m.trainable();
    assert_eq!(trainable.len(), m.param_info().len() - 3);
    assert_eq!(m.state1.len(), trainable.len());
    assert_eq!(m.state2.len(), trainable.len());
    assert_eq!(m.state1.iter().map(|t| t.numel()).sum::<usize>(), m.num_trainable());
    assert_eq!(m.num_trainable(), m.num_params() - (32 * 25 + 2 * 32));
    let before = m.state_dict(be).unwrap();
    let opt = adamw();
    m.reset_optimizer(be, &opt).unwrap();
    for step in 0..3 {
        let (x, labels) = batch(6, step);
        m.train_step(be, &x, Targets::Labels(&labels), &opt, &CrossEntropy::new(0.0), Some(1.0)).unwrap();
    }
    let after = m.state_dict(be).unwrap();
    for (b, a) in before.iter().zip(&after) {
        let frozen = b.name.starts_with("layers.0.") || b.name.starts_with("layers.1.");
        let same = b.data.iter().zip(&a.data).all(|(x, y)| x.to_bits() == y.to_bits());
        if frozen {
            // Parameters and the running statistics of the frozen batch norm (eval mode).
            assert!(same, "{} is frozen but changed", b.name);
        } else {
            assert!(!same, "{} is trained (or a trained batch norm's statistic) but did not change", b.name);
        }
    }
}

#[test]
fn frozen_tensors_stay_bit_identical_on_the_cpu_and_the_rest_moves() {
    frozen_stay_and_the_rest_moves(&Cpu);
}

#[test]
fn frozen_tensors_stay_bit_identical_on_the_gpu_and_the_rest_moves() {
    let Some(gpu) = gpu() else { return };
    frozen_stay_and_the_rest_moves(gpu);
}

/// A frozen batch norm in the middle (layers.5: eval forward, eval backward with dx to the
/// convolution before it) and a half-frozen linear layer (weight frozen, bias trained), SGD
/// with momentum and weight decay: three steps give the same loss and parameters on both
/// backends (tolerance as in tests/training.rs: 1e-4 on parameters, the loss within 1e-4
/// relative: f32 GPU sums in another order than the CPU's f64 ones), and the GPU update is one
/// dispatch, the trainable tensors being one span of the arena.
#[test]
fn frozen_steps_agree_on_cpu_and_gpu_and_the_update_is_one_dispatch() {
    let Some(_) = gpu() else { return };
    // A device of its own: the shared one's dispatch counter also counts the other tests'.
    let own = Gpu::new(&GpuOptions::default()).unwrap();
    let gpu = &own;
    let cpu = Cpu;
    let patterns = ["layers.5.*", "layers.11.weight"];
    let mut mc = Model::from_spec(&cpu, &default_cnn(), &[1, 28, 28], 9).unwrap();
    let mut mg = Model::from_spec(gpu, &default_cnn(), &[1, 28, 28], 9).unwrap();
    assert_eq!(mc.freeze(&cpu, &patterns).unwrap(), mg.freeze(gpu, &patterns).unwrap());
    let opt = Optimizer { lr: 0.05, momentum: 0.9, weight_decay: 1e-3, ..Optimizer::new(OptimizerKind::Sgd) };
    let start = mc.state_dict(&cpu).unwrap();
    for step in 0..3 {
        let (x, labels) = batch(8, 100 + step);
        mc.train_step(&cpu, &x, Targets::Labels(&labels), &opt, &CrossEntropy::new(0.1), None).unwrap();
        let b = mg.load_batch(gpu, &x, Targets::Labels(&labels)).unwrap();
        mg.forward(gpu, b, wgtrain::nn::Mode::Train).unwrap();
        mg.loss(gpu, b, &CrossEntropy::new(0.1)).unwrap();
        mg.backward(gpu, b).unwrap();
        let d0 = gpu.dispatches();
        mg.update(gpu, &opt, None).unwrap();
        assert_eq!(gpu.dispatches() - d0, 1, "step {step}: the update of the trainable span is one dispatch");
        let (lc, lg) = (mc.take_metrics(&cpu).unwrap(), mg.take_metrics(gpu).unwrap());
        assert!((lc.loss - lg.loss).abs() <= 1e-4 * lc.loss.abs().max(1.0), "step {step}: loss cpu {} gpu {}", lc.loss, lg.loss);
    }
    let (sc, sg) = (mc.state_dict(&cpu).unwrap(), mg.state_dict(gpu).unwrap());
    for ((c, g), s) in sc.iter().zip(&sg).zip(&start) {
        let worst = c.data.iter().zip(&g.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst <= 1e-4, "{}: cpu and gpu differ by {worst}", c.name);
        if c.name.starts_with("layers.5.") || c.name == "layers.11.weight" {
            assert_eq!(c.data, s.data, "{} is frozen but changed on the cpu", c.name);
            assert_eq!(g.data, s.data, "{} is frozen but changed on the gpu", g.name);
        }
    }
    assert_ne!(by_name(&sc, "layers.11.bias"), by_name(&start, "layers.11.bias"), "the trained bias of a half-frozen layer moves");
    assert_ne!(by_name(&sc, "layers.4.weight"), by_name(&start, "layers.4.weight"), "the conv before the frozen batch norm learns");
}

#[test]
fn bad_patterns_are_clear_errors() {
    let cpu = Cpu;
    let mut m = Model::from_spec(&cpu, &default_cnn(), &[1, 28, 28], 1).unwrap();
    let err = m.freeze(&cpu, &["layers.0.*", "layers.99.*"]).unwrap_err().to_string();
    assert!(err.contains("'layers.99.*' matches no parameter") && err.contains("layers.0.weight, layers.1.weight"), "{err}");
    assert!(m.frozen().is_empty(), "a failed freeze freezes nothing");
    let err = m.freeze(&cpu, &["layers.[0-3"]).unwrap_err().to_string();
    assert!(err.contains("'layers.[0-3'") && err.contains("closing ']'"), "{err}");
    let err = m.freeze(&cpu, &["*"]).unwrap_err().to_string();
    assert!(err.contains("leaves nothing to train"), "{err}");
}

/// A checkpoint records the frozen names; a model with nothing frozen takes them over when it
/// loads it (and its optimizer state only for the trainable tensors); a model frozen otherwise
/// is refused, naming both sets.
#[test]
fn checkpoints_keep_the_frozen_set() {
    let cpu = Cpu;
    let dir = std::env::temp_dir().join(format!("wgtrain-freeze-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("frozen.safetensors");
    let mut m = Model::from_spec(&cpu, &default_cnn(), &[1, 28, 28], 1).unwrap();
    m.freeze(&cpu, &["layers.0.*"]).unwrap();
    let opt = adamw();
    let (x, labels) = batch(4, 1);
    m.train_step(&cpu, &x, Targets::Labels(&labels), &opt, &CrossEntropy::new(0.0), None).unwrap();
    let progress = Progress { epoch: 1, batch_in_epoch: 0, step: 1, seed: 1, best_val_loss: None, best_epoch: None, epochs_since_best: 0 };
    checkpoint::save(&cpu, &path, &m, &opt, &progress).unwrap();
    assert_eq!(checkpoint::read_meta(&path).unwrap().frozen, ["layers.0.weight"]);

    let mut fresh = Model::from_spec(&cpu, &default_cnn(), &[1, 28, 28], 2).unwrap();
    checkpoint::load(&cpu, &path, &mut fresh).unwrap();
    assert_eq!(fresh.frozen(), ["layers.0.weight"]);
    assert_eq!(fresh.state_dict(&cpu).unwrap(), m.state_dict(&cpu).unwrap());
    for (a, b) in fresh.state1.iter().zip(&m.state1) {
        assert_eq!(a.data(), b.data());
    }

    let mut other = Model::from_spec(&cpu, &default_cnn(), &[1, 28, 28], 2).unwrap();
    other.freeze(&cpu, &["layers.1.*"]).unwrap();
    let err = checkpoint::load(&cpu, &path, &mut other).unwrap_err().to_string();
    assert!(err.contains("frozen parameters layers.0.weight") && err.contains("layers.1.weight, layers.1.bias frozen"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
