//! The kernels: WGSL sources embedded at build time, the parameter structs that mirror their
//! `struct ...Params`, their binding layouts, and the cache that compiles each pipeline once.

use std::borrow::Cow;
use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::context::GpuContext;
use crate::Result;

/// A WGSL file of shaders/.
pub struct Shader {
    /// File stem (`matmul_v2_tiled`), the name a [`Kernel`] refers to it by.
    pub name: &'static str,
    /// The WGSL text, embedded at build time.
    pub source: &'static str,
}

macro_rules! shaders {
    ($($name:literal),* $(,)?) => {
        /// Every shader in shaders/, by file stem.
        pub const SHADERS: &[Shader] = &[
            $(Shader { name: $name, source: include_str!(concat!("../../shaders/", $name, ".wgsl")) }),*
        ];
    };
}

shaders![
    "matmul_v1_naive",
    "matmul_v2_tiled",
    "matmul_v3_regblock",
    "matmul_v4_lanes",
    "matmul_v5_subgroup",
    "elementwise",
    "relu",
    "reduce",
    "optimizer",
    "clip",
    "dropout",
    "im2col",
    "col2im",
    "conv2d_s1_subgroup",
    "permute",
    "bias_act",
    "channel",
    "pool",
    "bn_stats",
    "batch_norm",
    "batch_norm_eval_backward",
    "loss"
];

/// The WGSL text of the shader with file stem `name`, if there is one.
pub fn shader_source(name: &str) -> Option<&'static str> {
    SHADERS.iter().find(|s| s.name == name).map(|s| s.source)
}

/// A kernel's uniform parameters: a Pod struct whose fields match, by name and byte offset,
/// the WGSL struct of the same name (checked by a test through naga's reflection).
pub trait KernelParams: bytemuck::Pod {
    /// Name of the WGSL struct mirrored (the Rust struct's name).
    const WGSL_NAME: &'static str;
    /// (field name, byte offset) of every field, in declaration order.
    fn fields() -> Vec<(&'static str, usize)>;
}

macro_rules! kernel_params {
    ($(#[$meta:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        // The fields mirror the WGSL struct of the same name, field by field (names, types and
        // offsets are checked by kernels-tests/shaders.rs); the shader documents them.
        #[allow(missing_docs)]
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name { $(pub $field: $ty),* }
        impl KernelParams for $name {
            const WGSL_NAME: &'static str = stringify!($name);
            fn fields() -> Vec<(&'static str, usize)> {
                vec![$((stringify!($field), std::mem::offset_of!($name, $field))),*]
            }
        }
    };
}

kernel_params!(
    /// Parameters of shaders/matmul_v*.wgsl: C = alpha * op(A) @ op(B) + beta * C, sizes M, N, K,
    /// a batch of matrices by strides, and element offsets of A, B and C in their buffers.
    MatmulParams {
        m: u32, n: u32, k: u32, batch_base: u32,
        m_base: u32, n_base: u32, stride_a: u32, stride_b: u32,
        stride_c: u32, alpha: f32, beta: f32, a_off: u32,
        b_off: u32, c_off: u32, _pad0: u32, _pad1: u32, _pad2: u32, _pad3: u32,
    }
);
kernel_params!(
    /// Parameters of shaders/conv2d_s1_subgroup.wgsl: x [N, C, H, W] convolved to y [N, K, OH, OW]
    /// with a kernel KH x KW, padding, mirrored taps (`flip`), element offsets of x and y, the
    /// first image of the dispatch, and whether the filter gradient adds to y (`accumulate`).
    DirectConvParams {
        n: u32, c: u32, h: u32, w: u32, k: u32, kh: u32, kw: u32, oh: u32,
        ow: u32, ph: u32, pw: u32, flip: u32, x_off: u32, y_off: u32, batch_base: u32, accumulate: u32,
    }
);
kernel_params!(
    /// Parameters of a flat element-wise dispatch (shaders/elementwise.wgsl, relu.wgsl, clip.wgsl):
    /// element count, grid row stride, and one scalar `alpha` (the factor of `scale`, clip's max norm).
    ElementwiseParams { n: u32, row_stride: u32, alpha: f32, _pad: u32 }
);
kernel_params!(
    /// Parameters of shaders/optimizer.wgsl: the [`Optimizer`](crate::ops::Optimizer)'s settings and
    /// this step's [`StepScalars`](crate::ops::StepScalars), for one fused update of the arena.
    OptimizerParams {
        n: u32, row_stride: u32, first_step: u32, nesterov: u32,
        lr: f32, weight_decay: f32, momentum: f32, dampening: f32,
        beta1: f32, beta2: f32, eps: f32, bias_correction1: f32,
        bias_correction2_sqrt: f32, decay: f32, adagrad_lr: f32, decoupled: u32,
    }
);
kernel_params!(
    /// Parameters of shaders/dropout.wgsl: keep threshold (p * 2^32), scale 1 / (1 - p), the two
    /// mask keys of (seed, step), and the first element of this dispatch.
    DropoutParams { n: u32, row_stride: u32, threshold: u32, scale: f32, key1: u32, key2: u32, base: u32, _pad: u32 }
);
kernel_params!(
    /// Parameters of shaders/im2col.wgsl and col2im.wgsl: the convolution's sizes (x [N, C, H, W],
    /// kernel KH x KW, output OH x OW), stride, padding, dilation, groups, the padded patch rows,
    /// and im2col_s1_vec4's mirrored taps and column layout.
    ConvParams {
        n: u32, c: u32, h: u32, w: u32, kh: u32, kw: u32, oh: u32, ow: u32, sh: u32, sw: u32,
        ph: u32, pw: u32, dh: u32, dw: u32, groups: u32, total: u32, row_stride: u32, x_off: u32, patch_pad: u32, flip: u32,
        rows_outer: u32, _pad1: u32, _pad2: u32, _pad3: u32,
    }
);
kernel_params!(
    /// Parameters of shaders/permute.wgsl: a [d0, d1, d2] index space, output strides `s*`, input
    /// strides `t*` and the input's first element.
    PermuteParams { d0: u32, d1: u32, d2: u32, s0: u32, s1: u32, s2: u32, total: u32, row_stride: u32, in_off: u32, t0: u32, t1: u32, t2: u32 }
);
kernel_params!(
    /// Parameters of shaders/bias_act.wgsl: a tensor seen as [N, C, P] and the activation
    /// (0 identity, 1 ReLU).
    BiasActParams { total: u32, row_stride: u32, c: u32, p: u32, act: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
);
kernel_params!(
    /// Parameters of shaders/channel.wgsl: a tensor seen as [N, C, P] and the factor applied to
    /// each per-channel sum.
    ChannelParams { n: u32, c: u32, p: u32, scale: f32 }
);
kernel_params!(
    /// Parameters of shaders/pool.wgsl: N*C planes of H x W pooled to OH x OW, window, stride,
    /// padding, and whether average pooling counts the padding.
    PoolParams {
        planes: u32, h: u32, w: u32, oh: u32, ow: u32, kh: u32, kw: u32, sh: u32,
        sw: u32, ph: u32, pw: u32, count_include_pad: u32, total: u32, row_stride: u32, _pad0: u32, _pad1: u32,
    }
);
kernel_params!(
    /// Parameters of shaders/batch_norm.wgsl and bn_stats.wgsl: a tensor seen as [N, C, P], the
    /// count N*P per channel, running-statistics momentum and eps, and the activation the apply
    /// passes end with (0 identity, 1 ReLU).
    BnParams {
        n: u32, c: u32, p: u32, total: u32, row_stride: u32, cnt: f32, momentum: f32, eps: f32,
        act: u32, _pad0: u32, _pad1: u32, _pad2: u32,
    }
);
kernel_params!(
    /// Parameters of shaders/loss.wgsl: logits [N, C], label smoothing, and 1/N (mean reduction).
    LossParams { n: u32, c: u32, smoothing: f32, inv_n: f32 }
);
kernel_params!(
    /// Parameters of shaders/reduce.wgsl: element count, elements per workgroup in the first pass,
    /// and the number of workgroups (partial sums).
    ReduceParams { n: u32, chunk: u32, groups: u32, _pad: u32 }
);

/// (struct name, its fields) of every parameter struct, for the agreement test.
pub fn all_params() -> Vec<(&'static str, Vec<(&'static str, usize)>, usize)> {
    fn one<P: KernelParams>() -> (&'static str, Vec<(&'static str, usize)>, usize) {
        (P::WGSL_NAME, P::fields(), std::mem::size_of::<P>())
    }
    vec![
        one::<MatmulParams>(),
        one::<ElementwiseParams>(),
        one::<ReduceParams>(),
        one::<OptimizerParams>(),
        one::<DropoutParams>(),
        one::<ConvParams>(),
        one::<DirectConvParams>(),
        one::<PermuteParams>(),
        one::<BiasActParams>(),
        one::<ChannelParams>(),
        one::<PoolParams>(),
        one::<BnParams>(),
        one::<LossParams>(),
    ]
}

/// The `act` parameter of the kernels that end with an activation (bias_act.wgsl,
/// batch_norm.wgsl): 0 identity, 1 ReLU.
pub fn act_code(act: crate::ops::Activation) -> u32 {
    match act {
        crate::ops::Activation::Identity => 0,
        crate::ops::Activation::Relu => 1,
    }
}

/// Storage binding access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `var<storage, read>`: the kernel only reads it.
    Read,
    /// `var<storage, read_write>`: the kernel writes it.
    ReadWrite,
}

