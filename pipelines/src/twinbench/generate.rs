//! The TwinBench generator: simulates the plant second by second in event time
//! and writes the raw log in arrival order, with the catalog, keys, labels and
//! truth beside it.
//!
//! Per simulated second, for every asset: advance its truth process, write its
//! truth, then for every sensor take the second's samples (applying the active
//! incident, drops and lateness, and signing each event), and inject the
//! second's attack events. Events go into an [`ArrivalBuffer`]; before second
//! `s` is generated, every event arriving before `s` is written (none generated
//! later can arrive earlier). Everything is single-threaded and drawn from
//! seeded streams in a fixed order, so the same options give identical files.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use rand::{Rng, RngExt};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;
use twinflow_engine::auth::{TAG_LEN, Tag, write_keys};
use twinflow_engine::raw_log::{RawEvent, RawLogWriter};
use twinflow_engine::{Error, Result};

use super::arrival::{ArrivalBuffer, Arrives};
use super::incidents::{
    Effect, Forgery, Incident, IncidentKind, IncidentPlanner, IncidentRates, PLAN_CHUNK_S,
    false_reading, stochastic_round,
};
use super::keys::KeyRing;
use super::labels::{LABELS_FILE, LabelRecord, LabelWriter};
use super::plant::{
    AssetProcess, CHANNELS, ChannelSpec, EPOCH_US, NOISE_CLIP_SIGMAS, Plant, SECOND_US, Truth,
};
use super::rng::{Stream, stream};
use super::truth::{TRUTH_FILE, TruthWriter};

/// The raw log as Parquet.
pub const EVENTS_FILE: &str = "events.parquet";
/// The raw log as CSV (with `--csv`).
pub const EVENTS_CSV_FILE: &str = "events.csv";
/// The sensor keys.
pub use twinflow_engine::auth::KEYS_FILE;

/// Share of genuine samples lost in transit (their `seq` is still used up).
pub const DROP_PROBABILITY: f64 = 0.005;
/// Share of genuine events that arrive 2–10 s late instead of within 500 ms.
pub const LATE_PROBABILITY: f64 = 0.001;
/// Ordinary lateness: arrival − event time is uniform in `[0, 500 ms]`.
pub const MAX_ORDINARY_LATENESS_US: i64 = 500_000;
/// Lateness of the late events: uniform in `[2 s, 10 s]`.
pub const LATE_LATENESS_US: (i64, i64) = (2 * SECOND_US, 10 * SECOND_US);
/// Share of samples a healthy device marks "uncertain" for no visible reason.
pub const UNCERTAIN_PROBABILITY: f64 = 0.0005;

/// `quality` values.
pub const QUALITY_GOOD: u8 = 0;
pub const QUALITY_UNCERTAIN: u8 = 1;
pub const QUALITY_BAD: u8 = 2;

/// What to generate, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Number of assets (8 sensors each).
    pub assets: usize,
    /// Seconds of plant time.
    pub seconds: u64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Output directory (created if missing).
    pub out: PathBuf,
    /// Also write `events.csv`.
    pub csv: bool,
    /// Show a progress bar on stderr (hidden when stderr is not a terminal).
    pub progress: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            assets: 200,
            seconds: 60,
            seed: 0,
            out: PathBuf::from("out"),
            csv: false,
            progress: false,
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerateReport {
    /// Rows of the raw log (genuine, forged and replayed events).
    pub events: u64,
    /// Rows of `labels.csv`.
    pub labels: usize,
    /// Labels per kind, indexed by [`IncidentKind::index`].
    pub labels_by_kind: [usize; IncidentKind::ALL.len()],
    /// Samples the sensors took (each used up one `seq`), delivered or not.
    pub samples: u64,
    /// Samples lost in transit at random.
    pub dropped: u64,
    /// Samples lost to sensor dropouts.
    pub dropped_in_dropouts: u64,
    /// Genuine events that arrive 2–10 s late.
    pub late: u64,
    /// Delivered samples taken during flooding, all of them (the rated share too).
    pub flooding: u64,
    /// Injected forged events.
    pub forged: u64,
    /// Injected replayed events.
    pub replayed: u64,
    /// Delivered readings stamped in the future by a time-shift attack.
    pub time_shifted: u64,
    /// Rows of `truth.parquet`.
    pub truth_rows: u64,
}

