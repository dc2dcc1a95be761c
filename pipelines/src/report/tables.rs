//! The page's header figures and its tables of the twin view and rollups.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use maud::{Markup, html};

use super::data::{RollupView, TwinRow, TwinView};
use super::format::{SECOND_US, clock, compact, datetime, group, number, sigma};

/// Title and the summary figures.
pub(crate) fn header(
    out: &Path,
    pipeline: &str,
    summary: Option<&serde_json::Value>,
    newest_us: Option<i64>,
) -> Markup {
    let count = |key: &str| summary?.get(key)?.as_u64();
    let real = |key: &str| summary?.get(key)?.as_f64();
    let figures: [(&str, Option<String>); 9] = [
        ("events", count("events_in").map(group)),
        ("late", count("late_events").map(group)),
        ("windows", count("windows").map(group)),
        ("aligned rows", count("aligned_rows").map(group)),
        ("flags", count("flags").map(group)),
        ("sensor suspects", count("suspects").map(group)),
        ("assets in view", count("assets_in_view").map(group)),
        ("quarantined", count("quarantined").map(group)),
        ("events/s", real("events_per_s").map(compact)),
    ];
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let run: Vec<String> = [
        count("workers").map(|w| plural(w, "worker", "workers")),
        count("processes").map(|p| plural(p, "process", "processes")),
        real("elapsed_s").map(|s| format!("{s:.2} s")),
        real("peak_rss_mb").map(|m| format!("peak RSS {m:.0} MB")),
        real("cpu_s").map(|c| format!("CPU {c:.2} s")),
    ]
    .into_iter()
    .flatten()
    .collect();
    html! {
        header {
            h1 { "twinflow report" }
            p.sub {
                (pipeline) " · " (out.display().to_string())
                @if let Some(t) = newest_us { " · twin view as of " (datetime(t)) " UTC" }
            }
            @if summary.is_none() {
                p.note { "No summary.json in this directory." }
            } @else {
                dl.figures {
                    @for (label, value) in &figures {
                        div { dt { (label) } dd { (value.as_deref().unwrap_or("–")) } }
                    }
                }
                @if !run.is_empty() { p.note { "Run: " (run.join(", ")) "." } }
            }
        }
    }
}

/// A coloured badge of a health state.
pub(crate) fn badge(health: &str) -> Markup {
    let class = match health {
        "ok" | "degraded" | "stale" | "alarm" => health,
        _ => "other",
    };
    html! {
        span class={ "badge h-" (class) } { (if health.is_empty() { "?" } else { health }) }
    }
}

/// The final asset view, one asset a row; charted assets link to their chart.
pub(crate) fn twin_table(twins: &TwinView, chart_ids: &HashMap<&str, usize>) -> Markup {
    let mut by_health: BTreeMap<&str, usize> = BTreeMap::new();
    for row in &twins.rows {
        *by_health.entry(&row.health).or_default() += 1;
    }
    let with_trust = twins.rows.iter().any(|r| !r.trust.is_empty());
    html! {
        section #twins {
            h2 { "Twin view" }
            p.note {
                (group(twins.rows.len() as u64)) " assets"
                @for (health, n) in &by_health { " · " (badge(health)) " " (n) }
                ". Charted assets link to their chart."
                @if with_trust { " Sensor trust: fusion's belief in each redundant sensor (0–1), its weight in the fused value, and its state." }
            }
            div.scroll { table {
                thead { tr {
                    th { "asset" } th { "line" } th { "site" } th { "health" } th { "flags" }
                    th { "latest window" }
                    @for q in &twins.quantities { th { (q) } }
                    @if with_trust { th { "sensor trust" } }
                    th { "channels not measured" }
                } }
                tbody {
                    @for row in &twins.rows { (twin_row(row, chart_ids.get(row.asset.as_str()), with_trust)) }
                }
            } }
        }
    }
}

fn twin_row(row: &TwinRow, chart: Option<&usize>, with_trust: bool) -> Markup {
    html! {
        tr {
            td { @if let Some(id) = chart { a href={ "#chart-" (id) } { (row.asset) } } @else { (row.asset) } }
            td { (row.line) }
            td { (row.site) }
            td { (badge(&row.health)) }
            td.n { (row.flags.map_or("–".to_owned(), group)) }
            td { (row.window_start_us.map_or("–".to_owned(), |t| clock(t, SECOND_US))) }
            @for (value, variance) in &row.fused {
                @if let Some(v) = value {
                    td.n {
                        (number(*v))
                        @if let Some(var) = variance.filter(|v| *v >= 0.0) { " ± " (sigma(var.sqrt())) }
                    }
                } @else {
                    td.n.muted { "–" }
                }
            }
            @if with_trust {
                td {
                    @for t in &row.trust {
                        @let state = t.state.as_deref().unwrap_or("");
                        span class={ "trust s-" (state_class(state)) } {
                            (t.channel) " " (t.trust.map_or("–".to_owned(), |v| format!("{v:.2}")))
                            @if let Some(w) = t.weight { " · w " (format!("{w:.2}")) }
                            @if !state.is_empty() && state != "trusted" { " · " (state) }
                        }
                    }
                }
            }
            td {
                @for (i, (channel, source)) in row.unmeasured.iter().enumerate() {
                    @if i > 0 { ", " }
                    (channel) " (" (source) ")"
                }
            }
        }
    }
}

/// A CSS class for a trust state (other states look like `trusted`).
pub(crate) fn state_class(state: &str) -> &'static str {
    match state {
        "down_weighted" => "down",
        "excluded" => "excluded",
        _ => "trusted",
    }
}

/// A rollup view (lines or sites) as a table.
pub(crate) fn rollup_table(id: &str, title: &str, key: &str, view: &RollupView) -> Markup {
    let n = |v: Option<u64>| v.map_or("–".to_owned(), group);
    html! {
        section id=(id) {
            h2 { (title) }
            div.scroll { table {
                thead { tr {
                    th { (key) } th { "assets" } th { "reporting" } th { "with flags" }
                    th { "worst health" } th { "newest window" }
                    @for q in &view.quantities { th { "mean " (q) } }
                } }
                tbody {
                    @for row in &view.rows {
                        tr {
                            td { (row.name) }
                            td.n { (n(row.assets)) }
                            td.n { (n(row.reporting)) }
                            td.n { (n(row.with_flags)) }
                            td { (badge(&row.worst)) }
                            td { (row.newest_us.map_or("–".to_owned(), |t| clock(t, SECOND_US))) }
                            @for mean in &row.means { td.n { (mean.map_or("–".to_owned(), number)) } }
                        }
                    }
                    @if view.rows.is_empty() { tr { td.muted { "none" } } }
                }
            } }
        }
    }
}
