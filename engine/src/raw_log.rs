//! The raw event log (TwinBench "Files"): its Arrow schema and a writer that
//! produces it as Parquet, and optionally as CSV, in arrival order.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, Float64Builder, Int64Builder, StringBuilder,
    UInt8Builder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::sink::ParquetFile;

/// Column names of the raw log, in file order.
pub mod col {
    pub const TS_US: &str = "ts_us";
    pub const ARRIVAL_US: &str = "arrival_us";
    pub const ASSET: &str = "asset";
    pub const SENSOR: &str = "sensor";
    pub const KIND: &str = "kind";
    pub const VALUE: &str = "value";
    pub const SEQ: &str = "seq";
    pub const QUALITY: &str = "quality";
    pub const TAG: &str = "tag";
}

/// The raw log's schema exactly as TwinBench defines it. Only `tag` may be null.
pub fn raw_log_schema() -> SchemaRef {
    // Replay reads names as dictionaries, resolving each once per page.
    let name = |column| {
        crate::sink::with_hint(
            Field::new(column, DataType::Utf8, false),
            crate::sink::DICTIONARY,
        )
    };
    Arc::new(Schema::new(vec![
        Field::new(col::TS_US, DataType::Int64, false),
        Field::new(col::ARRIVAL_US, DataType::Int64, false),
        name(col::ASSET),
        name(col::SENSOR),
        name(col::KIND),
        Field::new(col::VALUE, DataType::Float64, false),
        Field::new(col::SEQ, DataType::UInt64, false),
        Field::new(col::QUALITY, DataType::UInt8, false),
        crate::sink::with_hint(
            Field::new(col::TAG, DataType::Binary, true),
            crate::sink::RANDOM_BYTES,
        ),
    ]))
}

/// One event of the raw log, borrowing its strings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawEvent<'a> {
    pub ts_us: i64,
    pub arrival_us: i64,
    pub asset: &'a str,
    pub sensor: &'a str,
    pub kind: &'a str,
    pub value: f64,
    pub seq: u64,
    pub quality: u8,
    pub tag: Option<&'a [u8]>,
}

/// Column builders for a batch of raw events.
struct RawLogColumns {
    ts: Int64Builder,
    arrival: Int64Builder,
    asset: StringBuilder,
    sensor: StringBuilder,
    kind: StringBuilder,
    value: Float64Builder,
    seq: UInt64Builder,
    quality: UInt8Builder,
    tag: BinaryBuilder,
}

impl RawLogColumns {
    fn with_capacity(n: usize) -> Self {
        RawLogColumns {
            ts: Int64Builder::with_capacity(n),
            arrival: Int64Builder::with_capacity(n),
            asset: StringBuilder::with_capacity(n, n * 10),
            sensor: StringBuilder::with_capacity(n, n * 18),
            kind: StringBuilder::with_capacity(n, n * 11),
            value: Float64Builder::with_capacity(n),
            seq: UInt64Builder::with_capacity(n),
            quality: UInt8Builder::with_capacity(n),
            tag: BinaryBuilder::with_capacity(n, n * 16),
        }
    }

    fn push(&mut self, e: &RawEvent<'_>) {
        self.ts.append_value(e.ts_us);
        self.arrival.append_value(e.arrival_us);
        self.asset.append_value(e.asset);
        self.sensor.append_value(e.sensor);
        self.kind.append_value(e.kind);
        self.value.append_value(e.value);
        self.seq.append_value(e.seq);
        self.quality.append_value(e.quality);
        self.tag.append_option(e.tag);
    }

    fn len(&self) -> usize {
        self.ts.len()
    }

    fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish()),
            Arc::new(self.arrival.finish()),
            Arc::new(self.asset.finish()),
            Arc::new(self.sensor.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.seq.finish()),
            Arc::new(self.quality.finish()),
            Arc::new(self.tag.finish()),
        ];
        RecordBatch::try_new(raw_log_schema(), columns).expect("columns match the raw log schema")
    }
}

/// Rows buffered before a batch is handed to the Parquet and CSV writers.
const BATCH_ROWS: usize = 64 * 1024;

/// Rows per data page of a raw log at most (a page also ends at 1 MB).
const PAGE_ROWS: usize = 16 * 1024;

/// Writes a raw log in the order events are pushed (which must be arrival order).
///
/// The CSV twin has the same columns; `tag` is lowercase hex there, empty when absent.
pub struct RawLogWriter {
    columns: RawLogColumns,
    parquet: ParquetFile,
    csv: Option<(PathBuf, arrow::csv::Writer<BufWriter<File>>)>,
}

