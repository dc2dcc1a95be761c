//! twinflow's engine: events, the plant catalog, event time and watermarks, the
//! timely runtime, Parquet sources and sinks, and run metrics.

pub mod auth;
pub mod catalog;
pub mod clock_ahead;
pub mod error;
pub mod manifest;
pub mod raw_log;
pub mod sink;

pub use error::{Error, Result};
pub mod event;
pub mod exact_sum;
pub mod exchange;
pub mod log_source;
pub mod metrics;
pub mod partition;
pub mod profile;
pub mod run_checks;
pub mod run_maxima;
pub mod run_queue;
pub mod runtime;
mod safe_selection;
pub mod sensor_checks;
pub mod source;
pub mod time;
pub mod verify;
