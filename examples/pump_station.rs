//! A user-defined pipeline on a plant of our own: a water pump station.
//!
//! `cargo run --release --example pump_station [DIR]` writes ten minutes of a
//! synthetic station (2 lines × 3 pumps) into DIR (default
//! `target/pump_station`), replays it through a pipeline declared in a few
//! lines with a detector of its own, prints what it found, and checks it:
//! the process fails unless the cavitation incident is flagged, no healthy pump
//! is, the speed dropout is interpolated and every pump is in the twin view.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, UInt64Type};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use twinflow::engine::auth::{EventMac, KEYS_FILE, SensorKey, write_keys};
use twinflow::engine::catalog::{AssetRecord, Catalog, SensorRecord};
use twinflow::engine::raw_log::{RawEvent, RawLogWriter};
use twinflow::engine::time::{Micros, SECOND};
use twinflow::operators::align::Fill;
use twinflow::pipelines::dataset::read_dataset;
use twinflow::pipelines::pipeline::Pipeline;
use twinflow::pipelines::replay::ReplayOptions;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Plant time starts at 2026-01-01 00:00 UTC, a window boundary, and lasts 10 minutes.
const T0: Micros = 1_767_225_600 * SECOND;
const DURATION: Micros = 600 * SECOND;
const WINDOW: Micros = 5 * SECOND;

/// The pump whose `speed` sensor goes silent, and when (plant time, from T0).
const DROPOUT: (&str, Micros, Micros) = ("north-p3", 120 * SECOND, 160 * SECOND);
/// The pump that cavitates: flow drops and the suction pressure collapses.
/// It starts mid-window, as real incidents do.
const CAVITATION: (&str, Micros, Micros) = ("south-p2", 302_500_000, 332_500_000);

/// Every pump's channels: (channel, kind, rate in Hz, σ, physical range).
/// A channel is one sensor, so the redundant inlet-pressure pair are two
/// channels. Three sensors share the kind `pressure`, but the outlet pressure
/// measures something else: the pipeline declares which ones are redundant.
type Channel = (&'static str, &'static str, f64, f64, (f64, f64));
const CHANNELS: [Channel; 6] = [
    ("inlet-pressure-1", "pressure", 5.0, 0.02, (0.0, 10.0)), // bar
    ("inlet-pressure-2", "pressure", 5.0, 0.05, (0.0, 10.0)), // bar
    ("outlet-pressure", "pressure", 5.0, 0.05, (0.0, 25.0)),  // bar
    ("speed", "speed", 1.0, 5.0, (0.0, 3600.0)),              // rpm
    ("flow", "flow", 2.0, 1.5, (0.0, 500.0)),                 // m³/h
    ("motor-temp", "temperature", 0.2, 0.3, (-20.0, 150.0)),  // °C
];

/// The noise-free value of a channel of pump number `pump` at `t` seconds,
/// with cavitation of severity `cavitation` (0 = none, 1 = full).
fn signal(pump: usize, channel: &str, t: f64, cavitation: f64) -> f64 {
    // Demand swings ±4 % over 4 minutes, out of phase from pump to pump.
    let demand = 1.0 + 0.04 * (std::f64::consts::TAU * t / 240.0 + pump as f64).sin();
    match channel {
        "inlet-pressure-1" | "inlet-pressure-2" => {
            (1.8 - 2.0 * (demand - 1.0)) * (1.0 - 0.8 * cavitation)
        }
        "outlet-pressure" => (1.8 + 4.5 * demand * demand) * (1.0 - 0.2 * cavitation),
        "speed" => 1480.0 * (1.0 + 0.5 * (demand - 1.0)),
        "flow" => (110.0 + 8.0 * pump as f64) * demand * (1.0 - 0.55 * cavitation),
        // The motors warm up towards 58 °C over the run, a little more under load.
        "motor-temp" => 40.0 + 18.0 * (1.0 - (-t / 300.0).exp()) + 20.0 * (demand - 1.0),
        other => unreachable!("no signal for channel {other}"),
    }
}

/// Cavitation severity at plant time `t`: it sets in and clears over 2 s.
fn cavitation_at(t: Micros) -> f64 {
    let ramp = 2.0 * SECOND as f64;
    let (start, end) = (CAVITATION.1, CAVITATION.2);
    ((t - start) as f64 / ramp)
        .min((end - t) as f64 / ramp)
        .clamp(0.0, 1.0)
}

