//! The operator `replay --mask` runs on verified readings: it drops those in a mask's hidden cells before they reach any window.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use timely::dataflow::StreamVec;
use timely::dataflow::operators::vec::Filter;
use timely::progress::Timestamp;
use twinflow_engine::event::{LateReading, Reading};

use super::Mask;

/// A record that carries one reading.
pub trait OfReading {
    fn reading(&self) -> &Reading;
}

impl OfReading for Reading {
    fn reading(&self) -> &Reading {
        self
    }
}

impl OfReading for LateReading {
    fn reading(&self) -> &Reading {
        &self.reading
    }
}

/// Hides the readings of a mask's cells from everything downstream.
pub trait HideMasked {
    /// Passes on every reading except those whose sensor and window (of its
    /// event time) `mask` hides, and adds one to `hidden` for each dropped.
    ///
    /// Guarantee: a reading is kept or dropped by its own sensor and event
    /// time alone, where it is, so the readings kept (and the count dropped,
    /// summed over workers) are the same for any number of workers; the
    /// order and times of the readings kept are unchanged.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use std::sync::Arc;
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use timely::dataflow::operators::capture::Event;
    /// use twinflow_engine::catalog::Catalog;
    /// use twinflow_engine::event::Reading;
    /// use twinflow_pipelines::mask::hide::HideMasked;
    /// use twinflow_pipelines::mask::{Mask, MaskCell};
    ///
    /// let sensor = |name: &str| (name.to_owned(), "a".to_owned(), "flow".to_owned());
    /// let catalog = Catalog::discovered(&[sensor("a/flow"), sensor("a/current")]).unwrap();
    /// // Hide a's flow during [2 s, 3 s).
    /// let cell = MaskCell { asset: "a".into(), channel: "flow".into(), window_start_us: 2_000_000 };
    /// let mask = Arc::new(Mask::from_cells(&[cell], &catalog, 1_000_000).unwrap());
    /// let reading = |sensor, ts_us| Reading { sensor, run: 0, ts_us, value: 1.0, arrival_us: ts_us };
    /// let readings = vec![
    ///     reading(0, 1_999_999),
    ///     reading(0, 2_000_000), // hidden
    ///     reading(1, 2_500_000), // another channel
    ///     reading(0, 2_999_999), // hidden
    ///     reading(0, 3_000_000),
    /// ];
    /// let (kept, hidden) = timely::execute_directly(move |worker| {
    ///     let hidden = Rc::new(Cell::new(0));
    ///     let kept = worker.dataflow::<i64, _, _>(|scope| {
    ///         readings.to_stream(scope).hide_masked(mask, Rc::clone(&hidden)).capture()
    ///     });
    ///     while worker.step() {}
    ///     (kept, hidden.get())
    /// });
    /// let kept: Vec<(u32, i64)> = kept
    ///     .try_iter()
    ///     .filter_map(|event| match event {
    ///         Event::Messages(_, readings) => Some(readings),
    ///         Event::Progress(_) => None,
    ///     })
    ///     .flatten()
    ///     .map(|r| (r.sensor, r.ts_us))
    ///     .collect();
    /// assert_eq!(kept, [(0, 1_999_999), (1, 2_500_000), (0, 3_000_000)]);
    /// assert_eq!(hidden, 2);
    /// ```
    fn hide_masked(self, mask: Arc<Mask>, hidden: Rc<Cell<u64>>) -> Self;
}

impl<T: Timestamp, D: OfReading + 'static> HideMasked for StreamVec<'_, T, D> {
    fn hide_masked(self, mask: Arc<Mask>, hidden: Rc<Cell<u64>>) -> Self {
        self.filter(move |record| {
            let reading = record.reading();
            let keep = !mask.hides(reading.sensor, reading.ts_us);
            if !keep {
                hidden.set(hidden.get() + 1);
            }
            keep
        })
    }
}
