//! The `wgtrain` command line. `wgtrain --help` lists the commands.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use wgtrain::gpu::{list_adapters, Gpu, GpuOptions, MatmulVariant};
use wgtrain::verify;

#[derive(Parser)]
#[command(
    name = "wgtrain",
    version,
    about = "Train CNNs with WGSL compute shaders on any GPU (or lavapipe), checked against a CPU reference"
)]
struct Cli {
    /// Adapter to use: an index from `wgtrain devices` or part of its name (default: the best one)
    #[arg(long, global = true, env = "WGTRAIN_DEVICE")]
    device: Option<String>,
    /// Matmul kernel variant (v1_naive, v2_tiled, v3_regblock; default: chosen per device)
    #[arg(long, global = true, env = "WGTRAIN_MATMUL")]
    matmul_variant: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a CNN (default: the default CNN on the built-in shapes data set, no download)
    Train(Box<TrainArgs>),
    /// Loss, accuracy, per-class accuracy and confusion matrix of a checkpoint on a data set
    Eval {
        #[arg(long)]
        checkpoint: std::path::PathBuf,
        #[command(flatten)]
        data: DataArgs,
        #[arg(long, value_enum, default_value = "test")]
        split: SplitChoice,
        #[arg(long, value_enum, default_value = "gpu")]
        backend: ComputeBackend,
    },
    /// Top-k classes with probabilities for images, from a checkpoint
    Predict {
        #[arg(long)]
        checkpoint: std::path::PathBuf,
        /// Image files (PNG, JPEG)
        #[arg(required = true)]
        images: Vec<std::path::PathBuf>,
        #[arg(long, default_value_t = 3)]
        top_k: usize,
        #[arg(long, value_enum, default_value = "gpu")]
        backend: ComputeBackend,
    },
    /// Write a PNG grid of augmented training samples (what the model is fed)
    AugmentPreview {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long, default_value = "augment-preview.png")]
        out: std::path::PathBuf,
        #[arg(long, default_value_t = 32)]
        count: usize,
        #[arg(long, default_value_t = 0)]
        crop_pad: usize,
        #[arg(long)]
        hflip: bool,
        #[arg(long, default_value_t = 0.0)]
        noise: f32,
        #[arg(long, default_value_t = 0.0)]
        mixup: f32,
        #[arg(long, default_value_t = 0.0)]
        cutmix: f32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Per-layer shapes, parameters, multiply-accumulates and memory of a model
    Summary {
        #[arg(long, default_value = "default")]
        model: String,
        /// Input shape C,H,W
        #[arg(long, default_value = "1,28,28")]
        input: String,
        /// Classes of the last layer (default: 1000 for alexnet, 10 otherwise)
        #[arg(long)]
        classes: Option<usize>,
    },
    /// List every GPU adapter wgpu can see (WGPU_BACKEND restricts the backends)
    Devices,
    /// Check every kernel on the chosen device against the CPU reference; exit 1 on any failure
    Verify {
        /// Also run the large cases
        #[arg(long)]
        large: bool,
        /// Seed of the random inputs
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Check reference case files instead (JSON; files or folders, repeatable)
        #[arg(long = "case", value_name = "FILE|DIR")]
        cases: Vec<std::path::PathBuf>,
        /// Backends to check the case files on
        #[arg(long, value_enum, default_value = "all")]
        backend: BackendChoice,
    },
    /// Measure kernels (median of timed runs, pipeline creation excluded)
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(clap::Args, Debug)]
struct TrainArgs {
    /// Model: a zoo name (default, lenet5, vgg, alexnet)
    #[arg(long, default_value = "default")]
    model: String,
    #[arg(long, value_enum, default_value = "shapes")]
    dataset: wgtrain::data::Source,
    /// Folder with the data set's files (not needed for shapes)
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Samples per step: 1 (stochastic), N (mini-batch) or `full` (batch gradient descent)
    #[arg(long, default_value = "64")]
    batch_size: wgtrain::train::BatchSize,
    #[arg(long, value_enum, default_value = "adam")]
    optimizer: OptimizerChoice,
    /// Learning rate (default: the optimizer's PyTorch default)
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f32>,
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    weight_decay: f32,
    /// SGD/RMSprop momentum
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    momentum: f32,
    #[arg(long, value_enum, default_value = "constant")]
    schedule: wgtrain::train::Schedule,
    /// Epochs per step of the step schedule
    #[arg(long, default_value_t = 10)]
    step_size: usize,
    /// Factor per step of the step schedule
    #[arg(long, default_value_t = 0.1)]
    gamma: f32,
    /// Linear warm-up epochs
    #[arg(long, default_value_t = 0)]
    warmup_epochs: usize,
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f32,
    /// Clip gradients to this global norm
    #[arg(long)]
    clip_norm: Option<f32>,
    /// Random crop after padding by this many pixels
    #[arg(long, default_value_t = 0)]
    crop_pad: usize,
    /// Random horizontal flips
    #[arg(long)]
    hflip: bool,
    /// Gaussian input noise (standard deviation, on normalised inputs)
    #[arg(long, default_value_t = 0.0)]
    noise: f32,
    /// Mixup alpha (0: off)
    #[arg(long, default_value_t = 0.0)]
    mixup: f32,
    /// Cutmix alpha (0: off)
    #[arg(long, default_value_t = 0.0)]
    cutmix: f32,
    /// Override the rate of every dropout layer
    #[arg(long)]
    dropout: Option<f32>,
    /// Early stopping: epochs without a better validation figure (0: off)
    #[arg(long, default_value_t = 0)]
    patience: usize,
    /// The validation figure early stopping and --restore-best watch
    #[arg(long, value_enum, default_value = "loss")]
    monitor: wgtrain::train::Monitor,
    /// Put back the best validation epoch's parameters at the end
    #[arg(long)]
    restore_best: bool,
    /// Share of the training files held out for validation
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    /// Training images of the built-in shapes data set (its test set is a fifth of that)
    #[arg(long, default_value_t = 10_000)]
    train_size: usize,
    /// Image side for --dataset folder
    #[arg(long, default_value_t = 32)]
    image_size: usize,
    #[arg(long, value_enum, default_value = "gpu")]
    backend: ComputeBackend,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the final metrics as JSON
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Save a checkpoint (safetensors) here after every epoch and on Ctrl-C
    #[arg(long)]
    checkpoint: Option<std::path::PathBuf>,
    /// Continue the run saved in this checkpoint (same data set and seed)
    #[arg(long)]
    resume: Option<std::path::PathBuf>,
    /// Append one CSV line of metrics per epoch to this file
    #[arg(long)]
    log: Option<std::path::PathBuf>,
}

