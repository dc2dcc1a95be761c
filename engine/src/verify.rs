//! The verification rules of TwinBench's spec, independent of any dataflow: tags under rotating keys, the anti-replay window, plausibility and the flooding budget.
//!
//! Every source of outside events (the Parquet log today, a network ingest
//! later) checks events with these pieces, in the spec's order: tag, replay
//! window, then clock, range and flooding. The tag, clock and range checks
//! are stateless, so they may run anywhere; the replay window and the
//! flooding budget keep per-sensor state and must see a sensor's events in
//! arrival order.

use std::ops::Range;

use crate::auth::{EventMac, SensorKey};
use crate::catalog::{Catalog, SensorId, SensorRecord};
use crate::event::QuarantineReason;
use crate::time::{Micros, SECOND};

/// Every sensor's valid keys, each keyed into a MAC once: a tag is valid if
/// it verifies under any of them, so keys rotate without downtime.
pub struct KeyRing {
    /// Per sensor id, its first key's MAC, side by side: events of all
    /// sensors interleave, and a dense table keeps the keyed states in cache.
    first: Vec<Option<EventMac>>,
    /// Per sensor id, the MACs of its other keys (rotation), usually none.
    others: Vec<Vec<EventMac>>,
    /// Per sensor id, its key ids, in the key file's order.
    ids: Vec<Vec<String>>,
}

impl KeyRing {
    /// The keys of the catalog's sensors; keys of sensors the catalog does not
    /// know are ignored (their events fail as unknown sensors anyway).
    pub fn new(catalog: &Catalog, keys: &[SensorKey]) -> Result<Self, String> {
        let sensors = catalog.sensors().len();
        let mut ring = KeyRing {
            first: vec![None; sensors],
            others: vec![Vec::new(); sensors],
            ids: vec![Vec::new(); sensors],
        };
        for key in keys {
            if let Some(id) = catalog.sensor_id(&key.sensor) {
                let (id, mac) = (id as usize, EventMac::new(&key.key_bytes()?));
                match ring.first[id] {
                    None => ring.first[id] = Some(mac),
                    Some(_) => ring.others[id].push(mac),
                }
                ring.ids[id].push(key.key_id.clone());
            }
        }
        Ok(ring)
    }

    /// Which of the sensor's keys `tag` verifies under (its place in the key
    /// file's order, see [`KeyRing::key_id`]), or `None` (no tag, a wrong
    /// tag, or a sensor without keys). Comparisons are constant-time. The
    /// first key is tried alone first: sensors have one key but while keys
    /// rotate, and every event would otherwise also touch the list of others.
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
    ) -> Option<usize> {
        let tag = tag?;
        let sensor = sensor as usize;
        let verifies = |mac: &EventMac| mac.verify(name, ts_us, value, seq, quality, tag);
        if verifies(self.first.get(sensor)?.as_ref()?) {
            return Some(0);
        }
        let other = self.others[sensor].iter().position(verifies)?;
        Some(other + 1)
    }

    /// The id of a sensor's key, by its place among the sensor's keys.
    pub fn key_id(&self, sensor: SensorId, index: usize) -> &str {
        &self.ids[sensor as usize][index]
    }
}

/// Width of the anti-replay window: a `seq` more than this far below the
/// greatest accepted one is replayed.
pub const REPLAY_WINDOW: u64 = 1024;

/// Bits in a [`ReplayWindow`]'s ring: a power of two above the window's
/// 1025 numbers, so a number finds its bit with a mask.
const RING_BITS: u64 = 2048;

/// One sensor's anti-replay window (as IPsec's): the greatest `seq` accepted
/// and which of the [`REPLAY_WINDOW`] below it were accepted.
///
/// It also sees drops: a `seq` that leaves the window without ever having
/// been accepted will never be (it would be too old), so it is lost. Lost
/// numbers are reported as ranges when they leave, and the rest by
/// [`ReplayWindow::finish`] when the stream ends. Numbers below the least
/// one accepted are not reported: where a sensor's count started is unknown.
///
/// The accepted numbers are bits of a ring, number `s` at bit
/// `s mod RING_BITS`, so moving the window up clears the bits it enters
/// instead of shifting the whole window: a sensor's next number, the usual
/// case, touches one word.
#[derive(Debug, Clone)]
#[repr(C)] // the numbers first, where a sensor's other state ends (`SensorChecks`)
pub struct ReplayWindow {
    /// Greatest accepted `seq`, if any.
    top: Option<u64>,
    /// The least accepted `seq`.
    floor: u64,
    /// Bit `s mod RING_BITS` set: `s` accepted, for `s` in the window.
    seen: [u64; (RING_BITS / 64) as usize],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow {
            top: None,
            floor: 0,
            seen: [0; (RING_BITS / 64) as usize],
        }
    }
}

