//! Reference cases from elsewhere: `wgtrain verify --case FILE.json`. A case names an op, its
//! parameters, its inputs and the outputs another implementation (a PyTorch script, or
//! tools/gen_cases.py) computed; every backend runs the op and is compared with them.
//!
//! Format: {"op": OP, "params": {...}, "inputs": {NAME: {"shape": [...], "data": [...]}},
//!          "outputs": {NAME: {...}}, "dtype": "float32"|"float64", "atol"?: x, "rtol"?: x}
//! Ops and their fields: README.md, "Reference cases".
//!
//! An output passes under `Tolerance::relative_to_max(atol, rtol)` (tolerance.rs): every
//! element within atol + rtol * max |expected| (defaults atol 1e-5, rtol 1e-4).
//!
//! Optimizer cases (outputs `params` [steps, n], the parameters after each step) are also
//! checked on their *updates* `p[t] - p[t-1]` (`p[-1]` = the input `param`), under
//! `Tolerance::updates`: parameters are of order one while an update is of order lr, so the
//! parameters alone cannot tell a right rule from one that, say, ignores weight decay.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{Comparison, Tolerance};
use crate::backend::{Backend, CeTarget};
use crate::ops::{Conv2dSpec, PoolSpec};
use crate::{Error, Optimizer, OptimizerKind, Result};

/// A tensor as a case file holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// The dimensions, outermost first.
    pub shape: Vec<usize>,
    /// The values, row-major, `numel(shape)` of them (f64 so float64 files lose nothing).
    pub data: Vec<f64>,
}

/// One parsed case file.
#[derive(Clone, Debug)]
pub struct CaseFile {
    /// Where it was read from, for error messages.
    pub path: PathBuf,
    /// The op to run (`"op"`).
    pub op: String,
    /// The op's options (`"params"`; empty when absent), read by name when the case runs.
    pub params: Map<String, Value>,
    /// The op's operands by name (`"inputs"`).
    pub inputs: BTreeMap<String, HostTensor>,
    /// The expected results by name (`"outputs"`).
    pub outputs: BTreeMap<String, HostTensor>,
    /// Absolute tolerance (`"atol"`, default 1e-5).
    pub atol: f64,
    /// Relative tolerance, relative to max |expected| (`"rtol"`, default 1e-4).
    pub rtol: f64,
}

/// How one output compared.
#[derive(Clone, Debug)]
pub struct OutputCheck {
    /// The output's name, or "updates" for an optimizer's per-step changes of `params`.
    pub name: String,
    /// Largest |got - expected| (as in `cmp`).
    pub max_abs: f64,
    /// atol + rtol * max |expected|: the largest error the tolerance allows.
    pub allowed: f64,
    /// Whether every element was within the tolerance (as in `cmp`).
    pub passed: bool,
    /// The tolerance applied.
    pub tolerance: Tolerance,
    /// The full comparison.
    pub cmp: Comparison,
}

impl OutputCheck {
    /// Compares `got` with `want` under `tolerance` (a tensor-max one: `allowed` is its bound).
    pub fn new<G: Copy + Into<f64>>(name: impl Into<String>, tolerance: Tolerance, got: &[G], want: &[f64]) -> Self {
        let cmp = tolerance.compare(got, want);
        let max_want = want.iter().map(|w| w.abs()).filter(|w| w.is_finite()).fold(0.0, f64::max);
        Self { name: name.into(), max_abs: cmp.max_abs, allowed: tolerance.bound(max_want), passed: cmp.passed(), tolerance, cmp }
    }
}

impl CaseFile {
    /// The tolerance of the file's outputs: atol + rtol * max |expected|.
    pub fn tolerance(&self) -> Tolerance {
        Tolerance::relative_to_max(self.atol as f32, self.rtol as f32)
    }

    fn err(&self, field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::CaseFile { path: self.path.clone(), field: field.into(), message: message.into() }
    }
}

