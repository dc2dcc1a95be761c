//! Trained asset models end to end: `train` on a generated log (its replay, or the raw log), the model set loaded back, `synthesize` from it, the synthetic log replayed and scored.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use twinflow::engine::catalog::Catalog;
use twinflow::engine::runtime::Cluster;
use twinflow::operators::asset_models::{ModelShape, asset_layout};
use twinflow::operators::model::set::ModelSet;
use twinflow::operators::model::{History, ModelKind};
use twinflow::pipelines::asset_windows::read_replay_windows;
use twinflow::pipelines::dataset::{scan, strings};
use twinflow::pipelines::eval::synthesis::evaluate_synthesis;
use twinflow::pipelines::pipeline::twinbench;
use twinflow::pipelines::replay::{ReplayOptions, Summary};
use twinflow::pipelines::train::{POOLED_DIR, TrainOptions, train};
use twinflow::pipelines::twinbench::{GenerateOptions, SynthesizeOptions, generate, synthesize};

fn replay(log: &Path, out: &Path) -> Summary {
    twinbench()
        .replay(&ReplayOptions {
            cluster: Cluster::threads(2),
            ..ReplayOptions::new(log, out)
        })
        .unwrap()
        .expect("single process leads")
}

fn train_options(history: &Path, kind: ModelKind, out: &Path) -> TrainOptions {
    TrainOptions {
        passes: 2,
        threads: 2,
        ..TrainOptions::new(history, kind, out)
    }
}

/// The sensors that have a window in a replay's output.
fn sensors_with_windows(out: &Path) -> BTreeSet<String> {
    let mut sensors = BTreeSet::new();
    scan(&out.join("windows"), &["sensor"], |_, batch| {
        let column = strings(batch, "sensor").unwrap();
        sensors.extend(column.iter().flatten().map(str::to_owned));
        Ok(())
    })
    .unwrap();
    sensors
}

/// Every asset of the set is the catalog's, in its order, with the layout
/// the reference pipeline gives its model; its predictions are finite.
fn check_set(model: &Path, replay_out: &Path, catalog: &Catalog, kind: ModelKind) {
    let set = ModelSet::read(model).unwrap();
    assert_eq!(set.kind, kind);
    let names: Vec<&str> = set.assets.iter().map(|a| a.asset.as_str()).collect();
    let expected: Vec<&str> = catalog.assets().iter().map(|a| a.asset.as_str()).collect();
    assert_eq!(names, expected);
    let models = set.load_all(model).unwrap();
    let pipeline = twinbench();
    let alignment = pipeline.alignment(catalog).unwrap();
    let redundancy = pipeline.redundancy(catalog, &alignment).unwrap();
    let windows = read_replay_windows(replay_out, None, &ModelShape::default()).unwrap();
    for (id, (model, asset)) in models.iter().zip(&windows.assets).enumerate() {
        assert_eq!(model.kind(), kind);
        let layout = asset_layout(
            catalog,
            &alignment,
            &redundancy,
            id as u32,
            &ModelShape::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(model.layout(), &layout);
        let channels = layout.names();
        assert_eq!(
            channels,
            ["temperature", "pressure", "vib-1", "current", "flow"]
        );
        let mut history = History::new(&layout);
        for window in &asset.windows {
            history.push(window);
        }
        let prediction = model.predict(&history, &[0, 1, 2, 3, 4]).unwrap();
        assert!(prediction.mean.iter().all(|v| v.is_finite()));
        assert!((0..5).all(|i| prediction.variance(i) > 0.0 && prediction.variance(i).is_finite()));
        history.push(&asset.windows[asset.windows.len() / 2]);
        assert!(model.log_likelihood(&history).unwrap().total.is_finite());
    }
}

#[test]
fn train_load_synthesize_and_replay_with_zero_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let (log, out) = (dir.path().join("log"), dir.path().join("out"));
    generate(&GenerateOptions {
        assets: 3,
        seconds: 400,
        seed: 7,
        out: log.clone(),
        csv: false,
        progress: false,
    })
    .unwrap();
    replay(&log.join("events.parquet"), &out);
    let catalog = Catalog::read_dir(&log).unwrap();

    // On the replay's output.
    for kind in [ModelKind::Gaussian, ModelKind::Mixture] {
        let model = dir.path().join(format!("{kind:?}"));
        let report = train(&train_options(&out, kind, &model)).unwrap();
        assert_eq!((report.assets, report.replayed), (3, false));
        assert!(report.windows >= 3 * 398, "{} windows", report.windows);
        check_set(&model, &out, &catalog, kind);
    }

    // On the raw log, replayed first by the same pipeline: the same models.
    let from_log = dir.path().join("from-log");
    let report = train(&train_options(&log, ModelKind::Gaussian, &from_log)).unwrap();
    assert!(report.replayed);
    for asset in catalog.assets() {
        let parameters = |set: &Path| {
            std::fs::read(set.join(&asset.asset).join("parameters.safetensors")).unwrap()
        };
        assert_eq!(
            parameters(&from_log),
            parameters(&dir.path().join("Gaussian"))
        );
    }
    // A directory holding something else is not overwritten.
    assert!(train(&train_options(&out, ModelKind::Gaussian, &log)).is_err());

    // Four synthetic assets from the three models (the fourth runs the
    // first's), replayed with verification under their own keys.
    let synthetic = dir.path().join("synthetic");
    let report = synthesize(&SynthesizeOptions {
        seed: 3,
        burn_in: 50,
        ..SynthesizeOptions::new(dir.path().join("Mixture"), 4, 120, &synthetic)
    })
    .unwrap();
    assert_eq!(report.models, 3);
    assert_eq!(report.events, 4 * 120 * 111);
    // One truth row per sensor channel and second.
    assert_eq!(report.truth_rows, 4 * 120 * 8);
    let synthetic_out = dir.path().join("synthetic-out");
    let summary = replay(&synthetic.join("events.parquet"), &synthetic_out);
    assert_eq!(summary.events_in, report.events);
    assert_eq!(
        summary.quarantined, 0,
        "{:?}",
        summary.quarantined_by_reason
    );
    assert_eq!((summary.seq_gaps, summary.missing_seq), (0, 0));
    let synthetic_catalog = Catalog::read_dir(&synthetic).unwrap();
    let every: BTreeSet<String> = synthetic_catalog
        .sensors()
        .iter()
        .map(|s| s.sensor.clone())
        .collect();
    assert_eq!(every.len(), 32);
    assert_eq!(sensors_with_windows(&synthetic_out), every);
    // The same seed draws the same log.
    let again = dir.path().join("again");
    synthesize(&SynthesizeOptions {
        seed: 3,
        burn_in: 50,
        ..SynthesizeOptions::new(dir.path().join("Mixture"), 4, 120, &again)
    })
    .unwrap();
    for file in [
        "events.parquet",
        "keys.json",
        "truth.parquet",
        "sensors.csv",
    ] {
        assert_eq!(
            std::fs::read(synthetic.join(file)).unwrap(),
            std::fs::read(again.join(file)).unwrap(),
            "{file}"
        );
    }

    // Scored against the real replay: every channel, finite figures.
    let score = evaluate_synthesis(&synthetic_out, &out).unwrap();
    let channels: Vec<&str> = score.channels.iter().map(|c| c.channel.as_str()).collect();
    assert_eq!(
        channels,
        ["temperature", "pressure", "vib-1", "current", "flow"]
    );
    assert!(score.channels.iter().all(|c| c.mean_difference.is_finite()
        && c.std_difference.is_finite()
        && c.lag1_difference.is_finite()));
    assert!(score.correlation_difference.is_finite());
    assert!(score.train_on_synthetic.unwrap().ratio.is_finite());
}

