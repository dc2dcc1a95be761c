//! Inputs that crashed a fuzz target (`fuzz/`, see fuzz/README.md), kept as
//! regression tests: each must now give a clear error, not a panic.

use std::path::{Path, PathBuf};

use arrow::array::Array;
use arrow::datatypes::DataType;
use twinflow::engine::Error;
use twinflow::engine::auth::SensorKey;
use twinflow::engine::catalog::Catalog;
use twinflow::engine::log_source::{Fields, LogSource, SplitOptions};
use twinflow::engine::run_maxima::watermark_max;
use twinflow::engine::verify::{Untagged, Verification};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(name)
}

/// The splits each damaged log is read with: the default, and runs of 5 rows.
fn splits() -> [SplitOptions; 2] {
    [
        SplitOptions::default(),
        SplitOptions {
            max_run_rows: Some(5),
        },
    ]
}

/// The Parquet error (file named, message) opening `path` gives with each
/// split: a damaged file must not open, and must fail with a Parquet error.
fn parquet_errors_on_open(path: &Path) -> Vec<(PathBuf, String)> {
    splits()
        .into_iter()
        .map(|split| match LogSource::open(path, split) {
            Err(Error::Parquet { path, message }) => (path, message),
            Err(other) => panic!("expected a Parquet error, got {other}"),
            Ok(_) => panic!("a damaged file opened"),
        })
        .collect()
}

/// A footer whose column chunk starts at a negative offset: the Parquet
/// reader asserted on it while reading the run (`ColumnChunkMetaData::byte_range`).
#[test]
fn log_chunk_outside_file() {
    for (_, message) in parquet_errors_on_open(&data("log_chunk_outside_file.parquet")) {
        assert!(message.contains("lies outside the file"), "{message}");
    }
}

/// Definition levels that make the Parquet reader panic inside arrow-buffer
/// ("offset + len out of bounds") while planning reads the `ts_us` column:
/// the log reader catches the panic at its boundary and names the file.
#[test]
fn log_reader_panic_is_an_error() {
    let path = data("log_def_levels_panic.parquet");
    for (named, message) in parquet_errors_on_open(&path) {
        assert_eq!(named, path);
        assert!(
            message.contains("the Parquet reader failed on damaged data"),
            "{message}"
        );
    }
}

