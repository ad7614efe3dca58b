//! The fused optimizer update as an op: its configuration (kind and hyperparameters, with
//! PyTorch's `torch.optim` defaults), the presets the command line offers, and the shape check
//! of one update of a flat parameter arena. The update rules themselves:
//! shaders/optimizer.wgsl (GPU) and src/cpu/optimizer.rs (the CPU twin).

use crate::{Error, Result};

/// The update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD, with optional momentum, dampening and Nesterov momentum.
    Sgd,
    /// Adagrad (sum of squared gradients).
    Adagrad,
    /// Adadelta (running averages of squared gradients and updates).
    Adadelta,
    /// RMSprop, with optional momentum.
    Rmsprop,
    /// Adam, with coupled L2 weight decay.
    Adam,
    /// Adam with decoupled weight decay.
    AdamW,
}

impl OptimizerKind {
    /// Every rule.
    pub const ALL: [Self; 6] = [Self::Sgd, Self::Adagrad, Self::Adadelta, Self::Rmsprop, Self::Adam, Self::AdamW];

    /// The lowercase name (`sgd`, `adamw`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sgd => "sgd",
            Self::Adagrad => "adagrad",
            Self::Adadelta => "adadelta",
            Self::Rmsprop => "rmsprop",
            Self::Adam => "adam",
            Self::AdamW => "adamw",
        }
    }

    /// The rule of a name, case-insensitive.
    pub fn parse(s: &str) -> Result<Self> {
        let l = s.trim().to_lowercase();
        Self::ALL.into_iter().find(|k| k.name() == l).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
            Error::Invalid(format!("unknown optimizer '{s}': expected one of {}", names.join(", ")))
        })
    }
}

/// An optimizer and its hyperparameters. Fields that do not apply to `kind` are ignored.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Optimizer {
    /// The update rule.
    pub kind: OptimizerKind,
    /// Learning rate.
    pub lr: f32,
    /// Coupled L2 (added to the gradient) for all but AdamW, where it is decoupled.
    pub weight_decay: f32,
    /// SGD and RMSprop momentum.
    pub momentum: f32,
    /// SGD dampening.
    pub dampening: f32,
    /// SGD Nesterov momentum (needs momentum > 0 and dampening 0).
    pub nesterov: bool,
    /// Adam/AdamW (beta1, beta2).
    pub betas: (f32, f32),
    /// Term added to denominators (Adagrad, Adadelta, RMSprop, Adam, AdamW).
    pub eps: f32,
    /// Adadelta's decay of its running averages.
    pub rho: f32,
    /// RMSprop's smoothing constant.
    pub alpha: f32,
    /// Adagrad's starting sum of squares.
    pub initial_accumulator_value: f32,
    /// Adagrad's learning-rate decay.
    pub lr_decay: f32,
}

impl Optimizer {
    /// `kind` with PyTorch's default hyperparameters.
    pub fn new(kind: OptimizerKind) -> Self {
        let base = Optimizer {
            kind,
            lr: 1e-3,
            weight_decay: 0.0,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            betas: (0.9, 0.999),
            eps: 1e-8,
            rho: 0.9,
            alpha: 0.99,
            initial_accumulator_value: 0.0,
            lr_decay: 0.0,
        };
        match kind {
            OptimizerKind::Sgd => Optimizer { lr: 1e-3, ..base },
            OptimizerKind::Adagrad => Optimizer { lr: 1e-2, eps: 1e-10, ..base },
            OptimizerKind::Adadelta => Optimizer { lr: 1.0, eps: 1e-6, ..base },
            OptimizerKind::Rmsprop => Optimizer { lr: 1e-2, eps: 1e-8, ..base },
            OptimizerKind::Adam => base,
            OptimizerKind::AdamW => Optimizer { weight_decay: 1e-2, ..base },
        }
    }

    /// The names [`Optimizer::preset`] takes, in the order they are listed to users.
    pub const PRESETS: [&'static str; 8] = ["sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam", "adamw"];

    /// A named starting point: the eight optimizers of the textbook comparisons. `sgd` is plain
    /// SGD at lr 0.01 (PyTorch's 1e-3 default barely moves a CNN in a few epochs);
    /// `momentum` and `nesterov` are SGD at lr 0.01 with momentum 0.9 (classical and Nesterov);
    /// the others are [`Optimizer::new`], i.e. PyTorch's defaults (AdamW with weight decay 0.01).
    pub fn preset(name: &str) -> Result<Self> {
        let sgd = |momentum: f32, nesterov: bool| Optimizer { lr: 1e-2, momentum, nesterov, ..Optimizer::new(OptimizerKind::Sgd) };
        Ok(match name.trim().to_lowercase().as_str() {
            "sgd" => sgd(0.0, false),
            "momentum" => sgd(0.9, false),
            "nesterov" => sgd(0.9, true),
            other => match OptimizerKind::parse(other) {
                Ok(kind) => Optimizer::new(kind),
                Err(_) => return Err(Error::Invalid(format!("unknown optimizer '{name}': expected one of {}", Self::PRESETS.join(", ")))),
            },
        })
    }

    /// The preset name that describes this configuration's rule (`momentum` for SGD with
    /// momentum, `nesterov` with Nesterov momentum, else the kind's name).
    pub fn preset_name(&self) -> &'static str {
        match self.kind {
            OptimizerKind::Sgd if self.nesterov => "nesterov",
            OptimizerKind::Sgd if self.momentum != 0.0 => "momentum",
            k => k.name(),
        }
    }

