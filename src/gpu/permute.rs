//! Host side of shaders/permute.wgsl. CPU twin: src/cpu/permute.rs.

use super::grid::{grid_2d, grid_2d_wg};
use super::kernels::{self, Kernel, PermuteParams};
use super::recorder::Bind;
use super::{Gpu, GpuBuffer};
use crate::Result;

impl Gpu {
    /// dst[i0*s0 + i1*s1 + i2*s2] = src[in_off + (i0*d1 + i1)*d2 + i2]   (src read contiguously)
    pub(crate) fn permute3(&self, src: &GpuBuffer, in_off: usize, d: [usize; 3], s: [usize; 3], dst: &GpuBuffer) -> Result<()> {
        self.strided_copy(src, in_off, d, [d[1] * d[2], d[2], 1], s, dst)
    }

    /// dst[i0*s0 + i1*s1 + i2*s2] = src[in_off + i0*t0 + i1*t1 + i2*t2]
    pub(crate) fn strided_copy(
        &self,
        src: &GpuBuffer,
        in_off: usize,
        d: [usize; 3],
        t: [usize; 3],
        s: [usize; 3],
        dst: &GpuBuffer,
    ) -> Result<()> {
        let total = d[0] * d[1] * d[2];
        if total == 0 {
            return Ok(());
        }
        // Rows of 32 or more: a 3-D grid, no division per element; else the flat index.
        let max = self.max_groups() as usize;
        let grid = d[2] >= 32 && d[1] <= max && d[0] <= max;
        // Rows contiguous on both sides, every length, stride and offset a multiple of 4: the
        // grid on vec4s (sizes passed in vec4s).
        let vec4 = grid && s[2] == 1 && t[2] == 1 && [d[2], s[0], s[1], t[0], t[1], in_off].iter().all(|v| v % 4 == 0);
        // CPU adapters, rows of 4 to 63 values that are not whole vec4s: one row per invocation.
        let rows = !vec4 && self.ctx.is_cpu_adapter() && (4..64).contains(&d[2]);
        let q = if vec4 { 4 } else { 1 };
        let kernel = match (vec4, rows, grid) {
            (true, _, _) => &kernels::PERMUTE3_GRID_VEC4,
            (false, true, _) => &kernels::PERMUTE3_ROWS,
            (false, false, true) => &kernels::PERMUTE3_GRID,
            (false, false, false) => &kernels::PERMUTE3,
        };
        let pipeline = self.pipeline::<PermuteParams>(kernel, &[])?;
        let (mut groups, row_stride) = if rows {
            grid_2d_wg("permute", (d[0] * d[1]) as u64, 64, self.max_groups())?
        } else {
            grid_2d("permute", total as u64, self.max_groups())?
        };
        if grid && !rows {
            groups = [(d[2] / q).div_ceil(64) as u32, d[1] as u32, d[0] as u32];
        }
        let u = |v: usize| v as u32;
        let params = PermuteParams {
            d0: u(d[0]),
            d1: u(d[1]),
            d2: u(d[2] / q),
            s0: u(s[0] / q),
            s1: u(s[1] / q),
            s2: u(s[2]),
            total: u(total),
            row_stride,
            in_off: u(in_off / q),
            t0: u(t[0] / q),
            t1: u(t[1] / q),
            t2: u(t[2]),
        };
        self.dispatch("permute", &pipeline, &params, &[Bind::buffer(src), Bind::buffer(dst)], groups)
    }

    /// [rows, cols] -> [rows, padded] (padded a multiple of 4, at least cols) with zeros after
    /// each row's values; `src` read from element `at[0]`, `dst` written from element `at[1]`
    /// (a multiple of 4).
    pub(crate) fn pad_rows(&self, src: &GpuBuffer, [rows, cols]: [usize; 2], padded: usize, dst: &GpuBuffer, at: [usize; 2]) -> Result<()> {
        debug_assert!(padded.is_multiple_of(4) && padded >= cols && at[1].is_multiple_of(4));
        self.resize_rows(&kernels::PAD_ROWS_VEC4, src, [rows, cols], padded, dst, at)
    }

    /// [rows, padded] -> [rows, cols] (padded a multiple of 4, at least cols): the first cols of
    /// each row; `src` read from element `at[0]` (a multiple of 4), `dst` written from element
    /// `at[1]`.
    pub(crate) fn crop_rows(
        &self,
        src: &GpuBuffer,
        [rows, padded]: [usize; 2],
        cols: usize,
        dst: &GpuBuffer,
        at: [usize; 2],
    ) -> Result<()> {
        debug_assert!(padded.is_multiple_of(4) && padded >= cols && at[0].is_multiple_of(4));
        self.resize_rows(&kernels::CROP_ROWS_VEC4, src, [rows, cols], padded, dst, [at[0] / 4, at[1]])
    }

    fn resize_rows(
        &self,
        kernel: &Kernel,
        src: &GpuBuffer,
        [rows, cols]: [usize; 2],
        padded: usize,
        dst: &GpuBuffer,
        at: [usize; 2],
    ) -> Result<()> {
        if rows == 0 {
            return Ok(());
        }
        let pipeline = self.pipeline::<PermuteParams>(kernel, &[])?;
        let (groups, row_stride) = grid_2d_wg("permute", rows as u64, 64, self.max_groups())?;
        let u = |v: usize| v as u32;
        let params =
            PermuteParams { d0: u(rows), d1: u(cols), d2: u(padded / 4), row_stride, in_off: u(at[0]), s0: u(at[1]), ..Default::default() };
        self.dispatch("permute", &pipeline, &params, &[Bind::buffer(src), Bind::buffer(dst)], groups)
    }
}
