//! The page of replay outputs written by hand: a small plant of another kind
//! (pumps), with and without flags, a sensor suspect and an evaluation.

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;

use super::chart::{BAND_OPACITY, FLAG_RED, PALETTE, css};
use super::data::read_sensor_quantities;
use super::flagged::FALLBACK_ASSETS;
use super::format::SECOND_US;
use super::write_report;
use crate::columns::Columns;

const START: i64 = 1_767_225_600_000_000;
const WINDOW: i64 = 5 * SECOND_US;
const WINDOWS: i64 = 40;
const ASSETS: [&str; 4] = ["pump<1>", "pump&2", "pump-3", "pump-4"];
/// The suspect: the second head sensor of pump-3, from window 25 on.
const SUSPECT_ASSET: usize = 2;
const SUSPECT_WINDOW: i64 = 28;
const DRIFT_FROM: i64 = 25;

fn write(dir: &Path, batch: RecordBatch) {
    std::fs::create_dir_all(dir).unwrap();
    let file = std::fs::File::create(dir.join("part-00000.parquet")).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// A colour as plotters writes it into SVG.
fn svg_colour(colour: plotters::style::RGBColor) -> String {
    css(colour).to_uppercase()
}

/// The text from `start` to the first `end` after it.
fn between<'a>(page: &'a str, start: &str, end: &str) -> &'a str {
    let from = page.find(start).unwrap_or_else(|| panic!("no {start}"));
    let rest = &page[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

/// A row of flags/: asset and sensor (indices), window, detector, reason,
/// value, score, evidence.
type HandFlag<'a> = (
    usize,
    usize,
    i64,
    &'a str,
    &'a str,
    f64,
    f64,
    Option<&'a str>,
);

/// The head of an asset in a window.
fn wave(a: usize, w: i64) -> f64 {
    10.0 + a as f64 + (w as f64 / 4.0).sin()
}

/// The names of the head sensors of an asset: the second has `<&>` in it.
fn head_sensors(asset: &str) -> [String; 2] {
    [format!("{asset}/head-1"), format!("{asset}/head<&>2")]
}