/// An entry point and its bindings. Binding 0 is always the `var<uniform> p` parameters
/// (bound with a dynamic offset into the per-submission parameter arena); `storage` lists
/// the storage buffers by binding number.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    /// The file stem of its shader in [`SHADERS`].
    pub shader: &'static str,
    /// The `@compute` function's name.
    pub entry: &'static str,
    /// (binding number, access) of each storage buffer, in the order buffers are passed.
    pub storage: &'static [(u32, Access)],
}

use Access::{Read, ReadWrite};
const IN2_OUT: &[(u32, Access)] = &[(1, Read), (2, Read), (3, ReadWrite)];
const IN1_OUT: &[(u32, Access)] = &[(1, Read), (3, ReadWrite)];

/// Matmul, one invocation per output element: the baseline.
pub const MATMUL_V1: Kernel = Kernel { shader: "matmul_v1_naive", entry: "main", storage: IN2_OUT };
/// Matmul tiled through workgroup memory (64x64 per workgroup): for discrete GPUs.
pub const MATMUL_V2: Kernel = Kernel { shader: "matmul_v2_tiled", entry: "main", storage: IN2_OUT };
/// Matmul by register blocks without workgroup memory or barriers: for CPU-type adapters.
pub const MATMUL_V3: Kernel = Kernel { shader: "matmul_v3_regblock", entry: "main", storage: IN2_OUT };
/// Matmul laid out for SIMD-lane invocations (llvmpipe), vec4 loads, LANES chosen by the host.
pub const MATMUL_V4: Kernel = Kernel { shader: "matmul_v4_lanes", entry: "main", storage: IN2_OUT };
/// v4's layout with A's rows shared through subgroup broadcasts (needs subgroups of 8 or more).
pub const MATMUL_V5: Kernel = Kernel { shader: "matmul_v5_subgroup", entry: "main", storage: IN2_OUT };
/// c = a + b, element-wise.
pub const ADD: Kernel = Kernel { shader: "elementwise", entry: "add", storage: IN2_OUT };
/// c = max(a + b, 0), element-wise (a residual sum with its ReLU fused).
pub const ADD_RELU: Kernel = Kernel { shader: "elementwise", entry: "add_relu", storage: IN2_OUT };
/// [`ADD`] on vec4s.
pub const ADD_VEC4: Kernel = Kernel { shader: "elementwise", entry: "add_vec4", storage: &[(4, Read), (5, Read), (6, ReadWrite)] };
/// [`ADD_RELU`] on vec4s.
pub const ADD_RELU_VEC4: Kernel =
    Kernel { shader: "elementwise", entry: "add_relu_vec4", storage: &[(4, Read), (5, Read), (6, ReadWrite)] };
