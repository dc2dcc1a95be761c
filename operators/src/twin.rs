//! Twin views: the live state of every asset and its line and site, maintained incrementally with differential dataflow.
//!
//! The high-rate work (windows, alignment, fusion, detection) runs in plain
//! timely operators; what reaches differential is small: per asset, one
//! retraction and one insertion per window (its latest state), and the plant
//! hierarchy, itself a collection, so moving an asset from one line to
//! another is one retraction and one insertion that flows through every view.

use std::collections::BTreeMap;
use std::sync::Arc;

use differential_dataflow::operators::arrange::arrangement::arrange_core;
use differential_dataflow::trace::implementations::{ValBatcher, ValBuilder, ValSpine};
use differential_dataflow::{AsCollection, VecCollection};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::ExchangeData;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concat, Operator};
use timely::dataflow::{Scope, Stream};
use twinflow_engine::catalog::{AssetId, Catalog};
use twinflow_engine::exact_sum::ExactSum;
use twinflow_engine::time::Micros;

use crate::align::{AlignedValue, Source};
use crate::fuse::FusedRow;
use crate::time_order::{TimeStep, in_time_order};
use crate::total_order::TotalF64;
use crate::trust::TrustState;

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
    /// Some channel filled in (carried, interpolated, nearest), or a
    /// redundant sensor excluded by fusion, in the latest window.
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

    fn of(fused: &FusedRow, flagged: bool) -> Health {
        let row = &fused.row;
        if flagged {
            Health::Alarm
        } else if row.values.iter().any(|v| v.source == Source::Missing) {
            Health::Stale
        } else if row.values.iter().any(|v| v.source != Source::Measured)
            || fused.trust.iter().any(|t| t.state == TrustState::Excluded)
        {
            Health::Degraded
        } else {
            Health::Ok
        }
    }
}

/// An asset's state: its latest aligned and fused row, its flags so far,
/// its health, and its clock for the rollups.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssetState {
    /// Shared, not copied, as the state flows through the views.
    pub latest: Arc<FusedRow>,
    pub flags: u64,
    pub health: Health,
    /// Where the asset's clock stands for the rollups: its newest row not
    /// [stamped ahead](crate::align::AlignedRow::stamped_ahead); `None`
    /// while every row so far was.
    pub clock: Option<AssetClock>,
}

/// An asset's newest window not stamped ahead: how far it defines its
/// group's now, and whether it reports there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AssetClock {
    pub start_us: Micros,
    /// Whether that window has a measured value.
    pub measured: bool,
}

impl AssetClock {
    /// The clock a row sets, unless it was stamped ahead.
    fn of(row: &FusedRow) -> Option<AssetClock> {
        (!row.row.stamped_ahead()).then(|| AssetClock {
            start_us: row.start_us(),
            measured: row.row.values.iter().any(|v| v.source == Source::Measured),
        })
    }
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
            .then(self.clock.cmp(&other.clock))
    }
}

