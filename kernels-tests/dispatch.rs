//! Work larger than one dispatch dimension, or one storage binding, is split — and the split
//! results still match the CPU.

use wgtrain::gpu::grid::grid_2d;
use wgtrain::gpu::split_grid;
use wgtrain::rng::Rng;
use wgtrain::{Backend, Cpu, Error, GpuOptions, MatmulSpec, MatmulVariant};

use crate::common::{gpu, open, Test};

pub fn tests() -> Vec<Test> {
    vec![
        Test::cpu("split_grid_covers_every_workgroup_once", split_grid_covers_every_workgroup_once),
        Test::gpu("elementwise_beyond_one_grid_dimension", elementwise_beyond_one_grid_dimension),
        Test::gpu("matmul_batch_beyond_one_grid_dimension", matmul_batch_beyond_one_grid_dimension),
        Test::gpu("tensors_larger_than_a_binding_are_chunked", tensors_larger_than_a_binding_are_chunked),
        Test::gpu("compile_ahead_takes_each_new_pair_once", compile_ahead_takes_each_new_pair_once),
        Test::gpu("exiting_while_compiling_ahead_is_clean", exiting_while_compiling_ahead_is_clean),
    ]
}

fn split_grid_covers_every_workgroup_once() {
    for groups in [[1, 1, 1], [65_535, 2, 1], [70_000, 3, 65_536], [5, 200_000, 2]] {
        let max = 65_535;
        let parts = split_grid(groups, max);
        let mut total: u64 = 0;
        for (base, count) in &parts {
            for d in 0..3 {
                assert!(count[d] >= 1 && count[d] <= max);
                assert!(base[d] + count[d] <= groups[d]);
            }
            total += count.iter().map(|&c| c as u64).product::<u64>();
        }
        assert_eq!(total, groups.iter().map(|&g| g as u64).product::<u64>(), "{groups:?}");
    }
}

fn elementwise_beyond_one_grid_dimension() {
    let gpu = gpu();
    let max = gpu.context().limits.max_compute_workgroups_per_dimension;
    // More invocations than one dimension of workgroups can hold.
    let n = max as usize * 256 + 1000;
    let (groups, _) = grid_2d("test", n as u64, max).unwrap();
    assert!(groups[1] > 1, "expected a 2D grid, got {groups:?}");
    let mut rng = Rng::new(3);
    let a = rng.vec(n, -1.0, 1.0);
    let b = rng.vec(n, -1.0, 1.0);
    let (ga, gb, mut gc) = (gpu.upload(&[n], &a).unwrap(), gpu.upload(&[n], &b).unwrap(), gpu.zeros(&[n]).unwrap());
    gpu.add(&ga, &gb, &mut gc).unwrap();
    let got = gpu.download(&gc).unwrap();
    let bad = (0..n).find(|&i| got[i] != a[i] + b[i]);
    assert_eq!(bad, None, "first wrong element of {n}");
}

fn matmul_batch_beyond_one_grid_dimension() {
    let gpu = gpu();
    let batch = gpu.context().limits.max_compute_workgroups_per_dimension as usize + 7;
    let (m, n, k) = (2, 3, 2);
    let mut rng = Rng::new(4);
    let a = rng.vec(batch * m * k, -1.0, 1.0);
    let b = rng.vec(batch * k * n, -1.0, 1.0);
    let cpu = Cpu;
    let mut want = cpu.zeros(&[batch, m, n]).unwrap();
    cpu.matmul(&cpu.upload(&[batch, m, k], &a).unwrap(), &cpu.upload(&[batch, k, n], &b).unwrap(), &mut want, MatmulSpec::default())
        .unwrap();
    for variant in MatmulVariant::ALL {
        let mut got = gpu.zeros(&[batch, m, n]).unwrap();
        gpu.matmul_with(
            variant,
            &gpu.upload(&[batch, m, k], &a).unwrap(),
            &gpu.upload(&[batch, k, n], &b).unwrap(),
            &mut got,
            MatmulSpec::default(),
        )
        .unwrap();
        let got = gpu.download(&got).unwrap();
        let worst = got.iter().zip(want.data()).map(|(g, w)| (g - w).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "{}: batch {batch}: max error {worst}", variant.name());
    }
}

