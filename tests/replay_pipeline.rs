//! TwinBench A (align), F (fuse), D (detect) and V (twin view) through
//! `replay` equal an independent batch computation (`common::reference`), for
//! one and several workers and for two processes on loopback; the same split
//! gives bit-identical datasets whatever the worker count.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type, UInt32Type, UInt64Type};
use arrow::record_batch::RecordBatch;
use common::reference::{self, Cell, Flag, Fused, Reference, Source, Tables};
use common::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use twinflow::engine::runtime::Cluster;
use twinflow::pipelines::replay::ReplayOptions;
use twinflow::pipelines::twinbench::{GenerateOptions, IncidentRates, generate_with_rates};

const LATENESS_US: i64 = 2_000_000;
/// Relative tolerance of every floating-point comparison with the reference
/// (absolute below magnitude 1).
const TOLERANCE: f64 = 1e-9;

// ---------------------------------------------------------------------------
// A generated plant and its reference

/// Generates a 16-asset, 75-second TwinBench log (incident rates raised so a
/// small plant has dropouts, faults and flags) and computes its reference.
fn plant(dir: &Path, seed: u64) -> (PathBuf, Reference) {
    let log = dir.join("log");
    let options = GenerateOptions {
        assets: 16,
        seconds: 75,
        seed,
        out: log.clone(),
        csv: false,
        progress: false,
    };
    generate_with_rates(&options, &IncidentRates::twinbench().scaled(20.0)).unwrap();
    let rows = read_log_rows(&log.join("events.parquet"));
    // The spec's checksums cover the verified events: verify first, the plain way.
    let checked = verification::verify(&rows, &verification::Rules::read_dir(&log));
    let fates = verification::verified_fates(&checked);
    let mut reference = reference::compute(&rows, &fates, &Tables::read_dir(&log), LATENESS_US);
    reference.quarantined_by_reason = verification::count_reasons(&checked);
    assert!(
        ["replayed", "flooding", "bad_tag"]
            .iter()
            .all(|r| reference.quarantined_by_reason.contains_key(*r)),
        "the log must exercise verification: {:?}",
        reference.quarantined_by_reason
    );
    assert_exercises_every_case(&reference);
    (log, reference)
}

/// The generated log must reach every case of A, F and D, or the comparison
/// proves little.
fn assert_exercises_every_case(r: &Reference) {
    let cells = || r.aligned.values().flatten();
    for source in [Source::Measured, Source::Carried, Source::Missing] {
        assert!(
            cells().any(|c| c.source == source),
            "no {source:?} cell in the reference"
        );
    }
    let full = |q: &str| if q == "temperature" { 3 } else { 2 };
    assert!(
        r.fused.iter().any(|((_, _, q), f)| f.sensors < full(q)),
        "no fused value from a subset of the sensors"
    );
    assert!(
        r.checksums.flags >= 3,
        "too few flags ({})",
        r.checksums.flags
    );
    assert!(r.checksums.sum_fused_temperature > 0.0);
}

// ---------------------------------------------------------------------------
// Reading the outputs

fn column<'a>(batch: &'a RecordBatch, name: &str) -> &'a ArrayRef {
    let index = batch
        .schema()
        .index_of(name)
        .unwrap_or_else(|_| panic!("no column {name}"));
    batch.column(index)
}

fn text(batch: &RecordBatch, name: &str, i: usize) -> String {
    let array = column(batch, name);
    assert!(!array.is_null(i), "{name} is null");
    array.as_string::<i32>().value(i).to_owned()
}

fn int64(batch: &RecordBatch, name: &str, i: usize) -> i64 {
    let array = column(batch, name);
    assert!(!array.is_null(i), "{name} is null");
    array.as_primitive::<Int64Type>().value(i)
}

fn float(batch: &RecordBatch, name: &str, i: usize) -> Option<f64> {
    let array = column(batch, name);
    (!array.is_null(i)).then(|| array.as_primitive::<Float64Type>().value(i))
}

/// The schema of a dataset's first part file, as (name, type) pairs.
fn dataset_columns(dir: &Path) -> Vec<(String, DataType)> {
    let mut parts: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    parts.sort();
    let first = parts
        .first()
        .unwrap_or_else(|| panic!("{} has no part files", dir.display()));
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(first).unwrap()).unwrap();
    builder
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect()
}

fn assert_columns(dir: &Path, expected: &[(String, DataType)]) {
    assert_eq!(
        dataset_columns(dir),
        expected,
        "columns of {}",
        dir.display()
    );
}

fn named(columns: &[(&str, DataType)]) -> Vec<(String, DataType)> {
    columns
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect()
}

/// An aligned row as written: window end and one (value, source) per channel.
#[derive(Debug)]
struct AlignedOut {
    end: i64,
    cells: Vec<(Option<f64>, String)>,
}