impl GenerateReport {
    /// Labels of one kind.
    pub fn labels_of(&self, kind: IncidentKind) -> usize {
        self.labels_by_kind[kind.index()]
    }
}

/// Generates the TwinBench workload with the TwinBench incident rates.
pub fn generate(opts: &GenerateOptions) -> Result<GenerateReport> {
    generate_with_rates(opts, &IncidentRates::twinbench())
}

/// Generates the workload with other incident rates (tests use higher rates to
/// see every kind of incident in a small plant).
pub fn generate_with_rates(
    opts: &GenerateOptions,
    rates: &IncidentRates,
) -> Result<GenerateReport> {
    if opts.assets == 0 || opts.seconds == 0 {
        return Err(Error::Config(
            "twinbench: --assets and --seconds must be at least 1".into(),
        ));
    }
    let out = &opts.out;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let plant = Plant::new(opts.assets);
    plant.catalog().write_dir(out)?;
    let run_end_us = EPOCH_US + opts.seconds as i64 * SECOND_US;
    let keys = KeyRing::derive(&plant, opts.seed, EPOCH_US, run_end_us);
    write_keys(&out.join(KEYS_FILE), keys.records())?;

    let csv_path = out.join(EVENTS_CSV_FILE);
    if !opts.csv {
        // A CSV twin left by an earlier run would no longer match the Parquet log.
        remove_if_present(&csv_path)?;
    }
    let writer = RawLogWriter::create(
        &out.join(EVENTS_FILE),
        opts.csv.then_some(csv_path.as_path()),
    )?;
    let mut generator = Generator::new(opts, rates, plant, keys, writer, out)?;

    let bar = crate::progress::bar(
        opts.progress,
        opts.seconds,
        "{elapsed_precise} [{bar:40}] {pos}/{len} s of plant time, eta {eta}",
    );
    for second in 0..opts.seconds {
        generator.generate_second(second)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    generator.finish()
}

pub(super) fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// How late an honest reading arrives after its event time: 0–500 ms, or
/// with probability 0.1 % (if `late_allowed`) 2–10 s, counted in `late`.
pub(super) fn lateness(rng: &mut impl Rng, late_allowed: bool, late: &mut u64) -> i64 {
    if late_allowed && rng.random::<f64>() < LATE_PROBABILITY {
        *late += 1;
        rng.random_range(LATE_LATENESS_US.0..=LATE_LATENESS_US.1)
    } else {
        rng.random_range(0..=MAX_ORDINARY_LATENESS_US)
    }
}

/// An event waiting in the arrival buffer (also [`mod@super::synthesize`]'s).
#[derive(Debug, Clone, Copy)]
pub(super) struct LogEvent {
    pub(super) arrival_us: i64,
    /// The event time the event carries.
    pub(super) ts_us: i64,
    /// When it was sampled: `ts_us` but for a time-shifted reading. Arrival
    /// ties are broken by it, so a time shift moves no row of the log.
    pub(super) sampled_us: i64,
    pub(super) sensor: u32,
    pub(super) seq: u64,
    pub(super) value: f64,
    pub(super) quality: u8,
    pub(super) tag: Option<Tag>,
    /// Generation counter: the last tie-breaker, so the order is total.
    pub(super) order: u64,
}

impl LogEvent {
    /// A reading of `sensor` stamped `stamped_us` (its sample time
    /// `sampled_us`), signed with the sensor's key as a device would.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn signed(
        keys: &KeyRing,
        sensor: usize,
        name: &str,
        (stamped_us, sampled_us, arrival_us): (i64, i64, i64),
        seq: u64,
        value: f64,
        quality: u8,
        order: u64,
    ) -> Self {
        LogEvent {
            arrival_us,
            ts_us: stamped_us,
            sampled_us,
            sensor: sensor as u32,
            seq,
            value,
            quality,
            tag: Some(
                keys.mac(sensor, stamped_us)
                    .tag(name, stamped_us, value, seq, quality),
            ),
            order,
        }
    }

    /// Arrival order; ties broken by sample time, sensor, seq, then generation order.
    fn key(&self) -> (i64, i64, u32, u64, u64) {
        (
            self.arrival_us,
            self.sampled_us,
            self.sensor,
            self.seq,
            self.order,
        )
    }
}

