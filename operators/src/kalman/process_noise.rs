//! Process noise estimated from data: q of a random walk or of constant velocity, from a series measured with known variance.
//!
//! The series z₀, z₁, … is measured every `dt` seconds with measurement
//! variance `r` (independent errors). Differencing removes the unknown level
//! (and, the second time, the unknown rate), leaving process and measurement
//! noise of known shape:
//!
//! - **Random walk**, x_k = x_{k−1} + w_k with Var w = q·dt:
//!   z_k − z_{k−1} = w_k + v_k − v_{k−1}, so Var = q·dt + 2r.
//! - **Constant velocity** with white-noise acceleration of density q: the
//!   second difference of the true value is ∫ K(s) a(s) ds with the triangle
//!   kernel K rising from 0 to dt over [t_{k−1}, t_k] and falling back to 0
//!   over [t_k, t_{k+1}], so its variance is q ∫ K² = 2q·dt³/3. With the
//!   measurement errors v_{k+1} − 2v_k + v_{k−1}:
//!   Var(z_{k+1} − 2z_k + z_{k−1}) = (2/3)·q·dt³ + 6r.
//!
//! The variance of the differences is estimated robustly, as
//! (1.4826 · MAD)², the median absolute deviation from the median scaled to
//! the standard deviation of a normal: a fault, a spike or a stuck stretch in
//! a few percent of the readings barely moves it, where it would dominate a
//! mean of squares. q is then solved for and clamped at 0 (a series smoother
//! than its measurement noise allows gives 0, not a negative variance).

/// Scales the median absolute deviation of normal data to its standard deviation.
const MAD_TO_SIGMA: f64 = 1.482_602_218_505_602;

/// Fewest differences an estimate is made from.
pub const MIN_DIFFERENCES: usize = 3;

/// Why process noise could not be estimated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EstimateError {
    /// The series is too short for `needed` values.
    TooFewValues { needed: usize, got: usize },
    /// The value at `index` is NaN or infinite.
    NotFinite { index: usize },
    /// `dt` must be positive and finite, `r` non-negative and finite.
    InvalidArgument { name: &'static str, value: f64 },
}

impl std::fmt::Display for EstimateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EstimateError::TooFewValues { needed, got } => write!(
                f,
                "estimating process noise needs at least {needed} values, got {got}"
            ),
            EstimateError::NotFinite { index } => {
                write!(f, "value {index} of the series is not finite")
            }
            EstimateError::InvalidArgument { name, value } => {
                write!(f, "invalid {name} for estimating process noise: {value}")
            }
        }
    }
}

impl std::error::Error for EstimateError {}

/// q (units²/s) of a random walk measured every `dt` seconds with
/// measurement variance `r`: max(0, V − 2r)/dt, V the robust variance of the
/// first differences (see the module doc).
pub fn estimate_q_random_walk(z: &[f64], r: f64, dt: f64) -> Result<f64, EstimateError> {
    check(z, r, dt, 1)?;
    let differences = z.windows(2).map(|w| w[1] - w[0]).collect();
    Ok((robust_variance(differences) - 2.0 * r).max(0.0) / dt)
}

/// q (units²/s³, white-noise acceleration) of a constant-velocity process
/// measured every `dt` seconds with measurement variance `r`:
/// max(0, V − 6r) / (2 dt³/3), V the robust variance of the second
/// differences (see the module doc).
pub fn estimate_q_constant_velocity(z: &[f64], r: f64, dt: f64) -> Result<f64, EstimateError> {
    check(z, r, dt, 2)?;
    let differences = z.windows(3).map(|w| w[2] - 2.0 * w[1] + w[0]).collect();
    Ok((robust_variance(differences) - 6.0 * r).max(0.0) / (2.0 * dt * dt * dt / 3.0))
}

/// Checks the arguments of an estimate from differences of `order`.
fn check(z: &[f64], r: f64, dt: f64, order: usize) -> Result<(), EstimateError> {
    if !(dt > 0.0 && dt.is_finite()) {
        return Err(EstimateError::InvalidArgument {
            name: "dt",
            value: dt,
        });
    }
    if !(r >= 0.0 && r.is_finite()) {
        return Err(EstimateError::InvalidArgument {
            name: "r",
            value: r,
        });
    }
    if let Some(index) = z.iter().position(|v| !v.is_finite()) {
        return Err(EstimateError::NotFinite { index });
    }
    let needed = MIN_DIFFERENCES + order;
    if z.len() < needed {
        return Err(EstimateError::TooFewValues {
            needed,
            got: z.len(),
        });
    }
    Ok(())
}

/// (1.4826 · median |x − median x|)².
fn robust_variance(mut values: Vec<f64>) -> f64 {
    let centre = median(&mut values);
    for v in &mut values {
        *v = (*v - centre).abs();
    }
    let sigma = MAD_TO_SIGMA * median(&mut values);
    sigma * sigma
}

