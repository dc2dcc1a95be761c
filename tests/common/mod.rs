//! Shared helpers of the integration tests: a synthetic raw log, an
//! independent batch computation of TwinBench W (and, in [`reference`], of A,
//! F, D and V), readers of the outputs, and ways to run `replay` in threads or
//! in processes on loopback.
#![allow(dead_code)]

pub mod interop;
pub mod reference;
pub mod verification;

use std::collections::BTreeMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{Float64Type, Int64Type, UInt8Type, UInt64Type};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use twinflow::engine::catalog::{AssetRecord, Catalog, SensorRecord};
use twinflow::engine::log_source::SplitOptions;
use twinflow::engine::raw_log::{RawEvent, RawLogWriter};
use twinflow::engine::runtime::Cluster;
use twinflow::pipelines::pipeline::FusionMethod;
use twinflow::pipelines::replay::{ReplayOptions, Summary};

/// One row of a raw log, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub ts_us: i64,
    pub arrival_us: i64,
    pub asset: String,
    pub sensor: String,
    pub value: f64,
    pub seq: u64,
    pub quality: u8,
    pub tag: Option<Vec<u8>>,
}

/// Writes a small disordered plant log (with late rows, a NaN, an unknown
/// sensor and equal-time ties) plus its catalog into `dir`; returns the rows in
/// arrival order.
pub fn write_synthetic_log(dir: &Path, row_group_rows: usize) -> Vec<Row> {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(42);
    let assets: Vec<String> = (0..3).map(|a| format!("asset-{a:04}")).collect();
    let channels = ["temp-1", "temp-2", "press-1", "flow"];
    let mut rows = Vec::new();
    let t0 = 1_767_225_600_000_000i64;
    for asset in &assets {
        for channel in channels {
            let sensor = format!("{asset}/{channel}");
            for (seq, k) in (0..400u64).enumerate() {
                let ts = t0 + k as i64 * 100_000 + rng.random_range(0..1000);
                let mut lag = rng.random_range(0..500_000);
                if rng.random_range(0..100) < 2 {
                    lag += rng.random_range(2_000_000..10_000_000);
                }
                let value = 50.0 + 10.0 * rng.random::<f64>();
                rows.push(Row {
                    ts_us: ts,
                    arrival_us: ts + lag,
                    asset: asset.clone(),
                    sensor: sensor.clone(),
                    value,
                    seq: seq as u64,
                    quality: 0,
                    tag: None,
                });
            }
        }
    }
    // A tie on event time: the later arrival must be the window's `last`.
    let mut tie = rows[10].clone();
    tie.value = 1234.5;
    tie.arrival_us += 1;
    rows.push(tie);
    let mut nan = rows[20].clone();
    nan.value = f64::NAN;
    rows.push(nan);
    let mut stranger = rows[30].clone();
    stranger.sensor = "asset-9999/temp-1".into();
    rows.push(stranger);
    rows.sort_by_key(|r| (r.arrival_us, r.ts_us, r.sensor.clone()));

    write_log(
        &dir.join("events.parquet"),
        &rows,
        &|_| "temperature".into(),
        row_group_rows,
    );
    let catalog = Catalog::new(
        assets
            .iter()
            .map(|a| AssetRecord {
                asset: a.clone(),
                line: "line-00".into(),
                site: "site-0".into(),
                kind: "pump".into(),
            })
            .collect(),
        assets
            .iter()
            .flat_map(|a| {
                channels.iter().map(move |c| SensorRecord {
                    sensor: format!("{a}/{c}"),
                    asset: a.clone(),
                    channel: c.to_string(),
                    kind: "temperature".into(),
                    sigma: 0.2,
                    min: -50.0,
                    max: 250.0,
                    rate_hz: None,
                    quantity: None,
                })
            })
            .collect(),
    )
    .unwrap();
    catalog.write_dir(dir).unwrap();
    rows
}

