//! Optimizer paths on classic 2-D test functions, for the "optimizers" experiment: the path of
//! each optimizer (SGD, momentum, Nesterov, Adagrad, Adadelta, RMSprop, Adam, AdamW) drawn over
//! the contours of a function.
//!
//! The path is computed by the engine's own update kernels ([`Backend::optimizer_step`]), not
//! by a re-implementation: the parameter is a 2-element tensor on the backend; at each step it
//! is read back, the function's analytic gradient is evaluated on the host (in f64) and
//! written to a gradient tensor, and the kernel updates the parameter and its state in f32.

use std::str::FromStr;

use crate::ops::Optimizer;
use crate::{Backend, Error, Result};

/// How many steps a path runs by default; [`TestFunction::default_lr`] was chosen for it.
pub const DEFAULT_STEPS: usize = 300;

/// A path stops (as diverged) when a coordinate leaves [-BOX, BOX].
pub const BOX: f64 = 1e6;

/// A classic 2-D function to run optimizers on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TestFunction {
    /// Rosenbrock's banana: a narrow curved valley, minimum 0 at (1, 1).
    Rosenbrock,
    /// Beale's function: flat plateaus and steep walls, minimum 0 at (3, 0.5).
    Beale,
    /// The saddle x² − y²: a stationary point at the origin that is no minimum.
    Saddle,
}

impl TestFunction {
    /// Every function, in the order they are listed to users.
    pub const ALL: [Self; 3] = [Self::Rosenbrock, Self::Beale, Self::Saddle];