impl ReplayWindow {
    /// Accepts `seq` into the window, or says it is replayed; appends the
    /// ranges of `seq`s found lost to `lost`.
    pub fn accept(&mut self, seq: u64, lost: &mut Vec<Range<u64>>) -> Result<(), QuarantineReason> {
        let Some(top) = self.top else {
            self.top = Some(seq);
            self.floor = seq;
            self.set(seq);
            return Ok(());
        };
        if seq > top {
            if let Some(last_leaving) = seq.checked_sub(REPLAY_WINDOW + 1) {
                self.leave(top, last_leaving, lost);
            }
            // The bits of the numbers entering the window held numbers long gone.
            if seq - top >= RING_BITS {
                self.seen = [0; (RING_BITS / 64) as usize];
            } else {
                for s in top + 1..=seq {
                    self.clear(s);
                }
            }
            self.top = Some(seq);
            self.set(seq);
            return Ok(());
        }
        if top - seq > REPLAY_WINDOW || self.get(seq) {
            return Err(QuarantineReason::Replayed);
        }
        self.set(seq);
        self.floor = self.floor.min(seq);
        Ok(())
    }

    /// The numbers still in the window that were never accepted, when the
    /// stream has ended.
    pub fn finish(&self, lost: &mut Vec<Range<u64>>) {
        if let Some(top) = self.top {
            self.leave(top, top, lost);
        }
    }

    /// Reports the never-accepted numbers up to `last_leaving` (inclusive)
    /// that leave a window whose greatest is `top`: those inside it whose bit
    /// is unset, and those above `top` that it skipped.
    fn leave(&self, top: u64, last_leaving: u64, lost: &mut Vec<Range<u64>>) {
        let mut open: Option<u64> = None;
        let lowest = top.saturating_sub(REPLAY_WINDOW).max(self.floor);
        for s in lowest..=top.min(last_leaving) {
            match (self.get(s), open) {
                (false, None) => open = Some(s),
                (true, Some(start)) => {
                    lost.push(start..s);
                    open = None;
                }
                _ => {}
            }
        }
        match open {
            Some(start) => lost.push(start..last_leaving + 1),
            None if last_leaving > top => lost.push(top + 1..last_leaving + 1),
            None => {}
        }
    }

    /// The word and bit of number `seq`.
    fn slot(seq: u64) -> (usize, u64) {
        let bit = seq % RING_BITS;
        ((bit / 64) as usize, bit % 64)
    }

    fn get(&self, seq: u64) -> bool {
        let (word, bit) = Self::slot(seq);
        self.seen[word] >> bit & 1 == 1
    }

    fn set(&mut self, seq: u64) {
        let (word, bit) = Self::slot(seq);
        self.seen[word] |= 1 << bit;
    }

    fn clear(&mut self, seq: u64) {
        let (word, bit) = Self::slot(seq);
        self.seen[word] &= !(1 << bit);
    }
}

/// How far ahead of its arrival an event time may be.
pub const MAX_AHEAD: Micros = 5 * SECOND;
/// How far behind its arrival an event time may be.
pub const MAX_BEHIND: Micros = 3600 * SECOND;

/// The spec's clock check: `ts_us` at most 5 s after `arrival_us` and at most
/// 1 h before it.
pub fn check_clock(ts_us: Micros, arrival_us: Micros) -> Result<(), QuarantineReason> {
    let ahead = ts_us.saturating_sub(arrival_us);
    let behind = arrival_us.saturating_sub(ts_us);
    if ahead > MAX_AHEAD || behind > MAX_BEHIND {
        Err(QuarantineReason::Clock)
    } else {
        Ok(())
    }
}

