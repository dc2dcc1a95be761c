//! Event-time windows (tumbling, sliding, session) that close when the frontier passes their end.

use std::collections::{BTreeMap, VecDeque};
use std::hash::Hash;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::ExchangeData;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Operator;
use twinflow_engine::event::Reading;
use twinflow_engine::runtime::spread;
use twinflow_engine::time::{Micros, window_start};

use twinflow_engine::exchange::exchange;

/// A record that can be windowed: it has a key, an event time, and the number
/// of the log run it was read from (see [`Reading::run`]).
pub trait WindowRecord: ExchangeData + Clone {
    type Key: ExchangeData + Hash + Eq + Ord + Clone;
    fn key(&self) -> Self::Key;
    fn event_time(&self) -> Micros;
    /// The log run the record came from; records of one run arrive in order.
    fn run(&self) -> u32;
    /// Spreads keys over the window combiner's slots and, unless
    /// [`EventTimeWindows::window_by`] routes them otherwise, over workers;
    /// records with equal keys must route alike.
    fn route(&self) -> u64;
}

impl WindowRecord for Reading {
    type Key = twinflow_engine::catalog::SensorId;
    #[inline]
    fn key(&self) -> Self::Key {
        self.sensor
    }
    #[inline]
    fn event_time(&self) -> Micros {
        self.ts_us
    }
    #[inline]
    fn run(&self) -> u32 {
        self.run
    }
    #[inline]
    fn route(&self) -> u64 {
        self.sensor as u64
    }
}

/// Partial aggregates that fold together: the half of [`Aggregate`] that does
/// not depend on the record type. `A::default()` must be the identity of `merge`.
pub trait Merge: Default + Clone + 'static {
    /// Folds in the aggregate of records that arrived after this one's.
    fn merge(&mut self, later: &Self);
}

/// An incremental aggregate of the records of a window.
///
/// Records of one run are added in arrival order; [`Merge::merge`] then folds
/// partial aggregates in arrival order within a run and in run order across
/// runs, so the result never depends on how runs were spread across workers.
pub trait Aggregate<R>: Merge {
    fn add(&mut self, record: &R);
}

/// How records are grouped into windows, per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Windows {
    /// `[k·size, (k+1)·size)`.
    Tumbling { size: Micros },
    /// `[k·slide, k·slide + size)`: a record is in `size / slide` windows.
    Sliding { size: Micros, slide: Micros },
    /// Records closer than `gap` in event time share a window `[first, last + gap)`.
    Session { gap: Micros },
}

/// One closed window of one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window<K, A> {
    pub key: K,
    pub start_us: Micros,
    pub end_us: Micros,
    pub aggregate: A,
}

