//! Pooling cases and their runner: max, average and global average pooling, forward and
//! backward (shaders/pool.wgsl; CPU twin src/cpu/pool.rs).

use super::{Report, Tolerance, VerifyTarget};
use crate::backend::Backend;
use crate::ops::{pool_dims, PoolSpec};
use crate::rng::Rng;
use crate::tensor::ShapeFmt;
use crate::{Cpu, Result};

/// Which pooling a case checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// Max pooling (forward: y and the argmax idx).
    Max,
    /// Average pooling.
    Avg,
    /// Global average pooling: each H x W plane to one value.
    GlobalAvg,
}

/// One pooling of x [N, C, H, W], forward or backward.
#[derive(Clone, Debug)]
pub struct Case {
    /// Input shape [N, C, H, W].
    pub x: [usize; 4],
    /// Unused by global average pooling.
    pub spec: PoolSpec,
    /// Which pooling.
    pub kind: PoolKind,
    /// Check dx from dy instead of the forward.
    pub backward: bool,
}

impl Case {
    /// e.g. `avg_pool2d_backward k[3,3] s[2,2] p[1,1] excl-pad`.
    pub fn op(&self) -> String {
        let name = match self.kind {
            PoolKind::Max => "max_pool2d",
            PoolKind::Avg => "avg_pool2d",
            PoolKind::GlobalAvg => "global_avg_pool",
        };
        let spec = &self.spec;
        let mut s = format!("{name}{}", if self.backward { "_backward" } else { "" });
        if self.kind != PoolKind::GlobalAvg {
            s += &format!(" k{:?} s{:?} p{:?}", spec.kernel, spec.stride, spec.padding).replace(", ", ",");
            if self.kind == PoolKind::Avg && !spec.count_include_pad {
                s += " excl-pad";
            }
        }
        s
    }

    /// The sizes, for reports.
    pub fn shape(&self) -> String {
        ShapeFmt(&self.x).to_string()
    }

    fn y_shape(&self) -> Result<Vec<usize>> {
        Ok(match self.kind {
            PoolKind::GlobalAvg => vec![self.x[0], self.x[1], 1, 1],
            _ => pool_dims("pool", &self.x, self.spec)?.y_shape().to_vec(),
        })
    }
}

/// Pooling: 2x2/2 (vec4 and scalar kernels), 3x3/2 pad 1 on odd sizes, overlapping windows, rectangular, batch 1,
/// count_include_pad both ways; global average pooling; forward and backward of each.
pub fn cases(large: bool) -> Vec<super::Case> {
    let spec =
        |k: [usize; 2], s: [usize; 2], p: [usize; 2], inc: bool| PoolSpec { kernel: k, stride: s, padding: p, count_include_pad: inc };
    let mut list = vec![
        ([2, 3, 8, 8], spec([2, 2], [2, 2], [0, 0], true)),
        // Tiling windows that leave an edge uncovered (7 and 9 are odd).
        ([2, 3, 7, 9], spec([2, 2], [2, 2], [0, 0], true)),
        // The vec4 kernels' case (2x2/2, widths of a multiple of 4): the smallest, and an odd
        // height whose last row no window covers.
        ([1, 1, 2, 4], spec([2, 2], [2, 2], [0, 0], true)),
        ([3, 5, 7, 12], spec([2, 2], [2, 2], [0, 0], true)),
        // The vec2 kernels' (even widths that are not a multiple of 4): one window a row, and
        // 14 wide with an odd height.
        ([2, 3, 2, 2], spec([2, 2], [2, 2], [0, 0], true)),
        ([3, 5, 9, 14], spec([2, 2], [2, 2], [0, 0], true)),
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
            for kind in [PoolKind::Max, PoolKind::Avg] {
                v.push(super::Case::Pool(Case { x, spec: s, kind, backward }));
            }
        }
    }
    for x in [[1, 1, 1, 1], [2, 3, 7, 7], [4, 64, 8, 8]] {
        for backward in [false, true] {
            v.push(super::Case::Pool(Case { x, spec: PoolSpec::square(1), kind: PoolKind::GlobalAvg, backward }));
        }
    }
    v
}

/// The case on one backend. Max pooling's backward routes dy through `idx`, the reference's
/// argmax, so both sides scatter to the same places (the forward checks idx itself).
fn compute<X: VerifyTarget>(be: &X, case: &Case, x: &[f32], dy: &[f32], idx: &[f32]) -> Result<Vec<f32>> {
    let (xs, ys, spec) = (&case.x, &case.y_shape()?, case.spec);
    Ok(match (case.kind, case.backward) {
        (PoolKind::Max, false) => {
            let (mut y, mut i) = (be.zeros(ys)?, be.zeros(ys)?);
            be.max_pool2d(&be.upload(xs, x)?, &mut y, &mut i, spec)?;
            [be.download(&y)?, be.download(&i)?].concat()
        }
        (PoolKind::Max, true) => {
            let mut dx = be.zeros(xs)?;
            be.max_pool2d_backward(&be.upload(ys, dy)?, &be.upload(ys, idx)?, &mut dx, spec)?;
            be.download(&dx)?
        }
        (PoolKind::Avg, false) => {
            let mut y = be.zeros(ys)?;
            be.avg_pool2d(&be.upload(xs, x)?, &mut y, spec)?;
            be.download(&y)?
        }
        (PoolKind::Avg, true) => {
            let mut dx = be.zeros(xs)?;
            be.avg_pool2d_backward(&be.upload(ys, dy)?, &mut dx, spec)?;
            be.download(&dx)?
        }
        (PoolKind::GlobalAvg, false) => {
            let mut y = be.zeros(ys)?;
            be.global_avg_pool(&be.upload(xs, x)?, &mut y)?;
            be.download(&y)?
        }
        (PoolKind::GlobalAvg, true) => {
            let mut dx = be.zeros(xs)?;
            be.global_avg_pool_backward(&be.upload(ys, dy)?, &mut dx)?;
            be.download(&dx)?
        }
    })
}

/// Runs `case` on `be` and on the CPU reference with inputs drawn from `seed`.
pub fn run_case<B: VerifyTarget>(be: &B, case: &Case, seed: u64) -> Result<Report> {
    let mut rng = Rng::new(seed);
    let x = rng.vec(case.x.iter().product(), -1.0, 1.0);
    let ys = case.y_shape()?;
    let dy = rng.vec(ys.iter().product(), -1.0, 1.0);
    let idx = if case.kind == PoolKind::Max && case.backward {
        let (mut y, mut idx) = (Cpu.zeros(&ys)?, Cpu.zeros(&ys)?);
        Cpu.max_pool2d(&Cpu.upload(&case.x, &x)?, &mut y, &mut idx, case.spec)?;
        idx.data().to_vec()
    } else {
        Vec::new()
    };
    // Max: a selection (the backward adds at most `window` values into one input); average:
    // a sum of `window` values and a division.
    let window = match case.kind {
        PoolKind::GlobalAvg => case.x[2] * case.x[3],
        _ => case.spec.kernel[0] * case.spec.kernel[1],
    };
    let tolerance = match (case.kind, case.backward) {
        (PoolKind::Max, false) | (PoolKind::GlobalAvg, true) => Tolerance::EXACT,
        _ => Tolerance::dot(window, 1.0),
    };
    let got = compute(be, case, &x, &dy, &idx)?;
    let want = compute(&Cpu, case, &x, &dy, &idx)?;
    Ok(Report::new(be, case.op(), case.shape(), tolerance, &got, &want))
}
