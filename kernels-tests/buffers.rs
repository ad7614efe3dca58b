//! A training-shaped loop allocates nothing after its first step and submits few command
//! buffers per step (no read-back inside the step).

use wgtrain::rng::Rng;
use wgtrain::{Backend, GpuOptions, MatmulSpec};

use crate::common::{open, Test};

pub fn tests() -> Vec<Test> {
    vec![Test::gpu(
        "steady_state_step_allocates_nothing_and_submits_twice_at_most",
        steady_state_step_allocates_nothing_and_submits_twice_at_most,
    )]
}

fn steady_state_step_allocates_nothing_and_submits_twice_at_most() {
    // A device of its own, so other tests' allocations do not interfere with the counts.
    let gpu = open(&GpuOptions::default());
    let (batch, inp, hid) = (16, 64, 32);
    let mut rng = Rng::new(9);
    let mut x = gpu.zeros(&[batch, inp]).unwrap();
    let w = gpu.upload(&[inp, hid], &rng.vec(inp * hid, -0.1, 0.1)).unwrap();
    let mut h = gpu.zeros(&[batch, hid]).unwrap();
    let mut a = gpu.zeros(&[batch, hid]).unwrap();
    let mut da = gpu.zeros(&[batch, hid]).unwrap();
    let mut dw = gpu.zeros(&[inp, hid]).unwrap();
    let mut loss = gpu.zeros(&[1]).unwrap();

    let mut step = |gpu: &wgtrain::Gpu| {
        gpu.write(&mut x, &rng.vec(batch * inp, -1.0, 1.0)).unwrap(); // the batch arrives
        gpu.matmul(&x, &w, &mut h, MatmulSpec::default()).unwrap(); // forward
        gpu.relu(&h, &mut a).unwrap();
        gpu.sum(&a, &mut loss).unwrap(); // "loss"
        gpu.relu_backward(&h, &a, &mut da).unwrap(); // backward
        gpu.matmul(&x, &da, &mut dw, MatmulSpec::trans(true, false)).unwrap();
        gpu.download(&loss).unwrap()[0] // read once per step (a logging interval)
    };
    step(&gpu);
    let (buffers, submissions) = (gpu.buffers_created(), gpu.submissions());
    let mut losses = Vec::new();
    for _ in 0..5 {
        losses.push(step(&gpu));
    }
    assert_eq!(gpu.buffers_created(), buffers, "steps after the first allocated buffers");
    let per_step = (gpu.submissions() - submissions) as f64 / 5.0;
    assert!(per_step <= 2.0, "{per_step} submissions per step");
    assert!(losses.iter().all(|l| l.is_finite() && *l > 0.0), "{losses:?}");
}