/// Groups a stream of records into event-time windows per key.
pub trait EventTimeWindows<'s, R: WindowRecord> {
    /// Aggregates each key's records into `windows` and emits every window
    /// once, complete, as soon as the input frontier passes its end.
    ///
    /// Guarantees:
    /// - a window is emitted exactly once, at timestamp `end_us`, after every
    ///   worker in every process has moved past `end_us` (records are exchanged
    ///   by [`WindowRecord::route`], spread by [`twinflow_engine::runtime::spread`],
    ///   so each key's state lives on one worker, and so do its windows);
    /// - the input contract is that a record sent at time `t` has event time
    ///   `>= t` (the log source sends at its watermark, which guarantees it), so
    ///   no record ever reaches a closed window;
    /// - results do not depend on the number of workers or processes: tumbling
    ///   and sliding windows pre-aggregate each input batch on the worker that
    ///   read it (only partials cross workers), and partials are merged in
    ///   arrival order within a log run and in run order across runs, so the
    ///   output depends on the runs and their batches, which the log fixes;
    /// - a closed window's state is freed when it is emitted.
    ///
    /// ```
    /// use timely::dataflow::InputHandle;
    /// use timely::dataflow::operators::{Capture, capture::Event};
    /// use twinflow_engine::event::Reading;
    /// use twinflow_operators::stats::Stats;
    /// use twinflow_operators::window::{EventTimeWindows, Window, Windows};
    ///
    /// let windows = timely::execute_directly(|worker| {
    ///     let mut input = InputHandle::new();
    ///     let captured = worker.dataflow::<i64, _, _>(|scope| {
    ///         input
    ///             .to_stream(scope)
    ///             .window::<Stats>(Windows::Tumbling { size: 1_000_000 })
    ///             .capture()
    ///     });
    ///     for (ts_us, value) in [(100, 1.0), (900_000, 3.0), (1_200_000, 10.0)] {
    ///         input.send(Reading { sensor: 7, run: 0, ts_us, value, arrival_us: ts_us });
    ///     }
    ///     input.close();
    ///     while worker.step() {}
    ///     let windows: Vec<Window<u32, Stats>> = captured
    ///         .try_iter()
    ///         .flat_map(|event| match event {
    ///             Event::Messages(_, windows) => windows,
    ///             Event::Progress(_) => Vec::new(),
    ///         })
    ///         .collect();
    ///     windows
    /// });
    /// let all = windows;
    /// assert_eq!(all.len(), 2);
    /// assert_eq!((all[0].start_us, all[0].aggregate.count, all[0].aggregate.mean()), (0, 2, 2.0));
    /// assert_eq!((all[1].start_us, all[1].aggregate.last), (1_000_000, 10.0));
    /// ```
    fn window<A>(self, windows: Windows) -> Stream<'s, Micros, Vec<Window<R::Key, A>>>
    where
        A: Aggregate<R> + ExchangeData;

    /// [`EventTimeWindows::window`], with each key's windows kept on the
    /// worker that `route(key)` picks (spread as every route is), so keys
    /// with equal routes share a worker. An operator downstream that routes
    /// by the same function (the alignment routes by asset) then finds every
    /// window already in place, and nothing crosses workers on the way. The
    /// guarantees of `window` hold whatever the route.
    ///
    /// ```
    /// use timely::dataflow::InputHandle;
    /// use timely::dataflow::operators::Inspect;
    /// use twinflow_engine::event::Reading;
    /// use twinflow_engine::runtime::spread;
    /// use twinflow_operators::stats::Stats;
    /// use twinflow_operators::window::{EventTimeWindows, Windows};
    ///
    /// // Sensors 0..8 belong to assets 0..4, two each.
    /// let asset = |sensor: &u32| u64::from(sensor / 2);
    /// timely::execute(timely::Config::process(2), move |worker| {
    ///     let index = worker.index() as u64;
    ///     let mut input = InputHandle::new();
    ///     worker.dataflow::<i64, _, _>(|scope| {
    ///         let windows = Windows::Tumbling { size: 1_000_000 };
    ///         input
    ///             .to_stream(scope)
    ///             .window_by::<Stats>(windows, asset)
    ///             // Each window closes on its asset's worker.
    ///             .inspect(move |w| assert_eq!(spread(asset(&w.key)) % 2, index));
    ///     });
    ///     for sensor in 0..8 {
    ///         input.send(Reading { sensor, run: index as u32, ts_us: 10, value: 1.0, arrival_us: 10 });
    ///     }
    /// })
    /// .unwrap();
    /// ```
    fn window_by<A>(
        self,
        windows: Windows,
        route: impl Fn(&R::Key) -> u64 + 'static,
    ) -> Stream<'s, Micros, Vec<Window<R::Key, A>>>
    where
        A: Aggregate<R> + ExchangeData;
}

impl<'s, R: WindowRecord> EventTimeWindows<'s, R> for Stream<'s, Micros, Vec<R>> {
    fn window<A>(self, windows: Windows) -> Stream<'s, Micros, Vec<Window<R::Key, A>>>
    where
        A: Aggregate<R> + ExchangeData,
    {
        window_routed(self, windows, |r: &R| r.route())
    }

    fn window_by<A>(
        self,
        windows: Windows,
        route: impl Fn(&R::Key) -> u64 + 'static,
    ) -> Stream<'s, Micros, Vec<Window<R::Key, A>>>
    where
        A: Aggregate<R> + ExchangeData,
    {
        window_routed(self, windows, move |r: &R| route(&r.key()))
    }
}

