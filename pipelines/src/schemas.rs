//! The Parquet datasets `replay` writes: their schemas and encoders.
//!
//! - `windows/`: sensor, asset, window_start_us, window_end_us, count, mean,
//!   min, max, last, variance (population);
//! - `late/`: position (the row's place in the log's arrival order), ts_us,
//!   asset, sensor, value, watermark_us (the watermark the row met);
//! - `quarantine/`: every raw-log column, then `reason`, `watermark_us` and
//!   `position`;
//! - `aligned/`, `fused/`, `flags/`: steps A, F and D (see each writer);
//! - `twins/{assets,lines,sites}/`: the final state of each twin view, and
//!   `twin_changes/{assets,lines,sites}/` every change to it (time_us, diff
//!   +1/−1, then the view's columns), so a view can be rebuilt at any time.

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

use twinflow_engine::catalog::{AssetId, SensorId};
use twinflow_engine::time::Micros;
use twinflow_operators::align::AlignedRow;
use twinflow_operators::detect::Flag;
use twinflow_operators::fuse::{FusedRow, FusedValue};
use twinflow_operators::twin::{AssetTwin, Hierarchy, Rollup};

use crate::columns::Columns;
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

/// Names of an aligned row's channels and of its fused quantities: the
/// variable part of the aligned, fused and twin datasets' schemas.
#[derive(Debug, Clone)]
pub struct Layout {
    pub catalog: Arc<Catalog>,
    pub hierarchy: Arc<Hierarchy>,
    pub channels: Vec<String>,
    pub quantities: Vec<String>,
}

/// The part file of `out/aligned/`: asset, window_start_us, window_end_us, and
/// per channel `c`: `c` (null when missing) and `c_source`.
pub fn aligned_writer(
    out: &Path,
    worker: usize,
    layout: &Layout,
) -> Result<PartWriter<AlignedRow>> {
    let layout = layout.clone();
    PartWriter::from_encoder(
        &out.join("aligned"),
        worker,
        move |rows: &[AlignedRow]| {
            let mut columns = Columns::new();
            columns
                .utf8("asset", rows.iter().map(|r| layout.asset_name(r.asset)))
                .i64("window_start_us", rows.iter().map(|r| r.start_us))
                .i64("window_end_us", rows.iter().map(|r| r.end_us));
            let rows: Vec<&AlignedRow> = rows.iter().collect();
            layout.channel_columns(&mut columns, &rows);
            columns.finish()
        },
    )
}

/// The part file of `out/fused/`: one row per asset, window and fused
/// quantity that had at least one measurement.
pub fn fused_writer(out: &Path, worker: usize, layout: &Layout) -> Result<PartWriter<FusedRow>> {
    let layout = layout.clone();
    PartWriter::from_encoder(&out.join("fused"), worker, move |rows: &[FusedRow]| {
        let flat: Vec<(&FusedRow, usize, &FusedValue)> = rows
            .iter()
            .flat_map(|row| {
                row.values
                    .iter()
                    .enumerate()
                    .filter_map(move |(q, v)| v.as_ref().map(|v| (row, q, v)))
            })
            .collect();
        Columns::new()
            .utf8(
                "asset",
                flat.iter().map(|(r, _, _)| layout.asset_name(r.asset())),
            )
            .i64("window_start_us", flat.iter().map(|(r, _, _)| r.start_us()))
            .utf8(
                "quantity",
                flat.iter().map(|(_, q, _)| layout.quantities[*q].as_str()),
            )
            .f64("value", flat.iter().map(|(_, _, v)| v.value))
            .f64("variance", flat.iter().map(|(_, _, v)| v.variance))
            .u32("sensors", flat.iter().map(|(_, _, v)| v.sensors))
            .finish()
    })
}