/// Where data comes from (shared by eval and augment-preview).
#[derive(clap::Args, Debug)]
struct DataArgs {
    #[arg(long, value_enum, default_value = "shapes")]
    dataset: wgtrain::data::Source,
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    #[arg(long, default_value_t = 10_000)]
    train_size: usize,
    #[arg(long, default_value_t = 32)]
    image_size: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum SplitChoice {
    Train,
    Val,
    Test,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum OptimizerChoice {
    Sgd,
    Momentum,
    Nesterov,
    Adagrad,
    Adadelta,
    Rmsprop,
    Adam,
    Adamw,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ComputeBackend {
    Gpu,
    Cpu,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendChoice {
    All,
    Cpu,
    Gpu,
}

#[derive(Subcommand)]
enum BenchWhat {
    /// GFLOP/s of each matmul variant at M = N = K = size
    Matmul {
        #[arg(long, default_value_t = 1024)]
        size: usize,
        /// Timed runs per variant
        #[arg(long, default_value_t = 7)]
        runs: usize,
        /// Comma-separated variants, or `all`
        #[arg(long, default_value = "all")]
        variants: String,
    },
    /// GFLOP/s of convolution forward and backward (3x3 im2col path and 1x1 direct path)
    Conv {
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Training images/s of the default CNN per batch size, and the time to the first step
    Train {
        #[arg(long, default_value = "16,64,256", value_delimiter = ',')]
        batch_sizes: Vec<usize>,
        /// Timed windows per batch size (the median is reported)
        #[arg(long, default_value_t = 5)]
        windows: usize,
        /// Steps per window
        #[arg(long, default_value_t = 5)]
        steps: usize,
        #[arg(long, value_enum, default_value = "gpu")]
        backend: ComputeBackend,
    },
    /// Time and memory bandwidth of one fused optimizer step, for every optimizer
    Optimizer {
        /// Parameters in the arena
        #[arg(long, default_value_t = 1_000_000)]
        params: usize,
        #[arg(long, default_value_t = 9)]
        runs: usize,
    },
}

/// When the process started (the clock of "time to the first step").
fn started() -> std::time::Instant {
    *START.get_or_init(std::time::Instant::now)
}

static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

fn main() -> ExitCode {
    started();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).format_timestamp(None).init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn gpu(cli: &Cli) -> anyhow::Result<Gpu> {
    Ok(Gpu::new(&GpuOptions { device: cli.device.clone(), matmul_variant: cli.matmul_variant.clone(), ..Default::default() })?)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Train(args) => {
            let report = match args.backend {
                ComputeBackend::Gpu => run_training(&gpu(&cli)?, args)?,
                ComputeBackend::Cpu => run_training(&wgtrain::Cpu, args)?,
            };
            if let Some(path) = &args.json {
                let text = serde_json::to_string_pretty(&report)?;
                std::fs::write(path, text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            }
            if report.interrupted {
                println!(
                    "interrupted: continue with --resume {}",
                    args.checkpoint.as_ref().map_or("FILE".into(), |p| p.display().to_string())
                );
                return Ok(ExitCode::from(130));
            }
            println!("test accuracy: {:.2}%", 100.0 * report.test_accuracy);
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval { checkpoint, data, split, backend } => {
            match backend {
                ComputeBackend::Gpu => run_eval(&gpu(&cli)?, checkpoint, data, *split)?,
                ComputeBackend::Cpu => run_eval(&wgtrain::Cpu, checkpoint, data, *split)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Predict { checkpoint, images, top_k, backend } => {
            match backend {
                ComputeBackend::Gpu => run_predict(&gpu(&cli)?, checkpoint, images, *top_k)?,
                ComputeBackend::Cpu => run_predict(&wgtrain::Cpu, checkpoint, images, *top_k)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::AugmentPreview { data, out, count, crop_pad, hflip, noise, mixup, cutmix, seed } => {
            let aug = wgtrain::data::loader::Augment { crop_pad: *crop_pad, hflip: *hflip, noise: *noise, mixup: *mixup, cutmix: *cutmix };
            let (train, _) = wgtrain::data::load(data.dataset, data.data.as_deref(), *seed, data.train_size.min(2000), data.image_size)?;
            wgtrain::data::preview::write_grid(&train, *count, &aug, *seed, out)?;
            println!("wrote {} augmented samples of {} to {}", count, train.name, out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Summary { model, input, classes } => {
            let dims: Vec<usize> = input
                .split(',')
                .map(|v| v.trim().parse::<usize>())
                .collect::<Result<_, _>>()
                .map_err(|_| anyhow::anyhow!("--input {input}: expected C,H,W (three positive integers)"))?;
            if dims.len() != 3 || dims.contains(&0) {
                anyhow::bail!("--input {input}: expected C,H,W (three positive integers)");
            }
            let classes = classes.unwrap_or(if model == "alexnet" { 1000 } else { 10 });
            let spec = wgtrain::nn::zoo::model(model, classes)?;
            print!("{}", spec.summary(&dims)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Devices => {
            let adapters = list_adapters();
            if adapters.is_empty() {
                println!("no adapters found; on a machine without a GPU install lavapipe: apt-get install mesa-vulkan-drivers libvulkan1");
                return Ok(ExitCode::FAILURE);
            }
            for a in adapters {
                println!("[{}] {}", a.index, a.name);
                println!("    backend {}, type {}, driver {}", a.backend, a.device_type, a.driver);
                println!("    compute shaders: {}", if a.compute { "yes" } else { "no" });
                let l = &a.limits;
                println!(
                    "    max storage binding {} MiB, max buffer {} MiB, storage buffers per stage {}, workgroups per dimension {}, invocations per workgroup {}, workgroup memory {} KiB",
                    l.max_storage_buffer_binding_size >> 20,
                    l.max_buffer_size >> 20,
                    l.max_storage_buffers_per_shader_stage,
                    l.max_compute_workgroups_per_dimension,
                    l.max_compute_invocations_per_workgroup,
                    l.max_compute_workgroup_storage_size >> 10
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { cases, backend, .. } if !cases.is_empty() => verify_case_files(&cli, cases, *backend),
        Command::Verify { large, seed, .. } => {
            let gpu = gpu(&cli)?;
            println!(
                "verifying kernels on {} against the CPU reference (matmul default: {})",
                gpu.adapter_name(),
                gpu.matmul_variant().name()
            );
            println!("{:<44} {:<22} {:>12} {:>12} {:>20}  result", "op", "shape", "max abs err", "max rel err", "tolerance (abs, rel)");
            let (mut passed, mut failed) = (0, 0);
            for (i, case) in verify::suite(*large).iter().enumerate() {
                match verify::run_case(&gpu, case, seed.wrapping_add(i as u64)) {
                    Ok(r) => {
                        println!(
                            "{:<44} {:<22} {:>12.3e} {:>12.3e} {:>9.1e}, {:>8.1e}  {}",
                            r.op,
                            r.shape,
                            r.cmp.max_abs,
                            r.cmp.max_rel,
                            r.tolerance.atol,
                            r.tolerance.rtol,
                            if r.passed() { "pass".to_string() } else { format!("FAIL {r}") }
                        );
                        if r.passed() {
                            passed += 1
                        } else {
                            failed += 1
                        }
                    }
                    Err(e) => {
                        println!("{:<44} {:<22} error: {e}", case.op(), case.shape());
                        failed += 1;
                    }
                }
            }
            println!("{passed} passed, {failed} failed");
            Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Bench { what: BenchWhat::Matmul { size, runs, variants } } => {
            let gpu = gpu(&cli)?;
            let list: Vec<MatmulVariant> = if variants == "all" {
                MatmulVariant::ALL.to_vec()
            } else {
                variants.split(',').map(MatmulVariant::parse).collect::<Result<_, _>>()?
            };
            wgtrain::bench::matmul_report(&gpu, &list, *size, *size, *size, *runs)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { what: BenchWhat::Train { batch_sizes, windows, steps, backend } } => {
            if batch_sizes.contains(&0) {
                anyhow::bail!("--batch-sizes: batch size 0, expected at least 1");
            }
            match backend {
                ComputeBackend::Gpu => wgtrain::bench::train_report(&gpu(&cli)?, batch_sizes, *windows, *steps, started())?,
                ComputeBackend::Cpu => wgtrain::bench::train_report(&wgtrain::Cpu, batch_sizes, *windows, *steps, started())?,
            };
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { what: BenchWhat::Conv { runs } } => {
            let gpu = gpu(&cli)?;
            wgtrain::bench::conv_report(&gpu, &wgtrain::bench::CONV_CASES, *runs)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { what: BenchWhat::Optimizer { params, runs } } => {
            let gpu = gpu(&cli)?;
            wgtrain::bench::optimizer_report(&gpu, *params, *runs)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `wgtrain verify --case ...`: every case on every chosen backend; a case passes when all its
/// outputs pass on all of them, errs when it cannot be run.
fn verify_case_files(cli: &Cli, paths: &[std::path::PathBuf], backend: BackendChoice) -> anyhow::Result<ExitCode> {
    use wgtrain::verify::case_file;
    let files = case_file::collect(paths)?;
    let gpu = match backend {
        BackendChoice::Cpu => None,
        _ => Some(gpu(cli).map_err(|e| e.to_string())),
    };
    let cpu = (backend != BackendChoice::Gpu).then_some(wgtrain::Cpu);
    let (mut passed, mut failed, mut errored) = (0, 0, 0);
    for file in &files {
        let name = file.file_name().map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
        let mut outcomes: Vec<(&str, Result<(case_file::CaseFile, Vec<case_file::OutputCheck>), String>)> = Vec::new();
        if let Some(cpu) = &cpu {
            outcomes.push(("cpu", case_file::check(cpu, file).map_err(|e| e.to_string())));
        }
        match &gpu {
            Some(Ok(g)) => outcomes.push(("gpu", case_file::check(g, file).map_err(|e| e.to_string()))),
            Some(Err(e)) => outcomes.push(("gpu", Err(format!("no GPU: {e}")))),
            None => {}
        }
        let (mut any_error, mut any_fail) = (false, false);
        for (be, outcome) in outcomes {
            match outcome {
                Ok((case, checks)) => {
                    for c in checks {
                        any_fail |= !c.passed;
                        println!(
                            "{name:<40} {:<18} {be:<4} {:<12} max abs err {:>10.3e}  allowed {:>10.3e}  {}",
                            case.op,
                            c.name,
                            c.max_abs,
                            c.allowed,
                            if c.passed { "pass" } else { "FAIL" }
                        );
                    }
                }
                Err(e) => {
                    any_error = true;
                    println!("{name:<40} {be:<4} error: {e}");
                }
            }
        }
        if any_error {
            errored += 1;
        } else if any_fail {
            failed += 1;
        } else {
            passed += 1;
        }
    }
    println!("cases: {passed} passed, {failed} failed, {errored} errored");
    Ok(if failed + errored == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn optimizer_of(args: &TrainArgs) -> wgtrain::Optimizer {
    use wgtrain::{Optimizer, OptimizerKind as K};
    let kind = match args.optimizer {
        OptimizerChoice::Sgd | OptimizerChoice::Momentum | OptimizerChoice::Nesterov => K::Sgd,
        OptimizerChoice::Adagrad => K::Adagrad,
        OptimizerChoice::Adadelta => K::Adadelta,
        OptimizerChoice::Rmsprop => K::Rmsprop,
        OptimizerChoice::Adam => K::Adam,
        OptimizerChoice::Adamw => K::AdamW,
    };
    let mut o = Optimizer::new(kind);
    if kind == K::Sgd {
        o.lr = 0.01;
    }
    if matches!(args.optimizer, OptimizerChoice::Momentum | OptimizerChoice::Nesterov) {
        o.momentum = 0.9;
        o.nesterov = args.optimizer == OptimizerChoice::Nesterov;
    }
    if args.momentum != 0.0 {
        o.momentum = args.momentum;
    }
    if let Some(lr) = args.lr {
        o.lr = lr;
    }
    if args.weight_decay != 0.0 || kind != K::AdamW {
        o.weight_decay = args.weight_decay;
    }
    o
}

fn run_training<B: wgtrain::Backend>(be: &B, args: &TrainArgs) -> anyhow::Result<wgtrain::train::TrainReport> {
    use wgtrain::data;
    let t0 = std::time::Instant::now();
    let resume = args.resume.as_deref().map(wgtrain::checkpoint::read_meta).transpose()?;
    // A resumed run keeps its seed: it fixes the split, the batch order and the dropout masks.
    let seed = resume.as_ref().map_or(args.seed, |m| m.progress.seed);
    let (train, test) = data::load(args.dataset, args.data.as_deref(), seed, args.train_size, args.image_size)?;
    let splits = data::split(train, test, args.val_fraction, seed)?;
    let classes = splits.train.classes.len();
    let mut spec = match &resume {
        Some(m) => m.spec.clone(),
        None => wgtrain::nn::zoo::model(&args.model, classes)?,
    };
    if let Some(p) = args.dropout {
        if !(0.0..1.0).contains(&p) {
            anyhow::bail!("--dropout {p}: expected a probability in [0, 1)");
        }
        for l in spec.layers.iter_mut() {
            if let wgtrain::nn::Layer::Dropout { p: rate } = l {
                *rate = p;
            }
        }
    }
    let mut model = wgtrain::nn::Model::new(be, spec, &splits.train.shape, seed)?;
    model.classes = splits.train.classes.clone();
    model.normalization = splits.stats.clone();
    if let (Some(path), Some(meta)) = (&args.resume, &resume) {
        wgtrain::checkpoint::load(be, path, &mut model)?;
        println!(
            "resuming {} after epoch {} (batch {} of the next), step {}",
            path.display(),
            meta.progress.epoch,
            meta.progress.batch_in_epoch,
            meta.progress.step
        );
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if args.checkpoint.is_some() {
        let flag = stop.clone();
        // A second Ctrl-C (or a failure to install the handler) falls back to the default.
        let _ = ctrlc::set_handler(move || {
            if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }
    println!(
        "training {} ({} parameters) on {} ({} train / {} validation / {} test, {:?}) with {} on {} for {} epochs, batch {:?}",
        model.spec.name,
        wgtrain::nn::spec::group(model.num_params()),
        splits.train.name,
        splits.train.len(),
        splits.val.len(),
        splits.test.len(),
        splits.train.shape,
        args.optimizer.to_possible_value().map_or("?".into(), |v| v.get_name().to_string()),
        be.name(),
        args.epochs,
        args.batch_size
    );
    let cfg = wgtrain::train::TrainConfig {
        epochs: args.epochs,
        batch: args.batch_size,
        optimizer: optimizer_of(args),
        schedule: args.schedule,
        step_size: args.step_size,
        gamma: args.gamma,
        warmup_epochs: args.warmup_epochs,
        label_smoothing: args.label_smoothing,
        clip_norm: args.clip_norm,
        augment: data::loader::Augment {
            crop_pad: args.crop_pad,
            hflip: args.hflip,
            noise: args.noise,
            mixup: args.mixup,
            cutmix: args.cutmix,
        },
        patience: args.patience,
        monitor: args.monitor,
        restore_best: args.restore_best,
        seed,
        verbose: true,
        checkpoint: args.checkpoint.clone(),
        resume: resume.map(|m| m.progress),
        stop: Some(stop),
        log: args.log.clone(),
    };
    let report = wgtrain::train::train(be, &mut model, &splits, &cfg)?;
    if !report.interrupted {
        println!("test loss {:.4} ({} images), {:.1} s in all", report.test_loss, splits.test.len(), t0.elapsed().as_secs_f64());
    }
    Ok(report)
}

/// The model a checkpoint holds, loaded on `be`.
fn model_from_checkpoint<B: wgtrain::Backend>(
    be: &B,
    path: &std::path::Path,
) -> anyhow::Result<(wgtrain::nn::Model<B>, wgtrain::checkpoint::Meta)> {
    let meta = wgtrain::checkpoint::read_meta(path)?;
    let mut model = wgtrain::nn::Model::new(be, meta.spec.clone(), &meta.input, meta.progress.seed)?;
    wgtrain::checkpoint::load(be, path, &mut model)?;
    Ok((model, meta))
}

fn run_eval<B: wgtrain::Backend>(be: &B, checkpoint: &std::path::Path, args: &DataArgs, split: SplitChoice) -> anyhow::Result<()> {
    let (mut model, meta) = model_from_checkpoint(be, checkpoint)?;
    let seed = meta.progress.seed;
    let (train, test) = wgtrain::data::load(args.dataset, args.data.as_deref(), seed, args.train_size, args.image_size)?;
    let splits = if meta.normalization.is_empty() {
        wgtrain::data::split(train, test, args.val_fraction, seed)?
    } else {
        wgtrain::data::split_with(train, test, args.val_fraction, seed, &meta.normalization)?
    };
    let data = match split {
        SplitChoice::Train => &splits.train,
        SplitChoice::Val => &splits.val,
        SplitChoice::Test => &splits.test,
    };
    if data.shape[..] != meta.input[..] {
        anyhow::bail!("{}: the model takes inputs {:?}, the data set has {:?}", checkpoint.display(), meta.input, data.shape);
    }
    let k = data.classes.len();
    if k != model.classes() {
        anyhow::bail!("{}: the model has {} classes, the data set {k}", checkpoint.display(), model.classes());
    }
    let mut confusion = vec![vec![0usize; k]; k];
    let mut loss = 0.0f64;
    let per = data.image_len();
    for chunk in (0..data.len()).collect::<Vec<_>>().chunks(256) {
        let x: Vec<f32> = chunk.iter().flat_map(|&i| data.image(i).iter().copied()).collect();
        let probs = model.predict(be, &x)?;
        for (row, &i) in probs.chunks(k).zip(chunk) {
            let label = data.labels[i] as usize;
            let guess = row.iter().enumerate().fold(0, |b, (c, &v)| if v > row[b] { c } else { b });
            confusion[label][guess] += 1;
            loss -= (row[label].max(1e-12) as f64).ln();
        }
        let _ = per;
    }
    let n = data.len().max(1);
    let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
    println!("{} on {} ({:?}, {} images)", checkpoint.display(), data.name, split, data.len());
    println!("loss {:.4}  accuracy {:.2}%", loss / n as f64, 100.0 * correct as f64 / n as f64);
    println!("per class:");
    for (c, name) in data.classes.iter().enumerate() {
        let total: usize = confusion[c].iter().sum();
        println!("  {name:<16} {:6.2}%  ({}/{total})", 100.0 * confusion[c][c] as f64 / total.max(1) as f64, confusion[c][c]);
    }
    println!("confusion matrix (rows: true class, columns: predicted):");
    for row in &confusion {
        println!("  {}", row.iter().map(|v| format!("{v:>6}")).collect::<String>());
    }
    Ok(())
}

fn run_predict<B: wgtrain::Backend>(
    be: &B,
    checkpoint: &std::path::Path,
    images: &[std::path::PathBuf],
    top_k: usize,
) -> anyhow::Result<()> {
    let (mut model, meta) = model_from_checkpoint(be, checkpoint)?;
    let [c, h, w] = meta.input[..] else { anyhow::bail!("{}: input shape {:?} is not [C, H, W]", checkpoint.display(), meta.input) };
    let mut x = Vec::new();
    for path in images {
        let img = image::open(path).map_err(|e| anyhow::anyhow!("{}: cannot read the image: {e}", path.display()))?;
        let img = img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle);
        let mut v = vec![0.0f32; c * h * w];
        match c {
            1 => {
                for (px, py, p) in img.to_luma8().enumerate_pixels() {
                    v[py as usize * w + px as usize] = p[0] as f32 / 255.0;
                }
            }
            3 => {
                for (px, py, p) in img.to_rgb8().enumerate_pixels() {
                    for ch in 0..3 {
                        v[(ch * h + py as usize) * w + px as usize] = p[ch] as f32 / 255.0;
                    }
                }
            }
            _ => anyhow::bail!("{}: inputs with {c} channels cannot come from an image file", checkpoint.display()),
        }
        for (i, val) in v.iter_mut().enumerate() {
            if let Some(&(m, s)) = meta.normalization.get(i / (h * w)) {
                *val = (*val - m) / s;
            }
        }
        x.extend(v);
    }
    let probs = model.predict(be, &x)?;
    let k = model.classes();
    for (path, row) in images.iter().zip(probs.chunks(k)) {
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        let best: Vec<String> = order
            .iter()
            .take(top_k.max(1))
            .map(|&c| format!("{} {:.1}%", meta.classes.get(c).cloned().unwrap_or_else(|| c.to_string()), 100.0 * row[c]))
            .collect();
        println!("{}: {}", path.display(), best.join(", "));
    }
    Ok(())
}
