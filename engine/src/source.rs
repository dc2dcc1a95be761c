//! The log source operator: each worker reads its runs of a raw log in order,
//! decides lateness exactly (see [`crate::log_source`]), and emits accepted
//! [`Reading`]s, [`LateReading`]s and [`Quarantined`] rows, with its timely
//! capability held at its watermark.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, AsArray, DictionaryArray};
use arrow::datatypes::Int32Type;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::{Capability, Concat};
use timely::dataflow::{ProbeHandle, Scope, Stream};

use crate::catalog::{AssetId, Catalog, KindId};
use crate::error::Error;
use crate::event::{Arrival, ClockAhead, LateReading, QuarantineReason, Quarantined, Reading};
use crate::log_source::{
    DictionaryIds, Fields, LogSource, Run, RunBatch, RunReader, SensorIdCache,
};
use crate::partition::SensorRoutes;
use crate::run_checks::{CheckedBatch, Stateless};
use crate::run_maxima::WatermarkPrefix;
use crate::run_queue::RunQueue;
use crate::sensor_checks::{SeqGap, ToSensorChecks, check_sensors};
use crate::time::{Micros, Watermark, watermark_time};
use crate::verify::Verification;

/// What a log-reading worker reports when it is done (or failed).
#[derive(Debug, Default)]
pub struct ReaderStatus {
    /// Rows read by this worker.
    pub rows: u64,
    /// Rows without a tag that verification let through (see
    /// [`crate::verify::Untagged`]).
    pub unauthenticated: u64,
    /// The first error met; reading stops at it.
    pub error: Option<Error>,
}

/// How a log is read.
#[derive(Clone)]
pub struct LogReadOptions {
    pub lateness: Micros,
    /// Rows read so far by all workers of this process (for progress display).
    pub progress: Arc<AtomicU64>,
    /// The frontier of the pipeline's end. A worker starts run `r` only once
    /// it has passed the start of run `r - PACE_RUNS_PER_WORKER × workers`,
    /// so no reader races ahead of the others and in-flight data stays
    /// bounded (backpressure).
    pub pace: Option<ProbeHandle<Micros>>,
    /// Where each run's watermark starts (see [`crate::run_maxima`]; of
    /// verified events only when verifying).
    pub prefix: Arc<WatermarkPrefix>,
    /// Verify events (TwinBench's "Authentication tag", "Replay window" and
    /// "Plausibility"); `None` reads every event as before verification.
    pub verify: Option<Verifying>,
    /// The runs this process reads, shared by its workers: each takes the
    /// next one when it is ready for another.
    pub runs: Arc<RunQueue>,
}

/// What a worker needs to read its runs with verification: the rules, and
/// which worker checks each sensor's events.
#[derive(Clone)]
pub struct Verifying {
    pub verification: Arc<Verification>,
    pub routes: SensorRoutes,
}

/// The streams a log source produces. Their timestamps are watermarks: a
/// reading sent at time `t` has `ts_us >= t`.
pub struct LogStreams<'s> {
    /// Accepted, on-time readings.
    pub readings: Stream<'s, Micros, Vec<Reading>>,
    /// Accepted readings behind the watermark.
    pub late: Stream<'s, Micros, Vec<LateReading>>,
    /// Rows set aside, with their original fields and a reason.
    pub quarantined: Stream<'s, Micros, Vec<Quarantined>>,
    /// Gaps in sensors' sequence numbers (with verification only).
    pub gaps: Option<Stream<'s, Micros, Vec<SeqGap>>>,
    /// Sensors whose readings keep arriving before their own event time
    /// (with verification only; see [`crate::clock_ahead`]).
    pub clock_ahead: Option<Stream<'s, Micros, Vec<ClockAhead>>>,
}

