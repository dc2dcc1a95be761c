//! Generative models of an asset: how its channels behave together, window by window, behind one trait ([`AssetModel`]).
//!
//! A model covers some of an asset's channels (a [`Layout`]: indices into
//! the alignment's channels, and how many past windows, lags, it looks at).
//! The caller keeps a [`History`] per asset, the last `lags + 1` windows of
//! those channels with what was not observed left out, and pushes each grid
//! window into it in order (an all-missing window for a grid window without
//! a row). Against that history a model can
//! - learn online from the newest window ([`AssetModel::update`]);
//! - predict any channels of the newest window from everything else observed
//!   in the history ([`AssetModel::predict`]): the missing channels for
//!   imputation, or a measured channel from the others, a witness for fusion;
//! - score what was observed ([`AssetModel::log_likelihood`]), with each
//!   channel's share so a detector can name the channels that stand out;
//! - sample a trajectory that continues the history ([`AssetModel::sample`]);
//! - save itself to a directory ([`AssetModel::save`], read back by [`load`]):
//!   `manifest.json` (kind, channels, lags, format version) and
//!   `parameters.safetensors` (see [`store`]).
//!
//! Channels in the calls are positions in the layout (0 to
//! `layout.channel_count() − 1`), not alignment indices; [`Layout::pick`]
//! turns an aligned row's values into a window.
//!
//! A layout may also carry slow copies of some channels ([`Smoothed`]):
//! exponential filters over the windows before the newest, which the
//! history keeps. They are how a model sees minutes of the past without
//! minutes of lags: TwinBench's temperature follows load through a
//! first-order lag of minutes, which one or two lags of 1 s windows cannot
//! show but a filter of the current with a similar time constant does.
//!
//! # The models behind the trait
//! - [`gaussian::OnlineGaussian`]: one multivariate Gaussian over the state
//!   (the channels at t, t−1, …, t−L), its mean and covariance kept online.
//!   Predictions condition it exactly ([`conditional`]).
//! - [`mixture::GaussianMixture`]: a mixture of such Gaussians over
//!   operating regimes (idle, ramp, load): each
//!   component keeps the same sufficient statistics and is conditioned by
//!   the same [`conditional::Gaussian::condition`]; the components' weights
//!   are reweighted by how well each explains the given values. Its
//!   predictive is a mixture, reported through [`Prediction`] by its mean and
//!   covariance (moment matched); it overrides [`AssetModel::sample`] to
//!   draw a component first, and saves one set of tensors per component.
//! - [`neural::NeuralModel`]: a masked denoising autoencoder, a small
//!   network (on candle) trained beforehand to predict each channel of the
//!   newest window, with its variance, from whatever else of the state is
//!   observed. All of an asset's state is in its [`History`], so one
//!   trained network serves every asset of a layout, each with its own
//!   standardisation; it does not learn online.
//!
//! Both Gaussian models draw long trajectories through [`stationary`]: a
//! chain of one-step draws whose past leaks just enough to keep the
//! model's variance (a plant's level persists for minutes, and the fitted
//! chain sits at a unit root). Trained models of every asset of a plant
//! are saved together as a model [`set`].

pub mod conditional;
pub mod gaussian;
pub mod mixture;
pub mod neural;
pub mod set;
pub mod stationary;
pub mod store;

use std::path::Path;

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::align::Alignment;

/// Which model a saved directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Gaussian,
    Mixture,
    Neural,
}

impl ModelKind {
    /// Its name in manifests and datasets.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Gaussian => "gaussian",
            ModelKind::Mixture => "mixture",
            ModelKind::Neural => "neural",
        }
    }
}

/// One channel a model covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    /// Its index among the alignment's channels.
    pub index: usize,
    pub name: String,
}

/// A slow copy of a channel: its exponential filter over the windows before
/// the newest, y ← y + α (x − y) with α = 1 − e^(−1/τ) for a time constant
/// of τ windows, fed only by observed values. After 3τ windows without one
/// the filter is unobserved, and it restarts from the next observed value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Smoothed {
    /// Layout position of the channel filtered.
    pub channel: usize,
    /// The time constant τ, in windows.
    pub windows: f64,
}

/// The channels a model covers, how many past windows it looks at, and the
/// slow copies of channels it keeps.
///
/// The model's state is the channels at t, t−1, …, t−lags, lag by lag
/// (state index `lag · channel_count + channel`), then each [`Smoothed`]
/// channel in the order given.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    channels: Vec<Channel>,
    lags: usize,
    smoothed: Vec<Smoothed>,
}

