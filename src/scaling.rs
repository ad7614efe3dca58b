//! Data-parallel scaling, modelled (not measured): the time of one training step on N GPUs
//! that each hold a replica of the model, train on their own batch and then average their
//! gradients with a ring all-reduce — what `wgtrain bench scaling` prints, writes and draws.
//!
//! # The model
//!
//! Weak scaling: every GPU trains on a batch of `b` samples, so a step of N GPUs trains on
//! `N·b` samples and takes the time of one GPU's step plus the gradient exchange.
//!
//! - **All-reduce** of the gradient arena (`P` parameters in f32, 4 bytes each) over a ring of
//!   N GPUs: a reduce-scatter then an all-gather, each of `N-1` steps in which every GPU sends
//!   (and receives) one `1/N` chunk. Bytes sent per GPU: `2(N-1)/N · 4P`. Time:
//!   `t_comm = 2(N-1)/N · 4P / B + 2(N-1) · α`, with `B` the link's bandwidth per direction
//!   and `α` the latency of one ring step. N = 1 moves nothing and takes no time.
//! - **Step, no overlap**: `t(N) = t_compute + t_comm(N)`, the gradients exchanged after the
//!   whole backward pass and before the optimizer's update (what a plain implementation does).
//! - **Step, backward overlapped (a bound)**: `t_overlap(N) = max(t_compute, t_forward +
//!   t_comm(N))` with `t_forward = t_compute / 3`: the exchange can start once the forward pass
//!   is done (the first gradients appear early in the backward pass) and run alongside the
//!   rest of the step; a training step is taken as three forward passes' worth of work (the
//!   backward pass computes two products per forward product). It is optimistic: the last
//!   gradients (the first layer's) appear only at the end of the backward pass, the optimizer
//!   waits for them, and the exchange slows the kernels it runs beside.
//! - **Throughput** `N·b / t(N)` samples/s; **efficiency** `t(1) / t(N)` (the throughput as a
//!   share of N times one GPU's; 1 at N = 1).
//!
//! Not modelled: the optimizer's update (it is part of `t_compute` where that was measured),
//! hierarchical rings (GPUs within a node on NVLink, nodes on the network: here every link of
//! the ring is the same), gradient compression, stragglers and the data loader.
//!
//! # Interconnects
//!
//! [`INTERCONNECTS`] are assumptions, rounded figures of what such links achieve in an
//! all-reduce, not measurements of this project: see each one's [`Interconnect::note`].

use crate::{Error, Result};

/// Bytes per parameter in the gradient arena (f32).
pub const BYTES_PER_PARAM: f64 = 4.0;

/// A link between GPUs, as the model sees it: a bandwidth and a latency per ring step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interconnect {
    /// Short name for `--interconnect` (`pcie4`, `nvlink`, `ib100`, `10gbe`).
    pub name: &'static str,
    /// What it stands for and where its figures come from.
    pub note: &'static str,
    /// Bandwidth per direction achieved in an all-reduce, bytes per second (assumed).
    pub bandwidth: f64,
    /// Latency of one step of the ring, seconds (assumed).
    pub latency: f64,
}

/// The interconnects `--interconnect all` compares. Every figure is an assumption (rounded
/// figures for such links, not measured here).
pub const INTERCONNECTS: [Interconnect; 4] = [
    Interconnect {
        name: "nvlink",
        note: "NVLink between GPUs of one node: assumed 150 GB/s per direction, 3 us per ring step",
        bandwidth: 150e9,
        latency: 3e-6,
    },
    Interconnect {
        name: "pcie4",
        note: "PCIe 4.0 x16, staged through host memory (no peer-to-peer): assumed 12 GB/s, 10 us per ring step",
        bandwidth: 12e9,
        latency: 10e-6,
    },
    Interconnect {
        name: "ib100",
        note: "100 Gb/s InfiniBand (EDR) between nodes, one GPU per node: assumed 11 GB/s, 5 us per ring step",
        bandwidth: 11e9,
        latency: 5e-6,
    },
    Interconnect {
        name: "10gbe",
        note: "10 Gb/s Ethernet (TCP) between nodes: assumed 1.1 GB/s, 50 us per ring step",
        bandwidth: 1.1e9,
        latency: 50e-6,
    },
];

