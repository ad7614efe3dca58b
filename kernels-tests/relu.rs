//! shaders/relu.wgsl against src/cpu/relu.rs.

use wgtrain::Cpu;

use crate::common::{check, gpu, op_cases, Test};

pub fn tests() -> Vec<Test> {
    vec![
        Test::gpu("forward_gpu", || check(gpu(), &op_cases("relu"))),
        Test::cpu("forward_cpu", || check(&Cpu, &op_cases("relu"))),
        Test::gpu("backward_gpu", || check(gpu(), &op_cases("relu_backward"))),
        Test::cpu("backward_cpu", || check(&Cpu, &op_cases("relu_backward"))),
    ]
}
