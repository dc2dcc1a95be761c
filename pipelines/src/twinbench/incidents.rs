//! Injected incidents — faults and attacks — and the planner that places them.
//!
//! An [`Incident`] is a kind-specific [`Effect`] on one sensor (or, for a
//! bearing fault, one asset) during `[start_us, end_us)`. The planner works one
//! minute of plant time at a time ([`PLAN_CHUNK_S`]): for each kind, the number
//! of incidents starting in the minute is the kind's expected count
//! (rate × exposure) rounded stochastically, so a run contains the expected
//! number up to ±1 per minute rather than a Poisson-distributed one. A sensor
//! (an asset, for bearing faults) carries at most one incident at a time, with
//! at least [`GUARD_US`] between two, so every labelled interval has exactly one
//! cause.
//!
//! Time shifts came last to TwinBench: they are planned after the other kinds,
//! from their own random stream ([`Stream::TimeShifts`]), on sensors free of
//! other incidents, and the other kinds never look at them, so adding them
//! changed no other incident of a seed (nor, the time shifts aside, any event).

use std::collections::VecDeque;

use rand::RngExt;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::plant::{ChannelSpec, EPOCH_US, Plant, SECOND_US, SENSORS_PER_ASSET};
use super::rng::{Stream, stream};

/// Plant time planned at once.
pub const PLAN_CHUNK_S: u64 = 60;
/// Least time between two incidents of one sensor (or two bearing faults of one asset).
pub const GUARD_US: i64 = 15 * SECOND_US;
/// Replay attacks start this long after the run starts at the earliest, so the
/// attacker has recorded traffic to replay.
pub const REPLAY_EARLIEST_US: i64 = 10 * SECOND_US;
/// Sensors tried for one incident before it is given up (all busy).
const PLACEMENT_TRIES: usize = 16;
/// How far a time shift moves its readings' event time: uniform in this range.
/// Its upper end leaves half a second to the clock check's 5 s, so ordinary
/// arrival lag never lets a shifted reading be rejected.
pub const TIME_SHIFT_US: (i64, i64) = (SECOND_US, 4 * SECOND_US + SECOND_US / 2);
/// How long a time shift (like false data) lasts, in seconds.
const TIME_SHIFT_SECONDS: (f64, f64) = (30.0, 300.0);
/// Chunks of other incidents planned before a chunk's time shifts: every
/// chunk a time shift starting in it (and its guard) can reach.
const TIME_SHIFT_REACH_CHUNKS: u64 = (PLAN_CHUNK_S * SECOND_US as u64
    + TIME_SHIFT_SECONDS.1 as u64 * SECOND_US as u64
    + GUARD_US as u64)
    .div_ceil(PLAN_CHUNK_S * SECOND_US as u64);

/// The kinds of incident, with their label names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IncidentKind {
    Spike,
    Drift,
    Stuck,
    Bias,
    NoiseBurst,
    BearingFault,
    Dropout,
    Forged,
    Replayed,
    FalseData,
    Flooding,
    TimeShift,
}

impl IncidentKind {
    pub const ALL: [IncidentKind; 12] = [
        IncidentKind::Spike,
        IncidentKind::Drift,
        IncidentKind::Stuck,
        IncidentKind::Bias,
        IncidentKind::NoiseBurst,
        IncidentKind::BearingFault,
        IncidentKind::Dropout,
        IncidentKind::Forged,
        IncidentKind::Replayed,
        IncidentKind::FalseData,
        IncidentKind::Flooding,
        IncidentKind::TimeShift,
    ];