impl PartialEq for LogEvent {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for LogEvent {}
impl PartialOrd for LogEvent {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for LogEvent {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}
impl Arrives for LogEvent {
    fn arrival_us(&self) -> i64 {
        self.arrival_us
    }
}

/// Events an attacker keeps to replay.
const RECORDER_CAPACITY: usize = 256;
/// The recording spans about this much of the sensor's traffic, so replayed
/// events range from just-accepted ones to ones far below the replay window.
const RECORDED_SPAN_S: usize = 120;

/// The attacker's recording of one sensor's delivered events, started when a
/// replay attack on the sensor is planned (at least a minute ahead, except at
/// the start of the run) and dropped when it is over.
struct Recorder {
    ring: Vec<LogEvent>,
    next: usize,
    stride: usize,
    skipped: usize,
}

impl Recorder {
    fn new(channel: &ChannelSpec) -> Self {
        Recorder {
            ring: Vec::with_capacity(RECORDER_CAPACITY),
            next: 0,
            stride: (channel.rate_hz as usize * RECORDED_SPAN_S / RECORDER_CAPACITY).max(1),
            skipped: 0,
        }
    }

    /// Keeps every `stride`-th event, overwriting the oldest.
    fn record(&mut self, event: &LogEvent) {
        self.skipped += 1;
        if self.skipped < self.stride {
            return;
        }
        self.skipped = 0;
        if self.ring.len() < RECORDER_CAPACITY {
            self.ring.push(*event);
        } else {
            self.ring[self.next] = *event;
        }
        self.next = (self.next + 1) % RECORDER_CAPACITY;
    }

    /// A random recorded event that arrived before `arrived_before_us`: starts
    /// at a random slot and walks back through the ring (towards older events,
    /// which have almost surely arrived), so it finds one whenever one exists.
    fn pick(&self, rng: &mut Xoshiro256PlusPlus, arrived_before_us: i64) -> Option<LogEvent> {
        let len = self.ring.len();
        if len == 0 {
            return None;
        }
        let start = rng.random_range(0..len);
        (0..len)
            .map(|back| self.ring[(start + len - back) % len])
            .find(|e| e.arrival_us < arrived_before_us)
    }
}

/// Per-sensor generation state.
struct SensorState {
    /// The next sequence number (drops and dropouts use numbers up too).
    next_seq: u64,
    /// Offset of the first sample within a second (below one period).
    phase_us: i64,
    /// Planned incidents not yet over, by start (they never overlap).
    incidents: VecDeque<Incident>,
    /// The frozen reading of a stuck sensor.
    held_value: Option<f64>,
    recorder: Option<Recorder>,
}

impl SensorState {
    /// Forgets incidents over by `now_us`, and what they kept.
    fn retire_incidents(&mut self, now_us: i64) {
        while let Some(done) = self.incidents.front().filter(|i| i.end_us <= now_us) {
            if done.kind() == IncidentKind::Stuck {
                self.held_value = None;
            }
            self.incidents.pop_front();
        }
        let replay_ahead = self
            .incidents
            .iter()
            .any(|i| i.kind() == IncidentKind::Replayed);
        if !replay_ahead {
            self.recorder = None;
        }
    }

    /// The incident active at some point of `[from_us, to_us)`, if any.
    fn incident_during(&self, from_us: i64, to_us: i64) -> Option<Incident> {
        self.incidents
            .front()
            .filter(|i| i.overlaps(from_us, to_us))
            .copied()
    }

