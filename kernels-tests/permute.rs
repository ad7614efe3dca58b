//! shaders/permute.wgsl against src/cpu/permute.rs.

use wgtrain::verify::{channel_cases, Case};

use crate::common::check_all;

#[test]
fn permute3() {
    let v: Vec<Case> = channel_cases(false).into_iter().filter(|c| matches!(c, Case::Permute { .. })).collect();
    assert!(v.len() >= 4);
    check_all(&v);
}