fn read_aligned(out: &Path, channels: &[String]) -> BTreeMap<(String, i64), AlignedOut> {
    let dir = out.join("aligned");
    let mut columns = named(&[
        ("asset", DataType::Utf8),
        ("window_start_us", DataType::Int64),
        ("window_end_us", DataType::Int64),
    ]);
    for c in channels {
        columns.push((c.clone(), DataType::Float64));
        columns.push((format!("{c}_source"), DataType::Utf8));
    }
    assert_columns(&dir, &columns);
    let mut rows = BTreeMap::new();
    for batch in read_dataset(&dir) {
        for i in 0..batch.num_rows() {
            let key = (
                text(&batch, "asset", i),
                int64(&batch, "window_start_us", i),
            );
            let row = AlignedOut {
                end: int64(&batch, "window_end_us", i),
                cells: channels
                    .iter()
                    .map(|c| (float(&batch, c, i), text(&batch, &format!("{c}_source"), i)))
                    .collect(),
            };
            assert!(rows.insert(key.clone(), row).is_none(), "{key:?} twice");
        }
    }
    rows
}

fn read_fused(out: &Path) -> BTreeMap<(String, i64, String), Fused> {
    let dir = out.join("fused");
    assert_columns(
        &dir,
        &named(&[
            ("asset", DataType::Utf8),
            ("window_start_us", DataType::Int64),
            ("quantity", DataType::Utf8),
            ("value", DataType::Float64),
            ("variance", DataType::Float64),
            ("lo95", DataType::Float64),
            ("hi95", DataType::Float64),
            ("sensors", DataType::UInt32),
        ]),
    );
    let mut rows = BTreeMap::new();
    for batch in read_dataset(&dir) {
        let sensors = column(&batch, "sensors").as_primitive::<UInt32Type>();
        for i in 0..batch.num_rows() {
            let key = (
                text(&batch, "asset", i),
                int64(&batch, "window_start_us", i),
                text(&batch, "quantity", i),
            );
            let row = Fused {
                value: float(&batch, "value", i).expect("fused value"),
                variance: float(&batch, "variance", i).expect("fused variance"),
                sensors: sensors.value(i),
            };
            assert!(rows.insert(key.clone(), row).is_none(), "{key:?} twice");
        }
    }
    rows
}

/// Flags keyed by (sensor, window start).
fn read_flags(out: &Path) -> BTreeMap<(String, i64), Flag> {
    let dir = out.join("flags");
    assert_columns(
        &dir,
        &named(&[
            ("asset", DataType::Utf8),
            ("sensor", DataType::Utf8),
            ("window_start_us", DataType::Int64),
            ("detector", DataType::Utf8),
            ("reason", DataType::Utf8),
            ("value", DataType::Float64),
            ("score", DataType::Float64),
            ("evidence", DataType::Utf8),
        ]),
    );
    let mut rows = BTreeMap::new();
    for batch in read_dataset(&dir) {
        for i in 0..batch.num_rows() {
            // Step D's flags; fusion's sensor suspects are checked elsewhere.
            if text(&batch, "detector", i) != "ewma_z" {
                continue;
            }
            let key = (
                text(&batch, "sensor", i),
                int64(&batch, "window_start_us", i),
            );
            let row = Flag {
                asset: text(&batch, "asset", i),
                value: float(&batch, "value", i).expect("flag value"),
                z: float(&batch, "score", i).expect("flag score"),
            };
            assert!(rows.insert(key.clone(), row).is_none(), "{key:?} twice");
        }
    }
    rows
}

/// A row of `twins/assets/`.
#[derive(Debug)]
struct ViewOut {
    line: String,
    site: String,
    window_start_us: i64,
    flags: u64,
    cells: Vec<(Option<f64>, String)>,
    /// Quantity → (value, variance).
    fused: BTreeMap<String, (Option<f64>, Option<f64>)>,
}

fn read_views(out: &Path, channels: &[String], quantities: &[String]) -> BTreeMap<String, ViewOut> {
    let dir = out.join("twins").join("assets");
    let mut columns = named(&[
        ("asset", DataType::Utf8),
        ("line", DataType::Utf8),
        ("site", DataType::Utf8),
        ("window_start_us", DataType::Int64),
        ("flags", DataType::UInt64),
        ("health", DataType::Utf8),
    ]);
    for c in channels {
        columns.push((c.clone(), DataType::Float64));
        columns.push((format!("{c}_source"), DataType::Utf8));
    }
    for q in quantities {
        columns.push((format!("fused_{q}"), DataType::Float64));
        columns.push((format!("fused_{q}_variance"), DataType::Float64));
    }
    // How far fusion believes each redundant sensor (TwinBench: the
    // temperatures and pressures).
    for c in channels
        .iter()
        .filter(|c| c.starts_with("temp") || c.starts_with("press"))
    {
        columns.push((format!("{c}_trust"), DataType::Float64));
        columns.push((format!("{c}_weight"), DataType::Float64));
        columns.push((format!("{c}_state"), DataType::Utf8));
    }
    // The estimate of each channel not measured in the latest window.
    for c in channels {
        columns.push((format!("{c}_imputed"), DataType::Float64));
        columns.push((format!("{c}_imputed_sigma"), DataType::Float64));
        columns.push((format!("{c}_imputed_by"), DataType::Utf8));
    }
    // When each channel's sensor was last seen, and how long before the view's window.
    for c in channels {
        columns.push((format!("{c}_last_seen_us"), DataType::Int64));
        columns.push((format!("{c}_staleness_us"), DataType::Int64));
    }
    assert_columns(&dir, &columns);
    let mut rows = BTreeMap::new();
    for batch in read_dataset(&dir) {
        let flags = column(&batch, "flags").as_primitive::<UInt64Type>();
        for i in 0..batch.num_rows() {
            let asset = text(&batch, "asset", i);
            let _health = text(&batch, "health", i);
            let row = ViewOut {
                line: text(&batch, "line", i),
                site: text(&batch, "site", i),
                window_start_us: int64(&batch, "window_start_us", i),
                flags: flags.value(i),
                cells: channels
                    .iter()
                    .map(|c| (float(&batch, c, i), text(&batch, &format!("{c}_source"), i)))
                    .collect(),
                fused: quantities
                    .iter()
                    .map(|q| {
                        let value = float(&batch, &format!("fused_{q}"), i);
                        let variance = float(&batch, &format!("fused_{q}_variance"), i);
                        (q.clone(), (value, variance))
                    })
                    .collect(),
            };
            assert!(rows.insert(asset.clone(), row).is_none(), "{asset} twice");
        }
    }
    rows
}

