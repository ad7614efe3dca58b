//! `VerifyTarget`: what verification needs from a backend beyond the `Backend` trait.
//!
//! Every runner in this folder is written once, generic over `B: VerifyTarget`, and runs the
//! same inputs on `be` and on the CPU reference. A few checks reach past the public ops: the
//! GPU keeps numbered matmul kernels and an internal permute that the suite tests one by one,
//! and tolerances of sums depend on how a backend adds. Those are the hooks below. Every one
//! has a default built from `Backend` ops alone, so a new backend gets the whole suite with
//! `impl VerifyTarget for MyBackend {}` and overrides only what it has more of.

use crate::backend::Backend;
use crate::gpu::MatmulVariant;
use crate::ops::MatmulSpec;
use crate::tensor::Tensor;
use crate::{Cpu, Gpu, Result};

/// A backend the verification suite can check against the CPU reference (module docs).
pub trait VerifyTarget: Backend {
    /// True only for the reference itself: checked against itself, results must then be
    /// identical bit for bit (`Tolerance::IDENTICAL`), not merely close.
    fn is_reference(&self) -> bool {
        false
    }

    /// c = alpha * op(a) @ op(b) + beta * c with the kernel `variant` (a request: the GPU
    /// falls back to a variant that can run the shape, see `MatmulVariant::applicable`).
    /// Default: a backend with one matmul runs it whatever the variant.
    fn matmul_variant(
        &self,
        variant: MatmulVariant,
        a: &Tensor<Self::Storage>,
        b: &Tensor<Self::Storage>,
        c: &mut Tensor<Self::Storage>,
        spec: MatmulSpec,
    ) -> Result<()> {
        let _ = variant;
        self.matmul(a, b, c, spec)
    }

    /// out[i0*s0 + i1*s1 + i2*s2] = x[i0, i1, i2] for x contiguous [d0, d1, d2] (the 3-axis
    /// permute the GPU convolution uses between layouts). Default: on the host, with the CPU
    /// twin; a backend with a permute kernel of its own overrides it so the suite tests it.
    fn permute3(&self, x: &Tensor<Self::Storage>, d: [usize; 3], s: [usize; 3], out: &mut Tensor<Self::Storage>) -> Result<()> {
        let src = self.download(x)?;
        let mut dst = vec![0.0; out.numel()];
        crate::cpu::permute::strided_copy(&src, d, [d[1] * d[2], d[2], 1], s, &mut dst);
        self.write(out, &dst)
    }

    /// x [rows, cols] to out [rows, to]: each row's first min(cols, to) values, then zeros.
    /// Default: on the host, with the CPU twin; the GPU overrides it with its pad and crop
    /// kernels (the wider side a multiple of 4).
    fn resize_rows(&self, x: &Tensor<Self::Storage>, [rows, cols]: [usize; 2], to: usize, out: &mut Tensor<Self::Storage>) -> Result<()> {
        let src = self.download(x)?;
        let mut dst = vec![0.0; rows * to];
        crate::cpu::permute::strided_copy(&src, [rows, cols.min(to), 1], [cols, 1, 1], [to, 1, 1], &mut dst);
        self.write(out, &dst)
    }

    /// The longest chain of dependent f32 additions in this backend's `sum` of n values, which
    /// the tolerance of sums derives from (`Tolerance::sum`). Default: n, a plain loop, the
    /// longest any order of additions can have.
    fn sum_depth(&self, n: usize) -> usize {
        n
    }
}

/// The reference: checked against itself, it must reproduce itself exactly.
impl VerifyTarget for Cpu {
    fn is_reference(&self) -> bool {
        true
    }
}

/// The GPU: four matmul kernels, a permute kernel, and tree-shaped sums.
impl VerifyTarget for Gpu {
    fn matmul_variant(
        &self,
        variant: MatmulVariant,
        a: &Tensor<Self::Storage>,
        b: &Tensor<Self::Storage>,
        c: &mut Tensor<Self::Storage>,
        spec: MatmulSpec,
    ) -> Result<()> {
        self.matmul_with(variant, a, b, c, spec)
    }

    fn permute3(&self, x: &Tensor<Self::Storage>, d: [usize; 3], s: [usize; 3], out: &mut Tensor<Self::Storage>) -> Result<()> {
        Gpu::permute3(self, x.storage(), 0, d, s, out.storage())
    }

    fn resize_rows(&self, x: &Tensor<Self::Storage>, [rows, cols]: [usize; 2], to: usize, out: &mut Tensor<Self::Storage>) -> Result<()> {
        if to >= cols {
            self.pad_rows(x.storage(), [rows, cols], to, out.storage(), [0, 0])
        } else {
            self.crop_rows(x.storage(), [rows, cols], to, out.storage(), [0, 0])
        }
    }

    fn sum_depth(&self, n: usize) -> usize {
        crate::gpu::reduce::sum_depth(n)
    }
}
