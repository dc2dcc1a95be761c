//! Reading what the report shows from a replay's datasets.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use arrow::array::{Array, Float64Array, RecordBatch, StringArray};
use twinflow_engine::error::{Error, Result};

use crate::dataset::{
    count_at, counts, float_at, floats, int_at, ints, read_dataset, required, scan, string_at,
    strings,
};
use crate::schemas::SENSOR_SUSPECT;

/// One asset of the final twin view.
pub(crate) struct TwinRow {
    pub asset: String,
    pub line: String,
    pub site: String,
    pub window_start_us: Option<i64>,
    pub health: String,
    pub flags: Option<u64>,
    /// Per quantity of [`TwinView::quantities`]: value and variance.
    pub fused: Vec<(Option<f64>, Option<f64>)>,
    /// Channels whose latest value was not measured: (channel, source).
    pub unmeasured: Vec<(String, String)>,
    /// How far fusion believes each redundant sensor, in column order.
    pub trust: Vec<ChannelTrust>,
}

/// A fused channel's `<channel>_trust`, `_weight` and `_state` in the twin view.
pub(crate) struct ChannelTrust {
    pub channel: String,
    pub trust: Option<f64>,
    pub weight: Option<f64>,
    pub state: Option<String>,
}

#[derive(Default)]
pub(crate) struct TwinView {
    pub quantities: Vec<String>,
    pub rows: Vec<TwinRow>,
}

/// One line or site of a rollup view.
pub(crate) struct Rollup {
    pub name: String,
    pub assets: Option<u64>,
    pub reporting: Option<u64>,
    pub with_flags: Option<u64>,
    /// Per quantity: the mean fused value.
    pub means: Vec<Option<f64>>,
    pub worst: String,
    pub newest_us: Option<i64>,
}

#[derive(Default)]
pub(crate) struct RollupView {
    pub quantities: Vec<String>,
    pub rows: Vec<Rollup>,
}

/// A row of `flags/`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Flag {
    pub asset: String,
    pub sensor: String,
    pub window_start_us: i64,
    /// `ewma_z` (step D), `sensor_suspect`, …; older outputs have none.
    pub detector: String,
    pub reason: String,
    pub value: f64,
    /// D's score (e.g. z) or a suspect's strength of evidence.
    pub score: f64,
    pub evidence: Option<String>,
}

impl Flag {
    pub fn is_suspect(&self) -> bool {
        self.detector == SENSOR_SUSPECT
    }
}

/// A time series: (window start, value), sorted by time.
pub(crate) type Points = Vec<(i64, f64)>;

/// A window of a fused quantity: start, value and its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FusedPoint {
    pub t: i64,
    pub value: f64,
    pub lo95: Option<f64>,
    pub hi95: Option<f64>,
}

/// A redundant sensor's trust in a window (from `trust/`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TrustPoint {
    pub t: i64,
    pub trust: f64,
    pub state: String,
}

/// A dataset's batches, or none when the run did not write it.
fn read_optional(dir: &Path) -> Result<Vec<RecordBatch>> {
    if dir.is_dir() {
        read_dataset(dir)
    } else {
        Ok(Vec::new())
    }
}

/// A JSON file of `out`, if the run (or `twinflow eval`) wrote one.
pub(crate) fn read_json(out: &Path, name: &str) -> Result<Option<serde_json::Value>> {
    let path = out.join(name);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::format(&path, e))
}