    /// Whether the sensor floods at some point of `[from_us, to_us)`.
    fn floods_during(&self, from_us: i64, to_us: i64) -> bool {
        self.incidents
            .iter()
            .take_while(|i| i.start_us < to_us)
            .any(|i| i.kind() == IncidentKind::Flooding && i.overlaps(from_us, to_us))
    }
}

struct Generator {
    plant: Plant,
    keys: KeyRing,
    planner: IncidentPlanner,
    rng: Xoshiro256PlusPlus,
    processes: Vec<AssetProcess>,
    /// Planned bearing faults per asset, by start.
    bearing_faults: Vec<VecDeque<Incident>>,
    sensors: Vec<SensorState>,
    buffer: ArrivalBuffer<LogEvent>,
    events: RawLogWriter,
    truth: TruthWriter,
    labels: LabelWriter,
    report: GenerateReport,
    next_order: u64,
}

impl Generator {
    fn new(
        opts: &GenerateOptions,
        rates: &IncidentRates,
        plant: Plant,
        keys: KeyRing,
        events: RawLogWriter,
        out: &Path,
    ) -> Result<Self> {
        let mut plant_rng = stream(opts.seed, Stream::Plant, 0);
        let processes = (0..plant.asset_count())
            .map(|_| AssetProcess::random(&mut plant_rng))
            .collect();
        let sensors = (0..plant.sensor_count())
            .map(|s| SensorState {
                next_seq: 0,
                phase_us: plant_rng.random_range(0..Plant::channel_of(s).period_us()),
                incidents: VecDeque::new(),
                held_value: None,
                recorder: None,
            })
            .collect();
        Ok(Generator {
            planner: IncidentPlanner::new(
                opts.seed,
                plant.asset_count(),
                opts.seconds,
                rates.clone(),
            ),
            rng: stream(opts.seed, Stream::Sampling, 0),
            processes,
            bearing_faults: vec![VecDeque::new(); plant.asset_count()],
            sensors,
            buffer: ArrivalBuffer::new(),
            events,
            truth: TruthWriter::create(&out.join(TRUTH_FILE))?,
            labels: LabelWriter::create(&out.join(LABELS_FILE))?,
            report: GenerateReport::default(),
            next_order: 0,
            plant,
            keys,
        })
    }

    fn generate_second(&mut self, second: u64) -> Result<()> {
        // Keep the plan at least one chunk ahead: late events look ahead for
        // floods, and replay attackers record before they strike.
        if second.is_multiple_of(PLAN_CHUNK_S) {
            if second == 0 {
                self.plan_next_chunk()?;
            }
            self.plan_next_chunk()?;
        }
        self.write_arrivals_before(second as i64)?;

        let start_us = EPOCH_US + second as i64 * SECOND_US;
        for asset in 0..self.plant.asset_count() {
            let severity = self.bearing_severity(asset, start_us);
            let truth = self.processes[asset].advance(&mut self.rng, severity);
            self.truth
                .push(self.plant.asset_name(asset), start_us, &truth)?;
            for channel in 0..CHANNELS.len() {
                let sensor = Plant::sensor_index(asset, channel);
                self.sensors[sensor].retire_incidents(start_us);
                self.sample_second(sensor, start_us, &truth);
                self.inject_attacks(sensor, start_us, &truth);
            }
        }
        Ok(())
    }

    /// Plans the next chunk: labels it, and hands each incident to its sensor
    /// (or asset).
    fn plan_next_chunk(&mut self) -> Result<()> {
        let Some(incidents) = self.planner.plan_next_chunk() else {
            return Ok(());
        };
        for incident in incidents {
            self.labels
                .write(&LabelRecord::of(&incident, &self.plant))?;
            self.report.labels_by_kind[incident.kind().index()] += 1;
            match incident.sensor {
                None => self.bearing_faults[incident.asset].push_back(incident),
                Some(sensor) => {
                    let state = &mut self.sensors[sensor];
                    if incident.kind() == IncidentKind::Replayed && state.recorder.is_none() {
                        state.recorder = Some(Recorder::new(Plant::channel_of(sensor)));
                    }
                    state.incidents.push_back(incident);
                }
            }
        }
        Ok(())
    }

    /// How far a bearing fault of the asset has developed by the end of the
    /// second starting at `start_us`, in [0, 1].
    fn bearing_severity(&mut self, asset: usize, start_us: i64) -> f64 {
        let faults = &mut self.bearing_faults[asset];
        while faults.front().is_some_and(|f| f.end_us <= start_us) {
            faults.pop_front();
        }
        match faults.front() {
            Some(
                f @ Incident {
                    effect: Effect::BearingFault { develop_s },
                    ..
                },
            ) if f.overlaps(start_us, start_us + SECOND_US) => {
                let developed_s = (start_us + SECOND_US - f.start_us) as f64 / SECOND_US as f64;
                (developed_s / develop_s).clamp(0.0, 1.0)
            }
            _ => 0.0,
        }
    }

