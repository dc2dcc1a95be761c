//! The Rust API for declaring a pipeline: windows → align → fuse → detect → twin views, each step a choice.
//!
//! A pipeline is a value: its steps are functions of the plant catalog (which
//! is only known when a log is opened), so one definition serves any plant.
//!
//! ```no_run
//! use twinflow_engine::time::SECOND;
//! use twinflow_operators::align::Fill;
//! use twinflow_pipelines::pipeline::Pipeline;
//! use twinflow_pipelines::replay::ReplayOptions;
//!
//! let pipeline = Pipeline::new("pump-station", "1.0")
//!     .window_size(10 * SECOND)
//!     .fill_channel("speed", Fill::Linear { max_span: 60 * SECOND })
//!     .detect("jump", |_catalog, _sensor| {
//!         // Flag any window whose mean jumps by more than 50 from the one before.
//!         let mut previous: Option<f64> = None;
//!         move |_start: i64, x: f64| {
//!             let jump = previous.map(|p| (x - p).abs()).filter(|j| *j > 50.0);
//!             previous = Some(x);
//!             jump
//!         }
//!     });
//! let summary = pipeline.replay(&ReplayOptions::new("station/events.parquet", "station/out"))?;
//! # Ok::<(), twinflow_engine::error::Error>(())
//! ```

use std::sync::Arc;

use twinflow_engine::catalog::{Catalog, SensorId, SensorRecord};
use twinflow_engine::error::{Error, Result};
use twinflow_engine::time::{Micros, SECOND};
use twinflow_operators::align::{Alignment, Fill};
use twinflow_operators::asset_models::{AssetModels, ModelOptions};
use twinflow_operators::detect::{Detector, EwmaZScore};
use twinflow_operators::fuse::{Fusion, InverseVariance};
use twinflow_operators::kalman_fusion::{KalmanFusion, KalmanOptions};
use twinflow_operators::redundancy::Redundancy;

use crate::replay::{ReplayOptions, Summary, run};

type MakeFusion = dyn Fn(&Catalog, Redundancy) -> Arc<dyn Fusion> + Send + Sync;
type MakeDetector = dyn Fn(&Catalog, SensorId) -> Box<dyn Detector> + Send + Sync;
type RatedRate = dyn Fn(&SensorRecord) -> Option<f64> + Send + Sync;

/// A pipeline: per-sensor tumbling windows, aligned per asset onto the window
/// grid, fused, scored per sensor, and kept as twin views.
#[derive(Clone)]
pub struct Pipeline {
    name: String,
    version: String,
    window_size: Micros,
    default_fill: Fill,
    channel_fills: Vec<(String, Fill)>,
    /// Declared redundant groups: (quantity, channels); empty for the
    /// catalog's (see [`Redundancy`]).
    redundant: Vec<(String, Vec<String>)>,
    fusion: Arc<MakeFusion>,
    detector: Arc<MakeDetector>,
    detector_name: String,
    rated_rate: Arc<RatedRate>,
    model: Option<ModelOptions>,
    windows_only: bool,
}

