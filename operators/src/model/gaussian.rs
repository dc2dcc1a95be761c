//! The online conditional Gaussian: one multivariate normal over an asset's channels and their lags, its mean and covariance kept window by window, shrunk toward the diagonal, conditioned exactly.
//!
//! # Online estimate
//! Each absorbed state x (the channels at t, t−1, …, t−L) updates a weighted
//! mean μ and scatter S (West's weighted form of Welford's algorithm: stable,
//! no sums of squares). Before each window the old weights are multiplied by
//! the decay λ = 2^(−1/h) for a half-life of h windows, so a window h windows
//! old counts half: the model follows slow change (wear, seasons) while load
//! cycles, minutes long, stay well inside its memory. With h = ∞ it is the
//! plain sample mean and covariance. With W = Σ wᵢ and W₂ = Σ wᵢ², the
//! covariance is S / (W − W₂/W), unbiased for these weights (n − 1 when all
//! weights are 1), and the effective sample size is n = W²/W₂.
//!
//! # Missing values
//! A state with everything observed is absorbed as it is. Once the model has
//! absorbed as many windows as the state is long, a state with some values
//! missing is absorbed by its expectation under the model (one online EM
//! step): the missing values are replaced by their conditional mean given
//! the observed ones, and their conditional covariance is added to the
//! scatter, so a channel that is gone for a while neither loses nor invents
//! variance. Before that, such states are skipped: an early model would
//! only feed its own guesses back. A window with nothing observed at t is
//! skipped. The caller leaves out values it does not trust (a suspect
//! sensor's), which the model then treats as missing.
//!
//! # Shrinkage
//! With few windows (or many lags) the sample covariance is noisy and nearly
//! singular. The covariance used keeps its diagonal and shrinks each
//! covariance off the diagonal toward 0 (Schäfer and Strimmer's target "D":
//! diagonal, unequal variances), by a fixed factor 1 − ρ, or adaptively:
//! the pair's own Schäfer–Strimmer intensity ρᵢⱼ = Var(r̂ᵢⱼ) / r̂ᵢⱼ² (at most
//! 1), with the sample correlation's variance taken at its Gaussian value
//! (1 − r̂ᵢⱼ²)²/n, which needs no fourth moments (an online estimate keeps
//! none), floored at 1/n³: with a handful of windows every sample
//! correlation is near ±1 by chance, and the floor keeps them from passing
//! for exact; it falls fast enough not to blur the closest couplings after
//! a few hundred windows (at 1/n², a coupling leaving 3·10⁻⁶ of a channel's
//! variance unexplained still had that raised by 70 % after 1000 windows).
//! Per pair, because a shrunk coupling
//! adds about 2ρ of a channel's variance to its conditional variance:
//! channels that follow each other closely (current and load, r ≈ 0.99999)
//! keep their coupling from the first minutes on, while pairs that barely
//! follow each other are cut to nothing until the data show otherwise. One
//! intensity for all pairs (their pooled estimate Σ Var / Σ r̂²) would be
//! set by the weak pairs and blur the close ones. Pairs shrunk separately
//! can make the matrix indefinite; then the pooled intensity is used, which
//! cannot. Every intensity falls as 1/n, and the estimate tends to the
//! sample covariance. A variance is floored at 10⁻¹² of (1 + μᵢ²), so a
//! stuck channel does not make the covariance singular.

use std::path::Path;

use nalgebra::{DMatrix, DVector};
use rand::Rng;

use super::conditional::{Gaussian, NotPositiveDefinite};
use super::stationary::StationaryDraws;
use super::store::{self, Manifest, Tensor};
use super::{
    AssetModel, ChannelSurprise, History, Layout, LogLikelihood, ModelError, ModelKind, Prediction,
};

/// A variance's floor, relative to 1 + its channel's mean squared.
const VARIANCE_FLOOR: f64 = 1e-12;
/// Windows per state dimension after which the joint is worked out again
/// only every [`GaussianOptions::refresh_every`] windows.
const SETTLED_PER_DIMENSION: u64 = 20;

/// How the covariance is shrunk toward its diagonal (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shrinkage {
    /// Schäfer–Strimmer's intensity per pair, with the Gaussian variance of a sample correlation.
    Adaptive,
    /// Off-diagonal covariances multiplied by 1 − this, in [0, 1].
    Fixed(f64),
}

