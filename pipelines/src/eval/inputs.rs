//! What eval reads: the log's catalog, labels and truth, and the replay's windows, fused values, suspects and alarms.

use std::path::{Path, PathBuf};

use arrow::array::Array;
use rustc_hash::{FxHashMap, FxHashSet};
use twinflow_engine::catalog::{AssetId, Catalog, SensorId};
use twinflow_engine::error::{Error, Result};
use twinflow_engine::time::Micros;
use twinflow_operators::align::{Alignment, Fill};
use twinflow_operators::redundancy::Redundancy;
use twinflow_operators::trust::TrustState;

use super::WINDOW_US;
use super::conditions::Incidents;
use super::model_nll::MODEL_NLL;
use crate::dataset::{counts, floats, ints, required, scan, scan_file, string_at, strings};
use crate::schemas::SENSOR_SUSPECT;
use crate::twinbench::IncidentKind;
use crate::twinbench::labels::{LABELS_FILE, read_labels};
use crate::twinbench::truth::TRUTH_FILE;

/// The truth of every asset and channel per second.
#[derive(Debug, Default)]
pub struct Truth {
    /// Keyed by asset, channel (its index in the alignment) and second.
    values: FxHashMap<(AssetId, usize, Micros), f64>,
    first_us: Option<Micros>,
    last_us: Option<Micros>,
}

impl Truth {
    /// What a perfect sensor on `channel` of `asset` reads on average during
    /// the second starting at `start_us`.
    pub fn at(&self, asset: AssetId, channel: usize, start_us: Micros) -> Option<f64> {
        self.values.get(&(asset, channel, start_us)).copied()
    }

    /// Per channel (its index in the alignment, `channels` of them), the
    /// standard deviation of its truth over every asset and second (over n,
    /// not n − 1); `None` for a channel without truth.
    pub fn sd_by_channel(&self, channels: usize) -> Vec<Option<f64>> {
        let mut sums = vec![(0u64, 0.0f64); channels];
        for (&(_, channel, _), &value) in &self.values {
            let (n, sum) = &mut sums[channel];
            *n += 1;
            *sum += value;
        }
        let means: Vec<f64> = sums.iter().map(|&(n, sum)| sum / n.max(1) as f64).collect();
        let mut squares = vec![0.0f64; channels];
        for (&(_, channel, _), &value) in &self.values {
            squares[channel] += (value - means[channel]).powi(2);
        }
        sums.iter()
            .zip(squares)
            .map(|(&(n, _), square)| (n > 0).then(|| (square / n as f64).sqrt()))
            .collect()
    }

    /// The log's duration in hours: from its first second to the end of its last.
    pub fn hours(&self) -> f64 {
        match (self.first_us, self.last_us) {
            (Some(first), Some(last)) => (last + WINDOW_US - first) as f64 / 3.6e9,
            _ => 0.0,
        }
    }
}

/// A sensor's window in `windows/`: its mean and how many readings it holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowMean {
    pub mean: f64,
    pub count: u64,
}

/// One row of `fused/`, by the catalog's ids.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusedEstimate {
    pub asset: AssetId,
    /// Index into the redundancy's quantities.
    pub quantity: usize,
    pub start_us: Micros,
    pub value: f64,
    pub lo95: f64,
    pub hi95: f64,
}

/// One `sensor_suspect` row of `flags/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuspectFlag {
    pub sensor: SensorId,
    pub start_us: Micros,
    pub reason: String,
}

/// One `model_nll` row of `flags/`: an alarm raised on an asset, at its onset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alarm {
    pub asset: AssetId,
    /// The sensor of the channel that stood out most.
    pub sensor: SensorId,
    pub start_us: Micros,
}

