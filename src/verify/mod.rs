//! Kernel verification: run an op on the GPU and on the CPU reference with the same random
//! inputs and compare. `kernels-tests/` and `wgtrain verify` share this one test body, so the
//! suite a user runs on their device is exactly the one CI runs.

pub mod case_file;
pub mod tolerance;

use std::fmt;

pub use tolerance::{Comparison, Tolerance};

use crate::backend::{Backend, CeTarget};
use crate::cpu::Cpu;
use crate::gpu::{Gpu, MatmulVariant};
use crate::ops::{Activation, Conv2dSpec, MatmulSpec, PoolSpec};
use crate::ops::{Optimizer, OptimizerKind};
use crate::rng::Rng;
use crate::tensor::ShapeFmt;
use crate::Result;

/// One op instance to check.
#[derive(Clone, Debug)]
pub enum Case {
    Matmul {
        variant: MatmulVariant,
        batch: Option<usize>,
        m: usize,
        n: usize,
        k: usize,
        spec: MatmulSpec,
    },
    Add {
        shape: Vec<usize>,
    },
    Mul {
        shape: Vec<usize>,
    },
    Scale {
        shape: Vec<usize>,
        alpha: f32,
    },
    Relu {
        shape: Vec<usize>,
    },
    ReluBackward {
        shape: Vec<usize>,
    },
    Sum {
        shape: Vec<usize>,
    },
    SumSquares {
        shape: Vec<usize>,
    },
    Dropout {
        shape: Vec<usize>,
        p: f32,
        seed: u64,
        step: u64,
    },
    /// `steps` consecutive updates of `n` parameters with the same gradient sequence.
    Optimizer {
        opt: Optimizer,
        n: usize,
        steps: usize,
    },
    ClipGradNorm {
        n: usize,
        max_norm: f32,
    },
    Conv2d {
        x: [usize; 4],
        k: usize,
        kernel: [usize; 2],
        spec: Conv2dSpec,
        bias: bool,
        pass: ConvPass,
    },
    BiasAct {
        shape: Vec<usize>,
        act: Activation,
    },
    ActBackward {
        shape: Vec<usize>,
        act: Activation,
    },
    ChannelSum {
        shape: Vec<usize>,
    },
    Permute {
        d: [usize; 3],
        order: [usize; 3],
    },
    Pool {
        x: [usize; 4],
        spec: PoolSpec,
        kind: PoolKind,
        backward: bool,
    },
    /// Batch norm on x; `pass`: training forward (y, running stats, saved stats), eval
    /// forward, or backward (dx, dgamma, dbeta).
    BatchNorm {
        x: Vec<usize>,
        pass: BnPass,
    },
    /// Mean cross-entropy of random logits [n, c]: loss and gradient together.
    CrossEntropy {
        n: usize,
        c: usize,
        smoothing: f32,
        soft: bool,
    },
    /// argmax_rows and correct_rows of [n, c].
    Argmax {
        n: usize,
        c: usize,
    },
    /// Linear layer x [n, i] -> [n, o]: forward (y) or backward (dx, dw, db).
    Linear {
        n: usize,
        i: usize,
        o: usize,
        backward: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BnPass {
    Train,
    Eval,
    Backward,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Avg,
    GlobalAvg,
}

/// Which result of a convolution a case checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPass {
    Forward,
    BackwardData,
    BackwardFilter,
}

impl Case {
    pub fn op(&self) -> String {
        match self {
            Case::Matmul { variant, spec, batch, m, n, k } => {
                let dims = crate::ops::MatmulDims { batch: batch.unwrap_or(1), m: *m, n: *n, k: *k, stride_a: 0, stride_b: 0, stride_c: 0 };
                let ran = variant.applicable(&dims, *spec);
                let name = if ran == *variant { variant.name().to_string() } else { format!("{}→{}", variant.name(), ran.name()) };
                let t = match (spec.trans_a, spec.trans_b) {
                    (false, false) => "",
                    (true, false) => " Aᵀ",
                    (false, true) => " Bᵀ",
                    (true, true) => " AᵀBᵀ",
                };
                let acc = if spec.beta != 0.0 { " +βC" } else { "" };
                format!("matmul {name}{t}{acc}")
            }
            Case::Add { .. } => "add".into(),
            Case::Mul { .. } => "mul".into(),
            Case::Scale { .. } => "scale".into(),
            Case::Relu { .. } => "relu".into(),
            Case::ReluBackward { .. } => "relu_backward".into(),
            Case::Sum { .. } => "sum".into(),
            Case::SumSquares { .. } => "sum_squares".into(),
            Case::Dropout { p, seed, step, .. } => format!("dropout p {p} seed {seed} step {step}"),
            Case::Optimizer { opt, .. } => {
                let mut extra = vec![format!("lr {}", opt.lr)];
                if opt.betas != (0.9, 0.999) {
                    extra.push(format!("betas {:?}", opt.betas));
                }
                if opt.weight_decay != 0.0 {
                    extra.push(format!("wd {}", opt.weight_decay));
                }
                if opt.momentum != 0.0 {
                    extra.push(format!("mom {}", opt.momentum));
                }
                if opt.dampening != 0.0 {
                    extra.push(format!("damp {}", opt.dampening));
                }
                if opt.nesterov {
                    extra.push("nesterov".into());
                }
                if opt.initial_accumulator_value != 0.0 || opt.lr_decay != 0.0 {
                    extra.push(format!("acc0 {} lr_decay {}", opt.initial_accumulator_value, opt.lr_decay));
                }
                format!("{} {}", opt.kind.name(), extra.join(" "))
            }
            Case::ClipGradNorm { .. } => "clip_grad_norm".into(),
            Case::Conv2d { pass, spec, kernel, bias, .. } => {
                let name = match pass {
                    ConvPass::Forward => "conv2d",
                    ConvPass::BackwardData => "conv2d_backward_data",
                    ConvPass::BackwardFilter => "conv2d_backward_filter",
                };
                let mut s = format!("{name} {}x{}", kernel[0], kernel[1]);
                if spec.stride != [1, 1] {
                    s += &format!(" s{:?}", spec.stride);
                }
                if spec.padding != [0, 0] {
                    s += &format!(" p{:?}", spec.padding);
                }
                if spec.dilation != [1, 1] {
                    s += &format!(" d{:?}", spec.dilation);
                }
                if spec.groups != 1 {
                    s += &format!(" g{}", spec.groups);
                }
                if *bias && *pass == ConvPass::Forward {
                    s += " +bias";
                }
                s.replace(", ", ",")
            }
            Case::BiasAct { act, .. } => format!("bias_act {act:?}"),
            Case::ActBackward { act, .. } => format!("act_backward {act:?}"),
            Case::ChannelSum { .. } => "channel_sum".into(),
            Case::Permute { order, .. } => format!("permute {order:?}"),
            Case::CrossEntropy { smoothing, soft, .. } => format!(
                "cross_entropy {}{}",
                if *soft { "soft" } else { "hard" },
                if *smoothing > 0.0 { format!(" smoothing {smoothing}") } else { String::new() }
            ),
            Case::Argmax { .. } => "argmax_rows, correct_rows".into(),
            Case::Linear { backward, .. } => {
                if *backward {
                    "linear_backward".into()
                } else {
                    "linear".into()
                }
            }
            Case::BatchNorm { pass, .. } => match pass {
                BnPass::Train => "batch_norm train".into(),
                BnPass::Eval => "batch_norm eval".into(),
                BnPass::Backward => "batch_norm_backward".into(),
            },
            Case::Pool { spec, kind, backward, .. } => {
                let name = match kind {
                    PoolKind::Max => "max_pool2d",
                    PoolKind::Avg => "avg_pool2d",
                    PoolKind::GlobalAvg => "global_avg_pool",
                };
                let mut s = format!("{name}{}", if *backward { "_backward" } else { "" });
                if *kind != PoolKind::GlobalAvg {
                    s += &format!(" k{:?} s{:?} p{:?}", spec.kernel, spec.stride, spec.padding).replace(", ", ",");
                    if *kind == PoolKind::Avg && !spec.count_include_pad {
                        s += " excl-pad";
                    }
                }
                s
            }
        }
    }

