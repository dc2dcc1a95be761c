//! The Parquet datasets `replay` writes: their schemas and encoders.
//!
//! - `windows/`: sensor, asset, window_start_us, window_end_us, count, mean,
//!   min, max, last, variance (population);
//! - `late/`: position (the row's place in the log's arrival order), ts_us,
//!   asset, sensor, value, watermark_us (the watermark the row met);
//! - `quarantine/`: every raw-log column, then `reason`, `watermark_us` and
//!   `position`;
//! - `seq_gaps/` (with verification): sensor, asset, first_seq, missing (how
//!   many consecutive `seq`s never came), noticed_us (event time of the event
//!   that pushed them out of the replay window; null at the log's end);
//! - `aligned/`, `fused/`, `trust/`, `flags/`: steps A, F and D (see each
//!   writer);
//! - `twins/{assets,lines,sites}/`: the final state of each twin view, and
//!   `twin_changes/{assets,lines,sites}/` every change to it (time_us, diff
//!   +1/−1, then the view's columns), so a view can be rebuilt at any time.

use std::path::Path;
use std::sync::Arc;

use twinflow_engine::catalog::{AssetId, Catalog, SensorId};
use twinflow_engine::error::Result;
use twinflow_engine::event::{LateReading, Quarantined};
use twinflow_engine::sensor_checks::SeqGap;
use twinflow_engine::sink::PartWriter;
use twinflow_engine::time::Micros;
use twinflow_operators::align::{AlignedRow, AlignedValue};
use twinflow_operators::asset_models::{MODEL_NLL, ModelAlarm};
use twinflow_operators::detect::Flag;
use twinflow_operators::fuse::FusedRow;
use twinflow_operators::trust::Suspect;
use twinflow_operators::twin::{AssetTwin, Hierarchy, Rollup, staleness_us};

use crate::columns::Columns;
use crate::fused_outputs::{FusedRecord, ImputedRecord, TrustRecord};
use crate::replay::SensorWindow;

/// The part file of `out/windows/` for one worker.
pub fn windows_writer(
    out: &Path,
    worker: usize,
    catalog: &Arc<Catalog>,
) -> Result<PartWriter<SensorWindow>> {
    let catalog = Arc::clone(catalog);
    PartWriter::from_encoder(
        &out.join("windows"),
        worker,
        move |rows: &[SensorWindow]| {
            let sensor = |w: &SensorWindow| catalog.sensor(w.key);
            Columns::new()
                .utf8("sensor", rows.iter().map(|w| sensor(w).sensor.as_str()))
                .utf8("asset", rows.iter().map(|w| sensor(w).asset.as_str()))
                .i64("window_start_us", rows.iter().map(|w| w.start_us))
                .i64("window_end_us", rows.iter().map(|w| w.end_us))
                .u64("count", rows.iter().map(|w| w.aggregate.count))
                .f64("mean", rows.iter().map(|w| w.aggregate.mean()))
                .f64("min", rows.iter().map(|w| w.aggregate.min))
                .f64("max", rows.iter().map(|w| w.aggregate.max))
                .f64("last", rows.iter().map(|w| w.aggregate.last))
                .f64("variance", rows.iter().map(|w| w.aggregate.variance()))
                .finish()
        },
    )
}

/// The part file of `out/late/` for one worker. Late rows keep what W needs
/// and their position; the raw log at `position` holds the rest of the row.
pub fn late_writer(
    out: &Path,
    worker: usize,
    catalog: &Arc<Catalog>,
) -> Result<PartWriter<LateReading>> {
    let catalog = Arc::clone(catalog);
    PartWriter::from_encoder(&out.join("late"), worker, move |rows: &[LateReading]| {
        let sensor = |r: &LateReading| catalog.sensor(r.reading.sensor);
        Columns::new()
            .u64("position", rows.iter().map(|r| r.position))
            .i64("ts_us", rows.iter().map(|r| r.reading.ts_us))
            .utf8("asset", rows.iter().map(|r| sensor(r).asset.as_str()))
            .utf8("sensor", rows.iter().map(|r| sensor(r).sensor.as_str()))
            .f64("value", rows.iter().map(|r| r.reading.value))
            .i64("watermark_us", rows.iter().map(|r| r.watermark_us))
            .finish()
    })
}

