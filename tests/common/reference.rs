//! An independent batch computation of the TwinBench reference pipeline
//! (`/work/shared/twinbench/SPEC.md`, steps W, A, F, D and V), straight from
//! the raw rows and the catalog CSV files.
//!
//! Written to be obviously right rather than fast: every step is a pass over
//! sorted maps, in the words of the spec. Nothing here shares code with the
//! engine: the catalog is parsed by hand and W comes from [`super::expected_w`].
//!
//! Readings of the spec (where it leaves room):
//! - A channel is the sensor table's `channel` column; an asset without a
//!   sensor on some channel has that channel `missing` in every row.
//! - A value is `carried` from the channel's latest W row before the window when
//!   that row's window starts at most 5 s (5 windows) earlier, else `missing`.
//! - F fuses, per asset, each sensor kind with at least two sensors on that asset
//!   in the sensor table, over the sensors *measured* in the window (never a
//!   carried value); a quantity with none measured has no row.
//! - D's z is undefined while v = 0 (never flagged then).
//! - V per asset is its latest A row, the F rows of that same window (a
//!   quantity without an F row there is null), and all of its sensors' D flags.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{ExpectedW, Fate, Row, expected_w_of};

/// Length of a window, µs.
pub const SECOND_US: i64 = 1_000_000;
/// A channel is carried from a W row at most this many windows older.
pub const CARRY_WINDOWS: i64 = 5;
/// D's smoothing factor.
pub const ALPHA: f64 = 0.05;
/// D flags a row only when at least this many rows came before it.
pub const MIN_HISTORY: usize = 30;
/// D flags a row when |z| exceeds this.
pub const Z_LIMIT: f64 = 5.0;
/// The quantity whose fused values the `sum_fused_temperature` checksum adds up.
pub const TEMPERATURE: &str = "temperature";

/// A row of `sensors.csv` (the columns the pipeline uses).
#[derive(Debug, Clone, PartialEq)]
pub struct SensorEntry {
    pub sensor: String,
    pub asset: String,
    pub channel: String,
    pub kind: String,
    pub sigma: f64,
}

/// A row of `assets.csv` (the columns the pipeline uses).
#[derive(Debug, Clone, PartialEq)]
pub struct AssetEntry {
    pub asset: String,
    pub line: String,
    pub site: String,
}

/// The two catalog tables, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Tables {
    pub assets: Vec<AssetEntry>,
    pub sensors: Vec<SensorEntry>,
}

impl Tables {
    /// Reads `assets.csv` and `sensors.csv` from a directory.
    pub fn read_dir(dir: &Path) -> Tables {
        let assets = read_plain_csv(&dir.join("assets.csv"))
            .into_iter()
            .map(|r| AssetEntry {
                asset: r["asset"].clone(),
                line: r["line"].clone(),
                site: r["site"].clone(),
            })
            .collect();
        let sensors = read_plain_csv(&dir.join("sensors.csv"))
            .into_iter()
            .map(|r| SensorEntry {
                sensor: r["sensor"].clone(),
                asset: r["asset"].clone(),
                channel: r["channel"].clone(),
                kind: r["kind"].clone(),
                sigma: r["sigma"].parse().expect("sigma is a number"),
            })
            .collect();
        Tables { assets, sensors }
    }

    /// Channels in the order they first appear in the sensor table.
    pub fn channels(&self) -> Vec<String> {
        let mut channels: Vec<String> = Vec::new();
        for s in &self.sensors {
            if !channels.contains(&s.channel) {
                channels.push(s.channel.clone());
            }
        }
        channels
    }

    /// The kinds with at least two sensors on `asset`, in sensor-table order.
    pub fn fused_kinds_of(&self, asset: &str) -> Vec<String> {
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for s in self.sensors.iter().filter(|s| s.asset == asset) {
            *count.entry(&s.kind).or_default() += 1;
        }
        let mut kinds: Vec<String> = Vec::new();
        for s in self.sensors.iter().filter(|s| s.asset == asset) {
            if count[s.kind.as_str()] >= 2 && !kinds.contains(&s.kind) {
                kinds.push(s.kind.clone());
            }
        }
        kinds
    }

    /// Every kind fused on some asset, in sensor-table order.
    pub fn fused_quantities(&self) -> Vec<String> {
        let mut kinds: Vec<String> = Vec::new();
        for s in &self.sensors {
            if !kinds.contains(&s.kind) && self.fused_kinds_of(&s.asset).contains(&s.kind) {
                kinds.push(s.kind.clone());
            }
        }
        kinds
    }