/// How long a channel's sensor has not been seen as of a row starting at
/// `window_start_us` (`None` if never).
pub fn staleness_us(window_start_us: Micros, value: &AlignedValue) -> Option<Micros> {
    value.last_seen_us.map(|seen| window_start_us - seen)
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
    /// Assets whose clock is the group's now (`newest_us`), at a window with
    /// a measurement.
    pub assets_reporting: u64,
    /// Assets with at least one flag so far.
    pub assets_with_flags: u64,
    /// Per fused quantity: the mean over assets of their latest fused value.
    pub mean_fused: Vec<Option<TotalF64>>,
    pub worst_health: Health,
    /// The group's now: the newest window start of its assets, not counting
    /// windows stamped ahead (see [`BuildTwinViews`]).
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
    /// far, health, clock) and per-line and per-site rollups over it.
    ///
    /// Each asset's state is kept by a timely operator that takes its rows,
    /// its flags and the updates of its place in `places` (the plant
    /// hierarchy as a collection), exchanged by asset, in time order. It
    /// joins the state with the places itself (an asset has one state at a
    /// time, so the join needs no arrangement) and hands differential the
    /// asset view's changes, netted: one retraction and one insertion per
    /// place when the state or the place changes. Differential reduces the
    /// asset view per place, then the place partials per line and per site.
    ///
    /// A rollup's now (`newest_us`) is the newest of its assets' clocks, and
    /// `assets_reporting` counts the assets whose clock is there (at a
    /// window with a measurement). An asset's clock is its newest window
    /// whose measured values were not all mostly stamped ahead
    /// ([`AlignedRow::stamped_ahead`](crate::align::AlignedRow::stamped_ahead)):
    /// a sensor whose clock runs ahead measures windows past every other
    /// asset's once the input ends, and those must not make its asset the
    /// only current one of its line.
    ///
    /// Guarantees:
    /// - every view changes only at timestamps where its inputs change, by
    ///   retracting the old row and inserting the new one: the change streams
    ///   (each view's `inner` stream) rebuild a view as of any time;
    /// - the views do not depend on the number of workers or processes;
    /// - a change to `places` (an asset moved, added or removed) updates every
    ///   view it affects at the change's timestamp, and nothing else;
    /// - a window stamped ahead never moves a rollup's now;
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
    ///         let fused = windows.to_stream(scope).align(alignment.clone()).fuse(fusion.clone(), None);
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
        let places = places
            .inner
            .map(|((asset, place), time, diff)| AssetInput::Place(asset, place, time, diff));
        let assets = in_time_order(
            rows.concat(flags).concat(places),
            "AssetTwins",
            |input: &AssetInput| input.asset() as u64,
            AssetTwins::default(),
        )
        .as_collection();
        let members = assets.clone().map(|(asset, twin)| {
            (
                twin.place,
                Member {
                    asset,
                    state: twin.state,
                },
            )
        });
        // Members are summed up per place (line and site) once; lines and
        // sites then merge the few place partials instead of every member.
        let places = reduce_routed(
            members,
            "PlaceRollup",
            |place: &Place| u64::from(place.line),
            |_place, members, out| {
                let mut partial = Partial::default();
                for (member, _) in members {
                    partial.merge(&Partial::of(member));
                }
                out.push((partial, 1));
            },
        );
        let lines = rollup(places.clone(), |place| place.line);
        let sites = rollup(places, |place| place.site);
        TwinViews {
            assets,
            lines,
            sites,
        }
    }
}

/// What the asset-twin operator consumes.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum AssetInput {
    /// A flag of one of the asset's sensors in the window starting here.
    Flag(AssetId, Micros),
    Row(FusedRow),
    /// An update of the places collection: (asset, place, time, diff).
    Place(AssetId, Place, Micros, isize),
}

impl AssetInput {
    fn asset(&self) -> AssetId {
        match self {
            AssetInput::Flag(asset, _) | AssetInput::Place(asset, ..) => *asset,
            AssetInput::Row(row) => row.asset(),
        }
    }

    /// Places, then flags, then rows, so a row sees its window's flags.
    fn sort_key(&self) -> (AssetId, u8, Micros) {
        match self {
            AssetInput::Place(asset, ..) => (*asset, 0, 0),
            AssetInput::Flag(asset, start) => (*asset, 1, *start),
            AssetInput::Row(row) => (row.asset(), 2, row.start_us()),
        }
    }
}

/// The twins of the assets on one worker: each asset's state joined with its
/// places. The join is written out because each asset has one state at a
/// time, so the view changes by a retraction and an insertion per place,
/// already netted, with no arrangement of either side.
#[derive(Default)]
struct AssetTwins {
    assets: BTreeMap<AssetId, Tracker>,
}

#[derive(Default)]
struct Tracker {
    state: Option<AssetState>,
    /// The asset's places with their counts (one place, but for the moment
    /// a move's retraction and insertion meet, or a malformed hierarchy).
    places: Vec<(Place, isize)>,
    flags: u64,
    /// Starts of flagged windows not older than the latest row.
    flagged: std::collections::BTreeSet<Micros>,
}

type TwinUpdate = ((AssetId, AssetTwin), Micros, isize);

impl TimeStep<AssetInput, TwinUpdate> for AssetTwins {
    // Place updates come in messages of their own (the places stream is
    // concatenated, not merged), as `record_time` requires.
    fn record_time(&self, input: &AssetInput) -> Option<Micros> {
        match input {
            AssetInput::Place(_, _, time, _) => Some(*time),
            _ => None,
        }
    }