/// A standard normal draw (Box–Muller), so noise needs no extra dependency.
fn gaussian(rng: &mut Xoshiro256PlusPlus) -> f64 {
    let (u, v): (f64, f64) = (rng.random(), rng.random());
    (-2.0 * (1.0 - u).ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// The station's catalog: lines north and south, pumps p1..p3 on each.
fn station() -> Result<Catalog> {
    let pumps: Vec<(String, &str)> = ["north", "south"]
        .into_iter()
        .flat_map(|line| (1..=3).map(move |n| (format!("{line}-p{n}"), line)))
        .collect();
    let assets = pumps.iter().map(|(pump, line)| AssetRecord {
        asset: pump.clone(),
        line: line.to_string(),
        site: "riverside".into(),
        kind: "centrifugal-pump".into(),
    });
    let sensors = pumps.iter().flat_map(|(pump, _)| {
        CHANNELS.iter().map(
            move |&(channel, kind, rate_hz, sigma, (min, max))| SensorRecord {
                sensor: format!("{pump}/{channel}"),
                asset: pump.clone(),
                channel: channel.into(),
                kind: kind.into(),
                sigma,
                min,
                max,
                // The rated rate sets verification's flooding budget.
                rate_hz: Some(rate_hz),
                quantity: None,
            },
        )
    });
    Ok(Catalog::new(assets.collect(), sensors.collect())?)
}

/// Writes the catalog and a raw log of the whole run into `dir`; returns the rows written.
fn write_plant(dir: &Path, catalog: &Catalog) -> Result<u64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(2026);
    let mut events = Vec::new();
    // Every sensor signs what it sends with a key of its own (keys.json).
    let keys: Vec<SensorKey> = catalog
        .sensors()
        .iter()
        .map(|s| SensorKey {
            sensor: s.sensor.clone(),
            key_id: "2026-1".into(),
            key: (0..32)
                .map(|_| format!("{:02x}", rng.random::<u8>()))
                .collect(),
        })
        .collect();
    for (id, sensor) in catalog.sensors().iter().enumerate() {
        let mac = EventMac::new(&keys[id].key_bytes()?);
        let pump = id / CHANNELS.len();
        let (channel, _, rate_hz, sigma, (min, max)) = CHANNELS[id % CHANNELS.len()];
        let period = (SECOND as f64 / rate_hz) as Micros;
        // Each sensor keeps its own clock: its own phase, and a little jitter.
        let phase = rng.random_range(0..period);
        let mut sent = 0;
        for k in 0.. {
            let t = phase + k * period + rng.random_range(0..period / 25);
            if t >= DURATION {
                break;
            }
            // One speed sensor goes silent for 40 s: it sends nothing.
            let silent = (DROPOUT.1..DROPOUT.2).contains(&t);
            if silent && sensor.asset == DROPOUT.0 && channel == "speed" {
                continue;
            }
            sent += 1;
            // The radio loses 1 % of what is sent (a gap in `seq`).
            if rng.random_range(0..100) == 0 {
                continue;
            }
            let cavitation = if sensor.asset == CAVITATION.0 {
                cavitation_at(t)
            } else {
                0.0
            };
            let clean = signal(pump, channel, t as f64 / SECOND as f64, cavitation);
            let value = (clean + sigma * gaussian(&mut rng)).clamp(min, max);
            let tag = mac.tag(&sensor.sensor, T0 + t, value, sent, 0);
            events.push((
                RawEvent {
                    ts_us: T0 + t,
                    // Up to 300 ms in transit: well within the 2 s lateness, but out of order.
                    arrival_us: T0 + t + rng.random_range(0..300_000),
                    asset: &sensor.asset,
                    sensor: &sensor.sensor,
                    kind: &sensor.kind,
                    value,
                    seq: sent,
                    quality: 0,
                    tag: None,
                },
                tag,
            ));
        }
    }
    // A raw log is in arrival order.
    events.sort_by_key(|(e, _)| (e.arrival_us, e.ts_us, e.sensor));
    let mut log = RawLogWriter::create(&dir.join("events.parquet"), None)?;
    for (event, tag) in &events {
        log.push(&RawEvent {
            tag: Some(tag),
            ..*event
        })?;
    }
    let written = log.finish()?;
    // Beside the log, so replay finds the catalog and keys without being told.
    catalog.write_dir(dir)?;
    write_keys(&dir.join(KEYS_FILE), &keys)?;
    Ok(written)
}

/// The pipeline: 5 s windows, two channel fills, the default fusion, and a
/// detector of our own.
fn pipeline() -> Pipeline {
    Pipeline::new("pump-station", "1.0")
        .window_size(WINDOW)
        // A silent speed sensor is bridged linearly. The span is between the
        // windows either side of the gap: a 40 s gap needs at least 45 s.
        .fill_channel(
            "speed",
            Fill::Linear {
                max_span: 60 * SECOND,
            },
        )
        // Motor temperature moves slowly: a value stays good for 30 s.
        .fill_channel(
            "motor-temp",
            Fill::CarryForward {
                max_age: 30 * SECOND,
            },
        )
        // Fusion stays the default, inverse-variance, over the sensors
        // declared redundant: the two inlet pressures, not the outlet's.
        .redundant("inlet_pressure", ["inlet-pressure-1", "inlet-pressure-2"])
        .detect("drop", |catalog, sensor| {
            // Flag a window whose mean falls more than 30 % below the sensor's
            // previous window, and by more than 5 σ of the sensor so noise never counts.
            // Score: the relative drop.
            let floor = 5.0 * catalog.sensor(sensor).sigma;
            let mut previous: Option<f64> = None;
            move |_start: Micros, mean: f64| {
                let drop = previous.map(|p| (p - mean, p));
                previous = Some(mean);
                drop.filter(|&(d, p)| d > 0.3 * p && d > floor)
                    .map(|(d, p)| d / p)
            }
        })
}

/// A row of `OUT/flags/`; `drop` is our detector's score.
struct FlagRow {
    asset: String,
    sensor: String,
    start: Micros,
    mean: f64,
    drop: f64,
    detector: String,
}

/// A row of `OUT/twins/assets/`, the columns we show.
struct TwinRow {
    asset: String,
    line: String,
    health: String,
    flags: u64,
    pressure: Option<f64>,
}

/// The rows of a dataset (a directory of `part-*.parquet` files), each made
/// by `row(batch, i)`.
fn read_rows<T>(dir: &Path, row: impl Fn(&RecordBatch, usize) -> T) -> Result<Vec<T>> {
    let batches = read_dataset(dir)?;
    Ok(batches
        .iter()
        .flat_map(|batch| (0..batch.num_rows()).map(|i| row(batch, i)))
        .collect())
}

/// One cell of a column; a missing column is a bug in this example, so it panics.
fn cell<'a>(batch: &'a RecordBatch, name: &str) -> &'a dyn Array {
    let column = batch.column_by_name(name);
    column
        .unwrap_or_else(|| panic!("no column {name:?}"))
        .as_ref()
}
fn text(batch: &RecordBatch, name: &str, i: usize) -> String {
    cell(batch, name).as_string::<i32>().value(i).to_owned()
}
fn int(batch: &RecordBatch, name: &str, i: usize) -> i64 {
    cell(batch, name).as_primitive::<Int64Type>().value(i)
}
fn float(batch: &RecordBatch, name: &str, i: usize) -> Option<f64> {
    let column = cell(batch, name).as_primitive::<Float64Type>();
    column.is_valid(i).then(|| column.value(i))
}

