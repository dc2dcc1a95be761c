//! Twin views: the live state of every asset and its line and site, maintained incrementally with differential dataflow.
//!
//! The high-rate work (windows, alignment, fusion, detection) runs in plain
//! timely operators; what reaches differential is small: per asset, one
//! retraction and one insertion per window (its latest row), its flags, and
//! the plant catalog, itself a collection, so moving an asset from one line to
//! another is one retraction and one insertion that flows through every view.

use std::collections::BTreeMap;

use differential_dataflow::{AsCollection, VecCollection};
use serde::{Deserialize, Serialize};
use timely::ExchangeData;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Operator;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, Stream};
use twinflow_engine::catalog::{AssetId, Catalog};
use twinflow_engine::time::Micros;

use crate::align::{AlignedRow, Source};
use crate::fuse::{FusedRow, FusedValue};
use crate::time_order::{TimeStep, in_time_order};
use crate::total_order::total_bits;

/// Where an asset sits in the plant hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Place {
    pub line: String,
    pub site: String,
}

/// A change to the plant catalog at an event time: the asset is placed
/// (added, or moved) at `place`, or removed from the plant when `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogChange {
    pub at_us: Micros,
    pub asset: AssetId,
    pub place: Option<Place>,
}

/// An asset's health, from best to worst (the rollups report the worst).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Health {
    /// Every channel measured in the latest window.
    Ok,
    /// Some channel filled in (carried, interpolated, nearest) in the latest window.
    Degraded,
    /// Some channel missing in the latest window.
    Stale,
    /// A sensor of the asset was flagged in the latest window.
    Alarm,
}

impl Health {
    pub fn code(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Degraded => "degraded",
            Health::Stale => "stale",
            Health::Alarm => "alarm",
        }
    }
}

/// The view of one asset: its place, latest aligned and fused rows, flags so
/// far and health.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AssetTwin {
    pub place: Place,
    pub row: AlignedRow,
    /// The fused row of the same window (absent only if fusion lags alignment).
    pub fused: Option<FusedRow>,
    pub flags: u64,
    pub health: Health,
}

impl AssetTwin {
    /// How long each channel's sensor has not been seen, as of the latest row.
    pub fn staleness_us(&self) -> impl Iterator<Item = Option<Micros>> + '_ {
        self.row
            .values
            .iter()
            .map(|v| v.last_seen_us.map(|seen| self.row.start_us - seen))
    }
}

/// A rollup of the assets of one line or one site.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rollup {
    /// Assets in the view.
    pub assets: u64,
    /// Assets whose latest window is the group's newest and has a measurement.
    pub assets_reporting: u64,
    /// Assets with at least one flag so far.
    pub assets_with_flags: u64,
    /// Per fused quantity: the mean over assets of their latest fused value.
    pub mean_fused: Vec<Option<f64>>,
    pub worst_health: Health,
    /// The group's newest window start.
    pub newest_us: Micros,
}

crate::total_order_by_key!(Rollup, |r: &Rollup| (
    r.assets,
    r.assets_reporting,
    r.assets_with_flags,
    r.mean_fused
        .iter()
        .map(|m| m.map(total_bits))
        .collect::<Vec<_>>(),
    r.worst_health,
    r.newest_us
));

/// The twin views, each a collection that changes as windows close.
pub struct TwinViews<'s> {
    /// Per asset in the plant with at least one aligned row.
    pub assets: VecCollection<'s, Micros, (AssetId, AssetTwin)>,
    /// Per line.
    pub lines: VecCollection<'s, Micros, (String, Rollup)>,
    /// Per site.
    pub sites: VecCollection<'s, Micros, (String, Rollup)>,
}

