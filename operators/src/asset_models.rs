//! Generative models in the dataflow: per asset, a model of its channels that learns from each fused window, imputes what is not measured, witnesses fusion and scores each window.
//!
//! # What a model of an asset sees
//! One channel per fused quantity of the asset (named by the quantity, e.g.
//! `temperature`; its values are the fused estimates, since the redundant
//! sensors measure one thing), then each of the asset's other channels (e.g.
//! `vib-1`, `current`, `flow`), with a few lags and slow copies of every
//! channel ([`ModelShape`]; see [`crate::model::Smoothed`]). A trained model
//! is matched to an asset by these channel names.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use twinflow_engine::catalog::{AssetId, Catalog, SensorId};
use twinflow_engine::time::Micros;

use crate::align::{AlignedRow, Alignment};
use crate::fuse::FusedValue;
use crate::model::gaussian::{GaussianOptions, OnlineGaussian};
use crate::model::{AssetModel, Channel, History, Layout, ModelError, ModelKind, Smoothed, load};
use crate::redundancy::Redundancy;
use crate::surprise_alarm::{AlarmOptions, Raised, SurpriseAlarm};
use crate::total_order::total_bits;

/// The lags and slow copies of an asset model's layout.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelShape {
    /// Past windows in the state.
    pub lags: usize,
    /// Time constants (in windows) of the slow copies kept of every channel.
    pub smoothing: Vec<f64>,
}

impl Default for ModelShape {
    /// Two lags, and slow copies over a minute and five minutes of 1 s
    /// windows: TwinBench's temperature follows load with a time constant of
    /// minutes.
    fn default() -> Self {
        ModelShape {
            lags: 2,
            smoothing: vec![60.0, 300.0],
        }
    }
}

/// The layout of `asset`'s model (see the module doc): its fused quantities
/// first, in the order of [`Redundancy::quantities`], each at its group's
/// first member's alignment index; then its channels outside every group, in
/// alignment order. `None` for an asset without a sensor.
pub fn asset_layout(
    catalog: &Catalog,
    alignment: &Alignment,
    redundancy: &Redundancy,
    asset: AssetId,
    shape: &ModelShape,
) -> Result<Option<Layout>, ModelError> {
    let groups = redundancy.groups(asset);
    let mut channels: Vec<Channel> = groups
        .iter()
        .map(|g| Channel {
            index: g.members[0].slot,
            name: redundancy.quantities()[g.quantity].clone(),
        })
        .collect();
    let grouped = |slot: usize| {
        groups
            .iter()
            .any(|g| g.members.iter().any(|m| m.slot == slot))
    };
    let mut own: Vec<usize> = catalog
        .sensors()
        .iter()
        .enumerate()
        .filter(|&(id, _)| catalog.asset_of(id as u32) == asset)
        .map(|(id, _)| alignment.slot_of(id as u32).1)
        .filter(|&slot| !grouped(slot))
        .collect();
    own.sort_unstable();
    own.dedup();
    channels.extend(own.into_iter().map(|slot| Channel {
        index: slot,
        name: alignment.channels()[slot].clone(),
    }));
    if channels.is_empty() {
        return Ok(None);
    }
    let smoothed = (0..channels.len())
        .flat_map(|channel| {
            shape
                .smoothing
                .iter()
                .map(move |&windows| Smoothed { channel, windows })
        })
        .collect();
    Layout::new(channels, shape.lags)?
        .with_smoothed(smoothed)
        .map(Some)
}

/// Which model each asset runs.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// An [`OnlineGaussian`] per asset that starts empty and learns as the
    /// windows pass (no training step).
    Online(GaussianOptions),
    /// Models trained beforehand, in a directory: `DIR/<asset>/` for an
    /// asset's own model, else `DIR` itself for one model shared by all (see
    /// [`crate::model::load`]). A trained model still learns online if its
    /// kind does.
    Trained(PathBuf),
}

/// The choices of the model stage.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOptions {
    pub source: ModelSource,
    pub shape: ModelShape,
    /// Windows a model learns from before its predictions witness fusion.
    pub warm_up: u64,
    /// A channel whose value is this many σ from the model's prediction
    /// (given all the others) is left out of what the model learns from:
    /// an attack or a fault must not teach the model that it is normal.
    pub learn_within: f64,
    /// The `model_nll` detector.
    pub alarm: AlarmOptions,
}

