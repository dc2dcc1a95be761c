//! What eval reports: `eval.json`'s schema and the table printed for people.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use twinflow_engine::error::{Error, Result};

/// File name of the evaluation inside the replay's output directory.
pub const EVAL_FILE: &str = "eval.json";

/// The condition of [`CoverageRow`]s over every window that is not clean.
pub const DURING_INCIDENTS: &str = "during_incidents";

/// `OUT/eval.json`: how well a replay's fused values and sensor suspects
/// match the generator's truth and labels. Maps keyed by method hold one
/// entry per name in `methods`; a figure without windows to compute it
/// from is `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The generator's output directory (truth, labels, catalog).
    pub log: PathBuf,
    /// The replay's output directory (windows/, fused/, flags/).
    pub out: PathBuf,
    /// Assets in the catalog × the log's duration in hours (from the truth):
    /// what false suspects are counted per.
    pub asset_hours: f64,
    /// The fusions scored: `replay` (the replay's `fused/`), and with
    /// `--compare inverse-variance` also `inverse_variance` (the replay's
    /// `windows/` fused by inverse-variance weighting).
    pub methods: Vec<String>,
    /// Rows of `fused/` that have no truth for their asset, quantity and
    /// second (none on a log the generator wrote); left out of every figure.
    pub fused_without_truth: u64,
    /// Per fused quantity and condition (`clean`, an incident kind, `other`;
    /// see the [`crate::eval`] module doc), `clean` first.
    pub rmse: Vec<RmseRow>,
    /// Per fused quantity and condition, plus `during_incidents` (every
    /// window not clean), `clean` first.
    pub coverage: Vec<CoverageRow>,
    /// Per incident kind on redundant sensors, in name order.
    pub detection: Vec<DetectionRow>,
    pub false_suspects: FalseSuspects,
    /// With a mask: imputation scored on its hidden cells (see
    /// [`crate::eval::imputation`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imputation: Option<Imputation>,
    /// With `model_nll` alarms in `flags/`: how they match the incidents
    /// (see [`crate::eval::model_nll`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_nll: Option<ModelNll>,
}

/// The `model_nll` detector's alarms against the labelled incidents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelNll {
    /// Its rows in `flags/`: one per alarm, at its onset.
    pub alarms: u64,
    /// Per incident kind, then channels (`non_redundant`, `redundant`,
    /// `asset`), in that order; forged, replayed and flooding left out.
    pub detection: Vec<AlarmRow>,
    pub false_alarms: FalseAlarms,
    /// The target, if the catalog has its channel.
    pub target: Option<AlarmTarget>,
}

/// How the alarms met the incidents of one kind on one class of channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmRow {
    pub kind: String,
    /// `non_redundant` (a sensor without a redundant twin), `redundant`, or
    /// `asset` (an asset-level incident).
    pub channels: String,
    /// The incidents counted (drifts that never strayed 3σ aside).
    pub incidents: u64,
    /// Those with an alarm on their asset in a window from the one holding
    /// their start to 60 s after their onset.
    pub detected: u64,
    /// `detected / incidents`.
    pub share: Option<f64>,
    /// Those with an alarm in that span naming their sensor (for a redundant
    /// one, any sensor of its quantity); `null` for asset-level incidents.
    pub named: Option<u64>,
    /// `named / incidents`.
    pub named_share: Option<f64>,
    /// Median of (first alarm's window start − onset), at least 0, over the
    /// detected incidents, in seconds.
    pub median_delay_s: Option<f64>,
    /// Drifts left out because their window means never strayed 3σ from the truth.
    pub never_exceeded_3_sigma: u64,
}

/// `model_nll` alarms that no incident of their asset explains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FalseAlarms {
    /// Alarms whose window meets no incident of their asset stretched from 5 s
    /// before its start to 60 s after its end (forged, replayed and flooding
    /// explain none).
    pub count: u64,
    /// `count / asset_hours`.
    pub per_asset_hour: Option<f64>,
    /// The false alarms that met a forged, replayed or flooding attack on their
    /// asset (which verification quarantines, so they do not explain them).
    pub during_quarantined_attacks: u64,
}

