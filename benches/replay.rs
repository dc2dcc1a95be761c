//! Replay throughput and memory of TwinBench's reference pipeline
//! (`cargo bench --bench replay`).
//!
//! Generates a ≥10M-event TwinBench log once (cached under `target/`), then
//! measures, in one run so the figures compare as ratios:
//! - the floor: decoding the log's `ts_us`, `sensor` and `value` columns on one core;
//! - a hand-written single-threaded loop computing step W alone;
//! - verification's stateless checks (tag, clock, range: one HMAC-SHA256 per
//!   event) alone, on one core;
//! - `twinflow replay` end to end (Parquet in, Parquet out) with 1 and 2
//!   workers, for step W alone and for the whole pipeline W → A → F → D → V,
//!   each without verification (`--no-verify`) and with it (the default),
//!   with the CPU time all threads took per event;
//! - two single-worker replays at the same time: what the machine gives each
//!   core when both are busy, beside which two workers' rate per core reads;
//! - peak memory of the same replay over logs 10× shorter and 2× longer, to
//!   show it is flat in log length.
//!
//! Every throughput figure is the fastest of three runs (see [`TRIES`]).
//!
//! Set `TWINBENCH_SECONDS` to change the log length (default 460 s: 10.2M events).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use arrow::array::AsArray;
use twinflow::engine::auth::{KEYS_FILE, read_keys};
use twinflow::engine::catalog::Catalog;
use twinflow::engine::log_source::{Fields, LogSource, SplitOptions};
use twinflow::engine::run_checks::{CheckedBatch, Stateless};
use twinflow::engine::verify::{Untagged, Verification};
use twinflow::pipelines::pipeline::twinbench;

const ASSETS: usize = 200;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this too,
    // and then a tiny log checks that the benchmark works without timing it.
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let default_seconds = if benchmarking { 460 } else { 10 };
    let seconds: u64 = std::env::var("TWINBENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_seconds);
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(if benchmarking {
        "twinbench-bench"
    } else {
        "twinbench-smoke"
    });
    let long = ensure_log(&root, seconds);
    let short = ensure_log(&root, (seconds / 10).max(1));
    let longer = benchmarking.then(|| ensure_log(&root, seconds * 2));

    // The first pass warms the page cache, so every figure below reads from memory.
    decode_floor(&long);
    let rows = decode_floor(&long).0;
    // The smoke run (no `--bench`) checks that each measurement works, once.
    let tries = if benchmarking { TRIES } else { 1 };
    let fastest = |f: &dyn Fn() -> f64| best_of(tries, f, |rate| *rate);
    let floor = fastest(&|| decode_floor(&long).1);
    println!(
        "log: {} events ({ASSETS} assets × {seconds} s), {}",
        rows,
        long.display()
    );
    println!(
        "{:<48} {:>14} {:>14} {:>12} {:>10} {:>12}",
        "measurement", "events/s", "per core", "peak MB", "vs floor", "CPU ns/ev"
    );
    println!(
        "{:<48} {:>14.0} {:>14.0} {:>12} {:>10} {:>12}",
        "decode floor (1 core)", floor, floor, "-", "1.00", "-"
    );
    let hand = fastest(&|| hand_written_w(&long));
    println!(
        "{:<48} {:>14.0} {:>14.0} {:>12} {:>10.2} {:>12}",
        "hand-written W loop (1 core)",
        hand,
        hand,
        "-",
        hand / floor,
        "-"
    );
    let checks = fastest(&|| stateless_checks(&long));
    println!(
        "{:<48} {:>14.0} {:>14.0} {:>12} {:>10.2} {:>12}",
        "verification: tag+clock+range (1 core)",
        checks,
        checks,
        "-",
        checks / floor,
        "-"
    );
    // (steps, windows only, verified)
    const MODES: [(&str, bool, bool); 4] = [
        ("W", true, false),
        ("W→A→F→D→V", false, false),
        ("verified W", true, true),
        ("verified W→A→F→D→V", false, true),
    ];
    // Peak memory of each mode's 1-worker run over the 10M-event log.
    let mut peak_long = [0.0; MODES.len()];
    // (label, workers per replay, replays at once). Two single-worker
    // replays side by side share nothing but the machine: their rate per
    // replay is what this machine gives a core when both are busy, the
    // yardstick for two workers' rate per core.
    let setups = [
        ("1 worker", 1usize, 1usize),
        ("2 workers", 2, 1),
        ("2 × 1 worker at once", 1, 2),
    ];
    for (mode, (steps, windows_only, verified)) in MODES.into_iter().enumerate() {
        for (label, workers, copies) in setups {
            let events_per_s = |runs: &[serde_json::Value]| -> f64 {
                runs.iter().map(|s| field(s, "events_per_s")).sum()
            };
            let runs = best_of(
                tries,
                || replays_at_once(copies, &long, &root, workers, windows_only, verified),
                |runs| events_per_s(runs),
            );
            let eps = events_per_s(&runs);
            let peak = runs
                .iter()
                .map(|s| field(s, "peak_rss_mb"))
                .fold(f64::NAN, f64::max);
            if (workers, copies) == (1, 1) {
                peak_long[mode] = peak;
            }
            // CPU of all threads per event: what more workers cost beyond
            // the work itself (waiting, exchange, progress) shows here.
            let cpu_ns = runs.iter().map(|s| field(s, "cpu_s")).sum::<f64>() * 1e9
                / runs.iter().map(|s| field(s, "events_in")).sum::<f64>();
            let cores = (workers * copies) as f64;
            println!(
                "{:<48} {:>14.0} {:>14.0} {:>12.1} {:>10.2} {:>12.0}",
                format!("replay {steps}, {label}"),
                eps,
                eps / cores,
                peak,
                eps / cores / floor,
                cpu_ns
            );
        }
    }
    // Memory is flat in log length: peak RSS over a log 10× shorter and
    // (when benchmarking) 2× longer, on 1 worker.
    for (mode, (steps, windows_only, verified)) in MODES.into_iter().enumerate() {
        let s = replay(&short, &root.join("out-short"), 1, windows_only, verified);
        let peak_short = s["peak_rss_mb"].as_f64().unwrap_or(f64::NAN);
        print!(
            "memory, replay {steps}: {:.1} MB at {} events, {:.1} MB at {rows} ({:+.1}% for 10×)",
            peak_short,
            s["events_in"],
            peak_long[mode],
            (peak_long[mode] / peak_short - 1.0) * 100.0
        );
        if let Some(longer) = &longer {
            let s = replay(longer, &root.join("out-longer"), 1, windows_only, verified);
            let peak = s["peak_rss_mb"].as_f64().unwrap_or(f64::NAN);
            print!(
                ", {:.1} MB at {} ({:+.1}% for 2×)",
                peak,
                s["events_in"],
                (peak / peak_long[mode] - 1.0) * 100.0
            );
        }
        println!();
    }
}

