//! The convolution — shaders/im2col.wgsl (`im2col_s1_vec4` and `im2col_same_vec4` too),
//! shaders/col2im.wgsl and the matmuls between them, and shaders/conv2d_s1_subgroup.wgsl (the
//! implicit GEMM, both entries) — against the direct loops of src/cpu/conv2d.rs: forward, backward-data, backward-filter.
//! The cases of src/verify/conv2d.rs reach every path on the device's own choice;
//! `implicit_gemm_runs_where_it_applies` checks that conv2d_s1_subgroup is the kernel that ran,
//! `pointwise_runs_channel_major_where_it_applies` that a thin 1x1 runs as one product.

use wgtrain::ops::conv2d_dims;
use wgtrain::rng::Rng;
use wgtrain::verify::{conv2d, Case, ConvPass};
use wgtrain::{Backend, Conv2dSpec, Cpu, Error, GpuOptions};

use crate::common::{check, gpu, only, open, Test};

pub fn tests() -> Vec<Test> {
    vec![
        Test::gpu("forward_gpu", || check(gpu(), &cases(ConvPass::Forward))),
        Test::cpu("forward_cpu", || check(&Cpu, &cases(ConvPass::Forward))),
        Test::gpu("backward_data_gpu", || check(gpu(), &cases(ConvPass::BackwardData))),
        Test::cpu("backward_data_cpu", || check(&Cpu, &cases(ConvPass::BackwardData))),
        Test::gpu("backward_filter_gpu", || check(gpu(), &cases(ConvPass::BackwardFilter))),
        Test::cpu("backward_filter_cpu", || check(&Cpu, &cases(ConvPass::BackwardFilter))),
        Test::cpu("pointwise_path_is_taken_only_when_valid", pointwise_path_is_taken_only_when_valid),
        Test::gpu("chunked_convolution_matches", chunked_convolution_matches),
        Test::gpu("implicit_gemm_runs_where_it_applies", implicit_gemm_runs_where_it_applies),
        Test::gpu("pointwise_runs_channel_major_where_it_applies", pointwise_runs_channel_major_where_it_applies),
        Test::gpu("bad_convolutions_are_errors_gpu", || bad_conv(gpu())),
        Test::cpu("bad_convolutions_are_errors_cpu", || bad_conv(&Cpu)),
    ]
}

fn cases(pass: ConvPass) -> Vec<Case> {
    only(conv2d::cases(true), |c| matches!(c, Case::Conv2d(c) if c.pass == pass))
}

fn pointwise_path_is_taken_only_when_valid() {
    let spec = |stride, padding| Conv2dSpec { stride, padding, ..Default::default() };
    assert!(conv2d_dims("t", &[2, 8, 5, 5], &[4, 8, 1, 1], spec([1, 1], [0, 0])).unwrap().is_pointwise());
    assert!(!conv2d_dims("t", &[2, 8, 5, 5], &[4, 8, 1, 1], spec([2, 2], [0, 0])).unwrap().is_pointwise());
    assert!(!conv2d_dims("t", &[2, 8, 5, 5], &[4, 8, 1, 1], spec([1, 1], [1, 1])).unwrap().is_pointwise());
    assert!(!conv2d_dims("t", &[2, 8, 5, 5], &[4, 8, 3, 3], spec([1, 1], [0, 0])).unwrap().is_pointwise());
}

