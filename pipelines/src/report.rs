//! A self-contained HTML page of a replay's results (`OUT/report.html`): the
//! run's figures, the final twin view and its rollups as tables, and for each
//! flagged asset an inline SVG chart of its fused quantities and of its
//! flagged sensors' window means, with the flagged windows marked. No
//! JavaScript, no network: one file to open in a browser or attach to a
//! ticket.
//!
//! Everything is read from the datasets, so any plant and pipeline works:
//! quantities, channels and health states are whatever the columns hold.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use arrow::array::{Array, Float64Array, RecordBatch, StringArray};
use twinflow_engine::error::{Error, Result};

use crate::dataset::{
    count_at, counts, float_at, floats, int_at, ints, read_dataset, required, scan, string_at,
    strings,
};

/// The page's file name inside `OUT`.
pub const REPORT_FILE: &str = "report.html";

/// At most this many assets get a chart (the most flagged first); the other
/// flagged assets are listed by name.
const MAX_CHARTED_ASSETS: usize = 100;
/// Assets charted when no asset has a flag.
const FALLBACK_ASSETS: usize = 3;
/// At most this many flagged sensors get a panel in an asset's chart.
const MAX_SENSOR_PANELS: usize = 8;
/// At most this many flags are listed under an asset's chart.
const MAX_LISTED_FLAGS: usize = 50;
/// Time buckets of a chart: a line keeps at most two points a bucket.
const BUCKETS: usize = 300;
/// Time buckets of a sensor's panel (half as wide).
const PANEL_BUCKETS: usize = 150;

/// Line colours of the quantities (red is kept for flags).
const PALETTE: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f", "#bcbd22",
];
/// Line colour of a sensor's window means.
const SENSOR_COLOUR: &str = "#34495e";

const SECOND_US: i64 = twinflow_engine::time::SECOND;
const DAY_US: i64 = 86_400 * SECOND_US;

/// Writes `OUT/report.html` from the datasets of a replay into `out` and
/// returns its path. The page replaces an earlier one only once complete.
pub fn write_report(out: &Path) -> Result<PathBuf> {
    let html = render(out)?;
    let path = out.join(REPORT_FILE);
    let partial = out.join(format!(".{REPORT_FILE}.partial"));
    std::fs::write(&partial, html).map_err(|e| Error::io(&partial, e))?;
    std::fs::rename(&partial, &path).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

// ---------------------------------------------------------------------------
// Reading the datasets

/// One asset of the final twin view.
struct TwinRow {
    asset: String,
    line: String,
    site: String,
    window_start_us: Option<i64>,
    health: String,
    flags: Option<u64>,
    /// Per quantity of [`TwinView::quantities`]: value and variance.
    fused: Vec<(Option<f64>, Option<f64>)>,
    /// Channels whose latest value was not measured: (channel, source).
    unmeasured: Vec<(String, String)>,
}

#[derive(Default)]
struct TwinView {
    quantities: Vec<String>,
    rows: Vec<TwinRow>,
}

/// One line or site of a rollup view.
struct Rollup {
    name: String,
    assets: Option<u64>,
    reporting: Option<u64>,
    with_flags: Option<u64>,
    /// Per quantity: the mean fused value.
    means: Vec<Option<f64>>,
    worst: String,
    newest_us: Option<i64>,
}

#[derive(Default)]
struct RollupView {
    quantities: Vec<String>,
    rows: Vec<Rollup>,
}

#[derive(Debug, Clone, PartialEq)]
struct Flag {
    asset: String,
    sensor: String,
    window_start_us: i64,
    value: f64,
    z: f64,
}

/// A time series: (window start, value), sorted by time.
type Points = Vec<(i64, f64)>;

/// A dataset's batches, or none when the run did not write it.
fn read_optional(dir: &Path) -> Result<Vec<RecordBatch>> {
    if dir.is_dir() {
        read_dataset(dir)
    } else {
        Ok(Vec::new())
    }
}

/// `OUT/summary.json`, if the run wrote one.
fn read_summary(out: &Path) -> Result<Option<serde_json::Value>> {
    let path = out.join("summary.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::format(&path, e))
}

/// The final asset view, sorted by line and asset. Quantities are the
/// `fused_q` columns, channels the `c` columns with a `c_source` column.
fn read_twins(dir: &Path) -> Result<Option<TwinView>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut view = TwinView::default();
    for batch in read_dataset(dir)? {
        let schema = batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let quantities: Vec<String> = names
            .iter()
            .filter_map(|n| n.strip_prefix("fused_"))
            .filter(|q| !q.ends_with("_variance"))
            .map(str::to_owned)
            .collect();
        for q in &quantities {
            if !view.quantities.contains(q) {
                view.quantities.push(q.clone());
            }
        }
        let channels: Vec<&str> = names
            .iter()
            .filter_map(|n| n.strip_suffix("_source"))
            .filter(|c| names.contains(c))
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
        let text = |a: &Option<StringArray>, i: usize| {
            a.as_ref()
                .and_then(|a| string_at(a, i))
                .unwrap_or("")
                .to_owned()
        };
        for i in 0..batch.num_rows() {
            let Some(name) = string_at(&asset, i) else {
                continue;
            };
            view.rows.push(TwinRow {
                asset: name.to_owned(),
                line: text(&line, i),
                site: text(&site, i),
                window_start_us: int_at(window.as_ref(), i),
                health: text(&health, i),
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
            });
        }
    }
    view.rows
        .sort_by(|a, b| (&a.line, &a.asset).cmp(&(&b.line, &b.asset)));
    Ok(Some(view))
}

/// A rollup view (`twins/lines/`, `twins/sites/`) keyed by `key`, sorted by it.
fn read_rollups(dir: &Path, key: &str) -> Result<RollupView> {
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
fn read_flags(dir: &Path) -> Result<Vec<Flag>> {
    let mut flags = Vec::new();
    for batch in read_optional(dir)? {
        let asset = required(strings(&batch, "asset"), dir, "asset")?;
        let sensor = required(strings(&batch, "sensor"), dir, "sensor")?;
        let start = required(ints(&batch, "window_start_us"), dir, "window_start_us")?;
        let value = floats(&batch, "value");
        // `score` since issue 17; older outputs call it `z`.
        let z = floats(&batch, "score").or_else(|| floats(&batch, "z"));
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
                value: float_at(value.as_ref(), i).unwrap_or(f64::NAN),
                z: float_at(z.as_ref(), i).unwrap_or(f64::NAN),
            });
        }
    }
    flags.sort_by(|a, b| {
        (&a.asset, a.window_start_us, &a.sensor).cmp(&(&b.asset, b.window_start_us, &b.sensor))
    });
    Ok(flags)
}

/// The fused series of `assets`: asset → quantity → points.
fn read_fused(
    dir: &Path,
    assets: &HashSet<&str>,
) -> Result<HashMap<String, BTreeMap<String, Points>>> {
    let mut series: HashMap<String, BTreeMap<String, Points>> = HashMap::new();
    if assets.is_empty() {
        return Ok(series);
    }
    let columns = ["asset", "window_start_us", "quantity", "value"];
    scan(dir, &columns, |part, batch| {
        let asset = required(strings(batch, "asset"), part, "asset")?;
        let start = required(ints(batch, "window_start_us"), part, "window_start_us")?;
        let quantity = required(strings(batch, "quantity"), part, "quantity")?;
        let value = required(floats(batch, "value"), part, "value")?;
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
            series
                .entry(a.to_owned())
                .or_default()
                .entry(q.to_owned())
                .or_default()
                .push((t, v));
        }
        Ok(())
    })?;
    for quantities in series.values_mut() {
        for points in quantities.values_mut() {
            points.sort_by_key(|p| p.0);
        }
    }
    Ok(series)
}

