//! The data-parallel flags of `train` and `bench train`: replicas in threads of this process
//! (`--devices`) or in processes started by mpirun (`--distributed mpi`), and running a
//! command's work once per replica.

use clap::builder::PossibleValuesParser;
use wgtrain::distributed::{LocalGroup, Replicas};
use wgtrain::Gpu;

use crate::args::ComputeBackend;

/// Opens the GPU adapter named (an index or part of a name), or the default one for `None`.
pub type OpenGpu<'a> = &'a (dyn Fn(Option<String>) -> anyhow::Result<Gpu> + Sync);

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ParallelArgs {
    /// Data parallel in this process: one replica per listed adapter (`all`, or indices from `wgtrain devices`; repeat one, e.g. 0,0, for two replicas on one adapter); each takes its share of every batch
    #[arg(long, value_name = "all|0,1,...")]
    pub devices: Option<String>,
    /// Data parallel across processes started by mpirun (needs a build with `--features mpi`): one replica per rank, its adapter chosen by its local rank
    #[arg(long, value_parser = PossibleValuesParser::new(["mpi"]))]
    pub distributed: Option<String>,
}

impl ParallelArgs {
    /// How the replicas are started, for messages: "--devices 0,0" or "MPI ranks".
    pub fn describe(&self) -> String {
        match &self.devices {
            Some(d) => format!("--devices {d}"),
            None => "MPI ranks".into(),
        }
    }
}

/// Runs `f` once per replica the flags ask for: in threads (`--devices`), as this MPI rank
/// (`--distributed mpi`), or once alone. `f` gets the replica's GPU (`None` with the CPU
/// backend) and its replicas. Returns replica 0's result, and `None` on the other MPI ranks.
pub fn replicated<T: Send>(
    p: &ParallelArgs,
    backend: ComputeBackend,
    gpu: OpenGpu<'_>,
    f: impl Fn(Option<&Gpu>, Option<Replicas>) -> anyhow::Result<T> + Sync,
) -> anyhow::Result<Option<T>> {
    let open = |device: Option<String>| -> anyhow::Result<Option<Gpu>> {
        match backend {
            ComputeBackend::Gpu => Ok(Some(gpu(device)?)),
            ComputeBackend::Cpu => Ok(None),
        }
    };
    if p.distributed.is_some() {
        if p.devices.is_some() {
            anyhow::bail!("--devices and --distributed mpi: choose one (under MPI each rank takes one adapter)");
        }
        return mpi(&open, &f);
    }
    let Some(list) = &p.devices else {
        let g = open(None)?;
        return f(g.as_ref(), None).map(Some);
    };
    let devices = parse_devices(list, backend)?;
    let mut results = LocalGroup::run(devices.len(), |r| {
        let run = || -> anyhow::Result<T> {
            let g = open(devices[r.rank()].clone())?;
            f(g.as_ref(), Some(r.clone()))
        };
        run().map_err(|e| wgtrain::Error::Invalid(format!("{e:#}")))
    })?;
    Ok(Some(results.swap_remove(0)))
}

/// The adapters of `--devices`: `all` (every adapter with compute shaders) or a comma-separated
/// list of indices from `wgtrain devices` (or parts of names); with the CPU backend, only the
/// count matters.
fn parse_devices(list: &str, backend: ComputeBackend) -> anyhow::Result<Vec<Option<String>>> {
    let devices: Vec<Option<String>> = if list.trim() == "all" {
        if backend == ComputeBackend::Cpu {
            anyhow::bail!("--devices all: the CPU backend has no adapters; give a list such as 0,0 for two CPU replicas");
        }
        let all: Vec<_> = wgtrain::gpu::list_adapters().into_iter().filter(|a| a.compute).map(|a| Some(a.index.to_string())).collect();
        if all.is_empty() {
            anyhow::bail!("--devices all: no adapter with compute shaders (see `wgtrain devices`)");
        }
        all
    } else {
        list.split(',').map(|d| d.trim()).map(|d| (!d.is_empty()).then(|| d.to_string())).collect()
    };
    if devices.iter().any(Option::is_none) {
        anyhow::bail!("--devices '{list}': expected `all` or a comma-separated list of adapters such as 0,1 (see `wgtrain devices`)");
    }
    Ok(devices)
}

/// This process as one rank of an MPI job; its adapter is the one its local rank picks among
/// those with compute shaders (unless `WGTRAIN_DEVICE` names one). A rank that fails ends the
/// whole job (`MPI_Abort`) after printing its error, so no rank waits for it.
#[cfg(feature = "mpi")]
fn mpi<T>(
    open: &dyn Fn(Option<String>) -> anyhow::Result<Option<Gpu>>,
    f: &dyn Fn(Option<&Gpu>, Option<Replicas>) -> anyhow::Result<T>,
) -> anyhow::Result<Option<T>> {
    use wgtrain::distributed::mpi::MpiCollective;
    use wgtrain::distributed::Collective;
    let world = std::sync::Arc::new(MpiCollective::init()?);
    let (rank, size) = (world.rank(), world.size());
    let local = wgtrain::distributed::local_rank_from_env().unwrap_or(rank);
    let result = (|| -> anyhow::Result<T> {
        let adapters: Vec<_> = wgtrain::gpu::list_adapters().into_iter().filter(|a| a.compute).collect();
        let pick = (std::env::var_os("WGTRAIN_DEVICE").is_none() && !adapters.is_empty())
            .then(|| adapters[local % adapters.len()].index.to_string());
        let g = open(pick)?;
        f(g.as_ref(), Some(world.clone() as Replicas))
    })();
    match result {
        Ok(v) => Ok((rank == 0).then_some(v)),
        Err(e) if size > 1 => world.abort_job(&format!("{e:#}")),
        Err(e) => Err(e),
    }
}

#[cfg(not(feature = "mpi"))]
fn mpi<T>(
    _: &dyn Fn(Option<String>) -> anyhow::Result<Option<Gpu>>,
    _: &dyn Fn(Option<&Gpu>, Option<Replicas>) -> anyhow::Result<T>,
) -> anyhow::Result<Option<T>> {
    anyhow::bail!(
        "--distributed mpi: this wgtrain was built without MPI; build it with `cargo build --release --features mpi` (needs an MPI such as Debian's libopenmpi-dev openmpi-bin, and libclang-dev)"
    )
}
