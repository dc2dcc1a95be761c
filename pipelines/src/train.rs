//! `twinflow train`: trains a model of every asset on a replay's output (a raw log is replayed first) and saves them as a model set ([`twinflow_operators::model::set`]).
//!
//! Each asset's windows ([`crate::asset_windows`]) are pushed in grid order
//! into a [`History`] of its model's layout. The online Gaussian learns in
//! that one pass, as it would inside the dataflow. The mixture keeps the
//! history's states and is fitted by [`GaussianMixture::fit`]: a start from
//! the complete states, then passes of EM over all of them. Assets are
//! independent, so they are trained on several threads; each asset's model
//! is the same whatever the threads. The neural model trains one network
//! for all the assets of a layout ([`neural::train`]), epoch by epoch, and
//! saves it into each asset's directory with the asset's standardisation.
//!
//! A raw log (a Parquet file, or a directory of them without `aligned/`) is
//! replayed by the reference pipeline into a temporary directory, which is
//! removed once read.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use chrono::DateTime;
use indicatif::ProgressBar;
use twinflow_engine::error::{Error, Result};
use twinflow_operators::asset_models::ModelShape;
use twinflow_operators::model::gaussian::{GaussianOptions, OnlineGaussian};
use twinflow_operators::model::mixture::{GaussianMixture, MixtureOptions};
use twinflow_operators::model::neural;
use twinflow_operators::model::neural::train::{AssetStates, NeuralOptions};
use twinflow_operators::model::set::{AssetEntry, MODELS_FILE, ModelSet, SET_FORMAT_VERSION};
use twinflow_operators::model::{AssetModel, History, ModelError, ModelKind};

use crate::asset_windows::{AssetWindows, is_replay_output, read_replay_windows};
use crate::pipeline::twinbench;
use crate::replay::ReplayOptions;

/// What to train, on what, and where to put it.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// A replay's output directory, or a raw log.
    pub history: PathBuf,
    pub kind: ModelKind,
    /// The model set's directory.
    pub out: PathBuf,
    /// The catalog's directory, when the replay's lineage names none.
    pub catalog: Option<PathBuf>,
    pub shape: ModelShape,
    /// The Gaussian's options (each component's, in a mixture).
    pub gaussian: GaussianOptions,
    /// The mixture's components and EM passes.
    pub components: usize,
    pub passes: usize,
    /// One model for every asset, learnt from all their windows (the assets
    /// must share a layout), rather than one per asset: a plant's assets
    /// together show every operating regime, where one asset may not.
    pub pooled: bool,
    /// A pooled Gaussian's worth, in windows, against what each asset then
    /// teaches it online (see [`OnlineGaussian::reweighted`]).
    pub prior_windows: f64,
    /// The neural network's shape, epochs, step size and seed.
    pub neural: NeuralOptions,
    /// Threads training assets side by side.
    pub threads: usize,
    pub progress: bool,
}

impl TrainOptions {
    /// The defaults: the reference pipeline's model shape, the models'
    /// default options, 3 components and 5 passes, a thread per core.
    pub fn new(history: impl Into<PathBuf>, kind: ModelKind, out: impl Into<PathBuf>) -> Self {
        let mixture = MixtureOptions::default();
        TrainOptions {
            history: history.into(),
            kind,
            out: out.into(),
            catalog: None,
            shape: ModelShape::default(),
            gaussian: mixture.gaussian,
            components: mixture.components,
            passes: 5,
            pooled: false,
            prior_windows: 3600.0,
            neural: NeuralOptions::default(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            progress: false,
        }
    }
}

/// What a training run did.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport {
    pub assets: usize,
    /// Grid windows learnt from, over all assets.
    pub windows: u64,
    /// Whether the history was a raw log, replayed first.
    pub replayed: bool,
    pub elapsed_s: f64,
    /// The neural model's mean loss per epoch (of the first layout's
    /// network); empty for the other models.
    pub losses: Vec<f64>,
}

