//! Fusion: the redundant sensors of one quantity on an asset combined into one value with its variance.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Operator;
use twinflow_engine::catalog::{AssetId, Catalog};
use twinflow_engine::time::Micros;

use crate::align::{AlignedRow, Alignment, Source};
use crate::total_order::total_bits;

/// One fused quantity of one asset and window.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct FusedValue {
    pub value: f64,
    pub variance: f64,
    /// How many sensors contributed.
    pub sensors: u32,
}

crate::total_order_by_key!(FusedValue, |f: &FusedValue| (
    total_bits(f.value),
    total_bits(f.variance),
    f.sensors
));

/// An aligned row with its fused quantities; `values` are indexed like
/// [`Fusion::quantities`], `None` where no sensor of the quantity reported.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FusedRow {
    pub row: AlignedRow,
    pub values: Vec<Option<FusedValue>>,
}

impl FusedRow {
    pub fn asset(&self) -> AssetId {
        self.row.asset
    }

    pub fn start_us(&self) -> Micros {
        self.row.start_us
    }
}

/// A way of fusing an aligned row's channels into quantities.
pub trait Fusion: Send + Sync + 'static {
    /// Names of the fused quantities, in the order of [`FusedRow::values`].
    fn quantities(&self) -> &[String];
    /// Fuses one aligned row into `out` (one entry per quantity).
    fn fuse(&self, row: &AlignedRow, out: &mut Vec<Option<FusedValue>>);
}

/// The members of a redundant group: (channel index, weight 1/σ²).
type Members = Vec<(usize, f64)>;

/// Inverse-variance weighting (TwinBench F): per asset, the sensors of one
/// kind are redundant measurements of one quantity; the fused value is
/// Σ(xᵢ/σᵢ²) / Σ(1/σᵢ²) over those measured in the window, with variance
/// 1 / Σ(1/σᵢ²). Carried or interpolated values do not take part: they are not
/// measurements of this window.
#[derive(Debug, Clone)]
pub struct InverseVariance {
    quantities: Vec<String>,
    /// Per asset: its redundant groups, each a quantity index and members.
    groups: Vec<Vec<(usize, Members)>>,
}

impl InverseVariance {
    /// A quantity per sensor kind that has at least two sensors on some asset,
    /// with σ from the catalog's sensor table.
    pub fn from_catalog(catalog: &Catalog, alignment: &Alignment) -> Self {
        let mut groups: Vec<Vec<(String, Members)>> = vec![Vec::new(); catalog.assets().len()];
        for (id, sensor) in catalog.sensors().iter().enumerate() {
            let (asset, slot) = alignment.slot_of(id as u32);
            let weight = 1.0 / (sensor.sigma * sensor.sigma);
            let asset_groups = &mut groups[asset as usize];
            match asset_groups
                .iter_mut()
                .find(|(kind, _)| *kind == sensor.kind)
            {
                Some((_, members)) => members.push((slot, weight)),
                None => asset_groups.push((sensor.kind.clone(), vec![(slot, weight)])),
            }
        }
        let mut quantities: Vec<String> = Vec::new();
        let groups = groups
            .into_iter()
            .map(|asset_groups| {
                asset_groups
                    .into_iter()
                    .filter(|(_, members)| members.len() >= 2)
                    .map(|(kind, members)| {
                        let q = match quantities.iter().position(|q| *q == kind) {
                            Some(q) => q,
                            None => {
                                quantities.push(kind);
                                quantities.len() - 1
                            }
                        };
                        (q, members)
                    })
                    .collect()
            })
            .collect();
        InverseVariance { quantities, groups }
    }
}

impl Fusion for InverseVariance {
    fn quantities(&self) -> &[String] {
        &self.quantities
    }

    fn fuse(&self, row: &AlignedRow, out: &mut Vec<Option<FusedValue>>) {
        out.clear();
        out.resize(self.quantities.len(), None);
        for (quantity, members) in &self.groups[row.asset as usize] {
            let (mut weighted, mut weights, mut sensors) = (0.0, 0.0, 0);
            for &(slot, weight) in members {
                let aligned = row.values[slot];
                if let (Source::Measured, Some(x)) = (aligned.source, aligned.value) {
                    weighted += weight * x;
                    weights += weight;
                    sensors += 1;
                }
            }
            if sensors > 0 {
                out[*quantity] = Some(FusedValue {
                    value: weighted / weights,
                    variance: 1.0 / weights,
                    sensors,
                });
            }
        }
    }
}

/// Fuses aligned rows.
pub trait FuseRows<'s> {
    /// Extends each aligned row into a [`FusedRow`], at the row's timestamp,
    /// on the row's worker: fusion looks at one row only, so it is as
    /// deterministic as alignment and keeps no state.
    ///
    /// ```
    /// use twinflow_engine::catalog::{AssetRecord, Catalog, SensorRecord};
    /// use twinflow_operators::align::{AlignedRow, AlignedValue, Alignment, Fill, Source};
    /// use twinflow_operators::fuse::{Fusion, InverseVariance};
    ///
    /// let asset = AssetRecord { asset: "a".into(), line: "l".into(), site: "s".into(), kind: "k".into() };
    /// // σ = 1 and σ = 2: weights 1 and 1/4.
    /// let sensor = |channel: &str, sigma| SensorRecord {
    ///     sensor: format!("a/{channel}"), asset: "a".into(), channel: channel.into(),
    ///     kind: "temperature".into(), sigma, min: -50.0, max: 250.0, rate_hz: None,
    /// };
    /// let catalog = Catalog::new(vec![asset], vec![sensor("t1", 1.0), sensor("t2", 2.0)]).unwrap();
    /// let alignment = Alignment::from_catalog(&catalog, 1_000_000, Fill::CarryForward { max_age: 0 });
    /// let fusion = InverseVariance::from_catalog(&catalog, &alignment);
    /// let measured = |x| AlignedValue { value: Some(x), source: Source::Measured, last_seen_us: Some(0) };
    /// let row = AlignedRow { asset: 0, start_us: 0, end_us: 1_000_000, values: vec![measured(10.0), measured(20.0)] };
    /// let mut fused = Vec::new();
    /// fusion.fuse(&row, &mut fused);
    /// let t = fused[0].unwrap();
    /// assert_eq!(fusion.quantities(), ["temperature"]);
    /// assert!((t.value - 12.0).abs() < 1e-12); // (10·1 + 20·¼) / 1¼
    /// assert!((t.variance - 0.8).abs() < 1e-12);
    /// ```
    fn fuse(self, fusion: Arc<dyn Fusion>) -> Stream<'s, Micros, Vec<FusedRow>>;
}

impl<'s> FuseRows<'s> for Stream<'s, Micros, Vec<AlignedRow>> {
    fn fuse(self, fusion: Arc<dyn Fusion>) -> Stream<'s, Micros, Vec<FusedRow>> {
        self.unary(Pipeline, "Fuse", move |_, _| {
            move |input, output| {
                input.for_each(|time, rows| {
                    let fused = rows.drain(..).map(|row| {
                        let mut values = Vec::new();
                        fusion.fuse(&row, &mut values);
                        FusedRow { row, values }
                    });
                    output.session(&time).give_iterator(fused);
                })
            }
        })
    }
}