/// With a tiny binding limit the column buffer holds one image at a time: many chunks, same
/// results (and the backward-filter accumulates across chunks).
fn chunked_convolution_matches() {
    let small = open(&GpuOptions { max_binding_bytes: Some(64 << 10), ..Default::default() });
    let cpu = Cpu;
    let spec = Conv2dSpec { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 2 };
    let (xs, ws) = ([5, 4, 12, 12], [6, 2, 3, 3]); // one image's columns: 4*9*144*4 = 20 KiB
    let d = conv2d_dims("t", &xs, &ws, spec).unwrap();
    let mut rng = Rng::new(11);
    let x = rng.vec(xs.iter().product(), -1.0, 1.0);
    let w = rng.vec(ws.iter().product(), -1.0, 1.0);
    let dy = rng.vec(d.y_shape().iter().product(), -1.0, 1.0);
    let close = |got: Vec<f32>, want: &[f32], what: &str| {
        let worst = got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{what}: max error {worst}");
    };
    let mut y = cpu.zeros(&d.y_shape()).unwrap();
    cpu.conv2d(&cpu.upload(&xs, &x).unwrap(), &cpu.upload(&ws, &w).unwrap(), None, &mut y, spec).unwrap();
    let mut gy = small.zeros(&d.y_shape()).unwrap();
    small.conv2d(&small.upload(&xs, &x).unwrap(), &small.upload(&ws, &w).unwrap(), None, &mut gy, spec).unwrap();
    close(small.download(&gy).unwrap(), y.data(), "forward");

    let mut dx = cpu.zeros(&xs).unwrap();
    cpu.conv2d_backward_data(&cpu.upload(&d.y_shape(), &dy).unwrap(), &cpu.upload(&ws, &w).unwrap(), &mut dx, spec).unwrap();
    let mut gdx = small.zeros(&xs).unwrap();
    small.conv2d_backward_data(&small.upload(&d.y_shape(), &dy).unwrap(), &small.upload(&ws, &w).unwrap(), &mut gdx, spec).unwrap();
    close(small.download(&gdx).unwrap(), dx.data(), "backward data");

    let mut dw = cpu.zeros(&ws).unwrap();
    cpu.conv2d_backward_filter(&cpu.upload(&xs, &x).unwrap(), &cpu.upload(&d.y_shape(), &dy).unwrap(), &mut dw, spec).unwrap();
    let mut gdw = small.zeros(&ws).unwrap();
    small.conv2d_backward_filter(&small.upload(&xs, &x).unwrap(), &small.upload(&d.y_shape(), &dy).unwrap(), &mut gdw, spec).unwrap();
    close(small.download(&gdw).unwrap(), dw.data(), "backward filter");

    // An image whose columns alone exceed the limit is refused clearly.
    let big = small.zeros(&[1, 64, 32, 32]).unwrap();
    let wb = small.zeros(&[8, 64, 3, 3]).unwrap();
    let mut yb = small.zeros(&[1, 8, 30, 30]).unwrap();
    let err = small.conv2d(&big, &wb, None, &mut yb, Conv2dSpec::default()).unwrap_err();
    assert!(matches!(err, Error::Limit { .. }) && err.to_string().contains("column buffer"), "{err}");
}

/// With matmul v5 forced, a 3x3 stride-1 convolution on 8-wide rows runs as
/// conv2d_s1_subgroup (forward and backward data; the filter gradient too on CPU adapters),
/// with no unfolding; on 7-wide rows its backward passes run on copies padded to 8 wide and
/// its forward pass is unfolded; with v4 forced it is unfolded. All agree with the CPU
/// reference. Under CI an adapter without subgroups of 8 fails rather than testing the
/// unfolding twice.
fn implicit_gemm_runs_where_it_applies() {
    implicit_gemm_case([2, 8, 8, 8], [16, 8, 3, 3], None);
    implicit_gemm_case([3, 5, 7, 7], [6, 5, 3, 3], None);
    // A binding limit of 16 KiB: the padded copies of 5 images a chunk (3080 bytes each), so 2
    // chunks of 9 images, the filter gradient adding the second chunk's to the first's.
    implicit_gemm_case([9, 5, 7, 7], [6, 5, 3, 3], Some(16 << 10));
}

