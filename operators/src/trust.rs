//! Trust: how far fusion believes each redundant sensor, and the suspects it names.

use serde::{Deserialize, Serialize};
use twinflow_engine::catalog::SensorId;
use twinflow_engine::time::Micros;

use crate::total_order::total_bits;

/// Where a sensor stands with fusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TrustState {
    /// Absorbed at its full weight.
    Trusted,
    /// Absorbed, with its variance inflated by 1 / trust.
    DownWeighted,
    /// Not absorbed until it has agreed with the others for a sustained run.
    Excluded,
}

impl TrustState {
    /// The code written to outputs.
    pub fn code(self) -> &'static str {
        match self {
            TrustState::Trusted => "trusted",
            TrustState::DownWeighted => "down_weighted",
            TrustState::Excluded => "excluded",
        }
    }
}

/// One redundant sensor as fusion saw it in one window.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SensorTrust {
    pub sensor: SensorId,
    /// In [0, 1]: 1 for a sensor that agrees with the others.
    pub trust: f64,
    /// Its share of the fused estimate's information in this window (0 when
    /// not measured, gated or excluded); the shares of a quantity sum to 1.
    pub weight: f64,
    pub state: TrustState,
    /// Its window's normalised residual (in σ of the difference), `None`
    /// when it was not measured.
    pub residual: Option<f64>,
}

crate::total_order_by_key!(SensorTrust, |t: &SensorTrust| (
    t.sensor,
    total_bits(t.trust),
    total_bits(t.weight),
    t.state,
    t.residual.map(total_bits)
));

/// Why a sensor is suspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SuspectReason {
    /// Its readings keep disagreeing with the other witnesses (bias, drift,
    /// false data).
    Deviating,
    /// Its readings have stopped varying where its noise says they must.
    Stuck,
    /// Two witnesses disagree and nothing tells which one lies; this one is
    /// the likelier.
    Ambiguous,
    /// Its readings keep arriving before their own event time.
    ClockAhead,
}

impl SuspectReason {
    /// The code written to `flags/`'s `reason`.
    pub fn code(self) -> &'static str {
        match self {
            SuspectReason::Deviating => "deviating",
            SuspectReason::Stuck => "stuck",
            SuspectReason::Ambiguous => "ambiguous",
            SuspectReason::ClockAhead => "clock_ahead",
        }
    }
}

/// A sensor found lying: the `sensor_suspect` flag.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Suspect {
    pub sensor: SensorId,
    /// The window in which it was found out.
    pub start_us: Micros,
    /// Its reading there (the window mean).
    pub value: f64,
    /// The strength of the evidence (for deviation, the accumulated
    /// residuals; see the fusion that raised it).
    pub score: f64,
    pub reason: SuspectReason,
    /// The evidence in words, for the engineer who reads the flag.
    pub evidence: String,
}

crate::total_order_by_key!(Suspect, |s: &Suspect| (
    s.sensor,
    s.start_us,
    total_bits(s.value),
    total_bits(s.score),
    s.reason,
    s.evidence.clone()
));