    /// The sensor's samples of one second: `rate` of them on its grid, or
    /// `rate × multiplier` while it floods.
    fn sample_second(&mut self, sensor: usize, start_us: i64, truth: &Truth) {
        let channel = Plant::channel_of(sensor);
        let state = &mut self.sensors[sensor];
        let incident = state.incident_during(start_us, start_us + SECOND_US);
        let multiplier = match incident {
            Some(Incident {
                effect: Effect::Flooding { multiplier },
                ..
            }) => multiplier,
            _ => 1,
        };
        // No 2–10 s lateness near a flood: the flood's seq numbers would push
        // the late event out of the replay window.
        let late_allowed = !state.floods_during(
            start_us,
            start_us + SECOND_US + LATE_LATENESS_US.1 + SECOND_US,
        );
        let truth_value = truth.get(channel.quantity);
        let name = self.plant.sensor_name(sensor);
        let samples = channel.rate_hz * multiplier;
        self.report.samples += samples as u64;
        for k in 0..samples as i64 {
            let ts_us = sample_time(start_us, state.phase_us, channel.period_us(), multiplier, k);
            let seq = state.next_seq;
            state.next_seq += 1;
            let active = incident.filter(|i| i.covers(ts_us));
            if matches!(
                active,
                Some(Incident {
                    effect: Effect::Dropout,
                    ..
                })
            ) {
                self.report.dropped_in_dropouts += 1;
                continue;
            }
            if self.rng.random::<f64>() < DROP_PROBABILITY {
                self.report.dropped += 1;
                continue;
            }
            let (value, quality) = reading(
                channel,
                truth_value,
                ts_us,
                active.as_ref(),
                &mut state.held_value,
                &mut self.rng,
            );
            let lateness_us = lateness(&mut self.rng, late_allowed, &mut self.report.late);
            // A time shift moves the stamp only: the reading arrives when the
            // honest one would have, signed as stamped.
            let stamped_us = match active {
                Some(Incident {
                    effect: Effect::TimeShift { shift_us },
                    ..
                }) => {
                    self.report.time_shifted += 1;
                    ts_us + shift_us
                }
                _ => ts_us,
            };
            let event = LogEvent::signed(
                &self.keys,
                sensor,
                name,
                (stamped_us, ts_us, ts_us + lateness_us),
                seq,
                value,
                quality,
                self.next_order,
            );
            self.next_order += 1;
            if multiplier > 1 {
                self.report.flooding += 1;
            }
            if let Some(recorder) = &mut state.recorder {
                recorder.record(&event);
            }
            self.buffer.push(event);
        }
    }

    /// Forged and replayed events injected during one second. They arrive in
    /// this second, inside the attack's interval.
    fn inject_attacks(&mut self, sensor: usize, start_us: i64, truth: &Truth) {
        let state = &self.sensors[sensor];
        let Some(attack) = state.incident_during(start_us, start_us + SECOND_US) else {
            return;
        };
        let per_second = match attack.effect {
            Effect::Forged { per_second, .. } | Effect::Replayed { per_second } => per_second,
            _ => return,
        };
        let from_us = attack.start_us.max(start_us);
        let to_us = attack.end_us.min(start_us + SECOND_US);
        let count = stochastic_round(
            &mut self.rng,
            per_second * (to_us - from_us) as f64 / SECOND_US as f64,
        );
        for _ in 0..count {
            let arrival_us = self.rng.random_range(from_us..to_us);
            let injected = match attack.effect {
                Effect::Forged { forgery, .. } => {
                    Some(self.forge(sensor, &attack, forgery, arrival_us, truth))
                }
                Effect::Replayed { .. } => self.sensors[sensor]
                    .recorder
                    .as_ref()
                    .and_then(|r| r.pick(&mut self.rng, start_us))
                    .map(|original| LogEvent {
                        arrival_us,
                        ..original
                    }),
                _ => unreachable!("only forged and replayed attacks inject events"),
            };
            if let Some(mut event) = injected {
                match attack.effect {
                    Effect::Forged { .. } => self.report.forged += 1,
                    _ => self.report.replayed += 1,
                }
                event.order = self.next_order;
                self.next_order += 1;
                self.buffer.push(event);
            }
        }
    }

