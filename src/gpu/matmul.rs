//! Host side of shaders/matmul_v*.wgsl: numbered variants, one chosen per adapter.
//! CPU twin: src/cpu/matmul.rs. Test: kernels-tests/matmul.rs. Bench: benches/matmul.rs.

use super::grid::split_grid;
use super::kernels::{self, Kernel, MatmulParams};
use super::recorder::Bind;
use super::{Gpu, GpuBuffer, GpuContext, GpuTensor};
use crate::ops::{self, MatmulDims, MatmulSpec};
use crate::{Error, Result};

/// The matmul kernels, kept side by side so benchmarks can compare them on any device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulVariant {
    /// v1: one invocation per output, no reuse (baseline).
    V1Naive,
    /// v2: 64x64 tiles staged through workgroup memory, 4x4 per invocation (discrete GPUs).
    V2Tiled,
    /// v3: 4x4 register blocks straight from global memory, no barriers (CPU adapters).
    V3RegBlock,
    /// v4: 8 rows x 8 columns per lane from vec4 loads of A and B, fewest loads per FMA (llvmpipe).
    V4Lanes,
    /// v5: 16 rows x 4 columns per lane, A's rows loaded once per subgroup and shared by
    /// subgroup broadcasts (llvmpipe; needs subgroups of 8 or more, else v4).
    V5Subgroup,
}

impl MatmulVariant {
    /// Every variant, by number.
    pub const ALL: [Self; 5] = [Self::V1Naive, Self::V2Tiled, Self::V3RegBlock, Self::V4Lanes, Self::V5Subgroup];

    /// The shader's name without `matmul_` (`v2_tiled`), as benchmarks and logs show it.
    pub fn name(self) -> &'static str {
        match self {
            Self::V1Naive => "v1_naive",
            Self::V2Tiled => "v2_tiled",
            Self::V3RegBlock => "v3_regblock",
            Self::V4Lanes => "v4_lanes",
            Self::V5Subgroup => "v5_subgroup",
        }
    }

    /// One line on how the kernel works (logged when the variant is chosen).
    pub fn describe(self) -> &'static str {
        match self {
            Self::V1Naive => "one invocation per output, no reuse",
            Self::V2Tiled => "64x64 workgroup-memory tiles, 4x4 per invocation",
            Self::V3RegBlock => "4x4 register blocks, no workgroup memory or barriers",
            Self::V4Lanes => {
                "8x8 per lane from vec4 loads of A and B (needs N and K (M with A transposed) multiples of 4, not both transposed; else v3)"
            }
            Self::V5Subgroup => {
                "16x4 per lane, A's rows shared by subgroup broadcasts (needs subgroups of 8+, N and K multiples of 4, A untransposed; else v4)"
            }
        }
    }

    /// Accepts `v2_tiled`, `v2`, `2` or `tiled`.
    pub fn parse(s: &str) -> Result<Self> {
        let l = s.trim().to_lowercase();
        Self::ALL
            .into_iter()
            .find(|v| {
                let name = v.name();
                let (num, word) = name.split_once('_').unwrap_or((name, name));
                l == name || l == num || l == num[1..] || l == word
            })
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|v| v.name()).collect();
                Error::Invalid(format!("unknown matmul variant '{s}': expected one of {}", names.join(", ")))
            })
    }

    /// The variant that is fastest on this class of device: on CPU adapters (lavapipe) barriers
    /// are very expensive and every load is a loop over lanes, so v5 (fewest loads per FMA, no
    /// barriers), or v4 without subgroups, wins; on GPUs, the tiled one.
    pub fn default_for(ctx: &GpuContext) -> Self {
        match (ctx.is_cpu_adapter(), ctx.has_subgroups_of_8()) {
            (true, true) => Self::V5Subgroup,
            (true, false) => Self::V4Lanes,
            _ => Self::V2Tiled,
        }
    }

    fn kernel(self) -> &'static Kernel {
        match self {
            Self::V1Naive => &kernels::MATMUL_V1,
            Self::V2Tiled => &kernels::MATMUL_V2,
            Self::V3RegBlock => &kernels::MATMUL_V3,
            Self::V4Lanes => &kernels::MATMUL_V4,
            Self::V5Subgroup => &kernels::MATMUL_V5,
        }
    }

    /// The variant that will actually run for this shape: v4 needs N, the batch strides, the
    /// operand offsets and K (M when A is transposed) to be multiples of 4, and not both
    /// operands transposed (else v3); v5 the same with no transposed operand (else v4). On an
    /// adapter without subgroups of 8, v5 runs as v4 as well ([`Gpu::gemm`]).
    pub fn applicable(self, d: &MatmulDims, spec: MatmulSpec) -> Self {
        self.applicable_at(d, spec, [0; 3])
    }

    fn applicable_at(self, d: &MatmulDims, spec: MatmulSpec, offsets: [usize; 3]) -> Self {
        // vec4 loads run along K (A, or B transposed), along M (A transposed) and along N (B, C).
        let along = match (spec.trans_a, spec.trans_b) {
            (false, false) | (false, true) => d.k,
            (true, false) => d.m,
            (true, true) => 1,
        };
        let aligned = [d.n, along, d.stride_a, d.stride_b, d.stride_c].iter().chain(&offsets).all(|v| v % 4 == 0);
        match self {
            Self::V5Subgroup if spec.trans_a => Self::V4Lanes.applicable_at(d, spec, offsets),
            Self::V4Lanes | Self::V5Subgroup if !aligned || (spec.trans_a && spec.trans_b) => Self::V3RegBlock,
            v => v,
        }
    }

    /// Rows and columns of C covered by one workgroup (v4 and v5: of `lanes` invocations).
    fn tile(self, lanes: usize) -> (usize, usize) {
        match self {
            Self::V1Naive => (16, 16),
            Self::V2Tiled => (64, 64),
            Self::V3RegBlock => (32, 32),
            Self::V4Lanes => (8, 8 * lanes),
            Self::V5Subgroup => (16, 4 * lanes),
        }
    }
}