impl Layout {
    /// Refuses no channels, and a channel index or name given twice.
    pub fn new(channels: Vec<Channel>, lags: usize) -> Result<Self, ModelError> {
        if channels.is_empty() {
            return Err(ModelError::Layout(
                "a model needs at least one channel".into(),
            ));
        }
        for (i, c) in channels.iter().enumerate() {
            if channels[..i]
                .iter()
                .any(|d| d.index == c.index || d.name == c.name)
            {
                return Err(ModelError::Layout(format!(
                    "channel {} ({}) is given twice",
                    c.name, c.index
                )));
            }
        }
        Ok(Layout {
            channels,
            lags,
            smoothed: Vec::new(),
        })
    }

    /// This layout with slow copies of channels; refuses a channel outside
    /// the layout and a time constant that is not positive and finite.
    pub fn with_smoothed(mut self, smoothed: Vec<Smoothed>) -> Result<Self, ModelError> {
        for s in &smoothed {
            if s.channel >= self.channels.len() || !(s.windows.is_finite() && s.windows > 0.0) {
                return Err(ModelError::Layout(format!(
                    "a slow copy of channel {} with a time constant of {} windows: the channel \
                     must be one of the {} and the time constant positive",
                    s.channel,
                    s.windows,
                    self.channels.len()
                )));
            }
        }
        self.smoothed = smoothed;
        Ok(self)
    }

    /// The channels `names`, the i-th at index i: for windows that are not
    /// an alignment's rows (a table of the channels alone, a test).
    pub fn of_names(names: &[&str], lags: usize) -> Result<Self, ModelError> {
        let channels = names
            .iter()
            .enumerate()
            .map(|(index, name)| Channel {
                index,
                name: (*name).to_owned(),
            })
            .collect();
        Layout::new(channels, lags)
    }

    /// The alignment's channels `names`, in that order.
    pub fn from_alignment(
        alignment: &Alignment,
        names: &[&str],
        lags: usize,
    ) -> Result<Self, ModelError> {
        let channels = names
            .iter()
            .map(|&name| {
                let index = alignment.channel_index(name).ok_or_else(|| {
                    ModelError::Layout(format!(
                        "no channel {name:?} in the alignment: {:?}",
                        alignment.channels()
                    ))
                })?;
                Ok(Channel {
                    index,
                    name: name.to_owned(),
                })
            })
            .collect::<Result<_, ModelError>>()?;
        Layout::new(channels, lags)
    }

    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// The channels' names, in layout order.
    pub fn names(&self) -> Vec<&str> {
        self.channels.iter().map(|c| c.name.as_str()).collect()
    }

    /// Whether a model of this layout serves `other`: the same channel
    /// names, lags and slow copies (where the channels sit in an alignment
    /// may differ).
    pub fn same_shape(&self, other: &Layout) -> bool {
        self.names() == other.names() && self.lags == other.lags && self.smoothed == other.smoothed
    }

    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    pub fn lags(&self) -> usize {
        self.lags
    }

    pub fn smoothed(&self) -> &[Smoothed] {
        &self.smoothed
    }

    /// The length of the state: channels × (lags + 1), plus the slow copies.
    pub fn state_len(&self) -> usize {
        self.lagged_len() + self.smoothed.len()
    }

    fn lagged_len(&self) -> usize {
        self.channels.len() * (self.lags + 1)
    }

    /// The channel (layout position) that state index `i` is a value of.
    pub fn state_channel(&self, i: usize) -> usize {
        let lagged = self.lagged_len();
        if i < lagged {
            i % self.channels.len()
        } else {
            self.smoothed[i - lagged].channel
        }
    }

    /// Refuses a target channel outside the layout or asked for twice.
    pub(crate) fn check_targets(&self, targets: &[usize]) -> Result<(), ModelError> {
        let channels = self.channel_count();
        for (i, &t) in targets.iter().enumerate() {
            if t >= channels || targets[..i].contains(&t) {
                return Err(ModelError::BadChannel {
                    channel: t,
                    channels,
                });
            }
        }
        Ok(())
    }

    /// A window of this layout from values indexed like the alignment's channels.
    pub fn pick(&self, aligned: &[Option<f64>]) -> Vec<Option<f64>> {
        self.channels
            .iter()
            .map(|c| aligned.get(c.index).copied().flatten())
            .collect()
    }
}

