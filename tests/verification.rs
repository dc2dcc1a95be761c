//! Verification on TwinBench and on hand-made tampering: every forged and
//! replayed event is quarantined with its reason, flooding takes exactly the
//! events beyond the budget, implausible events are caught, keys rotate, and
//! the outcome does not depend on the number of workers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use arrow::array::AsArray;
use arrow::datatypes::{Int64Type, UInt64Type};
use common::reference::Tables;
use common::*;
use twinflow::engine::auth::{EventMac, SensorKey, read_keys, write_keys};
use twinflow::engine::runtime::Cluster;
use twinflow::engine::verify::Untagged;
use twinflow::pipelines::lineage::Lineage;
use twinflow::pipelines::replay::{ReplayOptions, Summary, replay};
use twinflow::pipelines::twinbench::labels::read_labels;
use twinflow::pipelines::twinbench::{GenerateOptions, IncidentRates, generate_with_rates};

/// A quarantined row as `quarantine/` holds it.
#[derive(Debug, Clone, PartialEq)]
struct Quarantined {
    position: u64,
    reason: String,
    sensor: String,
    ts_us: i64,
    arrival_us: i64,
}

fn read_quarantine(out: &Path) -> Vec<Quarantined> {
    let mut rows = Vec::new();
    for batch in read_dataset(&out.join("quarantine")) {
        let col = |name: &str| batch.column(batch.schema().index_of(name).unwrap()).clone();
        let (position, reason, sensor, ts, arrival) = (
            col("position"),
            col("reason"),
            col("sensor"),
            col("ts_us"),
            col("arrival_us"),
        );
        for i in 0..batch.num_rows() {
            rows.push(Quarantined {
                position: position.as_primitive::<UInt64Type>().value(i),
                reason: reason.as_string::<i32>().value(i).to_owned(),
                sensor: sensor.as_string::<i32>().value(i).to_owned(),
                ts_us: ts.as_primitive::<Int64Type>().value(i),
                arrival_us: arrival.as_primitive::<Int64Type>().value(i),
            });
        }
    }
    rows.sort_by_key(|q| q.position);
    rows
}

/// The labelled attacks: every forged and replayed event is quarantined with
/// its reason and nothing else is, outside the flooding intervals; inside
/// them exactly the events beyond twice the rated count per second are.
#[test]
fn twinbench_attacks_are_quarantined_with_the_right_reason() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let options = GenerateOptions {
        assets: 12,
        seconds: 60,
        seed: 11,
        out: log.clone(),
        csv: false,
        progress: false,
    };
    let report = generate_with_rates(&options, &IncidentRates::twinbench().scaled(20.0)).unwrap();
    assert!(report.forged > 0 && report.replayed > 0 && report.flooding > 0);
    let out = dir.path().join("out");
    let summary = replay_threads(&log, &out, 2, Some(5000));
    let quarantined = read_quarantine(&out);
    assert_eq!(quarantined.len() as u64, summary.quarantined);

    let labels = read_labels(&log.join("labels.csv")).unwrap();
    let labelled = |kind: &str, sensor: &str, t: i64| {
        labels
            .iter()
            .any(|l| l.kind == kind && l.sensor == sensor && l.covers(t))
    };
    let count = |reason: &str| quarantined.iter().filter(|q| q.reason == reason).count() as u64;
    // 100 % of the injected forgeries and replays, each inside its label
    // (forged and replayed labels bound the arrival time).
    assert_eq!(count("bad_tag"), report.forged);
    assert_eq!(count("replayed"), report.replayed);
    for q in &quarantined {
        match q.reason.as_str() {
            "bad_tag" => assert!(labelled("forged", &q.sensor, q.arrival_us), "{q:?}"),
            "replayed" => assert!(labelled("replayed", &q.sensor, q.arrival_us), "{q:?}"),
            // Flooding labels bound the event time.
            "flooding" => assert!(labelled("flooding", &q.sensor, q.ts_us), "{q:?}"),
            // No genuine event is implausible in TwinBench.
            other => panic!("unexpected reason {other}: {q:?}"),
        }
    }

    // Inside the flooding intervals: per sensor and second, in arrival order,
    // the genuine events (valid tag, new seq) beyond the budget.
    let rows = read_log_rows(&log.join("events.parquet"));
    let rules = verification::Rules::read_dir(&log);
    let mut seen: BTreeSet<(&str, u64)> = BTreeSet::new();
    let mut per_second: BTreeMap<(&str, i64), u64> = BTreeMap::new();
    let mut expected_flooding = BTreeSet::new();
    for (position, row) in rows.iter().enumerate() {
        if !rules.tag_valid(row) || !seen.insert((&row.sensor, row.seq)) {
            continue;
        }
        if !labelled("flooding", &row.sensor, row.ts_us) {
            continue;
        }
        let n = per_second
            .entry((&row.sensor, row.ts_us.div_euclid(1_000_000)))
            .or_default();
        *n += 1;
        if *n > rules.budget(&row.sensor).unwrap() {
            expected_flooding.insert(position as u64);
        }
    }
    let flooding: BTreeSet<u64> = quarantined
        .iter()
        .filter(|q| q.reason == "flooding")
        .map(|q| q.position)
        .collect();
    assert!(!flooding.is_empty());
    assert_eq!(flooding, expected_flooding);
}