    /// A forged event: the sensor's real name, a plausible value and seq and
    /// time, and a tag that does not verify (or none).
    fn forge(
        &mut self,
        sensor: usize,
        attack: &Incident,
        forgery: Forgery,
        arrival_us: i64,
        truth: &Truth,
    ) -> LogEvent {
        let channel = Plant::channel_of(sensor);
        let rng = &mut self.rng;
        let ts_us =
            (arrival_us - rng.random_range(0..=MAX_ORDINARY_LATENESS_US)).max(attack.start_us);
        let (lo, hi) = channel.quantity.healthy_band();
        let value = (truth.get(channel.quantity) * rng.random_range(0.9..1.1)
            + clipped_normal(rng) * channel.sigma)
            .clamp(lo, hi);
        let seq = self.sensors[sensor]
            .next_seq
            .saturating_sub(rng.random_range(1..=channel.rate_hz as u64));
        let quality = QUALITY_GOOD;
        let tag = match forgery {
            Forgery::MissingTag => None,
            Forgery::RandomTag => {
                let mut tag = [0u8; TAG_LEN];
                rng.fill_bytes(&mut tag);
                Some(tag)
            }
            Forgery::WrongKey => {
                let other = (sensor + 1) % self.plant.sensor_count();
                Some(self.keys.mac(other, ts_us).tag(
                    self.plant.sensor_name(sensor),
                    ts_us,
                    value,
                    seq,
                    quality,
                ))
            }
        };
        LogEvent {
            arrival_us,
            ts_us,
            sampled_us: ts_us,
            sensor: sensor as u32,
            seq,
            value,
            quality,
            tag,
            order: 0,
        }
    }

    /// Writes every buffered event arriving before `second` (relative to the epoch).
    fn write_arrivals_before(&mut self, second: i64) -> Result<()> {
        let Generator {
            buffer,
            events,
            plant,
            ..
        } = self;
        buffer.drain_before(second, |e| write_event(events, plant, e))
    }

