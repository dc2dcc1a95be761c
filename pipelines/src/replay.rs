//! `twinflow replay`: runs the reference pipeline over a raw log and writes
//! its results as Parquet datasets plus a run summary.
//!
//! The dataflow is read log → W (windows) → A (align) → F (fuse), and W → D
//! (detect), then A, F and D → V (twin views), with a writer per worker for
//! each dataset (see [`crate::schemas`]). Late rows go to `late/`, rows with
//! an invalid value or an unknown sensor to `quarantine/`. With a mask
//! ([`crate::mask`]), accepted readings in its hidden cells are dropped
//! before W.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use timely::dataflow::ProbeHandle;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concat, Probe};
use twinflow_engine::auth::{KEYS_FILE, read_keys};
use twinflow_engine::catalog::Catalog;
use twinflow_engine::catalog::SensorId;
use twinflow_engine::error::{Error, Result};
use twinflow_engine::event::{LateReading, Quarantined};
use twinflow_engine::exact_sum::ExactSum;
use twinflow_engine::log_source::{LogSource, SplitOptions};
use twinflow_engine::manifest::{FileRecord, History, read_signing_key};
use twinflow_engine::partition::SensorRoutes;
use twinflow_engine::profile::{OperatorBusy, Profiler};
use twinflow_engine::run_maxima::{WatermarkPrefix, watermark_max};
use twinflow_engine::run_queue::RunQueue;
use twinflow_engine::runtime::{Cluster, gather_to_leader};
use twinflow_engine::sensor_checks::SeqGap;
use twinflow_engine::sink::{
    Commit, Committed, PartWriter, SharedPart, WritePart, parse_part_file_name,
};
use twinflow_engine::source::{LogReadOptions, ReaderStatus, Verifying, read_log};
use twinflow_engine::time::{DEFAULT_LATENESS, Micros};
use twinflow_engine::verify::{Untagged, Verification};
use twinflow_operators::align::{AlignWindows, AlignedRow};
use twinflow_operators::detect::DetectAnomalies;
use twinflow_operators::fuse::{FuseRows, InverseVariance};
use twinflow_operators::redundancy::Redundancy;
use twinflow_operators::stats::Stats;
use twinflow_operators::trust::Suspect;
use twinflow_operators::twin::{BuildTwinViews, CatalogChange, Hierarchy, final_state};
use twinflow_operators::window::{EventTimeWindows, Window, Windows};

use crate::fused_outputs::{FusedRecord, ImputedRecord, SplitFused, TrustRecord};
use crate::lineage::{Lineage, SourceFile};
use crate::mask::Mask;
use crate::mask::hide::HideMasked;
use crate::pipeline::Pipeline;
use crate::schemas::{self, FlagRow, Layout};

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
    /// A CSV of plant catalog changes to apply at event times (see
    /// [`read_catalog_changes`]).
    pub catalog_changes: Option<PathBuf>,
    /// An Ed25519 signing key file: the leader signs what it appends to
    /// `OUT`'s manifest with it (see [`twinflow_engine::manifest`]).
    pub sign_key: Option<PathBuf>,
    /// Verify events (tags, replay window, plausibility) before step W; the
    /// spec's checksums then cover the verified events. On by default.
    pub verify: bool,
    /// The sensor keys (`keys.json`); by default beside the log.
    pub keys: Option<PathBuf>,
    /// What verification does with events that carry no tag.
    pub untagged: Untagged,
    /// Measure each operator's busy time on each worker (in the summary's
    /// `operators`).
    pub profile: bool,
    /// A mask file (see [`crate::mask`]): accepted readings in its hidden
    /// cells are dropped before windowing, counted in the summary's `masked`.
    pub mask: Option<PathBuf>,
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
            catalog_changes: None,
            sign_key: None,
            verify: true,
            keys: None,
            untagged: Untagged::Reject,
            profile: false,
            mask: None,
        }
    }
}