/// An asset's last `lags + 1` windows, newest first, and its slow copies of
/// channels; `None` where a channel was not observed (or the window is older
/// than what was pushed).
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    channels: usize,
    /// In state order (see [`Layout`]): lag 0 is the newest window, the slow
    /// copies last.
    state: Vec<Option<f64>>,
    /// Per slow copy: its channel, α, and windows since it was last fed.
    filters: Vec<Filter>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Filter {
    channel: usize,
    alpha: f64,
    forget_after: f64,
    unfed: u32,
}

impl History {
    /// An empty history: every lag unobserved.
    pub fn new(layout: &Layout) -> Self {
        History {
            channels: layout.channel_count(),
            state: vec![None; layout.state_len()],
            filters: layout
                .smoothed()
                .iter()
                .map(|s| Filter {
                    channel: s.channel,
                    alpha: 1.0 - (-1.0 / s.windows).exp(),
                    forget_after: 3.0 * s.windows,
                    unfed: 0,
                })
                .collect(),
        }
    }

    /// A history holding `state` (in state order; see [`Layout`]), as if
    /// every value had just been observed: e.g. a draw from a model's
    /// stationary distribution to start a trajectory from.
    pub fn with_state(layout: &Layout, state: &[f64]) -> Self {
        assert_eq!(
            state.len(),
            layout.state_len(),
            "a state of this layout has {} values",
            layout.state_len()
        );
        let mut history = History::new(layout);
        for (slot, &value) in history.state.iter_mut().zip(state) {
            *slot = Some(value).filter(|v| v.is_finite());
        }
        history
    }

    /// Whether nothing is observed, at any lag or in any slow copy.
    pub fn is_empty(&self) -> bool {
        self.state.iter().all(Option::is_none)
    }

    /// Makes `window` the newest (lag 0) and ages the others by one; the
    /// window that was newest feeds the slow copies. A value that is not
    /// finite counts as not observed.
    pub fn push(&mut self, window: &[Option<f64>]) {
        assert_eq!(
            window.len(),
            self.channels,
            "a window of this history has {} channels",
            self.channels
        );
        let lagged = self.state.len() - self.filters.len();
        let (lags, slow) = self.state.split_at_mut(lagged);
        for (filter, slot) in self.filters.iter_mut().zip(slow) {
            match (lags[filter.channel], *slot) {
                (Some(x), Some(y)) => {
                    *slot = Some(y + filter.alpha * (x - y));
                    filter.unfed = 0;
                }
                (Some(x), None) => {
                    *slot = Some(x);
                    filter.unfed = 0;
                }
                (None, _) => {
                    filter.unfed = filter.unfed.saturating_add(1);
                    if f64::from(filter.unfed) > filter.forget_after {
                        *slot = None;
                    }
                }
            }
        }
        lags.copy_within(..lagged - self.channels, self.channels);
        for (slot, value) in lags.iter_mut().zip(window) {
            *slot = value.filter(|v| v.is_finite());
        }
    }

    /// The value of `channel`, `lag` windows back.
    pub fn value(&self, lag: usize, channel: usize) -> Option<f64> {
        self.state[lag * self.channels + channel]
    }

    /// The newest window.
    pub fn current(&self) -> &[Option<f64>] {
        &self.state[..self.channels]
    }

    /// Every value, in state order.
    pub fn state(&self) -> &[Option<f64>] {
        &self.state
    }

    /// Sets `channel` in the newest window.
    pub fn set_current(&mut self, channel: usize, value: Option<f64>) {
        self.state[channel] = value.filter(|v| v.is_finite());
    }

    /// A copy with `channels` unobserved at every lag and in their slow
    /// copies: to predict a channel without its own past (e.g. a sensor
    /// suspected of drifting).
    pub fn hiding(&self, channels: &[usize]) -> History {
        let mut copy = self.clone();
        let lagged = self.state.len() - self.filters.len();
        for (i, slot) in copy.state.iter_mut().enumerate() {
            let channel = match i.checked_sub(lagged) {
                Some(k) => self.filters[k].channel,
                None => i % self.channels,
            };
            if channels.contains(&channel) {
                *slot = None;
            }
        }
        copy
    }

    /// A copy with every slow copy unobserved: the recent windows alone.
    pub fn without_slow_copies(&self) -> History {
        let mut copy = self.clone();
        let lagged = self.state.len() - self.filters.len();
        copy.state[lagged..].fill(None);
        copy
    }