fn file_err(path: &Path, field: &str, message: impl Into<String>) -> Error {
    Error::CaseFile { path: path.to_path_buf(), field: field.to_string(), message: message.into() }
}

/// The .json files named, folders expanded (sorted).
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::Io { path: p.clone(), source: e })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "json"))
                .collect();
            inside.sort();
            if inside.is_empty() {
                return Err(file_err(p, "(folder)", "contains no .json case files"));
            }
            files.extend(inside);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

fn parse_tensor(path: &Path, field: &str, v: &Value) -> Result<HostTensor> {
    let obj = v.as_object().ok_or_else(|| file_err(path, field, "expected {\"shape\": [...], \"data\": [...]}"))?;
    let shape = obj
        .get("shape")
        .and_then(Value::as_array)
        .ok_or_else(|| file_err(path, &format!("{field}.shape"), "missing or not an array"))?
        .iter()
        .map(|d| d.as_u64().map(|d| d as usize))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| file_err(path, &format!("{field}.shape"), "expected non-negative integers"))?;
    let data = obj
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| file_err(path, &format!("{field}.data"), "missing or not an array"))?
        .iter()
        .map(Value::as_f64)
        .collect::<Option<Vec<f64>>>()
        .ok_or_else(|| file_err(path, &format!("{field}.data"), "expected numbers"))?;
    if let Some(d) = shape.iter().find(|&&d| d == 0) {
        return Err(file_err(path, &format!("{field}.shape"), format!("is {shape:?}: a dimension of {d}, expected every dimension >= 1")));
    }
    let want = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| file_err(path, &format!("{field}.shape"), format!("is {shape:?}: more elements than can be counted")))?;
    if data.len() != want {
        return Err(file_err(path, &format!("{field}.data"), format!("has {} values, shape {:?} needs {want}", data.len(), shape)));
    }
    Ok(HostTensor { shape, data })
}

/// Reads and checks a case file's structure.
pub fn load(path: &Path) -> Result<CaseFile> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    let root: Value = serde_json::from_str(&text).map_err(|e| file_err(path, "(json)", e.to_string()))?;
    let obj = root.as_object().ok_or_else(|| file_err(path, "(root)", "expected a JSON object"))?;
    let op = obj.get("op").and_then(Value::as_str).ok_or_else(|| file_err(path, "op", "missing or not a string"))?.to_string();
    if let Some(d) = obj.get("dtype") {
        match d.as_str() {
            Some("float32") | Some("float64") => {}
            _ => return Err(file_err(path, "dtype", format!("is {d}, expected \"float32\" or \"float64\""))),
        }
    }
    let params = match obj.get("params") {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(file_err(path, "params", "expected an object")),
    };
    let tensors = |key: &str| -> Result<BTreeMap<String, HostTensor>> {
        let m = obj.get(key).and_then(Value::as_object).ok_or_else(|| file_err(path, key, "missing or not an object"))?;
        m.iter().map(|(k, v)| Ok((k.clone(), parse_tensor(path, &format!("{key}.{k}"), v)?))).collect()
    };
    let tol = |key: &str, default: f64| -> Result<f64> {
        match obj.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().filter(|x| *x >= 0.0).ok_or_else(|| file_err(path, key, format!("is {v}, expected a number >= 0"))),
        }
    };
    let inputs = tensors("inputs")?;
    let outputs = tensors("outputs")?;
    if outputs.is_empty() {
        return Err(file_err(
            path,
            "outputs",
            "is empty: expected at least one output to compare (a case that compares nothing cannot pass)",
        ));
    }
    Ok(CaseFile { path: path.to_path_buf(), op, params, inputs, outputs, atol: tol("atol", 1e-5)?, rtol: tol("rtol", 1e-4)? })
}

/// Typed access to params and inputs, with errors that name the field.
struct Reader<'a> {
    case: &'a CaseFile,
}

