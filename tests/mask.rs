//! Masks: `twinflow mask`'s blocks checked from the file it writes, and
//! `replay --mask` against the batch computation of W over the raw log with
//! the hidden readings taken out, on 1 and 2 workers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use arrow::array::AsArray;
use arrow::datatypes::UInt64Type;
use common::*;
use twinflow::engine::log_source::SplitOptions;
use twinflow::engine::runtime::Cluster;
use twinflow::pipelines::mask::generate::{MaskOptions, generate_mask};
use twinflow::pipelines::mask::{MaskCell, read_cells, write_mask};
use twinflow::pipelines::pipeline::twinbench;
use twinflow::pipelines::replay::{ReplayOptions, Summary};
use twinflow::pipelines::twinbench::plant::Plant;
use twinflow::pipelines::twinbench::{GenerateOptions, IncidentRates, generate_with_rates};

const S: i64 = 1_000_000;

/// A log directory with TwinBench's catalog for `assets` assets and a truth
/// of `seconds` seconds from 0 (only its times matter to a mask).
fn write_catalog_and_truth(dir: &Path, assets: usize, seconds: i64) {
    std::fs::create_dir_all(dir).unwrap();
    Plant::new(assets).catalog().write_dir(dir).unwrap();
    let ts: Vec<i64> = (0..seconds).map(|s| s * S).collect();
    write_parquet(
        &dir.join("truth.parquet"),
        vec![
            ("asset", strings(&vec!["asset-0000"; ts.len()])),
            ("channel", strings(&vec!["temp-1"; ts.len()])),
            ("ts_us", ints(&ts)),
            ("value", floats(&vec![50.0; ts.len()])),
        ],
    );
}

/// The blocks of a mask as its cells show them: per asset, the runs of
/// consecutive seconds of each channel, as (start, end) in seconds → the
/// channels hidden over exactly that run.
fn blocks_of(cells: &[MaskCell]) -> BTreeMap<String, BTreeMap<(i64, i64), BTreeSet<String>>> {
    let mut seconds: BTreeMap<(String, String), BTreeSet<i64>> = BTreeMap::new();
    for cell in cells {
        assert_eq!(cell.window_start_us % S, 0, "{cell:?} is off the 1 s grid");
        let fresh = seconds
            .entry((cell.asset.clone(), cell.channel.clone()))
            .or_default()
            .insert(cell.window_start_us / S);
        assert!(fresh, "{cell:?} listed twice");
    }
    let mut blocks: BTreeMap<String, BTreeMap<(i64, i64), BTreeSet<String>>> = BTreeMap::new();
    for ((asset, channel), seconds) in seconds {
        let seconds: Vec<i64> = seconds.into_iter().collect();
        for run in seconds.chunk_by(|a, b| b - a == 1) {
            let span = (run[0], run[run.len() - 1] + 1);
            blocks
                .entry(asset.clone())
                .or_default()
                .entry(span)
                .or_default()
                .insert(channel.clone());
        }
    }
    blocks
}

#[test]
fn masks_hold_blocks_of_30_to_300_s_apart_in_the_last_40_percent() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    // One hour: the scored span is [2160 s, 3600 s).
    write_catalog_and_truth(&log, 30, 3600);
    let write = |name: &str, seed: u64| {
        let path = dir.path().join(name);
        let options = MaskOptions {
            seed,
            ..MaskOptions::default()
        };
        let report = generate_mask(&log, &path, &options).unwrap();
        assert_eq!(report.scored_from_us, 2160 * S);
        let cells = read_cells(&path).unwrap();
        assert_eq!(report.cells, cells.len() as u64);
        cells
    };
    let cells = write("mask.parquet", 7);
    let blocks = blocks_of(&cells);
    let groups: [BTreeSet<String>; 2] = [
        ["temp-1", "temp-2", "temp-3"].map(String::from).into(),
        ["press-1", "press-2"].map(String::from).into(),
    ];
    let (mut singles, mut quantities, mut lengths) = (0, 0, Vec::new());
    for (asset, blocks) in &blocks {
        let spans: Vec<&(i64, i64)> = blocks.keys().collect();
        for (&&(start, end), channels) in spans.iter().zip(blocks.values()) {
            assert!(
                (2160..3600 - 10).contains(&start) && end <= 3600 - 10,
                "{asset}: block [{start}, {end}) s outside the scored span"
            );
            assert!(
                (30..=300).contains(&(end - start)),
                "{asset}: [{start}, {end}) s"
            );
            lengths.push(end - start);
            match channels.len() {
                1 => singles += 1,
                _ => {
                    assert!(
                        groups.contains(channels),
                        "{asset}: {channels:?} is no quantity"
                    );
                    quantities += 1;
                }
            }
        }
        // Blocks of an asset (its runs on any channel) neither overlap nor touch.
        for pair in spans.windows(2) {
            assert!(
                pair[1].0 >= pair[0].1 + 10,
                "{asset}: blocks {:?} and {:?} closer than 10 s",
                pair[0],
                pair[1]
            );
        }
    }
    // 30 assets × 1440 s at one block per 300 s on average; about a quarter
    // of them whole quantities.
    let total = singles + quantities;
    assert!((80..=180).contains(&total), "{total} blocks");
    assert!(
        (0.1..0.4).contains(&(quantities as f64 / total as f64)),
        "{quantities} of {total} blocks hide a quantity"
    );
    assert!(lengths.iter().min().unwrap() < &60 && lengths.iter().max().unwrap() > &240);

    // The same seed gives the same mask; another seed another.
    assert_eq!(write("again.parquet", 7), cells);
    assert_ne!(write("other.parquet", 8), cells);
}