fn read_summary(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------
// Comparing with the reference

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= TOLERANCE * expected.abs().max(1.0)
}

/// Collects differences, then fails once listing the first few.
#[derive(Default)]
struct Differences(Vec<String>);

impl Differences {
    fn note(&mut self, difference: String) {
        self.0.push(difference);
    }

    /// Notes keys present on one side only.
    fn keys<K: Ord + std::fmt::Debug, A, B>(
        &mut self,
        what: &str,
        actual: &BTreeMap<K, A>,
        expected: &BTreeMap<K, B>,
    ) {
        for key in actual.keys().filter(|k| !expected.contains_key(k)) {
            self.note(format!("{what}: unexpected row {key:?}"));
        }
        for key in expected.keys().filter(|k| !actual.contains_key(k)) {
            self.note(format!("{what}: missing row {key:?}"));
        }
    }

    fn cells(&mut self, what: String, actual: &[(Option<f64>, String)], expected: &[Cell]) {
        for (i, ((value, source), e)) in actual.iter().zip(expected).enumerate() {
            let value_ok = match (value, e.value) {
                (Some(a), Some(e)) => close(*a, e),
                (None, None) => true,
                _ => false,
            };
            if !value_ok || source != e.source.as_str() {
                self.note(format!(
                    "{what} channel {i}: ({value:?}, {source}) vs expected ({:?}, {})",
                    e.value,
                    e.source.as_str()
                ));
            }
        }
    }

    fn assert_none(self, dataset: &str) {
        assert!(
            self.0.is_empty(),
            "{dataset}: {} differences from the reference, first ones:\n{}",
            self.0.len(),
            self.0[..self.0.len().min(25)].join("\n")
        );
    }
}

fn check_summary(out: &Path, r: &Reference) {
    let summary = read_summary(out);
    let int = |key: &str| {
        summary[key]
            .as_u64()
            .unwrap_or_else(|| panic!("summary.{key} missing or not an integer: {summary}"))
    };
    assert_eq!(int("windows"), r.w.windows.len() as u64, "windows");
    assert_eq!(int("late_events"), r.w.late, "late events");
    assert_eq!(
        int("aligned_rows"),
        r.checksums.aligned_rows,
        "aligned_rows"
    );
    assert_eq!(int("flags"), r.checksums.flags, "flags");
    let quarantined: BTreeMap<String, u64> =
        serde_json::from_value(summary["quarantined_by_reason"].clone()).unwrap();
    assert_eq!(
        quarantined, r.quarantined_by_reason,
        "quarantined by reason"
    );
    assert_eq!(
        int("assets_in_view"),
        r.checksums.assets_in_view,
        "assets_in_view"
    );
    let sum = summary["sum_fused_temperature"]
        .as_f64()
        .expect("summary.sum_fused_temperature");
    let expected = r.checksums.sum_fused_temperature;
    assert!(
        (sum - expected).abs() <= TOLERANCE * expected.abs(),
        "sum_fused_temperature {sum} vs {expected}"
    );
}

fn check_aligned(out: &Path, r: &Reference) {
    let actual = read_aligned(out, &r.channels);
    let mut differences = Differences::default();
    differences.keys("aligned", &actual, &r.aligned);
    for (key, row) in &actual {
        let Some(expected) = r.aligned.get(key) else {
            continue;
        };
        if row.end != key.1 + reference::SECOND_US {
            differences.note(format!("aligned {key:?}: window_end_us {}", row.end));
        }
        differences.cells(format!("aligned {key:?}"), &row.cells, expected);
    }
    for (key, row) in &actual {
        for (value, source) in &row.cells {
            if value.is_none() != (source == "missing") {
                differences.note(format!("aligned {key:?}: value {value:?} but {source}"));
            }
        }
    }
    differences.assert_none("aligned");
}

