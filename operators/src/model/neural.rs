//! The neural asset model: a masked denoising autoencoder (a small network trained on candle, on the CPU) that predicts each channel of the newest window, with its variance, from whatever else of the state is observed.
//!
//! # The network
//! Its input is the layout's state ([`Layout`]: the channels at t, t−1, …,
//! t−L and the slow copies), each slot standardised by the asset's own mean
//! and standard deviation of that slot over the training windows, and a 0/1
//! mask per slot: a missing value is given as 0 with its mask at 1. Hidden
//! layers of equal width with SiLU activations lead to two outputs per
//! channel of the newest window: a mean and a log-variance, in standardised
//! units. A prediction in the channel's units is the asset's mean plus its
//! standard deviation times the network's mean, with the variance scaled by
//! the standard deviation squared.
//!
//! One network serves every asset of a layout: what differs between assets
//! (levels, ranges) is in their standardisation, and all of an asset's
//! state is in its [`History`]; the network sees 40 times the data a
//! per-asset model would.
//!
//! # Training ([`train`])
//! Each training example is a state with some of it hidden the way the
//! dataflow hides it (one channel at t; a channel at every lag and in its
//! slow copies, as [`History::hiding`] does for a witness; a whole quantity;
//! random subsets), on top of the data's own gaps. The loss is the Gaussian
//! negative log-likelihood of the hidden channels of the newest window
//! (heteroscedastic: the network learns how sure it is of each prediction).
//!
//! # Predicting and scoring
//! [`AssetModel::predict`] hides the targets in the newest window and makes
//! one forward pass; the covariance it reports is diagonal (each target's
//! own variance given the inputs; the network gives no cross-covariance).
//! [`AssetModel::log_likelihood`] scores each observed channel against its
//! prediction from all the others (a forward pass each); its total is
//! the sum of those per-channel log-densities, a pseudo-likelihood (the
//! network has no joint density of the window). A trained network does not
//! learn online ([`AssetModel::update`] does nothing), and
//! [`AssetModel::marginal`] is a channel's training mean and variance.
//!
//! # On disk
//! `settings` (format, hidden layers, width), `standardise.mean` and
//! `standardise.std` (one per state slot) and per layer k `layer{k}.weight`
//! (out × in) and `layer{k}.bias`, all f64 in [`store`]'s safetensors file.
//! Every asset's directory holds the whole network, so each reads back on
//! its own as a model set requires.

pub mod train;

use std::path::Path;
use std::sync::Arc;

use nalgebra::{DMatrix, DVector};

use super::store::{self, Manifest, Tensor};
use super::{
    AssetModel, ChannelSurprise, History, Layout, LogLikelihood, ModelError, ModelKind, Prediction,
};

/// The version of the tensors' layout written in `settings`.
const FORMAT: f64 = 1.0;
/// Bounds of the network's log-variance, in standardised units: a
/// predictive standard deviation between e^−8 (3·10⁻⁴) and e^4 (55) of the
/// channel's spread, so that no prediction claims to be exact and none
/// runs away while training starts.
const LOG_VARIANCE: (f64, f64) = (-16.0, 8.0);
/// A slot's standard deviation is at least this times 1 + |its mean|: a
/// stuck channel must not divide by zero.
const SPREAD_FLOOR: f64 = 1e-9;
const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// One layer: y = W x + b, W row-major (outputs × inputs).
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    pub weight: Vec<f64>,
    pub bias: Vec<f64>,
}

impl Dense {
    fn inputs(&self) -> usize {
        self.weight.len() / self.bias.len()
    }
}

/// The network: its layers, each hidden one followed by SiLU.
///
/// It is trained on candle ([`train`]) and run here, in plain f64 one state
/// at a time: at one state per call candle's per-operation set-up and its
/// thread pool cost several times the arithmetic, and a plain loop sums in
/// one fixed order whatever the machine's threads.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    layers: Vec<Dense>,
    channels: usize,
}

/// x · sigmoid(x), as candle computes it.
fn silu(x: f64) -> f64 {
    x / ((-x).exp() + 1.0)
}

impl Network {
    /// The network's outputs for an encoded input ([`Standardiser::encode`]):
    /// the mean and the log-variance of each channel, in standardised units.
    fn forward(&self, input: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let mut h = input.to_vec();
        let last = self.layers.len() - 1;
        for (k, layer) in self.layers.iter().enumerate() {
            let n = layer.inputs();
            h = layer
                .weight
                .chunks_exact(n)
                .zip(&layer.bias)
                .map(|(row, b)| {
                    let y = row.iter().zip(&h).map(|(w, x)| w * x).sum::<f64>() + b;
                    if k < last { silu(y) } else { y }
                })
                .collect();
        }
        let log_variance = h
            .split_off(self.channels)
            .into_iter()
            .map(|v| v.clamp(LOG_VARIANCE.0, LOG_VARIANCE.1))
            .collect();
        (h, log_variance)
    }