/// The run summary, written to `OUT/summary.json` and printed by `replay`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The pipeline's name and version.
    pub pipeline: String,
    /// Rows read from the log.
    pub events_in: u64,
    /// Accepted rows behind the watermark (written to `late/`, not windowed).
    pub late_events: u64,
    /// Window rows written to `windows/`.
    pub windows: u64,
    /// Σ of every window's mean, computed exactly (independent of worker count).
    pub sum_window_means: f64,
    /// Rows written to `aligned/` (step A).
    pub aligned_rows: u64,
    /// Σ of every fused temperature (step F), computed exactly.
    pub sum_fused_temperature: f64,
    /// Flags of step D's detector written to `flags/` (TwinBench: `ewma_z`).
    pub flags: u64,
    /// Sensors named `sensor_suspect` in `flags/` (by fusion, or by
    /// verification for `clock_ahead`).
    #[serde(default)]
    pub suspects: u64,
    /// Alarms of the asset models' `model_nll` detector in `flags/`.
    #[serde(default)]
    pub model_alarms: u64,
    /// Assets in the final twin view (step V).
    pub assets_in_view: u64,
    /// Rows quarantined, in all and per reason.
    pub quarantined: u64,
    pub quarantined_by_reason: BTreeMap<String, u64>,
    /// Whether events were verified (the checksums above then cover the
    /// verified events only).
    pub verified: bool,
    /// The log files replayed (also in every output file's footer; see
    /// [`crate::lineage`]).
    pub sources: Vec<SourceFile>,
    /// Untagged events let through by `--untagged accept`.
    pub unauthenticated: u64,
    /// Accepted readings dropped because the mask hides their cell (on
    /// time or late: they are in neither `windows` nor `late_events`).
    #[serde(default)]
    pub masked: u64,
    /// The mask applied, if any (an absolute path: `eval` finds it here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<PathBuf>,
    /// Gaps in sensors' sequence numbers, and the `seq`s they skipped (with
    /// verification; written to `seq_gaps/`).
    pub seq_gaps: u64,
    pub missing_seq: u64,
    pub workers: usize,
    pub processes: usize,
    pub elapsed_s: f64,
    pub events_per_s: f64,
    /// Peak resident memory of this (the leader's) process, in MB.
    pub peak_rss_mb: Option<f64>,
    /// CPU time of this (the leader's) process, user and system, in seconds.
    pub cpu_s: Option<f64>,
    /// With `profile`: each operator's busy time on each worker, busiest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operators: Vec<OperatorBusy>,
}

/// One worker's counts, gathered by the leader.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct WorkerTotals {
    events_in: u64,
    late_events: u64,
    windows: u64,
    sum_window_means: ExactSum,
    aligned_rows: u64,
    sum_fused_temperature: ExactSum,
    flags: u64,
    suspects: u64,
    model_alarms: u64,
    assets_in_view: u64,
    /// The files the worker committed, for the manifest.
    committed: Vec<Committed>,
    quarantined_by_reason: BTreeMap<String, u64>,
    unauthenticated: u64,
    masked: u64,
    seq_gaps: u64,
    missing_seq: u64,
    operators: Vec<OperatorBusy>,
}

