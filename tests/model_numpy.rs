//! Interop: Gaussian conditioning against numpy.linalg. tests/interop/gaussian_reference.py
//! (numpy pinned in tests/interop/requirements.txt, installed into
//! target/interop-venv by tests/interop/setup.sh) conditions a fixed
//! covariance by `solve` and fits seeded windows with `np.average` and
//! `np.cov` (plain, and weighted by a half-life); our [`Gaussian`] and
//! [`OnlineGaussian`] must agree to 1e-9. The same script reads a saved
//! model's safetensors file by hand, as the format defines it.

mod common;

use common::interop::{numbers, run_json};

use nalgebra::{DMatrix, DVector};
use serde_json::Value;
use twinflow::operators::model::conditional::Gaussian;
use twinflow::operators::model::gaussian::{GaussianOptions, OnlineGaussian, Shrinkage};
use twinflow::operators::model::{AssetModel, Channel, History, Layout};

const TOLERANCE: f64 = 1e-9;

fn indices(v: &Value) -> Vec<usize> {
    numbers(v).into_iter().map(|x| x as usize).collect()
}

fn matrix(v: &Value) -> DMatrix<f64> {
    let rows: Vec<Vec<f64>> = v.as_array().unwrap().iter().map(numbers).collect();
    DMatrix::from_fn(rows.len(), rows[0].len(), |i, j| rows[i][j])
}

fn assert_all_close(actual: &[f64], expected: &[f64], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}");
    let scale = expected.iter().fold(1.0f64, |m, x| m.max(x.abs()));
    for (a, e) in actual.iter().zip(expected) {
        assert!(
            (a - e).abs() <= TOLERANCE * scale,
            "{what}: {actual:?} against numpy's {expected:?}"
        );
    }
}

fn reference(arguments: &[&str]) -> Value {
    run_json("gaussian_reference.py", arguments)
}

#[test]
fn conditioning_and_fitting_match_numpy() {
    let reference = reference(&[]);

    let fixed = &reference["fixed"];
    let gaussian = Gaussian::new(
        DVector::from_vec(numbers(&fixed["mean"])),
        matrix(&fixed["covariance"]),
    );
    let x = DVector::from_vec(numbers(&fixed["x"]));
    let density = gaussian.log_density(&x).unwrap();
    assert_all_close(
        &[density.log_density],
        &[fixed["log_density"].as_f64().unwrap()],
        "log density",
    );
    let cases = fixed["cases"].as_array().unwrap();
    for case in cases {
        let given = indices(&case["given"]);
        let targets = indices(&case["targets"]);
        let conditional = gaussian
            .condition(&given, &numbers(&case["values"]), &targets)
            .unwrap();
        let what = format!("{targets:?} given {given:?}");
        assert_all_close(conditional.mean.as_slice(), &numbers(&case["mean"]), &what);
        assert_all_close(
            conditional.covariance.as_slice(),
            matrix(&case["covariance"]).as_slice(),
            &what,
        );
    }
    println!(
        "fixed: {} conditionings and a log density agree with numpy",
        cases.len()
    );

    for fitted in reference["fitted"].as_array().unwrap() {
        let half_life = fitted["half_life"].as_f64().unwrap_or(f64::INFINITY);
        let channels = (0..3)
            .map(|i| Channel {
                index: i,
                name: format!("c{i}"),
            })
            .collect();
        let layout = Layout::new(channels, 1).unwrap();
        let options = GaussianOptions {
            half_life,
            shrinkage: Shrinkage::Fixed(0.0),
            refresh_every: 1,
        };
        let mut model = OnlineGaussian::new(layout.clone(), options);
        let mut history = History::new(&layout);
        let windows: Vec<Vec<f64>> = fitted["windows"]
            .as_array()
            .unwrap()
            .iter()
            .map(numbers)
            .collect();
        let (newest, past) = windows.split_last().unwrap();
        for w in past {
            history.push(&w.iter().map(|&v| Some(v)).collect::<Vec<_>>());
            model.update(&history);
        }
        let what = |s: &str| format!("half-life {half_life}: {s}");
        assert_all_close(
            model.mean().as_slice(),
            &numbers(&fitted["mean"]),
            &what("mean"),
        );
        assert_all_close(
            model.sample_covariance().unwrap().as_slice(),
            matrix(&fitted["covariance"]).as_slice(),
            &what("covariance"),
        );

        history.push(&[Some(newest[0]), None, Some(newest[2])]);
        let predicted = model.predict(&history, &[1]).unwrap();
        assert_all_close(
            predicted.mean.as_slice(),
            &numbers(&fitted["predicted_mean"]),
            &what("predicted mean"),
        );
        assert_all_close(
            predicted.covariance.as_slice(),
            matrix(&fitted["predicted_covariance"]).as_slice(),
            &what("predicted covariance"),
        );
        let scored = model.log_likelihood(&history).unwrap();
        assert_all_close(
            &[scored.total],
            &[fitted["log_likelihood"].as_f64().unwrap()],
            &what("log-likelihood"),
        );
        println!(
            "half-life {half_life}: fit of {} windows, prediction and log-likelihood agree with numpy",
            past.len()
        );
        if half_life.is_infinite() {
            check_saved_file(&model, &fitted["mean"]);
        }
    }
}

/// numpy reads the saved model's tensors as the model holds them.
fn check_saved_file(model: &OnlineGaussian, numpy_mean: &Value) {
    let dir = std::env::temp_dir().join(format!("twinflow-model-numpy-{}", std::process::id()));
    model.save(&dir).unwrap();
    let saved = reference(&["--read", dir.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(saved["manifest"]["kind"], "gaussian");
    assert_eq!(saved["manifest"]["lags"], 1);
    assert_eq!(saved["manifest"]["channels"][2]["name"], "c2");
    let tensors = &saved["tensors"];
    let mean = numbers(&tensors["mean"]["values"]);
    assert_eq!(
        mean.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        model.mean().iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        "the mean as numpy reads it"
    );
    assert_all_close(&mean, &numbers(numpy_mean), "saved mean against np.average");
    assert_eq!(numbers(&tensors["scatter"]["shape"]), vec![6.0, 6.0]);
    assert_eq!(tensors["settings"]["values"][0], "inf", "no forgetting");
    let weights = numbers(&tensors["weights"]["values"]);
    let scatter = numbers(&tensors["scatter"]["values"]);
    let denominator = weights[0] - weights[1] / weights[0];
    let covariance = model.sample_covariance().unwrap();
    for i in 0..6 {
        for j in 0..6 {
            let saved = scatter[i * 6 + j] / denominator;
            assert!((saved - covariance[(i, j)]).abs() <= TOLERANCE * covariance.abs().max());
        }
    }
    println!("numpy reads the saved model's tensors");
}
