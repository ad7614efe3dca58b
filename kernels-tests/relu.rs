//! shaders/relu.wgsl against src/cpu/relu.rs.

use crate::common::{check_all, elementwise_cases};

#[test]
fn relu_forward() {
    check_all(&elementwise_cases("relu"));
}

#[test]
fn relu_backward() {
    check_all(&elementwise_cases("relu_backward"));
}
