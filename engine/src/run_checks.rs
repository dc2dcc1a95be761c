//! The stateless half of verification over a log's runs: each row's tag, clock and range verdict, and each run's greatest event time among the rows that pass.
//!
//! TwinBench lets only events that pass the stateless checks advance the
//! watermark, so a forged or clock-skewed event cannot make genuine ones
//! late. A reader of run `r` therefore needs the greatest *verified* event
//! time of every row before `r`, which the Parquet statistics (of all rows)
//! do not give. Almost always they give it anyway: if a row at a run's
//! greatest time passes, the run's verified maximum is that time.
//! [`verified_max`] checks just those rows (the page index says where they
//! are), and checks the whole run only when none passes. The workers then
//! share one number per run ([`VerifiedPrefix::share`]), every reader knows
//! where its watermark starts whatever the split, and every event is read,
//! and its MAC computed, once: by the reader, with [`CheckedBatch::verdict`].

use arrow::array::{Array, AsArray, BinaryArray, StringArray};
use arrow::buffer::NullBuffer;
use timely::worker::Worker;

use crate::catalog::{Catalog, SensorId};
use crate::error::Result;
use crate::event::QuarantineReason;
use crate::log_source::{Fields, LogSource, Run, RunBatch, RunReader, SensorIdCache};
use crate::runtime::all_gather;
use crate::time::Micros;
use crate::verify::{TagCheck, Verification};

/// What the stateless checks make of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stateless {
    /// It passes (`unauthenticated`: without a tag, let through by
    /// [`crate::verify::Untagged::Accept`]).
    Pass { unauthenticated: bool },
    /// `NullField` or `BadTag`: it is quarantined as it is read.
    Reject(QuarantineReason),
    /// `Clock` or `OutOfRange`: it still goes through the replay window,
    /// which the spec checks first.
    Implausible(QuarantineReason),
}

/// A batch read with [`Fields::Checked`], as the stateless checks read it:
/// its columns' values as slices, looked up once per batch, so a row's
/// verdict costs the checks and no array bookkeeping.
pub struct CheckedBatch<'a> {
    /// `None` when the batch lacks a column the checks need: every row is
    /// then `NullField`.
    columns: Option<CheckedColumns<'a>>,
}

struct CheckedColumns<'a> {
    ts: &'a [Micros],
    keys: &'a [i32],
    value: &'a [f64],
    arrival: &'a [Micros],
    seq: &'a [u64],
    quality: &'a [u8],
    names: &'a StringArray,
    tags: Option<&'a BinaryArray>,
    /// The validity of each column the checks need that has a null
    /// (usually none, and then a row's validity costs nothing).
    nulls: Vec<&'a NullBuffer>,
}

impl<'a> CheckedBatch<'a> {
    pub fn new(batch: &'a RunBatch) -> Self {
        let columns = match (&batch.arrival, &batch.seq, &batch.quality) {
            (Some(arrival), Some(seq), Some(quality)) => {
                let keys = batch.sensor.keys();
                let nulls = [
                    batch.ts.nulls(),
                    keys.nulls(),
                    batch.value.nulls(),
                    arrival.nulls(),
                    seq.nulls(),
                    quality.nulls(),
                ]
                .into_iter()
                .flatten()
                .filter(|n| n.null_count() > 0)
                .collect();
                Some(CheckedColumns {
                    ts: batch.ts.values(),
                    keys: keys.values(),
                    value: batch.value.values(),
                    arrival: arrival.values(),
                    seq: seq.values(),
                    quality: quality.values(),
                    names: batch.sensor.values().as_string(),
                    tags: batch.tag.as_ref(),
                    nulls,
                })
            }
            _ => None,
        };
        CheckedBatch { columns }
    }

    /// The stateless verdict of row `i`; `ids` are the sensor ids of the
    /// batch's dictionary.
    #[inline]
    pub fn verdict(
        &self,
        i: usize,
        ids: &[Option<SensorId>],
        verification: &Verification,
    ) -> Stateless {
        let Some(c) = &self.columns else {
            return Stateless::Reject(QuarantineReason::NullField);
        };
        if !c.nulls.iter().all(|n| n.is_valid(i)) {
            return Stateless::Reject(QuarantineReason::NullField);
        }
        let key = c.keys[i] as usize;
        let (ts, value) = (c.ts[i], c.value[i]);
        let sensor = ids[key];
        let tag = c.tags.and_then(|t| t.is_valid(i).then(|| t.value(i)));
        let tag_check = verification.check_tag(
            sensor,
            c.names.value(key),
            ts,
            value,
            c.seq[i],
            c.quality[i],
            tag,
        );
        let Some(sensor) = sensor.filter(|_| tag_check != TagCheck::Invalid) else {
            return Stateless::Reject(QuarantineReason::BadTag);
        };
        match verification.check_plausible(sensor, ts, c.arrival[i], value) {
            Ok(()) => Stateless::Pass {
                unauthenticated: tag_check == TagCheck::Unauthenticated,
            },
            Err(reason) => Stateless::Implausible(reason),
        }
    }
}

/// The greatest `ts_us` of `run` among rows that pass the stateless checks
/// (`Micros::MIN` if none does).
pub fn verified_max(
    log: &LogSource,
    run: &Run,
    catalog: &Catalog,
    verification: &Verification,
) -> Result<Micros> {
    // The rows at the run's greatest time first: one that passes settles it.
    let at_max = log.rows_at_max(run)?;
    if !at_max.is_empty() {
        let reader = log.read_selected(run, Fields::Checked, &at_max)?;
        if max_passing(reader, catalog, verification)? == run.max_ts {
            return Ok(run.max_ts);
        }
    }
    max_passing(log.read_run(run, Fields::Checked)?, catalog, verification)
}

/// The greatest `ts_us` of the rows `reader` reads that pass.
fn max_passing(
    mut reader: RunReader,
    catalog: &Catalog,
    verification: &Verification,
) -> Result<Micros> {
    let mut ids = SensorIdCache::default();
    let mut greatest = Micros::MIN;
    while let Some(batch) = reader.next_batch()? {
        let ids = ids.resolve(batch.sensor.values().as_string::<i32>(), catalog);
        let checked = CheckedBatch::new(&batch);
        for i in 0..batch.ts.len() {
            if let Stateless::Pass { .. } = checked.verdict(i, ids, verification) {
                greatest = greatest.max(batch.ts.value(i));
            }
        }
    }
    Ok(greatest)
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
}
