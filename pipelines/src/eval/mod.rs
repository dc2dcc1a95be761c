//! `twinflow eval`: scores a replay's fused values, sensor suspects and model alarms against the generator's truth and labels.
//!
//! It reads the generator's directory (`sensors.csv`, `assets.csv`,
//! `labels.csv`, `truth.parquet`) and the replay's output (`windows/`,
//! `fused/`, `flags/`, and `trust/` if there), and reports an [`Evaluation`] (`OUT/eval.json` and a
//! table). Windows are TwinBench's, 1 s long, the truth's resolution.
//!
//! # Conditions
//! Each fused window — quantity `q` of asset `a` in `[s, s + 1 s)`, scored
//! against the truth of a channel of `q`'s sensors at `s` — falls under one
//! condition. The sensors of `q` on `a` are its redundant group: the
//! catalog's sensors of `a` whose quantity (the sensor table's `quantity`,
//! else the `kind`) is `q`. An incident *overlaps* the window when its label
//! interval `[start_us, end_us)` shares an instant with it (for forged and
//! replayed events the label bounds arrival time, for the rest event time).
//! - `clean`: no incident of any kind overlaps the window on any sensor of
//!   the group, and no asset-level incident (a bearing fault) on `a`;
//! - an incident kind `K` (`spike`, `drift`, `stuck`, `bias`, `noise_burst`,
//!   `false_data`, `forged`, `replayed`, `flooding`, `dropout`,
//!   `time_shift`, …): the incidents overlapping the window all lie on one
//!   sensor of the group and are all of kind `K`;
//! - `other`: incidents on two sensors of the group, of two kinds, or an
//!   asset-level incident on `a`. Reported, not targeted.
//!
//! # Figures
//! - **Fused RMSE** per quantity and condition, and the ratio of each
//!   condition's to the clean one's. Beside it the **best single sensor**:
//!   per channel of the group, the RMSE of its window means (`windows/`)
//!   against the truth over the same windows, counting a sensor only in
//!   windows it measured and where no incident of its own overlaps; the
//!   channel with the lowest.
//! - **Coverage**: the share of windows whose truth lies in `[lo95, hi95]`,
//!   per quantity and condition, and over every window not clean
//!   (`during_incidents`).
//! - **Detection**, per incident kind, over incidents on sensors of a
//!   redundant group lasting at least 30 s (spikes, a few samples long, all
//!   count): the share with a `sensor_suspect` flag naming the sensor in a
//!   window from the incident's start to 30 s after the onset, and the
//!   median delay, the flag's window start less the onset (at least 0). The
//!   onset is the incident's start, except for drift: the first window of
//!   the incident whose mean is more than 3σ (the sensor's σ) from the
//!   truth, so a drift named before it gets there is caught with no delay;
//!   a drift that never gets there is not counted. An incident whose sensor
//!   `trust/` holds excluded in the incident's first window (still excluded
//!   for an earlier one) is already named: detected, with no delay.
//! - **False suspects**: `sensor_suspect` flags whose sensor has no incident
//!   of its own with `[start_us, end_us + 30 s)` holding the flag's window
//!   start (an asset-level incident explains none), per asset-hour: assets
//!   in the catalog × the truth's span in hours. An `ambiguous` flag says
//!   two sensors disagree and which lies cannot be told: it is false only if
//!   no sensor of its group has such an incident.
//!
//! With `--compare inverse-variance` the windows of `windows/` are also fused
//! by the operators' inverse-variance fusion ([`reference`]) and scored on
//! the same windows as the replay's `fused/`.
//!
//! With a mask (`--mask FILE`, else the mask the replay recorded in
//! `OUT/summary.json`), imputation is scored on its hidden cells: the
//! replay's `imputed/` and fused values against carry-forward and linear
//! interpolation ([`imputation`]).
//!
//! # The `model_nll` detector
//! When `flags/` holds rows of the asset model's detector (`detector` =
//! `model_nll`: one row per alarm, at its onset window, on an `asset`, with
//! the `sensor` of the channel that stood out most), eval scores them
//! ([`model_nll`], `eval.json`'s `model_nll`):
//! - **Detection**, per incident kind and the channels it concerns:
//!   `non_redundant` (a sensor no other sensor of its asset shares a
//!   quantity with: in TwinBench `current`, `flow`, `vib-1`), `redundant`
//!   (a sensor of a redundant group), `asset` (a bearing fault). Every
//!   incident counts, however short. It is *detected* when an alarm on its
//!   asset falls in a window from the one holding the incident's start to
//!   60 s after the onset (the onset as for sensor suspects: the start, or
//!   for a drift the first window 3σ astray, drifts that never get there
//!   left out); its delay is the first such alarm's window start less the
//!   onset (at least 0), and the median is over the detected incidents. It
//!   is *named* when one of those alarms names its sensor, or, for a sensor
//!   of a redundant group, any sensor of the group (the detector names a
//!   fused quantity by its first sensor); an asset-level incident has no
//!   sensor to name.
//! - **False alarms**: alarms whose window meets no incident on their asset
//!   (on one of its sensors, or the asset's own) stretched from 5 s before
//!   its start to 60 s after its end, per asset-hour.
//! - **Forged, replayed and flooding attacks** are neither scored nor
//!   explain an alarm: verification quarantines their events before any
//!   window (a bad tag, a seen `seq`, readings beyond the flooding budget),
//!   so the model sees the sensor's honest readings, and an alarm during
//!   them points at something else. Counting them as explaining would hide
//!   false alarms behind attacks the model cannot see; the false alarms that
//!   met one are counted apart (`during_quarantined_attacks`), which would
//!   show a leak through verification. Time shifts and false data pass
//!   verification (valid tags) and count like faults.
//! - **The target** (issue 18): bias or false data on `current`, the
//!   channel without a redundant twin, detected (the asset alarmed; naming
//!   shown, not required) in at least 90 % of incidents, at no more than
//!   0.2 false alarms per asset-hour: met or not.

