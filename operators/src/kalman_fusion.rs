//! Robust fusion: per asset and quantity a Kalman filter that weighs each redundant sensor by its trust, gates what disagrees and names the sensors it excludes.
//!
//! Each window, for each redundant group of an asset (see [`Redundancy`]):
//! 1. **Measurements.** A sensor's window mean of n readings is a
//!    measurement with variance σ²/n. If the window's spread is far above σ²
//!    (a χ² test at 99.9 %), the sensor is noisy now and the spread is used
//!    instead; if it is far below (at 0.01 %), the readings are "still": a
//!    stuck sensor's are. A window whose readings mostly arrived ahead of
//!    their own event time comes from a clock that runs ahead (verification
//!    names the sensor `clock_ahead`): its readings are of an earlier time,
//!    by up to the clock check's 5 s. It is judged like the others but
//!    absorbed only when no punctual sensor is left, with its variance grown
//!    by how far the quantity moves in 5 s (the filter's
//!    [`Tracker::movement_variance`]).
//! 2. **Witnesses.** Each sensor is compared with the other witnesses: the
//!    group's other sensors not excluded and, when fewer than two of those
//!    are measured, the filter's prediction. Its residual is the normalised
//!    difference to the witness it agrees with best, so a sensor is
//!    consistent when it agrees with at least one other witness, and one
//!    lying sensor among three cannot drag the others' residuals (a residual
//!    against the fused value would: the liar moves it by its weight).
//! 3. **Gate.** A sensor whose residual fails the χ² gate (99.9 %, one
//!    degree of freedom) is not absorbed. When the consistent sensors
//!    together fail the gate against the prediction, the plant moved faster
//!    than the process model allows (a load ramp): the prediction's variance
//!    is inflated until they pass, rather than the sensors rejected; and
//!    while the consensus keeps surprising the prediction (its mean NIS over
//!    ~10 windows above 1) the prediction's covariance is inflated by that
//!    mean (fading memory). When no sensor is consistent for three windows
//!    in a row, the filter restarts from them.
//! 4. **Update.** The consistent sensors are absorbed one by one (Joseph
//!    form), each with its variance divided by its trust; or, with
//!    covariance intersection (for sensors whose errors may be correlated,
//!    e.g. sharing a mounting or a transmitter), first combined by
//!    [`covariance_intersection`], then absorbed as one. A window with
//!    nothing absorbed gets an even mixture of the prediction and its gated
//!    sensors, or the prediction alone for a few windows (see
//!    `GroupFilter::estimate`).
//! 5. **Trust.** Each measured sensor's residual feeds its [`TrustScore`];
//!    a sensor that keeps disagreeing is down-weighted, then excluded and
//!    named in a [`Suspect`], and readmitted after a sustained run of
//!    agreement (with another sensor or the prediction). A group's last
//!    sensor standing is not excluded, unless the prediction and an
//!    excluded sensor agree against it.
//!
//! Two sensors alone cannot tell which of them lies. While they agree,
//! neither gathers evidence; when they part, the prediction is the third
//! witness, which settles a sudden lie (bias, false data, stuck) but not a
//! slow drift that the prediction followed: that dispute is named
//! `ambiguous`. A prediction made of one sensor's word (after a while alone,
//! or after a jump nothing confirmed) is no witness between it and its
//! returning partner; a lone sensor's jump that an excluded sensor confirms
//! is a move, one it contradicts (agreeing with the prediction) is a lie.
//! [`Witness`] is the hook for a third witness of another kind (a model of
//! the asset's other channels).
//!
//! The process noise q is the user's per quantity, or estimated from the
//! data: every minute, from the last few minutes of consistent fused
//! measurements, by the robust second-difference estimator of
//! [`crate::kalman::process_noise`] (constant velocity) or first-difference
//! one (random walk), with a floor so the filter never stops listening.

use std::collections::VecDeque;
use std::sync::Arc;

use twinflow_engine::catalog::{AssetId, Catalog, SensorId};
use twinflow_engine::time::Micros;
use twinflow_engine::verify::MAX_AHEAD;

mod measurement;
mod witnesses;

use measurement::{Measurement, SpreadTests};
use witnesses::{AGREES, AMBIGUOUS_AFTER, PairDispute, Solo};