    pub fn shape(&self) -> String {
        match self {
            Case::Matmul { batch, m, n, k, .. } => match batch {
                Some(b) => format!("{b}x({m}x{k} @ {k}x{n})"),
                None => format!("{m}x{k} @ {k}x{n}"),
            },
            Case::Add { shape }
            | Case::Mul { shape }
            | Case::Scale { shape, .. }
            | Case::Relu { shape }
            | Case::ReluBackward { shape }
            | Case::Sum { shape }
            | Case::SumSquares { shape } => ShapeFmt(shape).to_string(),
            Case::Dropout { shape, .. } => ShapeFmt(shape).to_string(),
            Case::Optimizer { n, steps, .. } => format!("[{n}] x {steps} steps"),
            Case::ClipGradNorm { n, max_norm } => format!("[{n}] max_norm {max_norm}"),
            Case::Conv2d { x, k, .. } => format!("{} -> {k}", ShapeFmt(x)),
            Case::BiasAct { shape, .. } | Case::ActBackward { shape, .. } | Case::ChannelSum { shape } => ShapeFmt(shape).to_string(),
            Case::Permute { d, .. } => ShapeFmt(d).to_string(),
            Case::Pool { x, .. } => ShapeFmt(x).to_string(),
            Case::BatchNorm { x, .. } => ShapeFmt(x).to_string(),
            Case::CrossEntropy { n, c, .. } | Case::Argmax { n, c } => format!("[{n}, {c}]"),
            Case::Linear { n, i, o, .. } => format!("[{n}, {i}] -> {o}"),
        }
    }
}

/// The outcome of one case.
#[derive(Clone, Debug)]
pub struct Report {
    pub op: String,
    pub shape: String,
    pub tolerance: Tolerance,
    pub cmp: Comparison,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.cmp.passed()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: max abs err {:.3e}, max rel err {:.3e}, tolerance atol {:.1e} rtol {:.1e}: {}",
            self.op,
            self.shape,
            self.cmp.max_abs,
            self.cmp.max_rel,
            self.tolerance.atol,
            self.tolerance.rtol,
            if self.passed() { "pass" } else { "FAIL" }
        )?;
        if let Some((i, g, w)) = self.cmp.first_bad {
            write!(f, " ({} bad; first at index {i}: gpu {g}, reference {w})", self.cmp.failures)?;
        }
        Ok(())
    }
}