#[test]
fn a_log_without_truth_cannot_be_masked() {
    let dir = tempfile::tempdir().unwrap();
    write_catalog_and_truth(dir.path(), 1, 10);
    std::fs::remove_file(dir.path().join("truth.parquet")).unwrap();
    let error = generate_mask(
        dir.path(),
        &dir.path().join("m.parquet"),
        &MaskOptions::default(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("truth.parquet"), "{error}");
}

/// Replays `log` with `mask` on `workers` threads (runs of 4000 rows).
fn replay_masked(log: &Path, out: &Path, mask: Option<&Path>, workers: usize) -> Summary {
    twinbench()
        .replay(&ReplayOptions {
            cluster: Cluster::threads(workers),
            split: SplitOptions {
                max_run_rows: Some(4000),
            },
            mask: mask.map(Path::to_path_buf),
            ..ReplayOptions::new(log.join("events.parquet"), out)
        })
        .unwrap()
        .expect("single process leads")
}

fn generate_log(log: &Path, assets: usize, seconds: u64) {
    let options = GenerateOptions {
        assets,
        seconds,
        seed: 7,
        out: log.to_path_buf(),
        csv: false,
        progress: false,
    };
    generate_with_rates(&options, &IncidentRates::twinbench().scaled(3.0)).unwrap();
}

#[test]
fn replay_drops_exactly_the_hidden_readings_on_1_and_2_workers() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    generate_log(&log, 6, 90);
    let rows = read_log_rows(&log.join("events.parquet"));
    let checked = verification::verify(&rows, &verification::Rules::read_dir(&log));
    let expected = expected_w_of(&rows, &verification::verified_fates(&checked), 2 * S);

    // Generated blocks of 3–12 s, and the cells of three late readings.
    let generated = dir.path().join("generated.parquet");
    let options = MaskOptions {
        min_block_s: 3,
        max_block_s: 12,
        spacing_s: 20,
        min_gap_s: 2,
        ..MaskOptions::default()
    };
    generate_mask(&log, &generated, &options).unwrap();
    let mut cells = read_cells(&generated).unwrap();
    assert!(expected.late_rows.len() >= 3, "the log has late readings");
    for &index in &expected.late_rows[..3] {
        let row = &rows[index];
        cells.push(MaskCell {
            asset: row.asset.clone(),
            channel: row.sensor.rsplit('/').next().unwrap().to_owned(),
            window_start_us: row.ts_us.div_euclid(S) * S,
        });
    }
    let mask = dir.path().join("mask.parquet");
    write_mask(&mask, &cells, &[]).unwrap();
    // TwinBench names a sensor `<asset>/<channel>`.
    let hidden: BTreeSet<(String, i64)> = cells
        .iter()
        .map(|c| (format!("{}/{}", c.asset, c.channel), c.window_start_us))
        .collect();
    let is_hidden =
        |sensor: &str, ts_us: i64| hidden.contains(&(sensor.to_owned(), ts_us.div_euclid(S) * S));

    // What the batch path keeps and hides: on time, then late.
    let kept: BTreeMap<(String, i64), WindowRow> = expected
        .windows
        .iter()
        .filter(|((sensor, start), _)| !is_hidden(sensor, *start))
        .map(|(k, w)| (k.clone(), w.clone()))
        .collect();
    let hidden_on_time: u64 = expected
        .windows
        .iter()
        .filter(|((sensor, start), _)| is_hidden(sensor, *start))
        .map(|(_, w)| w.count)
        .sum();
    let late_kept: Vec<u64> = expected
        .late_rows
        .iter()
        .filter(|&&i| !is_hidden(&rows[i].sensor, rows[i].ts_us))
        .map(|&i| i as u64)
        .collect();
    let hidden_late = expected.late_rows.len() - late_kept.len();
    assert!(
        hidden_on_time > 1000 && hidden_late >= 3,
        "{hidden_on_time} {hidden_late}"
    );

    let one = replay_masked(&log, &dir.path().join("one"), Some(&mask), 1);
    let two = replay_masked(&log, &dir.path().join("two"), Some(&mask), 2);
    let unmasked = replay_masked(&log, &dir.path().join("unmasked"), None, 1);
    for (out, summary) in [("one", &one), ("two", &two)] {
        let out = dir.path().join(out);
        assert_windows_match(&read_windows(&out), &kept);
        assert_eq!(summary.masked, hidden_on_time + hidden_late as u64);
        assert_eq!(summary.late_events, late_kept.len() as u64);
        let mut late_positions: Vec<u64> = read_dataset(&out.join("late"))
            .iter()
            .flat_map(|b| {
                let positions = b.column_by_name("position").unwrap();
                positions.as_primitive::<UInt64Type>().values().to_vec()
            })
            .collect();
        late_positions.sort_unstable();
        assert_eq!(late_positions, late_kept);
    }
    // Beside the unmasked replay, only the hidden windows are gone.
    let unmasked_kept: BTreeMap<_, _> = read_windows(&dir.path().join("unmasked"))
        .into_iter()
        .filter(|((sensor, start), _)| !is_hidden(sensor, *start))
        .collect();
    assert_windows_match(&read_windows(&dir.path().join("one")), &unmasked_kept);
    assert_eq!(unmasked.masked, 0);
    assert_eq!(unmasked.events_in, one.events_in);
    assert_eq!(unmasked.quarantined, one.quarantined);
    // 1 and 2 workers: the same results.
    assert_eq!(
        one,
        Summary {
            workers: 1,
            elapsed_s: one.elapsed_s,
            events_per_s: one.events_per_s,
            peak_rss_mb: one.peak_rss_mb,
            cpu_s: one.cpu_s,
            ..two.clone()
        }
    );
    assert_eq!(one.mask.as_deref(), Some(mask.as_path()));
}

