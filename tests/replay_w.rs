//! TwinBench W through `replay` equals an independent batch computation, for
//! one worker, several workers, and two processes on loopback, also when
//! sensors stamp their readings in the future.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use arrow::array::AsArray;
use arrow::datatypes::UInt64Type;

use common::*;
use twinflow::engine::runtime::Cluster;
use twinflow::pipelines::replay::{ReplayOptions, Summary};

/// W of `out` equals the batch path over `rows` with their `fates`.
fn check(rows: &[Row], fates: &[Fate], out: &Path, summary: &Summary) {
    let expected = expected_w_of(rows, fates, 2_000_000);
    assert!(
        expected.late > 10,
        "the log must have late rows ({})",
        expected.late
    );
    let actual = read_windows(out);
    assert_windows_match(&actual, &expected.windows);
    assert_eq!(summary.events_in, rows.len() as u64);
    assert_eq!(summary.late_events, expected.late);
    assert_eq!(summary.windows, expected.windows.len() as u64);
    assert_eq!(summary.quarantined, expected.quarantined);
    let sum: f64 = expected.windows.values().map(|w| w.mean).sum();
    assert!((summary.sum_window_means - sum).abs() <= 1e-9 * sum.abs());
    assert_eq!(dataset_rows(&out.join("late")) as u64, expected.late);
    assert_eq!(
        dataset_rows(&out.join("quarantine")) as u64,
        expected.quarantined
    );
}

/// A generated (signed) log, replayed with verification: the batch path
/// verifies first, the plain way.
fn check_verified(rows: &[Row], log: &Path, out: &Path, summary: &Summary) {
    let checked = verification::verify(rows, &verification::Rules::read_dir(log));
    check(rows, &verification::verified_fates(&checked), out, summary);
    assert_eq!(
        summary.quarantined_by_reason,
        verification::count_reasons(&checked)
    );
}

/// The synthetic log (unsigned, replayed without verification) holds one NaN
/// and one unknown sensor.
fn check_synthetic(rows: &[Row], out: &Path, summary: &Summary) {
    let known = |s: &str| !s.starts_with("asset-9999");
    check(rows, &unverified_fates(rows, &known), out, summary);
    assert_eq!(summary.quarantined_by_reason.get("not_finite"), Some(&1));
    assert_eq!(
        summary.quarantined_by_reason.get("unknown_sensor"),
        Some(&1)
    );
}

/// Generates a 12-asset, 40-second TwinBench log at TwinBench's rates;
/// returns its rows.
fn generate_small_plant(dir: &Path, seed: u64) -> Vec<Row> {
    generate_time_shifted_plant(dir, seed, 1.0)
}

/// A TwinBench log from the generator: W for 1 and 3 workers (runs of whole
/// row groups, page runs, and explicit cuts) equals the batch path.
#[test]
fn generated_log_matches_batch_on_one_and_three_workers() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let rows = generate_small_plant(&log, 5);
    let default_split = replay_threads(&log, &dir.path().join("default"), 1, None);
    check_verified(&rows, &log, &dir.path().join("default"), &default_split);
    // The same split on 1 and 3 workers gives bit-identical results.
    let one = replay_threads(&log, &dir.path().join("w1"), 1, Some(4000));
    let three = replay_threads(&log, &dir.path().join("w3"), 3, Some(4000));
    check_verified(&rows, &log, &dir.path().join("w3"), &three);
    assert_eq!(
        read_windows(&dir.path().join("w1")),
        read_windows(&dir.path().join("w3"))
    );
    assert_eq!(
        one,
        Summary {
            workers: 1,
            elapsed_s: one.elapsed_s,
            events_per_s: one.events_per_s,
            peak_rss_mb: one.peak_rss_mb,
            cpu_s: one.cpu_s,
            ..three.clone()
        }
    );
}

