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
//!
//! `products_larger_than_one_binding_run_in_parts`: products whose operand or result exceeds
//! one storage binding, split into parts (src/gpu/matmul.rs, `gemm_in_parts`), against the CPU.

use wgtrain::rng::Rng;
use wgtrain::verify::matmul::cases;
use wgtrain::{Backend, Cpu, Error, GpuOptions, MatmulSpec, MatmulVariant};

use crate::common::{check, gpu, open, Test};

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
        Test::gpu("products_larger_than_one_binding_run_in_parts", products_larger_than_one_binding_run_in_parts),
    ]
}

/// With a binding limit of 16 KiB (4096 values), products whose A, B or C is larger: each way
/// of splitting them (the linear layer's three products among them: x @ Wᵀ, dy @ W, dyᵀ @ x
/// with W the large one), odd and aligned sizes, alpha and beta. All agree with the CPU; the
/// forms that cannot be split are refused clearly.
fn products_larger_than_one_binding_run_in_parts() {
    let g = open(&GpuOptions { max_binding_bytes: Some(16 << 10), ..Default::default() });
    // (m, n, k, trans_a, trans_b, alpha, beta)
    let cases = [
        (67, 5, 97, false, false, 1.0, 0.0),   // A large: blocks of M
        (64, 32, 128, false, false, 2.0, 1.0), // the same on whole vec4s, C added to
        (3, 53, 131, false, true, 1.0, 0.0),   // x @ Wᵀ, W large: Cᵀ by blocks of W's rows
        (3, 131, 53, false, false, 1.0, 0.0),  // dy @ W: dy transposed, blocks of K
        (53, 131, 3, true, false, 1.0, 0.0),   // dyᵀ @ x, C large: dy transposed, blocks of M
        (67, 5, 97, true, false, 0.5, 1.0),    // A large, stored transposed: blocks of K
    ];
    for (m, n, k, trans_a, trans_b, alpha, beta) in cases {
        let spec = MatmulSpec { trans_a, trans_b, alpha, beta };
        let a_shape = if trans_a { [k, m] } else { [m, k] };
        let b_shape = if trans_b { [n, k] } else { [k, n] };
        let mut rng = Rng::new((m * n * k) as u64);
        let (a, b, c0) = (rng.vec(m * k, -1.0, 1.0), rng.vec(k * n, -1.0, 1.0), rng.vec(m * n, -1.0, 1.0));
        let mut want = Cpu.upload(&[m, n], &c0).unwrap();
        Cpu.matmul(&Cpu.upload(&a_shape, &a).unwrap(), &Cpu.upload(&b_shape, &b).unwrap(), &mut want, spec).unwrap();
        let mut got = g.upload(&[m, n], &c0).unwrap();
        g.matmul(&g.upload(&a_shape, &a).unwrap(), &g.upload(&b_shape, &b).unwrap(), &mut got, spec).unwrap();
        let got = g.download(&got).unwrap();
        // f32 sums of at most 131 products of values in [-1, 1]: the CPU's and the kernels'
        // orders differ by a few ulps of sums below ~12.
        let worst = got.iter().zip(want.data()).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{m}x{n}x{k} trans {trans_a}/{trans_b} alpha {alpha} beta {beta}: max error {worst}");
    }
    // Refused: B large and stored transposed with C added to; a batch of products.
    let refused = |a: &[usize], b: &[usize], c: &[usize], spec: MatmulSpec| {
        let mut out = g.zeros(c).unwrap();
        let err = g.matmul(&g.zeros(a).unwrap(), &g.zeros(b).unwrap(), &mut out, spec).unwrap_err();
        assert!(matches!(err, Error::Limit { .. }) && err.to_string().contains("storage binding"), "{err}");
    };
    refused(&[3, 131], &[53, 131], &[3, 53], MatmulSpec { trans_b: true, beta: 1.0, ..Default::default() });
    refused(&[2, 67, 97], &[2, 97, 5], &[2, 67, 5], MatmulSpec::default());
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