/// The target: incidents of `kinds` on `channel` alarmed within 60 s
/// in at least `min_share` of them, at no more than
/// `max_false_alarms_per_asset_hour`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmTarget {
    pub channel: String,
    pub kinds: Vec<String>,
    pub incidents: u64,
    pub detected: u64,
    pub share: Option<f64>,
    /// Those whose alarm also named the channel's sensor (not required).
    pub named: u64,
    pub named_share: Option<f64>,
    pub min_share: f64,
    pub false_alarms_per_asset_hour: Option<f64>,
    pub max_false_alarms_per_asset_hour: f64,
    /// Both met; `null` without such incidents (or without asset-hours).
    pub met: Option<bool>,
}

/// Imputation on a mask's hidden cells: per channel, and pooled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Imputation {
    /// The mask file.
    pub mask: PathBuf,
    /// Its hidden cells.
    pub cells: u64,
    /// Hidden cells without a truth, left out of every figure.
    pub without_truth: u64,
    /// Whether the replay wrote `imputed/` (without it, only fused values
    /// estimate hidden cells).
    pub imputed_dataset: bool,
    /// Per channel, in the sensor table's order of channels.
    pub channels: Vec<ImputationRow>,
    /// `all` (every hidden cell), then per [`crate::mask::BlockKind`]:
    /// `non_redundant` (channels without a redundant twin), `one_sensor`,
    /// `whole_quantity`. Errors are compared in nRMSE only: their RMSE and
    /// MAE mix units and are `null`.
    pub pooled: Vec<ImputationRow>,
}

/// How well each method estimates one set of hidden cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImputationRow {
    /// A channel (e.g. `current`), or a pool (`all`, a block kind).
    pub scope: String,
    /// Hidden cells with a truth.
    pub cells: u64,
    /// Those the replay estimated (in `imputed/`, or by `fused/`).
    pub imputed: u64,
    /// `imputed / cells`.
    pub imputed_share: Option<f64>,
    /// Estimated cells by where the estimate came from: the `model` of
    /// `imputed/`, or `fused/`.
    pub sources: BTreeMap<String, u64>,
    /// The replay's estimates, over the cells it estimated.
    pub estimate: ImputationErrors,
    /// The share of estimated cells whose truth lies in the estimate's 95 %
    /// interval (value ± 1.96 √variance; `fused/`'s lo95 and hi95).
    pub coverage95: Option<f64>,
    /// The sensor's last measured window before the cell.
    pub carry_forward: ImputationErrors,
    /// Linear in time between the sensor's last measured window before the
    /// cell and its first after it: sees the future.
    pub interpolation: ImputationErrors,
}

/// One method's errors (estimate − truth) over the cells it gave a value for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImputationErrors {
    pub cells: u64,
    pub rmse: Option<f64>,
    pub mae: Option<f64>,
    /// Root mean square of the errors divided by their channel's truth
    /// standard deviation over the whole log.
    pub nrmse: Option<f64>,
}

/// The error of the fused values of one quantity under one condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RmseRow {
    pub quantity: String,
    pub condition: String,
    /// Windows of `fused/` under this condition (with a truth).
    pub windows: u64,
    /// Per method: root mean square of (fused value − truth) over the windows.
    pub fused: BTreeMap<String, Option<f64>>,
    /// The sensor channel whose window means come closest to the truth over
    /// these windows (each sensor only where it measured and had no incident
    /// of its own); `null` when no sensor qualifies.
    pub best_sensor: Option<BestSensor>,
    /// Per method: this condition's fused RMSE over the clean one's.
    pub ratio_to_clean: BTreeMap<String, Option<f64>>,
}

/// The best single sensor of an [`RmseRow`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestSensor {
    /// Its channel, the sensor's name within each asset (e.g. `temp-1`).
    pub sensor: String,
    /// Root mean square of (window mean − truth).
    pub rmse: f64,
    /// The windows it measured among the row's.
    pub windows: u64,
}