impl Default for ModelOptions {
    /// An online Gaussian (its joint worked out every 8 windows once it
    /// has settled); five minutes of warm-up; learns what is within 5 σ.
    fn default() -> Self {
        ModelOptions {
            source: ModelSource::Online(GaussianOptions {
                refresh_every: 8,
                ..GaussianOptions::default()
            }),
            shape: ModelShape::default(),
            warm_up: 300,
            learn_within: 5.0,
            alarm: AlarmOptions::default(),
        }
    }
}

/// Where an imputed value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ImputedBy {
    /// The channel's quantity was fused from the asset's other sensors of it.
    Fusion,
    /// The asset's model predicted it from the other channels.
    Model(ModelKind),
}

impl ImputedBy {
    /// The name in `imputed/`'s `model` column.
    pub fn name(self) -> &'static str {
        match self {
            ImputedBy::Fusion => "fusion",
            ImputedBy::Model(kind) => kind.name(),
        }
    }
}

/// A channel not measured in a window, estimated.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Imputed {
    /// The channel's index in the alignment.
    pub slot: usize,
    pub value: f64,
    /// The variance of the estimate of the channel's true window value.
    pub variance: f64,
    pub by: ImputedBy,
}

crate::total_order_by_key!(Imputed, |i: &Imputed| (
    i.slot,
    total_bits(i.value),
    total_bits(i.variance),
    i.by
));

/// How surprising a window is under its asset's model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WindowSurprise {
    /// −ln p(the channels observed in the window | the observed past).
    pub nll: f64,
    /// Each observed channel's z against its prediction from all the others,
    /// most surprising first: (alignment index of the channel or of its
    /// quantity's first sensor, layout name, z).
    pub channels: Vec<(usize, String, f64)>,
    /// The alarm this window raised, if any (see [`crate::surprise_alarm`]).
    pub alarm: Option<ModelAlarm>,
}

crate::total_order_by_key!(WindowSurprise, |s: &WindowSurprise| (
    total_bits(s.nll),
    s.channels
        .iter()
        .map(|(slot, name, z)| (*slot, name.clone(), total_bits(*z)))
        .collect::<Vec<_>>(),
    s.alarm.as_ref().map(|a| (
        a.sensor,
        a.start_us,
        a.value.map(total_bits),
        total_bits(a.score),
        a.evidence.clone()
    ))
));

/// A channel that keeps not fitting the asset's other channels: the
/// `model_nll` detector's alarm.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelAlarm {
    /// The channel's sensor (a fused quantity's first sensor).
    pub sensor: SensorId,
    pub start_us: Micros,
    /// The channel's value in the window.
    pub value: Option<f64>,
    /// The CUSUM that crossed the threshold.
    pub score: f64,
    /// The channels standing out, in words.
    pub evidence: String,
}

/// `flags/`'s name of this detector.
pub const MODEL_NLL: &str = "model_nll";

/// The models of every asset, made on each asset's first row (see [`ModelOptions`]).
pub struct AssetModels {
    catalog: Arc<Catalog>,
    alignment: Alignment,
    redundancy: Redundancy,
    options: ModelOptions,
}

impl AssetModels {
    /// Checks trained models up front (each asset's is loaded and its
    /// channels compared with the asset's), so a wrong model fails before
    /// the dataflow starts rather than on an asset's first row.
    pub fn new(
        catalog: Arc<Catalog>,
        alignment: Alignment,
        redundancy: Redundancy,
        options: ModelOptions,
    ) -> Result<Self, ModelError> {
        if let ModelSource::Trained(dir) = &options.source
            && !dir.is_dir()
        {
            return Err(ModelError::Io(format!(
                "{}: no such model directory",
                dir.display()
            )));
        }
        let models = AssetModels {
            catalog,
            alignment,
            redundancy,
            options,
        };
        if matches!(models.options.source, ModelSource::Trained(_)) {
            for asset in 0..models.catalog.assets().len() {
                models.start(asset as AssetId)?;
            }
        }
        Ok(models)
    }

    pub fn options(&self) -> &ModelOptions {
        &self.options
    }

