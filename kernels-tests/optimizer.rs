//! shaders/optimizer.wgsl and shaders/clip.wgsl against src/cpu/optimizer.rs, over several
//! consecutive steps on the same gradient sequence.

use wgtrain::verify::{optimizer, Case};
use wgtrain::{Backend, Cpu, Optimizer, OptimizerKind};

use crate::common::{check, gpu, only, open, Test};

pub fn tests() -> Vec<Test> {
    vec![
        Test::gpu("sgd_momentum_nesterov_gpu", || check(gpu(), &steps(OptimizerKind::Sgd))),
        Test::cpu("sgd_momentum_nesterov_cpu", || check(&Cpu, &steps(OptimizerKind::Sgd))),
        Test::gpu("adagrad_gpu", || check(gpu(), &steps(OptimizerKind::Adagrad))),
        Test::cpu("adagrad_cpu", || check(&Cpu, &steps(OptimizerKind::Adagrad))),
        Test::gpu("adadelta_gpu", || check(gpu(), &steps(OptimizerKind::Adadelta))),
        Test::cpu("adadelta_cpu", || check(&Cpu, &steps(OptimizerKind::Adadelta))),
        Test::gpu("rmsprop_gpu", || check(gpu(), &steps(OptimizerKind::Rmsprop))),
        Test::cpu("rmsprop_cpu", || check(&Cpu, &steps(OptimizerKind::Rmsprop))),
        Test::gpu("adam_gpu", || check(gpu(), &steps(OptimizerKind::Adam))),
        Test::cpu("adam_cpu", || check(&Cpu, &steps(OptimizerKind::Adam))),
        Test::gpu("adamw_gpu", || check(gpu(), &steps(OptimizerKind::AdamW))),
        Test::cpu("adamw_cpu", || check(&Cpu, &steps(OptimizerKind::AdamW))),
        Test::gpu("clip_grad_norm_gpu", || check(gpu(), &clip())),
        Test::cpu("clip_grad_norm_cpu", || check(&Cpu, &clip())),
        Test::cpu("cpu_rules_match_hand_computed_pytorch_steps", cpu_rules_match_hand_computed_pytorch_steps),
        Test::cpu("bad_optimizer_settings_are_errors", bad_optimizer_settings_are_errors),
        Test::gpu("whole_model_step_is_one_dispatch_and_matches_the_cpu", whole_model_step_is_one_dispatch_and_matches_the_cpu),
    ]
}

fn steps(kind: OptimizerKind) -> Vec<Case> {
    only(optimizer::cases(true), |c| matches!(c, Case::Optimizer(optimizer::Case::Step { opt, .. }) if opt.kind == kind))
}

fn clip() -> Vec<Case> {
    only(optimizer::cases(true), |c| matches!(c, Case::Optimizer(optimizer::Case::ClipGradNorm { .. })))
}

/// The CPU twin reproduces hand-computed PyTorch updates (independent of the GPU).
fn cpu_rules_match_hand_computed_pytorch_steps() {
    let cpu = Cpu;
    let run = |opt: Optimizer, grads: &[f32]| -> Vec<f32> {
        let mut p = cpu.upload(&[1], &[1.0]).unwrap();
        let mut s1 = cpu.upload(&[1], &[opt.initial_state()]).unwrap();
        let mut s2 = cpu.zeros(&[1]).unwrap();
        grads
            .iter()
            .enumerate()
            .map(|(t, &g)| {
                cpu.optimizer_step(&opt, t as u64 + 1, &mut p, &cpu.upload(&[1], &[g]).unwrap(), &mut s1, &mut s2).unwrap();
                p.data()[0]
            })
            .collect()
    };
    let close = |got: Vec<f32>, want: &[f64]| {
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-6, "got {got:?}, want {want:?}");
        }
    };
    // SGD momentum 0.9, lr 0.1: buf 1 -> p 0.9; buf 0.9*1+1 = 1.9 -> p 0.71.
    let mut sgd = Optimizer::new(OptimizerKind::Sgd);
    sgd.lr = 0.1;
    sgd.momentum = 0.9;
    close(run(sgd, &[1.0, 1.0]), &[0.9, 0.71]);
    // Nesterov: g + 0.9*buf: step 1: 1 + 0.9 = 1.9 -> p 0.81; step 2: buf 1.9, 1 + 1.71 = 2.71 -> 0.539.
    sgd.nesterov = true;
    close(run(sgd, &[1.0, 1.0]), &[0.81, 0.539]);
    // Adam, lr 1e-3: the first step moves by lr * g/|g| (bias-corrected), ~1e-3.
    let adam = Optimizer::new(OptimizerKind::Adam);
    let p = run(adam, &[0.5]);
    close(p, &[1.0 - 1e-3 * 0.5 / (0.5 + 1e-8)]);
    // AdamW, lr 1e-3, wd 1e-2: p first shrinks by 1 - 1e-5.
    let adamw = Optimizer::new(OptimizerKind::AdamW);
    close(run(adamw, &[0.5]), &[(1.0 - 1e-5) - 1e-3 * 0.5 / (0.5 + 1e-8)]);
    // Adagrad lr 0.01: sum = g^2, step = lr * g / |g|.
    close(run(Optimizer::new(OptimizerKind::Adagrad), &[2.0]), &[1.0 - 0.01 * 2.0 / (2.0 + 1e-10)]);
    // RMSprop lr 0.01, alpha 0.99: sq = 0.01 g^2, step = lr * g / (0.1 |g| + eps) = 0.1.
    close(run(Optimizer::new(OptimizerKind::Rmsprop), &[3.0]), &[1.0 - 0.01 * 3.0 / (0.1f64 * 3.0 + 1e-8)]);
    // Adadelta lr 1, rho 0.9, eps 1e-6: sq = 0.1 g^2, delta = sqrt(eps)/sqrt(sq+eps) * g.
    let g = 2.0f64;
    close(run(Optimizer::new(OptimizerKind::Adadelta), &[g as f32]), &[1.0 - (1e-6f64).sqrt() / (0.1 * g * g + 1e-6).sqrt() * g]);
}