/// Writes `rows` as a raw log with row groups of `row_group_rows`; `kind_of`
/// gives each sensor's kind.
pub fn write_log(
    path: &Path,
    rows: &[Row],
    kind_of: &dyn Fn(&str) -> String,
    row_group_rows: usize,
) {
    let mut writer = RawLogWriter::create_with_row_groups(path, None, row_group_rows).unwrap();
    for r in rows {
        writer
            .push(&RawEvent {
                ts_us: r.ts_us,
                arrival_us: r.arrival_us,
                asset: &r.asset,
                sensor: &r.sensor,
                kind: &kind_of(&r.sensor),
                value: r.value,
                seq: r.seq,
                quality: r.quality,
                tag: r.tag.as_deref(),
            })
            .unwrap();
    }
    writer.finish().unwrap();
}

/// W of one sensor-window, as the batch path computes it.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRow {
    pub count: u64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub last: f64,
}

/// W computed the plain way: walk the rows in arrival order with the running
/// maximum of `min(ts_us, arrival_us)`, set late and quarantined rows aside,
/// group the rest.
pub struct ExpectedW {
    pub windows: BTreeMap<(String, i64), WindowRow>,
    pub late: u64,
    /// Indices (in `rows`) of the late rows.
    pub late_rows: Vec<usize>,
    pub quarantined: u64,
}

/// What happens to a row before W: accepted or quarantined, and whether its
/// event time moves the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fate {
    pub accepted: bool,
    pub moves_watermark: bool,
}

/// The fates of rows without verification: rows of unknown sensors and
/// non-finite values are quarantined, and every row moves the watermark.
pub fn unverified_fates(rows: &[Row], known_sensors: &dyn Fn(&str) -> bool) -> Vec<Fate> {
    rows.iter()
        .map(|r| Fate {
            accepted: known_sensors(&r.sensor) && r.value.is_finite(),
            moves_watermark: true,
        })
        .collect()
}

/// W without verification (see [`expected_w_of`]).
pub fn expected_w(
    rows: &[Row],
    known_sensors: &dyn Fn(&str) -> bool,
    lateness_us: i64,
) -> ExpectedW {
    expected_w_of(rows, &unverified_fates(rows, known_sensors), lateness_us)
}

/// W of the rows whose fate is to be accepted, the watermark moved by the
/// rows whose fate says so.
pub fn expected_w_of(rows: &[Row], fates: &[Fate], lateness_us: i64) -> ExpectedW {
    struct Acc {
        n: u64,
        sum: f64,
        min: f64,
        max: f64,
        last_ts: i64,
        last: f64,
    }
    let mut groups: BTreeMap<(String, i64), Acc> = BTreeMap::new();
    let (mut late, mut quarantined) = (0, 0);
    let mut late_rows = Vec::new();
    let mut max_ts: Option<i64> = None;
    for (index, (r, fate)) in rows.iter().zip(fates).enumerate() {
        let is_late = max_ts.is_some_and(|m| r.ts_us < m - lateness_us);
        if !fate.accepted {
            quarantined += 1;
        } else if is_late {
            late += 1;
            late_rows.push(index);
        } else {
            let start = r.ts_us.div_euclid(1_000_000) * 1_000_000;
            let acc = groups.entry((r.sensor.clone(), start)).or_insert(Acc {
                n: 0,
                sum: 0.0,
                min: f64::MAX,
                max: f64::MIN,
                last_ts: i64::MIN,
                last: 0.0,
            });
            acc.n += 1;
            acc.sum += r.value;
            acc.min = acc.min.min(r.value);
            acc.max = acc.max.max(r.value);
            if r.ts_us >= acc.last_ts {
                acc.last_ts = r.ts_us;
                acc.last = r.value;
            }
        }
        if fate.moves_watermark {
            // The spec: an event counts with `min(ts_us, arrival_us)`.
            let counted = r.ts_us.min(r.arrival_us);
            max_ts = Some(max_ts.map_or(counted, |m| m.max(counted)));
        }
    }
    let windows = groups
        .into_iter()
        .map(|(k, a)| {
            (
                k,
                WindowRow {
                    count: a.n,
                    mean: a.sum / a.n as f64,
                    min: a.min,
                    max: a.max,
                    last: a.last,
                },
            )
        })
        .collect();
    ExpectedW {
        windows,
        late,
        late_rows,
        quarantined,
    }
}

