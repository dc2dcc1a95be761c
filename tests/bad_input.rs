//! Bad input gives a clear error naming the file and the problem, a non-zero
//! exit and no panic; rows with invalid values are quarantined with a reason.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use common::*;
use twinflow::engine::raw_log::{RawEvent, RawLogWriter};

fn replay(log: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_twinflow"))
        .args([
            "replay",
            log.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--workers",
            "2",
            // The synthetic logs are unsigned: these are tests of reading.
            "--no-verify",
        ])
        .output()
        .unwrap()
}

/// Asserts a failed run whose message names `file` and contains `problem`.
fn assert_clear_error(output: &Output, file: &Path, problem: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "expected failure, got success: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "must not panic: {stderr}");
    assert!(
        stderr.contains(&file.display().to_string()),
        "error must name {}: {stderr}",
        file.display()
    );
    assert!(
        stderr.contains(problem),
        "error must say `{problem}`: {stderr}"
    );
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.parquet");
    assert_clear_error(
        &replay(&missing, &dir.path().join("out")),
        &missing,
        "No such file",
    );
}

#[test]
fn not_parquet_and_truncated_files() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("text.parquet");
    std::fs::write(&text, "ts_us,value\n1,2\n").unwrap();
    assert_clear_error(
        &replay(&text, &dir.path().join("out1")),
        &text,
        "not a readable Parquet file",
    );

    write_synthetic_log(&dir.path().join("log"), 1 << 20);
    let bytes = std::fs::read(dir.path().join("log/events.parquet")).unwrap();
    let truncated = dir.path().join("truncated.parquet");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert_clear_error(
        &replay(&truncated, &dir.path().join("out2")),
        &truncated,
        "not a readable Parquet file",
    );
}

#[test]
fn corrupt_data_pages() {
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_log(&dir.path().join("log"), 1 << 20);
    let mut bytes = std::fs::read(dir.path().join("log/events.parquet")).unwrap();
    // Scramble the middle of the file (column data), keeping the footer intact.
    let (from, to) = (bytes.len() / 8, bytes.len() / 2);
    for (i, b) in bytes[from..to].iter_mut().enumerate() {
        *b ^= (i as u8).wrapping_mul(31) | 1;
    }
    let corrupt = dir.path().join("corrupt.parquet");
    std::fs::write(&corrupt, &bytes).unwrap();
    assert_clear_error(
        &replay(&corrupt, &dir.path().join("out")),
        &corrupt,
        "Parquet",
    );
}

#[test]
fn wrong_schema_and_unknown_column_type() {
    let dir = tempfile::tempdir().unwrap();
    // `value` as text.
    let schema = Arc::new(Schema::new(vec![
        Field::new("ts_us", DataType::Int64, false),
        Field::new("value", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1])) as ArrayRef,
            Arc::new(StringArray::from(vec!["x"])),
        ],
    )
    .unwrap();
    let missing_columns = dir.path().join("two-columns.parquet");
    write_parquet(&missing_columns, &batch);
    assert_clear_error(
        &replay(&missing_columns, &dir.path().join("o1")),
        &missing_columns,
        "missing column `arrival_us`",
    );

    // Every column present, but `seq` is a 32-bit integer and `value` a string.
    let full = |value: ArrayRef, value_type: DataType| {
        let fields = vec![
            Field::new("ts_us", DataType::Int64, false),
            Field::new("arrival_us", DataType::Int64, false),
            Field::new("asset", DataType::Utf8, false),
            Field::new("sensor", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("value", value_type, false),
            Field::new("seq", DataType::Int32, false),
            Field::new("quality", DataType::UInt8, false),
        ];
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(StringArray::from(vec!["a/t"])),
            Arc::new(StringArray::from(vec!["temperature"])),
            value,
            Arc::new(Int32Array::from(vec![0])),
            Arc::new(arrow::array::UInt8Array::from(vec![0])),
        ];
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    };
    let text_value = dir.path().join("text-value.parquet");
    write_parquet(
        &text_value,
        &full(Arc::new(StringArray::from(vec!["1.5"])), DataType::Utf8),
    );
    assert_clear_error(
        &replay(&text_value, &dir.path().join("o2")),
        &text_value,
        "column `value` has type Utf8, expected Float64",
    );
    let int_seq = dir.path().join("int-seq.parquet");
    write_parquet(
        &int_seq,
        &full(Arc::new(Float64Array::from(vec![1.5])), DataType::Float64),
    );
    assert_clear_error(
        &replay(&int_seq, &dir.path().join("o3")),
        &int_seq,
        "column `seq` has type Int32, expected UInt64",
    );
}