    fn finish(mut self) -> Result<GenerateReport> {
        let Generator {
            buffer,
            events,
            plant,
            ..
        } = &mut self;
        buffer.drain_all(|e| write_event(events, plant, e))?;
        let Generator {
            events,
            truth,
            labels,
            mut report,
            ..
        } = self;
        report.events = events.finish()?;
        report.truth_rows = truth.finish()?;
        report.labels = labels.finish()?;
        Ok(report)
    }
}

pub(super) fn write_event(writer: &mut RawLogWriter, plant: &Plant, e: &LogEvent) -> Result<()> {
    let sensor = e.sensor as usize;
    writer.push(&RawEvent {
        ts_us: e.ts_us,
        arrival_us: e.arrival_us,
        asset: plant.asset_name(Plant::asset_of(sensor)),
        sensor: plant.sensor_name(sensor),
        kind: Plant::channel_of(sensor).kind(),
        value: e.value,
        seq: e.seq,
        quality: e.quality,
        tag: e.tag.as_ref().map(|t| &t[..]),
    })
}

/// Event time of sample `k` of the second starting at `start_us`: the sensor's
/// grid (`phase + k × period`), compressed `multiplier`-fold while it floods.
/// All `rate × multiplier` samples fall inside the second, strictly increasing.
#[inline]
pub(super) fn sample_time(
    start_us: i64,
    phase_us: i64,
    period_us: i64,
    multiplier: u32,
    k: i64,
) -> i64 {
    start_us + (phase_us + k * period_us) / multiplier as i64
}

/// A standard normal draw clipped to ±[`NOISE_CLIP_SIGMAS`].
#[inline]
pub(super) fn clipped_normal(rng: &mut Xoshiro256PlusPlus) -> f64 {
    rng.sample::<f64, _>(StandardNormal)
        .clamp(-NOISE_CLIP_SIGMAS, NOISE_CLIP_SIGMAS)
}

/// One reading and its quality: truth plus noise, changed by the incident
/// active at `ts_us` (if it changes values), clamped to the physical range.
///
/// Quality: uncertain at random ([`UNCERTAIN_PROBABILITY`]) and throughout a
/// noise burst (the device sees its own noise); bad when the reading had to be
/// clamped to the physical range (the sensor saturated). Other faults are
/// silent, as they are in the field.
fn reading(
    channel: &ChannelSpec,
    truth: f64,
    ts_us: i64,
    incident: Option<&Incident>,
    held_value: &mut Option<f64>,
    rng: &mut Xoshiro256PlusPlus,
) -> (f64, u8) {
    let noise = clipped_normal(rng) * channel.sigma;
    let mut quality = if rng.random::<f64>() < UNCERTAIN_PROBABILITY {
        QUALITY_UNCERTAIN
    } else {
        QUALITY_GOOD
    };
    let healthy = truth + noise;
    let effect = incident.map(|i| i.effect);
    let value = match (effect, incident) {
        (Some(Effect::Spike { offset } | Effect::Bias { offset }), _) => healthy + offset,
        (Some(Effect::Drift { offset_at_end }), Some(i)) => {
            healthy + offset_at_end * (ts_us - i.start_us) as f64 / (i.end_us - i.start_us) as f64
        }
        (Some(Effect::Stuck), _) => held_value.unwrap_or(healthy),
        (Some(Effect::NoiseBurst { sigma }), _) => {
            quality = QUALITY_UNCERTAIN;
            healthy + clipped_normal(rng) * sigma
        }
        (Some(Effect::FalseData { relative, upward }), _) => {
            false_reading(channel, truth, relative, upward) + noise
        }
        _ => healthy,
    };
    let (value, saturated) = channel.clamp_physical(value);
    if saturated {
        quality = QUALITY_BAD;
    }
    if effect == Some(Effect::Stuck) && held_value.is_none() {
        *held_value = Some(value);
    }
    (value, quality)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn flooding_grid_stays_inside_the_second() {
        for channel in &CHANNELS {
            for multiplier in [1, 4, 7, 10] {
                for phase in [0, channel.period_us() / 3, channel.period_us() - 1] {
                    let n = (channel.rate_hz * multiplier) as i64;
                    let times: Vec<i64> = (0..n)
                        .map(|k| sample_time(0, phase, channel.period_us(), multiplier, k))
                        .collect();
                    assert!(
                        times.windows(2).all(|w| w[0] < w[1]),
                        "{} × {multiplier}",
                        channel.name
                    );
                    assert!(times[0] >= 0 && times[n as usize - 1] < SECOND_US);
                }
            }
        }
    }

    fn flood(start_s: i64, end_s: i64) -> Incident {
        Incident {
            effect: Effect::Flooding { multiplier: 10 },
            asset: 0,
            sensor: Some(5),
            start_us: EPOCH_US + start_s * SECOND_US,
            end_us: EPOCH_US + end_s * SECOND_US,
        }
    }

    /// The guard that keeps 2–10 s late events away from floods looks far
    /// enough ahead: 11 s (the latest arrival of a sample of this second) past
    /// the second, and it sees floods queued behind other incidents.
    #[test]
    fn late_events_see_floods_up_to_eleven_seconds_ahead() {
        let mut state = SensorState {
            next_seq: 0,
            phase_us: 0,
            incidents: VecDeque::from([flood(30, 35)]),
            held_value: None,
            recorder: None,
        };
        let horizon = SECOND_US + LATE_LATENESS_US.1 + SECOND_US;
        let guarded = |state: &SensorState, s: i64| {
            let start = EPOCH_US + s * SECOND_US;
            state.floods_during(start, start + horizon)
        };
        assert!(!guarded(&state, 18));
        assert!(
            guarded(&state, 19),
            "a sample at 19.99 s may arrive at 29.99 s + flood lead-in"
        );
        assert!(guarded(&state, 34));
        assert!(!guarded(&state, 35));
        state.incidents.push_front(Incident {
            effect: Effect::Dropout,
            ..flood(20, 25)
        });
        assert!(
            guarded(&state, 24),
            "a flood behind another incident is still seen"
        );
    }

    /// The attacker only replays what has already arrived.
    #[test]
    fn recorder_replays_only_events_that_arrived() {
        let mut recorder = Recorder::new(&CHANNELS[7]);
        let event = |arrival_us: i64, seq: u64| LogEvent {
            arrival_us,
            ts_us: arrival_us - 1,
            sampled_us: arrival_us - 1,
            sensor: 7,
            seq,
            value: 1.0,
            quality: 0,
            tag: None,
            order: seq,
        };
        recorder.record(&event(100, 0));
        recorder.record(&event(200, 1));
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        for _ in 0..50 {
            assert_eq!(recorder.pick(&mut rng, 150).map(|e| e.seq), Some(0));
        }
        assert_eq!(recorder.pick(&mut rng, 100), None);
        for seq in 2..1000 {
            recorder.record(&event(300 + seq as i64, seq));
        }
        assert_eq!(recorder.ring.len(), RECORDER_CAPACITY, "bounded");
    }
}