impl Reader<'_> {
    fn param(&self, name: &str) -> Option<&Value> {
        self.case.params.get(name)
    }
    fn f32_or(&self, name: &str, default: f32) -> Result<f32> {
        match self.param(name) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => {
                v.as_f64().map(|x| x as f32).ok_or_else(|| self.case.err(format!("params.{name}"), format!("is {v}, expected a number")))
            }
        }
    }
    fn bool_or(&self, name: &str, default: bool) -> Result<bool> {
        match self.param(name) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.case.err(format!("params.{name}"), format!("is {v}, expected true or false"))),
        }
    }
    fn usize_or(&self, name: &str, default: usize) -> Result<usize> {
        match self.param(name) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .map(|x| x as usize)
                .ok_or_else(|| self.case.err(format!("params.{name}"), format!("is {v}, expected a non-negative integer"))),
        }
    }
    /// [h, w], or one integer for both.
    fn pair(&self, name: &str, default: Option<[usize; 2]>) -> Result<[usize; 2]> {
        let bad = |v: &Value| self.case.err(format!("params.{name}"), format!("is {v}, expected [h, w] of non-negative integers"));
        match self.param(name) {
            None => default.ok_or_else(|| self.case.err(format!("params.{name}"), "missing")),
            Some(v) => {
                if let Some(x) = v.as_u64() {
                    return Ok([x as usize; 2]);
                }
                let a = v.as_array().filter(|a| a.len() == 2).ok_or_else(|| bad(v))?;
                match (a[0].as_u64(), a[1].as_u64()) {
                    (Some(h), Some(w)) => Ok([h as usize, w as usize]),
                    _ => Err(bad(v)),
                }
            }
        }
    }
    fn input(&self, name: &str) -> Result<&HostTensor> {
        self.case.inputs.get(name).ok_or_else(|| self.case.err(format!("inputs.{name}"), format!("missing ({} needs it)", self.case.op)))
    }
    fn opt_input(&self, name: &str) -> Option<&HostTensor> {
        self.case.inputs.get(name)
    }
}

