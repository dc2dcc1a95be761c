//! Inverse-variance fusion of a replay's own windows, by the operators' [`InverseVariance`]: the plain fusion `--compare` puts beside the replay's.

use twinflow_engine::catalog::AssetId;
use twinflow_engine::time::Micros;
use twinflow_operators::align::{AlignedRow, AlignedValue, Source, WindowShape};
use twinflow_operators::fuse::{FusedValue, InverseVariance};

use super::WINDOW_US;
use super::inputs::Inputs;

/// Fuses the windows of `windows/` as TwinBench's step F does.
pub struct InverseVarianceReference<'a> {
    inputs: &'a Inputs,
    fusion: InverseVariance,
}

impl<'a> InverseVarianceReference<'a> {
    pub fn new(inputs: &'a Inputs) -> Self {
        InverseVarianceReference {
            inputs,
            fusion: InverseVariance::new(inputs.redundancy.clone()),
        }
    }

    /// The inverse-variance estimate of `quantity` (an index into the
    /// redundancy's quantities) of `asset` in the window starting at
    /// `start_us`, from the windows its sensors measured; `None` when none did.
    pub fn estimate(
        &self,
        asset: AssetId,
        start_us: Micros,
        quantity: usize,
    ) -> Option<FusedValue> {
        let missing = AlignedValue {
            value: None,
            source: Source::Missing,
            last_seen_us: None,
            window: None,
        };
        let mut row = AlignedRow {
            asset,
            start_us,
            end_us: start_us + WINDOW_US,
            values: vec![missing; self.inputs.alignment.channels().len()],
        };
        let group = self
            .inputs
            .redundancy
            .groups(asset)
            .iter()
            .find(|g| g.quantity == quantity)?;
        for member in &group.members {
            if let Some(window) = self.inputs.windows.get(&(member.sensor, start_us)) {
                let shape = WindowShape {
                    readings: window.count,
                    spread: None,
                    ahead: 0,
                };
                row.values[member.slot] =
                    AlignedValue::measured(window.mean, shape, Some(start_us));
            }
        }
        self.fusion.fuse_quantity(&row, quantity)
    }
}