/// Generates (once) a TwinBench log of `seconds`, returning its directory.
fn ensure_log(root: &Path, seconds: u64) -> PathBuf {
    // The name changes when the generator's output does (here: LZ4 pages of
    // at most 16k rows, tags stored uncompressed).
    let dir = root.join(format!("log-lz4p16k-rawtags-{ASSETS}x{seconds}"));
    if !dir.join("events.parquet").exists() {
        eprintln!("generating {}", dir.display());
        let status = Command::new(env!("CARGO_BIN_EXE_twinflow"))
            .args([
                "generate",
                "--assets",
                &ASSETS.to_string(),
                "--seconds",
                &seconds.to_string(),
            ])
            .args(["--seed", "7", "--out", dir.to_str().unwrap()])
            .status()
            .expect("run twinflow generate");
        assert!(status.success(), "generate failed");
    }
    dir
}

/// Decodes the columns W needs, on this thread; returns (rows, rows per second).
fn decode_floor(log: &Path) -> (u64, f64) {
    let source = LogSource::open(log, SplitOptions::default()).expect("open log");
    let started = Instant::now();
    let mut rows = 0u64;
    let mut checksum = 0i64;
    for run in source.runs() {
        let mut reader = source.read_run(run, Fields::Windowing).expect("read run");
        while let Some(batch) = reader.next_batch().expect("decode") {
            rows += batch.ts.len() as u64;
            checksum = checksum.wrapping_add(batch.ts.values()[0]);
        }
    }
    std::hint::black_box(checksum);
    (rows, rows as f64 / started.elapsed().as_secs_f64())
}

