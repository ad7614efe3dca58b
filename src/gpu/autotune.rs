//! Kernels chosen by measurement. On first use of an adapter, each matmul shape class (the
//! operands' transposes times two sizes) is timed with every candidate variant on a
//! representative product, and the fastest is kept; the choice is cached per adapter, driver
//! and wgtrain version in a small JSON file in the user's cache folder, so later processes
//! read it instead of measuring. A forced variant (`--matmul-variant`, `WGTRAIN_MATMUL`) still
//! wins, and without tuning the device-type rule (`MatmulVariant::default_for`) applies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{Gpu, GpuContext, MatmulVariant};
use crate::ops::{MatmulDims, MatmulSpec};
use crate::{Backend, Result};

/// How a device's kernels are chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tuning {
    /// By the device-type rule alone (no measurement; the library's default).
    #[default]
    Rule,
    /// Read the cache; measure and write it when this adapter and driver are not in it.
    Cached,
    /// Measure now; neither read nor write the cache.
    Fresh,
}

/// Representative products (m, n, k) of the two size classes. The pipelines timed are the ones
/// the products of a step use (one per variant and layout, whatever the product's width).
const SIZES: [(&str, [usize; 3]); 2] = [("small", [16, 256, 32]), ("large", [256, 256, 256])];
/// Operand layouts: (name, transpose a, transpose b).
const LAYOUTS: [(&str, bool, bool); 3] = [("nn", false, false), ("tn", true, false), ("nt", false, true)];

/// The class of a product: `nn-large`, `tn-small`, ... (below 2^20 multiply-adds is small;
/// both transposed counts as `tn`).
pub fn shape_class(d: &MatmulDims, spec: MatmulSpec) -> String {
    let layout = match (spec.trans_a, spec.trans_b) {
        (false, false) => "nn",
        (false, true) => "nt",
        _ => "tn",
    };
    let macs = d.batch.saturating_mul(d.m).saturating_mul(d.n).saturating_mul(d.k);
    let size = if macs < 1 << 20 { "small" } else { "large" };
    format!("{layout}-{size}")
}

/// The choice per shape class, and where it came from.
#[derive(Clone, Debug, Default)]
pub struct MatmulChoice {
    /// Variant per class (`nn-large` → v4_lanes); a class not in it uses `fallback`.
    pub by_class: BTreeMap<String, MatmulVariant>,
    /// The forced or device-rule variant.
    pub fallback: Option<MatmulVariant>,
    /// `forced`, `device rule`, `cache FILE`, `measured in N ms`.
    pub source: String,
    /// Problems met on the way (an unreadable cache), also logged as warnings.
    pub warnings: Vec<String>,
}

impl MatmulChoice {
    /// The variant for a product.
    pub fn variant(&self, d: &MatmulDims, spec: MatmulSpec, default: MatmulVariant) -> MatmulVariant {
        if self.by_class.is_empty() {
            return self.fallback.unwrap_or(default);
        }
        self.by_class.get(&shape_class(d, spec)).copied().or(self.fallback).unwrap_or(default)
    }
}

/// What identifies an adapter, its driver and the kernels in the cache: a driver update, or
/// a change to any matmul shader, measures again.
pub fn device_key(ctx: &GpuContext) -> String {
    let i = &ctx.info;
    format!(
        "{} | {:?} | vendor {:#x} device {:#x} | driver {} {} | wgtrain {} kernels {:016x}",
        i.name,
        i.backend,
        i.vendor,
        i.device,
        i.driver,
        i.driver_info,
        env!("CARGO_PKG_VERSION"),
        kernels_fingerprint()
    )
}

