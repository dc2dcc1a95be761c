//! twinflow: a dataflow engine for industrial digital twins, on timely dataflow.
//!
//! This crate holds the `twinflow` command-line tool and re-exports the
//! library crates:
//! - [`engine`]: events, catalog, event time, the timely runtime, Parquet sources and sinks;
//! - [`operators`]: the dataflow operators (event-time windows, ...);
//! - [`pipelines`]: the TwinBench workload and the reference pipelines.

pub use twinflow_engine as engine;
pub use twinflow_operators as operators;
pub use twinflow_pipelines as pipelines;
