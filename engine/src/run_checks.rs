//! The stateless half of verification over a log's runs: which rows fail the tag, clock or range check, and the greatest event time of those that pass.
//!
//! TwinBench lets only events that pass the stateless checks advance the
//! watermark, so a forged or clock-skewed event cannot make genuine ones
//! late. A reader of run `r` therefore needs the greatest verified event time
//! of every row before `r`, which the Parquet statistics (of all rows) cannot
//! give. Each worker checks its own runs first ([`check_run`]); the workers
//! then share one number per run ([`VerifiedPrefix::share`]) and every reader
//! knows where its watermark starts, whatever the split. The rows' verdicts
//! stay with the worker that reads the run, sparse (rejections are rare), so
//! the main pass computes no MAC twice.

use arrow::array::{Array, AsArray};
use timely::worker::Worker;

use crate::catalog::Catalog;
use crate::error::Result;
use crate::event::QuarantineReason;
use crate::log_source::{Fields, LogSource, Run, SensorIdCache};
use crate::runtime::all_gather;
use crate::time::Micros;
use crate::verify::{TagCheck, Verification};

/// The stateless verdicts of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunChecks {
    /// The greatest `ts_us` of the rows that passed (`Micros::MIN` if none).
    pub verified_max: Micros,
    /// The rows that failed, by offset in the run, ascending. `BadTag` and
    /// `NullField` rows are quarantined by the reader; `Clock` and
    /// `OutOfRange` rows still go through the replay window first (the spec
    /// checks it before plausibility).
    pub verdicts: Vec<(u32, QuarantineReason)>,
    /// Rows without a tag let through by [`crate::verify::Untagged::Accept`].
    pub unauthenticated: u64,
}

impl RunChecks {
    /// The verdicts, to be walked alongside the run's rows.
    pub fn into_verdicts(self) -> Verdicts {
        Verdicts {
            verdicts: self.verdicts,
            next: 0,
        }
    }
}

/// Walks a run's verdicts alongside its rows.
#[derive(Debug, Default)]
pub struct Verdicts {
    verdicts: Vec<(u32, QuarantineReason)>,
    next: usize,
}

impl Verdicts {
    /// The verdict of the row at `offset`; offsets must be asked in ascending order.
    #[inline]
    pub fn at(&mut self, offset: usize) -> Option<QuarantineReason> {
        let &(at, reason) = self.verdicts.get(self.next)?;
        if at as usize == offset {
            self.next += 1;
            Some(reason)
        } else {
            None
        }
    }
}

/// Runs the tag, clock and range checks over every row of `run`.
pub fn check_run(
    log: &LogSource,
    run: &Run,
    catalog: &Catalog,
    verification: &Verification,
) -> Result<RunChecks> {
    let mut checks = RunChecks {
        verified_max: Micros::MIN,
        ..RunChecks::default()
    };
    let mut reader = log.read_run(run, Fields::Checked)?;
    let mut ids = SensorIdCache::default();
    let mut offset = 0u32;
    while let Some(batch) = reader.next_batch()? {
        let names = batch.sensor.values().as_string::<i32>();
        let ids = ids.resolve(names, catalog);
        let keys = batch.sensor.keys();
        let (Some(arrival), Some(seq), Some(quality)) =
            (&batch.arrival, &batch.seq, &batch.quality)
        else {
            unreachable!("Fields::Checked reads arrival_us, seq and quality");
        };
        let tag = batch.tag.as_ref();
        for i in 0..batch.ts.len() {
            let row = offset + i as u32;
            let complete = batch.ts.is_valid(i)
                && keys.is_valid(i)
                && batch.value.is_valid(i)
                && arrival.is_valid(i)
                && seq.is_valid(i)
                && quality.is_valid(i);
            if !complete {
                checks.verdicts.push((row, QuarantineReason::NullField));
                continue;
            }
            let key = keys.value(i) as usize;
            let (ts, value) = (batch.ts.value(i), batch.value.value(i));
            let sensor = ids[key];
            let tag = tag.and_then(|t| t.is_valid(i).then(|| t.value(i)));
            let verdict = match verification.check_tag(
                sensor,
                names.value(key),
                ts,
                value,
                seq.value(i),
                quality.value(i),
                tag,
            ) {
                TagCheck::Invalid => Err(QuarantineReason::BadTag),
                unauthenticated_or_valid => {
                    checks.unauthenticated +=
                        u64::from(unauthenticated_or_valid == TagCheck::Unauthenticated);
                    let sensor = sensor.expect("a tag verifies only for a known sensor");
                    verification.check_plausible(sensor, ts, arrival.value(i), value)
                }
            };
            match verdict {
                Ok(()) => checks.verified_max = checks.verified_max.max(ts),
                Err(reason) => checks.verdicts.push((row, reason)),
            }
        }
        offset += batch.ts.len() as u32;
    }
    Ok(checks)
}

/// The greatest verified event time before each run of a log: where each
/// run's watermark starts.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedPrefix {
    /// Per run index.
    before: Vec<Micros>,
}

impl VerifiedPrefix {
    /// From every run's greatest verified event time, in run order.
    pub fn from_maxima(maxima: impl IntoIterator<Item = Micros>) -> Self {
        let mut before = Vec::new();
        let mut max = Micros::MIN;
        for m in maxima {
            before.push(max);
            max = max.max(m);
        }
        VerifiedPrefix { before }
    }

    /// Shares this worker's `(run index, greatest verified time)` pairs with
    /// every worker of every process; every worker must call it, and together
    /// they must cover all `runs` runs.
    pub fn share(worker: &mut Worker, own: Vec<(u32, Micros)>, runs: usize) -> Self {
        let mut maxima = vec![Micros::MIN; runs];
        for (run, max) in all_gather(worker, own).into_iter().flatten() {
            maxima[run as usize] = max;
        }
        Self::from_maxima(maxima)
    }

    /// The greatest verified event time of the rows before run `index`.
    pub fn before(&self, index: u32) -> Micros {
        self.before[index as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_the_maximum_of_earlier_runs() {
        let prefix = VerifiedPrefix::from_maxima([5, Micros::MIN, 3, 9]);
        let got: Vec<Micros> = (0..4).map(|r| prefix.before(r)).collect();
        assert_eq!(got, vec![Micros::MIN, 5, 5, 5]);
    }

    #[test]
    fn cursor_finds_verdicts_by_offset() {
        let checks = RunChecks {
            verdicts: vec![(2, QuarantineReason::BadTag), (5, QuarantineReason::Clock)],
            ..RunChecks::default()
        };
        let mut verdicts = checks.into_verdicts();
        let got: Vec<_> = (0..7).map(|o| verdicts.at(o)).collect();
        assert_eq!(
            got,
            vec![
                None,
                None,
                Some(QuarantineReason::BadTag),
                None,
                None,
                Some(QuarantineReason::Clock),
                None
            ]
        );
    }
}
