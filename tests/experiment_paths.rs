//! Optimizer paths on the 2-D test functions (`wgtrain::experiment::paths`): gradients
//! against finite differences, SGD against its closed form on the saddle, Adam reaching the
//! Rosenbrock minimum, divergence detection, the stated learning-rate table, and the GPU's
//! paths against the CPU's.

use wgtrain::backend::Backend;
use wgtrain::experiment::paths::*;
use wgtrain::{Cpu, Optimizer};
/// The learning-rate grid of [`TestFunction::default_lr`].
const GRID: [f32; 16] = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0];

fn preset(name: &str, lr: f32) -> Optimizer {
    Optimizer { lr, ..Optimizer::preset(name).expect("a preset name") }
}

fn in_view(f: TestFunction, path: &Path) -> bool {
    let ((x0, x1), (y0, y1)) = f.view();
    path.points.iter().all(|&(x, y)| (x0..=x1).contains(&x) && (y0..=y1).contains(&y))
}

/// The documented rule of `default_lr`: Some(rate), or None when no rate of the grid
/// qualifies.
fn pick_lr(f: TestFunction, name: &str) -> Option<f32> {
    let mut best: Option<(f32, f64)> = None;
    for lr in GRID {
        let path = optimizer_path(&Cpu, f, &preset(name, lr), DEFAULT_STEPS, f.start()).expect("path");
        if path.diverged || !in_view(f, &path) {
            continue;
        }
        let last = *path.values.last().expect("a point");
        if best.is_none_or(|(_, v)| last < v - 1e-6) {
            best = Some((lr, last));
        }
    }
    best.map(|(lr, _)| lr)
}

/// Every formula against central differences: h = 1e-5 (relative to the point's size)
/// leaves a truncation error of about h² |f'''| / 6 and a rounding error of about
/// 1e-16 |f| / h, both far below the 1e-6 relative tolerance for these smooth polynomials
/// at these points; a wrong term or sign is off by O(1).
#[test]
fn gradients_match_central_differences() {
    let points = [(-1.2, 1.0), (1.0, 1.5), (0.5, -0.3), (2.0, 1.7), (-0.7, -1.1), (3.0, 0.5)];
    for f in TestFunction::ALL {
        for &(x, y) in &points {
            let (gx, gy) = f.grad(x, y);
            let h = 1e-5 * (1.0 + x.abs().max(y.abs()));
            let nx = (f.value(x + h, y) - f.value(x - h, y)) / (2.0 * h);
            let ny = (f.value(x, y + h) - f.value(x, y - h)) / (2.0 * h);
            for (what, a, n) in [("df/dx", gx, nx), ("df/dy", gy, ny)] {
                assert!((a - n).abs() <= 1e-6 * (1.0 + n.abs()), "{f} {what} at ({x}, {y}): analytic {a}, central difference {n}");
            }
        }
    }
    // The minima are stationary points, and the saddle's origin too.
    for f in TestFunction::ALL {
        let (x, y) = f.minimum().unwrap_or((0.0, 0.0));
        assert_eq!(f.grad(x, y), (0.0, 0.0), "{f} at ({x}, {y})");
    }
    assert_eq!(TestFunction::Rosenbrock.value(1.0, 1.0), 0.0);
    assert_eq!(TestFunction::Beale.value(3.0, 0.5), 0.0);
}