/// c = a * b, element-wise.
pub const MUL: Kernel = Kernel { shader: "elementwise", entry: "mul", storage: IN2_OUT };
/// out = alpha * a, element-wise.
pub const SCALE: Kernel = Kernel { shader: "elementwise", entry: "scale", storage: IN1_OUT };
/// y = max(x, 0).
pub const RELU_FORWARD: Kernel = Kernel { shader: "relu", entry: "relu_forward", storage: IN1_OUT };
/// `dx = dy * [x > 0]`.
pub const RELU_BACKWARD: Kernel = Kernel { shader: "relu", entry: "relu_backward", storage: IN2_OUT };
/// [`RELU_FORWARD`] on vec4s (tensors of a multiple of 4 values).
pub const RELU_FORWARD_VEC4: Kernel = Kernel { shader: "relu", entry: "relu_forward_vec4", storage: &[(4, Read), (6, ReadWrite)] };
/// [`RELU_BACKWARD`] on vec4s.
pub const RELU_BACKWARD_VEC4: Kernel =
    Kernel { shader: "relu", entry: "relu_backward_vec4", storage: &[(4, Read), (5, Read), (6, ReadWrite)] };
/// y = max(y, 0) in place (a ReLU fused into the node before it).
pub const RELU_IN_PLACE: Kernel = Kernel { shader: "relu", entry: "relu_in_place", storage: &[(3, ReadWrite)] };
/// `dy = dy * [y > 0]` in place, y the rectified output (a fused ReLU's backward).
pub const RELU_BACKWARD_IN_PLACE: Kernel =
    Kernel { shader: "relu", entry: "relu_backward_in_place", storage: &[(1, Read), (3, ReadWrite)] };
/// [`RELU_IN_PLACE`] on vec4s.
pub const RELU_IN_PLACE_VEC4: Kernel = Kernel { shader: "relu", entry: "relu_in_place_vec4", storage: &[(6, ReadWrite)] };
/// [`RELU_BACKWARD_IN_PLACE`] on vec4s.
pub const RELU_BACKWARD_IN_PLACE_VEC4: Kernel =
    Kernel { shader: "relu", entry: "relu_backward_in_place_vec4", storage: &[(4, Read), (6, ReadWrite)] };
/// Sum of a flat tensor, one pass: partial sums per workgroup (or the final sum of the partials).
pub const SUM: Kernel = Kernel { shader: "reduce", entry: "sum", storage: IN1_OUT };
/// Image patches to columns, col [N, groups * R, OH*OW]: the forward convolution's GEMM operand;
/// with `rows_outer` [groups * R, N, OH*OW], the backward-filter GEMM's (B transposed).
pub const IM2COL: Kernel = Kernel { shader: "im2col", entry: "im2col", storage: IN1_OUT };
/// [`IM2COL`] writing vec4s (rows of a multiple of 4 positions).
pub const IM2COL_VEC4: Kernel = Kernel { shader: "im2col", entry: "im2col_vec4", storage: &[(1, Read), (4, ReadWrite)] };
/// [`IM2COL`] for stride 1 and dilation 1 on rows of whole vec4s, one invocation per (image,
/// channel, output row, quad) writing all its taps from aligned vec4 loads; with `flip` the
/// columns of the backward-data convolution (taps mirrored, read from dy), with `rows_outer`
/// laid out [rows, N, OH*OW] for the backward-filter product.
pub const IM2COL_S1_VEC4: Kernel = Kernel { shader: "im2col", entry: "im2col_s1_vec4", storage: &[(5, Read), (4, ReadWrite)] };
/// [`IM2COL`] for stride 1 and dilation 1 where the output rows are as wide as the source's
/// but not whole vec4s and the planes are: each column row is the source plane shifted, cut
/// from two aligned vec4 loads per vec4 written and masked by counters.
pub const IM2COL_SAME_VEC4: Kernel = Kernel { shader: "im2col", entry: "im2col_same_vec4", storage: &[(5, Read), (4, ReadWrite)] };
/// A stride-1 convolution as an implicit GEMM: v5's product with the columns cut from x in
/// registers (kernels at most 4 wide, rows of whole vec4s, subgroups of 8).
pub const CONV2D_S1_SUBGROUP: Kernel = Kernel { shader: "conv2d_s1_subgroup", entry: "main", storage: IN2_OUT };
/// The filter gradient of [`CONV2D_S1_SUBGROUP`]'s convolutions, dy @ colsᵀ with the columns
/// made in registers, into [K, C, KH, 4] (CPU adapters: few workgroups with long sums).
pub const CONV2D_S1_SUBGROUP_FILTER: Kernel = Kernel { shader: "conv2d_s1_subgroup", entry: "backward_filter", storage: IN2_OUT };
/// Column gradients folded back onto dx (the adjoint of im2col), as a gather.
pub const COL2IM: Kernel = Kernel { shader: "col2im", entry: "col2im", storage: IN1_OUT };
/// Strided copy of a [d0, d1, d2] index space: transposes, axis swaps, row padding or cropping.
pub const PERMUTE3: Kernel = Kernel { shader: "permute", entry: "permute3", storage: IN1_OUT };
/// [`PERMUTE3`] on a grid of (i2, i1, i0): no division per element.
pub const PERMUTE3_GRID: Kernel = Kernel { shader: "permute", entry: "permute3_grid", storage: IN1_OUT };
/// [`PERMUTE3`] with one invocation per row of d2 values (CPU adapters, short rows).
pub const PERMUTE3_ROWS: Kernel = Kernel { shader: "permute", entry: "permute3_rows", storage: IN1_OUT };
/// [`PERMUTE3_GRID`] on vec4s (rows contiguous on both sides, sizes in vec4s).
pub const PERMUTE3_GRID_VEC4: Kernel = Kernel { shader: "permute", entry: "permute3_grid_vec4", storage: &[(4, Read), (5, ReadWrite)] };
/// Rows padded with zeros to whole vec4s, one invocation per row.
pub const PAD_ROWS_VEC4: Kernel = Kernel { shader: "permute", entry: "pad_rows_vec4", storage: &[(1, Read), (5, ReadWrite)] };
/// Rows of whole vec4s cropped to their first values, one invocation per row.
pub const CROP_ROWS_VEC4: Kernel = Kernel { shader: "permute", entry: "crop_rows_vec4", storage: &[(4, Read), (3, ReadWrite)] };
/// `y = act(y + bias[c])` in place over [N, C, P].
pub const BIAS_ACT: Kernel = Kernel { shader: "bias_act", entry: "bias_act", storage: IN1_OUT };
/// [`BIAS_ACT`] with one plane per invocation (CPU adapters: no division per element).
pub const BIAS_ACT_ROWS: Kernel = Kernel { shader: "bias_act", entry: "bias_act_rows", storage: IN1_OUT };
/// [`BIAS_ACT_ROWS`] on vec4s (planes of a multiple of 4 values).
pub const BIAS_ACT_ROWS_VEC4: Kernel = Kernel { shader: "bias_act", entry: "bias_act_rows_vec4", storage: &[(1, Read), (4, ReadWrite)] };
/// dz = dy * act'(z), read off the activated output y.
pub const ACT_BACKWARD: Kernel = Kernel { shader: "bias_act", entry: "act_backward", storage: IN2_OUT };
/// `out[c] = scale * sum` of channel c of [N, C, P].
pub const CHANNEL_SUM: Kernel = Kernel { shader: "channel", entry: "channel_sum", storage: IN1_OUT };
/// [`CHANNEL_SUM`] over planes of one value: one invocation per channel.
pub const CHANNEL_SUM_COLUMNS: Kernel = Kernel { shader: "channel", entry: "channel_sum_columns", storage: IN1_OUT };
/// The form of a per-channel reduction for planes of one value ([N, C]), where it has one: one
/// invocation per channel instead of a workgroup with one busy invocation.
pub fn columns_form(kernel: &Kernel) -> Option<&'static Kernel> {
    (kernel.shader == CHANNEL_SUM.shader && kernel.entry == CHANNEL_SUM.entry).then_some(&CHANNEL_SUM_COLUMNS)
}
/// `out[c] = scale * sum (a - m[c])^2` (batch norm's variance).
pub const CHANNEL_SUM_SQ_DEV: Kernel =
    Kernel { shader: "channel", entry: "channel_sum_sq_dev", storage: &[(1, Read), (3, ReadWrite), (4, Read)] };