    /// The `kind` column of `labels.csv`.
    pub const fn name(self) -> &'static str {
        match self {
            IncidentKind::Spike => "spike",
            IncidentKind::Drift => "drift",
            IncidentKind::Stuck => "stuck",
            IncidentKind::Bias => "bias",
            IncidentKind::NoiseBurst => "noise_burst",
            IncidentKind::BearingFault => "bearing_fault",
            IncidentKind::Dropout => "dropout",
            IncidentKind::Forged => "forged",
            IncidentKind::Replayed => "replayed",
            IncidentKind::FalseData => "false_data",
            IncidentKind::Flooding => "flooding",
            IncidentKind::TimeShift => "time_shift",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the incident concerns a whole asset rather than one sensor.
    pub const fn is_asset_level(self) -> bool {
        matches!(self, IncidentKind::BearingFault)
    }

    /// Whether it is an attack (rather than a fault or an outage).
    pub const fn is_attack(self) -> bool {
        matches!(
            self,
            IncidentKind::Forged
                | IncidentKind::Replayed
                | IncidentKind::FalseData
                | IncidentKind::Flooding
                | IncidentKind::TimeShift
        )
    }

    /// Position in [`IncidentKind::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// How forged events carry their tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// No tag at all (a device that does not sign).
    MissingTag,
    /// Random bytes.
    RandomTag,
    /// A well-formed tag under another sensor's key (a stolen key used to impersonate).
    WrongKey,
}

/// What an incident does, with its strength.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effect {
    /// Readings shifted by `offset` for a few samples.
    Spike { offset: f64 },
    /// An offset growing linearly from 0 to `offset_at_end`.
    Drift { offset_at_end: f64 },
    /// The reading freezes at its first value in the interval.
    Stuck,
    /// Readings shifted by a constant `offset`.
    Bias { offset: f64 },
    /// Extra noise of standard deviation `sigma`.
    NoiseBurst { sigma: f64 },
    /// A developing bearing fault reaching full severity after `develop_s`.
    BearingFault { develop_s: f64 },
    /// The sensor's link is down: nothing it samples arrives (seq still advances).
    Dropout,
    /// An attacker injects `per_second` events in the sensor's name.
    Forged { per_second: f64, forgery: Forgery },
    /// An attacker re-sends `per_second` recorded events of the sensor.
    Replayed { per_second: f64 },
    /// The compromised sensor reports the truth shifted by `relative` of itself
    /// (at least 5 % of the operating span), upward if `upward` unless that
    /// leaves the plausible band, with valid tags. See [`false_reading`].
    FalseData { relative: f64, upward: bool },
    /// The sensor samples `multiplier` times its rate (whole seconds only).
    Flooding { multiplier: u32 },
    /// The compromised sensor stamps its honest readings `shift_us` in the
    /// future (in [`TIME_SHIFT_US`], so under the clock check's 5 s), with
    /// valid tags; they arrive as the unshifted readings would have.
    TimeShift { shift_us: i64 },
}

impl Effect {
    pub const fn kind(&self) -> IncidentKind {
        match self {
            Effect::Spike { .. } => IncidentKind::Spike,
            Effect::Drift { .. } => IncidentKind::Drift,
            Effect::Stuck => IncidentKind::Stuck,
            Effect::Bias { .. } => IncidentKind::Bias,
            Effect::NoiseBurst { .. } => IncidentKind::NoiseBurst,
            Effect::BearingFault { .. } => IncidentKind::BearingFault,
            Effect::Dropout => IncidentKind::Dropout,
            Effect::Forged { .. } => IncidentKind::Forged,
            Effect::Replayed { .. } => IncidentKind::Replayed,
            Effect::FalseData { .. } => IncidentKind::FalseData,
            Effect::Flooding { .. } => IncidentKind::Flooding,
            Effect::TimeShift { .. } => IncidentKind::TimeShift,
        }
    }
}

/// One injected incident.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Incident {
    pub effect: Effect,
    pub asset: usize,
    /// `None` for asset-level incidents.
    pub sensor: Option<usize>,
    pub start_us: i64,
    /// Exclusive; clipped to the end of the run.
    pub end_us: i64,
}

impl Incident {
    pub fn kind(&self) -> IncidentKind {
        self.effect.kind()
    }

