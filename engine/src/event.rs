//! The records that flow through a pipeline: accepted readings, and rejected
//! rows with the reason they were set aside.

use serde::{Deserialize, Serialize};

use crate::catalog::SensorId;
use crate::time::Micros;

/// One accepted sensor reading, as small as it can be (24 bytes) because
/// millions of them cross worker boundaries every second.
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

/// Why a row was quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum QuarantineReason {
    /// The sensor is not in the catalog.
    UnknownSensor,
    /// The value is NaN or infinite.
    NotFinite,
    /// A required field (event time, sensor or value) is null.
    NullField,
}

impl QuarantineReason {
    /// The reason code written to outputs and summaries.
    pub fn code(self) -> &'static str {
        match self {
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