pub fn strings(values: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

pub fn ints(values: &[i64]) -> ArrayRef {
    Arc::new(Int64Array::from(values.to_vec()))
}

pub fn floats(values: &[f64]) -> ArrayRef {
    Arc::new(Float64Array::from(values.to_vec()))
}

/// Writes `columns` as one Parquet file at `path` (creating its directory).
pub fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut writer =
        ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// Reads every `part-*.parquet` of a dataset directory.
pub fn read_dataset(dir: &Path) -> Vec<arrow::record_batch::RecordBatch> {
    let mut parts: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    parts.sort();
    let mut batches = Vec::new();
    for part in parts {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&part).unwrap())
            .unwrap()
            .build()
            .unwrap();
        batches.extend(reader.map(|b| b.unwrap()));
    }
    batches
}

/// The `windows/` dataset as a map keyed like [`ExpectedW::windows`].
pub fn read_windows(out: &Path) -> BTreeMap<(String, i64), WindowRow> {
    let mut windows = BTreeMap::new();
    for batch in read_dataset(&out.join("windows")) {
        let col = |name: &str| batch.column(batch.schema().index_of(name).unwrap()).clone();
        let sensor = col("sensor");
        let sensor = sensor.as_string::<i32>();
        let start = col("window_start_us");
        let count = col("count");
        let (mean, min, max, last) = (col("mean"), col("min"), col("max"), col("last"));
        for i in 0..batch.num_rows() {
            let key = (
                sensor.value(i).to_owned(),
                start.as_primitive::<Int64Type>().value(i),
            );
            let row = WindowRow {
                count: count.as_primitive::<UInt64Type>().value(i),
                mean: mean.as_primitive::<Float64Type>().value(i),
                min: min.as_primitive::<Float64Type>().value(i),
                max: max.as_primitive::<Float64Type>().value(i),
                last: last.as_primitive::<Float64Type>().value(i),
            };
            assert!(
                windows.insert(key.clone(), row).is_none(),
                "window {key:?} written twice"
            );
        }
    }
    windows
}

/// Rows in a dataset directory.
pub fn dataset_rows(dir: &Path) -> usize {
    read_dataset(dir).iter().map(|b| b.num_rows()).sum()
}

/// Asserts two W results agree: counts, min, max and last exactly, means to 1e-12 relative.
pub fn assert_windows_match(
    actual: &BTreeMap<(String, i64), WindowRow>,
    expected: &BTreeMap<(String, i64), WindowRow>,
) {
    assert_eq!(actual.len(), expected.len(), "number of windows");
    for ((key, a), (ekey, e)) in actual.iter().zip(expected) {
        assert_eq!(key, ekey);
        assert_eq!(
            (a.count, a.min, a.max, a.last),
            (e.count, e.min, e.max, e.last),
            "window {key:?}"
        );
        assert!(
            (a.mean - e.mean).abs() <= 1e-12 * e.mean.abs().max(1.0),
            "mean of {key:?}: {} vs {}",
            a.mean,
            e.mean
        );
    }
}

/// Whether a value is NaN-aware equal (used for quarantine rows).
pub fn is_nan_at(array: &dyn Array, i: usize) -> bool {
    array.as_primitive::<Float64Type>().value(i).is_nan()
}

