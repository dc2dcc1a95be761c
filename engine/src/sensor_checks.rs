//! The per-sensor half of verification as a dataflow operator: each sensor's replay window and flooding budget, applied in the log's arrival order across runs.
//!
//! Readers check tags, clocks and ranges where they read (see
//! [`crate::run_checks`]) and send what passed the tag check here, exchanged
//! by sensor. Runs are read by different workers at once, so the arrivals of
//! run 7 may come before those of run 6; this operator holds each run until
//! it is complete and takes runs strictly in order. A run is complete when
//! its reader's end marker has come, which says how many arrivals it sent
//! this worker, and that many have. So a sensor's state sees its events in
//! the log's order whatever the number of workers or processes, which makes
//! every verdict, and everything downstream, independent of the split. The
//! same order lets it name sensors whose readings keep arriving before their
//! own event time ([`crate::clock_ahead`]).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::{Scope, Stream};

use crate::catalog::{Catalog, SensorId};
use crate::clock_ahead::AheadWatch;
use crate::event::{Arrival, ClockAhead, LateReading, QuarantineReason, Quarantined, Reading};
use crate::exchange::exchange;
use crate::log_source::LogSource;
use crate::partition::SensorRoutes;
use crate::source::{ReaderStatus, Verifying, quarantine_rows};
use crate::time::Micros;
use crate::verify::SensorChecks;

/// What readers send the per-sensor checks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ToSensorChecks {
    /// An event whose tag passed, with the stateless plausibility verdict
    /// (`Clock` or `OutOfRange`), which the replay window comes before.
    Arrival {
        arrival: Arrival,
        implausible: Option<QuarantineReason>,
    },
    /// The reader of `run` has sent worker `to` all `arrivals` of it.
    RunEnd { run: u32, to: u32, arrivals: u64 },
}

impl ToSensorChecks {
    /// The position in the log of an arrival.
    pub fn position(&self) -> Option<u64> {
        match self {
            ToSensorChecks::Arrival { arrival, .. } => Some(arrival.position),
            ToSensorChecks::RunEnd { .. } => None,
        }
    }

    /// The log run this belongs to.
    pub fn run(&self) -> u32 {
        match self {
            ToSensorChecks::Arrival { arrival, .. } => arrival.reading.run,
            ToSensorChecks::RunEnd { run, .. } => *run,
        }
    }

    /// The worker this goes to: a sensor's arrivals always to the worker of
    /// its route, where its readings are then windowed.
    pub fn target(&self, routes: &SensorRoutes) -> u32 {
        match self {
            ToSensorChecks::Arrival { arrival, .. } => routes.worker_of(arrival.reading.sensor),
            ToSensorChecks::RunEnd { to, .. } => *to,
        }
    }
}

/// Sequence numbers of a sensor that were never accepted: dropped events
/// (or ones too late to be told from replays). Found when they leave the
/// replay window, or at the end of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqGap {
    pub sensor: SensorId,
    /// The first `seq` of the gap.
    pub first_seq: u64,
    /// How many consecutive `seq`s are missing.
    pub missing: u64,
    /// The event time of the event that pushed them out of the window
    /// (`None` for gaps found at the end of the log).
    pub noticed_us: Option<Micros>,
}

/// The outcome of the per-sensor checks.
pub struct CheckedStreams<'s> {
    /// Accepted, on-time readings, each run's in arrival order.
    pub readings: Stream<'s, Micros, Vec<Reading>>,
    /// Accepted readings behind their watermark.
    pub late: Stream<'s, Micros, Vec<LateReading>>,
    /// Rejected as `replayed`, `clock`, `out_of_range` or `flooding`.
    pub quarantined: Stream<'s, Micros, Vec<Quarantined>>,
    pub gaps: Stream<'s, Micros, Vec<SeqGap>>,
    /// Sensors whose accepted readings keep arriving before their own event
    /// time, one record per episode (see [`crate::clock_ahead`]).
    pub clock_ahead: Stream<'s, Micros, Vec<ClockAhead>>,
}

/// One run's arrivals at this worker, until the run is complete.
struct PendingRun {
    /// The containers that brought the run, kept as they came (they may
    /// hold its end marker too).
    batches: Vec<Vec<ToSensorChecks>>,
    /// Arrivals in `batches`.
    arrivals: u64,
    /// Arrivals the reader says it sent here, once its end marker came.
    expected: Option<u64>,
    /// Per output, a capability at the least time of the run's messages.
    caps: Vec<Capability<Micros>>,
}

const OUTPUTS: usize = 5;

