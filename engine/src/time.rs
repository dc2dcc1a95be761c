//! Event time: microsecond timestamps, window arithmetic and the watermark.
//!
//! twinflow's dataflow timestamp *is* the watermark, in microseconds of event
//! time: a reader holds its timely capability at the watermark of the rows it is
//! about to send, so the frontier an operator sees is the smallest watermark of
//! every reader in every process.

/// Event time in microseconds since the Unix epoch (UTC).
pub type Micros = i64;

/// One second in microseconds.
pub const SECOND: Micros = 1_000_000;

/// Allowed lateness of the reference pipeline (TwinBench W): 2 s.
pub const DEFAULT_LATENESS: Micros = 2 * SECOND;

/// The start of the window of length `size` that holds `ts` (windows are aligned
/// to the epoch, `[k·size, (k+1)·size)`, also for negative times).
#[inline]
pub fn window_start(ts: Micros, size: Micros) -> Micros {
    ts.div_euclid(size) * size
}

/// The time an event counts for the watermark with (TwinBench W): its event
/// time capped by its arrival, `min(ts_us, arrival_us)`. The ingest's own
/// clock bounds it, so a sensor stamping its readings in the future (yet
/// within the clock check's 5 s) cannot drag the watermark ahead of honest
/// traffic and make other sensors' events late.
#[inline]
pub fn watermark_time(ts_us: Micros, arrival_us: Micros) -> Micros {
    ts_us.min(arrival_us)
}

/// The watermark of an ordered stream of events: the greatest
/// [`watermark_time`] seen so far minus the allowed lateness. An event is late when its time is below the
/// watermark *before* it is observed (TwinBench W).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermark {
    max_seen: Micros,
    lateness: Micros,
}

impl Watermark {
    /// A watermark that has seen nothing (every event is on time).
    pub fn new(lateness: Micros) -> Self {
        Self::starting_at(Micros::MIN, lateness)
    }

    /// A watermark continuing after events whose greatest time was `max_seen`.
    pub fn starting_at(max_seen: Micros, lateness: Micros) -> Self {
        assert!(lateness >= 0, "lateness must not be negative");
        Watermark { max_seen, lateness }
    }

    /// The current watermark.
    #[inline]
    pub fn current(&self) -> Micros {
        self.max_seen.saturating_sub(self.lateness)
    }

    /// Whether an event at `ts` arriving now is late.
    #[inline]
    pub fn is_late(&self, ts: Micros) -> bool {
        ts < self.current()
    }

    /// Records that an event counting at `ts` (see [`watermark_time`]) was seen.
    #[inline]
    pub fn observe(&mut self, ts: Micros) {
        self.max_seen = self.max_seen.max(ts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_start_floors_negative_times() {
        assert_eq!(window_start(0, SECOND), 0);
        assert_eq!(window_start(999_999, SECOND), 0);
        assert_eq!(window_start(1_000_000, SECOND), SECOND);
        assert_eq!(window_start(-1, SECOND), -SECOND);
    }

    #[test]
    fn lateness_is_decided_before_observing() {
        let mut wm = Watermark::new(2 * SECOND);
        assert!(!wm.is_late(Micros::MIN + 1));
        wm.observe(10 * SECOND);
        assert!(!wm.is_late(8 * SECOND));
        assert!(wm.is_late(8 * SECOND - 1));
        wm.observe(5 * SECOND);
        assert_eq!(wm.current(), 8 * SECOND);
    }
}