use crate::align::AlignedRow;
use crate::fuse::{AssetFusion, FusedRow, FusedValue, Fusion};
use crate::kalman::{
    ProcessModel, Tracker, chi_square_1dof_quantile, covariance_intersection,
    estimate_q_constant_velocity, estimate_q_random_walk,
};
use crate::redundancy::{Group, Redundancy};
use crate::trust::{
    SensorTrust, Suspect, SuspectReason, TrustPolicy, TrustScore, TrustState, Verdict,
};

/// How the fused quantity is believed to move between windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Motion {
    /// It diffuses: no trend is assumed.
    RandomWalk,
    /// It moves at a rate that drifts: ramps are followed without lag.
    ConstantVelocity,
}

/// Where the process noise q comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ProcessNoise {
    /// Estimated from each asset's data as it runs (see the module doc).
    Estimated,
    /// Given per quantity: (quantity, q); a quantity not listed is estimated.
    Given(Vec<(String, f64)>),
}

/// The choices of the robust fusion.
#[derive(Debug, Clone)]
pub struct KalmanOptions {
    pub motion: Motion,
    pub process_noise: ProcessNoise,
    /// The gate's probability: a consistent sensor passes it this often.
    pub gate: f64,
    pub trust: TrustPolicy,
    /// Combine each window's consistent sensors by covariance intersection
    /// before absorbing them, for sensors whose errors may be correlated.
    pub covariance_intersection: bool,
}

impl Default for KalmanOptions {
    fn default() -> Self {
        KalmanOptions {
            motion: Motion::ConstantVelocity,
            process_noise: ProcessNoise::Estimated,
            gate: 0.999,
            trust: TrustPolicy::default(),
            covariance_intersection: false,
        }
    }
}

/// Windows without a consistent sensor after which the filter restarts.
const RESTART_AFTER: u32 = 3;
/// The weight of each window's NIS in the mean surprise (memory ≈ 10 windows).
const SURPRISE_WEIGHT: f64 = 0.1;
/// The most the prediction's covariance is inflated by surprise.
const MAX_FADE: f64 = 100.0;
/// Windows the prediction stands in for a group with no sensor absorbed.
const MAX_COAST_WINDOWS: Micros = 5;
/// A gap in a group's measurements after which the filter restarts (µs).
const MAX_GAP_US: Micros = 60_000_000;
/// Process noise is estimated every this many windows ...
const ESTIMATE_EVERY: usize = 60;
/// ... from at most this many consecutive windows, and at least `MIN_HISTORY`.
const MAX_HISTORY: usize = 300;
const MIN_HISTORY: usize = 120;
/// The floor of an estimated q, relative to the measurement variance (per s).
const Q_FLOOR: f64 = 1e-3;
/// A new filter's rate variance, relative to its value variance (per s²).
const RATE_VARIANCE: f64 = 100.0;

/// The robust fusion (see the module doc).
pub struct KalmanFusion {
    shared: Arc<Shared>,
}

struct Shared {
    catalog: Arc<Catalog>,
    redundancy: Redundancy,
    options: KalmanOptions,
    /// √ of the gate's χ² threshold: the largest consistent |residual|.
    gate_sigma: f64,
    /// Per quantity: q given by the user, if any.
    given_q: Vec<Option<f64>>,
    spread_tests: SpreadTests,
}

impl KalmanFusion {
    pub fn new(catalog: &Catalog, redundancy: Redundancy, options: KalmanOptions) -> Self {
        let given_q = redundancy
            .quantities()
            .iter()
            .map(|q| match &options.process_noise {
                ProcessNoise::Estimated => None,
                ProcessNoise::Given(given) => given.iter().find(|(n, _)| n == q).map(|g| g.1),
            })
            .collect();
        KalmanFusion {
            shared: Arc::new(Shared {
                catalog: Arc::new(catalog.clone()),
                gate_sigma: chi_square_1dof_quantile(options.gate).sqrt(),
                redundancy,
                options,
                given_q,
                spread_tests: SpreadTests::new(),
            }),
        }
    }
}

impl Fusion for KalmanFusion {
    fn quantities(&self) -> &[String] {
        self.shared.redundancy.quantities()
    }

