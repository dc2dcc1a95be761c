//! The "Suspect sensors" section: for each `sensor_suspect` flag, the fused
//! value of the suspect's quantity with its 95 % band against each sensor of
//! that quantity around the flag, their trust underneath, and the flag's
//! reason and evidence as the caption.

use std::collections::{BTreeMap, HashMap};

use maud::{Markup, PreEscaped, html};
use twinflow_engine::error::Result;

use super::chart::{FLAG_RED, PALETTE, SensorLine, SuspectChart};
use super::data::{Flag, FusedPoint, Points, TrustPoint};
use super::flagged::swatch;
use super::format::{SECOND_US, clock, datetime, group, number};
use super::tables::state_class;

/// At most this many suspects are drawn, the strongest first.
const MAX_SUSPECTS: usize = 30;
/// The span drawn around a suspect's window.
const BEFORE_US: i64 = 60 * SECOND_US;
const AFTER_US: i64 = 120 * SECOND_US;

/// The suspects to draw (strongest evidence first, then the most recent) and
/// how many more there are.
pub(crate) fn choose(flags: &[Flag]) -> (Vec<&Flag>, usize) {
    let mut suspects: Vec<&Flag> = flags.iter().filter(|f| f.is_suspect()).collect();
    // NaN scores last.
    let score = |f: &Flag| {
        if f.score.is_nan() {
            f64::NEG_INFINITY
        } else {
            f.score
        }
    };
    suspects.sort_by(|a, b| {
        score(b)
            .total_cmp(&score(a))
            .then(b.window_start_us.cmp(&a.window_start_us))
            .then(a.sensor.cmp(&b.sensor))
    });
    let more = suspects.len().saturating_sub(MAX_SUSPECTS);
    suspects.truncate(MAX_SUSPECTS);
    (suspects, more)
}

/// What the suspects' charts are drawn from.
pub(crate) struct SuspectData<'a> {
    pub fused: &'a HashMap<String, BTreeMap<String, Vec<FusedPoint>>>,
    /// Window means of every sensor of the suspects' assets.
    pub means: &'a HashMap<String, Points>,
    pub trust: &'a HashMap<String, BTreeMap<String, Vec<TrustPoint>>>,
    /// The catalog's quantity of each sensor (empty when it is not at hand).
    pub quantities: &'a HashMap<String, String>,
    pub window_us: i64,
}

pub(crate) fn section(shown: &[&Flag], more: usize, data: &SuspectData) -> Result<Markup> {
    let mut figures = Vec::with_capacity(shown.len());
    for suspect in shown {
        figures.push(figure(suspect, data)?);
    }
    Ok(html! {
        section #suspects {
            h2 { "Suspect sensors" }
            @if shown.is_empty() {
                p.note { "Fusion named no sensor suspect in this run." }
            } @else {
                p.note {
                    "Sensors fusion named suspect (sensor_suspect flags: "
                    (group((shown.len() + more) as u64)) "), the strongest evidence first, each from "
                    (BEFORE_US / SECOND_US) " s before its flagged window to " (AFTER_US / SECOND_US)
                    " s after, against the other sensors of the same quantity."
                    @if more > 0 { " " (group(more as u64)) " more are not drawn." }
                }
                @for figure in figures { (figure) }
            }
        }
    })
}

/// The quantity `sensor` measures: the catalog's, else the fused quantity of
/// the asset its window means before `until` follow most closely.
fn quantity_of<'a>(
    sensor: &str,
    fused: &'a BTreeMap<String, Vec<FusedPoint>>,
    data: &SuspectData,
    (from, until): (i64, i64),
) -> Option<&'a str> {
    if let Some(q) = data.quantities.get(sensor)
        && let Some((q, _)) = fused.get_key_value(q)
    {
        return Some(q);
    }
    let means = data.means.get(sensor)?;
    let before: Vec<&(i64, f64)> = means
        .iter()
        .filter(|p| p.0 >= from && p.0 < until)
        .collect();
    let compared: Vec<&(i64, f64)> = if before.is_empty() {
        means.iter().collect()
    } else {
        before
    };
    fused
        .iter()
        .filter_map(|(q, points)| {
            let mut gaps: Vec<f64> = compared
                .iter()
                .filter_map(|(t, v)| {
                    let i = points.binary_search_by_key(t, |p| p.t).ok()?;
                    Some((v - points[i].value).abs())
                })
                .collect();
            if gaps.is_empty() {
                return None;
            }
            gaps.sort_by(f64::total_cmp);
            Some((q.as_str(), gaps[gaps.len() / 2]))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(q, _)| q)
}

