//! Masks for scoring imputation: blocks of 30–300 s that hide one channel, or a whole redundant quantity, of an asset, in the log's last 40 %.
//!
//! Per asset, in catalog order, blocks follow one another in the scored span
//! (the last [`MaskOptions::scored_share`] of the plant time; the time
//! before it is left for fitting models). Each block starts a random gap
//! after the previous one's end (or the span's start): at least
//! [`MaskOptions::min_gap_s`], on average such that blocks start every
//! [`MaskOptions::spacing_s`]. Its length is uniform in whole seconds from
//! [`MaskOptions::min_block_s`] to [`MaskOptions::max_block_s`], and it ends
//! at least `min_gap_s` before the log does, so every block has measured
//! windows on both sides (linear interpolation needs the one after). A block
//! hides, with probability [`MaskOptions::quantity_share`], every sensor of
//! one of the asset's redundant quantities (drawn uniformly), else one of
//! the asset's sensors (drawn uniformly: TwinBench's 8 channels give
//! redundant sensors 5 chances in 8). Blocks on one asset never overlap and
//! never touch. Everything is drawn from one seeded stream in a fixed order:
//! the same catalog, plant time, seed and options give the same mask.
//!
//! The plant time is the truth's (`truth.parquet` beside the log): a mask is
//! for scoring, and scoring needs the truth.

use std::path::{Path, PathBuf};

use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use twinflow_engine::catalog::{AssetId, Catalog, SensorId};
use twinflow_engine::error::{Error, Result};
use twinflow_engine::time::{Micros, SECOND};
use twinflow_operators::align::{Alignment, Fill};
use twinflow_operators::redundancy::Redundancy;

use super::{BlockKind, MaskCell, group_of, write_mask};
use crate::dataset::{ints, required, scan_file};
use crate::twinbench::truth::TRUTH_FILE;

/// The windows a mask hides: TwinBench's, 1 s long.
pub const MASK_WINDOW_US: Micros = SECOND;

/// How blocks are drawn. The defaults: blocks of 30–300 s starting every
/// 5 minutes on average per asset, a quarter of them a whole quantity, in
/// the last 40 % of the log, at least 10 s apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskOptions {
    pub seed: u64,
    /// The shortest block, in seconds.
    pub min_block_s: u64,
    /// The longest block, in seconds.
    pub max_block_s: u64,
    /// The mean time from one block's start to the next one's on an asset,
    /// in seconds.
    pub spacing_s: u64,
    /// The share of blocks that hide a whole redundant quantity.
    pub quantity_share: f64,
    /// The share of the plant time, at its end, that blocks are placed in.
    pub scored_share: f64,
    /// The fewest measured seconds between two blocks of an asset, and
    /// after its last block before the log ends.
    pub min_gap_s: u64,
}

impl Default for MaskOptions {
    fn default() -> Self {
        MaskOptions {
            seed: 1,
            min_block_s: 30,
            max_block_s: 300,
            spacing_s: 300,
            quantity_share: 0.25,
            scored_share: 0.4,
            min_gap_s: 10,
        }
    }
}

impl MaskOptions {
    fn check(&self) -> Result<()> {
        let problem = if self.min_block_s == 0 || self.min_block_s > self.max_block_s {
            Some("block lengths need 0 < min ≤ max")
        } else if !(0.0..=1.0).contains(&self.quantity_share) {
            Some("the share of whole-quantity blocks must lie in [0, 1]")
        } else if !(self.scored_share > 0.0 && self.scored_share <= 1.0) {
            Some("the scored share of the log must lie in (0, 1]")
        } else if self.spacing_s == 0 {
            Some("the spacing of blocks must be positive")
        } else {
            None
        };
        match problem {
            Some(problem) => Err(Error::Config(format!("mask options: {problem}"))),
            None => Ok(()),
        }
    }