    /// The model of `asset`, or `None` for an asset without channels. A
    /// trained model whose channels are not the asset's is an error.
    pub fn start(&self, asset: AssetId) -> Result<Option<AssetModelState>, ModelError> {
        let Some(layout) = asset_layout(
            &self.catalog,
            &self.alignment,
            &self.redundancy,
            asset,
            &self.options.shape,
        )?
        else {
            return Ok(None);
        };
        let model: Box<dyn AssetModel> = match &self.options.source {
            ModelSource::Online(options) => Box::new(OnlineGaussian::new(layout.clone(), *options)),
            ModelSource::Trained(dir) => {
                let own = dir.join(&self.catalog.asset(asset).asset);
                let model = load(if own.is_dir() { &own } else { dir })?;
                let names = |l: &Layout| -> Vec<String> {
                    l.channels().iter().map(|c| c.name.clone()).collect()
                };
                if names(model.layout()) != names(&layout)
                    || model.layout().lags() != layout.lags()
                    || model.layout().smoothed() != layout.smoothed()
                {
                    return Err(ModelError::Layout(format!(
                        "the model in {} covers {:?} (lags {}, {} slow copies); asset {} needs \
                         {:?} (lags {}, {} slow copies)",
                        dir.display(),
                        names(model.layout()),
                        model.layout().lags(),
                        model.layout().smoothed().len(),
                        self.catalog.asset(asset).asset,
                        names(&layout),
                        layout.lags(),
                        layout.smoothed().len()
                    )));
                }
                model
            }
        };
        let groups = self.redundancy.groups(asset);
        let channels = layout
            .channels()
            .iter()
            .enumerate()
            .map(|(position, channel)| {
                match groups.iter().find(|g| g.members[0].slot == channel.index) {
                    Some(group) => ModelChannel::Quantity {
                        quantity: group.quantity,
                        slots: group.members.iter().map(|m| m.slot).collect(),
                        position,
                    },
                    None => ModelChannel::Own {
                        slot: channel.index,
                        position,
                    },
                }
            })
            .collect();
        let sensor_on = |slot: usize| {
            (0..self.catalog.sensors().len() as SensorId)
                .find(|&s| self.alignment.slot_of(s) == (asset, slot))
                .expect("a layout channel is a sensor's")
        };
        let sensors = layout
            .channels()
            .iter()
            .map(|c| sensor_on(c.index))
            .collect();
        Ok(Some(AssetModelState {
            alarm: SurpriseAlarm::new(layout.channel_count(), self.options.alarm),
            sensors,
            history: History::new(&layout),
            quantities: self.redundancy.quantities().len(),
            channels,
            model,
            last_start_us: None,
            warm_up: self.options.warm_up,
            learn_within: self.options.learn_within,
            learnt: 0,
            outliers: Vec::new(),
        }))
    }
}

/// How a layout channel is read off a row.
#[derive(Debug, Clone)]
enum ModelChannel {
    /// A fused quantity measured by the sensors in `slots`.
    Quantity {
        quantity: usize,
        slots: Vec<usize>,
        position: usize,
    },
    /// A channel of its own.
    Own { slot: usize, position: usize },
}

/// One asset's model and its history, fed its rows in window order.
pub struct AssetModelState {
    model: Box<dyn AssetModel>,
    history: History,
    channels: Vec<ModelChannel>,
    quantities: usize,
    last_start_us: Option<Micros>,
    warm_up: u64,
    learn_within: f64,
    learnt: u64,
    /// Layout positions that stood out in the last window.
    outliers: Vec<usize>,
    alarm: SurpriseAlarm,
    /// Per layout position, the sensor an alarm names.
    sensors: Vec<SensorId>,
}

/// How many marginal σ from its mean a prediction may lie (see
/// `AssetModelState::within_reason`).
const MARGINAL_BAND: f64 = 3.0;

impl AssetModelState {
    /// Makes `row`'s window the newest, with its measured channels of their
    /// own (the fused quantities are not known yet), and returns the model's
    /// witness of each quantity (indexed like [`Redundancy::quantities`]):
    /// its prediction from the asset's other channels alone, the quantity
    /// hidden at every lag so that the witness owes nothing to the sensors
    /// it is to judge. `None` before the model has warmed up.
    pub fn witnesses(&mut self, row: &AlignedRow) -> Vec<Option<(f64, f64)>> {
        self.catch_up(row);
        let window: Vec<Option<f64>> = self
            .channels
            .iter()
            .map(|channel| match channel {
                ModelChannel::Own { slot, .. } => row.values[*slot].measurement().map(|m| m.0),
                ModelChannel::Quantity { .. } => None,
            })
            .collect();
        self.history.push(&window);
        let mut witnesses = vec![None; self.quantities];
        if self.learnt < self.warm_up {
            return witnesses;
        }
        for channel in &self.channels {
            if let ModelChannel::Quantity {
                quantity, position, ..
            } = *channel
            {
                let mut hidden = self.outliers.clone();
                hidden.push(position);
                let alone = self.history.hiding(&hidden);
                witnesses[quantity] = self
                    .model
                    .predict(&alone, &[position])
                    .ok()
                    .and_then(|p| self.within_reason(position, (p.mean[0], p.variance(0))))
                    .filter(|&(_, v)| v > 0.0);
            }
        }
        witnesses
    }