/// Windows `stream`, each key's state on the worker of `route` (see
/// [`EventTimeWindows::window_by`]); `route` is asked once per partial, not
/// per record.
fn window_routed<'s, R, A>(
    stream: Stream<'s, Micros, Vec<R>>,
    windows: Windows,
    route: impl Fn(&R) -> u64 + 'static,
) -> Stream<'s, Micros, Vec<Window<R::Key, A>>>
where
    R: WindowRecord,
    A: Aggregate<R> + ExchangeData,
{
    match windows {
        Windows::Tumbling { size } => close_windows(
            combine(stream, size, size, route),
            |p| p.route,
            FixedWindows::new(size, size),
        ),
        Windows::Sliding { size, slide } => close_windows(
            combine(stream, size, slide, route),
            |p| p.route,
            FixedWindows::new(size, slide),
        ),
        Windows::Session { gap } => {
            assert!(gap > 0, "session gap must be positive");
            let checked = stream.unary(Pipeline, "CheckEventTime", |_, _| {
                move |input, output| {
                    input.for_each(|stamp, data| {
                        let sent_at = stamp.least().copied().unwrap_or(Micros::MIN);
                        data.iter()
                            .for_each(|r| check_contract(sent_at, r.event_time()));
                        output.session(&stamp).give_container(data);
                    })
                }
            });
            close_windows(checked, route, SessionWindows::new(gap))
        }
    }
}

#[inline]
fn check_contract(sent_at: Micros, event_time: Micros) {
    assert!(
        event_time >= sent_at,
        "window input contract: a record sent at time {sent_at} has event time {event_time}"
    );
}

/// The aggregate of consecutive records of one key, window and run: what
/// crosses workers instead of every record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Partial<K, A> {
    key: K,
    start: Micros,
    run: u32,
    route: u64,
    aggregate: A,
}

/// Slots of the combiner's cache (a power of two).
const COMBINER_SLOTS: usize = 4096;

/// Partials a combiner slot holds at once. Arrival order is not event-time
/// order, so near a window's end a key's records alternate between that window
/// and the next: with one partial per slot, each alternation flushed a partial
/// (TwinBench: 3.1 partials per window). Two keep both windows open.
const COMBINER_WAYS: usize = 2;

/// Pre-aggregates each input batch on the worker that read it, before the
/// exchange: a cache indexed by the record's route holds up to
/// [`COMBINER_WAYS`] partials per slot; a record that matches none of its
/// slot's partials (key, window and run) starts one, flushing the slot's
/// oldest window if the slot is full, and the batch's end flushes them all.
/// Partials of one key, window and run leave in arrival order, so merging
/// them in the order they arrive is merging the run's records in order:
/// results depend on the batches (fixed by the log's runs), never on the
/// worker count.
fn combine<'s, R, A>(
    stream: Stream<'s, Micros, Vec<R>>,
    size: Micros,
    slide: Micros,
    route: impl Fn(&R) -> u64 + 'static,
) -> Stream<'s, Micros, Vec<Partial<R::Key, A>>>
where
    R: WindowRecord,
    A: Aggregate<R> + ExchangeData,
{
    assert!(
        size > 0 && slide > 0 && slide <= size,
        "windows need 0 < slide <= size"
    );
    stream.unary(Pipeline, "CombineWindows", move |_, _| {
        let mut combiner = Combiner::new();
        move |input, output| {
            input.for_each(|stamp, data| {
                let sent_at = stamp.least().copied().unwrap_or(Micros::MIN);
                for record in data.iter() {
                    check_contract(sent_at, record.event_time());
                    if size == slide {
                        combiner.add_tumbling(record, size, &route);
                    } else {
                        combiner.add_sliding(record, size, slide, &route);
                    }
                }
                output.session(&stamp).give_container(combiner.flush());
            })
        }
    })
}

/// The combiner's cache of partials (see [`combine`]).
struct Combiner<K, A> {
    slots: Vec<[Option<Partial<K, A>>; COMBINER_WAYS]>,
    /// (slot, way) in the order each was first filled.
    occupied: Vec<(usize, usize)>,
    /// Partials flushed, in order.
    partials: Vec<Partial<K, A>>,
}

impl<K: PartialEq, A> Combiner<K, A> {
    fn new() -> Self {
        Combiner {
            slots: (0..COMBINER_SLOTS)
                .map(|_| [const { None }; COMBINER_WAYS])
                .collect(),
            occupied: Vec::new(),
            partials: Vec::new(),
        }
    }

