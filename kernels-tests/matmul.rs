//! shaders/matmul_v*.wgsl against src/cpu/matmul.rs — every variant, not only the chosen one.

use wgtrain::verify::matmul_cases;
use wgtrain::MatmulVariant;

use crate::common::check_all;

#[test]
fn matmul_v1_naive() {
    check_all(&matmul_cases(MatmulVariant::V1Naive, true));
}

#[test]
fn matmul_v2_tiled() {
    check_all(&matmul_cases(MatmulVariant::V2Tiled, true));
}

#[test]
fn matmul_v3_regblock() {
    check_all(&matmul_cases(MatmulVariant::V3RegBlock, true));
}

#[test]
fn matmul_v4_lanes() {
    check_all(&matmul_cases(MatmulVariant::V4Lanes, true));
}

#[test]
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