    /// Completes the newest window with the fused quantities, then scores it,
    /// imputes what was not measured and learns from it. Returns the
    /// imputed channels and the window's surprise (once warmed up).
    pub fn conclude(
        &mut self,
        row: &AlignedRow,
        fused: &[Option<FusedValue>],
    ) -> (Vec<Imputed>, Option<WindowSurprise>) {
        for channel in &self.channels {
            if let ModelChannel::Quantity {
                quantity, position, ..
            } = *channel
            {
                let value = fused[quantity].filter(|f| f.sensors > 0).map(|f| f.value);
                self.history.set_current(position, value);
            }
        }
        let ready = self.learnt >= self.warm_up;
        let mut surprise = ready.then(|| self.surprise()).flatten();
        if let Some(surprise) = &mut surprise {
            let observed: Vec<(usize, f64)> = surprise
                .channels
                .iter()
                .filter_map(|&(slot, _, z)| Some((self.position_of(slot)?, z)))
                .collect();
            surprise.alarm = self
                .alarm
                .observe(&observed)
                .map(|raised| self.model_alarm(row, &raised));
        }
        // A channel that stands out (a fault, an attack, or wear beyond
        // anything learnt) is no evidence about the others: the model would
        // extrapolate from it. It is left out of what the model learns, of
        // its imputations now and of its witnesses next window.
        // One wild channel makes the channels it couples with look wild
        // too (each is judged given the others): the most surprising is
        // taken out first, and the rest judged again without it.
        self.outliers.clear();
        let mut judged = surprise.clone();
        while let Some(top) = judged.as_ref().and_then(|s| s.channels.first())
            && top.2.abs() > self.learn_within
            && 2 * (self.outliers.len() + 1) < self.channels.len()
        {
            let Some(position) = self.position_of(top.0) else {
                break;
            };
            self.outliers.push(position);
            judged = self.surprise_in(&self.history.hiding(&self.outliers));
        }
        let (imputed, extrapolated) = self.impute(row, fused, ready);
        for &position in &self.outliers {
            self.history.set_current(position, None);
        }
        // The model fills in what is missing as it learns (EM); but not
        // from its own extrapolations, which it would learn as normal: over
        // one masked block during a bearing fault, flow's variance grew
        // 10-fold and its imputations ran to 695 on a 0–250 channel.
        if !extrapolated && self.history.current().iter().any(Option::is_some) {
            self.model.update(&self.history);
            self.learnt += 1;
        }
        (imputed, surprise)
    }

    /// A prediction of the channel at `position`, unless it is not finite;
    /// one outside the channel's marginal 99.7 % band (μ ± 3σ over all
    /// that was learnt) is the model extrapolating from inputs it has never
    /// seen together (a bearing fault's vibration had flow imputed at 695 on
    /// a 0–250 channel): the marginal stands in, and its variance owns up.
    fn within_reason(&self, position: usize, (value, variance): (f64, f64)) -> Option<(f64, f64)> {
        if !(value.is_finite() && variance.is_finite() && variance >= 0.0) {
            return None;
        }
        let (mean, spread) = self.model.marginal(position).ok()?;
        if (value - mean).powi(2) > MARGINAL_BAND * MARGINAL_BAND * spread {
            Some((mean, spread)).filter(|(m, v)| m.is_finite() && v.is_finite())
        } else {
            Some((value, variance))
        }
    }

    /// Pushes an unobserved window for each grid window skipped since the
    /// last row (as many as the history can remember).
    fn catch_up(&mut self, row: &AlignedRow) {
        let grid = (row.end_us - row.start_us).max(1);
        if let Some(last) = self.last_start_us {
            let skipped = ((row.start_us - last) / grid - 1).max(0) as usize;
            let remembered = self.memory();
            let none = vec![None; self.channels.len()];
            for _ in 0..skipped.min(remembered) {
                self.history.push(&none);
            }
        }
        self.last_start_us = Some(row.start_us);
    }