    /// Whether the layout keeps slow copies.
    pub fn has_slow_copies(&self) -> bool {
        !self.filters.is_empty()
    }

    fn check(&self, layout: &Layout) -> Result<(), ModelError> {
        let same_filters = self.filters.len() == layout.smoothed().len()
            && self
                .filters
                .iter()
                .zip(layout.smoothed())
                .all(|(f, s)| f.channel == s.channel);
        if self.channels == layout.channel_count()
            && self.state.len() == layout.state_len()
            && same_filters
        {
            Ok(())
        } else {
            Err(ModelError::Layout(format!(
                "a history of {} values in windows of {} does not fit a model of {} channels and {} lags",
                self.state.len(),
                self.channels,
                layout.channel_count(),
                layout.lags()
            )))
        }
    }
}

/// A model's prediction of some channels of the newest window.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The predicted channels (layout positions), in the order of `mean`.
    pub channels: Vec<usize>,
    pub mean: DVector<f64>,
    pub covariance: DMatrix<f64>,
}

impl Prediction {
    /// The variance of the `i`-th predicted channel.
    pub fn variance(&self, i: usize) -> f64 {
        self.covariance[(i, i)]
    }
}

/// How likely the newest window's observed values are under a model, given
/// the observed lags.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLikelihood {
    /// ln p(observed channels at t | observed lags); 0 when nothing is observed at t.
    pub total: f64,
    /// One per channel observed at t, in layout order.
    pub channels: Vec<ChannelSurprise>,
}

/// One observed channel against everything else observed: its share of a
/// window's log-likelihood. These do not add up to the total (each is
/// conditioned on all the others); they rank channels, independent of order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelSurprise {
    /// Layout position.
    pub channel: usize,
    /// ln p(x_c | every other observed value in the history).
    pub log_density: f64,
    /// (x_c − predicted mean) / predicted standard deviation.
    pub z: f64,
}

impl LogLikelihood {
    /// The observed channels, least likely first (ties in layout order).
    pub fn most_surprising(&self) -> Vec<ChannelSurprise> {
        let mut ranked = self.channels.clone();
        ranked.sort_by(|a, b| a.log_density.total_cmp(&b.log_density));
        ranked
    }
}

/// What can go wrong with a model.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelError {
    /// Too few windows learnt to predict: `absorbed` of `needed`.
    NotReady { absorbed: u64, needed: u64 },
    /// A channel position outside the layout, or asked for twice.
    BadChannel { channel: usize, channels: usize },
    /// A layout that cannot be, or a history that does not fit the model.
    Layout(String),
    /// The covariance to condition on is not positive definite.
    Singular,
    /// Reading or writing a model's files failed.
    Io(String),
    /// A model's files are not what they should be.
    Format(String),
}

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelError::NotReady { absorbed, needed } => write!(
                f,
                "the model has learnt from {absorbed} windows and needs {needed} to predict"
            ),
            ModelError::BadChannel { channel, channels } => write!(
                f,
                "channel {channel} asked for is not one of the model's {channels}, or is asked for twice"
            ),
            ModelError::Layout(why) => write!(f, "{why}"),
            ModelError::Singular => write!(f, "the model's covariance is not positive definite"),
            ModelError::Io(why) => write!(f, "model file: {why}"),
            ModelError::Format(why) => write!(f, "model format: {why}"),
        }
    }
}

impl std::error::Error for ModelError {}

