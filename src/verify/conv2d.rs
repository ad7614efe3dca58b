//! Convolution cases and their runner: forward, backward-data and backward-filter
//! (GPU: shaders/im2col.wgsl, col2im.wgsl and the matmuls between them; CPU twin: the direct
//! loops of src/cpu/conv2d.rs). Each output is a dot product, so `Tolerance::dot` of its length.

use super::{Report, Tolerance, VerifyTarget};
use crate::ops::{conv2d_dims, Conv2dSpec};
use crate::rng::Rng;
use crate::tensor::ShapeFmt;
use crate::{Cpu, Result};

/// Which result of a convolution a case checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPass {
    /// y from x, w (and the bias).
    Forward,
    /// dx from dy and w.
    BackwardData,
    /// dw from x and dy.
    BackwardFilter,
}

/// x [N, C, H, W] convolved with k filters of `kernel` size.
#[derive(Clone, Debug)]
pub struct Case {
    /// Input shape [N, C, H, W].
    pub x: [usize; 4],
    /// Output channels K.
    pub k: usize,
    /// Kernel size [KH, KW].
    pub kernel: [usize; 2],
    /// Stride, padding, dilation, groups.
    pub spec: Conv2dSpec,
    /// Forward only: add a bias.
    pub bias: bool,
    /// Which pass.
    pub pass: ConvPass,
}

impl Case {
    /// e.g. `conv2d 3x3 s[2,2] p[1,1] +bias`: the options that differ from the defaults.
    pub fn op(&self) -> String {
        let name = match self.pass {
            ConvPass::Forward => "conv2d",
            ConvPass::BackwardData => "conv2d_backward_data",
            ConvPass::BackwardFilter => "conv2d_backward_filter",
        };
        let spec = &self.spec;
        let mut s = format!("{name} {}x{}", self.kernel[0], self.kernel[1]);
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
        if self.bias && self.pass == ConvPass::Forward {
            s += " +bias";
        }
        s.replace(", ", ",")
    }

    /// e.g. "[2, 3, 7, 9] -> 5": x and the output channels.
    pub fn shape(&self) -> String {
        format!("{} -> {}", ShapeFmt(&self.x), self.k)
    }

    /// The filter's shape [K, C/groups, KH, KW].
    pub fn w_shape(&self) -> [usize; 4] {
        [self.k, self.x[1] / self.spec.groups.max(1), self.kernel[0], self.kernel[1]]
    }
}

/// Convolutions with awkward shapes: batch 1, odd sizes, stride 2 on odd sizes, channels that
/// are not multiples of any tile, 7x7 stride 2 pad 3, dilation, groups up to depthwise, the
/// direct 1x1 path (with and without groups, per image and channel-major), a 1x1 that needs
/// im2col, asymmetric options;
/// each in all three passes.
pub fn cases(large: bool) -> Vec<super::Case> {
    let spec = |s: [usize; 2], p: [usize; 2], d: [usize; 2], g: usize| Conv2dSpec { stride: s, padding: p, dilation: d, groups: g };
    let mut shapes = vec![
        ([1, 1, 5, 5], 1, [3, 3], spec([1, 1], [1, 1], [1, 1], 1)),
        ([2, 3, 7, 9], 5, [3, 3], spec([2, 2], [1, 1], [1, 1], 1)),
        ([3, 4, 11, 11], 6, [7, 7], spec([2, 2], [3, 3], [1, 1], 1)),
        ([2, 6, 9, 9], 6, [3, 3], spec([1, 1], [1, 1], [1, 1], 6)),
        ([2, 4, 8, 8], 6, [3, 3], spec([1, 1], [2, 2], [2, 2], 2)),
        ([3, 8, 7, 7], 12, [1, 1], spec([1, 1], [0, 0], [1, 1], 1)),
        // 1x1 channel-major (N*P a multiple of 4): rows of 7 and 3; 5 output channels.
        ([4, 8, 7, 7], 12, [1, 1], spec([1, 1], [0, 0], [1, 1], 1)),
        ([4, 12, 3, 3], 5, [1, 1], spec([1, 1], [0, 0], [1, 1], 1)),
        ([2, 8, 9, 9], 4, [1, 1], spec([2, 2], [0, 0], [1, 1], 1)),
        ([2, 16, 10, 10], 8, [1, 1], spec([1, 1], [0, 0], [1, 1], 2)),
        ([4, 32, 8, 8], 32, [3, 3], spec([1, 1], [1, 1], [1, 1], 1)),
        ([1, 5, 13, 6], 7, [5, 3], spec([2, 1], [2, 0], [1, 1], 1)),
        // Stride 1 on rows of whole vec4s (im2col_s1_vec4; kernels wider than 4, so not the
        // implicit GEMM below): taps 2 left and right with padding rows in the patch (75 ->
        // 76), with 16 channels (dx as a convolution of dy; with fewer, col2im), a valid 5x5
        // whose dy is narrower than dx, an asymmetric kernel, and one quad a row with a patch
        // of dy of 27 values.
        ([2, 3, 12, 8], 4, [5, 5], spec([1, 1], [2, 2], [1, 1], 1)),
        ([2, 16, 6, 8], 4, [5, 5], spec([1, 1], [2, 2], [1, 1], 1)),
        ([3, 2, 9, 16], 4, [5, 5], spec([1, 1], [0, 0], [1, 1], 1)),
        ([2, 3, 6, 8], 4, [3, 5], spec([1, 1], [1, 2], [1, 1], 1)),
        ([2, 5, 4, 4], 3, [3, 3], spec([1, 1], [1, 1], [1, 1], 1)),
        // Kernels at most 4 wide of those run as implicit GEMMs (conv2d_s1_subgroup, where the
        // product would run on v5): 5 rows tall, and 1 wide (the other 3 taps of A's vec4s
        // are zeros).
        ([2, 3, 8, 8], 4, [5, 3], spec([1, 1], [2, 1], [1, 1], 1)),
        ([2, 4, 6, 8], 20, [3, 1], spec([1, 1], [1, 0], [1, 1], 1)),
        // 3x3 on rows that are not whole vec4s (forward unfolded; the backward passes as
        // implicit GEMMs on copies padded to whole vec4s where those run, else unfolded): 14
        // wide with 20 output channels, and a valid 3x3 from 10 to 8 wide.
        ([2, 6, 7, 14], 20, [3, 3], spec([1, 1], [1, 1], [1, 1], 1)),
        ([2, 3, 9, 10], 5, [3, 3], spec([1, 1], [0, 0], [1, 1], 1)),
        // Output rows as wide as the source's, not whole vec4s, on planes that are (unfolded as
        // shifted planes, im2col_same_vec4): a 3x3 on 14-wide rows, a 5x5 on 10-wide ones (its
        // filter gradient unfolded too, rows over the images), rows of 6 with no padding above
        // and below (taller source than output), and two groups with a padded patch (18 -> 20).
        ([3, 5, 6, 14], 7, [3, 3], spec([1, 1], [1, 1], [1, 1], 1)),
        ([2, 3, 6, 10], 4, [5, 5], spec([1, 1], [2, 2], [1, 1], 1)),
        ([2, 3, 8, 6], 4, [3, 3], spec([1, 1], [0, 1], [1, 1], 1)),
        ([2, 4, 6, 6], 6, [3, 3], spec([1, 1], [1, 1], [1, 1], 2)),
        // 1x1 on rows of whole vec4s: the plain product forward, the quads' unfolding for dw.
        ([2, 8, 4, 8], 12, [1, 1], spec([1, 1], [0, 0], [1, 1], 1)),
    ];
    if large {
        shapes.push(([8, 16, 32, 32], 16, [3, 3], spec([1, 1], [1, 1], [1, 1], 1)));
    }
    let mut v = Vec::new();
    for (x, k, kernel, spec) in shapes {
        for pass in [ConvPass::Forward, ConvPass::BackwardData, ConvPass::BackwardFilter] {
            v.push(super::Case::Conv2d(Case { x, k, kernel, spec, bias: x[0] != 3, pass }));
        }
    }
    v
}

