//! Alignment: the windows of an asset's multi-rate channels put onto one time grid, one row per asset and window.

use std::collections::VecDeque;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::ExchangeData;
use timely::dataflow::Stream;
use twinflow_engine::catalog::{AssetId, Catalog, SensorId};
use twinflow_engine::time::Micros;

use crate::stats::WindowValue;
use crate::time_order::{TimeStep, in_time_order};
use crate::total_order::total_bits;
use crate::window::Window;

/// How a channel is filled in a grid window where its sensor has no window of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// The value of the channel's latest earlier window, if it started at most
    /// `max_age` before (TwinBench: 5 s).
    CarryForward { max_age: Micros },
    /// Linear interpolation between the channel's windows just before and just
    /// after, if they start at most `max_span` apart. The row waits until the
    /// window after is in, or cannot come any more.
    Linear { max_span: Micros },
    /// The channel's window nearest in start time, at most `tolerance` away
    /// (on a tie, the earlier). The row waits until every candidate is in.
    Nearest { tolerance: Micros },
}

impl Fill {
    /// How far from a grid window this fill looks for values.
    fn reach(self) -> Micros {
        match self {
            Fill::CarryForward { max_age } => max_age,
            Fill::Linear { max_span } => max_span,
            Fill::Nearest { tolerance } => tolerance,
        }
    }
}

/// Where an aligned value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Source {
    /// The channel's own window at this grid point.
    Measured,
    /// An earlier window of the channel, carried forward.
    Carried,
    /// Interpolated between the windows before and after.
    Interpolated,
    /// The nearest window within tolerance.
    Nearest,
    /// No value: nothing within reach. Never invented.
    Missing,
}

impl Source {
    pub fn code(self) -> &'static str {
        match self {
            Source::Measured => "measured",
            Source::Carried => "carried",
            Source::Interpolated => "interpolated",
            Source::Nearest => "nearest",
            Source::Missing => "missing",
        }
    }
}

/// One channel of an aligned row.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct AlignedValue {
    /// `None` exactly when `source` is [`Source::Missing`].
    pub value: Option<f64>,
    pub source: Source,
    /// Start of the channel's latest window at or before this grid point:
    /// when its sensor was last seen.
    pub last_seen_us: Option<Micros>,
    /// For a measured value: how many readings its window holds, and their
    /// spread (see [`WindowValue`]); `None` otherwise.
    pub window: Option<WindowShape>,
}

/// How a measured window's value came about: what fusion needs to weigh it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct WindowShape {
    pub readings: u64,
    /// Population variance of the readings, if the aggregate knows it.
    pub spread: Option<f64>,
    /// Readings that arrived ahead of their own event time.
    pub ahead: u64,
}

impl WindowShape {
    /// Whether most of its readings arrived ahead of their own event time:
    /// from a clock that runs ahead, so of an earlier time than the window's.
    pub fn mostly_ahead(&self) -> bool {
        2 * self.ahead > self.readings
    }
}

// Bitwise equality and a total order; NaN never reaches an aligned value anyway.
crate::total_order_by_key!(AlignedValue, |v: &AlignedValue| (
    v.source,
    v.value.map(total_bits),
    v.last_seen_us,
    v.window
        .map(|w| (w.readings, w.spread.map(total_bits), w.ahead))
));

impl AlignedValue {
    /// A value measured in its own window.
    pub fn measured(value: f64, window: WindowShape, last_seen_us: Option<Micros>) -> Self {
        AlignedValue {
            value: Some(value),
            source: Source::Measured,
            last_seen_us,
            window: Some(window),
        }
    }

    /// No value: the channel was not measured, nor carried.
    pub fn missing() -> Self {
        AlignedValue {
            value: None,
            source: Source::Missing,
            last_seen_us: None,
            window: None,
        }
    }

    /// The measured value and its window, if the value is measured.
    pub fn measurement(&self) -> Option<(f64, WindowShape)> {
        match (self.source, self.value, self.window) {
            (Source::Measured, Some(value), Some(window)) => Some((value, window)),
            _ => None,
        }
    }
}

/// An asset's channels on one grid window `[start_us, end_us)`; `values` are
/// indexed like [`Alignment::channels`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AlignedRow {
    pub asset: AssetId,
    pub start_us: Micros,
    pub end_us: Micros,
    pub values: Vec<AlignedValue>,
}

impl AlignedRow {
    /// Whether every measured value of the row came mostly from readings
    /// stamped ahead ([`WindowShape::mostly_ahead`]): only a clock running
    /// ahead measured this window. False for a row with nothing measured.
    pub fn stamped_ahead(&self) -> bool {
        let mut measured = self
            .values
            .iter()
            .filter(|v| v.source == Source::Measured)
            .peekable();
        measured.peek().is_some() && measured.all(|v| v.window.is_some_and(|w| w.mostly_ahead()))
    }
}