/// The plant catalog as a collection: every asset's place from `catalog` at
/// the first timestamp, then `changes` at their times. Worker 0 introduces
/// them, so each change is counted once.
pub fn plant_places<'s>(
    scope: Scope<'s, Micros>,
    catalog: &Catalog,
    changes: &[CatalogChange],
) -> VecCollection<'s, Micros, (AssetId, Place)> {
    let mut updates: Vec<((AssetId, Place), Micros, isize)> = Vec::new();
    if scope.index() == 0 {
        let mut current: BTreeMap<AssetId, Place> = catalog
            .assets()
            .iter()
            .enumerate()
            .map(|(id, a)| {
                let place = Place {
                    line: a.line.clone(),
                    site: a.site.clone(),
                };
                (id as AssetId, place)
            })
            .collect();
        updates.extend(
            current
                .iter()
                .map(|(a, p)| ((*a, p.clone()), Micros::MIN, 1)),
        );
        let mut changes = changes.to_vec();
        changes.sort_by_key(|c| c.at_us);
        for change in changes {
            if let Some(old) = current.remove(&change.asset) {
                updates.push(((change.asset, old), change.at_us, -1));
            }
            if let Some(place) = change.place {
                updates.push(((change.asset, place.clone()), change.at_us, 1));
                current.insert(change.asset, place);
            }
        }
    }
    source(scope, "PlantCatalog", move |capability, _info| {
        let mut capability = Some(capability);
        move |output| {
            if let Some(cap) = capability.take() {
                for (update, time, diff) in updates.drain(..) {
                    let at = cap.delayed(&time.max(*cap.time()));
                    output.session(&at).give((update, *at.time(), diff));
                }
            }
        }
    })
    .as_collection()
}

/// Builds the twin views from the pipeline's aligned rows, fused rows and flags.
pub trait BuildTwinViews<'s> {
    /// Maintains, with differential dataflow, the per-asset view (latest
    /// aligned and fused row, flags so far, health), and per-line and per-site
    /// rollups over it.
    ///
    /// Guarantees:
    /// - every view changes only at the timestamps its inputs change, by
    ///   retracting the old row and inserting the new one: the change streams
    ///   (each view's `inner` stream) reconstruct a view at any time;
    /// - the views are a function of their inputs' contents, not of the
    ///   order or worker they arrived on: the same for any number of workers;
    /// - a change to `places` (an asset moved, added or removed) updates every
    ///   view it affects at the change's timestamp, and nothing else;
    /// - state is bounded by the number of assets (and flags): superseded rows
    ///   are retracted, and differential compacts them away as time advances.
    ///
    /// ```
    /// use differential_dataflow::VecCollection;
    /// use timely::dataflow::InputHandle;
    /// use timely::dataflow::operators::{Capture, capture::Extract, Input};
    /// use twinflow_engine::catalog::Catalog;
    /// use twinflow_operators::align::{AlignWindows, Alignment, Fill};
    /// use twinflow_operators::fuse::{FuseRows, InverseVariance};
    /// use twinflow_operators::stats::Stats;
    /// use twinflow_operators::twin::{BuildTwinViews, Health, plant_places};
    /// use twinflow_operators::window::Window;
    ///
    /// let catalog = Catalog::discovered(&[("pump-1/flow".into(), "pump-1".into(), "flow".into())]).unwrap();
    /// let alignment = Alignment::from_catalog(&catalog, 1_000_000, Fill::CarryForward { max_age: 5_000_000 });
    /// let fusion = std::sync::Arc::new(InverseVariance::from_catalog(&catalog, &alignment));
    /// let views = timely::execute_directly(move |worker| {
    ///     let mut windows = InputHandle::new();
    ///     let captured = worker.dataflow::<i64, _, _>(|scope| {
    ///         let aligned = windows.to_stream(scope).align(alignment.clone());
    ///         let fused = aligned.clone().fuse(fusion.clone());
    ///         let (_, flags) = scope.new_input::<Vec<(u32, i64)>>();
    ///         let places = plant_places(scope, &catalog, &[]);
    ///         aligned.twin_views(fused, flags, places).assets.inner.capture()
    ///     });
    ///     for (start, flow) in [(0, 40.0), (1_000_000, 42.0)] {
    ///         let mut stats = Stats::default();
    ///         stats.push(start, flow);
    ///         windows.advance_to(start + 1_000_000);
    ///         windows.send(Window { key: 0u32, start_us: start, end_us: start + 1_000_000, aggregate: stats });
    ///     }
    ///     windows.close();
    ///     while worker.step() {}
    ///     captured.extract()
    /// });
    /// // The asset appears at the end of window 0, then is replaced by window 1's row.
    /// let changes: Vec<_> = views.into_iter().flat_map(|(_, c)| c).collect();
    /// let at_2s: Vec<_> = changes.iter().filter(|(_, t, _)| *t == 2_000_000).collect();
    /// assert_eq!(at_2s.len(), 2);
    /// let inserted = at_2s.iter().find(|(_, _, diff)| *diff == 1).unwrap();
    /// assert_eq!(inserted.0.1.row.values[0].value, Some(42.0));
    /// assert_eq!(inserted.0.1.health, Health::Ok);
    /// ```
    fn twin_views(
        self,
        fused: Stream<'s, Micros, Vec<FusedRow>>,
        flags: Stream<'s, Micros, Vec<(AssetId, Micros)>>,
        places: VecCollection<'s, Micros, (AssetId, Place)>,
    ) -> TwinViews<'s>;
}

