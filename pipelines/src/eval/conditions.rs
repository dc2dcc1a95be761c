//! The labelled incidents, indexed by sensor and asset, and the condition each fused window falls under.

use std::path::Path;

use twinflow_engine::catalog::{AssetId, Catalog, SensorId};
use twinflow_engine::error::{Error, Result};
use twinflow_engine::time::Micros;

use crate::twinbench::labels::LabelRecord;

/// What a fused window of one quantity on one asset was exposed to (see the
/// module doc of [`crate::eval`] for the rules).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Condition {
    /// No incident on the quantity's sensors nor on the asset.
    Clean,
    /// Incidents of this one kind on exactly one sensor of the quantity.
    Incident(String),
    /// Incidents on two sensors, of two kinds, or an asset-level incident.
    Other,
}

/// The condition of [`Condition::Other`] in reports.
pub const OTHER: &str = "other";
/// The condition of [`Condition::Clean`] in reports.
pub const CLEAN: &str = "clean";

impl Condition {
    /// Its name in the table and in `eval.json`: `clean`, the incident kind, or `other`.
    pub fn name(&self) -> &str {
        match self {
            Condition::Clean => CLEAN,
            Condition::Incident(kind) => kind,
            Condition::Other => OTHER,
        }
    }
}

/// One labelled incident: `[start_us, end_us)` as `labels.csv` bounds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interval {
    pub kind: String,
    pub start_us: Micros,
    pub end_us: Micros,
}

impl Interval {
    /// Whether the incident and `[start_us, end_us)` share an instant.
    pub fn overlaps(&self, start_us: Micros, end_us: Micros) -> bool {
        self.start_us < end_us && start_us < self.end_us
    }
}

/// The labels of a log, by the sensor (or, for asset-level incidents, the
/// asset) they concern, each list in start order.
#[derive(Debug, Clone, Default)]
pub struct Incidents {
    by_sensor: Vec<Vec<Interval>>,
    by_asset: Vec<Vec<Interval>>,
}

impl Incidents {
    /// Indexes `labels` (read from `path`) by the catalog's ids; a label
    /// naming a sensor or asset the catalog lacks is an error.
    pub fn from_labels(labels: &[LabelRecord], catalog: &Catalog, path: &Path) -> Result<Self> {
        let mut incidents = Incidents {
            by_sensor: vec![Vec::new(); catalog.sensors().len()],
            by_asset: vec![Vec::new(); catalog.assets().len()],
        };
        for label in labels {
            let interval = Interval {
                kind: label.kind.clone(),
                start_us: label.start_us,
                end_us: label.end_us,
            };
            let unknown = |what: &str, name: &str| {
                Error::format(
                    path,
                    format!("a label names {what} {name:?}, which the catalog lacks"),
                )
            };
            if label.sensor.is_empty() {
                let asset = catalog
                    .asset_id(&label.asset)
                    .ok_or_else(|| unknown("asset", &label.asset))?;
                incidents.by_asset[asset as usize].push(interval);
            } else {
                let sensor = catalog
                    .sensor_id(&label.sensor)
                    .ok_or_else(|| unknown("sensor", &label.sensor))?;
                incidents.by_sensor[sensor as usize].push(interval);
            }
        }
        for list in incidents
            .by_sensor
            .iter_mut()
            .chain(&mut incidents.by_asset)
        {
            list.sort_by_key(|i| (i.start_us, i.end_us));
        }
        Ok(incidents)
    }

    /// The incidents of one sensor, in start order.
    pub fn of_sensor(&self, sensor: SensorId) -> &[Interval] {
        &self.by_sensor[sensor as usize]
    }

    /// The asset-level incidents (bearing faults) of one asset, in start order.
    pub fn of_asset(&self, asset: AssetId) -> &[Interval] {
        &self.by_asset[asset as usize]
    }

    /// Every sensor's incidents.
    pub fn by_sensor(&self) -> impl Iterator<Item = (SensorId, &[Interval])> {
        self.by_sensor
            .iter()
            .enumerate()
            .map(|(id, list)| (id as SensorId, list.as_slice()))
    }