    fn step(&mut self, time: Micros, inputs: &mut Vec<AssetInput>, out: &mut Vec<TwinUpdate>) {
        inputs.sort_unstable_by_key(AssetInput::sort_key);
        let mut inputs = inputs.drain(..).peekable();
        while let Some(first) = inputs.next() {
            let asset = first.asset();
            let tracker = self.assets.entry(asset).or_default();
            // The places before this time, kept only if they change.
            let mut old_places: Option<Vec<(Place, isize)>> = None;
            let mut latest: Option<FusedRow> = None;
            let mut clock: Option<AssetClock> = None;
            let mut input = Some(first);
            while let Some(item) = input.take() {
                match item {
                    AssetInput::Place(_, place, _, diff) => {
                        old_places.get_or_insert_with(|| tracker.places.clone());
                        match tracker.places.iter_mut().find(|(p, _)| *p == place) {
                            Some((_, count)) => *count += diff,
                            None => tracker.places.push((place, diff)),
                        }
                        tracker.places.retain(|(_, count)| *count != 0);
                    }
                    AssetInput::Flag(_, start) => {
                        tracker.flags += 1;
                        tracker.flagged.insert(start);
                    }
                    // Rows come sorted by start: the last one is the newest.
                    AssetInput::Row(row) => {
                        clock = AssetClock::of(&row).or(clock);
                        latest = Some(row);
                    }
                }
                input = inputs.next_if(|next| next.asset() == asset);
            }
            let old = tracker.state.take();
            let state = tracker.next_state(latest, clock, old.as_ref());
            let mut twins = |places: &[(Place, isize)], state: &Option<AssetState>, sign: isize| {
                if let Some(state) = state {
                    out.extend(places.iter().map(|&(place, count)| {
                        let state = state.clone();
                        ((asset, AssetTwin { place, state }), time, sign * count)
                    }));
                }
            };
            let old_places = old_places.as_deref().unwrap_or(&tracker.places);
            if old == state {
                // Only places changed (if anything did): each place by its count's change.
                let mut moved = old_places.to_vec();
                for &(place, count) in &tracker.places {
                    match moved.iter_mut().find(|(p, _)| *p == place) {
                        Some((_, old)) => *old -= count,
                        None => moved.push((place, -count)),
                    }
                }
                moved.retain(|(_, count)| *count != 0);
                twins(&moved, &old, -1);
            } else {
                twins(old_places, &old, -1);
                twins(&tracker.places, &state, 1);
            }
            tracker.state = state;
        }
    }
}

impl Tracker {
    /// The asset's state after `latest`, its newest row this time (if any),
    /// and `clock`, the newest of this time's rows not stamped ahead.
    fn next_state(
        &mut self,
        latest: Option<FusedRow>,
        clock: Option<AssetClock>,
        old: Option<&AssetState>,
    ) -> Option<AssetState> {
        let clock = clock.max(old.and_then(|old| old.clock));
        let latest = match (latest, old) {
            (Some(row), Some(old)) if row.start_us() < old.latest.start_us() => {
                Arc::clone(&old.latest)
            }
            (Some(row), _) => Arc::new(row),
            (None, Some(old)) => Arc::clone(&old.latest),
            (None, None) => return None,
        };
        let start = latest.start_us();
        self.flagged = self.flagged.split_off(&start);
        Some(AssetState {
            health: Health::of(&latest, self.flagged.contains(&start)),
            flags: self.flags,
            latest,
            clock,
        })
    }
}

/// A member of a rollup: an asset and its state (which shares its row, so
/// the reduce moves little).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Member {
    asset: AssetId,
    state: AssetState,
}

/// Rolls place partials up by a group of the place (its line, its site).
fn rollup<'s>(
    places: VecCollection<'s, Micros, (Place, Partial)>,
    group: impl Fn(&Place) -> u32 + 'static,
) -> VecCollection<'s, Micros, (u32, Rollup)> {
    reduce_routed(
        places.map(move |(place, partial)| (group(&place), partial)),
        "Rollup",
        |group: &u32| u64::from(*group),
        |_group, partials, out| {
            let mut total = Partial::default();
            for (partial, _) in partials {
                total.merge(partial);
            }
            out.push((total.rollup(), 1));
        },
    )
}