/// The final asset view, sorted by line and asset. Quantities are the
/// `fused_q` columns, channels the `c` columns with a `c_source` column,
/// fused channels those with a `c_trust` column.
pub(crate) fn read_twins(dir: &Path) -> Result<Option<TwinView>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut view = TwinView::default();
    for batch in read_dataset(dir)? {
        let schema = batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        for q in names
            .iter()
            .filter_map(|n| n.strip_prefix("fused_"))
            .filter(|q| !q.ends_with("_variance"))
        {
            if !view.quantities.iter().any(|k| k == q) {
                view.quantities.push(q.to_owned());
            }
        }
        let channels: Vec<&str> = names
            .iter()
            .filter_map(|n| n.strip_suffix("_source"))
            .filter(|c| names.contains(c))
            .collect();
        let fused_channels: Vec<&str> = names
            .iter()
            .filter_map(|n| n.strip_suffix("_trust"))
            .collect();
        let asset = required(strings(&batch, "asset"), dir, "asset")?;
        let line = strings(&batch, "line");
        let site = strings(&batch, "site");
        let health = strings(&batch, "health");
        let window = ints(&batch, "window_start_us");
        let flags = counts(&batch, "flags");
        let fused: Vec<(Option<Float64Array>, Option<Float64Array>)> = view
            .quantities
            .iter()
            .map(|q| {
                (
                    floats(&batch, &format!("fused_{q}")),
                    floats(&batch, &format!("fused_{q}_variance")),
                )
            })
            .collect();
        let sources: Vec<(&str, Option<StringArray>)> = channels
            .iter()
            .map(|c| (*c, strings(&batch, &format!("{c}_source"))))
            .collect();
        type TrustColumns = (
            Option<Float64Array>,
            Option<Float64Array>,
            Option<StringArray>,
        );
        let trust: Vec<(&str, TrustColumns)> = fused_channels
            .iter()
            .map(|c| {
                (
                    *c,
                    (
                        floats(&batch, &format!("{c}_trust")),
                        floats(&batch, &format!("{c}_weight")),
                        strings(&batch, &format!("{c}_state")),
                    ),
                )
            })
            .collect();
        let text = |a: &Option<StringArray>, i: usize| {
            a.as_ref().and_then(|a| string_at(a, i)).map(str::to_owned)
        };
        for i in 0..batch.num_rows() {
            let Some(name) = string_at(&asset, i) else {
                continue;
            };
            view.rows.push(TwinRow {
                asset: name.to_owned(),
                line: text(&line, i).unwrap_or_default(),
                site: text(&site, i).unwrap_or_default(),
                window_start_us: int_at(window.as_ref(), i),
                health: text(&health, i).unwrap_or_default(),
                flags: count_at(flags.as_ref(), i),
                fused: fused
                    .iter()
                    .map(|(v, var)| (float_at(v.as_ref(), i), float_at(var.as_ref(), i)))
                    .collect(),
                unmeasured: sources
                    .iter()
                    .filter_map(|(c, s)| {
                        let source = s.as_ref().and_then(|s| string_at(s, i))?;
                        (source != "measured").then(|| ((*c).to_owned(), source.to_owned()))
                    })
                    .collect(),
                trust: trust
                    .iter()
                    .map(|(c, (trust, weight, state))| ChannelTrust {
                        channel: (*c).to_owned(),
                        trust: float_at(trust.as_ref(), i),
                        weight: float_at(weight.as_ref(), i),
                        state: text(state, i),
                    })
                    .collect(),
            });
        }
    }
    view.rows
        .sort_by(|a, b| (&a.line, &a.asset).cmp(&(&b.line, &b.asset)));
    Ok(Some(view))
}

/// A rollup view (`twins/lines/`, `twins/sites/`) keyed by `key`, sorted by it.
pub(crate) fn read_rollups(dir: &Path, key: &str) -> Result<RollupView> {
    let mut view = RollupView::default();
    for batch in read_optional(dir)? {
        let schema = batch.schema();
        for field in schema.fields() {
            if let Some(q) = field.name().strip_prefix("mean_fused_")
                && !view.quantities.iter().any(|k| k == q)
            {
                view.quantities.push(q.to_owned());
            }
        }
        let names = required(strings(&batch, key), dir, key)?;
        let assets = counts(&batch, "assets");
        let reporting = counts(&batch, "assets_reporting");
        let with_flags = counts(&batch, "assets_with_flags");
        let worst = strings(&batch, "worst_health");
        let newest = ints(&batch, "newest_window_start_us");
        let means: Vec<Option<Float64Array>> = view
            .quantities
            .iter()
            .map(|q| floats(&batch, &format!("mean_fused_{q}")))
            .collect();
        for i in 0..batch.num_rows() {
            view.rows.push(Rollup {
                name: string_at(&names, i).unwrap_or("").to_owned(),
                assets: count_at(assets.as_ref(), i),
                reporting: count_at(reporting.as_ref(), i),
                with_flags: count_at(with_flags.as_ref(), i),
                means: means.iter().map(|m| float_at(m.as_ref(), i)).collect(),
                worst: worst
                    .as_ref()
                    .and_then(|w| string_at(w, i))
                    .unwrap_or("")
                    .to_owned(),
                newest_us: int_at(newest.as_ref(), i),
            });
        }
    }
    view.rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(view)
}