fn u32_of(op: &'static str, what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Limit { op, what: what.into(), got: v as u64, limit: u32::MAX as u64 })
}

/// Invocations per v4 or v5 workgroup on this adapter: on a CPU adapter one SIMD group of
/// llvmpipe's (8), so that a workgroup is one subgroup; elsewhere 64. One width per device
/// keeps one pipeline per variant and layout: choosing it per product (the fewest padded
/// columns) ran no faster on llvmpipe and compiled a pipeline per width, ~0.2 s each on a cold
/// start.
pub(crate) fn lanes(ctx: &GpuContext) -> usize {
    if ctx.is_cpu_adapter() {
        8
    } else {
        64
    }
}

/// A matrix operand inside a buffer: its first element.
#[derive(Clone, Copy)]
pub(crate) struct Operand<'a> {
    pub buf: &'a GpuBuffer,
    pub offset: usize,
}

impl<'a> Operand<'a> {
    pub fn of(t: &'a GpuTensor) -> Self {
        Self { buf: t.storage(), offset: 0 }
    }

    pub fn at(t: &'a GpuTensor, offset: usize) -> Self {
        Self { buf: t.storage(), offset }
    }
}

impl Gpu {
    /// `Backend::matmul` with an explicit variant (tests and benchmarks check every one).
    pub fn matmul_with(&self, variant: MatmulVariant, a: &GpuTensor, b: &GpuTensor, c: &mut GpuTensor, spec: MatmulSpec) -> Result<()> {
        let d = ops::matmul_dims(a.shape(), b.shape(), c.shape(), spec)?;
        self.gemm(variant, Operand::of(a), Operand::of(b), Operand::of(c), &d, spec)
    }