/// Plain SGD on x² − y² is linear: x_k = x0 (1 − 2η)^k, y_k = y0 (1 + 2η)^k. The closed
/// form is taken with η = the f32 learning rate and (x0, y0) = the f32 start, so what is
/// left is the kernel's rounding: per step, the gradient 2x is exact (x is f32), lr·g and
/// p − lr·g round once each, so each coordinate picks up at most 2 units of 2^-24
/// relative per step (the map is a scaling, which carries relative errors over
/// unchanged). After k steps: |relative error| <= 2k·2^-24 = 1.2e-5 for k = 100, to first
/// order. A wrong step counter, sign or learning rate is off by far more.
#[test]
fn sgd_on_the_saddle_follows_the_closed_form() {
    let f = TestFunction::Saddle;
    let lr = 0.05_f32;
    let steps = 100;
    let path = optimizer_path(&Cpu, f, &preset("sgd", lr), steps, f.start()).unwrap();
    assert!(!path.diverged);
    assert_eq!(path.points.len(), steps + 1);
    assert_eq!(path.optimizer, "sgd");
    let (x0, y0) = path.points[0];
    assert_eq!((x0, y0), (1.0, 1e-3_f32 as f64));
    let eta = lr as f64;
    let mut worst = 0.0_f64;
    for (k, &(x, y)) in path.points.iter().enumerate() {
        let tol = 2.0 * k as f64 * 2f64.powi(-24) + 1e-12;
        let (ex, ey) = (x0 * (1.0 - 2.0 * eta).powi(k as i32), y0 * (1.0 + 2.0 * eta).powi(k as i32));
        let (rx, ry) = (((x - ex) / ex).abs(), ((y - ey) / ey).abs());
        assert!(rx <= tol, "step {k}: x = {x}, closed form {ex}");
        assert!(ry <= tol, "step {k}: y = {y}, closed form {ey}");
        assert!((path.values[k] - f.value(x, y)).abs() <= 1e-12 * (1.0 + path.values[k].abs()));
        worst = worst.max(rx).max(ry);
    }
    eprintln!("sgd on the saddle: worst relative difference from the closed form {worst:.2e}");
    // The path approaches the saddle along x, then escapes along y.
    let (xl, yl) = *path.points.last().unwrap();
    assert!(xl < 1e-4 && yl > 10.0, "last point ({xl}, {yl})");
}

/// Adam (at this function's default rate) from Rosenbrock's standard start (-1.2, 1), at
/// distance 2.2 from the minimum: after the default 300 steps within 0.2 of (1, 1) and
/// f below 1e-2 (it has to cross the valley's bend; plain SGD at its rate is still at
/// distance 0.9). Also: the value falls overall and nothing diverges.
#[test]
fn adam_approaches_the_rosenbrock_minimum() {
    let f = TestFunction::Rosenbrock;
    let opt = preset("adam", f.default_lr("adam"));
    let path = optimizer_path(&Cpu, f, &opt, DEFAULT_STEPS, f.start()).unwrap();
    assert!(!path.diverged);
    assert_eq!(path.points.len(), DEFAULT_STEPS + 1);
    let (mx, my) = f.minimum().unwrap();
    let dist = |(x, y): (f64, f64)| (x - mx).hypot(y - my);
    let (d0, d1) = (dist(path.points[0]), dist(*path.points.last().unwrap()));
    let v1 = *path.values.last().unwrap();
    eprintln!("adam on rosenbrock: distance {d0} -> {d1}, f {} -> {v1}", path.values[0]);
    assert!((d0 - 2.2).abs() < 1e-6, "start distance {d0}");
    assert!(d1 < 0.2 && v1 < 1e-2, "after {DEFAULT_STEPS} steps: distance {d1}, f = {v1}");
    assert!(v1 < path.values[0] * 1e-3);
}

/// The step counter is 1-based: Adam's bias corrections make every step move a coordinate
/// by lr while its gradient barely changes (m̂ = g, v̂ = g²). On the saddle from (1, 1e-3)
/// at lr 1e-3 the x gradient changes by 0.2% per step, so each of the first 10 x steps is
/// -1e-3 within 1% (the first one within f32 rounding). A 0-based counter (the first
/// step's corrections used again at the second step) makes the second step 1.34 lr.
#[test]
fn adam_steps_are_lr_sized() {
    let f = TestFunction::Saddle;
    let path = optimizer_path(&Cpu, f, &preset("adam", 1e-3), 10, f.start()).unwrap();
    assert_eq!(path.points.len(), 11);
    let first = path.points[1].0 - path.points[0].0;
    assert!((first + 1e-3).abs() < 1e-7, "first step {first}");
    for (k, w) in path.points.windows(2).enumerate() {
        let dx = w[1].0 - w[0].0;
        assert!((dx + 1e-3).abs() < 1e-5, "step {}: x moved by {dx}, expected -1e-3", k + 1);
    }
}