/// `binding`: the device's binding limit, which bounds the chunks of padded copies.
fn implicit_gemm_case(xs: [usize; 4], ws: [usize; 4], binding: Option<u64>) {
    let spec = Conv2dSpec { padding: [1, 1], ..Default::default() };
    let whole_vec4s = xs[3].is_multiple_of(4);
    let d = conv2d_dims("conv2d", &xs, &ws, spec).unwrap();
    let mut rng = Rng::new(11);
    let x = rng.vec(xs.iter().product(), -1.0, 1.0);
    let w = rng.vec(ws.iter().product(), -1.0, 1.0);
    let dy = rng.vec(d.y_shape().iter().product(), -1.0, 1.0);
    let want = cpu_passes(xs, ws, spec, [&x, &w, &dy]);
    for variant in ["v5_subgroup", "v4_lanes"] {
        let g = open(&GpuOptions { profile: true, matmul_variant: Some(variant.into()), max_binding_bytes: binding, ..Default::default() });
        let implicit = variant == "v5_subgroup" && g.context().has_subgroups_of_8();
        if variant == "v5_subgroup" && !implicit {
            assert!(std::env::var_os("CI").is_none(), "{} has no subgroups of 8: the implicit GEMM is not tested", g.adapter_name());
            eprintln!("note: {} has no subgroups of 8; the implicit GEMM does not run there", g.adapter_name());
        }
        let (got, ops) = gpu_passes(&g, xs, ws, spec, [&x, &w, &dy]);
        let names = ["forward", "backward data", "backward filter"];
        for (pass, (got, want)) in names.iter().zip(got.iter().zip(&want)) {
            let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "{xs:?} {variant} {pass}: max error {worst}");
        }
        // Which passes should run the implicit GEMM (once per chunk of padded copies): the
        // forward only on rows of whole vec4s, the filter gradient only on CPU adapters.
        let chunks = if binding.is_some() { 2 } else { 1 };
        let expect = [implicit && whole_vec4s, implicit, implicit && g.context().is_cpu_adapter()];
        for ((pass, ops), direct) in names.iter().zip(&ops).zip(expect) {
            let ran = ops.iter().filter(|o| *o == "conv2d_direct").count();
            let unfolded = ops.iter().any(|o| o == "im2col" || o == "col2im");
            let want = if !direct {
                0
            } else if *pass == "forward" {
                1
            } else {
                chunks
            };
            assert_eq!((ran, unfolded), (want, !direct), "{xs:?} {variant} {pass}: {ops:?}");
        }
    }
}

/// A 1x1 convolution runs channel-major (one product over every image's positions between
/// copies) where each image's product would be thin and the long one lines up with vec4s, and
/// per image elsewhere; both agree with the CPU's loops.
fn pointwise_runs_channel_major_where_it_applies() {
    // (x, w, channel-major): rows of 7 on 4 images (4 * 49 positions), rows of 3 on 4 images
    // (36); on 3 images 147 positions, not whole vec4s; 8x8 planes of 64, wide enough as they are.
    let shapes = [
        ([4, 8, 7, 7], [12, 8, 1, 1], true),
        ([4, 12, 3, 3], [5, 12, 1, 1], true),
        ([3, 8, 7, 7], [12, 8, 1, 1], false),
        ([2, 8, 8, 8], [4, 8, 1, 1], false),
    ];
    let g = open(&GpuOptions { profile: true, ..Default::default() });
    let spec = Conv2dSpec::default();
    for (xs, ws, channel_major) in shapes {
        let d = conv2d_dims("conv2d", &xs, &ws, spec).unwrap();
        let mut rng = Rng::new(5);
        let x = rng.vec(xs.iter().product(), -1.0, 1.0);
        let w = rng.vec(ws.iter().product(), -1.0, 1.0);
        let dy = rng.vec(d.y_shape().iter().product(), -1.0, 1.0);
        let want = cpu_passes(xs, ws, spec, [&x, &w, &dy]);
        let (got, [forward, data, _]) = gpu_passes(&g, xs, ws, spec, [&x, &w, &dy]);
        for (what, (got, want)) in ["forward", "backward data", "backward filter"].iter().zip(got.iter().zip(&want)) {
            let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "{xs:?} {what}: max error {worst}");
        }
        // Channel-major: x copied in, one product, y copied out; dx the same after Wᵀ. Per
        // image: one batched product, and Wᵀ before dx's.
        let count = |ops: &[String], op: &str| ops.iter().filter(|o| *o == op).count();
        let want = if channel_major { [(2, 1), (3, 1)] } else { [(0, 1), (1, 1)] };
        let got = [(count(&forward, "permute"), count(&forward, "matmul")), (count(&data, "permute"), count(&data, "matmul"))];
        assert_eq!(got, want, "{xs:?}: forward {forward:?}, backward data {data:?}");
    }
}

