//! Lineage: where the rows of every dataset `replay` writes came from.
//!
//! Every derived Parquet file carries in its footer's key-value metadata
//! (which DuckDB's `parquet_kv_metadata`, pyarrow's `schema.metadata` and
//! Polars read) the pipeline that made it, its version, the source log files
//! (path, rows, bytes), whether events were verified, and the sensor table.
//! A file is written by one replay of one log, so this holds for every row in
//! it; within the file, each row's keys select the raw events it comes from:
//! a window row's `sensor` and window bounds select the events of that
//! sensor with `ts_us` in the window (minus the late and quarantined ones,
//! which carry their `position` in the sources), an aligned, fused or twin
//! row's `asset` and window select its sensors' window rows, and so on back.
//! Recording the provenance once per file rather than once per row keeps the
//! datasets as small and fast to write as without it.

use std::path::Path;

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use twinflow_engine::error::{Error, Result};
use twinflow_engine::log_source::LogSource;

/// Metadata keys, in every derived file's footer.
pub const PIPELINE_KEY: &str = "twinflow.pipeline";
pub const VERSION_KEY: &str = "twinflow.pipeline_version";
pub const SOURCES_KEY: &str = "twinflow.sources";
pub const VERIFIED_KEY: &str = "twinflow.verified";
pub const CATALOG_KEY: &str = "twinflow.catalog";

/// A source file of a replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    /// The absolute path it was read from.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
}

/// The provenance of a replay's outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    pub pipeline: String,
    pub version: String,
    pub sources: Vec<SourceFile>,
    pub verified: bool,
    /// The sensor table's path, or `None` for a catalog discovered from the log.
    pub catalog: Option<String>,
}

impl Lineage {
    /// The lineage of a replay of `log` by `pipeline` (name, version).
    pub fn of_replay(
        pipeline: (&str, &str),
        log: &LogSource,
        verified: bool,
        catalog: Option<&Path>,
    ) -> Result<Self> {
        let sources = log
            .files()
            .map(|(path, rows)| {
                let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
                Ok(SourceFile {
                    path: absolute(path),
                    rows,
                    bytes: meta.len(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Lineage {
            pipeline: pipeline.0.to_owned(),
            version: pipeline.1.to_owned(),
            sources,
            verified,
            catalog: catalog.map(absolute),
        })
    }

    /// The key-value pairs written into each file's footer.
    pub fn metadata(&self) -> Vec<(String, String)> {
        let mut pairs = vec![
            (PIPELINE_KEY.to_owned(), self.pipeline.clone()),
            (VERSION_KEY.to_owned(), self.version.clone()),
            (
                SOURCES_KEY.to_owned(),
                serde_json::to_string(&self.sources).expect("sources serialize"),
            ),
            (VERIFIED_KEY.to_owned(), self.verified.to_string()),
        ];
        if let Some(catalog) = &self.catalog {
            pairs.push((CATALOG_KEY.to_owned(), catalog.clone()));
        }
        pairs
    }

    /// The lineage recorded in a Parquet file twinflow wrote.
    pub fn read(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| Error::parquet(path, e))?;
        let pairs = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .cloned()
            .unwrap_or_default();
        let get = |key: &str| {
            pairs
                .iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| kv.value.clone())
        };
        let required = |key: &str| {
            get(key).ok_or_else(|| Error::format(path, format!("no lineage key {key}")))
        };
        Ok(Lineage {
            pipeline: required(PIPELINE_KEY)?,
            version: required(VERSION_KEY)?,
            sources: serde_json::from_str(&required(SOURCES_KEY)?)
                .map_err(|e| Error::format(path, e))?,
            verified: required(VERIFIED_KEY)? == "true",
            catalog: get(CATALOG_KEY),
        })
    }
}

/// `path` made absolute (without resolving links), so the record stays
/// true wherever it is read from.
fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}