    /// The gaps between blocks: uniform in whole seconds from `min_gap_s`
    /// to the value that makes the mean gap plus the mean block length
    /// `spacing_s` (no less than `min_gap_s`).
    fn gap_range_s(&self) -> (u64, u64) {
        let mean_block = (self.min_block_s + self.max_block_s) as f64 / 2.0;
        let mean_gap = (self.spacing_s as f64 - mean_block).max(self.min_gap_s as f64);
        let max_gap = (2.0 * mean_gap - self.min_gap_s as f64).round() as u64;
        (self.min_gap_s, max_gap.max(self.min_gap_s))
    }
}

/// The plant time of a log, `[first_us, end_us)`, on the window grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlantSpan {
    pub first_us: Micros,
    pub end_us: Micros,
}

impl PlantSpan {
    /// Where the scored span starts: the first window start at or after
    /// `1 − scored_share` of the way.
    pub fn scored_from(&self, scored_share: f64) -> Micros {
        let skipped =
            ((self.end_us - self.first_us) as f64 * (1.0 - scored_share)).ceil() as Micros;
        let at = self.first_us + skipped;
        at.div_euclid(MASK_WINDOW_US) * MASK_WINDOW_US
            + if at.rem_euclid(MASK_WINDOW_US) > 0 {
                MASK_WINDOW_US
            } else {
                0
            }
    }
}

/// The truth's span: from its first second to the end of its last.
pub fn plant_span(truth: &Path) -> Result<PlantSpan> {
    let (mut first, mut last) = (Micros::MAX, Micros::MIN);
    scan_file(truth, &["ts_us"], |path, batch| {
        let ts = required(ints(batch, "ts_us"), path, "ts_us")?;
        for t in ts.iter().flatten() {
            first = first.min(t);
            last = last.max(t);
        }
        Ok(())
    })?;
    if first > last {
        return Err(Error::format(
            truth,
            "the truth is empty: no plant time to mask",
        ));
    }
    Ok(PlantSpan {
        first_us: first,
        end_us: last + MASK_WINDOW_US,
    })
}

/// One block: `sensors` of `asset` hidden during `[start_us, end_us)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub asset: AssetId,
    /// In catalog order.
    pub sensors: Vec<SensorId>,
    pub start_us: Micros,
    pub end_us: Micros,
    pub kind: BlockKind,
}

/// Draws the blocks of every asset of `catalog` in `span` (see the module
/// doc); by asset, then start.
pub fn plan_blocks(
    catalog: &Catalog,
    span: PlantSpan,
    options: &MaskOptions,
) -> Result<Vec<Block>> {
    options.check()?;
    let alignment =
        Alignment::from_catalog(catalog, MASK_WINDOW_US, Fill::CarryForward { max_age: 0 });
    let redundancy = Redundancy::from_catalog(catalog, &alignment);
    let mut sensors_of: Vec<Vec<SensorId>> = vec![Vec::new(); catalog.assets().len()];
    for id in 0..catalog.sensors().len() as SensorId {
        sensors_of[catalog.asset_of(id) as usize].push(id);
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(options.seed);
    let (min_gap, max_gap) = options.gap_range_s();
    let scored_from = span.scored_from(options.scored_share);
    let last_end = span.end_us - options.min_gap_s as Micros * SECOND;
    let mut blocks = Vec::new();
    for (asset, sensors) in sensors_of.iter().enumerate() {
        let asset = asset as AssetId;
        let groups = redundancy.groups(asset);
        if sensors.is_empty() {
            continue;
        }
        // The first block may start at the span's start.
        let mut free_from = scored_from - min_gap as Micros * SECOND;
        loop {
            let gap = rng.random_range(min_gap..=max_gap) as Micros * SECOND;
            let length = rng.random_range(options.min_block_s..=options.max_block_s) as Micros;
            let whole_quantity = !groups.is_empty() && rng.random_bool(options.quantity_share);
            let (hidden, kind) = if whole_quantity {
                let group = &groups[rng.random_range(0..groups.len())];
                let mut hidden: Vec<SensorId> = group.members.iter().map(|m| m.sensor).collect();
                hidden.sort_unstable();
                (hidden, BlockKind::WholeQuantity)
            } else {
                let sensor = sensors[rng.random_range(0..sensors.len())];
                let kind = match group_of(sensor, groups) {
                    Some(_) => BlockKind::OneSensor,
                    None => BlockKind::NonRedundant,
                };
                (vec![sensor], kind)
            };
            let start_us = (free_from + gap).max(scored_from);
            let end_us = start_us + length * SECOND;
            if end_us > last_end {
                break;
            }
            blocks.push(Block {
                asset,
                sensors: hidden,
                start_us,
                end_us,
                kind,
            });
            free_from = end_us;
        }
    }
    Ok(blocks)
}

/// The hidden cells of `blocks`, one per sensor and window, by asset,
/// window and sensor.
pub fn cells_of(blocks: &[Block], catalog: &Catalog) -> Vec<MaskCell> {
    let mut cells = Vec::new();
    for block in blocks {
        let asset = &catalog.asset(block.asset).asset;
        for start in (block.start_us..block.end_us).step_by(MASK_WINDOW_US as usize) {
            for &sensor in &block.sensors {
                cells.push(MaskCell {
                    asset: asset.clone(),
                    channel: catalog.sensor(sensor).channel.clone(),
                    window_start_us: start,
                });
            }
        }
    }
    cells
}

/// What `twinflow mask` wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskReport {
    pub path: PathBuf,
    pub span: PlantSpan,
    /// Where blocks may start: the scored span is `[scored_from_us, span.end_us)`.
    pub scored_from_us: Micros,
    /// Blocks per kind, in [`BlockKind::ALL`] order.
    pub blocks: Vec<(BlockKind, u64)>,
    /// Rows of the mask file (hidden cells).
    pub cells: u64,
}