    /// Adds `record` to its tumbling window of `size`, in the slot of its
    /// route. The window's start is only computed (a division) for a new
    /// partial.
    #[inline]
    fn add_tumbling<R>(&mut self, record: &R, size: Micros, route: &impl Fn(&R) -> u64)
    where
        R: WindowRecord<Key = K>,
        A: Aggregate<R>,
    {
        let ts = record.event_time();
        let index = record.route() as usize & (COMBINER_SLOTS - 1);
        self.add(
            index,
            record,
            |start| start <= ts && ts < start + size,
            || window_start(ts, size),
            route,
        );
    }

    /// Adds `record` to each of its sliding windows (`size`, every `slide`),
    /// each in a slot of its route mixed with the window's start.
    #[inline]
    fn add_sliding<R>(
        &mut self,
        record: &R,
        size: Micros,
        slide: Micros,
        route: &impl Fn(&R) -> u64,
    ) where
        R: WindowRecord<Key = K>,
        A: Aggregate<R>,
    {
        let (ts, hash) = (record.event_time(), record.route());
        let mut start = window_start(ts, slide);
        while start > ts - size {
            let mixed = hash ^ ((start / slide) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let index = mixed as usize & (COMBINER_SLOTS - 1);
            self.add(index, record, |s| s == start, || start, route);
            start -= slide;
        }
    }

    /// Adds `record` to the partial in slot `index` whose window start
    /// satisfies `in_window`, or starts a partial for the window starting at
    /// `start()`.
    #[inline]
    fn add<R>(
        &mut self,
        index: usize,
        record: &R,
        in_window: impl Fn(Micros) -> bool,
        start: impl FnOnce() -> Micros,
        route: &impl Fn(&R) -> u64,
    ) where
        R: WindowRecord<Key = K>,
        A: Aggregate<R>,
    {
        let ways = &mut self.slots[index];
        for p in ways.iter_mut().flatten() {
            if in_window(p.start) && p.run == record.run() && p.key == record.key() {
                p.aggregate.add(record);
                return;
            }
        }
        // A free way, else the way of the oldest window: it is the one that
        // (arrival lagging event time) is least likely to see more records.
        let way = ways.iter().position(Option::is_none).unwrap_or_else(|| {
            (0..COMBINER_WAYS)
                .min_by_key(|&w| ways[w].as_ref().map(|p| p.start))
                .expect("a slot has ways")
        });
        let mut aggregate = A::default();
        aggregate.add(record);
        let fresh = Partial {
            key: record.key(),
            start: start(),
            run: record.run(),
            route: route(record),
            aggregate,
        };
        match ways[way].replace(fresh) {
            Some(previous) => self.partials.push(previous),
            None => self.occupied.push((index, way)),
        }
    }

    /// The batch's partials: those flushed, then the cached ones in the order
    /// their ways were first filled (deterministic for a given batch).
    fn flush(&mut self) -> &mut Vec<Partial<K, A>> {
        let Combiner {
            slots,
            occupied,
            partials,
        } = self;
        partials.extend(
            occupied
                .drain(..)
                .filter_map(|(slot, way)| slots[slot][way].take()),
        );
        partials
    }
}

/// Exchanges items by `route` (through [`exchange`]: items already on their
/// worker, as checked readings are, stay there), keeps per-worker window
/// `state`, and emits each window when the input frontier passes its end,
/// one container per end time.
fn close_windows<'s, I, K, A, S>(
    stream: Stream<'s, Micros, Vec<I>>,
    route: impl Fn(&I) -> u64 + 'static,
    mut state: S,
) -> Stream<'s, Micros, Vec<Window<K, A>>>
where
    I: ExchangeData,
    K: ExchangeData,
    A: ExchangeData,
    S: WindowState<I, K, A> + 'static,
{
    stream.unary_frontier(
        exchange(move |i: &I| spread(route(i))),
        "EventTimeWindow",
        |capability, _info| {
            let mut capability = Some(capability);
            let mut closed = Vec::new();
            move |(input, frontier), output| {
                // `for_each`, not `for_each_stamp`: messages must stay in arrival order.
                input.for_each(|_, data| data.iter().for_each(|item| state.insert(item)));
                let upto = frontier.frontier().first().copied().unwrap_or(Micros::MAX);
                if let Some(cap) = capability.as_mut() {
                    state.close_until(upto, &mut closed);
                    // The windows of one end time leave as one container: a
                    // message per few kilobytes, cloned for each consumer,
                    // cost more than the windows in it.
                    let ends: Vec<(Micros, usize)> = closed
                        .chunk_by(|a, b| a.end_us == b.end_us)
                        .map(|same| (same[0].end_us, same.len()))
                        .collect();
                    let mut windows = closed.drain(..);
                    for (end, count) in ends {
                        let time = cap.delayed(&end.max(*cap.time()));
                        let mut batch: Vec<_> = windows.by_ref().take(count).collect();
                        output.session(&time).give_container(&mut batch);
                    }
                    if frontier.is_empty() {
                        capability = None;
                    } else {
                        let next = state.next_end(upto);
                        if *cap.time() < next {
                            cap.downgrade(&next);
                        }
                    }
                }
            }
        },
    )
}

