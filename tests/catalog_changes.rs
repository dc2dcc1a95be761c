//! Plant catalog changes during a replay: moving an asset to another line
//! mid-stream moves it in both lines' rollups at that time, and nothing else
//! changes then; a bad change file is a clear error; `--show twins` prints
//! the final view.

mod common;

use std::path::Path;
use std::process::Command;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, UInt64Type};
use common::{read_dataset, read_log_rows};
use twinflow::pipelines::replay::{ReplayOptions, replay};
use twinflow::pipelines::twinbench::{GenerateOptions, generate};

/// A 40-asset (two-line) plant over 30 s; returns the first event time.
fn plant(dir: &Path) -> i64 {
    generate(&GenerateOptions {
        assets: 40,
        seconds: 30,
        seed: 9,
        out: dir.to_path_buf(),
        csv: false,
        progress: false,
    })
    .unwrap();
    let rows = read_log_rows(&dir.join("events.parquet"));
    rows.iter().map(|r| r.ts_us).min().unwrap()
}

fn strings(batch: &RecordBatch, column: &str) -> Vec<String> {
    let array = batch.column_by_name(column).unwrap().as_string::<i32>();
    (0..batch.num_rows())
        .map(|i| array.value(i).to_owned())
        .collect()
}

fn ints(batch: &RecordBatch, column: &str) -> Vec<i64> {
    let array = batch.column_by_name(column).unwrap();
    array.as_primitive::<Int64Type>().values().to_vec()
}

#[test]
fn moving_an_asset_mid_stream_moves_it_between_line_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let first = plant(&log);
    // Half a second past a window end, so no window closes at that time.
    let moved_at = (first / 1_000_000 + 15) * 1_000_000 + 500_000;
    let changes = dir.path().join("changes.csv");
    std::fs::write(
        &changes,
        format!("at_us,asset,line,site\n{moved_at},asset-0003,line-01,site-0\n"),
    )
    .unwrap();
    let out = dir.path().join("out");
    let summary = replay(&ReplayOptions {
        catalog_changes: Some(changes),
        cluster: twinflow::engine::runtime::Cluster {
            workers: 2,
            ..Default::default()
        },
        ..ReplayOptions::new(&log, &out)
    })
    .unwrap()
    .unwrap();
    assert_eq!(summary.assets_in_view, 40);

    // At the move, exactly: asset-0003 retracted at line-00 and inserted at line-01 ...
    let mut asset_changes = Vec::new();
    for batch in read_dataset(&out.join("twin_changes/assets")) {
        let (assets, lines) = (strings(&batch, "asset"), strings(&batch, "line"));
        let (times, diffs) = (ints(&batch, "time_us"), ints(&batch, "diff"));
        for i in 0..batch.num_rows() {
            if times[i] == moved_at {
                asset_changes.push((assets[i].clone(), lines[i].clone(), diffs[i]));
            }
        }
    }
    asset_changes.sort();
    assert_eq!(
        asset_changes,
        vec![
            ("asset-0003".to_owned(), "line-00".to_owned(), -1),
            ("asset-0003".to_owned(), "line-01".to_owned(), 1),
        ]
    );
    // ... both lines' rollups change, by one asset each way ...
    let mut line_changes = Vec::new();
    for batch in read_dataset(&out.join("twin_changes/lines")) {
        let lines = strings(&batch, "line");
        let (times, diffs) = (ints(&batch, "time_us"), ints(&batch, "diff"));
        let assets = batch
            .column_by_name("assets")
            .unwrap()
            .as_primitive::<UInt64Type>();
        for i in 0..batch.num_rows() {
            if times[i] == moved_at {
                line_changes.push((lines[i].clone(), diffs[i], assets.value(i)));
            }
        }
    }
    line_changes.sort();
    assert_eq!(
        line_changes,
        vec![
            ("line-00".to_owned(), -1, 20),
            ("line-00".to_owned(), 1, 19),
            ("line-01".to_owned(), -1, 20),
            ("line-01".to_owned(), 1, 21),
        ]
    );
    // ... and the site, which holds the same assets, does not change then.
    for batch in read_dataset(&out.join("twin_changes/sites")) {
        assert!(ints(&batch, "time_us").iter().all(|t| *t != moved_at));
    }
    // The final view has the asset on its new line.
    let mut placed = Vec::new();
    for batch in read_dataset(&out.join("twins/assets")) {
        let (assets, lines) = (strings(&batch, "asset"), strings(&batch, "line"));
        placed.extend(assets.into_iter().zip(lines));
    }
    assert!(placed.contains(&("asset-0003".to_owned(), "line-01".to_owned())));
}

#[test]
fn a_change_naming_an_unknown_asset_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    plant(&log);
    let changes = dir.path().join("changes.csv");
    std::fs::write(
        &changes,
        "at_us,asset,line,site\n0,asset-9999,line-01,site-0\n",
    )
    .unwrap();
    let error = replay(&ReplayOptions {
        catalog_changes: Some(changes),
        ..ReplayOptions::new(&log, dir.path().join("out"))
    })
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("changes.csv") && error.contains("asset-9999"),
        "{error}"
    );
}

#[test]
fn show_twins_prints_the_final_view() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    plant(&log);
    let output = Command::new(env!("CARGO_BIN_EXE_twinflow"))
        .args(["replay", log.to_str().unwrap(), "--out"])
        .arg(dir.path().join("out"))
        .args(["--show", "twins"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("asset "))
        .collect();
    assert!(
        table[0].contains("health") && table[0].contains("temperature"),
        "{stdout}"
    );
    // One line per asset, then the two line rollups.
    assert_eq!(table.iter().filter(|l| l.starts_with("asset-")).count(), 40);
    assert!(
        table.iter().any(|l| l.starts_with("line-01: 20 assets")),
        "{stdout}"
    );
}
