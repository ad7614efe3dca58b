//! `wgtrain bench`: kernel and training throughput, through the library's `bench` module
//! (shared with `cargo bench`). `--json FILE` writes each one's figures as JSON too.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::PossibleValuesParser;
use clap::Subcommand;
use wgtrain::bench::{self, TrainBenchSetup};
use wgtrain::gpu::MatmulVariant;
use wgtrain::{Backend, Cpu, Gpu, GpuOptions, Optimizer};

use crate::args::ComputeBackend;
use crate::parallel::{OpenGpu, ParallelArgs};
use wgtrain::distributed::Replicas;

#[derive(Subcommand)]
pub enum BenchWhat {
    /// GFLOP/s of each matmul variant at M = N = K = size
    Matmul {
        /// M = N = K
        #[arg(long, default_value_t = 1024)]
        size: usize,
        /// Timed runs per variant
        #[arg(long, default_value_t = 7)]
        runs: usize,
        /// Comma-separated variants, or `all`
        #[arg(long, default_value = "all")]
        variants: String,
        /// Also write the figures as JSON to this file
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// GFLOP/s of convolution forward and backward (3x3 im2col path and 1x1 direct path)
    Conv {
        /// Timed runs per case
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Also write the figures as JSON to this file
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Training images/s of a model per batch size, its planned memory, the peak RSS, and the time to the first step
    Train(Box<TrainBenchArgs>),
    /// Time and memory bandwidth of one fused optimizer step, for every optimizer
    Optimizer {
        /// Parameters in the arena
        #[arg(long, default_value_t = 1_000_000)]
        params: usize,
        /// Timed runs per optimizer
        #[arg(long, default_value_t = 9)]
        runs: usize,
        /// Also write the figures as JSON to this file
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Data-parallel step time, throughput and efficiency on N GPUs, modelled (ring all-reduce of the gradients)
    Scaling(Box<ScalingBenchArgs>),
}

#[derive(clap::Args)]
pub struct TrainBenchArgs {
    /// Batch sizes to measure
    #[arg(long, default_value = "16,64,256", value_delimiter = ',')]
    batch_sizes: Vec<usize>,
    /// Timed windows per batch size (the median is reported)
    #[arg(long, default_value_t = 5)]
    windows: usize,
    /// Steps per window
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Where the ops run
    #[arg(long, value_enum, default_value = "gpu")]
    backend: ComputeBackend,
    #[arg(long, default_value = "default", help = format!("Model: a zoo name ({}) or a .toml model file", wgtrain::nn::zoo::NAMES.join(", ")))]
    model: String,
    #[arg(long, value_parser = |s: &str| s.parse::<wgtrain::data::Source>().map_err(|e| e.to_string()))]
    #[arg(help = format!(
        "Images of a data set ({}) instead of synthetic input of the model's own shape",
        wgtrain::data::Source::ALL.map(|s| s.name()).join(", ")
    ))]
    dataset: Option<wgtrain::data::Source>,
    /// Folder with the data set's files (not needed for shapes)
    #[arg(long)]
    data: Option<PathBuf>,
    /// Images of the built-in shapes data set to generate
    #[arg(long, default_value_t = 2000)]
    train_size: usize,
    /// Image side for --dataset folder
    #[arg(long, default_value_t = 32)]
    image_size: usize,
    /// Optimizer of every step (its preset)
    #[arg(long, default_value = "adam", value_parser = PossibleValuesParser::new(Optimizer::PRESETS))]
    optimizer: String,
    /// Also write one CSV row per batch size (every figure and the settings) to this file
    #[arg(long, value_name = "FILE.csv")]
    csv: Option<PathBuf>,
    /// Also draw images/s against the batch size as this PNG
    #[arg(long, value_name = "FILE.png")]
    plot: Option<PathBuf>,
    /// Also write the figures and settings as JSON to this file
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    #[command(flatten)]
    parallel: ParallelArgs,
    /// Also time every kernel of one step per batch size (a second device opened with profiling; `wgtrain profile` for the whole table) and report the time per op
    #[arg(long)]
    profile: bool,
}

/// Refuses an output file whose folder does not exist before minutes of measuring.
fn check_out(flag: &str, path: &Option<PathBuf>) -> anyhow::Result<()> {
    if let Some(p) = path {
        if p.is_dir() {
            anyhow::bail!("{flag} {}: is a folder, expected a file", p.display());
        }
        let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
        if parent.is_some_and(|d| !d.is_dir()) {
            anyhow::bail!("{flag} {}: cannot write: the folder does not exist", p.display());
        }
    }
    Ok(())
}