/// Opens a log and reads all of it as replay does (every run, all columns,
/// set-aside rows re-read, the discovered catalog), with the default split
/// and with runs of 5 rows; returns the errors met. Must not panic.
fn read_everything(path: &Path) -> Vec<String> {
    let mut errors = Vec::new();
    for split in splits() {
        let log = match LogSource::open(path, split) {
            Ok(log) => log,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        if let Err(e) = log.distinct_sensors() {
            errors.push(e.to_string());
        }
        for run in log.runs() {
            let mut rows = 0;
            match log.read_run(run, Fields::Checked) {
                Ok(mut reader) => loop {
                    match reader.next_batch() {
                        Ok(Some(batch)) => {
                            // What every consumer of a run's batches downcasts to.
                            assert_eq!(batch.sensor.values().data_type(), &DataType::Utf8);
                            rows += batch.ts.len()
                        }
                        Ok(None) => break,
                        Err(e) => {
                            errors.push(e.to_string());
                            break;
                        }
                    }
                },
                Err(e) => errors.push(e.to_string()),
            }
            let offsets: Vec<usize> = (0..rows).collect();
            if let Err(e) = log.read_rows(run, &offsets) {
                errors.push(e.to_string());
            }
        }
    }
    errors
}

/// Finds each run's greatest watermark time as a replay does before reading
/// (the rows at the run's greatest time first, a selection inside its
/// pages), unverified and verified with every sensor of the log keyed;
/// returns the errors met. Must not panic.
fn watermark_maxima(path: &Path) -> Vec<String> {
    let mut errors = Vec::new();
    for split in splits() {
        let Ok(log) = LogSource::open(path, split) else {
            continue;
        };
        let Ok(sensors) = log.distinct_sensors() else {
            continue;
        };
        let catalog = Catalog::discovered(&sensors).unwrap();
        let keys: Vec<SensorKey> = sensors
            .iter()
            .map(|(sensor, _, _)| SensorKey {
                sensor: sensor.clone(),
                key_id: "k0".into(),
                key: "07".repeat(32),
            })
            .collect();
        let verification =
            Verification::new(&catalog, &keys, |_| Some(10.0), Untagged::Accept).unwrap();
        for run in log.runs() {
            for verification in [None, Some(&verification)] {
                if let Err(e) = watermark_max(&log, run, &catalog, verification) {
                    errors.push(e.to_string());
                }
            }
        }
    }
    errors
}

/// A byte-array page whose value lengths run past its end. parquet's plain
/// decoder skipped over them unchecked, and the read that followed on the
/// same page asked for an allocation of exabytes, which aborted the process
/// (found by the `log_parquet` target in the verified pre-pass, whose
/// selection starts inside pages). Decoding now starts only at page starts
/// of byte-array columns (`safe_selection`), where reading checks lengths.
#[test]
fn log_byte_array_skip_is_an_error() {
    let file = "log_byte_array_skip.parquet";
    let path = data(file);
    let mut errors = read_everything(&path);
    errors.extend(watermark_maxima(&path));
    assert!(
        errors
            .iter()
            .any(|e| e.contains(file) && e.contains("eof decoding byte array")),
        "{errors:#?}"
    );
    // Test builds check arithmetic, so the wrapping subtraction panicked
    // here (and the log reader caught it) where a release build aborted.
    assert_no_reader_panic(&errors);
}

/// Asserts that none of `errors` is a panic of the Parquet reader caught by
/// the log reader: the input failed the reader's own checks.
fn assert_no_reader_panic(errors: &[String]) {
    let caught = "the Parquet reader failed on damaged data";
    assert!(!errors.iter().any(|e| e.contains(caught)), "{errors:#?}");
}

/// Damaged files on which the Parquet reader itself panics (found by the
/// `log_parquet` target once the log reader caught panics): each must read
/// to an error that names the file and the reader's failure.
#[test]
fn log_reader_panics_are_errors() {
    for (file, panic) in [
        // A byte-array column with no values left to read (parquet
        // arrow/array_reader/byte_array.rs divides by their count).
        (
            "log_panic_divide_by_zero.parquet",
            "attempt to divide by zero",
        ),
        // Dictionary-encoded page without a dictionary (parquet column/reader/decoder.rs).
        (
            "log_panic_dict_decoder.parquet",
            "Decoder for dict should have been set",
        ),
        // Empty level data (arrow-buffer bit_util.rs / bit_chunk_iterator.rs).
        ("log_panic_empty_slice.parquet", "slice must not be empty"),
        ("log_def_levels_panic.parquet", "offset + len out of bounds"),
    ] {
        let path = data(file);
        let errors = read_everything(&path);
        let reader_failed = "the Parquet reader failed on damaged data: ";
        assert!(
            errors
                .iter()
                .any(|e| e.contains(file) && e.contains(reader_failed) && e.contains(panic)),
            "{file}: no error {panic:?} among {errors:#?}"
        );
    }
}

/// A DATA_PAGE header without its data_page_header, and the same for a
/// DATA_PAGE_V2 header: the Parquet reader panicked on them
/// (`Option::unwrap()` in parquet's column/page.rs) when it skipped rows
/// inside such a page. Decoding now starts at page starts (see
/// `log_byte_array_skip_is_an_error`), where the reader's own check
/// rejects the header.
#[test]
fn log_page_headers_without_their_data_header_are_errors() {
    for (file, error) in [
        (
            "log_panic_page_header.parquet",
            "Missing V1 data page header",
        ),
        (
            "log_panic_page_header_v2.parquet",
            "Missing V2 data page header",
        ),
    ] {
        let errors = read_everything(&data(file));
        assert!(
            errors.iter().any(|e| e.contains(file) && e.contains(error)),
            "{file}: no error {error:?} among {errors:#?}"
        );
        assert_no_reader_panic(&errors);
    }
}

/// A `sensor` column without the Parquet string annotation (the embedded
/// Arrow schema still says strings) came out of the dictionary reader as a
/// dictionary of binary values, and the log reader's consumers panicked
/// downcasting it to strings: a batch whose types are not the schema's is
/// now an error.
#[test]
fn log_batch_of_wrong_type_is_an_error() {
    let file = "log_dictionary_cast.parquet";
    let errors = read_everything(&data(file));
    assert!(
        errors.iter().any(|e| e.contains(file)
            && e.contains("column `sensor` decoded as Dictionary(Int32, Binary)")),
        "{errors:#?}"
    );
}

/// The guards turn no valid log into an error: the `log_parquet` target's
/// seeds (twinflow's own writer, and pyarrow's with row groups of 10 rows,
/// nulls, no statistics, a page index, Snappy) read whole without one.
#[test]
fn fuzz_seeds_read_cleanly() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/log_parquet");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&seeds)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    for file in files {
        let errors = read_everything(&file);
        assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
    }
}