/// A signed log with tampering the generator does not do: a second key for
/// one sensor (rotation), an event from the future, one far in the past, a
/// value out of the physical range, a NaN, an unknown sensor, an untagged
/// event, a tag of another sensor's key and a duplicate. Replay agrees with
/// the plain verification for 1 and 3 workers, and `--untagged accept` lets
/// the untagged event through, counted.
#[test]
fn tampering_is_caught_and_rotation_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    generate_with_rates(
        &GenerateOptions {
            assets: 3,
            seconds: 30,
            seed: 4,
            out: base.clone(),
            csv: false,
            progress: false,
        },
        &IncidentRates::twinbench().scaled(0.0),
    )
    .unwrap();
    let mut rows = read_log_rows(&base.join("events.parquet"));
    let tables = Tables::read_dir(&base);
    let kind_of = |sensor: &str| {
        tables
            .sensors
            .iter()
            .find(|s| s.sensor == sensor)
            .map_or("temperature".to_owned(), |s| s.kind.clone())
    };

    // Rotation: sensor 0 gets a second key; the events after row 3000 of it use it.
    let mut keys = read_keys(&base.join("keys.json")).unwrap();
    let rotated = rows[0].sensor.clone();
    let new_key = [0x5a; 32];
    keys.push(SensorKey {
        sensor: rotated.clone(),
        key_id: "rotated".into(),
        key: hex::encode(new_key),
    });
    let sign = |r: &mut Row, key: &[u8; 32]| {
        r.tag = Some(
            EventMac::new(key)
                .tag(&r.sensor, r.ts_us, r.value, r.seq, r.quality)
                .to_vec(),
        );
    };
    for r in rows.iter_mut().skip(3000).filter(|r| r.sensor == rotated) {
        sign(r, &new_key);
    }
    let other_key: [u8; 32] = hex::decode(&keys[5].key).unwrap().try_into().unwrap();
    assert_ne!(keys[5].sensor, rows[2900].sensor);

    // Genuine rows tampered with in place, re-signed unless the point is the
    // tag (their seqs stay, so the replay windows are undisturbed).
    let key_of = |sensor: &str| -> [u8; 32] {
        let k = keys.iter().find(|k| k.sensor == sensor).unwrap();
        hex::decode(&k.key).unwrap().try_into().unwrap()
    };
    let tamper = |r: &mut Row, change: &dyn Fn(&mut Row)| {
        change(r);
        if r.tag.is_some() {
            let key = key_of(&r.sensor);
            sign(r, &key);
        }
    };
    tamper(&mut rows[500], &|r| r.ts_us = r.arrival_us + 6_000_000); // from the future
    tamper(&mut rows[900], &|r| r.ts_us = r.arrival_us - 3_700_000_000); // an hour and more old
    tamper(&mut rows[1300], &|r| r.value = 1e6); // out of the physical range
    tamper(&mut rows[1700], &|r| r.value = f64::NAN);
    tamper(&mut rows[2100], &|r| r.value = f64::INFINITY);
    tamper(&mut rows[2500], &|r| r.tag = None); // untagged
    sign(&mut rows[2900], &other_key); // another sensor's key
    // An unknown sensor, and a plain duplicate of an accepted event.
    let mut stranger = rows[3300].clone();
    stranger.sensor = "asset-9999/temp-1".into();
    stranger.asset = "asset-9999".into();
    let duplicate = rows[3700].clone();
    rows.insert(3701, duplicate);
    rows.insert(3301, stranger);

    let log = dir.path().join("log");
    std::fs::create_dir_all(&log).unwrap();
    for file in ["assets.csv", "sensors.csv"] {
        std::fs::copy(base.join(file), log.join(file)).unwrap();
    }
    write_keys(&log.join("keys.json"), &keys).unwrap();
    write_log(&log.join("events.parquet"), &rows, &kind_of, 2000);

    let rules = verification::Rules::read_dir(&log);
    let checked = verification::verify(&rows, &rules);
    let expected = verification::count_reasons(&checked);
    assert_eq!(
        expected,
        BTreeMap::from(
            [
                ("bad_tag", 3),
                ("clock", 2),
                ("out_of_range", 3),
                ("replayed", 1)
            ]
            .map(|(k, v)| (k.to_owned(), v))
        ),
        "the reference sees every tampering"
    );
    let fates = verification::verified_fates(&checked);
    let w = expected_w_of(&rows, &fates, 2_000_000);
    let mut summaries: Vec<Summary> = Vec::new();
    for (workers, run_rows) in [(1, None), (3, Some(700))] {
        let out = dir.path().join(format!("out{workers}"));
        let summary = replay_threads(&log, &out, workers, run_rows);
        assert_eq!(summary.quarantined_by_reason, expected, "{workers} workers");
        assert_eq!(summary.late_events, w.late);
        assert_windows_match(&read_windows(&out), &w.windows);
        summaries.push(summary);
    }
    // Rotation: the re-signed events of the rotated sensor are windowed.
    assert!(
        read_windows(&dir.path().join("out1"))
            .keys()
            .filter(|(s, _)| *s == rotated)
            .count()
            > 20
    );
    assert_eq!(summaries[0].windows, summaries[1].windows);
    assert_eq!(summaries[0].seq_gaps, summaries[1].seq_gaps);
    assert_eq!(summaries[0].missing_seq, summaries[1].missing_seq);

    // `--untagged accept`: the untagged event passes the tag check.
    let out = dir.path().join("accepting");
    let summary = replay(&ReplayOptions {
        cluster: Cluster::threads(2),
        untagged: Untagged::Accept,
        ..ReplayOptions::new(&log, &out)
    })
    .unwrap()
    .unwrap();
    assert_eq!(summary.unauthenticated, 1);
    assert_eq!(
        summary.quarantined_by_reason.get("bad_tag"),
        Some(&(expected["bad_tag"] - 1))
    );
}

