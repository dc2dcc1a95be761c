//! The timely runtime: worker threads in one or several processes, and the
//! small collective steps a pipeline needs around its dataflow.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use timely::communication::Config as CommunicationConfig;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::InputHandle;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Exchange, Inspect, Probe};
use timely::worker::Worker;
use timely::{Config, WorkerConfig};

use crate::error::{Error, Result};

/// Where a pipeline runs: `workers` threads in each of `processes` processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// Worker threads per process.
    pub workers: usize,
    /// Number of processes.
    pub processes: usize,
    /// This process's index in `0..processes`.
    pub process: usize,
    /// A file naming each process's `host:port`, one per line (needed when
    /// `processes > 1`).
    pub hostfile: Option<PathBuf>,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            workers: 1,
            processes: 1,
            process: 0,
            hostfile: None,
        }
    }
}

impl Cluster {
    /// Threads in this process.
    pub fn threads(workers: usize) -> Self {
        Cluster {
            workers,
            ..Cluster::default()
        }
    }

    /// Whether this process hosts global worker 0, which writes run-wide results.
    pub fn is_leader_process(&self) -> bool {
        self.process == 0
    }

    /// The timely configuration for this process.
    pub fn timely_config(&self) -> Result<Config> {
        if self.workers == 0 {
            return Err(Error::Config("--workers must be at least 1".into()));
        }
        if self.process >= self.processes {
            return Err(Error::Config(format!(
                "--process {} is out of range for --processes {}",
                self.process, self.processes
            )));
        }
        let communication = if self.processes > 1 {
            let path = self
                .hostfile
                .as_ref()
                .ok_or_else(|| Error::Config("--processes > 1 needs --hostfile".into()))?;
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            let addresses: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned)
                .collect();
            if addresses.len() < self.processes {
                return Err(Error::format(
                    path,
                    format!(
                        "names {} hosts but --processes is {}",
                        addresses.len(),
                        self.processes
                    ),
                ));
            }
            CommunicationConfig::Cluster {
                threads: self.workers,
                process: self.process,
                addresses: addresses[..self.processes].to_vec(),
                report: false,
                zerocopy: false,
            }
        } else if self.workers > 1 {
            CommunicationConfig::Process(self.workers)
        } else {
            CommunicationConfig::Thread
        };
        Ok(Config {
            communication,
            worker: WorkerConfig::default(),
        })
    }

    /// Runs `work` on every worker of this process and returns what each
    /// returned, in worker order; a worker's error or panic fails the run.
    pub fn run<T, F>(&self, work: F) -> Result<Vec<T>>
    where
        T: Send + 'static,
        F: Fn(&mut Worker) -> Result<T> + Send + Sync + 'static,
    {
        let guards = timely::execute(self.timely_config()?, work).map_err(Error::Runtime)?;
        let mut results = Vec::new();
        for joined in guards.join() {
            results.push(
                joined.map_err(|panic| Error::Runtime(format!("a worker panicked: {panic}")))??,
            );
        }
        Ok(results)
    }
}

/// Mixes a key's route number before timely's exchange, which keeps only
/// its low bits (or takes it modulo the number of workers), so keys spread
/// evenly over workers whatever pattern their numbers follow. Sensor ids
/// count up asset by asset, eight channels each, so raw ids sent every
/// asset's 50 Hz `vib-1` to the same one of two workers, which then checked
/// 64% of the events.
///
/// Fibonacci hashing: the high half of the route times 2⁶⁴/φ. Ids in
/// arithmetic progression (one channel of every asset) land nearly evenly
/// on every worker count; on TwinBench's sensors, weighted by rate, the
/// busiest of 2 to 8 workers gets at most 11% over an even share, 4% on two
/// (a general-purpose hash such as MurmurHash3's finalizer: up to 19%).
#[inline]
pub fn spread(route: u64) -> u64 {
    route.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32
}

/// The worker of `peers` that a key's `route` leads to: `spread(route) %
/// peers`, as timely's exchange and ours map the spread route.
#[inline]
pub fn worker_of_route(route: u64, peers: usize) -> usize {
    (spread(route) % peers.max(1) as u64) as usize
}