/// The choices of an [`OnlineGaussian`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaussianOptions {
    /// Windows after which a window's weight has halved; `f64::INFINITY`
    /// forgets nothing.
    pub half_life: f64,
    pub shrinkage: Shrinkage,
    /// Once the model has learnt from 20 windows per state dimension, the
    /// mean and shrunk covariance it predicts with are worked out again
    /// every this many windows rather than after each (1: after each). Its
    /// predictions then lag the windows it learnt by fewer than this many,
    /// and a saved model is read back as of its last window. Not saved.
    pub refresh_every: u64,
}

impl Default for GaussianOptions {
    /// A half-life of 3600 windows (an hour of 1 s windows), adaptive shrinkage.
    fn default() -> Self {
        GaussianOptions {
            half_life: 3600.0,
            shrinkage: Shrinkage::Adaptive,
            refresh_every: 1,
        }
    }
}

/// A multivariate Gaussian over a [`Layout`]'s state, learnt online (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineGaussian {
    layout: Layout,
    options: GaussianOptions,
    /// λ = 2^(−1/half_life).
    decay: f64,
    mean: DVector<f64>,
    /// Σ wᵢ (xᵢ − μ)(xᵢ − μ)ᵀ.
    scatter: DMatrix<f64>,
    /// W = Σ wᵢ and W₂ = Σ wᵢ².
    weight: f64,
    weight_squared: f64,
    absorbed: u64,
    /// The mean and shrunk covariance, recomputed by each update.
    joint: Result<Gaussian, ModelError>,
}

/// A state ready to learn from: every value, the missing ones filled in
/// (their coordinates and conditional covariance kept).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Completed {
    pub(super) x: DVector<f64>,
    pub(super) missing: Vec<usize>,
    pub(super) covariance: DMatrix<f64>,
}

impl OnlineGaussian {
    /// A model that has learnt nothing yet. Panics on a half-life that is
    /// not positive or a fixed intensity outside [0, 1].
    pub fn new(layout: Layout, options: GaussianOptions) -> Self {
        assert!(
            options.half_life > 0.0,
            "the half-life must be positive, got {}",
            options.half_life
        );
        if let Shrinkage::Fixed(rho) = options.shrinkage {
            assert!(
                (0.0..=1.0).contains(&rho),
                "a shrinkage intensity is in [0, 1], got {rho}"
            );
        }
        let d = layout.state_len();
        OnlineGaussian {
            layout,
            options,
            decay: 0.5f64.powf(1.0 / options.half_life),
            mean: DVector::zeros(d),
            scatter: DMatrix::zeros(d, d),
            weight: 0.0,
            weight_squared: 0.0,
            absorbed: 0,
            joint: Err(ModelError::NotReady {
                absorbed: 0,
                needed: 2,
            }),
        }
    }

    pub fn options(&self) -> GaussianOptions {
        self.options
    }

    /// How many windows it has learnt from.
    pub fn absorbed(&self) -> u64 {
        self.absorbed
    }

    /// W = Σ wᵢ: the decayed weight of every window learnt (in a mixture,
    /// the component's share of the windows, its mixing weight unnormalised).
    pub fn weight(&self) -> f64 {
        self.weight
    }

    /// W²/W₂: how many equally weighted windows its estimate is worth.
    pub fn effective_samples(&self) -> f64 {
        if self.weight_squared > 0.0 {
            self.weight * self.weight / self.weight_squared
        } else {
            0.0
        }
    }

    /// The weighted mean of the state (see [`Layout`] for its order).
    pub fn mean(&self) -> &DVector<f64> {
        &self.mean
    }

    /// The weighted sample covariance of the state, not shrunk; `None`
    /// before two windows.
    pub fn sample_covariance(&self) -> Option<DMatrix<f64>> {
        let denominator = self.weight - self.weight_squared / self.weight;
        (self.absorbed >= 2 && denominator > 0.0).then(|| &self.scatter / denominator)
    }

    /// The distribution the model predicts with: the mean and the shrunk
    /// covariance of the state, as of the last update.
    pub fn joint(&self) -> Result<&Gaussian, ModelError> {
        self.joint.as_ref().map_err(Clone::clone)
    }