/// y, dx and dw of the convolution of x, w and dy on the CPU's loops.
fn cpu_passes(xs: [usize; 4], ws: [usize; 4], spec: Conv2dSpec, [x, w, dy]: [&[f32]; 3]) -> [Vec<f32>; 3] {
    let cpu = &Cpu;
    let d = conv2d_dims("conv2d", &xs, &ws, spec).unwrap();
    let mut y = cpu.zeros(&d.y_shape()).unwrap();
    cpu.conv2d(&cpu.upload(&xs, x).unwrap(), &cpu.upload(&ws, w).unwrap(), None, &mut y, spec).unwrap();
    let mut dx = cpu.zeros(&xs).unwrap();
    cpu.conv2d_backward_data(&cpu.upload(&d.y_shape(), dy).unwrap(), &cpu.upload(&ws, w).unwrap(), &mut dx, spec).unwrap();
    let mut dw = cpu.zeros(&ws).unwrap();
    cpu.conv2d_backward_filter(&cpu.upload(&xs, x).unwrap(), &cpu.upload(&d.y_shape(), dy).unwrap(), &mut dw, spec).unwrap();
    [y.data().to_vec(), dx.data().to_vec(), dw.data().to_vec()]
}

/// The same three passes on a profiling GPU, with the ops each dispatched.
fn gpu_passes(
    g: &wgtrain::Gpu,
    xs: [usize; 4],
    ws: [usize; 4],
    spec: Conv2dSpec,
    [x, w, dy]: [&[f32]; 3],
) -> ([Vec<f32>; 3], [Vec<String>; 3]) {
    let d = conv2d_dims("conv2d", &xs, &ws, spec).unwrap();
    let ops = || g.take_profile().unwrap().into_iter().map(|t| t.op.to_string()).collect::<Vec<_>>();
    let (gx, gw, gdy) = (g.upload(&xs, x).unwrap(), g.upload(&ws, w).unwrap(), g.upload(&d.y_shape(), dy).unwrap());
    ops();
    let mut y = g.zeros(&d.y_shape()).unwrap();
    g.conv2d(&gx, &gw, None, &mut y, spec).unwrap();
    let forward = ops();
    let mut dx = g.zeros(&xs).unwrap();
    g.conv2d_backward_data(&gdy, &gw, &mut dx, spec).unwrap();
    let data = ops();
    let mut dw = g.zeros(&ws).unwrap();
    g.conv2d_backward_filter(&gx, &gdy, &mut dw, spec).unwrap();
    let filter = ops();
    ([g.download(&y).unwrap(), g.download(&dx).unwrap(), g.download(&dw).unwrap()], [forward, data, filter])
}

fn bad_conv<B: Backend>(be: &B) {
    let t = |s: &[usize]| be.zeros(s).unwrap();
    let g2 = Conv2dSpec { groups: 2, ..Default::default() };
    let msg = |r: wgtrain::Result<()>| r.unwrap_err().to_string();
    let m = msg(be.conv2d(&t(&[1, 3, 8, 8]), &t(&[4, 3, 3, 3]), None, &mut t(&[1, 4, 6, 6]), g2));
    assert!(m.contains("groups 2") && m.contains("3"), "{m}");
    let m = msg(be.conv2d(&t(&[1, 4, 8, 8]), &t(&[4, 4, 3, 3]), None, &mut t(&[1, 4, 6, 6]), g2));
    assert!(m.contains("[4, 2, 3, 3]"), "{m}");
    let m = msg(be.conv2d(&t(&[1, 3, 2, 2]), &t(&[4, 3, 5, 5]), None, &mut t(&[1, 4, 1, 1]), Conv2dSpec::default()));
    assert!(m.contains("does not fit"), "{m}");
    let m = msg(be.conv2d(&t(&[1, 3, 8, 8]), &t(&[4, 3, 3, 3]), None, &mut t(&[1, 4, 8, 8]), Conv2dSpec::default()));
    assert!(m.starts_with("conv2d") && m.contains("[1, 4, 6, 6]"), "{m}");
    let m = msg(be.conv2d(&t(&[1, 3, 8, 8]), &t(&[4, 3, 3, 3]), Some(&t(&[3])), &mut t(&[1, 4, 6, 6]), Conv2dSpec::default()));
    assert!(m.contains("bias"), "{m}");
    let m = msg(be.conv2d(&t(&[3, 8, 8]), &t(&[4, 3, 3, 3]), None, &mut t(&[1, 4, 6, 6]), Conv2dSpec::default()));
    assert!(m.contains("rank 4"), "{m}");
    let m = msg(be.conv2d_backward_filter(&t(&[2, 3, 8, 8]), &t(&[2, 4, 5, 5]), &mut t(&[4, 3, 3, 3]), Conv2dSpec::default()));
    assert!(m.starts_with("conv2d_backward_filter") && m.contains("[2, 4, 6, 6]"), "{m}");
}