/// SGD at lr 1 on Rosenbrock overshoots (the curvature at the start is ~1300): the path
/// stops with `diverged`, keeps only finite points inside the box, and does not panic.
/// The same for a start right at the box's edge, where the gradient overflows f32.
#[test]
fn divergence_is_detected() {
    let f = TestFunction::Rosenbrock;
    let path = optimizer_path(&Cpu, f, &preset("sgd", 1.0), 1000, f.start()).unwrap();
    assert!(path.diverged);
    assert!(path.points.len() < 20, "{} points", path.points.len());
    assert_eq!(path.points.len(), path.values.len());
    assert!(path.points.iter().all(|&(x, y)| x.abs() <= BOX && y.abs() <= BOX));
    assert!(path.values.iter().all(|v| v.is_finite()));

    let edge = optimizer_path(&Cpu, TestFunction::Beale, &preset("adam", 0.1), 10, (BOX, BOX)).unwrap();
    assert!(edge.diverged && edge.points.len() == 1, "{edge:?}");

    // Bad input is an error, not a panic.
    assert!(optimizer_path(&Cpu, f, &preset("sgd", 0.1), 10, (f64::NAN, 0.0)).is_err());
    assert!(optimizer_path(&Cpu, f, &preset("sgd", 0.1), 10, (2e6, 0.0)).is_err());
    assert!(optimizer_path(&Cpu, f, &preset("sgd", -1.0), 10, f.start()).is_err());
    let none = optimizer_path(&Cpu, f, &preset("sgd", 0.1), 0, f.start()).unwrap();
    assert_eq!((none.points.len(), none.diverged), (1, false));
}

/// The GPU kernels give the CPU's paths: every function, every preset at its default rate.
///
/// Both backends run the same f32 rule on the same gradients, but a GPU may fuse
/// multiply-adds and its sqrt and division need not round as the CPU's do, so the two
/// paths can differ by an ulp per step, and some paths amplify that: on the CPU, gradients
/// perturbed by 4 ulp per step (relative 2.4e-7) moved the 300-step paths by up to 10% of
/// the view (SGD zigzagging across Rosenbrock's valley at the edge of stability), 2% for
/// Adadelta, but by at most 7e-7 of the view in the first 20 steps. Hence two checks:
/// - the whole paths from `optimizer_path`: the same length and `diverged`, and the first
///   20 steps within 1e-5 of the view per coordinate (15 times that margin);
/// - every step of the CPU's 300-step path, taken again on the GPU from the CPU's
///   parameter and state: within 1e-6 of the view per coordinate (one step from equal
///   inputs: a few ulp of |p| <= 4.5, below 1e-6 of the narrowest view, 3).
///
/// A different rule, step counter or state layout is off by far more in both.
/// No adapter: a failure under CI, else a notice.
#[test]
fn gpu_paths_match_cpu() {
    // Like the other GPU tests: no adapter is a failure unless WGTRAIN_ALLOW_NO_GPU=1 outside CI.
    let gpu = match wgtrain::Gpu::new(&wgtrain::GpuOptions::default()) {
        Ok(g) => g,
        Err(e) if std::env::var_os("CI").is_none() && std::env::var("WGTRAIN_ALLOW_NO_GPU").as_deref() == Ok("1") => {
            eprintln!("\n!!!!!!!! SKIPPED gpu_paths_match_cpu: no GPU adapter ({e}) !!!!!!!!\n");
            return;
        }
        Err(e) => panic!("no GPU adapter: {e} (install mesa-vulkan-drivers, or WGTRAIN_ALLOW_NO_GPU=1 outside CI)"),
    };
    let (mut early, mut whole, mut step) = ((0.0_f64, String::new()), 0.0_f64, (0.0_f64, String::new()));
    for f in TestFunction::ALL {
        let ((x0, x1), (y0, y1)) = f.view();
        let off = |p: (f64, f64), q: (f64, f64)| ((p.0 - q.0) / (x1 - x0)).abs().max(((p.1 - q.1) / (y1 - y0)).abs());
        for name in Optimizer::PRESETS {
            let opt = preset(name, f.default_lr(name));
            let c = optimizer_path(&Cpu, f, &opt, DEFAULT_STEPS, f.start()).unwrap();
            let g = optimizer_path(&gpu, f, &opt, DEFAULT_STEPS, f.start()).unwrap();
            assert_eq!((g.points.len(), g.diverged), (c.points.len(), c.diverged), "{f} {name}");
            for (k, (&p, &q)) in c.points.iter().zip(&g.points).enumerate() {
                let err = off(p, q);
                whole = whole.max(err);
                if k <= 20 && err > early.0 {
                    early = (err, format!("{f} {name} step {k}: cpu {p:?}, gpu {q:?}"));
                }
            }
            let (err, k) = lockstep(&gpu, f, &opt, DEFAULT_STEPS, off);
            if err > step.0 {
                step = (err, format!("{f} {name} step {k}"));
            }
        }
    }
    eprintln!(
        "{}: whole paths differ by up to {whole:.2e} of the view, the first 20 steps by {:.2e} ({}), single steps by {:.2e} ({})",
        gpu.name(),
        early.0,
        early.1,
        step.0,
        step.1
    );
    assert!(early.0 <= 1e-5, "first 20 steps: {:.2e} of the view at {}", early.0, early.1);
    assert!(step.0 <= 1e-6, "single steps: {:.2e} of the view at {}", step.0, step.1);
}

