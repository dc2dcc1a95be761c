//! The plant catalog: assets (with their line and site) and sensors (with their
//! channel, noise and physical range), and the dense ids the dataflow uses.
//!
//! Names are interned once here; operators carry a [`SensorId`] (a `u32`) and
//! look the name up only when they write output.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Dense id of a sensor in a [`Catalog`].
pub type SensorId = u32;
/// Dense id of an asset in a [`Catalog`].
pub type AssetId = u32;

/// A row of `assets.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetRecord {
    pub asset: String,
    pub line: String,
    pub site: String,
    pub kind: String,
}

/// A row of `sensors.csv`: σ is the sensor's noise, `min`/`max` its physical range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorRecord {
    pub sensor: String,
    pub asset: String,
    pub channel: String,
    pub kind: String,
    pub sigma: f64,
    pub min: f64,
    pub max: f64,
    /// The rated sampling rate, if the table gives one (an optional column
    /// beyond TwinBench's): verification's flooding budget is twice it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_hz: Option<f64>,
    /// The quantity the sensor measures, if the table gives one (an optional
    /// column beyond TwinBench's): sensors of one asset that measure the same
    /// quantity are redundant and are fused. Without it, the sensor's `kind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<String>,
}

impl SensorRecord {
    /// The quantity the sensor measures: its `quantity`, else its `kind`.
    pub fn quantity(&self) -> &str {
        self.quantity.as_deref().unwrap_or(&self.kind)
    }
}

/// Assets and sensors with dense ids (their position in the tables).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    assets: Vec<AssetRecord>,
    sensors: Vec<SensorRecord>,
    sensor_asset: Vec<AssetId>,
    asset_ids: HashMap<String, AssetId>,
    sensor_ids: HashMap<String, SensorId>,
    /// The sensors' distinct kinds, and each sensor's as an index into them,
    /// so a row's kind is checked against the catalog's with no string compare.
    kinds: Vec<String>,
    sensor_kind: Vec<KindId>,
}

/// A sensor kind's index among the catalog's kinds.
pub type KindId = u32;

/// File name of the asset table inside a log directory.
pub const ASSETS_FILE: &str = "assets.csv";
/// File name of the sensor table inside a log directory.
pub const SENSORS_FILE: &str = "sensors.csv";

impl Catalog {
    /// Builds a catalog, checking names are unique, every sensor's asset
    /// exists, and no asset has two sensors on one channel (a channel is one
    /// column of the asset's aligned rows; redundant sensors are channels of
    /// the same kind, like TwinBench's `temp-1` … `temp-3`).
    pub fn new(
        assets: Vec<AssetRecord>,
        sensors: Vec<SensorRecord>,
    ) -> std::result::Result<Self, String> {
        let mut asset_ids = HashMap::with_capacity(assets.len());
        for (i, a) in assets.iter().enumerate() {
            if asset_ids.insert(a.asset.clone(), i as AssetId).is_some() {
                return Err(format!("asset {:?} is listed twice", a.asset));
            }
        }
        let mut sensor_ids = HashMap::with_capacity(sensors.len());
        let mut sensor_asset = Vec::with_capacity(sensors.len());
        let mut channels = std::collections::HashSet::with_capacity(sensors.len());
        for (i, s) in sensors.iter().enumerate() {
            if sensor_ids.insert(s.sensor.clone(), i as SensorId).is_some() {
                return Err(format!("sensor {:?} is listed twice", s.sensor));
            }
            if !channels.insert((s.asset.as_str(), s.channel.as_str())) {
                return Err(format!(
                    "sensor {:?}: asset {:?} already has a sensor on channel {:?}",
                    s.sensor, s.asset, s.channel
                ));
            }
            let asset = *asset_ids.get(&s.asset).ok_or_else(|| {
                format!("sensor {:?} names unknown asset {:?}", s.sensor, s.asset)
            })?;
            let ordered_range = s.min <= s.max;
            if !ordered_range || s.sigma < 0.0 || s.sigma.is_infinite() {
                return Err(format!("sensor {:?}: invalid sigma or range", s.sensor));
            }
            sensor_asset.push(asset);
        }
        let mut kinds: Vec<String> = Vec::new();
        let sensor_kind = sensors
            .iter()
            .map(|s| match kinds.iter().position(|k| *k == s.kind) {
                Some(i) => i as KindId,
                None => {
                    kinds.push(s.kind.clone());
                    kinds.len() as KindId - 1
                }
            })
            .collect();
        Ok(Catalog {
            assets,
            sensors,
            sensor_asset,
            asset_ids,
            sensor_ids,
            kinds,
            sensor_kind,
        })
    }