fn check_fused(out: &Path, r: &Reference) {
    let actual = read_fused(out);
    let mut differences = Differences::default();
    differences.keys("fused", &actual, &r.fused);
    for (key, a) in &actual {
        let Some(e) = r.fused.get(key) else { continue };
        if !(close(a.value, e.value) && close(a.variance, e.variance) && a.sensors == e.sensors) {
            differences.note(format!("fused {key:?}: {a:?} vs expected {e:?}"));
        }
    }
    differences.assert_none("fused");
}

fn check_flags(out: &Path, r: &Reference) {
    let actual = read_flags(out);
    let mut differences = Differences::default();
    differences.keys("flags", &actual, &r.flags);
    for (key, a) in &actual {
        let Some(e) = r.flags.get(key) else { continue };
        if !(a.asset == e.asset && close(a.value, e.value) && close(a.z, e.z)) {
            differences.note(format!("flag {key:?}: {a:?} vs expected {e:?}"));
        }
    }
    differences.assert_none("flags");
}

fn check_views(out: &Path, r: &Reference) {
    let actual = read_views(out, &r.channels, &r.quantities);
    let mut differences = Differences::default();
    differences.keys("twins/assets", &actual, &r.views);
    for (asset, a) in &actual {
        let Some(e) = r.views.get(asset) else {
            continue;
        };
        if (&a.line, &a.site, a.window_start_us, a.flags)
            != (&e.line, &e.site, e.window_start_us, e.flags)
        {
            differences.note(format!(
                "twin {asset}: line, site, window, flags ({}, {}, {}, {}) vs expected ({}, {}, {}, {})",
                a.line, a.site, a.window_start_us, a.flags, e.line, e.site, e.window_start_us, e.flags
            ));
        }
        differences.cells(format!("twin {asset}"), &a.cells, &e.cells);
        for (q, (value, variance)) in &a.fused {
            let expected = e.fused.get(q);
            let same = match (value, variance, expected) {
                (Some(v), Some(var), Some(f)) => close(*v, f.value) && close(*var, f.variance),
                (None, None, None) => true,
                _ => false,
            };
            if !same {
                differences.note(format!(
                    "twin {asset} fused {q}: ({value:?}, {variance:?}) vs expected {expected:?}"
                ));
            }
        }
    }
    differences.assert_none("twins/assets");
}

/// The aligned, fused and flags datasets, then the summary's checksums.
fn check_against_reference(out: &Path, r: &Reference) {
    check_aligned(out, r);
    check_fused(out, r);
    check_flags(out, r);
    check_summary(out, r);
}

// ---------------------------------------------------------------------------
// Bit-for-bit comparison of whole datasets

/// A cell of any dataset, floats by their bits, so rows sort and compare exactly.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    Null,
    Text(String),
    Int(i64),
    UInt(u64),
    FloatBits(u64),
    Other(String),
}

fn value_at(array: &dyn Array, i: usize) -> Value {
    if array.is_null(i) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Utf8 => Value::Text(array.as_string::<i32>().value(i).to_owned()),
        DataType::Int64 => Value::Int(array.as_primitive::<Int64Type>().value(i)),
        DataType::UInt32 => Value::UInt(array.as_primitive::<UInt32Type>().value(i).into()),
        DataType::UInt64 => Value::UInt(array.as_primitive::<UInt64Type>().value(i)),
        DataType::Float64 => {
            Value::FloatBits(array.as_primitive::<Float64Type>().value(i).to_bits())
        }
        _ => Value::Other(arrow::util::display::array_value_to_string(array, i).unwrap()),
    }
}

/// A dataset's columns and its rows, sorted.
fn sorted_contents(dir: &Path) -> (Vec<(String, DataType)>, Vec<Vec<Value>>) {
    let columns = dataset_columns(dir);
    let mut rows = Vec::new();
    for batch in read_dataset(dir) {
        for i in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .map(|c| value_at(c.as_ref(), i))
                    .collect(),
            );
        }
    }
    rows.sort();
    (columns, rows)
}

/// The datasets of steps A, F, D and V, every view and change stream among them.
const COMPARED_DATASETS: [&str; 11] = twinflow::pipelines::replay::LATER_DATASETS;

// ---------------------------------------------------------------------------
// Tests against a generated plant

/// Summary checksums and the aligned, fused and flags rows equal the reference
/// for one worker (default split) and three workers (runs of 4,000 rows).
#[test]
fn one_and_three_workers_match_reference() {
    let dir = tempfile::tempdir().unwrap();
    let (log, reference) = plant(dir.path(), 21);
    for (workers, run_rows) in [(1, None), (3, Some(4000))] {
        let out = dir.path().join(format!("w{workers}"));
        replay_threads(&log, &out, workers, run_rows);
        check_against_reference(&out, &reference);
    }
}

/// Two processes of two workers on loopback equal the reference, and the same
/// split in one process gives the same bits.
#[test]
fn two_processes_on_loopback_match_reference() {
    let dir = tempfile::tempdir().unwrap();
    let (log, reference) = plant(dir.path(), 22);
    let out = dir.path().join("out");
    replay_processes(&log, &out, 2, 2, 3000, &["--fusion", "inverse-variance"]);
    assert_eq!(read_summary(&out)["processes"], 2);
    check_against_reference(&out, &reference);
    check_views(&out, &reference);

    let single = dir.path().join("single");
    replay_threads(&log, &single, 1, Some(3000));
    for dataset in COMPARED_DATASETS {
        assert!(
            sorted_contents(&out.join(dataset)) == sorted_contents(&single.join(dataset)),
            "{dataset}: two processes differ from one worker with the same split"
        );
    }
}

