//! shaders/permute.wgsl (permutes, rows padded to whole vec4s and cropped back) against
//! src/cpu/permute.rs.
//! GPU only: the CPU's permute is the twin itself, so checking it against itself says nothing.

use wgtrain::verify::{channel, Case};

use crate::common::{check, gpu, only, Test};

pub fn tests() -> Vec<Test> {
    vec![Test::gpu("permute3_gpu", || check(gpu(), &permutes())), Test::gpu("pad_and_crop_rows_gpu", || check(gpu(), &resizes()))]
}

fn permutes() -> Vec<Case> {
    let v = only(channel::cases(false), |c| matches!(c, Case::Channel(channel::Case::Permute { .. })));
    assert!(v.len() >= 4);
    v
}

fn resizes() -> Vec<Case> {
    let v = only(channel::cases(false), |c| matches!(c, Case::Channel(channel::Case::ResizeRows { .. })));
    assert!(v.len() >= 4);
    v
}
