//! shaders/elementwise.wgsl against src/cpu/elementwise.rs (add and add + ReLU in both their
//! scalar and vec4 forms: the shapes of 256 and 4 x 25 values take the vec4 ones).

use wgtrain::Cpu;

use crate::common::{check, gpu, op_cases, Test};

pub fn tests() -> Vec<Test> {
    vec![
        Test::gpu("add_gpu", || check(gpu(), &op_cases("add"))),
        Test::cpu("add_cpu", || check(&Cpu, &op_cases("add"))),
        Test::gpu("add_relu_gpu", || check(gpu(), &op_cases("add_relu"))),
        Test::cpu("add_relu_cpu", || check(&Cpu, &op_cases("add_relu"))),
        Test::gpu("mul_gpu", || check(gpu(), &op_cases("mul"))),
        Test::cpu("mul_cpu", || check(&Cpu, &op_cases("mul"))),
        Test::gpu("scale_gpu", || check(gpu(), &op_cases("scale"))),
        Test::cpu("scale_cpu", || check(&Cpu, &op_cases("scale"))),
    ]
}
