//! Per-channel cases and their runner: bias + activation, its backward, per-channel sums
//! (shaders/bias_act.wgsl, shaders/channel.wgsl; CPU twin src/cpu/channel.rs) and the 3-axis
//! permute between layouts and rows padded to whole vec4s and back (shaders/permute.wgsl; CPU
//! twin src/cpu/permute.rs).

use super::{Report, Tolerance, VerifyTarget};
use crate::ops::Activation;
use crate::rng::Rng;
use crate::tensor::ShapeFmt;
use crate::{Cpu, Result};

/// One per-channel op, a permute, or rows padded or cropped.
#[derive(Clone, Debug)]
pub enum Case {
    /// `y += bias[channel]`, then the activation, in place on y [N, C, ...].
    BiasAct {
        /// y's shape [N, C, ...].
        shape: Vec<usize>,
        /// The activation that follows the bias.
        act: Activation,
    },
    /// dx = dy * act'(y).
    ActBackward {
        /// The shape of y, dy and dx.
        shape: Vec<usize>,
        /// The activation differentiated.
        act: Activation,
    },
    /// `out[c]` = sum of channel c of x [N, C, ...].
    ChannelSum {
        /// x's shape [N, C, ...].
        shape: Vec<usize>,
    },
    /// x [d0, d1, d2] with its axes reordered to `order`.
    Permute {
        /// x's shape [d0, d1, d2].
        d: [usize; 3],
        /// The input axis written at each output position (`[0, 2, 1]` transposes the last two).
        order: [usize; 3],
    },
    /// x [rows, from] to [rows, to]: rows padded with zeros (to > from) or cropped (to < from),
    /// the wider side a whole number of vec4s (how the convolution pads rows that are not).
    ResizeRows {
        /// Rows.
        rows: usize,
        /// Values per row of x.
        from: usize,
        /// Values per row of the output.
        to: usize,
    },
}

impl Case {
    /// The op and its options, for reports.
    pub fn op(&self) -> String {
        match self {
            Case::BiasAct { act, .. } => format!("bias_act {act:?}"),
            Case::ActBackward { act, .. } => format!("act_backward {act:?}"),
            Case::ChannelSum { .. } => "channel_sum".into(),
            Case::Permute { order, .. } => format!("permute {order:?}"),
            Case::ResizeRows { from, to, .. } => format!("{} rows {from} -> {to}", if to > from { "pad" } else { "crop" }),
        }
    }

    /// The sizes, for reports.
    pub fn shape(&self) -> String {
        match self {
            Case::BiasAct { shape, .. } | Case::ActBackward { shape, .. } | Case::ChannelSum { shape } => ShapeFmt(shape).to_string(),
            Case::Permute { d, .. } => ShapeFmt(d).to_string(),
            Case::ResizeRows { rows, from, .. } => ShapeFmt(&[*rows, *from]).to_string(),
        }
    }
}

/// One channel and one value, [N, C] (also over more than one workgroup of columns) and [N, C, H, W] with odd sizes and channels that are
/// not a multiple of anything; planes of a multiple of 4 values (the reductions' vec4 form:
/// one vec4, and 17, a prime number of them); both activations; (large) many values per
/// channel.
pub fn cases(large: bool) -> Vec<super::Case> {
    let mut v = Vec::new();
    for shape in [vec![1, 1], vec![3, 7], vec![37, 130], vec![2, 5, 3, 3], vec![4, 33, 7, 9], vec![3, 5, 2, 2], vec![2, 7, 4, 17]] {
        for act in [Activation::Identity, Activation::Relu] {
            v.push(Case::BiasAct { shape: shape.clone(), act });
            v.push(Case::ActBackward { shape: shape.clone(), act });
        }
        v.push(Case::ChannelSum { shape });
    }
    if large {
        v.push(Case::ChannelSum { shape: vec![64, 3, 32, 32] });
    }
    v.extend(permute_cases());
    v.into_iter().map(super::Case::Channel).collect()
}