#[test]
fn masks_that_name_nothing_or_are_no_masks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    generate_log(&log, 1, 5);
    let refused = |name: &str, columns: Vec<(&str, arrow::array::ArrayRef)>| {
        let path = dir.path().join(name);
        write_parquet(&path, columns);
        twinbench()
            .replay(&ReplayOptions {
                mask: Some(path),
                ..ReplayOptions::new(log.join("events.parquet"), dir.path().join("out"))
            })
            .unwrap_err()
            .to_string()
    };
    let error = refused(
        "unknown_asset.parquet",
        vec![
            ("asset", strings(&["asset-0009"])),
            ("channel", strings(&["flow"])),
            ("window_start_us", ints(&[0])),
        ],
    );
    assert!(
        error.contains("asset \"asset-0009\" is not in the catalog"),
        "{error}"
    );
    let error = refused(
        "unknown_channel.parquet",
        vec![
            ("asset", strings(&["asset-0000"])),
            ("channel", strings(&["temp-9"])),
            ("window_start_us", ints(&[0])),
        ],
    );
    assert!(error.contains("no sensor on channel \"temp-9\""), "{error}");
    let error = refused(
        "strings.parquet",
        vec![
            ("asset", strings(&["asset-0000"])),
            ("channel", strings(&["flow"])),
            ("window_start_us", strings(&["0"])),
        ],
    );
    assert!(
        error.contains("not a mask: column `window_start_us` is Utf8"),
        "{error}"
    );
    let error = refused(
        "no_channel.parquet",
        vec![
            ("asset", strings(&["asset-0000"])),
            ("window_start_us", ints(&[0])),
        ],
    );
    assert!(error.contains("not a mask: no column `channel`"), "{error}");
}