fn tensors_larger_than_a_binding_are_chunked() {
    let small = open(&GpuOptions { max_binding_bytes: Some(1 << 20), ..Default::default() });
    assert_eq!(small.max_binding_bytes(), 1 << 20);
    let n = (1 << 20) + 12_345; // 4 MiB + : five chunks of at most 1 MiB
    let mut rng = Rng::new(5);
    let a = rng.vec(n, -1.0, 1.0);
    let b = rng.vec(n, -1.0, 1.0);
    let (ga, gb, mut gc) = (small.upload(&[n], &a).unwrap(), small.upload(&[n], &b).unwrap(), small.zeros(&[n]).unwrap());
    small.mul(&ga, &gb, &mut gc).unwrap();
    let got = small.download(&gc).unwrap();
    let bad = (0..n).find(|&i| got[i] != a[i] * b[i]);
    assert_eq!(bad, None, "first wrong element of {n}");
    // The vec4 form of relu (a multiple of 4 values), chunked alike: exact.
    let n4 = (1 << 20) + 12_344;
    let (x, dy) = (small.upload(&[n4], &a[..n4]).unwrap(), small.upload(&[n4], &b[..n4]).unwrap());
    let (mut y, mut dx) = (small.zeros(&[n4]).unwrap(), small.zeros(&[n4]).unwrap());
    small.relu(&x, &mut y).unwrap();
    small.relu_backward(&x, &dy, &mut dx).unwrap();
    let (y, dx) = (small.download(&y).unwrap(), small.download(&dx).unwrap());
    let bad = (0..n4).find(|&i| y[i] != a[i].max(0.0) || dx[i] != if a[i] > 0.0 { b[i] } else { 0.0 });
    assert_eq!(bad, None, "relu: first wrong element of {n4}");

    // An op that cannot be chunked refuses with a clear error instead of a validation failure.
    let big = small.zeros(&[600, 600]).unwrap(); // 1.4 MiB
    let mut out = small.zeros(&[600, 600]).unwrap();
    let err = small.matmul(&big, &big, &mut out, MatmulSpec::default()).unwrap_err();
    assert!(matches!(err, Error::Limit { op: "matmul", .. }), "{err}");
    assert!(err.to_string().contains("binding"), "{err}");
}