impl RawLogWriter {
    pub fn create(parquet_path: &Path, csv_path: Option<&Path>) -> Result<Self> {
        Self::create_with_row_groups(parquet_path, csv_path, crate::sink::ROW_GROUP_ROWS)
    }

    /// Like [`RawLogWriter::create`], with row groups of `rows` rows (tests use
    /// small ones to exercise multi-group logs).
    pub fn create_with_row_groups(
        parquet_path: &Path,
        csv_path: Option<&Path>,
        rows: usize,
    ) -> Result<Self> {
        // Small pages: a reader that wants a few rows of a run (verification's
        // greatest verified time of each run, quarantine records) decodes a
        // page of each column, not a megabyte of it.
        let properties =
            crate::sink::writer_properties(&raw_log_schema(), rows, crate::sink::Codec::Lz4)
                .into_builder()
                .set_data_page_row_count_limit(PAGE_ROWS)
                .build();
        let parquet = ParquetFile::create_with(parquet_path, raw_log_schema(), properties)?;
        let csv = match csv_path {
            Some(p) => {
                let file = File::create(p).map_err(|e| Error::io(p, e))?;
                let writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(BufWriter::with_capacity(1 << 20, file));
                Some((p.to_path_buf(), writer))
            }
            None => None,
        };
        Ok(RawLogWriter {
            columns: RawLogColumns::with_capacity(BATCH_ROWS),
            parquet,
            csv,
        })
    }

    pub fn push(&mut self, event: &RawEvent<'_>) -> Result<()> {
        self.columns.push(event);
        if self.columns.len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.columns.len() == 0 {
            return Ok(());
        }
        let batch = self.columns.finish();
        self.parquet.write(&batch)?;
        if let Some((path, writer)) = &mut self.csv {
            writer
                .write(&hex_tags(&batch))
                .map_err(|e| Error::format(&*path, e))?;
        }
        Ok(())
    }

    /// Flushes and closes both files; returns the number of rows written.
    pub fn finish(mut self) -> Result<u64> {
        self.flush()?;
        if let Some((path, writer)) = self.csv.take() {
            let mut inner = writer.into_inner();
            std::io::Write::flush(&mut inner).map_err(|e| Error::io(&path, e))?;
        }
        self.parquet.finish()
    }
}

/// The batch with its binary `tag` column replaced by lowercase hex strings.
fn hex_tags(batch: &RecordBatch) -> RecordBatch {
    let tags = batch
        .column(8)
        .as_any()
        .downcast_ref::<arrow::array::BinaryArray>()
        .expect("tag is binary");
    let hex: arrow::array::StringArray = tags.iter().map(|t| t.map(hex::encode)).collect();
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[8] = Field::new(col::TAG, DataType::Utf8, true);
    let mut columns = batch.columns().to_vec();
    columns[8] = Arc::new(hex);
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("same shape")
}

#[cfg(test)]
mod tests {
    use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
    use parquet::file::metadata::PageIndexPolicy;

    use super::*;

    /// Every column's pages hold at most `PAGE_ROWS` rows, however small the
    /// values (`quality`'s pages would otherwise each hold a row group), so
    /// a reader after a few rows decodes little of any column.
    #[test]
    fn pages_are_small() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.parquet");
        let mut writer = RawLogWriter::create(&path, None).unwrap();
        let rows = 2 * BATCH_ROWS + 100;
        for i in 0..rows {
            writer
                .push(&RawEvent {
                    ts_us: i as i64,
                    arrival_us: i as i64,
                    asset: "a",
                    sensor: "a/t",
                    kind: "pump",
                    value: 1.0,
                    seq: i as u64,
                    quality: 1,
                    tag: Some(&[7; 16]),
                })
                .unwrap();
        }
        assert_eq!(writer.finish().unwrap(), rows as u64);
        let file = File::open(&path).unwrap();
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
        let meta = ArrowReaderMetadata::load(&file, options).unwrap();
        let index = meta.metadata().page_index_for_row_group(0);
        let group_rows = meta.metadata().row_group(0).num_rows() as usize;
        for column in 0..raw_log_schema().fields().len() {
            let offsets = index.offset_index(column).expect("a page index");
            let starts: Vec<usize> = offsets
                .page_locations()
                .iter()
                .map(|p| p.first_row_index as usize)
                .chain([group_rows])
                .collect();
            let largest = starts.windows(2).map(|w| w[1] - w[0]).max().unwrap();
            assert!(
                largest <= PAGE_ROWS,
                "column {column}: a page of {largest} rows"
            );
            assert!(
                starts.len() > rows / PAGE_ROWS,
                "column {column}: {starts:?}"
            );
        }
    }
}