/// The load of the busiest of `peers` workers over an even share (1.0 is
/// perfect balance), when keys of the given `(route, weight)` go to
/// [`worker_of_route`].
pub fn busiest_share(keys: impl Iterator<Item = (u64, f64)>, peers: usize) -> f64 {
    let peers = peers.max(1);
    let mut load = vec![0.0; peers];
    for (route, weight) in keys {
        load[worker_of_route(route, peers)] += weight;
    }
    let total: f64 = load.iter().sum();
    let busiest = load.iter().fold(0.0f64, |m, l| m.max(*l));
    if total > 0.0 {
        busiest / (total / peers as f64)
    } else {
        1.0
    }
}

/// Sends `value` from every worker to global worker 0, which receives all of
/// them (sorted, so the result does not depend on arrival order); the other
/// workers receive `None`. Every worker must call it.
pub fn gather_to_leader<T>(worker: &mut Worker, value: T) -> Option<Vec<T>>
where
    T: timely::ExchangeData + Ord + Clone,
{
    let all = collect(worker, value, false);
    (worker.index() == 0).then_some(all)
}

/// Sends `value` from every worker to every worker: each receives all of
/// them, sorted. Every worker must call it.
pub fn all_gather<T>(worker: &mut Worker, value: T) -> Vec<T>
where
    T: timely::ExchangeData + Ord + Clone,
{
    collect(worker, value, true)
}

/// What every worker's `value` reaches: worker 0 only, or every worker.
fn collect<T>(worker: &mut Worker, value: T, everyone: bool) -> Vec<T>
where
    T: timely::ExchangeData + Ord + Clone,
{
    let gathered = Rc::new(RefCell::new(Vec::new()));
    let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<T>>>::new();
    let probe = {
        let gathered = Rc::clone(&gathered);
        worker.dataflow::<u64, _, _>(|scope| {
            let stream = input.to_stream(scope);
            let routed = if everyone {
                stream.broadcast()
            } else {
                stream.exchange(|_| 0)
            };
            routed
                .inspect(move |x| gathered.borrow_mut().push(x.clone()))
                .probe()
                .0
        })
    };
    input.send(value);
    input.close();
    while !probe.done() {
        worker.step();
    }
    let mut all = gathered.take();
    all.sort();
    all
}

#[cfg(test)]
mod tests {
    use super::{busiest_share, spread};

    /// TwinBench's layout: 200 assets of eight channels, ids counting up
    /// asset by asset, the channels' rates as the spec's table gives them.
    #[test]
    fn spread_balances_twinbench_sensors_over_workers() {
        let rates_hz = [10.0, 10.0, 10.0, 10.0, 10.0, 50.0, 10.0, 1.0];
        let sensors = || (0..200u64 * 8).map(|id| (id, rates_hz[id as usize % 8]));
        // Without spreading, raw ids put every asset's 50 Hz channel on one of two.
        let mut raw = [0.0; 2];
        sensors().for_each(|(id, rate)| raw[id as usize % 2] += rate);
        assert!(raw[1] / raw[0] > 1.5, "raw ids: {raw:?}");
        let two = busiest_share(sensors(), 2);
        assert!(
            two < 1.05,
            "two workers: the busiest has {two}× an even share"
        );
        for peers in 3..=8 {
            let share = busiest_share(sensors(), peers);
            assert!(
                share < 1.12,
                "{peers} workers: the busiest has {share}× an even share"
            );
        }
        // By asset, each weighing its eight channels: 200 keys, not 1600,
        // spread less evenly over some worker counts, evenly over two.
        let assets = || (0..200u64).map(|asset| (asset, rates_hz.iter().sum::<f64>()));
        assert!(busiest_share(assets(), 2) < 1.02);
        for peers in 3..=8 {
            let share = busiest_share(assets(), peers);
            assert!(
                share < 1.1,
                "{peers} workers by asset: {share}× an even share"
            );
        }
    }

    #[test]
    fn busiest_share_of_known_loads() {
        // Routes 0 and 1 spread to different workers of two (checked here).
        assert_ne!(spread(0) % 2, spread(1) % 2);
        assert_eq!(busiest_share([(0, 1.0), (1, 1.0)].into_iter(), 2), 1.0);
        assert_eq!(busiest_share([(0, 3.0), (1, 1.0)].into_iter(), 2), 1.5);
        assert_eq!(busiest_share([(0, 3.0), (0, 1.0)].into_iter(), 2), 2.0);
    }
}
