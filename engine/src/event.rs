//! The records that flow through a pipeline: accepted readings, and rejected
//! rows with the reason they were set aside.

use serde::{Deserialize, Serialize};

use crate::catalog::SensorId;
use crate::time::Micros;

/// One accepted sensor reading, as small as it can be (32 bytes) because
/// millions of them cross worker boundaries every second.
///
/// `arrival_us` is when it reached the engine (its `ts_us` when the source
/// does not say): a reading stamped well ahead of its arrival comes from a
/// clock that runs ahead, and its window measures another time (see
/// [`Reading::arrived_ahead`]).
///
/// `run` numbers the stretch of the log the reading was read from, in log
/// order; operators that must combine partial results in arrival order (float
/// sums, "last value" ties) merge per-run partials in `run` order, which makes
/// their output independent of how the log was split across workers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub sensor: SensorId,
    pub run: u32,
    pub ts_us: Micros,
    pub value: f64,
    pub arrival_us: Micros,
}

impl Reading {
    /// Whether it was stamped more than [`crate::clock_ahead::SLACK_US`]
    /// ahead of its arrival, as no honest clock stamps it.
    #[inline]
    pub fn arrived_ahead(&self) -> bool {
        crate::clock_ahead::is_ahead(crate::clock_ahead::lead_us(self.ts_us, self.arrival_us))
    }
}

/// One row of the raw log with all its fields, kept for rows that are set
/// aside so that nothing accepted or rejected is lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawRow {
    pub ts_us: Micros,
    pub arrival_us: Micros,
    pub asset: String,
    pub sensor: String,
    pub kind: String,
    pub value: f64,
    pub seq: u64,
    pub quality: u8,
    pub tag: Option<Vec<u8>>,
}

/// An accepted reading that arrived behind the watermark: counted and written
/// to `late/`, not windowed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LateReading {
    pub reading: Reading,
    /// Position of the row in the log's arrival order (0-based, across files).
    pub position: u64,
    /// The watermark when the row arrived.
    pub watermark_us: Micros,
}

/// Why a row was quarantined. The first five are TwinBench's verification
/// verdicts (spec, "Plausibility"), checked in this order; the last three are
/// what a replay without verification sets aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum QuarantineReason {
    /// No valid tag under any of the sensor's keys, no tag where one is
    /// required, or a sensor without keys (an unknown sensor has none).
    BadTag,
    /// Its `seq` was accepted before, or is too far behind the greatest.
    Replayed,
    /// Its event time is more than 5 s ahead of its arrival, or 1 h behind.
    Clock,
    /// Its value is outside the sensor's physical range, or not finite.
    OutOfRange,
    /// Beyond twice the sensor's rated count in its 1 s event-time window.
    Flooding,
    /// The sensor is not in the catalog (without verification).
    UnknownSensor,
    /// The value is NaN or infinite (without verification).
    NotFinite,
    /// A required field (event time, sensor or value; with verification also
    /// arrival time, `seq` or `quality`) is null: the row cannot be checked.
    NullField,
}

impl QuarantineReason {
    /// The reason code written to outputs and summaries.
    pub fn code(self) -> &'static str {
        match self {
            QuarantineReason::BadTag => "bad_tag",
            QuarantineReason::Replayed => "replayed",
            QuarantineReason::Clock => "clock",
            QuarantineReason::OutOfRange => "out_of_range",
            QuarantineReason::Flooding => "flooding",
            QuarantineReason::UnknownSensor => "unknown_sensor",
            QuarantineReason::NotFinite => "not_finite",
            QuarantineReason::NullField => "null_field",
        }
    }
}

/// A quarantined row with all its original fields, where it was in the log and
/// the watermark it met.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quarantined {
    pub reason: QuarantineReason,
    /// Position of the row in the log's arrival order (0-based, across files).
    pub position: u64,
    /// The watermark when the row arrived.
    pub watermark_us: Micros,
    pub row: RawRow,
}

/// A reading that passed verification's stateless checks (tag, clock,
/// range), on its way to the per-sensor ones (replay window, flooding) that
/// must see each sensor's events in arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Arrival {
    pub reading: Reading,
    pub seq: u64,
    /// Position of the row in the log's arrival order (0-based, across files).
    pub position: u64,
    /// The watermark when the row arrived; the reading is late if its event
    /// time is below it.
    pub watermark_us: Micros,
    pub quality: u8,
    /// The tag (a valid one is 16 bytes; `None` for an untagged event let
    /// through).
    pub tag: Option<[u8; 16]>,
    /// Whether the row's `asset` and `kind` are the catalog's for its sensor,
    /// so a quarantine record can be made without reading the row again.
    pub listed: bool,
}

impl Arrival {
    /// The row with all its fields, when it is [`Arrival::listed`].
    pub fn raw_row(&self, catalog: &crate::catalog::Catalog) -> RawRow {
        let sensor = catalog.sensor(self.reading.sensor);
        RawRow {
            ts_us: self.reading.ts_us,
            arrival_us: self.reading.arrival_us,
            asset: sensor.asset.clone(),
            sensor: sensor.sensor.clone(),
            kind: sensor.kind.clone(),
            value: self.reading.value,
            seq: self.seq,
            quality: self.quality,
            tag: self.tag.map(|t| t.to_vec()),
        }
    }
}

/// A sensor whose accepted readings keep arriving before their own event
/// time (see [`crate::clock_ahead`]): one record per episode.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClockAhead {
    pub sensor: SensorId,
    /// Event time of the reading that tipped the episode.
    pub first_ts_us: Micros,
    /// Arrival time of that reading.
    pub arrival_us: Micros,
    /// The greatest lead (`ts_us − arrival_us`) among the readings ahead in
    /// the detection span when it tipped.
    pub ahead_us: Micros,
    /// Readings ahead in the detection span when it tipped.
    pub readings: u32,
}