impl WorkerTotals {
    fn merge(&mut self, other: &WorkerTotals) {
        self.events_in += other.events_in;
        self.late_events += other.late_events;
        self.windows += other.windows;
        self.sum_window_means.merge(&other.sum_window_means);
        self.aligned_rows += other.aligned_rows;
        self.sum_fused_temperature
            .merge(&other.sum_fused_temperature);
        self.flags += other.flags;
        self.suspects += other.suspects;
        self.model_alarms += other.model_alarms;
        self.assets_in_view += other.assets_in_view;
        self.committed.extend_from_slice(&other.committed);
        self.unauthenticated += other.unauthenticated;
        self.masked += other.masked;
        self.seq_gaps += other.seq_gaps;
        self.missing_seq += other.missing_seq;
        self.operators.extend_from_slice(&other.operators);
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
    match catalog_dir(log, explicit) {
        Some(dir) => Catalog::read_dir(&dir),
        None => Catalog::discovered(&source.distinct_sensors()?).map_err(|e| Error::format(log, e)),
    }
}

/// Where the catalog of a log is read from: `--catalog`, else the log's
/// directory if it holds a sensor table; `None` when it must be discovered.
fn catalog_dir(log: &Path, explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = explicit {
        return Some(dir.to_path_buf());
    }
    let dir = if log.is_dir() {
        Some(log)
    } else {
        log.parent()
    };
    dir.filter(|d| d.join(twinflow_engine::catalog::SENSORS_FILE).exists())
        .map(Path::to_path_buf)
}

/// Runs TwinBench's reference pipeline over a log. Returns the summary on the
/// process that hosts worker 0 (`None` on the others).
pub fn replay(options: &ReplayOptions) -> Result<Option<Summary>> {
    crate::pipeline::twinbench().replay(options)
}

/// The datasets every worker writes a part of: step W's always, the later
/// steps' when the pipeline runs them.
struct Parts {
    windows: Rc<SharedPart<SensorWindow>>,
    late: Rc<SharedPart<LateReading>>,
    quarantine: Rc<SharedPart<Quarantined>>,
    /// With verification.
    seq_gaps: Option<Rc<SharedPart<SeqGap>>>,
    later: Option<LaterParts>,
}

/// The datasets of steps A, F, D and V.
struct LaterParts {
    aligned: Rc<SharedPart<AlignedRow>>,
    fused: Rc<SharedPart<FusedRecord>>,
    trust: Rc<SharedPart<TrustRecord>>,
    imputed: Rc<SharedPart<ImputedRecord>>,
    flags: Rc<SharedPart<FlagRow>>,
    assets: SharedView<schemas::AssetTwinRow>,
    lines: SharedView<schemas::RollupRow>,
    sites: SharedView<schemas::RollupRow>,
}

/// A twin view's final-state and change-stream parts.
struct SharedView<D> {
    state: Rc<SharedPart<D>>,
    changes: Rc<SharedPart<schemas::Change<D>>>,
}

impl<D> SharedView<D> {
    fn new(writers: schemas::ViewWriters<D>, lineage: &[(String, String)]) -> Self {
        SharedView {
            state: SharedPart::new(writers.state.with_metadata(lineage)),
            changes: SharedPart::new(writers.changes.with_metadata(lineage)),
        }
    }

    fn close(&self) -> Result<Commit> {
        let mut commit = self.state.close()?;
        commit.extend(self.changes.close()?);
        Ok(commit)
    }
}

impl Parts {
    /// Every part carries the run's `lineage` in its footer.
    fn create(
        out: &Path,
        worker: usize,
        layout: &Layout,
        later_steps: bool,
        lineage: &Lineage,
    ) -> Result<Self> {
        let catalog = &layout.catalog;
        let metadata = lineage.metadata();
        Ok(Parts {
            windows: shared(schemas::windows_writer(out, worker, catalog), &metadata)?,
            late: shared(schemas::late_writer(out, worker, catalog), &metadata)?,
            quarantine: shared(schemas::quarantine_writer(out, worker), &metadata)?,
            seq_gaps: lineage
                .verified
                .then(|| shared(schemas::seq_gaps_writer(out, worker, catalog), &metadata))
                .transpose()?,
            later: later_steps
                .then(|| LaterParts::create(out, worker, layout, &metadata))
                .transpose()?,
        })
    }

    /// Commits every part, all together; the first error wins. Returns what
    /// was committed, for the manifest.
    fn finish(&self) -> Result<Vec<Committed>> {
        let mut commit = self.windows.close()?;
        commit.extend(self.late.close()?);
        commit.extend(self.quarantine.close()?);
        if let Some(gaps) = &self.seq_gaps {
            commit.extend(gaps.close()?);
        }
        if let Some(later) = &self.later {
            commit.extend(later.close()?);
        }
        commit.finish()
    }
}

impl LaterParts {
    fn create(
        out: &Path,
        worker: usize,
        layout: &Layout,
        lineage: &[(String, String)],
    ) -> Result<Self> {
        Ok(LaterParts {
            aligned: shared(schemas::aligned_writer(out, worker, layout), lineage)?,
            fused: shared(schemas::fused_writer(out, worker, layout), lineage)?,
            trust: shared(schemas::trust_writer(out, worker, layout), lineage)?,
            imputed: shared(schemas::imputed_writer(out, worker, layout), lineage)?,
            flags: shared(schemas::flags_writer(out, worker, layout), lineage)?,
            assets: SharedView::new(schemas::asset_view_writers(out, worker, layout)?, lineage),
            lines: SharedView::new(
                schemas::rollup_view_writers(out, worker, layout, "line")?,
                lineage,
            ),
            sites: SharedView::new(
                schemas::rollup_view_writers(out, worker, layout, "site")?,
                lineage,
            ),
        })
    }

