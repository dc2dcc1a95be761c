//! Generative models in the dataflow: per asset, a model of its channels that learns from each fused window, imputes what is not measured, witnesses fusion and scores each window.
//!
//! # What a model of an asset sees
//! One channel per fused quantity of the asset (named by the quantity, e.g.
//! `temperature`; its values are the fused estimates, since the redundant
//! sensors measure one thing), then each of the asset's other channels (e.g.
//! `vib-1`, `current`, `flow`), with a few lags and slow copies of every
//! channel ([`ModelShape`]; see [`crate::model::Smoothed`]). A trained model
//! is matched to an asset by these channel names.
//!
//! # Checking itself as it goes
//! Each window the model predicts one measured channel, in turn, as if it
//! had been missing for a while (blind). Those errors choose what each
//! channel is predicted from ([`inputs`]) and how wide an imputed interval
//! must be to cover the truth ([`calibration`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use twinflow_engine::catalog::{AssetId, Catalog, SensorId};
use twinflow_engine::time::Micros;

use crate::align::{AlignedRow, Alignment};
use crate::fuse::FusedValue;
use crate::model::gaussian::{GaussianOptions, OnlineGaussian};
use crate::model::set::{MODELS_FILE, ModelSet};
use crate::model::{AssetModel, Channel, History, Layout, ModelError, ModelKind, Smoothed, load};
use crate::redundancy::Redundancy;
use crate::surprise_alarm::{AlarmOptions, Raised, SurpriseAlarm};
use crate::total_order::total_bits;
use calibration::Calibration;
use inputs::{InputChoice, Inputs};

pub mod calibration;
pub mod inputs;

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

/// The directory of `asset`'s model in `dir`: a model set's entry for it,
/// or `dir` itself when it holds one model rather than a set.
fn trained_model_dir(dir: &Path, asset: &str) -> Result<PathBuf, ModelError> {
    if !dir.join(MODELS_FILE).is_file() {
        return Ok(dir.to_path_buf());
    }
    let set = ModelSet::read(dir)?;
    let entry = set
        .assets
        .iter()
        .find(|e| e.asset == asset)
        .ok_or_else(|| {
            ModelError::Layout(format!(
                "the model set in {} has no model for asset {asset}",
                dir.display()
            ))
        })?;
    Ok(ModelSet::model_dir(dir, entry))
}

/// Which model each asset runs.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// An [`OnlineGaussian`] per asset that starts empty and learns as the
    /// windows pass (no training step).
    Online(GaussianOptions),
    /// Models trained beforehand, in a directory: a model set (its
    /// `models.json` names each asset's model directory, which assets may
    /// share; see [`crate::model::set`]), or one model's directory, shared by
    /// every asset. A trained model still learns online if its kind does.
    Trained(PathBuf),
}

