//! Host side of the convolution: im2col (shaders/im2col.wgsl) + the matmul + col2im
//! (shaders/col2im.wgsl), one GEMM per group batched over the images of a chunk; dw is one
//! product with B transposed per group over columns whose rows run across the chunk's images.
//! With stride and dilation 1 on rows of whole vec4s, im2col_s1_vec4 unfolds a quad of
//! positions at a time and dx is a convolution of dy (its unfolding mirrored) instead of a
//! col2im; where such a product would run on matmul v5 and the kernel is at most 4 wide,
//! conv2d_s1_subgroup (an implicit GEMM) does all three without a column buffer. A 1x1
//! convolution with stride 1 and no padding skips im2col and multiplies the NCHW input
//! directly, or, where each image's product would be thin, runs channel-major: one product
//! over all images' positions between two copies (pointwise_by_channels). The column buffer
//! is bounded: images are processed in chunks whose columns fit `COL_BUDGET` (and the
//! device's binding limit).
//! CPU twin: src/cpu/conv2d.rs. Test: kernels-tests/conv2d.rs (cases in src/verify/conv2d.rs
//! reach every path). Bench: `wgtrain bench conv`.

use super::grid::split_grid;
use super::kernels::{self, ConvParams, DirectConvParams, Kernel};
use super::matmul::{self, MatmulVariant, Operand};
use super::recorder::Bind;
use super::{Gpu, GpuTensor};
use crate::ops::{ConvDims, MatmulDims, MatmulSpec};
use crate::{Error, Result};

/// Largest column buffer (bytes) a convolution uses, whatever the batch.
pub const COL_BUDGET: u64 = 64 << 20;
/// The same on CPU adapters (lavapipe), where a pass over memory that is not in the CPU's
/// caches runs at a few GB/s: a column buffer of 2 MiB is still in cache when the next kernel
/// reads it (layers.4 of the default CNN at batch 64: its backward products 51-56 ms with the
/// 14 MiB buffer of one chunk, 32-35 ms in chunks of 2 MiB; BENCHMARKS.md).
pub const CPU_COL_BUDGET: u64 = 2 << 20;

impl Gpu {
    /// Images per chunk so that `per_image` f32 of scratch per image fit the budget: at most
    /// [`COL_BUDGET`] (and the binding limit), and on CPU adapters [`CPU_COL_BUDGET`] where
    /// one image fits it.
    fn images_per_chunk(&self, op: &'static str, d: &ConvDims, per_image: usize) -> Result<usize> {
        let budget = COL_BUDGET.min(self.max_binding_bytes()) / 4;
        if per_image as u64 > budget {
            return Err(Error::Limit {
                op,
                what: "column buffer of one image in bytes".into(),
                got: per_image as u64 * 4,
                limit: budget * 4,
            });
        }
        let budget = if self.ctx.is_cpu_adapter() { budget.min(CPU_COL_BUDGET / 4) } else { budget };
        // The fewest chunks that fit, evened out: 64 images at 9 a chunk run as 8 chunks of
        // 8, not 7 of 9 and one of 1.
        let most = ((budget / per_image.max(1) as u64) as usize).clamp(1, d.n.max(1));
        Ok(d.n.max(1).div_ceil(d.n.max(1).div_ceil(most)))
    }