/// Trains every asset's model and writes the set (see the module doc).
pub fn train(options: &TrainOptions) -> Result<TrainReport> {
    let started = Instant::now();
    check_out(&options.out)?;
    let replayed = !is_replay_output(&options.history);
    let scratch = replayed.then(|| {
        std::env::temp_dir().join(format!(
            "twinflow-train-{}-{}",
            std::process::id(),
            started.elapsed().as_nanos()
        ))
    });
    let source = match &scratch {
        Some(dir) => {
            if options.progress {
                eprintln!(
                    "{} is not a replay's output: replaying it into {}",
                    options.history.display(),
                    dir.display()
                );
            }
            twinbench().replay(&ReplayOptions {
                progress: options.progress,
                catalog: options.catalog.clone(),
                ..ReplayOptions::new(&options.history, dir)
            })?;
            dir.clone()
        }
        None => options.history.clone(),
    };
    let read = read_replay_windows(&source, options.catalog.as_deref(), &options.shape);
    if let Some(dir) = &scratch {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let history = read?;
    if history.assets.is_empty() {
        return Err(Error::Config(format!(
            "{}: no asset has a window to learn from",
            options.history.display()
        )));
    }

    if options.pooled && options.kind == ModelKind::Neural {
        return Err(Error::Config(
            "the neural model always shares one network among the assets of a layout (each \
             with its own standardisation): --pooled is for the Gaussian and the mixture"
                .into(),
        ));
    }
    let (models, losses) = if options.kind == ModelKind::Neural {
        let bar = crate::progress::bar(
            options.progress,
            options.neural.epochs as u64 * layouts(&history.assets).len() as u64,
            "train {elapsed_precise} [{bar:40}] {pos}/{len} epochs, eta {eta} {msg}",
        );
        let trained = train_neural(&options.neural, &history.assets, &bar)?;
        bar.finish_and_clear();
        trained
    } else {
        let steps = match options.kind {
            ModelKind::Mixture => options.passes as u64 + 1,
            _ => 1,
        };
        let bar = crate::progress::bar(
            options.progress,
            history.assets.len() as u64 * steps,
            "train {elapsed_precise} [{bar:40}] {pos}/{len} asset steps, eta {eta}",
        );
        let models = if options.pooled {
            vec![train_pooled(options, &history.assets, &bar)?]
        } else {
            train_assets(options, &history.assets, &bar)?
        };
        bar.finish_and_clear();
        (models, Vec::new())
    };

    let mut entries = Vec::with_capacity(history.assets.len());
    for (i, asset) in history.assets.iter().enumerate() {
        let dir = if options.pooled {
            POOLED_DIR.to_owned()
        } else {
            AssetEntry::dir_name(&asset.asset).map_err(model_error)?
        };
        let entry = AssetEntry {
            asset: asset.asset.clone(),
            dir,
            channels: asset.layout.channels().to_vec(),
            windows: asset.windows.len() as u64,
        };
        if let Some(model) = models.get(i) {
            model
                .save(&ModelSet::model_dir(&options.out, &entry))
                .map_err(model_error)?;
        }
        entries.push(entry);
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    let set = ModelSet {
        format_version: SET_FORMAT_VERSION,
        kind: options.kind,
        trained_from: std::path::absolute(&options.history)
            .unwrap_or_else(|_| options.history.clone())
            .display()
            .to_string(),
        trained_at: now_utc(),
        training: serde_json::json!({
            "lags": options.shape.lags,
            "smoothing_windows": options.shape.smoothing,
            "half_life_windows": options.gaussian.half_life,
            "components": (options.kind == ModelKind::Mixture).then_some(options.components),
            "em_passes": (options.kind == ModelKind::Mixture).then_some(options.passes),
            "pooled": options.pooled,
            "prior_windows": (options.pooled && options.kind == ModelKind::Gaussian)
                .then_some(options.prior_windows),
            "neural": (options.kind == ModelKind::Neural).then(|| serde_json::json!({
                "hidden_layers": options.neural.hidden_layers,
                "width": options.neural.width,
                "epochs": options.neural.epochs,
                "learning_rate": options.neural.learning_rate,
                "batch": options.neural.batch,
                "seed": options.neural.seed,
                "losses": losses,
            })),
            "replayed_first": replayed,
            "catalog": history.catalog_dir.display().to_string(),
            "elapsed_s": elapsed_s,
        }),
        assets: entries,
    };
    set.write(&options.out).map_err(model_error)?;
    Ok(TrainReport {
        assets: history.assets.len(),
        windows: history.assets.iter().map(|a| a.windows.len() as u64).sum(),
        replayed,
        elapsed_s,
        losses,
    })
}

/// The directory of a pooled model, which every asset's entry names.
pub const POOLED_DIR: &str = "plant";

/// One model learnt from every asset's windows, each asset's in grid order
/// from an empty history. The Gaussian learns them all with equal weight,
/// then is reweighted to `options.prior_windows` with the options' half-life.
fn train_pooled(
    options: &TrainOptions,
    assets: &[AssetWindows],
    bar: &ProgressBar,
) -> Result<Box<dyn AssetModel>> {
    let layout = &assets[0].layout;
    if let Some(other) = assets.iter().find(|a| !a.layout.same_shape(layout)) {
        return Err(Error::Config(format!(
            "a pooled model needs one layout for every asset: {} has {:?}, {} has {:?}",
            assets[0].asset,
            layout.names(),
            other.asset,
            other.layout.names()
        )));
    }
    let states = || {
        assets.iter().flat_map(|asset| {
            let mut history = History::new(layout);
            asset.windows.iter().map(move |window| {
                history.push(window);
                history.clone()
            })
        })
    };
    let model: Box<dyn AssetModel> = match options.kind {
        ModelKind::Gaussian => {
            let equal_weights = GaussianOptions {
                half_life: f64::INFINITY,
                ..options.gaussian
            };
            let mut model = OnlineGaussian::new(layout.clone(), equal_weights);
            for history in states() {
                model.update(&history);
            }
            bar.inc(assets.len() as u64);
            Box::new(model.reweighted(options.prior_windows, options.gaussian.half_life))
        }
        ModelKind::Mixture => {
            let states: Vec<Vec<Option<f64>>> = states().map(|h| h.state().to_vec()).collect();
            bar.inc(assets.len() as u64);
            let mixture = MixtureOptions {
                components: options.components,
                gaussian: options.gaussian,
                ..MixtureOptions::default()
            };
            Box::new(
                GaussianMixture::fit(layout.clone(), mixture, &states, options.passes, || {
                    bar.inc(assets.len() as u64)
                })
                .map_err(model_error)?,
            )
        }
        ModelKind::Neural => {
            return Err(Error::Config(
                "a neural model is not pooled (see train)".into(),
            ));
        }
    };
    Ok(model)
}

/// Every asset's model, in asset order.
type Models = Vec<Box<dyn AssetModel>>;

/// An asset's model, or why it could not be trained.
type Trained = Result<Box<dyn AssetModel>>;

/// Trains each asset's model, on `options.threads` threads, in asset order.
fn train_assets(
    options: &TrainOptions,
    assets: &[AssetWindows],
    bar: &ProgressBar,
) -> Result<Vec<Box<dyn AssetModel>>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Trained>>> =
        Mutex::new((0..assets.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..options.threads.clamp(1, assets.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(asset) = assets.get(i) else {
                        break;
                    };
                    let model = train_one(options, asset, bar)
                        .map_err(|e| Error::Config(format!("training asset {}: {e}", asset.asset)));
                    results.lock().expect("no thread panicked")[i] = Some(model);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("no thread panicked")
        .into_iter()
        .map(|r| r.expect("every asset was trained"))
        .collect()
}

/// One asset's model, learnt from its windows in grid order.
fn train_one(
    options: &TrainOptions,
    asset: &AssetWindows,
    bar: &ProgressBar,
) -> std::result::Result<Box<dyn AssetModel>, ModelError> {
    let layout = &asset.layout;
    let mut history = History::new(layout);
    match options.kind {
        ModelKind::Gaussian => {
            let mut model = OnlineGaussian::new(layout.clone(), options.gaussian);
            for window in &asset.windows {
                history.push(window);
                model.update(&history);
            }
            bar.inc(1);
            Ok(Box::new(model))
        }
        ModelKind::Mixture => {
            let states = states(asset);
            bar.inc(1);
            let mixture = MixtureOptions {
                components: options.components,
                gaussian: options.gaussian,
                ..MixtureOptions::default()
            };
            let model =
                GaussianMixture::fit(layout.clone(), mixture, &states, options.passes, || {
                    bar.inc(1)
                })?;
            Ok(Box::new(model))
        }
        ModelKind::Neural => unreachable!("neural models are trained by train_neural"),
    }
}

/// An asset's states, as its history holds them after each window.
fn states(asset: &AssetWindows) -> Vec<Vec<Option<f64>>> {
    let mut history = History::new(&asset.layout);
    asset
        .windows
        .iter()
        .map(|window| {
            history.push(window);
            history.state().to_vec()
        })
        .collect()
}

/// The assets' distinct layouts (channel names, lags, slow copies), in
/// order of first appearance, each with its assets' positions.
fn layouts(assets: &[AssetWindows]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, asset) in assets.iter().enumerate() {
        match groups
            .iter_mut()
            .find(|g| assets[g[0]].layout.same_shape(&asset.layout))
        {
            Some(members) => members.push(i),
            None => groups.push(vec![i]),
        }
    }
    groups
}

/// The neural models of every asset, in asset order: one network per
/// layout, trained on all its assets; and the first network's losses.
fn train_neural(
    options: &NeuralOptions,
    assets: &[AssetWindows],
    bar: &ProgressBar,
) -> Result<(Models, Vec<f64>)> {
    let mut models: Vec<Option<Box<dyn AssetModel>>> = (0..assets.len()).map(|_| None).collect();
    let mut losses = Vec::new();
    for members in layouts(assets) {
        let states: Vec<_> = members.iter().map(|&i| states(&assets[i])).collect();
        let inputs: Vec<AssetStates> = members
            .iter()
            .zip(&states)
            .map(|(&i, states)| AssetStates {
                layout: &assets[i].layout,
                states,
            })
            .collect();
        let trained = neural::train::train(&inputs, options, |epoch, loss| {
            bar.set_message(format!("epoch {} loss {loss:.4}", epoch + 1));
            bar.inc(1);
        })
        .map_err(|e| {
            Error::Config(format!(
                "training the network of assets {}…: {e}",
                assets[members[0]].asset
            ))
        })?;
        if losses.is_empty() {
            losses = trained.losses;
        }
        for (&i, model) in members.iter().zip(trained.models) {
            models[i] = Some(Box::new(model));
        }
    }
    let models = models
        .into_iter()
        .map(|m| m.expect("every asset is in one layout"))
        .collect();
    Ok((models, losses))
}

/// Refuses to write a model set over a directory that holds something else.
fn check_out(out: &Path) -> Result<()> {
    let Ok(mut entries) = std::fs::read_dir(out) else {
        return Ok(());
    };
    if entries.next().is_none() || out.join(MODELS_FILE).is_file() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{} holds files and no {MODELS_FILE}: give a new or empty directory, or a model set's",
        out.display()
    )))
}

fn model_error(e: ModelError) -> Error {
    Error::Config(format!("model: {e}"))
}

/// Now, as an RFC 3339 UTC time to the second.
fn now_utc() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    DateTime::from_timestamp(seconds, 0)
        .unwrap_or(DateTime::UNIX_EPOCH)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
