//! Masks: the cells (asset, channel, window) hidden from a replay, so that imputation is scored on exactly those cells.
//!
//! A mask file is Parquet with one row per hidden cell: `asset` (string),
//! `channel` (string, a channel of the sensor table, e.g. `temp-1`) and
//! `window_start_us` (int64, the start of a window on the pipeline's grid).
//! `twinflow mask` writes one ([`generate`]); `replay --mask` drops every
//! reading in a hidden cell before windowing ([`hide`]); `eval --mask`
//! scores the replay's estimates of the hidden cells against the truth.
//!
//! A hidden cell is one of three [`BlockKind`]s, told from the mask and the
//! catalog's redundancy alone (blocks on one asset never overlap): a channel
//! without a redundant twin, some of a redundant quantity's sensors, or all
//! of them.

pub mod generate;
pub mod hide;

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use twinflow_engine::catalog::{AssetId, Catalog, SensorId};
use twinflow_engine::error::{Error, Result};
use twinflow_engine::sink::ParquetFile;
use twinflow_engine::time::{Micros, window_start};
use twinflow_operators::redundancy::Group;

use crate::dataset::{ints, required, scan_file, strings};

/// The columns of a mask file.
pub const MASK_COLUMNS: [&str; 3] = ["asset", "channel", "window_start_us"];

/// One hidden cell, by name, as a mask file holds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MaskCell {
    pub asset: String,
    pub channel: String,
    pub window_start_us: Micros,
}

/// What a hidden cell takes away from its asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// A channel whose sensor has no redundant twin on its asset (TwinBench:
    /// `current`, `flow`, `vib-1`).
    NonRedundant,
    /// Some, not all, of the sensors of one redundant quantity: the quantity
    /// is still measured by the others.
    OneSensor,
    /// Every sensor of one redundant quantity of the asset.
    WholeQuantity,
}

impl BlockKind {
    pub const ALL: [BlockKind; 3] = [
        BlockKind::NonRedundant,
        BlockKind::OneSensor,
        BlockKind::WholeQuantity,
    ];

    /// Its name in `eval.json` and the tables.
    pub fn code(self) -> &'static str {
        match self {
            BlockKind::NonRedundant => "non_redundant",
            BlockKind::OneSensor => "one_sensor",
            BlockKind::WholeQuantity => "whole_quantity",
        }
    }
}

/// Writes `cells` as a mask file (atomically: a failed write leaves no file),
/// with `metadata` in its footer; returns the rows written.
pub fn write_mask(path: &Path, cells: &[MaskCell], metadata: &[(String, String)]) -> Result<u64> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("asset", DataType::Utf8, false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("window_start_us", DataType::Int64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            cells.iter().map(|c| c.asset.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            cells.iter().map(|c| c.channel.as_str()),
        )),
        Arc::new(Int64Array::from_iter_values(
            cells.iter().map(|c| c.window_start_us),
        )),
    ];
    let batch =
        RecordBatch::try_new(Arc::clone(&schema), columns).map_err(|e| Error::format(path, e))?;
    let mut file = ParquetFile::create(path, schema)?;
    file.write(&batch)?;
    file.append_metadata(metadata);
    file.finish()
}

/// Reads the cells of a mask file. A file without the three columns, with
/// a column of another type (strings for `asset` and `channel`, integers for
/// `window_start_us`) or with a null is an error.
pub fn read_cells(path: &Path) -> Result<Vec<MaskCell>> {
    check_mask_schema(path)?;
    let mut cells = Vec::new();
    scan_file(path, &MASK_COLUMNS, |path, batch| {
        let asset = required(strings(batch, "asset"), path, "asset")?;
        let channel = required(strings(batch, "channel"), path, "channel")?;
        let start = required(ints(batch, "window_start_us"), path, "window_start_us")?;
        if asset.null_count() + channel.null_count() + start.null_count() > 0 {
            return Err(Error::format(
                path,
                "a mask has no nulls (in asset, channel or window_start_us)",
            ));
        }
        for i in 0..batch.num_rows() {
            cells.push(MaskCell {
                asset: asset.value(i).to_owned(),
                channel: channel.value(i).to_owned(),
                window_start_us: start.value(i),
            });
        }
        Ok(())
    })?;
    Ok(cells)
}

/// The columns' types, checked before any is cast (a cast would read the
/// string "12" as a window start).
fn check_mask_schema(path: &Path) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| Error::parquet(path, e))?;
    let schema = builder.schema();
    for column in MASK_COLUMNS {
        let field = schema.field_with_name(column).map_err(|_| {
            Error::schema(
                path,
                format!(
                    "not a mask: no column `{column}` (a mask has columns asset, channel and \
                     window_start_us)"
                ),
            )
        })?;
        let fits = match column {
            "window_start_us" => field.data_type().is_integer(),
            _ => is_string(field.data_type()),
        };
        if !fits {
            let wanted = match column {
                "window_start_us" => "an integer",
                _ => "a string",
            };
            return Err(Error::schema(
                path,
                format!(
                    "not a mask: column `{column}` is {}, not {wanted}",
                    field.data_type()
                ),
            ));
        }
    }
    Ok(())
}

fn is_string(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, values) => is_string(values),
        _ => false,
    }
}

/// The hidden cells of a mask, by the catalog's sensor ids: what `replay`
/// and `eval` look readings and windows up in.
#[derive(Debug, Clone, Default)]
pub struct Mask {
    hidden: FxHashSet<(SensorId, Micros)>,
    window_us: Micros,
}

