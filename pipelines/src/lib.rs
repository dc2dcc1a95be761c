//! twinflow pipelines: the reference TwinBench workload and pipeline, and the
//! `replay` job that runs a pipeline over a Parquet log.

pub mod columns;
pub mod dataset;
pub mod pipeline;
pub mod replay;
pub mod report;
pub mod schemas;
pub mod show;
pub mod twinbench;