/// Reads this worker's share of `log`.
pub fn read_log<'s>(
    scope: Scope<'s, Micros>,
    log: Arc<LogSource>,
    catalog: Arc<Catalog>,
    options: LogReadOptions,
    status: Rc<RefCell<ReaderStatus>>,
) -> LogStreams<'s> {
    let mut builder = OperatorBuilder::new("ReadLog".to_owned(), scope);
    let activator = scope.activator_for(builder.operator_info().address);
    let (readings_out, readings) = builder.new_output::<Vec<Reading>>();
    let (late_out, late) = builder.new_output::<Vec<LateReading>>();
    let (quarantined_out, quarantined) = builder.new_output::<Vec<Quarantined>>();
    let (arrivals_out, arrivals) = builder.new_output::<Vec<ToSensorChecks>>();
    let mut outputs = ReaderOutputs {
        readings: OutputBuilder::from(readings_out),
        late: OutputBuilder::from(late_out),
        quarantined: OutputBuilder::from(quarantined_out),
        arrivals: OutputBuilder::from(arrivals_out),
    };

    let peers = scope.peers();
    let queue = Arc::clone(&options.runs);
    let verify = options.verify.clone();
    let reader_log = Arc::clone(&log);
    let reader_status = Rc::clone(&status);
    let reader_catalog = Arc::clone(&catalog);
    builder.build(move |capabilities| {
        let catalog = reader_catalog;
        let (log, status) = (reader_log, reader_status);
        let mut caps: Option<Vec<Capability<Micros>>> = Some(capabilities);
        let mut cursor: Option<RunCursor> = None;
        let mut sensor_ids = SensorIdCache::default();
        let mut out = RowsOut::new(peers);
        // Where run `r`'s watermark starts: after the greatest watermark
        // time before it (of verified events only, when verifying).
        let prefix = {
            let prefix = Arc::clone(&options.prefix);
            move |run: &Run| prefix.before(run.index)
        };
        move |_frontiers| {
            let Some(held) = caps.as_mut() else { return };
            // One step: open the next run (when the pace allows) or read one batch.
            let step = (|| -> crate::Result<Next> {
                if cursor.is_none() {
                    let Some((place, next)) = queue.peek() else {
                        return Ok(Next::Done);
                    };
                    let run = &log.runs()[next as usize];
                    // Nothing this worker sends from now on is behind the next
                    // run's start: the runs it may still take come later.
                    advance(held, prefix(run).saturating_sub(options.lateness));
                    let ahead = PACE_RUNS_PER_WORKER * peers;
                    if let Some(pace) = options.pace.as_ref()
                        && run.index as usize >= ahead
                    {
                        let previous = &log.runs()[run.index as usize - ahead];
                        if pace.less_than(&prefix(previous).saturating_sub(options.lateness)) {
                            return Ok(Next::Wait);
                        }
                    }
                    if !queue.take(place) {
                        // Another worker took it: look at the next one.
                        return Ok(Next::Now);
                    }
                    let run = run.clone();
                    let fields = match options.verify {
                        Some(_) => Fields::Checked,
                        None => Fields::Windowing,
                    };
                    cursor = Some(RunCursor {
                        reader: log.read_run(&run, fields)?,
                        watermark: Watermark::starting_at(prefix(&run), options.lateness),
                        run,
                        offset: 0,
                        rejects: Vec::new(),
                        verify: options.verify.clone(),
                        sent: vec![0; peers],
                        unauthenticated: 0,
                        asset_ids: DictionaryIds::default(),
                        kind_ids: DictionaryIds::default(),
                    });
                }
                let current = cursor.as_mut().expect("a run is open");
                advance(held, current.watermark.current());
                match current.reader.next_batch()? {
                    Some(batch) => {
                        let rows = batch.ts.len() as u64;
                        current.accept(&batch, &catalog, &mut sensor_ids, &mut out)?;
                        status.borrow_mut().rows += rows;
                        options.progress.fetch_add(rows, Ordering::Relaxed);
                        out.send(held, &mut outputs);
                    }
                    None => {
                        let done = cursor.take().expect("a run is open");
                        status.borrow_mut().unauthenticated += done.unauthenticated;
                        if done.verify.is_some() {
                            // Tell every checking worker how much of this run to expect.
                            for (to, &arrivals) in done.sent.iter().enumerate() {
                                out.arrivals[to].push(ToSensorChecks::RunEnd {
                                    run: done.run.index,
                                    to: to as u32,
                                    arrivals,
                                });
                            }
                        }
                        out.quarantined = done.quarantined(&log)?;
                        out.send(held, &mut outputs);
                    }
                }
                Ok(Next::Now)
            })();
            match step {
                Ok(Next::Now) => activator.activate(),
                Ok(Next::Wait) => activator.activate_after(PACE_POLL),
                Ok(Next::Done) => caps = None,
                Err(e) => {
                    status.borrow_mut().error.get_or_insert(e);
                    caps = None;
                }
            }
        }
    });
    match verify {
        None => LogStreams {
            readings,
            late,
            quarantined,
            gaps: None,
            clock_ahead: None,
        },
        Some(verify) => {
            let checked = check_sensors(scope, arrivals, log, catalog, verify, status);
            LogStreams {
                readings: checked.readings,
                late: checked.late,
                quarantined: quarantined.concat(checked.quarantined),
                gaps: Some(checked.gaps),
                clock_ahead: Some(checked.clock_ahead),
            }
        }
    }
}