/// The vec4 form of `kernel`, where it has one: the same op reading and writing vec4s, a
/// quarter of the storage instructions (each a loop over SIMD lanes on CPU adapters such as
/// lavapipe). Its caller checks that the rows it runs over hold a multiple of 4 values.
pub fn vec4_form(kernel: &Kernel) -> Option<&'static Kernel> {
    const FORMS: [(&Kernel, &Kernel); 10] = [
        (&ADD, &ADD_VEC4),
        (&ADD_RELU, &ADD_RELU_VEC4),
        (&CHANNEL_SUM, &CHANNEL_SUM_VEC4),
        (&CHANNEL_SUM_SQ_DEV, &CHANNEL_SUM_SQ_DEV_VEC4),
        (&CHANNEL_SUM_PROD_DEV_AND_SUM, &CHANNEL_SUM_PROD_DEV_AND_SUM_VEC4),
        (&RELU_FORWARD, &RELU_FORWARD_VEC4),
        (&RELU_BACKWARD, &RELU_BACKWARD_VEC4),
        (&RELU_IN_PLACE, &RELU_IN_PLACE_VEC4),
        (&RELU_BACKWARD_IN_PLACE, &RELU_BACKWARD_IN_PLACE_VEC4),
        (&IM2COL, &IM2COL_VEC4),
    ];
    FORMS.into_iter().find(|(k, _)| k.shader == kernel.shader && k.entry == kernel.entry).map(|(_, v)| v)
}
/// [`CHANNEL_SUM`] reading vec4s (planes of a multiple of 4 values).
pub const CHANNEL_SUM_VEC4: Kernel = Kernel { shader: "channel", entry: "channel_sum_vec4", storage: &[(5, Read), (3, ReadWrite)] };
/// [`CHANNEL_SUM_SQ_DEV`] reading vec4s.
pub const CHANNEL_SUM_SQ_DEV_VEC4: Kernel =
    Kernel { shader: "channel", entry: "channel_sum_sq_dev_vec4", storage: &[(5, Read), (3, ReadWrite), (4, Read)] };
/// Batch norm's backward sums in one pass: out = sum b * (a - m) per channel, out2 = sum b.
pub const CHANNEL_SUM_PROD_DEV_AND_SUM: Kernel = Kernel {
    shader: "channel",
    entry: "channel_sum_prod_dev_and_sum",
    storage: &[(1, Read), (2, Read), (3, ReadWrite), (4, Read), (7, ReadWrite)],
};
/// [`CHANNEL_SUM_PROD_DEV_AND_SUM`] reading vec4s.
pub const CHANNEL_SUM_PROD_DEV_AND_SUM_VEC4: Kernel = Kernel {
    shader: "channel",
    entry: "channel_sum_prod_dev_and_sum_vec4",
    storage: &[(5, Read), (6, Read), (3, ReadWrite), (4, Read), (7, ReadWrite)],
};
/// Max pooling: y, and idx = position of the first maximum in its plane (as f32).
pub const MAX_POOL_FORWARD: Kernel =
    Kernel { shader: "pool", entry: "max_pool_forward", storage: &[(1, Read), (3, ReadWrite), (4, ReadWrite)] };
