//! shaders/dropout.wgsl against src/cpu/dropout.rs: the same mask bit for bit, and masks that
//! behave like dropout masks.

use wgtrain::ops::DropoutMask;
use wgtrain::verify::{dropout, Case};
use wgtrain::{Backend, Cpu};

use crate::common::{check, gpu, Test};

pub fn tests() -> Vec<Test> {
    vec![
        Test::gpu("matches_cpu_exactly_gpu", || check(gpu(), &cases())),
        Test::cpu("matches_cpu_exactly_cpu", || check(&Cpu, &cases())),
        Test::cpu(
            "masks_keep_the_right_fraction_and_change_with_seed_and_step",
            masks_keep_the_right_fraction_and_change_with_seed_and_step,
        ),
        Test::cpu("edge_probabilities_and_bad_ones", edge_probabilities_and_bad_ones),
    ]
}

fn cases() -> Vec<Case> {
    let v = dropout::cases(true);
    assert!(v.len() >= 5);
    v
}

fn kept_mask(p: f32, seed: u64, step: u64, n: usize) -> Vec<bool> {
    let cpu = Cpu;
    let mut out = cpu.zeros(&[n]).unwrap();
    cpu.dropout(&cpu.upload(&[n], &vec![1.0; n]).unwrap(), &mut out, &DropoutMask::new(p, seed, step).unwrap()).unwrap();
    out.data().iter().map(|&v| v != 0.0).collect()
}

fn masks_keep_the_right_fraction_and_change_with_seed_and_step() {
    let n = 200_000;
    for p in [0.1f32, 0.5, 0.9] {
        let kept = kept_mask(p, 3, 1, n).iter().filter(|&&k| k).count() as f64 / n as f64;
        let sd = ((p * (1.0 - p)) as f64 / n as f64).sqrt();
        assert!((kept - (1.0 - p as f64)).abs() < 5.0 * sd, "p {p}: kept {kept}");
    }
    let base = kept_mask(0.5, 3, 1, n);
    assert_eq!(base, kept_mask(0.5, 3, 1, n), "same (seed, step) must give the same mask");
    for other in [kept_mask(0.5, 4, 1, n), kept_mask(0.5, 3, 2, n)] {
        // Independent masks at p = 0.5 disagree on about half the elements.
        let differ = base.iter().zip(&other).filter(|(a, b)| a != b).count() as f64 / n as f64;
        assert!((differ - 0.5).abs() < 0.01, "masks too alike: {differ}");
    }
    // Kept values are scaled by 1 / (1 - p).
    let cpu = Cpu;
    let mut out = cpu.zeros(&[64]).unwrap();
    cpu.dropout(&cpu.upload(&[64], &vec![3.0; 64]).unwrap(), &mut out, &DropoutMask::new(0.25, 1, 1).unwrap()).unwrap();
    assert!(out.data().iter().all(|&v| v == 0.0 || v == 4.0));
}

fn edge_probabilities_and_bad_ones() {
    assert!(kept_mask(0.0, 1, 1, 1000).iter().all(|&k| k));
    assert!(kept_mask(1.0, 1, 1, 1000).iter().all(|&k| !k));
    for bad in [-0.1f32, 1.5, f32::NAN] {
        let err = DropoutMask::new(bad, 1, 1).unwrap_err().to_string();
        assert!(err.contains("dropout") && err.contains("[0, 1]"), "{err}");
    }
}
