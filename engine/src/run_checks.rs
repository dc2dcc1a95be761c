//! The stateless half of verification over a log's runs: each row's tag, clock and range verdict.
//!
//! TwinBench lets only events that pass the stateless checks advance the
//! watermark, so a forged or clock-skewed event cannot make genuine ones
//! late (see [`crate::run_maxima`] for where each run's watermark starts).
//! Every event is read, and its MAC computed, once: by the reader, with
//! [`CheckedBatch::verdict`].

use arrow::array::{Array, AsArray, BinaryArray, StringArray};
use arrow::buffer::NullBuffer;

use crate::catalog::SensorId;
use crate::event::QuarantineReason;
use crate::log_source::RunBatch;
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