/// With the same split, 1, 2 and 4 workers write the same aligned, fused,
/// flags and twin rows, floats bit for bit, and the same A/F/D/V checksums.
#[test]
fn same_split_is_bit_identical_on_one_two_and_four_workers() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = plant(dir.path(), 23);
    let run = |workers: usize| {
        let out = dir.path().join(format!("w{workers}"));
        replay_threads(&log, &out, workers, Some(3500));
        let summary = read_summary(&out);
        let checksums: Vec<serde_json::Value> = [
            "aligned_rows",
            "sum_fused_temperature",
            "flags",
            "assets_in_view",
        ]
        .iter()
        .map(|k| summary[*k].clone())
        .collect();
        let datasets: Vec<_> = COMPARED_DATASETS
            .iter()
            .map(|d| sorted_contents(&out.join(d)))
            .collect();
        (checksums, datasets)
    };
    let (one_checksums, one) = run(1);
    assert!(!one[0].1.is_empty(), "aligned is empty");
    for workers in [2, 4] {
        let (checksums, datasets) = run(workers);
        assert_eq!(checksums, one_checksums, "checksums on {workers} workers");
        for ((name, a), b) in COMPARED_DATASETS.iter().zip(&datasets).zip(&one) {
            assert!(a == b, "{name} on {workers} workers differs from 1 worker");
        }
    }
}

/// The robust (Kalman) fusion, the reference pipeline's twin state, keeps
/// state per asset across windows: with the same split, 1, 2 and 4 workers
/// and 2 processes write the same fused values, trust, suspects and twins,
/// floats bit for bit.
#[test]
fn robust_fusion_is_bit_identical_on_one_two_four_workers_and_two_processes() {
    const DATASETS: [&str; 5] = [
        "fused",
        "trust",
        "flags",
        "twins/assets",
        "twin_changes/assets",
    ];
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = plant(dir.path(), 29);
    let run = |workers: usize| {
        let out = dir.path().join(format!("k{workers}"));
        let options = ReplayOptions {
            cluster: Cluster::threads(workers),
            split: twinflow::engine::log_source::SplitOptions {
                max_run_rows: Some(3000),
            },
            ..ReplayOptions::new(&log, &out)
        };
        twinflow::pipelines::pipeline::twinbench()
            .replay(&options)
            .unwrap()
            .unwrap();
        out
    };
    let contents = |out: &Path| -> Vec<_> {
        DATASETS
            .iter()
            .map(|d| sorted_contents(&out.join(d)))
            .collect()
    };
    let one = contents(&run(1));
    let suspects = one[2].1.len();
    assert!(suspects > 0, "the plant's incidents name no suspect");
    assert!(!one[1].1.is_empty(), "trust is empty");
    for workers in [2, 4] {
        let other = contents(&run(workers));
        for ((name, a), b) in DATASETS.iter().zip(&other).zip(&one) {
            assert!(a == b, "{name} on {workers} workers differs from 1 worker");
        }
    }
    let processes = dir.path().join("k2p");
    replay_processes(&log, &processes, 2, 2, 3000, &[]);
    for ((name, a), b) in DATASETS.iter().zip(&contents(&processes)).zip(&one) {
        assert!(a == b, "{name} on 2 processes differs from 1 worker");
    }
}

/// `profile` reports every worker's operators and parked time, each
/// dataset's writer named by its directory, and no operator busier than the
/// dataflow that holds it.
#[test]
fn profile_names_operators_and_fits_within_the_dataflow() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = plant(dir.path(), 25);
    let out = dir.path().join("out");
    let options = ReplayOptions {
        cluster: Cluster::threads(2),
        profile: true,
        ..ReplayOptions::new(&log, &out)
    };
    let summary = twinflow::pipelines::replay::replay(&options)
        .unwrap()
        .unwrap();
    // "name [dataflow, operator…]" → the address; none for the parked time.
    let address = |operator: &str| -> Vec<usize> {
        let Some((_, list)) = operator.rsplit_once('[') else {
            return Vec::new();
        };
        let list = list.trim_end_matches(']');
        list.split(", ").map(|n| n.parse().unwrap()).collect()
    };
    for worker in 0..2 {
        let of_worker = || summary.operators.iter().filter(move |o| o.worker == worker);
        let find = |name: &str| {
            of_worker()
                .find(|o| o.operator.starts_with(name))
                .unwrap_or_else(|| panic!("worker {worker} has no {name}"))
        };
        find(twinflow::engine::profile::PARKED);
        for dataset in ["aligned", "twin_changes/assets"] {
            find(&format!("WritePart {} ", out.join(dataset).display()));
        }
        // The pipeline's top-level operators run one at a time inside its
        // dataflow's root.
        let windows = find(&format!("WritePart {} ", out.join("windows").display()));
        let dataflow = address(&windows.operator)[0];
        let root = find(&format!("Dataflow [{dataflow}]")).busy_us;
        let children: u64 = of_worker()
            .filter(|o| address(&o.operator).len() == 2 && address(&o.operator)[0] == dataflow)
            .map(|o| o.busy_us)
            .sum();
        assert!(
            windows.busy_us > 0 && children <= root,
            "worker {worker}: {children} µs in operators, {root} µs in the dataflow"
        );
    }
    // Without `profile`, nothing is measured.
    let plain = replay_threads(&log, &dir.path().join("plain"), 2, None);
    assert!(plain.operators.is_empty());
}

