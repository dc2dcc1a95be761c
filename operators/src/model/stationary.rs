//! Long draws that stay where the model's data were: a chain of one-step draws from a Gaussian whose memory of the past leaks by a factor γ ≤ 1 per window, chosen so that the chain is stationary at the model's own variance of a window.
//!
//! Drawing window after window from the one-step predictive of a Gaussian
//! over the state (xₜ; its lags and slow copies zₜ) runs a linear chain:
//! xₜ = μ₀ + B (zₜ − z̄) + L e with B = Σ₀z Σ_zz⁻¹, L Lᵀ = Q the conditional
//! covariance and e ~ N(0, I), where zₜ = M yₜ₋₁ follows from the previous
//! state (the lags shift; each slow copy takes y ← (1 − α) y + α x). Whether
//! that chain stays put is decided by its slowest roots, and a plant whose
//! level persists for minutes (TwinBench's load holds a setpoint for
//! 2–15 min) has them at 1 within the estimate's error: the one-step fit
//! cannot tell "the level stays" from "the level slowly returns". Left as
//! fitted, a draw of half an hour wanders off like a random walk, or grows
//! without bound (TwinBench, seed 11: five times the real spread).
//!
//! The model knows how far a window spreads, though: Σ₀₀. So the chain
//! forgets a little each window: the past it draws from is pulled toward
//! z̄ by γ, z̃ₜ = z̄ + γ (M yₜ₋₁ − z̄), and the new state is (xₜ, z̃ₜ) with
//! xₜ drawn given z̃ₜ. Its transition is γ T (T the fitted chain's), every
//! root scaled by γ, so it is stationary for γ below 1 / (the largest
//! root), and its stationary covariance P(γ) = Σₖ γ²ᵏ Tᵏ W Tᵏᵀ (W holding Q
//! in the block of xₜ) grows with γ in every entry of its diagonal. γ is the
//! largest value ≤ 1 at which the chain keeps, on average over the channels,
//! to the model's variance: mean over i of P_ii / Σ₀₀,ii ≤ 1, found by
//! bisection (P summed by doubling, Smith's method). A γ just below 1
//! leaves the short-range dynamics (the lag-1 coupling, the cross-channel
//! structure) as fitted and reins in the slowest motion only; γ = 1 when the
//! fitted chain keeps to Σ₀₀ already.
//!
//! Damping the pull on the past alone (xₜ = μ₀ + γ B (zₜ − z̄), the slow
//! copies left to their filters) does not do: the slow copies' own
//! dynamics, fed back through large coefficients of opposite signs on
//! nearly collinear lags and filters, stay unstable until γ is so small
//! that the draws barely move.
//!
//! The chain is centred on z̄, the lags and slow copies of a history that
//! held μ₀ throughout, rather than on the fitted μ_z: near a unit root the
//! chain's mean would magnify the small gaps between μ_z and z̄ (windows
//! weighted unequally, slow copies restarted). Centred on z̄ the chain's
//! mean is μ₀ whatever γ.

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use super::Layout;
use super::conditional::{Gaussian, NotPositiveDefinite};

/// Bisection steps for γ (2⁻⁴⁰ ≈ 10⁻¹²).
const BISECTIONS: usize = 40;
/// Doublings of the stationary sum at most: 2⁶⁴ steps of the chain.
const DOUBLINGS: usize = 64;

/// Draws of windows from a Gaussian over a layout's state, one after the
/// other, by the leaky chain (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct StationaryDraws {
    gamma: f64,
    /// μ₀, the model's mean of a window.
    mean: DVector<f64>,
    /// z̄: the lags and slow copies of a history that held μ₀ throughout.
    anchor: DVector<f64>,
    /// B.
    regression: DMatrix<f64>,
    /// M: zₜ from yₜ₋₁.
    past: DMatrix<f64>,
    /// L.
    factor: DMatrix<f64>,
    /// A square root of P(γ).
    stationary_factor: DMatrix<f64>,
}