/// What a backend produced: output name -> (shape, values).
pub type Produced = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Runs the case's op on `be`; returns every output it produced, by name.
pub fn run<B: Backend>(be: &B, case: &CaseFile) -> Result<Produced> {
    let r = Reader { case };
    let up = |t: &HostTensor| be.upload(&t.shape, &t.data.iter().map(|&v| v as f32).collect::<Vec<f32>>());
    let mut out = Produced::new();
    let mut put = |name: &str, t: &crate::tensor::Tensor<B::Storage>| -> Result<()> {
        out.insert(name.to_string(), (t.shape().to_vec(), be.download(t)?));
        Ok(())
    };
    match case.op.as_str() {
        "conv2d" => {
            let spec = Conv2dSpec { stride: r.pair("stride", Some([1, 1]))?, padding: r.pair("padding", Some([0, 0]))?, dilation: r.pair("dilation", Some([1, 1]))?, groups: r.usize_or("groups", 1)? };
            let (x, w) = (up(r.input("x")?)?, up(r.input("weight")?)?);
            let bias = r.opt_input("bias").map(up).transpose()?;
            let d = crate::ops::conv2d_dims("conv2d", x.shape(), w.shape(), spec)?;
            let mut y = be.zeros(&d.y_shape())?;
            be.conv2d(&x, &w, bias.as_ref(), &mut y, spec)?;
            put("y", &y)?;
            if let Some(gy) = r.opt_input("grad_y") {
                let gy = up(gy)?;
                let (mut gx, mut gw) = (be.zeros(x.shape())?, be.zeros(w.shape())?);
                be.conv2d_backward_data(&gy, &w, &mut gx, spec)?;
                be.conv2d_backward_filter(&x, &gy, &mut gw, spec)?;
                put("grad_x", &gx)?;
                put("grad_weight", &gw)?;
                let mut gb = be.zeros(&[d.k])?;
                be.channel_sum(&gy, &mut gb)?;
                put("grad_bias", &gb)?;
            }
        }
        "max_pool2d" | "avg_pool2d" => {
            let kernel = r.pair("kernel", None)?;
            let spec = PoolSpec { kernel, stride: r.pair("stride", Some(kernel))?, padding: r.pair("padding", Some([0, 0]))?, count_include_pad: r.bool_or("count_include_pad", true)? };
            let x = up(r.input("x")?)?;
            let d = crate::ops::pool_dims("pool", x.shape(), spec)?;
            let mut y = be.zeros(&d.y_shape())?;
            let mut idx = be.zeros(&d.y_shape())?;
            if case.op == "max_pool2d" {
                be.max_pool2d(&x, &mut y, &mut idx, spec)?;
            } else {
                be.avg_pool2d(&x, &mut y, spec)?;
            }
            put("y", &y)?;
            if let Some(gy) = r.opt_input("grad_y") {
                let gy = up(gy)?;
                let mut gx = be.zeros(x.shape())?;
                if case.op == "max_pool2d" {
                    be.max_pool2d_backward(&gy, &idx, &mut gx, spec)?;
                } else {
                    be.avg_pool2d_backward(&gy, &mut gx, spec)?;
                }
                put("grad_x", &gx)?;
            }
        }
        "global_avg_pool2d" => {
            let x = up(r.input("x")?)?;
            let s = x.shape().to_vec();
            if s.len() != 4 {
                return Err(case.err("inputs.x.shape", format!("is {s:?}, expected [N, C, H, W]")));
            }
            let mut y = be.zeros(&[s[0], s[1], 1, 1])?;
            be.global_avg_pool(&x, &mut y)?;
            put("y", &y)?;
            if let Some(gy) = r.opt_input("grad_y") {
                let mut gx = be.zeros(&s)?;
                be.global_avg_pool_backward(&up(gy)?, &mut gx)?;
                put("grad_x", &gx)?;
            }
        }
        "batch_norm2d" => {
            let training = r.bool_or("training", true)?;
            let momentum = r.f32_or("momentum", 0.1)?;
            let eps = r.f32_or("eps", 1e-5)?;
            let x = up(r.input("x")?)?;
            let (gamma, beta) = (up(r.input("gamma")?)?, up(r.input("beta")?)?);
            let (mut rm, mut rv) = (up(r.input("running_mean")?)?, up(r.input("running_var")?)?);
            let c = rm.numel();
            let mut y = be.zeros(x.shape())?;
            let (mut sm, mut si) = (be.zeros(&[c])?, be.zeros(&[c])?);
            if training {
                be.batch_norm_train(&x, &gamma, &beta, &mut rm, &mut rv, &mut y, &mut sm, &mut si, momentum, eps)?;
            } else {
                be.batch_norm_eval(&x, &gamma, &beta, &rm, &rv, &mut y, eps)?;
            }
            put("y", &y)?;
            put("running_mean", &rm)?;
            put("running_var", &rv)?;
            if let Some(gy) = r.opt_input("grad_y") {
                if !training {
                    return Err(case.err("inputs.grad_y", "the backward of eval-mode batch norm is not supported (training: false)"));
                }
                let (mut gx, mut gg, mut gb) = (be.zeros(x.shape())?, be.zeros(&[c])?, be.zeros(&[c])?);
                be.batch_norm_backward(&x, &up(gy)?, &gamma, &sm, &si, &mut gx, &mut gg, &mut gb)?;
                put("grad_x", &gx)?;
                put("grad_gamma", &gg)?;
                put("grad_beta", &gb)?;
            }
        }
        "linear" => {
            let (x, w) = (up(r.input("x")?)?, up(r.input("weight")?)?);
            let bias = r.opt_input("bias").map(up).transpose()?;
            if x.shape().len() != 2 || w.shape().len() != 2 {
                return Err(case.err("inputs", format!("linear needs x [N, in] and weight [out, in], got {:?} and {:?}", x.shape(), w.shape())));
            }
            let mut y = be.zeros(&[x.shape()[0], w.shape()[0]])?;
            be.linear(&x, &w, bias.as_ref(), &mut y)?;
            put("y", &y)?;
            if let Some(gy) = r.opt_input("grad_y") {
                let gy = up(gy)?;
                let (mut gx, mut gw, mut gb) = (be.zeros(x.shape())?, be.zeros(w.shape())?, be.zeros(&[w.shape()[0]])?);
                be.linear_backward(&x, &w, &gy, Some(&mut gx), &mut gw, Some(&mut gb))?;
                put("grad_x", &gx)?;
                put("grad_weight", &gw)?;
                put("grad_bias", &gb)?;
            }
        }
        "relu" => {
            let x = up(r.input("x")?)?;
            let mut y = be.zeros(x.shape())?;
            be.relu(&x, &mut y)?;
            put("y", &y)?;
            if let Some(gy) = r.opt_input("grad_y") {
                let mut gx = be.zeros(x.shape())?;
                be.relu_backward(&x, &up(gy)?, &mut gx)?;
                put("grad_x", &gx)?;
            }
        }
        "cross_entropy" => {
            let smoothing = r.f32_or("label_smoothing", 0.0)?;
            let z = up(r.input("logits")?)?;
            let (mut loss, mut grad) = (be.zeros(&[1])?, be.zeros(z.shape())?);
            match (r.opt_input("target"), r.opt_input("target_probs")) {
                (Some(t), None) => be.cross_entropy(&z, CeTarget::Labels(&up(t)?), smoothing, &mut loss, &mut grad)?,
                (None, Some(t)) => be.cross_entropy(&z, CeTarget::Probs(&up(t)?), smoothing, &mut loss, &mut grad)?,
                _ => return Err(case.err("inputs", "cross_entropy needs exactly one of target (class indices) and target_probs")),
            }
            put("loss", &loss)?;
            put("grad_logits", &grad)?;
        }
        "optimizer" => {
            let name = r.param("name").and_then(Value::as_str).ok_or_else(|| case.err("params.name", "missing or not a string"))?;
            let kind = OptimizerKind::parse(name).map_err(|e| case.err("params.name", e.to_string()))?;
            let d = Optimizer::new(kind);
            let betas = match r.param("betas") {
                None => d.betas,
                Some(v) => {
                    let b = v.as_array().filter(|a| a.len() == 2).and_then(|a| Some((a[0].as_f64()? as f32, a[1].as_f64()? as f32)));
                    b.ok_or_else(|| case.err("params.betas", format!("is {v}, expected [beta1, beta2]")))?
                }
            };
            let opt = Optimizer {
                kind,
                lr: r.f32_or("lr", d.lr)?,
                weight_decay: r.f32_or("weight_decay", d.weight_decay)?,
                momentum: r.f32_or("momentum", d.momentum)?,
                dampening: r.f32_or("dampening", d.dampening)?,
                nesterov: r.bool_or("nesterov", d.nesterov)?,
                betas,
                eps: r.f32_or("eps", d.eps)?,
                rho: r.f32_or("rho", d.rho)?,
                alpha: r.f32_or("alpha", d.alpha)?,
                initial_accumulator_value: r.f32_or("initial_accumulator_value", d.initial_accumulator_value)?,
                lr_decay: r.f32_or("lr_decay", d.lr_decay)?,
            };
            opt.validate().map_err(|e| case.err("params", e.to_string()))?;
            let p0 = r.input("param")?;
            let grads = r.input("grads")?;
            let n = p0.data.len();
            if grads.shape.len() != 2 || grads.shape[1] != n {
                return Err(case.err("inputs.grads.shape", format!("is {:?}, expected [steps, {n}]", grads.shape)));
            }
            let steps = grads.shape[0];
            let mut p = be.upload(&[n], &p0.data.iter().map(|&v| v as f32).collect::<Vec<_>>())?;
            let mut s1 = be.upload(&[n], &vec![opt.initial_state(); n])?;
            let mut s2 = be.zeros(&[n])?;
            let mut g = be.zeros(&[n])?;
            let mut all = Vec::with_capacity(steps * n);
            for t in 0..steps {
                be.write(&mut g, &grads.data[t * n..(t + 1) * n].iter().map(|&v| v as f32).collect::<Vec<_>>())?;
                be.optimizer_step(&opt, t as u64 + 1, &mut p, &g, &mut s1, &mut s2)?;
                all.extend(be.download(&p)?);
            }
            out.insert("params".into(), (vec![steps, n], all));
        }
        other => return Err(case.err("op", format!("unknown op '{other}' (expected conv2d, max_pool2d, avg_pool2d, global_avg_pool2d, batch_norm2d, linear, relu, cross_entropy, optimizer)"))),
    }
    Ok(out)
}