/// The windows of every key on one worker, fed with items of type `I`.
trait WindowState<I, K, A> {
    fn insert(&mut self, item: &I);
    /// Moves every window that ends at or before `upto` into `out`, in end order.
    fn close_until(&mut self, upto: Micros, out: &mut Vec<Window<K, A>>);
    /// The earliest end a window still open after `close_until(upto)` can
    /// have: the output capability is held there, not at `upto`, so the
    /// operators downstream see the frontier move once per window, not once
    /// per input batch.
    fn next_end(&self, upto: Micros) -> Micros {
        upto
    }
}

/// Partial aggregates of one window, one per log run. The partial last merged
/// into is kept inline (`hot`): nearly every partial extends it, so the common
/// case is one comparison and no allocation.
#[derive(Debug, Clone)]
struct RunPartials<A> {
    hot_run: u32,
    hot: A,
    others: Vec<(u32, A)>,
}

impl<A: Merge> RunPartials<A> {
    /// The window's first partial, of `run`.
    fn new(run: u32, first: &A) -> Self {
        RunPartials {
            hot_run: run,
            hot: first.clone(),
            others: Vec::new(),
        }
    }

    /// Folds in a partial aggregate of `run` that follows the run's earlier ones.
    #[inline]
    fn merge(&mut self, run: u32, partial: &A) {
        if run != self.hot_run {
            self.switch_to(run);
        }
        self.hot.merge(partial);
    }

    /// Parks the hot partial among the others and brings `run`'s forward.
    #[cold]
    fn switch_to(&mut self, run: u32) {
        let incoming = match self.others.iter().position(|(r, _)| *r == run) {
            Some(i) => self.others.swap_remove(i).1,
            None => A::default(),
        };
        let parked = std::mem::replace(&mut self.hot, incoming);
        self.others.push((self.hot_run, parked));
        self.hot_run = run;
    }

    /// Merges the partials in run order.
    fn combine(self) -> A {
        // Most windows saw one run only: no list to build.
        if self.others.is_empty() {
            return self.hot;
        }
        let mut parts = self.others;
        parts.push((self.hot_run, self.hot));
        parts.sort_unstable_by_key(|(run, _)| *run);
        let mut parts = parts.into_iter();
        let mut total = parts.next().map(|(_, a)| a).unwrap_or_default();
        for (_, later) in parts {
            total.merge(&later);
        }
        total
    }
}

/// Tumbling and sliding windows, fed with the combiner's partials (each
/// already assigned to its window).
///
/// Each key keeps its newest open window inline, beside the hash-table entry:
/// nearly every partial of a key lands there, at the cost of one lookup. Older
/// open windows (readers of different runs can be a run apart in event time)
/// follow in a short list of the key's own, by start: a key's windows stay
/// together in memory. (A slab shared by all keys, which moved 16 bytes
/// where this moves a whole aggregate, made the operator 17-29% slower on
/// TwinBench: the key's windows were scattered.)
struct FixedWindows<K, A> {
    size: Micros,
    /// Windows start at multiples of `slide` (`size` for tumbling windows).
    slide: Micros,
    open: FxHashMap<K, KeyWindows<A>>,
    /// Keys with a window ending at each time.
    due: BTreeMap<Micros, Vec<K>>,
}

/// The open windows of one key.
struct KeyWindows<A> {
    newest_start: Micros,
    newest: RunPartials<A>,
    /// Older open windows, by start.
    older: VecDeque<(Micros, RunPartials<A>)>,
}

impl<K, A> FixedWindows<K, A> {
    fn new(size: Micros, slide: Micros) -> Self {
        FixedWindows {
            size,
            slide,
            open: FxHashMap::default(),
            due: BTreeMap::new(),
        }
    }
}

