//! Twin views: the live state of every asset and its line and site, maintained incrementally with differential dataflow.
//!
//! The high-rate work (windows, alignment, fusion, detection) runs in plain
//! timely operators; what reaches differential is small: per asset, one
//! retraction and one insertion per window (its latest state), and the plant
//! hierarchy, itself a collection, so moving an asset from one line to
//! another is one retraction and one insertion that flows through every view.

use std::collections::BTreeMap;
use std::sync::Arc;

use differential_dataflow::{AsCollection, VecCollection};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::ExchangeData;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concat, Operator};
use timely::dataflow::{Scope, Stream};
use twinflow_engine::catalog::{AssetId, Catalog};
use twinflow_engine::time::Micros;

use crate::align::{AlignedRow, Source};
use crate::fuse::{FusedRow, FusedValue};
use crate::time_order::{TimeStep, in_time_order};
use crate::total_order::TotalF64;

/// Where an asset sits in the plant hierarchy: ids of its line and site in
/// the [`Hierarchy`]'s name tables (so views carry no strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Place {
    pub line: u32,
    pub site: u32,
}

/// A change to the plant catalog at an event time: the asset moves to (or
/// joins the plant at) line `.0` of site `.1`, or leaves the plant when `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogChange {
    pub at_us: Micros,
    pub asset: AssetId,
    pub place: Option<(String, String)>,
}

/// The plant's lines and sites, and where each asset sits over time: the
/// catalog's places at the first timestamp, then the changes at theirs.
#[derive(Debug, Clone, Default)]
pub struct Hierarchy {
    lines: Vec<String>,
    sites: Vec<String>,
    updates: Vec<((AssetId, Place), Micros, isize)>,
}

impl Hierarchy {
    pub fn new(catalog: &Catalog, changes: &[CatalogChange]) -> Self {
        let mut hierarchy = Hierarchy::default();
        let mut current: BTreeMap<AssetId, Place> = BTreeMap::new();
        for (id, asset) in catalog.assets().iter().enumerate() {
            let place = hierarchy.place(&asset.line, &asset.site);
            current.insert(id as AssetId, place);
            hierarchy
                .updates
                .push(((id as AssetId, place), Micros::MIN, 1));
        }
        let mut changes = changes.to_vec();
        changes.sort_by_key(|c| c.at_us);
        for change in changes {
            if let Some(old) = current.remove(&change.asset) {
                hierarchy
                    .updates
                    .push(((change.asset, old), change.at_us, -1));
            }
            if let Some((line, site)) = &change.place {
                let place = hierarchy.place(line, site);
                hierarchy
                    .updates
                    .push(((change.asset, place), change.at_us, 1));
                current.insert(change.asset, place);
            }
        }
        hierarchy
    }

    fn place(&mut self, line: &str, site: &str) -> Place {
        fn intern(names: &mut Vec<String>, name: &str) -> u32 {
            match names.iter().position(|n| n == name) {
                Some(i) => i as u32,
                None => {
                    names.push(name.to_owned());
                    names.len() as u32 - 1
                }
            }
        }
        Place {
            line: intern(&mut self.lines, line),
            site: intern(&mut self.sites, site),
        }
    }

    pub fn line_name(&self, line: u32) -> &str {
        &self.lines[line as usize]
    }

    pub fn site_name(&self, site: u32) -> &str {
        &self.sites[site as usize]
    }

    /// Where each asset sits, as a collection. Worker 0 introduces the
    /// updates, so each is counted once.
    pub fn places<'s>(
        &self,
        scope: Scope<'s, Micros>,
    ) -> VecCollection<'s, Micros, (AssetId, Place)> {
        let mut updates = if scope.index() == 0 {
            self.updates.clone()
        } else {
            Vec::new()
        };
        source(scope, "PlantHierarchy", move |capability, _info| {
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

    fn of(row: &AlignedRow, flagged: bool) -> Health {
        if flagged {
            Health::Alarm
        } else if row.values.iter().any(|v| v.source == Source::Missing) {
            Health::Stale
        } else if row.values.iter().any(|v| v.source != Source::Measured) {
            Health::Degraded
        } else {
            Health::Ok
        }
    }
}

/// An asset's state: its latest aligned and fused row, its flags so far and
/// its health.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssetState {
    /// Shared, not copied, as the state flows through the views.
    pub latest: Arc<FusedRow>,
    pub flags: u64,
    pub health: Health,
}