/// The spec's range check: finite and within `[min, max]`, bounds included.
pub fn check_range(value: f64, min: f64, max: f64) -> Result<(), QuarantineReason> {
    if value.is_finite() && value >= min && value <= max {
        Ok(())
    } else {
        Err(QuarantineReason::OutOfRange)
    }
}

/// Seconds per chunk of a [`FloodBudget`]'s counts.
const CHUNK_SECONDS: i64 = 64;

/// Seconds a [`FloodBudget`] counts at a time, from its horizon up: every
/// second an event that passes the clock check can fall in, from an hour
/// behind its arrival to 5 s ahead of it, and a little slack (the horizon
/// moves every other second).
const OPEN_SECONDS: i64 = (MAX_BEHIND + MAX_AHEAD) / SECOND + 8;

/// Slots in a [`FloodBudget`]'s ring: the open seconds and one chunk more,
/// in whole chunks, so no chunk holds both a second that has left and one
/// still open (see [`SecondCounts::clear`]).
const FLOOD_SECONDS: i64 = (OPEN_SECONDS + 2 * CHUNK_SECONDS - 1) / CHUNK_SECONDS * CHUNK_SECONDS;

/// One sensor's flooding budget: per 1 s event-time window, in arrival order,
/// the events beyond `budget` (twice the sensor's rated count) are flooding.
///
/// Counts live in a ring of `FLOOD_SECONDS` slots (a `SecondCounts`: about
/// an hour), second `k` in slot `k mod FLOOD_SECONDS`, however long the log. The
/// count of the second of the sensor's last event is held beside the ring
/// instead, and goes back to its slot when an event of another second
/// comes: a sensor's events mostly share the second of the one before, and
/// the slot, a cache miss away, was two thirds of this check's time.
#[derive(Debug, Clone)]
pub struct FloodBudget {
    budget: u32,
    counts: SecondCounts,
    /// Seconds below this can take no more events (their slots are reused).
    horizon: i64,
    /// The arrival time from which the horizon moves on: before it, an
    /// event needs no division to find it.
    horizon_moves_at: Micros,
    /// The second of the last event counted, with its count.
    held: Option<HeldSecond>,
}

/// A ring of per-second counts, [`FLOOD_SECONDS`] slots, kept in chunks of
/// [`CHUNK_SECONDS`] that exist only while one of their seconds has a
/// count: memory follows the span of event time a sensor has seen (an hour
/// at most), not the ring's length. As one flat ring of 14 KB per sensor
/// (23 MB for TwinBench's 1600 sensors, all of it written to: the kernel
/// hands out memory in 2 MB pages), making fresh pages was 1.2 % of a
/// verified replay; a 460 s log needs 8 chunks a sensor.
#[derive(Debug, Clone, Default)]
struct SecondCounts {
    chunks: Vec<Option<Box<[u32; CHUNK_SECONDS as usize]>>>,
}

impl SecondCounts {
    fn split(slot: usize) -> (usize, usize) {
        (slot / CHUNK_SECONDS as usize, slot % CHUNK_SECONDS as usize)
    }

    fn get(&self, slot: usize) -> u32 {
        let (chunk, at) = Self::split(slot);
        self.chunks
            .get(chunk)
            .and_then(Option::as_ref)
            .map_or(0, |c| c[at])
    }

    /// The count of a slot, to change.
    fn get_mut(&mut self, slot: usize) -> &mut u32 {
        if self.chunks.is_empty() {
            self.chunks = vec![None; (FLOOD_SECONDS / CHUNK_SECONDS) as usize];
        }
        let (chunk, at) = Self::split(slot);
        &mut self.chunks[chunk].get_or_insert_with(|| Box::new([0; CHUNK_SECONDS as usize]))[at]
    }

    /// Empties the slot of a second that can take no more events. Seconds
    /// leave in order, so when a chunk's last slot leaves, all of its
    /// seconds have: the ring is a chunk longer than the open seconds, so
    /// none of its slots holds an open second of the ring's next lap yet.
    fn clear(&mut self, slot: usize) {
        let (chunk, at) = Self::split(slot);
        if let Some(entry) = self.chunks.get_mut(chunk) {
            if at + 1 == CHUNK_SECONDS as usize {
                *entry = None;
            } else if let Some(counts) = entry {
                counts[at] = 0;
            }
        }
    }
}

