//! Fusion: the redundant sensors of one quantity on an asset combined into one value with its variance.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Operator;
use twinflow_engine::catalog::{AssetId, Catalog};
use twinflow_engine::time::Micros;

use crate::align::{AlignedRow, Alignment};
use crate::asset_models::{AssetModelState, AssetModels, Imputed, WindowSurprise};
use crate::redundancy::{Group, Redundancy};
use crate::total_order::total_bits;
use crate::trust::{SensorTrust, Suspect, TrustState};

/// One fused quantity of one asset and window.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct FusedValue {
    pub value: f64,
    /// The variance of the estimate of the window's true value (not of one
    /// reading): what an honest interval is built from.
    pub variance: f64,
    /// How many sensors' windows were absorbed.
    pub sensors: u32,
}

crate::total_order_by_key!(FusedValue, |f: &FusedValue| (
    total_bits(f.value),
    total_bits(f.variance),
    f.sensors
));

impl FusedValue {
    /// The central 95 % interval of a normal estimate: value ± 1.96 σ.
    pub fn interval95(&self) -> (f64, f64) {
        let half = Z_95 * self.variance.sqrt();
        (self.value - half, self.value + half)
    }
}

/// The two-sided 95 % quantile of the standard normal.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// An aligned row with its fused quantities; `values` are indexed like
/// [`Fusion::quantities`], `None` where no sensor of the quantity reported.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FusedRow {
    pub row: AlignedRow,
    pub values: Vec<Option<FusedValue>>,
    /// How far each redundant sensor of the asset was believed in this
    /// window, in the order of the asset's groups and their members.
    pub trust: Vec<SensorTrust>,
    /// Sensors found lying in this window.
    pub suspects: Vec<Suspect>,
    /// The channels not measured in this window, estimated (with a model
    /// stage; see [`crate::asset_models`]).
    pub imputed: Vec<Imputed>,
    /// How well the window's channels fit together under the asset's model.
    pub surprise: Option<Box<WindowSurprise>>,
}

impl FusedRow {
    pub fn asset(&self) -> AssetId {
        self.row.asset
    }

    pub fn start_us(&self) -> Micros {
        self.row.start_us
    }
}

/// A way of fusing an asset's aligned rows into quantities.
pub trait Fusion: Send + Sync + 'static {
    /// Names of the fused quantities, in the order of [`FusedRow::values`].
    fn quantities(&self) -> &[String];
    /// The fusion of one asset, made on its first row; it then sees the
    /// asset's rows one by one in window order.
    fn start(&self, asset: AssetId) -> Box<dyn AssetFusion>;
}

/// The fusion of one asset's rows, in window order (it may keep state).
pub trait AssetFusion {
    /// Fuses one row. `witnesses` holds, per quantity, an estimate (value,
    /// variance) of it that owes nothing to its sensors, if there is one: a
    /// model's prediction from the asset's other channels. A fusion may
    /// ignore it.
    fn fuse(&mut self, row: AlignedRow, witnesses: &[Option<(f64, f64)>]) -> FusedRow;
}

/// Inverse-variance weighting (TwinBench F): per asset, each redundant group
/// (see [`Redundancy`]) is fused as Σ(xᵢ/σᵢ²) / Σ(1/σᵢ²) over the sensors
/// measured in the window. Its variance is that estimate's, Σ(1/(σᵢ²nᵢ)) /
/// (Σ 1/σᵢ²)², since a window mean of nᵢ readings has variance σᵢ²/nᵢ.
/// Carried or interpolated values do not take part: they are not
/// measurements of this window. It believes every sensor: a sensor that lies
/// moves the fused value by its weight.
#[derive(Debug, Clone)]
pub struct InverseVariance {
    redundancy: Arc<Redundancy>,
}

impl InverseVariance {
    /// Groups from the catalog (see [`Redundancy::from_catalog`]).
    pub fn from_catalog(catalog: &Catalog, alignment: &Alignment) -> Self {
        Self::new(Redundancy::from_catalog(catalog, alignment))
    }

