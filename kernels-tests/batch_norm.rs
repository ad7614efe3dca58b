//! Batch norm 2d — shaders/batch_norm.wgsl, shaders/bn_stats.wgsl and the per-channel
//! reductions of shaders/channel.wgsl, and shaders/batch_norm_eval_backward.wgsl — against
//! src/cpu/batch_norm.rs.

use wgtrain::rng::Rng;
use wgtrain::verify::{batch_norm, BnPass, Case};
use wgtrain::{Backend, Cpu};

use crate::common::{check, gpu, only, Test};

pub fn tests() -> Vec<Test> {
    vec![
        Test::gpu("train_gpu", || check(gpu(), &cases(BnPass::Train))),
        Test::cpu("train_cpu", || check(&Cpu, &cases(BnPass::Train))),
        Test::gpu("eval_gpu", || check(gpu(), &cases(BnPass::Eval))),
        Test::cpu("eval_cpu", || check(&Cpu, &cases(BnPass::Eval))),
        Test::gpu("backward_gpu", || check(gpu(), &cases(BnPass::Backward))),
        Test::cpu("backward_cpu", || check(&Cpu, &cases(BnPass::Backward))),
        Test::gpu("eval_backward_gpu", || check(gpu(), &cases(BnPass::EvalBackward))),
        Test::cpu("eval_backward_cpu", || check(&Cpu, &cases(BnPass::EvalBackward))),
        Test::cpu("eval_backward_matches_finite_differences", eval_backward_matches_finite_differences),
        Test::gpu("eval_backward_writes_only_what_is_asked", eval_backward_writes_only_what_is_asked),
        Test::cpu("running_statistics_follow_pytorch", running_statistics_follow_pytorch),
    ]
}

fn cases(pass: BnPass) -> Vec<Case> {
    only(batch_norm::cases(true), |c| matches!(c, Case::BatchNorm(c) if c.pass == pass))
}