/// What a reader does after a step.
enum Next {
    /// Read on at once.
    Now,
    /// Look again after [`PACE_POLL`]: the pipeline is behind the pace.
    Wait,
    /// This worker's share is read (or reading failed).
    Done,
}

/// How many runs each worker may read ahead of the pipeline's end (times the
/// number of workers, who take the runs from a queue in log order: see
/// [`crate::run_queue`]). A run's last windows
/// reach the end only after every stateful operator on every worker has
/// taken a step, each worker a batch apart; a reader allowed one run ahead
/// spent that time parked. On TwinBench's 10M-event log with two workers,
/// one run ahead parked each worker for 100–570 ms (1–3 thousand parks,
/// `replay --profile`); three per worker parked them 0–160 ms, the replay
/// took 15–35% less time (most with verification, which has more stages),
/// and peak memory stayed the same. Six per worker parked the two workers
/// 14 ms in all instead of 74 (5 alternated runs); the replay's median
/// time fell 8 % (0.710 → 0.650 s), 10 % verified (1.873 → 1.678 s, 4
/// runs), for 10 MB more at peak unverified (98 → 108 MB) and the same
/// verified (150 MB). Twelve gained nothing more. Since the readers rarely
/// run far ahead, the pace mostly bounds memory when the pipeline's end is
/// slow (a slow disk): then at most this many runs a worker wait in it.
const PACE_RUNS_PER_WORKER: usize = 6;

/// How long a reader held back by the pace waits before it looks again.
/// Looking again at once spun the worker through empty steps, each of them
/// scheduling the dataflow and trading progress with the other workers: with
/// two workers, 180–240 thousand steps for TwinBench's 10M-event log (1.5–5
/// million with verification) where 2 thousand do. The worker parks in
/// between, and any message wakes it at once.
const PACE_POLL: std::time::Duration = std::time::Duration::from_micros(200);

/// A reader's outgoing rows of one step, one buffer per output, and for
/// arrivals one per checking worker: each then crosses to its worker whole
/// (see [`crate::exchange`]). Copying every arrival into a buffer per
/// worker on the way had cost a verified two-worker TwinBench replay 18 %
/// of its CPU (4.66 → 3.82 s, 6 alternated runs; peak memory rose 137 →
/// 161 MB, the readers being that much further ahead).
struct RowsOut {
    readings: Vec<Reading>,
    late: Vec<LateReading>,
    quarantined: Vec<Quarantined>,
    arrivals: Vec<Vec<ToSensorChecks>>,
}

type Out<D> = OutputBuilder<Micros, CapacityContainerBuilder<Vec<D>>>;

/// The reader's outputs, in the order of its capabilities.
struct ReaderOutputs {
    readings: Out<Reading>,
    late: Out<LateReading>,
    quarantined: Out<Quarantined>,
    arrivals: Out<ToSensorChecks>,
}

impl RowsOut {
    fn new(peers: usize) -> Self {
        RowsOut {
            readings: Vec::new(),
            late: Vec::new(),
            quarantined: Vec::new(),
            arrivals: (0..peers).map(|_| Vec::new()).collect(),
        }
    }

    /// Sends every non-empty buffer on its output, at its held capability.
    fn send(&mut self, held: &[Capability<Micros>], outputs: &mut ReaderOutputs) {
        fn give<D: Clone + 'static>(out: &mut Out<D>, cap: &Capability<Micros>, data: &mut Vec<D>) {
            if !data.is_empty() {
                out.activate().session(cap).give_container(data);
            }
        }
        give(&mut outputs.readings, &held[0], &mut self.readings);
        give(&mut outputs.late, &held[1], &mut self.late);
        give(&mut outputs.quarantined, &held[2], &mut self.quarantined);
        for arrivals in &mut self.arrivals {
            give(&mut outputs.arrivals, &held[3], arrivals);
        }
    }
}