/// Everything eval scores, read and indexed by the catalog's ids.
#[derive(Debug)]
pub struct Inputs {
    pub log: PathBuf,
    pub out: PathBuf,
    pub catalog: Catalog,
    pub alignment: Alignment,
    /// Which sensors of each asset measure each fused quantity (the
    /// catalog's: the sensor table's `quantity`, else the sensor's kind).
    pub redundancy: Redundancy,
    pub incidents: Incidents,
    pub truth: Truth,
    /// Windows of redundant sensors and of sensors with a drift label (whose
    /// onset they show), by sensor and window start.
    pub windows: FxHashMap<(SensorId, Micros), WindowMean>,
    pub fused: Vec<FusedEstimate>,
    /// In sensor, then window order.
    pub suspects: Vec<SuspectFlag>,
    /// The `model_nll` detector's alarms, in asset, then window order.
    pub alarms: Vec<Alarm>,
    /// The windows in which fusion held each sensor excluded (`trust/`).
    pub excluded: FxHashSet<(SensorId, Micros)>,
}

impl Inputs {
    /// Reads the generator's directory `log` (a path to a file in it names
    /// its directory) and the replay's output directory `out`; `stage` is
    /// told the name of each step as it starts.
    pub fn read(log: &Path, out: &Path, mut stage: impl FnMut(&str)) -> Result<Self> {
        let log = if log.is_file() {
            log.parent().unwrap_or(Path::new(".")).to_path_buf()
        } else {
            log.to_path_buf()
        };
        stage("catalog and labels");
        let catalog = Catalog::read_dir(&log)?;
        // Only its channel indices are used: how it fills gaps does not matter.
        let alignment =
            Alignment::from_catalog(&catalog, WINDOW_US, Fill::CarryForward { max_age: 0 });
        let redundancy = Redundancy::from_catalog(&catalog, &alignment);
        let labels_path = log.join(LABELS_FILE);
        let incidents =
            Incidents::from_labels(&read_labels(&labels_path)?, &catalog, &labels_path)?;
        stage("truth");
        let truth = read_truth(&log.join(TRUTH_FILE), &catalog, &alignment)?;
        stage("windows");
        let mut keep = vec![false; catalog.sensors().len()];
        for asset in 0..catalog.assets().len() {
            for group in redundancy.groups(asset as AssetId) {
                for member in &group.members {
                    keep[member.sensor as usize] = true;
                }
            }
        }
        for (sensor, incidents) in incidents.by_sensor() {
            if incidents
                .iter()
                .any(|i| i.kind == IncidentKind::Drift.name())
            {
                keep[sensor as usize] = true;
            }
        }
        let windows = read_windows(&out.join("windows"), &catalog, &keep)?;
        stage("fused values");
        let fused = read_fused(&out.join("fused"), &catalog, &redundancy)?;
        stage("flags");
        let (suspects, alarms) = read_flags(&out.join("flags"), &catalog)?;
        stage("trust");
        let excluded = read_exclusions(&out.join("trust"), &catalog)?;
        Ok(Inputs {
            log,
            out: out.to_path_buf(),
            catalog,
            alignment,
            redundancy,
            incidents,
            truth,
            windows,
            fused,
            suspects,
            alarms,
            excluded,
        })
    }
}

fn unknown(path: &Path, what: &str, name: &str) -> Error {
    Error::format(
        path,
        format!("names {what} {name:?}, which the catalog lacks"),
    )
}

fn not_null(path: &Path, column: &str) -> Error {
    Error::format(path, format!("null in column `{column}`"))
}

fn read_truth(path: &Path, catalog: &Catalog, alignment: &Alignment) -> Result<Truth> {
    let mut truth = Truth::default();
    scan_file(
        path,
        &["asset", "channel", "ts_us", "value"],
        |path, batch| {
            let asset = required(strings(batch, "asset"), path, "asset")?;
            let channel = required(strings(batch, "channel"), path, "channel")?;
            let ts = required(ints(batch, "ts_us"), path, "ts_us")?;
            let value = required(floats(batch, "value"), path, "value")?;
            if asset.null_count() + channel.null_count() + ts.null_count() + value.null_count() > 0
            {
                return Err(not_null(path, "asset, channel, ts_us or value"));
            }
            for i in 0..batch.num_rows() {
                let a = catalog
                    .asset_id(asset.value(i))
                    .ok_or_else(|| unknown(path, "asset", asset.value(i)))?;
                let c = alignment
                    .channel_index(channel.value(i))
                    .ok_or_else(|| unknown(path, "channel", channel.value(i)))?;
                let t = ts.value(i);
                truth.values.insert((a, c, t), value.value(i));
                truth.first_us = Some(truth.first_us.map_or(t, |f| f.min(t)));
                truth.last_us = Some(truth.last_us.map_or(t, |l| l.max(t)));
            }
            Ok(())
        },
    )?;
    Ok(truth)
}

