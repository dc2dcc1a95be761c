//! Kalman filtering of one scalar quantity: the filter, its process models and a tracker that hides the state size.
//!
//! [`KalmanFilter`] is the textbook linear filter on fixed-size nalgebra
//! matrices, so a step allocates nothing. [`Tracker`] wraps it for one scalar
//! quantity under a [`ProcessModel`]: a random walk (state: the value) or
//! constant velocity (state: the value and its rate of change).
//!
//! # Why the Joseph form
//! The short covariance update P⁺ = (I − K H) P holds only for the optimal
//! gain and in exact arithmetic. Rounding makes it lose symmetry and, after
//! many steps of a well-observed quantity (small P, hundreds of thousands of
//! windows), positive definiteness; then variances, gains and the innovation
//! gate all go wrong. The Joseph form
//! P⁺ = (I − K H) P (I − K H)ᵀ + K r Kᵀ is a sum of two positive
//! semi-definite terms: it stays symmetric and PSD under rounding, and it is
//! right for any gain. FilterPy's `KalmanFilter.update` computes the same
//! form, which `tests/kalman_filterpy.rs` compares against.
//!
//! # How the process noise q is estimated
//! From a series observed with known measurement variance r at a fixed step
//! dt ([`process_noise`]): for a random walk the first differences of the
//! measurements have variance q·dt + 2r, for constant velocity the second
//! differences have variance (2/3)·q·dt³ + 6r. The variance of the differences
//! is estimated robustly, as (1.4826 · median absolute deviation)², so that
//! faults and spikes do not inflate it, and q follows, clamped at 0.
//!
//! Also here: the innovation gate's threshold ([`gate`]) and covariance
//! intersection ([`intersection`]) for estimates whose errors may be correlated.

pub mod gate;
pub mod intersection;
pub mod process_noise;

pub use gate::chi_square_1dof_quantile;
pub use intersection::{Intersection, NotPositiveDefinite, covariance_intersection};
pub use process_noise::{EstimateError, estimate_q_constant_velocity, estimate_q_random_walk};

use nalgebra::{Matrix1, Matrix2, SMatrix, SVector, Vector1, Vector2};

/// How a scalar quantity evolves between measurements; `q` is the spectral
/// density of the driving white noise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProcessModel {
    /// The value itself diffuses: its variance grows by `q` per second
    /// (units² / s).
    RandomWalk { q: f64 },
    /// The value moves at a rate that white-noise acceleration of density `q`
    /// (units² / s³) perturbs.
    ConstantVelocity { q: f64 },
}

impl ProcessModel {
    /// The spectral density of the process noise.
    pub fn q(&self) -> f64 {
        match *self {
            ProcessModel::RandomWalk { q } | ProcessModel::ConstantVelocity { q } => q,
        }
    }
}

/// The random walk's transition over `dt` seconds is the identity; its noise
/// covariance is q·dt.
pub fn random_walk_noise(q: f64, dt: f64) -> Matrix1<f64> {
    Matrix1::new(q * dt)
}

/// The constant-velocity transition over `dt` seconds: value += rate · dt.
pub fn constant_velocity_transition(dt: f64) -> Matrix2<f64> {
    Matrix2::new(1.0, dt, 0.0, 1.0)
}

/// The constant-velocity noise covariance over `dt` seconds for white-noise
/// acceleration of density `q`: the exact integral
/// q · [[dt³/3, dt²/2], [dt²/2, dt]] (not the piecewise-constant
/// acceleration model, whose value variance is dt⁴/4 per unit of variance).
pub fn constant_velocity_noise(q: f64, dt: f64) -> Matrix2<f64> {
    let (dt2, dt3) = (dt * dt, dt * dt * dt);
    q * Matrix2::new(dt3 / 3.0, dt2 / 2.0, dt2 / 2.0, dt)
}

/// The innovation of a scalar measurement z = H x + v, v ~ N(0, r), against
/// the filter's current (predicted) state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Innovation {
    /// ν = z − H x.
    pub residual: f64,
    /// S = H P Hᵀ + r, the variance ν has if the model and r are right.
    pub variance: f64,
}

impl Innovation {
    /// The normalised innovation squared ν²/S; χ² with one degree of freedom
    /// for a consistent filter (compare with [`chi_square_1dof_quantile`]).
    pub fn nis(&self) -> f64 {
        self.residual * self.residual / self.variance
    }

    /// ν/√S: the residual in standard deviations, with its sign.
    pub fn normalised(&self) -> f64 {
        self.residual / self.variance.sqrt()
    }
}