impl Mask {
    /// Reads a mask file against `catalog`, on windows of `window_us`.
    pub fn read(path: &Path, catalog: &Catalog, window_us: Micros) -> Result<Self> {
        Self::from_cells(&read_cells(path)?, catalog, window_us).map_err(|e| Error::format(path, e))
    }

    /// The mask of `cells`. A cell naming an asset the catalog lacks, a
    /// channel its asset has no sensor on, or a window start off the grid
    /// of `window_us` is an error: it could hide nothing, and a typo must
    /// not pass as a mask that was applied.
    pub fn from_cells(
        cells: &[MaskCell],
        catalog: &Catalog,
        window_us: Micros,
    ) -> std::result::Result<Self, String> {
        assert!(window_us > 0, "windows have a positive length");
        let sensor_of: FxHashMap<(AssetId, &str), SensorId> = catalog
            .sensors()
            .iter()
            .enumerate()
            .map(|(id, s)| {
                let id = id as SensorId;
                ((catalog.asset_of(id), s.channel.as_str()), id)
            })
            .collect();
        let mut hidden = FxHashSet::default();
        for cell in cells {
            let asset = catalog
                .asset_id(&cell.asset)
                .ok_or_else(|| format!("asset {:?} is not in the catalog", cell.asset))?;
            let sensor = *sensor_of
                .get(&(asset, cell.channel.as_str()))
                .ok_or_else(|| {
                    format!(
                        "asset {:?} has no sensor on channel {:?}",
                        cell.asset, cell.channel
                    )
                })?;
            if window_start(cell.window_start_us, window_us) != cell.window_start_us {
                return Err(format!(
                    "window_start_us {} ({:?} {:?}) is not the start of a {} µs window",
                    cell.window_start_us, cell.asset, cell.channel, window_us
                ));
            }
            hidden.insert((sensor, cell.window_start_us));
        }
        Ok(Mask { hidden, window_us })
    }

    /// Whether a reading of `sensor` at event time `ts_us` is hidden.
    #[inline]
    pub fn hides(&self, sensor: SensorId, ts_us: Micros) -> bool {
        self.hides_window(sensor, window_start(ts_us, self.window_us))
    }

    /// Whether the window of `sensor` starting at `start_us` is hidden.
    #[inline]
    pub fn hides_window(&self, sensor: SensorId, start_us: Micros) -> bool {
        self.hidden.contains(&(sensor, start_us))
    }

    /// The hidden cells, by sensor then window start.
    pub fn cells(&self) -> Vec<(SensorId, Micros)> {
        let mut cells: Vec<_> = self.hidden.iter().copied().collect();
        cells.sort_unstable();
        cells
    }

    /// The number of hidden cells.
    pub fn len(&self) -> usize {
        self.hidden.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hidden.is_empty()
    }

    /// What the hidden window of `sensor` at `start_us` takes away: see
    /// [`BlockKind`]. Its asset's groups are `redundancy`'s.
    pub fn kind_of(&self, sensor: SensorId, start_us: Micros, groups: &[Group]) -> BlockKind {
        match group_of(sensor, groups) {
            None => BlockKind::NonRedundant,
            Some(group) => {
                let all = group
                    .members
                    .iter()
                    .all(|m| self.hides_window(m.sensor, start_us));
                if all {
                    BlockKind::WholeQuantity
                } else {
                    BlockKind::OneSensor
                }
            }
        }
    }
}

/// The redundant group of `sensor` among its asset's `groups`, if any.
pub fn group_of(sensor: SensorId, groups: &[Group]) -> Option<&Group> {
    groups
        .iter()
        .find(|g| g.members.iter().any(|m| m.sensor == sensor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let sensor = |name: &str| {
            (
                name.to_owned(),
                name[..1].to_owned(),
                "temperature".to_owned(),
            )
        };
        Catalog::discovered(&[sensor("a/t1"), sensor("a/t2"), sensor("b/t1")]).unwrap()
    }

    fn cell(asset: &str, channel: &str, start: Micros) -> MaskCell {
        MaskCell {
            asset: asset.into(),
            channel: channel.into(),
            window_start_us: start,
        }
    }

    #[test]
    fn a_mask_hides_the_readings_of_its_windows_only() {
        let catalog = catalog();
        let mask = Mask::from_cells(&[cell("b", "t1", 3_000_000)], &catalog, 1_000_000).unwrap();
        let b_t1 = catalog.sensor_id("b/t1").unwrap();
        let a_t1 = catalog.sensor_id("a/t1").unwrap();
        assert!(mask.hides(b_t1, 3_000_000));
        assert!(mask.hides(b_t1, 3_999_999));
        assert!(!mask.hides(b_t1, 4_000_000));
        assert!(!mask.hides(b_t1, 2_999_999));
        assert!(!mask.hides(a_t1, 3_500_000));
        assert_eq!(mask.cells(), [(b_t1, 3_000_000)]);
    }

    #[test]
    fn unknown_names_and_starts_off_the_grid_are_errors() {
        let catalog = catalog();
        let error = |cells: &[MaskCell]| Mask::from_cells(cells, &catalog, 1_000_000).unwrap_err();
        assert!(error(&[cell("c", "t1", 0)]).contains("asset \"c\""));
        assert!(error(&[cell("b", "t2", 0)]).contains("no sensor on channel \"t2\""));
        assert!(error(&[cell("a", "t1", 500_000)]).contains("not the start"));
    }
}