    /// Rejects settings PyTorch rejects.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Invalid(format!("{} optimizer: {what}", self.kind.name())));
        let finite_nonneg = |name: &str, v: f32| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::Invalid(format!("{} optimizer: {name} is {v}, expected a finite value >= 0", self.kind.name())))
            }
        };
        finite_nonneg("lr", self.lr)?;
        finite_nonneg("weight_decay", self.weight_decay)?;
        finite_nonneg("momentum", self.momentum)?;
        finite_nonneg("eps", self.eps)?;
        finite_nonneg("initial_accumulator_value", self.initial_accumulator_value)?;
        finite_nonneg("lr_decay", self.lr_decay)?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return bad(format!(
                "nesterov needs momentum > 0 and dampening 0 (got momentum {}, dampening {})",
                self.momentum, self.dampening
            ));
        }
        for (name, v) in [("beta1", self.betas.0), ("beta2", self.betas.1), ("rho", self.rho), ("alpha", self.alpha)] {
            if !(0.0..=1.0).contains(&v) || (name.starts_with("beta") && v >= 1.0) {
                return bad(format!("{name} is {v}, expected a value in [0, 1)"));
            }
        }
        Ok(())
    }

    /// How many state tensors (each as long as the parameters) this optimizer keeps.
    pub fn state_tensors(&self) -> usize {
        match self.kind {
            OptimizerKind::Sgd => (self.momentum != 0.0) as usize,
            OptimizerKind::Adagrad => 1,
            OptimizerKind::Adadelta | OptimizerKind::Adam | OptimizerKind::AdamW => 2,
            OptimizerKind::Rmsprop => 1 + (self.momentum != 0.0) as usize,
        }
    }

    /// Initial value of the first state tensor (Adagrad's accumulator; 0 otherwise).
    pub fn initial_state(&self) -> f32 {
        if self.kind == OptimizerKind::Adagrad {
            self.initial_accumulator_value
        } else {
            0.0
        }
    }

    /// Per-step scalars that both backends use, so they compute the same f32 values.
    /// `t` is the 1-based step number.
    pub fn step_scalars(&self, t: u64) -> StepScalars {
        let t = t.max(1);
        let (b1, b2) = (self.betas.0 as f64, self.betas.1 as f64);
        StepScalars {
            first_step: t == 1,
            bias_correction1: (1.0 - b1.powf(t as f64)) as f32,
            bias_correction2_sqrt: (1.0 - b2.powf(t as f64)).sqrt() as f32,
            adagrad_lr: (self.lr as f64 / (1.0 + (t - 1) as f64 * self.lr_decay as f64)) as f32,
        }
    }
}

/// Step-dependent values of an update.
#[derive(Clone, Copy, Debug)]
pub struct StepScalars {
    /// t == 1 (momentum buffers start from the first gradient).
    pub first_step: bool,
    /// 1 - beta1^t
    pub bias_correction1: f32,
    /// sqrt(1 - beta2^t)
    pub bias_correction2_sqrt: f32,
    /// Adagrad's decayed rate: lr / (1 + (t - 1) * lr_decay).
    pub adagrad_lr: f32,
}

/// One update of a flat arena: the gradient as long as the parameters, and each state tensor
/// the optimizer uses too (unused ones may be placeholders of any size). Returns the number
/// of parameters.
pub fn check(opt: &Optimizer, param: &[usize], grad: &[usize], s1: &[usize], s2: &[usize]) -> Result<usize> {
    opt.validate()?;
    let n = super::numel("optimizer_step", "param", param)?;
    let used = opt.state_tensors();
    let mut list: Vec<(&str, &[usize])> = vec![("param", param), ("grad", grad)];
    if used >= 1 {
        list.push(("state1", s1));
    }
    if used >= 2 {
        list.push(("state2", s2));
    }
    super::same_numel("optimizer_step", &list).map_err(|e| match e {
        Error::Shape { op, detail } => {
            Error::Shape { op, detail: format!("{detail} (numbers of elements; {} keeps {used} state tensors)", opt.kind.name()) }
        }
        e => e,
    })?;
    Ok(n)
}