fn read_windows(
    dir: &Path,
    catalog: &Catalog,
    keep: &[bool],
) -> Result<FxHashMap<(SensorId, Micros), WindowMean>> {
    require_dataset(dir)?;
    let mut windows = FxHashMap::default();
    let columns = [
        "sensor",
        "window_start_us",
        "window_end_us",
        "count",
        "mean",
    ];
    scan(dir, &columns, |path, batch| {
        let sensor = required(strings(batch, "sensor"), path, "sensor")?;
        let start = required(ints(batch, "window_start_us"), path, "window_start_us")?;
        let end = required(ints(batch, "window_end_us"), path, "window_end_us")?;
        let count = required(counts(batch, "count"), path, "count")?;
        let mean = required(floats(batch, "mean"), path, "mean")?;
        if sensor.null_count() + start.null_count() + end.null_count() + count.null_count() > 0 {
            return Err(not_null(
                path,
                "sensor, window_start_us, window_end_us or count",
            ));
        }
        for i in 0..batch.num_rows() {
            let s = catalog
                .sensor_id(sensor.value(i))
                .ok_or_else(|| unknown(path, "sensor", sensor.value(i)))?;
            if end.value(i) - start.value(i) != WINDOW_US {
                return Err(Error::format(
                    path,
                    format!(
                        "a window of {} µs: eval scores 1 s windows, the truth's resolution",
                        end.value(i) - start.value(i)
                    ),
                ));
            }
            if keep[s as usize] && mean.is_valid(i) {
                let window = WindowMean {
                    mean: mean.value(i),
                    count: count.value(i),
                };
                windows.insert((s, start.value(i)), window);
            }
        }
        Ok(())
    })?;
    Ok(windows)
}

fn read_fused(
    dir: &Path,
    catalog: &Catalog,
    redundancy: &Redundancy,
) -> Result<Vec<FusedEstimate>> {
    require_dataset(dir)?;
    let mut fused = Vec::new();
    let columns = [
        "asset",
        "window_start_us",
        "quantity",
        "value",
        "lo95",
        "hi95",
    ];
    scan(dir, &columns, |path, batch| {
        let asset = required(strings(batch, "asset"), path, "asset")?;
        let start = required(ints(batch, "window_start_us"), path, "window_start_us")?;
        let quantity = required(strings(batch, "quantity"), path, "quantity")?;
        let value = required(floats(batch, "value"), path, "value")?;
        let lo95 = required(floats(batch, "lo95"), path, "lo95")?;
        let hi95 = required(floats(batch, "hi95"), path, "hi95")?;
        let nulls = [
            asset.null_count(),
            start.null_count(),
            quantity.null_count(),
        ];
        let nulls = nulls.iter().sum::<usize>()
            + value.null_count()
            + lo95.null_count()
            + hi95.null_count();
        if nulls > 0 {
            return Err(not_null(
                path,
                "asset, window_start_us, quantity, value, lo95 or hi95",
            ));
        }
        for i in 0..batch.num_rows() {
            let a = catalog
                .asset_id(asset.value(i))
                .ok_or_else(|| unknown(path, "asset", asset.value(i)))?;
            let q = redundancy
                .quantities()
                .iter()
                .position(|q| q == quantity.value(i))
                .ok_or_else(|| {
                    Error::format(
                        path,
                        format!(
                            "quantity {:?} is no redundant group of the catalog (its groups: {})",
                            quantity.value(i),
                            redundancy.quantities().join(", ")
                        ),
                    )
                })?;
            fused.push(FusedEstimate {
                asset: a,
                quantity: q,
                start_us: start.value(i),
                value: value.value(i),
                lo95: lo95.value(i),
                hi95: hi95.value(i),
            });
        }
        Ok(())
    })?;
    Ok(fused)
}