    /// Whether `t_us` falls in `[start_us, end_us)`.
    #[inline]
    pub fn covers(&self, t_us: i64) -> bool {
        self.start_us <= t_us && t_us < self.end_us
    }

    /// Whether the interval meets `[from_us, to_us)`.
    #[inline]
    pub fn overlaps(&self, from_us: i64, to_us: i64) -> bool {
        self.start_us < to_us && from_us < self.end_us
    }
}

/// Expected incidents per hour: per sensor-hour for sensor-level kinds, per
/// asset-hour for bearing faults.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentRates {
    pub per_hour: [f64; IncidentKind::ALL.len()],
}

impl IncidentRates {
    /// Sensor-level incidents of each kind per sensor-hour.
    pub const SENSOR_RATE: f64 = 0.25;
    /// Bearing faults per asset-hour.
    pub const BEARING_RATE: f64 = 1.5;

    /// The TwinBench rates: 0.25 per sensor-hour for each sensor-level kind and
    /// 1.5 bearing faults per asset-hour. A 60 s run of 200 assets (1,600
    /// sensors) thus holds 6–7 incidents of each sensor-level kind and 5 bearing
    /// faults; about 10 % of a sensor's time is affected by some incident.
    pub fn twinbench() -> Self {
        let mut per_hour = [Self::SENSOR_RATE; IncidentKind::ALL.len()];
        per_hour[IncidentKind::BearingFault.index()] = Self::BEARING_RATE;
        IncidentRates { per_hour }
    }

    /// Every rate multiplied by `factor` (tests use this to see every kind in a
    /// small plant).
    pub fn scaled(&self, factor: f64) -> Self {
        IncidentRates {
            per_hour: self.per_hour.map(|r| r * factor),
        }
    }

    pub fn rate(&self, kind: IncidentKind) -> f64 {
        self.per_hour[kind.index()]
    }
}

impl Default for IncidentRates {
    fn default() -> Self {
        Self::twinbench()
    }
}

/// Places incidents one chunk of plant time at a time: the kinds before time
/// shifts first, a few chunks ahead, then the time shifts of the chunk.
pub struct IncidentPlanner {
    rates: IncidentRates,
    assets: usize,
    run_end_us: i64,
    next_chunk: u64,
    /// Every kind but time shifts, planned up to [`TIME_SHIFT_REACH_CHUNKS`]
    /// ahead of `next_chunk`.
    others: Placement,
    next_other_chunk: u64,
    /// Chunks of `others` not handed out yet, from `next_chunk` on.
    ahead: VecDeque<Vec<Incident>>,
    /// Time shifts; its busy intervals are the others' as well as its own.
    time_shifts: Placement,
}

/// A random stream and the intervals it has planned per sensor, then per
/// asset (bearing faults), to keep incidents of one target apart.
struct Placement {
    rng: Xoshiro256PlusPlus,
    sensor_busy: Vec<Vec<(i64, i64)>>,
    asset_busy: Vec<Vec<(i64, i64)>>,
}

impl IncidentPlanner {
    pub fn new(seed: u64, assets: usize, seconds: u64, rates: IncidentRates) -> Self {
        let placement = |rng| Placement {
            rng,
            sensor_busy: vec![Vec::new(); assets * SENSORS_PER_ASSET],
            asset_busy: vec![Vec::new(); assets],
        };
        IncidentPlanner {
            rates,
            assets,
            run_end_us: EPOCH_US + seconds as i64 * SECOND_US,
            next_chunk: 0,
            others: placement(stream(seed, Stream::Incidents, 0)),
            next_other_chunk: 0,
            ahead: VecDeque::new(),
            time_shifts: placement(stream(seed, Stream::TimeShifts, 0)),
        }
    }