/// The part file of `out/quarantine/` for one worker: every original field
/// (with the raw log's types), then why, when and where.
pub fn quarantine_writer(out: &Path, worker: usize) -> Result<PartWriter<Quarantined>> {
    PartWriter::from_encoder(
        &out.join("quarantine"),
        worker,
        move |rows: &[Quarantined]| {
            Columns::new()
                .i64("ts_us", rows.iter().map(|r| r.row.ts_us))
                .i64("arrival_us", rows.iter().map(|r| r.row.arrival_us))
                .utf8("asset", rows.iter().map(|r| r.row.asset.as_str()))
                .utf8("sensor", rows.iter().map(|r| r.row.sensor.as_str()))
                .utf8("kind", rows.iter().map(|r| r.row.kind.as_str()))
                .f64("value", rows.iter().map(|r| r.row.value))
                .u64("seq", rows.iter().map(|r| r.row.seq))
                .u8("quality", rows.iter().map(|r| r.row.quality))
                .random_bytes_opt("tag", rows.iter().map(|r| r.row.tag.as_deref()))
                .utf8("reason", rows.iter().map(|r| r.reason.code()))
                .i64("watermark_us", rows.iter().map(|r| r.watermark_us))
                .u64("position", rows.iter().map(|r| r.position))
                .finish()
        },
    )
}

/// The part file of `out/seq_gaps/` for one worker: the sequence numbers
/// each sensor never delivered, which is how dropped events show.
pub fn seq_gaps_writer(
    out: &Path,
    worker: usize,
    catalog: &Arc<Catalog>,
) -> Result<PartWriter<SeqGap>> {
    let catalog = Arc::clone(catalog);
    PartWriter::from_encoder(&out.join("seq_gaps"), worker, move |rows: &[SeqGap]| {
        let sensor = |g: &SeqGap| catalog.sensor(g.sensor);
        Columns::new()
            .utf8("sensor", rows.iter().map(|g| sensor(g).sensor.as_str()))
            .utf8("asset", rows.iter().map(|g| sensor(g).asset.as_str()))
            .u64("first_seq", rows.iter().map(|g| g.first_seq))
            .u64("missing", rows.iter().map(|g| g.missing))
            .i64_opt("noticed_us", rows.iter().map(|g| g.noticed_us))
            .finish()
    })
}

/// Names of an aligned row's channels and of its fused quantities: the
/// variable part of the aligned, fused and twin datasets' schemas.
#[derive(Debug, Clone)]
pub struct Layout {
    pub catalog: Arc<Catalog>,
    pub hierarchy: Arc<Hierarchy>,
    pub channels: Vec<String>,
    pub quantities: Vec<String>,
    /// The channels of sensors that fusion weighs (members of a redundant
    /// group on some asset), in channel order: the twin view shows their
    /// trust.
    pub fused_channels: Vec<String>,
    /// The name of step D's detector, for `flags/`'s `detector` column.
    pub detector: String,
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
            let channels = by_channel(rows.iter(), layout.channels.len());
            layout.channel_columns(&mut columns, &channels);
            columns.finish()
        },
    )
}

/// The part file of `out/fused/`: one row per asset, window and fused
/// quantity that had at least one measurement.
pub fn fused_writer(out: &Path, worker: usize, layout: &Layout) -> Result<PartWriter<FusedRecord>> {
    let layout = layout.clone();
    PartWriter::from_encoder(&out.join("fused"), worker, move |rows: &[FusedRecord]| {
        Columns::new()
            .utf8("asset", rows.iter().map(|r| layout.asset_name(r.asset)))
            .i64("window_start_us", rows.iter().map(|r| r.start_us))
            .utf8(
                "quantity",
                rows.iter().map(|r| layout.quantities[r.quantity].as_str()),
            )
            .f64("value", rows.iter().map(|r| r.value.value))
            .f64("variance", rows.iter().map(|r| r.value.variance))
            .f64("lo95", rows.iter().map(|r| r.value.interval95().0))
            .f64("hi95", rows.iter().map(|r| r.value.interval95().1))
            .u32("sensors", rows.iter().map(|r| r.value.sensors))
            .finish()
    })
}