    /// im2col of images [n0, n0 + nb) of x into `col`, each group's patch padded to
    /// `d.patch_pad()` rows, laid out [nb, rows, P], or with `rows_outer` [rows, nb, P] (the
    /// backward filter's operand). im2col_s1_vec4 where it applies (one quad of an output row
    /// per invocation), else one row of P positions per invocation: im2col_same_vec4 where
    /// the rows are shifted planes (see unfolds_by_shift), else im2col or its vec4 form.
    fn unfold(&self, x: &GpuTensor, col: &GpuTensor, d: &ConvDims, n0: usize, nb: usize, rows_outer: bool) -> Result<()> {
        let total = nb * d.groups() * d.patch_pad() * d.p();
        let mut params = conv_params(d, nb, total, n0 * d.c * d.h * d.w);
        params.rows_outer = rows_outer as u32;
        if unfolds_by_quads(d.spec.stride, d.spec.dilation, d.w, d.ow, d.kw, d.spec.padding[1]) {
            let invocations = nb * d.c * d.oh * d.ow / 4;
            return self.conv_dispatch("im2col", &kernels::IM2COL_S1_VEC4, &mut params, invocations, x, col);
        }
        let kernel = if unfolds_by_shift(d.spec.stride, d.spec.dilation, [d.h, d.w], [d.oh, d.ow]) {
            &kernels::IM2COL_SAME_VEC4
        } else {
            kernels::vec4_form(&kernels::IM2COL).filter(|_| d.p().is_multiple_of(4)).unwrap_or(&kernels::IM2COL)
        };
        self.conv_dispatch("im2col", kernel, &mut params, nb * d.groups() * d.patch_pad(), x, col)
    }

    /// `invocations` of a kernel of shaders/im2col.wgsl or col2im.wgsl (workgroups of 64) on a
    /// 2D grid, reading `src` and writing `dst`.
    fn conv_dispatch(
        &self,
        op: &'static str,
        kernel: &Kernel,
        params: &mut ConvParams,
        invocations: usize,
        src: &GpuTensor,
        dst: &GpuTensor,
    ) -> Result<()> {
        let pipeline = self.pipeline::<ConvParams>(kernel, &[])?;
        let (groups, row_stride) = super::grid::grid_2d_wg(op, invocations as u64, 64, self.max_groups())?;
        params.row_stride = row_stride;
        self.dispatch(op, &pipeline, params, &[Bind::whole(src), Bind::whole(dst)], groups)
    }

    /// Whether conv2d_s1_subgroup computes a stride-1 convolution whose unfolded product would
    /// be `product`: where that product would run on v5 (the kernel is v5 with its columns
    /// made in registers: so on CPU adapters with subgroups, or where the autotune chose v5,
    /// and `WGTRAIN_MATMUL` other than v5 turns it off), kernels at most 4 wide, rows of
    /// whole vec4s (see unfolds_by_quads), a grid within the device's limits, and the tensors
    /// it binds whole (`bound`: the source's and the output's bytes) within the binding limit. `widths`
    /// are the source's and the output's, `out` the output channels, the output rows and the
    /// kernel's width.
    #[allow(clippy::too_many_arguments)]
    fn direct_applies(
        &self,
        product: &MatmulDims,
        spec: MatmulSpec,
        stride: [usize; 2],
        dilation: [usize; 2],
        widths: [usize; 2],
        out: [usize; 3],
        pw: usize,
        bound: [u64; 2],
    ) -> bool {
        let [k, oh, kw] = out;
        let quads = oh * widths[1] / 4;
        let max = self.max_groups() as usize;
        kw <= 4
            && unfolds_by_quads(stride, dilation, widths[0], widths[1], kw, pw)
            && self.ctx.has_subgroups_of_8()
            && self.tuned_variant(product, spec) == MatmulVariant::V5Subgroup
            && quads.div_ceil(matmul::lanes(&self.ctx)) <= max
            && k.div_ceil(16) <= max
            && bound.iter().all(|&bytes| bytes <= self.max_binding_bytes())
    }

    /// conv2d_s1_subgroup over every image of the batch: `a` the weights as [K, C, KH, 4], `x`
    /// the source, `y` the output, sizes in `params` (see [`direct_params`]).
    fn conv2d_direct(&self, a: &GpuTensor, x: &GpuTensor, y: &GpuTensor, mut params: DirectConvParams) -> Result<()> {
        let lanes = matmul::lanes(&self.ctx);
        let pipeline = self.pipeline::<DirectConvParams>(&kernels::CONV2D_S1_SUBGROUP, &[("LANES", lanes as f64)])?;
        let quads = (params.oh * params.ow / 4) as usize;
        let groups = [quads.div_ceil(lanes) as u32, (params.k as usize).div_ceil(16) as u32, params.n];
        let binds = [Bind::whole(a), Bind::whole(x), Bind::whole(y)];
        // Only the images are split across dispatches (direct_applies bounds the rest).
        for (base, count) in split_grid(groups, self.max_groups()) {
            params.batch_base = base[2];
            self.dispatch("conv2d_direct", &pipeline, &params, &binds, count)?;
        }
        Ok(())
    }

