//! Training the neural model: one network for every asset of a layout, on states with parts hidden the way the dataflow hides them, by Adam on the Gaussian negative log-likelihood of what was hidden.
//!
//! # Examples
//! Each epoch visits every training state once, in an order shuffled by
//! the seed. Each state gets a fresh mask drawn by the same generator, on
//! top of what its data lacks; one observed channel of the newest window,
//! c, is always among what is hidden:
//! - c in the newest window only (30 %): a channel scored against the
//!   others ([`AssetModel::log_likelihood`](crate::model::AssetModel)), or
//!   a window just lost;
//! - c at every lag and in its slow copies (20 %): a witness, predicted
//!   without its own past ([`History::hiding`](crate::model::History::hiding));
//! - c at every lag but not its slow copies (10 %): a channel gone for a few
//!   windows, whose slow copies still remember it;
//! - c's whole quantity at every lag and in the slow copies (10 %): the
//!   channels named like c up to a last `-N` (`vib-1`, `vib-2`);
//! - a random subset (30 %): each channel of the newest window with
//!   probability 0.3, every other slot with probability 0.15.
//!
//! The loss of an example is the Gaussian negative log-likelihood of each
//! hidden channel of the newest window that the data has, in standardised
//! units; a batch's loss is their mean.
//!
//! # Determinism
//! The initial weights, the order and the masks come from one seeded
//! generator, and the arithmetic is f64 on the CPU in a fixed order: the
//! same states, options and seed give the same weights.

use std::sync::Arc;

use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::{Dense, LOG_VARIANCE, Network, NeuralModel, Standardiser};
use crate::model::{Layout, ModelError};

/// The choices of a training run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NeuralOptions {
    /// Hidden layers, each `width` wide.
    pub hidden_layers: usize,
    pub width: usize,
    /// Passes over the training states.
    pub epochs: usize,
    /// Adam's step size at the start; it falls linearly to a tenth of it
    /// by the last epoch.
    pub learning_rate: f64,
    /// Examples per step.
    pub batch: usize,
    pub seed: u64,
}

impl Default for NeuralOptions {
    /// Two hidden layers of 128, 12 epochs, a step size of 0.002, batches of
    /// 256, seed 0.
    fn default() -> Self {
        NeuralOptions {
            hidden_layers: 2,
            width: 128,
            epochs: 12,
            learning_rate: 2e-3,
            batch: 256,
            seed: 0,
        }
    }
}

/// The models a training run made, one per asset, and how it went.
#[derive(Debug, Clone)]
pub struct Trained {
    /// In the order of the assets given, all sharing one network.
    pub models: Vec<NeuralModel>,
    /// The mean loss of each epoch's batches.
    pub losses: Vec<f64>,
    /// Training examples per epoch.
    pub examples: usize,
}

/// One asset to learn from: its layout and its states (in state order, see
/// [`Layout`]), one per window.
#[derive(Debug, Clone, Copy)]
pub struct AssetStates<'a> {
    pub layout: &'a Layout,
    pub states: &'a [Vec<Option<f64>>],
}

