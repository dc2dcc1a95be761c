//! Redundancy: which sensors of each asset measure the same quantity, and so are fused.
//!
//! Fusion never guesses redundancy from a sensor's `kind` string alone: two
//! pressures of a pump (suction and outlet) share a kind and measure different
//! things. Redundancy is declared, in the sensor table's optional `quantity`
//! column (a sensor without one measures its `kind`) or by the pipeline
//! ([`Redundancy::declare`]), and a group needs at least two sensors. A
//! sensor without a known noise σ (finite, positive; a catalog discovered
//! from a log has none) cannot be weighed, and is not fused.

use twinflow_engine::catalog::{AssetId, Catalog, SensorId};
use twinflow_engine::error::{Error, Result};

use crate::align::Alignment;

/// A redundant sensor: its id, its channel's index in an aligned row, and
/// its noise σ (per reading) from the sensor table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Member {
    pub sensor: SensorId,
    pub slot: usize,
    pub sigma: f64,
}

/// The sensors of one asset that measure one quantity.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Index into [`Redundancy::quantities`].
    pub quantity: usize,
    /// In channel order, so every use visits them alike.
    pub members: Vec<Member>,
}

/// The redundant groups of every asset.
#[derive(Debug, Clone, PartialEq)]
pub struct Redundancy {
    quantities: Vec<String>,
    /// Per asset id.
    groups: Vec<Vec<Group>>,
}

impl Redundancy {
    /// A group per asset and quantity (the sensor table's `quantity`, else
    /// the sensor's kind) measured by at least two of the asset's sensors.
    pub fn from_catalog(catalog: &Catalog, alignment: &Alignment) -> Self {
        Self::grouped(catalog, alignment, |sensor| {
            Some(catalog.sensor(sensor).quantity().to_owned())
        })
    }

    /// Groups as declared by a pipeline: each `(quantity, channels)` says
    /// that the sensors on those channels of each asset measure `quantity`;
    /// sensors on other channels are not fused. A channel the plant does not
    /// have, or one declared twice, is an error, so a typo never passes
    /// silently.
    pub fn declare(
        catalog: &Catalog,
        alignment: &Alignment,
        declared: &[(String, Vec<String>)],
    ) -> Result<Self> {
        let mut quantity_of: Vec<Option<&str>> = vec![None; alignment.channels().len()];
        for (quantity, channels) in declared {
            for channel in channels {
                let slot = alignment.channel_index(channel).ok_or_else(|| {
                    Error::Config(format!(
                        "quantity {quantity:?} names channel {channel:?}, which the plant does \
                         not have (its channels: {})",
                        alignment.channels().join(", ")
                    ))
                })?;
                if let Some(other) = quantity_of[slot].replace(quantity) {
                    return Err(Error::Config(format!(
                        "channel {channel:?} is declared for both {other:?} and {quantity:?}"
                    )));
                }
            }
        }
        Ok(Self::grouped(catalog, alignment, |sensor| {
            let (_, slot) = alignment.slot_of(sensor);
            quantity_of[slot].map(str::to_owned)
        }))
    }

    fn grouped(
        catalog: &Catalog,
        alignment: &Alignment,
        quantity_of: impl Fn(SensorId) -> Option<String>,
    ) -> Self {
        let mut by_asset: Vec<Vec<(String, Vec<Member>)>> =
            vec![Vec::new(); catalog.assets().len()];
        for (id, record) in catalog.sensors().iter().enumerate() {
            let sensor = id as SensorId;
            let Some(quantity) = quantity_of(sensor).filter(|_| weighable(record.sigma)) else {
                continue;
            };
            let (asset, slot) = alignment.slot_of(sensor);
            let member = Member {
                sensor,
                slot,
                sigma: record.sigma,
            };
            let groups = &mut by_asset[asset as usize];
            match groups.iter_mut().find(|(q, _)| *q == quantity) {
                Some((_, members)) => members.push(member),
                None => groups.push((quantity, vec![member])),
            }
        }
        let mut quantities: Vec<String> = Vec::new();
        let groups = by_asset
            .into_iter()
            .map(|groups| {
                groups
                    .into_iter()
                    .filter(|(_, members)| members.len() >= 2)
                    .map(|(name, mut members)| {
                        members.sort_by_key(|m| m.slot);
                        let quantity = match quantities.iter().position(|q| *q == name) {
                            Some(q) => q,
                            None => {
                                quantities.push(name);
                                quantities.len() - 1
                            }
                        };
                        Group { quantity, members }
                    })
                    .collect()
            })
            .collect();
        Redundancy { quantities, groups }
    }