/// Max pooling's backward as a gather: dx[h, w] = sum of dy over windows whose idx is (h, w).
pub const MAX_POOL_BACKWARD: Kernel = Kernel { shader: "pool", entry: "max_pool_backward", storage: IN2_OUT };
/// The same for windows that tile the input (stride = kernel, no padding): one invocation per window.
pub const MAX_POOL_BACKWARD_TILED: Kernel = Kernel { shader: "pool", entry: "max_pool_backward_tiled", storage: IN2_OUT };
/// [`MAX_POOL_FORWARD`] for 2x2 windows, stride 2, no padding and widths of a multiple of 4:
/// a row of windows per invocation, two at a time from vec4 rows.
pub const MAX_POOL_2X2_VEC4: Kernel =
    Kernel { shader: "pool", entry: "max_pool_2x2_vec4", storage: &[(5, Read), (6, ReadWrite), (7, ReadWrite)] };
/// [`MAX_POOL_BACKWARD_TILED`] for the windows of [`MAX_POOL_2X2_VEC4`].
pub const MAX_POOL_2X2_BACKWARD_VEC4: Kernel =
    Kernel { shader: "pool", entry: "max_pool_2x2_backward_vec4", storage: &[(8, Read), (9, Read), (10, ReadWrite)] };
/// [`MAX_POOL_2X2_VEC4`] for even widths that are not a multiple of 4: one row of windows per
/// invocation from vec2 rows.
pub const MAX_POOL_2X2_VEC2: Kernel =
    Kernel { shader: "pool", entry: "max_pool_2x2_vec2", storage: &[(11, Read), (3, ReadWrite), (4, ReadWrite)] };
/// [`MAX_POOL_2X2_BACKWARD_VEC4`] for the windows of [`MAX_POOL_2X2_VEC2`].
pub const MAX_POOL_2X2_BACKWARD_VEC2: Kernel =
    Kernel { shader: "pool", entry: "max_pool_2x2_backward_vec2", storage: &[(1, Read), (2, Read), (6, ReadWrite)] };
/// Average pooling: y = window sum / divisor.
pub const AVG_POOL_FORWARD: Kernel = Kernel { shader: "pool", entry: "avg_pool_forward", storage: IN1_OUT };
/// Average pooling's backward: dx = sum of dy / divisor over the windows containing each element.
pub const AVG_POOL_BACKWARD: Kernel = Kernel { shader: "pool", entry: "avg_pool_backward", storage: IN1_OUT };
/// `y[plane]` = mean of the H x W plane.
pub const GLOBAL_AVG_FORWARD: Kernel = Kernel { shader: "pool", entry: "global_avg_forward", storage: IN1_OUT };
/// `dx = dy[plane] / (H*W)`.
pub const GLOBAL_AVG_BACKWARD: Kernel = Kernel { shader: "pool", entry: "global_avg_backward", storage: IN1_OUT };
/// Batch norm, per channel: invstd from the batch variance, and the running-statistics update.
pub const BN_FINALIZE: Kernel =
    Kernel { shader: "bn_stats", entry: "bn_finalize", storage: &[(1, Read), (2, Read), (3, ReadWrite), (4, ReadWrite), (5, ReadWrite)] };
/// Batch norm in evaluation, per channel: invstd = 1 / sqrt(running_var + eps).
pub const BN_EVAL_INVSTD: Kernel = Kernel { shader: "bn_stats", entry: "bn_eval_invstd", storage: &[(2, Read), (3, ReadWrite)] };
/// Batch norm's backward, per channel: dgamma, dbeta and the three coefficients of dx.
pub const BN_BACKWARD_COEF: Kernel = Kernel {
    shader: "bn_stats",
    entry: "bn_backward_coef",
    storage: &[(1, Read), (2, Read), (3, ReadWrite), (4, ReadWrite), (5, ReadWrite), (6, Read), (7, Read)],
};
/// `y = (x - mean[c]) * invstd[c] * gamma[c] + beta[c]`.
pub const BN_APPLY: Kernel =
    Kernel { shader: "batch_norm", entry: "bn_apply", storage: &[(1, Read), (3, ReadWrite), (4, Read), (5, Read), (6, Read), (7, Read)] };
/// dx from dy, x and the per-channel coefficients of [`BN_BACKWARD_COEF`].
pub const BN_BACKWARD_APPLY: Kernel =
    Kernel { shader: "batch_norm", entry: "bn_backward_apply", storage: &[(1, Read), (2, Read), (3, ReadWrite), (4, Read), (5, Read)] };
