//! The verification rules of TwinBench's spec, independent of any dataflow: tags under rotating keys, the anti-replay window, plausibility and the flooding budget.
//!
//! Every source of outside events (the Parquet log today, a network ingest
//! later) checks events with these pieces, in the spec's order: tag, replay
//! window, then clock, range and flooding. The tag, clock and range checks
//! are stateless, so they may run anywhere; the replay window and the
//! flooding budget keep per-sensor state and must see a sensor's events in
//! arrival order.

use std::collections::{BTreeMap, HashMap};

use crate::auth::{EventMac, SensorKey};
use crate::catalog::{Catalog, SensorId};
use crate::time::{Micros, SECOND};

/// Why an event is rejected, with the spec's reason codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rejection {
    /// No valid tag under any of the sensor's keys (or an unknown sensor).
    BadTag,
    /// Its `seq` was accepted before, or is too far behind the greatest.
    Replayed,
    /// Its event time is more than 5 s ahead of its arrival, or 1 h behind.
    Clock,
    /// Its value is outside the sensor's physical range, or not finite.
    OutOfRange,
    /// Beyond twice the sensor's rated count in its 1 s event-time window.
    Flooding,
}

impl Rejection {
    pub fn code(self) -> &'static str {
        match self {
            Rejection::BadTag => "bad_tag",
            Rejection::Replayed => "replayed",
            Rejection::Clock => "clock",
            Rejection::OutOfRange => "out_of_range",
            Rejection::Flooding => "flooding",
        }
    }
}

/// Every sensor's valid keys, each keyed into a MAC once: a tag is valid if
/// it verifies under any of them, so keys rotate without downtime.
pub struct KeyRing {
    /// Per sensor id: (key id, keyed MAC), in the key file's order.
    macs: Vec<Vec<(String, EventMac)>>,
}

impl KeyRing {
    /// The keys of the catalog's sensors; keys of sensors the catalog does not
    /// know are ignored (their events fail as unknown sensors anyway).
    pub fn new(catalog: &Catalog, keys: &[SensorKey]) -> Result<Self, String> {
        let mut macs: Vec<Vec<(String, EventMac)>> = vec![Vec::new(); catalog.sensors().len()];
        for key in keys {
            if let Some(id) = catalog.sensor_id(&key.sensor) {
                let mac = EventMac::new(&key.key_bytes()?);
                macs[id as usize].push((key.key_id.clone(), mac));
            }
        }
        Ok(KeyRing { macs })
    }

    /// The id of the key `tag` verifies under, or `None` (no tag, a wrong
    /// tag, or a sensor without keys). Comparisons are constant-time.
    #[allow(clippy::too_many_arguments)]
    pub fn verify(
        &self,
        sensor: SensorId,
        name: &str,
        ts_us: Micros,
        value: f64,
        seq: u64,
        quality: u8,
        tag: Option<&[u8]>,
    ) -> Option<&str> {
        let tag = tag?;
        self.macs
            .get(sensor as usize)?
            .iter()
            .find_map(|(id, mac)| {
                mac.verify(name, ts_us, value, seq, quality, tag)
                    .then_some(id.as_str())
            })
    }
}

/// Width of the anti-replay window: a `seq` more than this far below the
/// greatest accepted one is replayed.
pub const REPLAY_WINDOW: u64 = 1024;

/// One sensor's anti-replay window (as IPsec's): the greatest `seq` accepted
/// and which of the [`REPLAY_WINDOW`] below it were accepted.
#[derive(Debug, Clone, Default)]
pub struct ReplayWindow {
    /// Greatest accepted `seq`, if any.
    top: Option<u64>,
    /// Bit `i` (from the least significant of word 0) set: `top - i` accepted.
    seen: [u64; (REPLAY_WINDOW as usize + 1).div_ceil(64)],
}

/// What the replay window made of a `seq` it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// `seq`s skipped between the previous greatest and this one: a gap, which
    /// is how dropped events show (0 when `seq` is not a new greatest).
    pub gap: u64,
}

impl ReplayWindow {
    /// Accepts `seq` into the window, or says it is replayed.
    pub fn accept(&mut self, seq: u64) -> Result<Accepted, Rejection> {
        let Some(top) = self.top else {
            self.top = Some(seq);
            self.set(0);
            return Ok(Accepted { gap: 0 });
        };
        if seq > top {
            self.shift(seq - top);
            self.top = Some(seq);
            self.set(0);
            return Ok(Accepted { gap: seq - top - 1 });
        }
        let behind = top - seq;
        if behind > REPLAY_WINDOW || self.get(behind) {
            return Err(Rejection::Replayed);
        }
        self.set(behind);
        Ok(Accepted { gap: 0 })
    }