    /// The matmul every op builds on: operands at element offsets in their buffers, batch
    /// strides and sizes in `d` (checked by the caller), C written in place.
    pub(crate) fn gemm(
        &self,
        variant: MatmulVariant,
        a: Operand<'_>,
        b: Operand<'_>,
        c: Operand<'_>,
        d: &MatmulDims,
        spec: MatmulSpec,
    ) -> Result<()> {
        if d.batch * d.m * d.n == 0 {
            return Ok(());
        }
        // Bind only what the product touches, each from an aligned start: a product over part
        // of a tensor (a chunk of images of a convolution's output) binds that part.
        let touched = |op: &Operand<'_>, matrix: usize, stride: usize| self.operand_view(op, 0, (d.batch - 1) * stride + matrix);
        let (av, a_at) = touched(&a, d.m * d.k, d.stride_a);
        let (bv, b_at) = touched(&b, d.k * d.n, d.stride_b);
        let (cv, c_at) = touched(&c, d.m * d.n, d.stride_c);
        let (a, b, c) = (Operand { buf: &av, offset: a_at }, Operand { buf: &bv, offset: b_at }, Operand { buf: &cv, offset: c_at });
        if [a.buf, b.buf, c.buf].iter().any(|buf| buf.bytes() > self.max_binding_bytes()) {
            return self.gemm_in_parts(variant, a, b, c, d, spec);
        }
        // Indices in the kernels are u32.
        for (what, buf) in [("elements of a", a.buf), ("elements of b", b.buf), ("elements of c", c.buf)] {
            u32_of("matmul", what, buf.bytes() as usize / 4)?;
        }
        let variant = match variant {
            MatmulVariant::V5Subgroup if !self.ctx.has_subgroups_of_8() => MatmulVariant::V4Lanes,
            v => v,
        };
        let variant = variant.applicable_at(d, spec, [a.offset, b.offset, c.offset]);
        let trans = [("TRANS_A", spec.trans_a as u8 as f64), ("TRANS_B", spec.trans_b as u8 as f64)];
        let lanes = lanes(&self.ctx);
        let constants = match variant {
            MatmulVariant::V4Lanes => [&[("LANES", lanes as f64)][..], &trans].concat(),
            MatmulVariant::V5Subgroup => vec![("LANES", lanes as f64), trans[1]],
            _ => trans.to_vec(),
        };
        let (tm, tn) = variant.tile(lanes);
        let pipeline = self.pipeline::<MatmulParams>(variant.kernel(), &constants)?;
        let groups = [
            u32_of("matmul", "column tiles", d.n.div_ceil(tn))?,
            u32_of("matmul", "row tiles", d.m.div_ceil(tm))?,
            u32_of("matmul", "batch", d.batch)?,
        ];
        let binds = [Bind::buffer(a.buf), Bind::buffer(b.buf), Bind::buffer(c.buf)];
        for (base, count) in split_grid(groups, self.max_groups()) {
            let params = MatmulParams {
                m: d.m as u32,
                n: d.n as u32,
                k: d.k as u32,
                batch_base: base[2],
                m_base: base[1] * tm as u32,
                n_base: base[0] * tn as u32,
                stride_a: d.stride_a as u32,
                stride_b: d.stride_b as u32,
                stride_c: d.stride_c as u32,
                alpha: spec.alpha,
                beta: spec.beta,
                a_off: a.offset as u32,
                b_off: b.offset as u32,
                c_off: c.offset as u32,
                ..Default::default()
            };
            self.dispatch("matmul", &pipeline, &params, &binds, count)?;
        }
        Ok(())
    }
}

impl Gpu {
    /// A product with an operand or result larger than one storage binding (AlexNet's first
    /// fully connected layer: a 4096 x 9216 weight, 144 MiB, on an adapter that binds at most
    /// 128 MiB), as products over parts that each bind less. Only runs of whole rows are
    /// contiguous, so a part is a block of rows of the stored matrices:
    /// - A stored untransposed: blocks of M, rows of A and of C, B bound whole;
    /// - A stored transposed and B not: blocks of K, rows of both, each part adding to C (beta
    ///   1 after the first);
    /// - otherwise A (small in every layer's product) is first transposed into a scratch copy
    ///   to reach one of those; and where B is stored transposed and C overwritten (beta 0),
    ///   Cᵀ = B op(A)ᵀ is computed by blocks of B's rows and transposed into C.
    ///
    /// Anything else (a batch of products, or no form whose parts fit) is refused with
    /// [`Error::Limit`], as before.
    fn gemm_in_parts(
        &self,
        variant: MatmulVariant,
        a: Operand<'_>,
        b: Operand<'_>,
        c: Operand<'_>,
        d: &MatmulDims,
        spec: MatmulSpec,
    ) -> Result<()> {
        let max = self.max_binding_bytes();
        // Whether an operand's first `len` elements, or a new scratch tensor of `len`, fit one
        // binding.
        let fits = |op: &Operand<'_>, len: usize| self.operand_view(op, 0, len).0.bytes() <= max;
        let scratch_fits = |len: usize| len as u64 * 4 <= max;
        let (m, n, k) = (d.m, d.n, d.k);
        let refuse = || {
            let largest = [a.buf, b.buf, c.buf].iter().map(|buf| buf.bytes()).max().unwrap_or(0);
            Err(Error::Limit { op: "matmul", what: "a storage binding in bytes".into(), got: largest, limit: max })
        };
        if d.batch != 1 {
            return refuse();
        }
        if !spec.trans_a && fits(&b, k * n) {
            return self.gemm_row_blocks(variant, a, b, c, d, spec, false);
        }
        if spec.trans_a && !spec.trans_b && fits(&c, m * n) {
            return self.gemm_row_blocks(variant, a, b, c, d, spec, true);
        }
        // A's transpose in a scratch tensor: [M, K] from stored [K, M], or [K, M] from [M, K].
        let transposed = |rows: usize, cols: usize| -> Result<GpuTensor> {
            let (src, at) = self.operand_view(&a, 0, rows * cols);
            let t = self.alloc(&[rows * cols])?;
            self.permute3(&src, at, [1, rows, cols], [0, 1, rows], t.storage())?;
            Ok(t)
        };
        let a_small = fits(&a, m * k) && scratch_fits(m * k);
        if spec.trans_a && a_small && fits(&b, k * n) {
            let at = transposed(k, m)?;
            return self.gemm_row_blocks(variant, Operand::of(&at), b, c, d, MatmulSpec { trans_a: false, ..spec }, false);
        }
        if !spec.trans_a && !spec.trans_b && a_small && fits(&c, m * n) {
            let at = transposed(m, k)?;
            return self.gemm_row_blocks(variant, Operand::of(&at), b, c, d, MatmulSpec { trans_a: true, ..spec }, true);
        }
        let (cv, slack) = self.operand_view(&c, 0, m * n);
        if spec.trans_b && spec.beta == 0.0 && slack == 0 && cv.bytes() <= max && scratch_fits(m * n) && fits(&a, m * k) {
            // Cᵀ [N, M] = B (stored [N, K]) @ op(A)ᵀ, then C = (Cᵀ)ᵀ.
            let ct = self.alloc(&[n * m])?;
            let dims = MatmulDims { batch: 1, m: n, n: m, k, stride_a: 0, stride_b: 0, stride_c: 0 };
            let swapped = MatmulSpec { trans_a: false, trans_b: !spec.trans_a, ..spec };
            self.gemm_row_blocks(variant, b, a, Operand::of(&ct), &dims, swapped, false)?;
            return self.permute3(ct.storage(), 0, [1, n, m], [0, 1, n], &cv);
        }
        refuse()
    }

