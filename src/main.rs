//! The `twinflow` command-line tool: a thin layer over the library crates.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use twinflow::engine::log_source::SplitOptions;
use twinflow::engine::runtime::Cluster;
use twinflow::engine::time::SECOND;
use twinflow::pipelines::pipeline::twinbench;
use twinflow::pipelines::replay::ReplayOptions;
use twinflow::pipelines::report::write_report;
use twinflow::pipelines::show::twin_table;
use twinflow::pipelines::twinbench::{GenerateOptions, generate};

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
        /// After the run, write OUT/report.html: the twin view, rollups, and
        /// charts of the flagged assets' fused values and sensors.
        #[arg(long)]
        report: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Write OUT/report.html for the results of an earlier replay into OUT.
    Report {
        /// The output directory of a replay.
        out: PathBuf,
    },
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
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("twinflow: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> twinflow::engine::Result<()> {
    match command {
        Command::Generate {
            assets,
            seconds,
            seed,
            out,
            csv,
        } => {
            let report = generate(&GenerateOptions {
                assets,
                seconds,
                seed,
                out: out.clone(),
                csv,
                progress: true,
            })?;
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
            Ok(())
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
            windows_only,
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
                ..ReplayOptions::new(log, out.clone())
            };
            let mut pipeline = twinbench();
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
                if report {
                    eprintln!("wrote {}", write_report(&out)?.display());
                }
            }
            Ok(())
        }
        Command::Report { out } => {
            eprintln!("wrote {}", write_report(&out)?.display());
            Ok(())
        }
    }
}
