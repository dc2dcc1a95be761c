//! What an asset model learns from, read back from a replay's output: per asset, its model's channels window by window on the grid — each fused quantity's estimate (`fused/`) and each other channel's own window mean (`aligned/`, carried values left out).
//!
//! The channels are the ones the reference pipeline's models see
//! ([`asset_layout`] with the catalog, alignment and redundancy of
//! TwinBench's reference pipeline, as `replay` builds them). The catalog is
//! `--catalog`'s, else the one the replay read: its path is in the lineage of
//! every file the replay wrote ([`crate::lineage`]); a replay that discovered
//! its catalog from the log records none, and then the catalog must be given.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::Array;

use twinflow_engine::catalog::{Catalog, SENSORS_FILE};
use twinflow_engine::error::{Error, Result};
use twinflow_engine::time::Micros;
use twinflow_operators::asset_models::{ModelShape, asset_layout};
use twinflow_operators::model::Layout;

use crate::dataset::{floats, ints, parts, required, scan, strings};
use crate::lineage::Lineage;
use crate::pipeline::twinbench;

/// One asset's model channels on the window grid.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetWindows {
    pub asset: String,
    /// The layout of the asset's model.
    pub layout: Layout,
    /// The start of the first window (the asset's first row in the output).
    pub start_us: Micros,
    /// The grid's step.
    pub window_us: Micros,
    /// One per grid window from `start_us` to the asset's last row, each in
    /// layout order; `None` where the channel was not measured.
    pub windows: Vec<Vec<Option<f64>>>,
}

/// Every asset's windows in a replay's output.
#[derive(Debug, Clone)]
pub struct ReplayWindows {
    /// The replay's output directory.
    pub out: PathBuf,
    /// Where the catalog was read from.
    pub catalog_dir: PathBuf,
    pub catalog: Catalog,
    /// The grid's step.
    pub window_us: Micros,
    /// In catalog order; assets without a row in the output are left out.
    pub assets: Vec<AssetWindows>,
}

/// Where a layout channel's values come from.
#[derive(Debug, Clone, Copy)]
enum Column {
    /// `fused/`, this quantity (a name in the redundancy's quantities).
    Fused(usize),
    /// `aligned/`, this channel (an alignment index), when measured.
    Aligned(usize),
}

/// Whether `dir` looks like a replay's output (it has `aligned/` parts).
pub fn is_replay_output(dir: &Path) -> bool {
    parts(&dir.join("aligned")).is_ok_and(|p| !p.is_empty())
}

/// The catalog a replay in `out` read, or `explicit`: see the module doc.
pub fn replay_catalog(out: &Path, explicit: Option<&Path>) -> Result<(PathBuf, Catalog)> {
    let dir = match explicit {
        Some(dir) => dir.to_path_buf(),
        None => {
            let aligned = out.join("aligned");
            let first = parts(&aligned)?.into_iter().next().ok_or_else(|| {
                Error::Config(format!(
                    "{} is not a replay's output: no aligned/ parts",
                    out.display()
                ))
            })?;
            let sensors = Lineage::read(&first)?.catalog.ok_or_else(|| {
                Error::Config(format!(
                    "the replay in {} discovered its catalog from the log and recorded none: \
                     give the directory of its {SENSORS_FILE} with --catalog",
                    out.display()
                ))
            })?;
            Path::new(&sensors)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default()
        }
    };
    let catalog = Catalog::read_dir(&dir)?;
    Ok((dir, catalog))
}