/// On llvmpipe a `Gpu` hands the (pipeline, parameters) pairs that a submission is the first to
/// use to its compile-ahead helper (gpu::ahead), each pair once; the helper builds and
/// dispatches every one on its own device without failing. Elsewhere there is no helper.
fn compile_ahead_takes_each_new_pair_once() {
    let gpu = open(&GpuOptions::default());
    let switched_off = ["WGTRAIN_SERIAL_COMPILE", "MESA_SHADER_CACHE_DISABLE"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes")));
    let llvmpipe = gpu.context().info.driver.to_ascii_lowercase().contains("llvmpipe");
    let Some(before) = gpu.compile_ahead_stats() else {
        assert!(!llvmpipe || switched_off, "llvmpipe, and no compile-ahead helper");
        return;
    };
    assert!(llvmpipe, "a compile-ahead helper on {}", gpu.context().info.driver);
    let mut rng = Rng::new(11);
    let k = 13;
    let b = gpu.upload(&[k, 5], &rng.vec(k * 5, -1.0, 1.0)).unwrap();
    let inputs: Vec<_> = [7, 3].iter().map(|&m| gpu.upload(&[m, k], &rng.vec(m * k, -1.0, 1.0)).unwrap()).collect();
    let mut outputs: Vec<_> = [7, 3].iter().map(|&m| gpu.zeros(&[m, 5]).unwrap()).collect();
    let mut sum = gpu.zeros(&[7, 5]).unwrap();
    // The same three dispatches, twice: two products of one pipeline with different sizes,
    // and an addition. Only the first time are they new.
    for round in 0..2 {
        for (a, c) in inputs.iter().zip(outputs.iter_mut()) {
            gpu.matmul(a, &b, c, MatmulSpec::default()).unwrap();
        }
        gpu.add(&outputs[0], &outputs[0], &mut sum).unwrap();
        // Submitted, not waited for: the helper takes every pair (none is finished before it).
        gpu.flush().unwrap();
        assert!(gpu.wait_compile_ahead(std::time::Duration::from_secs(300)), "the helper is still busy after 300 s");
        // Both rounds: the first round's three, none from the second.
        let now = gpu.compile_ahead_stats().unwrap();
        assert_eq!(now.handed - before.handed, 3, "after round {round}: pairs handed over");
        assert_eq!(now.compiled - before.compiled, 3, "after round {round}: pairs compiled ahead");
        assert_eq!(now.failed, before.failed, "round {round}: pairs that failed on the helper (RUST_LOG=debug says why)");
        gpu.sync().unwrap();
    }
}

/// Set for a child process of [`exiting_while_compiling_ahead_is_clean`]: it runs
/// [`exit_while_compiling_ahead`] instead of the tests.
pub const EXIT_CHILD: &str = "WGTRAIN_TEST_EXIT_WHILE_COMPILING_AHEAD";
/// What the child prints when it exited with its helper still compiling.
const EXITED_MID_COMPILE: &str = "exiting with the helper mid-compile";

/// A process that exits (here `std::process::exit`, with a `Gpu` never dropped) while its queue
/// and its compile-ahead helper compile exits cleanly: the exit handler of `gpu::exit` waits
/// for them before the driver's teardown. Without it, 5 of 6 such exits crashed (SIGSEGV, or
/// an abort with "LLVM ERROR").
fn exiting_while_compiling_ahead_is_clean() {
    if !gpu().context().info.driver.to_ascii_lowercase().contains("llvmpipe") {
        return; // no helper elsewhere (see compile_ahead_takes_each_new_pair_once)
    }
    let mut mid = 0;
    for round in 0..3 {
        // Empty caches, so that the helper has kernels to compile.
        let dir = std::env::temp_dir().join(format!("wgtrain-exit-test-{}-{round}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .env(EXIT_CHILD, "1")
            .env("MESA_SHADER_CACHE_DIR", dir.join("mesa"))
            .env("WGTRAIN_CACHE_DIR", dir.join("wgtrain"))
            .env_remove("WGTRAIN_SERIAL_COMPILE")
            .env_remove("MESA_SHADER_CACHE_DISABLE")
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "round {round}: the child exited with {}\nstdout: {stdout}\nstderr: {stderr}", out.status);
        mid += stdout.contains(EXITED_MID_COMPILE) as usize;
    }
    assert!(mid > 0, "in no round did the child exit while its helper was compiling: the test tested nothing");
}

/// The child: submits the five matmul variants, its first kernels (their pipelines go to the
/// helper too), and exits as soon as the helper has compiled one and not all, without
/// dropping the `Gpu` or waiting for the queue.
pub fn exit_while_compiling_ahead() -> ! {
    let gpu: &'static wgtrain::Gpu = Box::leak(Box::new(open(&GpuOptions::default())));
    let Some(_) = gpu.compile_ahead_stats() else {
        eprintln!("no compile-ahead helper");
        std::process::exit(3);
    };
    let mut rng = Rng::new(5);
    let (m, k, n) = (33, 17, 29);
    let a = gpu.upload(&[m, k], &rng.vec(m * k, -1.0, 1.0)).unwrap();
    let b = gpu.upload(&[k, n], &rng.vec(k * n, -1.0, 1.0)).unwrap();
    let mut c = gpu.zeros(&[m, n]).unwrap();
    for variant in MatmulVariant::ALL {
        gpu.matmul_with(variant, &a, &b, &mut c, MatmulSpec::default()).unwrap();
    }
    gpu.flush().unwrap();
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(120) {
        let s = gpu.compile_ahead_stats().unwrap();
        if s.compiled + s.failed >= s.handed {
            break;
        }
        if s.compiled >= 1 {
            println!("{EXITED_MID_COMPILE}");
            std::process::exit(0);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    println!("the helper was done before the exit");
    std::process::exit(0);
}