fn bad_optimizer_settings_are_errors() {
    let cpu = Cpu;
    let mut sgd = Optimizer::new(OptimizerKind::Sgd);
    sgd.nesterov = true; // without momentum
    let (mut p, g, mut s1, mut s2) =
        (cpu.zeros(&[4]).unwrap(), cpu.zeros(&[4]).unwrap(), cpu.zeros(&[4]).unwrap(), cpu.zeros(&[1]).unwrap());
    let err = cpu.optimizer_step(&sgd, 1, &mut p, &g, &mut s1, &mut s2).unwrap_err().to_string();
    assert!(err.contains("nesterov"), "{err}");
    let adam = Optimizer::new(OptimizerKind::Adam);
    let err = cpu.optimizer_step(&adam, 1, &mut p, &g, &mut s1, &mut s2).unwrap_err().to_string();
    assert!(err.contains("optimizer_step") && err.contains("state2"), "{err}");
    let mut bad = Optimizer::new(OptimizerKind::Adam);
    bad.betas = (0.9, 1.0);
    assert!(bad.validate().unwrap_err().to_string().contains("beta2"));
    assert!(OptimizerKind::parse("lion").unwrap_err().to_string().contains("adamw"));
}

/// A model's parameters in one arena: the GPU updates all of them in one dispatch, with the
/// same results as the CPU's per-tensor updates; clipping by the global norm spans all too.
fn whole_model_step_is_one_dispatch_and_matches_the_cpu() {
    use wgtrain::rng::Rng;
    // A device of its own: other tests dispatching meanwhile would spoil the count.
    let gpu = open(&wgtrain::GpuOptions::default());
    let cpu = Cpu;
    let shapes: Vec<Vec<usize>> = vec![vec![3, 5], vec![7], vec![1], vec![64, 65], vec![2, 3, 3, 3]];
    let mut rng = Rng::new(77);
    let init: Vec<Vec<f32>> = shapes.iter().map(|s| rng.vec(s.iter().product(), -1.0, 1.0)).collect();
    let grads: Vec<Vec<Vec<f32>>> = (0..3).map(|_| shapes.iter().map(|s| rng.vec(s.iter().product(), -1.0, 1.0)).collect()).collect();
    let mut opt = Optimizer::new(OptimizerKind::Adam);
    opt.weight_decay = 1e-2;

    let mut cp = cpu.arena(&shapes).unwrap();
    let mut cg = cpu.arena(&shapes).unwrap();
    let (mut c1, mut c2) = (cpu.arena(&shapes).unwrap(), cpu.arena(&shapes).unwrap());
    let mut gp = gpu.arena(&shapes).unwrap();
    let mut gg = gpu.arena(&shapes).unwrap();
    let (mut g1, mut g2) = (gpu.arena(&shapes).unwrap(), gpu.arena(&shapes).unwrap());
    for i in 0..shapes.len() {
        cpu.write(&mut cp[i], &init[i]).unwrap();
        gpu.write(&mut gp[i], &init[i]).unwrap();
    }
    let (mut cs, mut gs) = (cpu.zeros(&[1]).unwrap(), gpu.zeros(&[1]).unwrap());
    for (t, step) in grads.iter().enumerate() {
        for i in 0..shapes.len() {
            cpu.write(&mut cg[i], &step[i]).unwrap();
            gpu.write(&mut gg[i], &step[i]).unwrap();
        }
        cpu.clip_grad_norm_all(&mut cg, 3.0, &mut cs).unwrap();
        gpu.clip_grad_norm_all(&mut gg, 3.0, &mut gs).unwrap();
        cpu.optimizer_step_all(&opt, t as u64 + 1, &mut cp, &cg, &mut c1, &mut c2).unwrap();
        let before = gpu.dispatches();
        gpu.optimizer_step_all(&opt, t as u64 + 1, &mut gp, &gg, &mut g1, &mut g2).unwrap();
        assert_eq!(gpu.dispatches() - before, 1, "the whole-model step must be one dispatch");
    }
    let tol = wgtrain::verify::Tolerance::optimizer(3);
    for i in 0..shapes.len() {
        let c = tol.compare(&gpu.download(&gp[i]).unwrap(), cp[i].data());
        assert!(c.passed(), "tensor {i}: {c:?}");
    }
    let (c, g) = (cs.data()[0], gpu.download(&gs).unwrap()[0]);
    assert!((c - g).abs() <= 1e-5 * c, "sum of squares {g} vs {c}");
}