/// Which channel of which asset each sensor feeds, and how each channel is filled.
#[derive(Debug, Clone)]
pub struct Alignment {
    grid: Micros,
    channels: Vec<String>,
    fills: Vec<Fill>,
    /// Per sensor id: its asset and channel index.
    sensor_slot: Vec<(AssetId, usize)>,
}

impl Alignment {
    /// One column per distinct channel name of the catalog's sensor table (in
    /// order of first appearance), every channel filled with `fill`, on a grid
    /// of `grid` (the window size).
    pub fn from_catalog(catalog: &Catalog, grid: Micros, fill: Fill) -> Self {
        assert!(grid > 0, "the alignment grid must be positive");
        let mut channels: Vec<String> = Vec::new();
        let sensor_slot = catalog
            .sensors()
            .iter()
            .enumerate()
            .map(|(id, sensor)| {
                let slot = match channels.iter().position(|c| *c == sensor.channel) {
                    Some(slot) => slot,
                    None => {
                        channels.push(sensor.channel.clone());
                        channels.len() - 1
                    }
                };
                (catalog.asset_of(id as SensorId), slot)
            })
            .collect();
        let fills = vec![fill; channels.len()];
        Alignment {
            grid,
            channels,
            fills,
            sensor_slot,
        }
    }

    /// Fills `channel` with `fill` instead; panics on a channel the catalog lacks.
    pub fn with_fill(mut self, channel: &str, fill: Fill) -> Self {
        let slot = self.channel_index(channel).unwrap_or_else(|| {
            panic!("no channel {channel:?} in the catalog: {:?}", self.channels)
        });
        self.fills[slot] = fill;
        self
    }

    /// Channel names, in column order.
    pub fn channels(&self) -> &[String] {
        &self.channels
    }

    pub fn channel_index(&self, channel: &str) -> Option<usize> {
        self.channels.iter().position(|c| c == channel)
    }

    /// The sensor's asset and channel index.
    pub fn slot_of(&self, sensor: SensorId) -> (AssetId, usize) {
        self.sensor_slot[sensor as usize]
    }

    pub fn grid(&self) -> Micros {
        self.grid
    }
}

/// Aligns per-sensor windows into per-asset rows.
pub trait AlignWindows<'s> {
    /// Emits one [`AlignedRow`] per asset for each grid window in which at least
    /// one of the asset's sensors has a window; each channel holds its own
    /// window's value (measured), or a value filled by the channel's [`Fill`],
    /// or nothing (missing).
    ///
    /// Guarantees:
    /// - each asset's rows come out in window order, each exactly once, and
    ///   identical for any number of workers (rows are exchanged by asset and
    ///   each timestamp's windows are sorted before use);
    /// - a row whose channels all carry forward is emitted at the timestamp its
    ///   window closes; one waiting on a later window (interpolation, nearest)
    ///   is emitted as soon as that window closes, or at the end of the input;
    /// - state is bounded: each channel keeps only the windows within its reach.
    ///
    /// ```
    /// use timely::dataflow::InputHandle;
    /// use timely::dataflow::operators::{Capture, capture::Extract};
    /// use twinflow_engine::catalog::Catalog;
    /// use twinflow_operators::align::{AlignWindows, Alignment, Fill, Source};
    /// use twinflow_operators::stats::Stats;
    /// use twinflow_operators::window::Window;
    ///
    /// let catalog = Catalog::discovered(&[
    ///     ("pump-1/flow".into(), "pump-1".into(), "flow".into()),
    ///     ("pump-1/speed".into(), "pump-1".into(), "speed".into()),
    /// ]).unwrap();
    /// let alignment = Alignment::from_catalog(&catalog, 1_000_000, Fill::CarryForward { max_age: 5_000_000 });
    /// let rows = timely::execute_directly(move |worker| {
    ///     let mut input = InputHandle::new();
    ///     let captured = worker.dataflow::<i64, _, _>(|scope| {
    ///         input.to_stream(scope).align(alignment.clone()).capture()
    ///     });
    ///     // flow (sensor 0) reports in windows 0 and 1, speed (sensor 1) only in window 0.
    ///     for (sensor, start, mean) in [(0, 0, 4.0), (1, 0, 1500.0), (0, 1_000_000, 5.0)] {
    ///         let mut stats = Stats::default();
    ///         stats.push(start, mean);
    ///         input.advance_to(start + 1_000_000);
    ///         input.send(Window { key: sensor, start_us: start, end_us: start + 1_000_000, aggregate: stats });
    ///     }
    ///     input.close();
    ///     while worker.step() {}
    ///     captured.extract()
    /// });
    /// let rows: Vec<_> = rows.into_iter().flat_map(|(_, rows)| rows).collect();
    /// assert_eq!(rows.len(), 2);
    /// assert_eq!(rows[1].values[0].value, Some(5.0));
    /// assert_eq!(rows[1].values[1].value, Some(1500.0));
    /// assert_eq!(rows[1].values[1].source, Source::Carried);
    /// ```
    fn align(self, alignment: Alignment) -> Stream<'s, Micros, Vec<AlignedRow>>;
}