/// The part file of `out/imputed/`: per asset, window and channel not
/// measured in it, an estimate: asset, window_start_us, channel, value,
/// variance (of the estimate of the channel's true window value) and model
/// (`fusion` when the channel's quantity was fused from the asset's other
/// sensors of it, else the model's kind, e.g. `gaussian`).
pub fn imputed_writer(
    out: &Path,
    worker: usize,
    layout: &Layout,
) -> Result<PartWriter<ImputedRecord>> {
    let layout = layout.clone();
    PartWriter::from_encoder(
        &out.join("imputed"),
        worker,
        move |rows: &[ImputedRecord]| {
            Columns::new()
                .utf8("asset", rows.iter().map(|r| layout.asset_name(r.asset)))
                .i64("window_start_us", rows.iter().map(|r| r.start_us))
                .utf8(
                    "channel",
                    rows.iter()
                        .map(|r| layout.channels[r.imputed.slot].as_str()),
                )
                .f64("value", rows.iter().map(|r| r.imputed.value))
                .f64("variance", rows.iter().map(|r| r.imputed.variance))
                .code("model", rows.iter().map(|r| r.imputed.by.name()))
                .finish()
        },
    )
}

/// The part file of `out/trust/`: per redundant sensor and window, how far
/// fusion believed it: asset, sensor, window_start_us, trust (0–1), weight
/// (its share of the fused estimate), state (`trusted`, `down_weighted`,
/// `excluded`) and residual (normalised; null when not measured).
pub fn trust_writer(out: &Path, worker: usize, layout: &Layout) -> Result<PartWriter<TrustRecord>> {
    let catalog = Arc::clone(&layout.catalog);
    PartWriter::from_encoder(&out.join("trust"), worker, move |rows: &[TrustRecord]| {
        let sensor = |r: &TrustRecord| catalog.sensor(r.trust.sensor);
        Columns::new()
            .utf8("asset", rows.iter().map(|r| sensor(r).asset.as_str()))
            .utf8("sensor", rows.iter().map(|r| sensor(r).sensor.as_str()))
            .i64("window_start_us", rows.iter().map(|r| r.start_us))
            .f64("trust", rows.iter().map(|r| r.trust.trust))
            .f64("weight", rows.iter().map(|r| r.trust.weight))
            .code("state", rows.iter().map(|r| r.trust.state.code()))
            .f64_opt("residual", rows.iter().map(|r| r.trust.residual))
            .finish()
    })
}

/// A row of `flags/`: a window step D's detector found anomalous, or a
/// sensor fusion (or verification) found lying.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum FlagRow {
    Anomaly(Flag<SensorId>),
    Suspect(Suspect),
    /// A channel that keeps not fitting its asset's model (`model_nll`).
    Model(ModelAlarm),
}

/// What `flags/`'s `reason` says of a `model_nll` alarm.
pub const CROSS_CHANNEL_REASON: &str = "cross_channel";

/// What `flags/`'s `detector` says of a sensor suspect.
pub const SENSOR_SUSPECT: &str = "sensor_suspect";

/// What `flags/`'s `reason` says of step D's flags.
pub const ANOMALY_REASON: &str = "outlier";

impl FlagRow {
    fn sensor(&self) -> SensorId {
        match self {
            FlagRow::Anomaly(f) => f.key,
            FlagRow::Suspect(s) => s.sensor,
            FlagRow::Model(m) => m.sensor,
        }
    }

    fn start_us(&self) -> Micros {
        match self {
            FlagRow::Anomaly(f) => f.start_us,
            FlagRow::Suspect(s) => s.start_us,
            FlagRow::Model(m) => m.start_us,
        }
    }
}

