//! The runs of a log one process reads, taken by its workers one at a time as each is ready for another.
//!
//! Runs dealt to workers in advance leave the workers as unevenly loaded as
//! the rest of their work is: a worker reads and pre-aggregates its runs,
//! but it also windows, aligns, rolls up and writes the sensors, assets and
//! lines routed to it, which no routing splits exactly, and the machine may
//! give one worker's core less time than the other's. Taken from a shared
//! queue, runs go to whichever worker has time, so the less loaded one reads
//! more (TwinBench, two workers: its reader 100 ms busy against 81). Which
//! worker reads a run changes nothing in the results: every run is read
//! whole by one reader, its rows keep their positions, and its watermark
//! starts where the runs before it left it, whoever read them.
//!
//! A queue is shared by the workers of one process (threads); processes
//! share no memory, so each has its own queue of the runs dealt to it by
//! [`crate::log_source::deal_runs`].

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::log_source::{LogSource, deal_runs};

/// Runs in log order, each taken by exactly one worker. A worker takes the
/// runs in increasing order, so its watermark only moves forward.
#[derive(Debug)]
pub struct RunQueue {
    /// Indices of the runs in the log, ascending.
    runs: Vec<u32>,
    /// Place in `runs` of the next run not taken.
    next: AtomicUsize,
}

impl RunQueue {
    /// A queue of `runs` (indices into the log's runs, ascending).
    pub fn new(runs: Vec<u32>) -> Self {
        debug_assert!(runs.windows(2).all(|w| w[0] < w[1]));
        RunQueue {
            runs,
            next: AtomicUsize::new(0),
        }
    }

    /// The runs process `process` of `processes` reads.
    pub fn of_process(log: &LogSource, process: usize, processes: usize) -> Self {
        let owners = deal_runs(log.runs().iter().map(|r| r.rows() as u64), processes);
        Self::new(
            owners
                .into_iter()
                .enumerate()
                .filter(|&(_, owner)| owner == process)
                .map(|(run, _)| run as u32)
                .collect(),
        )
    }

    /// The next run not taken yet: its place in the queue (for
    /// [`RunQueue::take`]) and its index in the log.
    pub fn peek(&self) -> Option<(usize, u32)> {
        let place = self.next.load(Ordering::Acquire);
        self.runs.get(place).map(|&run| (place, run))
    }

    /// Takes the run at `place`, as [`RunQueue::peek`] gave it; `false` if
    /// another worker took it first (peek again).
    pub fn take(&self, place: usize) -> bool {
        self.next
            .compare_exchange(place, place + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four threads taking from one queue at once: every run is taken by
    /// exactly one of them, and each takes its runs in increasing order.
    #[test]
    fn every_run_is_taken_once_and_in_order() {
        let runs: Vec<u32> = (0..2_000).map(|r| r * 3 + 1).collect();
        let queue = RunQueue::new(runs.clone());
        let taken: Vec<Vec<u32>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        let mut mine = Vec::new();
                        while let Some((place, run)) = queue.peek() {
                            if queue.take(place) {
                                mine.push(run);
                            }
                        }
                        mine
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        for mine in &taken {
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "in order");
        }
        let mut all: Vec<u32> = taken.concat();
        all.sort_unstable();
        assert_eq!(all, runs, "each run exactly once");
    }
}
