//! The raw-log Parquet reader on damaged files: `LogSource::open` (footer,
//! schema, page index, run planning) and reading every run as `replay` does
//! (the hot columns batch by batch, then whole rows re-read by offset), and
//! each run's greatest verified event time (`run_maxima::watermark_max`: the
//! stateless checks of every row it reads, under a catalog discovered from
//! the log and a key per sensor).
//! Any bytes must open and read, or fail with an error: never panic, never
//! allocate without bound. The input goes through a temporary file (one per
//! process); the seed corpus holds a small real `events.parquet`.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use arrow::array::{Array, AsArray};
use libfuzzer_sys::fuzz_target;
use twinflow_engine::auth::SensorKey;
use twinflow_engine::catalog::Catalog;
use twinflow_engine::log_source::{Fields, LogSource, SplitOptions};
use twinflow_engine::run_maxima::watermark_max;
use twinflow_engine::verify::{Untagged, Verification};

static PATH: LazyLock<PathBuf> = LazyLock::new(|| {
    std::env::temp_dir().join(format!("twinflow-fuzz-log-{}.parquet", std::process::id()))
});

/// The log reader turns a panic inside the Parquet reader into an error
/// (`log_source::Guarded`), so those must unwind, not abort at once as
/// libFuzzer's hook makes every panic do: this hook only prints the
/// message. A panic that escapes the log reader still aborts the target
/// (libfuzzer-sys catches it at the top and aborts), so it is still found.
static HOOK: LazyLock<()> = LazyLock::new(|| {
    std::panic::set_hook(Box::new(|info| eprintln!("panic (caught?): {info}")));
});

fuzz_target!(|data: &[u8]| {
    LazyLock::force(&HOOK);
    std::fs::write(&*PATH, data).expect("write the input");
    // Runs cut at page boundaries (or whole row groups), then runs of a few rows.
    for split in [
        SplitOptions::default(),
        SplitOptions {
            max_run_rows: Some(5),
        },
    ] {
        let Ok(log) = LogSource::open(&PATH, split) else {
            return;
        };
        read_all(&log);
        if let Ok(sensors) = log.distinct_sensors() {
            verify_all(&log, &sensors);
        }
    }
});

/// Finds each run's greatest verified event time as `replay` does before
/// reading, with every sensor of the log keyed (so tags are checked, and
/// the clock and range checks reached) and untagged rows let through.
fn verify_all(log: &LogSource, sensors: &[(String, String, String)]) {
    let Ok(catalog) = Catalog::discovered(sensors) else {
        return;
    };
    let keys: Vec<SensorKey> = sensors
        .iter()
        .map(|(sensor, _, _)| SensorKey {
            sensor: sensor.clone(),
            key_id: "k0".into(),
            key: "07".repeat(32),
        })
        .collect();
    let Ok(verification) = Verification::new(&catalog, &keys, |_| Some(10.0), Untagged::Accept)
    else {
        return;
    };
    for run in log.runs() {
        let _ = watermark_max(log, run, &catalog, None);
        let _ = watermark_max(log, run, &catalog, Some(&verification));
    }
}

/// Reads every run as the log reader of `replay` does (all columns, as
/// verification reads them), checking what it relies on: columns of equal
/// length, sensor keys inside their dictionary, no more rows than planned.
fn read_all(log: &LogSource) {
    for run in log.runs() {
        let Ok(mut reader) = log.read_run(run, Fields::Checked) else {
            continue;
        };
        let mut rows = 0usize;
        while let Ok(Some(batch)) = reader.next_batch() {
            let n = batch.ts.len();
            assert_eq!(batch.sensor.len(), n);
            assert_eq!(batch.value.len(), n);
            assert!(batch.arrival.as_ref().is_none_or(|c| c.len() == n));
            assert!(batch.seq.as_ref().is_none_or(|c| c.len() == n));
            assert!(batch.quality.as_ref().is_none_or(|c| c.len() == n));
            assert!(batch.tag.as_ref().is_none_or(|c| c.len() == n));
            let names = batch.sensor.values().as_string::<i32>();
            let keys = batch.sensor.keys();
            for i in 0..n {
                if keys.is_valid(i) {
                    assert!(
                        (keys.value(i) as usize) < names.len(),
                        "key outside dictionary"
                    );
                }
            }
            rows += n;
        }
        assert!(rows <= run.rows(), "more rows than the run holds");
        // The rows holding the run's greatest event time (from the page index).
        if let Ok(at_max) = log.rows_at_max(run) {
            assert!(at_max.iter().all(|&o| o < run.rows()));
        }
        // Set-aside rows are re-read whole by their offsets in the run.
        let offsets: Vec<usize> = (0..rows).step_by(rows / 8 + 1).collect();
        if let Ok(back) = log.read_rows(run, &offsets) {
            assert!(back.len() <= offsets.len());
        }
    }
}