fn figure(suspect: &Flag, data: &SuspectData) -> Result<Markup> {
    let t = suspect.window_start_us;
    let no_fused = BTreeMap::new();
    let fused = data.fused.get(&suspect.asset).unwrap_or(&no_fused);
    // Around the flag, but not past the asset's first or last fused window.
    let (first, last) = fused
        .values()
        .flat_map(|points| points.first().zip(points.last()))
        .fold((t, t), |(a, b), (f, l)| (a.min(f.t), b.max(l.t)));
    let span = (
        (t - BEFORE_US).max(first),
        (t + data.window_us + AFTER_US).min(last + data.window_us),
    );
    let inside = |p: i64| p + data.window_us > span.0 && p < span.1;
    let no_trust = BTreeMap::new();
    let trust = data.trust.get(&suspect.asset).unwrap_or(&no_trust);
    let quantity = quantity_of(&suspect.sensor, fused, data, (span.0, t));

    // The suspect first, then the other redundant sensors of its quantity.
    let mut sensors: Vec<&str> = vec![&suspect.sensor];
    sensors.extend(trust.keys().map(String::as_str).filter(|s| {
        *s != suspect.sensor
            && quantity.is_some()
            && quantity_of(s, fused, data, (span.0, t)) == quantity
    }));
    let lines: Vec<SensorLine> = sensors
        .iter()
        .enumerate()
        .map(|(i, &sensor)| SensorLine {
            sensor,
            colour: if i == 0 {
                FLAG_RED
            } else {
                PALETTE[1 + (i - 1) % (PALETTE.len() - 1)]
            },
            means: data
                .means
                .get(sensor)
                .map(|m| m.iter().filter(|p| inside(p.0)).copied().collect())
                .unwrap_or_default(),
            trust: trust
                .get(sensor)
                .map(|ts| {
                    ts.iter()
                        .filter(|p| inside(p.t))
                        .map(|p| (p.t, p.trust))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    let state_at = |sensor: &str| -> Option<&str> {
        let points = trust.get(sensor)?;
        let i = points.partition_point(|p| p.t <= t).checked_sub(1)?;
        Some(points[i].state.as_str())
    };
    let chart = SuspectChart {
        quantity: quantity.unwrap_or("unknown quantity"),
        fused: quantity
            .and_then(|q| fused.get(q))
            .cloned()
            .unwrap_or_default(),
        sensors: lines,
        flagged_us: t,
        window_us: data.window_us,
        span,
    };
    let svg = chart.svg()?;
    Ok(html! {
        figure.chart.suspect {
            h3 { (suspect.sensor) " " span.note { "on " (suspect.asset) " · " (datetime(t)) " UTC" } }
            p.legend {
                (swatch(PALETTE[0], false)) "fused " (chart.quantity) " "
                (swatch(PALETTE[0], true)) "95 % interval "
                @for line in &chart.sensors {
                    (swatch(line.colour, false)) (line.sensor)
                    @if let Some(state) = state_at(line.sensor) {
                        " " span class={ "trust s-" (state_class(state)) } { (state) }
                    }
                    " "
                }
                (swatch(FLAG_RED, true)) "flagged window"
            }
            (PreEscaped(svg))
            figcaption {
                strong { (suspect.sensor) } ": " (suspect.reason)
                " (score " (number(suspect.score)) ", window mean " (number(suspect.value)) " at "
                (clock(t, data.window_us.min(SECOND_US))) ")"
                @if let Some(evidence) = &suspect.evidence { ". " (evidence) }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sensors_quantity_is_the_catalogs_else_the_closest_fused_one() {
        let series = |level: f64| -> Vec<FusedPoint> {
            (0..10)
                .map(|w| FusedPoint {
                    t: w * SECOND_US,
                    value: level + (w % 3) as f64 * 0.1,
                    lo95: None,
                    hi95: None,
                })
                .collect()
        };
        let fused: BTreeMap<String, Vec<FusedPoint>> = [
            ("head".to_owned(), series(12.0)),
            ("flow".to_owned(), series(3.0)),
        ]
        .into();
        // Close to flow until window 6, then drifting to head's level.
        let means: HashMap<String, Points> = [(
            "p/x".to_owned(),
            (0..10)
                .map(|w| (w * SECOND_US, if w < 6 { 3.05 } else { 12.0 }))
                .collect(),
        )]
        .into();
        let all = HashMap::new();
        let trust = HashMap::new();
        let mut data = SuspectData {
            fused: &all,
            means: &means,
            trust: &trust,
            quantities: &HashMap::new(),
            window_us: SECOND_US,
        };
        let before_drift = (0, 6 * SECOND_US);
        assert_eq!(
            quantity_of("p/x", &fused, &data, before_drift),
            Some("flow")
        );
        // Only the windows before the flag count, unless there are none.
        assert_eq!(
            quantity_of("p/x", &fused, &data, (6 * SECOND_US, 10 * SECOND_US)),
            Some("head")
        );
        assert_eq!(quantity_of("p/unknown", &fused, &data, before_drift), None);
        // The catalog's word wins, when it names a fused quantity.
        let catalog: HashMap<String, String> = [("p/x".to_owned(), "head".to_owned())].into();
        data.quantities = &catalog;
        assert_eq!(
            quantity_of("p/x", &fused, &data, before_drift),
            Some("head")
        );
        let catalog: HashMap<String, String> = [("p/x".to_owned(), "speed".to_owned())].into();
        data.quantities = &catalog;
        assert_eq!(
            quantity_of("p/x", &fused, &data, before_drift),
            Some("flow")
        );
    }
}
