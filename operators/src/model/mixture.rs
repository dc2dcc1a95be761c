//! A mixture of online Gaussians over an asset's operating regimes (idle, ramp, load): each component an [`OnlineGaussian`] learning from every window in proportion to its responsibility for it; predictions are mixtures, reported by their mean and covariance.
//!
//! # The model
//! Over the same state as the Gaussian (the channels at t, t−1, …, t−L and
//! the slow copies; see [`Layout`]), p(x) = Σₖ πₖ N(x; μₖ, Σₖ). Component k
//! is an [`OnlineGaussian`] (its weighted mean and scatter, decay and
//! shrinkage); its mixing weight is its share of the windows,
//! πₖ = Wₖ / Σⱼ Wⱼ, with Wₖ its decayed weight ([`OnlineGaussian::weight`]).
//! Where one Gaussian has to draw a single straight line through idle and
//! full load, each component draws its own: current, flow, pressure and
//! temperature couple differently at each level of load.
//!
//! # Learning: online EM
//! For each window, the E-step weighs the components by how well each
//! explains what was observed of the state, the responsibilities
//! rₖ ∝ πₖ Nₖ(observed values) (each component's marginal density of the
//! observed coordinates), and each component fills in the missing values
//! with its own conditional mean (and covariance). The M-step gives each
//! component its completed state with weight rₖ (the Gaussian's weighted
//! update); every component's older windows fade by the same decay, so the
//! πₖ stay the components' shares of the decayed windows.
//!
//! # Initialisation
//! Deterministic, with no seed: the complete states are standardised, sorted
//! along their first principal component, and cut into K slices of equal
//! count, whose means start Lloyd's k-means iterations; each component then
//! learns, in window order, from the states of its cluster. Why this start:
//! in a plant driven by load every channel rises with it, so the first
//! principal component is load, and its slices are the regimes from idle to
//! full load (a ramp sits between two levels and is left to EM); slicing by
//! quantiles, unlike farthest-point or k-means++ seeding, never starts a
//! component on a fault's outlier, and needs no random draw.
//! - Online ([`AssetModel::update`] from nothing) the first
//!   [`MixtureOptions::warmup`] complete windows are kept, then the model
//!   starts from them and learns online from the next window on.
//! - Trained ([`GaussianMixture::fit`]) it starts from every complete state of
//!   the history, then makes passes of batch EM over it: each pass refits
//!   every component from nothing with the responsibilities and completions
//!   of the previous pass's model, by the same weighted, decayed updates as
//!   online, so a trained model goes on online as if it had learnt the
//!   history that way.
//!
//! A component left with almost no weight (under 10⁻⁶ of the total) or too
//! few windows for a covariance is dropped after the start and after each
//! pass; online, components are never dropped.
//!
//! # Predicting and scoring
//! Given the observed values g, component k's weight is wₖ ∝ πₖ Nₖ(g) and
//! its prediction the Gaussian conditional Nₖ(targets | g), so the
//! predictive is Σₖ wₖ Nₖ(targets | g), reported by its moments: mean
//! m = Σₖ wₖ mₖ, covariance Σₖ wₖ (Cₖ + (mₖ − m)(mₖ − m)ᵀ). The
//! log-likelihood of the newest window's observed values xₜ given the
//! observed lags ℓ is ln Σₖ πₖ Nₖ(ℓ) Nₖ(xₜ | ℓ) − ln Σₖ πₖ Nₖ(ℓ) (sums of
//! exponentials computed as log-sum-exp), and a channel's share
//! ln p(xᵢ | the others) is that of the whole less that of the others.
//! Sampling draws a component by its weight, then the window from its
//! conditional.
//!
//! # On disk
//! `settings` (as the Gaussian's), `mixture` (the component count and the
//! warmup) and per component k the Gaussian's tensors prefixed
//! `component{k}.`: `mean`, `scatter` and `weights` (Wₖ, W₂ₖ and the
//! windows absorbed), which hold the mixing weights too.

use std::path::Path;

use nalgebra::{DMatrix, DVector, SymmetricEigen};
use rand::Rng;
use rand_distr::{Distribution, StandardUniform};

use super::conditional::Gaussian;
use super::gaussian::{Completed, GaussianOptions, OnlineGaussian, singular};
use super::stationary::StationaryDraws;
use super::store::{self, Manifest, Tensor};
use super::{
    AssetModel, ChannelSurprise, History, Layout, LogLikelihood, ModelError, ModelKind, Prediction,
};

