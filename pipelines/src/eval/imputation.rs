//! Imputation scored on a mask's hidden cells: the replay's estimates against the truth, beside carry-forward and linear interpolation of its measured windows.
//!
//! A hidden cell is a sensor's window that `replay --mask` kept from the
//! dataflow (see [`crate::mask`]); its truth is the truth of the sensor's
//! channel in that second, the same truth fused values are scored against.
//! A masked sensor under a fault is scored against the truth, not against
//! what it would have read.
//!
//! The replay's estimate of a cell is, in this order:
//! - its row in `imputed/` (asset, window_start_us, channel, value,
//!   variance, model), with the interval value ± 1.96 √variance; for a
//!   sensor of a redundant group without one, the row of its quantity (a
//!   `channel` such as `temperature`), if the model estimates quantities;
//! - for a sensor of a redundant group whose quantity another sensor of the
//!   group still measured in that window (it has a window in `windows/`),
//!   the quantity's fused value in `fused/`, with its lo95 and hi95;
//! - none: the cell counts as not imputed.
//!
//! The baselines use the replay's measured windows (`windows/`) of the
//! cell's sensor: carry-forward, the mean of its last window before the
//! cell; linear interpolation, in window start time between that and its
//! first window after the cell, which sees the future. `windows/` holding a
//! window of a hidden cell means the replay was not masked with this mask,
//! and is an error.
//!
//! Each method is scored over the cells it gives a value for: RMSE, MAE, and
//! nRMSE, the RMSE of errors each divided by its channel's truth standard
//! deviation over the whole log (all assets and seconds). Pooled rows mix
//! channels, so they report nRMSE only.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::Array;
use rustc_hash::{FxHashMap, FxHashSet};
use twinflow_engine::catalog::{AssetId, SensorId};
use twinflow_engine::error::{Error, Result};
use twinflow_engine::time::Micros;

use super::WINDOW_US;
use super::inputs::{FusedEstimate, Inputs};
use super::output::{Imputation, ImputationErrors, ImputationRow};
use crate::dataset::{floats, ints, required, scan, strings};
use crate::mask::{BlockKind, Mask, group_of};

/// The dataset of the replay's imputed values.
pub const IMPUTED_DATASET: &str = "imputed";
/// The source of estimates taken from `fused/`.
pub const FUSED_SOURCE: &str = "fused/";
/// The pooled row of every hidden cell.
pub const ALL_CELLS: &str = "all";

/// The 95 % two-sided normal quantile.
const Z95: f64 = 1.959_963_984_540_054;

