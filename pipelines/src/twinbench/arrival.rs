//! The arrival-order reorder buffer.
//!
//! Events are generated second by second in event time, but the log is written
//! in arrival order. An event sampled in second `s` arrives in second `s` or
//! later (at most [`MAX_ARRIVAL_SECONDS_AHEAD`] later), and an injected event
//! generated in second `s` arrives in second `s`. So once generation has moved
//! on to second `s`, every event arriving before `s` exists: the buffer keeps
//! one bucket per arrival second and hands out a bucket, sorted, once it is
//! complete. Memory is bounded by the events of a few seconds, whatever the
//! length of the run.

use super::plant::{EPOCH_US, SECOND_US};

/// How many seconds after its generation second an event may arrive (lateness
/// is at most 10 s, from a sample at most 1 s into the second).
pub const MAX_ARRIVAL_SECONDS_AHEAD: i64 = 11;
/// Buckets kept: a power of two above the horizon, so the ring never wraps onto
/// a bucket still being filled.
const BUCKETS: usize = 16;

/// Something with an arrival time; its `Ord` is the order within one arrival
/// second (arrival first, then deterministic tie-breakers).
pub trait Arrives: Ord {
    fn arrival_us(&self) -> i64;
}

/// Events grouped by arrival second, relative to [`EPOCH_US`].
pub struct ArrivalBuffer<T> {
    buckets: Vec<Vec<T>>,
    /// The earliest arrival second not yet handed out.
    next_second: i64,
}

impl<T: Arrives> ArrivalBuffer<T> {
    pub fn new() -> Self {
        ArrivalBuffer {
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
            next_second: 0,
        }
    }

    /// Adds an event; it must not arrive before a second already handed out,
    /// nor further ahead than the ring holds.
    #[inline]
    pub fn push(&mut self, event: T) {
        let second = (event.arrival_us() - EPOCH_US).div_euclid(SECOND_US);
        assert!(
            second >= self.next_second && second < self.next_second + BUCKETS as i64,
            "arrival second {second} outside the open window starting at {}",
            self.next_second
        );
        self.buckets[second as usize % BUCKETS].push(event);
    }

    /// Hands every event arriving before `second` (relative to the epoch), in
    /// order, to `sink`. Call it only once nothing arriving before `second` can
    /// still be pushed.
    pub fn drain_before<E>(
        &mut self,
        second: i64,
        mut sink: impl FnMut(&T) -> Result<(), E>,
    ) -> Result<(), E> {
        while self.next_second < second {
            let bucket = &mut self.buckets[self.next_second as usize % BUCKETS];
            bucket.sort_unstable();
            for event in bucket.iter() {
                sink(event)?;
            }
            bucket.clear();
            self.next_second += 1;
        }
        Ok(())
    }

    /// Hands out everything left, in order.
    pub fn drain_all<E>(&mut self, sink: impl FnMut(&T) -> Result<(), E>) -> Result<(), E> {
        self.drain_before(self.next_second + BUCKETS as i64, sink)
    }
}

impl<T: Arrives> Default for ArrivalBuffer<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct At(i64, u32);
    impl Arrives for At {
        fn arrival_us(&self) -> i64 {
            self.0
        }
    }

    #[test]
    fn drains_in_arrival_order_per_completed_second() {
        let mut buffer = ArrivalBuffer::new();
        let t = |s: i64, us: i64| EPOCH_US + s * SECOND_US + us;
        buffer.push(At(t(3, 5), 0));
        buffer.push(At(t(0, 900_000), 1));
        buffer.push(At(t(0, 10), 2));
        buffer.push(At(t(0, 10), 1));
        let mut out = Vec::new();
        buffer
            .drain_before::<()>(1, |e| {
                out.push(e.1);
                Ok(())
            })
            .unwrap();
        assert_eq!(out, [1, 2, 1]);
        buffer.push(At(t(1, 0), 7));
        buffer
            .drain_all::<()>(|e| {
                out.push(e.1);
                Ok(())
            })
            .unwrap();
        assert_eq!(out, [1, 2, 1, 7, 0]);
    }

    #[test]
    #[should_panic(expected = "outside the open window")]
    fn refuses_an_arrival_already_handed_out() {
        let mut buffer = ArrivalBuffer::new();
        buffer.drain_before::<()>(2, |_| Ok(())).unwrap();
        buffer.push(At(EPOCH_US + SECOND_US, 0));
    }
}