    /// The names [`FromStr`] takes, in the order of [`TestFunction::ALL`].
    pub const NAMES: [&'static str; 3] = ["rosenbrock", "beale", "saddle"];

    /// The lowercase name (`rosenbrock`, `beale`, `saddle`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Rosenbrock => "rosenbrock",
            Self::Beale => "beale",
            Self::Saddle => "saddle",
        }
    }

    /// f(x, y).
    pub fn value(self, x: f64, y: f64) -> f64 {
        match self {
            Self::Rosenbrock => (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2),
            Self::Beale => {
                let (a, b, c) = beale_terms(x, y);
                a * a + b * b + c * c
            }
            Self::Saddle => x * x - y * y,
        }
    }

    /// The analytic gradient (∂f/∂x, ∂f/∂y).
    pub fn grad(self, x: f64, y: f64) -> (f64, f64) {
        match self {
            Self::Rosenbrock => (-2.0 * (1.0 - x) - 400.0 * x * (y - x * x), 200.0 * (y - x * x)),
            Self::Beale => {
                let (a, b, c) = beale_terms(x, y);
                let (y2, y3) = (y * y, y * y * y);
                (2.0 * a * (y - 1.0) + 2.0 * b * (y2 - 1.0) + 2.0 * c * (y3 - 1.0), 2.0 * a * x + 4.0 * b * x * y + 6.0 * c * x * y2)
            }
            Self::Saddle => (2.0 * x, -2.0 * y),
        }
    }

    /// The classic start point.
    pub fn start(self) -> (f64, f64) {
        match self {
            // Rosenbrock's own start (1960), the standard one of the test-problem collections
            // (Moré, Garbow and Hillstrom 1981): on the far side of the banana, so a path has to
            // fall into the valley and then follow its curve to (1, 1).
            Self::Rosenbrock => (-1.2, 1.0),
            // Above the curved valley that leads to (3, 0.5), f = 41.25. Not the (1, 1) of Moré,
            // Garbow and Hillstrom: there ∂f/∂x is exactly 0, so every optimizer starts
            // straight down. Here the gradient is (34.5, 92.5), components of different size, so
            // the per-coordinate (adaptive) methods and plain gradient descent set off in
            // visibly different directions before they meet the valley.
            Self::Beale => (1.0, 1.5),
            // Near the x axis, the saddle's attracting direction: every path first runs toward
            // the origin along x (x shrinks), and the small y offset then grows until the path
            // escapes downhill along y. Exactly on the axis (y = 0) the gradient has no y part
            // and every optimizer here would stop at the saddle; 1e-3 is small enough that the
            // approach is visible and large enough that the escape happens within the default
            // steps.
            Self::Saddle => (1.0, 1e-3),
        }
    }

    /// Where the global minimum is; `None` for the saddle, which is unbounded below.
    pub fn minimum(self) -> Option<(f64, f64)> {
        match self {
            Self::Rosenbrock => Some((1.0, 1.0)),
            Self::Beale => Some((3.0, 0.5)),
            Self::Saddle => None,
        }
    }

    /// The plot window: (x range, y range), holding the start, the minimum and the paths of
    /// the default learning rates.
    pub fn view(self) -> ((f64, f64), (f64, f64)) {
        match self {
            Self::Rosenbrock => ((-2.0, 2.0), (-1.0, 3.0)),
            Self::Beale => ((-1.0, 4.5), (-1.5, 2.5)),
            Self::Saddle => ((-1.5, 1.5), (-1.5, 1.5)),
        }
    }

    /// The formula, for the report.
    pub fn description(self) -> &'static str {
        match self {
            Self::Rosenbrock => "Rosenbrock: f(x, y) = (1 - x)^2 + 100 (y - x^2)^2, minimum 0 at (1, 1)",
            Self::Beale => "Beale: f(x, y) = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2, minimum 0 at (3, 0.5)",
            Self::Saddle => "Saddle: f(x, y) = x^2 - y^2, a saddle point at (0, 0), unbounded below",
        }
    }

    /// A learning rate for `optimizer` (a name of [`Optimizer::PRESETS`], case-insensitive)
    /// that draws a readable path on this function in [`DEFAULT_STEPS`] steps from
    /// [`TestFunction::start`]; 1e-3 for an unknown name. The other hyperparameters are the
    /// preset's (so AdamW decays weights by 0.01, which moves its resting point a little off
    /// the minimum).
    ///
    /// Found once with the CPU backend and written down here; the test
    /// `default_lrs_follow_the_rule` re-runs the search and fails if the table is stale. The
    /// rule: of the grid 1e-4, 2e-4, 5e-4, 1e-3, ..., 5, 10 (1, 2, 5 per decade), keep the
    /// rates whose path neither diverges nor leaves [`TestFunction::view`]; of those, take the
    /// one with the lowest final value, going up the grid and moving to a larger rate only if
    /// it lowers the final value by more than 1e-6 (a smaller rate draws a smoother path). On
    /// the saddle the lowest value is the farthest escape, so that is the largest rate whose
    /// path stays in the window. Some picks sit at the edge of stability (SGD on Rosenbrock
    /// zigzags across the valley): those paths are sensitive to rounding.
    pub fn default_lr(self, optimizer: &str) -> f32 {
        let i = match Optimizer::PRESETS.iter().position(|p| p.eq_ignore_ascii_case(optimizer.trim())) {
            Some(i) => i,
            None => return 1e-3,
        };
        // Columns in the order of Optimizer::PRESETS:
        // sgd, momentum, nesterov, adagrad, adadelta, rmsprop, adam, adamw.
        let table: [f32; 8] = match self {
            Self::Rosenbrock => [5e-3, 2e-3, 1e-3, 1.0, 5.0, 5e-2, 0.5, 0.2],
            Self::Beale => [2e-2, 2e-3, 5e-3, 2.0, 5.0, 0.1, 0.2, 0.5],
            Self::Saddle => [1e-2, 1e-3, 1e-3, 2e-2, 2e-2, 2e-3, 2e-3, 2e-3],
        };
        table[i]
    }
}

/// The three residuals whose squares Beale's function sums.
fn beale_terms(x: f64, y: f64) -> (f64, f64, f64) {
    (1.5 - x + x * y, 2.25 - x + x * y * y, 2.625 - x + x * y * y * y)
}

