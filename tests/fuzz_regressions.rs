//! Inputs that crashed a fuzz target (`fuzz/`, see fuzz/README.md), kept as
//! regression tests: each must now give a clear error, not a panic.

use std::path::{Path, PathBuf};

use twinflow::engine::Error;
use twinflow::engine::log_source::{LogSource, SplitOptions};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(name)
}

/// A footer whose column chunk starts at a negative offset: the Parquet
/// reader asserted on it while reading the run (`ColumnChunkMetaData::byte_range`).
#[test]
fn log_chunk_outside_file() {
    let path = data("log_chunk_outside_file.parquet");
    for split in [
        SplitOptions::default(),
        SplitOptions {
            max_run_rows: Some(5),
        },
    ] {
        match LogSource::open(&path, split) {
            Err(Error::Parquet { message, .. }) => {
                assert!(message.contains("lies outside the file"), "{message}")
            }
            Err(other) => panic!("expected a Parquet error, got {other}"),
            Ok(_) => panic!("a damaged footer opened"),
        }
    }
}
