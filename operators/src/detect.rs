//! Detection: an anomaly score per key over its windows in window order, and a flag for each anomalous window.

use std::hash::{BuildHasher, Hash};

use rustc_hash::{FxBuildHasher, FxHashMap};
use serde::{Deserialize, Serialize};
use timely::ExchangeData;
use timely::dataflow::Stream;
use twinflow_engine::time::Micros;

use crate::stats::WindowValue;
use crate::time_order::{TimeStep, in_time_order};
use crate::window::Window;

/// Scores one series (one key's windows, in window order).
pub trait Detector: 'static {
    /// Observes the series' next window; returns its anomaly score when the
    /// window is anomalous, `None` when it is not.
    fn observe(&mut self, start_us: Micros, value: f64) -> Option<f64>;
}

/// Any closure over (window start, value) is a detector.
impl<F: FnMut(Micros, f64) -> Option<f64> + 'static> Detector for F {
    fn observe(&mut self, start_us: Micros, value: f64) -> Option<f64> {
        self(start_us, value)
    }
}

/// A boxed detector is a detector, so a pipeline can hold detectors of any kind.
impl Detector for Box<dyn Detector> {
    fn observe(&mut self, start_us: Micros, value: f64) -> Option<f64> {
        (**self).observe(start_us, value)
    }
}

/// TwinBench D: an exponentially weighted mean m and variance v; a value x
/// scores z = (x − m) / √v, and is flagged when at least `warmup` values came
/// before it and |z| > `threshold`. Then d = x − m, m ← m + α·d,
/// v ← (1 − α)(v + α·d²). The first value sets m = x, v = 0; z is undefined
/// (never flagged) while v = 0.
#[derive(Debug, Clone)]
pub struct EwmaZScore {
    alpha: f64,
    warmup: u64,
    threshold: f64,
    seen: u64,
    mean: f64,
    variance: f64,
}

impl EwmaZScore {
    pub fn new(alpha: f64, warmup: u64, threshold: f64) -> Self {
        EwmaZScore {
            alpha,
            warmup,
            threshold,
            seen: 0,
            mean: 0.0,
            variance: 0.0,
        }
    }

    /// Its name in `flags/`'s `detector` column.
    pub const NAME: &'static str = "ewma_z";

    /// The spec's parameters: α = 0.05, 30 values of warm-up, |z| > 5.
    pub fn twinbench() -> Self {
        EwmaZScore::new(0.05, 30, 5.0)
    }
}

impl Detector for EwmaZScore {
    fn observe(&mut self, _start_us: Micros, x: f64) -> Option<f64> {
        if self.seen == 0 {
            self.seen = 1;
            self.mean = x;
            self.variance = 0.0;
            return None;
        }
        let d = x - self.mean;
        let z = (self.variance > 0.0).then(|| d / self.variance.sqrt());
        let flagged = z.filter(|z| self.seen >= self.warmup && z.abs() > self.threshold);
        self.mean += self.alpha * d;
        self.variance = (1.0 - self.alpha) * (self.variance + self.alpha * d * d);
        self.seen += 1;
        flagged
    }
}

/// An anomalous window of one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flag<K> {
    pub key: K,
    pub start_us: Micros,
    /// The window's value (its mean, for [`crate::stats::Stats`]).
    pub value: f64,
    pub score: f64,
}