/// Rewrites the synthetic log in `dir` with `sensor`'s readings of the
/// middle third of the log (by arrival) stamped `ahead_us` in the future,
/// arrival unchanged; returns the rows.
fn stamp_ahead(dir: &Path, rows: Vec<Row>, sensor: &str, ahead_us: i64) -> Vec<Row> {
    let (from, to) = (rows.len() / 3, 2 * rows.len() / 3);
    let rows: Vec<Row> = rows
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            if r.sensor == sensor && (from..to).contains(&i) {
                r.ts_us += ahead_us;
            }
            r
        })
        .collect();
    write_log(
        &dir.join("events.parquet"),
        &rows,
        &|_| "temperature".into(),
        700,
    );
    rows
}

/// Late rows when every row counts for the watermark with its `ts_us`
/// alone (the rule before the spec capped it with the arrival).
fn late_by_event_time_alone(rows: &[Row], fates: &[Fate]) -> Vec<usize> {
    let mut max_ts: Option<i64> = None;
    let mut late = Vec::new();
    for (i, (r, fate)) in rows.iter().zip(fates).enumerate() {
        if fate.accepted && max_ts.is_some_and(|m| r.ts_us < m - 2_000_000) {
            late.push(i);
        }
        if fate.moves_watermark {
            max_ts = Some(max_ts.map_or(r.ts_us, |m| m.max(r.ts_us)));
        }
    }
    late
}

/// One sensor stamps its readings 3 s in the future: W equals the batch
/// path, whose watermark counts `min(ts_us, arrival_us)`, on 1, 2 and 3
/// workers, over page runs and over cut runs (whose greatest `ts_us` is
/// then often a reading that arrived before it).
#[test]
fn future_stamped_events_match_batch_under_any_split() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let rows = write_synthetic_log(&log, 700);
    let rows = stamp_ahead(&log, rows, "asset-0001/temp-2", 3_000_000);
    let known = |s: &str| !s.starts_with("asset-9999");
    let fates = unverified_fates(&rows, &known);
    // The stamps matter: counted by event time alone, they make many more rows late.
    let expected = expected_w_of(&rows, &fates, 2_000_000);
    let by_ts = late_by_event_time_alone(&rows, &fates);
    assert!(
        by_ts.len() as u64 > expected.late + 100,
        "{} late by ts alone, {} by the spec",
        by_ts.len(),
        expected.late
    );
    for workers in 1..=3 {
        for run_rows in [None, Some(250), Some(97)] {
            let out = dir.path().join(format!("out-{workers}-{run_rows:?}"));
            let summary = replay_threads_unverified(&log, &out, workers, run_rows);
            check_synthetic(&rows, &out, &summary);
        }
    }
}

/// A generated log with time-shift attacks (sensors with valid tags
/// stamping readings 1–4.5 s ahead), verified: W equals the batch path on
/// 1, 2 and 3 workers and with cut runs.
#[test]
fn time_shifted_generated_log_matches_batch_verified() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let rows = generate_time_shifted_plant(&log, 8, 12.0);
    assert!(
        rows.iter().any(|r| r.ts_us > r.arrival_us + 1_000_000),
        "no reading arrives a second before its event time"
    );
    for (workers, run_rows) in [(1, None), (2, Some(1500)), (3, Some(4000)), (3, Some(333))] {
        let out = dir.path().join(format!("out-{workers}-{run_rows:?}"));
        let summary = replay_threads(&log, &out, workers, run_rows);
        check_verified(&rows, &log, &out, &summary);
    }
}