/// Scores the replay in `inputs.out` on the hidden cells of the mask at `mask_path`.
pub fn score(inputs: &Inputs, mask_path: &Path) -> Result<Imputation> {
    let mask = Mask::read(mask_path, &inputs.catalog, WINDOW_US)?;
    let measured = read_measured(&inputs.out.join("windows"), inputs, &mask)?;
    let imputed_dir = inputs.out.join(IMPUTED_DATASET);
    let imputed = read_imputed(&imputed_dir, inputs, &mask)?;
    let hidden_windows: FxHashSet<(AssetId, Micros)> = mask
        .cells()
        .iter()
        .map(|&(sensor, start)| (inputs.catalog.asset_of(sensor), start))
        .collect();
    let fused: FxHashMap<(AssetId, usize, Micros), &FusedEstimate> = inputs
        .fused
        .iter()
        .filter(|f| hidden_windows.contains(&(f.asset, f.start_us)))
        .map(|f| ((f.asset, f.quantity, f.start_us), f))
        .collect();
    let channels = inputs.alignment.channels();
    let sd = inputs.truth.sd_by_channel(channels.len());

    let mut by_channel: Vec<RowSums> = (0..channels.len()).map(|_| RowSums::default()).collect();
    let mut all = RowSums::default();
    let mut by_kind: BTreeMap<BlockKind, RowSums> = BTreeMap::new();
    let mut without_truth = 0;
    for (sensor, start) in mask.cells() {
        let (asset, slot) = inputs.alignment.slot_of(sensor);
        let Some(truth) = inputs.truth.at(asset, slot, start) else {
            without_truth += 1;
            continue;
        };
        let groups = inputs.redundancy.groups(asset);
        let group = group_of(sensor, groups);
        let estimate = imputed
            .get(&(Imputes::Sensor(sensor), start))
            .or_else(|| {
                let quantity = Imputes::Quantity(asset, group?.quantity);
                imputed.get(&(quantity, start))
            })
            .map(|i| Estimate {
                value: i.value,
                interval: i.interval(),
                source: &i.model,
            })
            .or_else(|| {
                let group = group?;
                let still_measured = group
                    .members
                    .iter()
                    .any(|m| m.sensor != sensor && inputs.windows.contains_key(&(m.sensor, start)));
                let fused = fused
                    .get(&(asset, group.quantity, start))
                    .filter(|_| still_measured)?;
                Some(Estimate {
                    value: fused.value,
                    interval: Some((fused.lo95, fused.hi95)),
                    source: FUSED_SOURCE,
                })
            });
        let series = measured.get(&sensor).map_or(&[][..], Vec::as_slice);
        let (before, after) = neighbours(series, start);
        let carried = before.map(|(_, mean)| mean);
        let interpolated = before
            .zip(after)
            .map(|((t0, v0), (t1, v1))| v0 + (v1 - v0) * (start - t0) as f64 / (t1 - t0) as f64);
        let cell = Cell {
            truth,
            sd: sd[slot].filter(|&sd| sd > 0.0),
            estimate,
            carried,
            interpolated,
        };
        by_channel[slot].add(&cell);
        all.add(&cell);
        let kind = mask.kind_of(sensor, start, groups);
        by_kind.entry(kind).or_default().add(&cell);
    }

    let channel_rows = by_channel
        .iter()
        .zip(channels)
        .filter(|(sums, _)| sums.cells > 0)
        .map(|(sums, channel)| sums.row(channel, true))
        .collect();
    let mut pooled = vec![all.row(ALL_CELLS, false)];
    for kind in BlockKind::ALL {
        if let Some(sums) = by_kind.get(&kind) {
            pooled.push(sums.row(kind.code(), false));
        }
    }
    Ok(Imputation {
        mask: mask_path.to_path_buf(),
        cells: mask.len() as u64,
        without_truth,
        imputed_dataset: imputed_dir.is_dir(),
        channels: channel_rows,
        pooled,
    })
}

/// A measured window: its start and mean.
type Measured = (Micros, f64);

/// The measured windows of `series` (in start order) nearest before and
/// after `start_us`, which it does not hold.
fn neighbours(series: &[Measured], start_us: Micros) -> (Option<Measured>, Option<Measured>) {
    let at = series.partition_point(|&(s, _)| s < start_us);
    let before = at.checked_sub(1).map(|i| series[i]);
    (before, series.get(at).copied())
}

/// What one method's estimate of a cell is.
struct Estimate<'a> {
    value: f64,
    interval: Option<(f64, f64)>,
    source: &'a str,
}

/// One hidden cell with its truth and every method's value.
struct Cell<'a> {
    truth: f64,
    /// Its channel's truth standard deviation, when positive.
    sd: Option<f64>,
    estimate: Option<Estimate<'a>>,
    carried: Option<f64>,
    interpolated: Option<f64>,
}

/// Sums of one method's errors.
#[derive(Debug, Default)]
struct ErrorSums {
    cells: u64,
    squares: f64,
    absolute: f64,
    /// Over the cells whose channel has a truth spread.
    normalised: u64,
    normalised_squares: f64,
}

impl ErrorSums {
    fn add(&mut self, value: f64, truth: f64, sd: Option<f64>) {
        let error = value - truth;
        self.cells += 1;
        self.squares += error * error;
        self.absolute += error.abs();
        if let Some(sd) = sd {
            self.normalised += 1;
            self.normalised_squares += (error / sd).powi(2);
        }
    }