    /// The incidents starting in the next chunk, ordered by start, or `None`
    /// once the run is fully planned.
    pub fn plan_next_chunk(&mut self) -> Option<Vec<Incident>> {
        let (chunk_start, chunk_end) = self.chunk(self.next_chunk)?;
        // Every other incident a time shift of this chunk could meet is planned.
        while self.next_other_chunk < self.next_chunk + TIME_SHIFT_REACH_CHUNKS {
            let Some(others) = self.plan_others(self.next_other_chunk) else {
                break;
            };
            for i in &others {
                if let Some(sensor) = i.sensor {
                    self.time_shifts.sensor_busy[sensor].push((i.start_us, i.end_us));
                }
            }
            self.ahead.push_back(others);
            self.next_other_chunk += 1;
        }
        self.next_chunk += 1;
        let mut planned = self.ahead.pop_front().unwrap_or_default();
        let hours = (chunk_end - chunk_start) as f64 / (3600.0 * SECOND_US as f64);
        self.time_shifts.forget_before(chunk_start);
        let kind = IncidentKind::TimeShift;
        let expected = self.rates.rate(kind) * (self.assets * SENSORS_PER_ASSET) as f64 * hours;
        let count = stochastic_round(&mut self.time_shifts.rng, expected);
        for _ in 0..count {
            let placed =
                self.time_shifts
                    .place(kind, chunk_start, chunk_end, self.assets, self.run_end_us);
            planned.extend(placed);
        }
        planned.sort_by_key(|i| (i.start_us, i.asset, i.sensor, i.kind()));
        Some(planned)
    }

    /// The bounds of chunk `index`, or `None` past the run's end.
    fn chunk(&self, index: u64) -> Option<(i64, i64)> {
        let start = EPOCH_US + (index * PLAN_CHUNK_S) as i64 * SECOND_US;
        if start >= self.run_end_us || self.assets == 0 {
            return None;
        }
        Some((
            start,
            (start + PLAN_CHUNK_S as i64 * SECOND_US).min(self.run_end_us),
        ))
    }

    /// The incidents of every kind but time shifts starting in chunk `index`.
    fn plan_others(&mut self, index: u64) -> Option<Vec<Incident>> {
        let (chunk_start, chunk_end) = self.chunk(index)?;
        self.others.forget_before(chunk_start);
        let hours = (chunk_end - chunk_start) as f64 / (3600.0 * SECOND_US as f64);
        let mut planned = Vec::new();
        for kind in IncidentKind::ALL {
            if kind == IncidentKind::TimeShift {
                continue;
            }
            let targets = if kind.is_asset_level() {
                self.assets
            } else {
                self.assets * SENSORS_PER_ASSET
            };
            let expected = self.rates.rate(kind) * targets as f64 * hours;
            let count = stochastic_round(&mut self.others.rng, expected);
            for _ in 0..count {
                let placed =
                    self.others
                        .place(kind, chunk_start, chunk_end, self.assets, self.run_end_us);
                planned.extend(placed);
            }
        }
        Some(planned)
    }
}

impl Placement {
    /// Forgets intervals that can no longer clash with one starting at `from_us`.
    fn forget_before(&mut self, from_us: i64) {
        for busy in self
            .sensor_busy
            .iter_mut()
            .chain(self.asset_busy.iter_mut())
        {
            busy.retain(|&(_, end)| end + GUARD_US > from_us);
        }
    }

    /// One incident of `kind` starting in `[chunk_start, chunk_end)`, on a free
    /// target, or `None` if no free target was found.
    fn place(
        &mut self,
        kind: IncidentKind,
        chunk_start: i64,
        chunk_end: i64,
        assets: usize,
        run_end_us: i64,
    ) -> Option<Incident> {
        let earliest = match kind {
            IncidentKind::Replayed => chunk_start.max(EPOCH_US + REPLAY_EARLIEST_US),
            _ => chunk_start,
        };
        if earliest >= chunk_end {
            return None;
        }
        for _ in 0..PLACEMENT_TRIES {
            let (asset, sensor) = if kind.is_asset_level() {
                (self.rng.random_range(0..assets), None)
            } else {
                let sensor = self.rng.random_range(0..assets * SENSORS_PER_ASSET);
                (Plant::asset_of(sensor), Some(sensor))
            };
            let channel = Plant::channel_of(sensor.unwrap_or(0));
            let (start_us, duration_us) = self.interval(kind, channel, earliest, chunk_end);
            let end_us = (start_us + duration_us).min(run_end_us);
            let busy = match sensor {
                Some(s) => &mut self.sensor_busy[s],
                None => &mut self.asset_busy[asset],
            };
            let clashes = busy
                .iter()
                .any(|&(s, e)| start_us < e + GUARD_US && s < end_us + GUARD_US);
            if clashes {
                continue;
            }
            busy.push((start_us, end_us));
            let effect = self.effect(kind, channel);
            return Some(Incident {
                effect,
                asset,
                sensor,
                start_us,
                end_us,
            });
        }
        None
    }

