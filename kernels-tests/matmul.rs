//! shaders/matmul_v*.wgsl against src/cpu/matmul.rs — every variant, not only the chosen one.

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