impl std::fmt::Display for TestFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TestFunction {
    type Err = Error;

    /// A function by name, case-insensitive.
    fn from_str(s: &str) -> Result<Self> {
        let l = s.trim().to_lowercase();
        Self::ALL
            .into_iter()
            .find(|f| f.name() == l)
            .ok_or_else(|| Error::Invalid(format!("unknown test function '{s}': expected one of {}", Self::NAMES.join(", "))))
    }
}

/// The path of one optimizer on one function.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Path {
    /// The optimizer's preset name (`sgd`, `momentum`, ..., see [`Optimizer::preset_name`]).
    pub optimizer: String,
    /// Its learning rate.
    pub lr: f32,
    /// The start (as the f32 parameter holds it) and the point after each step; only finite
    /// points inside the box |x|, |y| <= [`BOX`].
    pub points: Vec<(f64, f64)>,
    /// The function's value at each point (in f64, at the f32 point).
    pub values: Vec<f64>,
    /// The path stopped before its last step because the next point (or the gradient, in
    /// f32) was not finite or left the box. On the saddle, which is unbounded below, that is
    /// the escape carried on too far rather than a failure.
    pub diverged: bool,
}

/// Whether a point can be recorded: finite, inside the box, with a finite value.
pub fn in_box(f: TestFunction, (x, y): (f64, f64)) -> bool {
    x.is_finite() && y.is_finite() && x.abs() <= BOX && y.abs() <= BOX && f.value(x, y).is_finite()
}

/// Runs `steps` updates of `opt` on `f` from `start` with the backend's optimizer kernel (see
/// the module doc). The step counter passed to the kernel is 1-based, as in PyTorch (Adam's
/// bias corrections, SGD momentum's first step). A path that diverges stops early with
/// `diverged` set; an invalid optimizer, or a start that is not finite or not inside the box,
/// is an error.
pub fn optimizer_path<B: Backend>(be: &B, f: TestFunction, opt: &Optimizer, steps: usize, start: (f64, f64)) -> Result<Path> {
    opt.validate()?;
    let start32 = (start.0 as f32 as f64, start.1 as f32 as f64);
    if !in_box(f, start32) {
        return Err(Error::Invalid(format!(
            "optimizer path on {f}: start ({}, {}) is not a finite point inside |x|, |y| <= {BOX:e}",
            start.0, start.1
        )));
    }
    let mut param = be.upload(&[2], &[start.0 as f32, start.1 as f32])?;
    let mut grad = be.zeros(&[2])?;
    let mut s1 = be.upload(&[2], &[opt.initial_state(); 2])?;
    let mut s2 = be.zeros(&[2])?;

    let first = read_point(be, &param)?;
    let mut path = Path {
        optimizer: opt.preset_name().to_string(),
        lr: opt.lr,
        points: vec![first],
        values: vec![f.value(first.0, first.1)],
        diverged: false,
    };
    let mut p = first;
    for t in 1..=steps as u64 {
        let (gx, gy) = f.grad(p.0, p.1);
        let g = [gx as f32, gy as f32];
        if !g.iter().all(|v| v.is_finite()) {
            path.diverged = true;
            break;
        }
        be.write(&mut grad, &g)?;
        be.optimizer_step(opt, t, &mut param, &grad, &mut s1, &mut s2)?;
        p = read_point(be, &param)?;
        if !in_box(f, p) {
            path.diverged = true;
            break;
        }
        path.points.push(p);
        path.values.push(f.value(p.0, p.1));
    }
    Ok(path)
}

/// The parameter tensor's two values, as f64.
fn read_point<B: Backend>(be: &B, param: &crate::backend::T<B>) -> Result<(f64, f64)> {
    match be.download(param)?[..] {
        [x, y] => Ok((x as f64, y as f64)),
        ref other => Err(Error::Invalid(format!("optimizer path: the parameter read back {} values, expected 2", other.len()))),
    }
}