/// Moves capabilities forward to `time` (never backward).
fn advance(caps: &mut [Capability<Micros>], time: Micros) {
    for cap in caps {
        if *cap.time() < time {
            cap.downgrade(&time);
        }
    }
}

/// The state of reading one run.
struct RunCursor {
    run: Run,
    reader: RunReader,
    watermark: Watermark,
    /// Offset in the run of the next row.
    offset: usize,
    /// Rows quarantined so far: offset in run, reason, watermark at arrival.
    /// Their other fields are read back when the run ends (they are rare).
    rejects: Vec<(usize, QuarantineReason, Micros)>,
    /// With verification: the rules, and which worker checks each sensor.
    verify: Option<Verifying>,
    /// With verification: arrivals sent to each checking worker.
    sent: Vec<u64>,
    /// With verification: rows without a tag let through.
    unauthenticated: u64,
    /// With verification: asset ids of the batch's asset dictionary.
    asset_ids: DictionaryIds<AssetId>,
    /// With verification: kind ids of the batch's kind dictionary.
    kind_ids: DictionaryIds<KindId>,
}

impl RunCursor {
    /// Sorts a batch's rows into accepted readings, late readings, arrivals
    /// for the per-sensor checks, and rejects.
    fn accept(
        &mut self,
        batch: &RunBatch,
        catalog: &Catalog,
        ids: &mut SensorIdCache,
        out: &mut RowsOut,
    ) -> crate::Result<()> {
        let ids = ids.resolve(batch.sensor.values().as_string::<i32>(), catalog);
        let ts = batch.ts.values();
        let keys = batch.sensor.keys().values();
        let values = batch.value.values();
        if let Some(Verifying {
            verification,
            routes,
            ..
        }) = &self.verify
        {
            let (Some(seq), Some(arrival)) = (&batch.seq, &batch.arrival) else {
                return Err(Error::Runtime("verified runs are read with seq".into()));
            };
            let (seq, arrival) = (seq.values(), arrival.values());
            // A quarantine record can be made from an arrival when the row's
            // asset and kind (which the tag does not cover) are the catalog's.
            let asset_ids = batch.asset.as_ref().map(|a| {
                self.asset_ids
                    .resolve_with(a.values().as_string(), |n| catalog.asset_id(n))
            });
            let kind_ids = batch.kind.as_ref().map(|k| {
                self.kind_ids
                    .resolve_with(k.values().as_string(), |n| catalog.kind_id(n))
            });
            let quality = batch.quality.as_ref().map_or(&[][..], |q| q.values());
            // Each checking worker's share, with room for an uneven batch.
            let share = ts.len().div_ceil(self.sent.len()) + ts.len() / 16;
            for arrivals in &mut out.arrivals {
                arrivals.reserve(share);
            }

            let checked = CheckedBatch::new(batch);
            for i in 0..ts.len() {
                let offset = self.offset + i;
                let watermark = self.watermark.current();
                let implausible = match checked.verdict(i, ids, verification) {
                    Stateless::Pass { unauthenticated } => {
                        self.unauthenticated += u64::from(unauthenticated);
                        None
                    }
                    Stateless::Implausible(reason) => Some(reason),
                    Stateless::Reject(reason) => {
                        // Every field is at hand: quarantine it now.
                        out.quarantined.push(Quarantined {
                            reason,
                            position: self.run.first_position + offset as u64,
                            watermark_us: watermark,
                            row: batch.raw_row(i),
                        });
                        continue;
                    }
                };
                // The stateless checks found the row complete and its sensor known.
                let Some(sensor) = ids[keys[i] as usize] else {
                    return Err(Error::Runtime(
                        "a checked row names an unknown sensor".into(),
                    ));
                };
                let target = routes.worker_of(sensor) as usize;
                self.sent[target] += 1;
                out.arrivals[target].push(ToSensorChecks::Arrival {
                    arrival: Arrival {
                        reading: Reading {
                            sensor,
                            run: self.run.index,
                            ts_us: ts[i],
                            value: values[i],
                            arrival_us: arrival[i],
                        },
                        seq: seq[i],
                        position: self.run.first_position + offset as u64,
                        watermark_us: watermark,
                        quality: quality[i],
                        tag: batch
                            .tag
                            .as_ref()
                            .filter(|t| t.is_valid(i))
                            .and_then(|t| t.value(i).try_into().ok()),
                        listed: listed(
                            asset_ids,
                            batch.asset.as_ref(),
                            i,
                            catalog.asset_of(sensor),
                        ) && listed(
                            kind_ids,
                            batch.kind.as_ref(),
                            i,
                            catalog.kind_of(sensor),
                        ),
                    },
                    implausible,
                });
                // Only events that pass the stateless checks move the watermark.
                if implausible.is_none() {
                    self.watermark.observe(watermark_time(ts[i], arrival[i]));
                }
            }
            self.offset += ts.len();
            return Ok(());
        }

        let any_null =
            batch.ts.null_count() + batch.sensor.keys().null_count() + batch.value.null_count() > 0;
        let times = batch.watermark_times();
        out.readings.reserve(ts.len());
        for i in 0..ts.len() {
            let offset = self.offset + i;
            let watermark = self.watermark.current();
            if any_null
                && (batch.ts.is_null(i) || batch.sensor.is_null(i) || batch.value.is_null(i))
            {
                self.rejects
                    .push((offset, QuarantineReason::NullField, watermark));
                if batch.ts.is_valid(i) {
                    self.watermark.observe(times.at(i, ts[i]));
                }
                continue;
            }
            let (t, v) = (ts[i], values[i]);
            match ids[keys[i] as usize] {
                None => self
                    .rejects
                    .push((offset, QuarantineReason::UnknownSensor, watermark)),
                Some(_) if !v.is_finite() => {
                    self.rejects
                        .push((offset, QuarantineReason::NotFinite, watermark))
                }
                Some(sensor) => {
                    let reading = Reading {
                        sensor,
                        run: self.run.index,
                        ts_us: t,
                        value: v,
                        arrival_us: times.arrival(i, t),
                    };
                    if t < watermark {
                        out.late.push(LateReading {
                            reading,
                            position: self.run.first_position + offset as u64,
                            watermark_us: watermark,
                        });
                    } else {
                        out.readings.push(reading);
                    }
                }
            }
            // Without verification every row with an event time moves the watermark.
            self.watermark.observe(times.at(i, t));
        }
        self.offset += ts.len();
        Ok(())
    }