/// The final twin of each asset equals the reference V: its latest aligned row,
/// that window's fused values and the asset's flag count.
#[test]
fn final_twin_view_matches_reference() {
    let dir = tempfile::tempdir().unwrap();
    let (log, reference) = plant(dir.path(), 24);
    let out = dir.path().join("out");
    replay_threads(&log, &out, 2, Some(5000));
    check_views(&out, &reference);
    assert_eq!(
        read_summary(&out)["assets_in_view"].as_u64(),
        Some(reference.views.len() as u64)
    );
}

// ---------------------------------------------------------------------------
// The reference itself, against a hand-worked example

const T0: i64 = 1_767_225_600_000_000;

fn window(k: i64) -> i64 {
    T0 + k * reference::SECOND_US
}

fn hand_tables() -> Tables {
    let sensor = |sensor: &str, channel: &str, kind: &str, sigma: f64| reference::SensorEntry {
        sensor: sensor.into(),
        asset: sensor.split('/').next().unwrap().into(),
        channel: channel.into(),
        kind: kind.into(),
        sigma,
    };
    let asset = |asset: &str, line: &str| reference::AssetEntry {
        asset: asset.into(),
        line: line.into(),
        site: "site-0".into(),
    };
    Tables {
        assets: vec![
            asset("a", "line-0"),
            asset("b", "line-0"),
            asset("c", "line-1"),
            asset("d", "line-1"),
        ],
        sensors: vec![
            sensor("a/t1", "temp-1", "temperature", 1.0),
            sensor("a/t2", "temp-2", "temperature", 2.0),
            sensor("a/p", "press-1", "pressure", 1.0),
            sensor("a/f", "flow", "flow", 0.5),
            sensor("b/p1", "press-1", "pressure", 0.5),
            sensor("b/p2", "press-2", "pressure", 1.0),
            sensor("c/t", "temp-1", "temperature", 1.0),
            sensor("d/v", "vib-1", "vibration", 0.1),
            sensor("d/i", "current", "current", 0.1),
            sensor("d/f", "flow", "flow", 0.5),
        ],
    }
}

/// Raw rows in arrival order: in event-time order, then a late row, a row of
/// an unknown sensor and a NaN.
fn hand_rows() -> Vec<Row> {
    // (sensor, window, µs into the window, value)
    let mut events: Vec<(&str, i64, i64, f64)> = vec![
        ("a/t1", 0, 100_000, 10.0),
        ("a/t1", 0, 600_000, 12.0),
        ("a/t1", 1, 500_000, 20.0),
        ("a/t1", 8, 500_000, 30.0),
        ("a/t2", 0, 500_000, 14.0),
        ("a/t2", 3, 500_000, 16.0),
        ("a/p", 0, 500_000, 1.0),
        ("a/f", 2, 500_000, 5.0),
        ("a/f", 7, 500_000, 6.0),
        ("b/p1", 0, 200_000, 2.0),
        ("b/p2", 0, 300_000, 3.0),
    ];
    // d/v: 0, 1, then 0.05 (the mean after the jump) up to window 29; window 30
    // jumps by 6 standard deviations.
    events.push(("d/v", 0, 400_000, 0.0));
    events.push(("d/v", 1, 400_000, 1.0));
    for k in 2..=29 {
        events.push(("d/v", k, 400_000, 0.05));
    }
    events.push((
        "d/v",
        30,
        400_000,
        0.05 + 6.0 * (0.0475 * 0.95f64.powi(28)).sqrt(),
    ));
    // d/i: the same start, a huge jump at window 29 (29 rows before it).
    events.push(("d/i", 0, 400_000, 0.0));
    events.push(("d/i", 1, 400_000, 1.0));
    for k in 2..=28 {
        events.push(("d/i", k, 400_000, 0.05));
    }
    events.push(("d/i", 29, 400_000, 100.0));
    // d/f: constant 7 for 40 windows (v stays 0), 8 at window 40 (z undefined),
    // then 10 standard deviations at window 41.
    for k in 0..=39 {
        events.push(("d/f", k, 400_000, 7.0));
    }
    events.push(("d/f", 40, 400_000, 8.0));
    events.push(("d/f", 41, 400_000, 7.05 + 10.0 * 0.0475f64.sqrt()));
    events.sort_by_key(|&(sensor, k, offset, _)| (window(k) + offset, sensor));

    let row = |sensor: &str, ts_us: i64, value: f64| Row {
        ts_us,
        arrival_us: 0,
        asset: sensor.split('/').next().unwrap().into(),
        sensor: sensor.into(),
        value,
        seq: 0,
        quality: 0,
        tag: None,
    };
    let mut rows: Vec<Row> = events
        .iter()
        .map(|&(sensor, k, offset, value)| row(sensor, window(k) + offset, value))
        .collect();
    // Behind the watermark (41.4 s − 2 s): late, so a/p stays carried in window 1.
    rows.push(row("a/p", window(1) + 500_000, 9.0));
    rows.push(row("x/y", window(2), 4.0));
    // Not finite: set aside, so asset a gets no row in window 41.
    rows.push(row("a/t1", window(41), f64::NAN));
    // Arrivals in row order, none before its event time, so every row counts
    // for the watermark with its event time.
    let mut arrival = window(0);
    for r in &mut rows {
        arrival = (arrival + 1000).max(r.ts_us);
        r.arrival_us = arrival;
    }
    rows
}