/// What the per-asset view is reduced from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum AssetFact {
    Place(Place),
    Aligned(AlignedRow),
    Fused(FusedRow),
    /// A flag of one of the asset's sensors in the window starting here.
    Flag(Micros),
}

impl<'s> BuildTwinViews<'s> for Stream<'s, Micros, Vec<AlignedRow>> {
    fn twin_views(
        self,
        fused: Stream<'s, Micros, Vec<FusedRow>>,
        flags: Stream<'s, Micros, Vec<(AssetId, Micros)>>,
        places: VecCollection<'s, Micros, (AssetId, Place)>,
    ) -> TwinViews<'s> {
        let aligned = latest_by_key(self, |r: &AlignedRow| (r.asset, r.start_us))
            .map(|(asset, row)| (asset, AssetFact::Aligned(row)));
        let fused = latest_by_key(fused, |r: &FusedRow| (r.asset, r.start_us))
            .map(|(asset, row)| (asset, AssetFact::Fused(row)));
        let flags =
            flags
                .unary(Pipeline, "FlagFacts", |_, _| {
                    |input, output| {
                        input.for_each(|time, flags| {
                            let t = *time.least().expect("a stamped message");
                            output.session(&time).give_iterator(flags.drain(..).map(
                                move |(asset, start)| ((asset, AssetFact::Flag(start)), t, 1),
                            ));
                        })
                    }
                })
                .as_collection();
        let places = places.map(|(asset, place)| (asset, AssetFact::Place(place)));
        let assets = places
            .concat(aligned)
            .concat(fused)
            .concat(flags)
            .reduce_named("AssetTwin", |_asset, facts, out| {
                if let Some(twin) = asset_twin(facts) {
                    out.push((twin, 1));
                }
            });
        let lines = rollup(assets.clone(), |twin| twin.place.line.clone());
        let sites = rollup(assets.clone(), |twin| twin.place.site.clone());
        TwinViews {
            assets,
            lines,
            sites,
        }
    }
}

/// An asset's view from its facts (sorted: place, aligned, fused, flags),
/// or `None` while it has no place in the plant or no aligned row yet.
fn asset_twin(facts: &[(&AssetFact, isize)]) -> Option<AssetTwin> {
    let (mut place, mut row, mut fused) = (None, None, None);
    let mut flags: BTreeMap<Micros, isize> = BTreeMap::new();
    for (fact, count) in facts {
        match fact {
            AssetFact::Place(p) => place = Some(p),
            AssetFact::Aligned(r) => row = Some(r),
            AssetFact::Fused(f) => fused = Some(f),
            AssetFact::Flag(start) => *flags.entry(*start).or_default() += count,
        }
    }
    let (place, row) = (place?, row?);
    let flagged_now = flags.get(&row.start_us).is_some_and(|n| *n > 0);
    let health = if flagged_now {
        Health::Alarm
    } else if row.values.iter().any(|v| v.source == Source::Missing) {
        Health::Stale
    } else if row.values.iter().any(|v| v.source != Source::Measured) {
        Health::Degraded
    } else {
        Health::Ok
    };
    Some(AssetTwin {
        place: place.clone(),
        row: row.clone(),
        fused: fused.filter(|f| f.start_us == row.start_us).cloned(),
        flags: flags.values().sum::<isize>().max(0) as u64,
        health,
    })
}

/// Rolls the asset view up by `group` (a line, a site).
fn rollup<'s>(
    assets: VecCollection<'s, Micros, (AssetId, AssetTwin)>,
    group: impl Fn(&AssetTwin) -> String + 'static,
) -> VecCollection<'s, Micros, (String, Rollup)> {
    assets
        .map(move |(asset, twin)| (group(&twin), (asset, twin)))
        .reduce_named("Rollup", |_group, members, out| {
            let twins: Vec<&AssetTwin> = members.iter().map(|((_, twin), _)| twin).collect();
            out.push((summarize(&twins), 1));
        })
}