/// The window means of `sensors`, and the window length (the shortest
/// `window_end_us - window_start_us` seen).
fn read_window_means(
    dir: &Path,
    sensors: &HashSet<&str>,
) -> Result<(HashMap<String, Points>, Option<i64>)> {
    let mut series: HashMap<String, Points> = HashMap::new();
    let mut window_us: Option<i64> = None;
    if sensors.is_empty() {
        return Ok((series, window_us));
    }
    let columns = ["sensor", "window_start_us", "window_end_us", "mean"];
    scan(dir, &columns, |part, batch| {
        let sensor = required(strings(batch, "sensor"), part, "sensor")?;
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
            let Some(s) = string_at(&sensor, i).filter(|s| sensors.contains(s)) else {
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

// ---------------------------------------------------------------------------
// The page

/// The page for the replay output in `out`.
fn render(out: &Path) -> Result<String> {
    if !out.is_dir() {
        return Err(Error::Config(format!(
            "{}: no such output directory",
            out.display()
        )));
    }
    let summary = read_summary(out)?;
    let twins = read_twins(&out.join("twins/assets"))?;
    if summary.is_none() && twins.is_none() {
        return Err(Error::Config(format!(
            "{}: not the output of a replay (no summary.json, no twins/assets/)",
            out.display()
        )));
    }
    let twins = twins.unwrap_or_default();
    let lines = read_rollups(&out.join("twins/lines"), "line")?;
    let sites = read_rollups(&out.join("twins/sites"), "site")?;
    let flags = read_flags(&out.join("flags"))?;

    // The assets to chart: the most flagged first, else the first few.
    let mut flags_of: BTreeMap<&str, Vec<&Flag>> = BTreeMap::new();
    for flag in &flags {
        flags_of.entry(&flag.asset).or_default().push(flag);
    }
    let mut flagged: Vec<(&str, usize)> = flags_of.iter().map(|(a, f)| (*a, f.len())).collect();
    flagged.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let charted: Vec<&str> = if flagged.is_empty() {
        let mut names: Vec<&str> = twins.rows.iter().map(|r| r.asset.as_str()).collect();
        names.sort();
        names.truncate(FALLBACK_ASSETS);
        names
    } else {
        flagged
            .iter()
            .take(MAX_CHARTED_ASSETS)
            .map(|(a, _)| *a)
            .collect()
    };
    let uncharted: Vec<&str> = flagged
        .iter()
        .skip(MAX_CHARTED_ASSETS)
        .map(|(a, _)| *a)
        .collect();

    // Per charted asset, its flagged sensors, the most flagged first.
    let mut panels_of: HashMap<&str, Vec<(&str, Vec<&Flag>)>> = HashMap::new();
    for asset in &charted {
        let mut by_sensor: BTreeMap<&str, Vec<&Flag>> = BTreeMap::new();
        for flag in flags_of.get(asset).into_iter().flatten() {
            by_sensor.entry(&flag.sensor).or_default().push(flag);
        }
        let mut sensors: Vec<(&str, Vec<&Flag>)> = by_sensor.into_iter().collect();
        sensors.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
        panels_of.insert(asset, sensors);
    }
    let panel_sensors: HashSet<&str> = panels_of
        .values()
        .flat_map(|s| s.iter().take(MAX_SENSOR_PANELS).map(|(name, _)| *name))
        .collect();
    let fused = read_fused(&out.join("fused"), &charted.iter().copied().collect())?;
    let (means, window_us) = read_window_means(&out.join("windows"), &panel_sensors)?;
    let window_us = window_us
        .or_else(|| shortest_step(fused.values().flat_map(|q| q.values())))
        .unwrap_or(SECOND_US);

    // One colour per quantity, the same in every chart.
    let mut quantities = twins.quantities.clone();
    let mut others: Vec<&String> = fused
        .values()
        .flat_map(|q| q.keys())
        .filter(|q| !quantities.contains(q))
        .collect();
    others.sort();
    others.dedup();
    quantities.extend(others.into_iter().cloned());
    let colours: HashMap<&str, &str> = quantities
        .iter()
        .enumerate()
        .map(|(i, q)| (q.as_str(), PALETTE[i % PALETTE.len()]))
        .collect();

    let chart_ids: HashMap<&str, usize> =
        charted.iter().enumerate().map(|(i, a)| (*a, i)).collect();
    let newest = twins.rows.iter().filter_map(|r| r.window_start_us).max();
    let pipeline = summary
        .as_ref()
        .and_then(|s| s.get("pipeline"))
        .and_then(|p| p.as_str())
        .unwrap_or("twinflow");

    let mut html = String::with_capacity(1 << 20);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>twinflow report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(pipeline)
    );
    header(&mut html, out, pipeline, summary.as_ref(), newest);
    let _ = writeln!(
        html,
        "<nav><a href=\"#twins\">Twin view</a> · <a href=\"#lines\">Lines</a>{} · \
         <a href=\"#charts\">Charts</a></nav>",
        if sites.rows.is_empty() {
            ""
        } else {
            " · <a href=\"#sites\">Sites</a>"
        }
    );
    twin_table(&mut html, &twins, &chart_ids);
    rollup_table(&mut html, "lines", "Lines", "line", &lines);
    if !sites.rows.is_empty() {
        rollup_table(&mut html, "sites", "Sites", "site", &sites);
    }

    html.push_str("<section id=\"charts\">\n");
    if charted.is_empty() {
        html.push_str("<h2>Charts</h2>\n<p class=\"note\">No flags and no assets to chart.</p>\n");
    } else if flagged.is_empty() {
        let _ = write!(
            html,
            "<h2>Charts</h2>\n<p class=\"note\">No window was flagged in this run; \
             showing the first {} assets.</p>\n",
            charted.len()
        );
    } else {
        let _ = write!(
            html,
            "<h2>Flagged assets</h2>\n<p class=\"note\">{} flags on {} assets, the most \
             flagged first. Red bands mark flagged windows (hover for the sensor, mean and z); \
             lines break where windows are missing.</p>\n",
            group(flags.len() as u64),
            group(flagged.len() as u64)
        );
    }
    let twin_of: HashMap<&str, &TwinRow> =
        twins.rows.iter().map(|r| (r.asset.as_str(), r)).collect();
    let no_fused = BTreeMap::new();
    for (id, asset) in charted.iter().enumerate() {
        let asset_flags: &[&Flag] = flags_of.get(asset).map_or(&[], Vec::as_slice);
        let series = fused.get(*asset).unwrap_or(&no_fused);
        let lanes: Vec<Lane> = quantities
            .iter()
            .filter_map(|q| {
                series.get(q).map(|points| Lane {
                    label: q,
                    colour: colours.get(q.as_str()).copied().unwrap_or(PALETTE[0]),
                    points,
                })
            })
            .collect();
        let empty = Vec::new();
        let sensors = &panels_of[asset];
        let panels: Vec<Panel> = sensors
            .iter()
            .take(MAX_SENSOR_PANELS)
            .map(|(sensor, flags)| Panel {
                sensor,
                points: means.get(*sensor).unwrap_or(&empty),
                flags,
            })
            .collect();
        let chart = AssetChart {
            asset,
            lanes,
            panels,
            flags: asset_flags,
            window_us,
        };
        asset_section(
            &mut html,
            id,
            twin_of.get(asset).copied(),
            &chart,
            sensors.len(),
        );
    }
    if !uncharted.is_empty() {
        let _ = writeln!(
            html,
            "<p class=\"note\">{} more flagged assets, not charted: {}</p>",
            uncharted.len(),
            uncharted
                .iter()
                .map(|a| escape(a))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    html.push_str(
        "</section>\n<footer>Written by twinflow from the Parquet datasets of this \
                   directory. Times are UTC.</footer>\n</body>\n</html>\n",
    );
    Ok(html)
}

const STYLE: &str = "\
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1100px;\
padding:0 16px 32px;color:#222;background:#fafafa}\
h1{font-size:22px;margin:20px 0 2px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}\
h3{font-size:15px;margin:22px 0 6px}\
.sub,.note,footer{color:#666;font-size:13px}footer{margin-top:32px}\
nav{margin:12px 0;font-size:13px}a{color:#1f5fa8;text-decoration:none}a:hover{text-decoration:underline}\
.figures{display:flex;flex-wrap:wrap;gap:8px;margin:12px 0}\
.figures div{background:#fff;border:1px solid #e2e2e2;border-radius:6px;padding:6px 12px;min-width:96px}\
.figures dt{color:#666;font-size:12px}.figures dd{margin:0;font-size:18px;font-weight:600}\
.scroll{overflow:auto;max-height:640px;border:1px solid #e2e2e2;background:#fff}\
table{border-collapse:collapse;font-size:13px;width:100%}\
th,td{padding:3px 8px;text-align:left;border-bottom:1px solid #eee;white-space:nowrap}\
th{position:sticky;top:0;background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.badge{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;color:#fff;background:#888}\
.h-ok{background:#2e8540}.h-degraded{background:#d98c00}.h-stale{background:#6c7a89}\
.h-alarm{background:#c62828}.muted{color:#999}\
.chart{background:#fff;border:1px solid #e2e2e2;border-radius:6px;padding:4px 12px 10px;margin:14px 0}\
svg{max-width:100%;height:auto;display:block}\
svg text{font:11px system-ui,sans-serif;fill:#444}svg .yl{text-anchor:end}svg .xl{text-anchor:middle}\
svg .t{font-weight:600;fill:#222}svg .pl{fill:#fff;stroke:#bbb}svg .grid{stroke:#eee;fill:none}\
svg .ln{fill:none;stroke-width:1.5;stroke-linejoin:round;stroke-linecap:round}\
svg .band{fill:#d62728;fill-opacity:.2}svg .dot{fill:#d62728;stroke:#fff;stroke-width:1}\
details{margin-top:6px;font-size:13px}details table{width:auto}";

/// Title and the summary figures.
fn header(
    html: &mut String,
    out: &Path,
    pipeline: &str,
    summary: Option<&serde_json::Value>,
    newest_us: Option<i64>,
) {
    let _ = write!(
        html,
        "<header>\n<h1>twinflow report</h1>\n<p class=\"sub\">{} · {}",
        escape(pipeline),
        escape(&out.display().to_string())
    );
    if let Some(t) = newest_us {
        let _ = write!(html, " · twin view as of {} UTC", datetime(t));
    }
    html.push_str("</p>\n");
    let Some(summary) = summary else {
        html.push_str("<p class=\"note\">No summary.json in this directory.</p>\n</header>\n");
        return;
    };
    let count = |key: &str| summary.get(key).and_then(serde_json::Value::as_u64);
    let number = |key: &str| summary.get(key).and_then(serde_json::Value::as_f64);
    let figures: [(&str, Option<String>); 8] = [
        ("events", count("events_in").map(group)),
        ("late", count("late_events").map(group)),
        ("windows", count("windows").map(group)),
        ("aligned rows", count("aligned_rows").map(group)),
        ("flags", count("flags").map(group)),
        ("assets in view", count("assets_in_view").map(group)),
        ("quarantined", count("quarantined").map(group)),
        ("events/s", number("events_per_s").map(compact)),
    ];
    html.push_str("<dl class=\"figures\">\n");
    for (label, value) in figures {
        let _ = writeln!(
            html,
            "<div><dt>{label}</dt><dd>{}</dd></div>",
            value.as_deref().unwrap_or("–")
        );
    }
    html.push_str("</dl>\n");
    let mut run = Vec::new();
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    if let Some(w) = count("workers") {
        run.push(plural(w, "worker", "workers"));
    }
    if let Some(p) = count("processes") {
        run.push(plural(p, "process", "processes"));
    }
    if let Some(s) = number("elapsed_s") {
        run.push(format!("{s:.2} s"));
    }
    if let Some(m) = number("peak_rss_mb") {
        run.push(format!("peak RSS {m:.0} MB"));
    }
    if let Some(c) = number("cpu_s") {
        run.push(format!("CPU {c:.2} s"));
    }
    if !run.is_empty() {
        let _ = writeln!(html, "<p class=\"note\">Run: {}.</p>", run.join(", "));
    }
    html.push_str("</header>\n");
}

/// A coloured badge of a health state.
fn badge(health: &str) -> String {
    let class = match health {
        "ok" | "degraded" | "stale" | "alarm" => health,
        _ => "other",
    };
    format!(
        "<span class=\"badge h-{class}\">{}</span>",
        escape(if health.is_empty() { "?" } else { health })
    )
}

/// The final asset view, one asset a row; charted assets link to their chart.
fn twin_table(html: &mut String, twins: &TwinView, chart_ids: &HashMap<&str, usize>) {
    let _ = write!(
        html,
        "<section id=\"twins\">\n<h2>Twin view</h2>\n<p class=\"note\">{} assets",
        group(twins.rows.len() as u64)
    );
    let mut by_health: BTreeMap<&str, usize> = BTreeMap::new();
    for row in &twins.rows {
        *by_health.entry(&row.health).or_default() += 1;
    }
    for (health, n) in &by_health {
        let _ = write!(html, " · {} {n}", badge(health));
    }
    html.push_str(". Charted assets link to their chart.</p>\n<div class=\"scroll\"><table>\n<thead><tr><th>asset</th><th>line</th><th>site</th><th>health</th><th>flags</th><th>latest window</th>");
    for q in &twins.quantities {
        let _ = write!(html, "<th>{}</th>", escape(q));
    }
    html.push_str("<th>channels not measured</th></tr></thead>\n<tbody>\n");
    for row in &twins.rows {
        let name = escape(&row.asset);
        let asset = match chart_ids.get(row.asset.as_str()) {
            Some(id) => format!("<a href=\"#chart-{id}\">{name}</a>"),
            None => name,
        };
        let _ = write!(
            html,
            "<tr><td>{asset}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td>",
            escape(&row.line),
            escape(&row.site),
            badge(&row.health),
            row.flags.map_or("–".to_owned(), group),
            row.window_start_us
                .map_or("–".to_owned(), |t| clock(t, SECOND_US)),
        );
        for (value, variance) in &row.fused {
            match value {
                Some(v) => {
                    let _ = write!(html, "<td class=\"n\">{}", number(*v));
                    if let Some(var) = variance.filter(|v| *v >= 0.0) {
                        let _ = write!(html, " ± {}", sigma(var.sqrt()));
                    }
                    html.push_str("</td>");
                }
                None => html.push_str("<td class=\"n muted\">–</td>"),
            }
        }
        let unmeasured: Vec<String> = row
            .unmeasured
            .iter()
            .map(|(c, s)| format!("{} ({})", escape(c), escape(s)))
            .collect();
        let _ = writeln!(html, "<td>{}</td></tr>", unmeasured.join(", "));
    }
    html.push_str("</tbody>\n</table></div>\n</section>\n");
}

/// A rollup view (lines or sites) as a table.
fn rollup_table(html: &mut String, id: &str, title: &str, key: &str, view: &RollupView) {
    let _ = write!(
        html,
        "<section id=\"{id}\">\n<h2>{title}</h2>\n<div class=\"scroll\"><table>\n<thead><tr>\
         <th>{key}</th><th>assets</th><th>reporting</th><th>with flags</th><th>worst health</th>\
         <th>newest window</th>"
    );
    for q in &view.quantities {
        let _ = write!(html, "<th>mean {}</th>", escape(q));
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    let n = |v: Option<u64>| v.map_or("–".to_owned(), group);
    for row in &view.rows {
        let _ = write!(
            html,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td>{}</td><td>{}</td>",
            escape(&row.name),
            n(row.assets),
            n(row.reporting),
            n(row.with_flags),
            badge(&row.worst),
            row.newest_us
                .map_or("–".to_owned(), |t| clock(t, SECOND_US)),
        );
        for mean in &row.means {
            let _ = write!(
                html,
                "<td class=\"n\">{}</td>",
                mean.map_or("–".to_owned(), number)
            );
        }
        html.push_str("</tr>\n");
    }
    if view.rows.is_empty() {
        html.push_str("<tr><td class=\"muted\">none</td></tr>\n");
    }
    html.push_str("</tbody>\n</table></div>\n</section>\n");
}

/// One charted asset: a heading, its chart and its flags.
fn asset_section(
    html: &mut String,
    id: usize,
    twin: Option<&TwinRow>,
    chart: &AssetChart,
    flagged_sensors: usize,
) {
    let _ = write!(
        html,
        "<article class=\"chart\">\n<h3 id=\"chart-{id}\">{}",
        escape(chart.asset)
    );
    if let Some(twin) = twin {
        let _ = write!(
            html,
            " <span class=\"note\">{} / {}</span> {}",
            escape(&twin.line),
            escape(&twin.site),
            badge(&twin.health)
        );
    }
    if !chart.flags.is_empty() {
        let _ = write!(
            html,
            " <span class=\"note\">{} flags on {} sensors</span>",
            chart.flags.len(),
            flagged_sensors
        );
    }
    html.push_str("</h3>\n");
    html.push_str(&chart.svg());
    if flagged_sensors > chart.panels.len() {
        let _ = writeln!(
            html,
            "<p class=\"note\">{} more flagged sensors not drawn.</p>",
            flagged_sensors - chart.panels.len()
        );
    }
    if !chart.flags.is_empty() {
        let _ = write!(
            html,
            "<details><summary>{} flags</summary><table><thead><tr><th>window</th><th>sensor</th>\
             <th>mean</th><th>z</th></tr></thead><tbody>",
            chart.flags.len()
        );
        for flag in chart.flags.iter().take(MAX_LISTED_FLAGS) {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}</td></tr>",
                clock(flag.window_start_us, chart.window_us.min(SECOND_US)),
                escape(&flag.sensor),
                number(flag.value),
                flag.z
            );
        }
        html.push_str("</tbody></table>");
        if chart.flags.len() > MAX_LISTED_FLAGS {
            let _ = write!(
                html,
                "<p class=\"note\">and {} more</p>",
                chart.flags.len() - MAX_LISTED_FLAGS
            );
        }
        html.push_str("</details>\n");
    }
    html.push_str("</article>\n");
}

// ---------------------------------------------------------------------------
// Charts

/// A fused quantity of an asset.
struct Lane<'a> {
    label: &'a str,
    colour: &'a str,
    points: &'a Points,
}

/// A flagged sensor's window means and its flags.
struct Panel<'a> {
    sensor: &'a str,
    points: &'a Points,
    flags: &'a [&'a Flag],
}

/// One asset's figure: a lane per fused quantity over a shared time axis,
/// then a small panel per flagged sensor.
struct AssetChart<'a> {
    asset: &'a str,
    lanes: Vec<Lane<'a>>,
    panels: Vec<Panel<'a>>,
    flags: &'a [&'a Flag],
    window_us: i64,
}