    fn get(&self, behind: u64) -> bool {
        let (word, bit) = (behind as usize / 64, behind % 64);
        self.seen[word] >> bit & 1 == 1
    }

    fn set(&mut self, behind: u64) {
        let (word, bit) = (behind as usize / 64, behind % 64);
        self.seen[word] |= 1 << bit;
    }

    /// Moves the window up by `by`: every bit moves `by` places further behind.
    fn shift(&mut self, by: u64) {
        let words = self.seen.len();
        if by >= (words * 64) as u64 {
            self.seen = [0; (REPLAY_WINDOW as usize + 1).div_ceil(64)];
            return;
        }
        let (whole, bits) = ((by / 64) as usize, (by % 64) as u32);
        for i in (0..words).rev() {
            let from = i.checked_sub(whole);
            let high = from.map_or(0, |f| self.seen[f] << bits);
            let low = match (from.and_then(|f| f.checked_sub(1)), bits) {
                (Some(f), b) if b > 0 => self.seen[f] >> (64 - b),
                _ => 0,
            };
            self.seen[i] = high | low;
        }
    }
}

/// How far ahead of its arrival an event time may be.
pub const MAX_AHEAD: Micros = 5 * SECOND;
/// How far behind its arrival an event time may be.
pub const MAX_BEHIND: Micros = 3600 * SECOND;

/// The spec's clock check: `ts_us` at most 5 s after `arrival_us` and at most
/// 1 h before it.
pub fn check_clock(ts_us: Micros, arrival_us: Micros) -> Result<(), Rejection> {
    let ahead = ts_us.saturating_sub(arrival_us);
    let behind = arrival_us.saturating_sub(ts_us);
    if ahead > MAX_AHEAD || behind > MAX_BEHIND {
        Err(Rejection::Clock)
    } else {
        Ok(())
    }
}

/// The spec's range check: finite and within `[min, max]`, bounds included.
pub fn check_range(value: f64, min: f64, max: f64) -> Result<(), Rejection> {
    if value.is_finite() && value >= min && value <= max {
        Ok(())
    } else {
        Err(Rejection::OutOfRange)
    }
}

/// One sensor's flooding budget: per 1 s event-time window, in arrival order,
/// the events beyond `budget` (twice the sensor's rated count) are flooding.
#[derive(Debug, Clone)]
pub struct FloodBudget {
    budget: u32,
    /// Events counted per window index `k` of `[k s, (k+1) s)`.
    counts: BTreeMap<i64, u32>,
}

impl FloodBudget {
    pub fn new(budget: u32) -> Self {
        FloodBudget {
            budget,
            counts: BTreeMap::new(),
        }
    }

    /// Counts an event at `ts_us` that passed every earlier check, arriving at
    /// `arrival_us`; rejects it when its window's budget is spent.
    pub fn admit(&mut self, ts_us: Micros, arrival_us: Micros) -> Result<(), Rejection> {
        // Windows more than the clock check's reach behind the arrival can take
        // no more events: forget them, so state stays bounded.
        let horizon = (arrival_us - MAX_BEHIND).div_euclid(SECOND) - 1;
        while let Some(entry) = self.counts.first_entry() {
            if *entry.key() >= horizon {
                break;
            }
            entry.remove();
        }
        let count = self.counts.entry(ts_us.div_euclid(SECOND)).or_default();
        if *count >= self.budget {
            return Err(Rejection::Flooding);
        }
        *count += 1;
        Ok(())
    }
}

/// Per-sensor replay windows and flooding budgets, created on first use.
#[derive(Debug, Default)]
pub struct SensorStates {
    replay: HashMap<SensorId, ReplayWindow>,
    flood: HashMap<SensorId, FloodBudget>,
}

impl SensorStates {
    pub fn replay_window(&mut self, sensor: SensorId) -> &mut ReplayWindow {
        self.replay.entry(sensor).or_default()
    }

