//! twinflow's dataflow operators: event-time windows and their aggregates
//! (later: align, fuse, detect, verify and twin views).

pub mod stats;
pub mod window;