/// A component with less than this share of the total weight is dropped by [`GaussianMixture::fit`].
const NEGLIGIBLE_SHARE: f64 = 1e-6;
/// Lloyd's iterations at most, when starting.
const LLOYD_ITERATIONS: usize = 50;

/// The choices of a [`GaussianMixture`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixtureOptions {
    /// K, the number of components (at most; see the module doc).
    pub components: usize,
    /// The options of every component.
    pub gaussian: GaussianOptions,
    /// Complete windows kept before an online mixture starts.
    pub warmup: usize,
}

impl Default for MixtureOptions {
    /// Three components (idle, ramp, load), the Gaussian's defaults, and a
    /// warmup of 600 windows (ten minutes of 1 s windows: a load cycle).
    fn default() -> Self {
        MixtureOptions {
            components: 3,
            gaussian: GaussianOptions::default(),
            warmup: 600,
        }
    }
}

/// A mixture of [`OnlineGaussian`]s over a [`Layout`]'s state (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianMixture {
    layout: Layout,
    options: MixtureOptions,
    /// Empty until the mixture has started.
    components: Vec<OnlineGaussian>,
    /// Complete states kept to start from (online, before the start).
    pending: Vec<DVector<f64>>,
}

/// One window's E-step: each component's responsibility and its completion
/// of the state (`None` where it cannot complete it yet).
struct Expectation {
    responsibilities: Vec<f64>,
    completions: Vec<Option<Completed>>,
}