/// A hyperparameter of `torch.optim` that [`Optimizer`] holds: which rules take it, its value
/// as written on a command line, and the presets' defaults (so help texts list the real ones,
/// from [`Optimizer::preset`], instead of a second copy in prose).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hyper {
    /// Learning rate.
    Lr,
    /// Weight decay (coupled L2, decoupled for AdamW).
    WeightDecay,
    /// SGD and RMSprop momentum.
    Momentum,
    /// SGD dampening.
    Dampening,
    /// SGD Nesterov momentum.
    Nesterov,
    /// Adam/AdamW (beta1, beta2).
    Betas,
    /// Term added to denominators.
    Eps,
    /// Adadelta's decay.
    Rho,
    /// RMSprop's smoothing constant.
    Alpha,
    /// Adagrad's learning-rate decay.
    LrDecay,
    /// Adagrad's starting sum of squares.
    InitialAccumulatorValue,
}

impl Hyper {
    /// Every hyperparameter.
    pub const ALL: [Self; 11] = [
        Self::Lr,
        Self::WeightDecay,
        Self::Momentum,
        Self::Dampening,
        Self::Nesterov,
        Self::Betas,
        Self::Eps,
        Self::Rho,
        Self::Alpha,
        Self::LrDecay,
        Self::InitialAccumulatorValue,
    ];

    /// torch.optim's name (`lr`, `betas`, `initial_accumulator_value`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Lr => "lr",
            Self::WeightDecay => "weight_decay",
            Self::Momentum => "momentum",
            Self::Dampening => "dampening",
            Self::Nesterov => "nesterov",
            Self::Betas => "betas",
            Self::Eps => "eps",
            Self::Rho => "rho",
            Self::Alpha => "alpha",
            Self::LrDecay => "lr_decay",
            Self::InitialAccumulatorValue => "initial_accumulator_value",
        }
    }

    /// Whether the rule `kind` takes it (as its torch.optim class does).
    pub fn applies_to(self, kind: OptimizerKind) -> bool {
        use OptimizerKind::*;
        match self {
            Self::Lr | Self::WeightDecay => true,
            Self::Momentum => matches!(kind, Sgd | Rmsprop),
            Self::Dampening | Self::Nesterov => kind == Sgd,
            Self::Betas => matches!(kind, Adam | AdamW),
            Self::Eps => kind != Sgd,
            Self::Rho => kind == Adadelta,
            Self::Alpha => kind == Rmsprop,
            Self::LrDecay | Self::InitialAccumulatorValue => kind == Adagrad,
        }
    }

    /// Its value in `o`, as a command line writes it (`0.9,0.999`, `1e-8`, `true`).
    pub fn value(self, o: &Optimizer) -> String {
        match self {
            Self::Lr => fmt_value(o.lr),
            Self::WeightDecay => fmt_value(o.weight_decay),
            Self::Momentum => fmt_value(o.momentum),
            Self::Dampening => fmt_value(o.dampening),
            Self::Nesterov => o.nesterov.to_string(),
            Self::Betas => format!("{},{}", fmt_value(o.betas.0), fmt_value(o.betas.1)),
            Self::Eps => fmt_value(o.eps),
            Self::Rho => fmt_value(o.rho),
            Self::Alpha => fmt_value(o.alpha),
            Self::LrDecay => fmt_value(o.lr_decay),
            Self::InitialAccumulatorValue => fmt_value(o.initial_accumulator_value),
        }
    }

    /// The presets ([`Optimizer::PRESETS`]) whose rule takes it, in their order.
    pub fn presets(self) -> Vec<&'static str> {
        Optimizer::PRESETS.into_iter().filter(|p| Optimizer::preset(p).is_ok_and(|o| self.applies_to(o.kind))).collect()
    }

    /// The presets' defaults, grouped by value in the presets' order:
    /// `0.01 (sgd, momentum, nesterov, adagrad, rmsprop), 1 (adadelta), 0.001 (adam, adamw)`.
    pub fn defaults(self) -> String {
        let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
        for p in self.presets() {
            let Ok(o) = Optimizer::preset(p) else { continue };
            let v = self.value(&o);
            match groups.iter_mut().find(|(g, _)| *g == v) {
                Some((_, names)) => names.push(p),
                None => groups.push((v, vec![p])),
            }
        }
        groups.iter().map(|(v, names)| format!("{v} ({})", names.join(", "))).collect::<Vec<_>>().join(", ")
    }
}

/// A value as a person writes it: `0.01`, `0.999`, `1e-8` (exponent form below 1e-3).
pub fn fmt_value(v: f32) -> String {
    if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e6) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}