/// The test: a sensor stamping its readings in the future changes
/// no honest event's lateness, on 1 and 3 workers. The expectation is the
/// same log without the attacker's shifted readings, through the plain
/// reference; the honest events late in the replay (by sensor and seq) are
/// exactly those.
#[test]
fn time_shift_attack_changes_no_honest_events_lateness() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let rows = generate_time_shifted_plant(&log, 9, 12.0);
    // The same seed without time shifts: only the shifted readings differ.
    let unshifted = generate_time_shifted_plant(&dir.path().join("unshifted"), 9, 0.0);
    assert_eq!(rows.len(), unshifted.len());
    let shifted: BTreeSet<usize> = (0..rows.len())
        .filter(|&i| rows[i] != unshifted[i])
        .collect();
    assert!(shifted.len() > 100, "{} shifted readings", shifted.len());
    let key = |r: &Row| (r.sensor.clone(), r.seq);

    // Expected: the honest rows alone, verified and windowed the plain way.
    let honest: Vec<Row> = (0..rows.len())
        .filter(|i| !shifted.contains(i))
        .map(|i| rows[i].clone())
        .collect();
    let rules = verification::Rules::read_dir(&log);
    let honest_fates = verification::verified_fates(&verification::verify(&honest, &rules));
    let expected_late: BTreeSet<(String, u64)> = expected_w_of(&honest, &honest_fates, 2_000_000)
        .late_rows
        .into_iter()
        .map(|i| key(&honest[i]))
        .collect();
    assert!(expected_late.len() > 5, "{expected_late:?}");

    // Under the old rule the attacker would have made honest events late.
    let all_fates = verification::verified_fates(&verification::verify(&rows, &rules));
    let late_by_ts: BTreeSet<(String, u64)> = late_by_event_time_alone(&rows, &all_fates)
        .into_iter()
        .filter(|i| !shifted.contains(i))
        .map(|i| key(&rows[i]))
        .collect();
    assert!(
        late_by_ts.len() > expected_late.len() + 100,
        "{} honest events late by ts alone, {} expected",
        late_by_ts.len(),
        expected_late.len()
    );

    for workers in [1, 3] {
        let out = dir.path().join(format!("out-{workers}"));
        replay_threads(&log, &out, workers, None);
        let mut late = BTreeSet::new();
        for batch in read_dataset(&out.join("late")) {
            let positions = batch
                .column_by_name("position")
                .unwrap()
                .as_primitive::<UInt64Type>();
            for p in positions.values() {
                let p = *p as usize;
                if !shifted.contains(&p) {
                    late.insert(key(&rows[p]));
                }
            }
        }
        assert_eq!(late, expected_late, "{workers} workers");

        // And the attacker is named: `clock_ahead` suspects name exactly the
        // sensors that shifted readings (those that shifted enough to tell).
        let mut named = BTreeSet::new();
        for batch in read_dataset(&out.join("flags")) {
            let (sensor, reason) = (
                batch.column_by_name("sensor").unwrap().as_string::<i32>(),
                batch.column_by_name("reason").unwrap().as_string::<i32>(),
            );
            for i in 0..batch.num_rows() {
                if reason.value(i) == "clock_ahead" {
                    named.insert(sensor.value(i).to_owned());
                }
            }
        }
        let mut shifted_per_sensor: BTreeMap<&str, usize> = BTreeMap::new();
        for &i in &shifted {
            *shifted_per_sensor
                .entry(rows[i].sensor.as_str())
                .or_default() += 1;
        }
        for sensor in &named {
            assert!(
                shifted_per_sensor.contains_key(sensor.as_str()),
                "{sensor} named, shifted nothing"
            );
        }
        for (sensor, n) in &shifted_per_sensor {
            if *n >= 40 {
                assert!(
                    named.contains(*sensor),
                    "{sensor} shifted {n} readings, not named"
                );
            }
        }
        assert!(!named.is_empty());
    }
}

/// Generates a 12-asset, 40-second TwinBench log whose time-shift attacks
/// come at `time_shifts` times TwinBench's rate (the other incidents at
/// theirs); returns its rows.
fn generate_time_shifted_plant(dir: &Path, seed: u64, time_shifts: f64) -> Vec<Row> {
    use twinflow::pipelines::twinbench::{IncidentKind, IncidentRates, generate_with_rates};
    let mut rates = IncidentRates::twinbench();
    rates.per_hour[IncidentKind::TimeShift.index()] *= time_shifts;
    let options = twinflow::pipelines::twinbench::GenerateOptions {
        assets: 12,
        seconds: 40,
        seed,
        out: dir.to_path_buf(),
        csv: false,
        progress: false,
    };
    generate_with_rates(&options, &rates).unwrap();
    read_log_rows(&dir.join("events.parquet"))
}

