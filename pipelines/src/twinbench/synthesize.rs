//! `twinflow synthesize`: a raw log in the TwinBench format whose plant is drawn from trained asset models instead of the physical simulation, tagged with fresh keys, to replay like any log.
//!
//! Asset i of the synthetic plant runs the model set's asset i mod the set's
//! size. Its trajectory is drawn window by window from that model
//! ([`AssetModel::sample`]: each window from the predictive given the ones
//! drawn before), after a burn-in that lets the model's slow copies settle
//! from their start; every asset's trajectory is drawn before the first
//! event is written (8 bytes per channel and window: 29 MB for 200 assets
//! and an hour). Each 1 s window then becomes readings as the
//! generator's sensors take them ([`mod@super::generate`]): every sensor samples
//! on its grid at its rated rate with a random phase, reading the window's
//! value of its channel plus its own noise σ (the catalog's, clipped to
//! ±4.5σ) — the redundant sensors of a fused quantity (a model channel named
//! `temperature`) each read the quantity — clamped to the physical range
//! (quality 2 when clamped, else 0). Arrival lags the event time by 0–500 ms,
//! 0.1 % of events by 2–10 s, as the spec says.
//!
//! A model channel named like a TwinBench channel (`vib-1`, `current`,
//! `flow`) feeds that sensor; one named like a kind (`temperature`,
//! `pressure`) feeds every sensor of the kind; every TwinBench channel must
//! be fed exactly once, so models trained on TwinBench's reference pipeline
//! fit.
//!
//! Written into the output directory: `events.parquet`, `assets.csv`,
//! `sensors.csv`, `keys.json` (the generator's key derivation, from the
//! seed), `truth.parquet` (the drawn windows: what a perfect sensor reads on
//! average) and an empty `labels.csv`: there are no faults or attacks, no
//! drops, no late-arrival guard needed, and every event verifies, so a
//! replay quarantines nothing.

use std::path::PathBuf;

use rand::RngExt;
use twinflow_engine::auth::write_keys;
use twinflow_engine::raw_log::RawLogWriter;
use twinflow_engine::{Error, Result};
use twinflow_operators::model::set::ModelSet;
use twinflow_operators::model::{AssetModel, History, Layout};

use super::arrival::ArrivalBuffer;
use super::generate::{
    EVENTS_CSV_FILE, EVENTS_FILE, KEYS_FILE, LogEvent, QUALITY_BAD, QUALITY_GOOD, clipped_normal,
    lateness, remove_if_present, sample_time, write_event,
};
use super::keys::KeyRing;
use super::labels::{LABELS_FILE, LabelWriter};
use super::plant::{CHANNELS, EPOCH_US, Plant, Quantity, SECOND_US, Truth};
use super::rng::{Stream, stream};
use super::truth::{TRUTH_FILE, TruthWriter};

/// What to synthesize, from what, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthesizeOptions {
    /// A model set's directory (`twinflow train`'s output).
    pub model: PathBuf,
    pub assets: usize,
    pub seconds: u64,
    pub seed: u64,
    pub out: PathBuf,
    /// Windows drawn and dropped before the first written, per asset.
    pub burn_in: usize,
    pub progress: bool,
}

impl SynthesizeOptions {
    /// A burn-in of 300 windows: the reference models' slowest slow copy
    /// has a time constant of 300 windows.
    pub fn new(
        model: impl Into<PathBuf>,
        assets: usize,
        seconds: u64,
        out: impl Into<PathBuf>,
    ) -> Self {
        SynthesizeOptions {
            model: model.into(),
            assets,
            seconds,
            seed: 0,
            out: out.into(),
            burn_in: 300,
            progress: false,
        }
    }
}

/// What a synthesis wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SynthesizeReport {
    /// Rows of the raw log.
    pub events: u64,
    /// Events that arrive 2–10 s late.
    pub late: u64,
    /// Readings clamped to their sensor's physical range.
    pub clamped: u64,
    /// Asset models in the set.
    pub models: usize,
    /// Rows of `truth.parquet`.
    pub truth_rows: u64,
}