    fn start(&self, asset: AssetId) -> Box<dyn AssetFusion> {
        let groups = self
            .shared
            .redundancy
            .groups(asset)
            .iter()
            .map(|group| GroupFilter::new(group, self.shared.given_q[group.quantity]))
            .collect();
        Box::new(AssetFilters {
            shared: Arc::clone(&self.shared),
            asset,
            groups,
        })
    }
}

/// The filters of one asset's groups.
struct AssetFilters {
    shared: Arc<Shared>,
    asset: AssetId,
    groups: Vec<GroupFilter>,
}

impl AssetFusion for AssetFilters {
    fn fuse(&mut self, row: AlignedRow, witnesses: &[Option<(f64, f64)>]) -> FusedRow {
        let shared = &*self.shared;
        let mut values = vec![None; shared.redundancy.quantities().len()];
        let groups = shared.redundancy.groups(self.asset);
        let members = groups.iter().map(|g| g.members.len()).sum();
        let (mut trust, mut suspects) = (Vec::with_capacity(members), Vec::new());
        for (group, filter) in groups.iter().zip(&mut self.groups) {
            let witness = witnesses.get(group.quantity).copied().flatten();
            values[group.quantity] =
                filter.step(shared, group, &row, witness, &mut trust, &mut suspects);
        }
        FusedRow {
            row,
            values,
            trust,
            suspects,
            imputed: Vec::new(),
            surprise: None,
        }
    }
}

/// The filter of one group of one asset, and its members' trust.
struct GroupFilter {
    tracker: Option<Tracker>,
    /// Start of the last window a measurement was absorbed in.
    last_us: Micros,
    scores: Vec<TrustScore>,
    /// Windows in a row without a consistent sensor.
    unexplained: u32,
    /// While the group's last two sensors disagree: who is to blame.
    pair: Option<PairDispute>,
    /// The last two sensors while they agree, and their mean gap (a − b).
    pair_gap: Option<(usize, usize, f64)>,
    /// While the last two sensors disagree: the member the model's witness
    /// has blamed, and in how many windows in a row.
    model_vote: Option<(usize, u32)>,
    /// The member whose word alone has fed the filter lately, if any.
    solo: Option<Solo>,
    /// The consensus's recent mean NIS against the prediction (1 when the
    /// model is right).
    surprise: f64,
    /// q: given, or the latest estimate (`None` before the first).
    q: Option<f64>,
    given: bool,
    /// Consecutive windows' consensus measurements (z, r), for estimating q.
    history: VecDeque<(f64, f64)>,
    since_estimate: usize,
}

impl GroupFilter {
    fn new(group: &Group, given_q: Option<f64>) -> Self {
        GroupFilter {
            tracker: None,
            last_us: Micros::MIN,
            scores: vec![TrustScore::default(); group.members.len()],
            unexplained: 0,
            pair: None,
            pair_gap: None,
            model_vote: None,
            solo: None,
            surprise: 1.0,
            q: given_q,
            given: given_q.is_some(),
            history: VecDeque::with_capacity(MAX_HISTORY),
            since_estimate: 0,
        }
    }