fn measured(x: f64) -> Cell {
    Cell {
        value: Some(x),
        source: Source::Measured,
    }
}

fn carried(x: f64) -> Cell {
    Cell {
        value: Some(x),
        source: Source::Carried,
    }
}

const MISSING: Cell = Cell {
    value: None,
    source: Source::Missing,
};

fn assert_cells(actual: &[Cell], expected: &[Cell], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}");
    for (a, e) in actual.iter().zip(expected) {
        let value_ok = match (a.value, e.value) {
            (Some(a), Some(e)) => (a - e).abs() <= 1e-12 * e.abs().max(1.0),
            (None, None) => true,
            _ => false,
        };
        assert!(
            value_ok && a.source == e.source,
            "{what}: {actual:?} vs {expected:?}"
        );
    }
}

fn assert_fused(r: &Reference, asset: &str, k: i64, quantity: &str, expected: Option<Fused>) {
    let actual = r
        .fused
        .get(&(asset.to_owned(), window(k), quantity.to_owned()));
    match (actual, expected) {
        (None, None) => {}
        (Some(a), Some(e)) => assert!(
            (a.value - e.value).abs() < 1e-12
                && (a.variance - e.variance).abs() < 1e-12
                && a.sensors == e.sensors,
            "{asset} window {k} {quantity}: {a:?} vs {e:?}"
        ),
        _ => panic!("{asset} window {k} {quantity}: {actual:?} vs {expected:?}"),
    }
}