    /// A catalog of sensors found in a log that came without one: σ is unknown
    /// (NaN), the range unbounded, and each asset's line, site and kind are
    /// `unknown`. Entries are (sensor, asset, kind).
    pub fn discovered(entries: &[(String, String, String)]) -> std::result::Result<Self, String> {
        let mut asset_names: Vec<&String> = entries.iter().map(|(_, a, _)| a).collect();
        asset_names.sort();
        asset_names.dedup();
        let unknown = || "unknown".to_owned();
        let assets = asset_names
            .into_iter()
            .map(|a| AssetRecord {
                asset: a.clone(),
                line: unknown(),
                site: unknown(),
                kind: unknown(),
            })
            .collect();
        let sensors = entries
            .iter()
            .map(|(sensor, asset, kind)| SensorRecord {
                sensor: sensor.clone(),
                asset: asset.clone(),
                channel: sensor.rsplit('/').next().unwrap_or(sensor).to_owned(),
                kind: kind.clone(),
                sigma: f64::NAN,
                min: f64::NEG_INFINITY,
                max: f64::INFINITY,
                rate_hz: None,
                quantity: None,
            })
            .collect();
        Catalog::new(assets, sensors)
    }

    /// Reads `assets.csv` and `sensors.csv` from a directory.
    pub fn read_dir(dir: &Path) -> Result<Self> {
        let assets_path = dir.join(ASSETS_FILE);
        let sensors_path = dir.join(SENSORS_FILE);
        let open = |path: &Path| File::open(path).map_err(|e| Error::io(path, e));
        Catalog::from_csv(
            open(&assets_path)?,
            &assets_path,
            open(&sensors_path)?,
            &sensors_path,
        )
    }

    /// Parses and validates the asset and sensor tables from any readers (the
    /// contents of `assets.csv` and `sensors.csv`); the paths only name them
    /// in errors. The input is untrusted: any bytes give a catalog or an
    /// error, never a panic.
    pub fn from_csv(
        assets: impl Read,
        assets_path: &Path,
        sensors: impl Read,
        sensors_path: &Path,
    ) -> Result<Self> {
        let assets: Vec<AssetRecord> = read_csv_from(assets, assets_path)?;
        let sensors: Vec<SensorRecord> = read_csv_from(sensors, sensors_path)?;
        Catalog::new(assets, sensors).map_err(|e| Error::format(sensors_path, e))
    }

    /// Writes `assets.csv` and `sensors.csv` into a directory.
    pub fn write_dir(&self, dir: &Path) -> Result<()> {
        write_csv(&dir.join(ASSETS_FILE), &self.assets)?;
        write_csv(&dir.join(SENSORS_FILE), &self.sensors)
    }

    pub fn assets(&self) -> &[AssetRecord] {
        &self.assets
    }
    pub fn sensors(&self) -> &[SensorRecord] {
        &self.sensors
    }
    pub fn sensor(&self, id: SensorId) -> &SensorRecord {
        &self.sensors[id as usize]
    }
    pub fn asset(&self, id: AssetId) -> &AssetRecord {
        &self.assets[id as usize]
    }
    /// The asset a sensor belongs to.
    pub fn asset_of(&self, id: SensorId) -> AssetId {
        self.sensor_asset[id as usize]
    }
    pub fn sensor_id(&self, name: &str) -> Option<SensorId> {
        self.sensor_ids.get(name).copied()
    }
    pub fn asset_id(&self, name: &str) -> Option<AssetId> {
        self.asset_ids.get(name).copied()
    }
    /// The id of a sensor kind (there are few: a search is quickest).
    pub fn kind_id(&self, name: &str) -> Option<KindId> {
        self.kinds
            .iter()
            .position(|k| k == name)
            .map(|i| i as KindId)
    }
    /// A sensor's kind, as [`Catalog::kind_id`] numbers it.
    pub fn kind_of(&self, id: SensorId) -> KindId {
        self.sensor_kind[id as usize]
    }
}

/// Reads a headed CSV file into records.
pub fn read_csv<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    read_csv_from(file, path)
}

/// Reads headed CSV records from any reader; `path` names the input in errors.
pub fn read_csv_from<T: for<'de> Deserialize<'de>>(
    input: impl Read,
    path: &Path,
) -> Result<Vec<T>> {
    let mut reader = csv::Reader::from_reader(input);
    let mut out = Vec::new();
    for row in reader.deserialize() {
        out.push(row.map_err(|e| csv_error(path, e))?);
    }
    Ok(out)
}

