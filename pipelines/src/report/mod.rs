//! A self-contained HTML page of a replay's results (`OUT/report.html`): the
//! run's figures, the final twin view and its rollups as tables, the
//! evaluation against the truth when `twinflow eval` wrote one, a chart per
//! suspect sensor, and for each asset step D flagged an inline SVG chart of
//! its fused quantities and of its flagged sensors' window means. No
//! JavaScript, no network: one file to open in a browser or attach to a
//! ticket.
//!
//! Everything is read from the datasets, so any plant and pipeline works:
//! quantities, channels and health states are whatever the columns hold.
//! The page's markup is built (and escaped) by maud, the charts drawn by
//! plotters' SVG backend.

mod chart;
mod data;
mod eval;
mod flagged;
mod format;
mod suspects;
mod tables;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use maud::{DOCTYPE, PreEscaped, html};
use twinflow_engine::error::{Error, Result};

pub(crate) use format::clock;

use data::{
    Flag, read_flags, read_fused, read_json, read_rollups, read_sensor_quantities, read_trust,
    read_twins, read_window_means,
};
use flagged::{ChartData, FlaggedAssets};
use format::SECOND_US;

/// The page's file name inside `OUT`.
pub const REPORT_FILE: &str = "report.html";

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

/// The page for the replay output in `out`.
fn render(out: &Path) -> Result<String> {
    if !out.is_dir() {
        return Err(Error::Config(format!(
            "{}: no such output directory",
            out.display()
        )));
    }
    let summary = read_json(out, "summary.json")?;
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
    // eval.json is another command's output: one it cannot read is said on
    // the page rather than costing the whole report.
    let eval = read_json(out, "eval.json")
        .transpose()
        .map(|e| e.map_err(|e| e.to_string()));
    let flags = read_flags(&out.join("flags"))?;

    // Step D's anomalies are charted per asset; sensor suspects each get a chart.
    let anomalies: Vec<&Flag> = flags.iter().filter(|f| !f.is_suspect()).collect();
    let flagged = FlaggedAssets::choose(&anomalies, twins.rows.iter().map(|r| r.asset.as_str()));
    let (suspects, more_suspects) = suspects::choose(&flags);
    let suspect_assets: HashSet<&str> = suspects.iter().map(|f| f.asset.as_str()).collect();

    let panel_sensors = flagged.panel_sensors();
    let read_assets: HashSet<&str> = flagged
        .charted
        .iter()
        .copied()
        .chain(suspect_assets.iter().copied())
        .collect();
    let fused = read_fused(&out.join("fused"), &read_assets)?;
    let (means, window_us) = read_window_means(&out.join("windows"), |asset, sensor| {
        panel_sensors.contains(sensor) || suspect_assets.contains(asset)
    })?;
    let window_us = window_us
        .or_else(|| shortest_step(fused.values().flat_map(|q| q.values())))
        .unwrap_or(SECOND_US);
    let trust = read_trust(&out.join("trust"), &suspect_assets)?;
    let sensor_quantities = if suspects.is_empty() {
        HashMap::new()
    } else {
        read_sensor_quantities(summary.as_ref())
    };

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

    let twin_of: HashMap<&str, &data::TwinRow> =
        twins.rows.iter().map(|r| (r.asset.as_str(), r)).collect();
    let charts = flagged.section(&ChartData {
        fused: &fused,
        means: &means,
        window_us,
        quantities: &quantities,
        twins: &twin_of,
    })?;
    let suspect_section = suspects::section(
        &suspects,
        more_suspects,
        &suspects::SuspectData {
            fused: &fused,
            means: &means,
            trust: &trust,
            quantities: &sensor_quantities,
            window_us,
        },
    )?;

    let newest = twins.rows.iter().filter_map(|r| r.window_start_us).max();
    let pipeline = summary
        .as_ref()
        .and_then(|s| s.get("pipeline"))
        .and_then(|p| p.as_str())
        .unwrap_or("twinflow");
    let page = html! {
        (DOCTYPE) "\n"
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "twinflow report: " (pipeline) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                (tables::header(out, pipeline, summary.as_ref(), newest))
                nav {
                    a href="#twins" { "Twin view" } " · " a href="#lines" { "Lines" }
                    @if !sites.rows.is_empty() { " · " a href="#sites" { "Sites" } }
                    @if eval.is_some() { " · " a href="#eval" { "Evaluation" } }
                    " · " a href="#suspects" { "Suspect sensors" }
                    " · " a href="#charts" { "Charts" }
                }
                (tables::twin_table(&twins, &flagged.chart_ids()))
                (tables::rollup_table("lines", "Lines", "line", &lines))
                @if !sites.rows.is_empty() { (tables::rollup_table("sites", "Sites", "site", &sites)) }
                (eval::eval_section(eval.as_ref()))
                (suspect_section)
                (charts)
                footer { "Written by twinflow from the Parquet datasets of this directory. Times are UTC." }
            }
        }
    };
    let mut page = page.into_string();
    page.push('\n');
    Ok(page)
}

/// The shortest positive step between consecutive windows of any series.
fn shortest_step<'a>(series: impl Iterator<Item = &'a Vec<data::FusedPoint>>) -> Option<i64> {
    series
        .flat_map(|points| points.windows(2).map(|w| w[1].t - w[0].t))
        .filter(|d| *d > 0)
        .min()
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
.trust{font-size:12px;margin-right:10px}.s-down{color:#b36b00}.s-excluded{color:#c62828;font-weight:600}\
.chart{background:#fff;border:1px solid #e2e2e2;border-radius:6px;padding:4px 12px 10px;margin:14px 0}\
.legend{font-size:12px;color:#444;margin:2px 0}.legend .trust{display:inline}\
.swatch{display:inline-block;width:14px;height:10px;margin:0 4px 0 8px;vertical-align:middle}\
figcaption{font-size:13px;color:#333;margin-top:4px}\
svg{max-width:100%;height:auto;display:block}\
details{margin-top:6px;font-size:13px}details table{width:auto}";

#[cfg(test)]
mod tests;