/// Runs `case` on both backends with inputs drawn from `seed` and compares the results.
pub fn run_case(gpu: &Gpu, case: &Case, seed: u64) -> Result<Report> {
    let cpu = Cpu;
    let mut rng = Rng::new(seed);
    let (tolerance, got, want) = match case {
        Case::Matmul { variant, batch, m, n, k, spec } => {
            let (m, n, k) = (*m, *n, *k);
            let with_batch = |r: usize, c: usize| match batch {
                Some(b) => vec![*b, r, c],
                None => vec![r, c],
            };
            let a_shape = if spec.trans_a { with_batch(k, m) } else { with_batch(m, k) };
            let b_shape = if spec.trans_b { with_batch(n, k) } else { with_batch(k, n) };
            let c_shape = with_batch(m, n);
            let a = rng.vec(a_shape.iter().product(), -1.0, 1.0);
            let b = rng.vec(b_shape.iter().product(), -1.0, 1.0);
            let c0 = rng.vec(c_shape.iter().product(), -1.0, 1.0);
            let mut want = cpu.upload(&c_shape, &c0)?;
            cpu.matmul(&cpu.upload(&a_shape, &a)?, &cpu.upload(&b_shape, &b)?, &mut want, *spec)?;
            let mut got = gpu.upload(&c_shape, &c0)?;
            gpu.matmul_with(*variant, &gpu.upload(&a_shape, &a)?, &gpu.upload(&b_shape, &b)?, &mut got, *spec)?;
            (Tolerance::dot(k, spec.alpha), gpu.download(&got)?, want.data().to_vec())
        }
        Case::Add { shape } | Case::Mul { shape } => {
            let n = shape.iter().product();
            let (a, b) = (rng.vec(n, -1.0, 1.0), rng.vec(n, -1.0, 1.0));
            let (ca, cb, mut want) = (cpu.upload(shape, &a)?, cpu.upload(shape, &b)?, cpu.zeros(shape)?);
            let (ga, gb, mut got) = (gpu.upload(shape, &a)?, gpu.upload(shape, &b)?, gpu.zeros(shape)?);
            if matches!(case, Case::Add { .. }) {
                cpu.add(&ca, &cb, &mut want)?;
                gpu.add(&ga, &gb, &mut got)?;
            } else {
                cpu.mul(&ca, &cb, &mut want)?;
                gpu.mul(&ga, &gb, &mut got)?;
            }
            (Tolerance::EXACT, gpu.download(&got)?, want.data().to_vec())
        }
        Case::Scale { shape, alpha } => {
            let a = rng.vec(shape.iter().product(), -1.0, 1.0);
            let mut want = cpu.zeros(shape)?;
            cpu.scale(&cpu.upload(shape, &a)?, *alpha, &mut want)?;
            let mut got = gpu.zeros(shape)?;
            gpu.scale(&gpu.upload(shape, &a)?, *alpha, &mut got)?;
            (Tolerance::EXACT, gpu.download(&got)?, want.data().to_vec())
        }
        Case::Relu { shape } => {
            let x = rng.vec(shape.iter().product(), -1.0, 1.0);
            let mut want = cpu.zeros(shape)?;
            cpu.relu(&cpu.upload(shape, &x)?, &mut want)?;
            let mut got = gpu.zeros(shape)?;
            gpu.relu(&gpu.upload(shape, &x)?, &mut got)?;
            (Tolerance::EXACT, gpu.download(&got)?, want.data().to_vec())
        }
        Case::ReluBackward { shape } => {
            let n = shape.iter().product();
            let (x, dy) = (rng.vec(n, -1.0, 1.0), rng.vec(n, -1.0, 1.0));
            let mut want = cpu.zeros(shape)?;
            cpu.relu_backward(&cpu.upload(shape, &x)?, &cpu.upload(shape, &dy)?, &mut want)?;
            let mut got = gpu.zeros(shape)?;
            gpu.relu_backward(&gpu.upload(shape, &x)?, &gpu.upload(shape, &dy)?, &mut got)?;
            (Tolerance::EXACT, gpu.download(&got)?, want.data().to_vec())
        }
        Case::Sum { shape } => {
            let n: usize = shape.iter().product();
            let x = rng.vec(n, -1.0, 1.0);
            let sumsq: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
            let mut want = cpu.zeros(&[1])?;
            cpu.sum(&cpu.upload(shape, &x)?, &mut want)?;
            let mut got = gpu.zeros(&[1])?;
            gpu.sum(&gpu.upload(shape, &x)?, &mut got)?;
            (Tolerance::sum(crate::gpu::reduce::sum_depth(n), sumsq), gpu.download(&got)?, want.data().to_vec())
        }
        Case::SumSquares { shape } => {
            let n: usize = shape.iter().product();
            let x = rng.vec(n, -1.0, 1.0);
            let sum4: f64 = x.iter().map(|&v| (v as f64).powi(4)).sum();
            let mut want = cpu.zeros(&[1])?;
            cpu.sum_squares(&cpu.upload(shape, &x)?, &mut want)?;
            let mut got = gpu.zeros(&[1])?;
            gpu.sum_squares(&gpu.upload(shape, &x)?, &mut got)?;
            (Tolerance::sum(crate::gpu::reduce::sum_depth(n), sum4), gpu.download(&got)?, want.data().to_vec())
        }
        Case::Dropout { shape, p, seed, step } => {
            let x = rng.vec(shape.iter().product(), -1.0, 1.0);
            let mask = crate::ops::DropoutMask::new(*p, *seed, *step)?;
            let mut want = cpu.zeros(shape)?;
            cpu.dropout(&cpu.upload(shape, &x)?, &mut want, &mask)?;
            let mut got = gpu.zeros(shape)?;
            gpu.dropout(&gpu.upload(shape, &x)?, &mut got, &mask)?;
            // Same mask bit for bit, and one correctly rounded multiply.
            (Tolerance::EXACT, gpu.download(&got)?, want.data().to_vec())
        }
        Case::Optimizer { opt, n, steps } => {
            let n = *n;
            let p0 = rng.vec(n, -1.0, 1.0);
            let grads: Vec<Vec<f32>> = (0..*steps).map(|_| rng.vec(n, -1.0, 1.0)).collect();
            let state_len = |i: usize| if opt.state_tensors() > i { n } else { 1 };
            let init = vec![opt.initial_state(); n];
            let (mut want, mut got) = (Vec::new(), Vec::new());
            let mut cp = cpu.upload(&[n], &p0)?;
            let mut c1 = cpu.upload(&[state_len(0)], &init[..state_len(0)])?;
            let mut c2 = cpu.zeros(&[state_len(1)])?;
            let mut gp = gpu.upload(&[n], &p0)?;
            let mut g1 = gpu.upload(&[state_len(0)], &init[..state_len(0)])?;
            let mut g2 = gpu.zeros(&[state_len(1)])?;
            let mut gg = gpu.zeros(&[n])?;
            for (t, g) in grads.iter().enumerate() {
                cpu.optimizer_step(opt, t as u64 + 1, &mut cp, &cpu.upload(&[n], g)?, &mut c1, &mut c2)?;
                want.extend_from_slice(cp.data());
                gpu.write(&mut gg, g)?;
                gpu.optimizer_step(opt, t as u64 + 1, &mut gp, &gg, &mut g1, &mut g2)?;
                got.extend(gpu.download(&gp)?);
            }
            (Tolerance::optimizer(*steps), got, want)
        }
        Case::Conv2d { x: xs, k, kernel, spec, bias, pass } => {
            let ws = [*k, xs[1] / spec.groups.max(1), kernel[0], kernel[1]];
            let d = crate::ops::conv2d_dims("conv2d", xs, &ws, *spec)?;
            let ys = d.y_shape();
            let x = rng.vec(xs.iter().product(), -1.0, 1.0);
            let w = rng.vec(ws.iter().product(), -1.0, 1.0);
            let dy = rng.vec(ys.iter().product(), -1.0, 1.0);
            let b = rng.vec(*k, -1.0, 1.0);
            let (want, got, terms) = match pass {
                ConvPass::Forward => {
                    let mut want = cpu.zeros(&ys)?;
                    let cb = cpu.upload(&[*k], &b)?;
                    cpu.conv2d(&cpu.upload(xs, &x)?, &cpu.upload(&ws, &w)?, bias.then_some(&cb), &mut want, *spec)?;
                    let mut got = gpu.zeros(&ys)?;
                    let gb = gpu.upload(&[*k], &b)?;
                    gpu.conv2d(&gpu.upload(xs, &x)?, &gpu.upload(&ws, &w)?, bias.then_some(&gb), &mut got, *spec)?;
                    (want, got, d.patch() + 1)
                }
                ConvPass::BackwardData => {
                    let mut want = cpu.zeros(xs)?;
                    cpu.conv2d_backward_data(&cpu.upload(&ys, &dy)?, &cpu.upload(&ws, &w)?, &mut want, *spec)?;
                    let mut got = gpu.zeros(xs)?;
                    gpu.conv2d_backward_data(&gpu.upload(&ys, &dy)?, &gpu.upload(&ws, &w)?, &mut got, *spec)?;
                    (want, got, d.kg() * d.kh * d.kw)
                }
                ConvPass::BackwardFilter => {
                    let mut want = cpu.zeros(&ws)?;
                    cpu.conv2d_backward_filter(&cpu.upload(xs, &x)?, &cpu.upload(&ys, &dy)?, &mut want, *spec)?;
                    let mut got = gpu.zeros(&ws)?;
                    gpu.conv2d_backward_filter(&gpu.upload(xs, &x)?, &gpu.upload(&ys, &dy)?, &mut got, *spec)?;
                    (want, got, d.n * d.p())
                }
            };
            (Tolerance::dot(terms, 1.0), gpu.download(&got)?, want.data().to_vec())
        }
        Case::BiasAct { shape, act } => {
            let y = rng.vec(shape.iter().product(), -1.0, 1.0);
            let b = rng.vec(shape[1], -1.0, 1.0);
            let mut want = cpu.upload(shape, &y)?;
            cpu.bias_act(&mut want, &cpu.upload(&[shape[1]], &b)?, *act)?;
            let mut got = gpu.upload(shape, &y)?;
            gpu.bias_act(&mut got, &gpu.upload(&[shape[1]], &b)?, *act)?;
            (Tolerance::EXACT, gpu.download(&got)?, want.data().to_vec())
        }
        Case::ActBackward { shape, act } => {
            let n = shape.iter().product();
            let (y, dy) = (rng.vec(n, -1.0, 1.0), rng.vec(n, -1.0, 1.0));
            let mut want = cpu.zeros(shape)?;
            cpu.act_backward(&cpu.upload(shape, &y)?, &cpu.upload(shape, &dy)?, &mut want, *act)?;
            let mut got = gpu.zeros(shape)?;
            gpu.act_backward(&gpu.upload(shape, &y)?, &gpu.upload(shape, &dy)?, &mut got, *act)?;
            (Tolerance::EXACT, gpu.download(&got)?, want.data().to_vec())
        }
        Case::ChannelSum { shape } => {
            let x = rng.vec(shape.iter().product(), -1.0, 1.0);
            let per_channel = shape.iter().product::<usize>() / shape[1];
            let plane: usize = shape[2..].iter().product();
            let mut want = cpu.zeros(&[shape[1]])?;
            cpu.channel_sum(&cpu.upload(shape, &x)?, &mut want)?;
            let mut got = gpu.zeros(&[shape[1]])?;
            gpu.channel_sum(&gpu.upload(shape, &x)?, &mut got)?;
            // One workgroup per channel: runs of N * ceil(P/256) values, then an 8-level tree.
            (Tolerance::sum(shape[0] * plane.div_ceil(256) + 8, per_channel as f64 / 3.0), gpu.download(&got)?, want.data().to_vec())
        }
        Case::Permute { d, order } => {
            // Output axes in `order`; s[axis] = stride of input axis in the output.
            let out_dims = [d[order[0]], d[order[1]], d[order[2]]];
            let mut s = [0usize; 3];
            for (pos, &axis) in order.iter().enumerate() {
                s[axis] = out_dims[pos + 1..].iter().product();
            }
            let n = d.iter().product();
            let x = rng.vec(n, -1.0, 1.0);
            let mut want = vec![0.0; n];
            crate::cpu::permute::strided_copy(&x, *d, [d[1] * d[2], d[2], 1], s, &mut want);
            let src = gpu.upload(&[n], &x)?;
            let dst = gpu.zeros(&[n])?;
            gpu.permute3(src.storage(), 0, *d, s, dst.storage())?;
            (Tolerance::EXACT, gpu.download(&dst)?, want)
        }
        Case::Pool { x: xs, spec, kind, backward } => {
            let x = rng.vec(xs.iter().product(), -1.0, 1.0);
            let ys: Vec<usize> = match kind {
                PoolKind::GlobalAvg => vec![xs[0], xs[1], 1, 1],
                _ => crate::ops::pool_dims("pool", xs, *spec)?.y_shape().to_vec(),
            };
            let dy = rng.vec(ys.iter().product(), -1.0, 1.0);
            let window = match kind {
                PoolKind::GlobalAvg => xs[2] * xs[3],
                _ => spec.kernel[0] * spec.kernel[1],
            };
            match (kind, backward) {
                (PoolKind::Max, false) => {
                    let (mut cy, mut ci) = (cpu.zeros(&ys)?, cpu.zeros(&ys)?);
                    cpu.max_pool2d(&cpu.upload(xs, &x)?, &mut cy, &mut ci, *spec)?;
                    let (mut gy, mut gi) = (gpu.zeros(&ys)?, gpu.zeros(&ys)?);
                    gpu.max_pool2d(&gpu.upload(xs, &x)?, &mut gy, &mut gi, *spec)?;
                    let mut got = gpu.download(&gy)?;
                    got.extend(gpu.download(&gi)?);
                    let mut want = cy.data().to_vec();
                    want.extend_from_slice(ci.data());
                    (Tolerance::EXACT, got, want)
                }
                (PoolKind::Max, true) => {
                    // Both backwards route dy through the CPU's argmax.
                    let (mut cy, mut ci) = (cpu.zeros(&ys)?, cpu.zeros(&ys)?);
                    cpu.max_pool2d(&cpu.upload(xs, &x)?, &mut cy, &mut ci, *spec)?;
                    let mut want = cpu.zeros(xs)?;
                    cpu.max_pool2d_backward(&cpu.upload(&ys, &dy)?, &ci, &mut want, *spec)?;
                    let mut got = gpu.zeros(xs)?;
                    gpu.max_pool2d_backward(&gpu.upload(&ys, &dy)?, &gpu.upload(&ys, ci.data())?, &mut got, *spec)?;
                    (Tolerance::dot(window, 1.0), gpu.download(&got)?, want.data().to_vec())
                }
                (PoolKind::Avg, false) => {
                    let mut want = cpu.zeros(&ys)?;
                    cpu.avg_pool2d(&cpu.upload(xs, &x)?, &mut want, *spec)?;
                    let mut got = gpu.zeros(&ys)?;
                    gpu.avg_pool2d(&gpu.upload(xs, &x)?, &mut got, *spec)?;
                    (Tolerance::dot(window, 1.0), gpu.download(&got)?, want.data().to_vec())
                }
                (PoolKind::Avg, true) => {
                    let mut want = cpu.zeros(xs)?;
                    cpu.avg_pool2d_backward(&cpu.upload(&ys, &dy)?, &mut want, *spec)?;
                    let mut got = gpu.zeros(xs)?;
                    gpu.avg_pool2d_backward(&gpu.upload(&ys, &dy)?, &mut got, *spec)?;
                    (Tolerance::dot(window, 1.0), gpu.download(&got)?, want.data().to_vec())
                }
                (PoolKind::GlobalAvg, false) => {
                    let mut want = cpu.zeros(&ys)?;
                    cpu.global_avg_pool(&cpu.upload(xs, &x)?, &mut want)?;
                    let mut got = gpu.zeros(&ys)?;
                    gpu.global_avg_pool(&gpu.upload(xs, &x)?, &mut got)?;
                    (Tolerance::dot(window, 1.0), gpu.download(&got)?, want.data().to_vec())
                }
                (PoolKind::GlobalAvg, true) => {
                    let mut want = cpu.zeros(xs)?;
                    cpu.global_avg_pool_backward(&cpu.upload(&ys, &dy)?, &mut want)?;
                    let mut got = gpu.zeros(xs)?;
                    gpu.global_avg_pool_backward(&gpu.upload(&ys, &dy)?, &mut got)?;
                    (Tolerance::EXACT, gpu.download(&got)?, want.data().to_vec())
                }
            }
        }
        Case::BatchNorm { x: xs, pass } => {
            let c = xs[1];
            let per_channel = xs.iter().product::<usize>() / c;
            // Inputs with an offset and a spread per channel, as activations have.
            let x: Vec<f32> = (0..xs.iter().product())
                .map(|i| {
                    let ch = (i / (per_channel / xs[0])) % c;
                    rng.uniform(-1.0, 1.0) * (1.0 + ch as f32 * 0.5) + ch as f32 * 0.25
                })
                .collect();
            let gamma = rng.vec(c, 0.5, 1.5);
            let beta = rng.vec(c, -0.5, 0.5);
            let rm = rng.vec(c, -0.2, 0.2);
            let rv = rng.vec(c, 0.5, 1.5);
            let dy = rng.vec(x.len(), -1.0, 1.0);
            let (momentum, eps) = (0.1, 1e-5);
            let (got, want) = match pass {
                BnPass::Train | BnPass::Eval => {
                    let run_cpu = || -> Result<Vec<f32>> {
                        let (g, b) = (cpu.upload(&[c], &gamma)?, cpu.upload(&[c], &beta)?);
                        let (mut m, mut v) = (cpu.upload(&[c], &rm)?, cpu.upload(&[c], &rv)?);
                        let (mut y, mut sm, mut si) = (cpu.zeros(xs)?, cpu.zeros(&[c])?, cpu.zeros(&[c])?);
                        let xt = cpu.upload(xs, &x)?;
                        if *pass == BnPass::Train {
                            cpu.batch_norm_train(&xt, &g, &b, &mut m, &mut v, &mut y, &mut sm, &mut si, momentum, eps)?;
                            Ok([y.data(), m.data(), v.data(), sm.data(), si.data()].concat())
                        } else {
                            cpu.batch_norm_eval(&xt, &g, &b, &m, &v, &mut y, eps)?;
                            Ok(y.data().to_vec())
                        }
                    };
                    let run_gpu = || -> Result<Vec<f32>> {
                        let (g, b) = (gpu.upload(&[c], &gamma)?, gpu.upload(&[c], &beta)?);
                        let (mut m, mut v) = (gpu.upload(&[c], &rm)?, gpu.upload(&[c], &rv)?);
                        let (mut y, mut sm, mut si) = (gpu.zeros(xs)?, gpu.zeros(&[c])?, gpu.zeros(&[c])?);
                        let xt = gpu.upload(xs, &x)?;
                        if *pass == BnPass::Train {
                            gpu.batch_norm_train(&xt, &g, &b, &mut m, &mut v, &mut y, &mut sm, &mut si, momentum, eps)?;
                            Ok([gpu.download(&y)?, gpu.download(&m)?, gpu.download(&v)?, gpu.download(&sm)?, gpu.download(&si)?].concat())
                        } else {
                            gpu.batch_norm_eval(&xt, &g, &b, &m, &v, &mut y, eps)?;
                            gpu.download(&y)
                        }
                    };
                    (run_gpu()?, run_cpu()?)
                }
                BnPass::Backward => {
                    // Saved statistics from the CPU's forward feed both backwards.
                    let (g, b) = (cpu.upload(&[c], &gamma)?, cpu.upload(&[c], &beta)?);
                    let (mut m, mut v) = (cpu.upload(&[c], &rm)?, cpu.upload(&[c], &rv)?);
                    let (mut y, mut sm, mut si) = (cpu.zeros(xs)?, cpu.zeros(&[c])?, cpu.zeros(&[c])?);
                    let xt = cpu.upload(xs, &x)?;
                    cpu.batch_norm_train(&xt, &g, &b, &mut m, &mut v, &mut y, &mut sm, &mut si, momentum, eps)?;
                    let (mut dx, mut dg, mut db) = (cpu.zeros(xs)?, cpu.zeros(&[c])?, cpu.zeros(&[c])?);
                    cpu.batch_norm_backward(&xt, &cpu.upload(xs, &dy)?, &g, &sm, &si, &mut dx, &mut dg, &mut db)?;
                    let want = [dx.data(), dg.data(), db.data()].concat();
                    let (mut gdx, mut gdg, mut gdb) = (gpu.zeros(xs)?, gpu.zeros(&[c])?, gpu.zeros(&[c])?);
                    gpu.batch_norm_backward(
                        &gpu.upload(xs, &x)?,
                        &gpu.upload(xs, &dy)?,
                        &gpu.upload(&[c], &gamma)?,
                        &gpu.upload(&[c], sm.data())?,
                        &gpu.upload(&[c], si.data())?,
                        &mut gdx,
                        &mut gdg,
                        &mut gdb,
                    )?;
                    ([gpu.download(&gdx)?, gpu.download(&gdg)?, gpu.download(&gdb)?].concat(), want)
                }
            };
            (Tolerance::batch_norm(xs[0], per_channel / xs[0]), got, want)
        }
        Case::CrossEntropy { n, c, smoothing, soft } => {
            let (n, c) = (*n, *c);
            let z = rng.vec(n * c, -4.0, 4.0);
            let target: Vec<f32> = if *soft {
                // Rows of a mixup-like distribution: two classes mixed.
                let mut t = vec![0.0; n * c];
                for i in 0..n {
                    let lam = rng.next_f32();
                    t[i * c + rng.below(c)] += lam;
                    t[i * c + rng.below(c)] += 1.0 - lam;
                }
                t
            } else {
                (0..n).map(|_| rng.below(c) as f32).collect()
            };
            let tshape = if *soft { vec![n, c] } else { vec![n] };
            let (ct, gt) = (cpu.upload(&tshape, &target)?, gpu.upload(&tshape, &target)?);
            let (mut closs, mut cgrad) = (cpu.zeros(&[1])?, cpu.zeros(&[n, c])?);
            cpu.cross_entropy(
                &cpu.upload(&[n, c], &z)?,
                if *soft { CeTarget::Probs(&ct) } else { CeTarget::Labels(&ct) },
                *smoothing,
                &mut closs,
                &mut cgrad,
            )?;
            let (mut gloss, mut ggrad) = (gpu.zeros(&[1])?, gpu.zeros(&[n, c])?);
            gpu.cross_entropy(
                &gpu.upload(&[n, c], &z)?,
                if *soft { CeTarget::Probs(&gt) } else { CeTarget::Labels(&gt) },
                *smoothing,
                &mut gloss,
                &mut ggrad,
            )?;
            let got = [gpu.download(&gloss)?, gpu.download(&ggrad)?].concat();
            let want = [closs.data(), cgrad.data()].concat();
            (Tolerance::softmax(c), got, want)
        }
        Case::Argmax { n, c } => {
            let (n, c) = (*n, *c);
            let z = rng.vec(n * c, -1.0, 1.0);
            let labels: Vec<f32> = (0..n).map(|_| rng.below(c) as f32).collect();
            let (mut ca, mut cc) = (cpu.zeros(&[n])?, cpu.zeros(&[n])?);
            let cz = cpu.upload(&[n, c], &z)?;
            cpu.argmax_rows(&cz, &mut ca)?;
            cpu.correct_rows(&cz, &cpu.upload(&[n], &labels)?, &mut cc)?;
            let (mut ga, mut gc) = (gpu.zeros(&[n])?, gpu.zeros(&[n])?);
            let gz = gpu.upload(&[n, c], &z)?;
            gpu.argmax_rows(&gz, &mut ga)?;
            gpu.correct_rows(&gz, &gpu.upload(&[n], &labels)?, &mut gc)?;
            (Tolerance::EXACT, [gpu.download(&ga)?, gpu.download(&gc)?].concat(), [ca.data(), cc.data()].concat())
        }
        Case::Linear { n, i, o, backward } => {
            let (n, i, o) = (*n, *i, *o);
            let x = rng.vec(n * i, -1.0, 1.0);
            let w = rng.vec(o * i, -1.0, 1.0);
            let b = rng.vec(o, -1.0, 1.0);
            let dy = rng.vec(n * o, -1.0, 1.0);
            if !*backward {
                let mut want = cpu.zeros(&[n, o])?;
                cpu.linear(&cpu.upload(&[n, i], &x)?, &cpu.upload(&[o, i], &w)?, Some(&cpu.upload(&[o], &b)?), &mut want)?;
                let mut got = gpu.zeros(&[n, o])?;
                gpu.linear(&gpu.upload(&[n, i], &x)?, &gpu.upload(&[o, i], &w)?, Some(&gpu.upload(&[o], &b)?), &mut got)?;
                (Tolerance::dot(i + 1, 1.0), gpu.download(&got)?, want.data().to_vec())
            } else {
                let (mut dx, mut dw, mut db) = (cpu.zeros(&[n, i])?, cpu.zeros(&[o, i])?, cpu.zeros(&[o])?);
                cpu.linear_backward(
                    &cpu.upload(&[n, i], &x)?,
                    &cpu.upload(&[o, i], &w)?,
                    &cpu.upload(&[n, o], &dy)?,
                    Some(&mut dx),
                    &mut dw,
                    Some(&mut db),
                )?;
                let (mut gdx, mut gdw, mut gdb) = (gpu.zeros(&[n, i])?, gpu.zeros(&[o, i])?, gpu.zeros(&[o])?);
                gpu.linear_backward(
                    &gpu.upload(&[n, i], &x)?,
                    &gpu.upload(&[o, i], &w)?,
                    &gpu.upload(&[n, o], &dy)?,
                    Some(&mut gdx),
                    &mut gdw,
                    Some(&mut gdb),
                )?;
                let got = [gpu.download(&gdx)?, gpu.download(&gdw)?, gpu.download(&gdb)?].concat();
                (Tolerance::dot(n.max(o), 1.0), got, [dx.data(), dw.data(), db.data()].concat())
            }
        }
        Case::ClipGradNorm { n, max_norm } => {
            let g = rng.vec(*n, -1.0, 1.0);
            let sum4: f64 = g.iter().map(|&v| (v as f64).powi(4)).sum();
            let (mut cg, mut cs) = (cpu.upload(&[*n], &g)?, cpu.zeros(&[1])?);
            cpu.clip_grad_norm(&mut cg, *max_norm, &mut cs)?;
            let (mut gg, mut gs) = (gpu.upload(&[*n], &g)?, gpu.zeros(&[1])?);
            gpu.clip_grad_norm(&mut gg, *max_norm, &mut gs)?;
            // The coefficient inherits the sum's relative error; the clipped values are |g| <= 1.
            let t = Tolerance::sum(crate::gpu::reduce::sum_depth(*n), sum4);
            let rel = t.atol / cs.data()[0].max(1e-30) + t.rtol;
            let mut got = gpu.download(&gg)?;
            got.push(gpu.download(&gs)?[0]);
            let mut want = cg.data().to_vec();
            want.push(cs.data()[0]);
            (Tolerance::new(rel + 4.0 * tolerance::U, rel + 4.0 * tolerance::U), got, want)
        }
    };
    Ok(Report { op: case.op(), shape: case.shape(), tolerance, cmp: tolerance.compare(&got, &want) })
}