/// Every flag, sorted by asset, window and sensor.
pub(crate) fn read_flags(dir: &Path) -> Result<Vec<Flag>> {
    let mut flags = Vec::new();
    for batch in read_optional(dir)? {
        let asset = required(strings(&batch, "asset"), dir, "asset")?;
        let sensor = required(strings(&batch, "sensor"), dir, "sensor")?;
        let start = required(ints(&batch, "window_start_us"), dir, "window_start_us")?;
        let detector = strings(&batch, "detector");
        let reason = strings(&batch, "reason");
        let evidence = strings(&batch, "evidence");
        let value = floats(&batch, "value");
        // `score` since issue 17; older outputs call it `z`.
        let score = floats(&batch, "score").or_else(|| floats(&batch, "z"));
        let text = |a: &Option<StringArray>, i: usize| {
            a.as_ref().and_then(|a| string_at(a, i)).map(str::to_owned)
        };
        for i in 0..batch.num_rows() {
            let (Some(a), Some(s), Some(t)) = (
                string_at(&asset, i),
                string_at(&sensor, i),
                int_at(Some(&start), i),
            ) else {
                continue;
            };
            flags.push(Flag {
                asset: a.to_owned(),
                sensor: s.to_owned(),
                window_start_us: t,
                detector: text(&detector, i).unwrap_or_default(),
                reason: text(&reason, i).unwrap_or_default(),
                value: float_at(value.as_ref(), i).unwrap_or(f64::NAN),
                score: float_at(score.as_ref(), i).unwrap_or(f64::NAN),
                evidence: text(&evidence, i),
            });
        }
    }
    flags.sort_by(|a, b| {
        (&a.asset, a.window_start_us, &a.sensor).cmp(&(&b.asset, b.window_start_us, &b.sensor))
    });
    Ok(flags)
}

/// The fused series of `assets`: asset → quantity → windows, sorted by time.
pub(crate) fn read_fused(
    dir: &Path,
    assets: &HashSet<&str>,
) -> Result<HashMap<String, BTreeMap<String, Vec<FusedPoint>>>> {
    let mut series: HashMap<String, BTreeMap<String, Vec<FusedPoint>>> = HashMap::new();
    if assets.is_empty() || !dir.is_dir() {
        return Ok(series);
    }
    scan(dir, &[], |part, batch| {
        let asset = required(strings(batch, "asset"), part, "asset")?;
        let start = required(ints(batch, "window_start_us"), part, "window_start_us")?;
        let quantity = required(strings(batch, "quantity"), part, "quantity")?;
        let value = required(floats(batch, "value"), part, "value")?;
        let (lo95, hi95) = (floats(batch, "lo95"), floats(batch, "hi95"));
        for i in 0..batch.num_rows() {
            let Some(a) = string_at(&asset, i).filter(|a| assets.contains(a)) else {
                continue;
            };
            let (Some(q), Some(t), Some(v)) = (
                string_at(&quantity, i),
                int_at(Some(&start), i),
                float_at(Some(&value), i).filter(|v| v.is_finite()),
            ) else {
                continue;
            };
            let finite =
                |a: &Option<Float64Array>| float_at(a.as_ref(), i).filter(|v| v.is_finite());
            series
                .entry(a.to_owned())
                .or_default()
                .entry(q.to_owned())
                .or_default()
                .push(FusedPoint {
                    t,
                    value: v,
                    lo95: finite(&lo95),
                    hi95: finite(&hi95),
                });
        }
        Ok(())
    })?;
    for quantities in series.values_mut() {
        for points in quantities.values_mut() {
            points.sort_by_key(|p| p.t);
        }
    }
    Ok(series)
}