    /// y = conv(x, w) (+ bias).
    pub(crate) fn conv2d_impl(&self, x: &GpuTensor, w: &GpuTensor, bias: Option<&GpuTensor>, y: &GpuTensor, d: &ConvDims) -> Result<()> {
        self.conv2d_unbiased(x, w, y, d)?;
        match bias {
            Some(bias) => self.bias_act_impl(y, bias, (d.k, d.p()), crate::ops::Activation::Identity),
            None => Ok(()),
        }
    }

    /// y = conv(x, w), by the implicit GEMM, channel-major (a thin 1x1), or a GEMM per group and
    /// chunk of images on x itself (a 1x1) or on its unfolding.
    fn conv2d_unbiased(&self, x: &GpuTensor, w: &GpuTensor, y: &GpuTensor, d: &ConvDims) -> Result<()> {
        let (p, kg, g) = (d.p(), d.kg(), d.groups());
        let s = d.spec;
        let product = MatmulDims { batch: d.n, m: d.k, n: p, k: d.patch_pad(), stride_a: 0, stride_b: 0, stride_c: 0 };
        if g == 1
            && !d.is_pointwise()
            && self.direct_applies(
                &product,
                MatmulSpec::default(),
                s.stride,
                s.dilation,
                [d.w, d.ow],
                [d.k, d.oh, d.kw],
                s.padding[1],
                [x.storage().bytes(), y.storage().bytes()],
            )
        {
            // [K, C, KH, KW] -> [K, C, KH, 4]
            let wq = self.padded_rows(w, d.k * d.c * d.kh, d.kw, 4)?;
            let params = direct_params(d, [d.c, d.h, d.w], [d.k, d.oh, d.ow], s.padding, false);
            return self.conv2d_direct(&wq, x, y, params);
        }
        if self.pointwise_by_channels(d) {
            return self.channel_major_product(w, x, y, [d.c, d.k], d);
        }
        let direct = d.is_pointwise();
        // Rows of each group's patch in the GEMM: padded to a multiple of 4 on the im2col
        // path (the weights get the same zero columns); the direct path uses x as it is.
        let rows = if direct { d.patch() } else { d.patch_pad() };
        let padded_w = if rows != d.patch() { Some(self.padded_rows(w, d.k, d.patch(), rows)?) } else { None };
        let a = padded_w.as_ref().unwrap_or(w);
        let nb = if direct { d.n } else { self.images_per_chunk("conv2d", d, g * rows * p)? };
        let col = if direct { None } else { Some(self.alloc(&[nb * g * rows * p])?) };
        for n0 in (0..d.n).step_by(nb.max(1)) {
            let nbc = nb.min(d.n - n0);
            // op(B) of image i, group gi starts at base + i * stride + gi * rows * p.
            let (b, base, stride) = match &col {
                None => (x, n0 * d.c * p, d.c * p),
                Some(col) => {
                    self.unfold(x, col, d, n0, nbc, false)?;
                    (col, 0, g * rows * p)
                }
            };
            for gi in 0..g {
                let dims = MatmulDims { batch: nbc, m: kg, n: p, k: rows, stride_a: 0, stride_b: stride, stride_c: d.k * p };
                self.gemm(
                    self.tuned_variant(&dims, MatmulSpec::default()),
                    Operand::at(a, gi * kg * rows),
                    Operand::at(b, base + gi * rows * p),
                    Operand::at(y, n0 * d.k * p + gi * kg * p),
                    &dims,
                    MatmulSpec::default(),
                )?;
            }
        }
        Ok(())
    }

