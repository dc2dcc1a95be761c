//! The log source operator: each worker reads its runs of a raw log in order,
//! decides lateness exactly (see [`crate::log_source`]), and emits accepted
//! [`Reading`]s, [`LateReading`]s and [`Quarantined`] rows, with its timely
//! capability held at its watermark.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, AsArray, StringArray};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::{ProbeHandle, Scope, Stream};

use crate::catalog::{Catalog, SensorId};
use crate::error::Error;
use crate::event::{LateReading, QuarantineReason, Quarantined, Reading};
use crate::log_source::{LogSource, Run, RunBatch, RunReader};
use crate::time::{Micros, Watermark};

/// What a log-reading worker reports when it is done (or failed).
#[derive(Debug, Default)]
pub struct ReaderStatus {
    /// Rows read by this worker.
    pub rows: u64,
    /// The first error met; reading stops at it.
    pub error: Option<Error>,
}

/// How a log is read.
#[derive(Clone)]
pub struct LogReadOptions {
    pub lateness: Micros,
    /// Rows read so far by all workers of this process (for progress display).
    pub progress: Arc<AtomicU64>,
    /// The frontier of the pipeline's end. A worker starts a run only once it
    /// has passed the start of the run before it, so no reader races ahead of
    /// the others and in-flight data stays bounded (backpressure).
    pub pace: Option<ProbeHandle<Micros>>,
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
    let mut readings_out = OutputBuilder::from(readings_out);
    let mut late_out = OutputBuilder::from(late_out);
    let mut quarantined_out = OutputBuilder::from(quarantined_out);

    let runs: Vec<Run> = log
        .runs_for(scope.index(), scope.peers())
        .cloned()
        .collect();
    builder.build(move |capabilities| {
        let mut caps: Option<Vec<Capability<Micros>>> = Some(capabilities);
        let mut runs = runs.into_iter().peekable();
        let mut cursor: Option<RunCursor> = None;
        let mut sensor_ids = SensorIdCache::default();
        let mut buffer: Vec<Reading> = Vec::new();
        let mut late_buffer: Vec<LateReading> = Vec::new();
        move |_frontiers| {
            let Some(held) = caps.as_mut() else { return };
            // One step: open the next run (when the pace allows) or read one batch.
            // `Ok(true)`: call again; `Ok(false)`: this worker's share is read.
            let step = (|| -> crate::Result<bool> {
                if cursor.is_none() {
                    let Some(run) = runs.peek() else {
                        return Ok(false);
                    };
                    // Nothing this worker sends from now on is behind its next run's start.
                    advance(held, run.prefix_max_ts.saturating_sub(options.lateness));
                    if let Some(pace) = options.pace.as_ref()
                        && run.index > 0
                    {
                        let previous = &log.runs()[run.index as usize - 1];
                        if pace.less_than(&previous.prefix_max_ts.saturating_sub(options.lateness))
                        {
                            return Ok(true);
                        }
                    }
                    let run = runs.next().expect("peeked");
                    cursor = Some(RunCursor {
                        reader: log.read_run(&run)?,
                        watermark: Watermark::starting_at(run.prefix_max_ts, options.lateness),
                        run,
                        offset: 0,
                        rejects: Vec::new(),
                    });
                }
                let current = cursor.as_mut().expect("a run is open");
                advance(held, current.watermark.current());
                match current.reader.next_batch()? {
                    Some(batch) => {
                        let rows = batch.ts.len() as u64;
                        current.accept(
                            &batch,
                            &catalog,
                            &mut sensor_ids,
                            &mut buffer,
                            &mut late_buffer,
                        );
                        status.borrow_mut().rows += rows;
                        options.progress.fetch_add(rows, Ordering::Relaxed);
                        if !buffer.is_empty() {
                            readings_out
                                .activate()
                                .session(&held[0])
                                .give_container(&mut buffer);
                        }
                        if !late_buffer.is_empty() {
                            late_out
                                .activate()
                                .session(&held[1])
                                .give_container(&mut late_buffer);
                        }
                    }
                    None => {
                        let mut quarantined =
                            cursor.take().expect("a run is open").quarantined(&log)?;
                        if !quarantined.is_empty() {
                            quarantined_out
                                .activate()
                                .session(&held[2])
                                .give_container(&mut quarantined);
                        }
                    }
                }
                Ok(true)
            })();
            match step {
                Ok(true) => activator.activate(),
                Ok(false) => caps = None,
                Err(e) => {
                    status.borrow_mut().error = Some(e);
                    caps = None;
                }
            }
        }
    });
    LogStreams {
        readings,
        late,
        quarantined,
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
}

impl RunCursor {
    /// Sorts a batch's rows into accepted readings (appended to `out`) and rejects.
    fn accept(
        &mut self,
        batch: &RunBatch,
        catalog: &Catalog,
        ids: &mut SensorIdCache,
        out: &mut Vec<Reading>,
        late: &mut Vec<LateReading>,
    ) {
        let ids = ids.resolve(batch.sensor.values().as_string::<i32>(), catalog);
        let ts = batch.ts.values();
        let keys = batch.sensor.keys().values();
        let values = batch.value.values();
        let any_null =
            batch.ts.null_count() + batch.sensor.keys().null_count() + batch.value.null_count() > 0;
        out.reserve(ts.len());
        for i in 0..ts.len() {
            let offset = self.offset + i;
            let watermark = self.watermark.current();
            if any_null
                && (batch.ts.is_null(i) || batch.sensor.is_null(i) || batch.value.is_null(i))
            {
                self.rejects
                    .push((offset, QuarantineReason::NullField, watermark));
                if batch.ts.is_valid(i) {
                    self.watermark.observe(ts[i]);
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
                    };
                    if t < watermark {
                        late.push(LateReading {
                            reading,
                            position: self.run.first_position + offset as u64,
                            watermark_us: watermark,
                        });
                    } else {
                        out.push(reading);
                    }
                }
            }
            // Without verification every row with an event time moves the watermark.
            self.watermark.observe(t);
        }
        self.offset += ts.len();
    }