/// The window means of the sensors `keep(asset, sensor)` accepts, and the
/// window length (the shortest `window_end_us - window_start_us` seen).
pub(crate) fn read_window_means(
    dir: &Path,
    keep: impl Fn(&str, &str) -> bool,
) -> Result<(HashMap<String, Points>, Option<i64>)> {
    let mut series: HashMap<String, Points> = HashMap::new();
    let mut window_us: Option<i64> = None;
    if !dir.is_dir() {
        return Ok((series, window_us));
    }
    let columns = [
        "sensor",
        "asset",
        "window_start_us",
        "window_end_us",
        "mean",
    ];
    scan(dir, &columns, |part, batch| {
        let sensor = required(strings(batch, "sensor"), part, "sensor")?;
        let asset = strings(batch, "asset");
        let start = required(ints(batch, "window_start_us"), part, "window_start_us")?;
        let end = required(ints(batch, "window_end_us"), part, "window_end_us")?;
        let mean = required(floats(batch, "mean"), part, "mean")?;
        if batch.num_rows() > 0 && start.is_valid(0) && end.is_valid(0) {
            let length = end.value(0) - start.value(0);
            if length > 0 {
                window_us = Some(window_us.map_or(length, |w| w.min(length)));
            }
        }
        for i in 0..batch.num_rows() {
            let a = asset.as_ref().and_then(|a| string_at(a, i)).unwrap_or("");
            let Some(s) = string_at(&sensor, i).filter(|s| keep(a, s)) else {
                continue;
            };
            let (Some(t), Some(v)) = (
                int_at(Some(&start), i),
                float_at(Some(&mean), i).filter(|v| v.is_finite()),
            ) else {
                continue;
            };
            series.entry(s.to_owned()).or_default().push((t, v));
        }
        Ok(())
    })?;
    for points in series.values_mut() {
        points.sort_by_key(|p| p.0);
    }
    Ok((series, window_us))
}

/// The trust of the redundant sensors of `assets` (`trust/`): asset →
/// sensor → windows, sorted by time.
pub(crate) fn read_trust(
    dir: &Path,
    assets: &HashSet<&str>,
) -> Result<HashMap<String, BTreeMap<String, Vec<TrustPoint>>>> {
    let mut trust: HashMap<String, BTreeMap<String, Vec<TrustPoint>>> = HashMap::new();
    if assets.is_empty() || !dir.is_dir() {
        return Ok(trust);
    }
    scan(dir, &[], |part, batch| {
        let asset = required(strings(batch, "asset"), part, "asset")?;
        let sensor = required(strings(batch, "sensor"), part, "sensor")?;
        let start = required(ints(batch, "window_start_us"), part, "window_start_us")?;
        let value = required(floats(batch, "trust"), part, "trust")?;
        let state = strings(batch, "state");
        for i in 0..batch.num_rows() {
            let Some(a) = string_at(&asset, i).filter(|a| assets.contains(a)) else {
                continue;
            };
            let (Some(s), Some(t), Some(v)) = (
                string_at(&sensor, i),
                int_at(Some(&start), i),
                float_at(Some(&value), i).filter(|v| v.is_finite()),
            ) else {
                continue;
            };
            trust
                .entry(a.to_owned())
                .or_default()
                .entry(s.to_owned())
                .or_default()
                .push(TrustPoint {
                    t,
                    trust: v,
                    state: state
                        .as_ref()
                        .and_then(|s| string_at(s, i))
                        .unwrap_or("")
                        .to_owned(),
                });
        }
        Ok(())
    })?;
    for sensors in trust.values_mut() {
        for points in sensors.values_mut() {
            points.sort_by_key(|p| p.t);
        }
    }
    Ok(trust)
}

/// The quantity each sensor measures, from the catalog beside the replayed
/// log (`sensors.csv` next to `summary.json`'s first source): its `quantity`
/// column where given, else the sensor's `kind`, as the replay grouped them.
/// Empty when the catalog is not there any more.
pub(crate) fn read_sensor_quantities(
    summary: Option<&serde_json::Value>,
) -> HashMap<String, String> {
    let catalog = summary
        .and_then(|s| {
            s.get("sources")?
                .get(0)?
                .get("path")?
                .as_str()
                .map(PathBuf::from)
        })
        .map(|log| {
            if log.is_dir() {
                log.join("sensors.csv")
            } else {
                log.with_file_name("sensors.csv")
            }
        });
    let Some(Ok(mut reader)) = catalog.map(csv::Reader::from_path) else {
        return HashMap::new();
    };
    let Ok(headers) = reader.headers().cloned() else {
        return HashMap::new();
    };
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (Some(sensor), Some(kind)) = (column("sensor"), column("kind")) else {
        return HashMap::new();
    };
    let quantity = column("quantity");
    reader
        .records()
        .map_while(std::result::Result::ok)
        .filter_map(|record| {
            let declared = quantity
                .and_then(|q| record.get(q))
                .filter(|q| !q.is_empty());
            let quantity = declared.or_else(|| record.get(kind))?;
            Some((record.get(sensor)?.to_owned(), quantity.to_owned()))
        })
        .collect()
}