impl<K, A> WindowState<Partial<K, A>, K, A> for FixedWindows<K, A>
where
    K: ExchangeData + Hash + Eq + Ord + Clone,
    A: Merge,
{
    #[inline]
    fn insert(&mut self, partial: &Partial<K, A>) {
        let FixedWindows {
            size, open, due, ..
        } = self;
        let (start, run) = (partial.start, partial.run);
        let fresh = || RunPartials::new(run, &partial.aggregate);
        let Some(windows) = open.get_mut(&partial.key) else {
            let windows = KeyWindows {
                newest_start: start,
                newest: fresh(),
                older: VecDeque::new(),
            };
            open.insert(partial.key.clone(), windows);
            due.entry(start + *size)
                .or_default()
                .push(partial.key.clone());
            return;
        };
        if start == windows.newest_start {
            windows.newest.merge(run, &partial.aggregate);
        } else if start > windows.newest_start {
            // A newer window: the newest so far joins the older ones.
            let previous = std::mem::replace(&mut windows.newest, fresh());
            let previous_start = std::mem::replace(&mut windows.newest_start, start);
            windows.older.push_back((previous_start, previous));
            due.entry(start + *size)
                .or_default()
                .push(partial.key.clone());
        } else {
            match windows.older.binary_search_by_key(&start, |(s, _)| *s) {
                Ok(i) => windows.older[i].1.merge(run, &partial.aggregate),
                Err(i) => {
                    windows.older.insert(i, (start, fresh()));
                    due.entry(start + *size)
                        .or_default()
                        .push(partial.key.clone());
                }
            }
        }
    }

    /// The first end after `upto` of a window starting at a multiple of `slide`.
    fn next_end(&self, upto: Micros) -> Micros {
        window_start(
            upto.saturating_sub(self.size).saturating_add(self.slide),
            self.slide,
        )
        .saturating_add(self.size)
    }

    fn close_until(&mut self, upto: Micros, out: &mut Vec<Window<K, A>>) {
        while let Some(entry) = self.due.first_entry() {
            if *entry.key() > upto {
                break;
            }
            let (end, mut keys) = entry.remove_entry();
            keys.sort_unstable();
            let start = end - self.size;
            for key in keys {
                let windows = self.open.get_mut(&key).expect("a due key has windows");
                let partials = if windows.newest_start == start {
                    // Older windows end earlier, so they are closed already.
                    debug_assert!(windows.older.is_empty());
                    self.open.remove(&key).expect("present").newest
                } else {
                    // Windows close in start order: nearly always the front.
                    let at = windows
                        .older
                        .iter()
                        .position(|(s, _)| *s == start)
                        .expect("a due window is open");
                    windows.older.remove(at).expect("in range").1
                };
                out.push(Window {
                    key,
                    start_us: start,
                    end_us: end,
                    aggregate: partials.combine(),
                });
            }
        }
    }
}

/// Session windows: records are kept, per key and run in arrival order, until
/// their session closes; then each session is aggregated run by run.
struct SessionWindows<K, R> {
    gap: Micros,
    pending: FxHashMap<K, BTreeMap<u32, Vec<R>>>,
    /// When each key's earliest session might close (may be early: re-checked).
    due: BTreeMap<Micros, Vec<K>>,
}

impl<K, R> SessionWindows<K, R> {
    fn new(gap: Micros) -> Self {
        SessionWindows {
            gap,
            pending: FxHashMap::default(),
            due: BTreeMap::new(),
        }
    }
}

impl<R: WindowRecord, A: Aggregate<R>> WindowState<R, R::Key, A> for SessionWindows<R::Key, R> {
    fn insert(&mut self, record: &R) {
        let runs = self.pending.entry(record.key()).or_insert_with(|| {
            self.due
                .entry(record.event_time() + self.gap)
                .or_default()
                .push(record.key());
            BTreeMap::new()
        });
        runs.entry(record.run()).or_default().push(record.clone());
    }

