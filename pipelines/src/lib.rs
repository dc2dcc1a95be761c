//! twinflow pipelines: the [`pipeline::Pipeline`] API a user declares a
//! pipeline with, the reference TwinBench pipeline and workload generator,
//! the `replay` job that runs a pipeline over a Parquet log, and what reads
//! its results back for people (`show`, `report`), and `eval`, which scores
//! a replay against the generator's truth.

pub mod asset_windows;
pub mod columns;
pub mod dataset;
pub mod eval;
pub mod fused_outputs;
pub mod lineage;
pub mod mask;
pub mod pipeline;
pub mod progress;
pub mod replay;
pub mod report;
pub mod schemas;
pub mod show;
pub mod train;
pub mod twinbench;