    /// Fuses one window of the group; appends each member's trust and any
    /// new suspects.
    fn step(
        &mut self,
        shared: &Shared,
        group: &Group,
        row: &AlignedRow,
        witness: Option<(f64, f64)>,
        trust_out: &mut Vec<SensorTrust>,
        suspects: &mut Vec<Suspect>,
    ) -> Option<FusedValue> {
        let policy = &shared.options.trust;
        let mut measured: Vec<Option<Measurement>> = group
            .members
            .iter()
            .map(|m| Measurement::of(row, m.slot, m.sigma, shared.spread_tests))
            .collect();
        if measured.iter().all(Option::is_none) {
            self.report(group, &[], &[], policy, trust_out);
            return None;
        }

        // Predict to this window (or start afresh after a long gap).
        let dt_us = row.start_us.saturating_sub(self.last_us);
        if self.tracker.is_some() && dt_us > MAX_GAP_US {
            self.tracker = None;
            self.history.clear();
        }
        if let Some(tracker) = &mut self.tracker {
            tracker.predict(dt_us as f64 / 1e6);
        }
        let prior = self.tracker.map(|t| (t.value(), t.variance()));
        if let Some(tracker) = &self.tracker {
            // A clock running ahead stamps what it read up to the clock
            // check's tolerance earlier: as uncertain as the quantity moves.
            let lead_s = MAX_AHEAD as f64 / 1e6;
            for m in measured.iter_mut().flatten().filter(|m| m.ahead) {
                m.r += tracker.movement_variance(lead_s);
            }
        }

        let mut candidates: Vec<usize> = (0..measured.len())
            .filter(|&i| measured[i].is_some() && self.scores[i].state() != TrustState::Excluded)
            .collect();
        // A clock running ahead is a last resort: while a punctual sensor
        // is there, it is judged but not absorbed.
        let punctual = |&i: &usize| measured[i].is_some_and(|m| !m.ahead);
        if candidates.iter().any(punctual) {
            candidates.retain(punctual);
        }
        let mut judgement = self.judge(shared, &measured, &candidates, prior, witness);
        let mut restart = self.tracker.is_none() || judgement.restart;
        if judgement.coast || judgement.backed {
            self.unexplained = 0;
        } else if judgement.consistent.is_empty() && !candidates.is_empty() {
            self.unexplained += 1;
            if self.unexplained >= RESTART_AFTER || restart {
                // Nothing agrees with anything: start again from what is there.
                judgement.consistent = candidates.clone();
                restart = true;
            }
        } else {
            self.unexplained = 0;
        }

        // The consistent sensors' combined measurement, each weighed by trust.
        let weighed: Vec<(usize, f64, f64)> = judgement
            .consistent
            .iter()
            .map(|&i| {
                let m = measured[i].expect("consistent sensors are measured");
                let trust = self.scores[i].trust(policy).max(0.01);
                (i, m.z, m.r / trust)
            })
            .collect();
        let combined = combine(&weighed, shared.options.covariance_intersection)
            .map(|(z, r)| (z, r.max(judgement.widen)));

        let absorbed = combined.is_some();
        if absorbed {
            self.solo = match weighed[..] {
                [(i, _, _)] => Some(match self.solo {
                    Some(solo) if solo.member == i => Solo {
                        member: i,
                        windows: solo.windows + 1,
                        jumped: solo.jumped || (restart && self.tracker.is_some()),
                    },
                    _ => Solo {
                        member: i,
                        windows: 1,
                        jumped: false,
                    },
                }),
                _ => None,
            };
        }
        if let Some((z, r)) = combined {
            match (&mut self.tracker, restart) {
                (Some(tracker), false) => {
                    // Consistent sensors that together fail against the
                    // prediction, none of them agreeing with it: the plant
                    // moved faster than the process model allows. (One that
                    // agrees says it did not: a dispute beginning, not a
                    // manoeuvre.)
                    let innovation = tracker.innovation(z, r);
                    // Fading memory: while the consensus keeps surprising the
                    // prediction more than its variance says (a mean NIS
                    // above 1: the plant moves in bursts the process noise
                    // averages out), believe the prediction that much less.
                    let surprise = self.surprise;
                    self.surprise += SURPRISE_WEIGHT * (innovation.nis() - surprise);
                    tracker.inflate(surprise.min(MAX_FADE));
                    let innovation = tracker.innovation(z, r);
                    let none_agrees = weighed
                        .iter()
                        .all(|&(_, zi, ri)| tracker.innovation(zi, ri).normalised().abs() > AGREES);
                    if (weighed.len() >= 2 || judgement.corroborated)
                        && none_agrees
                        && innovation.nis() > shared.gate_sigma.powi(2)
                    {
                        let p = tracker.variance();
                        let wanted = innovation.residual.powi(2) - r;
                        if p > 0.0 && wanted > p {
                            tracker.inflate(wanted / p);
                        }
                    }
                    if shared.options.covariance_intersection || judgement.widen > 0.0 {
                        tracker.update(z, r);
                    } else {
                        for &(_, z, r) in &weighed {
                            tracker.update(z, r);
                        }
                    }
                }
                _ => {
                    let q = self.q.unwrap_or(r);
                    self.tracker = Some(Tracker::new(
                        shared.options.motion.model(q),
                        z,
                        r,
                        RATE_VARIANCE * r,
                    ));
                    self.history.clear();
                    self.surprise = 1.0;
                }
            }
            self.learn_q(shared, dt_us, z, r);
            self.last_us = row.start_us;
        }

        // Trust: every measured sensor's evidence, in channel order.
        for (i, member) in group.members.iter().enumerate() {
            let Some(m) = measured[i] else {
                continue;
            };
            let verdict = self.scores[i].observe(policy, judgement.evidence[i], m.still);
            if let Verdict::Excluded(reason) = verdict {
                let others_left = (0..measured.len())
                    .any(|j| j != i && self.scores[j].state() != TrustState::Excluded);
                if !others_left && !judgement.backed {
                    // The last witness standing is kept, however doubtful;
                    // unless the prediction and an excluded sensor agree
                    // against it.
                    self.scores[i].reprieve();
                    continue;
                }
                for (j, score) in self.scores.iter_mut().enumerate() {
                    if j != i {
                        score.exonerate(policy);
                    }
                }
                self.pair = None;
                suspects.push(self.suspect(shared, group, i, member.sensor, row, m, reason));
            }
        }
        if let Some(PairDispute::Ambiguous {
            windows,
            named: false,
            witness,
        }) = self.pair
            && windows >= AMBIGUOUS_AFTER
        {
            // Name the one the prediction leans against (else the less precise).
            let leaning = |i: usize| {
                let m = measured[i].expect("disputed sensors are measured");
                prior
                    .filter(|_| witness)
                    .map_or(m.r, |p| m.against(p).abs())
            };
            if let [a, b] = candidates[..] {
                let i = if leaning(a) >= leaning(b) { a } else { b };
                let m = measured[i].expect("disputed sensors are measured");
                let sensor = group.members[i].sensor;
                suspects.push(self.suspect(
                    shared,
                    group,
                    i,
                    sensor,
                    row,
                    m,
                    SuspectReason::Ambiguous,
                ));
                self.pair = Some(PairDispute::Ambiguous {
                    windows,
                    named: true,
                    witness,
                });
            }
        }

        let fused = self
            .tracker
            .and_then(|t| {
                let absorbed = absorbed || judgement.coast;
                self.estimate(t, row, absorbed, judgement.backed, &measured, &candidates)
            })
            .map(|(value, variance)| FusedValue {
                value,
                variance: variance + judgement.unresolved,
                sensors: weighed.len() as u32,
            });
        let posterior = fused.map(|f| f.variance);
        let weights: Vec<Option<f64>> = (0..measured.len())
            .map(|i| {
                let &(_, _, r) = weighed.iter().find(|(j, _, _)| *j == i)?;
                posterior.map(|p| (p / r.max(judgement.widen)).min(1.0))
            })
            .collect();
        self.report(group, &judgement.residuals, &weights, policy, trust_out);
        fused
    }