    /// Re-reads the quarantined rows with all their fields.
    fn quarantined(self, log: &LogSource) -> crate::Result<Vec<Quarantined>> {
        let offsets: Vec<usize> = self.rejects.iter().map(|r| r.0).collect();
        let rows = log.read_rows(&self.run, &offsets)?;
        if rows.len() != offsets.len() {
            return Err(Error::parquet(
                log.path_of(&self.run),
                format!("re-read {} of {} set-aside rows", rows.len(), offsets.len()),
            ));
        }
        Ok(self
            .rejects
            .into_iter()
            .zip(rows)
            .map(|((offset, reason, watermark_us), row)| Quarantined {
                reason,
                position: self.run.first_position + offset as u64,
                watermark_us,
                row,
            })
            .collect())
    }
}

/// Sensor ids for the entries of a sensor dictionary, resolved once per
/// dictionary rather than once per row. Batches of one column chunk carry the
/// same dictionary (as fresh copies), so comparing the raw bytes — a memcmp of
/// a few kilobytes per batch — finds it again.
#[derive(Default)]
struct SensorIdCache {
    names: Option<StringArray>,
    ids: Vec<Option<SensorId>>,
}

impl SensorIdCache {
    fn resolve(&mut self, names: &StringArray, catalog: &Catalog) -> &[Option<SensorId>] {
        let same = self.names.as_ref().is_some_and(|cached| {
            cached.null_count() == 0
                && names.null_count() == 0
                && cached.value_offsets() == names.value_offsets()
                && cached.value_data() == names.value_data()
        });
        if !same {
            self.ids.clear();
            self.ids
                .extend(names.iter().map(|n| n.and_then(|n| catalog.sensor_id(n))));
            self.names = Some(names.clone());
        }
        &self.ids
    }
}