/// A linear Kalman filter with an `N`-dimensional state x and its covariance P.
///
/// Measurements are scalar (one sensor at a time); several sensors of one
/// window are absorbed by successive [`update`](Self::update)s, which is exact
/// for independent measurement errors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KalmanFilter<const N: usize> {
    x: SVector<f64, N>,
    p: SMatrix<f64, N, N>,
}

impl<const N: usize> KalmanFilter<N> {
    /// A filter at state `x0` with covariance `p0` (symmetric, PSD).
    pub fn new(x0: SVector<f64, N>, p0: SMatrix<f64, N, N>) -> Self {
        KalmanFilter { x: x0, p: p0 }
    }

    /// Moves the state one step: x ← F x, P ← F P Fᵀ + Q.
    #[inline]
    pub fn predict(&mut self, f: &SMatrix<f64, N, N>, q: &SMatrix<f64, N, N>) {
        self.x = f * self.x;
        self.p = f * self.p * f.transpose() + q;
    }

    /// The innovation of measurement `z` with variance `r` through the row `h`,
    /// without absorbing it (for gating before [`update`](Self::update)).
    #[inline]
    pub fn innovation(&self, h: &SVector<f64, N>, z: f64, r: f64) -> Innovation {
        Innovation {
            residual: z - h.dot(&self.x),
            variance: h.dot(&(self.p * h)) + r,
        }
    }

    /// Absorbs measurement `z` = h·x + v with v ~ N(0, `r`), r ≥ 0, and returns
    /// its innovation against the state before. Joseph form (see the module doc).
    ///
    /// The innovation variance h P hᵀ + r must be positive: a measurement
    /// without noise of a component known exactly carries no information and
    /// gives NaN.
    #[inline]
    pub fn update(&mut self, h: &SVector<f64, N>, z: f64, r: f64) -> Innovation {
        let ph = self.p * h;
        let innovation = Innovation {
            residual: z - h.dot(&self.x),
            variance: h.dot(&ph) + r,
        };
        let gain = ph / innovation.variance;
        self.x += gain * innovation.residual;
        let i_kh = SMatrix::<f64, N, N>::identity() - gain * h.transpose();
        self.p = i_kh * self.p * i_kh.transpose() + gain * gain.transpose() * r;
        innovation
    }

    /// The state estimate x.
    pub fn state(&self) -> &SVector<f64, N> {
        &self.x
    }

    /// The covariance P of the state estimate's error.
    pub fn covariance(&self) -> &SMatrix<f64, N, N> {
        &self.p
    }

    /// Multiplies the covariance by `factor` ≥ 1: the estimate is believed
    /// less (a fading memory, for when the plant moved faster than the
    /// process model allows).
    pub fn inflate(&mut self, factor: f64) {
        self.p *= factor.max(1.0);
    }
}

/// A Kalman filter of one scalar quantity under a [`ProcessModel`], measured
/// directly (H picks the value): the fusion's per-asset, per-quantity state,
/// whether the model is a random walk or constant velocity.
///
/// Per window: [`predict`](Self::predict) by the time since the last one,
/// then, per sensor reading, gate on its [`innovation`](Self::innovation)
/// and [`update`](Self::update) with those that pass.
///
/// ```
/// use twinflow_operators::kalman::{ProcessModel, Tracker, chi_square_1dof_quantile};
///
/// let mut t = Tracker::new(ProcessModel::RandomWalk { q: 0.01 }, 20.0, 1.0, 0.0);
/// let gate = chi_square_1dof_quantile(0.999);
/// t.predict(1.0);
/// for (z, r) in [(20.4, 0.04), (35.0, 0.04), (20.2, 0.09)] {
///     if t.innovation(z, r).nis() <= gate {
///         t.update(z, r);
///     }
/// }
/// // 35.0 is some 50 σ out: gated, not absorbed. The estimate stays near 20.3.
/// assert!((t.value() - 20.3).abs() < 0.1 && t.variance() < 0.03);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tracker {
    q: f64,
    filter: TrackerFilter,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TrackerFilter {
    RandomWalk(KalmanFilter<1>),
    ConstantVelocity(KalmanFilter<2>),
}

/// H of a constant-velocity tracker: the value, not its rate.
const VALUE_OF_2: Vector2<f64> = Vector2::new(1.0, 0.0);
const VALUE_OF_1: Vector1<f64> = Vector1::new(1.0);