impl GaussianMixture {
    /// A mixture that has learnt nothing: it starts after
    /// `options.warmup` complete windows. Panics on no components, or on
    /// Gaussian options [`OnlineGaussian::new`] refuses.
    pub fn new(layout: Layout, options: MixtureOptions) -> Self {
        assert!(options.components > 0, "a mixture needs a component");
        // Checks the Gaussian options once, here.
        OnlineGaussian::new(layout.clone(), options.gaussian);
        GaussianMixture {
            layout,
            options,
            components: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// A mixture trained on a history (see the module doc): `states` are
    /// the history's states ([`History::state`]) after each window pushed,
    /// in window order (states with nothing observed in the newest window
    /// are skipped). Starts from the complete states, then makes `passes`
    /// passes of EM, calling `progress` after each.
    pub fn fit(
        layout: Layout,
        options: MixtureOptions,
        states: &[Vec<Option<f64>>],
        passes: usize,
        mut progress: impl FnMut(),
    ) -> Result<Self, ModelError> {
        let mut mixture = GaussianMixture::new(layout, options);
        let (channels, state_len) = (mixture.layout.channel_count(), mixture.layout.state_len());
        if let Some(wrong) = states.iter().find(|s| s.len() != state_len) {
            return Err(ModelError::Layout(format!(
                "a state of {} values for a model whose state has {state_len}",
                wrong.len()
            )));
        }
        let states: Vec<&[Option<f64>]> = states
            .iter()
            .map(Vec::as_slice)
            .filter(|s| s[..channels].iter().any(Option::is_some))
            .collect();
        let complete: Vec<DVector<f64>> = states
            .iter()
            .filter_map(|s| s.iter().copied().collect::<Option<Vec<f64>>>())
            .map(DVector::from_vec)
            .collect();
        mixture.start(&complete)?;
        mixture.drop_negligible();
        for _ in 0..passes {
            let mut next: Vec<OnlineGaussian> = mixture
                .components
                .iter()
                .map(|c| OnlineGaussian::new(mixture.layout.clone(), c.options()))
                .collect();
            for state in &states {
                if let Some(expectation) = mixture.expectation(state) {
                    absorb_all(&mut next, &expectation);
                }
            }
            mixture.components = next;
            mixture.drop_negligible();
            progress();
        }
        Ok(mixture)
    }

    pub fn options(&self) -> MixtureOptions {
        self.options
    }

    /// The components (empty before the start).
    pub fn components(&self) -> &[OnlineGaussian] {
        &self.components
    }

    /// ln πₖ per component: its share of the decayed windows.
    pub fn log_weights(&self) -> Vec<f64> {
        let total: f64 = self.components.iter().map(OnlineGaussian::weight).sum();
        self.components
            .iter()
            .map(|c| (c.weight() / total).ln())
            .collect()
    }

    /// Each component's responsibility for the history's state: its share
    /// of the posterior given every observed value (the E-step's weights).
    pub fn responsibilities(&self, history: &History) -> Result<Vec<f64>, ModelError> {
        history.check(&self.layout)?;
        self.ready()?;
        let (given, values) = observed(history.state(), &[]);
        self.weights_given(&given, &values, &self.log_weights())
    }

    /// Each component's posterior weight given that the state coordinates
    /// `given` hold `values`: ∝ πₖ Nₖ(values).
    fn weights_given(
        &self,
        given: &[usize],
        values: &[f64],
        log_weights: &[f64],
    ) -> Result<Vec<f64>, ModelError> {
        let scores = self
            .components
            .iter()
            .zip(log_weights)
            .map(|(c, ln_pi)| {
                let (_, evidence) = c
                    .joint()?
                    .condition_with_evidence(given, values, &[])
                    .map_err(singular)?;
                Ok(ln_pi + evidence)
            })
            .collect::<Result<Vec<f64>, ModelError>>()?;
        Ok(normalised(&scores))
    }

    fn ready(&self) -> Result<(), ModelError> {
        if self.components.is_empty() {
            Err(ModelError::NotReady {
                absorbed: self.pending.len() as u64,
                needed: self.options.warmup as u64,
            })
        } else {
            Ok(())
        }
    }

    /// Starts the components from complete states (see the module doc).
    fn start(&mut self, complete: &[DVector<f64>]) -> Result<(), ModelError> {
        let k = self.options.components;
        if complete.len() < 2 * k {
            return Err(ModelError::NotReady {
                absorbed: complete.len() as u64,
                needed: 2 * k as u64,
            });
        }
        let clusters = clusters(complete, k);
        let mut components: Vec<OnlineGaussian> = (0..k)
            .map(|_| OnlineGaussian::new(self.layout.clone(), self.options.gaussian))
            .collect();
        for (x, &cluster) in complete.iter().zip(&clusters) {
            let completed = Completed {
                x: x.clone(),
                missing: Vec::new(),
                covariance: DMatrix::zeros(0, 0),
            };
            for (j, component) in components.iter_mut().enumerate() {
                component.absorb(&completed, if j == cluster { 1.0 } else { 0.0 });
            }
        }
        self.components = components;
        Ok(())
    }

    /// Drops components with a negligible share or no covariance (keeping
    /// at least the heaviest).
    fn drop_negligible(&mut self) {
        let total: f64 = self.components.iter().map(OnlineGaussian::weight).sum();
        let heaviest = self
            .components
            .iter()
            .map(OnlineGaussian::weight)
            .fold(0.0, f64::max);
        self.components.retain(|c| {
            c.weight() == heaviest || (c.weight() >= NEGLIGIBLE_SHARE * total && c.joint().is_ok())
        });
    }

    /// The E-step for one state (see the module doc); `None` when no
    /// component can weigh it.
    fn expectation(&self, state: &[Option<f64>]) -> Option<Expectation> {
        let (given, values) = observed(state, &[]);
        let log_weights = self.log_weights();
        let scores: Vec<f64> = self
            .components
            .iter()
            .zip(&log_weights)
            .map(|(c, ln_pi)| {
                c.joint()
                    .ok()
                    .and_then(|joint| joint.condition_with_evidence(&given, &values, &[]).ok())
                    .map_or(f64::NEG_INFINITY, |(_, evidence)| ln_pi + evidence)
            })
            .collect();
        if scores.iter().all(|s| *s == f64::NEG_INFINITY) {
            return None;
        }
        Some(Expectation {
            responsibilities: normalised(&scores),
            completions: self.components.iter().map(|c| c.complete(state)).collect(),
        })
    }

    /// Each ready component's weight given the history's values outside
    /// `targets`, and its conditional of the targets in the newest window.
    fn conditionals(
        &self,
        history: &History,
        targets: &[usize],
    ) -> Result<Vec<(usize, f64, Gaussian)>, ModelError> {
        history.check(&self.layout)?;
        self.layout.check_targets(targets)?;
        self.ready()?;
        // Lag 0's state index of a channel is the channel itself.
        let (given, values) = observed(history.state(), targets);
        let log_weights = self.log_weights();
        let mut scores = Vec::with_capacity(self.components.len());
        let mut conditionals = Vec::with_capacity(self.components.len());
        for (k, (component, ln_pi)) in self.components.iter().zip(&log_weights).enumerate() {
            let Ok(joint) = component.joint() else {
                continue;
            };
            let (conditional, evidence) = joint
                .condition_with_evidence(&given, &values, targets)
                .map_err(singular)?;
            scores.push(ln_pi + evidence);
            conditionals.push((k, conditional));
        }
        if conditionals.is_empty() {
            return Err(ModelError::NotReady {
                absorbed: 0,
                needed: 2,
            });
        }
        Ok(normalised(&scores)
            .into_iter()
            .zip(conditionals)
            .map(|(w, (k, conditional))| (k, w, conditional))
            .collect())
    }

    /// The mixture saved in `dir`, which must be a Gaussian mixture.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let manifest = store::read_manifest(dir)?;
        Self::load_with(dir, &manifest)
    }

    pub(super) fn load_with(dir: &Path, manifest: &Manifest) -> Result<Self, ModelError> {
        manifest.expect_kind(ModelKind::Mixture, dir)?;
        let layout = manifest.layout()?;
        let mut tensors = store::read_tensors(dir)?;
        let gaussian = GaussianOptions::from_tensor(&mut tensors, dir)?;
        let mixture = store::take(&mut tensors, "mixture", &[2], dir)?;
        let (count, warmup) = (mixture[0], mixture[1]);
        if !(count >= 1.0 && count.fract() == 0.0 && warmup >= 0.0 && warmup.fract() == 0.0) {
            return Err(ModelError::Format(format!(
                "{}: invalid mixture settings ({count} components, warmup {warmup})",
                dir.display()
            )));
        }
        let options = MixtureOptions {
            components: count as usize,
            gaussian,
            warmup: warmup as usize,
        };
        let components = (0..options.components)
            .map(|k| {
                OnlineGaussian::from_tensors(
                    layout.clone(),
                    gaussian,
                    &mut tensors,
                    &format!("component{k}."),
                    dir,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(GaussianMixture {
            layout,
            options,
            components,
            pending: Vec::new(),
        })
    }
}

/// Gives every component its completion of a state with its
/// responsibility; a component that cannot complete it only fades.
fn absorb_all(components: &mut [OnlineGaussian], expectation: &Expectation) {
    for ((component, &r), completed) in components
        .iter_mut()
        .zip(&expectation.responsibilities)
        .zip(&expectation.completions)
    {
        match completed {
            Some(completed) => component.absorb(completed, r),
            None => component.fade(),
        }
    }
}

/// An index drawn with probabilities `weights` (which sum to 1).
fn pick(weights: &[f64], rng: &mut dyn Rng) -> usize {
    let u: f64 = StandardUniform.sample(rng);
    let mut cumulative = 0.0;
    weights
        .iter()
        .position(|w| {
            cumulative += w;
            u < cumulative
        })
        .unwrap_or(weights.len() - 1)
}

/// The index of the largest weight (the first of equals).
fn pick_most(weights: &[f64]) -> usize {
    (0..weights.len()).fold(
        0,
        |best, k| if weights[k] > weights[best] { k } else { best },
    )
}

/// The observed coordinates of a state outside `excluded`, and their values.
fn observed(state: &[Option<f64>], excluded: &[usize]) -> (Vec<usize>, Vec<f64>) {
    state
        .iter()
        .enumerate()
        .filter(|(i, _)| !excluded.contains(i))
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .unzip()
}

/// ln Σ exp(xᵢ), without overflow; −∞ for no terms or all −∞.
fn log_sum_exp(x: &[f64]) -> f64 {
    let top = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if top == f64::NEG_INFINITY {
        return top;
    }
    top + x.iter().map(|v| (v - top).exp()).sum::<f64>().ln()
}

/// exp(xᵢ) / Σ exp(xⱼ).
fn normalised(log_weights: &[f64]) -> Vec<f64> {
    let total = log_sum_exp(log_weights);
    log_weights.iter().map(|v| (v - total).exp()).collect()
}

/// The mean and variance of a mixture of univariate normals.
fn mixture_moments(parts: impl Iterator<Item = (f64, f64, f64)> + Clone) -> (f64, f64) {
    let mean: f64 = parts.clone().map(|(w, m, _)| w * m).sum();
    let variance = parts
        .map(|(w, m, v)| w * (v + (m - mean) * (m - mean)))
        .sum();
    (mean, variance)
}

/// The cluster of each complete state (see the module doc): slices of
/// equal count along the first principal component of the standardised
/// states start Lloyd's iterations.
fn clusters(states: &[DVector<f64>], k: usize) -> Vec<usize> {
    let n = states.len();
    let d = states[0].len();
    let mean = states.iter().fold(DVector::zeros(d), |a, x| a + x) / n as f64;
    let scale = DVector::from_fn(d, |i, _| {
        let variance = states.iter().map(|x| (x[i] - mean[i]).powi(2)).sum::<f64>() / n as f64;
        if variance > 0.0 { variance.sqrt() } else { 1.0 }
    });
    let z: Vec<DVector<f64>> = states
        .iter()
        .map(|x| (x - &mean).component_div(&scale))
        .collect();
    let correlation = z
        .iter()
        .fold(DMatrix::zeros(d, d), |a, x| a + x * x.transpose())
        / n as f64;
    let eigen = SymmetricEigen::new(correlation);
    let first = eigen.eigenvalues.imax();
    let direction = eigen.eigenvectors.column(first);
    let scores: Vec<f64> = z.iter().map(|x| x.dot(&direction)).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    let mut assignment = vec![0; n];
    for (rank, &i) in order.iter().enumerate() {
        assignment[i] = rank * k / n;
    }
    let mut centres = vec![DVector::zeros(d); k];
    for _ in 0..LLOYD_ITERATIONS {
        for (j, centre) in centres.iter_mut().enumerate() {
            let members: Vec<&DVector<f64>> = z
                .iter()
                .zip(&assignment)
                .filter(|&(_, &a)| a == j)
                .map(|(x, _)| x)
                .collect();
            // An emptied cluster keeps its centre.
            if !members.is_empty() {
                *centre =
                    members.iter().fold(DVector::zeros(d), |a, x| a + *x) / members.len() as f64;
            }
        }
        let next: Vec<usize> = z
            .iter()
            .map(|x| {
                (0..k)
                    .min_by(|&a, &b| {
                        (x - &centres[a])
                            .norm_squared()
                            .total_cmp(&(x - &centres[b]).norm_squared())
                    })
                    .expect("at least one centre")
            })
            .collect();
        if next == assignment {
            break;
        }
        assignment = next;
    }
    assignment
}

impl AssetModel for GaussianMixture {
    fn kind(&self) -> ModelKind {
        ModelKind::Mixture
    }

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn update(&mut self, history: &History) {
        if history.check(&self.layout).is_err() || history.current().iter().all(Option::is_none) {
            return;
        }
        let state = history.state();
        if self.components.is_empty() {
            if let Some(x) = state.iter().copied().collect::<Option<Vec<f64>>>() {
                self.pending.push(DVector::from_vec(x));
            }
            if self.pending.len() >= self.options.warmup.max(2 * self.options.components) {
                let pending = std::mem::take(&mut self.pending);
                if self.start(&pending).is_err() {
                    self.pending = pending;
                }
            }
            return;
        }
        if let Some(expectation) = self.expectation(state) {
            absorb_all(&mut self.components, &expectation);
        }
    }

    fn predict(&self, history: &History, targets: &[usize]) -> Result<Prediction, ModelError> {
        let parts = self.conditionals(history, targets)?;
        let n = targets.len();
        let mean = parts
            .iter()
            .fold(DVector::zeros(n), |m, (_, w, g)| m + &g.mean * *w);
        let covariance = parts.iter().fold(DMatrix::zeros(n, n), |c, (_, w, g)| {
            let offset = &g.mean - &mean;
            c + (&g.covariance + &offset * offset.transpose()) * *w
        });
        Ok(Prediction {
            channels: targets.to_vec(),
            mean,
            covariance,
        })
    }

    fn log_likelihood(&self, history: &History) -> Result<LogLikelihood, ModelError> {
        history.check(&self.layout)?;
        self.ready()?;
        let channels = self.layout.channel_count();
        let observed_now: Vec<usize> = (0..channels)
            .filter(|&c| history.current()[c].is_some())
            .collect();
        if observed_now.is_empty() {
            return Ok(LogLikelihood {
                total: 0.0,
                channels: Vec::new(),
            });
        }
        let lag_coordinates: Vec<usize> = (0..channels).collect();
        let (lags, values) = observed(history.state(), &lag_coordinates);
        let x = DVector::from_fn(observed_now.len(), |k, _| {
            history.current()[observed_now[k]].unwrap()
        });
        // Per component: ln πₖ Nₖ(ℓ), ln πₖ Nₖ(ℓ) Nₖ(xₜ | ℓ), and its
        // leave-one-out predictions of each observed channel.
        let mut with_lags = Vec::new();
        let mut joint = Vec::new();
        let mut leave_one_out = Vec::new();
        for (component, ln_pi) in self.components.iter().zip(self.log_weights()) {
            let Ok(gaussian) = component.joint() else {
                continue;
            };
            let (now, evidence) = gaussian
                .condition_with_evidence(&lags, &values, &observed_now)
                .map_err(singular)?;
            let density = now.log_density(&x).map_err(singular)?;
            with_lags.push(ln_pi + evidence);
            joint.push(ln_pi + evidence + density.log_density);
            leave_one_out.push(density.leave_one_out);
        }
        let whole = log_sum_exp(&joint);
        let channels = observed_now
            .iter()
            .enumerate()
            .map(|(i, &channel)| {
                // ln πₖ Nₖ(everything observed but xᵢ).
                let others: Vec<f64> = joint
                    .iter()
                    .zip(&leave_one_out)
                    .map(|(a, loo)| a - loo[i].log_density(x[i]))
                    .collect();
                let weights = normalised(&others);
                let (mean, variance) = mixture_moments(
                    weights
                        .iter()
                        .zip(&leave_one_out)
                        .map(|(&w, loo)| (w, loo[i].mean, loo[i].variance)),
                );
                ChannelSurprise {
                    channel,
                    log_density: whole - log_sum_exp(&others),
                    z: (x[i] - mean) / variance.sqrt(),
                }
            })
            .collect();
        Ok(LogLikelihood {
            total: whole - log_sum_exp(&with_lags),
            channels,
        })
    }

    fn save(&self, dir: &Path) -> Result<(), ModelError> {
        self.ready()?;
        let mut tensors = vec![
            self.options.gaussian.to_tensor(),
            Tensor::new(
                "mixture",
                vec![2],
                vec![self.components.len() as f64, self.options.warmup as f64],
            ),
        ];
        for (k, component) in self.components.iter().enumerate() {
            tensors.extend(component.to_tensors(&format!("component{k}.")));
        }
        store::save(
            dir,
            &Manifest::new(ModelKind::Mixture, &self.layout),
            &tensors,
        )
    }

    /// Draws each window's component by its weight given the lags and slow
    /// copies so far, then the window from that component's chain, whose
    /// past leaks toward the component's mean so that it stays stationary
    /// at the component's mean and variance (see [`super::stationary`]);
    /// from an empty history, it starts in a component drawn by its weight,
    /// from a state of that component's stationary chain.
    fn sample(
        &self,
        rng: &mut dyn Rng,
        history: &History,
        windows: usize,
    ) -> Result<Vec<Vec<f64>>, ModelError> {
        history.check(&self.layout)?;
        self.ready()?;
        let channels = self.layout.channel_count();
        let draws = self
            .components
            .iter()
            .map(|c| StationaryDraws::new(c.joint()?, &self.layout).map_err(singular))
            .collect::<Result<Vec<_>, ModelError>>()?;
        let log_weights = self.log_weights();
        let mut state = if history.is_empty() {
            let weights: Vec<f64> = log_weights.iter().map(|w| w.exp()).collect();
            draws[pick(&weights, rng)].stationary_state(rng)
        } else {
            // What is not observed, at the most likely component's mean.
            let k = pick_most(&self.responsibilities(history)?);
            draws[k].state_of(history.state())
        };
        let past_coordinates: Vec<usize> = (channels..self.layout.state_len()).collect();
        let mut trajectory = Vec::with_capacity(windows);
        for _ in 0..windows {
            // Every component's lags and slow copies are the same function of the state.
            let past = draws[0].past_of(&state);
            let weights = self.weights_given(&past_coordinates, &past, &log_weights)?;
            state = draws[pick(&weights, rng)].draw(rng, &past);
            trajectory.push(state[..channels].to_vec());
        }
        Ok(trajectory)
    }
}

#[cfg(test)]
mod tests;
