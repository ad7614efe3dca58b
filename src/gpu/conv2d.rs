//! Host side of the convolution: im2col (shaders/im2col.wgsl) + the matmul + col2im
//! (shaders/col2im.wgsl), one GEMM per group batched over the images of a chunk; a 1x1
//! convolution with stride 1 and no padding skips im2col and multiplies the NCHW input
//! directly. The column buffer is bounded: images are processed in chunks whose columns fit
//! `COL_BUDGET` (and the device's binding limit).
//! CPU twin: src/cpu/conv2d.rs. Test: kernels-tests/conv2d.rs. Bench: `wgtrain bench conv`.

use super::kernels::{self, ConvParams, Kernel};
use super::matmul::Operand;
use super::recorder::Bind;
use super::{Gpu, GpuTensor};
use crate::backend::Backend;
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

    /// im2col (or im2col_t) of images [n0, n0 + nb) of x into `col`, each group's patch padded
    /// to `d.patch_pad()` rows. The kernels take one row (im2col) or one cell (im2col_t) per
    /// invocation.
    fn unfold(&self, kernel: &Kernel, x: &GpuTensor, col: &GpuTensor, d: &ConvDims, n0: usize, nb: usize) -> Result<()> {
        // im2col: one row of OH*OW positions per invocation; im2col_t: one cell of patch_pad
        // values. The vec4 forms where those rows are whole vec4s.
        let (invocations, row) =
            if kernel.entry == "im2col" { (nb * d.groups() * d.patch_pad(), d.p()) } else { (d.groups() * nb * d.p(), d.patch_pad()) };
        let kernel = kernels::vec4_form(kernel).filter(|_| row.is_multiple_of(4)).unwrap_or(kernel);
        let total = nb * d.groups() * d.patch_pad() * d.p();
        self.conv_dispatch_wg("im2col", kernel, d, nb, total, invocations, 64, n0 * d.c * d.h * d.w, x, col)
    }

    /// `invocations` in workgroups of `wg` (the kernel's workgroup size), laid out in 2D.
    #[allow(clippy::too_many_arguments)]
    fn conv_dispatch_wg(
        &self,
        op: &'static str,
        kernel: &Kernel,
        d: &ConvDims,
        nb: usize,
        total: usize,
        invocations: usize,
        wg: u32,
        x_off: usize,
        src: &GpuTensor,
        dst: &GpuTensor,
    ) -> Result<()> {
        let pipeline = self.pipeline::<ConvParams>(kernel, &[])?;
        let (groups, row_stride) = super::grid::grid_2d_wg(op, invocations as u64, wg, self.max_groups())?;
        let u = |v: usize| v as u32;
        let s = d.spec;
        let params = ConvParams {
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
            row_stride,
            x_off: u(x_off),
            patch_pad: u(d.patch_pad()),
            ..Default::default()
        };
        self.dispatch(op, &pipeline, &params, &[Bind::whole(src), Bind::whole(dst)], groups)
    }

    /// y = conv(x, w) (+ bias).
    pub(crate) fn conv2d_impl(&self, x: &GpuTensor, w: &GpuTensor, bias: Option<&GpuTensor>, y: &GpuTensor, d: &ConvDims) -> Result<()> {
        let (p, kg, g) = (d.p(), d.kg(), d.groups());
        let direct = d.is_pointwise();
        // Rows of each group's patch in the GEMM: padded to a multiple of 4 on the im2col
        // path (the weights get the same zero columns); the direct path uses x as it is.
        let rows = if direct { d.patch() } else { d.patch_pad() };
        let padded_w = if rows != d.patch() { Some(self.pad_rows(w, d.k, d.patch(), rows)?) } else { None };
        let a = padded_w.as_ref().unwrap_or(w);
        let nb = if direct { d.n } else { self.images_per_chunk("conv2d", d, g * rows * p)? };
        let col = if direct { None } else { Some(self.alloc(&[nb * g * rows * p])?) };
        for n0 in (0..d.n).step_by(nb.max(1)) {
            let nbc = nb.min(d.n - n0);
            // op(B) of image i, group gi starts at base + i * stride + gi * rows * p.
            let (b, base, stride) = match &col {
                None => (x, n0 * d.c * p, d.c * p),
                Some(col) => {
                    self.unfold(&kernels::IM2COL, x, col, d, n0, nbc)?;
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
        if let Some(bias) = bias {
            self.bias_act_impl(y, bias, (d.k, p), crate::ops::Activation::Identity)?;
        }
        Ok(())
    }

    /// [rows, cols] -> [rows, padded] with zero columns.
    fn pad_rows(&self, w: &GpuTensor, rows: usize, cols: usize, padded: usize) -> Result<GpuTensor> {
        let out = self.zeros(&[rows * padded])?;
        self.strided_copy(w.storage(), 0, [rows, cols, 1], [cols, 1, 1], [padded, 1, 1], out.storage())?;
        Ok(out)
    }

    /// dx = conv_transpose(dy, w): per group Wᵀ @ dy, then col2im (skipped for 1x1).
    pub(crate) fn conv2d_backward_data_impl(&self, dy: &GpuTensor, w: &GpuTensor, dx: &GpuTensor, d: &ConvDims) -> Result<()> {
        let (p, patch, kg, kk, g) = (d.p(), d.patch(), d.kg(), d.kh * d.kw, d.groups());
        // Wᵀ per group: [g, kg, patch] -> [g, patch, kg].
        let wt = self.alloc(&[d.k * patch])?;
        self.permute3(w.storage(), 0, [g, kg, patch], [patch * kg, 1, kg], wt.storage())?;
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
                let total = nbc * d.c * d.h * d.w;
                self.conv_dispatch_wg("col2im", &kernels::COL2IM, d, nbc, total, nbc * d.c * d.h, 64, n0 * d.c * d.h * d.w, dcol, dx)?;
            }
        }
        Ok(())
    }

    /// dw = sum over images of dy_g @ colᵀ_g, as one GEMM per group and chunk whose inner
    /// dimension runs over (image, position): dy is regrouped to [K, n, P] for it. With a
    /// padded patch the GEMM fills a padded dw, cropped at the end.
    pub(crate) fn conv2d_backward_filter_impl(&self, x: &GpuTensor, dy: &GpuTensor, dw: &GpuTensor, d: &ConvDims) -> Result<()> {
        let (p, patch, kg, g) = (d.p(), d.patch(), d.kg(), d.groups());
        let rows = d.patch_pad();
        let nb = self.images_per_chunk("conv2d_backward_filter", d, (g * rows * p).max(d.k * p))?;
        let col_t = self.alloc(&[nb * g * rows * p])?;
        let dy_k = self.alloc(&[nb * d.k * p])?;
        let padded = if rows != patch { Some(self.alloc(&[d.k * rows])?) } else { None };
        let target = padded.as_ref().unwrap_or(dw);
        for (chunk, n0) in (0..d.n).step_by(nb.max(1)).enumerate() {
            let nbc = nb.min(d.n - n0);
            self.unfold(&kernels::IM2COL_T, x, &col_t, d, n0, nbc)?;
            // [nbc, K, P] -> [K, nbc, P]
            self.permute3(dy.storage(), n0 * d.k * p, [nbc, d.k, p], [p, nbc * p, 1], dy_k.storage())?;
            let spec = MatmulSpec { beta: if chunk == 0 { 0.0 } else { 1.0 }, ..MatmulSpec::default() };
            for gi in 0..g {
                let dims = MatmulDims { batch: 1, m: kg, n: rows, k: nbc * p, stride_a: 0, stride_b: 0, stride_c: 0 };
                self.gemm(
                    self.tuned_variant(&dims, MatmulSpec::default()),
                    Operand::at(&dy_k, gi * kg * nbc * p),
                    Operand::at(&col_t, gi * nbc * p * rows),
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
