//! Every matmul kernel variant against src/cpu/matmul.rs (cases in src/verify/matmul.rs), not
//! only the one chosen for the device, one test each:
//! - `shaders/matmul_v1_naive.wgsl`: `matmul::v1_naive_gpu`
//! - `shaders/matmul_v2_tiled.wgsl`: `matmul::v2_tiled_gpu`
//! - `shaders/matmul_v3_regblock.wgsl`: `matmul::v3_regblock_gpu`
//! - `shaders/matmul_v4_lanes.wgsl`: `matmul::v4_lanes_gpu` (its one-operand-transposed forms
//!   too; both transposed or unaligned cases run on v3, as in training, and the case names
//!   show `v4_lanes→v3_regblock`)
//! - `shaders/matmul_v5_subgroup.wgsl`: `matmul::v5_subgroup_gpu` (aligned cases with A
//!   untransposed, B either way; the others run on v4 or v3, as in training)

use wgtrain::verify::matmul::cases;
use wgtrain::{Cpu, MatmulVariant};

use crate::common::{check, gpu, Test};

pub fn tests() -> Vec<Test> {
    vec![
        Test::gpu("v1_naive_gpu", || check(gpu(), &cases(MatmulVariant::V1Naive, true))),
        Test::gpu("v2_tiled_gpu", || check(gpu(), &cases(MatmulVariant::V2Tiled, true))),
        Test::gpu("v3_regblock_gpu", || check(gpu(), &cases(MatmulVariant::V3RegBlock, true))),
        Test::gpu("v4_lanes_gpu", || check(gpu(), &cases(MatmulVariant::V4Lanes, true))),
        Test::gpu("v5_subgroup_gpu", v5_subgroup_gpu),
        // The CPU has one matmul: the variant is ignored, the shapes are what matter.
        Test::cpu("matmul_cpu", || check(&Cpu, &cases(MatmulVariant::V1Naive, true))),
        Test::cpu("variant_names_parse", variant_names_parse),
    ]
}

fn variant_names_parse() {
    for v in MatmulVariant::ALL {
        assert_eq!(MatmulVariant::parse(v.name()).unwrap(), v);
    }
    assert_eq!(MatmulVariant::parse("v2").unwrap(), MatmulVariant::V2Tiled);
    assert_eq!(MatmulVariant::parse("3").unwrap(), MatmulVariant::V3RegBlock);
    assert_eq!(MatmulVariant::parse("tiled").unwrap(), MatmulVariant::V2Tiled);
    let err = MatmulVariant::parse("v9_magic").unwrap_err().to_string();
    assert!(err.contains("v9_magic") && err.contains("v4_lanes"), "{err}");
}

/// v5 where the device has subgroups of 8 or more (lavapipe has); under CI an adapter without
/// them fails rather than testing v4 twice under v5's name.
fn v5_subgroup_gpu() {
    let gpu = gpu();
    if !gpu.context().has_subgroups_of_8() {
        assert!(std::env::var_os("CI").is_none(), "{} has no subgroups of 8: v5_subgroup is not tested", gpu.adapter_name());
        eprintln!("note: {} has no subgroups of 8; v5_subgroup runs as v4_lanes", gpu.adapter_name());
    }
    check(gpu, &cases(MatmulVariant::V5Subgroup, true));
}
