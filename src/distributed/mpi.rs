//! Replicas in processes, across machines, through MPI (the `mpi` crate over Open MPI or
//! MPICH; cargo feature `mpi`). Start with `mpirun -np N wgtrain train ... --distributed mpi`.
//!
//! A sum is a reduction to rank 0 followed by a broadcast of the result, so every rank holds
//! the same bits (an all-reduce may associate the additions differently on different ranks,
//! and replicas whose parameters drift apart by rounding would silently train different
//! models).
//!
//! A rank that fails sends its error to rank 0, which prints it as the job's error and ends
//! the job (`MPI_Abort`): rank 0 listens for such reports while it waits in any collective.

use std::thread::ThreadId;
use std::time::Duration;

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::point_to_point::MatchedReceiveVec;
use mpi::request::{self, Request, Scope};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use super::Collective;
use crate::{Error, Result};

/// MPI's world communicator as a [`Collective`]. Made once per process by [`MpiCollective::init`];
/// MPI is finalised when it is dropped.
pub struct MpiCollective {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    /// MPI is initialised with `MPI_THREAD_FUNNELED`: only this thread may call it.
    thread: ThreadId,
    // Dropped last: finalises MPI.
    _universe: Universe,
}

// SAFETY: MPI is initialised "funneled" and every call checks that it runs on the thread that
// initialised it (`MpiCollective::on_thread`), failing otherwise; the handle itself is only an
// integer communicator id.
unsafe impl Send for MpiCollective {}
// SAFETY: as above: calls from any other thread are refused before they reach MPI.
unsafe impl Sync for MpiCollective {}

impl MpiCollective {
    /// Initialises MPI (once per process) and joins its world communicator.
    pub fn init() -> Result<Self> {
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled)
            .ok_or_else(|| Error::Invalid("MPI was already initialised in this process".into()))?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Ok(Self { world, rank, size, thread: std::thread::current().id(), _universe: universe })
    }

    fn on_thread(&self, what: &str) -> Result<()> {
        if std::thread::current().id() != self.thread {
            return Err(Error::Invalid(format!("MPI {what} from another thread than the one that initialised MPI")));
        }
        Ok(())
    }

    /// Ends every process of the job (`MPI_Abort`) with `message` as this rank's error. Another
    /// rank than 0 sends it to rank 0, which prints it and ends the job as soon as it waits in a
    /// collective; should rank 0 not do so within 10 s, this rank prints it and ends the job.
    pub fn abort_job(&self, message: &str) -> ! {
        if self.rank != 0 && self.size > 1 {
            let text: String = message.chars().take(2000).collect();
            request::scope(|scope| {
                let _report = self.world.process_at_rank(0).immediate_send_with_tag(scope, text.as_bytes(), FAILURE_TAG);
                std::thread::sleep(Duration::from_secs(10));
                eprintln!("error: rank {} of {}: {message}", self.rank, self.size);
                self.world.abort(1)
            })
        }
        eprintln!("error: rank {} of {}: {message}", self.rank, self.size);
        self.world.abort(1)
    }

    /// Waits for a non-blocking collective; rank 0 meanwhile takes the failure reports of the
    /// other ranks (see [`MpiCollective::abort_job`]).
    fn wait<'a, D: ?Sized, S: Scope<'a>>(&self, mut req: Request<'a, D, S>) {
        loop {
            match req.test() {
                Ok(_) => return,
                Err(r) => req = r,
            }
            if self.rank == 0 {
                if let Some(report) = self.world.any_process().immediate_matched_probe_with_tag(FAILURE_TAG) {
                    let (bytes, status) = report.matched_receive_vec::<u8>();
                    eprintln!("error: rank {} of {} failed: {}", status.source_rank(), self.size, String::from_utf8_lossy(&bytes));
                    self.world.abort(1);
                }
            }
        }
    }
}

/// The tag of a failure report sent to rank 0.
const FAILURE_TAG: i32 = 0x7767;

impl Collective for MpiCollective {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        self.on_thread("all-reduce")?;
        let root = self.world.process_at_rank(0);
        let send = buf.to_vec();
        request::scope(|scope| {
            if self.rank == 0 {
                self.wait(root.immediate_reduce_into_root(scope, &send[..], &mut *buf, SystemOperation::sum()));
            } else {
                self.wait(root.immediate_reduce_into(scope, &send[..], SystemOperation::sum()));
            }
        });
        request::scope(|scope| self.wait(root.immediate_broadcast_into(scope, &mut *buf)));
        Ok(())
    }
    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()> {
        self.on_thread("broadcast")?;
        if root >= self.size {
            return Err(Error::Invalid(format!("broadcast from rank {root}: expected a rank below {}", self.size)));
        }
        let root = self.world.process_at_rank(root as i32);
        request::scope(|scope| self.wait(root.immediate_broadcast_into(scope, buf)));
        Ok(())
    }
    fn abort(&self, message: &str) {
        self.abort_job(message)
    }
}