    /// The mean and the shrunk covariance (see the module doc).
    fn shrunk(&self) -> Result<Gaussian, ModelError> {
        let sample = self.sample_covariance().ok_or(ModelError::NotReady {
            absorbed: self.absorbed,
            needed: 2,
        })?;
        let d = self.mean.len();
        let variances: Vec<f64> = (0..d)
            .map(|i| {
                let floor = VARIANCE_FLOOR * (1.0 + self.mean[i] * self.mean[i]);
                sample[(i, i)].max(floor)
            })
            .collect();
        let shrink = |intensity: &dyn Fn(usize, usize) -> f64| {
            let covariance = DMatrix::from_fn(d, d, |i, j| {
                if i == j {
                    variances[i]
                } else {
                    (1.0 - intensity(i, j)) * sample[(i, j)]
                }
            });
            Gaussian::new(self.mean.clone(), covariance)
        };
        let rho = match self.options.shrinkage {
            Shrinkage::Fixed(rho) => return Ok(shrink(&|_, _| rho)),
            Shrinkage::Adaptive => {
                let n = self.effective_samples();
                let squared_correlation =
                    |i: usize, j: usize| sample[(i, j)].powi(2) / (variances[i] * variances[j]);
                // A sample correlation's variance at its Gaussian value, floored at 1/n³.
                let variance = |r2: f64| (1.0 - r2).powi(2) / n + 1.0 / (n * n * n);
                let per_pair = shrink(&|i, j| {
                    let r2 = squared_correlation(i, j);
                    (variance(r2) / r2).min(1.0)
                });
                if per_pair.covariance.clone().cholesky().is_some() {
                    return Ok(per_pair);
                }
                let (mut spread, mut strength) = (0.0, 0.0);
                for i in 0..d {
                    for j in 0..i {
                        let r2 = squared_correlation(i, j);
                        spread += variance(r2);
                        strength += r2;
                    }
                }
                (spread / strength).min(1.0)
            }
        };
        Ok(shrink(&|_, _| rho))
    }

    /// The state of the newest window made ready to learn from (see the
    /// module doc): as it is when complete; else, once the model has
    /// absorbed as many windows as the state is long, with the missing
    /// values filled in by their conditional mean given the observed ones;
    /// `None` when it cannot be learnt from yet.
    pub(super) fn complete(&self, state: &[Option<f64>]) -> Option<Completed> {
        let (given, missing): (Vec<usize>, Vec<usize>) =
            (0..state.len()).partition(|&i| state[i].is_some());
        let values: Vec<f64> = given.iter().map(|&i| state[i].unwrap()).collect();
        if missing.is_empty() {
            return Some(Completed {
                x: DVector::from_vec(values),
                missing,
                covariance: DMatrix::zeros(0, 0),
            });
        }
        if self.absorbed < state.len() as u64 {
            return None;
        }
        let filled = self
            .joint()
            .ok()?
            .condition(&given, &values, &missing)
            .ok()?;
        let mut x = DVector::zeros(state.len());
        for (&i, &v) in given.iter().zip(&values) {
            x[i] = v;
        }
        for (k, &i) in missing.iter().enumerate() {
            x[i] = filled.mean[k];
        }
        Some(Completed {
            x,
            missing,
            covariance: filled.covariance,
        })
    }

    /// Adds one completed state with weight `w` (1 for the online Gaussian,
    /// a responsibility in a mixture). With W' = λW + w and δ = x − μ:
    /// μ' = μ + (w / W') δ and S' = λ S + (λW w / W') (δ δᵀ + C), where C
    /// is the filled values' conditional covariance (0 elsewhere), so the
    /// scatter gains the expected outer product. With w = 0 the old
    /// windows only fade.
    pub(super) fn absorb(&mut self, completed: &Completed, w: f64) {
        debug_assert!(w >= 0.0, "a window's weight is not negative");
        let old = self.decay * self.weight;
        self.decay_weights(w);
        if w > 0.0 {
            let weight = self.weight;
            let delta = &completed.x - &self.mean;
            self.mean.axpy(w / weight, &delta, 1.0);
            let share = old * w / weight;
            self.scatter.ger(share, &delta, &delta, 1.0);
            for (a, &i) in completed.missing.iter().enumerate() {
                for (b, &j) in completed.missing.iter().enumerate() {
                    self.scatter[(i, j)] += share * completed.covariance[(a, b)];
                }
            }
            self.absorbed += 1;
        }
        // A window moves a well-learnt estimate by about 1/n: once the model
        // has seen many windows, working the shrunk covariance out again
        // (a d × d matrix and its factorisation) every few windows is
        // enough, and was the model's largest cost in the dataflow.
        let settled = self.absorbed >= SETTLED_PER_DIMENSION * self.mean.len() as u64;
        if !settled
            || self
                .absorbed
                .is_multiple_of(self.options.refresh_every.max(1))
        {
            self.joint = self.shrunk();
        }
    }