impl StationaryDraws {
    pub fn new(joint: &Gaussian, layout: &Layout) -> Result<Self, NotPositiveDefinite> {
        let chain = Chain::of(joint, layout)?;
        let gamma = chain.damping();
        let stationary = chain.stationary(gamma).ok_or(NotPositiveDefinite)?;
        // P is positive semi-definite (a window's lags are its own past): its
        // square root V √Λ, rounding below zero clipped.
        let eigen = stationary.symmetric_eigen();
        let roots = eigen.eigenvalues.map(|l| l.max(0.0).sqrt());
        let stationary_factor = &eigen.eigenvectors * DMatrix::from_diagonal(&roots);
        let c = layout.channel_count();
        let mean = DVector::from_fn(c, |i, _| joint.mean[i]);
        let anchor = DVector::from_fn(layout.state_len() - c, |i, _| {
            mean[layout.state_channel(c + i)]
        });
        let factor = chain
            .innovation
            .clone()
            .cholesky()
            .ok_or(NotPositiveDefinite)?
            .l();
        Ok(StationaryDraws {
            gamma,
            mean,
            anchor,
            regression: chain.regression,
            past: chain.past,
            factor,
            stationary_factor,
        })
    }

    /// The leak γ.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// A state drawn from the chain's stationary distribution, N((μ₀, z̄), P):
    /// where a long draw would be.
    pub fn stationary_state(&self, rng: &mut dyn Rng) -> Vec<f64> {
        let e = DVector::from_fn(self.stationary_factor.ncols(), |_, _| {
            StandardNormal.sample(&mut *rng)
        });
        let deviation = &self.stationary_factor * e;
        self.mean
            .iter()
            .chain(self.anchor.iter())
            .zip(deviation.iter())
            .map(|(m, d)| m + d)
            .collect()
    }

    /// A history's state for the chain, what was not observed taken at the
    /// model's mean (μ₀, z̄).
    pub fn state_of(&self, state: &[Option<f64>]) -> Vec<f64> {
        self.mean
            .iter()
            .chain(self.anchor.iter())
            .zip(state)
            .map(|(m, v)| v.unwrap_or(*m))
            .collect()
    }

    /// zₜ = M yₜ₋₁: the lags and slow copies after the window of `state`,
    /// before any leak (what a [`super::History`] would hold).
    pub fn past_of(&self, state: &[f64]) -> Vec<f64> {
        (&self.past * DVector::from_column_slice(state))
            .iter()
            .copied()
            .collect()
    }

    /// The next state: `past` (from [`StationaryDraws::past_of`]) leaked
    /// toward z̄, and a window drawn given it. Its first channels are the
    /// window.
    pub fn draw(&self, rng: &mut dyn Rng, past: &[f64]) -> Vec<f64> {
        let leaked = DVector::from_column_slice(past)
            .zip_map(&self.anchor, |z, anchor| anchor + self.gamma * (z - anchor));
        let e = DVector::from_fn(self.mean.len(), |_, _| StandardNormal.sample(&mut *rng));
        let window = &self.mean + &self.regression * (&leaked - &self.anchor) + &self.factor * e;
        window.iter().chain(leaked.iter()).copied().collect()
    }
}

/// The fitted chain (see the module doc): xₜ = μ₀ + B (zₜ − z̄) + e, zₜ = M yₜ₋₁.
struct Chain {
    /// Channels of a window.
    channels: usize,
    /// B = Σ₀z Σ_zz⁻¹.
    regression: DMatrix<f64>,
    /// M.
    past: DMatrix<f64>,
    /// Q, the innovation's covariance.
    innovation: DMatrix<f64>,
    /// Σ₀₀'s diagonal.
    variances: Vec<f64>,
    /// T over the whole state.
    transition: DMatrix<f64>,
    /// T's largest root, in modulus.
    radius: f64,
}

