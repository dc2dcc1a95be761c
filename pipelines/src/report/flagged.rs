//! The section of assets step D flagged: per asset a chart of its fused
//! quantities with the flagged windows marked beside its flagged sensors'
//! window means, and the list of its flags.

use std::collections::{BTreeMap, HashMap, HashSet};

use maud::{Markup, PreEscaped, html};
use plotters::style::RGBColor;
use twinflow_engine::error::Result;

use super::chart::{AssetChart, FLAG_RED, Lane, PALETTE, Panel, css};
use super::data::{Flag, FusedPoint, Points, TwinRow};
use super::format::{SECOND_US, clock, datetime, group, number};
use super::tables::badge;

/// At most this many assets get a chart (the most flagged first); the other
/// flagged assets are listed by name.
const MAX_CHARTED_ASSETS: usize = 100;
/// Assets charted when no asset has a flag.
pub(crate) const FALLBACK_ASSETS: usize = 3;
/// At most this many flagged sensors get a panel in an asset's chart.
const MAX_SENSOR_PANELS: usize = 8;
/// At most this many flags are listed under an asset's chart.
const MAX_LISTED_FLAGS: usize = 50;

/// Which assets are charted, and with which sensors' panels.
pub(crate) struct FlaggedAssets<'a> {
    flags: usize,
    flags_of: BTreeMap<&'a str, Vec<&'a Flag>>,
    /// Flagged assets, the most flagged first, with their flag counts.
    flagged: Vec<(&'a str, usize)>,
    pub charted: Vec<&'a str>,
    /// Per charted asset its flagged sensors, the most flagged first.
    panels_of: HashMap<&'a str, Vec<(&'a str, Vec<&'a Flag>)>>,
}

/// What every chart of the section shares.
pub(crate) struct ChartData<'a> {
    pub fused: &'a HashMap<String, BTreeMap<String, Vec<FusedPoint>>>,
    pub means: &'a HashMap<String, Points>,
    pub window_us: i64,
    /// Quantities in colour order.
    pub quantities: &'a [String],
    pub twins: &'a HashMap<&'a str, &'a TwinRow>,
}

impl<'a> FlaggedAssets<'a> {
    /// The most flagged of the assets `anomalies` name, else the first few
    /// of `assets` in name order.
    pub fn choose(anomalies: &[&'a Flag], assets: impl Iterator<Item = &'a str>) -> Self {
        let mut flags_of: BTreeMap<&str, Vec<&Flag>> = BTreeMap::new();
        for flag in anomalies {
            flags_of.entry(&flag.asset).or_default().push(flag);
        }
        let mut flagged: Vec<(&str, usize)> = flags_of.iter().map(|(a, f)| (*a, f.len())).collect();
        flagged.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let charted: Vec<&str> = if flagged.is_empty() {
            let mut names: Vec<&str> = assets.collect();
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
        let panels_of = charted
            .iter()
            .map(|asset| {
                let mut by_sensor: BTreeMap<&str, Vec<&Flag>> = BTreeMap::new();
                for flag in flags_of.get(asset).into_iter().flatten() {
                    by_sensor.entry(&flag.sensor).or_default().push(flag);
                }
                let mut sensors: Vec<(&str, Vec<&Flag>)> = by_sensor.into_iter().collect();
                sensors.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
                (*asset, sensors)
            })
            .collect();
        FlaggedAssets {
            flags: anomalies.len(),
            flags_of,
            flagged,
            charted,
            panels_of,
        }
    }

    /// The sensors that get a panel.
    pub fn panel_sensors(&self) -> HashSet<&'a str> {
        self.panels_of
            .values()
            .flat_map(|s| s.iter().take(MAX_SENSOR_PANELS).map(|(name, _)| *name))
            .collect()
    }

    /// The anchor number of each charted asset's chart.
    pub fn chart_ids(&self) -> HashMap<&'a str, usize> {
        self.charted
            .iter()
            .enumerate()
            .map(|(i, a)| (*a, i))
            .collect()
    }