/// Writes a synthetic log (see the module doc).
pub fn synthesize(options: &SynthesizeOptions) -> Result<SynthesizeReport> {
    if options.assets == 0 || options.seconds == 0 {
        return Err(Error::Config(
            "synthesize: --assets and --seconds must be at least 1".into(),
        ));
    }
    let model_error = |e| Error::Config(format!("{}: {e}", options.model.display()));
    let set = ModelSet::read(&options.model).map_err(model_error)?;
    let models = set.load_all(&options.model).map_err(model_error)?;
    let feeds = models
        .iter()
        .zip(&set.assets)
        .map(|(model, entry)| {
            feeds(model.layout())
                .map_err(|why| Error::Config(format!("asset {}'s model: {why}", entry.asset)))
        })
        .collect::<Result<Vec<_>>>()?;

    let out = &options.out;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    remove_if_present(&out.join(EVENTS_CSV_FILE))?;
    let plant = Plant::new(options.assets);
    plant.catalog().write_dir(out)?;
    let run_end_us = EPOCH_US + options.seconds as i64 * SECOND_US;
    let keys = KeyRing::derive(&plant, options.seed, EPOCH_US, run_end_us);
    write_keys(&out.join(KEYS_FILE), keys.records())?;
    let mut writer = RawLogWriter::create(&out.join(EVENTS_FILE), None)?;
    let mut truth = TruthWriter::create(&out.join(TRUTH_FILE))?;
    LabelWriter::create(&out.join(LABELS_FILE))?.finish()?;

    let mut plant_rng = stream(options.seed, Stream::Plant, 0);
    let phases: Vec<i64> = (0..plant.sensor_count())
        .map(|s| plant_rng.random_range(0..Plant::channel_of(s).period_us()))
        .collect();
    let mut next_seq = vec![0u64; plant.sensor_count()];
    let mut rng = stream(options.seed, Stream::Sampling, 0);
    let trajectories = (0..options.assets)
        .map(|a| {
            let model = models[a % models.len()].as_ref();
            trajectory(
                model,
                options.seed,
                a,
                options.burn_in,
                options.seconds as usize,
            )
        })
        .collect::<Result<Vec<_>>>()?;

    let bar = crate::progress::bar(
        options.progress,
        options.seconds,
        "synthesize {elapsed_precise} [{bar:40}] {pos}/{len} s of plant time, eta {eta}",
    );
    let mut buffer = ArrivalBuffer::new();
    let mut report = SynthesizeReport {
        models: models.len(),
        ..SynthesizeReport::default()
    };
    let mut order = 0u64;
    for second in 0..options.seconds {
        buffer.drain_before(second as i64, |e| write_event(&mut writer, &plant, e))?;
        let start_us = EPOCH_US + second as i64 * SECOND_US;
        for (asset, drawn) in trajectories.iter().enumerate() {
            let feed = &feeds[asset % models.len()];
            let window = &drawn[second as usize];
            truth.push(plant.asset_name(asset), start_us, &truth_of(window, feed))?;
            for (channel, spec) in CHANNELS.iter().enumerate() {
                let sensor = Plant::sensor_index(asset, channel);
                let name = plant.sensor_name(sensor);
                for k in 0..spec.rate_hz as i64 {
                    let ts_us = sample_time(start_us, phases[sensor], spec.period_us(), 1, k);
                    let noisy = window[feed[channel]] + clipped_normal(&mut rng) * spec.sigma;
                    let (value, clamped) = spec.clamp_physical(noisy);
                    let quality = if clamped { QUALITY_BAD } else { QUALITY_GOOD };
                    report.clamped += u64::from(clamped);
                    let lateness_us = lateness(&mut rng, true, &mut report.late);
                    let seq = next_seq[sensor];
                    next_seq[sensor] += 1;
                    buffer.push(LogEvent::signed(
                        &keys,
                        sensor,
                        name,
                        (ts_us, ts_us, ts_us + lateness_us),
                        seq,
                        value,
                        quality,
                        order,
                    ));
                    order += 1;
                }
            }
        }
        bar.inc(1);
    }
    buffer.drain_all(|e| write_event(&mut writer, &plant, e))?;
    bar.finish_and_clear();
    report.events = writer.finish()?;
    report.truth_rows = truth.finish()?;
    Ok(report)
}

