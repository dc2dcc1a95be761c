//! The neural model end to end: `train --model neural` on a small generated log, one network shared by the assets, and a masked replay with the trained set imputing inside the dataflow.

use std::path::Path;

use twinflow::engine::runtime::Cluster;
use twinflow::operators::asset_models::{ModelOptions, ModelSource};
use twinflow::operators::model::neural::train::NeuralOptions;
use twinflow::operators::model::set::ModelSet;
use twinflow::operators::model::{ModelKind, store};
use twinflow::pipelines::dataset::{floats, scan, strings};
use twinflow::pipelines::mask::generate::{MaskOptions, generate_mask};
use twinflow::pipelines::pipeline::twinbench;
use twinflow::pipelines::replay::{ReplayOptions, Summary};
use twinflow::pipelines::train::{TrainOptions, train};
use twinflow::pipelines::twinbench::{GenerateOptions, generate};

fn replay(log: &Path, out: &Path, model: Option<&Path>, mask: Option<&Path>) -> Summary {
    let pipeline = match model {
        None => twinbench(),
        // A short log: the trained model witnesses and imputes after a minute.
        Some(dir) => twinbench().model(ModelOptions {
            source: ModelSource::Trained(dir.into()),
            warm_up: 60,
            ..ModelOptions::default()
        }),
    };
    pipeline
        .replay(&ReplayOptions {
            cluster: Cluster::threads(2),
            mask: mask.map(Path::to_path_buf),
            ..ReplayOptions::new(log, out)
        })
        .unwrap()
        .expect("single process leads")
}

#[test]
fn trains_one_network_for_the_assets_and_imputes_in_a_masked_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (log, out) = (dir.path().join("log"), dir.path().join("out"));
    generate(&GenerateOptions {
        assets: 2,
        seconds: 300,
        seed: 5,
        out: log.clone(),
        csv: false,
        progress: false,
    })
    .unwrap();
    replay(&log.join("events.parquet"), &out, None, None);

    let model = dir.path().join("model");
    let options = TrainOptions {
        neural: NeuralOptions {
            width: 32,
            batch: 32,
            epochs: 8,
            ..NeuralOptions::default()
        },
        ..TrainOptions::new(&out, ModelKind::Neural, &model)
    };
    let report = train(&options).unwrap();
    assert_eq!(report.assets, 2);
    assert_eq!(report.losses.len(), 8);
    let (first, last) = (report.losses[0], *report.losses.last().unwrap());
    // A network that knew nothing (each standardised channel its mean, unit
    // variance) would score ½; learning takes it well below.
    assert!(
        last < first - 0.3 && last < 0.0,
        "the loss went from {first} to {last}"
    );

    // Both assets' directories hold the same network, each its own standardisation.
    let set = ModelSet::read(&model).unwrap();
    assert_eq!(set.kind, ModelKind::Neural);
    let tensors: Vec<Vec<store::Tensor>> = set
        .assets
        .iter()
        .map(|entry| store::read_tensors(&ModelSet::model_dir(&model, entry)).unwrap())
        .collect();
    let named = |i: usize, name: &str| {
        tensors[i]
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no tensor {name}"))
            .values
            .clone()
    };
    for layer in ["layer0.weight", "layer1.bias", "layer2.weight"] {
        assert_eq!(named(0, layer), named(1, layer));
    }
    assert_ne!(named(0, "standardise.mean"), named(1, "standardise.mean"));
    assert_eq!(set.load_all(&model).unwrap().len(), 2);

    // Hidden blocks in the last 40 % of the log, imputed by the network.
    let mask = dir.path().join("mask.parquet");
    generate_mask(
        &log,
        &mask,
        &MaskOptions {
            min_block_s: 20,
            max_block_s: 60,
            spacing_s: 40,
            ..MaskOptions::default()
        },
    )
    .unwrap();
    let masked = dir.path().join("masked");
    let summary = replay(
        &log.join("events.parquet"),
        &masked,
        Some(&model),
        Some(&mask),
    );
    assert!(summary.masked > 0);
    let mut by_network = 0;
    scan(&masked.join("imputed"), &[], |_, batch| {
        let models = strings(batch, "model").unwrap();
        let values = floats(batch, "value").unwrap();
        let variances = floats(batch, "variance").unwrap();
        for i in 0..batch.num_rows() {
            if models.value(i) == "neural" {
                assert!(values.value(i).is_finite());
                assert!(variances.value(i) > 0.0 && variances.value(i).is_finite());
                by_network += 1;
            }
        }
        Ok(())
    })
    .unwrap();
    assert!(by_network > 0, "no value imputed by the network");
}