/// A second whose count a [`FloodBudget`] holds outside its ring.
#[derive(Debug, Clone, Copy)]
struct HeldSecond {
    /// The second's first microsecond: an event needs no division to be
    /// found in it.
    start: Micros,
    slot: usize,
    count: u32,
}

impl FloodBudget {
    pub fn new(budget: u32) -> Self {
        FloodBudget {
            budget,
            counts: SecondCounts::default(),
            horizon: Micros::MIN,
            horizon_moves_at: Micros::MIN,
            held: None,
        }
    }

    /// The least second that can still take events once one has arrived at
    /// `arrival_us`: the clock check rejects anything older.
    fn horizon_at(arrival_us: Micros) -> i64 {
        arrival_us.saturating_sub(MAX_BEHIND).div_euclid(SECOND) - 1
    }

    /// Puts the held count back in its slot.
    fn release(&mut self) {
        if let Some(held) = self.held.take() {
            *self.counts.get_mut(held.slot) = held.count;
        }
    }

    /// Counts an event at `ts_us` that passed every earlier check, arriving at
    /// `arrival_us`; rejects it when its window's budget is spent.
    ///
    /// Arrival times are taken to grow along the log (they are the log's
    /// order). An event whose second is not open (see `OPEN_SECONDS`), which
    /// only a log whose arrival times go back by more than an hour, or an
    /// event the clock check would reject, can bring, is not counted.
    pub fn admit(&mut self, ts_us: Micros, arrival_us: Micros) -> Result<(), QuarantineReason> {
        if self.horizon == Micros::MIN {
            // Nothing is counted yet: nothing below the horizon to clear.
            self.horizon = Self::horizon_at(arrival_us);
        }
        // Windows more than the clock check's reach behind the arrival can
        // take no more events: their slots are cleared for reuse.
        if arrival_us >= self.horizon_moves_at {
            let horizon = Self::horizon_at(arrival_us);
            if horizon > self.horizon {
                self.release();
                for second in self.horizon.max(horizon - FLOOD_SECONDS)..horizon {
                    self.counts.clear(second.rem_euclid(FLOOD_SECONDS) as usize);
                }
                self.horizon = horizon;
            }
            // The horizon grows once `arrival_us - MAX_BEHIND` reaches second `horizon + 2`.
            self.horizon_moves_at = (horizon + 2)
                .saturating_mul(SECOND)
                .saturating_add(MAX_BEHIND);
        }
        let in_held = |held: &HeldSecond| {
            ts_us
                .checked_sub(held.start)
                .is_some_and(|d| (0..SECOND).contains(&d))
        };
        let count = match self.held.as_mut() {
            Some(held) if in_held(held) => &mut held.count,
            _ => {
                self.release();
                let second = ts_us.div_euclid(SECOND);
                // Only open seconds: a count beyond them could share a
                // chunk with seconds leaving, and be dropped with them.
                if second < self.horizon || second >= self.horizon + OPEN_SECONDS {
                    return Ok(());
                }
                let slot = second.rem_euclid(FLOOD_SECONDS) as usize;
                match second.checked_mul(SECOND) {
                    Some(start) => {
                        let count = self.counts.get(slot);
                        &mut self.held.insert(HeldSecond { start, slot, count }).count
                    }
                    None => self.counts.get_mut(slot),
                }
            }
        };
        if *count >= self.budget {
            return Err(QuarantineReason::Flooding);
        }
        *count += 1;
        Ok(())
    }
}

/// What a source does with an event that carries no tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Untagged {
    /// Quarantine it as `bad_tag` (the default: a plant that signs its
    /// events should notice one that does not).
    #[default]
    Reject,
    /// Let it through the tag check, counted as unauthenticated (for sources
    /// whose devices cannot sign yet).
    Accept,
}

/// The outcome of the tag check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagCheck {
    Valid,
    /// No tag, accepted by [`Untagged::Accept`].
    Unauthenticated,
    Invalid,
}