    pub fn new(redundancy: Redundancy) -> Self {
        InverseVariance {
            redundancy: Arc::new(redundancy),
        }
    }

    /// The fused quantities of one row (indexed like [`Fusion::quantities`]),
    /// and each redundant sensor's trust record appended to `trust`.
    pub fn fuse_row(
        &self,
        row: &AlignedRow,
        trust: &mut Vec<SensorTrust>,
    ) -> Vec<Option<FusedValue>> {
        let mut values = vec![None; self.redundancy.quantities().len()];
        for group in self.redundancy.groups(row.asset) {
            values[group.quantity] = Self::fuse_group(group, row, Some(&mut *trust));
        }
        values
    }

    /// One quantity of one row, and no trust records: what the spec's
    /// checksum and comparisons with it need.
    pub fn fuse_quantity(&self, row: &AlignedRow, quantity: usize) -> Option<FusedValue> {
        let groups = self.redundancy.groups(row.asset);
        let group = groups.iter().find(|g| g.quantity == quantity)?;
        Self::fuse_group(group, row, None)
    }

    /// Fuses one group of a row, and appends each member's trust record to
    /// `trust` if given.
    fn fuse_group(
        group: &Group,
        row: &AlignedRow,
        trust: Option<&mut Vec<SensorTrust>>,
    ) -> Option<FusedValue> {
        let (mut weighted, mut weights, mut spread, mut sensors) = (0.0, 0.0, 0.0, 0);
        for member in &group.members {
            if let Some((x, window)) = row.values[member.slot].measurement() {
                let weight = 1.0 / (member.sigma * member.sigma);
                weighted += weight * x;
                weights += weight;
                spread += weight / window.readings.max(1) as f64;
                sensors += 1;
            }
        }
        let fused = (sensors > 0).then(|| FusedValue {
            value: weighted / weights,
            variance: spread / (weights * weights),
            sensors,
        });
        let Some(trust) = trust else {
            return fused;
        };
        for member in &group.members {
            let measured = row.values[member.slot].measurement();
            let weight = 1.0 / (member.sigma * member.sigma);
            trust.push(SensorTrust {
                sensor: member.sensor,
                trust: 1.0,
                weight: if measured.is_some() {
                    weight / weights
                } else {
                    0.0
                },
                state: TrustState::Trusted,
                residual: measured.zip(fused).map(|((x, window), f)| {
                    let variance = member.sigma * member.sigma / window.readings.max(1) as f64;
                    (x - f.value) / variance.sqrt()
                }),
            });
        }
        fused
    }
}

impl Fusion for InverseVariance {
    fn quantities(&self) -> &[String] {
        self.redundancy.quantities()
    }

    fn start(&self, _asset: AssetId) -> Box<dyn AssetFusion> {
        Box::new(self.clone())
    }
}

impl AssetFusion for InverseVariance {
    fn fuse(&mut self, row: AlignedRow, _witnesses: &[Option<(f64, f64)>]) -> FusedRow {
        let mut trust = Vec::new();
        let values = self.fuse_row(&row, &mut trust);
        FusedRow {
            row,
            values,
            trust,
            suspects: Vec::new(),
            imputed: Vec::new(),
            surprise: None,
        }
    }
}