/// [`BN_APPLY`] on a grid of (position, channel, image): no division per element.
pub const BN_APPLY_PLANES: Kernel = Kernel {
    shader: "batch_norm",
    entry: "bn_apply_planes",
    storage: &[(1, Read), (3, ReadWrite), (4, Read), (5, Read), (6, Read), (7, Read)],
};
/// [`BN_APPLY_PLANES`] on vec4s (planes of a multiple of 4 values).
pub const BN_APPLY_PLANES_VEC4: Kernel = Kernel {
    shader: "batch_norm",
    entry: "bn_apply_planes_vec4",
    storage: &[(8, Read), (10, ReadWrite), (4, Read), (5, Read), (6, Read), (7, Read)],
};
/// [`BN_APPLY_PLANES_VEC4`] with one plane per invocation (CPU adapters: the channel's values
/// loaded once per plane).
pub const BN_APPLY_ROWS_VEC4: Kernel = Kernel {
    shader: "batch_norm",
    entry: "bn_apply_rows_vec4",
    storage: &[(8, Read), (10, ReadWrite), (4, Read), (5, Read), (6, Read), (7, Read)],
};
/// [`BN_BACKWARD_APPLY_PLANES_VEC4`] with one plane per invocation.
pub const BN_BACKWARD_APPLY_ROWS_VEC4: Kernel = Kernel {
    shader: "batch_norm",
    entry: "bn_backward_apply_rows_vec4",
    storage: &[(8, Read), (9, Read), (10, ReadWrite), (4, Read), (5, Read)],
};
/// [`BN_BACKWARD_APPLY_PLANES`] on vec4s (planes of a multiple of 4 values).
pub const BN_BACKWARD_APPLY_PLANES_VEC4: Kernel = Kernel {
    shader: "batch_norm",
    entry: "bn_backward_apply_planes_vec4",
    storage: &[(8, Read), (9, Read), (10, ReadWrite), (4, Read), (5, Read)],
};
/// [`BN_BACKWARD_APPLY`] on a grid of (position, channel, image).
pub const BN_BACKWARD_APPLY_PLANES: Kernel = Kernel {
    shader: "batch_norm",
    entry: "bn_backward_apply_planes",
    storage: &[(1, Read), (2, Read), (3, ReadWrite), (4, Read), (5, Read)],
};
/// Backward of batch norm's eval forward: `dx = dy * gamma[c] / sqrt(running_var[c] + eps)`.
pub const BN_EVAL_BACKWARD_DX: Kernel = Kernel {
    shader: "batch_norm_eval_backward",
    entry: "bn_eval_backward_dx",
    storage: &[(2, Read), (3, ReadWrite), (5, Read), (6, Read)],
};
/// Backward of batch norm's eval forward, one workgroup per channel: dgamma and dbeta.
pub const BN_EVAL_BACKWARD_PARAMS: Kernel = Kernel {
    shader: "batch_norm_eval_backward",
    entry: "bn_eval_backward_params",
    storage: &[(1, Read), (2, Read), (4, Read), (5, Read), (7, ReadWrite), (8, ReadWrite)],
};
/// Softmax cross-entropy against class indices: per-row losses and the gradient.
pub const CROSS_ENTROPY_HARD: Kernel =
    Kernel { shader: "loss", entry: "cross_entropy_hard", storage: &[(1, Read), (2, Read), (3, ReadWrite), (4, ReadWrite)] };
/// Softmax cross-entropy against probability rows [N, C]: per-row losses and the gradient.
pub const CROSS_ENTROPY_SOFT: Kernel =
    Kernel { shader: "loss", entry: "cross_entropy_soft", storage: &[(1, Read), (2, Read), (3, ReadWrite), (4, ReadWrite)] };
/// `out[i]` = index of the first maximum of row i (as f32).
pub const ARGMAX_ROWS: Kernel = Kernel { shader: "loss", entry: "argmax_rows", storage: IN1_OUT };
/// `out[i]` = 1 if row i's argmax equals label i, else 0.
pub const CORRECT_ROWS: Kernel = Kernel { shader: "loss", entry: "correct_rows", storage: IN2_OUT };
/// Inverted dropout with a recomputed mask: y = x * scale where kept, else 0 (forward and backward).
pub const DROPOUT: Kernel = Kernel { shader: "dropout", entry: "dropout", storage: IN1_OUT };
/// First pass of a sum of squares (the second is [`SUM`]).
pub const SUM_SQUARES: Kernel = Kernel { shader: "reduce", entry: "sum_squares", storage: IN1_OUT };
/// g *= min(1, max_norm / (sqrt(sumsq) + 1e-6)), sumsq read from the device.
pub const CLIP_BY_NORM: Kernel = Kernel { shader: "clip", entry: "clip_by_norm", storage: IN1_OUT };
const OPT1: &[(u32, Access)] = &[(1, ReadWrite), (2, Read), (3, ReadWrite)];
const OPT2: &[(u32, Access)] = &[(1, ReadWrite), (2, Read), (3, ReadWrite), (4, ReadWrite)];
/// SGD step (with momentum, dampening, Nesterov) over the parameter arena.
pub const SGD: Kernel = Kernel { shader: "optimizer", entry: "sgd", storage: OPT1 };
/// Adagrad step over the parameter arena.
pub const ADAGRAD: Kernel = Kernel { shader: "optimizer", entry: "adagrad", storage: OPT1 };
/// Adadelta step over the parameter arena.
pub const ADADELTA: Kernel = Kernel { shader: "optimizer", entry: "adadelta", storage: OPT2 };
/// RMSprop step (with momentum) over the parameter arena.
pub const RMSPROP: Kernel = Kernel { shader: "optimizer", entry: "rmsprop", storage: OPT2 };
/// Adam or AdamW step over the parameter arena (`decoupled` picks AdamW).
pub const ADAM: Kernel = Kernel { shader: "optimizer", entry: "adam", storage: OPT2 };

