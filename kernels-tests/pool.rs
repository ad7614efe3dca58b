//! shaders/pool.wgsl against src/cpu/pool.rs: max, average and global average pooling,
//! forward and backward.

use wgtrain::ops::PoolSpec;
use wgtrain::verify::{pool_cases, Case, PoolKind};
use wgtrain::{Backend, Cpu};

use crate::common::check_all;

fn cases(kind: PoolKind, backward: bool) -> Vec<Case> {
    pool_cases(true).into_iter().filter(|c| matches!(c, Case::Pool { kind: k, backward: b, .. } if *k == kind && *b == backward)).collect()
}

#[test]
fn max_pool2d() {
    check_all(&cases(PoolKind::Max, false));
}

#[test]
fn max_pool2d_backward() {
    check_all(&cases(PoolKind::Max, true));
}

#[test]
fn avg_pool2d() {
    check_all(&cases(PoolKind::Avg, false));
}

#[test]
fn avg_pool2d_backward() {
    check_all(&cases(PoolKind::Avg, true));
}

#[test]
fn global_avg_pool() {
    check_all(&cases(PoolKind::GlobalAvg, false));
    check_all(&cases(PoolKind::GlobalAvg, true));
}

/// PyTorch's divisors: a 3x3 window at the corner of a padded 4x4 input covers 4 pixels;
/// count_include_pad divides by 9, otherwise by 4.
#[test]
fn avg_pool_divisor_follows_pytorch() {
    let cpu = Cpu;
    let x = cpu.upload(&[1, 1, 4, 4], &[1.0; 16]).unwrap();
    let mut y = cpu.zeros(&[1, 1, 2, 2]).unwrap();
    let spec = PoolSpec { kernel: [3, 3], stride: [2, 2], padding: [1, 1], count_include_pad: true };
    cpu.avg_pool2d(&x, &mut y, spec).unwrap();
    assert_eq!(y.data()[0], 4.0 / 9.0);
    cpu.avg_pool2d(&x, &mut y, PoolSpec { count_include_pad: false, ..spec }).unwrap();
    assert_eq!(y.data()[0], 1.0);
    // Padding over half the kernel is refused, as PyTorch does.
    let err = cpu.avg_pool2d(&x, &mut y, PoolSpec { padding: [2, 2], ..spec }).unwrap_err().to_string();
    assert!(err.contains("half the kernel"), "{err}");
}