/// Fuses aligned rows.
pub trait FuseRows<'s> {
    /// Extends each aligned row into a [`FusedRow`], at the row's timestamp,
    /// on the row's worker, with one [`AssetFusion`] per asset; and, given
    /// [`AssetModels`], one model per asset that witnesses its fusion,
    /// imputes what is not measured and scores each window (see
    /// [`crate::asset_models`]).
    ///
    /// Guarantee: each asset's fusion sees the asset's rows in window order,
    /// whatever the number of workers, so its output is as deterministic as
    /// alignment's. Alignment emits an asset's rows in window order on the
    /// asset's worker, and this operator takes its input on the same worker
    /// (no exchange), in the order it was sent.
    ///
    /// ```
    /// use twinflow_engine::catalog::{AssetRecord, Catalog, SensorRecord};
    /// use twinflow_operators::align::{AlignedRow, AlignedValue, Alignment, Fill, WindowShape};
    /// use twinflow_operators::fuse::{Fusion, InverseVariance};
    ///
    /// let asset = AssetRecord { asset: "a".into(), line: "l".into(), site: "s".into(), kind: "k".into() };
    /// // σ = 1 and σ = 2: weights 1 and 1/4.
    /// let sensor = |channel: &str, sigma| SensorRecord {
    ///     sensor: format!("a/{channel}"), asset: "a".into(), channel: channel.into(),
    ///     kind: "temperature".into(), sigma, min: -50.0, max: 250.0, rate_hz: None, quantity: None,
    /// };
    /// let catalog = Catalog::new(vec![asset], vec![sensor("t1", 1.0), sensor("t2", 2.0)]).unwrap();
    /// let alignment = Alignment::from_catalog(&catalog, 1_000_000, Fill::CarryForward { max_age: 0 });
    /// let fusion = InverseVariance::from_catalog(&catalog, &alignment);
    /// // Window means of 10 readings each.
    /// let shape = WindowShape { readings: 10, spread: None, ahead: 0 };
    /// let measured = |x| AlignedValue::measured(x, shape, Some(0));
    /// let row = AlignedRow { asset: 0, start_us: 0, end_us: 1_000_000, values: vec![measured(10.0), measured(20.0)] };
    /// let fused = fusion.start(0).fuse(row, &[None]);
    /// let t = fused.values[0].unwrap();
    /// assert_eq!(fusion.quantities(), ["temperature"]);
    /// assert!((t.value - 12.0).abs() < 1e-12); // (10·1 + 20·¼) / 1¼
    /// // (1/10 + ¼/10) / (1¼)²: the variance of the estimate, not of a reading.
    /// assert!((t.variance - 0.08).abs() < 1e-12);
    /// assert!((fused.trust[0].weight - 0.8).abs() < 1e-12);
    /// ```
    fn fuse(
        self,
        fusion: Arc<dyn Fusion>,
        models: Option<Arc<AssetModels>>,
    ) -> Stream<'s, Micros, Vec<FusedRow>>;
}

impl<'s> FuseRows<'s> for Stream<'s, Micros, Vec<AlignedRow>> {
    fn fuse(
        self,
        fusion: Arc<dyn Fusion>,
        models: Option<Arc<AssetModels>>,
    ) -> Stream<'s, Micros, Vec<FusedRow>> {
        self.unary(Pipeline, "Fuse", move |_, _| {
            let mut assets: FxHashMap<AssetId, AssetState> = FxHashMap::default();
            // Without a model, no quantity has a witness.
            let no_witnesses = vec![None; fusion.quantities().len()];
            move |input, output| {
                input.for_each(|time, rows| {
                    let fused = rows.drain(..).map(|row| {
                        let asset = assets.entry(row.asset).or_insert_with(|| AssetState {
                            last_us: Micros::MIN,
                            fusion: fusion.start(row.asset),
                            // `AssetModels::new` has started every asset's
                            // trained model once: this cannot fail.
                            model: models.as_ref().and_then(|m| {
                                m.start(row.asset).expect("checked by AssetModels::new")
                            }),
                        });
                        assert!(
                            row.start_us > asset.last_us,
                            "fusion saw asset {}'s rows out of window order",
                            row.asset
                        );
                        asset.last_us = row.start_us;
                        match &mut asset.model {
                            None => asset.fusion.fuse(row, &no_witnesses),
                            Some(model) => {
                                let witnesses = model.witnesses(&row);
                                let mut fused = asset.fusion.fuse(row, &witnesses);
                                let (imputed, surprise) = model.conclude(&fused.row, &fused.values);
                                fused.imputed = imputed;
                                fused.surprise = surprise.map(Box::new);
                                fused
                            }
                        }
                    });
                    output.session(&time).give_iterator(fused);
                })
            }
        })
    }
}

/// What the fuse operator keeps per asset.
struct AssetState {
    last_us: Micros,
    fusion: Box<dyn AssetFusion>,
    model: Option<AssetModelState>,
}