/// Matmul cases for one variant: sizes of 1, primes, non-multiples of every tile, all four
/// transpose combinations, accumulation, batching (shared and per-entry operands).
pub fn matmul_cases(variant: MatmulVariant, large: bool) -> Vec<Case> {
    let mm = |batch, m, n, k, ta, tb, alpha: f32, beta: f32| Case::Matmul {
        variant,
        batch,
        m,
        n,
        k,
        spec: MatmulSpec { trans_a: ta, trans_b: tb, alpha, beta },
    };
    let mut v = vec![
        mm(None, 1, 1, 1, false, false, 1.0, 0.0),
        mm(None, 1, 7, 13, false, false, 1.0, 0.0),
        mm(None, 13, 1, 7, false, false, 1.0, 0.0),
        mm(None, 31, 37, 41, false, false, 1.0, 0.0),
        mm(None, 64, 64, 64, false, false, 1.0, 0.0),
        mm(None, 65, 33, 17, false, false, 1.0, 0.0),
        mm(None, 61, 67, 71, true, false, 1.0, 0.0),
        mm(None, 61, 67, 71, false, true, 1.0, 0.0),
        mm(None, 61, 67, 71, true, true, 1.0, 0.0),
        mm(None, 29, 97, 53, false, false, 0.5, 1.0),
        mm(None, 29, 97, 53, true, true, -2.0, 0.25),
        mm(Some(3), 19, 23, 29, false, false, 1.0, 0.0),
        mm(Some(5), 7, 130, 11, false, true, 1.0, 1.0),
        // Multiples of 4 (v4's fast path) with edges in every direction.
        mm(None, 9, 516, 12, false, false, 1.0, 0.0),
        mm(None, 17, 4, 4, false, false, 1.0, 0.0),
        mm(None, 33, 1028, 20, false, false, 0.5, 1.0),
        mm(Some(2), 11, 36, 44, false, false, 1.0, 0.0),
        // Widths that make v4 pick 64, 32 and 16 lanes a workgroup.
        mm(None, 5, 512, 8, false, false, 1.0, 0.0),
        mm(None, 9, 256, 16, false, false, 1.0, 0.0),
        mm(None, 3, 128, 4, false, false, 1.0, 0.0),
    ];
    if large {
        v.push(mm(None, 257, 1031, 509, false, false, 1.0, 0.0));
        v.push(mm(None, 300, 200, 1024, true, false, 1.0, 0.0));
    }
    v
}