/// Runs a detector per key over a stream of windows.
pub trait DetectAnomalies<'s, K> {
    /// Feeds each key's windows, in window order, to its own detector (made by
    /// `new_detector` on the key's first window) and emits a [`Flag`] for each
    /// window the detector scores, at the window's timestamp.
    ///
    /// Guarantees: windows are exchanged by key and handed over in timestamp
    /// order, and by start within a timestamp, so each detector sees its
    /// series in window order whatever the number of workers; the flags are
    /// the same for any number of workers or processes.
    ///
    /// ```
    /// use timely::dataflow::InputHandle;
    /// use timely::dataflow::operators::{Capture, capture::Event};
    /// use twinflow_operators::detect::DetectAnomalies;
    /// use twinflow_operators::stats::Stats;
    /// use twinflow_operators::window::Window;
    ///
    /// let flags = timely::execute_directly(|worker| {
    ///     let mut input = InputHandle::new();
    ///     let captured = worker.dataflow::<i64, _, _>(|scope| {
    ///         // A detector of our own: flag a value above 100.
    ///         input.to_stream(scope).detect(|_sensor: &u32| |_, x: f64| (x > 100.0).then_some(x - 100.0)).capture()
    ///     });
    ///     for (k, x) in [50.0, 150.0, 80.0].into_iter().enumerate() {
    ///         let start = k as i64 * 1_000_000;
    ///         let mut stats = Stats::default();
    ///         stats.push(start, x);
    ///         input.advance_to(start + 1_000_000);
    ///         input.send(Window { key: 3u32, start_us: start, end_us: start + 1_000_000, aggregate: stats });
    ///     }
    ///     input.close();
    ///     while worker.step() {}
    ///     captured.try_iter().filter_map(|e| match e {
    ///         Event::Messages(_, flags) => Some(flags),
    ///         Event::Progress(_) => None,
    ///     }).flatten().collect::<Vec<_>>()
    /// });
    /// assert_eq!(flags.len(), 1);
    /// assert_eq!((flags[0].start_us, flags[0].score), (1_000_000, 50.0));
    /// ```
    fn detect<D: Detector>(
        self,
        new_detector: impl Fn(&K) -> D + 'static,
    ) -> Stream<'s, Micros, Vec<Flag<K>>>;
    /// [`DetectAnomalies::detect`], with windows exchanged by `route(key)`
    /// (spread) rather than by a hash of the key: windows from
    /// [`crate::window::EventTimeWindows::window_by`] with the same route are
    /// already on their detector's worker and stay there. The guarantees of
    /// `detect` hold whatever the route.
    ///
    /// ```
    /// use timely::dataflow::InputHandle;
    /// use timely::dataflow::operators::{Capture, capture::Event};
    /// use twinflow_operators::detect::DetectAnomalies;
    /// use twinflow_operators::stats::Stats;
    /// use twinflow_operators::window::Window;
    ///
    /// let flags = timely::execute_directly(|worker| {
    ///     let mut input = InputHandle::new();
    ///     let captured = worker.dataflow::<i64, _, _>(|scope| {
    ///         let by_asset = |sensor: &u32| u64::from(sensor / 8);
    ///         let above_100 = |_sensor: &u32| |_, x: f64| (x > 100.0).then_some(x - 100.0);
    ///         input.to_stream(scope).detect_by(by_asset, above_100).capture()
    ///     });
    ///     let mut stats = Stats::default();
    ///     stats.push(0, 150.0);
    ///     input.advance_to(1_000_000);
    ///     input.send(Window { key: 9u32, start_us: 0, end_us: 1_000_000, aggregate: stats });
    ///     input.close();
    ///     while worker.step() {}
    ///     captured.try_iter().filter_map(|e| match e {
    ///         Event::Messages(_, flags) => Some(flags),
    ///         Event::Progress(_) => None,
    ///     }).flatten().collect::<Vec<_>>()
    /// });
    /// assert_eq!((flags[0].key, flags[0].score), (9, 50.0));
    /// ```
    fn detect_by<D: Detector>(
        self,
        route: impl Fn(&K) -> u64 + 'static,
        new_detector: impl Fn(&K) -> D + 'static,
    ) -> Stream<'s, Micros, Vec<Flag<K>>>;
}

impl<'s, K, A> DetectAnomalies<'s, K> for Stream<'s, Micros, Vec<Window<K, A>>>
where
    K: ExchangeData + Hash + Eq + Ord + Clone,
    A: WindowValue + ExchangeData,
{
    fn detect<D: Detector>(
        self,
        new_detector: impl Fn(&K) -> D + 'static,
    ) -> Stream<'s, Micros, Vec<Flag<K>>> {
        self.detect_by(|key: &K| FxBuildHasher.hash_one(key), new_detector)
    }

    fn detect_by<D: Detector>(
        self,
        route: impl Fn(&K) -> u64 + 'static,
        new_detector: impl Fn(&K) -> D + 'static,
    ) -> Stream<'s, Micros, Vec<Flag<K>>> {
        in_time_order(
            self,
            "Detect",
            move |w: &Window<K, A>| route(&w.key),
            Detectors {
                new_detector,
                detectors: FxHashMap::default(),
            },
        )
    }
}

struct Detectors<K, D, N> {
    new_detector: N,
    detectors: FxHashMap<K, D>,
}

impl<K, A, D, N> TimeStep<Window<K, A>, Flag<K>> for Detectors<K, D, N>
where
    K: Hash + Eq + Ord + Clone + 'static,
    A: WindowValue + 'static,
    D: Detector,
    N: Fn(&K) -> D + 'static,
{
    fn step(&mut self, _time: Micros, windows: &mut Vec<Window<K, A>>, out: &mut Vec<Flag<K>>) {
        // Each worker's windows come sorted by key: a stable sort merges the
        // runs (an unstable one sorted them afresh, 10 times the work).
        windows.sort_by(|a, b| (&a.key, a.start_us).cmp(&(&b.key, b.start_us)));
        for window in windows.drain(..) {
            let value = window.aggregate.value();
            let detector = self
                .detectors
                .entry(window.key.clone())
                .or_insert_with(|| (self.new_detector)(&window.key));
            if let Some(score) = detector.observe(window.start_us, value) {
                out.push(Flag {
                    key: window.key,
                    start_us: window.start_us,
                    value,
                    score,
                });
            }
        }
    }
}