/// Sequence numbers that never arrive are reported in `seq_gaps/`, and add up
/// to what the generator dropped between each sensor's first and last
/// accepted event.
#[test]
fn dropped_events_show_as_seq_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let report = generate_with_rates(
        &GenerateOptions {
            assets: 4,
            seconds: 60,
            seed: 9,
            out: log.clone(),
            csv: false,
            progress: false,
        },
        &IncidentRates::twinbench().scaled(5.0),
    )
    .unwrap();
    let out = dir.path().join("out");
    let summary = replay_threads(&log, &out, 2, Some(3000));
    // Independently: per sensor, the numbers between the least and greatest
    // accepted that were never accepted.
    let rows = read_log_rows(&log.join("events.parquet"));
    let checked = verification::verify(&rows, &verification::Rules::read_dir(&log));
    let mut accepted: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    for (row, c) in rows.iter().zip(&checked) {
        if !matches!(c.verdict, Some("bad_tag" | "replayed")) {
            accepted.entry(&row.sensor).or_default().insert(row.seq);
        }
    }
    let missing: u64 = accepted
        .values()
        .map(|seqs| {
            let (first, last) = (*seqs.first().unwrap(), *seqs.last().unwrap());
            last - first + 1 - seqs.len() as u64
        })
        .sum();
    assert!(missing > 0 && missing <= report.dropped + report.dropped_in_dropouts);
    assert_eq!(summary.missing_seq, missing);
    let gaps = read_dataset(&out.join("seq_gaps"));
    let in_dataset: u64 = gaps
        .iter()
        .map(|b| {
            let m = b.column(b.schema().index_of("missing").unwrap());
            m.as_primitive::<UInt64Type>().values().iter().sum::<u64>()
        })
        .sum();
    assert_eq!(in_dataset, missing);
}

