//! Batch norm 2d — shaders/batch_norm.wgsl, shaders/bn_stats.wgsl and the per-channel
//! reductions of shaders/channel.wgsl — against src/cpu/batch_norm.rs.

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
