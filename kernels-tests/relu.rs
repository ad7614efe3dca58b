//! shaders/relu.wgsl against src/cpu/relu.rs.

use wgtrain::Cpu;

use crate::common::{check, gpu, op_cases, Test};

pub fn tests() -> Vec<Test> {
    vec![
        Test::gpu("forward_gpu", || check(gpu(), &op_cases("relu"))),
        Test::cpu("forward_cpu", || check(&Cpu, &op_cases("relu"))),
        Test::gpu("backward_gpu", || check(gpu(), &op_cases("relu_backward"))),
        Test::cpu("backward_cpu", || check(&Cpu, &op_cases("relu_backward"))),
        Test::gpu("in_place_gpu", || check(gpu(), &op_cases("relu_in_place"))),
        Test::cpu("in_place_cpu", || check(&Cpu, &op_cases("relu_in_place"))),
        Test::gpu("backward_in_place_gpu", || check(gpu(), &op_cases("relu_backward_in_place"))),
        Test::cpu("backward_in_place_cpu", || check(&Cpu, &op_cases("relu_backward_in_place"))),
    ]
}
