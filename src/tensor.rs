//! A tensor: a shape (contiguous, row-major, NCHW for images) and storage that belongs to a
//! backend: `Vec<f32>` on the CPU, a pooled `GpuBuffer` on the GPU.

use std::fmt;

/// A shape and the backend's storage `S` for its `numel` f32 values, contiguous row-major.
#[derive(Clone)]
pub struct Tensor<S> {
    shape: Vec<usize>,
    pub(crate) storage: S,
}

impl<S> Tensor<S> {
    pub(crate) fn from_parts(shape: &[usize], storage: S) -> Self {
        Self { shape: shape.to_vec(), storage }
    }

    /// The dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// The backend's storage (a `Vec<f32>`, a `GpuBuffer`).
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Changes the shape without touching the data (same number of elements required).
    pub fn reshape(&mut self, shape: &[usize]) -> crate::Result<()> {
        if numel(shape) != self.numel() {
            return Err(crate::error::shape_err(
                "reshape",
                format!("{} has {} elements, {} needs {}", ShapeFmt(&self.shape), self.numel(), ShapeFmt(shape), numel(shape)),
            ));
        }
        self.shape = shape.to_vec();
        Ok(())
    }
}

impl<S> fmt::Debug for Tensor<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor{}", ShapeFmt(&self.shape))
    }
}

/// Number of elements of a shape: the product of its dimensions (1 for `[]`).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Number of elements, or `None` when it (or any partial product of the non-zero dimensions)
/// overflows `usize`.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    // Zero dimensions count as one here, so that every partial product the kernels form
    // (H * W of an empty batch, say) fits too.
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d.max(1)))?;
    Some(shape.iter().product())
}

/// `n` zeros, or an error naming the size when the host cannot allocate them (instead of
/// aborting the process).
pub fn try_zeros(n: usize) -> crate::Result<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| crate::Error::Invalid(format!("cannot allocate {n} values ({} bytes) in host memory", n as u128 * 4)))?;
    v.resize(n, 0.0);
    Ok(v)
}

/// Prints a shape as `[2, 3, 4]`.
pub struct ShapeFmt<'a>(pub &'a [usize]);

impl fmt::Display for ShapeFmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

/// Host-side tensor, the CPU backend's.
pub type CpuTensor = Tensor<Vec<f32>>;

impl CpuTensor {
    /// The values, row-major.
    pub fn data(&self) -> &[f32] {
        &self.storage
    }

    /// The values, to write in place (a CPU layer's output).
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.storage
    }
}