    /// `gemm` over blocks of rows: of M (A stored [M, K] and C; B whole) or, with `by_k`, of K
    /// (A stored [K, M] and B stored [K, N]; C whole, added to after the first block). Every
    /// operand is bound as a view that starts aligned and holds no more than it needs.
    #[allow(clippy::too_many_arguments)]
    fn gemm_row_blocks(
        &self,
        variant: MatmulVariant,
        a: Operand<'_>,
        b: Operand<'_>,
        c: Operand<'_>,
        d: &MatmulDims,
        spec: MatmulSpec,
        by_k: bool,
    ) -> Result<()> {
        let max = (self.max_binding_bytes() / 4) as usize;
        // Elements per row of the blocked operands (A and C by M, A and B by K), and the
        // whole one's (B or C).
        let (widths, total, whole) = if by_k { ([d.m, d.n], d.k, d.m * d.n) } else { ([d.k, d.n], d.m, d.k * d.n) };
        let widest = widths[0].max(widths[1]).max(1);
        let rows = max.saturating_sub(self.binding_align()) / widest;
        if rows == 0 {
            let got = (widest * 4) as u64;
            return Err(Error::Limit { op: "matmul", what: "one row of an operand in bytes".into(), got, limit: max as u64 * 4 });
        }
        for (i, r0) in (0..total).step_by(rows).enumerate() {
            let r = rows.min(total - r0);
            let (av, a_off) = self.operand_view(&a, r0 * widths[0], r * widths[0]);
            let ((bv, b_off), (cv, c_off), dims) = if by_k {
                (self.operand_view(&b, r0 * widths[1], r * widths[1]), self.operand_view(&c, 0, whole), MatmulDims { k: r, ..*d })
            } else {
                (self.operand_view(&b, 0, whole), self.operand_view(&c, r0 * widths[1], r * widths[1]), MatmulDims { m: r, ..*d })
            };
            let spec = if by_k && i > 0 { MatmulSpec { beta: 1.0, ..spec } } else { spec };
            let op = |buf, offset| Operand { buf, offset };
            self.gemm(variant, op(&av, a_off), op(&bv, b_off), op(&cv, c_off), &dims, spec)?;
        }
        Ok(())
    }

    /// The view of `op`'s buffer holding its elements [start, start + len), starting at the
    /// aligned offset at or before them, and where in the view they begin.
    fn operand_view(&self, op: &Operand<'_>, start: usize, len: usize) -> (GpuBuffer, usize) {
        let first = op.offset + start;
        let slack = (op.buf.offset() as usize / 4 + first) % self.binding_align();
        (op.buf.view(((first - slack) * 4) as u64, ((slack + len) * 4) as u64), slack)
    }
}
