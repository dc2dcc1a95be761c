//! A sensor stamping its readings ahead of time (TwinBench's time shift)
//! does not make its line's rollup forget the line's other assets: in a
//! plant whose only incident is one time shift, every asset of the line
//! reports at every time, and the line's now ends at the newest window
//! measured on time, on 1, 2 and 4 workers alike.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::AsArray;
use arrow::datatypes::{Int64Type, UInt64Type};

use common::*;
use twinflow::engine::time::SECOND;

/// The generator's seed: its plant's one time shift starts 3.9 s into the log.
const SEED: u64 = 1;
const ASSETS: usize = 8;

/// Generates an 8-asset, 40-second TwinBench plant (one line) whose only
/// incident is one time shift, which lasts to the end of the log (time
/// shifts last at least 30 s); returns its rows and the shifted sensor.
fn generate_plant_with_one_time_shift(dir: &Path) -> (Vec<Row>, String) {
    use twinflow::pipelines::twinbench::{
        GenerateOptions, IncidentKind, IncidentRates, generate_with_rates,
    };
    let mut rates = IncidentRates {
        per_hour: [0.0; IncidentKind::ALL.len()],
    };
    rates.per_hour[IncidentKind::TimeShift.index()] = 1.5;
    let options = GenerateOptions {
        assets: ASSETS,
        seconds: 40,
        seed: SEED,
        out: dir.to_path_buf(),
        csv: false,
        progress: false,
    };
    let report = generate_with_rates(&options, &rates).unwrap();
    assert_eq!(report.labels, 1, "one incident");
    assert_eq!(report.labels_of(IncidentKind::TimeShift), 1);
    let labels = std::fs::read_to_string(dir.join("labels.csv")).unwrap();
    let label: Vec<&str> = labels.lines().nth(1).unwrap().split(',').collect();
    (
        read_log_rows(&dir.join("events.parquet")),
        label[1].to_owned(),
    )
}

/// A change to a line's rollup: `(time_us, diff, line, assets,
/// assets_reporting, newest_window_start_us)`, sorted.
type LineChange = (i64, i64, String, u64, u64, i64);

fn line_changes(out: &Path) -> Vec<LineChange> {
    let mut changes = Vec::new();
    for batch in read_dataset(&out.join("twin_changes/lines")) {
        let col = |name: &str| batch.column(batch.schema().index_of(name).unwrap()).clone();
        let (time, diff, line) = (col("time_us"), col("diff"), col("line"));
        let (assets, reporting) = (col("assets"), col("assets_reporting"));
        let newest = col("newest_window_start_us");
        for i in 0..batch.num_rows() {
            changes.push((
                time.as_primitive::<Int64Type>().value(i),
                diff.as_primitive::<Int64Type>().value(i),
                line.as_string::<i32>().value(i).to_owned(),
                assets.as_primitive::<UInt64Type>().value(i),
                reporting.as_primitive::<UInt64Type>().value(i),
                newest.as_primitive::<Int64Type>().value(i),
            ));
        }
    }
    changes.sort();
    changes
}

/// The lines' rollups as of `time`: the changes up to it, accumulated.
fn lines_as_of(changes: &[LineChange], time: i64) -> Vec<(String, u64, u64, i64)> {
    let mut view: BTreeMap<(String, u64, u64, i64), i64> = BTreeMap::new();
    for (t, diff, line, assets, reporting, newest) in changes {
        if *t <= time {
            *view
                .entry((line.clone(), *assets, *reporting, *newest))
                .or_default() += diff;
        }
    }
    view.retain(|_, count| *count != 0);
    assert!(view.values().all(|&count| count == 1), "{view:?} at {time}");
    view.into_keys().collect()
}

#[test]
fn a_time_shifted_sensor_leaves_every_asset_of_its_line_reporting() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let (rows, shifted) = generate_plant_with_one_time_shift(&log);
    // The line's final now, by hand: the newest 1 s window of a sensor in
    // which at most half the readings arrived more than 100 ms before their
    // own time (`ts`).
    let mut windows_by_hand: BTreeMap<(&str, i64), (u64, u64)> = BTreeMap::new();
    for row in &rows {
        let start = row.ts_us.div_euclid(SECOND) * SECOND;
        let (readings, ahead) = windows_by_hand.entry((&row.sensor, start)).or_default();
        *readings += 1;
        *ahead += u64::from(row.ts_us - row.arrival_us > SECOND / 10);
    }
    let last_on_time = windows_by_hand
        .iter()
        .filter(|(_, (readings, ahead))| 2 * ahead <= *readings)
        .map(|((_, start), _)| *start)
        .max()
        .unwrap();
    // The newest window of all is the shifted sensor's, stamped ahead.
    let ((sensor, newest), (readings, ahead)) = windows_by_hand
        .iter()
        .max_by_key(|((_, start), _)| *start)
        .unwrap();
    assert_eq!(*sensor, shifted);
    assert!(*newest > last_on_time && 2 * ahead > *readings);

    let mut first: Option<Vec<LineChange>> = None;
    for workers in [1, 2, 4] {
        let out = dir.path().join(format!("out-{workers}"));
        let summary = replay_threads(&log, &out, workers, None);
        assert_eq!(summary.quarantined, 0, "every event passes verification");
        // The shifted sensor's last window lies past every other sensor's:
        // counted, it would make the line's now its asset's alone.
        let windows = read_windows(&out);
        let last_of = |own: bool| {
            windows
                .keys()
                .filter(|(sensor, _)| (*sensor == shifted) == own)
                .map(|(_, start)| *start)
                .max()
                .unwrap()
        };
        assert!(
            last_of(true) > last_of(false) + SECOND,
            "{shifted} is ahead"
        );

        let changes = line_changes(&out);
        let times: std::collections::BTreeSet<i64> = changes.iter().map(|c| c.0).collect();
        for &time in &times {
            let lines = lines_as_of(&changes, time);
            assert_eq!(lines.len(), 1, "one line at {time}");
            let (_, assets, reporting, _) = &lines[0];
            assert_eq!(
                (*assets, *reporting),
                (ASSETS as u64, ASSETS as u64),
                "every asset reports at {time} on {workers} workers"
            );
        }
        let last = lines_as_of(&changes, i64::MAX);
        assert_eq!(last[0].3, last_on_time, "the line's final now");

        match &first {
            None => first = Some(changes),
            Some(one_worker) => assert!(
                *one_worker == changes,
                "the line changes on {workers} workers differ from one worker's"
            ),
        }
    }
}