    /// Whether a 1x1 convolution (stride 1, no padding, one group) runs channel-major: x (in
    /// the backward, dy) copied to [C, N*P], so that each pass is one product over every
    /// image's positions instead of one per image (the filter gradient's product is that
    /// one for every 1x1 with one group). Where the per-image products are thin: P
    /// not a multiple of 4 (off v4 and v5) or narrower than their tiles (the default CNN's
    /// 64 -> 32 on 7x7: 1.2-1.9 GFLOP/s a pass on llvmpipe, see BENCHMARKS.md). The long
    /// product must line up with vec4s (N*P a multiple of 4), and the copies fit COL_BUDGET.
    fn pointwise_by_channels(&self, d: &ConvDims) -> bool {
        let p = d.p();
        let scratch = ((d.c + d.k) * d.n * p) as u64 * 4;
        d.is_pointwise()
            && d.groups() == 1
            && d.n > 1
            && (!p.is_multiple_of(4) || p < 32)
            && (d.n * p).is_multiple_of(4)
            && scratch <= COL_BUDGET.min(self.max_binding_bytes())
    }

    /// dst [N, cout, P] = a [cout, cin] @ src [N, cin, P] per image, channel-major (see
    /// pointwise_by_channels): src copied to [cin, N*P], one product on the variant tuned for
    /// it, [cout, N, P] copied back. The forward (W, x -> y) and the backward data (Wᵀ, dy -> dx).
    fn channel_major_product(&self, a: &GpuTensor, src: &GpuTensor, dst: &GpuTensor, [cin, cout]: [usize; 2], d: &ConvDims) -> Result<()> {
        let (n, p) = (d.n, d.p());
        let sc = self.alloc(&[cin * n * p])?;
        self.permute3(src.storage(), 0, [n, cin, p], [p, n * p, 1], sc.storage())?;
        let dc = self.alloc(&[cout * n * p])?;
        let dims = MatmulDims { batch: 1, m: cout, n: n * p, k: cin, stride_a: 0, stride_b: 0, stride_c: 0 };
        let spec = MatmulSpec::default();
        self.gemm(self.tuned_variant(&dims, spec), Operand::of(a), Operand::of(&sc), Operand::of(&dc), &dims, spec)?;
        self.permute3(dc.storage(), 0, [cout, n, p], [p, cout * p, 1], dst.storage())
    }

    /// [rows, cols] -> [rows, padded] with zero columns (padded a multiple of 4).
    fn padded_rows(&self, w: &GpuTensor, rows: usize, cols: usize, padded: usize) -> Result<GpuTensor> {
        let out = self.alloc(&[rows * padded])?;
        self.pad_rows(w.storage(), [rows, cols], padded, out.storage(), [0, 0])?;
        Ok(out)
    }