/// The part file of `out/flags/`: asset, sensor, window_start_us, detector
/// (step D's, e.g. `ewma_z`, or `sensor_suspect`), reason (`outlier` for
/// step D; a suspect's reason: `deviating`, `stuck`, `ambiguous`,
/// `clock_ahead`), value (the window mean; null for `clock_ahead`), score
/// (D's score, e.g. z; a suspect's evidence strength: for `clock_ahead`, the
/// lead in seconds) and evidence (in words; null for D).
pub fn flags_writer(out: &Path, worker: usize, layout: &Layout) -> Result<PartWriter<FlagRow>> {
    let catalog = Arc::clone(&layout.catalog);
    let detector = layout.detector.clone();
    PartWriter::from_encoder(&out.join("flags"), worker, move |flags: &[FlagRow]| {
        Columns::new()
            .utf8(
                "asset",
                flags
                    .iter()
                    .map(|f| catalog.sensor(f.sensor()).asset.as_str()),
            )
            .utf8(
                "sensor",
                flags
                    .iter()
                    .map(|f| catalog.sensor(f.sensor()).sensor.as_str()),
            )
            .i64("window_start_us", flags.iter().map(FlagRow::start_us))
            .code(
                "detector",
                flags.iter().map(|f| match f {
                    FlagRow::Anomaly(_) => detector.as_str(),
                    FlagRow::Suspect(_) => SENSOR_SUSPECT,
                    FlagRow::Model(_) => MODEL_NLL,
                }),
            )
            .code(
                "reason",
                flags.iter().map(|f| match f {
                    FlagRow::Anomaly(_) => ANOMALY_REASON,
                    FlagRow::Suspect(s) => s.reason.code(),
                    FlagRow::Model(_) => CROSS_CHANNEL_REASON,
                }),
            )
            .f64_opt(
                "value",
                flags.iter().map(|f| match f {
                    FlagRow::Anomaly(a) => Some(a.value),
                    FlagRow::Suspect(s) => s.value,
                    FlagRow::Model(m) => m.value,
                }),
            )
            .f64(
                "score",
                flags.iter().map(|f| match f {
                    FlagRow::Anomaly(a) => a.score,
                    FlagRow::Suspect(s) => s.score,
                    FlagRow::Model(m) => m.score,
                }),
            )
            .utf8_opt(
                "evidence",
                flags.iter().map(|f| match f {
                    FlagRow::Anomaly(_) => None,
                    FlagRow::Suspect(s) => Some(s.evidence.as_str()),
                    FlagRow::Model(m) => Some(m.evidence.as_str()),
                }),
            )
            .finish()
    })
}

/// An asset twin as a row of `twins/assets/`.
pub type AssetTwinRow = (AssetId, AssetTwin);
/// A rollup as a row of `twins/lines/` or `twins/sites/`.
pub type RollupRow = (u32, Rollup);
/// A change of a view: the row, the time it changed at, +1 or −1.
pub type Change<D> = (D, Micros, isize);

/// The two datasets of a twin view: its final state (`twins/<view>/`) and
/// its change stream (`twin_changes/<view>/`: `time_us` and `diff`, then the
/// same columns), encoded alike by `columns`.
pub struct ViewWriters<D> {
    pub state: PartWriter<D>,
    pub changes: PartWriter<Change<D>>,
}

/// The part files of view `view` for one worker; `columns` appends a batch
/// of rows' columns.
pub fn view_writers<D: 'static>(
    out: &Path,
    worker: usize,
    view: &str,
    columns: impl Fn(&mut Columns, &[&D]) + Clone + 'static,
) -> Result<ViewWriters<D>> {
    let state_columns = columns.clone();
    let state = PartWriter::from_encoder(
        &out.join("twins").join(view),
        worker,
        move |rows: &[D]| {
            let rows: Vec<&D> = rows.iter().collect();
            let mut batch = Columns::new();
            state_columns(&mut batch, &rows);
            batch.finish()
        },
    )?;
    let changes = PartWriter::from_encoder(
        &out.join("twin_changes").join(view),
        worker,
        move |changes: &[Change<D>]| {
            let mut batch = Columns::new();
            batch
                .i64("time_us", changes.iter().map(|(_, t, _)| *t))
                .i64("diff", changes.iter().map(|(_, _, d)| *d as i64));
            let rows: Vec<&D> = changes.iter().map(|(row, _, _)| row).collect();
            columns(&mut batch, &rows);
            batch.finish()
        },
    )?;
    Ok(ViewWriters { state, changes })
}