const WIDTH: f64 = 920.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 30.0;
const LEGEND_H: f64 = 26.0;
const LANE_H: f64 = 96.0;
const LANE_GAP: f64 = 16.0;
const AXIS_H: f64 = 38.0;
const PANEL_COLUMNS: usize = 2;
const PANEL_LEFT: f64 = 56.0;
const PANEL_GAP: f64 = 24.0;
const PANEL_TITLE_H: f64 = 22.0;
const PANEL_H: f64 = 80.0;
const PANEL_AXIS_H: f64 = 24.0;

/// Maps times and values onto a plot rectangle.
#[derive(Debug, Clone, Copy)]
struct Frame {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    t0: i64,
    t1: i64,
    lo: f64,
    hi: f64,
}

impl Frame {
    fn x(&self, t: i64) -> f64 {
        self.left + (t - self.t0) as f64 / (self.t1 - self.t0).max(1) as f64 * self.width
    }

    fn y(&self, v: f64) -> f64 {
        let span = if self.hi > self.lo {
            self.hi - self.lo
        } else {
            1.0
        };
        self.top + (self.hi - v) / span * self.height
    }

    fn bottom(&self) -> f64 {
        self.top + self.height
    }

    /// The frame with its value range widened to round ticks around `points`;
    /// returns the ticks.
    fn fit_values(&mut self, points: &[(i64, f64)], ticks: usize) -> Vec<f64> {
        let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi, ticks) = value_ticks(lo, hi, ticks);
        self.lo = lo;
        self.hi = hi;
        ticks
    }
}