    /// Re-reads the quarantined rows with all their fields.
    fn quarantined(self, log: &LogSource) -> crate::Result<Vec<Quarantined>> {
        quarantine_rows(log, &self.run, self.rejects)
    }
}

/// Whether row `i` of a dictionary `column` names `expected`, given the
/// ids of the column's dictionary entries.
#[inline]
fn listed<Id: PartialEq + Copy>(
    ids: Option<&[Option<Id>]>,
    column: Option<&DictionaryArray<Int32Type>>,
    i: usize,
    expected: Id,
) -> bool {
    ids.zip(column)
        .is_some_and(|(ids, c)| c.is_valid(i) && ids[c.keys().value(i) as usize] == Some(expected))
}

/// Rows of `run` set aside, as (offset in the run, reason, watermark at
/// arrival), with all their fields re-read from the log.
pub(crate) fn quarantine_rows(
    log: &LogSource,
    run: &Run,
    mut rejects: Vec<(usize, QuarantineReason, Micros)>,
) -> crate::Result<Vec<Quarantined>> {
    rejects.sort_by_key(|r| r.0);
    let offsets: Vec<usize> = rejects.iter().map(|r| r.0).collect();
    let rows = log.read_rows(run, &offsets)?;
    if rows.len() != offsets.len() {
        return Err(Error::parquet(
            log.path_of(run),
            format!("re-read {} of {} set-aside rows", rows.len(), offsets.len()),
        ));
    }
    Ok(rejects
        .into_iter()
        .zip(rows)
        .map(|((offset, reason, watermark_us), row)| Quarantined {
            reason,
            position: run.first_position + offset as u64,
            watermark_us,
            row,
        })
        .collect())
}