    /// Start and (unclipped) duration. Flooding covers whole seconds, so every
    /// 1 s window is either entirely flooded or not at all; a spike lasts 1–5
    /// sample periods, so it always holds at least one sample.
    fn interval(
        &mut self,
        kind: IncidentKind,
        channel: &ChannelSpec,
        from: i64,
        to: i64,
    ) -> (i64, i64) {
        let rng = &mut self.rng;
        if kind == IncidentKind::Flooding {
            let first = (from - EPOCH_US + SECOND_US - 1) / SECOND_US;
            let last = (to - EPOCH_US - 1) / SECOND_US;
            let second = rng.random_range(first..=last);
            let seconds = rng.random_range(2..=20);
            return (EPOCH_US + second * SECOND_US, seconds * SECOND_US);
        }
        let start = rng.random_range(from..to);
        let seconds = |rng: &mut Xoshiro256PlusPlus, lo: f64, hi: f64| {
            (rng.random_range(lo..hi) * SECOND_US as f64) as i64
        };
        let duration = match kind {
            IncidentKind::Spike => (rng.random_range(1.0..5.0) * channel.period_us() as f64) as i64,
            IncidentKind::Drift | IncidentKind::Bias => seconds(rng, 60.0, 600.0),
            IncidentKind::Stuck => seconds(rng, 20.0, 300.0),
            IncidentKind::NoiseBurst => seconds(rng, 5.0, 60.0),
            IncidentKind::BearingFault => seconds(rng, 120.0, 600.0),
            IncidentKind::Dropout => seconds(rng, 60.0, 600.0),
            IncidentKind::Forged | IncidentKind::Replayed => seconds(rng, 2.0, 30.0),
            IncidentKind::FalseData => seconds(rng, 30.0, 300.0),
            IncidentKind::TimeShift => seconds(rng, TIME_SHIFT_SECONDS.0, TIME_SHIFT_SECONDS.1),
            IncidentKind::Flooding => unreachable!("handled above"),
        };
        (start, duration)
    }

    /// Strength of the incident, scaled to the channel's operating band or σ.
    fn effect(&mut self, kind: IncidentKind, channel: &ChannelSpec) -> Effect {
        let rng = &mut self.rng;
        let span = channel.operating_span();
        let mut signed = |lo: f64, hi: f64| {
            let magnitude = rng.random_range(lo..hi);
            if rng.random_bool(0.5) {
                magnitude
            } else {
                -magnitude
            }
        };
        match kind {
            IncidentKind::Spike => Effect::Spike {
                offset: signed(0.3, 0.6) * span,
            },
            IncidentKind::Drift => Effect::Drift {
                offset_at_end: signed(0.1, 0.3) * span,
            },
            IncidentKind::Stuck => Effect::Stuck,
            IncidentKind::Bias => Effect::Bias {
                offset: signed(0.05, 0.15) * span,
            },
            IncidentKind::NoiseBurst => Effect::NoiseBurst {
                sigma: rng.random_range(10.0..40.0) * channel.sigma,
            },
            IncidentKind::BearingFault => Effect::BearingFault {
                develop_s: rng.random_range(30.0..120.0),
            },
            IncidentKind::Dropout => Effect::Dropout,
            IncidentKind::Forged => Effect::Forged {
                per_second: rng.random_range(1.0..5.0),
                forgery: match rng.random_range(0..3) {
                    0 => Forgery::MissingTag,
                    1 => Forgery::RandomTag,
                    _ => Forgery::WrongKey,
                },
            },
            IncidentKind::Replayed => Effect::Replayed {
                per_second: rng.random_range(1.0..5.0),
            },
            IncidentKind::FalseData => Effect::FalseData {
                relative: rng.random_range(0.15..0.4),
                upward: rng.random_bool(0.5),
            },
            IncidentKind::Flooding => Effect::Flooding {
                multiplier: rng.random_range(4..=10),
            },
            IncidentKind::TimeShift => Effect::TimeShift {
                shift_us: rng.random_range(TIME_SHIFT_US.0..=TIME_SHIFT_US.1),
            },
        }
    }
}

