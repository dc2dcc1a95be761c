//! The Parquet datasets `replay` writes: their schemas and encoders.
//!
//! - `windows/`: sensor, asset, window_start_us, window_end_us, count, mean,
//!   min, max, last, variance (population);
//! - `late/`: position (the row's place in the log's arrival order), ts_us,
//!   asset, sensor, value, watermark_us (the watermark the row met);
//! - `quarantine/`: every raw-log column, then `reason`, `watermark_us` and
//!   `position`.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, Float64Array, Int64Array, StringArray, UInt8Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use twinflow_engine::catalog::Catalog;
use twinflow_engine::error::Result;
use twinflow_engine::event::{LateReading, Quarantined};
use twinflow_engine::raw_log::raw_log_schema;
use twinflow_engine::sink::PartWriter;

use crate::replay::SensorWindow;

pub fn windows_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("sensor", DataType::Utf8, false),
        Field::new("asset", DataType::Utf8, false),
        Field::new("window_start_us", DataType::Int64, false),
        Field::new("window_end_us", DataType::Int64, false),
        Field::new("count", DataType::UInt64, false),
        Field::new("mean", DataType::Float64, false),
        Field::new("min", DataType::Float64, false),
        Field::new("max", DataType::Float64, false),
        Field::new("last", DataType::Float64, false),
        Field::new("variance", DataType::Float64, false),
    ]))
}

/// The part file of `out/windows/` for one worker.
pub fn windows_writer(
    out: &Path,
    worker: usize,
    catalog: &Arc<Catalog>,
) -> Result<PartWriter<SensorWindow>> {
    let catalog = Arc::clone(catalog);
    let schema = windows_schema();
    let encoder_schema = Arc::clone(&schema);
    PartWriter::create(
        &out.join("windows"),
        worker,
        schema,
        move |rows: &[SensorWindow]| {
            let sensor: StringArray = rows
                .iter()
                .map(|w| Some(catalog.sensor(w.key).sensor.as_str()))
                .collect();
            let asset: StringArray = rows
                .iter()
                .map(|w| Some(catalog.sensor(w.key).asset.as_str()))
                .collect();
            let f64s = |f: &dyn Fn(&SensorWindow) -> f64| -> ArrayRef {
                Arc::new(rows.iter().map(f).collect::<Float64Array>())
            };
            let columns: Vec<ArrayRef> = vec![
                Arc::new(sensor),
                Arc::new(asset),
                Arc::new(rows.iter().map(|w| w.start_us).collect::<Int64Array>()),
                Arc::new(rows.iter().map(|w| w.end_us).collect::<Int64Array>()),
                Arc::new(
                    rows.iter()
                        .map(|w| w.aggregate.count)
                        .collect::<UInt64Array>(),
                ),
                f64s(&|w| w.aggregate.mean()),
                f64s(&|w| w.aggregate.min),
                f64s(&|w| w.aggregate.max),
                f64s(&|w| w.aggregate.last),
                f64s(&|w| w.aggregate.variance()),
            ];
            RecordBatch::try_new(Arc::clone(&encoder_schema), columns)
                .expect("columns match the windows schema")
        },
    )
}

pub fn late_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("position", DataType::UInt64, false),
        Field::new("ts_us", DataType::Int64, false),
        Field::new("asset", DataType::Utf8, false),
        Field::new("sensor", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
        Field::new("watermark_us", DataType::Int64, false),
    ]))
}

/// The part file of `out/late/` for one worker. Late rows keep what W needs
/// and their position; the raw log at `position` holds the rest of the row.
pub fn late_writer(
    out: &Path,
    worker: usize,
    catalog: &Arc<Catalog>,
) -> Result<PartWriter<LateReading>> {
    let catalog = Arc::clone(catalog);
    let schema = late_schema();
    let encoder_schema = Arc::clone(&schema);
    PartWriter::create(
        &out.join("late"),
        worker,
        schema,
        move |rows: &[LateReading]| {
            let sensor = |r: &LateReading| catalog.sensor(r.reading.sensor);
            let columns: Vec<ArrayRef> = vec![
                Arc::new(rows.iter().map(|r| r.position).collect::<UInt64Array>()),
                Arc::new(rows.iter().map(|r| r.reading.ts_us).collect::<Int64Array>()),
                Arc::new(
                    rows.iter()
                        .map(|r| Some(sensor(r).asset.as_str()))
                        .collect::<StringArray>(),
                ),
                Arc::new(
                    rows.iter()
                        .map(|r| Some(sensor(r).sensor.as_str()))
                        .collect::<StringArray>(),
                ),
                Arc::new(
                    rows.iter()
                        .map(|r| r.reading.value)
                        .collect::<Float64Array>(),
                ),
                Arc::new(rows.iter().map(|r| r.watermark_us).collect::<Int64Array>()),
            ];
            RecordBatch::try_new(Arc::clone(&encoder_schema), columns)
                .expect("columns match the late schema")
        },
    )
}

pub fn quarantine_schema() -> SchemaRef {
    let mut fields: Vec<Field> = raw_log_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("reason", DataType::Utf8, false));
    fields.push(Field::new("watermark_us", DataType::Int64, false));
    fields.push(Field::new("position", DataType::UInt64, false));
    Arc::new(Schema::new(fields))
}

/// The part file of `out/quarantine/` for one worker: every original field.
pub fn quarantine_writer(out: &Path, worker: usize) -> Result<PartWriter<Quarantined>> {
    let schema = quarantine_schema();
    let encoder_schema = Arc::clone(&schema);
    PartWriter::create(
        &out.join("quarantine"),
        worker,
        schema,
        move |rows: &[Quarantined]| {
            let columns: Vec<ArrayRef> = vec![
                Arc::new(rows.iter().map(|r| r.row.ts_us).collect::<Int64Array>()),
                Arc::new(
                    rows.iter()
                        .map(|r| r.row.arrival_us)
                        .collect::<Int64Array>(),
                ),
                Arc::new(
                    rows.iter()
                        .map(|r| Some(r.row.asset.as_str()))
                        .collect::<StringArray>(),
                ),
                Arc::new(
                    rows.iter()
                        .map(|r| Some(r.row.sensor.as_str()))
                        .collect::<StringArray>(),
                ),
                Arc::new(
                    rows.iter()
                        .map(|r| Some(r.row.kind.as_str()))
                        .collect::<StringArray>(),
                ),
                Arc::new(rows.iter().map(|r| r.row.value).collect::<Float64Array>()),
                Arc::new(rows.iter().map(|r| r.row.seq).collect::<UInt64Array>()),
                Arc::new(rows.iter().map(|r| r.row.quality).collect::<UInt8Array>()),
                Arc::new(
                    rows.iter()
                        .map(|r| r.row.tag.as_deref())
                        .collect::<BinaryArray>(),
                ),
                Arc::new(
                    rows.iter()
                        .map(|r| Some(r.reason.code()))
                        .collect::<StringArray>(),
                ),
                Arc::new(rows.iter().map(|r| r.watermark_us).collect::<Int64Array>()),
                Arc::new(rows.iter().map(|r| r.position).collect::<UInt64Array>()),
            ];
            RecordBatch::try_new(Arc::clone(&encoder_schema), columns)
                .expect("columns match the quarantine schema")
        },
    )
}