// Compared by content; a retraction carries the very row its insertion did,
// so two states sharing one row compare without looking into it.
impl PartialEq for AssetState {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for AssetState {}
impl PartialOrd for AssetState {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for AssetState {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let rows = if Arc::ptr_eq(&self.latest, &other.latest) {
            std::cmp::Ordering::Equal
        } else {
            self.latest.cmp(&other.latest)
        };
        rows.then(self.flags.cmp(&other.flags))
            .then(self.health.cmp(&other.health))
    }
}

impl AssetState {
    /// How long each channel's sensor has not been seen, as of the latest row.
    pub fn staleness_us(&self) -> impl Iterator<Item = Option<Micros>> + '_ {
        let row = &self.latest.row;
        row.values
            .iter()
            .map(|v| v.last_seen_us.map(|seen| row.start_us - seen))
    }
}

/// The view of one asset: where it sits and its state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AssetTwin {
    pub place: Place,
    pub state: AssetState,
}

/// A rollup of the assets of one line or one site.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Rollup {
    /// Assets in the view.
    pub assets: u64,
    /// Assets whose latest window is the group's newest and has a measurement.
    pub assets_reporting: u64,
    /// Assets with at least one flag so far.
    pub assets_with_flags: u64,
    /// Per fused quantity: the mean over assets of their latest fused value.
    pub mean_fused: Vec<Option<TotalF64>>,
    pub worst_health: Health,
    /// The group's newest window start.
    pub newest_us: Micros,
}

/// The twin views, each a collection that changes as windows close.
pub struct TwinViews<'s> {
    /// Per asset in the plant with at least one aligned row.
    pub assets: VecCollection<'s, Micros, (AssetId, AssetTwin)>,
    /// Per line (by id in the [`Hierarchy`]).
    pub lines: VecCollection<'s, Micros, (u32, Rollup)>,
    /// Per site.
    pub sites: VecCollection<'s, Micros, (u32, Rollup)>,
}

/// Builds the twin views from the pipeline's fused rows and flags.
pub trait BuildTwinViews<'s> {
    /// Maintains the per-asset view (latest aligned and fused row, flags so
    /// far, health) and per-line and per-site rollups over it.
    ///
    /// Each asset's state is kept by a timely operator (rows and flags
    /// exchanged by asset, in time order), which hands differential one
    /// retraction and one insertion when it changes; differential joins the
    /// states with `places` (the plant hierarchy as a collection) and reduces
    /// them per line and per site.
    ///
    /// Guarantees:
    /// - every view changes only at timestamps where its inputs change, by
    ///   retracting the old row and inserting the new one: the change streams
    ///   (each view's `inner` stream) rebuild a view as of any time;
    /// - the views do not depend on the number of workers or processes;
    /// - a change to `places` (an asset moved, added or removed) updates every
    ///   view it affects at the change's timestamp, and nothing else;
    /// - state is bounded by the number of assets: superseded rows are
    ///   retracted, and differential compacts them away as time advances.
    ///
    /// ```
    /// use timely::dataflow::InputHandle;
    /// use timely::dataflow::operators::{Capture, capture::Extract, Input};
    /// use twinflow_engine::catalog::Catalog;
    /// use twinflow_operators::align::{AlignWindows, Alignment, Fill};
    /// use twinflow_operators::fuse::{FuseRows, InverseVariance};
    /// use twinflow_operators::stats::Stats;
    /// use twinflow_operators::twin::{BuildTwinViews, Health, Hierarchy};
    /// use twinflow_operators::window::Window;
    ///
    /// let catalog = Catalog::discovered(&[("pump-1/flow".into(), "pump-1".into(), "flow".into())]).unwrap();
    /// let alignment = Alignment::from_catalog(&catalog, 1_000_000, Fill::CarryForward { max_age: 5_000_000 });
    /// let fusion = std::sync::Arc::new(InverseVariance::from_catalog(&catalog, &alignment));
    /// let hierarchy = Hierarchy::new(&catalog, &[]);
    /// let views = timely::execute_directly(move |worker| {
    ///     let mut windows = InputHandle::new();
    ///     let captured = worker.dataflow::<i64, _, _>(|scope| {
    ///         let fused = windows.to_stream(scope).align(alignment.clone()).fuse(fusion.clone());
    ///         let (_, flags) = scope.new_input::<Vec<(u32, i64)>>();
    ///         fused.twin_views(flags, hierarchy.places(scope)).assets.inner.capture()
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
    /// // The asset appears at the end of window 0, then window 1's row replaces it.
    /// let changes: Vec<_> = views.into_iter().flat_map(|(_, c)| c).collect();
    /// let at_2s: Vec<_> = changes.iter().filter(|(_, t, _)| *t == 2_000_000).collect();
    /// assert_eq!(at_2s.len(), 2);
    /// let inserted = at_2s.iter().find(|(_, _, diff)| *diff == 1).unwrap();
    /// assert_eq!(inserted.0.1.state.latest.row.values[0].value, Some(42.0));
    /// assert_eq!(inserted.0.1.state.health, Health::Ok);
    /// ```
    fn twin_views(
        self,
        flags: Stream<'s, Micros, Vec<(AssetId, Micros)>>,
        places: VecCollection<'s, Micros, (AssetId, Place)>,
    ) -> TwinViews<'s>;
}