    /// The same mean and covariance, counted from now on as `windows`
    /// equally weighted windows and forgotten with half-life `half_life`:
    /// how much a model trained elsewhere (e.g. pooled over a plant's assets)
    /// weighs against what an asset then teaches it online. Panics on a
    /// count below 2 or a half-life that is not positive.
    pub fn reweighted(mut self, windows: f64, half_life: f64) -> Self {
        assert!(
            windows >= 2.0,
            "a model is worth at least 2 windows, got {windows}"
        );
        assert!(
            half_life > 0.0,
            "the half-life must be positive, got {half_life}"
        );
        if let Some(covariance) = self.sample_covariance() {
            self.scatter = covariance * (windows - 1.0);
            self.weight = windows;
            self.weight_squared = windows;
        }
        self.options.half_life = half_life;
        self.decay = 0.5f64.powf(1.0 / half_life);
        self.joint = self.shrunk();
        self
    }

    /// A window that is not this model's: the old windows fade, as they
    /// would by [`OnlineGaussian::absorb`] with a weight of 0.
    pub(super) fn fade(&mut self) {
        self.decay_weights(0.0);
        self.joint = self.shrunk();
    }

    /// W ← λW + w, W₂ ← λ²W₂ + w², S ← λS.
    fn decay_weights(&mut self, w: f64) {
        self.scatter *= self.decay;
        self.weight_squared = self.decay * self.decay * self.weight_squared + w * w;
        self.weight = self.decay * self.weight + w;
    }

    /// The model saved in `dir`, which must be an online Gaussian.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let manifest = store::read_manifest(dir)?;
        Self::load_with(dir, &manifest)
    }

    pub(super) fn load_with(dir: &Path, manifest: &Manifest) -> Result<Self, ModelError> {
        manifest.expect_kind(ModelKind::Gaussian, dir)?;
        let layout = manifest.layout()?;
        let mut tensors = store::read_tensors(dir)?;
        let options = GaussianOptions::from_tensor(&mut tensors, dir)?;
        OnlineGaussian::from_tensors(layout, options, &mut tensors, "", dir)
    }

    /// The tensors of its statistics (`mean`, `scatter`, `weights`), their
    /// names prefixed with `prefix`.
    pub(super) fn to_tensors(&self, prefix: &str) -> Vec<Tensor> {
        let d = self.layout.state_len();
        vec![
            Tensor::new(
                &format!("{prefix}mean"),
                vec![d],
                self.mean.iter().copied().collect(),
            ),
            Tensor::new(
                &format!("{prefix}scatter"),
                vec![d, d],
                self.scatter.transpose().iter().copied().collect(),
            ),
            Tensor::new(
                &format!("{prefix}weights"),
                vec![3],
                vec![self.weight, self.weight_squared, self.absorbed as f64],
            ),
        ]
    }

    /// A model with the statistics [`OnlineGaussian::to_tensors`] wrote
    /// under `prefix`, taken out of `tensors`.
    pub(super) fn from_tensors(
        layout: Layout,
        options: GaussianOptions,
        tensors: &mut Vec<Tensor>,
        prefix: &str,
        dir: &Path,
    ) -> Result<Self, ModelError> {
        let d = layout.state_len();
        let mut model = OnlineGaussian::new(layout, options);
        let mut take = |name: &str, shape: &[usize]| {
            store::take(tensors, &format!("{prefix}{name}"), shape, dir)
        };
        model.mean = DVector::from_vec(take("mean", &[d])?);
        model.scatter = DMatrix::from_row_slice(d, d, &take("scatter", &[d, d])?);
        let weights = take("weights", &[3])?;
        (model.weight, model.weight_squared) = (weights[0], weights[1]);
        model.absorbed = weights[2] as u64;
        model.joint = model.shrunk();
        Ok(model)
    }
}

impl GaussianOptions {
    /// The `settings` tensor: the half-life and the fixed shrinkage
    /// intensity (NaN for adaptive).
    pub(super) fn to_tensor(self) -> Tensor {
        let shrinkage = match self.shrinkage {
            Shrinkage::Adaptive => f64::NAN,
            Shrinkage::Fixed(rho) => rho,
        };
        Tensor::new("settings", vec![2], vec![self.half_life, shrinkage])
    }

    /// The options in the `settings` tensor, taken out of `tensors`.
    pub(super) fn from_tensor(tensors: &mut Vec<Tensor>, dir: &Path) -> Result<Self, ModelError> {
        let settings = store::take(tensors, "settings", &[2], dir)?;
        let shrinkage = if settings[1].is_nan() {
            Shrinkage::Adaptive
        } else {
            Shrinkage::Fixed(settings[1])
        };
        let valid_shrinkage = match shrinkage {
            Shrinkage::Adaptive => true,
            Shrinkage::Fixed(rho) => (0.0..=1.0).contains(&rho),
        };
        if !(settings[0] > 0.0 && valid_shrinkage) {
            return Err(ModelError::Format(format!(
                "{}: invalid settings (half-life {}, shrinkage {})",
                dir.display(),
                settings[0],
                settings[1]
            )));
        }
        Ok(GaussianOptions {
            half_life: settings[0],
            shrinkage,
            refresh_every: 1,
        })
    }
}