    /// Hidden layers and their width.
    pub fn shape(&self) -> (usize, usize) {
        (self.layers.len() - 1, self.layers[0].bias.len())
    }

    fn input_len(&self) -> usize {
        self.layers[0].inputs()
    }
}

/// An asset's mean and standard deviation of each state slot.
#[derive(Debug, Clone, PartialEq)]
pub struct Standardiser {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Standardiser {
    /// Each slot's mean and standard deviation over the values observed in
    /// `states`; 0 and 1 for a slot never observed.
    pub fn fit(states: &[Vec<Option<f64>>], len: usize) -> Self {
        let mut n = vec![0.0; len];
        let mut mean = vec![0.0; len];
        let mut m2 = vec![0.0; len];
        for state in states {
            for (i, v) in state.iter().enumerate() {
                if let Some(x) = *v {
                    // Welford's update: no sums of squares.
                    n[i] += 1.0;
                    let delta = x - mean[i];
                    mean[i] += delta / n[i];
                    m2[i] += delta * (x - mean[i]);
                }
            }
        }
        let std = (0..len)
            .map(|i| {
                let variance = if n[i] > 1.0 {
                    m2[i] / (n[i] - 1.0)
                } else {
                    1.0
                };
                variance.sqrt().max(SPREAD_FLOOR * (1.0 + mean[i].abs()))
            })
            .collect();
        Standardiser { mean, std }
    }

    /// Appends the network's input for `state`: the standardised values (0
    /// where missing), then the masks (1 where missing).
    pub fn encode(&self, state: &[Option<f64>], into: &mut Vec<f64>) {
        into.extend(
            state
                .iter()
                .enumerate()
                .map(|(i, v)| v.map_or(0.0, |x| (x - self.mean[i]) / self.std[i])),
        );
        into.extend(state.iter().map(|v| if v.is_some() { 0.0 } else { 1.0 }));
    }
}

/// The neural model of one asset: a shared network and the asset's
/// standardisation (see the module doc).
#[derive(Debug, Clone)]
pub struct NeuralModel {
    layout: Layout,
    network: Arc<Network>,
    standardiser: Standardiser,
}

impl NeuralModel {
    /// The model of an asset of `layout` with `network` and its standardisation.
    pub fn new(
        layout: Layout,
        network: Arc<Network>,
        standardiser: Standardiser,
    ) -> Result<Self, ModelError> {
        let len = layout.state_len();
        if network.input_len() != 2 * len
            || network.channels != layout.channel_count()
            || standardiser.mean.len() != len
            || standardiser.std.len() != len
        {
            return Err(ModelError::Layout(format!(
                "a network of {} inputs and {} channels, standardising {} slots, does not fit a \
                 layout of {} channels and {len} state slots",
                network.input_len(),
                network.channels,
                standardiser.mean.len(),
                layout.channel_count()
            )));
        }
        Ok(NeuralModel {
            layout,
            network,
            standardiser,
        })
    }

    pub fn network(&self) -> &Arc<Network> {
        &self.network
    }

    pub fn standardiser(&self) -> &Standardiser {
        &self.standardiser
    }

    /// The predicted mean and variance of every channel of the newest
    /// window, in the channels' units, given `state`.
    fn forward_state(&self, state: &[Option<f64>]) -> Vec<(f64, f64)> {
        let mut input = Vec::with_capacity(2 * state.len());
        self.standardiser.encode(state, &mut input);
        let (mean, log_variance) = self.network.forward(&input);
        let s = &self.standardiser;
        mean.iter()
            .zip(&log_variance)
            .enumerate()
            .map(|(c, (m, v))| (s.mean[c] + s.std[c] * m, s.std[c] * s.std[c] * v.exp()))
            .collect()
    }