    fn close(&self) -> Result<Commit> {
        let mut commit = self.aligned.close()?;
        commit.extend(self.fused.close()?);
        commit.extend(self.trust.close()?);
        commit.extend(self.imputed.close()?);
        commit.extend(self.flags.close()?);
        commit.extend(self.assets.close()?);
        commit.extend(self.lines.close()?);
        commit.extend(self.sites.close()?);
        Ok(commit)
    }
}

/// A part shared by the dataflow and its worker, with the run's lineage.
fn shared<T>(
    writer: Result<PartWriter<T>>,
    lineage: &[(String, String)],
) -> Result<Rc<SharedPart<T>>> {
    Ok(SharedPart::new(writer?.with_metadata(lineage)))
}

/// Runs `pipeline` over a log; see [`Pipeline::replay`].
pub(crate) fn run(pipeline: &Pipeline, options: &ReplayOptions) -> Result<Option<Summary>> {
    let started = Instant::now();
    let log = Arc::new(LogSource::open(&options.log, options.split)?);
    let catalog = Arc::new(load_catalog(
        &options.log,
        options.catalog.as_deref(),
        &log,
    )?);
    let changes = match &options.catalog_changes {
        Some(path) => read_catalog_changes(path, &catalog)?,
        None => Vec::new(),
    };
    let alignment = pipeline.alignment(&catalog)?;
    let redundancy = pipeline.redundancy(&catalog, &alignment)?;
    let unweighable = Redundancy::unweighable(&catalog);
    if unweighable > 0 && options.cluster.is_leader_process() {
        eprintln!(
            "note: {unweighable} sensors have no noise σ (no sensors.csv with a sigma column), \
             so none of them is fused"
        );
    }
    let fused_channels = redundancy.channels(&alignment);
    // The spec's F checksum is of inverse-variance fusion, whichever fusion
    // the pipeline keeps as its twin state.
    let spec_fusion = Arc::new(InverseVariance::new(redundancy.clone()));
    let temperature = redundancy
        .quantities()
        .iter()
        .position(|q| q == "temperature");
    let models = pipeline.asset_models(&catalog, &alignment, &redundancy)?;
    let fusion = pipeline.fusion(&catalog, redundancy);
    let layout = Layout {
        catalog: Arc::clone(&catalog),
        hierarchy: Arc::new(Hierarchy::new(&catalog, &changes)),
        channels: alignment.channels().to_vec(),
        quantities: fusion.quantities().to_vec(),
        fused_channels,
        detector: pipeline.detector_name().to_owned(),
    };
    let mask = options
        .mask
        .as_deref()
        .map(|path| Mask::read(path, &catalog, pipeline.window_size_us()))
        .transpose()?
        .map(Arc::new);
    let verification = options
        .verify
        .then(|| load_verification(options, pipeline, &catalog))
        .transpose()?
        .map(Arc::new);
    std::fs::create_dir_all(&options.out).map_err(|e| Error::io(&options.out, e))?;
    // The leader reads OUT's history before this run deletes anything in it,
    // so the files the run deletes are recorded as removed.
    let sign_key = options
        .sign_key
        .as_deref()
        .map(read_signing_key)
        .transpose()?;
    let mut history = options
        .cluster
        .is_leader_process()
        .then(|| History::open(&options.out))
        .transpose()?;
    let by = format!(
        "twinflow {} replay ({} {})",
        env!("CARGO_PKG_VERSION"),
        pipeline.name(),
        pipeline.version()
    );
    if options.cluster.is_leader_process() {
        let workers = options.cluster.workers * options.cluster.processes;
        remove_stale_outputs(
            &options.out,
            workers,
            pipeline.is_windows_only(),
            options.verify,
        )?;
    }
    // Recorded as soon as they happen, so a run that fails later does not
    // leave them unexplained.
    if let Some(history) = &mut history {
        let removing = format!("{by}, starting: removed earlier outputs");
        history.commit(&removing, Vec::new(), sign_key.as_ref())?;
    }

    let progress = Progress::default();
    let reporter = options
        .progress
        .then(|| ProgressReporter::start(log.rows(), progress.clone()));

    let lateness = options.lateness;
    let out = options.out.clone();
    let name = format!("{} {}", pipeline.name(), pipeline.version());
    let lineage = Lineage::of_replay(
        (pipeline.name(), pipeline.version()),
        &log,
        options.verify,
        catalog_dir(&options.log, options.catalog.as_deref())
            .map(|dir| dir.join(twinflow_engine::catalog::SENSORS_FILE))
            .as_deref(),
    )?;
    let sources = lineage.sources.clone();
    let windows_only = pipeline.is_windows_only();
    let profile = options.profile;
    let pipeline = pipeline.clone();
    let runs = Arc::new(RunQueue::of_process(
        &log,
        options.cluster.process,
        options.cluster.processes,
    ));
    let results = {
        let (log, progress) = (Arc::clone(&log), progress.clone());
        options.cluster.run(move |worker| {
            let parts = Parts::create(&out, worker.index(), &layout, !windows_only, &lineage)?;
            let totals = Rc::new(RefCell::new(WorkerTotals::default()));
            let masked = Rc::new(std::cell::Cell::new(0));
            let status = Rc::new(RefCell::new(ReaderStatus::default()));
            let catalog = Arc::clone(&layout.catalog);
            // Where each sensor's events are checked and windowed.
            let routes = SensorRoutes::for_plant(&catalog, worker.peers());
            let prefix =
                share_watermark_prefix(worker, &log, &catalog, verification.as_deref(), &status);
            let verify = verification.as_ref().map(|verification| Verifying {
                verification: Arc::clone(verification),
                routes: routes.clone(),
            });

            let profiler = profile.then(|| Profiler::attach(worker));
            let probe = ProbeHandle::new();
            worker.dataflow::<Micros, _, _>(|scope| {
                let read = LogReadOptions {
                    lateness,
                    progress: Arc::clone(&progress.rows),
                    pace: Some(probe.clone()),
                    prefix,
                    verify,
                    runs: Arc::clone(&runs),
                };
                let streams = read_log(
                    scope,
                    Arc::clone(&log),
                    Arc::clone(&catalog),
                    read,
                    Rc::clone(&status),
                );
                let count = |f: fn(&mut WorkerTotals)| {
                    let totals = Rc::clone(&totals);
                    move || f(&mut totals.borrow_mut())
                };

                let (mut readings, mut late) = (streams.readings, streams.late);
                if let Some(mask) = &mask {
                    readings = readings.hide_masked(Arc::clone(mask), Rc::clone(&masked));
                    late = late.hide_masked(Arc::clone(mask), Rc::clone(&masked));
                }

                // W, each asset's windows closed on one worker (see `SensorRoutes`)
                let route = move |sensor: &SensorId| routes.route(sensor);
                let size = pipeline.window_size_us();
                let windows =
                    readings.window_by::<Stats>(Windows::Tumbling { size }, route.clone());
                let counts = Rc::clone(&totals);
                windows
                    .clone()
                    .write_part(Rc::clone(&parts.windows), move |window| {
                        let mut totals = counts.borrow_mut();
                        totals.windows += 1;
                        totals.sum_window_means.add(window.aggregate.mean());
                    });
                let late_event = count(|t| t.late_events += 1);
                late.write_part(Rc::clone(&parts.late), move |_| late_event());
                let counts = Rc::clone(&totals);
                let quarantined = Arc::clone(&progress.quarantined);
                streams
                    .quarantined
                    .write_part(Rc::clone(&parts.quarantine), move |row| {
                        quarantined.fetch_add(1, Ordering::Relaxed);
                        *counts
                            .borrow_mut()
                            .quarantined_by_reason
                            .entry(row.reason.code().to_owned())
                            .or_default() += 1;
                    });
                let clock_ahead = streams.clock_ahead;
                if let (Some(gaps), Some(part)) = (streams.gaps, &parts.seq_gaps) {
                    let counts = Rc::clone(&totals);
                    gaps.write_part(Rc::clone(part), move |gap| {
                        let mut totals = counts.borrow_mut();
                        totals.seq_gaps += 1;
                        totals.missing_seq += gap.missing;
                    });
                }

                let Some(parts) = &parts.later else {
                    windows.probe_with(&probe);
                    return;
                };

                // A, F, D
                let aligned = windows.clone().align(alignment.clone());
                let fused = aligned.clone().fuse(Arc::clone(&fusion), models.clone());
                let detectors = (pipeline.clone(), Arc::clone(&catalog));
                let flags = windows.detect_by(route, move |sensor| {
                    detectors.0.detector(&detectors.1, *sensor)
                });
                let counts = Rc::clone(&totals);
                let spec_fusion = Arc::clone(&spec_fusion);
                aligned
                    .clone()
                    .write_part(Rc::clone(&parts.aligned), move |row| {
                        let mut totals = counts.borrow_mut();
                        totals.aligned_rows += 1;
                        let fused = temperature.and_then(|q| spec_fusion.fuse_quantity(row, q));
                        if let Some(t) = fused {
                            totals.sum_fused_temperature.add(t.value);
                        }
                    });
                let fused = fused.split_fused();
                fused.fused.write_part(Rc::clone(&parts.fused), |_| {});
                fused.trust.write_part(Rc::clone(&parts.trust), |_| {});
                fused.imputed.write_part(Rc::clone(&parts.imputed), |_| {});
                let flag_catalog = Arc::clone(&catalog);
                let flag_assets = flags
                    .clone()
                    .map(move |f| (flag_catalog.asset_of(f.key), f.start_us));
                let mut suspects = fused.suspects.map(FlagRow::Suspect);
                if let Some(clock_ahead) = clock_ahead {
                    suspects =
                        suspects.concat(clock_ahead.map(move |record| {
                            FlagRow::Suspect(Suspect::clock_ahead(&record, size))
                        }));
                }
                let counts = Rc::clone(&totals);
                flags
                    .map(FlagRow::Anomaly)
                    .concat(suspects)
                    .concat(fused.alarms.map(FlagRow::Model))
                    .write_part(Rc::clone(&parts.flags), move |flag| {
                        let mut totals = counts.borrow_mut();
                        match flag {
                            FlagRow::Anomaly(_) => totals.flags += 1,
                            FlagRow::Suspect(_) => totals.suspects += 1,
                            FlagRow::Model(_) => totals.model_alarms += 1,
                        }
                    });

                // V
                let places = layout.hierarchy.places(scope);
                let views = fused.rows.twin_views(flag_assets, places);
                // The views come consolidated (the twin operator nets the
                // asset view; reduces net the rollups): one retraction and
                // one insertion per changed row and time.
                let asset_changes = views.assets.clone().inner;
                asset_changes.write_part(Rc::clone(&parts.assets.changes), |_| {});
                let in_view = count(|t| t.assets_in_view += 1);
                final_state(views.assets)
                    .write_part(Rc::clone(&parts.assets.state), move |_| in_view());
                for (view, parts) in [(views.lines, &parts.lines), (views.sites, &parts.sites)] {
                    // The rollups come last: their frontier is the pipeline's,
                    // which paces the readers.
                    view.clone()
                        .inner
                        .probe_with(&probe)
                        .write_part(Rc::clone(&parts.changes), |_| {});
                    final_state(view).write_part(Rc::clone(&parts.state), |_| {});
                }
            });
            // Park when there is nothing to do, so an idle worker leaves its core to the
            // others instead of spinning; messages and activations wake it.
            while worker.step_or_park(None) {}
            let operators = profiler.map(|p| p.finish(worker)).unwrap_or_default();

            let outcome = (|| {
                if let Some(e) = status.borrow_mut().error.take() {
                    return Err(e);
                }
                let committed = parts.finish()?;
                let mut totals = totals.take();
                totals.events_in = status.borrow().rows;
                totals.committed = committed;
                totals.unauthenticated = status.borrow().unauthenticated;
                totals.masked = masked.get();
                totals.operators = operators;
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
        pipeline: name,
        events_in: total.events_in,
        late_events: total.late_events,
        windows: total.windows,
        sum_window_means: total.sum_window_means.value(),
        aligned_rows: total.aligned_rows,
        sum_fused_temperature: total.sum_fused_temperature.value(),
        flags: total.flags,
        suspects: total.suspects,
        model_alarms: total.model_alarms,
        assets_in_view: total.assets_in_view,
        quarantined: total.quarantined_by_reason.values().sum(),
        quarantined_by_reason: total.quarantined_by_reason,
        verified: options.verify,
        sources,
        unauthenticated: total.unauthenticated,
        masked: total.masked,
        mask: options
            .mask
            .as_deref()
            .map(|path| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())),
        seq_gaps: total.seq_gaps,
        missing_seq: total.missing_seq,
        workers: options.cluster.workers,
        processes: options.cluster.processes,
        elapsed_s: elapsed,
        events_per_s: total.events_in as f64 / elapsed.max(1e-9),
        peak_rss_mb: twinflow_engine::metrics::peak_rss_bytes().map(|b| b as f64 / 1e6),
        cpu_s: twinflow_engine::metrics::cpu_seconds(),
        operators: {
            let mut operators = total.operators;
            operators.sort_by_key(|o| std::cmp::Reverse(o.busy_us));
            operators
        },
    };
    let path = options.out.join("summary.json");
    let text = serde_json::to_string_pretty(&summary).map_err(|e| Error::format(&path, e))?;
    std::fs::write(&path, text + "\n").map_err(|e| Error::io(&path, e))?;
    // Every worker's parts, then the summary, go into OUT's manifest.
    if let Some(history) = &mut history {
        let mut files = total
            .committed
            .iter()
            .map(|c| FileRecord::committed(&options.out, c))
            .collect::<Result<Vec<_>>>()?;
        files.push(FileRecord::hash_file(&options.out, "summary.json")?);
        history.commit(&by, files, sign_key.as_ref())?;
    }
    Ok(Some(summary))
}

/// Reads plant catalog changes from a CSV file with columns `at_us, asset,
/// line, site`: the asset moves to (or joins the plant at) that line and site
/// at event time `at_us`; empty `line` and `site` remove it from the plant.
pub fn read_catalog_changes(path: &Path, catalog: &Catalog) -> Result<Vec<CatalogChange>> {
    #[derive(Deserialize)]
    struct Row {
        at_us: Micros,
        asset: String,
        line: String,
        site: String,
    }
    let rows: Vec<Row> = twinflow_engine::catalog::read_csv(path)?;
    rows.into_iter()
        .map(|row| {
            let asset = catalog
                .asset_id(&row.asset)
                .ok_or_else(|| Error::format(path, format!("unknown asset {:?}", row.asset)))?;
            let place = match (row.line.is_empty(), row.site.is_empty()) {
                (true, true) => None,
                (false, false) => Some((row.line, row.site)),
                _ => {
                    return Err(Error::format(
                        path,
                        format!("asset {:?}: give both line and site, or neither", row.asset),
                    ));
                }
            };
            Ok(CatalogChange {
                at_us: row.at_us,
                asset,
                place,
            })
        })
        .collect()
}

/// The datasets of step W, as paths under `OUT`: always written.
pub const WINDOW_DATASETS: [&str; 3] = ["windows", "late", "quarantine"];

/// Where verification records gaps in sequence numbers.
pub const SEQ_GAPS_DATASET: &str = "seq_gaps";

/// The datasets of steps A, F, D and V, as paths under `OUT`.
pub const LATER_DATASETS: [&str; 11] = [
    "aligned",
    "fused",
    "trust",
    "imputed",
    "flags",
    "twins/assets",
    "twins/lines",
    "twins/sites",
    "twin_changes/assets",
    "twin_changes/lines",
    "twin_changes/sites",
];

/// Removes what an earlier run into `out` left that this run will not
/// overwrite: part files of workers beyond this run's `workers` (all of the
/// later steps' parts when this run is of step W alone), every file a part
/// rolled over to (see `PartWriter`), and the
/// summary (written again at the end, and absent if this run fails). Each
/// worker replaces its own part atomically, so no process races another here.
fn remove_stale_outputs(
    out: &Path,
    workers: usize,
    windows_only: bool,
    verify: bool,
) -> Result<()> {
    let summary = out.join("summary.json");
    if summary.exists() {
        std::fs::remove_file(&summary).map_err(|e| Error::io(&summary, e))?;
    }
    // A run of step W alone leaves no part of the later steps' datasets.
    let later_parts = if windows_only { 0 } else { workers };
    let datasets = WINDOW_DATASETS.map(|d| (d, workers));
    let gaps = (SEQ_GAPS_DATASET, if verify { workers } else { 0 });
    for (dataset, keep) in datasets
        .into_iter()
        .chain([gaps])
        .chain(LATER_DATASETS.map(|d| (d, later_parts)))
    {
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
            // A worker's first file is replaced by this run if it has that
            // worker; files rolled over from it are written afresh.
            let Some((worker, number)) = parse_part_file_name(name) else {
                continue;
            };
            if number > 0 || worker >= keep {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
    }
    Ok(())
}

/// Counters the workers of a process share for the progress line.
#[derive(Clone, Default)]
struct Progress {
    /// Rows read.
    rows: Arc<AtomicU64>,
    quarantined: Arc<AtomicU64>,
}

/// A progress bar on stderr fed by the workers' shared counters.
struct ProgressReporter {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl ProgressReporter {
    fn start(total: u64, progress: Progress) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let bar = crate::progress::bar(
                true,
                total,
                "replay {bar:40} {human_pos}/{human_len} rows ({per_sec}, eta {eta}) {msg}",
            );
            // Wakes every 200 ms to redraw, and at once when told to stop.
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_millis(200))
            {
                bar.set_position(progress.rows.load(Ordering::Relaxed));
                let quarantined = progress.quarantined.load(Ordering::Relaxed);
                bar.set_message(format!("{quarantined} quarantined"));
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

/// The verification of a replay: the keys (`--keys`, else `keys.json` beside
/// the log), the catalog's ranges, the pipeline's rated rates, the policy.
fn load_verification(
    options: &ReplayOptions,
    pipeline: &Pipeline,
    catalog: &Catalog,
) -> Result<Verification> {
    let path = match &options.keys {
        Some(path) => path.clone(),
        None => {
            let dir = if options.log.is_dir() {
                options.log.as_path()
            } else {
                options.log.parent().unwrap_or(Path::new("."))
            };
            let path = dir.join(KEYS_FILE);
            if !path.exists() {
                return Err(Error::Config(format!(
                    "verification needs the sensor keys, and {} does not exist: give --keys FILE, \
                     or --no-verify to replay every event unverified",
                    path.display()
                )));
            }
            path
        }
    };
    let keys = read_keys(&path)?;
    let verification = Verification::new(
        catalog,
        &keys,
        |sensor| pipeline.rate_of(sensor),
        options.untagged,
    )
    .map_err(|e| Error::format(&path, e))?;
    let unrated = verification.sensors_without_budget();
    if unrated > 0 {
        eprintln!(
            "note: {unrated} sensors have no rated rate (no rate_hz in sensors.csv), so \
             none of their events is ever flooding"
        );
    }
    Ok(verification)
}

/// Finds where each run's watermark starts: this worker finds its own
/// runs' greatest watermark times (of verified events, with
/// `verification`) and shares them. A failure is recorded in `status` (the
/// worker still takes part in the sharing, so no other worker waits on it).
fn share_watermark_prefix(
    worker: &mut timely::worker::Worker,
    log: &LogSource,
    catalog: &Catalog,
    verification: Option<&Verification>,
    status: &Rc<RefCell<ReaderStatus>>,
) -> Arc<WatermarkPrefix> {
    let mut maxima = Vec::new();
    for run in log.runs_for(worker.index(), worker.peers()) {
        match watermark_max(log, run, catalog, verification) {
            Ok(max) => maxima.push((run.index, max)),
            Err(e) => {
                status.borrow_mut().error.get_or_insert(e);
                break;
            }
        }
    }
    Arc::new(WatermarkPrefix::share(worker, maxima, log.runs().len()))
}

/// A window row as written to `windows/`.
pub type SensorWindow = Window<twinflow_engine::catalog::SensorId, Stats>;