/// Every kernel the engine dispatches (the shader tests check each against its WGSL).
pub const ALL_KERNELS: &[&Kernel] = &[
    &MATMUL_V1,
    &MATMUL_V2,
    &MATMUL_V3,
    &MATMUL_V4,
    &MATMUL_V5,
    &ADD,
    &ADD_RELU,
    &ADD_VEC4,
    &ADD_RELU_VEC4,
    &MUL,
    &SCALE,
    &RELU_FORWARD,
    &RELU_BACKWARD,
    &RELU_FORWARD_VEC4,
    &RELU_BACKWARD_VEC4,
    &RELU_IN_PLACE,
    &RELU_BACKWARD_IN_PLACE,
    &RELU_IN_PLACE_VEC4,
    &RELU_BACKWARD_IN_PLACE_VEC4,
    &DROPOUT,
    &IM2COL,
    &IM2COL_VEC4,
    &IM2COL_S1_VEC4,
    &IM2COL_SAME_VEC4,
    &CONV2D_S1_SUBGROUP,
    &CONV2D_S1_SUBGROUP_FILTER,
    &COL2IM,
    &PERMUTE3,
    &PERMUTE3_GRID,
    &PERMUTE3_ROWS,
    &PERMUTE3_GRID_VEC4,
    &PAD_ROWS_VEC4,
    &CROP_ROWS_VEC4,
    &BIAS_ACT,
    &BIAS_ACT_ROWS,
    &BIAS_ACT_ROWS_VEC4,
    &ACT_BACKWARD,
    &CHANNEL_SUM,
    &CHANNEL_SUM_SQ_DEV,
    &CHANNEL_SUM_PROD_DEV_AND_SUM,
    &CHANNEL_SUM_PROD_DEV_AND_SUM_VEC4,
    &CHANNEL_SUM_VEC4,
    &CHANNEL_SUM_COLUMNS,
    &CHANNEL_SUM_SQ_DEV_VEC4,
    &MAX_POOL_FORWARD,
    &MAX_POOL_BACKWARD,
    &MAX_POOL_BACKWARD_TILED,
    &MAX_POOL_2X2_VEC4,
    &MAX_POOL_2X2_BACKWARD_VEC4,
    &MAX_POOL_2X2_VEC2,
    &MAX_POOL_2X2_BACKWARD_VEC2,
    &AVG_POOL_FORWARD,
    &AVG_POOL_BACKWARD,
    &GLOBAL_AVG_FORWARD,
    &GLOBAL_AVG_BACKWARD,
    &BN_FINALIZE,
    &BN_EVAL_INVSTD,
    &BN_BACKWARD_COEF,
    &BN_APPLY,
    &BN_BACKWARD_APPLY,
    &BN_APPLY_PLANES,
    &BN_BACKWARD_APPLY_PLANES,
    &BN_APPLY_PLANES_VEC4,
    &BN_BACKWARD_APPLY_PLANES_VEC4,
    &BN_APPLY_ROWS_VEC4,
    &BN_BACKWARD_APPLY_ROWS_VEC4,
    &BN_EVAL_BACKWARD_DX,
    &BN_EVAL_BACKWARD_PARAMS,
    &CROSS_ENTROPY_HARD,
    &CROSS_ENTROPY_SOFT,
    &ARGMAX_ROWS,
    &CORRECT_ROWS,
    &SUM,
    &SUM_SQUARES,
    &CLIP_BY_NORM,
    &SGD,
    &ADAGRAD,
    &ADADELTA,
    &RMSPROP,
    &ADAM,
];

/// A compiled pipeline and its bind-group layout.
pub struct Pipeline {
    /// Unique within its cache; part of the key of cached bind groups.
    pub id: u64,
    /// The compiled compute pipeline.
    pub pipeline: wgpu::ComputePipeline,
    /// Its bind group 0: the parameters at binding 0, then the storage buffers.
    pub layout: wgpu::BindGroupLayout,
    /// Size in bytes of the kernel's parameter struct (the uniform binding's size).
    pub params_size: u64,
    /// Binding numbers of the storage buffers, in `Kernel::storage` order.
    pub storage: Vec<u32>,
    /// Its recipe and the parameters it has been dispatched with, where the cache is `tracking`.
    pub(crate) tracked: Mutex<Option<Tracked>>,
}

/// What a `tracking` cache keeps of a pipeline: its recipe and the hashes of the parameters of
/// its first dispatches.
pub(crate) struct Tracked {
    recipe: PipelineRecipe,
    seen: Vec<u64>,
}

/// Parameter sets per pipeline whose first dispatch is reported to `take_fresh`. lavapipe
/// compiles a kernel anew for each set of values of its loop-bounding parameters; a layer's
/// parameters repeat every step, an optimizer's change every step (and do not bound loops).
const TRACKED_PARAMS: usize = 16;

/// Where a pipeline's WGSL comes from.
#[derive(Clone, Debug)]
pub(crate) enum ShaderText {
    /// A file of shaders/, by stem.
    Builtin(&'static str),
    /// A user's kernel: its label and text.
    Custom { label: String, source: String },
}

/// Everything a pipeline is built from, so that it can be built again on another device (see
/// `gpu::ahead`).
#[derive(Clone, Debug)]
pub(crate) struct PipelineRecipe {
    /// The cache key: shader, entry and constants.
    pub key: String,
    pub shader: ShaderText,
    pub entry: String,
    pub storage: Vec<(u32, Access)>,
    /// Size in bytes of the kernel's parameter struct.
    pub params_size: u64,
    /// Override constants.
    pub constants: Vec<(String, f64)>,
    /// The parameters of a dispatch (empty in the pipeline's own recipe). lavapipe compiles a
    /// kernel for the values of the parameters that bound its loops, so a kernel compiled
    /// ahead is dispatched with the parameters the queue will use.
    pub params: Vec<u8>,
}

/// Compiles each (kernel, override constants) once; shader modules are shared between entries.
#[derive(Default)]
pub struct PipelineCache {
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<String, Arc<Pipeline>>>,
    next_id: AtomicU64,
    /// Whether to keep the recipes of new (pipeline, parameters) dispatches for `take_fresh`.
    track_fresh: AtomicBool,
    fresh: Mutex<Vec<PipelineRecipe>>,
}

impl PipelineCache {
    /// A cache that also lists the pipelines it builds, for `take_fresh`.
    pub(crate) fn tracking() -> Self {
        Self { track_fresh: AtomicBool::new(true), ..Self::default() }
    }

    /// Stops tracking (the compile-ahead helper has retired).
    pub(crate) fn stop_tracking(&self) {
        self.track_fresh.store(false, Ordering::Relaxed);
    }