/// FNV-1a of the matmul shaders' text (the candidates the cache chose among).
fn kernels_fingerprint() -> u64 {
    super::kernels::SHADERS
        .iter()
        .filter(|s| s.name.starts_with("matmul_"))
        .flat_map(|s| s.name.bytes().chain(s.source.bytes()))
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The cache file: `$WGTRAIN_CACHE_DIR`, else `$XDG_CACHE_HOME/wgtrain`, else `~/.cache/wgtrain`.
pub fn cache_file() -> Option<PathBuf> {
    let dir = std::env::var_os("WGTRAIN_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("wgtrain")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("wgtrain")))?;
    Some(dir.join("kernels.json"))
}

/// Every device's choices in a cache file (empty when there is none; an error when it is
/// unreadable).
fn read_cache(path: &Path) -> std::result::Result<BTreeMap<String, BTreeMap<String, String>>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: not valid JSON ({e})", path.display()))?;
    if v.get("format").and_then(serde_json::Value::as_u64) != Some(1) {
        return Err(format!("{}: expected \"format\": 1", path.display()));
    }
    serde_json::from_value(v.get("devices").cloned().unwrap_or_default()).map_err(|e| format!("{}: 'devices': {e}", path.display()))
}

/// Whether the kernel cache already holds this adapter and driver: they were measured in an
/// earlier process here, so the driver's own shader cache is likely warm too (see `gpu::ahead`).
pub(crate) fn measured_before(ctx: &GpuContext, tuning: Tuning, file: Option<&Path>) -> bool {
    tuning == Tuning::Cached
        && file
            .map(Path::to_path_buf)
            .or_else(cache_file)
            .and_then(|path| read_cache(&path).ok())
            .is_some_and(|devices| devices.contains_key(&device_key(ctx)))
}

impl Gpu {
    /// Chooses the matmul variant per shape class as `tuning` says (see the module).
    pub(crate) fn choose_kernels(&self, tuning: Tuning, forced: Option<MatmulVariant>, file: Option<&Path>) -> MatmulChoice {
        if let Some(v) = forced {
            return MatmulChoice { fallback: Some(v), source: "forced".into(), ..Default::default() };
        }
        let rule =
            MatmulChoice { fallback: Some(MatmulVariant::default_for(&self.ctx)), source: "device rule".into(), ..Default::default() };
        if tuning == Tuning::Rule {
            return rule;
        }
        let key = device_key(&self.ctx);
        let path = if tuning == Tuning::Cached { file.map(Path::to_path_buf).or_else(cache_file) } else { None };
        let mut warnings = Vec::new();
        let mut all = BTreeMap::new();
        if let Some(path) = &path {
            match read_cache(path) {
                Ok(devices) => {
                    if let Some(found) = devices.get(&key) {
                        let by_class: Option<BTreeMap<String, MatmulVariant>> =
                            found.iter().map(|(c, v)| MatmulVariant::parse(v).ok().map(|v| (c.clone(), v))).collect();
                        match by_class {
                            Some(by_class) if !by_class.is_empty() => {
                                return MatmulChoice {
                                    by_class,
                                    fallback: rule.fallback,
                                    source: format!("cache {}", path.display()),
                                    warnings,
                                }
                            }
                            _ => {
                                warnings.push(format!("{}: this device's entry names an unknown variant: measuring again", path.display()))
                            }
                        }
                    }
                    all = devices;
                }
                Err(e) => warnings.push(format!("ignoring the kernel cache: {e}; measuring again")),
            }
        }
        for w in &warnings {
            log::warn!("{w}");
        }
        let t0 = Instant::now();
        let by_class = match self.measure() {
            Ok(m) => m,
            Err(e) => {
                let w = format!("timing the matmul variants failed ({e}): using the device rule");
                log::warn!("{w}");
                warnings.push(w);
                return MatmulChoice { warnings, ..rule };
            }
        };
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        log::info!("matmul variants timed in {ms:.0} ms: {by_class:?}");
        if let Some(path) = &path {
            all.insert(key, by_class.iter().map(|(c, v)| (c.clone(), v.name().to_string())).collect());
            let text = serde_json::json!({"format": 1, "devices": all}).to_string();
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let written = std::fs::create_dir_all(&dir)
                .map_err(|e| crate::Error::Io { path: dir, source: e })
                .and_then(|_| crate::atomic::write(path, text.as_bytes()));
            if let Err(e) = written {
                log::info!("cannot write the kernel cache {}: {e}", path.display());
            }
        }
        MatmulChoice { by_class, fallback: rule.fallback, source: format!("measured in {ms:.0} ms"), warnings }
    }

    /// Times every candidate on each class's representative product; the fastest per class.
    fn measure(&self) -> Result<BTreeMap<String, MatmulVariant>> {
        struct Case {
            class: String,
            a: super::GpuTensor,
            b: super::GpuTensor,
            c: super::GpuTensor,
            spec: MatmulSpec,
            candidates: Vec<MatmulVariant>,
        }
        let mut rng = crate::rng::Rng::new(9);
        let mut cases = Vec::new();
        let mut out = BTreeMap::new();
        for (size, [m, n, k]) in SIZES {
            for (layout, ta, tb) in LAYOUTS {
                let a_shape = if ta { [k, m] } else { [m, k] };
                let b_shape = if tb { [n, k] } else { [k, n] };
                let spec = MatmulSpec { trans_a: ta, trans_b: tb, ..MatmulSpec::default() };
                // v1 is the baseline, never the fastest. On CPU adapters v2's barriers make it
                // several times slower than v3, and v3 3.5x slower than v4 (BENCHMARKS.md), so
                // they are timed on GPUs only: every candidate compiled costs a cold start time.
                // The representative shapes are multiples of 4, so v4 and v5 run in their own
                // forms; v5 only where it exists (no transposed operand, subgroups of 8).
                let candidates: Vec<MatmulVariant> = if self.ctx.is_cpu_adapter() {
                    vec![MatmulVariant::V4Lanes, MatmulVariant::V5Subgroup]
                } else {
                    vec![MatmulVariant::V2Tiled, MatmulVariant::V3RegBlock, MatmulVariant::V4Lanes, MatmulVariant::V5Subgroup]
                };
                let dims = MatmulDims { batch: 1, m, n, k, stride_a: 0, stride_b: 0, stride_c: 0 };
                let candidates = candidates
                    .into_iter()
                    .filter(|&v| v != MatmulVariant::V5Subgroup || (self.ctx.has_subgroups_of_8() && v.applicable(&dims, spec) == v))
                    .collect();
                cases.push(Case {
                    class: format!("{layout}-{size}"),
                    a: self.upload(&a_shape, &rng.vec(m * k, -1.0, 1.0))?,
                    b: self.upload(&b_shape, &rng.vec(k * n, -1.0, 1.0))?,
                    c: self.zeros(&[m, n])?,
                    spec,
                    candidates,
                });
            }
        }
        // Every candidate runs once first, all in one submission: that run compiles the
        // pipelines (v4's depends on N), where the driver compiles late, several at once (see
        // `gpu::ahead`). It is not a measurement.
        for case in &mut cases {
            for &v in &case.candidates {
                self.matmul_with(v, &case.a, &case.b, &mut case.c, case.spec)?;
            }
        }
        self.sync()?;
        if let Some(ahead) = &self.ahead {
            // The helper may still be compiling a candidate the queue compiled too: timed runs
            // would share the cores with it.
            ahead.wait_idle(std::time::Duration::from_secs(30));
        }
        for case in &mut cases {
            let mut best = (f64::INFINITY, MatmulVariant::V4Lanes);
            let mut run = |v: MatmulVariant| -> Result<f64> {
                let t = Instant::now();
                self.matmul_with(v, &case.a, &case.b, &mut case.c, case.spec)?;
                self.sync()?;
                Ok(t.elapsed().as_secs_f64())
            };
            for &v in &case.candidates {
                // A timed run far behind the best is not repeated.
                let mut time = run(v)?;
                if time < 1.5 * best.0 {
                    time = time.min(run(v)?);
                }
                if time < best.0 {
                    best = (time, v);
                }
            }
            out.insert(case.class.clone(), best.1);
        }
        Ok(out)
    }
}