impl Chain {
    fn of(joint: &Gaussian, layout: &Layout) -> Result<Self, NotPositiveDefinite> {
        let c = layout.channel_count();
        let d = layout.state_len();
        let z: Vec<usize> = (c..d).collect();
        let window: Vec<usize> = (0..c).collect();
        let z0 = DMatrix::from_fn(z.len(), c, |i, j| joint.covariance[(z[i], j)]);
        // B = Σ₀z Σ_zz⁻¹, by Cholesky: Bᵀ = Σ_zz⁻¹ Σ_z0.
        let regression = joint
            .marginal(&z)
            .covariance
            .cholesky()
            .ok_or(NotPositiveDefinite)?
            .solve(&z0)
            .transpose();
        let innovation = joint
            .condition(&z, &vec![0.0; z.len()], &window)?
            .covariance;
        let mut past = DMatrix::zeros(z.len(), d);
        let lagged = c * (layout.lags() + 1);
        for i in 0..lagged - c {
            past[(i, i)] = 1.0;
        }
        for (k, s) in layout.smoothed().iter().enumerate() {
            let alpha = 1.0 - (-1.0 / s.windows).exp();
            past[(lagged - c + k, lagged + k)] = 1.0 - alpha;
            past[(lagged - c + k, s.channel)] += alpha;
        }
        let mut transition = DMatrix::zeros(d, d);
        transition.rows_mut(0, c).copy_from(&(&regression * &past));
        transition.rows_mut(c, d - c).copy_from(&past);
        let radius = transition
            .complex_eigenvalues()
            .iter()
            .map(|l| l.norm())
            .fold(0.0, f64::max);
        Ok(Chain {
            channels: c,
            regression,
            past,
            innovation,
            variances: (0..c).map(|i| joint.covariance[(i, i)]).collect(),
            transition,
            radius,
        })
    }

    /// The largest γ ≤ 1 whose chain keeps to the model's variance.
    fn damping(&self) -> f64 {
        if self.variance_ratio(1.0) <= 1.0 {
            return 1.0;
        }
        let (mut low, mut high) = (0.0, 1.0f64.min(1.0 / self.radius));
        for _ in 0..BISECTIONS {
            let middle = 0.5 * (low + high);
            if self.variance_ratio(middle) <= 1.0 {
                low = middle;
            } else {
                high = middle;
            }
        }
        low
    }

    /// The mean over channels of P_ii / Σ₀₀,ii for the chain leaking by
    /// `gamma`; infinite when it is not stationary.
    fn variance_ratio(&self, gamma: f64) -> f64 {
        let c = self.channels;
        self.stationary(gamma).map_or(f64::INFINITY, |p| {
            (0..c).map(|i| p[(i, i)] / self.variances[i]).sum::<f64>() / c as f64
        })
    }