    /// RMSE and MAE only with `units` (the cells are of one channel).
    fn errors(&self, units: bool) -> ImputationErrors {
        let mean = |sum: f64, n: u64| (n > 0).then(|| sum / n as f64);
        ImputationErrors {
            cells: self.cells,
            rmse: mean(self.squares, self.cells)
                .filter(|_| units)
                .map(f64::sqrt),
            mae: mean(self.absolute, self.cells).filter(|_| units),
            nrmse: mean(self.normalised_squares, self.normalised).map(f64::sqrt),
        }
    }
}

/// What is summed over one row's cells.
#[derive(Debug, Default)]
struct RowSums {
    cells: u64,
    sources: BTreeMap<String, u64>,
    estimate: ErrorSums,
    intervals: u64,
    covered: u64,
    carried: ErrorSums,
    interpolated: ErrorSums,
}

impl RowSums {
    fn add(&mut self, cell: &Cell) {
        self.cells += 1;
        if let Some(estimate) = &cell.estimate {
            *self.sources.entry(estimate.source.to_owned()).or_default() += 1;
            self.estimate.add(estimate.value, cell.truth, cell.sd);
            if let Some((lo, hi)) = estimate.interval {
                self.intervals += 1;
                self.covered += u64::from(lo <= cell.truth && cell.truth <= hi);
            }
        }
        if let Some(value) = cell.carried {
            self.carried.add(value, cell.truth, cell.sd);
        }
        if let Some(value) = cell.interpolated {
            self.interpolated.add(value, cell.truth, cell.sd);
        }
    }

    fn row(&self, scope: &str, units: bool) -> ImputationRow {
        let imputed = self.estimate.cells;
        ImputationRow {
            scope: scope.to_owned(),
            cells: self.cells,
            imputed,
            imputed_share: (self.cells > 0).then(|| imputed as f64 / self.cells as f64),
            sources: self.sources.clone(),
            estimate: self.estimate.errors(units),
            coverage95: (self.intervals > 0).then(|| self.covered as f64 / self.intervals as f64),
            carry_forward: self.carried.errors(units),
            interpolation: self.interpolated.errors(units),
        }
    }
}

/// The measured windows (start, mean) of every sensor the mask hides, in
/// start order. A window in a hidden cell is an error: the replay was not
/// masked with this mask.
fn read_measured(
    dir: &Path,
    inputs: &Inputs,
    mask: &Mask,
) -> Result<FxHashMap<SensorId, Vec<Measured>>> {
    let masked: FxHashSet<SensorId> = mask.cells().iter().map(|&(s, _)| s).collect();
    let mut measured: FxHashMap<SensorId, Vec<Measured>> = FxHashMap::default();
    let mut in_hidden_cells = 0u64;
    scan(
        dir,
        &["sensor", "window_start_us", "mean"],
        |path, batch| {
            let sensor = required(strings(batch, "sensor"), path, "sensor")?;
            let start = required(ints(batch, "window_start_us"), path, "window_start_us")?;
            let mean = required(floats(batch, "mean"), path, "mean")?;
            for i in 0..batch.num_rows() {
                if sensor.is_null(i) || start.is_null(i) || mean.is_null(i) {
                    continue;
                }
                let Some(s) = inputs.catalog.sensor_id(sensor.value(i)) else {
                    continue;
                };
                if !masked.contains(&s) {
                    continue;
                }
                if mask.hides_window(s, start.value(i)) {
                    in_hidden_cells += 1;
                }
                measured
                    .entry(s)
                    .or_default()
                    .push((start.value(i), mean.value(i)));
            }
            Ok(())
        },
    )?;
    if in_hidden_cells > 0 {
        return Err(Error::format(
            dir,
            format!(
                "{in_hidden_cells} windows lie in cells the mask hides: was this replay run with \
                 --mask and this mask?"
            ),
        ));
    }
    for series in measured.values_mut() {
        series.sort_unstable_by_key(|&(start, _)| start);
    }
    Ok(measured)
}

/// One row of `imputed/`.
#[derive(Debug)]
struct Imputed {
    value: f64,
    variance: Option<f64>,
    model: String,
}

