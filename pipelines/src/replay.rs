//! `twinflow replay`: runs the reference pipeline over a raw log and writes
//! its results as Parquet datasets plus a run summary.
//!
//! Step W of TwinBench: per-sensor tumbling 1 s event-time windows (count,
//! mean, min, max, last, variance); late rows go to `late/`, rows with an
//! invalid value or an unknown sensor to `quarantine/`. The dataflow is
//! read log → window → write, with a writer per worker for each dataset.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use timely::dataflow::ProbeHandle;
use timely::dataflow::operators::Probe;
use twinflow_engine::catalog::Catalog;
use twinflow_engine::error::{Error, Result};
use twinflow_engine::exact_sum::ExactSum;
use twinflow_engine::log_source::{LogSource, SplitOptions};
use twinflow_engine::runtime::{Cluster, gather_to_leader};
use twinflow_engine::sink::{SharedPart, WritePart};
use twinflow_engine::source::{LogReadOptions, ReaderStatus, read_log};
use twinflow_engine::time::{DEFAULT_LATENESS, Micros, SECOND};
use twinflow_operators::stats::Stats;
use twinflow_operators::window::{EventTimeWindows, Window, Windows};

use crate::schemas;

/// What to replay and where.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// A raw-log Parquet file or a directory of them.
    pub log: PathBuf,
    pub out: PathBuf,
    /// Directory holding `assets.csv` and `sensors.csv`; by default the log's
    /// directory, and without one the catalog is discovered from the log.
    pub catalog: Option<PathBuf>,
    pub cluster: Cluster,
    pub lateness: Micros,
    pub split: SplitOptions,
    pub progress: bool,
}

impl ReplayOptions {
    pub fn new(log: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        ReplayOptions {
            log: log.into(),
            out: out.into(),
            catalog: None,
            cluster: Cluster::default(),
            lateness: DEFAULT_LATENESS,
            split: SplitOptions::default(),
            progress: false,
        }
    }
}

/// The run summary, written to `OUT/summary.json` and printed by `replay`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Rows read from the log.
    pub events_in: u64,
    /// Accepted rows behind the watermark (written to `late/`, not windowed).
    pub late_events: u64,
    /// Window rows written to `windows/`.
    pub windows: u64,
    /// Σ of every window's mean, computed exactly (independent of worker count).
    pub sum_window_means: f64,
    /// Rows quarantined, in all and per reason.
    pub quarantined: u64,
    pub quarantined_by_reason: BTreeMap<String, u64>,
    pub workers: usize,
    pub processes: usize,
    pub elapsed_s: f64,
    pub events_per_s: f64,
    /// Peak resident memory of this (the leader's) process, in MB.
    pub peak_rss_mb: Option<f64>,
}

/// One worker's counts, gathered by the leader.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct WorkerTotals {
    events_in: u64,
    late_events: u64,
    windows: u64,
    sum_window_means: ExactSum,
    quarantined_by_reason: BTreeMap<String, u64>,
}

impl WorkerTotals {
    fn merge(&mut self, other: &WorkerTotals) {
        self.events_in += other.events_in;
        self.late_events += other.late_events;
        self.windows += other.windows;
        self.sum_window_means.merge(&other.sum_window_means);
        for (reason, n) in &other.quarantined_by_reason {
            *self
                .quarantined_by_reason
                .entry(reason.clone())
                .or_default() += n;
        }
    }
}

/// The catalog for a log: `--catalog`, else the log's directory, else discovered.
pub fn load_catalog(log: &Path, explicit: Option<&Path>, source: &LogSource) -> Result<Catalog> {
    if let Some(dir) = explicit {
        return Catalog::read_dir(dir);
    }
    let dir = if log.is_dir() {
        Some(log)
    } else {
        log.parent()
    };
    if let Some(dir) = dir.filter(|d| d.join(twinflow_engine::catalog::SENSORS_FILE).exists()) {
        return Catalog::read_dir(dir);
    }
    Catalog::discovered(&source.distinct_sensors()?).map_err(|e| Error::format(log, e))
}