impl AssetChart<'_> {
    /// The time span of everything drawn: first window start to last window end.
    fn span(&self) -> (i64, i64) {
        let times = self
            .lanes
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.0))
            .chain(
                self.panels
                    .iter()
                    .flat_map(|p| p.points.iter().map(|p| p.0)),
            )
            .chain(self.flags.iter().map(|f| f.window_start_us));
        let (t0, t1) = times.fold((i64::MAX, i64::MIN), |(a, b), t| (a.min(t), b.max(t)));
        if t0 > t1 {
            (0, self.window_us)
        } else {
            (t0, t1 + self.window_us)
        }
    }

    fn svg(&self) -> String {
        let (t0, t1) = self.span();
        let lanes = self.lanes.len().max(1);
        let lanes_bottom = LEGEND_H + lanes as f64 * (LANE_H + LANE_GAP) - LANE_GAP;
        let panel_rows = self.panels.len().div_ceil(PANEL_COLUMNS);
        let panels_top = lanes_bottom + AXIS_H;
        let height = panels_top
            + if panel_rows > 0 {
                PANEL_TITLE_H + panel_rows as f64 * (PANEL_TITLE_H + PANEL_H + PANEL_AXIS_H)
            } else {
                0.0
            };
        let mut svg = String::with_capacity(32 * 1024);
        let _ = writeln!(
            svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height:.0}\" \
             width=\"{WIDTH}\" height=\"{height:.0}\" role=\"img\" aria-label=\"{} over time\">",
            escape(self.asset)
        );
        self.legend(&mut svg);

        // The lanes, sharing a time axis; flagged windows as bands across them.
        let (ticks, step) = time_ticks(t0, t1, 8);
        let mut frame = Frame {
            left: LEFT,
            top: LEGEND_H,
            width: WIDTH - LEFT - RIGHT,
            height: LANE_H,
            t0,
            t1,
            lo: 0.0,
            hi: 1.0,
        };
        for (i, lane) in self.lanes.iter().enumerate() {
            frame.top = LEGEND_H + i as f64 * (LANE_H + LANE_GAP);
            let values = frame.fit_values(lane.points, 4);
            plot_frame(&mut svg, &frame, &ticks, &values);
            let _ = writeln!(
                svg,
                "<text class=\"t\" x=\"{:.1}\" y=\"{:.1}\" fill=\"{}\">{}</text>",
                frame.left + 6.0,
                frame.top + 13.0,
                lane.colour,
                escape(lane.label)
            );
            let _ = writeln!(
                svg,
                "<path class=\"ln\" stroke=\"{}\" d=\"{}\"/>",
                lane.colour,
                series_path(&frame, lane.points, self.window_us, BUCKETS)
            );
        }
        if self.lanes.is_empty() {
            plot_frame(&mut svg, &frame, &ticks, &[]);
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" class=\"xl\">no fused values for this asset</text>",
                frame.left + frame.width / 2.0,
                frame.top + frame.height / 2.0
            );
        }
        frame.top = LEGEND_H;
        frame.height = lanes_bottom - LEGEND_H;
        bands(&mut svg, &frame, self.flags, self.window_us);
        time_labels(&mut svg, &frame, &ticks, step);
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"yl\">time (UTC) from {}</text>",
            WIDTH - RIGHT,
            lanes_bottom + 32.0,
            datetime(t0)
        );

        // The flagged sensors' window means.
        if panel_rows > 0 {
            let _ = writeln!(
                svg,
                "<text class=\"t\" x=\"{LEFT}\" y=\"{:.1}\">flagged sensors: window means</text>",
                panels_top + 14.0
            );
        }
        let column_width =
            (WIDTH - RIGHT - (PANEL_COLUMNS - 1) as f64 * PANEL_GAP) / PANEL_COLUMNS as f64;
        let (panel_ticks, panel_step) = time_ticks(t0, t1, 4);
        for (i, panel) in self.panels.iter().enumerate() {
            let (row, col) = (i / PANEL_COLUMNS, i % PANEL_COLUMNS);
            let top = panels_top
                + PANEL_TITLE_H
                + row as f64 * (PANEL_TITLE_H + PANEL_H + PANEL_AXIS_H)
                + PANEL_TITLE_H;
            let left = col as f64 * (column_width + PANEL_GAP) + PANEL_LEFT;
            let mut frame = Frame {
                left,
                top,
                width: column_width - PANEL_LEFT,
                height: PANEL_H,
                t0,
                t1,
                lo: 0.0,
                hi: 1.0,
            };
            let flagged: Points = panel
                .flags
                .iter()
                .filter(|f| f.value.is_finite())
                .map(|f| (f.window_start_us, f.value))
                .collect();
            let all: Points = panel.points.iter().chain(&flagged).copied().collect();
            let values = frame.fit_values(&all, 3);
            plot_frame(&mut svg, &frame, &panel_ticks, &values);
            bands(&mut svg, &frame, panel.flags, self.window_us);
            let _ = writeln!(
                svg,
                "<text class=\"t\" x=\"{:.1}\" y=\"{:.1}\">{} <tspan fill=\"#d62728\">({} flagged)</tspan></text>",
                left,
                top - 6.0,
                escape(panel.sensor),
                panel.flags.len()
            );
            if panel.points.is_empty() {
                let _ = writeln!(
                    svg,
                    "<text x=\"{:.1}\" y=\"{:.1}\" class=\"xl\">no windows</text>",
                    frame.left + frame.width / 2.0,
                    frame.top + frame.height / 2.0
                );
            } else {
                let _ = writeln!(
                    svg,
                    "<path class=\"ln\" stroke=\"{SENSOR_COLOUR}\" d=\"{}\"/>",
                    series_path(&frame, panel.points, self.window_us, PANEL_BUCKETS)
                );
            }
            for flag in panel.flags.iter().filter(|f| f.value.is_finite()) {
                let _ = writeln!(
                    svg,
                    "<circle class=\"dot\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"><title>{}</title></circle>",
                    frame.x(flag.window_start_us + self.window_us / 2),
                    frame.y(flag.value),
                    flag_title(flag, self.window_us)
                );
            }
            time_labels(&mut svg, &frame, &panel_ticks, panel_step);
        }
        svg.push_str("</svg>\n");
        svg
    }

    /// Colour keys of the quantities and of the flag bands.
    fn legend(&self, svg: &mut String) {
        let mut x = LEFT;
        let y = 14.0;
        for lane in &self.lanes {
            let _ = writeln!(
                svg,
                "<path class=\"ln\" stroke=\"{}\" d=\"M{x:.1},{:.1}h16\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                lane.colour,
                y - 4.0,
                x + 21.0,
                y,
                escape(lane.label)
            );
            x += 21.0 + 6.5 * lane.label.chars().count() as f64 + 18.0;
        }
        let windows = distinct_windows(self.flags).len();
        let _ = writeln!(
            svg,
            "<rect class=\"band\" x=\"{x:.1}\" y=\"{:.1}\" width=\"10\" height=\"12\"/><text x=\"{:.1}\" y=\"{y:.1}\">flagged window ({windows})</text>",
            y - 10.0,
            x + 15.0
        );
    }
}