    /// Windows after which nothing pushed before is left in the history.
    fn memory(&self) -> usize {
        let layout = self.model.layout();
        let slowest = layout
            .smoothed()
            .iter()
            .map(|s| s.windows)
            .fold(0.0, f64::max);
        layout.lags() + 2 + (3.0 * slowest).ceil() as usize
    }

    fn model_alarm(&self, row: &AlignedRow, raised: &Raised) -> ModelAlarm {
        let names = self.model.layout().channels();
        let evidence = raised
            .standing
            .iter()
            .take(3)
            .map(|&(c, z)| format!("{} {z:+.1} usual σ", names[c].name))
            .collect::<Vec<_>>()
            .join(", ");
        ModelAlarm {
            sensor: self.sensors[raised.channel],
            start_us: row.start_us,
            value: self.history.current()[raised.channel],
            score: raised.score,
            evidence: format!(
                "{} keeps not fitting the asset's other channels: {evidence}",
                names[raised.channel].name
            ),
        }
    }

    fn position_of(&self, slot: usize) -> Option<usize> {
        self.channels.iter().find_map(|channel| match channel {
            ModelChannel::Own { slot: s, position } if *s == slot => Some(*position),
            ModelChannel::Quantity {
                slots, position, ..
            } if slots[0] == slot => Some(*position),
            _ => None,
        })
    }

    fn surprise(&self) -> Option<WindowSurprise> {
        self.surprise_in(&self.history)
    }

    fn surprise_in(&self, history: &History) -> Option<WindowSurprise> {
        let scored = self.model.log_likelihood(history).ok()?;
        if scored.channels.is_empty() || !scored.total.is_finite() {
            return None;
        }
        let layout = self.model.layout();
        let channels = scored
            .most_surprising()
            .iter()
            .map(|c| {
                let channel = &layout.channels()[c.channel];
                (channel.index, channel.name.clone(), c.z)
            })
            .collect();
        Some(WindowSurprise {
            nll: -scored.total,
            channels,
            alarm: None,
        })
    }

    /// The channels not measured, estimated; and whether the model
    /// extrapolated any of them (see `within_reason`).
    fn impute(
        &self,
        row: &AlignedRow,
        fused: &[Option<FusedValue>],
        ready: bool,
    ) -> (Vec<Imputed>, bool) {
        let predicted = if !ready {
            None
        } else if self.outliers.is_empty() {
            self.model.impute(&self.history).ok().flatten()
        } else {
            self.model
                .impute(&self.history.hiding(&self.outliers))
                .ok()
                .flatten()
        };
        let kind = self.model.kind();
        let extrapolated = std::cell::Cell::new(false);
        let model = |position: usize| {
            let p = predicted.as_ref()?;
            let i = p.channels.iter().position(|&c| c == position)?;
            let raw = (p.mean[i], p.variance(i));
            let (value, variance) = self.within_reason(position, raw)?;
            if value != raw.0 {
                extrapolated.set(true);
            }
            // The model's variance, grown by how far its predictions of this
            // channel usually fall short (its z² over recent windows).
            let variance = variance * self.alarm.usual(position).max(1.0);
            Some((value, variance, ImputedBy::Model(kind)))
        };
        let mut imputed = Vec::new();
        for channel in &self.channels {
            match channel {
                ModelChannel::Own { slot, position } => {
                    if row.values[*slot].measurement().is_none()
                        && let Some((value, variance, by)) = model(*position)
                    {
                        imputed.push(Imputed {
                            slot: *slot,
                            value,
                            variance,
                            by,
                        });
                    }
                }
                ModelChannel::Quantity {
                    quantity,
                    slots,
                    position,
                } => {
                    // With a fused value, the members not measured are
                    // imputed by it; without one (none measured, or none
                    // believed), every member is imputed by the model.
                    let fusion = fused[*quantity]
                        .filter(|f| f.sensors > 0)
                        .map(|f| (f.value, f.variance, ImputedBy::Fusion));
                    let believed = fusion.is_some();
                    let Some((value, variance, by)) = fusion.or_else(|| model(*position)) else {
                        continue;
                    };
                    imputed.extend(
                        slots
                            .iter()
                            .filter(|&&slot| !believed || row.values[slot].measurement().is_none())
                            .map(|&slot| Imputed {
                                slot,
                                value,
                                variance,
                                by,
                            }),
                    );
                }
            }
        }
        imputed.sort_by_key(|i| i.slot);
        (imputed, extrapolated.get())
    }
}

#[cfg(test)]
mod tests;
