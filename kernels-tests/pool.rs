//! shaders/pool.wgsl against src/cpu/pool.rs: max, average and global average pooling,
//! forward and backward.

use wgtrain::ops::PoolSpec;
use wgtrain::verify::{pool, Case, PoolKind};
use wgtrain::{Backend, Cpu};

use crate::common::{check, gpu, only, Test};

pub fn tests() -> Vec<Test> {
    use PoolKind::{Avg, GlobalAvg, Max};
    vec![
        Test::gpu("max_pool2d_gpu", || check(gpu(), &cases(Max, false))),
        Test::cpu("max_pool2d_cpu", || check(&Cpu, &cases(Max, false))),
        Test::gpu("max_pool2d_backward_gpu", || check(gpu(), &cases(Max, true))),
        Test::cpu("max_pool2d_backward_cpu", || check(&Cpu, &cases(Max, true))),
        Test::gpu("avg_pool2d_gpu", || check(gpu(), &cases(Avg, false))),
        Test::cpu("avg_pool2d_cpu", || check(&Cpu, &cases(Avg, false))),
        Test::gpu("avg_pool2d_backward_gpu", || check(gpu(), &cases(Avg, true))),
        Test::cpu("avg_pool2d_backward_cpu", || check(&Cpu, &cases(Avg, true))),
        Test::gpu("global_avg_pool_gpu", || check(gpu(), &[cases(GlobalAvg, false), cases(GlobalAvg, true)].concat())),
        Test::cpu("global_avg_pool_cpu", || check(&Cpu, &[cases(GlobalAvg, false), cases(GlobalAvg, true)].concat())),
        Test::cpu("avg_pool_divisor_follows_pytorch", avg_pool_divisor_follows_pytorch),
    ]
}

fn cases(kind: PoolKind, backward: bool) -> Vec<Case> {
    only(pool::cases(true), |c| matches!(c, Case::Pool(c) if c.kind == kind && c.backward == backward))
}

/// PyTorch's divisors: a 3x3 window at the corner of a padded 4x4 input covers 4 pixels;
/// count_include_pad divides by 9, otherwise by 4.
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