/// A generative model of one asset's channels, window by window (see the
/// module doc). Every method reads the asset's [`History`], whose newest
/// window (lag 0) is the one learnt, predicted or scored.
///
/// ```
/// use twinflow_operators::model::gaussian::{GaussianOptions, OnlineGaussian};
/// use twinflow_operators::model::{AssetModel, Channel, History, Layout};
///
/// // Two channels: current follows flow (current ≈ 2 · flow), one lag.
/// let channels = vec![
///     Channel { index: 0, name: "flow".into() },
///     Channel { index: 3, name: "current".into() },
/// ];
/// let layout = Layout::new(channels, 1).unwrap();
/// let mut model = OnlineGaussian::new(layout.clone(), GaussianOptions::default());
/// let mut history = History::new(&layout);
/// for t in 0..600 {
///     let flow = 10.0 + (t as f64 * 0.05).sin();
///     let noise = 0.01 * ((t * 7919 % 13) as f64 - 6.0);
///     history.push(&[Some(flow), Some(2.0 * flow + noise)]);
///     model.update(&history);
/// }
/// // Current drops out: the model imputes it from flow (and the lags).
/// let flow = 10.0 + (600.0f64 * 0.05).sin();
/// history.push(&[Some(flow), None]);
/// let imputed = model.predict(&history, &[1]).unwrap();
/// assert!((imputed.mean[0] - 2.0 * flow).abs() < 0.05);
/// assert!(imputed.variance(0).sqrt() < 0.05);
/// // A current that does not follow flow stands out.
/// history.set_current(1, Some(2.0 * flow + 1.0));
/// let scored = model.log_likelihood(&history).unwrap();
/// assert!(scored.most_surprising()[0].z.abs() > 10.0);
/// ```
pub trait AssetModel: Send {
    fn kind(&self) -> ModelKind;

    fn layout(&self) -> &Layout;

    /// Learns from the newest window, given its lags. A model may ignore a
    /// window it cannot learn from (e.g. nothing observed in it) and a
    /// trained model may ignore every window.
    fn update(&mut self, history: &History);

    /// The joint predictive distribution of the channels `targets` in the
    /// newest window given every other value observed in the history (the
    /// targets' own past included; see [`History::hiding`]). Whether a
    /// target was observed does not matter: it is predicted from the others.
    fn predict(&self, history: &History, targets: &[usize]) -> Result<Prediction, ModelError>;

    /// The mean and variance of `channel` over everything learnt, nothing
    /// given: its prediction from an empty history. A model that keeps its
    /// marginals at hand overrides it.
    fn marginal(&self, channel: usize) -> Result<(f64, f64), ModelError> {
        let p = self.predict(&History::new(self.layout()), &[channel])?;
        Ok((p.mean[0], p.variance(0)))
    }

    /// The log-likelihood of the channels observed in the newest window given
    /// the observed lags, and each one's share.
    fn log_likelihood(&self, history: &History) -> Result<LogLikelihood, ModelError>;

    /// Saves the model into `dir` (see [`store`]), to be read back by [`load`].
    fn save(&self, dir: &Path) -> Result<(), ModelError>;

    /// The channels missing from the newest window, predicted; `None` when
    /// none is missing.
    fn impute(&self, history: &History) -> Result<Option<Prediction>, ModelError> {
        let missing: Vec<usize> = (0..self.layout().channel_count())
            .filter(|&c| history.current()[c].is_none())
            .collect();
        if missing.is_empty() {
            return Ok(None);
        }
        self.predict(history, &missing).map(Some)
    }

    /// `windows` windows drawn one after the other, each from the model's
    /// predictive given the history so far (starting from `history`, which may
    /// be empty); the same `rng` state gives the same trajectory. This draws
    /// from the Gaussian with the predictive's mean and covariance: a model
    /// whose predictive is not Gaussian overrides it. The Gaussian models
    /// override it too, to damp the predictive's pull on the past so that a
    /// long draw stays stationary (see [`stationary`]).
    fn sample(
        &self,
        rng: &mut dyn Rng,
        history: &History,
        windows: usize,
    ) -> Result<Vec<Vec<f64>>, ModelError> {
        let channels = self.layout().channel_count();
        let every: Vec<usize> = (0..channels).collect();
        let mut history = history.clone();
        let mut trajectory = Vec::with_capacity(windows);
        for _ in 0..windows {
            history.push(&vec![None; channels]);
            let prediction = self.predict(&history, &every)?;
            let factor = prediction
                .covariance
                .cholesky()
                .ok_or(ModelError::Singular)?;
            let z = DVector::from_fn(channels, |_, _| StandardNormal.sample(&mut *rng));
            let window: Vec<f64> = (prediction.mean + factor.l() * z).iter().copied().collect();
            for (c, &v) in window.iter().enumerate() {
                history.set_current(c, Some(v));
            }
            trajectory.push(window);
        }
        Ok(trajectory)
    }
}