/// How often the fused 95 % intervals hold the truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoverageRow {
    pub quantity: String,
    /// `clean`, `during_incidents`, an incident kind, or `other`.
    pub condition: String,
    pub windows: u64,
    /// Per method: the share of windows whose truth lies in [lo95, hi95].
    pub coverage: BTreeMap<String, Option<f64>>,
}

/// How fast the replay named the sensors under incident of one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionRow {
    pub kind: String,
    /// Incidents of this kind on redundant sensors that count: lasting at
    /// least 30 s (spikes: all), and for drift, exceeding 3σ.
    pub incidents: u64,
    /// Those with a `sensor_suspect` flag naming their sensor in a window
    /// from the one holding the onset to 30 s after the onset.
    pub detected: u64,
    /// `detected / incidents`.
    pub share: Option<f64>,
    /// Median of (flag's window start − onset), at least 0, over the
    /// detected incidents, in seconds.
    pub median_delay_s: Option<f64>,
    /// Drifts left out because their window means never strayed 3σ from the truth.
    pub never_exceeded_3_sigma: u64,
}

/// `sensor_suspect` flags that named a sensor with no incident of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FalseSuspects {
    /// Every `sensor_suspect` flag in `flags/`.
    pub suspects: u64,
    /// The false ones: whose sensor has no incident with [start_us, end_us +
    /// 30 s) holding the flag's window start.
    pub count: u64,
    /// `count / asset_hours`.
    pub per_asset_hour: Option<f64>,
    /// The false ones by the flag's reason.
    pub by_reason: BTreeMap<String, u64>,
}

impl Evaluation {
    /// Writes `eval.json` into `dir` and returns its path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join(EVAL_FILE);
        let json = serde_json::to_string_pretty(self).expect("the evaluation serializes");
        std::fs::write(&path, json + "\n").map_err(|e| Error::io(&path, e))?;
        Ok(path)
    }

    /// Reads an `eval.json`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::format(path, e))
    }

    fn quantities(&self) -> Vec<&str> {
        let mut quantities: Vec<&str> = Vec::new();
        for row in &self.rmse {
            if !quantities.contains(&row.quantity.as_str()) {
                quantities.push(&row.quantity);
            }
        }
        quantities
    }
}