/// The part file of `out/flags/`: asset, sensor, window_start_us, value (the
/// window mean) and z.
pub fn flags_writer(
    out: &Path,
    worker: usize,
    layout: &Layout,
) -> Result<PartWriter<Flag<SensorId>>> {
    let catalog = Arc::clone(&layout.catalog);
    PartWriter::from_encoder(
        &out.join("flags"),
        worker,
        move |flags: &[Flag<SensorId>]| {
            Columns::new()
                .utf8(
                    "asset",
                    flags.iter().map(|f| catalog.sensor(f.key).asset.as_str()),
                )
                .utf8(
                    "sensor",
                    flags.iter().map(|f| catalog.sensor(f.key).sensor.as_str()),
                )
                .i64("window_start_us", flags.iter().map(|f| f.start_us))
                .f64("value", flags.iter().map(|f| f.value))
                .f64("z", flags.iter().map(|f| f.score))
                .finish()
        },
    )
}

/// An asset twin as a row of `twins/assets/`.
pub type AssetTwinRow = (AssetId, AssetTwin);
/// A rollup as a row of `twins/lines/` or `twins/sites/`.
pub type RollupRow = (u32, Rollup);
/// A change of a view: the row, the time it changed at, +1 or −1.
pub type Change<D> = (D, Micros, isize);

/// The part file of `out/twins/assets/` (the final view).
pub fn asset_twins_writer(
    out: &Path,
    worker: usize,
    layout: &Layout,
) -> Result<PartWriter<AssetTwinRow>> {
    let layout = layout.clone();
    PartWriter::from_encoder(
        &out.join("twins/assets"),
        worker,
        move |rows: &[AssetTwinRow]| {
            let rows: Vec<&AssetTwinRow> = rows.iter().collect();
            layout
                .asset_twin_columns(&mut Columns::new(), &rows)
                .finish()
        },
    )
}

/// The part file of `out/twin_changes/assets/`: time_us and diff, then the
/// columns of `twins/assets/`.
pub fn asset_changes_writer(
    out: &Path,
    worker: usize,
    layout: &Layout,
) -> Result<PartWriter<Change<AssetTwinRow>>> {
    let layout = layout.clone();
    PartWriter::from_encoder(
        &out.join("twin_changes/assets"),
        worker,
        move |changes: &[Change<AssetTwinRow>]| {
            let mut columns = Columns::new();
            change_columns(&mut columns, changes);
            let rows: Vec<&AssetTwinRow> = changes.iter().map(|(row, _, _)| row).collect();
            layout.asset_twin_columns(&mut columns, &rows).finish()
        },
    )
}

/// The part file of `out/twins/<group>s/` for a rollup by `group` (line, site).
pub fn rollups_writer(
    out: &Path,
    worker: usize,
    layout: &Layout,
    group: &'static str,
) -> Result<PartWriter<RollupRow>> {
    let layout = layout.clone();
    let dir = out.join(format!("twins/{group}s"));
    PartWriter::from_encoder(&dir, worker, move |rows: &[RollupRow]| {
        let rows: Vec<&RollupRow> = rows.iter().collect();
        layout
            .rollup_columns(&mut Columns::new(), group, &rows)
            .finish()
    })
}

/// The part file of `out/twin_changes/<group>s/`.
pub fn rollup_changes_writer(
    out: &Path,
    worker: usize,
    layout: &Layout,
    group: &'static str,
) -> Result<PartWriter<Change<RollupRow>>> {
    let layout = layout.clone();
    let dir = out.join(format!("twin_changes/{group}s"));
    PartWriter::from_encoder(&dir, worker, move |changes: &[Change<RollupRow>]| {
        let mut columns = Columns::new();
        change_columns(&mut columns, changes);
        let rows: Vec<&RollupRow> = changes.iter().map(|(row, _, _)| row).collect();
        layout.rollup_columns(&mut columns, group, &rows).finish()
    })
}

fn change_columns<D>(columns: &mut Columns, changes: &[Change<D>]) {
    columns
        .i64("time_us", changes.iter().map(|(_, t, _)| *t))
        .i64("diff", changes.iter().map(|(_, _, d)| *d as i64));
}

