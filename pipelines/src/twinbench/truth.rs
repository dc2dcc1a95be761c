//! `truth.parquet`: the physical truth of every asset, per channel of the
//! sensor table and per second — what a perfect, healthy sensor on that channel
//! would read during `[ts_us, ts_us + 1 s)`. Redundant channels (temp-1..3,
//! press-1..2) repeat the same truth. Sensor faults and attacks are not in it; a
//! bearing fault is (it is physical).

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Builder, Int64Builder, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use twinflow_engine::Result;
use twinflow_engine::sink::ParquetFile;

use super::plant::{CHANNELS, Truth};

/// File name of the truth inside an output directory.
pub const TRUTH_FILE: &str = "truth.parquet";

/// Rows buffered before a batch goes to the Parquet writer.
const BATCH_ROWS: usize = 64 * 1024;

/// The schema of `truth.parquet`: asset, channel, ts_us (start of the second), value.
pub fn truth_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("asset", DataType::Utf8, false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("ts_us", DataType::Int64, false),
        Field::new("value", DataType::Float64, false),
    ]))
}

/// Writes the truth, one asset-second (all channels) at a time.
pub struct TruthWriter {
    file: ParquetFile,
    asset: StringBuilder,
    channel: StringBuilder,
    ts: Int64Builder,
    value: Float64Builder,
    buffered: usize,
}

impl TruthWriter {
    pub fn create(path: &Path) -> Result<Self> {
        Ok(TruthWriter {
            file: ParquetFile::create(path, truth_schema())?,
            asset: StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 10),
            channel: StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 7),
            ts: Int64Builder::with_capacity(BATCH_ROWS),
            value: Float64Builder::with_capacity(BATCH_ROWS),
            buffered: 0,
        })
    }

    /// One row per channel of the sensor table for `asset` during the second
    /// starting at `second_us`.
    pub fn push(&mut self, asset: &str, second_us: i64, truth: &Truth) -> Result<()> {
        for channel in &CHANNELS {
            self.asset.append_value(asset);
            self.channel.append_value(channel.name);
            self.ts.append_value(second_us);
            self.value.append_value(truth.get(channel.quantity));
        }
        self.buffered += CHANNELS.len();
        if self.buffered >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buffered == 0 {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.asset.finish()),
            Arc::new(self.channel.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.value.finish()),
        ];
        let batch =
            RecordBatch::try_new(truth_schema(), columns).expect("columns match the truth schema");
        self.buffered = 0;
        self.file.write(&batch)
    }

    /// Flushes and closes the file; returns the number of rows.
    pub fn finish(mut self) -> Result<u64> {
        self.flush()?;
        self.file.finish()
    }
}