/// A plot's background, grid and value labels.
fn plot_frame(svg: &mut String, frame: &Frame, times: &[i64], values: &[f64]) {
    let _ = write!(
        svg,
        "<rect class=\"pl\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"/>\n<path class=\"grid\" d=\"",
        frame.left, frame.top, frame.width, frame.height
    );
    for &t in times {
        let _ = write!(
            svg,
            "M{:.1},{:.1}V{:.1}",
            frame.x(t),
            frame.top,
            frame.bottom()
        );
    }
    for &v in values {
        let _ = write!(
            svg,
            "M{:.1},{:.1}H{:.1}",
            frame.left,
            frame.y(v),
            frame.left + frame.width
        );
    }
    svg.push_str("\"/>\n");
    let decimals = tick_decimals(values);
    for &v in values {
        let _ = writeln!(
            svg,
            "<text class=\"yl\" x=\"{:.1}\" y=\"{:.1}\">{v:.decimals$}</text>",
            frame.left - 5.0,
            frame.y(v) + 4.0
        );
    }
}

/// Time tick labels under a frame.
fn time_labels(svg: &mut String, frame: &Frame, ticks: &[i64], step: i64) {
    for &t in ticks {
        let _ = writeln!(
            svg,
            "<text class=\"xl\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            frame.x(t),
            frame.bottom() + 14.0,
            clock(t, step)
        );
    }
}

/// The flagged windows of `flags` (sorted by window, then sensor).
fn distinct_windows<'a>(flags: &[&'a Flag]) -> Vec<(i64, Vec<&'a Flag>)> {
    let mut windows: Vec<(i64, Vec<&Flag>)> = Vec::new();
    for flag in flags {
        match windows.last_mut() {
            Some((t, group)) if *t == flag.window_start_us => group.push(flag),
            _ => windows.push((flag.window_start_us, vec![flag])),
        }
    }
    windows
}

/// A red band over each flagged window, at least 2 px wide.
fn bands(svg: &mut String, frame: &Frame, flags: &[&Flag], window_us: i64) {
    for (t, group) in distinct_windows(flags) {
        let (a, b) = (frame.x(t), frame.x(t + window_us));
        let width = (b - a).max(2.0);
        let centre = (a + b) / 2.0;
        let titles: Vec<String> = group.iter().map(|f| flag_title(f, window_us)).collect();
        let _ = writeln!(
            svg,
            "<rect class=\"band\" x=\"{:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{:.1}\"><title>{}</title></rect>",
            centre - width / 2.0,
            frame.top,
            frame.height,
            titles.join("\n")
        );
    }
}

fn flag_title(flag: &Flag, window_us: i64) -> String {
    format!(
        "{} {}: mean {}, z {:.1}",
        clock(flag.window_start_us, window_us.min(SECOND_US)),
        escape(&flag.sensor),
        number(flag.value),
        flag.z
    )
}

/// The path of a series in a frame (see [`series_points`]).
fn series_path(frame: &Frame, points: &[(i64, f64)], window_us: i64, buckets: usize) -> String {
    path_data(&series_points(frame, points, window_us, buckets))
}