#[test]
fn one_worker_matches_batch() {
    let dir = tempfile::tempdir().unwrap();
    let rows = write_synthetic_log(&dir.path().join("log"), 1 << 20);
    let out = dir.path().join("out");
    let summary = replay_threads_unverified(&dir.path().join("log"), &out, 1, None);
    check_synthetic(&rows, &out, &summary);
}

#[test]
fn three_workers_over_row_groups_and_split_runs_match_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    // Row groups of 700 rows: lateness across groups comes from the statistics ...
    let rows = write_synthetic_log(&log, 700);
    let by_groups = replay_threads_unverified(&log, &dir.path().join("groups"), 3, None);
    check_synthetic(&rows, &dir.path().join("groups"), &by_groups);
    // ... and from a pass over `ts_us` when runs cut row groups.
    let by_runs = replay_threads_unverified(&log, &dir.path().join("runs"), 3, Some(250));
    check_synthetic(&rows, &dir.path().join("runs"), &by_runs);
}

#[test]
fn two_processes_on_loopback_match_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let rows = generate_small_plant(&log, 6);
    let out = dir.path().join("out");
    let outputs = replay_processes(&log, &out, 2, 2, 3000, &[]);
    let summary: Summary =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary.processes, 2);
    check_verified(&rows, &log, &out, &summary);
    // Bit-identical to one worker in one process with the same split.
    let single = replay_threads(&log, &dir.path().join("single"), 1, Some(3000));
    assert_eq!(read_windows(&out), read_windows(&dir.path().join("single")));
    assert_eq!(single.sum_window_means, summary.sum_window_means);
    // The printed summary equals the file (timely's cluster set-up prints a
    // line of its own first).
    let stdout = String::from_utf8(outputs[0].stdout.clone()).unwrap();
    let printed: Summary =
        serde_json::from_str(&stdout[stdout.find('{').expect("summary printed")..]).unwrap();
    assert_eq!(printed, summary);
}

#[test]
fn four_workers_match_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let rows = write_synthetic_log(&log, 500);
    let summary = replay_threads_unverified(&log, &dir.path().join("out"), 4, None);
    check_synthetic(&rows, &dir.path().join("out"), &summary);
}

/// Replaying into the directory of an earlier run with more workers, whose
/// parts had rolled over to more files, leaves no stale part files behind:
/// the datasets hold exactly this run's rows.
#[test]
fn rerun_into_same_directory_replaces_the_earlier_run() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let rows = write_synthetic_log(&log, 500);
    let out = dir.path().join("out");
    replay_threads_unverified(&log, &out, 4, None);
    // As if the earlier run's worker 0 had rolled over to a second file.
    std::fs::copy(
        out.join("windows/part-00000.parquet"),
        out.join("windows/part-00000-0001.parquet"),
    )
    .unwrap();
    let summary = replay_threads_unverified(&log, &out, 1, None);
    check_synthetic(&rows, &out, &summary);
    assert_eq!(dataset_rows(&out.join("windows")) as u64, summary.windows);
}

/// `windows_only` runs step W alone: the same windows as the whole pipeline,
/// and no part of the later steps' datasets left from an earlier run.
#[test]
fn windows_only_writes_step_w_alone() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let rows = write_synthetic_log(&log, 1 << 20);
    let out = dir.path().join("out");
    let whole = replay_threads_unverified(&log, &out, 2, None);
    assert!(whole.aligned_rows > 0);
    let full_windows = read_windows(&out);
    let options = ReplayOptions {
        cluster: Cluster::threads(2),
        verify: false,
        ..ReplayOptions::new(&log, &out)
    };
    let pipeline = twinflow::pipelines::pipeline::twinbench().windows_only();
    let alone = pipeline.replay(&options).unwrap().unwrap();
    check_synthetic(&rows, &out, &alone);
    assert_eq!(read_windows(&out), full_windows);
    assert_eq!(
        (alone.aligned_rows, alone.flags, alone.assets_in_view),
        (0, 0, 0)
    );
    for dataset in twinflow::pipelines::replay::LATER_DATASETS {
        assert_eq!(dataset_rows(&out.join(dataset)), 0, "{dataset}");
    }
}