    /// How many of the catalog's sensors have no known σ, and so are never
    /// fused.
    pub fn unweighable(catalog: &Catalog) -> usize {
        catalog
            .sensors()
            .iter()
            .filter(|s| !weighable(s.sigma))
            .count()
    }

    /// The fused quantities' names, in order of first appearance.
    pub fn quantities(&self) -> &[String] {
        &self.quantities
    }

    /// The channels that have a redundant sensor on some asset, in channel
    /// order.
    pub fn channels(&self, alignment: &Alignment) -> Vec<String> {
        let mut slots: Vec<usize> = self
            .groups
            .iter()
            .flatten()
            .flat_map(|g| g.members.iter().map(|m| m.slot))
            .collect();
        slots.sort_unstable();
        slots.dedup();
        slots
            .into_iter()
            .map(|slot| alignment.channels()[slot].clone())
            .collect()
    }

    /// The redundant groups of an asset.
    pub fn groups(&self, asset: AssetId) -> &[Group] {
        self.groups
            .get(asset as usize)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// Whether a noise σ can weigh a sensor's readings.
fn weighable(sigma: f64) -> bool {
    sigma.is_finite() && sigma > 0.0
}

#[cfg(test)]
mod tests {
    use twinflow_engine::catalog::{AssetRecord, SensorRecord};

    use super::*;
    use crate::align::Fill;

    fn pump() -> Catalog {
        let asset = AssetRecord {
            asset: "p".into(),
            line: "l".into(),
            site: "s".into(),
            kind: "pump".into(),
        };
        let sensor = |channel: &str, kind: &str, quantity: Option<&str>| SensorRecord {
            sensor: format!("p/{channel}"),
            asset: "p".into(),
            channel: channel.into(),
            kind: kind.into(),
            sigma: 0.1,
            min: 0.0,
            max: 10.0,
            rate_hz: None,
            quantity: quantity.map(Into::into),
        };
        Catalog::new(
            vec![asset],
            vec![
                sensor("suction", "pressure", None),
                sensor("outlet-a", "pressure", Some("outlet pressure")),
                sensor("outlet-b", "pressure", Some("outlet pressure")),
                sensor("speed", "speed", None),
            ],
        )
        .unwrap()
    }

    fn alignment(catalog: &Catalog) -> Alignment {
        Alignment::from_catalog(catalog, 1, Fill::CarryForward { max_age: 0 })
    }

    #[test]
    fn the_quantity_column_keeps_same_kind_sensors_apart() {
        let catalog = pump();
        let redundancy = Redundancy::from_catalog(&catalog, &alignment(&catalog));
        // Suction is alone in "pressure": no group; the outlets are one.
        assert_eq!(redundancy.quantities(), ["outlet pressure"]);
        let groups = redundancy.groups(0);
        assert_eq!(groups.len(), 1);
        let sensors: Vec<SensorId> = groups[0].members.iter().map(|m| m.sensor).collect();
        assert_eq!(sensors, [1, 2]);
    }

    #[test]
    fn sensors_without_a_known_sigma_are_not_fused() {
        let catalog = Catalog::discovered(&[
            ("p/a".into(), "p".into(), "pressure".into()),
            ("p/b".into(), "p".into(), "pressure".into()),
        ])
        .unwrap();
        let redundancy = Redundancy::from_catalog(&catalog, &alignment(&catalog));
        assert!(redundancy.quantities().is_empty());
        assert!(redundancy.groups(0).is_empty());
        assert_eq!(Redundancy::unweighable(&catalog), 2);
        assert_eq!(Redundancy::unweighable(&pump()), 0);
    }

    #[test]
    fn a_pipeline_declares_groups_by_channel() {
        let catalog = pump();
        let alignment = alignment(&catalog);
        let declared = [(
            "inlet".to_owned(),
            vec!["suction".into(), "outlet-a".into()],
        )];
        let redundancy = Redundancy::declare(&catalog, &alignment, &declared).unwrap();
        assert_eq!(redundancy.quantities(), ["inlet"]);
        let slots: Vec<usize> = redundancy.groups(0)[0]
            .members
            .iter()
            .map(|m| m.slot)
            .collect();
        assert_eq!(slots, [0, 1]);

        let typo = [("x".to_owned(), vec!["sucton".into(), "speed".into()])];
        let error = Redundancy::declare(&catalog, &alignment, &typo).unwrap_err();
        assert!(error.to_string().contains("\"sucton\""), "{error}");
        let twice = [
            ("x".to_owned(), vec!["speed".into(), "suction".into()]),
            ("y".to_owned(), vec!["speed".into(), "outlet-b".into()]),
        ];
        let error = Redundancy::declare(&catalog, &alignment, &twice).unwrap_err();
        assert!(error.to_string().contains("both"), "{error}");
    }
}