/// A series in frame coordinates: each window at its middle, thinned to at
/// most two points per time bucket when longer than two per bucket, cut into
/// segments where windows are missing.
fn series_points(
    frame: &Frame,
    points: &[(i64, f64)],
    window_us: i64,
    buckets: usize,
) -> Vec<Vec<(f64, f64)>> {
    let mut max_gap = window_us + window_us / 2;
    let thin = points.len() > 2 * buckets;
    if thin {
        // A gap wider than a bucket: segments never share a bucket, so the
        // whole series keeps at most two points a bucket.
        max_gap = max_gap.max((frame.t1 - frame.t0) / buckets as i64 + 1);
    }
    segments(points, max_gap)
        .into_iter()
        .map(|segment| {
            let kept = if thin {
                downsample(segment, frame.t0, frame.t1, buckets)
            } else {
                segment.to_vec()
            };
            kept.iter()
                .map(|&(t, v)| (frame.x(t + window_us / 2), frame.y(v)))
                .collect()
        })
        .collect()
}

/// Splits a series (sorted by time) where consecutive points are more than
/// `max_gap` apart.
fn segments(points: &[(i64, f64)], max_gap: i64) -> Vec<&[(i64, f64)]> {
    let mut segments = Vec::new();
    let mut start = 0;
    for i in 1..=points.len() {
        if i == points.len() || points[i].0 - points[i - 1].0 > max_gap {
            if i > start {
                segments.push(&points[start..i]);
            }
            start = i;
        }
    }
    segments
}

/// At most two points per bucket of a series sorted by time: `[t0, t1]` is
/// cut into `buckets` equal spans, and each keeps its lowest and its highest
/// point, in time order (one point when they are the same).
fn downsample(points: &[(i64, f64)], t0: i64, t1: i64, buckets: usize) -> Points {
    let buckets = buckets.max(1);
    let span = i128::from((t1 - t0).max(1));
    let bucket = |t: i64| {
        let offset = i128::from((t - t0).max(0));
        ((offset * buckets as i128 / span) as usize).min(buckets - 1)
    };
    let mut kept = Vec::with_capacity(points.len().min(2 * buckets));
    let mut i = 0;
    while i < points.len() {
        let b = bucket(points[i].0);
        let (mut lo, mut hi, mut j) = (i, i, i);
        while j < points.len() && bucket(points[j].0) == b {
            if points[j].1 < points[lo].1 {
                lo = j;
            }
            if points[j].1 > points[hi].1 {
                hi = j;
            }
            j += 1;
        }
        kept.push(points[lo.min(hi)]);
        if lo != hi {
            kept.push(points[lo.max(hi)]);
        }
        i = j;
    }
    kept
}

/// SVG path data of polyline segments, to a tenth of a pixel: each segment
/// an absolute move then relative lines (short numbers: the page's bulk is
/// paths); a lone point becomes a dot (a zero-length line with round caps).
fn path_data(segments: &[Vec<(f64, f64)>]) -> String {
    let tenths = |v: f64| (v * 10.0).round() as i64;
    let mut d = String::new();
    for segment in segments {
        let Some(((x, y), rest)) = segment.split_first() else {
            continue;
        };
        let (mut px, mut py) = (tenths(*x), tenths(*y));
        d.push('M');
        push_number(&mut d, px, "");
        push_number(&mut d, py, ",");
        if rest.is_empty() {
            d.push_str("h0");
        }
        for (i, (x, y)) in rest.iter().enumerate() {
            let (nx, ny) = (tenths(*x), tenths(*y));
            push_number(&mut d, nx - px, if i == 0 { "l" } else { " " });
            push_number(&mut d, ny - py, ",");
            (px, py) = (nx, ny);
        }
    }
    d
}

/// Appends a number given in tenths, shortest form (`-.3`, `2`, `1.4`), after
/// `separator` unless its minus sign separates it.
fn push_number(d: &mut String, tenths: i64, separator: &str) {
    if tenths >= 0 || separator == "l" {
        d.push_str(separator);
    }
    if tenths < 0 {
        d.push('-');
    }
    let (whole, tenth) = (tenths.unsigned_abs() / 10, tenths.unsigned_abs() % 10);
    match (whole, tenth) {
        (w, 0) => {
            let _ = write!(d, "{w}");
        }
        (0, t) => {
            let _ = write!(d, ".{t}");
        }
        (w, t) => {
            let _ = write!(d, "{w}.{t}");
        }
    }
}

/// The shortest positive step between consecutive points of any series.
fn shortest_step<'a>(series: impl Iterator<Item = &'a Points>) -> Option<i64> {
    series
        .flat_map(|points| points.windows(2).map(|w| w[1].0 - w[0].0))
        .filter(|d| *d > 0)
        .min()
}

/// A round step of about `span / target`: 1, 2 or 5 times a power of ten.
fn nice_step(span: f64, target: usize) -> f64 {
    let raw = span / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let unit = raw / magnitude;
    let nice = if unit < 1.5 {
        1.0
    } else if unit < 3.0 {
        2.0
    } else if unit < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// A value range widened to round ticks, and the ticks (about `target` + 1).
fn value_ticks(lo: f64, hi: f64, target: usize) -> (f64, f64, Vec<f64>) {
    let (mut lo, mut hi) = if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    if hi - lo <= f64::EPSILON * hi.abs().max(lo.abs()).max(1.0) {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.05 };
        lo -= pad;
        hi += pad;
    }
    let step = nice_step(hi - lo, target);
    let first = (lo / step).floor();
    let last = (hi / step).ceil();
    let ticks: Vec<f64> = (0..=(last - first) as i64)
        .map(|k| (first + k as f64) * step + 0.0)
        .collect();
    (first * step, last * step, ticks)
}

/// Decimals that tell the ticks apart.
fn tick_decimals(ticks: &[f64]) -> usize {
    match ticks {
        [a, b, ..] if b > a => (-(b - a).log10().floor()).clamp(0.0, 6.0) as usize,
        _ => 0,
    }
}

/// Round time ticks within `[t0, t1]` (about `target` of them), aligned to
/// the clock, and their step in microseconds.
fn time_ticks(t0: i64, t1: i64, target: usize) -> (Vec<i64>, i64) {
    const STEPS_MS: [i64; 27] = [
        1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000,
        120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000,
        21_600_000, 43_200_000, 86_400_000,
    ];
    let span = (t1 - t0).max(1);
    let target = target.max(1) as i64;
    let step = STEPS_MS
        .iter()
        .map(|ms| ms * 1_000)
        .find(|step| span / step <= target)
        .unwrap_or_else(|| {
            let days = (span / DAY_US / target).max(1);
            nice_step(days as f64, 1).max(1.0) as i64 * DAY_US
        });
    let first = t0.div_euclid(step) * step + if t0.rem_euclid(step) == 0 { 0 } else { step };
    let ticks = (0..)
        .map(|k| first + k * step)
        .take_while(|t| *t <= t1)
        .collect();
    (ticks, step)
}

/// A time label for ticks `step` apart: time of day to the precision the
/// step needs, or the date for steps of days.
pub(crate) fn clock(us: i64, step: i64) -> String {
    let ms = us.div_euclid(1_000);
    let day_ms = ms.rem_euclid(86_400_000);
    let (h, m, s) = (
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1_000 % 60,
    );
    if step >= DAY_US {
        let (y, mo, d) = civil(us.div_euclid(DAY_US));
        format!("{y:04}-{mo:02}-{d:02}")
    } else if step >= 60 * SECOND_US {
        format!("{h:02}:{m:02}")
    } else if step >= SECOND_US {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}.{:03}", day_ms % 1_000)
    }
}

/// Date and time of day, `YYYY-MM-DD HH:MM:SS`.
fn datetime(us: i64) -> String {
    let (y, m, d) = civil(us.div_euclid(DAY_US));
    format!("{y:04}-{m:02}-{d:02} {}", clock(us, SECOND_US))
}