impl<'s, A> AlignWindows<'s> for Stream<'s, Micros, Vec<Window<SensorId, A>>>
where
    A: WindowValue + ExchangeData,
{
    fn align(self, alignment: Alignment) -> Stream<'s, Micros, Vec<AlignedRow>> {
        let alignment = Arc::new(alignment);
        let route = Arc::clone(&alignment);
        in_time_order(
            self,
            "Align",
            move |w: &Window<SensorId, A>| route.slot_of(w.key).0 as u64,
            Aligner {
                alignment,
                assets: FxHashMap::default(),
                scratch: Vec::new(),
            },
        )
    }
}

/// The alignment state of the assets on one worker.
struct Aligner {
    alignment: Arc<Alignment>,
    assets: FxHashMap<AssetId, AssetState>,
    /// This timestamp's windows as (asset, start, channel, value, shape), sorted.
    scratch: Vec<(AssetId, Micros, usize, f64, WindowShape)>,
}

/// One asset's recent channel windows and its rows not yet emitted.
#[derive(Default)]
struct AssetState {
    channels: Vec<ChannelHistory>,
    /// Rows by start, oldest first; emitted from the front once resolved.
    pending: VecDeque<PendingRow>,
}

/// A channel's window: (start, value).
type Point = (Micros, f64);

#[derive(Default)]
struct ChannelHistory {
    /// (start, value) of the channel's windows within reach, by start.
    points: VecDeque<(Micros, f64)>,
    /// Start of the newest window dropped from `points`.
    dropped_last: Option<Micros>,
}

impl ChannelHistory {
    fn insert(&mut self, start: Micros, value: f64) {
        match self.points.back() {
            Some(&(last, _)) if last >= start => {
                let i = self.points.partition_point(|&(s, _)| s < start);
                self.points.insert(i, (start, value));
            }
            _ => self.points.push_back((start, value)),
        }
    }

    /// The newest point strictly before `start`, and the oldest strictly after.
    fn around(&self, start: Micros) -> (Option<Point>, Option<Point>) {
        let i = self.points.partition_point(|&(s, _)| s < start);
        let before = i.checked_sub(1).map(|j| self.points[j]);
        let after = self.points.range(i..).find(|&&(s, _)| s > start).copied();
        (before, after)
    }

    fn last_seen(&self, start: Micros) -> Option<Micros> {
        let i = self.points.partition_point(|&(s, _)| s <= start);
        match i {
            0 => self.dropped_last,
            i => Some(self.points[i - 1].0),
        }
    }

    /// Drops points that no row starting at or after `horizon` can use.
    fn trim(&mut self, horizon: Micros) {
        while let Some(&(start, _)) = self.points.front() {
            if start >= horizon {
                break;
            }
            self.dropped_last = Some(start);
            self.points.pop_front();
        }
    }
}

struct PendingRow {
    start: Micros,
    measured: Vec<Option<(f64, WindowShape)>>,
}

impl<A: WindowValue> TimeStep<Window<SensorId, A>, AlignedRow> for Aligner {
    fn step(
        &mut self,
        time: Micros,
        windows: &mut Vec<Window<SensorId, A>>,
        out: &mut Vec<AlignedRow>,
    ) {
        let alignment = &self.alignment;
        self.scratch.clear();
        self.scratch.extend(windows.drain(..).map(|w| {
            let (asset, slot) = alignment.slot_of(w.key);
            let shape = WindowShape {
                readings: w.aggregate.readings(),
                spread: w.aggregate.spread(),
                ahead: w.aggregate.ahead(),
            };
            (asset, w.start_us, slot, w.aggregate.value(), shape)
        }));
        // Each worker's windows come sorted: a stable sort merges the runs.
        self.scratch
            .sort_by_key(|&(asset, start, slot, _, _)| (asset, start, slot));
        let channels = alignment.channels.len();
        for &(asset, start, slot, value, shape) in &self.scratch {
            let state = self.assets.entry(asset).or_insert_with(|| AssetState {
                channels: (0..channels).map(|_| ChannelHistory::default()).collect(),
                pending: VecDeque::new(),
            });
            state.channels[slot].insert(start, value);
            state.row_at(start, channels).measured[slot] = Some((value, shape));
        }
        // Rows waiting on later windows may resolve now on any asset with
        // pending rows; assets are visited in id order for determinism.
        let mut assets: Vec<AssetId> = self
            .assets
            .iter()
            .filter(|(_, s)| !s.pending.is_empty())
            .map(|(a, _)| *a)
            .collect();
        assets.sort_unstable();
        for asset in assets {
            let state = self.assets.get_mut(&asset).expect("listed asset");
            state.emit_resolved(asset, alignment, Some(time), out);
        }
    }

