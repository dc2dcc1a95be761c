//! A model on disk: a directory with `manifest.json` (kind, channels, lags, format version) and `parameters.safetensors` (every number the model computes with, as f64 tensors).
//!
//! The numbers live only in the safetensors file, as little-endian f64, so a
//! saved and reloaded model computes bit for bit the same; the manifest says
//! what the model is and is meant to be read by people too.

use std::fs;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use super::{Channel, Layout, ModelError, ModelKind, Smoothed};

pub const MANIFEST: &str = "manifest.json";
pub const PARAMETERS: &str = "parameters.safetensors";
/// The format version written; a reader refuses any other.
pub const FORMAT_VERSION: u32 = 1;

/// What `manifest.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub kind: ModelKind,
    pub channels: Vec<Channel>,
    pub lags: usize,
    /// Slow copies of channels (absent in a model without them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub smoothed: Vec<Smoothed>,
}

impl Manifest {
    pub fn new(kind: ModelKind, layout: &Layout) -> Self {
        Manifest {
            format_version: FORMAT_VERSION,
            kind,
            channels: layout.channels().to_vec(),
            lags: layout.lags(),
            smoothed: layout.smoothed().to_vec(),
        }
    }

    /// Refuses a manifest of another kind of model than `kind`.
    pub fn expect_kind(&self, kind: ModelKind, dir: &Path) -> Result<(), ModelError> {
        if self.kind == kind {
            return Ok(());
        }
        Err(format_error(
            dir,
            format_args!("a {} model, not a {}", self.kind.name(), kind.name()),
        ))
    }

    pub fn layout(&self) -> Result<Layout, ModelError> {
        Layout::new(self.channels.clone(), self.lags)?.with_smoothed(self.smoothed.clone())
    }
}

/// A named f64 tensor of a model, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

impl Tensor {
    pub fn new(name: &str, shape: Vec<usize>, values: Vec<f64>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        Tensor {
            name: name.to_owned(),
            shape,
            values,
        }
    }
}

fn format_error(dir: &Path, what: impl std::fmt::Display) -> ModelError {
    ModelError::Format(format!("{}: {what}", dir.display()))
}

fn io_error(path: &Path, error: std::io::Error) -> ModelError {
    ModelError::Io(format!("{}: {error}", path.display()))
}

/// Writes the manifest and the tensors into `dir` (created if needed).
pub fn save(dir: &Path, manifest: &Manifest, tensors: &[Tensor]) -> Result<(), ModelError> {
    fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            TensorView::new(Dtype::F64, t.shape.clone(), b)
                .map(|view| (t.name.as_str(), view))
                .map_err(|e| format_error(dir, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let parameters = safetensors::serialize(views, None).map_err(|e| format_error(dir, e))?;
    let path = dir.join(PARAMETERS);
    fs::write(&path, parameters).map_err(|e| io_error(&path, e))?;
    let path = dir.join(MANIFEST);
    let json = serde_json::to_string_pretty(manifest).map_err(|e| format_error(dir, e))?;
    fs::write(&path, json + "\n").map_err(|e| io_error(&path, e))
}

/// Reads the manifest of the model in `dir`.
pub fn read_manifest(dir: &Path) -> Result<Manifest, ModelError> {
    let path = dir.join(MANIFEST);
    let json = fs::read(&path).map_err(|e| io_error(&path, e))?;
    let manifest: Manifest = serde_json::from_slice(&json).map_err(|e| format_error(&path, e))?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(format_error(
            &path,
            format_args!(
                "format version {} (this build reads {FORMAT_VERSION})",
                manifest.format_version
            ),
        ));
    }
    Ok(manifest)
}

/// The tensors of the model in `dir`, each checked to be f64.
pub fn read_tensors(dir: &Path) -> Result<Vec<Tensor>, ModelError> {
    let path = dir.join(PARAMETERS);
    let bytes = fs::read(&path).map_err(|e| io_error(&path, e))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| format_error(&path, e))?;
    let mut tensors = Vec::new();
    for (name, view) in file.iter() {
        if view.dtype() != Dtype::F64 {
            return Err(format_error(
                &path,
                format_args!("tensor {name} is {:?}, not F64", view.dtype()),
            ));
        }
        let values = view
            .data()
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("chunks of 8 bytes")))
            .collect();
        tensors.push(Tensor::new(name, view.shape().to_vec(), values));
    }
    Ok(tensors)
}

/// The tensor `name` of `shape`, taken out of `tensors`.
pub fn take(
    tensors: &mut Vec<Tensor>,
    name: &str,
    shape: &[usize],
    dir: &Path,
) -> Result<Vec<f64>, ModelError> {
    let at = tensors
        .iter()
        .position(|t| t.name == name)
        .ok_or_else(|| format_error(dir, format_args!("no tensor {name}")))?;
    let tensor = tensors.swap_remove(at);
    if tensor.shape != shape {
        return Err(format_error(
            dir,
            format_args!(
                "tensor {name} has shape {:?}, expected {shape:?}",
                tensor.shape
            ),
        ));
    }
    Ok(tensor.values)
}
