//! The `twinflow` command-line tool: a thin layer over the library crates.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use twinflow::engine::log_source::SplitOptions;
use twinflow::engine::manifest::{
    MANIFEST_FILE, public_key_hex, read_public_key, read_signing_key, record_files, verify,
};
use twinflow::engine::runtime::Cluster;
use twinflow::engine::time::SECOND;
use twinflow::engine::verify::Untagged;
use twinflow::operators::asset_models::{ModelOptions, ModelSource};
use twinflow::operators::kalman_fusion::KalmanOptions;
use twinflow::operators::model::ModelKind;
use twinflow::operators::model::neural::train::NeuralOptions;
use twinflow::pipelines::eval::synthesis::{SYNTHESIS_FILE, evaluate_synthesis};
use twinflow::pipelines::eval::{EvalOptions, evaluate};
use twinflow::pipelines::mask::generate::{MaskOptions, generate_mask};
use twinflow::pipelines::pipeline::{FusionMethod, twinbench};
use twinflow::pipelines::replay::ReplayOptions;
use twinflow::pipelines::report::{REPORT_FILE, write_report};
use twinflow::pipelines::show::{operator_table, twin_table};
use twinflow::pipelines::train::{TrainOptions, train};
use twinflow::pipelines::twinbench::{
    GenerateOptions, IncidentRates, SynthesizeOptions, generate_with_rates, synthesize,
};

// Workers allocate and free many mid-sized buffers (batches, containers,
// column builders); mimalloc's per-thread free lists serve them with less
// work than the system allocator's shared arenas (its version: Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc 2's `mi_option_purge_delay`: its place in `mi_option_e`
/// (mimalloc.h), which the binding does not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays mapped before mimalloc returns it to the
/// system. At mimalloc's default, 10 ms, a replay, which frees and allocates
/// batch-sized buffers all the time, got much of its memory back as fresh
/// pages the kernel had to zero: on TwinBench's 10M-event log, 1,100-1,460
/// page faults and 8 % of the replay's CPU in `clear_page_erms` (perf). At a
/// second: 330 faults, 1.4 % in `clear_page_erms`, CPU time 7-14 % less
/// (`perf stat`, one worker, alternated runs), peak memory the same.
const PURGE_DELAY_MS: std::ffi::c_long = 1000;

fn configure_allocator() {
    // SAFETY: sets a plain integer option; mimalloc reads it on its next purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
}