/// Everything verification knows about a plant: each sensor's keys, physical
/// range and flooding budget, and the policy for untagged events.
pub struct Verification {
    keys: KeyRing,
    /// Per sensor id: the physical range, bounds included.
    ranges: Vec<(f64, f64)>,
    /// Per sensor id: events allowed per 1 s event-time window (twice the
    /// rated count), or `None` when the sensor's rate is unknown.
    budgets: Vec<Option<u32>>,
    untagged: Untagged,
}

impl Verification {
    /// Verification of `catalog`'s sensors under `keys`; `rate_hz` gives a
    /// sensor's rated rate (the flooding budget is twice its count per second,
    /// rounded up; a sensor without a rate is never flooding).
    pub fn new(
        catalog: &Catalog,
        keys: &[SensorKey],
        rate_hz: impl Fn(&SensorRecord) -> Option<f64>,
        untagged: Untagged,
    ) -> Result<Self, String> {
        let mut budgets = Vec::with_capacity(catalog.sensors().len());
        for sensor in catalog.sensors() {
            let budget = match rate_hz(sensor) {
                Some(rate) if rate.is_finite() && rate > 0.0 && rate < 1e9 => {
                    Some((2.0 * rate).ceil() as u32)
                }
                None => None,
                Some(rate) => {
                    return Err(format!(
                        "sensor {:?}: rated rate {rate} Hz is not a positive number",
                        sensor.sensor
                    ));
                }
            };
            budgets.push(budget);
        }
        Ok(Verification {
            keys: KeyRing::new(catalog, keys)?,
            ranges: catalog.sensors().iter().map(|s| (s.min, s.max)).collect(),
            budgets,
            untagged,
        })
    }

    /// The tag check; `sensor` is `None` for a sensor the catalog does not
    /// know, which has no keys.
    #[allow(clippy::too_many_arguments)]
    pub fn check_tag(
        &self,
        sensor: Option<SensorId>,
        name: &str,
        ts_us: Micros,
        value: f64,
        seq: u64,
        quality: u8,
        tag: Option<&[u8]>,
    ) -> TagCheck {
        let Some(sensor) = sensor else {
            return TagCheck::Invalid;
        };
        if tag.is_none() && self.untagged == Untagged::Accept {
            return TagCheck::Unauthenticated;
        }
        match self
            .keys
            .verify(sensor, name, ts_us, value, seq, quality, tag)
        {
            Some(_) => TagCheck::Valid,
            None => TagCheck::Invalid,
        }
    }

    /// The stateless plausibility checks, in the spec's order: clock, then range.
    pub fn check_plausible(
        &self,
        sensor: SensorId,
        ts_us: Micros,
        arrival_us: Micros,
        value: f64,
    ) -> Result<(), QuarantineReason> {
        check_clock(ts_us, arrival_us)?;
        let (min, max) = self.ranges[sensor as usize];
        check_range(value, min, max)
    }

    /// Sensors whose flooding budget is unknown (no rated rate).
    pub fn sensors_without_budget(&self) -> usize {
        self.budgets.iter().filter(|b| b.is_none()).count()
    }
}

/// The per-sensor state of verification: every sensor's replay window and
/// flooding budget. It must see each sensor's events in arrival order.
pub struct SensorChecks {
    /// Per sensor id.
    sensors: Vec<SensorState>,
}

/// A sensor's replay window and flooding budget side by side: an event
/// touches both, and events of all sensors interleave. The budget comes
/// first, next to the window's greatest number; the window's bits follow.
#[repr(C)]
struct SensorState {
    flood: Option<FloodBudget>,
    replay: ReplayWindow,
}

impl SensorChecks {
    pub fn new(verification: &Verification) -> Self {
        SensorChecks {
            sensors: verification
                .budgets
                .iter()
                .map(|b| SensorState {
                    flood: b.map(FloodBudget::new),
                    replay: ReplayWindow::default(),
                })
                .collect(),
        }
    }