/// The table for people: per quantity, a line per condition; then detection
/// and false suspects.
impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        let method_columns = |title: &str| {
            self.methods
                .iter()
                .map(|m| format!("{:>14}", format!("{title} {}", short(m))))
                .collect::<String>()
        };
        for quantity in self.quantities() {
            let _ = writeln!(
                text,
                "{quantity}\n  {:<17}{:>8}{}{:>24}{}{}",
                "condition",
                "windows",
                method_columns("rmse"),
                "best sensor (rmse)",
                method_columns("×clean"),
                method_columns("cover"),
            );
            let coverage_of = |condition: &str| {
                self.coverage
                    .iter()
                    .find(|c| c.quantity == quantity && c.condition == condition)
            };
            for row in self.rmse.iter().filter(|r| r.quantity == quantity) {
                let best = row.best_sensor.as_ref().map_or("-".to_owned(), |b| {
                    format!("{} ({})", b.sensor, figure(Some(b.rmse)))
                });
                let _ = write!(
                    text,
                    "  {:<17}{:>8}{}{best:>22}",
                    row.condition,
                    row.windows,
                    by_method(&self.methods, &row.fused, figure),
                );
                let ratios = by_method(&self.methods, &row.ratio_to_clean, |r| {
                    r.map_or("-".into(), |r| format!("{r:.2}×"))
                });
                let coverage = coverage_of(&row.condition).map_or(String::new(), |c| {
                    by_method(&self.methods, &c.coverage, percent)
                });
                let _ = writeln!(text, "{ratios}{coverage}");
            }
            if let Some(during) = coverage_of(DURING_INCIDENTS) {
                let blank = " ".repeat(14 * self.methods.len() * 2 + 24);
                let _ = writeln!(
                    text,
                    "  {:<17}{:>8}{blank}{}",
                    DURING_INCIDENTS,
                    during.windows,
                    by_method(&self.methods, &during.coverage, percent),
                );
            }
            text.push('\n');
        }
        let _ = writeln!(
            text,
            "sensor_suspect within 30 s of onset (incidents on redundant sensors)\n  {:<17}{:>10}{:>10}{:>8}{:>16}",
            "kind", "incidents", "detected", "share", "median delay"
        );
        for row in &self.detection {
            let delay = row
                .median_delay_s
                .map_or("-".into(), |d| format!("{d:.1} s"));
            let _ = writeln!(
                text,
                "  {:<17}{:>10}{:>10}{:>8}{delay:>16}",
                row.kind,
                row.incidents,
                row.detected,
                percent(row.share),
            );
        }
        let suspects = &self.false_suspects;
        let _ = write!(
            text,
            "\nfalse suspects: {} of {} sensor_suspect flags, {} per asset-hour ({:.1} asset-hours)",
            suspects.count,
            suspects.suspects,
            suspects
                .per_asset_hour
                .map_or("-".into(), |r| format!("{r:.3}")),
            self.asset_hours,
        );
        if !suspects.by_reason.is_empty() {
            let reasons: Vec<String> = suspects
                .by_reason
                .iter()
                .map(|(reason, n)| format!("{reason} {n}"))
                .collect();
            let _ = write!(text, "; by reason: {}", reasons.join(", "));
        }
        if self.fused_without_truth > 0 {
            let _ = write!(
                text,
                "\n{} fused rows had no truth and were left out",
                self.fused_without_truth
            );
        }
        if let Some(imputation) = &self.imputation {
            let _ = write!(text, "\n\n{imputation}");
        }
        if let Some(model_nll) = &self.model_nll {
            let _ = write!(text, "\n\n{model_nll}");
        }
        f.write_str(&text)
    }
}

/// Per channel, then pooled: the estimate's errors and coverage beside
/// carry-forward's (cf) and linear interpolation's (li).
impl fmt::Display for Imputation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "imputation on the {} hidden cells of {}{}",
            self.cells,
            self.mask.display(),
            if self.imputed_dataset {
                ""
            } else {
                " (the replay wrote no imputed/: estimates from fused/ only)"
            }
        );
        let errors = |prefix: &str| {
            ["rmse", "mae", "nrmse"]
                .iter()
                .zip([10, 10, 9])
                .map(|(name, width)| format!("{:>width$}", format!("{prefix}{name}")))
                .collect::<String>()
        };
        let _ = writeln!(
            text,
            "  {:<16}{:>7}{:>9}{}{:>9}{}{}",
            "channel",
            "cells",
            "imputed",
            errors(""),
            "cover95",
            errors("cf "),
            errors("li "),
        );
        let line = |text: &mut String, row: &ImputationRow| {
            let errors = |e: &ImputationErrors| {
                format!(
                    "{:>10}{:>10}{:>9}",
                    figure(e.rmse),
                    figure(e.mae),
                    e.nrmse.map_or("-".into(), |n| format!("{n:.3}"))
                )
            };
            let _ = writeln!(
                text,
                "  {:<16}{:>7}{:>9}{}{:>9}{}{}",
                row.scope,
                row.cells,
                percent(row.imputed_share),
                errors(&row.estimate),
                percent(row.coverage95),
                errors(&row.carry_forward),
                errors(&row.interpolation),
            );
        };
        for row in self.channels.iter().chain(&self.pooled) {
            line(&mut text, row);
        }
        let sources = self.pooled.first().map_or(String::new(), |all| {
            let named: Vec<String> = all
                .sources
                .iter()
                .map(|(source, n)| format!("{source} {n}"))
                .collect();
            named.join(", ")
        });
        let _ = write!(
            text,
            "estimates by source: {}; cf: carry-forward; li: linear interpolation (sees the \
             future); nrmse: rmse / the channel's truth sd over the log (pooled rows: nrmse only)",
            if sources.is_empty() { "none" } else { &sources },
        );
        if self.without_truth > 0 {
            let _ = write!(
                text,
                "\n{} hidden cells had no truth and were left out",
                self.without_truth
            );
        }
        f.write_str(&text)
    }
}

