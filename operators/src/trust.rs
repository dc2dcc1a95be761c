//! Trust: how far fusion believes each redundant sensor, and the suspects it names.

use serde::{Deserialize, Serialize};
use twinflow_engine::catalog::SensorId;
use twinflow_engine::event::ClockAhead;
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
    /// Its reading there (the window mean); `None` when the suspicion is
    /// not about a value (`clock_ahead`).
    pub value: Option<f64>,
    /// The strength of the evidence (for deviation, the accumulated
    /// residuals; see the fusion that raised it).
    pub score: f64,
    pub reason: SuspectReason,
    /// The evidence in words, for the engineer who reads the flag.
    pub evidence: String,
}

impl Suspect {
    /// Verification's finding that a sensor's readings keep arriving before
    /// their own event time, as a suspect of the window (of `window_us`) that
    /// holds the reading that tipped it; its score is the lead in seconds.
    pub fn clock_ahead(record: &ClockAhead, window_us: Micros) -> Suspect {
        let lead_s = record.ahead_us as f64 / 1e6;
        Suspect {
            sensor: record.sensor,
            start_us: record.first_ts_us.div_euclid(window_us) * window_us,
            value: None,
            score: lead_s,
            reason: SuspectReason::ClockAhead,
            evidence: format!(
                "{} readings arrived up to {lead_s:.2} s before their own event time",
                record.readings
            ),
        }
    }
}

// Bitwise equality and a total order, the evidence compared in place (the
// key macro would copy it on every comparison).
impl Suspect {
    fn key(&self) -> (SensorId, Micros, Option<u64>, u64, SuspectReason) {
        (
            self.sensor,
            self.start_us,
            self.value.map(total_bits),
            total_bits(self.score),
            self.reason,
        )
    }
}

impl PartialEq for Suspect {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Suspect {}
impl PartialOrd for Suspect {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Suspect {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key()
            .cmp(&other.key())
            .then_with(|| self.evidence.cmp(&other.evidence))
    }
}

/// How trust follows the evidence: a two-sided CUSUM of a sensor's
/// normalised residuals, clipped so one wild window (a spike) cannot
/// exclude a sensor on its own, with hysteresis: down-weighting starts at
/// `down_weight_at`, exclusion at `exclude_at`, and an excluded sensor is
/// readmitted only after `readmit_after` consecutive windows that agree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrustPolicy {
    /// Residuals (in σ) below this in size add no evidence: honest noise.
    pub slack: f64,
    /// A window's residual counts for at most this many σ.
    pub clip: f64,
    /// Evidence at which the sensor starts to be down-weighted.
    pub down_weight_at: f64,
    /// Evidence at which it is excluded (and named a suspect).
    pub exclude_at: f64,
    /// Agreeing windows (|residual| < `agree_within`) an excluded sensor needs in a row.
    pub readmit_after: u32,
    pub agree_within: f64,
    /// Windows in a row without spread (see [`TrustScore::observe`]) that
    /// exclude a sensor as stuck.
    pub stuck_after: u32,
}

impl Default for TrustPolicy {
    /// With these, a residual steadily past the clip (a bias or false data
    /// of a few σ) excludes a sensor in 5 windows, two wild windows in a row
    /// (a spike across a window boundary) only down-weight it, and an honest
    /// sensor's residuals, N(0, 1), take far more windows than a plant runs
    /// to reach exclusion (a CUSUM with slack ¾ σ and threshold 15 σ).
    fn default() -> Self {
        TrustPolicy {
            slack: 0.75,
            clip: 4.0,
            down_weight_at: 5.0,
            exclude_at: 15.0,
            readmit_after: 30,
            agree_within: 2.0,
            stuck_after: 3,
        }
    }
}

/// The trust of one sensor, updated window by window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrustScore {
    /// Evidence that its readings run high, and that they run low.
    high: f64,
    low: f64,
    state: TrustState,
    /// While excluded: agreeing windows in a row.
    agreeing: u32,
    /// Windows without spread in a row.
    still: u32,
    /// A running mean of recent residuals, for the evidence text.
    recent: f64,
}

/// What one window did to a sensor's standing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Unchanged,
    /// Excluded just now, for this reason.
    Excluded(SuspectReason),
    /// Readmitted just now.
    Readmitted,
}

impl Default for TrustScore {
    fn default() -> Self {
        TrustScore {
            high: 0.0,
            low: 0.0,
            state: TrustState::Trusted,
            agreeing: 0,
            still: 0,
            recent: 0.0,
        }
    }
}

impl TrustScore {
    /// Takes one measured window: its normalised residual against the other
    /// witnesses (`None` when there was no independent witness to compare
    /// with: the evidence stands still), and whether its readings had
    /// (almost) no spread where the sensor's noise says they must.
    pub fn observe(&mut self, policy: &TrustPolicy, residual: Option<f64>, still: bool) -> Verdict {
        if let Some(r) = residual {
            self.recent = 0.7 * self.recent + 0.3 * r;
        }
        self.still = if still { self.still + 1 } else { 0 };
        if self.state == TrustState::Excluded {
            if let Some(r) = residual {
                let agrees = r.abs() < policy.agree_within && !still;
                self.agreeing = if agrees { self.agreeing + 1 } else { 0 };
            }
            if self.agreeing >= policy.readmit_after {
                // Back on probation: down-weighted until the evidence decays.
                let probation = (policy.down_weight_at + policy.exclude_at) / 2.0;
                self.high = probation;
                self.low = probation;
                self.state = TrustState::DownWeighted;
                return Verdict::Readmitted;
            }
            return Verdict::Unchanged;
        }
        if let Some(r) = residual {
            let r = r.clamp(-policy.clip, policy.clip);
            self.high = (self.high + r - policy.slack).max(0.0);
            self.low = (self.low - r - policy.slack).max(0.0);
        }
        if self.still >= policy.stuck_after {
            return self.exclude(SuspectReason::Stuck);
        }
        let evidence = self.evidence();
        if evidence >= policy.exclude_at {
            return self.exclude(SuspectReason::Deviating);
        }
        self.state = if evidence >= policy.down_weight_at {
            TrustState::DownWeighted
        } else {
            TrustState::Trusted
        };
        Verdict::Unchanged
    }