/// A plain single-threaded loop computing W's aggregates straight from the
/// decoded columns (lateness, per-sensor windows in a hash map, no output):
/// what a careful hand-written program costs, for scale.
fn hand_written_w(log: &Path) -> f64 {
    use std::collections::HashMap;
    let source = LogSource::open(log, SplitOptions::default()).expect("open log");
    let started = Instant::now();
    let (mut rows, mut late) = (0u64, 0u64);
    let mut max_ts = i64::MIN;
    // (dictionary entry, window) -> (count, sum, min, max, last ts, last)
    type Acc = (u64, f64, f64, f64, i64, f64);
    let mut windows: HashMap<(i32, i64), Acc> = HashMap::new();
    let mut closed = 0u64;
    for run in source.runs() {
        let mut reader = source.read_run(run, Fields::Windowing).expect("read run");
        while let Some(batch) = reader.next_batch().expect("decode") {
            let (ts, keys, values) = (
                batch.ts.values(),
                batch.sensor.keys().values(),
                batch.value.values(),
            );
            let times = batch.watermark_times();
            for i in 0..ts.len() {
                rows += 1;
                if ts[i] < max_ts.saturating_sub(2_000_000) {
                    late += 1;
                } else {
                    let w = windows
                        .entry((keys[i], ts[i].div_euclid(1_000_000)))
                        .or_insert((0, 0.0, f64::MAX, f64::MIN, i64::MIN, 0.0));
                    w.0 += 1;
                    w.1 += values[i];
                    w.2 = w.2.min(values[i]);
                    w.3 = w.3.max(values[i]);
                    if ts[i] >= w.4 {
                        w.4 = ts[i];
                        w.5 = values[i];
                    }
                }
                max_ts = max_ts.max(times.at(i, ts[i]));
            }
            // Free closed windows, as a streaming loop must to stay bounded.
            let horizon = max_ts.saturating_sub(2_000_000).div_euclid(1_000_000);
            let before = windows.len();
            windows.retain(|(_, w), _| *w >= horizon);
            closed += (before - windows.len()) as u64;
        }
    }
    std::hint::black_box((late, closed));
    rows as f64 / started.elapsed().as_secs_f64()
}

/// Verification's stateless checks (tag, clock, range) over every row of the
/// log as the readers run them, reading the columns they need, on this
/// thread; returns events per second.
fn stateless_checks(log: &Path) -> f64 {
    let source = LogSource::open(&log.join("events.parquet"), SplitOptions::default()).unwrap();
    let catalog = Catalog::read_dir(log).unwrap();
    let keys = read_keys(&log.join(KEYS_FILE)).unwrap();
    let pipeline = twinbench();
    let verification =
        Verification::new(&catalog, &keys, |s| pipeline.rate_of(s), Untagged::Reject).unwrap();
    let started = Instant::now();
    let mut passed = 0u64;
    for run in source.runs() {
        let mut reader = source.read_run(run, Fields::Checked).unwrap();
        while let Some(batch) = reader.next_batch().unwrap() {
            let names = batch.sensor.values().as_string::<i32>();
            let ids: Vec<_> = names
                .iter()
                .map(|n| n.and_then(|n| catalog.sensor_id(n)))
                .collect();
            let checked = CheckedBatch::new(&batch);
            for i in 0..batch.ts.len() {
                if let Stateless::Pass { .. } = checked.verdict(i, &ids, &verification) {
                    passed += 1;
                }
            }
        }
    }
    let rate = source.rows() as f64 / started.elapsed().as_secs_f64();
    assert!(
        passed > source.rows() * 99 / 100,
        "a TwinBench log is mostly genuine"
    );
    rate
}

/// Replays per throughput figure; the fastest counts. On a shared machine
/// other work only ever slows a run down, so the fastest of a few is the
/// figure that repeats best.
const TRIES: usize = 3;

/// The outcome of the fastest of `tries` runs, by the `rate` each reports.
fn best_of<T>(tries: usize, mut run: impl FnMut() -> T, rate: impl Fn(&T) -> f64) -> T {
    (0..tries.max(1))
        .map(|_| run())
        .max_by(|a, b| rate(a).total_cmp(&rate(b)))
        .expect("at least one try")
}

/// A number from a replay's summary (NaN when missing).
fn field(summary: &serde_json::Value, name: &str) -> f64 {
    summary[name].as_f64().unwrap_or(f64::NAN)
}

/// Runs `copies` replays of `log` at the same time, each in its own process
/// with `workers` workers and its own output directory under `root`.
fn replays_at_once(
    copies: usize,
    log: &Path,
    root: &Path,
    workers: usize,
    windows_only: bool,
    verified: bool,
) -> Vec<serde_json::Value> {
    std::thread::scope(|scope| {
        let replays: Vec<_> = (0..copies)
            .map(|copy| {
                let out = root.join(format!("out-w{workers}-{copy}"));
                scope.spawn(move || replay(log, &out, workers, windows_only, verified))
            })
            .collect();
        replays
            .into_iter()
            .map(|r| r.join().expect("replay thread"))
            .collect()
    })
}

/// Runs `twinflow replay` in its own process (so its peak memory is its own).
fn replay(
    log: &Path,
    out: &Path,
    workers: usize,
    windows_only: bool,
    verified: bool,
) -> serde_json::Value {
    let _ = std::fs::remove_dir_all(out);
    let output = Command::new(env!("CARGO_BIN_EXE_twinflow"))
        .args([
            "replay",
            log.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--workers",
            &workers.to_string(),
        ])
        .args(windows_only.then_some("--windows-only"))
        .args((!verified).then_some("--no-verify"))
        .output()
        .expect("run twinflow replay");
    assert!(
        output.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    serde_json::from_str(&stdout[stdout.find('{').unwrap()..]).expect("summary json")
}