/// Compares what `run` (or any other implementation) produced with the case's expected
/// outputs: one check per output, plus "updates" for an optimizer's `params`.
pub fn compare(case: &CaseFile, got: &Produced) -> Result<Vec<OutputCheck>> {
    let mut checks = Vec::new();
    for (name, want) in &case.outputs {
        let (shape, data) = got
            .get(name)
            .ok_or_else(|| case.err(format!("outputs.{name}"), format!("{} does not produce '{name}' from these inputs", case.op)))?;
        let scalar = |s: &[usize]| s.iter().product::<usize>() == 1 && s.iter().all(|&d| d == 1);
        if shape != &want.shape && !(scalar(shape) && scalar(&want.shape)) {
            return Err(case.err(format!("outputs.{name}.shape"), format!("is {:?}, the engine computes {:?}", want.shape, shape)));
        }
        checks.push(OutputCheck::new(name.clone(), case.tolerance(), data, &want.data));
        if case.op == "optimizer" && name == "params" {
            checks.push(update_check(case, data, &want.data)?);
        }
    }
    Ok(checks)
}

/// p[t] - p[t-1] for the rows of `params` [steps, n], with p[-1] = `p0` [n].
fn updates(p0: &[f64], params: &[f64]) -> Vec<f64> {
    let n = p0.len();
    (0..params.len()).map(|i| params[i] - if i < n { p0[i] } else { params[i - n] }).collect()
}

