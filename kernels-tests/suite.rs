//! `wgtrain verify`'s suite (no GPU): every op family is in it, every case has a name and a
//! shape for the report, and the small suite passes on the CPU against itself.

use std::collections::BTreeSet;

use wgtrain::verify::{self, Case};
use wgtrain::Cpu;

use crate::common::{check, Test};

pub fn tests() -> Vec<Test> {
    vec![
        Test::cpu("every_family_is_in_the_suite", every_family_is_in_the_suite),
        Test::cpu("small_suite_passes_on_the_cpu", || check(&Cpu, &verify::suite(false))),
    ]
}

fn family(c: &Case) -> &'static str {
    match c {
        Case::Matmul(_) => "matmul",
        Case::Elementwise(_) => "elementwise",
        Case::Reduce(_) => "reduce",
        Case::Dropout(_) => "dropout",
        Case::Optimizer(_) => "optimizer",
        Case::Conv2d(_) => "conv2d",
        Case::Channel(_) => "channel",
        Case::Pool(_) => "pool",
        Case::BatchNorm(_) => "batch_norm",
        Case::Loss(_) => "loss",
        Case::Linear(_) => "linear",
    }
}

fn every_family_is_in_the_suite() {
    let (small, large) = (verify::suite(false), verify::suite(true));
    assert!(large.len() > small.len());
    let families: BTreeSet<&str> = small.iter().map(family).collect();
    assert_eq!(families.len(), 11, "{families:?}");
    for c in &large {
        assert!(!c.op().is_empty() && !c.shape().is_empty(), "{c:?}");
    }
    // Every matmul variant is exercised, not only the default.
    let ops: BTreeSet<String> = small.iter().map(Case::op).collect();
    for v in wgtrain::MatmulVariant::ALL {
        assert!(ops.iter().any(|o| o.starts_with(&format!("matmul {}", v.name()))), "no case for {}", v.name());
    }
}
