//! Bad input is an error that names the op and the shapes — on both backends — never a panic.

use wgtrain::{Backend, Cpu, Error, GpuOptions, MatmulSpec};

use crate::common::{gpu, Test};

pub fn tests() -> Vec<Test> {
    vec![
        Test::cpu("bad_shapes_are_errors_cpu", || bad_inputs(&Cpu)),
        Test::gpu("bad_shapes_are_errors_gpu", bad_shapes_are_errors_on_the_gpu),
        // Listing adapters needs none to exist: the error must name the choices either way.
        Test::cpu("unknown_device_names_the_choices", unknown_device_names_the_choices),
        Test::gpu("unknown_matmul_variant_is_an_error", unknown_matmul_variant_is_an_error),
    ]
}

fn expect_shape_error<T: std::fmt::Debug>(r: wgtrain::Result<T>, op: &str, mentions: &[&str]) {
    let err = r.expect_err("expected a shape error");
    let msg = err.to_string();
    assert!(matches!(err, Error::Shape { .. }), "not a shape error: {msg}");
    assert!(msg.starts_with(op), "error does not name {op}: {msg}");
    for m in mentions {
        assert!(msg.contains(m), "error does not mention {m}: {msg}");
    }
}

fn bad_inputs<B: Backend>(be: &B) {
    let t = |shape: &[usize]| be.zeros(shape).unwrap();
    let mut c = t(&[2, 5]);
    expect_shape_error(be.matmul(&t(&[2, 3]), &t(&[4, 5]), &mut c, MatmulSpec::default()), "matmul", &["[2, 3]", "[4, 5]", "inner"]);
    expect_shape_error(be.matmul(&t(&[2, 3]), &t(&[3, 5]), &mut t(&[5, 2]), MatmulSpec::default()), "matmul", &["[5, 2]", "[2, 5]"]);
    expect_shape_error(be.matmul(&t(&[2, 3]), &t(&[5, 3]), &mut c, MatmulSpec::default()), "matmul", &["[5, 3]"]);
    expect_shape_error(be.matmul(&t(&[1, 2, 3, 4]), &t(&[4, 5]), &mut c, MatmulSpec::default()), "matmul", &["rank"]);
    expect_shape_error(be.matmul(&t(&[3, 2, 3]), &t(&[4, 3, 5]), &mut t(&[3, 2, 5]), MatmulSpec::default()), "matmul", &["batch"]);
    expect_shape_error(be.add(&t(&[2, 3]), &t(&[3, 2]), &mut t(&[2, 3])), "add", &["[2, 3]", "[3, 2]"]);
    expect_shape_error(be.mul(&t(&[4]), &t(&[4]), &mut t(&[5])), "mul", &["out [5]"]);
    expect_shape_error(be.scale(&t(&[4]), 2.0, &mut t(&[2, 2])), "scale", &["[2, 2]"]);
    expect_shape_error(be.relu(&t(&[4]), &mut t(&[3])), "relu", &["[3]"]);
    expect_shape_error(be.relu_backward(&t(&[4]), &t(&[5]), &mut t(&[4])), "relu_backward", &["dy [5]"]);
    expect_shape_error(be.sum(&t(&[4]), &mut t(&[2])), "sum", &["one element"]);
    let mut w = t(&[3]);
    expect_shape_error(be.write(&mut w, &[1.0, 2.0]), "write", &["[3]", "[2]"]);
    expect_shape_error(be.upload(&[2, 2], &[1.0]), "write", &["[4]", "[1]"]);
}

fn bad_shapes_are_errors_on_the_gpu() {
    let gpu = gpu();
    bad_inputs(gpu);
    // The device is still usable afterwards.
    let x = gpu.upload(&[3], &[1.0, -2.0, 3.0]).unwrap();
    let mut y = gpu.zeros(&[3]).unwrap();
    gpu.relu(&x, &mut y).unwrap();
    assert_eq!(gpu.download(&y).unwrap(), vec![1.0, 0.0, 3.0]);
}

fn unknown_device_names_the_choices() {
    let Err(err) = wgtrain::Gpu::new(&GpuOptions { device: Some("no-such-adapter-xyz".into()), ..Default::default() }) else {
        panic!("opened a device that does not exist")
    };
    let msg = err.to_string();
    assert!(msg.contains("no-such-adapter-xyz") && msg.contains("adapters"), "{msg}");
    let Err(err) = wgtrain::Gpu::new(&GpuOptions { device: Some("99".into()), ..Default::default() }) else { panic!("adapter 99 exists?") };
    assert!(err.to_string().contains("99"), "{err}");
}

fn unknown_matmul_variant_is_an_error() {
    let Err(err) = wgtrain::Gpu::new(&GpuOptions { matmul_variant: Some("v7_quantum".into()), ..Default::default() }) else {
        panic!("accepted v7_quantum")
    };
    assert!(err.to_string().contains("v7_quantum"), "{err}");
}