    pub fn section(&self, data: &ChartData) -> Result<Markup> {
        let no_fused = BTreeMap::new();
        let empty = Vec::new();
        let mut articles = Vec::with_capacity(self.charted.len());
        for (id, asset) in self.charted.iter().enumerate() {
            let flags: &[&Flag] = self.flags_of.get(asset).map_or(&[], Vec::as_slice);
            let series = data.fused.get(*asset).unwrap_or(&no_fused);
            let values: Vec<(usize, Points)> = data
                .quantities
                .iter()
                .enumerate()
                .filter_map(|(i, q)| {
                    Some((i, series.get(q)?.iter().map(|p| (p.t, p.value)).collect()))
                })
                .collect();
            let lanes: Vec<Lane> = values
                .iter()
                .map(|(i, points)| Lane {
                    label: &data.quantities[*i],
                    colour: PALETTE[i % PALETTE.len()],
                    points,
                })
                .collect();
            let sensors = &self.panels_of[asset];
            let panels: Vec<Panel> = sensors
                .iter()
                .take(MAX_SENSOR_PANELS)
                .map(|(sensor, flags)| Panel {
                    sensor,
                    points: data.means.get(*sensor).unwrap_or(&empty),
                    flags,
                })
                .collect();
            let chart = AssetChart {
                lanes,
                panels,
                flags,
                window_us: data.window_us,
            };
            articles.push(article(
                id,
                asset,
                data.twins.get(asset).copied(),
                &chart,
                sensors.len(),
            )?);
        }
        let uncharted: Vec<&str> = self
            .flagged
            .iter()
            .skip(MAX_CHARTED_ASSETS)
            .map(|(a, _)| *a)
            .collect();
        Ok(html! {
            section #charts {
                @if self.charted.is_empty() {
                    h2 { "Charts" }
                    p.note { "No flags and no assets to chart." }
                } @else if self.flagged.is_empty() {
                    h2 { "Charts" }
                    p.note { "Step D flagged no window in this run; showing the first " (self.charted.len()) " assets." }
                } @else {
                    h2 { "Flagged assets" }
                    p.note {
                        (group(self.flags as u64)) " flags of step D on " (group(self.flagged.len() as u64))
                        " assets, the most flagged first. Red bands mark flagged windows; lines break where windows are missing."
                    }
                }
                @for article in articles { (article) }
                @if !uncharted.is_empty() {
                    p.note { (uncharted.len()) " more flagged assets, not charted: " (uncharted.join(", ")) }
                }
            }
        })
    }
}

/// A swatch of a legend.
pub(crate) fn swatch(colour: RGBColor, band: bool) -> Markup {
    let style = if band {
        format!("background:{};opacity:.35", css(colour))
    } else {
        format!("background:{}", css(colour))
    };
    html! { span.swatch style=(style) {} }
}

/// One charted asset: a heading, a legend, its chart and its flags.
fn article(
    id: usize,
    asset: &str,
    twin: Option<&TwinRow>,
    chart: &AssetChart,
    flagged_sensors: usize,
) -> Result<Markup> {
    let svg = chart.svg()?;
    let mut windows: Vec<i64> = chart.flags.iter().map(|f| f.window_start_us).collect();
    windows.dedup();
    let clock_step = chart.window_us.min(SECOND_US);
    Ok(html! {
        article.chart {
            h3 id={ "chart-" (id) } {
                (asset) " "
                @if let Some(twin) = twin {
                    span.note { (twin.line) " / " (twin.site) } " " (badge(&twin.health))
                }
                @if !chart.flags.is_empty() {
                    " " span.note { (chart.flags.len()) " flags on " (flagged_sensors) " sensors" }
                }
            }
            p.legend {
                @for lane in &chart.lanes { (swatch(lane.colour, false)) (lane.label) " " }
                (swatch(FLAG_RED, true)) "flagged window (" (windows.len()) ")"
                span.note { " · time (UTC) from " (datetime(chart.span().0)) }
            }
            (PreEscaped(svg))
            @if flagged_sensors > chart.panels.len() {
                p.note { (flagged_sensors - chart.panels.len()) " more flagged sensors not drawn." }
            }
            @if !chart.flags.is_empty() {
                details {
                    summary { (chart.flags.len()) " flags" }
                    table {
                        thead { tr { th { "window" } th { "sensor" } th { "detector" } th { "mean" } th { "score" } } }
                        tbody {
                            @for flag in chart.flags.iter().take(MAX_LISTED_FLAGS) {
                                tr {
                                    td { (clock(flag.window_start_us, clock_step)) }
                                    td { (flag.sensor) }
                                    td { (flag.detector) }
                                    td.n { (number(flag.value)) }
                                    td.n { (format!("{:.1}", flag.score)) }
                                }
                            }
                        }
                    }
                    @if chart.flags.len() > MAX_LISTED_FLAGS {
                        p.note { "and " (chart.flags.len() - MAX_LISTED_FLAGS) " more" }
                    }
                }
            }
        }
    })
}