impl Imputed {
    fn interval(&self) -> Option<(f64, f64)> {
        let sd = self.variance.filter(|v| *v >= 0.0)?.sqrt();
        Some((self.value - Z95 * sd, self.value + Z95 * sd))
    }
}

/// What a row of `imputed/` estimates: the channel of one sensor, or a
/// redundant quantity of an asset (so each of its sensors' channels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Imputes {
    Sensor(SensorId),
    /// An asset and an index into the redundancy's quantities.
    Quantity(AssetId, usize),
}

/// The rows of `imputed/` in hidden cells (none without the dataset). Its
/// `channel` names a sensor's channel or, for a model that estimates fused
/// quantities, a redundant quantity of the asset (e.g. `temperature`),
/// which then estimates each of its sensors without a row of its own. A row
/// naming anything else, or a second row for a cell, is an error.
fn read_imputed(
    dir: &Path,
    inputs: &Inputs,
    mask: &Mask,
) -> Result<FxHashMap<(Imputes, Micros), Imputed>> {
    let mut imputed = FxHashMap::default();
    if !dir.is_dir() {
        return Ok(imputed);
    }
    let sensor_of: FxHashMap<(AssetId, usize), SensorId> = (0..inputs.catalog.sensors().len())
        .map(|id| (inputs.alignment.slot_of(id as SensorId), id as SensorId))
        .collect();
    let columns = [
        "asset",
        "window_start_us",
        "channel",
        "value",
        "variance",
        "model",
    ];
    scan(dir, &columns, |path, batch| {
        let asset = required(strings(batch, "asset"), path, "asset")?;
        let start = required(ints(batch, "window_start_us"), path, "window_start_us")?;
        let channel = required(strings(batch, "channel"), path, "channel")?;
        let value = required(floats(batch, "value"), path, "value")?;
        let variance = required(floats(batch, "variance"), path, "variance")?;
        let model = required(strings(batch, "model"), path, "model")?;
        let nulls = asset.null_count() + start.null_count() + channel.null_count();
        if nulls + value.null_count() > 0 {
            return Err(Error::format(
                path,
                "null in column `asset`, `window_start_us`, `channel` or `value`",
            ));
        }
        for i in 0..batch.num_rows() {
            let unknown = |what: &str, name: &str| {
                Error::format(
                    path,
                    format!("names {what} {name:?}, which the catalog lacks"),
                )
            };
            let a = inputs
                .catalog
                .asset_id(asset.value(i))
                .ok_or_else(|| unknown("asset", asset.value(i)))?;
            let name = channel.value(i);
            let sensor = inputs
                .alignment
                .channel_index(name)
                .and_then(|slot| sensor_of.get(&(a, slot)));
            let group = || {
                let q = inputs
                    .redundancy
                    .quantities()
                    .iter()
                    .position(|q| q == name)?;
                inputs.redundancy.groups(a).iter().find(|g| g.quantity == q)
            };
            let start = start.value(i);
            let (imputes, hidden) = match (sensor, group()) {
                (Some(&sensor), _) => (Imputes::Sensor(sensor), mask.hides_window(sensor, start)),
                (None, Some(group)) => (
                    Imputes::Quantity(a, group.quantity),
                    group
                        .members
                        .iter()
                        .any(|m| mask.hides_window(m.sensor, start)),
                ),
                (None, None) => {
                    let cell = format!("{}/{name}", asset.value(i));
                    return Err(unknown("a channel or redundant quantity", &cell));
                }
            };
            if !hidden {
                continue;
            }
            let row = Imputed {
                value: value.value(i),
                variance: variance.is_valid(i).then(|| variance.value(i)),
                model: if model.is_valid(i) {
                    model.value(i)
                } else {
                    ""
                }
                .to_owned(),
            };
            if imputed.insert((imputes, start), row).is_some() {
                return Err(Error::format(
                    path,
                    format!(
                        "two rows for {:?} {:?} at {start} µs",
                        asset.value(i),
                        channel.value(i)
                    ),
                ));
            }
        }
        Ok(())
    })?;
    Ok(imputed)
}