/// Reads the rows of a raw-log Parquet file, in file (arrival) order.
pub fn read_log_rows(path: &Path) -> Vec<Row> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let col = |name: &str| batch.column(batch.schema().index_of(name).unwrap()).clone();
        let (ts, arrival, asset, sensor, value, seq, quality) = (
            col("ts_us"),
            col("arrival_us"),
            col("asset"),
            col("sensor"),
            col("value"),
            col("seq"),
            col("quality"),
        );
        let tag = batch
            .schema()
            .index_of("tag")
            .ok()
            .map(|i| batch.column(i).clone());
        for i in 0..batch.num_rows() {
            rows.push(Row {
                ts_us: ts.as_primitive::<Int64Type>().value(i),
                arrival_us: arrival.as_primitive::<Int64Type>().value(i),
                asset: asset.as_string::<i32>().value(i).to_owned(),
                sensor: sensor.as_string::<i32>().value(i).to_owned(),
                value: value.as_primitive::<Float64Type>().value(i),
                seq: seq.as_primitive::<UInt64Type>().value(i),
                quality: quality.as_primitive::<UInt8Type>().value(i),
                tag: tag
                    .as_ref()
                    .filter(|t| t.is_valid(i))
                    .map(|t| t.as_binary::<i32>().value(i).to_vec()),
            });
        }
    }
    rows
}

/// Runs `replay` in this process on `workers` threads, cutting the log into
/// runs of at most `run_rows` rows when given (the same cuts give the same
/// floating-point results whatever the worker count).
pub fn replay_threads(log: &Path, out: &Path, workers: usize, run_rows: Option<usize>) -> Summary {
    replay_threads_with(log, out, workers, run_rows, true)
}

/// [`replay_threads`] without verification (`--no-verify`).
pub fn replay_threads_unverified(
    log: &Path,
    out: &Path,
    workers: usize,
    run_rows: Option<usize>,
) -> Summary {
    replay_threads_with(log, out, workers, run_rows, false)
}

fn replay_threads_with(
    log: &Path,
    out: &Path,
    workers: usize,
    run_rows: Option<usize>,
    verify: bool,
) -> Summary {
    let options = ReplayOptions {
        cluster: Cluster::threads(workers),
        split: SplitOptions {
            max_run_rows: run_rows,
        },
        verify,
        ..ReplayOptions::new(log, out)
    };
    // The references compute the spec's F: inverse-variance fusion.
    twinflow::pipelines::pipeline::twinbench()
        .fusion_method(FusionMethod::InverseVariance)
        .replay(&options)
        .unwrap()
        .expect("single process leads")
}

/// A port free on loopback right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the `twinflow replay` binary as `processes` processes of `workers`
/// threads on loopback (the hostfile is written beside `out`), with runs of
/// `run_rows` rows; asserts every process succeeded and returns their outputs,
/// process 0 first.
pub fn replay_processes(
    log: &Path,
    out: &Path,
    processes: usize,
    workers: usize,
    run_rows: usize,
    extra_args: &[&str],
) -> Vec<Output> {
    let hostfile = PathBuf::from(format!("{}.hosts.txt", out.display()));
    let hosts: String = (0..processes)
        .map(|_| format!("127.0.0.1:{}\n", free_port()))
        .collect();
    std::fs::write(&hostfile, hosts).unwrap();
    let spawned: Vec<_> = (0..processes)
        .map(|process| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_twinflow"));
            command
                .arg("replay")
                .arg(log)
                .arg("--out")
                .arg(out)
                .args(["--workers", &workers.to_string()])
                .args(["--processes", &processes.to_string()])
                .args(["--process", &process.to_string()])
                .arg("--hostfile")
                .arg(&hostfile)
                .args(["--run-rows", &run_rows.to_string()])
                .args(extra_args);
            std::thread::spawn(move || command.output().unwrap())
        })
        .collect();
    let outputs: Vec<Output> = spawned.into_iter().map(|t| t.join().unwrap()).collect();
    for (process, output) in outputs.iter().enumerate() {
        assert!(
            output.status.success(),
            "process {process}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    outputs
}