/// Every derived file records its lineage: the pipeline and version, the
/// source file it was read from (with its rows), and whether events were
/// verified; DuckDB and pyarrow read it from the footer (the interop test).
#[test]
fn every_derived_file_records_its_lineage() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    generate_with_rates(
        &GenerateOptions {
            assets: 2,
            seconds: 20,
            seed: 2,
            out: log.clone(),
            csv: false,
            progress: false,
        },
        &IncidentRates::twinbench(),
    )
    .unwrap();
    let out = dir.path().join("out");
    let summary = replay_threads(&log, &out, 2, None);
    let mut files = 0;
    for dataset in [
        "windows",
        "quarantine",
        "seq_gaps",
        "aligned",
        "twins/assets",
    ] {
        for part in twinflow::pipelines::dataset::parts(&out.join(dataset)).unwrap() {
            let lineage = Lineage::read(&part).unwrap();
            assert_eq!(
                format!("{} {}", lineage.pipeline, lineage.version),
                summary.pipeline
            );
            assert!(lineage.verified);
            assert_eq!(lineage.sources, summary.sources);
            assert_eq!(lineage.sources.len(), 1);
            let source = &lineage.sources[0];
            assert!(Path::new(&source.path).is_absolute());
            assert!(source.path.ends_with("log/events.parquet"), "{source:?}");
            assert_eq!(source.rows, summary.events_in);
            assert!(lineage.catalog.unwrap().ends_with("log/sensors.csv"));
            files += 1;
        }
    }
    assert_eq!(files, 10);
}

/// A log written by another writer may break each column's pages at other
/// rows. Decoding starts only where a page of every byte-array column starts
/// (the Parquet reader's skip over byte arrays is unchecked on damaged
/// pages), so runs are cut where those agree and a selection inside pages
/// reads back from one and drops the rows it did not ask for. The same
/// events rewritten with pages of about a kilobyte (strings plain, a page
/// every 37 to 148 rows depending on the column) must replay to the same
/// outputs, with the default runs and with runs of 700 rows.
#[test]
fn logs_whose_columns_break_pages_apart_replay_alike() {
    use arrow::record_batch::RecordBatchReader;
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::properties::{EnabledStatistics, WriterProperties};

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let options = GenerateOptions {
        assets: 8,
        seconds: 160,
        seed: 21,
        out: log.clone(),
        csv: false,
        progress: false,
    };
    generate_with_rates(&options, &IncidentRates::twinbench().scaled(20.0)).unwrap();

    let rewritten = dir.path().join("rewritten");
    std::fs::create_dir_all(&rewritten).unwrap();
    for file in ["sensors.csv", "assets.csv", "keys.json"] {
        std::fs::copy(log.join(file), rewritten.join(file)).unwrap();
    }
    let source = std::fs::File::open(log.join("events.parquet")).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(source)
        .unwrap()
        .build()
        .unwrap();
    let properties = WriterProperties::builder()
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_data_page_size_limit(1024)
        .set_write_batch_size(37)
        .build();
    let target = std::fs::File::create(rewritten.join("events.parquet")).unwrap();
    let mut writer = ArrowWriter::try_new(target, reader.schema(), Some(properties)).unwrap();
    let mut rows = 0;
    for batch in reader {
        let batch = batch.unwrap();
        rows += batch.num_rows();
        writer.write(&batch).unwrap();
    }
    writer.close().unwrap();
    assert!(rows > 128 * 1024, "more than one default run: {rows} rows");

    let outputs = |summary: &Summary| {
        (
            summary.windows,
            summary.sum_window_means,
            summary.late_events,
            summary.quarantined_by_reason.clone(),
            summary.seq_gaps,
            summary.flags,
            summary.sum_fused_temperature,
        )
    };
    for run_rows in [None, Some(700)] {
        let expected = replay_threads(&log, &dir.path().join("out"), 2, run_rows);
        let got = replay_threads(&rewritten, &dir.path().join("out-rewritten"), 2, run_rows);
        assert_eq!(got.events_in, rows as u64);
        assert_eq!(
            outputs(&got),
            outputs(&expected),
            "runs of {run_rows:?} rows"
        );
        assert_eq!(
            read_quarantine(&dir.path().join("out-rewritten")),
            read_quarantine(&dir.path().join("out"))
        );
    }
}