/// The choices of the model stage.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOptions {
    pub source: ModelSource,
    pub shape: ModelShape,
    /// Windows an online model learns from before it imputes, scores and
    /// witnesses fusion; a trained model does from its first window.
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
                let model = load(&trained_model_dir(dir, &self.catalog.asset(asset).asset)?)?;
                if !model.layout().same_shape(&layout) {
                    return Err(ModelError::Layout(format!(
                        "the model in {} covers {:?} (lags {}, {} slow copies); asset {} needs \
                         {:?} (lags {}, {} slow copies)",
                        dir.display(),
                        model.layout().names(),
                        model.layout().lags(),
                        model.layout().smoothed().len(),
                        self.catalog.asset(asset).asset,
                        layout.names(),
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
            calibration: Calibration::new(layout.channel_count()),
            trained: matches!(self.options.source, ModelSource::Trained(_)),
            inputs: InputChoice::new(layout.channel_count()),
            sensors,
            history: History::new(&layout),
            quantities: self.redundancy.quantities().len(),
            channels,
            model,
            last_start_us: None,
            warm_up: match self.options.source {
                ModelSource::Online(_) => self.options.warm_up,
                ModelSource::Trained(_) => 0,
            },
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
    /// How much wider than predicted imputed intervals must be, and how far
    /// off the asset's level.
    calibration: Calibration,
    /// Whether the model was trained beforehand (on other assets, perhaps).
    trained: bool,
    /// What each channel is best predicted from.
    inputs: InputChoice,
    /// Per layout position, the sensor an alarm names.
    sensors: Vec<SensorId>,
}

/// Rounds of blind checks per comparison of the two ways to predict a
/// channel: the choice changes slowly, and each check costs a conditioning.
const COMPARE_EVERY: u64 = 4;

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
                witnesses[quantity] = self
                    .predict(&self.history.hiding(&hidden), position)
                    .map(|(value, _)| value)
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
        if ready {
            self.calibrate();
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

    /// The model's prediction of the channel at `position` from what
    /// `inputs` sees of `history`, within reason (see `within_reason`), and
    /// whether it is the model's own (not a stand-in for an extrapolation).
    fn predict_from(
        &self,
        inputs: Inputs,
        history: &History,
        position: usize,
    ) -> Option<((f64, f64), bool)> {
        let p = self
            .model
            .predict(&inputs.view(history), &[position])
            .ok()?;
        let raw = (p.mean[0], p.variance(0));
        let reasoned = self.within_reason(position, raw)?;
        Some((reasoned, reasoned.0 == raw.0))
    }

    /// The channel at `position` predicted from `history` the best way
    /// that does not extrapolate (see [`inputs`]), else the best way's
    /// stand-in; and whether a way extrapolated.
    fn predict(&self, history: &History, position: usize) -> Option<((f64, f64), bool)> {
        self.choose(position, |inputs| {
            self.predict_from(inputs, history, position)
        })
    }

    /// Of the predictions of the channel at `position` each way (as
    /// `predict_from` gives them, asked for best way first, only as far as
    /// needed), the best way's that does not extrapolate, else the best
    /// way's stand-in; and whether a way extrapolated.
    fn choose(
        &self,
        position: usize,
        mut each_way: impl FnMut(Inputs) -> Option<((f64, f64), bool)>,
    ) -> Option<((f64, f64), bool)> {
        let mut stand_in = None;
        for inputs in self.inputs.ranked(position) {
            match each_way(inputs) {
                Some((value, true)) => return Some((value, stand_in.is_some())),
                Some((value, false)) => {
                    stand_in.get_or_insert(value);
                }
                None => {}
            }
        }
        stand_in.map(|value| (value, true))
    }

    /// Predicts the next channel in turn blind, as if it had been missing
    /// for a while (hidden at every lag and in its slow copies, and the
    /// channels standing out hidden too), and records the errors: the
    /// prediction an imputation would make calibrates imputed variances
    /// ([`calibration`]), and the predictions each way ([`inputs`]) choose
    /// the way from now on. A channel not observed in this window, or
    /// standing out, is not checked.
    fn calibrate(&mut self) {
        let (position, round) = self.calibration.next_channel();
        let Some(actual) = self.history.current()[position] else {
            return;
        };
        if self.outliers.contains(&position) {
            return;
        }
        let mut hidden = self.outliers.clone();
        hidden.push(position);
        let blind = self.history.hiding(&hidden);
        // Both ways (where they differ) in one round of checks in
        // `COMPARE_EVERY`; the imputation's choice among them, or made
        // afresh.
        let each_way = (self.history.has_slow_copies() && round % COMPARE_EVERY == 0)
            .then(|| Inputs::BOTH.map(|inputs| self.predict_from(inputs, &blind, position)));
        let imputation = match &each_way {
            Some(ways) => self.choose(position, |inputs| {
                ways[Inputs::BOTH.iter().position(|&i| i == inputs)?]
            }),
            None => self.predict(&blind, position),
        };
        if let Some(((mean, variance), _)) = imputation.filter(|&((_, v), _)| v > 0.0) {
            self.calibration
                .record(position, (actual - mean) / variance.sqrt(), actual - mean);
        }
        if let Some([Some(((everything, _), _)), Some(((recent, _), _))]) = each_way {
            self.inputs.record(
                position,
                [(actual - everything).powi(2), (actual - recent).powi(2)],
            );
        }
    }

    /// The channels not measured, estimated; and whether the model
    /// extrapolated any of them (see `within_reason`).
    fn impute(
        &self,
        row: &AlignedRow,
        fused: &[Option<FusedValue>],
        ready: bool,
    ) -> (Vec<Imputed>, bool) {
        // A channel missing now is predicted without its slow copies, as
        // the blind checks that calibrate it and choose its predictor are:
        // through a long gap they only grow stale (an idle plant's flow
        // was imputed at its last minutes of full load).
        let mut hidden = self.outliers.clone();
        hidden.extend((0..self.channels.len()).filter(|&c| self.history.current()[c].is_none()));
        let given = self.history.hiding(&hidden);
        let extrapolated = std::cell::Cell::new(false);
        let model = |position: usize| {
            if !ready {
                return None;
            }
            let ((value, variance), stand_in) = self.predict(&given, position)?;
            if stand_in {
                extrapolated.set(true);
            }
            let variance = variance * self.calibration.variance_factor(position);
            Some((value, variance, ImputedBy::Model(self.model.kind())))
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
                    // A trained model keeps a fused quantity at this asset's
                    // level (ambient temperature, a line's resistance)
                    // through a gap where no sensor of it is believed: its
                    // recent mean blind error is added back. (On the fast
                    // own channels the same offset did harm through gaps,
                    // and an online model, which learns the asset's level
                    // itself, imputed worse with it.)
                    let offset = if self.trained {
                        self.calibration.offset(*position)
                    } else {
                        0.0
                    };
                    let model = |position: usize| {
                        model(position).map(|(value, variance, by)| (value + offset, variance, by))
                    };
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
