//! TwinBench, the reference plant workload (`/work/shared/twinbench/SPEC.md`),
//! and its generator.
//!
//! # The plant
//! `A` pumps (`asset-0000` …), 20 to a line (`line-00` …), all on `site-0`; each
//! carries the spec's 8 sensors (three redundant temperatures, two redundant
//! pressures, a 50 Hz vibration, the motor current and the flow), 111 events per
//! asset per second before drops. Each asset runs a duty cycle — runs at a
//! setpoint for 2–15 min, idle periods of 1–8 min, ramps of 10–90 s between them,
//! with a small AR(1) wobble — and wears slowly (serviced when worn). Current
//! follows load as a power law; temperature follows load and wear through a
//! first-order lag of 3–8 min; flow follows load through a lag of seconds and
//! pressure rises with flow²; vibration grows with load² and with wear. See
//! [`plant`].
//!
//! # What is written
//! Into the output directory: `events.parquet` (and `events.csv` with `csv`),
//! `assets.csv`, `sensors.csv`, `keys.json`, `labels.csv` ([`labels`]) and
//! `truth.parquet` ([`truth`]). [`generate::generate`] is the entry point.
//!
//! # Choices where the spec leaves room
//! - **Time.** Plant time starts at 2026-01-01T00:00:00Z ([`plant::EPOCH_US`]).
//!   Each sensor samples on a fixed grid of its period with a random phase below
//!   one period, so every 1 s window `[k s, (k+1) s)` holds exactly `rate`
//!   samples (before drops). The truth is constant within a second.
//! - **Noise and the operating band.** A reading is truth + σ·N(0,1), the normal
//!   draw clipped to ±4.5σ; healthy truth keeps 4.5σ (of the noisiest redundant
//!   sensor) from the operating band, so healthy readings provably stay in it.
//!   Every reading, faulty or false, is clamped to the physical range; a clamped
//!   reading gets quality 2 (bad, the sensor saturated). Quality 1 (uncertain)
//!   marks noise bursts and 0.05 % of samples at random; faults are otherwise
//!   silent. Values are always finite.
//! - **Disorder.** Lateness (arrival − event time) is uniform in [0, 500 ms];
//!   0.1 % of events instead get a lateness uniform in [2 s, 10 s] — except
//!   within 11 s before or during a flood of their sensor, where a late event
//!   would fall out of the replay window. Arrival ties are broken by event time,
//!   sensor, seq, then generation order.
//! - **Sequence numbers.** Per sensor, from 0, in event-time order of every
//!   sample the sensor takes, flooding samples included. A sample lost in
//!   transit (0.5 %) or during a dropout still uses its number (a dropout is a
//!   link outage, the device keeps sampling), so both show as seq gaps.
//! - **Replay window.** For every genuine event, the greatest seq of its sensor
//!   among events that arrived earlier is at most 525 above it (10.5 s of a
//!   50 Hz sensor; 251 during a flood of at most 10 × 50 Hz with lateness
//!   ≤ 500 ms), well inside the spec's 1024.
//! - **Incidents.** At most one incident per sensor at a time (and one bearing
//!   fault per asset), 15 s apart, so each label has one cause. Rates: 0.25 per
//!   sensor-hour for each sensor-level kind, 1.5 bearing faults per asset-hour
//!   ([`incidents::IncidentRates::twinbench`]); the count per minute is the
//!   expectation rounded stochastically, so a 60 s, 200-asset run holds 6–7 of
//!   each sensor-level kind and 5 bearing faults (fewer only if every tried
//!   sensor is busy). Durations: spike 1–5 sample periods, drift and bias
//!   1–10 min, stuck 20 s–5 min, noise burst 5–60 s, bearing fault 2–10 min
//!   (developing to full severity in 30–120 s), dropout 1–10 min, forged and
//!   replayed 2–30 s, false data 30 s–5 min, flooding 2–20 whole seconds.
//!   Label intervals are clipped to the run.
//! - **Faults** are offsets relative to the operating span (spike ±30–60 %,
//!   drift to ±10–30 %, bias ±5–15 %), a frozen first reading (stuck), or extra
//!   noise of 10–40 σ (noise burst). A bearing fault is physical: it is in the
//!   truth, raising vibration directly and temperature through the thermal lag.
//! - **Attacks.** *Forged*: 1–5 events/s in a real sensor's name with a
//!   plausible value, time and seq, and per attack either no tag, random bytes
//!   or a tag under another sensor's key. *Replayed*: 1–5 events/s, each a
//!   byte-identical copy (same ts, value, seq, quality, tag) of a delivered
//!   event of the sensor that arrived before the replay, recorded during the
//!   ~2 minutes before (so replays are both of already-accepted seqs and of seqs
//!   far below the window); attacks start ≥ 10 s into the run. *False data*: the
//!   compromised sensor reports its truth shifted by 15–40 % of itself (at
//!   least 5 % of the operating span), the direction flipped if needed to stay
//!   in the plausible band, plus normal noise, with valid tags: plausible, and
//!   always wrong by more than the noise. *Flooding*:
//!   the sensor samples 4–10 × its rate for whole seconds, with valid tags and
//!   continuing seqs, so the excess beyond twice the rate falls in the labelled
//!   seconds only. For forged and replayed events the label bounds their
//!   arrival; for the others, event time.
//! - **Keys.** One 32-byte key per sensor from its own seeded stream (`k0`);
//!   one sensor in 20 rotates to a second key (`k1`) at a random time in the
//!   middle 60 % of the run: events sampled before it are signed with `k0`,
//!   after with `k1`. Keys are reproducible, not secret.
//! - **Determinism.** One thread; every random draw comes from a stream derived
//!   from the seed ([`rng`]) in a fixed order; no hash-map iteration reaches a
//!   file.

pub mod arrival;
pub mod generate;
pub mod incidents;
pub mod keys;
pub mod labels;
pub mod plant;
pub mod rng;
pub mod synthesize;
pub mod truth;

pub use generate::{GenerateOptions, GenerateReport, generate, generate_with_rates};
pub use incidents::{IncidentKind, IncidentRates};
pub use synthesize::{SynthesizeOptions, SynthesizeReport, synthesize};