/// The element-wise and reduction cases: 1, primes, non-multiples of 256, and large.
pub fn elementwise_cases(large: bool) -> Vec<Case> {
    let mut shapes = vec![vec![1], vec![7], vec![256], vec![257], vec![3, 5, 7, 11], vec![2, 3, 97, 101]];
    if large {
        shapes.push(vec![1_000_003]);
    }
    let mut v = Vec::new();
    for s in shapes {
        v.push(Case::Add { shape: s.clone() });
        v.push(Case::Mul { shape: s.clone() });
        v.push(Case::Scale { shape: s.clone(), alpha: -1.75 });
        v.push(Case::Relu { shape: s.clone() });
        v.push(Case::ReluBackward { shape: s.clone() });
        v.push(Case::Sum { shape: s.clone() });
        v.push(Case::SumSquares { shape: s });
    }
    if large {
        v.push(Case::Sum { shape: vec![4096 * 1024 + 17] });
    }
    for (shape, p, seed, step) in [
        (vec![1], 0.5, 1, 1),
        (vec![257], 0.25, 7, 3),
        (vec![8, 3, 13, 11], 0.5, 7, 4),
        (vec![100_003], 0.1, 42, 1_000_000),
        (vec![33], 0.0, 1, 1),
        (vec![33], 1.0, 1, 1),
    ] {
        v.push(Case::Dropout { shape, p, seed, step });
    }
    v
}

