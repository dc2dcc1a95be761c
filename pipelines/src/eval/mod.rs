//! `twinflow eval`: scores a replay's fused values and sensor suspects against the generator's truth and labels.
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

pub mod conditions;
pub mod inputs;
pub mod metrics;
pub mod output;
pub mod reference;
pub mod synthesis;

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use twinflow_engine::error::Result;
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
    /// Show progress on the terminal.
    pub progress: bool,
}

/// Scores the replay in `options.out` against the log in `options.log`.
pub fn evaluate(options: &EvalOptions) -> Result<Evaluation> {
    // Five reading steps, then scoring.
    let bar = if options.progress {
        ProgressBar::new(6).with_style(
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
    };
    bar.finish_and_clear();
    Ok(evaluation)
}
