//! Every matmul kernel variant against src/cpu/matmul.rs (cases in src/verify/matmul.rs), not
//! only the one chosen for the device, one test each:
//! - `shaders/matmul_v1_naive.wgsl`: `matmul::v1_naive_gpu`
//! - `shaders/matmul_v2_tiled.wgsl`: `matmul::v2_tiled_gpu`
//! - `shaders/matmul_v3_regblock.wgsl`: `matmul::v3_regblock_gpu`
//! - `shaders/matmul_v4_lanes.wgsl`: `matmul::v4_lanes_gpu` (its one-operand-transposed forms
//!   too; both transposed or unaligned cases run on v3, as in training, and the case names
//!   show `v4_lanes→v3_regblock`)

use wgtrain::verify::matmul::cases;
use wgtrain::{Cpu, MatmulVariant};

use crate::common::{check, gpu, Test};

pub fn tests() -> Vec<Test> {
    vec![
        Test::gpu("v1_naive_gpu", || check(gpu(), &cases(MatmulVariant::V1Naive, true))),
        Test::gpu("v2_tiled_gpu", || check(gpu(), &cases(MatmulVariant::V2Tiled, true))),
        Test::gpu("v3_regblock_gpu", || check(gpu(), &cases(MatmulVariant::V3RegBlock, true))),
        Test::gpu("v4_lanes_gpu", || check(gpu(), &cases(MatmulVariant::V4Lanes, true))),
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