    /// dx = conv_transpose(dy, w): per group Wᵀ @ dy, then col2im (skipped for 1x1).
    pub(crate) fn conv2d_backward_data_impl(&self, dy: &GpuTensor, w: &GpuTensor, dx: &GpuTensor, d: &ConvDims) -> Result<()> {
        let (p, patch, kg, kk, g) = (d.p(), d.patch(), d.kg(), d.kh * d.kw, d.groups());
        if let Some(pads) = self.mirrored_pads(d) {
            // On rows of whole vec4s as they are, else on copies of dy and dx padded with zero
            // columns to whole vec4s (the zeros read past dy's rows are its own padding), a
            // chunk of images at a time.
            let widths = [d.ow.next_multiple_of(4), d.w.next_multiple_of(4)];
            let sizes = [d.k * d.oh * widths[0], d.c * d.h * widths[1]]; // per image
                                                                         // None where one image's copies exceed the column budget.
            let nb =
                if widths == [d.ow, d.w] { Some(d.n) } else { self.images_per_chunk("conv2d_backward_data", d, sizes[0] + sizes[1]).ok() };
            let product = MatmulDims { batch: d.n, m: d.c, n: d.h * widths[1], k: d.k * kk, stride_a: 0, stride_b: 0, stride_c: 0 };
            if let Some(nb) = nb.filter(|&nb| {
                let bound = sizes.map(|v| (nb * v) as u64 * 4);
                self.direct_applies(&product, MatmulSpec::default(), [1, 1], [1, 1], widths, [d.c, d.h, d.kw], pads[1], bound)
            }) {
                // w [K, C, KH*KW] -> [C, K, KH*KW] -> [C, K, KH, 4]
                let wc = self.alloc(&[d.c * d.k * kk])?;
                self.permute3(w.storage(), 0, [d.k, d.c, kk], [kk, d.k * kk, 1], wc.storage())?;
                let wq = self.padded_rows(&wc, d.c * d.k * d.kh, d.kw, 4)?;
                let mut params = direct_params(d, [d.k, d.oh, widths[0]], [d.c, d.h, widths[1]], pads, true);
                if widths == [d.ow, d.w] {
                    return self.conv2d_direct(&wq, dy, dx, params);
                }
                let dy4 = self.alloc(&[nb * sizes[0]])?;
                let dx4 = self.alloc(&[nb * sizes[1]])?;
                for n0 in (0..d.n).step_by(nb) {
                    let nbc = nb.min(d.n - n0);
                    self.pad_rows(dy.storage(), [nbc * d.k * d.oh, d.ow], widths[0], dy4.storage(), [n0 * d.k * d.oh * d.ow, 0])?;
                    params.n = nbc as u32;
                    self.conv2d_direct(&wq, &dy4, &dx4, params)?;
                    self.crop_rows(dx4.storage(), [nbc * d.c * d.h, widths[1]], d.w, dx.storage(), [0, n0 * d.c * d.h * d.w])?;
                }
                return Ok(());
            }
            // Its product has C rows: with fewer than a v5 workgroup's 16, most of each
            // workgroup idles, and Wᵀ @ dy (C*KH*KW rows) with col2im runs faster (a 1-channel
            // 5x5 at batch 64: 0.86 GFLOP/s this way).
            if d.c >= 16 && (d.k * kk).is_multiple_of(4) && unfolds_by_quads([1, 1], [1, 1], d.ow, d.w, d.kw, pads[1]) {
                return self.conv2d_backward_data_by_quads(dy, w, dx, d, pads);
            }
        }
        // Wᵀ per group: [g, kg, patch] -> [g, patch, kg].
        let wt = self.alloc(&[d.k * patch])?;
        self.permute3(w.storage(), 0, [g, kg, patch], [patch * kg, 1, kg], wt.storage())?;
        if self.pointwise_by_channels(d) {
            return self.channel_major_product(&wt, dy, dx, [d.k, d.c], d);
        }
        let direct = d.is_pointwise();
        let nb = if direct { d.n } else { self.images_per_chunk("conv2d_backward_data", d, d.c * kk * p)? };
        let dcol = if direct { None } else { Some(self.alloc(&[nb * d.c * kk * p])?) };
        for n0 in (0..d.n).step_by(nb.max(1)) {
            let nbc = nb.min(d.n - n0);
            let (target, base, stride) = match &dcol {
                None => (dx, n0 * d.c * p, d.c * p),
                Some(dcol) => (dcol, 0, d.c * kk * p),
            };
            for gi in 0..g {
                let dims = MatmulDims { batch: nbc, m: patch, n: p, k: kg, stride_a: 0, stride_b: d.k * p, stride_c: stride };
                self.gemm(
                    self.tuned_variant(&dims, MatmulSpec::default()),
                    Operand::at(&wt, gi * patch * kg),
                    Operand::at(dy, n0 * d.k * p + gi * kg * p),
                    Operand::at(target, base + gi * patch * p),
                    &dims,
                    MatmulSpec::default(),
                )?;
            }
            if let Some(dcol) = &dcol {
                let mut params = conv_params(d, nbc, nbc * d.c * d.h * d.w, n0 * d.c * d.h * d.w);
                self.conv_dispatch("col2im", &kernels::COL2IM, &mut params, nbc * d.c * d.h, dcol, dx)?;
            }
        }
        Ok(())
    }

