//! Generative models in the dataflow: per asset, a model of its channels that learns from each fused window, imputes what is not measured, witnesses fusion and scores each window.
//!
//! # What a model of an asset sees
//! One channel per fused quantity of the asset (named by the quantity, e.g.
//! `temperature`; its values are the fused estimates, since the redundant
//! sensors measure one thing), then each of the asset's other channels (e.g.
//! `vib-1`, `current`, `flow`), with a few lags and slow copies of every
//! channel ([`ModelShape`]; see [`crate::model::Smoothed`]). A trained model
//! is matched to an asset by these channel names.

use twinflow_engine::catalog::{AssetId, Catalog};

use crate::align::Alignment;
use crate::model::{Channel, Layout, ModelError, Smoothed};
use crate::redundancy::Redundancy;

/// The lags and slow copies of an asset model's layout.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelShape {
    /// Past windows in the state.
    pub lags: usize,
    /// Time constants (in windows) of the slow copies kept of every channel.
    pub smoothing: Vec<f64>,
}

impl Default for ModelShape {
    /// Two lags, and slow copies over a minute and five minutes of 1 s
    /// windows: TwinBench's temperature follows load with a time constant of
    /// minutes.
    fn default() -> Self {
        ModelShape {
            lags: 2,
            smoothing: vec![60.0, 300.0],
        }
    }
}

/// The layout of `asset`'s model (see the module doc): its fused quantities
/// first, in the order of [`Redundancy::quantities`], each at its group's
/// first member's alignment index; then its channels outside every group, in
/// alignment order. `None` for an asset without a sensor.
pub fn asset_layout(
    catalog: &Catalog,
    alignment: &Alignment,
    redundancy: &Redundancy,
    asset: AssetId,
    shape: &ModelShape,
) -> Result<Option<Layout>, ModelError> {
    let groups = redundancy.groups(asset);
    let mut channels: Vec<Channel> = groups
        .iter()
        .map(|g| Channel {
            index: g.members[0].slot,
            name: redundancy.quantities()[g.quantity].clone(),
        })
        .collect();
    let grouped = |slot: usize| {
        groups
            .iter()
            .any(|g| g.members.iter().any(|m| m.slot == slot))
    };
    let mut own: Vec<usize> = catalog
        .sensors()
        .iter()
        .enumerate()
        .filter(|&(id, _)| catalog.asset_of(id as u32) == asset)
        .map(|(id, _)| alignment.slot_of(id as u32).1)
        .filter(|&slot| !grouped(slot))
        .collect();
    own.sort_unstable();
    own.dedup();
    channels.extend(own.into_iter().map(|slot| Channel {
        index: slot,
        name: alignment.channels()[slot].clone(),
    }));
    if channels.is_empty() {
        return Ok(None);
    }
    let smoothed = (0..channels.len())
        .flat_map(|channel| {
            shape
                .smoothing
                .iter()
                .map(move |&windows| Smoothed { channel, windows })
        })
        .collect();
    Layout::new(channels, shape.lags)?
        .with_smoothed(smoothed)
        .map(Some)
}