pub mod conditions;
pub mod imputation;
pub mod inputs;
pub mod metrics;
pub mod model_nll;
pub mod output;
pub mod reference;
pub mod synthesis;

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use twinflow_engine::error::{Error, Result};
use twinflow_engine::time::{Micros, SECOND};

pub use output::{EVAL_FILE, Evaluation};

use inputs::Inputs;
use reference::InverseVarianceReference;

/// The windows scored: the truth's resolution.
pub const WINDOW_US: Micros = SECOND;
/// Incidents shorter than this are not counted for detection (spikes aside).
pub const MIN_INCIDENT_US: Micros = 30 * SECOND;
/// A suspect counts as detection only this soon after the onset.
pub const DETECTION_DEADLINE_US: Micros = 30 * SECOND;
/// How long after an incident ends a suspect of its sensor is still explained by it.
pub const SUSPECT_GRACE_US: Micros = 30 * SECOND;
/// A drift's onset: when its window mean first strays this many σ from the truth.
pub const DRIFT_ONSET_SIGMAS: f64 = 3.0;

/// The name of the replay's own fusion in [`Evaluation::methods`].
pub const REPLAY: &str = "replay";
/// The name of the inverse-variance reference in [`Evaluation::methods`].
pub const INVERSE_VARIANCE: &str = "inverse_variance";

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The generator's output directory (or a file in it, e.g. its events.parquet).
    pub log: PathBuf,
    /// The replay's output directory.
    pub out: PathBuf,
    /// Also score inverse-variance fusion of the replay's windows.
    pub compare_inverse_variance: bool,
    /// Score imputation on this mask's hidden cells; by default on the mask
    /// the replay recorded in its `summary.json`, if any.
    pub mask: Option<PathBuf>,
    /// Show progress on the terminal.
    pub progress: bool,
}

/// Scores the replay in `options.out` against the log in `options.log`.
pub fn evaluate(options: &EvalOptions) -> Result<Evaluation> {
    let mask = match &options.mask {
        Some(mask) => Some(mask.clone()),
        None => recorded_mask(&options.out)?,
    };
    // Five reading steps, then scoring (and imputation's).
    let bar = if options.progress {
        ProgressBar::new(6 + u64::from(mask.is_some())).with_style(
            ProgressStyle::with_template("eval {elapsed_precise} [{bar:20}] {msg}")
                .expect("valid template"),
        )
    } else {
        ProgressBar::hidden()
    };
    let inputs = Inputs::read(&options.log, &options.out, |stage| {
        bar.set_message(format!("reading {stage}"));
        bar.inc(1);
    })?;
    bar.set_message("scoring");
    bar.inc(1);
    let mut methods = vec![REPLAY.to_owned()];
    let reference = options.compare_inverse_variance.then(|| {
        methods.push(INVERSE_VARIANCE.to_owned());
        InverseVarianceReference::new(&inputs)
    });
    let fusion = metrics::fusion_figures(&inputs, reference.as_ref(), &methods)?;
    let asset_hours = inputs.catalog.assets().len() as f64 * inputs.truth.hours();
    let imputation = match &mask {
        Some(mask) => {
            bar.set_message("scoring imputation");
            bar.inc(1);
            Some(imputation::score(&inputs, mask)?)
        }
        None => None,
    };
    let evaluation = Evaluation {
        log: inputs.log.clone(),
        out: inputs.out.clone(),
        asset_hours,
        methods,
        fused_without_truth: fusion.without_truth,
        rmse: fusion.rmse,
        coverage: fusion.coverage,
        detection: metrics::detection(&inputs),
        false_suspects: metrics::false_suspects(&inputs, asset_hours),
        imputation,
        model_nll: model_nll::score(&inputs, asset_hours),
    };
    bar.finish_and_clear();
    Ok(evaluation)
}

/// The mask a replay into `out` applied, as its `summary.json` records it
/// (none without a summary or a mask).
fn recorded_mask(out: &Path) -> Result<Option<PathBuf>> {
    let path = out.join("summary.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let summary: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::format(&path, e))?;
    Ok(summary
        .get("mask")
        .and_then(|m| m.as_str())
        .map(PathBuf::from))
}