    /// The pads of dy's unfolding, mirrored, when dx is a convolution of dy: stride and
    /// dilation 1, one group, and the pads at most the kernel's size less 1.
    fn mirrored_pads(&self, d: &ConvDims) -> Option<[usize; 2]> {
        let s = d.spec;
        let [ph, pw] = s.padding;
        let fits = s.groups == 1 && s.stride == [1, 1] && s.dilation == [1, 1] && !d.is_pointwise() && ph < d.kh && pw < d.kw;
        fits.then(|| [d.kh - 1 - ph, d.kw - 1 - pw])
    }

    /// dx as the convolution of dy with the mirrored, transposed filters, without col2im:
    /// dx[n, c, y, x] = sum over (k, i, j) of w[k, c, i, j] * dy[n, k, y + ph - i, x + pw - j].
    /// im2col_s1_vec4 unfolds dy (taps mirrored, pads `pads`) into rows (k, i, j) over dx's
    /// positions, and one GEMM per image multiplies w regrouped to [C, K, KH*KW] with them,
    /// writing dx in place.
    fn conv2d_backward_data_by_quads(&self, dy: &GpuTensor, w: &GpuTensor, dx: &GpuTensor, d: &ConvDims, pads: [usize; 2]) -> Result<()> {
        let (kk, hw) = (d.kh * d.kw, d.h * d.w);
        let rows = d.k * kk;
        let wc = self.alloc(&[d.c * rows])?;
        self.permute3(w.storage(), 0, [d.k, d.c, kk], [kk, rows, 1], wc.storage())?;
        let nb = self.images_per_chunk("conv2d_backward_data", d, rows * hw)?;
        let col = self.alloc(&[nb * rows * hw])?;
        for n0 in (0..d.n).step_by(nb.max(1)) {
            let nbc = nb.min(d.n - n0);
            // The unfolding of dy: source [nbc, K, OH, OW], columns over dx's H x W.
            let mut params = ConvParams {
                n: nbc as u32,
                c: d.k as u32,
                h: d.oh as u32,
                w: d.ow as u32,
                kh: d.kh as u32,
                kw: d.kw as u32,
                oh: d.h as u32,
                ow: d.w as u32,
                sh: 1,
                sw: 1,
                ph: pads[0] as u32,
                pw: pads[1] as u32,
                dh: 1,
                dw: 1,
                groups: 1,
                total: (nbc * rows * hw) as u32,
                x_off: (n0 * d.k * d.oh * d.ow) as u32,
                patch_pad: rows as u32,
                flip: 1,
                ..Default::default()
            };
            self.conv_dispatch("im2col", &kernels::IM2COL_S1_VEC4, &mut params, nbc * d.k * d.h * d.w / 4, dy, &col)?;
            let dims = MatmulDims { batch: nbc, m: d.c, n: hw, k: rows, stride_a: 0, stride_b: rows * hw, stride_c: d.c * hw };
            self.gemm(
                self.tuned_variant(&dims, MatmulSpec::default()),
                Operand::of(&wc),
                Operand::of(&col),
                Operand::at(dx, n0 * d.c * hw),
                &dims,
                MatmulSpec::default(),
            )?;
        }
        Ok(())
    }