/// 4 pumps on one line, 40 windows of 5 s, `head` fused from two sensors;
/// with `flags`, the second pump's speed is flagged twice by step D, and
/// pump-3's second head sensor drifts 5 m up from window 25, loses trust and
/// is named a suspect at window 28.
fn station(name: &str, flags: bool) -> PathBuf {
    let out = std::env::temp_dir().join(format!("twinflow-report-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let n = ASSETS.len();
    let suspect_trust = |w: i64| {
        if w < DRIFT_FROM {
            1.0
        } else {
            (1.0 - 0.3 * (w - DRIFT_FROM + 1) as f64).max(0.1)
        }
    };
    let state = |trust: f64| match trust {
        t if t >= 0.8 => "trusted",
        t if t > 0.2 => "down_weighted",
        _ => "excluded",
    };
    let drifting = |a: usize, w: i64| flags && a == SUSPECT_ASSET && w >= DRIFT_FROM;
    let last_trust = suspect_trust(WINDOWS - 1);
    write(
        &out.join("twins/assets"),
        Columns::new()
            .utf8("asset", ASSETS.into_iter())
            .utf8("line", ["line <a>"; 4].into_iter())
            .utf8("site", ["site 1"; 4].into_iter())
            .i64(
                "window_start_us",
                (0..n).map(|_| START + (WINDOWS - 1) * WINDOW),
            )
            .u64("flags", (0..n).map(|i| if flags && i == 1 { 2 } else { 0 }))
            .utf8("health", ["ok", "alarm", "stale", "degraded"].into_iter())
            .f64_opt("speed", [Some(1.0), Some(2.0), None, Some(4.0)].into_iter())
            .utf8(
                "speed_source",
                ["measured", "measured", "missing", "carried"].into_iter(),
            )
            .f64_opt("fused_head", (0..n).map(|i| Some(10.0 + i as f64)))
            .f64_opt("fused_head_variance", (0..n).map(|_| Some(0.25)))
            .f64_opt("head-1_trust", (0..n).map(|_| Some(1.0)))
            .f64_opt(
                "head-1_weight",
                (0..n).map(|a| Some(if drifting(a, WINDOWS - 1) { 1.0 } else { 0.5 })),
            )
            .utf8_opt("head-1_state", (0..n).map(|_| Some("trusted")))
            .f64_opt(
                "head<&>2_trust",
                (0..n).map(|a| {
                    Some(if drifting(a, WINDOWS - 1) {
                        last_trust
                    } else {
                        1.0
                    })
                }),
            )
            .f64_opt(
                "head<&>2_weight",
                (0..n).map(|a| Some(if drifting(a, WINDOWS - 1) { 0.0 } else { 0.5 })),
            )
            .utf8_opt(
                "head<&>2_state",
                (0..n).map(|a| {
                    Some(if drifting(a, WINDOWS - 1) {
                        state(last_trust)
                    } else {
                        "trusted"
                    })
                }),
            )
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
            .i64(
                "newest_window_start_us",
                [START + (WINDOWS - 1) * WINDOW].into_iter(),
            )
            .finish(),
    );
    // pump&2 misses every 10th window.
    let rows: Vec<(usize, i64)> = (0..n)
        .flat_map(|a| {
            (0..WINDOWS)
                .filter(move |w| a != 1 || *w % 10 != 3)
                .map(move |w| (a, w))
        })
        .collect();
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
            .f64("lo95", rows.iter().map(|(a, w)| wave(*a, *w) - 0.98))
            .f64("hi95", rows.iter().map(|(a, w)| wave(*a, *w) + 0.98))
            .u32("sensors", rows.iter().map(|_| 2))
            .finish(),
    );
    // A speed sensor and two head sensors per pump.
    let sensors: Vec<[String; 3]> = ASSETS
        .iter()
        .map(|a| {
            let [h1, h2] = head_sensors(a);
            [format!("{a}/speed"), h1, h2]
        })
        .collect();
    let windows: Vec<(usize, i64, usize, f64)> = rows
        .iter()
        .flat_map(|&(a, w)| {
            let head2 = wave(a, w) + if drifting(a, w) { 5.0 } else { 0.1 };
            [
                (a, w, 0, wave(a, w) / 10.0),
                (a, w, 1, wave(a, w) - 0.1),
                (a, w, 2, head2),
            ]
        })
        .collect();
    write(
        &out.join("windows"),
        Columns::new()
            .utf8(
                "sensor",
                windows.iter().map(|(a, _, s, _)| sensors[*a][*s].as_str()),
            )
            .utf8("asset", windows.iter().map(|(a, ..)| ASSETS[*a]))
            .i64(
                "window_start_us",
                windows.iter().map(|(_, w, ..)| START + w * WINDOW),
            )
            .i64(
                "window_end_us",
                windows.iter().map(|(_, w, ..)| START + (w + 1) * WINDOW),
            )
            .f64("mean", windows.iter().map(|(.., v)| *v))
            .finish(),
    );
    let trust: Vec<(usize, i64, usize, f64)> = rows
        .iter()
        .flat_map(|&(a, w)| {
            let second = if drifting(a, w) {
                suspect_trust(w)
            } else {
                1.0
            };
            [(a, w, 1, 1.0), (a, w, 2, second)]
        })
        .collect();
    write(
        &out.join("trust"),
        Columns::new()
            .utf8("asset", trust.iter().map(|(a, ..)| ASSETS[*a]))
            .utf8(
                "sensor",
                trust.iter().map(|(a, _, s, _)| sensors[*a][*s].as_str()),
            )
            .i64(
                "window_start_us",
                trust.iter().map(|(_, w, ..)| START + w * WINDOW),
            )
            .f64("trust", trust.iter().map(|(.., t)| *t))
            .f64("weight", trust.iter().map(|(.., t)| t / 2.0))
            .utf8("state", trust.iter().map(|(.., t)| state(*t)))
            .f64_opt("residual", trust.iter().map(|_| Some(0.5)))
            .finish(),
    );
    // Step D's two flags on pump&2's speed, and the suspect.
    let mut flagged: Vec<HandFlag> = Vec::new();
    if flags {
        for w in [20, 30] {
            flagged.push((1, 0, w, "ewma_z", "outlier", wave(1, w) / 10.0, 7.5, None));
        }
        let (a, w) = (SUSPECT_ASSET, SUSPECT_WINDOW);
        let evidence = Some("residual > 4 σ in 3 of 4 windows <b>");
        flagged.push((
            a,
            2,
            w,
            "sensor_suspect",
            "deviating",
            wave(a, w) + 5.0,
            9.25,
            evidence,
        ));
    }
    write(
        &out.join("flags"),
        Columns::new()
            .utf8("asset", flagged.iter().map(|f| ASSETS[f.0]))
            .utf8("sensor", flagged.iter().map(|f| sensors[f.0][f.1].as_str()))
            .i64(
                "window_start_us",
                flagged.iter().map(|f| START + f.2 * WINDOW),
            )
            .utf8("detector", flagged.iter().map(|f| f.3))
            .utf8("reason", flagged.iter().map(|f| f.4))
            .f64("value", flagged.iter().map(|f| f.5))
            .f64("score", flagged.iter().map(|f| f.6))
            .utf8_opt("evidence", flagged.iter().map(|f| f.7))
            .finish(),
    );
    std::fs::write(
        out.join("summary.json"),
        r#"{"pipeline": "pump-station 1.0", "events_in": 12345, "late_events": 0,
            "windows": 160, "aligned_rows": 160, "flags": 2, "suspects": 1, "assets_in_view": 4,
            "events_per_s": 1234567.0}"#,
    )
    .unwrap();
    out
}