/// Runs the reference pipeline over a log. Returns the summary on the process
/// that hosts worker 0 (`None` on the others).
pub fn replay(options: &ReplayOptions) -> Result<Option<Summary>> {
    let started = Instant::now();
    let log = Arc::new(LogSource::open(&options.log, options.split)?);
    let catalog = Arc::new(load_catalog(
        &options.log,
        options.catalog.as_deref(),
        &log,
    )?);
    std::fs::create_dir_all(&options.out).map_err(|e| Error::io(&options.out, e))?;
    if options.cluster.is_leader_process() {
        let workers = options.cluster.workers * options.cluster.processes;
        remove_stale_outputs(&options.out, workers)?;
    }

    let progress = Arc::new(AtomicU64::new(0));
    let reporter = options
        .progress
        .then(|| ProgressReporter::start(log.rows(), Arc::clone(&progress)));

    let lateness = options.lateness;
    let out = options.out.clone();
    let results = {
        let (log, catalog, progress) = (
            Arc::clone(&log),
            Arc::clone(&catalog),
            Arc::clone(&progress),
        );
        options.cluster.run(move |worker| {
            let index = worker.index();
            let windows_part = SharedPart::new(schemas::windows_writer(&out, index, &catalog)?);
            let late_part = SharedPart::new(schemas::late_writer(&out, index, &catalog)?);
            let quarantine_part = SharedPart::new(schemas::quarantine_writer(&out, index)?);
            let totals = Rc::new(RefCell::new(WorkerTotals::default()));
            let status = Rc::new(RefCell::new(ReaderStatus::default()));

            let probe = ProbeHandle::new();
            worker.dataflow::<Micros, _, _>(|scope| {
                let read = LogReadOptions {
                    lateness,
                    progress: Arc::clone(&progress),
                    pace: Some(probe.clone()),
                };
                let streams = read_log(
                    scope,
                    Arc::clone(&log),
                    Arc::clone(&catalog),
                    read,
                    Rc::clone(&status),
                );
                let counts = Rc::clone(&totals);
                streams
                    .readings
                    .window::<Stats>(Windows::Tumbling { size: SECOND })
                    .probe_with(&probe)
                    .write_part(Rc::clone(&windows_part), move |window| {
                        let mut totals = counts.borrow_mut();
                        totals.windows += 1;
                        totals.sum_window_means.add(window.aggregate.mean());
                    });
                let counts = Rc::clone(&totals);
                streams.late.write_part(Rc::clone(&late_part), move |_| {
                    counts.borrow_mut().late_events += 1
                });
                let counts = Rc::clone(&totals);
                streams
                    .quarantined
                    .write_part(Rc::clone(&quarantine_part), move |row| {
                        *counts
                            .borrow_mut()
                            .quarantined_by_reason
                            .entry(row.reason.code().to_owned())
                            .or_default() += 1;
                    });
            });
            while worker.step() {}

            let outcome = (|| {
                if let Some(e) = status.borrow_mut().error.take() {
                    return Err(e);
                }
                windows_part.finish()?;
                late_part.finish()?;
                quarantine_part.finish()?;
                let mut totals = totals.take();
                totals.events_in = status.borrow().rows;
                Ok(totals)
            })();
            // Every worker takes part in the gather, failed or not, so no worker
            // waits forever for one that gave up; the leader sees every failure.
            let report = outcome
                .as_ref()
                .map(Clone::clone)
                .map_err(|e| e.to_string());
            let gathered = gather_to_leader(worker, report);
            outcome.map(|_| gathered)
        })?
    };
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(reporter) = reporter {
        reporter.stop();
    }

    let Some(all) = results.into_iter().flatten().next() else {
        return Ok(None);
    };
    let mut total = WorkerTotals::default();
    for report in &all {
        match report {
            Ok(totals) => total.merge(totals),
            Err(message) => return Err(Error::Runtime(format!("a worker failed: {message}"))),
        }
    }
    let summary = Summary {
        events_in: total.events_in,
        late_events: total.late_events,
        windows: total.windows,
        sum_window_means: total.sum_window_means.value(),
        quarantined: total.quarantined_by_reason.values().sum(),
        quarantined_by_reason: total.quarantined_by_reason,
        workers: options.cluster.workers,
        processes: options.cluster.processes,
        elapsed_s: elapsed,
        events_per_s: total.events_in as f64 / elapsed.max(1e-9),
        peak_rss_mb: twinflow_engine::metrics::peak_rss_bytes().map(|b| b as f64 / 1e6),
    };
    let path = options.out.join("summary.json");
    let text = serde_json::to_string_pretty(&summary).map_err(|e| Error::format(&path, e))?;
    std::fs::write(&path, text + "\n").map_err(|e| Error::io(&path, e))?;
    Ok(Some(summary))
}

/// Removes what an earlier run into `out` left that this run will not
/// overwrite: part files of workers beyond this run's `workers`, and the
/// summary (written again at the end, and absent if this run fails). Each
/// worker replaces its own part atomically, so no process races another here.
fn remove_stale_outputs(out: &Path, workers: usize) -> Result<()> {
    let summary = out.join("summary.json");
    if summary.exists() {
        std::fs::remove_file(&summary).map_err(|e| Error::io(&summary, e))?;
    }
    for dataset in ["windows", "late", "quarantine"] {
        let dir = out.join(dataset);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.map_err(|e| Error::io(&dir, e))?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let index = name
                .strip_prefix("part-")
                .and_then(|n| n.strip_suffix(".parquet"));
            if index
                .and_then(|i| i.parse::<usize>().ok())
                .is_some_and(|i| i >= workers)
            {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
    }
    Ok(())
}

/// A progress bar on stderr fed by the workers' shared row counter.
struct ProgressReporter {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl ProgressReporter {
    fn start(total: u64, done: Arc<AtomicU64>) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "replay {bar:40} {human_pos}/{human_len} events ({per_sec}, eta {eta})",
                )
                .expect("valid template"),
            );
            // Wakes every 200 ms to redraw, and at once when told to stop.
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_millis(200))
            {
                bar.set_position(done.load(Ordering::Relaxed));
            }
            bar.finish_and_clear();
        });
        ProgressReporter { stop, thread }
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// A window row as written to `windows/`.
pub type SensorWindow = Window<twinflow_engine::catalog::SensorId, Stats>;
