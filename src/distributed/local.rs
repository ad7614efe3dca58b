//! Replicas in threads of one process, meeting in host memory: each call deposits a replica's
//! buffer, the last to arrive forms the result in rank order, and every replica copies it.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::{Collective, Replicas};
use crate::{Error, Result};

/// One replica's handle on a group of threads (see [`LocalGroup::run`]).
pub struct LocalGroup {
    shared: Arc<Shared>,
    rank: usize,
}

struct Shared {
    size: usize,
    state: Mutex<State>,
    turn: Condvar,
}

#[derive(Default)]
struct State {
    /// Completed calls; a waiting replica wakes when this moves on.
    generation: u64,
    /// Replicas that have deposited into the current call.
    arrived: usize,
    /// Each replica's buffer for the current call.
    slots: Vec<Vec<f32>>,
    /// The root of a broadcast (`None`: a sum) for the current call, as the first arrival said.
    root: Option<Option<usize>>,
    /// The result of the last completed call.
    result: Arc<Vec<f32>>,
    /// Set when a replica failed: every call fails with it from then on.
    failed: Option<String>,
}

impl LocalGroup {
    /// `size` handles on a new group, rank 0 first.
    pub fn new(size: usize) -> Vec<LocalGroup> {
        let size = size.max(1);
        let shared =
            Arc::new(Shared { size, state: Mutex::new(State { slots: vec![Vec::new(); size], ..State::default() }), turn: Condvar::new() });
        (0..size).map(|rank| LocalGroup { shared: shared.clone(), rank }).collect()
    }

    /// Runs `f` once per replica, each on its own thread with its handle, and returns their
    /// results in rank order. When a replica fails (an error or a panic) the others' next
    /// collective call fails too, so no replica waits for ever; the error returned is the
    /// first failure's, naming its replica.
    pub fn run<T: Send>(size: usize, f: impl Fn(Replicas) -> Result<T> + Sync) -> Result<Vec<T>> {
        let handles = Self::new(size);
        let shared = handles[0].shared.clone();
        let results: Vec<std::thread::Result<Result<T>>> = std::thread::scope(|s| {
            let f = &f;
            let threads: Vec<_> = handles
                .into_iter()
                .map(|h| {
                    let rank = h.rank;
                    std::thread::Builder::new()
                        .name(format!("replica-{rank}"))
                        .spawn_scoped(s, move || {
                            let h: Arc<LocalGroup> = Arc::new(h);
                            // Marks the group failed unless `f` returns Ok (a panic unwinds
                            // through it too).
                            let guard = AbortGuard(Some(h.clone()));
                            let out = f(h.clone());
                            if let Err(e) = &out {
                                h.abort(&e.to_string());
                            }
                            std::mem::forget(guard);
                            out
                        })
                        .expect("spawning a replica thread")
                })
                .collect();
            threads.into_iter().map(|t| t.join()).collect()
        });
        let first_failure = shared.lock().failed.clone();
        let mut out = Vec::with_capacity(results.len());
        for (rank, r) in results.into_iter().enumerate() {
            match r {
                Ok(Ok(v)) => out.push(v),
                Ok(Err(e)) => return Err(first_failure.map(Error::Invalid).unwrap_or(e)),
                Err(_) => {
                    return Err(Error::Invalid(first_failure.unwrap_or_else(|| format!("replica {rank} panicked"))));
                }
            }
        }
        Ok(out)
    }

    fn collective(&self, buf: &mut [f32], root: Option<usize>) -> Result<()> {
        let sh = &*self.shared;
        let mut st = sh.lock();
        if let Some(m) = &st.failed {
            return Err(Error::Invalid(m.clone()));
        }
        let generation = st.generation;
        match st.root {
            None => st.root = Some(root),
            Some(r) if r != root => {
                let m = format!("replica {}: collective calls out of step (a sum met a broadcast)", self.rank);
                st.failed = Some(m.clone());
                sh.turn.notify_all();
                return Err(Error::Invalid(m));
            }
            Some(_) => {}
        }
        st.slots[self.rank].clear();
        st.slots[self.rank].extend_from_slice(buf);
        st.arrived += 1;
        if st.arrived == sh.size {
            let len = st.slots[0].len();
            if let Some(r) = (0..sh.size).find(|&r| st.slots[r].len() != len) {
                let m = format!("collective calls out of step: replica {r} passed {} values, replica 0 {len}", st.slots[r].len());
                st.failed = Some(m.clone());
                sh.turn.notify_all();
                return Err(Error::Invalid(m));
            }
            let result = match root {
                Some(r) => std::mem::take(&mut st.slots[r]),
                None => {
                    let mut sum = std::mem::take(&mut st.slots[0]);
                    for r in 1..sh.size {
                        for (a, b) in sum.iter_mut().zip(&st.slots[r]) {
                            *a += *b;
                        }
                    }
                    sum
                }
            };
            st.result = Arc::new(result);
            st.arrived = 0;
            st.root = None;
            st.generation += 1;
            sh.turn.notify_all();
        } else {
            while st.generation == generation && st.failed.is_none() {
                st = sh.turn.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if st.generation == generation {
                return Err(Error::Invalid(st.failed.clone().unwrap_or_default()));
            }
        }
        buf.copy_from_slice(&st.result);
        Ok(())
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Collective for LocalGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.shared.size
    }
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        self.collective(buf, None)
    }
    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()> {
        if root >= self.shared.size {
            return Err(Error::Invalid(format!("broadcast from replica {root}: expected a rank below {}", self.shared.size)));
        }
        self.collective(buf, Some(root))
    }
    fn abort(&self, message: &str) {
        let mut st = self.shared.lock();
        st.failed.get_or_insert_with(|| format!("replica {}: {message}", self.rank));
        self.shared.turn.notify_all();
    }
}

struct AbortGuard(Option<Arc<LocalGroup>>);

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort("panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_broadcasts_are_the_same_on_every_replica() {
        let out = LocalGroup::run(3, |g| {
            let r = g.rank() as f32;
            let mut a = vec![r, 10.0 * r, 0.1];
            g.all_reduce_sum(&mut a)?;
            let mut b = vec![r; 2];
            g.broadcast(&mut b, 2)?;
            Ok((a, b))
        })
        .unwrap();
        for (a, b) in &out {
            assert_eq!(a, &vec![3.0, 30.0, 0.1 + 0.1 + 0.1]);
            assert_eq!(b, &vec![2.0, 2.0]);
        }
        assert_eq!(out[0].0, out[2].0);
    }

    #[test]
    fn a_failing_replica_stops_the_others_with_its_error() {
        let err = LocalGroup::run(2, |g| {
            if g.rank() == 1 {
                return Err(Error::Invalid("bad data".into()));
            }
            let mut a = vec![1.0];
            for _ in 0..3 {
                g.all_reduce_sum(&mut a)?;
            }
            Ok(())
        })
        .unwrap_err();
        assert!(err.to_string().contains("replica 1: bad data"), "{err}");
    }

    #[test]
    fn a_panicking_replica_does_not_hang_the_others() {
        let err = LocalGroup::run(2, |g| {
            if g.rank() == 0 {
                panic!("boom");
            }
            let mut a = vec![1.0];
            g.all_reduce_sum(&mut a)?;
            Ok(())
        })
        .unwrap_err();
        assert!(err.to_string().contains("replica 0: panicked"), "{err}");
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        let err = LocalGroup::run(2, |g| {
            let mut a = vec![1.0; 1 + g.rank()];
            g.all_reduce_sum(&mut a)
        })
        .unwrap_err();
        assert!(err.to_string().contains("out of step"), "{err}");
    }
}