/// A pooled model learns from every asset: its mean of each channel is the
/// mean of the channel's observed windows over all assets (not one asset's),
/// every asset's entry names it, and a replay runs every asset on it.
#[test]
fn a_pooled_model_learns_from_every_asset_and_serves_each() {
    let dir = tempfile::tempdir().unwrap();
    let (log, out) = (dir.path().join("log"), dir.path().join("out"));
    generate(&GenerateOptions {
        assets: 3,
        seconds: 300,
        seed: 9,
        out: log.clone(),
        csv: false,
        progress: false,
    })
    .unwrap();
    replay(&log.join("events.parquet"), &out);
    let model = dir.path().join("pooled");
    let report = train(&TrainOptions {
        pooled: true,
        prior_windows: 500.0,
        ..train_options(&out, ModelKind::Gaussian, &model)
    })
    .unwrap();
    assert_eq!(report.assets, 3);
    let set = ModelSet::read(&model).unwrap();
    assert!(set.assets.iter().all(|a| a.dir == POOLED_DIR));
    let models = set.load_all(&model).unwrap();
    let gaussian =
        twinflow::operators::model::gaussian::OnlineGaussian::load(&model.join(POOLED_DIR))
            .unwrap();
    assert!((gaussian.effective_samples() - 500.0).abs() < 1e-6);

    let windows = read_replay_windows(&out, None, &ModelShape::default()).unwrap();
    let channels = models[0].layout().channel_count();
    for c in 0..channels {
        let values = |asset: &twinflow::pipelines::asset_windows::AssetWindows| -> Vec<f64> {
            asset.windows.iter().filter_map(|w| w[c]).collect()
        };
        let all: Vec<f64> = windows.assets.iter().flat_map(values).collect();
        let mean = all.iter().sum::<f64>() / all.len() as f64;
        let sd = (all.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / all.len() as f64).sqrt();
        let (learnt, _) = models[0].marginal(c).unwrap();
        assert!(
            (learnt - mean).abs() < 0.05 * sd,
            "channel {c}: the pooled mean {learnt} against {mean} (sd {sd})"
        );
    }

    let pooled_out = dir.path().join("pooled-out");
    let summary = twinbench()
        .model(twinflow::operators::asset_models::ModelOptions {
            source: twinflow::operators::asset_models::ModelSource::Trained(model.clone()),
            ..Default::default()
        })
        .replay(&ReplayOptions {
            cluster: Cluster::threads(2),
            ..ReplayOptions::new(log.join("events.parquet"), &pooled_out)
        })
        .unwrap()
        .expect("single process leads");
    assert_eq!(
        summary.quarantined,
        replay(&log.join("events.parquet"), &dir.path().join("again")).quarantined
    );
    let mut by_model = 0;
    scan(&pooled_out.join("imputed"), &["model"], |_, batch| {
        by_model += strings(batch, "model")
            .unwrap()
            .iter()
            .filter(|m| *m == Some("gaussian"))
            .count();
        Ok(())
    })
    .unwrap();
    assert!(by_model > 0, "the pooled model imputed nothing");
    // A set that lacks an asset is refused before the dataflow starts.
    let mut partial = set.clone();
    partial.assets.pop();
    partial.write(&model).unwrap();
    let refused = twinbench()
        .model(twinflow::operators::asset_models::ModelOptions {
            source: twinflow::operators::asset_models::ModelSource::Trained(model.clone()),
            ..Default::default()
        })
        .replay(&ReplayOptions::new(
            log.join("events.parquet"),
            dir.path().join("refused"),
        ));
    let error = refused
        .expect_err("a set without the last asset is refused")
        .to_string();
    assert!(error.contains("no model for asset"), "{error}");
}
