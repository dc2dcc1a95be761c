//! Summary statistics of a window of readings: count, mean, min, max, last and variance.

use serde::{Deserialize, Serialize};
use twinflow_engine::event::Reading;
use twinflow_engine::time::Micros;

use crate::window::{Aggregate, Merge, WindowRecord};

/// Count, mean, min, max, last value and population variance of the values
/// added, in the order added; and how many of the readings arrived ahead of
/// their own event time ([`Reading::arrived_ahead`]).
///
/// The sums are kept relative to the first value (`shift`), which keeps the
/// variance accurate for readings with a large offset and small spread without
/// a division per value. "Last" is the value with the greatest event time; of
/// equal times the one added later wins.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub count: u64,
    shift: f64,
    /// Σ (x − shift)
    s1: f64,
    /// Σ (x − shift)²
    s2: f64,
    pub min: f64,
    pub max: f64,
    pub last_ts_us: Micros,
    pub last: f64,
    pub ahead: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            count: 0,
            shift: 0.0,
            s1: 0.0,
            s2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            last_ts_us: Micros::MIN,
            last: f64::NAN,
            ahead: 0,
        }
    }
}

impl Stats {
    /// Adds one value observed at `ts_us`.
    #[inline]
    pub fn push(&mut self, ts_us: Micros, x: f64) {
        if self.count == 0 {
            self.shift = x;
        }
        self.count += 1;
        let d = x - self.shift;
        self.s1 += d;
        self.s2 += d * d;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        if ts_us >= self.last_ts_us {
            self.last_ts_us = ts_us;
            self.last = x;
        }
    }

    /// The mean (NaN when empty).
    pub fn mean(&self) -> f64 {
        self.shift + self.s1 / self.count as f64
    }

    /// The population variance (NaN when empty).
    pub fn variance(&self) -> f64 {
        let n = self.count as f64;
        let m = self.s1 / n;
        (self.s2 / n - m * m).max(0.0)
    }

    /// Folds in statistics of values added after this one's.
    #[inline]
    pub fn merge_later(&mut self, later: &Stats) {
        if later.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *later;
            return;
        }
        // Re-express the later sums relative to this shift.
        let delta = later.shift - self.shift;
        let n = later.count as f64;
        self.s2 += later.s2 + 2.0 * delta * later.s1 + n * delta * delta;
        self.s1 += later.s1 + n * delta;
        self.count += later.count;
        self.ahead += later.ahead;
        self.min = self.min.min(later.min);
        self.max = self.max.max(later.max);
        if later.last_ts_us >= self.last_ts_us {
            self.last_ts_us = later.last_ts_us;
            self.last = later.last;
        }
    }
}

/// The one number that stands for a window's aggregate in the steps after
/// windowing (align, fuse, detect): for [`Stats`], the mean; and what fusion
/// needs to weigh it as a measurement.
pub trait WindowValue {
    fn value(&self) -> f64;
    /// How many readings the value summarises: a mean of n readings has
    /// variance σ²/n, not σ².
    fn readings(&self) -> u64 {
        1
    }
    /// The readings' spread within the window (population variance), if
    /// known: a stuck sensor's is near zero, a noisy one's far above σ².
    fn spread(&self) -> Option<f64> {
        None
    }
    /// How many of the readings arrived ahead of their own event time: a
    /// window made of them measures another time.
    fn ahead(&self) -> u64 {
        0
    }
}

impl WindowValue for Stats {
    fn value(&self) -> f64 {
        self.mean()
    }

    fn readings(&self) -> u64 {
        self.count
    }

    fn spread(&self) -> Option<f64> {
        Some(self.variance())
    }

    fn ahead(&self) -> u64 {
        self.ahead
    }
}

impl Merge for Stats {
    #[inline]
    fn merge(&mut self, later: &Self) {
        self.merge_later(later);
    }
}

impl Aggregate<Reading> for Stats {
    #[inline]
    fn add(&mut self, record: &Reading) {
        self.push(record.event_time(), record.value);
        self.ahead += u64::from(record.arrived_ahead());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_two_pass_statistics() {
        let xs = [1000.5, 1000.25, 999.75, 1001.0, 1000.0];
        let mut s = Stats::default();
        for (i, &x) in xs.iter().enumerate() {
            s.push(i as Micros, x);
        }
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        assert_eq!(s.count, 5);
        assert!((s.mean() - mean).abs() < 1e-12);
        assert!((s.variance() - var).abs() < 1e-9);
        assert_eq!((s.min, s.max, s.last), (999.75, 1001.0, 1000.0));
    }

    #[test]
    fn merge_equals_sequential() {
        let xs = [5.0, 7.0, 1.0, 3.0, 9.0, 2.0];
        let mut whole = Stats::default();
        let (mut a, mut b) = (Stats::default(), Stats::default());
        for (i, &x) in xs.iter().enumerate() {
            whole.push(10 - i as Micros % 3, x);
            if i < 2 {
                a.push(10 - i as Micros % 3, x)
            } else {
                b.push(10 - i as Micros % 3, x)
            }
        }
        a.merge_later(&b);
        assert_eq!(a.count, whole.count);
        assert!((a.mean() - whole.mean()).abs() < 1e-12);
        assert!((a.variance() - whole.variance()).abs() < 1e-9);
        // Greatest time is 10 (i = 0 and i = 3); the later one (3.0) wins.
        assert_eq!(a.last, 3.0);
        assert_eq!(whole.last, 3.0);
    }
}