/// Every optimizer in its PyTorch defaults and in the variants that change its rule, over
/// five consecutive steps; sizes 1, prime, and large.
pub fn optimizer_cases(large: bool) -> Vec<Case> {
    let o = Optimizer::new;
    let with = |kind, f: &dyn Fn(&mut Optimizer)| {
        let mut x = o(kind);
        f(&mut x);
        x
    };
    let opts = vec![
        o(OptimizerKind::Sgd),
        with(OptimizerKind::Sgd, &|x| {
            x.lr = 0.1;
            x.momentum = 0.9;
        }),
        with(OptimizerKind::Sgd, &|x| {
            x.lr = 0.05;
            x.momentum = 0.9;
            x.nesterov = true;
            x.weight_decay = 5e-4;
        }),
        with(OptimizerKind::Sgd, &|x| {
            x.momentum = 0.5;
            x.dampening = 0.3;
            x.weight_decay = 1e-2;
        }),
        o(OptimizerKind::Adagrad),
        with(OptimizerKind::Adagrad, &|x| {
            x.initial_accumulator_value = 0.1;
            x.lr_decay = 0.01;
            x.weight_decay = 1e-3;
        }),
        o(OptimizerKind::Adadelta),
        with(OptimizerKind::Adadelta, &|x| x.weight_decay = 1e-2),
        o(OptimizerKind::Rmsprop),
        with(OptimizerKind::Rmsprop, &|x| {
            x.momentum = 0.9;
            x.weight_decay = 1e-3;
        }),
        o(OptimizerKind::Adam),
        with(OptimizerKind::Adam, &|x| x.weight_decay = 1e-2),
        o(OptimizerKind::AdamW),
        with(OptimizerKind::AdamW, &|x| {
            x.lr = 1e-2;
            x.betas = (0.8, 0.99);
        }),
    ];
    let mut v = Vec::new();
    for opt in opts {
        for n in [1, 257] {
            v.push(Case::Optimizer { opt, n, steps: 5 });
        }
        if large {
            v.push(Case::Optimizer { opt, n: 100_003, steps: 3 });
        }
    }
    for (n, max_norm) in [(1, 0.5), (1000, 1.0), (1000, 100.0), (70_001, 5.0)] {
        v.push(Case::ClipGradNorm { n, max_norm });
    }
    v
}