/// Permutes of every kind the convolution uses, from a single element up; rows shorter than 32
/// (the flat-index kernel; on CPU adapters, rows of 4 or more one per invocation) and longer
/// (the 3-D grid, with rows past a 64-wide workgroup; on CPU adapters, up to 63 one per
/// invocation).
fn permute_cases() -> Vec<Case> {
    [
        ([1, 1, 1], [0, 2, 1]),
        ([5, 3, 2], [2, 0, 1]),
        // The channel-major 1x1 convolution's swap: 66 rows of 49.
        ([6, 11, 49], [1, 0, 2]),
        ([3, 5, 7], [0, 2, 1]),
        ([4, 6, 13], [1, 0, 2]),
        ([2, 3, 4], [2, 1, 0]),
        ([3, 5, 37], [1, 0, 2]),
        ([2, 33, 40], [0, 2, 1]),
        ([5, 2, 97], [2, 0, 1]),
        ([1, 3, 131], [2, 1, 0]),
        // Rows of 36 and 68 values kept whole: the grid on vec4s (9 and 17 of them).
        ([3, 5, 36], [1, 0, 2]),
        ([2, 7, 68], [1, 0, 2]),
    ]
    .into_iter()
    .map(|(d, order)| Case::Permute { d, order })
    .chain(
        // One row of one value; 7 to 8 (one vec4); 14 to 16 over more rows than a workgroup
        // has invocations; 1 to 4 and 13 to 16 on a prime number of rows.
        [(1, 1, 4), (3, 7, 8), (131, 14, 16), (67, 1, 4), (5, 13, 16)].into_iter().flat_map(|(rows, short, long)| {
            [Case::ResizeRows { rows, from: short, to: long }, Case::ResizeRows { rows, from: long, to: short }]
        }),
    )
    .collect()
}

/// The case on one backend; `a` is y or x, `b` is the bias or dy.
fn compute<X: VerifyTarget>(x: &X, case: &Case, a: &[f32], b: &[f32]) -> Result<Vec<f32>> {
    let out = match case {
        Case::BiasAct { shape, act } => {
            let mut y = x.upload(shape, a)?;
            x.bias_act(&mut y, &x.upload(&[shape[1]], b)?, *act)?;
            y
        }
        Case::ActBackward { shape, act } => {
            let mut dx = x.zeros(shape)?;
            x.act_backward(&x.upload(shape, a)?, &x.upload(shape, b)?, &mut dx, *act)?;
            dx
        }
        Case::ChannelSum { shape } => {
            let mut out = x.zeros(&[shape[1]])?;
            x.channel_sum(&x.upload(shape, a)?, &mut out)?;
            out
        }
        Case::Permute { d, order } => {
            let mut out = x.zeros(&[a.len()])?;
            x.permute3(&x.upload(&[a.len()], a)?, *d, permute_strides(*d, *order), &mut out)?;
            out
        }
        Case::ResizeRows { rows, from, to } => {
            let mut out = x.zeros(&[rows * to])?;
            x.resize_rows(&x.upload(&[rows * from], a)?, [*rows, *from], *to, &mut out)?;
            out
        }
    };
    x.download(&out)
}

/// Output strides of each input axis when the axes are written in `order`.
fn permute_strides(d: [usize; 3], order: [usize; 3]) -> [usize; 3] {
    let out_dims = [d[order[0]], d[order[1]], d[order[2]]];
    let mut s = [0usize; 3];
    for (pos, &axis) in order.iter().enumerate() {
        s[axis] = out_dims[pos + 1..].iter().product();
    }
    s
}

/// Runs `case` on `be` and on the CPU reference with inputs drawn from `seed`.
pub fn run_case<B: VerifyTarget>(be: &B, case: &Case, seed: u64) -> Result<Report> {
    let mut rng = Rng::new(seed);
    let (shape, second): (Vec<usize>, usize) = match case {
        Case::BiasAct { shape, .. } => (shape.clone(), shape[1]),
        Case::ActBackward { shape, .. } => (shape.clone(), shape.iter().product()),
        Case::ChannelSum { shape } => (shape.clone(), 0),
        Case::Permute { d, .. } => (d.to_vec(), 0),
        Case::ResizeRows { rows, from, .. } => (vec![*rows, *from], 0),
    };
    let a = rng.vec(shape.iter().product(), -1.0, 1.0);
    let b = rng.vec(second, -1.0, 1.0);
    let tolerance = match case {
        Case::ChannelSum { shape } => {
            // One workgroup per channel: runs of N * ceil(P/256) values, then an 8-level tree;
            // the squares of values in [-1, 1] average 1/3.
            let per_channel = shape.iter().product::<usize>() / shape[1];
            let plane: usize = shape[2..].iter().product();
            Tolerance::sum(shape[0] * plane.div_ceil(256) + 8, per_channel as f64 / 3.0)
        }
        _ => Tolerance::EXACT,
    };
    let got = compute(be, case, &a, &b)?;
    let want = compute(&Cpu, case, &a, &b)?;
    Ok(Report::new(be, case.op(), case.shape(), tolerance, &got, &want))
}