pub fn run(what: &BenchWhat, gpu_on: OpenGpu<'_>, gpu_options: &GpuOptions, started: std::time::Instant) -> anyhow::Result<ExitCode> {
    let gpu = || gpu_on(None);
    match what {
        BenchWhat::Matmul { size, runs, variants, json } => {
            check_out("--json", json)?;
            let gpu = gpu()?;
            let list: Vec<MatmulVariant> = if variants == "all" {
                MatmulVariant::ALL.to_vec()
            } else {
                variants.split(',').map(MatmulVariant::parse).collect::<Result<_, _>>()?
            };
            let r = bench::matmul_report(&gpu, &list, *size, *size, *size, *runs)?;
            if let Some(p) = json {
                bench::write_json(p, &bench::matmul_json(gpu.adapter_name(), gpu.matmul_variant(), &r))?;
            }
        }
        BenchWhat::Train(a) => {
            for (flag, p) in [("--csv", &a.csv), ("--plot", &a.plot), ("--json", &a.json)] {
                check_out(flag, p)?;
            }
            if a.batch_sizes.contains(&0) {
                anyhow::bail!("--batch-sizes: batch size 0, expected at least 1");
            }
            let setup = train_setup(a)?;
            if a.profile && (a.backend == ComputeBackend::Cpu || a.parallel.devices.is_some() || a.parallel.distributed.is_some()) {
                anyhow::bail!("--profile: only on one GPU (not with --backend cpu, --devices or --distributed)");
            }
            let run = |g: Option<&Gpu>, replicas: Option<Replicas>| match g {
                Some(g) => train(g, &setup, a, started, replicas, gpu_options),
                None => train(&Cpu, &setup, a, started, replicas, gpu_options),
            };
            crate::parallel::replicated(&a.parallel, a.backend, gpu_on, run)?;
        }
        BenchWhat::Conv { runs, json } => {
            check_out("--json", json)?;
            let gpu = gpu()?;
            let r = bench::conv_report(&gpu, &bench::CONV_CASES, *runs)?;
            if let Some(p) = json {
                bench::write_json(p, &bench::conv_json(gpu.adapter_name(), *runs, &r))?;
            }
        }
        BenchWhat::Optimizer { params, runs, json } => {
            check_out("--json", json)?;
            let gpu = gpu()?;
            let r = bench::optimizer_report(&gpu, *params, *runs)?;
            if let Some(p) = json {
                bench::write_json(p, &bench::optimizer_json(gpu.adapter_name(), *params, &r))?;
            }
        }
        BenchWhat::Scaling(a) => scaling(a, gpu, started)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The model, input, optimizer and images the flags ask for.
fn train_setup(a: &TrainBenchArgs) -> anyhow::Result<TrainBenchSetup> {
    let optimizer = Optimizer::preset(&a.optimizer)?;
    let Some(source) = a.dataset else {
        if a.data.is_some() {
            anyhow::bail!("--data needs --dataset (which data set the folder holds)");
        }
        let input = wgtrain::nn::zoo::natural_input(&a.model).unwrap_or([1, 28, 28]);
        let classes = if a.model == "alexnet" { 1000 } else { 10 };
        return Ok(TrainBenchSetup { spec: wgtrain::nn::zoo::model(&a.model, classes)?, input, classes, optimizer, data: None });
    };
    crate::args::check_data_flags(source, a.data.as_deref(), 0.0, a.image_size)?;
    let (train, test) = wgtrain::data::load(source, a.data.as_deref(), 1, a.train_size, a.image_size)?;
    let splits = wgtrain::data::split(train, test, 0.0, 1)?;
    let data = splits.train;
    let classes = data.classes.len();
    Ok(TrainBenchSetup { spec: wgtrain::nn::zoo::model(&a.model, classes)?, input: data.shape, classes, optimizer, data: Some(data) })
}

fn train<B: Backend>(
    be: &B,
    setup: &TrainBenchSetup,
    a: &TrainBenchArgs,
    started: std::time::Instant,
    replicas: Option<Replicas>,
    profiled_options: &GpuOptions,
) -> anyhow::Result<()> {
    let mut r = bench::train_report_parallel(be, setup, &a.batch_sizes, a.windows, a.steps, started, replicas.as_ref())?;
    if replicas.is_some_and(|r| r.rank() != 0) {
        return Ok(()); // replica 0 writes the files
    }
    if a.profile {
        // The same adapter again, opened with profiling, beside the one that was timed.
        let plain = Gpu::new(&GpuOptions { profile: false, ..profiled_options.clone() })?;
        let profiled = Gpu::new(&GpuOptions { profile: true, ..profiled_options.clone() })?;
        println!("where a step's time goes (kernels timed one by one, mean of 2 steps):");
        for row in &mut r {
            let p = wgtrain::profile::profile_training(&plain, &profiled, &setup.spec, &setup.input, row.batch, &setup.optimizer, 2)?;
            print!("{}", wgtrain::profile::op_summary(&p));
            row.profile = Some(p);
        }
    }
    let device = be.name();
    if let Some(p) = &a.csv {
        wgtrain::atomic::write(p, bench::train_csv(setup, &device, a.windows, a.steps, &r).as_bytes())?;
        println!("wrote {}", p.display());
    }
    if let Some(p) = &a.plot {
        bench::train_plot(p, setup, &device, &r)?;
        println!("wrote {}", p.display());
    }
    if let Some(p) = &a.json {
        bench::write_json(p, &bench::train_json(setup, &device, a.windows, a.steps, &r))?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct ScalingBenchArgs {
    #[arg(long, default_value = "default", help = format!("Model: a zoo name ({}) or a .toml model file", wgtrain::nn::zoo::NAMES.join(", ")))]
    model: String,
    /// Samples per GPU per step (weak scaling: N GPUs train on N times this)
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// GPU counts to model
    #[arg(long, default_value = "1,2,4,8,16,32,64", value_delimiter = ',')]
    gpus: Vec<usize>,
    /// Compute time of one step on one GPU, in ms (e.g. measured on another machine); without it, a step is measured on this device
    #[arg(long, value_name = "MS")]
    compute_ms: Option<f64>,
    /// Parameters to exchange instead of the model's own count
    #[arg(long, value_name = "P")]
    params: Option<usize>,
    /// Assumed interconnects, comma-separated (nvlink, pcie4, ib100, 10gbe), or `all`
    #[arg(long, default_value = "all")]
    interconnect: String,
    /// Optimizer of the measured step (its preset)
    #[arg(long, default_value = "adam", value_parser = PossibleValuesParser::new(Optimizer::PRESETS))]
    optimizer: String,
    /// Timed windows of the measured step (the median is used)
    #[arg(long, default_value_t = 3)]
    windows: usize,
    /// Steps per timed window
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Also write the settings, the assumed links and every point as JSON to this file
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also draw the efficiency against the number of GPUs, one line per interconnect, as this PNG
    #[arg(long, value_name = "FILE.png")]
    plot: Option<PathBuf>,
}

/// `bench scaling`: the model's parameters counted from its graph (nothing allocated), the
/// step's compute time given or measured like `bench train` at the per-GPU batch, then the
/// analytic model of `wgtrain::scaling` per interconnect.
fn scaling(a: &ScalingBenchArgs, gpu: impl Fn() -> anyhow::Result<Gpu>, started: std::time::Instant) -> anyhow::Result<()> {
    use wgtrain::scaling::{self, Interconnect, ScalingSetup};
    for (flag, p) in [("--plot", &a.plot), ("--json", &a.json)] {
        check_out(flag, p)?;
    }
    if a.batch_size == 0 {
        anyhow::bail!("--batch-size 0: expected at least 1 sample per GPU");
    }
    if a.gpus.is_empty() || a.gpus.contains(&0) {
        anyhow::bail!("--gpus {}: expected GPU counts of at least 1", a.gpus.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","));
    }
    if let Some(ms) = a.compute_ms.filter(|ms| !(ms.is_finite() && *ms > 0.0)) {
        anyhow::bail!("--compute-ms {ms}: expected a positive number of milliseconds");
    }
    let links = Interconnect::parse_list(&a.interconnect).map_err(|e| anyhow::anyhow!("--interconnect: {e}"))?;
    let input = wgtrain::nn::zoo::natural_input(&a.model).unwrap_or([1, 28, 28]);
    let classes = if a.model == "alexnet" { 1000 } else { 10 };
    let spec = wgtrain::nn::zoo::model(&a.model, classes)?;
    let counted: usize = spec.infer(&input)?.iter().map(|l| l.weights + l.biases).sum();
    let params = a.params.unwrap_or(counted);
    let (compute_s, compute_source) = match a.compute_ms {
        Some(ms) => (ms / 1e3, "given with --compute-ms".to_string()),
        None => {
            let gpu = gpu()?;
            let setup = TrainBenchSetup { spec: spec.clone(), input, classes, optimizer: Optimizer::preset(&a.optimizer)?, data: None };
            let r = bench::train_report_with(&gpu, &setup, &[a.batch_size], a.windows, a.steps, started)?;
            let ips = r.first().map_or(0.0, |r| r.images_per_s);
            (a.batch_size as f64 / ips, format!("measured on {}", gpu.adapter_name()))
        }
    };
    let model = match a.params {
        Some(p) if p != counted => format!("{} [parameter count given]", spec.name),
        _ => spec.name.clone(),
    };
    let setup = ScalingSetup { model, input, params, batch: a.batch_size, compute_s, compute_source };
    let mut rows = Vec::new();
    for l in &links {
        rows.extend(scaling::model(params, a.batch_size, compute_s, &a.gpus, l)?);
    }
    scaling::print_table(&setup, &links, &rows);
    if let Some(p) = &a.plot {
        scaling::plot(p, &setup, &links, &rows)?;
        println!("wrote {}", p.display());
    }
    if let Some(p) = &a.json {
        bench::write_json(p, &scaling::json(&setup, &links, &rows))?;
        println!("wrote {}", p.display());
    }
    Ok(())
}