/// The model saved in `dir`, whatever its kind.
pub fn load(dir: &Path) -> Result<Box<dyn AssetModel>, ModelError> {
    let manifest = store::read_manifest(dir)?;
    match manifest.kind {
        ModelKind::Gaussian => Ok(Box::new(gaussian::OnlineGaussian::load_with(
            dir, &manifest,
        )?)),
        ModelKind::Mixture => Ok(Box::new(mixture::GaussianMixture::load_with(
            dir, &manifest,
        )?)),
        ModelKind::Neural => Ok(Box::new(neural::NeuralModel::load_with(dir, &manifest)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(lags: usize) -> Layout {
        let channels = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, name)| Channel {
                index: 2 * i,
                name: name.to_string(),
            })
            .collect();
        Layout::new(channels, lags).unwrap()
    }

    #[test]
    fn history_ages_windows_and_forgets_the_oldest() {
        let mut history = History::new(&layout(2));
        history.push(&[Some(1.0), None, Some(3.0)]);
        history.push(&[Some(4.0), Some(5.0), Some(f64::NAN)]);
        assert_eq!(history.current(), &[Some(4.0), Some(5.0), None]);
        assert_eq!(history.value(1, 0), Some(1.0));
        assert_eq!(history.value(1, 2), Some(3.0));
        assert_eq!(history.value(2, 0), None);
        history.push(&[None, None, None]);
        history.push(&[Some(7.0), None, None]);
        // The first window is now three back: gone.
        assert_eq!(history.value(2, 0), Some(4.0));
        assert!(history.state().iter().filter(|v| v.is_some()).count() == 3);
        let hidden = history.hiding(&[0]);
        assert_eq!(hidden.value(0, 0), None);
        assert_eq!(hidden.value(2, 0), None);
        assert_eq!(hidden.value(2, 1), Some(5.0));
    }

    #[test]
    fn slow_copies_filter_the_windows_before_the_newest_and_forget_a_silent_channel() {
        let layout = layout(1)
            .with_smoothed(vec![Smoothed {
                channel: 1,
                windows: 2.0,
            }])
            .unwrap();
        assert_eq!(layout.state_len(), 7);
        assert_eq!(layout.state_channel(6), 1);
        assert_eq!(layout.state_channel(4), 1);
        let alpha = 1.0 - (-0.5f64).exp();
        let mut history = History::new(&layout);
        history.push(&[Some(0.0), Some(10.0), None]);
        // The newest window is not in its slow copy yet.
        assert_eq!(history.state()[6], None);
        history.push(&[Some(0.0), Some(20.0), None]);
        assert_eq!(history.state()[6], Some(10.0));
        history.push(&[Some(0.0), None, None]);
        let y = 10.0 + alpha * (20.0 - 10.0);
        assert!((history.state()[6].unwrap() - y).abs() < 1e-12);
        // Unfed for more than 3τ = 6 windows, it is forgotten.
        for _ in 0..6 {
            history.push(&[Some(0.0), None, None]);
            assert!((history.state()[6].unwrap() - y).abs() < 1e-12);
        }
        history.push(&[Some(0.0), None, None]);
        assert_eq!(history.state()[6], None);
        let hidden = History::new(&layout);
        assert!(hidden.check(&layout).is_ok());
        assert!(hidden.check(&self::layout(1)).is_err());
        let mut history = History::new(&layout);
        history.push(&[Some(1.0), Some(2.0), Some(3.0)]);
        history.push(&[Some(1.0), Some(2.0), Some(3.0)]);
        assert_eq!(history.hiding(&[1]).state()[6], None);
        assert_eq!(history.hiding(&[0]).state()[6], Some(2.0));
        // Without slow copies: the lags as they were, every filter unobserved.
        let recent = history.without_slow_copies();
        assert!(history.has_slow_copies());
        assert_eq!(&recent.state()[..6], &history.state()[..6]);
        assert_eq!(recent.state()[6], None);
        assert!(
            layout
                .clone()
                .with_smoothed(vec![Smoothed {
                    channel: 3,
                    windows: 1.0
                }])
                .is_err()
        );
    }

    #[test]
    fn layouts_refuse_repeated_channels_and_pick_by_alignment_index() {
        let l = layout(0);
        assert_eq!(
            l.pick(&[Some(0.0), Some(1.0), Some(2.0), None, Some(4.0)]),
            vec![Some(0.0), Some(2.0), Some(4.0)]
        );
        let twice = vec![
            Channel {
                index: 1,
                name: "a".into(),
            },
            Channel {
                index: 1,
                name: "b".into(),
            },
        ];
        assert!(matches!(Layout::new(twice, 1), Err(ModelError::Layout(_))));
        assert!(Layout::new(Vec::new(), 1).is_err());
    }
}