/// The value a sensor under false-data injection reports (before its noise):
/// plausible — inside the quantity's healthy band — but wrong by at least
/// `max(relative × truth, 5 % of the operating span)`. The shift goes the other
/// way when `upward` (or downward) would leave the band; with `relative ≤ 0.4`
/// one of the two directions always fits, for every channel of the table.
pub fn false_reading(channel: &ChannelSpec, truth: f64, relative: f64, upward: bool) -> f64 {
    let (lo, hi) = channel.quantity.healthy_band();
    let shift = (relative * truth.abs()).max(0.05 * channel.operating_span());
    let (up, down) = (truth + shift, truth - shift);
    let target = match (upward, up <= hi, down >= lo) {
        (true, true, _) | (false, true, false) => up,
        _ => down,
    };
    target.clamp(lo, hi)
}

/// `floor(x)`, plus one with probability `x - floor(x)`: unbiased, and never
/// more than one away from `x`.
pub fn stochastic_round(rng: &mut Xoshiro256PlusPlus, x: f64) -> u64 {
    let whole = x.floor();
    whole as u64 + u64::from(rng.random::<f64>() < x - whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_all(seed: u64, assets: usize, seconds: u64, rates: IncidentRates) -> Vec<Incident> {
        let mut planner = IncidentPlanner::new(seed, assets, seconds, rates);
        let mut all = Vec::new();
        while let Some(chunk) = planner.plan_next_chunk() {
            all.extend(chunk);
        }
        all
    }

    /// The documented promise: a 60 s run of 200 assets holds several incidents
    /// of every kind (6–7 expected per sensor-level kind, 5 bearing faults).
    #[test]
    fn minute_of_default_plant_has_several_of_each_kind() {
        for seed in 0..5 {
            let all = plan_all(seed, 200, 60, IncidentRates::twinbench());
            for kind in IncidentKind::ALL {
                let n = all.iter().filter(|i| i.kind() == kind).count();
                assert!((4..=8).contains(&n), "seed {seed}: {n} × {}", kind.name());
            }
        }
    }

    #[test]
    fn incidents_are_inside_the_run_apart_and_well_formed() {
        let run_end = EPOCH_US + 600 * SECOND_US;
        let all = plan_all(11, 10, 600, IncidentRates::twinbench().scaled(20.0));
        assert!(all.len() > 100);
        for i in &all {
            assert!(
                EPOCH_US <= i.start_us && i.start_us < i.end_us && i.end_us <= run_end,
                "{i:?}"
            );
            assert_eq!(i.sensor.is_none(), i.kind().is_asset_level());
            if let Some(s) = i.sensor {
                assert_eq!(Plant::asset_of(s), i.asset);
            }
            match i.effect {
                Effect::Flooding { multiplier } => {
                    assert_eq!((i.start_us - EPOCH_US) % SECOND_US, 0);
                    assert_eq!((i.end_us - EPOCH_US) % SECOND_US, 0);
                    assert!((4..=10).contains(&multiplier));
                }
                Effect::Replayed { .. } => assert!(i.start_us >= EPOCH_US + REPLAY_EARLIEST_US),
                Effect::TimeShift { shift_us } => {
                    assert!((TIME_SHIFT_US.0..=TIME_SHIFT_US.1).contains(&shift_us));
                    // Under the clock check's 5 s, with room for jitter.
                    assert!(shift_us < 5 * SECOND_US);
                }
                Effect::Spike { offset } => {
                    let channel = Plant::channel_of(i.sensor.unwrap());
                    assert!(i.end_us - i.start_us >= channel.period_us() || i.end_us == run_end);
                    assert!(offset.abs() >= 0.3 * channel.operating_span());
                }
                _ => {}
            }
        }
        // One incident per target at a time, GUARD_US apart.
        for a in &all {
            for b in &all {
                if std::ptr::eq(a, b)
                    || (a.sensor, a.asset, a.kind().is_asset_level())
                        != (b.sensor, b.asset, b.kind().is_asset_level())
                {
                    continue;
                }
                assert!(
                    a.end_us + GUARD_US <= b.start_us || b.end_us + GUARD_US <= a.start_us,
                    "{a:?} {b:?}"
                );
            }
        }
        // Chunks come out in start order.
        assert!(all.windows(2).all(|w| w[0].start_us <= w[1].start_us));
    }

    /// Time shifts change no other incident: without them the plan is the
    /// full plan's other incidents, over many chunks (shifts reach several
    /// chunks ahead) and at rates where sensors are often busy.
    #[test]
    fn time_shifts_leave_the_other_incidents_as_they_were() {
        for (seed, scale) in [(3, 1.0), (4, 10.0), (5, 30.0)] {
            let rates = IncidentRates::twinbench().scaled(scale);
            let all = plan_all(seed, 20, 900, rates.clone());
            let shifts = all
                .iter()
                .filter(|i| i.kind() == IncidentKind::TimeShift)
                .count();
            assert!(shifts > 0, "seed {seed}: no time shift");
            let mut without = rates;
            without.per_hour[IncidentKind::TimeShift.index()] = 0.0;
            let others: Vec<Incident> = all
                .into_iter()
                .filter(|i| i.kind() != IncidentKind::TimeShift)
                .collect();
            assert_eq!(others, plan_all(seed, 20, 900, without), "seed {seed}");
        }
    }

    #[test]
    fn plan_is_deterministic_and_seed_dependent() {
        let rates = IncidentRates::twinbench();
        assert_eq!(
            plan_all(1, 50, 300, rates.clone()),
            plan_all(1, 50, 300, rates.clone())
        );
        assert_ne!(
            plan_all(1, 50, 300, rates.clone()),
            plan_all(2, 50, 300, rates)
        );
    }

    /// False data is plausible (in the healthy band) and wrong by at least 5 %
    /// of the span, for any truth a sensor can see — including truths beyond the
    /// band, as under a bearing fault.
    #[test]
    fn false_reading_is_plausible_and_clearly_wrong() {
        for channel in &crate::twinbench::plant::CHANNELS {
            let (lo, hi) = channel.quantity.healthy_band();
            let span = channel.operating_span();
            for step in 0..=200 {
                let truth = channel.operating.0 + span * 1.3 * step as f64 / 200.0;
                for (relative, upward) in [(0.15, true), (0.15, false), (0.4, true), (0.4, false)] {
                    let v = false_reading(channel, truth, relative, upward);
                    assert!((lo..=hi).contains(&v), "{} {truth} -> {v}", channel.name);
                    if (lo..=hi).contains(&truth) {
                        assert!(
                            (v - truth).abs() >= 0.05 * span - 1e-9,
                            "{} {truth} -> {v}",
                            channel.name
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in IncidentKind::ALL {
            assert_eq!(IncidentKind::from_name(kind.name()), Some(kind));
            assert_eq!(IncidentKind::ALL[kind.index()], kind);
        }
        assert_eq!(IncidentKind::from_name("meteor"), None);
    }
}