/// Writes records as a headed CSV file.
pub fn write_csv<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut writer = csv::Writer::from_path(path).map_err(|e| csv_error(path, e))?;
    for row in rows {
        writer.serialize(row).map_err(|e| csv_error(path, e))?;
    }
    writer.flush().map_err(|e| Error::io(path, e))
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(path, io),
        other => Error::format(path, format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensor(name: &str, asset: &str) -> SensorRecord {
        SensorRecord {
            sensor: name.into(),
            asset: asset.into(),
            channel: "temp-1".into(),
            kind: "temperature".into(),
            sigma: 0.2,
            min: -50.0,
            max: 250.0,
            quantity: None,
            rate_hz: None,
        }
    }

    /// Sensors of one kind share its id; other kinds and unknown names do not.
    #[test]
    fn kinds_are_numbered_once_each() {
        let assets = vec![AssetRecord {
            asset: "a".into(),
            line: "l".into(),
            site: "s".into(),
            kind: "pump".into(),
        }];
        let with_kind = |name: &str, channel: &str, kind: &str| SensorRecord {
            channel: channel.into(),
            kind: kind.into(),
            ..sensor(name, "a")
        };
        let sensors = vec![
            with_kind("a/t1", "temp-1", "temperature"),
            with_kind("a/p", "pressure", "pressure"),
            with_kind("a/t2", "temp-2", "temperature"),
        ];
        let cat = Catalog::new(assets, sensors).unwrap();
        assert_eq!(cat.kind_of(0), cat.kind_of(2));
        assert_ne!(cat.kind_of(0), cat.kind_of(1));
        assert_eq!(cat.kind_id("temperature"), Some(cat.kind_of(0)));
        assert_eq!(cat.kind_id("pressure"), Some(cat.kind_of(1)));
        assert_eq!(cat.kind_id("flow"), None);
    }

    #[test]
    fn roundtrip_and_validation() {
        let assets = vec![AssetRecord {
            asset: "a".into(),
            line: "l".into(),
            site: "s".into(),
            kind: "pump".into(),
        }];
        let cat = Catalog::new(assets.clone(), vec![sensor("a/t", "a")]).unwrap();
        let dir = std::env::temp_dir().join(format!("twinflow-catalog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        cat.write_dir(&dir).unwrap();
        let back = Catalog::read_dir(&dir).unwrap();
        assert_eq!(back.sensors(), cat.sensors());
        assert_eq!(back.asset_of(back.sensor_id("a/t").unwrap()), 0);
        std::fs::remove_dir_all(&dir).unwrap();

        assert!(Catalog::new(assets.clone(), vec![sensor("a/t", "b")]).is_err());
        assert!(
            Catalog::new(assets.clone(), vec![sensor("a/t", "a"), sensor("a/t", "a")]).is_err()
        );
        // The tables are outside input: parsed from bytes, a row that does
        // not fit (here a sensor of an unknown asset) is an error naming the file.
        let assets_csv = "asset,line,site,kind\na,l,s,pump\n";
        let sensors_csv =
            "sensor,asset,channel,kind,sigma,min,max\na/t,a,temp-1,temperature,0.2,-50,250\n";
        let cat = Catalog::from_csv(
            assets_csv.as_bytes(),
            Path::new("assets.csv"),
            sensors_csv.as_bytes(),
            Path::new("sensors.csv"),
        )
        .unwrap();
        assert_eq!(cat.sensor_id("a/t"), Some(0));
        let error = Catalog::from_csv(
            assets_csv.as_bytes(),
            Path::new("assets.csv"),
            sensors_csv.replace("a/t,a,", "a/t,b,").as_bytes(),
            Path::new("sensors.csv"),
        )
        .unwrap_err();
        assert!(error.to_string().starts_with("sensors.csv: "), "{error}");
        for bad in [
            "asset,line\n\"a",
            "\u{feff}x\n1",
            "asset,line,site,kind\na,l,s\n",
        ] {
            let result = Catalog::from_csv(
                bad.as_bytes(),
                Path::new("assets.csv"),
                &b""[..],
                Path::new("sensors.csv"),
            );
            assert!(result.is_err(), "{bad:?}");
        }

        // Two sensors of one asset on one channel would share a column.
        let error = Catalog::new(assets, vec![sensor("a/t", "a"), sensor("a/u", "a")]).unwrap_err();
        assert!(error.contains("channel \"temp-1\""), "{error}");
    }
}