/// The `sensor_suspect` and `model_nll` rows of `flags/`; other detectors' are skipped.
fn read_flags(dir: &Path, catalog: &Catalog) -> Result<(Vec<SuspectFlag>, Vec<Alarm>)> {
    require_dataset(dir)?;
    let (mut suspects, mut alarms) = (Vec::new(), Vec::new());
    let columns = ["asset", "sensor", "window_start_us", "detector", "reason"];
    scan(dir, &columns, |path, batch| {
        let asset = required(strings(batch, "asset"), path, "asset")?;
        let sensor = required(strings(batch, "sensor"), path, "sensor")?;
        let start = required(ints(batch, "window_start_us"), path, "window_start_us")?;
        let detector = required(strings(batch, "detector"), path, "detector")?;
        let reason = required(strings(batch, "reason"), path, "reason")?;
        for i in 0..batch.num_rows() {
            let detector = string_at(&detector, i);
            if detector != Some(SENSOR_SUSPECT) && detector != Some(MODEL_NLL) {
                continue;
            }
            if sensor.is_null(i) || start.is_null(i) {
                return Err(not_null(path, "sensor or window_start_us"));
            }
            let s = catalog
                .sensor_id(sensor.value(i))
                .ok_or_else(|| unknown(path, "sensor", sensor.value(i)))?;
            if detector == Some(MODEL_NLL) {
                let a = string_at(&asset, i).ok_or_else(|| not_null(path, "asset"))?;
                let a = catalog
                    .asset_id(a)
                    .ok_or_else(|| unknown(path, "asset", a))?;
                if catalog.asset_of(s) != a {
                    return Err(Error::format(
                        path,
                        format!(
                            "a {MODEL_NLL} alarm on asset {:?} names sensor {:?} of another asset",
                            asset.value(i),
                            sensor.value(i)
                        ),
                    ));
                }
                alarms.push(Alarm {
                    asset: a,
                    sensor: s,
                    start_us: start.value(i),
                });
                continue;
            }
            suspects.push(SuspectFlag {
                sensor: s,
                start_us: start.value(i),
                reason: string_at(&reason, i).unwrap_or("").to_owned(),
            });
        }
        Ok(())
    })?;
    suspects.sort_by_key(|s| (s.sensor, s.start_us));
    alarms.sort_by_key(|a| (a.asset, a.start_us, a.sensor));
    Ok((suspects, alarms))
}

/// The (sensor, window) pairs `trust/` holds as `excluded`; none if the
/// replay wrote no trust (a fusion without it).
fn read_exclusions(dir: &Path, catalog: &Catalog) -> Result<FxHashSet<(SensorId, Micros)>> {
    let mut excluded = FxHashSet::default();
    if !dir.is_dir() {
        return Ok(excluded);
    }
    scan(
        dir,
        &["sensor", "window_start_us", "state"],
        |path, batch| {
            let sensor = required(strings(batch, "sensor"), path, "sensor")?;
            let start = required(ints(batch, "window_start_us"), path, "window_start_us")?;
            let state = required(strings(batch, "state"), path, "state")?;
            if sensor.null_count() + start.null_count() + state.null_count() > 0 {
                return Err(not_null(path, "sensor, window_start_us or state"));
            }
            for i in 0..batch.num_rows() {
                if state.value(i) != TrustState::Excluded.code() {
                    continue;
                }
                let s = catalog
                    .sensor_id(sensor.value(i))
                    .ok_or_else(|| unknown(path, "sensor", sensor.value(i)))?;
                excluded.insert((s, start.value(i)));
            }
            Ok(())
        },
    )?;
    Ok(excluded)
}

/// A replay's dataset must be there: an empty one is a directory without parts.
fn require_dataset(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Error::io(
            dir,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such dataset (is this the output directory of a replay?)",
            ),
        ))
    }
}