/// The rollup of a group's asset views (in asset order, so sums are deterministic).
fn summarize(twins: &[&AssetTwin]) -> Rollup {
    let newest_us = twins
        .iter()
        .map(|t| t.row.start_us)
        .max()
        .unwrap_or(Micros::MIN);
    let quantities = twins
        .iter()
        .filter_map(|t| t.fused.as_ref().map(|f| f.values.len()))
        .max()
        .unwrap_or(0);
    let mean_fused = (0..quantities)
        .map(|q| {
            let values: Vec<f64> = twins
                .iter()
                .filter_map(|t| t.fused.as_ref()?.values.get(q).copied().flatten())
                .map(|v: FusedValue| v.value)
                .collect();
            (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
        })
        .collect();
    Rollup {
        assets: twins.len() as u64,
        assets_reporting: twins
            .iter()
            .filter(|t| {
                t.row.start_us == newest_us
                    && t.row.values.iter().any(|v| v.source == Source::Measured)
            })
            .count() as u64,
        assets_with_flags: twins.iter().filter(|t| t.flags > 0).count() as u64,
        mean_fused,
        worst_health: twins.iter().map(|t| t.health).max().unwrap_or(Health::Ok),
        newest_us,
    }
}

/// Turns a stream of successive versions of keyed records into the
/// collection of each key's latest version: a newer version (by `order`)
/// retracts the one before it at the timestamp it arrives.
pub fn latest_by_key<'s, D, K>(
    stream: Stream<'s, Micros, Vec<D>>,
    key_and_order: impl Fn(&D) -> (K, Micros) + Clone + 'static,
) -> VecCollection<'s, Micros, (K, D)>
where
    D: ExchangeData + Ord + Clone,
    K: ExchangeData + Ord + std::hash::Hash + Into<u64> + Copy,
{
    let route = key_and_order.clone();
    in_time_order(
        stream,
        "LatestByKey",
        move |d: &D| route(d).0.into(),
        Latest {
            key_and_order,
            latest: BTreeMap::new(),
        },
    )
    .as_collection()
}

struct Latest<K, D, F> {
    key_and_order: F,
    latest: BTreeMap<K, D>,
}

impl<K, D, F> TimeStep<D, ((K, D), Micros, isize)> for Latest<K, D, F>
where
    K: Ord + Copy + 'static,
    D: Ord + Clone + 'static,
    F: Fn(&D) -> (K, Micros) + 'static,
{
    fn step(&mut self, time: Micros, records: &mut Vec<D>, out: &mut Vec<((K, D), Micros, isize)>) {
        records.sort_unstable_by(|a, b| {
            (self.key_and_order)(a)
                .cmp(&(self.key_and_order)(b))
                .then_with(|| a.cmp(b))
        });
        // Of several versions of a key in one timestamp, only the newest counts.
        let mut newest: BTreeMap<K, D> = BTreeMap::new();
        for record in records.drain(..) {
            newest.insert((self.key_and_order)(&record).0, record);
        }
        for (key, record) in newest {
            let order = (self.key_and_order)(&record).1;
            match self.latest.get(&key) {
                Some(old) if (self.key_and_order)(old).1 >= order => continue,
                Some(old) => out.push(((key, old.clone()), time, -1)),
                None => {}
            }
            out.push(((key, record.clone()), time, 1));
            self.latest.insert(key, record);
        }
    }
}

/// The contents of a collection once its input is exhausted (records with a
/// positive count, in order), emitted at the last frontier: the final state
/// of a view, beside its change stream.
pub fn final_state<'s, D>(collection: VecCollection<'s, Micros, D>) -> Stream<'s, Micros, Vec<D>>
where
    D: ExchangeData + Ord + Clone,
{
    collection
        .inner
        .unary_frontier(Pipeline, "FinalState", |capability, _info| {
            let mut capability = Some(capability);
            let mut state: BTreeMap<D, isize> = BTreeMap::new();
            move |(input, frontier), output| {
                input.for_each(|_, changes| {
                    for (record, _time, diff) in changes.drain(..) {
                        let count = state.entry(record).or_default();
                        *count += diff;
                    }
                    state.retain(|_, count| *count != 0);
                });
                let Some(cap) = capability.as_mut() else {
                    return;
                };
                match frontier.frontier().first() {
                    Some(&next) if *cap.time() < next => cap.downgrade(&next),
                    Some(_) => {}
                    None => {
                        let records =
                            std::mem::take(&mut state)
                                .into_iter()
                                .flat_map(|(record, count)| {
                                    std::iter::repeat_n(record, count.max(0) as usize)
                                });
                        output.session(&*cap).give_iterator(records);
                        capability = None;
                    }
                }
            }
        })
}