impl Tracker {
    /// A tracker whose value starts at `value` with `variance`. Under
    /// constant velocity the rate starts at 0 with `rate_variance`
    /// (units²/s², uncorrelated with the value); a random walk has no rate and
    /// ignores it.
    pub fn new(model: ProcessModel, value: f64, variance: f64, rate_variance: f64) -> Tracker {
        let filter = match model {
            ProcessModel::RandomWalk { .. } => TrackerFilter::RandomWalk(KalmanFilter::new(
                Vector1::new(value),
                Matrix1::new(variance),
            )),
            ProcessModel::ConstantVelocity { .. } => {
                TrackerFilter::ConstantVelocity(KalmanFilter::new(
                    Vector2::new(value, 0.0),
                    Matrix2::new(variance, 0.0, 0.0, rate_variance),
                ))
            }
        };
        Tracker {
            q: model.q(),
            filter,
        }
    }

    /// The process model it runs.
    pub fn model(&self) -> ProcessModel {
        match self.filter {
            TrackerFilter::RandomWalk(_) => ProcessModel::RandomWalk { q: self.q },
            TrackerFilter::ConstantVelocity(_) => ProcessModel::ConstantVelocity { q: self.q },
        }
    }

    /// Moves the estimate `dt` ≥ 0 seconds ahead.
    #[inline]
    pub fn predict(&mut self, dt: f64) {
        match &mut self.filter {
            TrackerFilter::RandomWalk(f) => {
                f.predict(&Matrix1::identity(), &random_walk_noise(self.q, dt))
            }
            TrackerFilter::ConstantVelocity(f) => f.predict(
                &constant_velocity_transition(dt),
                &constant_velocity_noise(self.q, dt),
            ),
        }
    }

    /// The innovation of a reading `z` of the value with variance `r`, without
    /// absorbing it.
    #[inline]
    pub fn innovation(&self, z: f64, r: f64) -> Innovation {
        match &self.filter {
            TrackerFilter::RandomWalk(f) => f.innovation(&VALUE_OF_1, z, r),
            TrackerFilter::ConstantVelocity(f) => f.innovation(&VALUE_OF_2, z, r),
        }
    }

    /// Absorbs a reading `z` of the value with variance `r` and returns its
    /// innovation against the estimate before.
    #[inline]
    pub fn update(&mut self, z: f64, r: f64) -> Innovation {
        match &mut self.filter {
            TrackerFilter::RandomWalk(f) => f.update(&VALUE_OF_1, z, r),
            TrackerFilter::ConstantVelocity(f) => f.update(&VALUE_OF_2, z, r),
        }
    }

    /// The estimated value.
    pub fn value(&self) -> f64 {
        match &self.filter {
            TrackerFilter::RandomWalk(f) => f.state()[0],
            TrackerFilter::ConstantVelocity(f) => f.state()[0],
        }
    }

    /// The variance of the estimated value's error.
    pub fn variance(&self) -> f64 {
        match &self.filter {
            TrackerFilter::RandomWalk(f) => f.covariance()[(0, 0)],
            TrackerFilter::ConstantVelocity(f) => f.covariance()[(0, 0)],
        }
    }

    /// Believes the estimate less: its covariance times `factor` ≥ 1.
    pub fn inflate(&mut self, factor: f64) {
        match &mut self.filter {
            TrackerFilter::RandomWalk(f) => f.inflate(factor),
            TrackerFilter::ConstantVelocity(f) => f.inflate(factor),
        }
    }

    /// Runs on with process noise `q` (e.g. a fresh estimate of it).
    pub fn set_process_noise(&mut self, q: f64) {
        self.q = q;
    }

    /// The expected square of how far the value moves in `span` seconds:
    /// q·span for a random walk; under constant velocity, the estimated rate's
    /// square and variance times span², plus the process noise's q·span³/3.
    pub fn movement_variance(&self, span: f64) -> f64 {
        match self.rate() {
            None => self.q * span,
            Some((rate, variance)) => {
                (rate * rate + variance) * span * span + self.q * span.powi(3) / 3.0
            }
        }
    }