    /// P(γ), the stationary covariance of the state under γ T; `None` when
    /// γ T has a root on or outside the unit circle.
    fn stationary(&self, gamma: f64) -> Option<DMatrix<f64>> {
        if gamma * self.radius >= 1.0 {
            return None;
        }
        let c = self.channels;
        let d = self.transition.ncols();
        let mut sum = DMatrix::zeros(d, d);
        sum.view_mut((0, 0), (c, c)).copy_from(&self.innovation);
        // Σₖ Aᵏ W Aᵏᵀ by doubling: S ← S + A S Aᵀ, A ← A². (A chain over lags
        // and filters is far from normal: its powers may grow a long way
        // before they shrink, so only the roots tell whether it is stable.)
        let mut power = &self.transition * gamma;
        for _ in 0..DOUBLINGS {
            sum += &power * &sum * power.transpose();
            power = &power * &power;
            if !sum.iter().all(|v| v.is_finite()) {
                return None;
            }
            if power.abs().max() < 1e-12 {
                return Some(sum);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    use super::*;
    use crate::model::{Channel, Smoothed};

    fn one_channel(lags: usize) -> Layout {
        let channels = vec![Channel {
            index: 0,
            name: "x".into(),
        }];
        Layout::new(channels, lags).unwrap()
    }

    /// The joint of (xₜ, xₜ₋₁), means 5, variances `v0` and `v1`,
    /// covariance `c`.
    fn pair(v0: f64, v1: f64, c: f64) -> Gaussian {
        Gaussian::new(
            DVector::from_vec(vec![5.0, 5.0]),
            DMatrix::from_row_slice(2, 2, &[v0, c, c, v1]),
        )
    }

    #[test]
    fn a_consistent_stationary_chain_is_left_alone() {
        // Var x = 1, φ = 0.9: the chain's variance is Q / (1 − φ²) = 0.19 / 0.19 = 1.
        let chain = Chain::of(&pair(1.0, 1.0, 0.9), &one_channel(1)).unwrap();
        assert!((chain.variance_ratio(1.0) - 1.0).abs() < 1e-9);
        // Leaking by γ: the state (x, lag) moves by γ T, so x by γφ,
        // variance 0.19 / (1 − γ²φ²).
        let expected = 0.19 / (1.0 - 0.25 * 0.81);
        assert!((chain.variance_ratio(0.5) - expected).abs() < 1e-9);
        assert_eq!(chain.damping(), 1.0);
    }

    #[test]
    fn a_chain_that_wanders_leaks_down_to_the_models_variance() {
        // xₜ₋₁ explains 0.9999² of xₜ's unit variance, but Var xₜ = 1.001:
        // a joint that is not quite a chain's, and Q / (1 − φ²) > Var xₜ.
        // The leak solves Q / (1 − γ²φ²) = 1.001.
        let phi: f64 = 0.9999;
        let joint = pair(1.001, 1.0, phi);
        let q = 1.001 - phi * phi;
        let chain = Chain::of(&joint, &one_channel(1)).unwrap();
        let gamma = chain.damping();
        let expected = ((1.001 - q) / 1.001).sqrt() / phi;
        assert!(
            (gamma - expected).abs() < 1e-9,
            "γ {gamma} against {expected}"
        );
        // An explosive fit (φ > 1) leaks below 1 too.
        let explosive = Chain::of(&pair(1.2, 1.0, 1.01), &one_channel(1)).unwrap();
        assert!(explosive.variance_ratio(1.0).is_infinite());
        let gamma = explosive.damping();
        assert!((explosive.variance_ratio(gamma) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn slow_copies_enter_the_chain_as_filters_of_the_draws() {
        // xₜ regressed on its slow copy alone (no lags): the state is
        // (xₜ, yₜ) with yₜ = (1 − α) yₜ₋₁ + α xₜ₋₁.
        let layout = one_channel(0)
            .with_smoothed(vec![Smoothed {
                channel: 0,
                windows: 10.0,
            }])
            .unwrap();
        let joint = Gaussian::new(
            DVector::from_vec(vec![0.0, 0.0]),
            DMatrix::from_row_slice(2, 2, &[1.0, 0.5, 0.5, 0.5]),
        );
        let chain = Chain::of(&joint, &layout).unwrap();
        let alpha = 1.0 - (-0.1f64).exp();
        // B = 0.5 / 0.5 = 1, Q = 1 − 0.5 = 0.5; z = y follows (x, y) by (α, 1 − α).
        assert!((chain.regression[(0, 0)] - 1.0).abs() < 1e-12);
        assert!((chain.innovation[(0, 0)] - 0.5).abs() < 1e-12);
        assert_eq!(chain.past.as_slice(), &[alpha, 1.0 - alpha]);
        // T = [[α, 1 − α], [α, 1 − α]]: its rows sum to 1, a unit root.
        assert!((chain.radius - 1.0).abs() < 1e-12);
        assert!(chain.variance_ratio(1.0).is_infinite());
        let gamma = chain.damping();
        assert!(gamma < 1.0 && (chain.variance_ratio(gamma) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn long_draws_keep_the_models_mean_and_variance() {
        // The wandering chain above, drawn for a long while from its
        // stationary distribution: mean 5 and variance 1.001.
        let draws = StationaryDraws::new(&pair(1.001, 1.0, 0.9999), &one_channel(1)).unwrap();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let mut state = draws.stationary_state(&mut rng);
        let n = 400_000;
        let xs: Vec<f64> = (0..n)
            .map(|_| {
                state = draws.draw(&mut rng, &draws.past_of(&state));
                state[0]
            })
            .collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let variance = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        // The leaked chain's time constant is about 1 / (1 − γφ) ≈ 700
        // windows: some 600 of them in the draw.
        assert!((mean - 5.0).abs() < 0.1, "mean {mean}");
        assert!((variance / 1.001 - 1.0).abs() < 0.1, "variance {variance}");
        assert_eq!(draws.state_of(&[None, Some(4.0)]), [5.0, 4.0]);
    }
}