/// Differential's `reduce_named`, with each key's updates sent to worker
/// `route(key) % workers` instead of to one picked by a hash of the key.
///
/// Lines and sites have dense ids (interned in catalog order), so routing by
/// the id deals them evenly: hashed, TwinBench's ten lines went four to one
/// worker and six to the other, whose per-place rollup and its arrangement
/// then took 55 ms a replay against the first one's 36 (`replay --profile`,
/// 2 workers, mean of 6 replays).
fn reduce_routed<'s, K, V, V2>(
    collection: VecCollection<'s, Micros, (K, V)>,
    name: &str,
    route: impl Fn(&K) -> u64 + 'static,
    logic: impl FnMut(&K, &[(&V, isize)], &mut Vec<(V2, isize)>) + 'static,
) -> VecCollection<'s, Micros, (K, V2)>
where
    K: ExchangeData + Ord + Clone + std::fmt::Debug,
    V: ExchangeData + Ord + Clone + std::fmt::Debug,
    V2: ExchangeData + Ord + Clone + std::fmt::Debug,
{
    let exchange = Exchange::new(move |((key, _), _, _): &((K, V), Micros, isize)| route(key));
    arrange_core::<_, _, ValBatcher<K, V, Micros, isize>, ValSpine<K, V, Micros, isize>>(
        collection.inner,
        exchange,
        &format!("Arrange: {name}"),
        ValBatcher::new,
    )
    .reduce_abelian::<_, ValBuilder<_, _, _, _>, ValSpine<K, V2, _, _>, _, _>(
        name,
        logic,
        |updates, key, changes| {
            updates.clear();
            updates.extend(changes.drain(..).map(|(v, t, r)| ((key.clone(), v), t, r)));
        },
    )
    .as_collection(|key, value| (key.clone(), value.clone()))
}

/// Some members of a group summed up: what its rollup is made of, and what
/// merges into a larger group's. Sums are exact, so a site's rollup does not
/// depend on how its assets are grouped into lines (moving an asset between
/// two lines of a site leaves the site's rollup as it was, bit for bit), nor
/// on workers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Partial {
    assets: u64,
    with_flags: u64,
    worst_health: Health,
    /// The newest of the members' clocks: the group's now.
    newest_us: Micros,
    /// Members whose clock is `newest_us`, at a window with a measurement.
    reporting: u64,
    /// Per fused quantity: the sum of the members' latest values, and how many.
    fused: Vec<(ExactSum, u64)>,
}

impl Default for Partial {
    fn default() -> Self {
        Partial {
            assets: 0,
            with_flags: 0,
            worst_health: Health::Ok,
            newest_us: Micros::MIN,
            reporting: 0,
            fused: Vec::new(),
        }
    }
}

impl Partial {
    fn of(member: &Member) -> Partial {
        let latest = &member.state.latest;
        // An asset with no clock yet neither sets its group's now nor reports.
        let clock = member.state.clock.unwrap_or(AssetClock {
            start_us: Micros::MIN,
            measured: false,
        });
        Partial {
            assets: 1,
            with_flags: u64::from(member.state.flags > 0),
            worst_health: member.state.health,
            newest_us: clock.start_us,
            reporting: u64::from(clock.measured),
            fused: latest
                .values
                .iter()
                .map(|v| {
                    let mut sum = ExactSum::default();
                    if let Some(v) = v {
                        sum.add(v.value);
                    }
                    (sum, u64::from(v.is_some()))
                })
                .collect(),
        }
    }

    fn merge(&mut self, other: &Partial) {
        self.assets += other.assets;
        self.with_flags += other.with_flags;
        self.worst_health = self.worst_health.max(other.worst_health);
        match self.newest_us.cmp(&other.newest_us) {
            std::cmp::Ordering::Less => {
                self.newest_us = other.newest_us;
                self.reporting = other.reporting;
            }
            std::cmp::Ordering::Equal => self.reporting += other.reporting,
            std::cmp::Ordering::Greater => {}
        }
        if self.fused.len() < other.fused.len() {
            self.fused
                .resize(other.fused.len(), (ExactSum::default(), 0));
        }
        for ((sum, n), (more, m)) in self.fused.iter_mut().zip(&other.fused) {
            sum.merge(more);
            *n += m;
        }
    }

    fn rollup(&self) -> Rollup {
        Rollup {
            assets: self.assets,
            assets_reporting: self.reporting,
            assets_with_flags: self.with_flags,
            mean_fused: self
                .fused
                .iter()
                .map(|&(sum, n)| (n > 0).then(|| TotalF64(sum.value() / n as f64)))
                .collect(),
            worst_health: self.worst_health,
            newest_us: self.newest_us,
        }
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