impl<'s> BuildTwinViews<'s> for Stream<'s, Micros, Vec<FusedRow>> {
    fn twin_views(
        self,
        flags: Stream<'s, Micros, Vec<(AssetId, Micros)>>,
        places: VecCollection<'s, Micros, (AssetId, Place)>,
    ) -> TwinViews<'s> {
        let rows = self.map(AssetInput::Row);
        let flags = flags.map(|(asset, start)| AssetInput::Flag(asset, start));
        let states = in_time_order(
            rows.concat(flags),
            "AssetStates",
            |input: &AssetInput| input.asset() as u64,
            AssetStates::default(),
        )
        .as_collection();
        let joined = states.join_map(places, |asset, state, place| {
            (
                *asset,
                AssetTwin {
                    place: *place,
                    state: state.clone(),
                },
            )
        });
        // A join pairs each change of one side with the other side's history,
        // so a change of place can come out as updates that cancel; each
        // asset's updates are on its worker, so they are netted there.
        let assets = in_time_order(
            joined.inner,
            "ConsolidateAssets",
            |((asset, _), _, _): &((AssetId, AssetTwin), Micros, isize)| *asset as u64,
            Consolidate,
        )
        .as_collection();
        let lines = rollup(assets.clone(), |place| place.line);
        let sites = rollup(assets.clone(), |place| place.site);
        TwinViews {
            assets,
            lines,
            sites,
        }
    }
}

/// What the asset-state operator consumes.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum AssetInput {
    /// A flag of one of the asset's sensors in the window starting here.
    Flag(AssetId, Micros),
    Row(FusedRow),
}

impl AssetInput {
    fn asset(&self) -> AssetId {
        match self {
            AssetInput::Flag(asset, _) => *asset,
            AssetInput::Row(row) => row.asset(),
        }
    }

    /// Flags before rows, so a row sees its window's flags.
    fn sort_key(&self) -> (AssetId, bool, Micros) {
        match self {
            AssetInput::Flag(asset, start) => (*asset, false, *start),
            AssetInput::Row(row) => (row.asset(), true, row.start_us()),
        }
    }
}

/// The states of the assets on one worker.
#[derive(Default)]
struct AssetStates {
    assets: BTreeMap<AssetId, Tracker>,
}

#[derive(Default)]
struct Tracker {
    state: Option<AssetState>,
    flags: u64,
    /// Starts of flagged windows not older than the latest row.
    flagged: std::collections::BTreeSet<Micros>,
}

impl TimeStep<AssetInput, ((AssetId, AssetState), Micros, isize)> for AssetStates {
    fn step(
        &mut self,
        time: Micros,
        inputs: &mut Vec<AssetInput>,
        out: &mut Vec<((AssetId, AssetState), Micros, isize)>,
    ) {
        inputs.sort_unstable_by_key(AssetInput::sort_key);
        let mut inputs = inputs.drain(..).peekable();
        while let Some(first) = inputs.next() {
            let asset = first.asset();
            let tracker = self.assets.entry(asset).or_default();
            let mut latest: Option<FusedRow> = None;
            let mut input = Some(first);
            while let Some(item) = input.take() {
                match item {
                    AssetInput::Flag(_, start) => {
                        tracker.flags += 1;
                        tracker.flagged.insert(start);
                    }
                    // Rows come sorted by start: the last one is the newest.
                    AssetInput::Row(row) => latest = Some(row),
                }
                input = inputs.next_if(|next| next.asset() == asset);
            }
            let old = tracker.state.take();
            let latest = match (latest, &old) {
                (Some(row), Some(old)) if row.start_us() < old.latest.start_us() => {
                    Some(Arc::clone(&old.latest))
                }
                (Some(row), _) => Some(Arc::new(row)),
                (None, Some(old)) => Some(Arc::clone(&old.latest)),
                (None, None) => None,
            };
            let Some(latest) = latest else {
                continue;
            };
            let start = latest.start_us();
            tracker.flagged = tracker.flagged.split_off(&start);
            let state = AssetState {
                health: Health::of(&latest.row, tracker.flagged.contains(&start)),
                flags: tracker.flags,
                latest,
            };
            if old.as_ref() != Some(&state) {
                if let Some(old) = old {
                    out.push(((asset, old), time, -1));
                }
                out.push(((asset, state.clone()), time, 1));
            }
            tracker.state = Some(state);
        }
    }
}

/// Nets the updates of each time: equal records' diffs are summed and
/// records whose diffs cancel are dropped.
struct Consolidate;