/// Trains one network on every asset's states (see the module doc);
/// `on_epoch` is told each epoch's number and mean loss as it ends. The
/// assets' layouts must have the same channel names, lags and slow copies.
pub fn train(
    assets: &[AssetStates],
    options: &NeuralOptions,
    mut on_epoch: impl FnMut(usize, f64),
) -> Result<Trained, ModelError> {
    let Some(first) = assets.first() else {
        return Err(ModelError::Layout("no asset to train a network on".into()));
    };
    let layout = first.layout;
    let names = |l: &Layout| {
        l.channels()
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
    };
    if let Some(other) = assets.iter().find(|a| {
        names(a.layout) != names(layout)
            || a.layout.lags() != layout.lags()
            || a.layout.smoothed() != layout.smoothed()
    }) {
        return Err(ModelError::Layout(format!(
            "one network serves assets of one layout: {:?} and {:?} differ",
            names(layout),
            names(other.layout)
        )));
    }
    if options.hidden_layers == 0 || options.width == 0 || options.batch == 0 {
        return Err(ModelError::Layout(
            "a network needs a hidden layer, a width and a batch of at least 1".into(),
        ));
    }
    let len = layout.state_len();
    let channels = layout.channel_count();
    let standardisers: Vec<Standardiser> = assets
        .iter()
        .map(|a| Standardiser::fit(a.states, len))
        .collect();
    // Every (asset, window) with a channel of the newest window to hide.
    let rows: Vec<(usize, usize)> = assets
        .iter()
        .enumerate()
        .flat_map(|(a, asset)| {
            asset
                .states
                .iter()
                .enumerate()
                .filter(move |(_, s)| s[..channels].iter().any(Option::is_some))
                .map(move |(t, _)| (a, t))
        })
        .collect();
    if rows.is_empty() {
        return Err(ModelError::NotReady {
            absorbed: 0,
            needed: 1,
        });
    }

    let mut rng = Xoshiro256PlusPlus::seed_from_u64(options.seed);
    let vars = initial_weights(&mut rng, 2 * len, options, 2 * channels)?;
    let network = CandleNetwork {
        layers: vars
            .chunks(2)
            .map(|p| (p[0].as_tensor().clone(), p[1].as_tensor().clone()))
            .collect(),
        channels,
    };
    let mut optimiser = AdamW::new(
        vars.clone(),
        ParamsAdamW {
            lr: options.learning_rate,
            weight_decay: 0.0,
            ..ParamsAdamW::default()
        },
    )
    .map_err(network_error)?;
    let masks = Masks::new(layout);
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut losses = Vec::with_capacity(options.epochs);
    for epoch in 0..options.epochs {
        let progress = epoch as f64 / options.epochs.saturating_sub(1).max(1) as f64;
        optimiser.set_learning_rate(options.learning_rate * (1.0 - 0.9 * progress));
        shuffle(&mut order, &mut rng);
        let (mut sum, mut batches) = (0.0, 0usize);
        for chunk in order.chunks(options.batch) {
            let mut batch = Batch::default();
            for &row in chunk {
                let (a, t) = rows[row];
                masks.example(
                    &mut rng,
                    &assets[a].states[t],
                    &standardisers[a],
                    &mut batch,
                );
            }
            let loss = batch.loss(&network, len, channels).map_err(network_error)?;
            optimiser.backward_step(&loss).map_err(network_error)?;
            sum += loss.to_scalar::<f64>().map_err(network_error)?;
            batches += 1;
        }
        let mean = sum / batches as f64;
        losses.push(mean);
        on_epoch(epoch, mean);
    }

    let network = Arc::new(network.weights().map_err(network_error)?);
    let models = assets
        .iter()
        .zip(standardisers)
        .map(|(a, s)| NeuralModel::new(a.layout.clone(), Arc::clone(&network), s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Trained {
        models,
        losses,
        examples: rows.len(),
    })
}

fn network_error(e: candle_core::Error) -> ModelError {
    ModelError::Format(format!("neural network: {e}"))
}

/// The network as candle trains it: each layer's weight (out × in) and
/// bias, as variables of the optimiser.
pub(super) struct CandleNetwork {
    pub(super) layers: Vec<(Tensor, Tensor)>,
    pub(super) channels: usize,
}

impl CandleNetwork {
    /// [`Network`]'s forward pass on a batch (rows of encoded inputs): the
    /// mean and log-variance of each channel, each batch × channels.
    pub(super) fn forward(&self, input: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let mut h = input.clone();
        let last = self.layers.len() - 1;
        for (k, (weight, bias)) in self.layers.iter().enumerate() {
            h = h.matmul(&weight.t()?)?.broadcast_add(bias)?;
            if k < last {
                h = h.silu()?;
            }
        }
        let mean = h.narrow(1, 0, self.channels)?;
        let log_variance = h
            .narrow(1, self.channels, self.channels)?
            .clamp(LOG_VARIANCE.0, LOG_VARIANCE.1)?;
        Ok((mean, log_variance))
    }

    /// Its weights as they stand, for [`Network`] to run.
    pub(super) fn weights(&self) -> candle_core::Result<Network> {
        let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f64>();
        let layers = self
            .layers
            .iter()
            .map(|(w, b)| {
                Ok(Dense {
                    weight: flat(w)?,
                    bias: flat(b)?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Network {
            layers,
            channels: self.channels,
        })
    }
}

/// The layers' weights and biases, drawn as PyTorch's linear layers draw
/// them (uniform within ±1/√inputs); the output layer's a tenth of that, so
/// the untrained network predicts about the mean with about unit variance.
fn initial_weights(
    rng: &mut Xoshiro256PlusPlus,
    inputs: usize,
    options: &NeuralOptions,
    outputs: usize,
) -> Result<Vec<Var>, ModelError> {
    let mut sizes = vec![inputs];
    sizes.extend(std::iter::repeat_n(options.width, options.hidden_layers));
    sizes.push(outputs);
    let mut vars = Vec::new();
    for (k, pair) in sizes.windows(2).enumerate() {
        let (n_in, n_out) = (pair[0], pair[1]);
        let scale = if k + 2 == sizes.len() { 0.1 } else { 1.0 } / (n_in as f64).sqrt();
        let mut draw = |n: usize| -> Vec<f64> {
            (0..n)
                .map(|_| scale * (2.0 * rng.random::<f64>() - 1.0))
                .collect()
        };
        let weight = Tensor::from_vec(draw(n_out * n_in), (n_out, n_in), &Device::Cpu);
        let bias = Tensor::from_vec(draw(n_out), n_out, &Device::Cpu);
        for t in [weight, bias] {
            vars.push(
                t.and_then(|t| Var::from_tensor(&t))
                    .map_err(network_error)?,
            );
        }
    }
    Ok(vars)
}

/// Fisher–Yates, with the training's generator.
fn shuffle(order: &mut [usize], rng: &mut Xoshiro256PlusPlus) {
    for i in (1..order.len()).rev() {
        let j = rng.random_range(0..=i);
        order.swap(i, j);
    }
}

/// Which state slots each way of hiding a channel covers.
struct Masks {
    channels: usize,
    /// Per channel: its slots at every lag.
    lagged: Vec<Vec<usize>>,
    /// Per channel: its slots at every lag and in its slow copies.
    every: Vec<Vec<usize>>,
    /// Per channel: the channels of its quantity (itself included).
    quantity: Vec<Vec<usize>>,
    len: usize,
}

/// A channel name up to a last `-N`: `vib-1` → `vib`, `current` → `current`.
pub(super) fn quantity_of(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((stem, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => stem,
        _ => name,
    }
}

impl Masks {
    fn new(layout: &Layout) -> Self {
        let channels = layout.channel_count();
        let len = layout.state_len();
        let lagged = (0..channels)
            .map(|c| (0..=layout.lags()).map(|lag| lag * channels + c).collect())
            .collect();
        let every = (0..channels)
            .map(|c| (0..len).filter(|&i| layout.state_channel(i) == c).collect())
            .collect();
        let names: Vec<&str> = layout
            .channels()
            .iter()
            .map(|c| quantity_of(&c.name))
            .collect();
        let quantity = (0..channels)
            .map(|c| (0..channels).filter(|&d| names[d] == names[c]).collect())
            .collect();
        Masks {
            channels,
            lagged,
            every,
            quantity,
            len,
        }
    }

    /// Adds `state` to `batch` with a mask drawn (see the module doc).
    fn example(
        &self,
        rng: &mut Xoshiro256PlusPlus,
        state: &[Option<f64>],
        standardiser: &Standardiser,
        batch: &mut Batch,
    ) {
        let observed: Vec<usize> = (0..self.channels).filter(|&c| state[c].is_some()).collect();
        let c = observed[rng.random_range(0..observed.len())];
        let mut hidden = vec![false; self.len];
        let mut hide = |slots: &[usize]| slots.iter().for_each(|&i| hidden[i] = true);
        let draw = rng.random::<f64>();
        if draw < 0.3 {
            hide(&[c]);
        } else if draw < 0.5 {
            hide(&self.every[c]);
        } else if draw < 0.6 {
            hide(&self.lagged[c]);
        } else if draw < 0.7 {
            for &d in &self.quantity[c] {
                hide(&self.every[d]);
            }
        } else {
            hide(&[c]);
            for (i, slot) in hidden.iter_mut().enumerate() {
                let p = if i < self.channels { 0.3 } else { 0.15 };
                if rng.random::<f64>() < p {
                    *slot = true;
                }
            }
        }
        let masked: Vec<Option<f64>> = state
            .iter()
            .zip(&hidden)
            .map(|(v, &h)| if h { None } else { *v })
            .collect();
        standardiser.encode(&masked, &mut batch.input);
        for d in 0..self.channels {
            match state[d].filter(|_| hidden[d]) {
                Some(x) => {
                    batch
                        .target
                        .push((x - standardiser.mean[d]) / standardiser.std[d]);
                    batch.weight.push(1.0);
                }
                None => {
                    batch.target.push(0.0);
                    batch.weight.push(0.0);
                }
            }
        }
        batch.rows += 1;
    }
}

/// Training examples, row-major.
#[derive(Default)]
struct Batch {
    input: Vec<f64>,
    target: Vec<f64>,
    weight: Vec<f64>,
    rows: usize,
}

impl Batch {
    /// The mean Gaussian negative log-likelihood of the hidden channels
    /// (each ½ (ln σ² + (y − μ)²/σ²), in standardised units).
    fn loss(
        self,
        network: &CandleNetwork,
        len: usize,
        channels: usize,
    ) -> candle_core::Result<Tensor> {
        let count: f64 = self.weight.iter().sum();
        let device = Device::Cpu;
        let input = Tensor::from_vec(self.input, (self.rows, 2 * len), &device)?;
        let target = Tensor::from_vec(self.target, (self.rows, channels), &device)?;
        let weight = Tensor::from_vec(self.weight, (self.rows, channels), &device)?;
        let (mean, log_variance) = network.forward(&input)?;
        let squared = (target - mean)?.sqr()?;
        let nll = (log_variance.clone() + (squared * log_variance.neg()?.exp()?)?)?;
        (nll * weight)?.sum_all()?.affine(0.5 / count, 0.0)
    }
}