    fn exclude(&mut self, reason: SuspectReason) -> Verdict {
        self.state = TrustState::Excluded;
        self.agreeing = 0;
        Verdict::Excluded(reason)
    }

    /// Takes back an exclusion that would leave a group with no sensor: the
    /// sensor stays, down-weighted, its evidence kept.
    pub fn reprieve(&mut self) {
        self.state = TrustState::DownWeighted;
    }

    /// Clears the evidence against a sensor whose disagreement another
    /// sensor's exclusion has just explained.
    pub fn exonerate(&mut self, policy: &TrustPolicy) {
        if self.state != TrustState::Excluded {
            self.high = self.high.min(policy.down_weight_at / 2.0);
            self.low = self.low.min(policy.down_weight_at / 2.0);
            self.state = TrustState::Trusted;
        }
    }

    /// The accumulated evidence (in σ).
    pub fn evidence(&self) -> f64 {
        self.high.max(self.low)
    }

    /// A running mean of its recent residuals (in σ, signed).
    pub fn recent_residual(&self) -> f64 {
        self.recent
    }

    pub fn state(&self) -> TrustState {
        self.state
    }

    /// In [0, 1]: 1 up to `down_weight_at`, falling linearly to 0 at
    /// `exclude_at`; 0 while excluded.
    pub fn trust(&self, policy: &TrustPolicy) -> f64 {
        if self.state == TrustState::Excluded {
            return 0.0;
        }
        let span = policy.exclude_at - policy.down_weight_at;
        (1.0 - (self.evidence() - policy.down_weight_at) / span).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_bias_excludes_in_five_windows_and_agreement_readmits() {
        let policy = TrustPolicy::default();
        let mut score = TrustScore::default();
        // Clipped to 4, less ¾ slack: 3.25 a window; 15 is passed in the 5th.
        for window in 1..=4 {
            assert_eq!(
                score.observe(&policy, Some(9.0), false),
                Verdict::Unchanged,
                "{window}"
            );
        }
        assert_eq!(score.state(), TrustState::DownWeighted);
        assert!((score.evidence() - 13.0).abs() < 1e-12);
        assert!((score.trust(&policy) - 0.2).abs() < 1e-12); // 1 − (13 − 5)/10
        assert_eq!(
            score.observe(&policy, Some(9.0), false),
            Verdict::Excluded(SuspectReason::Deviating)
        );
        assert_eq!(score.trust(&policy), 0.0);
        // 29 agreeing windows, one that disagrees, then 30 agreeing.
        for _ in 0..29 {
            assert_eq!(score.observe(&policy, Some(0.5), false), Verdict::Unchanged);
        }
        assert_eq!(score.observe(&policy, Some(2.5), false), Verdict::Unchanged);
        for _ in 0..29 {
            assert_eq!(
                score.observe(&policy, Some(-1.0), false),
                Verdict::Unchanged
            );
        }
        assert_eq!(
            score.observe(&policy, Some(-1.0), false),
            Verdict::Readmitted
        );
        assert_eq!(score.state(), TrustState::DownWeighted);
        assert!((score.trust(&policy) - 0.5).abs() < 1e-12); // evidence 10
    }

    #[test]
    fn a_spike_down_weights_but_does_not_exclude() {
        let policy = TrustPolicy::default();
        let mut score = TrustScore::default();
        for r in [50.0, -40.0, 0.3, 0.1] {
            assert_eq!(score.observe(&policy, Some(r), false), Verdict::Unchanged);
        }
        // High evidence 3.25, then low 3.25 (high back to 0), then low
        // decays by ¾ ± r: 2.2, 1.35.
        assert!(score.evidence() < policy.down_weight_at);
        assert_eq!(score.state(), TrustState::Trusted);
    }

    #[test]
    fn readings_without_spread_exclude_as_stuck() {
        let policy = TrustPolicy::default();
        let mut score = TrustScore::default();
        assert_eq!(score.observe(&policy, Some(0.1), true), Verdict::Unchanged);
        assert_eq!(score.observe(&policy, Some(0.1), false), Verdict::Unchanged);
        assert_eq!(score.observe(&policy, Some(0.1), true), Verdict::Unchanged);
        assert_eq!(score.observe(&policy, Some(0.1), true), Verdict::Unchanged);
        assert_eq!(
            score.observe(&policy, Some(0.1), true),
            Verdict::Excluded(SuspectReason::Stuck)
        );
        // Still readings never count as agreeing.
        for _ in 0..40 {
            assert_eq!(score.observe(&policy, Some(0.0), true), Verdict::Unchanged);
        }
    }
}