    /// dw = sum over images of dy_g @ colᵀ_g, as one GEMM per group and chunk whose inner
    /// dimension runs over (image, position): dy is regrouped to [K, n, P] for it. With a
    /// padded patch the GEMM fills a padded dw, cropped at the end.
    pub(crate) fn conv2d_backward_filter_impl(&self, x: &GpuTensor, dy: &GpuTensor, dw: &GpuTensor, d: &ConvDims) -> Result<()> {
        let (p, patch, kg, g) = (d.p(), d.patch(), d.kg(), d.groups());
        let rows = d.patch_pad();
        let s = d.spec;
        let nt = MatmulSpec { trans_b: true, ..MatmulSpec::default() };
        // On rows of whole vec4s as they are, else on copies of x and dy padded with zero
        // columns to whole vec4s (dy's zeros add nothing; x's are its own padding), a chunk of
        // images at a time, each adding to the last.
        let widths = [d.w.next_multiple_of(4), d.ow.next_multiple_of(4)];
        let sizes = [d.c * d.h * widths[0], d.k * d.oh * widths[1]]; // per image
                                                                     // None where one image's copies exceed the column budget.
        let nb =
            if widths == [d.w, d.ow] { Some(d.n) } else { self.images_per_chunk("conv2d_backward_filter", d, sizes[0] + sizes[1]).ok() };
        let product = MatmulDims { batch: 1, m: d.k, n: rows, k: d.n * d.oh * widths[1], stride_a: 0, stride_b: 0, stride_c: 0 };
        // Its few workgroups with long sums suit a CPU's cores, not a GPU's.
        let direct = g == 1 && !d.is_pointwise() && self.ctx.is_cpu_adapter();
        if let Some(nb) = nb.filter(|&nb| {
            let bound = sizes.map(|v| (nb * v) as u64 * 4);
            direct && self.direct_applies(&product, nt, s.stride, s.dilation, widths, [d.k, 1, d.kw], s.padding[1], bound)
        }) {
            let padded = if d.kw == 4 { None } else { Some(self.alloc(&[d.k * d.c * d.kh * 4])?) };
            let out = padded.as_ref().unwrap_or(dw);
            let mut params = direct_params(d, [d.c, d.h, widths[0]], [d.k, d.oh, widths[1]], s.padding, false);
            let lanes = matmul::lanes(&self.ctx);
            let pipeline = self.pipeline::<DirectConvParams>(&kernels::CONV2D_S1_SUBGROUP_FILTER, &[("LANES", lanes as f64)])?;
            let groups = [(d.c * d.kh).div_ceil(lanes) as u32, d.k.div_ceil(16) as u32, 1];
            if widths == [d.w, d.ow] {
                self.dispatch("conv2d_direct", &pipeline, &params, &[Bind::whole(dy), Bind::whole(x), Bind::whole(out)], groups)?;
            } else {
                let x4 = self.alloc(&[nb * sizes[0]])?;
                let dy4 = self.alloc(&[nb * sizes[1]])?;
                for (chunk, n0) in (0..d.n).step_by(nb).enumerate() {
                    let nbc = nb.min(d.n - n0);
                    self.pad_rows(x.storage(), [nbc * d.c * d.h, d.w], widths[0], x4.storage(), [n0 * d.c * d.h * d.w, 0])?;
                    self.pad_rows(dy.storage(), [nbc * d.k * d.oh, d.ow], widths[1], dy4.storage(), [n0 * d.k * d.oh * d.ow, 0])?;
                    params.n = nbc as u32;
                    params.accumulate = (chunk > 0) as u32;
                    self.dispatch("conv2d_direct", &pipeline, &params, &[Bind::whole(&dy4), Bind::whole(&x4), Bind::whole(out)], groups)?;
                }
            }
            if let Some(padded) = &padded {
                self.crop_rows(padded.storage(), [d.k * d.c * d.kh, 4], d.kw, dw.storage(), [0, 0])?;
            }
            return Ok(());
        }
        let nb = self.images_per_chunk("conv2d_backward_filter", d, (g * rows * p).max(d.k * p))?;
        let col = self.alloc(&[nb * g * rows * p])?;
        let dy_k = self.alloc(&[nb * d.k * p])?;
        let padded = if rows != patch { Some(self.alloc(&[d.k * rows])?) } else { None };
        let target = padded.as_ref().unwrap_or(dw);
        // The columns with each row over the chunk's images ([g, rows, nbc, P]), and per group
        // one product with B transposed.
        for (chunk, n0) in (0..d.n).step_by(nb.max(1)).enumerate() {
            let nbc = nb.min(d.n - n0);
            if d.is_pointwise() && g == 1 && rows == patch {
                // A 1x1's unfolding is x with its image and channel axes swapped.
                self.permute3(x.storage(), n0 * d.c * p, [nbc, d.c, p], [p, nbc * p, 1], col.storage())?;
            } else {
                self.unfold(x, &col, d, n0, nbc, true)?;
            }
            // [nbc, K, P] -> [K, nbc, P]
            self.permute3(dy.storage(), n0 * d.k * p, [nbc, d.k, p], [p, nbc * p, 1], dy_k.storage())?;
            let spec = MatmulSpec { beta: if chunk == 0 { 0.0 } else { 1.0 }, ..nt };
            for gi in 0..g {
                let dims = MatmulDims { batch: 1, m: kg, n: rows, k: nbc * p, stride_a: 0, stride_b: 0, stride_c: 0 };
                self.gemm(
                    self.tuned_variant(&dims, nt),
                    Operand::at(&dy_k, gi * kg * nbc * p),
                    Operand::at(&col, gi * nbc * p * rows),
                    Operand::at(target, gi * kg * rows),
                    &dims,
                    spec,
                )?;
            }
        }
        if let Some(padded) = &padded {
            self.strided_copy(padded.storage(), 0, [d.k, patch, 1], [rows, 1, 1], [patch, 1, 1], dw.storage())?;
        }
        Ok(())
    }
}