    /// The window's fused estimate (value, variance), given the filter after
    /// the window. If it absorbed its sensors (or coasts on purpose), the
    /// filter's. If it gated every candidate (a jump nothing confirms: the
    /// plant moved or the sensors lie), an even mixture of the prediction and
    /// the candidates, whose variance covers both; unless an excluded sensor
    /// agrees with the prediction (`backed`): then the prediction. If no sensor is left to
    /// absorb (all excluded), the prediction, for a few windows only, as
    /// alignment carries a value: left running, it drifts off with its rate.
    fn estimate(
        &self,
        tracker: Tracker,
        row: &AlignedRow,
        absorbed: bool,
        backed: bool,
        measured: &[Option<Measurement>],
        candidates: &[usize],
    ) -> Option<(f64, f64)> {
        let (x, p) = (tracker.value(), tracker.variance());
        if absorbed || backed {
            return Some((x, p));
        }
        let gated: Vec<(usize, f64, f64)> = candidates
            .iter()
            .filter_map(|&i| measured[i].map(|m| (i, m.z, m.r)))
            .collect();
        if let Some((z, r)) = combine(&gated, false) {
            let mean = (x + z) / 2.0;
            return Some((mean, (p + r) / 2.0 + (z - x).powi(2) / 4.0));
        }
        let windows =
            row.start_us.saturating_sub(self.last_us) / (row.end_us - row.start_us).max(1);
        (windows <= MAX_COAST_WINDOWS).then_some((x, p))
    }