#[derive(Parser)]
#[command(
    name = "twinflow",
    version,
    about = "Dataflow engine for industrial digital twins"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a TwinBench plant log (events, catalog, labels, truth, keys).
    Generate {
        /// Number of assets (8 sensors each).
        #[arg(long, default_value_t = 200)]
        assets: usize,
        /// Seconds of plant time.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Multiply the spec's rates of faults and attacks (forged, replayed,
        /// flooding, ...) by this, to exercise detection and verification.
        #[arg(long, default_value_t = 1.0)]
        incident_scale: f64,
        /// Also write events.csv.
        #[arg(long)]
        csv: bool,
    },
    /// Replay a raw log (a Parquet file or a directory of them) through the reference pipeline.
    Replay {
        /// The log: a Parquet file, or a directory of `events*.parquet` files.
        log: PathBuf,
        /// Output directory for the Parquet datasets and summary.json.
        #[arg(long)]
        out: PathBuf,
        /// Directory with assets.csv and sensors.csv (default: the log's directory).
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// Allowed lateness in seconds.
        #[arg(long, default_value_t = 2.0)]
        lateness: f64,
        /// Split row groups into runs of at most this many rows (spreads small logs over workers).
        #[arg(long)]
        run_rows: Option<usize>,
        /// CSV of plant changes (at_us, asset, line, site) applied at event times:
        /// an asset moves to (or joins) that line and site; empty line and site remove it.
        #[arg(long)]
        catalog_changes: Option<PathBuf>,
        /// After the run, print a result for people to read: `twins`, the final twin view.
        #[arg(long, value_enum)]
        show: Option<Show>,
        /// Run step W alone (per-sensor windows, late and quarantined rows).
        #[arg(long)]
        windows_only: bool,
        /// Process every event unverified (no tag, replay or plausibility
        /// checks), as before verification existed.
        #[arg(long)]
        no_verify: bool,
        /// The sensor keys (default: keys.json beside the log).
        #[arg(long)]
        keys: Option<PathBuf>,
        /// What verification does with events that carry no tag: quarantine
        /// them as bad_tag, or accept them counted as unauthenticated.
        #[arg(long, value_enum, default_value_t = UntaggedArg::Reject)]
        untagged: UntaggedArg,
        /// After the run, write OUT/report.html: the twin view, rollups, and
        /// charts of the flagged assets' fused values and sensors.
        #[arg(long)]
        report: bool,
        /// Sign what this run appends to OUT/_manifest.jsonl with this Ed25519
        /// key: a file of 64 hex digits, the 32-byte seed.
        #[arg(long)]
        sign_key: Option<PathBuf>,
        /// Measure each operator's busy time on each worker: printed as a
        /// table after the run, and in summary.json's `operators`.
        #[arg(long)]
        profile: bool,
        /// How redundant sensors are fused into the twin state: `kalman`, a
        /// filter that gates, down-weights and excludes sensors that disagree
        /// (named in flags/ as sensor_suspect), or `inverse-variance`, the
        /// spec's F, which believes every sensor. The summary's
        /// sum_fused_temperature is the spec's F either way.
        #[arg(long, value_enum, default_value_t = FusionArg::Kalman)]
        fusion: FusionArg,
        /// The generative model of each asset, which imputes channels not
        /// measured (OUT/imputed/) and witnesses the fusion: `gaussian`, an
        /// online Gaussian that learns as the log passes; a directory written
        /// by `twinflow train`; or `none`.
        #[arg(long, default_value = "gaussian")]
        model: String,
        /// Drop every accepted reading whose (asset, channel, window) a mask
        /// file names (see `twinflow mask`): after verification, before
        /// windowing. They are counted as `masked`, and the spec's checksums
        /// then describe the log without them (lateness is still decided on
        /// the whole log, masked readings included).
        #[arg(long)]
        mask: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Write a mask for scoring imputation: a Parquet file of the cells
    /// (asset, channel, window_start_us) to hide with `replay --mask` and
    /// score with `eval`. Blocks of whole seconds hide one channel, or every
    /// sensor of one redundant quantity, of an asset; they lie in the last
    /// part of the truth's plant time (the rest is for fitting), never
    /// overlap on an asset, and end before the log does. The same log, seed
    /// and options give the same mask.
    Mask {
        /// The generator's output directory (sensors.csv, assets.csv,
        /// truth.parquet), or a file in it.
        log: PathBuf,
        /// The mask file to write.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The shortest block, in seconds.
        #[arg(long, default_value_t = 30)]
        min_block: u64,
        /// The longest block, in seconds.
        #[arg(long, default_value_t = 300)]
        max_block: u64,
        /// Mean seconds from one block's start to the next on an asset.
        #[arg(long, default_value_t = 300)]
        spacing: u64,
        /// The share of blocks that hide a whole redundant quantity (e.g.
        /// all temperature sensors); the others hide one sensor.
        #[arg(long, default_value_t = 0.25)]
        quantity_share: f64,
        /// The share of the plant time, at its end, where blocks lie.
        #[arg(long, default_value_t = 0.4)]
        scored_share: f64,
        /// The fewest measured seconds between two blocks of an asset, and
        /// after the last one.
        #[arg(long, default_value_t = 10)]
        min_gap: u64,
    },
    /// Write OUT/report.html for the results of an earlier replay into OUT.
    Report {
        /// The output directory of a replay.
        out: PathBuf,
        /// Sign the manifest line recording the report with this Ed25519 key.
        #[arg(long)]
        sign_key: Option<PathBuf>,
    },
    /// Score a replay against the generator's truth and labels: fused RMSE and
    /// 95 % coverage per incident condition, sensor suspects' detection and
    /// false alarms, model_nll alarms' detection and false alarms, and with a
    /// mask imputation on its hidden cells. Prints a table and writes OUT/eval.json.
    Eval {
        /// The generator's output directory (truth.parquet, labels.csv, sensors.csv, ...).
        log: PathBuf,
        /// The replay's output directory.
        out: PathBuf,
        /// Also score this fusion of the replay's windows beside the replay's own.
        #[arg(long, value_enum)]
        compare: Option<CompareArg>,
        /// Score imputation on this mask's hidden cells (default: the mask
        /// the replay applied, as OUT/summary.json records it): the replay's
        /// imputed/ (else, for a sensor whose quantity another sensor still
        /// measured, fused/) against carry-forward and linear interpolation,
        /// per channel and pooled, in eval.json's `imputation`.
        #[arg(long)]
        mask: Option<PathBuf>,
    },
    /// Train a model of every asset on historical Parquet and save them as a
    /// model set: MODEL/models.json and MODEL/<asset>/ (manifest.json,
    /// parameters.safetensors), which `replay --model MODEL` and `synthesize`
    /// load.
    Train {
        /// A replay's output directory (fused/ and aligned/ are read), or a
        /// raw log, which is replayed first into a temporary directory.
        #[arg(long)]
        history: PathBuf,
        #[arg(long, value_enum)]
        model: ModelArg,
        /// The model set's directory (new, empty, or an earlier model set's).
        #[arg(long)]
        out: PathBuf,
        /// The catalog's directory (assets.csv, sensors.csv), when the replay
        /// discovered its catalog from the log.
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// The mixture's components (operating regimes).
        #[arg(long, default_value_t = 3)]
        components: usize,
        /// The mixture's EM passes over the history.
        #[arg(long, default_value_t = 5)]
        passes: usize,
        /// Threads training assets side by side (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// One model for all assets (they must share a layout), learnt from
        /// every asset's windows, instead of one per asset: it has seen every
        /// operating regime of the plant, where one asset may not have.
        #[arg(long)]
        pooled: bool,
        /// A pooled Gaussian's worth in windows, against what each asset
        /// then teaches it online (it forgets with the Gaussian's half-life).
        #[arg(long, default_value_t = 3600.0)]
        prior_windows: f64,
        /// The neural model's passes over the history.
        #[arg(long, default_value_t = NeuralOptions::default().epochs)]
        epochs: usize,
        /// The neural network's hidden layers.
        #[arg(long, default_value_t = NeuralOptions::default().hidden_layers)]
        hidden_layers: usize,
        /// The width of each of its hidden layers.
        #[arg(long, default_value_t = NeuralOptions::default().width)]
        width: usize,
        /// Adam's step size at the start (it falls to a tenth by the last epoch).
        #[arg(long, default_value_t = NeuralOptions::default().learning_rate)]
        learning_rate: f64,
        /// The seed of the initial weights, the order and the masks.
        #[arg(long, default_value_t = NeuralOptions::default().seed)]
        seed: u64,
    },
    /// Write a raw log in the TwinBench format drawn from a trained model set
    /// (asset i runs the set's asset i mod its size), tagged with fresh keys
    /// (keys.json beside it), with its catalog, the drawn values as
    /// truth.parquet and no labels. It replays like any log.
    Synthesize {
        /// A model set (`twinflow train`'s output).
        #[arg(long)]
        model: PathBuf,
        /// Number of assets (8 sensors each).
        #[arg(long, default_value_t = 40)]
        assets: usize,
        /// Seconds of plant time.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the draws, the sensors' noise, arrival and keys.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Windows drawn and dropped per asset before the first written, so
        /// the models' slow copies settle.
        #[arg(long, default_value_t = 300)]
        burn_in: usize,
    },
    /// Score a synthetic log against a real one, both replayed: per channel
    /// mean, standard deviation and lag-1 autocorrelation, the cross-channel
    /// correlation matrix, and a regression of temperature trained on the
    /// synthetic windows and scored on the real ones (against the same trained
    /// on the real first 60 %). Prints a table and writes SYNTHETIC/synthesis.json.
    EvalSynthesis {
        /// The replay output of the synthetic log.
        #[arg(long)]
        synthetic: PathBuf,
        /// The replay output of the real log.
        #[arg(long)]
        real: PathBuf,
    },
    /// Check a directory twinflow wrote against its history (DIR/_manifest.jsonl):
    /// one line per file modified, truncated, deleted or added, and per damage
    /// to the manifest; exits non-zero on any finding.
    Verify {
        /// The directory, e.g. the output of a replay.
        dir: PathBuf,
        /// An Ed25519 public key file (64 hex digits): every manifest line must
        /// be covered by a signature of this key (repeat for rotated keys).
        #[arg(long)]
        public_key: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FusionArg {
    Kalman,
    InverseVariance,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ModelArg {
    /// One online Gaussian over the channels, their lags and slow copies.
    Gaussian,
    /// A mixture of such Gaussians over operating regimes.
    Mixture,
    /// A masked denoising autoencoder (a network shared by the assets).
    Neural,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CompareArg {
    /// Inverse-variance weighting (TwinBench's F) of the same windows.
    InverseVariance,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum UntaggedArg {
    Reject,
    Accept,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Show {
    /// The final twin view of every asset, and the line rollups.
    Twins,
}

#[derive(Args)]
struct ClusterArgs {
    /// Worker threads per process.
    #[arg(long, short = 'w', default_value_t = 1)]
    workers: usize,
    /// Number of processes.
    #[arg(long, default_value_t = 1)]
    processes: usize,
    /// This process's index.
    #[arg(long, default_value_t = 0)]
    process: usize,
    /// File naming each process's host:port, one per line.
    #[arg(long)]
    hostfile: Option<PathBuf>,
}

fn main() -> ExitCode {
    configure_allocator();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("twinflow: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> twinflow::engine::Result<ExitCode> {
    match command {
        Command::Generate {
            assets,
            seconds,
            seed,
            out,
            incident_scale,
            csv,
        } => {
            if !(incident_scale.is_finite() && incident_scale >= 0.0) {
                return Err(twinflow::engine::Error::Config(
                    "--incident-scale must be a non-negative number".into(),
                ));
            }
            let options = GenerateOptions {
                assets,
                seconds,
                seed,
                out: out.clone(),
                csv,
                progress: true,
            };
            let rates = IncidentRates::twinbench().scaled(incident_scale);
            let report = generate_with_rates(&options, &rates)?;
            eprintln!(
                "wrote {} events ({} late, {} forged, {} replayed, {} flooding; {} labels) to {}",
                report.events,
                report.late,
                report.forged,
                report.replayed,
                report.flooding,
                report.labels,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            log,
            out,
            catalog,
            lateness,
            run_rows,
            catalog_changes,
            show,
            report,
            sign_key,
            windows_only,
            no_verify,
            keys,
            untagged,
            profile,
            fusion,
            model,
            mask,
            cluster,
        } => {
            if !(lateness.is_finite() && lateness >= 0.0) {
                return Err(twinflow::engine::Error::Config(
                    "--lateness must be a non-negative number of seconds".into(),
                ));
            }
            let options = ReplayOptions {
                catalog,
                cluster: Cluster {
                    workers: cluster.workers,
                    processes: cluster.processes,
                    process: cluster.process,
                    hostfile: cluster.hostfile,
                },
                lateness: (lateness * SECOND as f64).round() as i64,
                split: SplitOptions {
                    max_run_rows: run_rows,
                },
                progress: true,
                catalog_changes,
                sign_key: sign_key.clone(),
                verify: !no_verify,
                keys,
                untagged: match untagged {
                    UntaggedArg::Reject => Untagged::Reject,
                    UntaggedArg::Accept => Untagged::Accept,
                },
                profile,
                mask,
                ..ReplayOptions::new(log, out.clone())
            };
            let key = sign_key.as_deref().map(read_signing_key).transpose()?;
            let mut pipeline = twinbench().fusion_method(match fusion {
                FusionArg::Kalman => FusionMethod::Kalman(KalmanOptions::default()),
                FusionArg::InverseVariance => FusionMethod::InverseVariance,
            });
            pipeline = match model.as_str() {
                "none" => pipeline.no_model(),
                "gaussian" => pipeline.model(ModelOptions::default()),
                dir => pipeline.model(ModelOptions {
                    source: ModelSource::Trained(dir.into()),
                    ..ModelOptions::default()
                }),
            };
            if windows_only {
                pipeline = pipeline.windows_only();
            }
            if let Some(summary) = pipeline.replay(&options)? {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&summary).expect("summary serializes")
                );
                if let Some(Show::Twins) = show {
                    println!("\n{}", twin_table(&out)?);
                }
                if profile {
                    println!("\n{}", operator_table(&summary.operators, &out));
                }
                if report {
                    eprintln!("wrote {}", write_report(&out)?.display());
                    let by = format!("twinflow {} report", env!("CARGO_PKG_VERSION"));
                    record_files(&out, &by, &[REPORT_FILE], key.as_ref())?;
                }
                if let Some(key) = &key {
                    eprintln!(
                        "signed {} with Ed25519 public key {}",
                        out.join(MANIFEST_FILE).display(),
                        public_key_hex(&key.verifying_key())
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Mask {
            log,
            out,
            seed,
            min_block,
            max_block,
            spacing,
            quantity_share,
            scored_share,
            min_gap,
        } => {
            let options = MaskOptions {
                seed,
                min_block_s: min_block,
                max_block_s: max_block,
                spacing_s: spacing,
                quantity_share,
                scored_share,
                min_gap_s: min_gap,
            };
            let report = generate_mask(&log, &out, &options)?;
            let blocks: Vec<String> = report
                .blocks
                .iter()
                .map(|(kind, n)| format!("{n} {}", kind.code()))
                .collect();
            let span = report.span;
            eprintln!(
                "wrote {} hidden cells to {} (blocks: {}) in the last {} s of {} s of plant time",
                report.cells,
                report.path.display(),
                blocks.join(", "),
                (span.end_us - report.scored_from_us) / SECOND,
                (span.end_us - span.first_us) / SECOND,
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { out, sign_key } => {
            let key = sign_key.as_deref().map(read_signing_key).transpose()?;
            eprintln!("wrote {}", write_report(&out)?.display());
            let by = format!("twinflow {} report", env!("CARGO_PKG_VERSION"));
            record_files(&out, &by, &[REPORT_FILE], key.as_ref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval {
            log,
            out,
            compare,
            mask,
        } => {
            let evaluation = evaluate(&EvalOptions {
                log,
                out: out.clone(),
                compare_inverse_variance: compare == Some(CompareArg::InverseVariance),
                mask,
                progress: true,
            })?;
            println!("{evaluation}");
            eprintln!("wrote {}", evaluation.write(&out)?.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Train {
            history,
            model,
            out,
            catalog,
            components,
            passes,
            threads,
            pooled,
            prior_windows,
            epochs,
            hidden_layers,
            width,
            learning_rate,
            seed,
        } => {
            if components == 0 {
                return Err(twinflow::engine::Error::Config(
                    "--components must be at least 1".into(),
                ));
            }
            if prior_windows.is_nan() || prior_windows < 2.0 {
                return Err(twinflow::engine::Error::Config(
                    "--prior-windows must be at least 2".into(),
                ));
            }
            let kind = match model {
                ModelArg::Gaussian => ModelKind::Gaussian,
                ModelArg::Mixture => ModelKind::Mixture,
                ModelArg::Neural => ModelKind::Neural,
            };
            let defaults = TrainOptions::new(history, kind, out.clone());
            let options = TrainOptions {
                catalog,
                components,
                passes,
                pooled,
                prior_windows,
                neural: NeuralOptions {
                    epochs,
                    hidden_layers,
                    width,
                    learning_rate,
                    seed,
                    ..defaults.neural
                },
                threads: threads.unwrap_or(defaults.threads),
                progress: true,
                ..defaults
            };
            let report = train(&options)?;
            eprintln!(
                "trained {} {:?} model{} on {} windows{} in {:.1} s; wrote {}",
                if pooled { 1 } else { report.assets },
                kind,
                if pooled {
                    format!(" for {} assets", report.assets)
                } else {
                    "s".into()
                },
                report.windows,
                if report.replayed {
                    " (the log replayed first)"
                } else {
                    ""
                },
                report.elapsed_s,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Synthesize {
            model,
            assets,
            seconds,
            out,
            seed,
            burn_in,
        } => {
            let options = SynthesizeOptions {
                seed,
                burn_in,
                progress: true,
                ..SynthesizeOptions::new(model, assets, seconds, out.clone())
            };
            let report = synthesize(&options)?;
            eprintln!(
                "wrote {} events ({} late, {} clamped to the physical range) of {assets} assets \
                 drawn from {} asset models to {}",
                report.events,
                report.late,
                report.clamped,
                report.models,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::EvalSynthesis { synthetic, real } => {
            let score = evaluate_synthesis(&synthetic, &real)?;
            println!("{score}");
            eprintln!("wrote {}", score.write(&synthetic)?.display());
            // Recorded in the replay's manifest, so `verify` knows it.
            let by = format!("twinflow {} eval-synthesis", env!("CARGO_PKG_VERSION"));
            record_files(&synthetic, &by, &[SYNTHESIS_FILE], None)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { dir, public_key } => {
            let keys = public_key
                .iter()
                .map(|path| read_public_key(path))
                .collect::<twinflow::engine::Result<Vec<_>>>()?;
            let verification = verify(&dir, &keys)?;
            for finding in &verification.findings {
                println!("{finding}");
            }
            if verification.is_ok() {
                println!("{}", verification.ok_line());
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!(
                "twinflow verify: {} finding(s) in {}",
                verification.findings.len(),
                dir.display()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option number is mimalloc's purge delay: unset, it reads as
    /// mimalloc's documented default of 10 ms; set, as ours.
    #[test]
    fn the_purge_delay_is_the_option_set() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads a plain integer option.
            let default = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
            assert_eq!(default, 10);
        }
        configure_allocator();
        let set = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(set, PURGE_DELAY_MS);
    }
}