    /// The recipes, with their parameters, of the dispatches since the last call that were the
    /// first of their pipeline with those parameters, in order
    /// (empty unless the cache is `tracking`).
    pub(crate) fn take_fresh(&self) -> Vec<PipelineRecipe> {
        std::mem::take(&mut *self.fresh.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The pipeline of a built-in `kernel` with override `constants`, compiled on first use.
    pub fn get<P: KernelParams>(&self, ctx: &GpuContext, kernel: &Kernel, constants: &[(&str, f64)]) -> Result<Arc<Pipeline>> {
        let key = format!("{}::{}{:?}", kernel.shader, kernel.entry, constants);
        if let Some(p) = self.pipelines.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(p.clone());
        }
        self.build(
            ctx,
            PipelineRecipe {
                key,
                shader: ShaderText::Builtin(kernel.shader),
                entry: kernel.entry.to_string(),
                storage: kernel.storage.to_vec(),
                params_size: std::mem::size_of::<P>() as u64,
                constants: constants.iter().map(|&(name, v)| (name.to_string(), v)).collect(),
                params: Vec::new(),
            },
        )
    }

    /// The pipeline of entry point `entry` of a WGSL `source` that is not one of shaders/ (a
    /// user's kernel), with the same binding rules; compiled once per (label, entry).
    pub fn get_source<P: KernelParams>(
        &self,
        ctx: &GpuContext,
        label: &str,
        source: &str,
        entry: &str,
        storage: &[(u32, Access)],
    ) -> Result<Arc<Pipeline>> {
        let key = format!("custom:{label}::{entry}");
        if let Some(p) = self.pipelines.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(p.clone());
        }
        self.build(
            ctx,
            PipelineRecipe {
                key,
                shader: ShaderText::Custom { label: label.to_string(), source: source.to_string() },
                entry: entry.to_string(),
                storage: storage.to_vec(),
                params_size: std::mem::size_of::<P>() as u64,
                constants: Vec::new(),
                params: Vec::new(),
            },
        )
    }

    /// Builds the pipeline `recipe` describes and keeps it under its key.
    pub(crate) fn build(&self, ctx: &GpuContext, recipe: PipelineRecipe) -> Result<Arc<Pipeline>> {
        let module = match &recipe.shader {
            ShaderText::Builtin(name) => self.module(ctx, name)?,
            ShaderText::Custom { label, source } => ctx.scoped(&format!("compiling {label}"), || {
                ctx.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(label),
                    source: wgpu::ShaderSource::Wgsl(Cow::Owned(source.clone())),
                })
            })?,
        };
        let PipelineRecipe { key, entry, storage, params_size, constants, .. } = &recipe;
        let params_size = *params_size;
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: true,
                min_binding_size: NonZeroU64::new(params_size),
            },
            count: None,
        }];
        for &(binding, access) in storage {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: access == Access::Read },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let constants: Vec<(&str, f64)> = constants.iter().map(|(name, v)| (name.as_str(), *v)).collect();
        super::exit::pipeline_built();
        let started = std::time::Instant::now();
        let pipeline = ctx.scoped(&format!("compiling {key}"), || {
            let layout = ctx.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(entry), entries: &entries });
            let pl = ctx.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(entry),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let pipeline = ctx.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(key),
                layout: Some(&pl),
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions { constants: &constants, zero_initialize_workgroup_memory: false },
                cache: None,
            });
            (pipeline, layout)
        })?;
        log::debug!("created pipeline {key} in {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
        let p = Arc::new(Pipeline {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            pipeline: pipeline.0,
            layout: pipeline.1,
            params_size,
            storage: storage.iter().map(|s| s.0).collect(),
            tracked: Mutex::new(self.track_fresh.load(Ordering::Relaxed).then(|| Tracked { recipe: recipe.clone(), seen: Vec::new() })),
        });
        self.pipelines.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), p.clone());
        Ok(p)
    }

    /// Whether a pipeline with this key has been built.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.pipelines.lock().unwrap_or_else(|p| p.into_inner()).contains_key(key)
    }

    /// The pipeline `recipe` describes: the one built before under its key, else a new one.
    pub(crate) fn get_or_build(&self, ctx: &GpuContext, recipe: &PipelineRecipe) -> Result<Arc<Pipeline>> {
        if let Some(p) = self.pipelines.lock().unwrap_or_else(|p| p.into_inner()).get(&recipe.key) {
            return Ok(p.clone());
        }
        self.build(ctx, PipelineRecipe { params: Vec::new(), ..recipe.clone() })
    }

    /// Notes a dispatch of `pipeline` with parameters `params`, for `take_fresh` when they are
    /// new to it (up to `TRACKED_PARAMS` sets).
    pub(crate) fn dispatched(&self, pipeline: &Pipeline, params: &[u8]) {
        if !self.track_fresh.load(Ordering::Relaxed) {
            return;
        }
        let mut tracked = pipeline.tracked.lock().unwrap_or_else(|p| p.into_inner());
        let Some(t) = tracked.as_mut().filter(|t| t.seen.len() < TRACKED_PARAMS) else {
            return;
        };
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            params.hash(&mut h);
            h.finish()
        };
        if !t.seen.contains(&hash) {
            t.seen.push(hash);
            let recipe = PipelineRecipe { params: params.to_vec(), ..t.recipe.clone() };
            self.fresh.lock().unwrap_or_else(|p| p.into_inner()).push(recipe);
        }
    }

    fn module(&self, ctx: &GpuContext, name: &'static str) -> Result<wgpu::ShaderModule> {
        if let Some(m) = self.modules.lock().unwrap_or_else(|p| p.into_inner()).get(name) {
            return Ok(m.clone());
        }
        let source = shader_source(name).ok_or_else(|| crate::Error::Invalid(format!("no shader named {name}")))?;
        let started = std::time::Instant::now();
        let module = ctx.scoped(&format!("compiling shaders/{name}.wgsl"), || {
            ctx.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(source)),
            })
        })?;
        log::debug!("parsed shaders/{name}.wgsl in {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
        self.modules.lock().unwrap_or_else(|p| p.into_inner()).insert(name, module.clone());
        Ok(module)
    }
}