/// Convolutions with awkward shapes: batch 1, odd sizes, stride 2 on odd sizes, channels that
/// are not multiples of any tile, 7x7 stride 2 pad 3, dilation, groups up to depthwise, the
/// direct 1x1 path (with and without groups), a 1x1 that needs im2col, asymmetric options.
pub fn conv_cases(large: bool) -> Vec<Case> {
    let spec = |s: [usize; 2], p: [usize; 2], d: [usize; 2], g: usize| Conv2dSpec { stride: s, padding: p, dilation: d, groups: g };
    let mut shapes = vec![
        ([1, 1, 5, 5], 1, [3, 3], spec([1, 1], [1, 1], [1, 1], 1)),
        ([2, 3, 7, 9], 5, [3, 3], spec([2, 2], [1, 1], [1, 1], 1)),
        ([3, 4, 11, 11], 6, [7, 7], spec([2, 2], [3, 3], [1, 1], 1)),
        ([2, 6, 9, 9], 6, [3, 3], spec([1, 1], [1, 1], [1, 1], 6)),
        ([2, 4, 8, 8], 6, [3, 3], spec([1, 1], [2, 2], [2, 2], 2)),
        ([3, 8, 7, 7], 12, [1, 1], spec([1, 1], [0, 0], [1, 1], 1)),
        ([2, 8, 9, 9], 4, [1, 1], spec([2, 2], [0, 0], [1, 1], 1)),
        ([2, 16, 10, 10], 8, [1, 1], spec([1, 1], [0, 0], [1, 1], 2)),
        ([4, 32, 8, 8], 32, [3, 3], spec([1, 1], [1, 1], [1, 1], 1)),
        ([1, 5, 13, 6], 7, [5, 3], spec([2, 1], [2, 0], [1, 1], 1)),
    ];
    if large {
        shapes.push(([8, 16, 32, 32], 16, [3, 3], spec([1, 1], [1, 1], [1, 1], 1)));
    }
    let mut v = Vec::new();
    for (x, k, kernel, spec) in shapes {
        for pass in [ConvPass::Forward, ConvPass::BackwardData, ConvPass::BackwardFilter] {
            v.push(Case::Conv2d { x, k, kernel, spec, bias: x[0] != 3, pass });
        }
    }
    v
}