/// Writes the mask of the log in `log` (its directory, or a file in it:
/// the catalog and truth are read beside it) to `out`.
pub fn generate_mask(log: &Path, out: &Path, options: &MaskOptions) -> Result<MaskReport> {
    let dir = if log.is_file() {
        log.parent().unwrap_or(Path::new("."))
    } else {
        log
    };
    let catalog = Catalog::read_dir(dir)?;
    let truth = dir.join(TRUTH_FILE);
    if !truth.exists() {
        return Err(Error::Config(format!(
            "{} does not exist: a mask is placed in the truth's plant time (it is for \
             scoring against the truth)",
            truth.display()
        )));
    }
    let span = plant_span(&truth)?;
    let blocks = plan_blocks(&catalog, span, options)?;
    let cells = cells_of(&blocks, &catalog);
    let described = serde_json::to_string(options).expect("mask options serialize");
    let rows = write_mask(out, &cells, &[("twinflow.mask".to_owned(), described)])?;
    let count = |kind| blocks.iter().filter(|b| b.kind == kind).count() as u64;
    Ok(MaskReport {
        path: out.to_path_buf(),
        span,
        scored_from_us: span.scored_from(options.scored_share),
        blocks: BlockKind::ALL.iter().map(|&k| (k, count(k))).collect(),
        cells: rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scored_span_starts_on_the_grid() {
        let span = PlantSpan {
            first_us: 10 * SECOND,
            end_us: 110 * SECOND,
        };
        assert_eq!(span.scored_from(0.4), 70 * SECOND);
        // 60 % of 101 s is 60.6 s: the next second.
        let span = PlantSpan {
            first_us: 0,
            end_us: 101 * SECOND,
        };
        assert_eq!(span.scored_from(0.4), 61 * SECOND);
    }

    #[test]
    fn gaps_average_the_spacing_less_a_mean_block() {
        // Blocks of 30–300 s average 165 s; every 300 s leaves gaps of 135 s
        // on average: uniform in [10, 260].
        assert_eq!(MaskOptions::default().gap_range_s(), (10, 260));
        let dense = MaskOptions {
            spacing_s: 100,
            ..MaskOptions::default()
        };
        assert_eq!(dense.gap_range_s(), (10, 10));
    }
}