/// The kernels' parameters for images [.., .. + nb) of a convolution `d`, `total` values
/// written, the source read from element `x_off`.
fn conv_params(d: &ConvDims, nb: usize, total: usize, x_off: usize) -> ConvParams {
    let u = |v: usize| v as u32;
    let s = d.spec;
    ConvParams {
        n: u(nb),
        c: u(d.c),
        h: u(d.h),
        w: u(d.w),
        kh: u(d.kh),
        kw: u(d.kw),
        oh: u(d.oh),
        ow: u(d.ow),
        sh: u(s.stride[0]),
        sw: u(s.stride[1]),
        ph: u(s.padding[0]),
        pw: u(s.padding[1]),
        dh: u(s.dilation[0]),
        dw: u(s.dilation[1]),
        groups: u(s.groups),
        total: u(total),
        x_off: u(x_off),
        patch_pad: u(d.patch_pad()),
        ..Default::default()
    }
}

/// conv2d_s1_subgroup's parameters for convolution `d`'s images and kernel: a source of
/// `src` [channels, rows, columns] to an output of `out` [channels, rows, columns] with
/// padding `pads`, the taps mirrored when `flip` (the backward data reads dy this way).
fn direct_params(d: &ConvDims, src: [usize; 3], out: [usize; 3], pads: [usize; 2], flip: bool) -> DirectConvParams {
    let u = |v: usize| v as u32;
    DirectConvParams {
        n: u(d.n),
        c: u(src[0]),
        h: u(src[1]),
        w: u(src[2]),
        k: u(out[0]),
        kh: u(d.kh),
        kw: u(d.kw),
        oh: u(out[1]),
        ow: u(out[2]),
        ph: u(pads[0]),
        pw: u(pads[1]),
        flip: flip as u32,
        ..Default::default()
    }
}

/// Whether im2col_s1_vec4 can unfold a source `w` wide into columns of `ow` wide rows with a
/// `kw` wide kernel and left padding `pw`: stride and dilation 1, both widths whole vec4s, and
/// every tap offset j - pw (j < kw) within [-4, 4].
fn unfolds_by_quads(stride: [usize; 2], dilation: [usize; 2], w: usize, ow: usize, kw: usize, pw: usize) -> bool {
    stride == [1, 1] && dilation == [1, 1] && w.is_multiple_of(4) && ow.is_multiple_of(4) && pw <= 4 && kw <= pw + 5
}

/// Whether im2col_same_vec4 can unfold a source of `[h, w]` planes into columns of `[oh, ow]`
/// positions (where unfolds_by_quads does not hold): stride and dilation 1, output rows as wide
/// as the source's (so each column row is a shifted plane) and at least 4 wide, and both
/// planes whole vec4s.
fn unfolds_by_shift(stride: [usize; 2], dilation: [usize; 2], [h, w]: [usize; 2], [oh, ow]: [usize; 2]) -> bool {
    stride == [1, 1] && dilation == [1, 1] && ow == w && w >= 4 && (h * w).is_multiple_of(4) && (oh * ow).is_multiple_of(4)
}