impl Pipeline {
    /// A pipeline with TwinBench's choices: 1 s windows, channels carried
    /// forward for at most 5 windows, inverse-variance fusion of the
    /// catalog's redundant sensors, and the EWMA z-score detector.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Pipeline {
            name: name.into(),
            version: version.into(),
            window_size: SECOND,
            default_fill: Fill::CarryForward {
                max_age: 5 * SECOND,
            },
            channel_fills: Vec::new(),
            redundant: Vec::new(),
            fusion: Arc::new(|_, redundancy| Arc::new(InverseVariance::new(redundancy))),
            detector: Arc::new(|_, _| Box::new(EwmaZScore::twinbench())),
            detector_name: EwmaZScore::NAME.to_owned(),
            rated_rate: Arc::new(|sensor| sensor.rate_hz),
            model: None,
            windows_only: false,
        }
    }

    /// The size of the tumbling windows, which is also the alignment grid.
    pub fn window_size(mut self, size: Micros) -> Self {
        assert!(size > 0, "the window size must be positive");
        self.window_size = size;
        self
    }

    /// How channels without a window of their own are filled, by default.
    pub fn fill(mut self, fill: Fill) -> Self {
        self.default_fill = fill;
        self
    }

    /// How one channel (a name in the sensor table's `channel` column) is
    /// filled; replaying a plant without that channel is an error, so a typo
    /// never passes silently.
    pub fn fill_channel(mut self, channel: impl Into<String>, fill: Fill) -> Self {
        self.channel_fills.push((channel.into(), fill));
        self
    }

    /// Declares that the sensors on `channels` of each asset measure one
    /// `quantity`, and so are fused. Once any group is declared, only
    /// declared groups are fused; without a declaration, the sensor table's
    /// `quantity` column (else each sensor's kind) groups them. Naming a
    /// channel the plant lacks is an error when the pipeline runs.
    pub fn redundant<C: Into<String>>(
        mut self,
        quantity: impl Into<String>,
        channels: impl IntoIterator<Item = C>,
    ) -> Self {
        let channels = channels.into_iter().map(Into::into).collect();
        self.redundant.push((quantity.into(), channels));
        self
    }

    /// The fusion of each asset's aligned rows, made from the catalog and
    /// the redundant groups (see [`Pipeline::redundant`]).
    pub fn fuse<F: Fusion>(
        mut self,
        make: impl Fn(&Catalog, Redundancy) -> F + Send + Sync + 'static,
    ) -> Self {
        self.fusion = Arc::new(move |catalog, redundancy| Arc::new(make(catalog, redundancy)));
        self
    }

    /// One of the built-in fusions (see [`FusionMethod`]).
    pub fn fusion_method(self, method: FusionMethod) -> Self {
        match method {
            FusionMethod::InverseVariance => {
                self.fuse(|_catalog, redundancy| InverseVariance::new(redundancy))
            }
            FusionMethod::Kalman(options) => self.fuse(move |catalog, redundancy| {
                KalmanFusion::new(catalog, redundancy, options.clone())
            }),
        }
    }

    /// The detector of each sensor's windows (a [`Detector`], or any closure
    /// `FnMut(window_start_us, value) -> Option<score>`), made per sensor,
    /// and its name in `flags/`'s `detector` column.
    /// Give a closure's parameter types (`|_start: Micros, x: f64|`): Rust
    /// cannot infer them through the `Detector` bound.
    pub fn detect<D: Detector>(
        mut self,
        name: impl Into<String>,
        make: impl Fn(&Catalog, SensorId) -> D + Send + Sync + 'static,
    ) -> Self {
        self.detector = Arc::new(move |catalog, sensor| Box::new(make(catalog, sensor)));
        self.detector_name = name.into();
        self
    }

    /// A sensor's rated rate in Hz, which sets verification's flooding
    /// budget (twice its count per second); by default the sensor table's
    /// optional `rate_hz` column. A sensor without one is never flooding.
    pub fn rated_rate(
        mut self,
        rate: impl Fn(&SensorRecord) -> Option<f64> + Send + Sync + 'static,
    ) -> Self {
        self.rated_rate = Arc::new(rate);
        self
    }

    /// A generative model per asset (see
    /// [`twinflow_operators::asset_models`]): it learns how the asset's
    /// channels behave together, imputes the channels not measured in a
    /// window (`imputed/`), witnesses the fusion of each quantity with its
    /// prediction from the other channels, and scores each window.
    pub fn model(mut self, options: ModelOptions) -> Self {
        self.model = Some(options);
        self
    }

    /// No model: nothing is imputed, and fusion has no cross-channel witness.
    pub fn no_model(mut self) -> Self {
        self.model = None;
        self
    }

    pub fn model_options(&self) -> Option<&ModelOptions> {
        self.model.as_ref()
    }

    /// The models this pipeline runs for `catalog`, if any; a trained model
    /// that does not fit the plant is an error.
    pub fn asset_models(
        &self,
        catalog: &Arc<Catalog>,
        alignment: &Alignment,
        redundancy: &Redundancy,
    ) -> Result<Option<Arc<AssetModels>>> {
        let Some(options) = &self.model else {
            return Ok(None);
        };
        AssetModels::new(
            Arc::clone(catalog),
            alignment.clone(),
            redundancy.clone(),
            options.clone(),
        )
        .map(|m| Some(Arc::new(m)))
        .map_err(|e| Error::Config(format!("pipeline {:?}'s model: {e}", self.name)))
    }

    /// Stops after step W: per-sensor windows (and late and quarantined
    /// rows) only, for users who want just the aggregates, and to measure
    /// step W alone.
    pub fn windows_only(mut self) -> Self {
        self.windows_only = true;
        self
    }

    pub fn is_windows_only(&self) -> bool {
        self.windows_only
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn window_size_us(&self) -> Micros {
        self.window_size
    }

    /// The alignment this pipeline uses for `catalog`.
    pub fn alignment(&self, catalog: &Catalog) -> Result<Alignment> {
        let mut alignment = Alignment::from_catalog(catalog, self.window_size, self.default_fill);
        for (channel, fill) in &self.channel_fills {
            if alignment.channel_index(channel).is_none() {
                return Err(Error::Config(format!(
                    "pipeline {:?} fills channel {channel:?}, which the plant does not have \
                     (its channels: {})",
                    self.name,
                    alignment.channels().join(", ")
                )));
            }
            alignment = alignment.with_fill(channel, *fill);
        }
        Ok(alignment)
    }

    /// The redundant groups of `catalog`: declared, else the catalog's.
    pub fn redundancy(&self, catalog: &Catalog, alignment: &Alignment) -> Result<Redundancy> {
        if self.redundant.is_empty() {
            Ok(Redundancy::from_catalog(catalog, alignment))
        } else {
            Redundancy::declare(catalog, alignment, &self.redundant)
        }
    }

    /// The fusion this pipeline uses for `catalog`.
    pub fn fusion(&self, catalog: &Catalog, redundancy: Redundancy) -> Arc<dyn Fusion> {
        (self.fusion)(catalog, redundancy)
    }

    /// The name of step D's detector.
    pub fn detector_name(&self) -> &str {
        &self.detector_name
    }

    /// The rated rate of a sensor, in Hz, if known.
    pub fn rate_of(&self, sensor: &SensorRecord) -> Option<f64> {
        (self.rated_rate)(sensor)
    }

    /// A detector for one sensor.
    pub fn detector(&self, catalog: &Catalog, sensor: SensorId) -> Box<dyn Detector> {
        (self.detector)(catalog, sensor)
    }

    /// Runs the pipeline over a Parquet log (see [`ReplayOptions`]); returns the
    /// summary on the process hosting worker 0.
    pub fn replay(&self, options: &ReplayOptions) -> Result<Option<Summary>> {
        run(self, options)
    }
}