    fn finish(&mut self, out: &mut Vec<AlignedRow>) {
        let mut assets: Vec<AssetId> = self.assets.keys().copied().collect();
        assets.sort_unstable();
        for asset in assets {
            let state = self.assets.get_mut(&asset).expect("listed asset");
            state.emit_resolved(asset, &self.alignment, None, out);
        }
    }
}

impl AssetState {
    fn row_at(&mut self, start: Micros, channels: usize) -> &mut PendingRow {
        let i = self.pending.partition_point(|r| r.start < start);
        if self.pending.get(i).is_none_or(|r| r.start != start) {
            let row = PendingRow {
                start,
                measured: vec![None; channels],
            };
            self.pending.insert(i, row);
        }
        &mut self.pending[i]
    }

    /// Emits pending rows from the front while every channel is decided.
    /// `closed_until` is the time up to which every window has closed (`None`
    /// at the end of the input: nothing more will come).
    fn emit_resolved(
        &mut self,
        asset: AssetId,
        alignment: &Alignment,
        closed_until: Option<Micros>,
        out: &mut Vec<AlignedRow>,
    ) {
        while let Some(row) = self.pending.front() {
            let values: Option<Vec<AlignedValue>> = row
                .measured
                .iter()
                .enumerate()
                .map(|(slot, measured)| {
                    let history = &self.channels[slot];
                    let last_seen_us = history.last_seen(row.start);
                    match measured {
                        Some((value, shape)) => {
                            Some(AlignedValue::measured(*value, *shape, last_seen_us))
                        }
                        None => fill(
                            alignment.fills[slot],
                            history,
                            row.start,
                            alignment.grid,
                            closed_until,
                        )
                        .map(|(value, source)| AlignedValue {
                            value,
                            source,
                            last_seen_us,
                            window: None,
                        }),
                    }
                })
                .collect();
            let Some(values) = values else {
                break;
            };
            out.push(AlignedRow {
                asset,
                start_us: row.start,
                end_us: row.start + alignment.grid,
                values,
            });
            self.pending.pop_front();
        }
        let next_start = self.pending.front().map(|r| r.start);
        let latest_closed = closed_until.map(|t| t - alignment.grid);
        if let Some(oldest_use) = next_start.into_iter().chain(latest_closed).min() {
            for (slot, history) in self.channels.iter_mut().enumerate() {
                history.trim(oldest_use - alignment.fills[slot].reach());
            }
        }
    }
}

/// Decides a channel with no window at `start`, or `None` when it must wait
/// for windows not yet closed.
fn fill(
    fill: Fill,
    history: &ChannelHistory,
    start: Micros,
    grid: Micros,
    closed_until: Option<Micros>,
) -> Option<(Option<f64>, Source)> {
    let missing = Some((None, Source::Missing));
    // Has every window starting at or before `s` closed?
    let closed = |s: Micros| closed_until.is_none_or(|t| s + grid <= t);
    let (before, after) = history.around(start);
    match fill {
        Fill::CarryForward { max_age } => match before {
            Some((s, v)) if start - s <= max_age => Some((Some(v), Source::Carried)),
            _ => missing,
        },
        Fill::Linear { max_span } => match (before, after) {
            (Some((s0, v0)), Some((s1, v1))) if s1 - s0 <= max_span => {
                let f = (start - s0) as f64 / (s1 - s0) as f64;
                Some((Some(v0 + f * (v1 - v0)), Source::Interpolated))
            }
            (Some((s0, _)), None) if !closed(s0 + max_span) => None,
            _ => missing,
        },
        Fill::Nearest { tolerance } => {
            let near = |p: Option<Point>| p.filter(|(s, _)| (s - start).abs() <= tolerance);
            match (near(before), near(after)) {
                (Some((s0, v0)), Some((s1, v1))) => {
                    let v = if start - s0 <= s1 - start { v0 } else { v1 };
                    Some((Some(v), Source::Nearest))
                }
                (_, Some((_, v))) => Some((Some(v), Source::Nearest)),
                // A later window could still come, and be the nearer one.
                (_, None) if !closed(start + tolerance) => None,
                (Some((_, v)), None) => Some((Some(v), Source::Nearest)),
                (None, None) => missing,
            }
        }
    }
}
