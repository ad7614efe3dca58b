//! shaders/bias_act.wgsl and shaders/channel.wgsl against src/cpu/channel.rs.

use wgtrain::verify::{channel_cases, Case};

use crate::common::check_all;

fn cases(keep: impl Fn(&Case) -> bool) -> Vec<Case> {
    let v: Vec<Case> = channel_cases(true).into_iter().filter(keep).collect();
    assert!(!v.is_empty());
    v
}

#[test]
fn bias_act() {
    check_all(&cases(|c| matches!(c, Case::BiasAct { .. })));
}

#[test]
fn act_backward() {
    check_all(&cases(|c| matches!(c, Case::ActBackward { .. })));
}

#[test]
fn channel_sum() {
    check_all(&cases(|c| matches!(c, Case::ChannelSum { .. })));
}