/// Bias + activation, its backward, per-channel sums and permutes.
pub fn channel_cases(large: bool) -> Vec<Case> {
    let mut v = Vec::new();
    for shape in [vec![1, 1], vec![3, 7], vec![2, 5, 3, 3], vec![4, 33, 7, 9]] {
        for act in [Activation::Identity, Activation::Relu] {
            v.push(Case::BiasAct { shape: shape.clone(), act });
            v.push(Case::ActBackward { shape: shape.clone(), act });
        }
        v.push(Case::ChannelSum { shape });
    }
    if large {
        v.push(Case::ChannelSum { shape: vec![64, 3, 32, 32] });
    }
    for (d, order) in [([1, 1, 1], [0, 2, 1]), ([3, 5, 7], [0, 2, 1]), ([4, 6, 13], [1, 0, 2]), ([2, 3, 4], [2, 1, 0])] {
        v.push(Case::Permute { d, order });
    }
    v
}

/// Pooling: 2x2/2, 3x3/2 pad 1 on odd sizes, overlapping windows, rectangular, batch 1,
/// count_include_pad both ways; global average pooling; forward and backward of each.
pub fn pool_cases(large: bool) -> Vec<Case> {
    let spec =
        |k: [usize; 2], s: [usize; 2], p: [usize; 2], inc: bool| PoolSpec { kernel: k, stride: s, padding: p, count_include_pad: inc };
    let mut list = vec![
        ([2, 3, 8, 8], spec([2, 2], [2, 2], [0, 0], true)),
        // Tiling windows that leave an edge uncovered (7 and 9 are odd).
        ([2, 3, 7, 9], spec([2, 2], [2, 2], [0, 0], true)),
        ([1, 5, 7, 9], spec([3, 3], [2, 2], [1, 1], true)),
        ([2, 2, 11, 7], spec([3, 3], [2, 2], [1, 1], false)),
        ([3, 4, 9, 9], spec([3, 3], [1, 1], [1, 1], false)),
        ([2, 3, 13, 10], spec([3, 2], [2, 1], [1, 0], true)),
        ([1, 1, 1, 1], spec([1, 1], [1, 1], [0, 0], true)),
    ];
    if large {
        list.push(([16, 32, 28, 28], spec([2, 2], [2, 2], [0, 0], true)));
    }
    let mut v = Vec::new();
    for (x, s) in list {
        for backward in [false, true] {
            v.push(Case::Pool { x, spec: s, kind: PoolKind::Max, backward });
            v.push(Case::Pool { x, spec: s, kind: PoolKind::Avg, backward });
        }
    }
    for x in [[1, 1, 1, 1], [2, 3, 7, 7], [4, 64, 8, 8]] {
        for backward in [false, true] {
            v.push(Case::Pool { x, spec: PoolSpec::square(1), kind: PoolKind::GlobalAvg, backward });
        }
    }
    v
}

/// Batch norm: batch 1 with odd sizes, channels not a multiple of anything, a [N, C] input
/// (BatchNorm1d-shaped), and many values per channel.
pub fn batch_norm_cases(large: bool) -> Vec<Case> {
    let mut shapes = vec![vec![1, 3, 5, 7], vec![4, 13, 3, 3], vec![7, 5], vec![2, 1, 9, 11]];
    if large {
        shapes.push(vec![32, 16, 16, 16]);
    }
    let mut v = Vec::new();
    for x in shapes {
        for pass in [BnPass::Train, BnPass::Eval, BnPass::Backward] {
            v.push(Case::BatchNorm { x: x.clone(), pass });
        }
    }
    v
}

/// Losses and heads: cross-entropy with hard labels (with and without label smoothing) and
/// soft targets, argmax and accuracy, linear forward and backward; batch 1, 2 classes, many.
pub fn loss_cases(large: bool) -> Vec<Case> {
    let mut v = Vec::new();
    for (n, c) in [(1, 2), (7, 10), (64, 10), (5, 1000)] {
        v.push(Case::CrossEntropy { n, c, smoothing: 0.0, soft: false });
        v.push(Case::CrossEntropy { n, c, smoothing: 0.1, soft: false });
        v.push(Case::CrossEntropy { n, c, smoothing: 0.0, soft: true });
        v.push(Case::Argmax { n, c });
    }
    v.push(Case::CrossEntropy { n: 33, c: 10, smoothing: 0.2, soft: true });
    let mut lin = vec![(1, 1, 1), (3, 17, 5), (64, 1568, 128), (13, 128, 10)];
    if large {
        lin.push((256, 512, 257));
    }
    for (n, i, o) in lin {
        for backward in [false, true] {
            v.push(Case::Linear { n, i, o, backward });
        }
    }
    v
}

/// Everything `wgtrain verify` runs: every matmul variant, then the other ops.
pub fn suite(large: bool) -> Vec<Case> {
    let mut v: Vec<Case> = MatmulVariant::ALL.iter().flat_map(|&var| matmul_cases(var, large)).collect();
    v.extend(elementwise_cases(large));
    v.extend(optimizer_cases(large));
    v.extend(conv_cases(large));
    v.extend(channel_cases(large));
    v.extend(pool_cases(large));
    v.extend(batch_norm_cases(large));
    v.extend(loss_cases(large));
    v
}