/// Every expected value below is worked out by hand from `hand_rows`.
#[test]
fn reference_matches_hand_computed_example() {
    let tables = hand_tables();
    let rows = hand_rows();
    let known = |s: &str| tables.sensors.iter().any(|e| e.sensor == s);
    let r = reference::compute(
        &rows,
        &unverified_fates(&rows, &known),
        &tables,
        LATENESS_US,
    );

    // W: the late a/p row is late; the unknown sensor and the NaN are set aside.
    assert_eq!((r.w.late, r.w.quarantined), (1, 2));
    // a/t1 window 0 averages 10 and 12.
    assert_eq!(r.w.windows[&("a/t1".to_owned(), window(0))].mean, 11.0);

    // Channels in sensor-table order; temperature fused on a, pressure on b.
    assert_eq!(
        r.channels,
        [
            "temp-1", "temp-2", "press-1", "flow", "press-2", "vib-1", "current"
        ]
    );
    assert_eq!(r.quantities, ["temperature", "pressure"]);

    // A of asset a: windows 0, 1, 2, 3, 7, 8 (any sensor measured); columns
    // temp-1, temp-2, press-1, flow, then press-2, vib-1, current (no sensor).
    let none = [MISSING; 3];
    let a_rows: [(i64, [Cell; 4]); 6] = [
        // Everything measured but flow (nothing earlier to carry).
        (0, [measured(11.0), measured(14.0), measured(1.0), MISSING]),
        // temp-2 and press-1 carried from window 0 (the late a/p row is not W).
        (1, [measured(20.0), carried(14.0), carried(1.0), MISSING]),
        (
            2,
            [carried(20.0), carried(14.0), carried(1.0), measured(5.0)],
        ),
        // press-1 three windows old: still carried.
        (
            3,
            [carried(20.0), measured(16.0), carried(1.0), carried(5.0)],
        ),
        // temp-1 from window 1 (6 old) and press-1 from window 0 (7 old): missing.
        (7, [MISSING, carried(16.0), MISSING, measured(6.0)]),
        // temp-2 from window 3, exactly 5 old: carried. (The NaN of a/t1 in
        // window 41 adds nothing.)
        (8, [measured(30.0), carried(16.0), MISSING, carried(6.0)]),
    ];
    let a_windows: Vec<i64> = r
        .aligned
        .keys()
        .filter(|(a, _)| a == "a")
        .map(|(_, w)| *w)
        .collect();
    assert_eq!(a_windows, a_rows.map(|(k, _)| window(k)));
    for (k, cells) in &a_rows {
        let expected: Vec<Cell> = cells.iter().chain(&none).copied().collect();
        assert_cells(
            &r.aligned[&("a".to_owned(), window(*k))],
            &expected,
            &format!("a, window {k}"),
        );
    }
    // Asset b: window 0 only, both pressures measured.
    assert_cells(
        &r.aligned[&("b".to_owned(), window(0))],
        &[
            MISSING,
            MISSING,
            measured(2.0),
            MISSING,
            measured(3.0),
            MISSING,
            MISSING,
        ],
        "b, window 0",
    );
    // Asset d: windows 0..=41. In window 35, vib-1 comes from window 30 (5
    // old, carried) and current from window 29 (6 old, missing).
    let d_rows = r.aligned.keys().filter(|(a, _)| a == "d").count();
    assert_eq!(d_rows, 42);
    let jump = 0.05 + 6.0 * (0.0475 * 0.95f64.powi(28)).sqrt();
    assert_cells(
        &r.aligned[&("d".to_owned(), window(35))],
        &[
            MISSING,
            MISSING,
            MISSING,
            measured(7.0),
            MISSING,
            carried(jump),
            MISSING,
        ],
        "d, window 35",
    );
    // Asset c has no data: no rows.
    assert!(!r.aligned.keys().any(|(a, _)| a == "c"));
    assert_eq!(r.checksums.aligned_rows, 6 + 1 + 42);

    // F, temperature of a (weights 1/1² and 1/2²), measured sensors only:
    // window 0: (11·1 + 14·0.25) / 1.25 = 11.6. Its variance is the
    // estimate's: t1's mean of 2 readings has variance 1²/2, t2's single
    // reading 2²: (1²·½ + 0.25²·4) / 1.25² = 0.75 / 1.5625 = 0.48.
    let fused = |value, variance, sensors| {
        Some(Fused {
            value,
            variance,
            sensors,
        })
    };
    assert_fused(&r, "a", 0, "temperature", fused(11.6, 0.48, 2));
    assert_fused(&r, "a", 1, "temperature", fused(20.0, 1.0, 1));
    assert_fused(&r, "a", 2, "temperature", None); // both carried
    assert_fused(&r, "a", 3, "temperature", fused(16.0, 4.0, 1));
    assert_fused(&r, "a", 7, "temperature", None);
    assert_fused(&r, "a", 8, "temperature", fused(30.0, 1.0, 1));
    // One pressure sensor on a: not fused.
    assert_fused(&r, "a", 0, "pressure", None);
    // Pressure of b: (2·4 + 3·1) / 5 = 2.2, variance 1/5.
    assert_fused(&r, "b", 0, "pressure", fused(2.2, 0.2, 2));
    assert_eq!(r.fused.len(), 5);
    assert!((r.checksums.sum_fused_temperature - 77.6).abs() < 1e-12);

    // D. d/v: after 0 and 1, m = 0.05 and v = 0.95·0.05·1² = 0.0475; 28 rows at
    // m shrink v by 0.95 each; window 30 has 30 rows before it and z = 6.
    // d/i: the jump in window 29 has only 29 rows before it. d/f: v = 0 until
    // window 40 (z undefined there); then m = 7.05, v = 0.0475 and window 41
    // sits 10 standard deviations above m.
    let flags: Vec<(&str, i64, f64, f64)> = r
        .flags
        .iter()
        .map(|((s, w), f)| (s.as_str(), *w, f.value, f.z))
        .collect();
    assert_eq!(flags.len(), 2, "{flags:?}");
    let expected_flags = [
        ("d/f", window(41), 7.05 + 10.0 * 0.0475f64.sqrt(), 10.0),
        ("d/v", window(30), jump, 6.0),
    ];
    for (a, e) in flags.iter().zip(&expected_flags) {
        assert_eq!((a.0, a.1), (e.0, e.1));
        assert!(
            (a.2 - e.2).abs() < 1e-12 && (a.3 - e.3).abs() < 1e-9,
            "{a:?}"
        );
    }
    assert!(r.flags.values().all(|f| f.asset == "d"));
    assert_eq!(r.checksums.flags, 2);

    // V: a at window 8 with fused temperature 30; b at window 0 with fused
    // pressure 2.2; d at window 41 with both flags; c not in view.
    assert_eq!(
        r.views.keys().map(String::as_str).collect::<Vec<_>>(),
        ["a", "b", "d"]
    );
    let a = &r.views["a"];
    assert_eq!(
        (a.line.as_str(), a.site.as_str(), a.window_start_us, a.flags),
        ("line-0", "site-0", window(8), 0)
    );
    assert_cells(&a.cells, &r.aligned[&("a".to_owned(), window(8))], "view a");
    assert_eq!(a.fused.keys().collect::<Vec<_>>(), ["temperature"]);
    assert_eq!(a.fused["temperature"].value, 30.0);
    let b = &r.views["b"];
    assert_eq!((b.window_start_us, b.flags), (window(0), 0));
    assert!((b.fused["pressure"].value - 2.2).abs() < 1e-12);
    let d = &r.views["d"];
    assert_eq!(
        (d.line.as_str(), d.window_start_us, d.flags),
        ("line-1", window(41), 2)
    );
    assert!(d.fused.is_empty());
    assert_eq!(r.checksums.assets_in_view, 3);
}