/// The fusions a pipeline can choose by name.
#[derive(Debug, Clone)]
pub enum FusionMethod {
    /// TwinBench's F: every sensor believed, weighted by 1/σ² (see
    /// [`InverseVariance`]).
    InverseVariance,
    /// A Kalman filter per asset and quantity that gates, down-weights and
    /// excludes sensors that disagree (see [`KalmanFusion`]).
    Kalman(KalmanOptions),
}

/// TwinBench's reference pipeline (W → A → F → D → V of the spec), written
/// out in full rather than relying on the defaults. Its twin state is the
/// robust (Kalman) fusion, witnessed by an online Gaussian model per asset,
/// which also imputes what is not measured; the spec's F checksum is inverse-variance's
/// whatever the fusion (see the summary). `.fusion_method(FusionMethod::
/// InverseVariance)` makes `fused/` the spec's F as well.
pub fn twinbench() -> Pipeline {
    Pipeline::new("twinbench-reference", env!("CARGO_PKG_VERSION"))
        .window_size(SECOND)
        .fill(Fill::CarryForward {
            max_age: 5 * SECOND,
        })
        .fusion_method(FusionMethod::Kalman(KalmanOptions::default()))
        .model(ModelOptions::default())
        .detect(EwmaZScore::NAME, |_catalog, _sensor| {
            EwmaZScore::twinbench()
        })
        // TwinBench's sensors.csv has no rate column; its channel table
        // (spec, "The plant") gives the rates.
        .rated_rate(|sensor| {
            sensor
                .rate_hz
                .or_else(|| crate::twinbench::plant::rated_rate_hz(&sensor.channel))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filling_a_channel_the_plant_lacks_is_an_error() {
        let catalog = Catalog::discovered(&[("p/flow".into(), "p".into(), "flow".into())]).unwrap();
        let fill = Fill::CarryForward { max_age: SECOND };
        let pipeline = Pipeline::new("p", "1").fill_channel("flwo", fill);
        let error = pipeline.alignment(&catalog).unwrap_err().to_string();
        assert!(
            error.contains("\"flwo\"") && error.contains("flow"),
            "{error}"
        );
        let pipeline = Pipeline::new("p", "1").fill_channel("flow", fill);
        let alignment = pipeline.alignment(&catalog).unwrap();
        assert_eq!(alignment.channels(), ["flow"]);
    }
}