    fn sensor(&self, name: &str) -> &SensorEntry {
        self.sensors
            .iter()
            .find(|s| s.sensor == name)
            .unwrap_or_else(|| panic!("sensor {name} is not in the sensor table"))
    }
}

/// A headed CSV file without quoting, as rows of column name → field.
pub fn read_plain_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .expect("a header line")
        .split(',')
        .map(str::to_owned)
        .collect();
    lines
        .map(|line| {
            assert!(!line.contains('"'), "quoted CSV fields are not expected");
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), header.len(), "{}: {line}", path.display());
            header
                .iter()
                .cloned()
                .zip(fields.into_iter().map(str::to_owned))
                .collect()
        })
        .collect()
}

/// Where an aligned value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Measured,
    Carried,
    Missing,
}

impl Source {
    /// The string in a `{channel}_source` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Measured => "measured",
            Source::Carried => "carried",
            Source::Missing => "missing",
        }
    }
}

/// One channel of an aligned row: a value unless missing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    pub value: Option<f64>,
    pub source: Source,
}

/// A fused value of one quantity in one asset-window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fused {
    pub value: f64,
    pub variance: f64,
    pub sensors: u32,
}

/// A flagged sensor-window.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    pub asset: String,
    /// The window's W mean.
    pub value: f64,
    pub z: f64,
}

/// The final twin of an asset.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub line: String,
    pub site: String,
    /// Start of the asset's latest aligned row.
    pub window_start_us: i64,
    /// That row's cells, one per channel of [`Reference::channels`].
    pub cells: Vec<Cell>,
    /// The F rows of that window, by quantity.
    pub fused: BTreeMap<String, Fused>,
    /// D flags of the asset's sensors, over the whole run.
    pub flags: u64,
}

/// The checksums of A, F, D and V.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Checksums {
    pub aligned_rows: u64,
    pub sum_fused_temperature: f64,
    pub flags: u64,
    pub assets_in_view: u64,
}

/// Everything the reference pipeline computes.
pub struct Reference {
    pub w: ExpectedW,
    /// Channels (the aligned columns), in sensor-table order.
    pub channels: Vec<String>,
    /// Fused quantities (the view's `fused_*` columns), in sensor-table order.
    pub quantities: Vec<String>,
    /// A: (asset, window start) → one cell per channel.
    pub aligned: BTreeMap<(String, i64), Vec<Cell>>,
    /// F: (asset, window start, quantity) → fused value.
    pub fused: BTreeMap<(String, i64, String), Fused>,
    /// D: (sensor, window start) → flag.
    pub flags: BTreeMap<(String, i64), Flag>,
    /// V: asset → final twin.
    pub views: BTreeMap<String, View>,
    pub checksums: Checksums,
    /// Rows set aside before W, by reason (filled in by callers that verify).
    pub quarantined_by_reason: BTreeMap<String, u64>,
}