/// Applies the replay window and the flooding budget to `arrivals`.
///
/// Guarantees: each sensor's events are checked in the log's arrival order,
/// so verdicts do not depend on how runs were spread over workers; a run's
/// accepted readings leave in one container, in arrival order, at a time no
/// later than the one they came at (the window operator's input contract
/// holds, and its per-container partial sums do not depend on the worker
/// count); a rejected event leaves with all its original fields, re-read
/// from the log.
pub fn check_sensors<'s>(
    scope: Scope<'s, Micros>,
    arrivals: Stream<'s, Micros, Vec<ToSensorChecks>>,
    log: Arc<LogSource>,
    catalog: Arc<Catalog>,
    verify: Verifying,
    status: Rc<RefCell<ReaderStatus>>,
) -> CheckedStreams<'s> {
    let Verifying {
        verification,
        routes,
        ..
    } = verify;
    let mut builder = OperatorBuilder::new("CheckSensors".to_owned(), scope);
    let mut input = builder.new_input(
        arrivals,
        // Readers send each worker's arrivals in containers of their own.
        exchange(move |m: &ToSensorChecks| u64::from(m.target(&routes))),
    );
    let (readings_out, readings) = builder.new_output::<Vec<Reading>>();
    let (late_out, late) = builder.new_output::<Vec<LateReading>>();
    let (quarantined_out, quarantined) = builder.new_output::<Vec<Quarantined>>();
    let (gaps_out, gaps) = builder.new_output::<Vec<SeqGap>>();
    let (ahead_out, clock_ahead) = builder.new_output::<Vec<ClockAhead>>();
    let mut readings_out = OutputBuilder::from(readings_out);
    let mut late_out = OutputBuilder::from(late_out);
    let mut quarantined_out = OutputBuilder::from(quarantined_out);
    let mut gaps_out = OutputBuilder::from(gaps_out);
    let mut ahead_out = OutputBuilder::from(ahead_out);

    builder.build(move |mut capabilities| {
        // Held on the gaps output until the input ends, for the gaps found then.
        let mut end_cap = Some(capabilities.swap_remove(3));
        let mut pending: BTreeMap<u32, PendingRun> = BTreeMap::new();
        let mut next_run = 0u32;
        let mut checks = SensorChecks::new(&verification);
        let mut watches = vec![AheadWatch::default(); catalog.sensors().len()];
        move |frontiers| {
            input.for_each(|stamp, data| {
                let Some(&time) = stamp.least() else { return };
                // A container almost always holds one run's messages: it is
                // kept whole. One with the ends of several runs is split.
                let single =
                    data.first().map(ToSensorChecks::run) == data.last().map(ToSensorChecks::run);
                let mut chunks: Vec<Vec<ToSensorChecks>> = if single {
                    vec![std::mem::take(data)]
                } else {
                    data.chunk_by(|a, b| a.run() == b.run())
                        .map(<[_]>::to_vec)
                        .collect()
                };
                for messages in chunks.drain(..).filter(|c| !c.is_empty()) {
                    let entry = pending
                        .entry(messages[0].run())
                        .or_insert_with(|| PendingRun {
                            batches: Vec::new(),
                            arrivals: 0,
                            expected: None,
                            caps: (0..OUTPUTS)
                                .map(|port| stamp.delayed(&time, port))
                                .collect(),
                        });
                    if *entry.caps[0].time() > time {
                        entry.caps = (0..OUTPUTS)
                            .map(|port| stamp.delayed(&time, port))
                            .collect();
                    }
                    for message in &messages {
                        match *message {
                            ToSensorChecks::Arrival { .. } => entry.arrivals += 1,
                            ToSensorChecks::RunEnd { arrivals, .. } => {
                                entry.expected = Some(arrivals)
                            }
                        }
                    }
                    entry.batches.push(messages);
                }
            });

            while let Some(run) = pending.get(&next_run)
                && run.expected == Some(run.arrivals)
            {
                let mut run = pending.remove(&next_run).expect("just seen");
                // One reader sent the run in order, each container a stretch
                // of it; should the exchange deliver them out of order, their
                // first positions restore it.
                run.batches
                    .sort_by_key(|b| b.iter().find_map(ToSensorChecks::position));
                let caps = &run.caps;
                // The run leaves as one container: the window combiner folds
                // a container's records of one sensor together, so its
                // boundaries must not depend on how arrivals were batched on
                // their way here (which depends on the worker count).
                let mut on_time = Vec::with_capacity(run.arrivals as usize);
                let mut late = Vec::new();
                let mut rejected: Vec<(Arrival, QuarantineReason)> = Vec::new();
                let mut gaps = Vec::new();
                let mut ahead = Vec::new();
                let mut lost = Vec::new();
                // Containers are freed as they are checked, so the memory
                // of a run's arrivals is reused for the next run's.
                for batch in run.batches.drain(..) {
                    let arrivals = batch.iter().filter_map(|m| match m {
                        ToSensorChecks::Arrival {
                            arrival,
                            implausible,
                        } => Some((arrival, implausible)),
                        ToSensorChecks::RunEnd { .. } => None,
                    });
                    for (arrival, implausible) in arrivals {
                        let r = arrival.reading;
                        let verdict = checks.check(
                            r.sensor,
                            arrival.seq,
                            r.ts_us,
                            r.arrival_us,
                            *implausible,
                            &mut lost,
                        );
                        gaps.extend(lost.drain(..).map(|range| SeqGap {
                            sensor: r.sensor,
                            first_seq: range.start,
                            missing: range.end - range.start,
                            noticed_us: Some(r.ts_us),
                        }));
                        if verdict.is_ok() {
                            let watch = &mut watches[r.sensor as usize];
                            ahead.extend(watch.observe(r.sensor, r.ts_us, r.arrival_us));
                        }
                        match verdict {
                            Err(reason) => rejected.push((*arrival, reason)),
                            Ok(()) if r.ts_us < arrival.watermark_us => late.push(LateReading {
                                reading: r,
                                position: arrival.position,
                                watermark_us: arrival.watermark_us,
                            }),
                            Ok(()) => on_time.push(r),
                        }
                    }
                }
                if !on_time.is_empty() {
                    readings_out
                        .activate()
                        .session(&caps[0])
                        .give_container(&mut on_time);
                }
                if !late.is_empty() {
                    late_out
                        .activate()
                        .session(&caps[1])
                        .give_container(&mut late);
                }
                if !gaps.is_empty() {
                    gaps_out
                        .activate()
                        .session(&caps[3])
                        .give_container(&mut gaps);
                }
                if !ahead.is_empty() {
                    ahead_out
                        .activate()
                        .session(&caps[4])
                        .give_container(&mut ahead);
                }
                if !rejected.is_empty() {
                    match quarantine_arrivals(&log, &catalog, next_run, rejected) {
                        Ok(mut rows) => quarantined_out
                            .activate()
                            .session(&caps[2])
                            .give_container(&mut rows),
                        Err(e) => {
                            let mut status = status.borrow_mut();
                            status.error.get_or_insert(e);
                        }
                    }
                }
                next_run += 1;
            }

            if let Some(cap) = &mut end_cap {
                match frontiers[0].frontier().iter().min() {
                    Some(time) => cap.downgrade(time),
                    None => {
                        // The log has ended: whatever never came is lost.
                        // (Readers that failed stop sending; what they never
                        // completed is dropped, and the failure reported.)
                        if pending.is_empty() {
                            let mut gaps = Vec::new();
                            checks.finish(|sensor, range| {
                                gaps.push(SeqGap {
                                    sensor,
                                    first_seq: range.start,
                                    missing: range.end - range.start,
                                    noticed_us: None,
                                })
                            });
                            if !gaps.is_empty() {
                                gaps_out.activate().session(&*cap).give_container(&mut gaps);
                            }
                        }
                        pending.clear();
                        end_cap = None;
                    }
                }
            }
        }
    });
    CheckedStreams {
        readings,
        late,
        quarantined,
        gaps,
        clock_ahead,
    }
}

/// Quarantine records of a run's rejected arrivals: made from the arrival and
/// the catalog when the row's `asset` and `kind` are the catalog's, else
/// (rarely) re-read from the log.
fn quarantine_arrivals(
    log: &LogSource,
    catalog: &Catalog,
    run: u32,
    rejected: Vec<(Arrival, QuarantineReason)>,
) -> crate::Result<Vec<Quarantined>> {
    let run = &log.runs()[run as usize];
    let (listed, unlisted): (Vec<_>, Vec<_>) = rejected.into_iter().partition(|(a, _)| a.listed);
    let mut rows: Vec<Quarantined> = listed
        .into_iter()
        .map(|(arrival, reason)| Quarantined {
            reason,
            position: arrival.position,
            watermark_us: arrival.watermark_us,
            row: arrival.raw_row(catalog),
        })
        .collect();
    let reread = unlisted
        .into_iter()
        .map(|(a, reason)| {
            (
                (a.position - run.first_position) as usize,
                reason,
                a.watermark_us,
            )
        })
        .collect();
    rows.extend(quarantine_rows(log, run, reread)?);
    rows.sort_by_key(|q| q.position);
    Ok(rows)
}