impl Interconnect {
    /// The preset called `name` (see [`INTERCONNECTS`]); an error lists the names.
    pub fn preset(name: &str) -> Result<Interconnect> {
        INTERCONNECTS.iter().find(|i| i.name == name).copied().ok_or_else(|| {
            Error::Invalid(format!(
                "interconnect {name:?}: expected one of {} (or all)",
                INTERCONNECTS.iter().map(|i| i.name).collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// The presets a comma-separated list names, in its order, or all of them for `all`.
    pub fn parse_list(list: &str) -> Result<Vec<Interconnect>> {
        if list.trim() == "all" {
            return Ok(INTERCONNECTS.to_vec());
        }
        list.split(',').map(|n| Interconnect::preset(n.trim())).collect()
    }
}

/// Bytes each GPU sends in a ring all-reduce of `params` f32 values among `gpus` GPUs:
/// `2(N-1)/N · 4 · params` (0 for one GPU). `gpus` must be at least 1.
pub fn allreduce_bytes(params: usize, gpus: usize) -> f64 {
    let n = gpus.max(1) as f64;
    2.0 * (n - 1.0) / n * BYTES_PER_PARAM * params as f64
}

/// Seconds of a ring all-reduce of `params` f32 values among `gpus` GPUs over `link`:
/// [`allreduce_bytes`] / bandwidth + 2(N-1) · latency (0 for one GPU).
pub fn allreduce_seconds(params: usize, gpus: usize, link: &Interconnect) -> f64 {
    let steps = 2.0 * (gpus.max(1) - 1) as f64;
    allreduce_bytes(params, gpus) / link.bandwidth + steps * link.latency
}

/// The share of a training step taken by its forward pass in the overlap bound (one forward
/// product for every two of the backward pass).
pub const FORWARD_SHARE: f64 = 1.0 / 3.0;

/// One point of the model: N GPUs on one interconnect.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ScalingPoint {
    /// Number of GPUs (replicas).
    pub gpus: usize,
    /// The interconnect's name.
    pub interconnect: String,
    /// Bytes each GPU sends in the all-reduce of one step.
    pub allreduce_bytes_per_gpu: f64,
    /// Seconds of that all-reduce.
    pub comm_s: f64,
    /// Seconds of one step, no overlap: compute + all-reduce.
    pub step_s: f64,
    /// Seconds of one step with the all-reduce overlapped with the backward pass (a bound):
    /// max(compute, compute/3 + all-reduce).
    pub step_overlap_s: f64,
    /// Samples per second of all GPUs together, no overlap.
    pub samples_per_s: f64,
    /// Samples per second of all GPUs together, backward overlapped.
    pub samples_per_s_overlap: f64,
    /// t(1) / t(N), no overlap.
    pub efficiency: f64,
    /// t(1) / t_overlap(N).
    pub efficiency_overlap: f64,
}

impl ScalingPoint {
    /// Whether the all-reduce takes longer than the compute of the step.
    pub fn comm_dominates(&self, compute_s: f64) -> bool {
        self.comm_s > compute_s
    }
}

/// The model at each GPU count of `gpus` on `link`, for `params` parameters, a per-GPU batch of
/// `batch` samples and `compute_s` seconds of compute per step on one GPU. Errors name the
/// value: a GPU count or batch of 0, a compute time that is not a positive finite number.
pub fn model(params: usize, batch: usize, compute_s: f64, gpus: &[usize], link: &Interconnect) -> Result<Vec<ScalingPoint>> {
    if !(compute_s.is_finite() && compute_s > 0.0) {
        return Err(Error::Invalid(format!("compute time {compute_s} s per step: expected a positive number")));
    }
    if batch == 0 {
        return Err(Error::Invalid("batch size 0 per GPU: expected at least 1".into()));
    }
    if let Some(bad) = gpus.iter().find(|&&n| n == 0) {
        return Err(Error::Invalid(format!("{bad} GPUs: expected at least 1")));
    }
    let t1 = compute_s; // one GPU exchanges nothing
    Ok(gpus
        .iter()
        .map(|&n| {
            let comm = allreduce_seconds(params, n, link);
            let step = compute_s + comm;
            let step_overlap = compute_s.max(FORWARD_SHARE * compute_s + comm);
            let samples = (n * batch) as f64;
            ScalingPoint {
                gpus: n,
                interconnect: link.name.to_string(),
                allreduce_bytes_per_gpu: allreduce_bytes(params, n),
                comm_s: comm,
                step_s: step,
                step_overlap_s: step_overlap,
                samples_per_s: samples / step,
                samples_per_s_overlap: samples / step_overlap,
                efficiency: t1 / step,
                efficiency_overlap: t1 / step_overlap,
            }
        })
        .collect())
}

/// What was modelled: the model's name and size, the per-GPU batch, and the compute time and
/// where it came from. Titles and files say it.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalingSetup {
    /// The model's name (zoo name or file).
    pub model: String,
    /// Shape of one input sample [C, H, W].
    pub input: [usize; 3],
    /// Trained values: the gradient arena's length.
    pub params: usize,
    /// Samples per GPU per step.
    pub batch: usize,
    /// Seconds of one step's compute on one GPU.
    pub compute_s: f64,
    /// Where `compute_s` came from: "measured on DEVICE" or "given with --compute-ms".
    pub compute_source: String,
}

/// Prints the table of `wgtrain bench scaling`: one row per interconnect and GPU count, with
/// the bytes, the all-reduce's time, the step's (no overlap, then overlapped), the throughput,
/// the efficiency (both), and `comm > compute` where the exchange takes longer than the compute.
pub fn print_table(setup: &ScalingSetup, links: &[Interconnect], rows: &[ScalingPoint]) {
    println!(
        "data-parallel scaling of model {} ({} parameters, {} MB of f32 gradients), modelled: batch {} per GPU, compute {} ms per step ({})",
        setup.model,
        crate::nn::spec::group(setup.params),
        fmt_mb(BYTES_PER_PARAM * setup.params as f64),
        setup.batch,
        fmt_ms(setup.compute_s),
        setup.compute_source
    );
    println!("ring all-reduce, step = compute + all-reduce; overlap: max(compute, compute/3 + all-reduce). Assumed links:");
    for l in links {
        println!("  {:<7} {}", l.name, l.note);
    }
    println!(
        "{:>5} {:<8} {:>17} {:>10} {:>10} {:>12} {:>14} {:>8} {:>9}",
        "GPUs", "link", "all-reduce MB/GPU", "comm ms", "step ms", "overlap ms", "images/s", "eff %", "overlap %"
    );
    for r in rows {
        let flag = if r.comm_dominates(setup.compute_s) { "  comm > compute" } else { "" };
        println!(
            "{:>5} {:<8} {:>17} {:>10.3} {:>10.3} {:>12.3} {:>14.1} {:>8.1} {:>9.1}{flag}",
            r.gpus,
            r.interconnect,
            fmt_mb(r.allreduce_bytes_per_gpu),
            r.comm_s * 1e3,
            r.step_s * 1e3,
            r.step_overlap_s * 1e3,
            r.samples_per_s,
            100.0 * r.efficiency,
            100.0 * r.efficiency_overlap
        );
    }
}

/// Seconds as milliseconds with four or five significant figures (0.08721, 27.817, 332.97).
fn fmt_ms(seconds: f64) -> String {
    let ms = seconds * 1e3;
    match ms {
        ms if ms >= 100.0 => format!("{ms:.2}"),
        ms if ms >= 1.0 => format!("{ms:.3}"),
        ms => format!("{ms:.4}"),
    }
}

/// Megabytes (10⁶ bytes) with three decimals.
fn fmt_mb(bytes: f64) -> String {
    format!("{:.3}", bytes / 1e6)
}

/// The JSON of `bench scaling --json`: `{"benchmark": "scaling", "settings": {...},
/// "interconnects": [...], "results": [...]}`, times in seconds, bytes per GPU per step.
pub fn json(setup: &ScalingSetup, links: &[Interconnect], rows: &[ScalingPoint]) -> serde_json::Value {
    let links: Vec<_> = links
        .iter()
        .map(|l| serde_json::json!({ "name": l.name, "note": l.note, "bandwidth_bytes_per_s": l.bandwidth, "latency_s": l.latency }))
        .collect();
    serde_json::json!({
        "benchmark": "scaling",
        "settings": {
            "model": setup.model,
            "input": setup.input,
            "params": setup.params,
            "batch_per_gpu": setup.batch,
            "compute_s": setup.compute_s,
            "compute_source": setup.compute_source,
            "bytes_per_param": BYTES_PER_PARAM,
            "forward_share": FORWARD_SHARE,
            "step": "compute + ring all-reduce (no overlap)",
            "step_overlap": "max(compute, forward_share * compute + all-reduce)",
        },
        "interconnects": links,
        "results": rows,
    })
}

/// The PNG of `bench scaling --plot`: efficiency (%) against the number of GPUs (log 2 axis),
/// one line per interconnect, in two panels (no overlap; backward overlapped), titled with the
/// model, its parameters, the batch and the compute time used.
pub fn plot(path: &std::path::Path, setup: &ScalingSetup, links: &[Interconnect], rows: &[ScalingPoint]) -> Result<()> {
    use crate::plot::{save_panels, LinePlot, Scale, Series};
    let panel = |title: &str, eff: fn(&ScalingPoint) -> f64| LinePlot {
        title: title.into(),
        x_label: "GPUs (replicas)".into(),
        y_label: "scaling efficiency t(1)/t(N) (%)".into(),
        x_scale: Scale::Log2,
        series: links
            .iter()
            .map(|l| {
                let points = rows.iter().filter(|r| r.interconnect == l.name).map(|r| (r.gpus as f64, 100.0 * eff(r))).collect();
                Series::new(format!("{} ({:.1} GB/s, {} us)", l.name, l.bandwidth / 1e9, l.latency * 1e6), points)
            })
            .collect(),
        markers: true,
        ..LinePlot::default()
    };
    let title = format!(
        "Data-parallel scaling, modelled: {} ({:.2} M parameters), batch {} per GPU, ring all-reduce\ncompute {} ms per step ({})",
        setup.model,
        setup.params as f64 / 1e6,
        setup.batch,
        fmt_ms(setup.compute_s),
        setup.compute_source
    );
    save_panels(
        path,
        &title,
        &[
            panel("step = compute + all-reduce", |r| r.efficiency),
            panel("all-reduce overlapped with backward (bound)", |r| r.efficiency_overlap),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: Interconnect = Interconnect { name: "test", note: "", bandwidth: 1e9, latency: 1e-6 };

    #[test]
    fn one_gpu_exchanges_nothing_and_is_fully_efficient() {
        let r = model(1_000_000, 64, 0.01, &[1], &LINK).unwrap();
        assert_eq!(r[0].allreduce_bytes_per_gpu, 0.0);
        assert_eq!(r[0].comm_s, 0.0);
        assert_eq!(r[0].step_s, 0.01);
        assert_eq!(r[0].efficiency, 1.0);
        assert_eq!(r[0].efficiency_overlap, 1.0);
        assert!((r[0].samples_per_s - 6400.0).abs() < 1e-9);
    }

    #[test]
    fn bytes_and_time_match_the_formula_by_hand() {
        // 1000 parameters = 4000 bytes. N = 2: 2·1/2·4000 = 4000 bytes, 2 ring steps.
        // N = 4: 2·3/4·4000 = 6000 bytes, 6 ring steps.
        assert_eq!(allreduce_bytes(1000, 2), 4000.0);
        assert_eq!(allreduce_bytes(1000, 4), 6000.0);
        let t2 = allreduce_seconds(1000, 2, &LINK);
        let t4 = allreduce_seconds(1000, 4, &LINK);
        assert!((t2 - (4e-6 + 2e-6)).abs() < 1e-15, "{t2}");
        assert!((t4 - (6e-6 + 6e-6)).abs() < 1e-15, "{t4}");
        // A step of 10 µs compute on 4 GPUs: 22 µs; efficiency 10/22; overlapped:
        // max(10, 10/3 + 12) = 15.333 µs.
        let r = model(1000, 8, 10e-6, &[4], &LINK).unwrap();
        assert!((r[0].step_s - 22e-6).abs() < 1e-15);
        assert!((r[0].efficiency - 10.0 / 22.0).abs() < 1e-12);
        assert!((r[0].step_overlap_s - (10.0 / 3.0 + 12.0) * 1e-6).abs() < 1e-15);
        assert!((r[0].samples_per_s - 32.0 / 22e-6).abs() < 1e-3);
    }

    #[test]
    fn efficiency_decreases_with_more_gpus_on_every_link() {
        let gpus = [1, 2, 4, 8, 16, 32, 64];
        for link in INTERCONNECTS {
            let r = model(270_000, 64, 0.005, &gpus, &link).unwrap();
            for w in r.windows(2) {
                assert!(
                    w[1].efficiency < w[0].efficiency,
                    "{}: {} GPUs {} >= {} GPUs {}",
                    link.name,
                    w[1].gpus,
                    w[1].efficiency,
                    w[0].gpus,
                    w[0].efficiency
                );
                assert!(w[1].efficiency_overlap <= w[0].efficiency_overlap);
                assert!(w[1].allreduce_bytes_per_gpu > w[0].allreduce_bytes_per_gpu);
            }
            for p in &r {
                // Overlap never hurts and never beats the compute alone.
                assert!(p.step_overlap_s <= p.step_s && p.step_overlap_s >= 0.005);
            }
        }
        // A faster link is never less efficient.
        let fast = model(270_000, 64, 0.005, &gpus, &Interconnect::preset("nvlink").unwrap()).unwrap();
        let slow = model(270_000, 64, 0.005, &gpus, &Interconnect::preset("10gbe").unwrap()).unwrap();
        assert!(fast.iter().zip(&slow).skip(1).all(|(f, s)| f.efficiency > s.efficiency));
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        let e = model(10, 64, 0.0, &[1], &LINK).unwrap_err().to_string();
        assert!(e.contains("compute time 0"), "{e}");
        assert!(model(10, 64, f64::NAN, &[1], &LINK).is_err());
        let e = model(10, 0, 0.01, &[1], &LINK).unwrap_err().to_string();
        assert!(e.contains("batch size 0"), "{e}");
        let e = model(10, 1, 0.01, &[1, 0], &LINK).unwrap_err().to_string();
        assert!(e.contains("0 GPUs"), "{e}");
        let e = Interconnect::parse_list("nvlink,token-ring").unwrap_err().to_string();
        assert!(e.contains("token-ring") && e.contains("pcie4"), "{e}");
        assert_eq!(Interconnect::parse_list("all").unwrap().len(), INTERCONNECTS.len());
    }
}
