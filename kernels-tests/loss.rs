//! shaders/loss.wgsl (softmax cross-entropy with its gradient, argmax) and the linear layer
//! (matmul + bias_act + channel_sum) against src/cpu/loss.rs and the CPU backend.

use wgtrain::verify::{linear, loss, Case};
use wgtrain::{Backend, CeTarget, Cpu};

use crate::common::{check, gpu, only, Test};

pub fn tests() -> Vec<Test> {
    vec![
        Test::gpu("cross_entropy_gpu", || check(gpu(), &cross_entropy())),
        Test::cpu("cross_entropy_cpu", || check(&Cpu, &cross_entropy())),
        Test::gpu("argmax_and_correct_rows_gpu", || check(gpu(), &argmax())),
        Test::cpu("argmax_and_correct_rows_cpu", || check(&Cpu, &argmax())),
        Test::gpu("linear_gpu", || check(gpu(), &linear::cases(true))),
        Test::cpu("linear_cpu", || check(&Cpu, &linear::cases(true))),
        Test::cpu("cross_entropy_known_values", cross_entropy_known_values),
        Test::cpu("bad_labels_are_errors_cpu", bad_labels_are_errors_on_the_cpu),
        Test::gpu("bad_labels_give_nan_gpu", bad_labels_give_nan_on_the_gpu),
    ]
}

fn cross_entropy() -> Vec<Case> {
    only(loss::cases(true), |c| matches!(c, Case::Loss(loss::Case::CrossEntropy { .. })))
}

fn argmax() -> Vec<Case> {
    only(loss::cases(true), |c| matches!(c, Case::Loss(loss::Case::Argmax { .. })))
}

/// Hand-checked values: uniform logits over C classes give loss ln C; label smoothing only
/// changes the target; a confident right answer gives a small loss.
fn cross_entropy_known_values() {
    let cpu = Cpu;
    let (mut loss, mut grad) = (cpu.zeros(&[1]).unwrap(), cpu.zeros(&[2, 4]).unwrap());
    let z = cpu.zeros(&[2, 4]).unwrap();
    let labels = cpu.upload(&[2], &[1.0, 3.0]).unwrap();
    cpu.cross_entropy(&z, CeTarget::Labels(&labels), 0.0, &mut loss, &mut grad).unwrap();
    assert!((loss.data()[0] - 4f32.ln()).abs() < 1e-6);
    // grad = (softmax - onehot) / N = (0.25 - [0 1 0 0]) / 2
    assert_eq!(grad.data()[0], 0.125);
    assert_eq!(grad.data()[1], -0.375);
    // Label smoothing 0.1 on a confident correct row: -(0.925 log p1 + 0.025 * sum others).
    let z = cpu.upload(&[1, 4], &[0.0, 10.0, 0.0, 0.0]).unwrap();
    let (mut loss, mut grad) = (cpu.zeros(&[1]).unwrap(), cpu.zeros(&[1, 4]).unwrap());
    cpu.cross_entropy(&z, CeTarget::Labels(&cpu.upload(&[1], &[1.0]).unwrap()), 0.1, &mut loss, &mut grad).unwrap();
    let lse = (10f64.exp() + 3.0).ln();
    let want = 0.925 * (lse - 10.0) + 0.025 * 3.0 * lse;
    assert!((loss.data()[0] as f64 - want).abs() < 1e-5, "{} vs {want}", loss.data()[0]);
}

fn bad_labels_are_errors_on_the_cpu() {
    let cpu = Cpu;
    let (mut loss, mut grad) = (cpu.zeros(&[1]).unwrap(), cpu.zeros(&[2, 3]).unwrap());
    let z = cpu.zeros(&[2, 3]).unwrap();
    for bad in [3.0f32, -1.0, 1.5] {
        let err = cpu
            .cross_entropy(&z, CeTarget::Labels(&cpu.upload(&[2], &[0.0, bad]).unwrap()), 0.0, &mut loss, &mut grad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("label 1") && err.contains(&bad.to_string()) && err.contains("[0, 3)"), "{err}");
    }
    let err = cpu.cross_entropy(&z, CeTarget::Labels(&cpu.zeros(&[3]).unwrap()), 0.0, &mut loss, &mut grad).unwrap_err().to_string();
    assert!(err.contains("cross_entropy") && err.contains("[2]"), "{err}");
}

/// The GPU does not read labels back to check them (that would stall every step): a bad one
/// makes the loss NaN, which the trainer reports.
fn bad_labels_give_nan_on_the_gpu() {
    let gpu = gpu();
    let (mut loss, mut grad) = (gpu.zeros(&[1]).unwrap(), gpu.zeros(&[2, 3]).unwrap());
    gpu.cross_entropy(&gpu.zeros(&[2, 3]).unwrap(), CeTarget::Labels(&gpu.upload(&[2], &[0.0, 7.0]).unwrap()), 0.0, &mut loss, &mut grad)
        .unwrap();
    assert!(gpu.download(&loss).unwrap()[0].is_nan());
}
