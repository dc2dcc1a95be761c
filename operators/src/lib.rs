//! twinflow's dataflow operators: event-time windows, alignment onto a time
//! grid, fusion of redundant sensors, anomaly detection and the twin views.

pub mod align;
pub mod asset_models;
pub mod detect;
pub mod fuse;
pub mod kalman;
pub mod kalman_fusion;
pub mod model;
pub mod redundancy;
pub mod stats;
pub mod surprise_alarm;
pub mod time_order;
pub mod total_order;
pub mod trust;
pub mod twin;
pub mod window;
