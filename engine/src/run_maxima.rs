//! Where each run's watermark starts: the greatest watermark time of the rows before it.
//!
//! TwinBench W counts an event for the watermark with `min(ts_us,
//! arrival_us)` ([`crate::time::watermark_time`]), and with verification
//! only when it passes the stateless checks (tag, clock, range), so neither
//! a forged event nor a sensor stamping its readings in the future can make
//! genuine ones late. A reader of run `r` needs the greatest watermark time
//! of every row before `r`, which the Parquet page index and statistics (of
//! `ts_us`) bound from above without giving it. Almost always they give it
//! anyway: honest events arrive after their event time, so if a row at a
//! run's greatest `ts_us` arrived after it (and passes, when verifying), the
//! run's maximum is that time. [`watermark_max`] checks just those rows (the
//! page index says where they are); only when none counts in full does it
//! rank the run's rows by watermark time (decoding two columns) and check
//! the top ones. The workers then share one number per run
//! ([`WatermarkPrefix::share`]), so every reader knows where its watermark
//! starts whatever the split.

use arrow::array::AsArray;
use timely::worker::Worker;

use crate::catalog::Catalog;
use crate::error::Result;
use crate::log_source::{Fields, LogSource, Run, RunReader, SensorIdCache};
use crate::run_checks::{CheckedBatch, Stateless};
use crate::runtime::all_gather;
use crate::time::Micros;
use crate::verify::Verification;

/// Rows whose stateless checks are run in the first round of ranked
/// checking; each later round checks eight times as many, so a run whose
/// top rows all fail costs at most a pass over its rows.
const FIRST_ROUND_ROWS: usize = 64;

/// The greatest watermark time of `run`'s rows (`Micros::MIN` if none
/// counts): every row with an event time without `verification`, the rows
/// that pass its stateless checks with it.
pub fn watermark_max(
    log: &LogSource,
    run: &Run,
    catalog: &Catalog,
    verification: Option<&Verification>,
) -> Result<Micros> {
    // The rows at the run's greatest `ts_us` first: one that counts with it settles it.
    let at_max = log.rows_at_max(run)?;
    if !at_max.is_empty() {
        let greatest = match verification {
            None => max_of(log.watermark_times(run, Some(&at_max))?),
            Some(verification) => max_passing(
                log.read_selected(run, Fields::Checked, &at_max)?,
                catalog,
                verification,
            )?,
        };
        if greatest == run.max_ts {
            return Ok(greatest);
        }
    }
    let times = log.watermark_times(run, None)?;
    let Some(verification) = verification else {
        return Ok(max_of(times));
    };
    // The rows by watermark time, greatest first; the greatest one that
    // passes among the top rows of a round is at least every later row's time.
    let mut ranked: Vec<(Micros, usize)> = times
        .into_iter()
        .enumerate()
        .filter(|&(_, t)| t > Micros::MIN)
        .map(|(offset, t)| (t, offset))
        .collect();
    ranked.sort_unstable_by(|a, b| b.cmp(a));
    let (mut checked, mut round) = (0, FIRST_ROUND_ROWS);
    while checked < ranked.len() {
        let end = (checked + round).min(ranked.len());
        let mut offsets: Vec<usize> = ranked[checked..end].iter().map(|&(_, o)| o).collect();
        offsets.sort_unstable();
        let reader = log.read_selected(run, Fields::Checked, &offsets)?;
        let greatest = max_passing(reader, catalog, verification)?;
        if greatest > Micros::MIN {
            return Ok(greatest);
        }
        checked = end;
        round *= 8;
    }
    Ok(Micros::MIN)
}

fn max_of(times: Vec<Micros>) -> Micros {
    times.into_iter().max().unwrap_or(Micros::MIN)
}

/// The greatest watermark time of the rows `reader` reads that pass the
/// stateless checks.
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
        let times = batch.watermark_times();
        for i in 0..batch.ts.len() {
            if let Stateless::Pass { .. } = checked.verdict(i, ids, verification) {
                greatest = greatest.max(times.at(i, batch.ts.value(i)));
            }
        }
    }
    Ok(greatest)
}

/// The greatest watermark time before each run of a log: where each run's
/// watermark starts.
#[derive(Debug, Clone, PartialEq)]
pub struct WatermarkPrefix {
    /// Per run index.
    before: Vec<Micros>,
}

impl WatermarkPrefix {
    /// From every run's greatest watermark time, in run order.
    pub fn from_maxima(maxima: impl IntoIterator<Item = Micros>) -> Self {
        let mut before = Vec::new();
        let mut max = Micros::MIN;
        for m in maxima {
            before.push(max);
            max = max.max(m);
        }
        WatermarkPrefix { before }
    }

    /// Shares this worker's `(run index, greatest watermark time)` pairs
    /// with every worker of every process; every worker must call it, and
    /// together they must cover all `runs` runs.
    pub fn share(worker: &mut Worker, own: Vec<(u32, Micros)>, runs: usize) -> Self {
        let mut maxima = vec![Micros::MIN; runs];
        for (run, max) in all_gather(worker, own).into_iter().flatten() {
            maxima[run as usize] = max;
        }
        Self::from_maxima(maxima)
    }

    /// The greatest watermark time of the rows before run `index`.
    pub fn before(&self, index: u32) -> Micros {
        self.before[index as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_the_maximum_of_earlier_runs() {
        let prefix = WatermarkPrefix::from_maxima([5, Micros::MIN, 3, 9]);
        let got: Vec<Micros> = (0..4).map(|r| prefix.before(r)).collect();
        assert_eq!(got, vec![Micros::MIN, 5, 5, 5]);
    }
}