/// Compares the optimizer's steps rather than where they lead (module docs).
fn update_check(case: &CaseFile, got: &[f32], want: &[f64]) -> Result<OutputCheck> {
    let p0 = &case.inputs.get("param").ok_or_else(|| case.err("inputs.param", "missing (optimizer needs it)"))?.data;
    if p0.is_empty() || !want.len().is_multiple_of(p0.len()) {
        return Err(case.err("outputs.params.shape", format!("{} values are not whole steps of {} parameters", want.len(), p0.len())));
    }
    let got: Vec<f64> = got.iter().map(|&v| v as f64).collect();
    let max_param = p0.iter().chain(want).map(|p| p.abs()).fold(0.0, f64::max);
    let tolerance = Tolerance::updates(case.rtol as f32, max_param);
    Ok(OutputCheck::new("updates", tolerance, &updates(p0, &got), &updates(p0, want)))
}

/// Loads, runs and compares one case on one backend.
pub fn check<B: Backend>(be: &B, path: &Path) -> Result<(CaseFile, Vec<OutputCheck>)> {
    let case = load(path)?;
    let got = run(be, &case).map_err(|e| match e {
        e @ Error::CaseFile { .. } => e,
        other => case.err("(run)", other.to_string()),
    })?;
    let checks = compare(&case, &got)?;
    Ok((case, checks))
}