    /// The estimated rate of change (units/s) and its variance, under constant
    /// velocity; `None` for a random walk.
    pub fn rate(&self) -> Option<(f64, f64)> {
        match &self.filter {
            TrackerFilter::RandomWalk(_) => None,
            TrackerFilter::ConstantVelocity(f) => Some((f.state()[1], f.covariance()[(1, 1)])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: f64 = 1e-9;

    fn close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() <= TOL * expected.abs().max(1.0),
            "{actual} != {expected}"
        );
    }

    /// 1-D random walk, by hand:
    /// x = 10, P = 4; predict with Q = q·dt = 0.5·2 = 1: x = 10, P = 5.
    /// Update z = 12, r = 5: ν = 2, S = 10, K = P/(P+R) = 0.5,
    /// x = 10 + 0.5·2 = 11, P = (1−K)²·5 + K²·5 = 2.5 = (1−K)·P.
    /// Predict dt = 1: P = 3. Update z = 10, r = 1: ν = −1, S = 4, K = 0.75,
    /// x = 11 − 0.75 = 10.25, P = 0.25²·3 + 0.75²·1 = 0.75.
    #[test]
    fn random_walk_steps_match_hand_computation() {
        let mut f = KalmanFilter::new(Vector1::new(10.0), Matrix1::new(4.0));
        f.predict(&Matrix1::identity(), &random_walk_noise(0.5, 2.0));
        close(f.state()[0], 10.0);
        close(f.covariance()[(0, 0)], 5.0);
        let h = Vector1::new(1.0);
        let before = f.innovation(&h, 12.0, 5.0);
        close(before.residual, 2.0);
        close(before.variance, 10.0);
        close(before.nis(), 0.4);
        let absorbed = f.update(&h, 12.0, 5.0);
        assert_eq!(absorbed, before);
        close(f.state()[0], 11.0);
        close(f.covariance()[(0, 0)], 2.5);

        // The second step through the tracker, from the state the first left.
        let mut t = Tracker::new(ProcessModel::RandomWalk { q: 0.5 }, 11.0, 2.5, 0.0);
        t.predict(1.0);
        close(t.variance(), 3.0);
        let nu = t.update(10.0, 1.0);
        close(nu.residual, -1.0);
        close(nu.variance, 4.0);
        close(nu.normalised(), -0.5);
        close(t.value(), 10.25);
        close(t.variance(), 0.75);
        assert_eq!(t.rate(), None);
        assert_eq!(t.model(), ProcessModel::RandomWalk { q: 0.5 });
    }

    /// 2-D constant velocity, by hand: x = [1, 2], P = [[2, .5], [.5, 1]],
    /// dt = 2, q = 3, so F = [[1, 2], [0, 1]] and
    /// Q = 3·[[8/3, 2], [2, 2]] = [[8, 6], [6, 6]].
    /// Predict: x = [5, 2]; F P = [[3, 2.5], [.5, 1]];
    /// F P Fᵀ = [[8, 2.5], [2.5, 1]]; P = [[16, 8.5], [8.5, 7]].
    /// Update H = [1, 0], z = 9, r = 4: ν = 4, S = 20, K = [.8, .425],
    /// x = [5 + 3.2, 2 + 1.7] = [8.2, 3.7],
    /// P = P − K S Kᵀ = [[16 − 12.8, 8.5 − 6.8], [·, 7 − 3.6125]]
    ///   = [[3.2, 1.7], [1.7, 3.3875]] (the Joseph form agrees for the optimal K).
    #[test]
    fn constant_velocity_step_matches_hand_computation() {
        let mut f = KalmanFilter::new(Vector2::new(1.0, 2.0), Matrix2::new(2.0, 0.5, 0.5, 1.0));
        f.predict(
            &constant_velocity_transition(2.0),
            &constant_velocity_noise(3.0, 2.0),
        );
        close(f.state()[0], 5.0);
        close(f.state()[1], 2.0);
        let p = f.covariance();
        close(p[(0, 0)], 16.0);
        close(p[(0, 1)], 8.5);
        close(p[(1, 0)], 8.5);
        close(p[(1, 1)], 7.0);
        let nu = f.update(&Vector2::new(1.0, 0.0), 9.0, 4.0);
        close(nu.residual, 4.0);
        close(nu.variance, 20.0);
        close(nu.nis(), 0.8);
        close(f.state()[0], 8.2);
        close(f.state()[1], 3.7);
        let p = f.covariance();
        close(p[(0, 0)], 3.2);
        close(p[(0, 1)], 1.7);
        close(p[(1, 0)], 1.7);
        close(p[(1, 1)], 3.3875);
    }

    /// The tracker's constant-velocity start, by hand: x = [1, 0],
    /// P = diag(2, 1); predict dt = 2, q = 3: F P Fᵀ = [[6, 2], [2, 1]],
    /// P = [[14, 8], [8, 7]]. Update z = 9, r = 4: ν = 8, S = 18,
    /// K = [7/9, 4/9], x = [1 + 56/9, 32/9] = [65/9, 32/9],
    /// P = [[14 − 98/9, 8 − 56/9], [·, 7 − 32/9]] = [[28/9, 16/9], [16/9, 31/9]].
    #[test]
    fn constant_velocity_tracker_matches_hand_computation() {
        let model = ProcessModel::ConstantVelocity { q: 3.0 };
        let mut t = Tracker::new(model, 1.0, 2.0, 1.0);
        assert_eq!(t.model(), model);
        t.predict(2.0);
        close(t.value(), 1.0);
        close(t.variance(), 14.0);
        let gate = t.innovation(9.0, 4.0);
        close(gate.residual, 8.0);
        close(gate.variance, 18.0);
        assert_eq!(t.update(9.0, 4.0), gate);
        close(t.value(), 65.0 / 9.0);
        close(t.variance(), 28.0 / 9.0);
        let (rate, rate_variance) = t.rate().unwrap();
        close(rate, 32.0 / 9.0);
        close(rate_variance, 31.0 / 9.0);
    }

    /// A well-observed quantity over many steps: with r a million times
    /// smaller than the prior, the Joseph form keeps P symmetric and positive
    /// and the filter converges to the steady state of the discrete Riccati
    /// equation. For a random walk with Q = q·dt and measurement variance r,
    /// the steady predicted variance solves P² − Q·P − Q·r = 0:
    /// P⁻ = (Q + √(Q² + 4 Q r)) / 2, and P⁺ = P⁻ r / (P⁻ + r).
    #[test]
    fn covariance_stays_positive_and_reaches_steady_state() {
        let (q, r) = (1e-6, 1e-6);
        let mut t = Tracker::new(ProcessModel::ConstantVelocity { q }, 0.0, 1.0, 1.0);
        let mut rw = Tracker::new(ProcessModel::RandomWalk { q }, 0.0, 1.0, 0.0);
        for k in 0..100_000 {
            let z = (k as f64 * 1e-3).sin();
            t.predict(0.1);
            t.update(z, r);
            rw.predict(0.1);
            rw.update(z, r);
        }
        let TrackerFilter::ConstantVelocity(f) = t.filter else {
            unreachable!()
        };
        let p = f.covariance();
        assert!((p[(0, 1)] - p[(1, 0)]).abs() <= 1e-12 * p[(0, 1)].abs().max(1e-300));
        assert!(p[(0, 0)] > 0.0 && p[(1, 1)] > 0.0);
        assert!(p[(0, 0)] * p[(1, 1)] - p[(0, 1)] * p[(1, 0)] > 0.0);

        let qdt = q * 0.1;
        let prior = (qdt + (qdt * qdt + 4.0 * qdt * r).sqrt()) / 2.0;
        close(rw.variance() / (prior * r / (prior + r)), 1.0);
    }

    /// A reading far more precise than the prior: P = 1, r = 1e-20. The true
    /// posterior variance is P r / (P + r) ≈ 1e-20. The gain rounds to 1, so
    /// the short form (1 − K) P gives 0, a filter certain of its value; the
    /// Joseph form keeps the K² r term and gives 1e-20.
    #[test]
    fn joseph_form_keeps_the_variance_of_a_precise_reading() {
        let mut t = Tracker::new(ProcessModel::RandomWalk { q: 0.0 }, 0.0, 1.0, 0.0);
        t.update(5.0, 1e-20);
        close(t.value(), 5.0);
        assert!(
            (t.variance() / 1e-20 - 1.0).abs() < 1e-9,
            "{}",
            t.variance()
        );
    }

    #[test]
    fn zero_time_prediction_changes_nothing() {
        let mut t = Tracker::new(ProcessModel::ConstantVelocity { q: 2.0 }, 3.0, 1.0, 0.5);
        t.update(4.0, 1.0);
        let before = t;
        t.predict(0.0);
        assert_eq!(t, before);
    }

    #[test]
    fn movement_variance_is_the_models_spread_over_a_span() {
        let walk = Tracker::new(ProcessModel::RandomWalk { q: 0.5 }, 1.0, 2.0, 0.0);
        close(walk.movement_variance(4.0), 2.0);
        // Rate 0 with variance 3 at the start: 3·2² + 0.25·2³/3.
        let mut moving = Tracker::new(ProcessModel::ConstantVelocity { q: 0.25 }, 1.0, 2.0, 3.0);
        close(moving.movement_variance(2.0), 12.0 + 2.0 / 3.0);
        // Pin the rate near 2/s: readings 0, 2, 4, ... one second apart, exact.
        for k in 0..200 {
            if k > 0 {
                moving.predict(1.0);
            }
            moving.update(2.0 * k as f64, 1e-9);
        }
        let (rate, variance) = moving.rate().unwrap();
        close(rate, 2.0);
        close(
            moving.movement_variance(5.0),
            (4.0 + variance) * 25.0 + 0.25 * 125.0 / 3.0,
        );
    }
}