/// The writers of the asset view (`twins/assets/`, `twin_changes/assets/`).
pub fn asset_view_writers(
    out: &Path,
    worker: usize,
    layout: &Layout,
) -> Result<ViewWriters<AssetTwinRow>> {
    let layout = layout.clone();
    let trust_columns = layout.trust_columns();
    view_writers(out, worker, "assets", move |columns, rows| {
        layout.asset_twin_columns(columns, rows, &trust_columns);
    })
}

/// The writers of the rollups by `group` (`line` or `site`: `twins/<group>s/`,
/// `twin_changes/<group>s/`).
pub fn rollup_view_writers(
    out: &Path,
    worker: usize,
    layout: &Layout,
    group: &'static str,
) -> Result<ViewWriters<RollupRow>> {
    let layout = layout.clone();
    view_writers(out, worker, &format!("{group}s"), move |columns, rows| {
        layout.rollup_columns(columns, group, rows);
    })
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

    /// Per channel `c`: `c` and `c_source`, from [`by_channel`]'s table.
    fn channel_columns(&self, columns: &mut Columns, by_channel: &[Vec<AlignedValue>]) {
        for (channel, values) in self.channels.iter().zip(by_channel) {
            columns
                .f64_opt(channel, values.iter().map(|v| v.value))
                .code(
                    &format!("{channel}_source"),
                    values.iter().map(|v| v.source.code()),
                );
        }
    }

    /// Per sensor id: the index of its channel in `fused_channels`, if
    /// fusion weighs it.
    fn trust_columns(&self) -> Vec<Option<usize>> {
        self.catalog
            .sensors()
            .iter()
            .map(|s| self.fused_channels.iter().position(|c| *c == s.channel))
            .collect()
    }

    /// `trust_columns` is [`Layout::trust_columns`].
    fn asset_twin_columns<'c>(
        &self,
        columns: &'c mut Columns,
        rows: &[&AssetTwinRow],
        trust_columns: &[Option<usize>],
    ) -> &'c mut Columns {
        // Each row's aligned and fused values sit behind its shared row, so
        // they are gathered in one pass over the rows (see `by_channel`).
        let latest: Vec<&FusedRow> = rows.iter().map(|(_, t)| &*t.state.latest).collect();
        let starts: Vec<Micros> = latest.iter().map(|r| r.start_us()).collect();
        let channels = by_channel(latest.iter().map(|r| &r.row), self.channels.len());
        let fused = transpose(latest.iter().map(|r| &r.values[..]), self.quantities.len());
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
            .i64("window_start_us", starts.iter().copied())
            .u64("flags", rows.iter().map(|(_, t)| t.state.flags))
            .code("health", rows.iter().map(|(_, t)| t.state.health.code()));
        self.channel_columns(columns, &channels);
        for (quantity, values) in self.quantities.iter().zip(&fused) {
            columns
                .f64_opt(
                    &format!("fused_{quantity}"),
                    values.iter().map(|v| v.map(|v| v.value)),
                )
                .f64_opt(
                    &format!("fused_{quantity}_variance"),
                    values.iter().map(|v| v.map(|v| v.variance)),
                );
        }
        // How far fusion believes each redundant sensor: per fused channel,
        // the first of a row's trust records of a sensor on it.
        let mut by_trust_column = vec![vec![None; latest.len()]; self.fused_channels.len()];
        for (r, row) in latest.iter().enumerate() {
            for t in &row.trust {
                if let Some(column) = trust_columns[t.sensor as usize] {
                    by_trust_column[column][r].get_or_insert(*t);
                }
            }
        }
        for (channel, trust) in self.fused_channels.iter().zip(&by_trust_column) {
            columns
                .f64_opt(
                    &format!("{channel}_trust"),
                    trust.iter().map(|t| t.map(|t| t.trust)),
                )
                .f64_opt(
                    &format!("{channel}_weight"),
                    trust.iter().map(|t| t.map(|t| t.weight)),
                )
                .code_opt(
                    &format!("{channel}_state"),
                    trust.iter().map(|t| t.map(|t| t.state.code())),
                );
        }
        // The model's (or fusion's) estimate of each channel not measured
        // in the latest window, beside the spec's aligned value.
        let mut imputed = vec![vec![None; latest.len()]; self.channels.len()];
        for (r, row) in latest.iter().enumerate() {
            for i in &row.imputed {
                imputed[i.slot][r] = Some(*i);
            }
        }
        for (channel, values) in self.channels.iter().zip(&imputed) {
            columns
                .f64_opt(
                    &format!("{channel}_imputed"),
                    values.iter().map(|v| v.map(|i| i.value)),
                )
                .f64_opt(
                    &format!("{channel}_imputed_sigma"),
                    values.iter().map(|v| v.map(|i| i.variance.sqrt())),
                )
                .code_opt(
                    &format!("{channel}_imputed_by"),
                    values.iter().map(|v| v.map(|i| i.by.name())),
                );
        }
        // When each sensor was last seen, and how long before the latest window.
        for (channel, values) in self.channels.iter().zip(&channels) {
            columns
                .i64_opt(
                    &format!("{channel}_last_seen_us"),
                    values.iter().map(|v| v.last_seen_us),
                )
                .i64_opt(
                    &format!("{channel}_staleness_us"),
                    values
                        .iter()
                        .zip(&starts)
                        .map(|(v, &start)| staleness_us(start, v)),
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
            .code(
                "worst_health",
                rows.iter().map(|(_, r)| r.worst_health.code()),
            )
            .i64(
                "newest_window_start_us",
                rows.iter().map(|(_, r)| r.newest_us),
            )
    }
}

