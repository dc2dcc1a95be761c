//! `labels.csv`: one row per injected incident — asset, sensor (empty for
//! asset-level incidents), kind, start_us, end_us — written as incidents are
//! planned, so the file is ordered by start time and never held in memory.
//!
//! Intervals are half-open, `[start_us, end_us)`, in microseconds since the Unix
//! epoch. For faults, dropouts, false data and flooding they bound the event
//! time (`ts_us`) of the affected samples; for forged and replayed events they
//! bound the arrival time (`arrival_us`) of the injected events (a replayed
//! event carries the old event time of its original); for time shifts they
//! bound the true sample time of the shifted readings, whose `ts_us` is that
//! time plus the incident's shift (1–4.5 s), so it may lie past `end_us`.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use twinflow_engine::{Error, Result};

use super::incidents::{Incident, IncidentKind};
use super::plant::Plant;

/// File name of the labels inside an output directory.
pub const LABELS_FILE: &str = "labels.csv";

/// A row of `labels.csv`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelRecord {
    pub asset: String,
    /// Empty for asset-level incidents (bearing faults).
    pub sensor: String,
    pub kind: String,
    pub start_us: i64,
    pub end_us: i64,
}

impl LabelRecord {
    pub fn of(incident: &Incident, plant: &Plant) -> Self {
        LabelRecord {
            asset: plant.asset_name(incident.asset).to_owned(),
            sensor: incident
                .sensor
                .map(|s| plant.sensor_name(s).to_owned())
                .unwrap_or_default(),
            kind: incident.kind().name().to_owned(),
            start_us: incident.start_us,
            end_us: incident.end_us,
        }
    }

    /// The kind, if it is one TwinBench knows.
    pub fn incident_kind(&self) -> Option<IncidentKind> {
        IncidentKind::from_name(&self.kind)
    }

    /// Whether `t_us` falls in `[start_us, end_us)`.
    pub fn covers(&self, t_us: i64) -> bool {
        self.start_us <= t_us && t_us < self.end_us
    }
}

/// Streams labels to `labels.csv`.
pub struct LabelWriter {
    path: PathBuf,
    writer: csv::Writer<BufWriter<File>>,
    rows: usize,
}

impl LabelWriter {
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        // The header is written by hand (not derived from the first row), so a
        // run without incidents still produces a well-formed, headed file.
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(BufWriter::new(file));
        writer
            .write_record(["asset", "sensor", "kind", "start_us", "end_us"])
            .map_err(|e| csv_error(path, e))?;
        Ok(LabelWriter {
            path: path.to_path_buf(),
            writer,
            rows: 0,
        })
    }

    pub fn write(&mut self, label: &LabelRecord) -> Result<()> {
        self.rows += 1;
        self.writer
            .serialize(label)
            .map_err(|e| csv_error(&self.path, e))
    }

    /// Flushes the file; returns the number of labels written.
    pub fn finish(mut self) -> Result<usize> {
        self.writer.flush().map_err(|e| Error::io(&self.path, e))?;
        Ok(self.rows)
    }
}

/// Reads `labels.csv`.
pub fn read_labels(path: &Path) -> Result<Vec<LabelRecord>> {
    twinflow_engine::catalog::read_csv(path)
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    Error::format(path, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twinbench::incidents::Effect;

    #[test]
    fn labels_round_trip_with_empty_sensor_for_asset_level() {
        let plant = Plant::new(2);
        let dir = std::env::temp_dir().join(format!("twinbench-labels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(LABELS_FILE);
        let incidents = [
            Incident {
                effect: Effect::BearingFault { develop_s: 60.0 },
                asset: 1,
                sensor: None,
                start_us: 5,
                end_us: 9,
            },
            Incident {
                effect: Effect::Stuck,
                asset: 0,
                sensor: Some(3),
                start_us: 7,
                end_us: 8,
            },
        ];
        let mut writer = LabelWriter::create(&path).unwrap();
        for i in &incidents {
            writer.write(&LabelRecord::of(i, &plant)).unwrap();
        }
        assert_eq!(writer.finish().unwrap(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "asset,sensor,kind,start_us,end_us\n\
             asset-0001,,bearing_fault,5,9\n\
             asset-0000,asset-0000/press-1,stuck,7,8\n"
        );
        let back = read_labels(&path).unwrap();
        assert_eq!(back[0].incident_kind(), Some(IncidentKind::BearingFault));
        assert_eq!(back[1].sensor, "asset-0000/press-1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_labels_file_has_header() {
        let dir =
            std::env::temp_dir().join(format!("twinbench-labels-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(LABELS_FILE);
        assert_eq!(LabelWriter::create(&path).unwrap().finish().unwrap(), 0);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "asset,sensor,kind,start_us,end_us\n"
        );
        assert!(read_labels(&path).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
