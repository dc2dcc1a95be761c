//! The engine's error type: every error names the file (or input) it concerns.

use std::path::{Path, PathBuf};

/// Errors raised while reading, writing or running a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A Parquet file that cannot be decoded (truncated, corrupt, not Parquet).
    #[error("{path}: not a readable Parquet file: {message}")]
    Parquet { path: PathBuf, message: String },
    /// A file whose columns are not what the reader expects.
    #[error("{path}: {message}")]
    Schema { path: PathBuf, message: String },
    /// A malformed text input (CSV, JSON).
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    /// A configuration or command-line problem.
    #[error("{0}")]
    Config(String),
    /// A failure of the dataflow runtime (a worker panicked, a peer vanished).
    #[error("runtime: {0}")]
    Runtime(String),
}

impl Error {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
    pub fn parquet(path: impl AsRef<Path>, err: impl std::fmt::Display) -> Self {
        Error::Parquet {
            path: path.as_ref().to_path_buf(),
            message: err.to_string(),
        }
    }
    pub fn schema(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Error::Schema {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }
    pub fn format(path: impl AsRef<Path>, message: impl std::fmt::Display) -> Self {
        Error::Format {
            path: path.as_ref().to_path_buf(),
            message: message.to_string(),
        }
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