/// Each channel's values across `rows`, gathered in one pass over the rows.
/// A row keeps its values on the heap: reading them a column at a time
/// missed the cache once per cell, which cost more than encoding the cell.
fn by_channel<'r>(
    rows: impl Iterator<Item = &'r AlignedRow>,
    channels: usize,
) -> Vec<Vec<AlignedValue>> {
    transpose(rows.map(|r| &r.values[..]), channels)
}

/// The columns of rows of `width` cells each.
fn transpose<'r, T: Copy + 'r>(rows: impl Iterator<Item = &'r [T]>, width: usize) -> Vec<Vec<T>> {
    let rows = rows.collect::<Vec<_>>();
    let mut columns: Vec<Vec<T>> = (0..width).map(|_| Vec::with_capacity(rows.len())).collect();
    for row in rows {
        for (column, cell) in columns.iter_mut().zip(row) {
            column.push(*cell);
        }
    }
    columns
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use twinflow_engine::raw_log::raw_log_schema;

    /// Quarantined rows keep every raw-log column with the raw log's own
    /// name, type and nullability, so they can be replayed or compared as they came.
    #[test]
    fn quarantine_starts_with_the_raw_log_columns() {
        let dir = std::env::temp_dir().join(format!("twinflow-schemas-{}", std::process::id()));
        quarantine_writer(&dir, 0).unwrap().finish().unwrap();
        let file = std::fs::File::open(dir.join("quarantine/part-00000.parquet")).unwrap();
        let schema = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .schema()
            .clone();
        let raw = raw_log_schema();
        // Writer hints (field metadata) may differ: the raw log's names are
        // dictionary-encoded, a quarantine's few rows are not.
        use arrow::datatypes::{DataType, FieldRef};
        let shape = |fields: &[FieldRef]| -> Vec<(String, DataType, bool)> {
            fields
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable()))
                .collect()
        };
        assert_eq!(
            shape(&schema.fields()[..raw.fields().len()]),
            shape(&raw.fields()[..])
        );
        let rest: Vec<&str> = schema.fields()[raw.fields().len()..]
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(rest, ["reason", "watermark_us", "position"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