/// Per incident kind and channels: detected, named and delay; then false
/// alarms and the target.
impl fmt::Display for ModelNll {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "model_nll: {} alarms; an incident is detected by an alarm on its asset within 60 s of \
             onset, named if one names its sensor (or a sensor of its redundant quantity)\n  \
             {:<15}{:<15}{:>10}{:>10}{:>8}{:>7}{:>8}{:>14}",
            self.alarms,
            "kind",
            "channels",
            "incidents",
            "detected",
            "share",
            "named",
            "share",
            "median delay"
        );
        for row in &self.detection {
            let _ = write!(
                text,
                "  {:<15}{:<15}{:>10}{:>10}{:>8}{:>7}{:>8}{:>14}",
                row.kind,
                row.channels,
                row.incidents,
                row.detected,
                percent(row.share),
                row.named.map_or("-".into(), |n| n.to_string()),
                percent(row.named_share),
                row.median_delay_s
                    .map_or("-".into(), |d| format!("{d:.1} s")),
            );
            if row.never_exceeded_3_sigma > 0 {
                let _ = write!(text, "  ({} never strayed 3σ)", row.never_exceeded_3_sigma);
            }
            text.push('\n');
        }
        let alarms = &self.false_alarms;
        let _ = write!(
            text,
            "false alarms: {} of {} alarms, {} per asset-hour ({} during forged, replayed or \
             flooding attacks, which explain none)",
            alarms.count,
            self.alarms,
            alarms
                .per_asset_hour
                .map_or("-".into(), |r| format!("{r:.3}")),
            alarms.during_quarantined_attacks,
        );
        if let Some(target) = &self.target {
            let _ = write!(
                text,
                "\ntarget: {} on {} alarmed within 60 s in ≥ {} of incidents ({} of {}, {}; \
                 named {}), at ≤ {} false alarms per asset-hour ({}): {}",
                target.kinds.join(" or "),
                target.channel,
                percent(Some(target.min_share)),
                target.detected,
                target.incidents,
                percent(target.share),
                target.named,
                target.max_false_alarms_per_asset_hour,
                target
                    .false_alarms_per_asset_hour
                    .map_or("-".into(), |r| format!("{r:.3}")),
                match target.met {
                    Some(true) => "met",
                    Some(false) => "not met",
                    None => "not judged (no such incidents)",
                },
            );
        }
        f.write_str(&text)
    }
}

/// A method's name in a column header.
fn short(method: &str) -> &str {
    match method {
        "inverse_variance" => "IV",
        other => other,
    }
}

/// One column per method, in the order of `methods`.
fn by_method<T: Copy>(
    methods: &[String],
    values: &BTreeMap<String, T>,
    show: impl Fn(T) -> String,
) -> String {
    methods
        .iter()
        .map(|m| format!("{:>14}", values.get(m).map_or("-".into(), |v| show(*v))))
        .collect()
}

/// A figure with four significant digits, whatever its scale.
fn figure(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(x) if x == 0.0 || !x.is_finite() => format!("{x}"),
        Some(x) => {
            let decimals = (3 - x.abs().log10().floor() as i32).clamp(0, 9) as usize;
            format!("{x:.decimals$}")
        }
    }
}

fn percent(share: Option<f64>) -> String {
    share.map_or("-".into(), |s| format!("{:.1}%", 100.0 * s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_keep_four_significant_digits() {
        assert_eq!(figure(Some(0.051_94)), "0.05194");
        assert_eq!(figure(Some(6.2)), "6.200");
        assert_eq!(figure(Some(123.456)), "123.5");
        assert_eq!(figure(None), "-");
        assert_eq!(percent(Some(0.953)), "95.3%");
    }
}