/// The median of finite values (the mean of the middle two for an even count).
fn median(values: &mut [f64]) -> f64 {
    let n = values.len();
    let (below, middle, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    let upper = *middle;
    if n % 2 == 1 {
        upper
    } else {
        let lower = below.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower + upper) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_distr::StandardNormal;
    use rand_xoshiro::Xoshiro256PlusPlus;

    const STEPS: usize = 20_000;

    /// A random walk with Var w = q·dt per step, measured with variance r.
    fn random_walk(q: f64, r: f64, dt: f64, seed: u64) -> Vec<f64> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut x = 20.0;
        (0..STEPS)
            .map(|_| {
                x += (q * dt).sqrt() * rng.sample::<f64, _>(StandardNormal);
                x + r.sqrt() * rng.sample::<f64, _>(StandardNormal)
            })
            .collect()
    }

    /// Constant velocity driven by white-noise acceleration of density q,
    /// simulated independently of the estimator's algebra: 50 sub-steps per
    /// dt, each with a constant acceleration of variance q/h integrated
    /// exactly; measured every dt with variance r.
    fn constant_velocity(q: f64, r: f64, dt: f64, seed: u64) -> Vec<f64> {
        const SUBSTEPS: usize = 50;
        let h = dt / SUBSTEPS as f64;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let (mut x, mut v) = (5.0, 0.3);
        (0..STEPS)
            .map(|_| {
                for _ in 0..SUBSTEPS {
                    let a = (q / h).sqrt() * rng.sample::<f64, _>(StandardNormal);
                    x += v * h + a * h * h / 2.0;
                    v += a * h;
                }
                x + r.sqrt() * rng.sample::<f64, _>(StandardNormal)
            })
            .collect()
    }

    /// Replaces every 100th reading by a gross fault (+50).
    fn with_spikes(mut z: Vec<f64>) -> Vec<f64> {
        for v in z.iter_mut().step_by(100) {
            *v += 50.0;
        }
        z
    }

    /// Tolerances: the MAD-based σ of n normal values has a relative standard
    /// error of about 1.17/√n (0.8 % at n = 20 000), 1.7 % on the variance V;
    /// q carries that times V/(V − measurement part), about 1.2 for both
    /// series below: 2.1 %. The clean checks allow a little over three of
    /// those. A spike corrupts two first differences (2 % of them) or three
    /// second differences (3 %), which widens the MAD by about 2.5 % or 3.8 %
    /// (5 % or 7.7 % on V, 6 % or 9.5 % on q); the faulted checks allow that
    /// on top.
    #[test]
    fn random_walk_estimate_lands_near_the_true_q() {
        let (q, r, dt) = (0.09, 0.005, 0.5);
        for seed in [1, 2, 3] {
            let z = random_walk(q, r, dt, seed);
            let estimate = estimate_q_random_walk(&z, r, dt).unwrap();
            assert!((estimate / q - 1.0).abs() < 0.07, "seed {seed}: {estimate}");

            let faulty = with_spikes(z);
            let estimate = estimate_q_random_walk(&faulty, r, dt).unwrap();
            assert!((estimate / q - 1.0).abs() < 0.13, "seed {seed}: {estimate}");
            // A mean of squares would be thrown far off by the same faults.
            let mean_square = faulty
                .windows(2)
                .map(|w| (w[1] - w[0]).powi(2))
                .sum::<f64>()
                / (faulty.len() - 1) as f64;
            assert!((mean_square - 2.0 * r) / dt > 100.0 * q);
        }
    }

    #[test]
    fn constant_velocity_estimate_lands_near_the_true_q() {
        let (q, r, dt) = (0.02, 0.0005, 1.0);
        for seed in [4, 5, 6] {
            let z = constant_velocity(q, r, dt, seed);
            let estimate = estimate_q_constant_velocity(&z, r, dt).unwrap();
            assert!((estimate / q - 1.0).abs() < 0.07, "seed {seed}: {estimate}");

            let estimate = estimate_q_constant_velocity(&with_spikes(z), r, dt).unwrap();
            assert!((estimate / q - 1.0).abs() < 0.17, "seed {seed}: {estimate}");
        }
    }

    /// A series of measurement noise alone (q = 0) gives close to 0 under
    /// both models, never less.
    #[test]
    fn noise_alone_gives_almost_no_process_noise() {
        let r: f64 = 0.04;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
        let z: Vec<f64> = (0..STEPS)
            .map(|_| 7.0 + r.sqrt() * rng.sample::<f64, _>(StandardNormal))
            .collect();
        // The estimates' standard errors are about 2 % of 2r/dt and 6r/(2/3 dt³).
        assert!(estimate_q_random_walk(&z, r, 1.0).unwrap() < 0.06 * 2.0 * r);
        assert!(estimate_q_constant_velocity(&z, r, 1.0).unwrap() < 0.06 * 9.0 * r);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        // MAD of [1, 2, 3, 4, 100]: median 3, deviations [2, 1, 0, 1, 97] → 1.
        let v = robust_variance(vec![1.0, 2.0, 3.0, 4.0, 100.0]);
        assert!((v - MAD_TO_SIGMA * MAD_TO_SIGMA).abs() < 1e-15);
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let z = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(
            estimate_q_random_walk(&z[..3], 0.1, 1.0),
            Err(EstimateError::TooFewValues { needed: 4, got: 3 })
        );
        assert_eq!(
            estimate_q_constant_velocity(&z[..4], 0.1, 1.0),
            Err(EstimateError::TooFewValues { needed: 5, got: 4 })
        );
        assert_eq!(
            estimate_q_random_walk(&[1.0, f64::NAN, 2.0, 3.0], 0.1, 1.0),
            Err(EstimateError::NotFinite { index: 1 })
        );
        assert!(matches!(
            estimate_q_random_walk(&z, -1.0, 1.0),
            Err(EstimateError::InvalidArgument { name: "r", .. })
        ));
        assert!(matches!(
            estimate_q_constant_velocity(&z, 0.1, 0.0),
            Err(EstimateError::InvalidArgument { name: "dt", .. })
        ));
        let message = estimate_q_random_walk(&z[..2], 0.1, 1.0)
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "estimating process noise needs at least 4 values, got 2"
        );
    }
}