/// The civil date (proleptic Gregorian) of a day count since 1970-01-01.
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Text safe inside HTML elements and quoted attributes.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// An integer with thousands separators.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    grouped
}

/// A rate in K or M.
fn compact(x: f64) -> String {
    match x.abs() {
        a if a >= 1e9 => format!("{:.2} G", x / 1e9),
        a if a >= 1e6 => format!("{:.2} M", x / 1e6),
        a if a >= 1e3 => format!("{:.1} K", x / 1e3),
        _ => format!("{x:.0}"),
    }
}

/// A standard deviation, to two significant digits.
fn sigma(x: f64) -> String {
    if x > 0.0 && x.is_finite() && x < 1e6 {
        let decimals = (1 - x.log10().floor() as i64).clamp(0, 8) as usize;
        format!("{x:.decimals$}")
    } else {
        number(x)
    }
}

/// A measured value with about four significant digits.
fn number(x: f64) -> String {
    let a = x.abs();
    if !x.is_finite() {
        "–".to_owned()
    } else if a == 0.0 || (1e-3..1e6).contains(&a) {
        let decimals = if a == 0.0 {
            0
        } else {
            (3 - a.log10().floor() as i64).clamp(0, 6) as usize
        };
        format!("{x:.decimals$}")
    } else {
        format!("{x:.3e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::Columns;

    #[test]
    fn downsampling_keeps_the_min_and_max_of_each_bucket() {
        // 1000 points over 1 s, values a deterministic jumble.
        let points: Points = (0..1000i64)
            .map(|i| (i * 1_000, ((i * 7_919) % 1_009) as f64 - 500.0))
            .collect();
        let (t0, t1, buckets) = (0, 1_000_000, 10);
        let kept = downsample(&points, t0, t1, buckets);
        assert!(kept.len() <= 2 * buckets, "{} points", kept.len());
        assert!(
            kept.windows(2).all(|w| w[0].0 < w[1].0),
            "not in time order"
        );
        for b in 0..buckets as i64 {
            let (from, to) = (b * 100_000, (b + 1) * 100_000);
            let inside = |p: &&(i64, f64)| p.0 >= from && p.0 < to;
            let min = points
                .iter()
                .filter(inside)
                .map(|p| p.1)
                .fold(f64::MAX, f64::min);
            let max = points
                .iter()
                .filter(inside)
                .map(|p| p.1)
                .fold(f64::MIN, f64::max);
            let kept_here: Vec<f64> = kept.iter().filter(inside).map(|p| p.1).collect();
            assert_eq!(kept_here.len(), 2, "bucket {b}");
            assert!(
                kept_here.contains(&min) && kept_here.contains(&max),
                "bucket {b}"
            );
        }
        // A bucket of one point keeps it once; a flat bucket keeps one point.
        assert_eq!(
            downsample(&[(0, 1.0), (500, 2.0), (501, 2.0)], 0, 1_000, 2),
            vec![(0, 1.0), (500, 2.0)]
        );
    }

    #[test]
    fn series_are_cut_where_windows_are_missing() {
        let points: Points = [0, 1, 2, 5, 6, 9].map(|t| (t, t as f64)).to_vec();
        let lengths: Vec<usize> = segments(&points, 1).iter().map(|s| s.len()).collect();
        assert_eq!(lengths, [3, 2, 1]);
        assert!(segments(&[], 1).is_empty());
    }

    #[test]
    fn svg_path_of_a_tiny_series() {
        // Three 1 s windows drawn at their middles, then a lone window after a gap.
        let frame = Frame {
            left: 0.0,
            top: 0.0,
            width: 600.0,
            height: 100.0,
            t0: 0,
            t1: 6 * SECOND_US,
            lo: 0.0,
            hi: 2.0,
        };
        let points: Points = vec![
            (0, 0.0),
            (SECOND_US, 2.0),
            (2 * SECOND_US, 1.0),
            (5 * SECOND_US, 1.5),
        ];
        assert_eq!(
            series_path(&frame, &points, SECOND_US, BUCKETS),
            "M50,100l100-100 100,50M550,25h0"
        );
        assert_eq!(path_data(&[]), "");
        assert_eq!(
            path_data(&[vec![(0.04, 1.25), (-0.5, 3.0), (2.0, 2.92)]]),
            "M0,1.3l-.5,1.7 2.5-.1"
        );
    }

    #[test]
    fn long_series_are_thinned_to_two_points_a_bucket() {
        let frame = Frame {
            left: 0.0,
            top: 0.0,
            width: 900.0,
            height: 100.0,
            t0: 0,
            t1: 10_000 * SECOND_US,
            lo: -1.0,
            hi: 1.0,
        };
        let points: Points = (0..10_000)
            .map(|i| (i * SECOND_US, (i as f64 / 7.0).sin()))
            .collect();
        let drawn = series_points(&frame, &points, SECOND_US, BUCKETS);
        assert_eq!(drawn.len(), 1, "one unbroken line");
        assert!(drawn[0].len() <= 2 * BUCKETS, "{} points", drawn[0].len());
        assert!(drawn[0].len() > BUCKETS, "{} points", drawn[0].len());
        // Cut by gaps, still at most two points a bucket.
        let gapped: Points = points
            .iter()
            .filter(|p| p.0 % (2_000 * SECOND_US) >= 100 * SECOND_US)
            .copied()
            .collect();
        let drawn = series_points(&frame, &gapped, SECOND_US, BUCKETS);
        assert_eq!(drawn.len(), 5);
        let total: usize = drawn.iter().map(Vec::len).sum();
        assert!(total <= 2 * BUCKETS, "{total} points");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape(r#"<b a='1'>"x" & y</b>"#),
            "&lt;b a=&#39;1&#39;&gt;&quot;x&quot; &amp; y&lt;/b&gt;"
        );
        assert_eq!(escape("temp-1 ± 2 °C"), "temp-1 ± 2 °C");
    }

    #[test]
    fn ticks_are_round() {
        let (ticks, step) = time_ticks(3 * SECOND_US, 63 * SECOND_US, 8);
        assert_eq!(step, 10 * SECOND_US);
        assert_eq!(
            ticks,
            (1..=6).map(|k| k * 10 * SECOND_US).collect::<Vec<_>>()
        );
        assert_eq!(time_ticks(0, 600 * SECOND_US, 8).1, 120 * SECOND_US);
        assert_eq!(
            value_ticks(0.3, 9.7, 4),
            (0.0, 10.0, vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0])
        );
        let (lo, hi, ticks) = value_ticks(5.0, 5.0, 4);
        assert!(lo < 5.0 && hi > 5.0 && ticks.len() >= 2);
        assert_eq!(tick_decimals(&[0.0, 0.5]), 1);
        assert_eq!(tick_decimals(&[0.0, 20.0]), 0);
    }

    #[test]
    fn times_and_numbers_read_well() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(-1), (1969, 12, 31));
        assert_eq!(civil(11_017), (2000, 3, 1));
        assert_eq!(civil(19_782), (2024, 2, 29));
        assert_eq!(datetime(1_767_272_645_000_000), "2026-01-01 13:04:05");
        assert_eq!(clock(1_767_272_645_250_000, 60 * SECOND_US), "13:04");
        assert_eq!(clock(1_767_272_645_250_000, 500_000), "13:04:05.250");
        assert_eq!(clock(1_767_272_645_250_000, DAY_US), "2026-01-01");
        // The twin table's clock: seconds, UTC, and times before 1970 too.
        assert_eq!(clock(1_767_272_645_000_000, SECOND_US), "13:04:05");
        assert_eq!(clock(-1_000_000, SECOND_US), "23:59:59");
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1_329_063), "1,329,063");
        assert_eq!(compact(4_053_424.1), "4.05 M");
        assert_eq!(number(85.49259), "85.49");
        assert_eq!(number(1.0369), "1.037");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(f64::NAN), "–");
        assert_eq!(sigma(0.164), "0.16");
        assert_eq!(sigma(2.5), "2.5");
        assert_eq!(sigma(1234.0), "1234");
    }

    // -----------------------------------------------------------------------
    // A replay output of a small plant of another kind, written by hand

    const START: i64 = 1_767_225_600_000_000;
    const WINDOW: i64 = 5 * SECOND_US;
    const ASSETS: [&str; 4] = ["pump<1>", "pump&2", "pump-3", "pump-4"];

    fn write(dir: &Path, batch: RecordBatch) {
        std::fs::create_dir_all(dir).unwrap();
        let file = std::fs::File::create(dir.join("part-00000.parquet")).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    /// 4 pumps on one line, 40 windows of 5 s, fused `head`; with `flags`, the
    /// second pump's speed is flagged twice.
    fn station(name: &str, flags: bool) -> PathBuf {
        let out =
            std::env::temp_dir().join(format!("twinflow-report-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let n = ASSETS.len();
        write(
            &out.join("twins/assets"),
            Columns::new()
                .utf8("asset", ASSETS.into_iter())
                .utf8("line", ["line <a>"; 4].into_iter())
                .utf8("site", ["site 1"; 4].into_iter())
                .i64("window_start_us", (0..n).map(|_| START + 39 * WINDOW))
                .u64("flags", (0..n).map(|i| if flags && i == 1 { 2 } else { 0 }))
                .utf8("health", ["ok", "alarm", "stale", "degraded"].into_iter())
                .f64_opt("speed", [Some(1.0), Some(2.0), None, Some(4.0)].into_iter())
                .utf8(
                    "speed_source",
                    ["measured", "measured", "missing", "carried"].into_iter(),
                )
                .f64_opt("fused_head", (0..n).map(|i| Some(10.0 + i as f64)))
                .f64_opt("fused_head_variance", (0..n).map(|_| Some(0.25)))
                .finish(),
        );
        write(
            &out.join("twins/lines"),
            Columns::new()
                .utf8("line", ["line <a>"].into_iter())
                .u64("assets", [4].into_iter())
                .u64("assets_reporting", [3].into_iter())
                .u64("assets_with_flags", [u64::from(flags)].into_iter())
                .f64_opt("mean_fused_head", [Some(11.5)].into_iter())
                .utf8("worst_health", ["alarm"].into_iter())
                .i64("newest_window_start_us", [START + 39 * WINDOW].into_iter())
                .finish(),
        );
        let rows: Vec<(usize, i64)> = (0..n)
            .flat_map(|a| {
                (0..40)
                    .filter(move |w| a != 1 || *w % 10 != 3)
                    .map(move |w| (a, w))
            })
            .collect();
        let wave = |a: usize, w: i64| 10.0 + a as f64 + (w as f64 / 4.0).sin();
        write(
            &out.join("fused"),
            Columns::new()
                .utf8("asset", rows.iter().map(|(a, _)| ASSETS[*a]))
                .i64(
                    "window_start_us",
                    rows.iter().map(|(_, w)| START + w * WINDOW),
                )
                .utf8("quantity", rows.iter().map(|_| "head"))
                .f64("value", rows.iter().map(|(a, w)| wave(*a, *w)))
                .f64("variance", rows.iter().map(|_| 0.25))
                .u32("sensors", rows.iter().map(|_| 2))
                .finish(),
        );
        let sensors: Vec<String> = ASSETS.iter().map(|a| format!("{a}/speed")).collect();
        write(
            &out.join("windows"),
            Columns::new()
                .utf8("sensor", rows.iter().map(|(a, _)| sensors[*a].as_str()))
                .utf8("asset", rows.iter().map(|(a, _)| ASSETS[*a]))
                .i64(
                    "window_start_us",
                    rows.iter().map(|(_, w)| START + w * WINDOW),
                )
                .i64(
                    "window_end_us",
                    rows.iter().map(|(_, w)| START + (w + 1) * WINDOW),
                )
                .f64("mean", rows.iter().map(|(a, w)| wave(*a, *w) / 10.0))
                .finish(),
        );
        let flagged: &[i64] = if flags { &[20, 30] } else { &[] };
        write(
            &out.join("flags"),
            Columns::new()
                .utf8("asset", flagged.iter().map(|_| ASSETS[1]))
                .utf8("sensor", flagged.iter().map(|_| sensors[1].as_str()))
                .i64(
                    "window_start_us",
                    flagged.iter().map(|w| START + w * WINDOW),
                )
                .f64("value", flagged.iter().map(|w| wave(1, *w) / 10.0))
                .f64("z", flagged.iter().map(|_| 7.5))
                .finish(),
        );
        std::fs::write(
            out.join("summary.json"),
            r#"{"pipeline": "pump-station 1.0", "events_in": 12345, "late_events": 0,
                "windows": 160, "aligned_rows": 160, "flags": 2, "assets_in_view": 4,
                "events_per_s": 1234567.0}"#,
        )
        .unwrap();
        out
    }

    #[test]
    fn without_flags_the_first_assets_are_charted() {
        let out = station("unflagged", false);
        let page = std::fs::read_to_string(write_report(&out).unwrap()).unwrap();
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.ends_with("</html>\n"));
        assert_eq!(page.matches("<svg").count(), FALLBACK_ASSETS);
        assert_eq!(page.matches("</svg>").count(), FALLBACK_ASSETS);
        // Names from the data, escaped everywhere.
        for name in [
            "pump&lt;1&gt;",
            "pump&amp;2",
            "line &lt;a&gt;",
            "head",
            "speed (missing)",
        ] {
            assert!(page.contains(name), "{name} missing");
        }
        assert!(!page.contains("pump<1>") && !page.contains("line <a>"));
        assert!(page.contains("12,345") && page.contains("1.23 M"));
        assert!(page.contains("No window was flagged"));
        assert!(page.contains("flagged window (0)"));
        assert!(!page.contains("flagged sensors"));
        // The first in name order, pump&2, misses every 10th window: its line
        // is broken there.
        let chart = &page[page.find("id=\"chart-0\">pump&amp;2").unwrap()..];
        let chart = &chart[..chart.find("</svg>").unwrap()];
        let lane = chart
            .split("<path class=\"ln\"")
            .max_by_key(|p| p.matches('L').count())
            .unwrap();
        assert_eq!(lane.matches('M').count(), 5, "{lane}");
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn flagged_assets_are_charted_with_their_sensors() {
        let out = station("flagged", true);
        let page = std::fs::read_to_string(write_report(&out).unwrap()).unwrap();
        assert_eq!(page.matches("<svg").count(), 1);
        let chart = &page[page.find("<section id=\"charts\"").unwrap()..];
        assert!(chart.contains("<h3 id=\"chart-0\">pump&amp;2"));
        assert!(chart.contains("flagged sensors: window means"));
        assert!(chart.contains("pump&amp;2/speed"));
        assert_eq!(chart.matches("<circle class=\"dot\"").count(), 2);
        // Two bands on the lanes, two on the sensor's panel.
        assert_eq!(chart.matches("<rect class=\"band\" x=").count(), 1 + 4);
        assert!(page.contains("<a href=\"#chart-0\">pump&amp;2</a>"));
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn a_directory_without_results_is_refused() {
        let out =
            std::env::temp_dir().join(format!("twinflow-report-{}-empty", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        assert!(write_report(&out).is_err());
        assert!(write_report(&out.join("missing")).is_err());
        std::fs::remove_dir_all(&out).unwrap();
    }
}