    fn close_until(&mut self, upto: Micros, out: &mut Vec<Window<R::Key, A>>) {
        let mut closing: Vec<(Micros, R::Key)> = Vec::new();
        while let Some(entry) = self.due.first_entry() {
            if *entry.key() > upto {
                break;
            }
            let (_, keys) = entry.remove_entry();
            for key in keys {
                let Some(runs) = self.pending.get_mut(&key) else {
                    continue;
                };
                let mut times: Vec<Micros> =
                    runs.values().flatten().map(|r| r.event_time()).collect();
                times.sort_unstable();
                // Sessions as [first, last] of event times closer than `gap`.
                let mut sessions: Vec<(Micros, Micros)> = Vec::new();
                for t in times {
                    match sessions.last_mut() {
                        Some((_, last)) if t < *last + self.gap => *last = t,
                        _ => sessions.push((t, t)),
                    }
                }
                let closed = sessions
                    .iter()
                    .take_while(|(_, last)| *last + self.gap <= upto)
                    .count();
                let mut aggregates: Vec<A> = vec![A::default(); closed];
                let mut first_run = vec![true; closed];
                if closed > 0 {
                    let limit = sessions[closed - 1].1;
                    for records in runs.values_mut() {
                        let mut run_aggs: Vec<Option<A>> = vec![None; closed];
                        records.retain(|r| {
                            let t = r.event_time();
                            if t > limit {
                                return true;
                            }
                            let s = sessions[..closed].partition_point(|(_, last)| *last < t);
                            run_aggs[s].get_or_insert_with(A::default).add(r);
                            false
                        });
                        for (s, agg) in run_aggs.into_iter().enumerate() {
                            if let Some(agg) = agg {
                                if first_run[s] {
                                    aggregates[s] = agg;
                                    first_run[s] = false;
                                } else {
                                    aggregates[s].merge(&agg);
                                }
                            }
                        }
                    }
                    runs.retain(|_, records| !records.is_empty());
                    for ((first, last), aggregate) in sessions[..closed].iter().zip(aggregates) {
                        out.push(Window {
                            key: key.clone(),
                            start_us: *first,
                            end_us: *last + self.gap,
                            aggregate,
                        });
                    }
                }
                match sessions.get(closed) {
                    Some((_, last)) => closing.push((*last + self.gap, key)),
                    None => {
                        self.pending.remove(&key);
                    }
                }
            }
        }
        for (when, key) in closing {
            self.due.entry(when).or_default().push(key);
        }
        out.sort_by(|a, b| (a.end_us, &a.key).cmp(&(b.end_us, &b.key)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Stats;

    fn reading(sensor: u32, ts_us: Micros) -> Reading {
        Reading {
            sensor,
            run: 0,
            ts_us,
            value: ts_us as f64,
            arrival_us: ts_us,
        }
    }

    /// (key, window start, record count) of each partial of 1 ms tumbling
    /// windows, in flush order.
    fn added(records: &[Reading]) -> Vec<(u32, Micros, u64)> {
        let mut combiner = Combiner::<u32, Stats>::new();
        for r in records {
            combiner.add_tumbling(r, 1_000, &|r: &Reading| r.route());
        }
        let partials = std::mem::take(combiner.flush());
        partials
            .iter()
            .map(|p| (p.key, p.start, p.aggregate.count))
            .collect()
    }

    #[test]
    fn alternating_windows_of_a_key_make_one_partial_each() {
        // Arrival order is not event-time order near a window's end.
        let records = [900, 1_100, 950, 1_200, 990, 1_300].map(|t| reading(7, t));
        assert_eq!(added(&records), vec![(7, 0, 3), (7, 1_000, 3)]);
    }

    #[test]
    fn a_full_slot_flushes_its_oldest_window_first_and_keeps_arrival_order() {
        // Keys 7 and 7 + COMBINER_SLOTS share a slot.
        let other = 7 + COMBINER_SLOTS as u32;
        let records = [
            reading(7, 100),
            reading(7, 1_100),
            reading(other, 500), // evicts key 7's window 0, the older
            reading(7, 200),     // evicts `other`'s window 0: window 0 again, after the first
            reading(7, 1_200),   // joins key 7's window 1000
        ];
        let partials = added(&records);
        assert_eq!(
            partials,
            vec![(7, 0, 1), (other, 0, 1), (7, 0, 1), (7, 1_000, 2)],
            "evicted partials first, then the slot's by the order their ways filled"
        );
        // No record is lost or counted twice.
        assert_eq!(partials.iter().map(|p| p.2).sum::<u64>(), 5);
    }
}