/// Seconds of plant time, for printing.
fn secs(t: Micros) -> f64 {
    (t - T0) as f64 / SECOND as f64
}

fn main() -> Result<()> {
    let started = Instant::now();
    let dir = std::env::args().nth(1).map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pump_station"),
        PathBuf::from,
    );
    let failures = run(&dir)?;
    println!("\ntook {:.2} s in all", started.elapsed().as_secs_f64());
    if !failures.is_empty() {
        eprintln!("\npump_station FAILED:");
        for failure in &failures {
            eprintln!("  - {failure}");
        }
        std::process::exit(1);
    }
    println!("all checks passed");
    Ok(())
}

/// `cargo test` runs the example too (`test = true` in Cargo.toml).
#[test]
fn the_station_checks_pass() {
    let dir = tempfile::tempdir().unwrap();
    let failures = run(dir.path()).unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Writes the station into `dir`, replays it, prints what it found, and
/// returns the checks that failed.
fn run(dir: &Path) -> Result<Vec<String>> {
    let out = dir.join("out");
    std::fs::create_dir_all(dir)?;

    let catalog = station()?;
    let rows = write_plant(dir, &catalog)?;
    println!("wrote {rows} events of 6 pumps into {}", dir.display());

    let options = ReplayOptions::new(dir.join("events.parquet"), &out);
    let summary = pipeline().replay(&options)?.expect("one process leads");
    println!(
        "{} in {:.2} s: {} events ({} late, {} quarantined, {} lost on the radio)",
        summary.pipeline,
        summary.elapsed_s,
        summary.events_in,
        summary.late_events,
        summary.quarantined,
        summary.missing_seq,
    );
    println!(
        "  -> {} windows, {} aligned rows, {} flags, {} assets in view",
        summary.windows, summary.aligned_rows, summary.flags, summary.assets_in_view
    );

    let mut flags = read_rows(&out.join("flags"), |b, i| FlagRow {
        asset: text(b, "asset", i),
        sensor: text(b, "sensor", i),
        start: int(b, "window_start_us", i),
        mean: float(b, "value", i).unwrap_or(f64::NAN),
        drop: float(b, "score", i).unwrap_or(f64::NAN),
        detector: text(b, "detector", i),
    })?;
    // Our detector's flags (fusion may name suspect sensors beside them).
    flags.retain(|f| f.detector == "drop");
    flags.sort_by(|a, b| (a.start, &a.sensor).cmp(&(b.start, &b.sensor)));
    println!("\nflags:");
    for f in &flags {
        println!(
            "  {:<26} window +{:>5.1} s  mean {:>8.2}  drop {:>3.0} %",
            f.sensor,
            secs(f.start),
            f.mean,
            100.0 * f.drop
        );
    }

    // The final twin view, one row per pump.
    let mut twins = read_rows(&out.join("twins/assets"), |b, i| TwinRow {
        asset: text(b, "asset", i),
        line: text(b, "line", i),
        health: text(b, "health", i),
        flags: cell(b, "flags").as_primitive::<UInt64Type>().value(i),
        pressure: float(b, "fused_inlet_pressure", i),
    })?;
    twins.sort_by(|a, b| a.asset.cmp(&b.asset));
    println!("\n  asset     line   health    flags  fused inlet pressure");
    for t in &twins {
        let pressure = t.pressure.map_or("-".into(), |p| format!("{p:.3} bar"));
        println!(
            "  {:<9} {:<6} {:<9} {:>5}  {pressure:>12}",
            t.asset, t.line, t.health, t.flags
        );
    }

    // How alignment filled the gaps, per window: (asset, start, speed source, motor-temp source).
    let aligned = read_rows(&out.join("aligned"), |b, i| {
        let start = int(b, "window_start_us", i) - T0;
        let sources = (text(b, "speed_source", i), text(b, "motor-temp_source", i));
        (text(b, "asset", i), start, sources)
    })?;
    let in_dropout =
        |asset: &str, start| asset == DROPOUT.0 && (DROPOUT.1..DROPOUT.2).contains(start);
    let dropout: Vec<&str> = aligned
        .iter()
        .filter(|(asset, start, _)| in_dropout(asset, start))
        .map(|(_, _, (speed, _))| speed.as_str())
        .collect();
    let interpolated = dropout.iter().filter(|s| **s == "interpolated").count();
    let carried = aligned.iter().filter(|(.., (_, t))| t == "carried").count();
    println!(
        "\n{}'s speed, silent +{}..+{} s: {interpolated} of {} windows interpolated",
        DROPOUT.0,
        DROPOUT.1 / SECOND,
        DROPOUT.2 / SECOND,
        dropout.len()
    );
    println!("motor-temp carried forward over a lost reading in {carried} windows");

    // The checks that make this example a test.
    let mut failures = Vec::new();
    let during_incident =
        |start: Micros| start + WINDOW > T0 + CAVITATION.1 && start < T0 + CAVITATION.2;
    let caught = flags.iter().any(|f| {
        let channel = f.sensor.rsplit('/').next().unwrap_or_default();
        f.asset == CAVITATION.0
            && (channel == "flow" || channel.starts_with("inlet-pressure"))
            && during_incident(f.start)
    });
    if !caught {
        failures.push(format!(
            "the cavitation of {} was not flagged on flow or inlet pressure",
            CAVITATION.0
        ));
    }
    for f in &flags {
        if f.asset != CAVITATION.0 || !during_incident(f.start) {
            failures.push(format!("false alarm: {} at +{} s", f.sensor, secs(f.start)));
        }
    }
    let expected = ((DROPOUT.2 - DROPOUT.1) / WINDOW) as usize;
    if dropout.len() != expected || interpolated != expected {
        failures.push(format!(
            "{}'s speed dropout: expected {expected} interpolated windows, got {dropout:?}",
            DROPOUT.0
        ));
    }
    for pump in catalog.assets() {
        if !twins.iter().any(|t| t.asset == pump.asset) {
            failures.push(format!("{} is missing from the twin view", pump.asset));
        }
    }

    Ok(failures)
}