    /// Whether an incident of `sensor` overlaps `[start_us, end_us)`.
    pub fn under_incident(&self, sensor: SensorId, start_us: Micros, end_us: Micros) -> bool {
        self.of_sensor(sensor)
            .iter()
            .any(|i| i.overlaps(start_us, end_us))
    }

    /// The condition of the window `[start_us, end_us)` of a quantity of
    /// `asset` measured by `sensors`.
    pub fn condition(
        &self,
        asset: AssetId,
        sensors: impl IntoIterator<Item = SensorId>,
        start_us: Micros,
        end_us: Micros,
    ) -> Condition {
        if self.by_asset[asset as usize]
            .iter()
            .any(|i| i.overlaps(start_us, end_us))
        {
            return Condition::Other;
        }
        let mut seen: Option<(SensorId, &str)> = None;
        for sensor in sensors {
            for incident in self.of_sensor(sensor) {
                if !incident.overlaps(start_us, end_us) {
                    continue;
                }
                match seen {
                    None => seen = Some((sensor, &incident.kind)),
                    Some((s, kind)) if s == sensor && kind == incident.kind => {}
                    Some(_) => return Condition::Other,
                }
            }
        }
        match seen {
            None => Condition::Clean,
            Some((_, kind)) => Condition::Incident(kind.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use twinflow_engine::catalog::{AssetRecord, SensorRecord};

    use super::*;

    fn catalog() -> Catalog {
        let asset = |name: &str| AssetRecord {
            asset: name.into(),
            line: "l".into(),
            site: "s".into(),
            kind: "pump".into(),
        };
        let sensor = |asset: &str, channel: &str| SensorRecord {
            sensor: format!("{asset}/{channel}"),
            asset: asset.into(),
            channel: channel.into(),
            kind: "temperature".into(),
            sigma: 1.0,
            min: 0.0,
            max: 100.0,
            rate_hz: None,
            quantity: None,
        };
        Catalog::new(
            vec![asset("a"), asset("b")],
            vec![sensor("a", "t1"), sensor("a", "t2"), sensor("b", "t1")],
        )
        .unwrap()
    }

    fn label(asset: &str, sensor: &str, kind: &str, start_us: i64, end_us: i64) -> LabelRecord {
        LabelRecord {
            asset: asset.into(),
            sensor: sensor.into(),
            kind: kind.into(),
            start_us,
            end_us,
        }
    }

    #[test]
    fn conditions_follow_the_rules() {
        let catalog = catalog();
        let labels = [
            label("a", "a/t1", "bias", 10, 20),
            label("a", "a/t1", "stuck", 25, 30),
            label("a", "a/t2", "drift", 28, 40),
            label("b", "", "bearing_fault", 0, 5),
        ];
        let incidents = Incidents::from_labels(&labels, &catalog, Path::new("l")).unwrap();
        let a = [0, 1];
        let of = |start, end| incidents.condition(0, a, start, end);
        assert_eq!(of(0, 10), Condition::Clean, "half-open: ends before 10");
        assert_eq!(of(9, 11), Condition::Incident("bias".into()));
        assert_eq!(of(19, 26), Condition::Other, "two kinds on one sensor");
        assert_eq!(of(29, 30), Condition::Other, "two sensors");
        assert_eq!(of(30, 41), Condition::Incident("drift".into()));
        assert_eq!(incidents.condition(1, [2], 4, 6), Condition::Other);
        assert_eq!(incidents.condition(1, [2], 5, 6), Condition::Clean);
        assert!(incidents.under_incident(0, 29, 31));
        assert!(!incidents.under_incident(1, 0, 28));
    }

    #[test]
    fn labels_of_unknown_sensors_are_refused() {
        let labels = [label("a", "a/t9", "bias", 0, 1)];
        let err = Incidents::from_labels(&labels, &catalog(), Path::new("labels.csv"));
        assert!(err.unwrap_err().to_string().contains("a/t9"));
    }
}
