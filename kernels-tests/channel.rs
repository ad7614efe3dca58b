//! shaders/bias_act.wgsl and shaders/channel.wgsl against src/cpu/channel.rs.

use wgtrain::verify::{channel, Case};
use wgtrain::Cpu;

use crate::common::{check, gpu, only, Test};

pub fn tests() -> Vec<Test> {
    vec![
        Test::gpu("bias_act_gpu", || check(gpu(), &bias_act())),
        Test::cpu("bias_act_cpu", || check(&Cpu, &bias_act())),
        Test::gpu("act_backward_gpu", || check(gpu(), &act_backward())),
        Test::cpu("act_backward_cpu", || check(&Cpu, &act_backward())),
        Test::gpu("channel_sum_gpu", || check(gpu(), &channel_sum())),
        Test::cpu("channel_sum_cpu", || check(&Cpu, &channel_sum())),
    ]
}

fn bias_act() -> Vec<Case> {
    only(channel::cases(true), |c| matches!(c, Case::Channel(channel::Case::BiasAct { .. })))
}

fn act_backward() -> Vec<Case> {
    only(channel::cases(true), |c| matches!(c, Case::Channel(channel::Case::ActBackward { .. })))
}

fn channel_sum() -> Vec<Case> {
    only(channel::cases(true), |c| matches!(c, Case::Channel(channel::Case::ChannelSum { .. })))
}