    /// The stateful checks of an event whose tag passed, in the spec's order:
    /// the replay window, then `implausible` (the stateless clock or range
    /// verdict, decided earlier), then the flooding budget. A `seq` enters
    /// the replay window whatever the later checks say; `seq`s found lost
    /// are appended to `lost`.
    pub fn check(
        &mut self,
        sensor: SensorId,
        seq: u64,
        ts_us: Micros,
        arrival_us: Micros,
        implausible: Option<QuarantineReason>,
        lost: &mut Vec<Range<u64>>,
    ) -> Result<(), QuarantineReason> {
        let state = &mut self.sensors[sensor as usize];
        state.replay.accept(seq, lost)?;
        if let Some(reason) = implausible {
            return Err(reason);
        }
        if let Some(flood) = &mut state.flood {
            flood.admit(ts_us, arrival_us)?;
        }
        Ok(())
    }

    /// Every sensor's `seq`s never accepted, when the stream has ended.
    pub fn finish(&self, mut lost: impl FnMut(SensorId, Range<u64>)) {
        let mut ranges = Vec::new();
        for (sensor, state) in self.sensors.iter().enumerate() {
            state.replay.finish(&mut ranges);
            for range in ranges.drain(..) {
                lost(sensor as SensorId, range);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A small deterministic generator for the model tests.
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }
    use crate::catalog::Catalog;

    #[test]
    fn replay_window_follows_the_spec() {
        let mut lost = Vec::new();
        let mut w = ReplayWindow::default();
        assert_eq!(w.accept(5, &mut lost), Ok(()));
        assert_eq!(w.accept(8, &mut lost), Ok(()));
        // A late genuine event inside the window is accepted once.
        assert_eq!(w.accept(6, &mut lost), Ok(()));
        assert_eq!(w.accept(6, &mut lost), Err(QuarantineReason::Replayed));
        assert_eq!(w.accept(8, &mut lost), Err(QuarantineReason::Replayed));
        // Exactly 1024 below the greatest is inside; 1025 below is not.
        let mut w = ReplayWindow::default();
        w.accept(2000, &mut lost).unwrap();
        assert!(w.accept(2000 - 1024, &mut lost).is_ok());
        assert_eq!(
            w.accept(2000 - 1025, &mut lost),
            Err(QuarantineReason::Replayed)
        );
        // Below the first accepted number nothing is reported lost.
        assert!(lost.is_empty(), "{lost:?}");
    }

    /// An independent model: remember every accepted seq; a number is lost
    /// when it is between the first accepted and the greatest, never
    /// accepted, and (once the stream ends) every such number is reported.
    #[test]
    fn replay_window_equals_a_set_of_everything_accepted() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let mut window = ReplayWindow::default();
        let mut accepted = std::collections::BTreeSet::new();
        let mut lost = Vec::new();
        let mut top = 0u64;
        for i in 0..20_000u64 {
            // Mostly moving forward, with reorderings, repeats, drops and long jumps.
            let seq = match next() % 10 {
                0 => (i + 1000).saturating_sub(next() % 1500),
                1 => i + 1000 + next() % 3000,
                2 => continue,
                _ => i + 1000,
            };
            let expected_replayed = accepted.contains(&seq) || top.saturating_sub(seq) > 1024;
            let got = window.accept(seq, &mut lost);
            assert_eq!(got.is_err(), expected_replayed, "seq {seq} at step {i}");
            if got.is_ok() {
                accepted.insert(seq);
                top = top.max(seq);
            }
        }
        window.finish(&mut lost);
        let first = *accepted.first().unwrap();
        let expected: Vec<u64> = (first..=top).filter(|s| !accepted.contains(s)).collect();
        let mut reported: Vec<u64> = lost.iter().flat_map(|r| r.clone()).collect();
        reported.sort_unstable();
        let first_difference = reported
            .iter()
            .zip(&expected)
            .position(|(r, e)| r != e)
            .map(|i| (i, reported[i], expected[i]));
        assert_eq!(
            (reported.len(), first_difference),
            (expected.len(), None),
            "reported vs expected lost seqs: (count, first difference)"
        );
    }

    #[test]
    fn clock_and_range_bounds() {
        assert!(check_clock(10 * SECOND, 5 * SECOND).is_ok());
        assert_eq!(
            check_clock(10 * SECOND + 1, 5 * SECOND),
            Err(QuarantineReason::Clock)
        );
        assert!(check_clock(0, 3600 * SECOND).is_ok());
        assert_eq!(check_clock(-1, 3600 * SECOND), Err(QuarantineReason::Clock));
        assert!(check_range(250.0, -50.0, 250.0).is_ok());
        assert_eq!(
            check_range(250.1, -50.0, 250.0),
            Err(QuarantineReason::OutOfRange)
        );
        assert_eq!(
            check_range(f64::NAN, -50.0, 250.0),
            Err(QuarantineReason::OutOfRange)
        );
    }

    #[test]
    fn flooding_rejects_beyond_the_budget_per_second() {
        let mut flood = FloodBudget::new(2);
        let t0 = 1_000 * SECOND;
        assert!(flood.admit(t0, t0).is_ok());
        assert!(flood.admit(t0 + 999_999, t0).is_ok());
        assert_eq!(
            flood.admit(t0 + 500_000, t0),
            Err(QuarantineReason::Flooding)
        );
        // The next second has its own budget; a late event its old window's.
        assert!(flood.admit(t0 + SECOND, t0 + SECOND).is_ok());
        assert_eq!(
            flood.admit(t0 + 1, t0 + SECOND),
            Err(QuarantineReason::Flooding)
        );
    }

    /// The budget equals a plain count per second, for events spread over
    /// many seconds in a jumbled order (as late and reordered events come),
    /// around time zero and over hours (so the ring's slots are reused), some
    /// of them nearly as old or as far ahead as the clock check allows, and across gaps in
    /// arrival of a minute and of two hours (so chunks are dropped and made
    /// again).
    #[test]
    fn flooding_equals_a_plain_count_per_second() {
        // (first arrival, µs between arrivals, events, longest delay, gap every 5000 events)
        for (t0, step, events, oldest, gap) in [
            (5_000 * SECOND, 20_000, 20_000i64, 40 * SECOND, 0),
            (-200 * SECOND, 20_000, 20_000, 40 * SECOND, 0),
            (0, 500_000, 3 * 3_600 * 2, 40 * SECOND, 0),
            (0, 100_000, 200_000, MAX_BEHIND, 0),
            (7 * SECOND, 50_000, 60_000, MAX_BEHIND, 60 * SECOND),
            (0, 50_000, 60_000, 600 * SECOND, 2 * 3_600 * SECOND),
        ] {
            let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
            let mut flood = FloodBudget::new(3);
            let mut counts: BTreeMap<i64, u32> = BTreeMap::new();
            let mut arrival = t0;
            for i in 0..events {
                arrival += step;
                if gap > 0 && i % 5_000 == 4_999 {
                    arrival += gap;
                }
                // Mostly within a second of arrival, sometimes much older,
                // sometimes ahead by as much as the clock check allows.
                let ts = match next() % 20 {
                    0 | 1 => arrival - (next() % (oldest as u64 + 1)) as i64,
                    2 => arrival + (next() % (MAX_AHEAD as u64 + 1)) as i64,
                    _ => arrival - (next() % 1_000_000) as i64,
                };
                let count = counts.entry(ts.div_euclid(SECOND)).or_default();
                let expected = if *count >= 3 {
                    Err(QuarantineReason::Flooding)
                } else {
                    *count += 1;
                    Ok(())
                };
                assert_eq!(flood.admit(ts, arrival), expected, "event {i} at {ts}");
            }
        }
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
        let key_id = |index| ring.key_id(0, index);
        assert_eq!(
            ring.verify(0, "a/t", 7, 1.5, 3, 0, Some(&tag)).map(key_id),
            Some("k2")
        );
        let first = EventMac::new(&[1; 32]).tag("a/t", 7, 1.5, 3, 0);
        assert_eq!(
            ring.verify(0, "a/t", 7, 1.5, 3, 0, Some(&first))
                .map(key_id),
            Some("k1")
        );
        // Any field changed, a missing tag, or a key that is not the sensor's: invalid.
        assert_eq!(ring.verify(0, "a/t", 8, 1.5, 3, 0, Some(&tag)), None);
        assert_eq!(ring.verify(0, "a/t", 7, 1.5, 3, 0, None), None);
        let other = EventMac::new(&[3; 32]).tag("a/t", 7, 1.5, 3, 0);
        assert_eq!(ring.verify(0, "a/t", 7, 1.5, 3, 0, Some(&other)), None);
    }
}