/// Reads every asset's model channels from the replay output `out`.
pub fn read_replay_windows(
    out: &Path,
    catalog: Option<&Path>,
    shape: &ModelShape,
) -> Result<ReplayWindows> {
    if !is_replay_output(out) {
        return Err(Error::Config(format!(
            "{} is not a replay's output: no aligned/ parts",
            out.display()
        )));
    }
    let (catalog_dir, catalog) = replay_catalog(out, catalog)?;
    let pipeline = twinbench();
    let alignment = pipeline.alignment(&catalog)?;
    let redundancy = pipeline.redundancy(&catalog, &alignment)?;
    let model_error = |e| Error::Config(format!("asset model layout: {e}"));
    // Per asset: its layout and where each of its channels comes from.
    let mut plans: Vec<Option<(Layout, Vec<Column>)>> = Vec::new();
    for asset in 0..catalog.assets().len() as u32 {
        let Some(layout) =
            asset_layout(&catalog, &alignment, &redundancy, asset, shape).map_err(model_error)?
        else {
            plans.push(None);
            continue;
        };
        let groups = redundancy.groups(asset);
        let columns = layout
            .channels()
            .iter()
            .map(|c| {
                groups
                    .iter()
                    .find(|g| redundancy.quantities()[g.quantity] == c.name)
                    .map_or(Column::Aligned(c.index), |g| Column::Fused(g.quantity))
            })
            .collect();
        plans.push(Some((layout, columns)));
    }
    let width = |asset: usize| plans[asset].as_ref().map_or(0, |(l, _)| l.channel_count());
    let mut rows: Vec<BTreeMap<Micros, Vec<Option<f64>>>> = vec![BTreeMap::new(); plans.len()];
    let asset_id = |name: &str, dir: &Path| {
        catalog
            .asset_id(name)
            .map(|a| a as usize)
            .ok_or_else(|| Error::format(dir, format!("asset {name:?} is not in the catalog")))
    };

    let aligned = out.join("aligned");
    scan(&aligned, &[], |path, batch| {
        let assets = required(strings(batch, "asset"), path, "asset")?;
        let starts = required(ints(batch, "window_start_us"), path, "window_start_us")?;
        let channels: Vec<_> = alignment
            .channels()
            .iter()
            .map(|name| {
                (
                    floats(batch, name),
                    strings(batch, &format!("{name}_source")),
                )
            })
            .collect();
        for i in 0..batch.num_rows() {
            let asset = asset_id(assets.value(i), path)?;
            let Some((_, columns)) = &plans[asset] else {
                continue;
            };
            let row = rows[asset]
                .entry(starts.value(i))
                .or_insert_with(|| vec![None; columns.len()]);
            for (slot, column) in row.iter_mut().zip(columns) {
                let Column::Aligned(index) = *column else {
                    continue;
                };
                if let (Some(values), Some(sources)) = &channels[index]
                    && values.is_valid(i)
                    && sources.is_valid(i)
                    && sources.value(i) == "measured"
                {
                    *slot = Some(values.value(i));
                }
            }
        }
        Ok(())
    })?;
    let fused = out.join("fused");
    scan(
        &fused,
        &["asset", "window_start_us", "quantity", "value"],
        |path, batch| {
            let assets = required(strings(batch, "asset"), path, "asset")?;
            let starts = required(ints(batch, "window_start_us"), path, "window_start_us")?;
            let quantities = required(strings(batch, "quantity"), path, "quantity")?;
            let values = required(floats(batch, "value"), path, "value")?;
            for i in 0..batch.num_rows() {
                let asset = asset_id(assets.value(i), path)?;
                let Some((_, columns)) = &plans[asset] else {
                    continue;
                };
                let Some(position) = columns.iter().position(|c| {
                    matches!(*c, Column::Fused(q) if redundancy.quantities()[q] == quantities.value(i))
                }) else {
                    continue;
                };
                if values.is_valid(i) {
                    rows[asset]
                        .entry(starts.value(i))
                        .or_insert_with(|| vec![None; width(asset)])[position] =
                        Some(values.value(i));
                }
            }
            Ok(())
        },
    )?;

    let window_us = alignment.grid();
    let mut assets = Vec::new();
    for (asset, (plan, rows)) in plans.into_iter().zip(rows).enumerate() {
        let (Some((layout, _)), Some((&first, _)), Some((&last, _))) =
            (plan, rows.first_key_value(), rows.last_key_value())
        else {
            continue;
        };
        let count = ((last - first) / window_us + 1) as usize;
        let mut windows = vec![vec![None; layout.channel_count()]; count];
        for (start, row) in rows {
            if (start - first) % window_us != 0 {
                return Err(Error::format(
                    &aligned,
                    format!("a window at {start} µs is off the grid of {window_us} µs"),
                ));
            }
            windows[((start - first) / window_us) as usize] = row;
        }
        assets.push(AssetWindows {
            asset: catalog.assets()[asset].asset.clone(),
            layout,
            start_us: first,
            window_us,
            windows,
        });
    }
    Ok(ReplayWindows {
        out: out.to_path_buf(),
        catalog_dir,
        catalog,
        window_us,
        assets,
    })
}