/// Computes W, A, F, D and V from raw rows in arrival order, each row
/// accepted or set aside (and moving the watermark or not) as its fate says:
/// see [`super::unverified_fates`] and [`super::verification::verified_fates`].
pub fn compute(rows: &[Row], fates: &[Fate], tables: &Tables, lateness_us: i64) -> Reference {
    let w = expected_w_of(rows, fates, lateness_us);

    // Each sensor's W means by window start.
    let mut series: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    for ((sensor, start), window) in &w.windows {
        series
            .entry(sensor.clone())
            .or_default()
            .insert(*start, window.mean);
    }
    let no_windows = BTreeMap::new();
    let series_of = |sensor: &str| series.get(sensor).unwrap_or(&no_windows);

    // A: the windows of each asset in which any of its sensors has a W row.
    let mut asset_windows: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for (sensor, _) in w.windows.keys() {
        let asset = &tables.sensor(sensor).asset;
        let windows: Vec<i64> = series_of(sensor).keys().copied().collect();
        asset_windows
            .entry(asset.clone())
            .or_default()
            .extend(windows);
    }
    let channels = tables.channels();
    let mut aligned = BTreeMap::new();
    for (asset, windows) in &asset_windows {
        for &start in windows {
            let cells: Vec<Cell> = channels
                .iter()
                .map(|channel| {
                    let sensor = tables
                        .sensors
                        .iter()
                        .filter(|s| &s.asset == asset && &s.channel == channel)
                        .map(|s| s.sensor.as_str())
                        .collect::<Vec<_>>();
                    assert!(sensor.len() <= 1, "{asset} has two {channel} sensors");
                    let Some(sensor) = sensor.first() else {
                        return Cell {
                            value: None,
                            source: Source::Missing,
                        };
                    };
                    let means = series_of(sensor);
                    if let Some(&mean) = means.get(&start) {
                        return Cell {
                            value: Some(mean),
                            source: Source::Measured,
                        };
                    }
                    match means.range(..start).next_back() {
                        Some((&earlier, &mean)) if start - earlier <= CARRY_WINDOWS * SECOND_US => {
                            Cell {
                                value: Some(mean),
                                source: Source::Carried,
                            }
                        }
                        _ => Cell {
                            value: None,
                            source: Source::Missing,
                        },
                    }
                })
                .collect();
            aligned.insert((asset.clone(), start), cells);
        }
    }

    // F: for every A row, each fused kind over the sensors measured in the window.
    let mut fused = BTreeMap::new();
    for (asset, start) in aligned.keys() {
        for kind in tables.fused_kinds_of(asset) {
            // The variance is the estimate's: Σ wᵢ² σᵢ²/nᵢ / (Σ wᵢ)² with
            // wᵢ = 1/σᵢ², a window mean of nᵢ readings having variance σᵢ²/nᵢ.
            let (mut weighted, mut weights, mut spread, mut used) = (0.0, 0.0, 0.0, 0u32);
            for s in &tables.sensors {
                if &s.asset != asset || s.kind != kind {
                    continue;
                }
                if let Some(window) = w.windows.get(&(s.sensor.clone(), *start)) {
                    let weight = 1.0 / (s.sigma * s.sigma);
                    weighted += window.mean * weight;
                    weights += weight;
                    spread += weight * weight * s.sigma * s.sigma / window.count as f64;
                    used += 1;
                }
            }
            if used > 0 {
                fused.insert(
                    (asset.clone(), *start, kind),
                    Fused {
                        value: weighted / weights,
                        variance: spread / (weights * weights),
                        sensors: used,
                    },
                );
            }
        }
    }

    // D: per sensor, an exponentially weighted mean and variance of its W means.
    let mut flags = BTreeMap::new();
    for (sensor, means) in &series {
        let mut m = 0.0f64;
        let mut v = 0.0f64;
        for (before, (&start, &x)) in means.iter().enumerate() {
            if before == 0 {
                m = x;
                v = 0.0;
                continue;
            }
            let z = (v > 0.0).then(|| (x - m) / v.sqrt());
            let d = x - m;
            m += ALPHA * d;
            v = (1.0 - ALPHA) * (v + ALPHA * d * d);
            if let Some(z) = z.filter(|z| before >= MIN_HISTORY && z.abs() > Z_LIMIT) {
                flags.insert(
                    (sensor.clone(), start),
                    Flag {
                        asset: tables.sensor(sensor).asset.clone(),
                        value: x,
                        z,
                    },
                );
            }
        }
    }

    // V: the latest A row of each catalogued asset, its window's F rows, its flags.
    let mut views = BTreeMap::new();
    for entry in &tables.assets {
        let latest = aligned
            .range((entry.asset.clone(), i64::MIN)..=(entry.asset.clone(), i64::MAX))
            .next_back();
        let Some(((_, start), cells)) = latest else {
            continue;
        };
        let fused_here = fused
            .iter()
            .filter(|((a, s, _), _)| a == &entry.asset && s == start)
            .map(|((_, _, q), f)| (q.clone(), *f))
            .collect();
        let asset_flags = flags.values().filter(|f| f.asset == entry.asset).count();
        views.insert(
            entry.asset.clone(),
            View {
                line: entry.line.clone(),
                site: entry.site.clone(),
                window_start_us: *start,
                cells: cells.clone(),
                fused: fused_here,
                flags: asset_flags as u64,
            },
        );
    }

    let checksums = Checksums {
        aligned_rows: aligned.len() as u64,
        sum_fused_temperature: fused
            .iter()
            .filter(|((_, _, q), _)| q == TEMPERATURE)
            .map(|(_, f)| f.value)
            .sum(),
        flags: flags.len() as u64,
        assets_in_view: views.len() as u64,
    };
    Reference {
        w,
        channels,
        quantities: tables.fused_quantities(),
        aligned,
        fused,
        flags,
        views,
        checksums,
        quarantined_by_reason: BTreeMap::new(),
    }
}