    /// Reads the model saved in `dir`, whose manifest is `manifest`.
    pub fn load_with(dir: &Path, manifest: &Manifest) -> Result<Self, ModelError> {
        manifest.expect_kind(ModelKind::Neural, dir)?;
        let layout = manifest.layout()?;
        let len = layout.state_len();
        let channels = layout.channel_count();
        let mut tensors = store::read_tensors(dir)?;
        let settings = store::take(&mut tensors, "settings", &[3], dir)?;
        if settings[0] != FORMAT {
            return Err(ModelError::Format(format!(
                "{}: neural tensors of format {} (this build reads {FORMAT})",
                dir.display(),
                settings[0]
            )));
        }
        let (depth, width) = (settings[1] as usize, settings[2] as usize);
        let standardiser = Standardiser {
            mean: store::take(&mut tensors, "standardise.mean", &[len], dir)?,
            std: store::take(&mut tensors, "standardise.std", &[len], dir)?,
        };
        let mut layers = Vec::with_capacity(depth + 1);
        for k in 0..=depth {
            let inputs = if k == 0 { 2 * len } else { width };
            let outputs = if k == depth { 2 * channels } else { width };
            let weight = store::take(
                &mut tensors,
                &format!("layer{k}.weight"),
                &[outputs, inputs],
                dir,
            )?;
            let bias = store::take(&mut tensors, &format!("layer{k}.bias"), &[outputs], dir)?;
            layers.push(Dense { weight, bias });
        }
        let network = Network { layers, channels };
        NeuralModel::new(layout, Arc::new(network), standardiser)
    }
}

impl AssetModel for NeuralModel {
    fn kind(&self) -> ModelKind {
        ModelKind::Neural
    }

    fn layout(&self) -> &Layout {
        &self.layout
    }

    /// A trained network does not learn online.
    fn update(&mut self, _history: &History) {}

    fn predict(&self, history: &History, targets: &[usize]) -> Result<Prediction, ModelError> {
        history.check(&self.layout)?;
        self.layout.check_targets(targets)?;
        let mut state = history.state().to_vec();
        for &t in targets {
            state[t] = None;
        }
        let p = self.forward_state(&state);
        Ok(Prediction {
            channels: targets.to_vec(),
            mean: DVector::from_iterator(targets.len(), targets.iter().map(|&t| p[t].0)),
            covariance: DMatrix::from_diagonal(&DVector::from_iterator(
                targets.len(),
                targets.iter().map(|&t| p[t].1),
            )),
        })
    }

    fn marginal(&self, channel: usize) -> Result<(f64, f64), ModelError> {
        self.layout.check_targets(&[channel])?;
        let std = self.standardiser.std[channel];
        Ok((self.standardiser.mean[channel], std * std))
    }

    fn log_likelihood(&self, history: &History) -> Result<LogLikelihood, ModelError> {
        history.check(&self.layout)?;
        let observed: Vec<(usize, f64)> = history
            .current()
            .iter()
            .enumerate()
            .filter_map(|(c, v)| v.map(|x| (c, x)))
            .collect();
        if observed.is_empty() {
            return Ok(LogLikelihood {
                total: 0.0,
                channels: Vec::new(),
            });
        }
        let states: Vec<Vec<Option<f64>>> = observed
            .iter()
            .map(|&(c, _)| {
                let mut state = history.state().to_vec();
                state[c] = None;
                state
            })
            .collect();
        let predicted: Vec<_> = states.iter().map(|s| self.forward_state(s)).collect();
        let channels: Vec<ChannelSurprise> = observed
            .iter()
            .zip(&predicted)
            .map(|(&(c, x), p)| {
                let (mean, variance) = p[c];
                let z = (x - mean) / variance.sqrt();
                ChannelSurprise {
                    channel: c,
                    log_density: -0.5 * (LN_2PI + variance.ln() + z * z),
                    z,
                }
            })
            .collect();
        Ok(LogLikelihood {
            total: channels.iter().map(|c| c.log_density).sum(),
            channels,
        })
    }

    fn save(&self, dir: &Path) -> Result<(), ModelError> {
        let (depth, width) = self.network.shape();
        let mut tensors = vec![
            Tensor::new(
                "settings",
                vec![3],
                vec![FORMAT, depth as f64, width as f64],
            ),
            Tensor::new(
                "standardise.mean",
                vec![self.standardiser.mean.len()],
                self.standardiser.mean.clone(),
            ),
            Tensor::new(
                "standardise.std",
                vec![self.standardiser.std.len()],
                self.standardiser.std.clone(),
            ),
        ];
        for (k, layer) in self.network.layers.iter().enumerate() {
            tensors.push(Tensor::new(
                &format!("layer{k}.weight"),
                vec![layer.bias.len(), layer.inputs()],
                layer.weight.clone(),
            ));
            tensors.push(Tensor::new(
                &format!("layer{k}.bias"),
                vec![layer.bias.len()],
                layer.bias.clone(),
            ));
        }
        store::save(
            dir,
            &Manifest::new(ModelKind::Neural, &self.layout),
            &tensors,
        )
    }
}

#[cfg(test)]
mod tests;