impl AssetModel for OnlineGaussian {
    fn kind(&self) -> ModelKind {
        ModelKind::Gaussian
    }

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn update(&mut self, history: &History) {
        if history.check(&self.layout).is_err() || history.current().iter().all(Option::is_none) {
            return;
        }
        if let Some(completed) = self.complete(history.state()) {
            self.absorb(&completed, 1.0);
        }
    }

    fn predict(&self, history: &History, targets: &[usize]) -> Result<Prediction, ModelError> {
        history.check(&self.layout)?;
        self.layout.check_targets(targets)?;
        let joint = self.joint()?;
        // Lag 0's state index of a channel is the channel itself.
        let (given, values): (Vec<usize>, Vec<f64>) = history
            .state()
            .iter()
            .enumerate()
            .filter(|(i, _)| !targets.contains(i))
            .filter_map(|(i, v)| v.map(|v| (i, v)))
            .unzip();
        let conditional = joint
            .condition(&given, &values, targets)
            .map_err(singular)?;
        Ok(Prediction {
            channels: targets.to_vec(),
            mean: conditional.mean,
            covariance: conditional.covariance,
        })
    }

    fn marginal(&self, channel: usize) -> Result<(f64, f64), ModelError> {
        self.layout.check_targets(&[channel])?;
        let joint = self.joint()?;
        // Lag 0's state index of a channel is the channel itself.
        Ok((joint.mean[channel], joint.covariance[(channel, channel)]))
    }

    fn log_likelihood(&self, history: &History) -> Result<LogLikelihood, ModelError> {
        history.check(&self.layout)?;
        let joint = self.joint()?;
        let channels = self.layout.channel_count();
        let observed: Vec<usize> = (0..channels)
            .filter(|&c| history.current()[c].is_some())
            .collect();
        if observed.is_empty() {
            return Ok(LogLikelihood {
                total: 0.0,
                channels: Vec::new(),
            });
        }
        let (lags, values): (Vec<usize>, Vec<f64>) = history.state()[channels..]
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (channels + i, v)))
            .unzip();
        let now = joint
            .condition(&lags, &values, &observed)
            .map_err(singular)?;
        let x = DVector::from_fn(observed.len(), |k, _| {
            history.current()[observed[k]].unwrap()
        });
        let density = now.log_density(&x).map_err(singular)?;
        let channels = observed
            .iter()
            .zip(&density.leave_one_out)
            .enumerate()
            .map(|(k, (&channel, predicted))| ChannelSurprise {
                channel,
                log_density: predicted.log_density(x[k]),
                z: (x[k] - predicted.mean) / predicted.variance.sqrt(),
            })
            .collect();
        Ok(LogLikelihood {
            total: density.log_density,
            channels,
        })
    }

    /// Draws each window from the predictive given a past that leaks
    /// toward the model's mean, so that the chain of draws stays stationary
    /// at the model's mean and variance (see [`super::stationary`]); from an
    /// empty history, it starts from a state drawn from that chain's
    /// stationary distribution.
    fn sample(
        &self,
        rng: &mut dyn Rng,
        history: &History,
        windows: usize,
    ) -> Result<Vec<Vec<f64>>, ModelError> {
        history.check(&self.layout)?;
        let draws = StationaryDraws::new(self.joint()?, &self.layout).map_err(singular)?;
        let channels = self.layout.channel_count();
        let mut state = if history.is_empty() {
            draws.stationary_state(rng)
        } else {
            draws.state_of(history.state())
        };
        let mut trajectory = Vec::with_capacity(windows);
        for _ in 0..windows {
            state = draws.draw(rng, &draws.past_of(&state));
            trajectory.push(state[..channels].to_vec());
        }
        Ok(trajectory)
    }

    fn save(&self, dir: &Path) -> Result<(), ModelError> {
        let mut tensors = vec![self.options.to_tensor()];
        tensors.extend(self.to_tensors(""));
        store::save(
            dir,
            &Manifest::new(ModelKind::Gaussian, &self.layout),
            &tensors,
        )
    }
}

pub(super) fn singular(_: NotPositiveDefinite) -> ModelError {
    ModelError::Singular
}

#[cfg(test)]
mod tests;