/// An asset's trajectory: `burn_in` windows drawn and dropped, then
/// `windows` windows, from the model's sampler in one call (each model
/// sets up its sampler once per call; see [`AssetModel::sample`]).
fn trajectory(
    model: &dyn AssetModel,
    seed: u64,
    asset: usize,
    burn_in: usize,
    windows: usize,
) -> Result<Vec<Vec<f64>>> {
    let mut rng = stream(seed, Stream::Synthesis, asset as u64);
    let mut drawn = model
        .sample(&mut rng, &History::new(model.layout()), burn_in + windows)
        .map_err(|e| Error::Config(format!("sampling a model: {e}")))?;
    drawn.drain(..burn_in);
    Ok(drawn)
}

/// Per TwinBench channel (an index into [`CHANNELS`]), the layout position
/// of the model channel that feeds it (see the module doc).
fn feeds(layout: &Layout) -> std::result::Result<Vec<usize>, String> {
    let mut feed: Vec<Option<usize>> = vec![None; CHANNELS.len()];
    for (position, channel) in layout.channels().iter().enumerate() {
        let fed: Vec<usize> = match CHANNELS.iter().position(|c| c.name == channel.name) {
            Some(i) => vec![i],
            None => (0..CHANNELS.len())
                .filter(|&i| CHANNELS[i].kind() == channel.name)
                .collect(),
        };
        if fed.is_empty() {
            return Err(format!(
                "channel {:?} is neither a TwinBench channel nor a kind of sensor",
                channel.name
            ));
        }
        for i in fed {
            if feed[i].replace(position).is_some() {
                return Err(format!(
                    "two channels feed TwinBench's {}",
                    CHANNELS[i].name
                ));
            }
        }
    }
    feed.iter()
        .zip(&CHANNELS)
        .map(|(f, c)| f.ok_or_else(|| format!("no channel feeds TwinBench's {}", c.name)))
        .collect()
}

/// The truth of a drawn window: each quantity's value, from the channel
/// that feeds its first sensor.
fn truth_of(window: &[f64], feed: &[usize]) -> Truth {
    let of = |quantity: Quantity| {
        let channel = CHANNELS
            .iter()
            .position(|c| c.quantity == quantity)
            .expect("every quantity has a sensor");
        window[feed[channel]]
    };
    Truth {
        temperature: of(Quantity::Temperature),
        pressure: of(Quantity::Pressure),
        vibration: of(Quantity::Vibration),
        current: of(Quantity::Current),
        flow: of(Quantity::Flow),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(names: &[&str]) -> Layout {
        Layout::of_names(names, 1).unwrap()
    }

    #[test]
    fn quantities_feed_their_redundant_sensors_and_channels_their_own() {
        let reference = layout(&["temperature", "pressure", "vib-1", "current", "flow"]);
        // temp-1..3, press-1..2, vib-1, current, flow.
        assert_eq!(feeds(&reference).unwrap(), [0, 0, 0, 1, 1, 2, 3, 4]);
        let truth = truth_of(&[50.0, 3.0, 2.0, 40.0, 100.0], &feeds(&reference).unwrap());
        assert_eq!(
            (
                truth.temperature,
                truth.pressure,
                truth.vibration,
                truth.current,
                truth.flow
            ),
            (50.0, 3.0, 2.0, 40.0, 100.0)
        );
        let by_sensor = layout(&[
            "temp-1",
            "temp-2",
            "temp-3",
            "pressure",
            "vibration",
            "current",
            "flow",
        ]);
        assert_eq!(feeds(&by_sensor).unwrap(), [0, 1, 2, 3, 3, 4, 5, 6]);
        assert!(feeds(&layout(&["temperature", "pressure", "vib-1", "current"])).is_err());
        assert!(
            feeds(&layout(&[
                "temperature",
                "temp-1",
                "pressure",
                "vib-1",
                "current",
                "flow"
            ]))
            .is_err()
        );
        assert!(feeds(&layout(&["speed"])).is_err());
    }
}