#[test]
fn non_finite_values_are_quarantined_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let rows = write_synthetic_log(&log, 1 << 20);
    // Append a second log file with infinities and NaN: a directory of files is one log.
    let mut writer = RawLogWriter::create(&log.join("events_2.parquet"), None).unwrap();
    let last = rows.last().unwrap();
    for (i, value) in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 42.0]
        .into_iter()
        .enumerate()
    {
        let ts = last.arrival_us + i as i64;
        writer
            .push(&RawEvent {
                ts_us: ts,
                arrival_us: ts,
                asset: &last.asset,
                sensor: &last.sensor,
                kind: "temperature",
                value,
                seq: 9000 + i as u64,
                quality: 0,
                tag: None,
            })
            .unwrap();
    }
    writer.finish().unwrap();
    let out = dir.path().join("out");
    let output = replay(&log, &out);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    // One NaN and one unknown sensor in the synthetic log, three non-finite values here.
    assert_eq!(summary["quarantined_by_reason"]["not_finite"], 4);
    assert_eq!(summary["quarantined_by_reason"]["unknown_sensor"], 1);
    assert_eq!(summary["events_in"], rows.len() as u64 + 4);
    let quarantine = read_dataset(&out.join("quarantine"));
    let reasons: Vec<String> = quarantine
        .iter()
        .flat_map(|b| {
            let r = b.column(b.schema().index_of("reason").unwrap()).clone();
            (0..b.num_rows())
                .map(move |i| {
                    arrow::array::AsArray::as_string::<i32>(&r)
                        .value(i)
                        .to_owned()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(reasons.iter().filter(|r| *r == "not_finite").count(), 4);
    // The original fields are kept: the infinite values are there as they came.
    let values: Vec<f64> = quarantine
        .iter()
        .flat_map(|b| {
            let v = b.column(b.schema().index_of("value").unwrap()).clone();
            (0..b.num_rows())
                .map(move |i| {
                    arrow::array::AsArray::as_primitive::<arrow::datatypes::Float64Type>(&v)
                        .value(i)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(values.contains(&f64::INFINITY) && values.contains(&f64::NEG_INFINITY));
}

/// One worker meets a corrupt row group while the others read clean ones: the
/// run must fail with the file named, not hang waiting for the failed worker.
#[test]
fn a_failing_worker_fails_the_run_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_log(&dir.path().join("log"), 500);
    let path = dir.path().join("log/events.parquet");
    let mut bytes = std::fs::read(&path).unwrap();
    // Scramble the `value` column chunk of row group 4 only (read by worker 1 of 3).
    let reader =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&path).unwrap())
            .unwrap();
    let metadata = parquet::file::reader::FileReader::metadata(&reader);
    assert!(metadata.num_row_groups() >= 9);
    let (start, len) = metadata.row_group(4).column(5).byte_range();
    let (start, len) = (start as usize, len as usize);
    for b in &mut bytes[start + 8..start + len - 8] {
        *b = !*b;
    }
    let corrupt = dir.path().join("corrupt.parquet");
    std::fs::write(&corrupt, &bytes).unwrap();
    let out = dir.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_twinflow"))
        .args([
            "replay",
            corrupt.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--workers",
            "3",
            "--no-verify",
        ])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("replay hung after a worker failed");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        !status.success(),
        "a corrupt row group must fail the run: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("corrupt.parquet"), "{stderr}");
    assert!(
        !out.join("summary.json").exists(),
        "no summary for a failed run"
    );
}

/// A log written elsewhere may have nulls in any column. A row missing a
/// field its checks need is quarantined as `null_field`, and the rows around
/// it are read as if it were not there: with verification every field the
/// tag covers and the arrival time are needed; without it only the event
/// time, the sensor and the value (a row missing only its arrival time,
/// `seq` or quality is windowed).
#[test]
fn rows_with_null_fields_are_quarantined() {
    use arrow::array::{BinaryArray, UInt8Array, UInt64Array};
    use twinflow::engine::auth::{EventMac, KEYS_FILE, read_keys};

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let generated = Command::new(env!("CARGO_BIN_EXE_twinflow"))
        .args(["generate", "--assets", "2", "--seconds", "5", "--seed", "3"])
        .args(["--out", log.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(generated.status.success());
    let rows = read_log_rows(&log.join("events.parquet"));
    let last = rows.iter().max_by_key(|r| r.arrival_us).unwrap();
    let key = read_keys(&log.join(KEYS_FILE))
        .unwrap()
        .into_iter()
        .find(|k| k.sensor == last.sensor)
        .unwrap();
    let mac = EventMac::new(&key.key_bytes().unwrap());

    // Seven rows a minute after the log: six each missing one field, then a
    // complete one with a valid tag, alone in a new window.
    let at = last.arrival_us + 60_000_000;
    let seq = 1_000_000;
    let tag = mac.tag(&last.sensor, at, 20.0, seq + 6, 1);
    let n = 7;
    let missing = |column: usize| (0..n).map(move |row| row != column);
    let pick =
        |column: usize, value: i64| missing(column).map(move |present| present.then_some(value));
    let ts: Int64Array = pick(0, at).collect();
    let arrival: Int64Array = pick(1, at).collect();
    let sensor: StringArray = missing(2)
        .map(|present| present.then_some(last.sensor.as_str()))
        .collect();
    let value: Float64Array = missing(3).map(|p| p.then_some(20.0)).collect();
    let seqs: UInt64Array = missing(4)
        .zip(0..)
        .map(|(p, i)| p.then_some(seq + i))
        .collect();
    let quality: UInt8Array = missing(5).map(|p| p.then_some(1)).collect();
    let tags: BinaryArray = (0..n)
        .map(|row| Some(if row == 6 { &tag[..] } else { &[0u8; 16][..] }))
        .collect();
    let text = |value: &str| Arc::new(StringArray::from(vec![value; n])) as ArrayRef;
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("ts_us", Arc::new(ts)),
        ("arrival_us", Arc::new(arrival)),
        ("asset", text(&last.asset)),
        ("sensor", Arc::new(sensor)),
        ("kind", text("temperature")),
        ("value", Arc::new(value)),
        ("seq", Arc::new(seqs)),
        ("quality", Arc::new(quality)),
        ("tag", Arc::new(tags)),
    ];
    let schema = Schema::new(
        columns
            .iter()
            .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    );
    let batch =
        RecordBatch::try_new(Arc::new(schema), columns.into_iter().map(|c| c.1).collect()).unwrap();

    for verify in [true, false] {
        let summary = |log: &Path, name: &str| -> serde_json::Value {
            let out = dir.path().join(format!("{name}-{verify}"));
            let mut command = Command::new(env!("CARGO_BIN_EXE_twinflow"));
            command.args([
                "replay",
                log.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ]);
            command.args(["--workers", "2"]);
            if !verify {
                command.arg("--no-verify");
            }
            let output = command.output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "{stderr}");
            serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap()
        };
        let _ = std::fs::remove_file(log.join("events_2.parquet"));
        let before = summary(&log, "before");
        write_parquet(&log.join("events_2.parquet"), &batch);
        let after = summary(&log, "after");

        let reasons = |s: &serde_json::Value| {
            let mut r = s["quarantined_by_reason"].as_object().unwrap().clone();
            r.remove("null_field").unwrap_or(serde_json::json!(0))
        };
        assert_eq!(reasons(&before), 0, "verify: {verify}");
        let needed = if verify { 6 } else { 3 };
        assert_eq!(reasons(&after), needed, "verify: {verify}");
        let others = |s: &serde_json::Value| {
            let mut r = s["quarantined_by_reason"].as_object().unwrap().clone();
            r.remove("null_field");
            r
        };
        assert_eq!(others(&after), others(&before), "verify: {verify}");
        assert_eq!(
            after["events_in"],
            before["events_in"].as_u64().unwrap() + 7
        );
        assert_eq!(
            after["windows"],
            before["windows"].as_u64().unwrap() + 1,
            "the complete row makes a window of its own (verify: {verify})"
        );
    }
}