/// Walks the CPU's path and takes each of its steps again on `be` from the CPU's parameter
/// and state; the largest `off` between the two results, and the step where it was.
fn lockstep<B: Backend>(be: &B, f: TestFunction, opt: &Optimizer, steps: usize, off: impl Fn((f64, f64), (f64, f64)) -> f64) -> (f64, u64) {
    let (sx, sy) = f.start();
    let mut cp = Cpu.upload(&[2], &[sx as f32, sy as f32]).unwrap();
    let mut cs1 = Cpu.upload(&[2], &[opt.initial_state(); 2]).unwrap();
    let mut cs2 = Cpu.zeros(&[2]).unwrap();
    let mut cg = Cpu.zeros(&[2]).unwrap();
    let (mut gp, mut gs1, mut gs2, mut gg) =
        (be.zeros(&[2]).unwrap(), be.zeros(&[2]).unwrap(), be.zeros(&[2]).unwrap(), be.zeros(&[2]).unwrap());
    let mut worst = (0.0, 0);
    for t in 1..=steps as u64 {
        let p = Cpu.download(&cp).unwrap();
        let (gx, gy) = f.grad(p[0] as f64, p[1] as f64);
        let grad = [gx as f32, gy as f32];
        if !grad.iter().all(|v| v.is_finite()) {
            break;
        }
        Cpu.write(&mut cg, &grad).unwrap();
        be.write(&mut gg, &grad).unwrap();
        be.write(&mut gp, &p).unwrap();
        be.write(&mut gs1, &Cpu.download(&cs1).unwrap()).unwrap();
        be.write(&mut gs2, &Cpu.download(&cs2).unwrap()).unwrap();
        Cpu.optimizer_step(opt, t, &mut cp, &cg, &mut cs1, &mut cs2).unwrap();
        be.optimizer_step(opt, t, &mut gp, &gg, &mut gs1, &mut gs2).unwrap();
        let (c, g) = (Cpu.download(&cp).unwrap(), be.download(&gp).unwrap());
        let (c, g) = ((c[0] as f64, c[1] as f64), (g[0] as f64, g[1] as f64));
        if !in_box(f, c) {
            break;
        }
        let err = off(c, g);
        if err > worst.0 || err.is_nan() {
            worst = (err, t);
        }
    }
    worst
}

/// The written-down table of `default_lr` is what its documented rule picks.
#[test]
fn default_lrs_follow_the_rule() {
    for f in TestFunction::ALL {
        for name in Optimizer::PRESETS {
            assert_eq!(Some(f.default_lr(name)), pick_lr(f, name), "{f} {name}");
        }
    }
    assert_eq!(TestFunction::Saddle.default_lr(" AdamW "), TestFunction::Saddle.default_lr("adamw"));
    assert_eq!(TestFunction::Saddle.default_lr("lbfgs"), 1e-3);
}

#[test]
fn names_parse() {
    for (f, name) in TestFunction::ALL.into_iter().zip(TestFunction::NAMES) {
        assert_eq!(f.name(), name);
        assert_eq!(name.parse::<TestFunction>().unwrap(), f);
        assert_eq!(name.to_uppercase().parse::<TestFunction>().unwrap(), f);
        assert!(f.description().to_lowercase().starts_with(name));
        let ((x0, x1), (y0, y1)) = f.view();
        let (sx, sy) = f.start();
        assert!(x0 < sx && sx < x1 && y0 < sy && sy < y1, "{f}: start outside the view");
        if let Some((mx, my)) = f.minimum() {
            assert!(x0 < mx && mx < x1 && y0 < my && my < y1, "{f}: minimum outside the view");
        }
    }
    let e = "himmelblau".parse::<TestFunction>().unwrap_err().to_string();
    assert!(e.contains("himmelblau") && e.contains("rosenbrock, beale, saddle"), "{e}");
}