#[test]
fn without_flags_the_first_assets_are_charted() {
    let out = station("unflagged", false);
    let page = std::fs::read_to_string(write_report(&out).unwrap()).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>\n<html"));
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
    assert!(page.contains("Step D flagged no window"));
    assert!(page.contains("flagged window (0)"));
    assert!(page.contains("Fusion named no sensor suspect"));
    assert!(!page.contains("flagged)\n</text>"), "no sensor panels");
    // The first in name order, pump&2, misses every 10th window of 40: its
    // line is broken into 5 there.
    let chart = between(&page, "id=\"chart-0\">pump&amp;2", "</svg>");
    let lane = format!("stroke=\"{}\"", svg_colour(PALETTE[0]));
    assert_eq!(
        chart
            .split("<polyline")
            .filter(|p| p.contains(&lane))
            .count(),
        5,
        "{chart}"
    );
    // No flags: no bands.
    assert!(!page.contains(&format!(
        "opacity=\"{BAND_OPACITY}\" fill=\"{}\"",
        svg_colour(FLAG_RED)
    )));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn flagged_assets_are_charted_with_their_sensors() {
    let out = station("flagged", true);
    let page = std::fs::read_to_string(write_report(&out).unwrap()).unwrap();
    let charts = between(&page, "<section id=\"charts\"", "</section>");
    assert_eq!(
        charts.matches("<svg").count(),
        1,
        "step D flagged one asset"
    );
    assert!(charts.contains("<h3 id=\"chart-0\">pump&amp;2 "));
    assert!(charts.contains(">\npump&amp;2/speed (2 flagged)\n</text>"));
    let red = svg_colour(FLAG_RED);
    let dots = charts
        .split("<circle")
        .skip(1)
        .filter(|c| c.contains(&format!("fill=\"{red}\"")));
    assert_eq!(dots.count(), 2);
    // Two bands on the lane, two on the sensor's panel.
    let band = format!("opacity=\"{BAND_OPACITY}\" fill=\"{red}\"");
    assert_eq!(charts.matches(&band).count(), 2 + 2);
    assert!(charts.contains("flagged window (2)"));
    // The suspect is no step D flag: not in the flags table of the charts.
    assert!(!charts.contains("sensor_suspect"));
    assert!(page.contains("<a href=\"#chart-0\">pump&amp;2</a>"));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_suspect_is_drawn_against_the_other_sensors_of_its_quantity() {
    let out = station("suspect", true);
    let page = std::fs::read_to_string(write_report(&out).unwrap()).unwrap();
    assert!(!page.contains("head<&>2"), "unescaped sensor name");
    let section = between(&page, "<section id=\"suspects\"", "</section>");
    assert_eq!(section.matches("<svg").count(), 1);
    assert!(section.contains("<h3>pump-3/head&lt;&amp;&gt;2 "));
    assert!(section.contains(
        "<figcaption><strong>pump-3/head&lt;&amp;&gt;2</strong>: deviating (score 9.250"
    ));
    assert!(section.contains(". residual &gt; 4 σ in 3 of 4 windows &lt;b&gt;</figcaption>"));
    // Both head sensors in the legend, the suspect excluded by the flag's window.
    assert!(
        section
            .contains("pump-3/head&lt;&amp;&gt;2 <span class=\"trust s-excluded\">excluded</span>")
    );
    assert!(section.contains("pump-3/head-1 <span class=\"trust s-trusted\">trusted</span>"));
    assert!(
        !section.contains("pump-3/speed"),
        "speed is another quantity"
    );
    // From 60 s before window 28 (window 16) to the last, window 39: each
    // sensor's means and trust are lines of 24 points, the suspect's red,
    // the other's the second colour; the fused value has its 95 % band.
    let svg = between(section, "<svg", "</svg>");
    let lines = |colour: &str| -> Vec<usize> {
        svg.split("<polyline")
            .skip(1)
            .filter(|p| p.contains(&format!("stroke=\"{colour}\"")))
            .map(|p| {
                let points = between(p, "points=\"", "/>");
                points
                    .split_whitespace()
                    .filter(|p| p.contains(','))
                    .count()
            })
            .collect()
    };
    assert_eq!(lines(&svg_colour(FLAG_RED)), [24, 24]);
    assert_eq!(lines(&svg_colour(PALETTE[1])), [24, 24]);
    assert_eq!(lines(&svg_colour(PALETTE[0])), [24], "the fused value");
    let band = between(svg, "<polygon", "/>");
    assert!(band.contains(&format!("fill=\"{}\"", svg_colour(PALETTE[0]))));
    assert_eq!(
        band.split_whitespace().filter(|p| p.contains(',')).count(),
        2 * 24
    );
    // The flagged window, in the values' panel and the trust panel.
    let band = format!(
        "opacity=\"{BAND_OPACITY}\" fill=\"{}\"",
        svg_colour(FLAG_RED)
    );
    assert_eq!(svg.matches(&band).count(), 2);
    assert!(svg.contains(">\ntrust (0–1)\n</text>"));

    // The twin view shows each redundant sensor's trust, weight and state.
    let twins = between(&page, "<section id=\"twins\"", "</section>");
    assert!(twins.contains("<th>sensor trust</th>"));
    assert!(twins.contains(
        "<span class=\"trust s-excluded\">head&lt;&amp;&gt;2 0.10 · w 0.00 · excluded</span>"
    ));
    assert!(twins.contains("<span class=\"trust s-trusted\">head-1 1.00 · w 0.50</span>"));
    assert!(
        !page.contains("id=\"eval\""),
        "no eval.json, no eval section"
    );
    assert!(!page.contains("href=\"#eval\""));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn eval_json_is_shown_as_tables() {
    let out = station("eval", false);
    std::fs::write(
        out.join("eval.json"),
        r#"{"rmse": [
              {"quantity": "head", "condition": "clean", "windows": 1200,
               "fused": {"kalman": 0.0412, "inverse-variance": 0.0523},
               "best_sensor": {"sensor": "pump<1>/head-1", "rmse": 0.0641},
               "ratio_to_clean": {"kalman": 1.0, "inverse-variance": 1.0}},
              {"quantity": "head", "condition": "bias", "windows": 80,
               "fused": {"kalman": 0.0533},
               "best_sensor": {"sensor": "pump-3/head-1", "rmse": 0.07}}],
            "coverage": [{"quantity": "head", "condition": "clean", "coverage": 0.951}],
            "detection": [{"kind": "bias", "incidents": 4, "detected": 3, "share": 0.75,
                           "median_delay_s": 12.5}],
            "false_suspects": {"count": 2, "per_asset_hour": 0.0333}}"#,
    )
    .unwrap();
    let page = std::fs::read_to_string(write_report(&out).unwrap()).unwrap();
    assert!(page.contains("href=\"#eval\""));
    let eval = between(&page, "<section id=\"eval\"", "</section>");
    let rmse = between(eval, "<table", "</table>");
    let head = "<tr><th>quantity</th><th>condition</th><th>windows</th>\
                <th>fused inverse-variance</th><th>fused kalman</th><th>best sensor sensor</th>\
                <th>best sensor rmse</th><th>ratio to clean inverse-variance</th>\
                <th>ratio to clean kalman</th></tr>";
    assert!(rmse.contains(head), "{rmse}");
    assert!(rmse.contains(
        "<tr><td>head</td><td>clean</td><td class=\"n\">1,200</td><td class=\"n\">0.05230</td>\
         <td class=\"n\">0.04120</td><td>pump&lt;1&gt;/head-1</td><td class=\"n\">0.06410</td>\
         <td class=\"n\">1.000</td><td class=\"n\">1.000</td></tr>"
    ));
    // Keys a record lacks are blanks.
    assert!(rmse.contains(
        "<td class=\"n\">80</td><td class=\"muted\">–</td><td class=\"n\">0.05330</td>\
         <td>pump-3/head-1</td>"
    ));
    assert_eq!(eval.matches("<table").count(), 3);
    assert!(
        eval.contains("<th>median delay s</th>") && eval.contains("<td class=\"n\">12.50</td>")
    );
    assert!(eval.contains("<dt>per asset hour</dt><dd>0.03330</dd>"));

    // One cut short (being written) is said on the page; the rest stands.
    std::fs::write(out.join("eval.json"), r#"{"rmse": [{"quantity": "he"#).unwrap();
    let page = std::fs::read_to_string(write_report(&out).unwrap()).unwrap();
    let eval = between(&page, "<section id=\"eval\"", "</section>");
    assert!(eval.contains("eval.json could not be read: "), "{eval}");
    assert!(!eval.contains("<table"));
    assert!(page.contains("<section id=\"charts\""));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn model_nll_figures_of_eval_json_are_shown() {
    let out = station("eval-nll", false);
    std::fs::write(
        out.join("eval.json"),
        r#"{"detection": [],
            "model_nll": {"alarms": 12,
              "detection": [{"kind": "bias", "channels": "non_redundant", "incidents": 4,
                             "detected": 3, "share": 0.75, "named": 2, "named_share": 0.5,
                             "median_delay_s": 4.5, "never_exceeded_3_sigma": 0},
                            {"kind": "bearing_fault", "channels": "asset", "incidents": 1,
                             "detected": 1, "share": 1.0, "named": null}],
              "false_alarms": {"count": 2, "per_asset_hour": 0.125,
                               "during_quarantined_attacks": 1},
              "target": {"channel": "current", "kinds": ["bias", "false_data"],
                         "met": false}}}"#,
    )
    .unwrap();
    let page = std::fs::read_to_string(write_report(&out).unwrap()).unwrap();
    let eval = between(&page, "<section id=\"eval\"", "</section>");
    assert!(eval.contains("<h3>model_nll alarms within 60 s of incidents</h3>"));
    let alarms = between(eval, "<h3>model_nll alarms", "</table>");
    assert!(
        alarms.contains(
            "<tr><th>kind</th><th>channels</th><th>incidents</th><th>detected</th>\
             <th>share</th><th>named</th><th>named share</th><th>median delay s</th>"
        ),
        "{alarms}"
    );
    assert!(alarms.contains(
        "<tr><td>bias</td><td>non_redundant</td><td class=\"n\">4</td><td class=\"n\">3</td>\
         <td class=\"n\">0.7500</td><td class=\"n\">2</td><td class=\"n\">0.5000</td>\
         <td class=\"n\">4.500</td>"
    ));
    assert!(eval.contains("<dt>during quarantined attacks</dt><dd>1</dd>"));
    assert!(eval.contains("<dt>kinds</dt><dd>bias, false_data</dd>"));
    assert!(eval.contains("<dt>met</dt><dd>false</dd>"));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn the_catalog_beside_the_log_names_each_sensors_quantity() {
    let dir = std::env::temp_dir().join(format!("twinflow-report-{}-catalog", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("sensors.csv"),
        "sensor,asset,channel,kind,quantity\np/in,p,in,pressure,inlet_pressure\np/t,p,t,temperature,\n",
    )
    .unwrap();
    let summary = serde_json::json!({"sources": [{"path": dir.join("events.parquet")}]});
    let quantities = read_sensor_quantities(Some(&summary));
    assert_eq!(quantities.len(), 2);
    assert_eq!(quantities["p/in"], "inlet_pressure");
    assert_eq!(quantities["p/t"], "temperature");
    assert!(read_sensor_quantities(Some(&serde_json::json!({}))).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_directory_without_results_is_refused() {
    let out = std::env::temp_dir().join(format!("twinflow-report-{}-empty", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    assert!(write_report(&out).is_err());
    assert!(write_report(&out.join("missing")).is_err());
    std::fs::remove_dir_all(&out).unwrap();
}