impl<D: Ord + 'static> TimeStep<(D, Micros, isize), (D, Micros, isize)> for Consolidate {
    fn record_time(&self, update: &(D, Micros, isize)) -> Option<Micros> {
        Some(update.1)
    }

    fn step(
        &mut self,
        _time: Micros,
        updates: &mut Vec<(D, Micros, isize)>,
        out: &mut Vec<(D, Micros, isize)>,
    ) {
        updates.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut updates = updates.drain(..).peekable();
        while let Some((record, time, mut diff)) = updates.next() {
            while let Some((_, _, more)) = updates.next_if(|(next, _, _)| *next == record) {
                diff += more;
            }
            if diff != 0 {
                out.push((record, time, diff));
            }
        }
    }
}

/// What a rollup needs of one asset (small, so the reduce moves little).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Member {
    asset: AssetId,
    start_us: Micros,
    measured: bool,
    flagged: bool,
    health: Health,
    fused: Vec<Option<TotalF64>>,
}

/// Rolls the asset view up by a group of the asset's place (its line, its site).
fn rollup<'s>(
    assets: VecCollection<'s, Micros, (AssetId, AssetTwin)>,
    group: impl Fn(&Place) -> u32 + 'static,
) -> VecCollection<'s, Micros, (u32, Rollup)> {
    assets
        .map(move |(asset, twin)| {
            let state = &twin.state;
            let row = &state.latest.row;
            let member = Member {
                asset,
                start_us: row.start_us,
                measured: row.values.iter().any(|v| v.source == Source::Measured),
                flagged: state.flags > 0,
                health: state.health,
                fused: state
                    .latest
                    .values
                    .iter()
                    .map(|v| v.map(|v: FusedValue| TotalF64(v.value)))
                    .collect(),
            };
            (group(&twin.place), member)
        })
        .reduce_named("Rollup", |_group, members, out| {
            let members: Vec<&Member> = members.iter().map(|(m, _)| *m).collect();
            out.push((summarize(&members), 1));
        })
}

/// The rollup of a group's members (in asset order, so sums are deterministic).
fn summarize(members: &[&Member]) -> Rollup {
    let newest_us = members
        .iter()
        .map(|m| m.start_us)
        .max()
        .unwrap_or(Micros::MIN);
    let quantities = members.iter().map(|m| m.fused.len()).max().unwrap_or(0);
    let mean_fused = (0..quantities)
        .map(|q| {
            let values: Vec<f64> = members
                .iter()
                .filter_map(|m| Some(m.fused.get(q).copied().flatten()?.0))
                .collect();
            (!values.is_empty()).then(|| TotalF64(values.iter().sum::<f64>() / values.len() as f64))
        })
        .collect();
    Rollup {
        assets: members.len() as u64,
        assets_reporting: members
            .iter()
            .filter(|m| m.start_us == newest_us && m.measured)
            .count() as u64,
        assets_with_flags: members.iter().filter(|m| m.flagged).count() as u64,
        mean_fused,
        worst_health: members.iter().map(|m| m.health).max().unwrap_or(Health::Ok),
        newest_us,
    }
}

/// The contents of a keyed collection once its input is exhausted (records
/// with a positive count, by key), emitted at the last frontier: the final
/// state of a view, beside its change stream. Kept per key, as a view has
/// one row or a few per key, so an update touches only its key's rows.
pub fn final_state<'s, K, V>(
    collection: VecCollection<'s, Micros, (K, V)>,
) -> Stream<'s, Micros, Vec<(K, V)>>
where
    K: ExchangeData + Ord + std::hash::Hash + Clone,
    V: ExchangeData + Eq + Clone,
{
    collection
        .inner
        .unary_frontier(Pipeline, "FinalState", |capability, _info| {
            let mut capability = Some(capability);
            let mut state: FxHashMap<K, Vec<(V, isize)>> = FxHashMap::default();
            move |(input, frontier), output| {
                input.for_each(|_, changes| {
                    for ((key, value), _time, diff) in changes.drain(..) {
                        let rows = state.entry(key).or_default();
                        match rows.iter_mut().position(|(v, _)| *v == value) {
                            Some(i) => {
                                rows[i].1 += diff;
                                if rows[i].1 == 0 {
                                    rows.swap_remove(i);
                                }
                            }
                            None => rows.push((value, diff)),
                        }
                    }
                });
                let Some(cap) = capability.as_mut() else {
                    return;
                };
                match frontier.frontier().first() {
                    Some(&next) if *cap.time() < next => cap.downgrade(&next),
                    Some(_) => {}
                    None => {
                        let mut keys: Vec<(K, Vec<(V, isize)>)> =
                            std::mem::take(&mut state).into_iter().collect();
                        keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                        let records = keys.into_iter().flat_map(|(key, rows)| {
                            rows.into_iter().flat_map(move |(value, count)| {
                                std::iter::repeat_n((key.clone(), value), count.max(0) as usize)
                            })
                        });
                        output.session(&*cap).give_iterator(records);
                        capability = None;
                    }
                }
            }
        })
}