/// Random x, w, dy and bias for one case.
struct Inputs {
    y_shape: [usize; 4],
    x: Vec<f32>,
    w: Vec<f32>,
    dy: Vec<f32>,
    b: Vec<f32>,
}

/// The case's pass on one backend.
fn compute<X: VerifyTarget>(be: &X, case: &Case, i: &Inputs) -> Result<Vec<f32>> {
    let (xs, ws, ys) = (&case.x, &case.w_shape(), &i.y_shape);
    let out = match case.pass {
        ConvPass::Forward => {
            let mut y = be.zeros(ys)?;
            let b = be.upload(&[case.k], &i.b)?;
            be.conv2d(&be.upload(xs, &i.x)?, &be.upload(ws, &i.w)?, case.bias.then_some(&b), &mut y, case.spec)?;
            y
        }
        ConvPass::BackwardData => {
            let mut dx = be.zeros(xs)?;
            be.conv2d_backward_data(&be.upload(ys, &i.dy)?, &be.upload(ws, &i.w)?, &mut dx, case.spec)?;
            dx
        }
        ConvPass::BackwardFilter => {
            let mut dw = be.zeros(ws)?;
            be.conv2d_backward_filter(&be.upload(xs, &i.x)?, &be.upload(ys, &i.dy)?, &mut dw, case.spec)?;
            dw
        }
    };
    be.download(&out)
}

/// Runs `case` on `be` and on the CPU reference with inputs drawn from `seed`.
pub fn run_case<B: VerifyTarget>(be: &B, case: &Case, seed: u64) -> Result<Report> {
    let mut rng = Rng::new(seed);
    let d = conv2d_dims("conv2d", &case.x, &case.w_shape(), case.spec)?;
    let y_shape = d.y_shape();
    let x = rng.vec(case.x.iter().product(), -1.0, 1.0);
    let w = rng.vec(case.w_shape().iter().product(), -1.0, 1.0);
    let dy = rng.vec(y_shape.iter().product(), -1.0, 1.0);
    let b = rng.vec(case.k, -1.0, 1.0);
    let inputs = Inputs { y_shape, x, w, dy, b };
    // The length of each output's dot product: a patch (+ the bias), the filters an input
    // pixel meets, every output position of every image.
    let terms = match case.pass {
        ConvPass::Forward => d.patch() + 1,
        ConvPass::BackwardData => d.kg() * d.kh * d.kw,
        ConvPass::BackwardFilter => d.n * d.p(),
    };
    let got = compute(be, case, &inputs)?;
    let want = compute(&Cpu, case, &inputs)?;
    Ok(Report::new(be, case.op(), case.shape(), Tolerance::dot(terms, 1.0), &got, &want))
}
