//! shaders/elementwise.wgsl against src/cpu/elementwise.rs.

use crate::common::{check_all, elementwise_cases};

#[test]
fn add() {
    check_all(&elementwise_cases("add"));
}

#[test]
fn mul() {
    check_all(&elementwise_cases("mul"));
}

#[test]
fn scale() {
    check_all(&elementwise_cases("scale"));
}
