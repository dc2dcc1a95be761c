//! Trained models of a plant's assets on disk: a directory with `models.json` (the kind, the assets, what they were trained from and when) and one model directory per asset ([`super::store`]).
//!
//! ```text
//! MODEL/models.json
//! MODEL/asset-0000/manifest.json
//! MODEL/asset-0000/parameters.safetensors
//! MODEL/asset-0001/…
//! ```
//!
//! The assets are listed in `models.json` in the order they were trained
//! (the catalog's); a reader goes by that list, not by the directories.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{AssetModel, Channel, ModelError, ModelKind, load};

/// The index of a model set.
pub const MODELS_FILE: &str = "models.json";
/// The format version written; a reader refuses any other.
pub const SET_FORMAT_VERSION: u32 = 1;

/// What `models.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSet {
    pub format_version: u32,
    pub kind: ModelKind,
    /// What the models learnt from (e.g. a replay's output directory).
    pub trained_from: String,
    /// When, as an RFC 3339 UTC time.
    pub trained_at: String,
    /// How they were trained (free-form, for people: options, passes, time taken).
    #[serde(default)]
    pub training: serde_json::Value,
    pub assets: Vec<AssetEntry>,
}

/// One asset's model in a set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetEntry {
    /// The asset's name in the catalog.
    pub asset: String,
    /// Its model's directory, relative to the set's.
    pub dir: String,
    /// The model's channels (as in its manifest).
    pub channels: Vec<Channel>,
    /// Windows of history it learnt from.
    pub windows: u64,
}

impl AssetEntry {
    /// The directory name for an asset's model: its name, which must not
    /// be empty, `.` or `..`, nor hold a path separator.
    pub fn dir_name(asset: &str) -> Result<String, ModelError> {
        if asset.is_empty() || asset == "." || asset == ".." || asset.contains(['/', '\\']) {
            return Err(ModelError::Layout(format!(
                "asset name {asset:?} cannot name a model directory"
            )));
        }
        Ok(asset.to_owned())
    }
}

impl ModelSet {
    /// Writes `models.json` into `dir` (the asset models are saved apart).
    pub fn write(&self, dir: &Path) -> Result<(), ModelError> {
        fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let path = dir.join(MODELS_FILE);
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| ModelError::Format(format!("{}: {e}", path.display())))?;
        fs::write(&path, json + "\n").map_err(|e| io_error(&path, e))
    }

    /// Reads the `models.json` of the set in `dir`.
    pub fn read(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join(MODELS_FILE);
        let json = fs::read(&path).map_err(|e| io_error(&path, e))?;
        let set: ModelSet = serde_json::from_slice(&json)
            .map_err(|e| ModelError::Format(format!("{}: {e}", path.display())))?;
        if set.format_version != SET_FORMAT_VERSION {
            return Err(ModelError::Format(format!(
                "{}: format version {} (this build reads {SET_FORMAT_VERSION})",
                path.display(),
                set.format_version
            )));
        }
        for entry in &set.assets {
            if AssetEntry::dir_name(&entry.dir).is_err() {
                return Err(ModelError::Format(format!(
                    "{}: asset {} has the model directory {:?}, not a name inside the set",
                    path.display(),
                    entry.asset,
                    entry.dir
                )));
            }
        }
        if set.assets.is_empty() {
            return Err(ModelError::Format(format!(
                "{}: no asset models",
                path.display()
            )));
        }
        Ok(set)
    }

    /// The directory of `entry`'s model in the set in `dir`.
    pub fn model_dir(dir: &Path, entry: &AssetEntry) -> PathBuf {
        dir.join(&entry.dir)
    }

    /// Every asset's model of the set in `dir`, in the set's order; each
    /// must be of the set's kind and cover the channels listed.
    pub fn load_all(&self, dir: &Path) -> Result<Vec<Box<dyn AssetModel>>, ModelError> {
        self.assets
            .iter()
            .map(|entry| {
                let model = load(&Self::model_dir(dir, entry))?;
                if model.kind() != self.kind || model.layout().channels() != entry.channels {
                    return Err(ModelError::Format(format!(
                        "{}: asset {}'s model is not the {:?} model over {:?} that {MODELS_FILE} lists",
                        dir.display(),
                        entry.asset,
                        self.kind,
                        entry.channels.iter().map(|c| &c.name).collect::<Vec<_>>()
                    )));
                }
                Ok(model)
            })
            .collect()
    }
}

fn io_error(path: &Path, error: std::io::Error) -> ModelError {
    ModelError::Io(format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Layout;
    use crate::model::gaussian::{GaussianOptions, OnlineGaussian};

    #[test]
    fn a_set_reads_back_and_loads_its_models_in_order() {
        let dir = std::env::temp_dir().join(format!("twinflow-model-set-{}", std::process::id()));
        let mut entries = Vec::new();
        for (asset, names) in [("pump-b", &["flow", "current"][..]), ("pump-a", &["flow"])] {
            let layout = Layout::of_names(names, 1).unwrap();
            let entry = AssetEntry {
                asset: asset.into(),
                dir: AssetEntry::dir_name(asset).unwrap(),
                channels: layout.channels().to_vec(),
                windows: 0,
            };
            OnlineGaussian::new(layout, GaussianOptions::default())
                .save(&ModelSet::model_dir(&dir, &entry))
                .unwrap();
            entries.push(entry);
        }
        let set = ModelSet {
            format_version: SET_FORMAT_VERSION,
            kind: ModelKind::Gaussian,
            trained_from: "nowhere".into(),
            trained_at: "2026-01-01T00:00:00Z".into(),
            training: serde_json::Value::Null,
            assets: entries,
        };
        set.write(&dir).unwrap();
        let read = ModelSet::read(&dir).unwrap();
        assert_eq!(read, set);
        let models = read.load_all(&dir).unwrap();
        assert_eq!(models.len(), 2);
        assert_eq!(models[0].layout().channel_count(), 2);
        assert_eq!(models[1].layout().channel_count(), 1);

        // A set whose index does not match its models is refused.
        let mut wrong = set.clone();
        wrong.kind = ModelKind::Mixture;
        assert!(matches!(wrong.load_all(&dir), Err(ModelError::Format(_))));
        wrong = set.clone();
        wrong.assets[0].dir = "../elsewhere".into();
        wrong.write(&dir).unwrap();
        assert!(matches!(ModelSet::read(&dir), Err(ModelError::Format(_))));
        assert!(AssetEntry::dir_name("a/b").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
