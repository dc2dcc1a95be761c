//! `report::write_report` over a real replay: a 20-asset, 60-second TwinBench
//! log replayed, then the page checked from its text.

use std::collections::BTreeSet;
use std::path::Path;

use arrow::array::{Array, AsArray};
use twinflow::pipelines::dataset::read_dataset;
use twinflow::pipelines::replay::{ReplayOptions, replay};
use twinflow::pipelines::report::write_report;
use twinflow::pipelines::twinbench::{GenerateOptions, generate};

/// Seed of the log: it flags a few assets (checked below).
const SEED: u64 = 1;
/// A page this small plant may not outgrow.
const MAX_PAGE_BYTES: usize = 2 << 20;

/// The distinct values of a string column of a dataset.
fn names(dir: &Path, column: &str) -> BTreeSet<String> {
    flag_names(dir, column, |_| true)
}

/// The distinct values of a string column of the rows whose `detector`
/// (none before issue 17) `keep` accepts.
fn flag_names(dir: &Path, column: &str, keep: impl Fn(Option<&str>) -> bool) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for batch in read_dataset(dir).unwrap() {
        let array = batch.column_by_name(column).unwrap().as_string::<i32>();
        let detector = batch
            .column_by_name("detector")
            .map(|d| arrow::compute::cast(d, &arrow::datatypes::DataType::Utf8).unwrap());
        let detector = detector.as_ref().map(|d| d.as_string::<i32>());
        for i in 0..batch.num_rows() {
            if keep(detector.map(|d| d.value(i))) && array.is_valid(i) {
                names.insert(array.value(i).to_owned());
            }
        }
    }
    names
}

/// Step D's flags, not fusion's sensor suspects.
fn anomaly(detector: Option<&str>) -> bool {
    detector != Some("sensor_suspect")
}

/// How plotters writes a flagged window's band and a flagged mean's dot.
const BAND: &str = "opacity=\"0.2\" fill=\"#D62728\"";
const DOT: &str = "<circle";
const RED: &str = "fill=\"#D62728\"";

#[test]
fn report_of_a_twinbench_replay() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let out = dir.path().join("out");
    generate(&GenerateOptions {
        assets: 20,
        seconds: 60,
        seed: SEED,
        out: log.clone(),
        csv: false,
        progress: false,
    })
    .unwrap();
    replay(&ReplayOptions::new(log.join("events.parquet"), &out)).unwrap();

    let path = write_report(&out).unwrap();
    assert_eq!(path, out.join("report.html"));
    let page = std::fs::read_to_string(&path).unwrap();
    assert!(page.len() < MAX_PAGE_BYTES, "{} bytes", page.len());

    // Well-formed enough: one document, balanced charts and tables, no script.
    assert!(page.starts_with("<!DOCTYPE html>\n<html"));
    assert!(page.trim_end().ends_with("</html>"));
    for tag in ["svg", "table", "section", "article"] {
        assert_eq!(
            page.matches(&format!("<{tag}")).count(),
            page.matches(&format!("</{tag}>")).count(),
            "<{tag}> unbalanced"
        );
    }
    // Self-contained: no script, nothing fetched.
    for fetch in ["<script", "<link", "<img", "src=", "url("] {
        assert!(!page.contains(fetch), "{fetch}");
    }

    // The summary's figures.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    for key in ["events_in", "windows", "aligned_rows"] {
        let n = summary[key].as_u64().unwrap();
        let grouped = n
            .to_string()
            .as_bytes()
            .rchunks(3)
            .rev()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(",");
        assert!(
            page.contains(&format!("<dd>{grouped}</dd>")),
            "{key} {grouped}"
        );
    }

    // Every asset of the final view is in the table, every line in the rollups.
    let (tables, charts) = page.split_at(page.find("<section id=\"charts\"").unwrap());
    let assets = names(&out.join("twins/assets"), "asset");
    assert_eq!(assets.len(), 20);
    for asset in &assets {
        assert!(
            tables.contains(&format!("<tr><td>{asset}</td>"))
                || tables.contains(&format!("\">{asset}</a></td>")),
            "{asset} not in the twin table"
        );
    }
    for line in names(&out.join("twins/lines"), "line") {
        assert!(
            tables.contains(&format!("<tr><td>{line}</td>")),
            "line {line}"
        );
    }

    // One chart per asset step D flagged, each named in its heading and
    // linked from the table; the flagged sensors have panels.
    let flagged = flag_names(&out.join("flags"), "asset", anomaly);
    assert!(!flagged.is_empty(), "seed {SEED} should flag some assets");
    assert_eq!(charts.matches("<svg").count(), flagged.len());
    for asset in &flagged {
        let heading = charts.split("<h3 id=\"chart-").skip(1).find(|h| {
            h.split_once('>')
                .is_some_and(|(_, rest)| rest.starts_with(&format!("{asset} ")))
        });
        assert!(heading.is_some(), "no chart of {asset}");
        assert!(
            tables.contains(&format!("\">{asset}</a></td>")),
            "{asset} not linked"
        );
    }
    for sensor in flag_names(&out.join("flags"), "sensor", anomaly) {
        assert!(
            charts.contains(&format!(">\n{sensor} (")),
            "no panel of {sensor}"
        );
    }
    assert!(charts.contains(BAND));
    assert!(
        charts
            .split(DOT)
            .skip(1)
            .any(|c| c.split("/>").next().unwrap().contains(RED))
    );

    // Each sensor suspect (up to 30) has its chart.
    let suspects = flag_names(&out.join("flags"), "sensor", |d| !anomaly(d));
    let section = &tables[tables.find("<section id=\"suspects\"").unwrap()..];
    assert_eq!(section.matches("<svg").count(), suspects.len().min(30));
    for sensor in suspects.iter().take(30) {
        assert!(
            section.contains(&format!("<strong>{sensor}</strong>: ")),
            "{sensor}"
        );
    }

    // The twin view shows every redundant sensor's trust.
    let trust_columns = read_dataset(&out.join("twins/assets")).unwrap()[0]
        .schema()
        .fields()
        .iter()
        .filter(|f| f.name().ends_with("_trust"))
        .count();
    assert!(trust_columns > 0);
    let twins = &tables[tables.find("<section id=\"twins\"").unwrap()..];
    let twins = &twins[..twins.find("</section>").unwrap()];
    assert_eq!(
        twins.matches("<span class=\"trust s-").count(),
        trust_columns * assets.len()
    );
    // No eval.json, no evaluation.
    assert!(!page.contains("id=\"eval\""));

    // A second report replaces the first.
    assert_eq!(write_report(&out).unwrap(), path);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), page);
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("report") && n != "report.html")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