    /// Appends each member's trust record for this window (a member without
    /// a residual was not measured; without a weight, not absorbed).
    fn report(
        &self,
        group: &Group,
        residuals: &[Option<f64>],
        weights: &[Option<f64>],
        policy: &TrustPolicy,
        out: &mut Vec<SensorTrust>,
    ) {
        for (i, member) in group.members.iter().enumerate() {
            let score = &self.scores[i];
            out.push(SensorTrust {
                sensor: member.sensor,
                trust: score.trust(policy),
                weight: weights.get(i).copied().flatten().unwrap_or(0.0),
                state: score.state(),
                residual: residuals.get(i).copied().flatten(),
            });
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn suspect(
        &self,
        shared: &Shared,
        group: &Group,
        i: usize,
        sensor: SensorId,
        row: &AlignedRow,
        m: Measurement,
        reason: SuspectReason,
    ) -> Suspect {
        let score = &self.scores[i];
        let policy = &shared.options.trust;
        let channel = |s: SensorId| shared.catalog.sensor(s).channel.as_str();
        let others: Vec<&str> = group
            .members
            .iter()
            .filter(|o| o.sensor != sensor)
            .map(|o| channel(o.sensor))
            .collect();
        let quantity = &shared.redundancy.quantities()[group.quantity];
        let evidence = match reason {
            SuspectReason::Stuck => format!(
                "{} readings without spread for {} windows in a row, where σ = {} says they vary",
                channel(sensor),
                policy.stuck_after,
                group.members[i].sigma
            ),
            _ => format!(
                "{} {quantity} disagrees with {} by {:+.1} σ on average lately; accumulated \
                 evidence {:.1} σ ≥ {}",
                channel(sensor),
                others.join(", "),
                score.recent_residual(),
                score.evidence(),
                policy.exclude_at
            ),
        };
        Suspect {
            sensor,
            start_us: row.start_us,
            value: Some(m.z),
            score: score.evidence(),
            reason,
            evidence,
        }
    }

    /// Keeps the consensus series and, every so often, estimates q from it.
    fn learn_q(&mut self, shared: &Shared, dt_us: Micros, z: f64, r: f64) {
        if self.given {
            return;
        }
        if dt_us != 1_000_000 && !self.history.is_empty() {
            // Estimators need evenly spaced measurements.
            self.history.clear();
        }
        if self.history.len() == MAX_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back((z, r));
        self.since_estimate += 1;
        if self.history.len() < MIN_HISTORY || self.since_estimate < ESTIMATE_EVERY {
            return;
        }
        self.since_estimate = 0;
        let zs: Vec<f64> = self.history.iter().map(|h| h.0).collect();
        let mean_r = self.history.iter().map(|h| h.1).sum::<f64>() / self.history.len() as f64;
        let estimate = match shared.options.motion {
            Motion::RandomWalk => estimate_q_random_walk(&zs, mean_r, 1.0),
            Motion::ConstantVelocity => estimate_q_constant_velocity(&zs, mean_r, 1.0),
        };
        if let Ok(q) = estimate {
            let q = q.max(Q_FLOOR * mean_r);
            self.q = Some(q);
            if let Some(tracker) = &mut self.tracker {
                tracker.set_process_noise(q);
            }
        }
    }
}

impl Motion {
    fn model(self, q: f64) -> ProcessModel {
        match self {
            Motion::RandomWalk => ProcessModel::RandomWalk { q },
            Motion::ConstantVelocity => ProcessModel::ConstantVelocity { q },
        }
    }
}

/// The consistent sensors' measurements (index, z, r) as one (z, r):
/// inverse-variance for independent errors, covariance intersection for
/// errors that may be correlated.
fn combine(weighed: &[(usize, f64, f64)], intersect: bool) -> Option<(f64, f64)> {
    let (&(_, z0, r0), rest) = weighed.split_first()?;
    Some(rest.iter().fold((z0, r0), |(z, r), &(_, zi, ri)| {
        if intersect {
            let a = nalgebra::Vector1::new(z);
            let b = nalgebra::Vector1::new(zi);
            match covariance_intersection(
                &a,
                &nalgebra::Matrix1::new(r),
                &b,
                &nalgebra::Matrix1::new(ri),
            ) {
                Ok(fused) => (fused.x[0], fused.p[(0, 0)]),
                Err(_) => (z, r),
            }
        } else {
            let w = 1.0 / r + 1.0 / ri;
            ((z / r + zi / ri) / w, 1.0 / w)
        }
    }))
}