impl Layout {
    fn asset_name(&self, asset: AssetId) -> &str {
        &self.catalog.asset(asset).asset
    }

    fn group_name(&self, group: &str, id: u32) -> &str {
        match group {
            "line" => self.hierarchy.line_name(id),
            _ => self.hierarchy.site_name(id),
        }
    }

    /// Per channel `c`: `c` and `c_source`.
    fn channel_columns(&self, columns: &mut Columns, rows: &[&AlignedRow]) {
        for (c, channel) in self.channels.iter().enumerate() {
            columns
                .f64_opt(channel, rows.iter().map(|r| r.values[c].value))
                .utf8(
                    &format!("{channel}_source"),
                    rows.iter().map(|r| r.values[c].source.code()),
                );
        }
    }

    fn asset_twin_columns<'c>(
        &self,
        columns: &'c mut Columns,
        rows: &[&AssetTwinRow],
    ) -> &'c mut Columns {
        columns
            .utf8("asset", rows.iter().map(|(a, _)| self.asset_name(*a)))
            .utf8(
                "line",
                rows.iter()
                    .map(|(_, t)| self.hierarchy.line_name(t.place.line)),
            )
            .utf8(
                "site",
                rows.iter()
                    .map(|(_, t)| self.hierarchy.site_name(t.place.site)),
            )
            .i64(
                "window_start_us",
                rows.iter().map(|(_, t)| t.state.latest.start_us()),
            )
            .u64("flags", rows.iter().map(|(_, t)| t.state.flags))
            .utf8("health", rows.iter().map(|(_, t)| t.state.health.code()));
        let aligned: Vec<&AlignedRow> = rows.iter().map(|(_, t)| &t.state.latest.row).collect();
        self.channel_columns(columns, &aligned);
        for (q, quantity) in self.quantities.iter().enumerate() {
            let fused = |t: &AssetTwin| t.state.latest.values[q];
            columns
                .f64_opt(
                    &format!("fused_{quantity}"),
                    rows.iter().map(|(_, t)| fused(t).map(|v| v.value)),
                )
                .f64_opt(
                    &format!("fused_{quantity}_variance"),
                    rows.iter().map(|(_, t)| fused(t).map(|v| v.variance)),
                );
        }
        // When each sensor was last seen, and how long before the latest window.
        for (c, channel) in self.channels.iter().enumerate() {
            columns
                .i64_opt(
                    &format!("{channel}_last_seen_us"),
                    rows.iter()
                        .map(|(_, t)| t.state.latest.row.values[c].last_seen_us),
                )
                .i64_opt(
                    &format!("{channel}_staleness_us"),
                    rows.iter()
                        .map(|(_, t)| t.state.staleness_us().nth(c).flatten()),
                );
        }
        columns
    }

    fn rollup_columns<'c>(
        &self,
        columns: &'c mut Columns,
        group: &str,
        rows: &[&RollupRow],
    ) -> &'c mut Columns {
        columns
            .utf8(group, rows.iter().map(|(g, _)| self.group_name(group, *g)))
            .u64("assets", rows.iter().map(|(_, r)| r.assets))
            .u64(
                "assets_reporting",
                rows.iter().map(|(_, r)| r.assets_reporting),
            )
            .u64(
                "assets_with_flags",
                rows.iter().map(|(_, r)| r.assets_with_flags),
            );
        for (q, quantity) in self.quantities.iter().enumerate() {
            columns.f64_opt(
                &format!("mean_fused_{quantity}"),
                rows.iter()
                    .map(|(_, r)| r.mean_fused.get(q).copied().flatten().map(|m| m.0)),
            );
        }
        columns
            .utf8(
                "worst_health",
                rows.iter().map(|(_, r)| r.worst_health.code()),
            )
            .i64(
                "newest_window_start_us",
                rows.iter().map(|(_, r)| r.newest_us),
            )
    }
}