    pub fn flood_budget(&mut self, sensor: SensorId, budget: u32) -> &mut FloodBudget {
        self.flood
            .entry(sensor)
            .or_insert_with(|| FloodBudget::new(budget))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn replay_window_follows_the_spec() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.accept(5), Ok(Accepted { gap: 0 }));
        // 6 and 7 never came: a gap of 2.
        assert_eq!(w.accept(8), Ok(Accepted { gap: 2 }));
        // A late genuine event inside the window is accepted once.
        assert_eq!(w.accept(6), Ok(Accepted { gap: 0 }));
        assert_eq!(w.accept(6), Err(Rejection::Replayed));
        assert_eq!(w.accept(8), Err(Rejection::Replayed));
        // Exactly 1024 below the greatest is inside; 1025 below is not.
        let mut w = ReplayWindow::default();
        w.accept(2000).unwrap();
        assert!(w.accept(2000 - 1024).is_ok());
        assert_eq!(w.accept(2000 - 1025), Err(Rejection::Replayed));
    }

    #[test]
    fn replay_window_equals_a_set_of_everything_accepted() {
        // An independent model: remember every accepted seq.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut window = ReplayWindow::default();
        let mut accepted = std::collections::BTreeSet::new();
        let mut top = 0u64;
        for i in 0..20_000u64 {
            // Mostly moving forward, with reorderings, repeats and long jumps.
            let seq = match next() % 10 {
                0 => i.saturating_sub(next() % 1500),
                1 => i + next() % 3000,
                _ => i,
            };
            let expected_replayed = accepted.contains(&seq) || top.saturating_sub(seq) > 1024;
            let got = window.accept(seq);
            assert_eq!(got.is_err(), expected_replayed, "seq {seq} at step {i}");
            if got.is_ok() {
                accepted.insert(seq);
                top = top.max(seq);
            }
        }
    }

    #[test]
    fn clock_and_range_bounds() {
        assert!(check_clock(10 * SECOND, 5 * SECOND).is_ok());
        assert_eq!(
            check_clock(10 * SECOND + 1, 5 * SECOND),
            Err(Rejection::Clock)
        );
        assert!(check_clock(0, 3600 * SECOND).is_ok());
        assert_eq!(check_clock(-1, 3600 * SECOND), Err(Rejection::Clock));
        assert!(check_range(250.0, -50.0, 250.0).is_ok());
        assert_eq!(check_range(250.1, -50.0, 250.0), Err(Rejection::OutOfRange));
        assert_eq!(
            check_range(f64::NAN, -50.0, 250.0),
            Err(Rejection::OutOfRange)
        );
    }

    #[test]
    fn flooding_rejects_beyond_the_budget_per_second() {
        let mut flood = FloodBudget::new(2);
        let t0 = 1_000 * SECOND;
        assert!(flood.admit(t0, t0).is_ok());
        assert!(flood.admit(t0 + 999_999, t0).is_ok());
        assert_eq!(flood.admit(t0 + 500_000, t0), Err(Rejection::Flooding));
        // The next second has its own budget; a late event its old window's.
        assert!(flood.admit(t0 + SECOND, t0 + SECOND).is_ok());
        assert_eq!(flood.admit(t0 + 1, t0 + SECOND), Err(Rejection::Flooding));
    }

    #[test]
    fn a_tag_verifies_under_any_current_key_of_its_sensor() {
        let catalog =
            Catalog::discovered(&[("a/t".into(), "a".into(), "temperature".into())]).unwrap();
        let key = |id: &str, byte: u8| SensorKey {
            sensor: "a/t".into(),
            key_id: id.into(),
            key: hex::encode([byte; 32]),
        };
        let ring = KeyRing::new(&catalog, &[key("k1", 1), key("k2", 2)]).unwrap();
        let tag = EventMac::new(&[2; 32]).tag("a/t", 7, 1.5, 3, 0);
        assert_eq!(ring.verify(0, "a/t", 7, 1.5, 3, 0, Some(&tag)), Some("k2"));
        // Any field changed, a missing tag, or a key that is not the sensor's: invalid.
        assert_eq!(ring.verify(0, "a/t", 8, 1.5, 3, 0, Some(&tag)), None);
        assert_eq!(ring.verify(0, "a/t", 7, 1.5, 3, 0, None), None);
        let other = EventMac::new(&[3; 32]).tag("a/t", 7, 1.5, 3, 0);
        assert_eq!(ring.verify(0, "a/t", 7, 1.5, 3, 0, Some(&other)), None);
    }
}
