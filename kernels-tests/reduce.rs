//! shaders/reduce.wgsl against src/cpu/reduce.rs.

use wgtrain::gpu::reduce::{sum_plan, MAX_PARTIALS};
use wgtrain::Cpu;

use crate::common::{check, gpu, op_cases, Test};

// The sums include one pass (small), two passes, and more elements than MAX_PARTIALS * 4096.
pub fn tests() -> Vec<Test> {
    vec![
        Test::gpu("sum_gpu", || check(gpu(), &op_cases("sum"))),
        Test::cpu("sum_cpu", || check(&Cpu, &op_cases("sum"))),
        Test::gpu("sum_squares_gpu", || check(gpu(), &op_cases("sum_squares"))),
        Test::cpu("sum_squares_cpu", || check(&Cpu, &op_cases("sum_squares"))),
        Test::cpu("sum_plan_covers_every_element", sum_plan_covers_every_element),
    ]
}

fn sum_plan_covers_every_element() {
    for n in [1, 7, 4096, 4097, 1_000_003, 4096 * 1024 + 17, 50_000_000] {
        let (groups, chunk) = sum_plan(n);
        assert!((1..=MAX_PARTIALS).contains(&groups), "n {n}: {groups} groups");
        assert!(groups * chunk >= n && (groups - 1) * chunk < n, "n {n}: {groups} x {chunk} does not tile it");
    }
}
