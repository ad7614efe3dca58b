//! Data-parallel training: one replica of the model per device (threads in one process, or
//! processes under MPI), each taking its shard of every global batch, with the gradient arena
//! averaged across replicas once per step — the semantics of PyTorch's DistributedDataParallel.
//!
//! - [`Collective`]: what replicas do together (sum, broadcast). [`LocalGroup`] connects
//!   threads of one process through host memory; `MpiCollective` (cargo feature `mpi`)
//!   connects processes through MPI.
//! - [`shard`]: which rows of a global batch a replica trains on.
//! - The trainer ([`crate::train::Trainer::replicas`]) does the rest: the same shuffled global
//!   batches on every replica (same seed), gradients weighted by each shard's share of the
//!   batch and summed, one identical optimizer step everywhere, metrics summed, and replica 0
//!   alone evaluating, logging and writing checkpoints.
//! - Batch norm uses each replica's own batch statistics (as in DDP), or the statistics of the
//!   whole global batch with [`crate::nn::Model::sync_batch_norm`] (`--sync-bn`).
//!
//! The scaling model of `wgtrain bench scaling` and SCALING.md is in [`crate::scaling`] where
//! built.

mod local;
#[cfg(feature = "mpi")]
pub mod mpi;

use std::ops::Range;
use std::sync::Arc;

pub use local::LocalGroup;

use crate::{Error, Result};

/// Operations every replica of a data-parallel run calls together, in the same order with the
/// same lengths. Results are bit-identical on every replica (sums are formed in rank order
/// in one place and handed to all), so replicas that start equal stay equal.
pub trait Collective {
    /// This replica's rank, 0-based (replica 0 prints, logs and writes checkpoints).
    fn rank(&self) -> usize;
    /// The number of replicas.
    fn size(&self) -> usize;
    /// Replaces `buf` by the element-wise sum of every replica's `buf`.
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()>;
    /// Replaces `buf` by replica `root`'s `buf`.
    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()>;
    /// Tells the other replicas that this one failed with `message`, so that they stop with
    /// an error instead of waiting for it. The default does nothing.
    fn abort(&self, message: &str) {
        let _ = message;
    }
}

/// A shared handle to a replica's collective, as the trainer and the model keep it.
pub type Replicas = Arc<dyn Collective + Send + Sync>;

/// The rows of a global batch of `batch` samples that replica `rank` of `size` trains on: the
/// contiguous block `rank`, the first `batch % size` blocks one row longer (so 7 rows over 2
/// replicas are 4 + 3). Each shard's gradient is weighted by its share of the batch, so the
/// averaged gradient is exactly the gradient of the whole batch.
pub fn shard(batch: usize, rank: usize, size: usize) -> Range<usize> {
    let size = size.max(1);
    let (base, extra) = (batch / size, batch % size);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

/// Checks that a global batch of `batch` gives every one of `size` replicas at least one row.
pub fn check_batch(batch: usize, size: usize) -> Result<()> {
    if batch < size {
        return Err(Error::Invalid(format!(
            "a batch of {batch} over {size} replicas leaves a replica without samples: expected a batch of at least {size}"
        )));
    }
    Ok(())
}

/// Every replica's `mine` (all of the same length), in rank order: a sum of buffers that are
/// zero outside each replica's own slot (exact: adding zeros changes no value).
pub fn all_gather(replicas: &Replicas, mine: &[f32]) -> Result<Vec<Vec<f32>>> {
    let (n, size, rank) = (mine.len(), replicas.size(), replicas.rank());
    let mut buf = vec![0.0f32; n * size];
    buf[rank * n..(rank + 1) * n].copy_from_slice(mine);
    replicas.all_reduce_sum(&mut buf)?;
    Ok(buf.chunks(n.max(1)).take(size).map(<[f32]>::to_vec).collect())
}

/// The replica's local rank on its machine under a launcher (Open MPI, MPICH, Slurm), for
/// choosing its device: `OMPI_COMM_WORLD_LOCAL_RANK`, `MPI_LOCALRANKID`, `SLURM_LOCALID`.
pub fn local_rank_from_env() -> Option<usize> {
    ["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "PMI_LOCAL_RANK"]
        .iter()
        .find_map(|v| std::env::var(v).ok().and_then(|s| s.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_batch_once_in_order() {
        for batch in [1usize, 2, 7, 64, 101] {
            for size in 1..=batch.min(5) {
                let mut next = 0;
                for r in 0..size {
                    let s = shard(batch, r, size);
                    assert_eq!(s.start, next, "batch {batch} size {size} rank {r}");
                    assert!(!s.is_empty());
                    assert!(s.len() == batch / size || s.len() == batch / size + 1);
                    next = s.end;
                }
                assert_eq!(next, batch);
            }
        }
        assert_eq!(shard(7, 0, 2), 0..4);
        assert_eq!(shard(7, 1, 2), 4..7);
    }

    #[test]
    fn a_batch_smaller_than_the_replicas_is_refused() {
        assert!(check_batch(1, 2).unwrap_err().to_string().contains("at least 2"));
        assert!(check_batch(2, 2).is_ok());
    }
}