/// PyTorch's running-statistics rule, by hand: momentum 0.1, unbiased variance.
fn running_statistics_follow_pytorch() {
    let cpu = Cpu;
    // One channel, values 1..=4: mean 2.5, biased var 1.25, unbiased 5/3.
    let x = cpu.upload(&[4, 1], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    let (g, b) = (cpu.upload(&[1], &[1.0]).unwrap(), cpu.upload(&[1], &[0.0]).unwrap());
    let (mut m, mut v) = (cpu.upload(&[1], &[0.0]).unwrap(), cpu.upload(&[1], &[1.0]).unwrap());
    let (mut y, mut sm, mut si) = (cpu.zeros(&[4, 1]).unwrap(), cpu.zeros(&[1]).unwrap(), cpu.zeros(&[1]).unwrap());
    cpu.batch_norm_train(&x, &g, &b, &mut m, &mut v, &mut y, &mut sm, &mut si, 0.1, 1e-5).unwrap();
    assert!((m.data()[0] - 0.25).abs() < 1e-7);
    assert!((v.data()[0] - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-6);
    assert!((si.data()[0] - 1.0 / (1.25f32 + 1e-5).sqrt()).abs() < 1e-6);
    let err = cpu
        .batch_norm_train(
            &cpu.upload(&[1, 1], &[1.0]).unwrap(),
            &g,
            &b,
            &mut m,
            &mut v,
            &mut cpu.zeros(&[1, 1]).unwrap(),
            &mut sm,
            &mut si,
            0.1,
            1e-5,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than one value"), "{err}");
}

/// The eval-mode backward against central differences of the eval forward, on the CPU:
/// f = Σ w · batch_norm_eval(x, γ, β) with the running statistics fixed, so ∂f/∂x, ∂f/∂γ and
/// ∂f/∂β are what `batch_norm_backward_eval` gives for dy = w. The forward is affine in each
/// of x, γ and β, so the central difference has no truncation error: only the f32 rounding of
/// the one output a perturbation changes remains, about 1e-7 |y| / (2h) = 5e-6 |y| at h = 1e-2
/// (the other outputs are identical in both evaluations and cancel exactly in the f64 sum).
/// The bound 1e-4 + 1e-3 |g| covers that with a wide margin; a wrong factor (a missing
/// 1/sqrt(var + eps), the batch mean instead of the running one) misses it by far.
fn eval_backward_matches_finite_differences() {
    let cpu = Cpu;
    let shape = [2usize, 3, 5, 7]; // N = 2, C = 3 (prime), P = 35
    let (n, c) = (shape.iter().product::<usize>(), shape[1]);
    let eps = 1e-5f32;
    let mut rng = Rng::new(7);
    let x = rng.vec(n, -2.0, 2.0);
    let w = rng.vec(n, -1.0, 1.0);
    let gamma = rng.vec(c, 0.5, 1.5);
    let beta = rng.vec(c, -0.5, 0.5);
    let rm = rng.vec(c, -0.3, 0.3);
    let rv = rng.vec(c, 0.2, 2.0);
    let f = |x: &[f32], gamma: &[f32], beta: &[f32]| -> f64 {
        let t = |s: &[usize], v: &[f32]| cpu.upload(s, v).unwrap();
        let mut y = cpu.zeros(&shape).unwrap();
        cpu.batch_norm_eval(&t(&shape, x), &t(&[c], gamma), &t(&[c], beta), &t(&[c], &rm), &t(&[c], &rv), &mut y, eps).unwrap();
        y.data().iter().zip(&w).map(|(&a, &b)| a as f64 * b as f64).sum()
    };
    let t = |s: &[usize], v: &[f32]| cpu.upload(s, v).unwrap();
    let (mut dx, mut dg, mut db) = (cpu.zeros(&shape).unwrap(), cpu.zeros(&[c]).unwrap(), cpu.zeros(&[c]).unwrap());
    cpu.batch_norm_backward_eval(
        &t(&shape, &x),
        &t(&shape, &w),
        &t(&[c], &gamma),
        &t(&[c], &rm),
        &t(&[c], &rv),
        Some(&mut dx),
        Some((&mut dg, &mut db)),
        eps,
    )
    .unwrap();
    let h = 1e-2f32;
    let central = |plus: f64, minus: f64| (plus - minus) / (2.0 * h as f64);
    let close = |what: &str, i: usize, fd: f64, got: f32| {
        assert!((fd - got as f64).abs() <= 1e-4 + 1e-3 * fd.abs(), "{what}[{i}]: analytic {got}, finite difference {fd}");
    };
    for i in 0..n {
        let (mut a, mut b) = (x.clone(), x.clone());
        a[i] += h;
        b[i] -= h;
        close("dx", i, central(f(&a, &gamma, &beta), f(&b, &gamma, &beta)), dx.data()[i]);
    }
    for ch in 0..c {
        let (mut a, mut b) = (gamma.clone(), gamma.clone());
        a[ch] += h;
        b[ch] -= h;
        close("dgamma", ch, central(f(&x, &a, &beta), f(&x, &b, &beta)), dg.data()[ch]);
        let (mut a, mut b) = (beta.clone(), beta.clone());
        a[ch] += h;
        b[ch] -= h;
        close("dbeta", ch, central(f(&x, &gamma, &a), f(&x, &gamma, &b)), db.data()[ch]);
    }
}

/// Asked for only dx, or only the parameter gradients, the op gives the same values as asked
/// for all three (the layer skips what nothing needs); on both backends. A mis-shaped gradient
/// is refused, naming the op and the operand.
fn eval_backward_writes_only_what_is_asked() {
    fn on<B: Backend>(be: &B) {
        let shape = [1usize, 5, 3, 3];
        let mut rng = Rng::new(3);
        let t = |s: &[usize], v: &[f32]| be.upload(s, v).unwrap();
        let (x, dy) = (t(&shape, &rng.vec(45, -1.0, 1.0)), t(&shape, &rng.vec(45, -1.0, 1.0)));
        let (g, m, v) = (t(&[5], &rng.vec(5, 0.5, 1.5)), t(&[5], &rng.vec(5, -0.5, 0.5)), t(&[5], &rng.vec(5, 0.5, 1.5)));
        let (mut dx, mut dg, mut db) = (t(&shape, &[7.0; 45]), t(&[5], &[7.0; 5]), t(&[5], &[7.0; 5]));
        be.batch_norm_backward_eval(&x, &dy, &g, &m, &v, Some(&mut dx), Some((&mut dg, &mut db)), 1e-5).unwrap();
        let all = [be.download(&dx).unwrap(), be.download(&dg).unwrap(), be.download(&db).unwrap()];
        assert!(all.iter().flatten().all(|&v| v != 7.0), "an output was not written: {all:?}");
        let (mut dx1, mut dg1, mut db1) = (t(&shape, &[7.0; 45]), t(&[5], &[7.0; 5]), t(&[5], &[7.0; 5]));
        be.batch_norm_backward_eval(&x, &dy, &g, &m, &v, None, Some((&mut dg1, &mut db1)), 1e-5).unwrap();
        be.batch_norm_backward_eval(&x, &dy, &g, &m, &v, Some(&mut dx1), None, 1e-5).unwrap();
        assert_eq!([be.download(&dx1).unwrap(), be.download(&dg1).unwrap(), be.download(&db1).unwrap()], all);
        let mut wrong = t(&[4], &[0.0; 4]);
        let err = be.batch_norm_backward_eval(&x, &dy, &g, &m, &v, None, Some((&mut dg1, &mut wrong)), 1e-5).unwrap_err().to_string();
        assert!(err.contains("batch_norm_backward_eval") && err.contains("dbeta"), "{err}");
    }
    on(&Cpu);
    on(gpu());
}
