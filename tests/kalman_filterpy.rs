//! Interop: our Kalman filter against FilterPy's `KalmanFilter` (Joseph-form
//! update; pinned in tests/interop/requirements.txt, installed into
//! target/interop-venv by tests/interop/setup.sh). tests/interop/kalman_reference.py
//! runs seeded random-walk and constant-velocity sequences (varying time steps
//! and measurement variances, steps without a measurement, a few readings far
//! off) and prints x and P after every step; the same steps through our
//! [`Tracker`] (which builds F and Q from its process model) and through
//! [`KalmanFilter`] (given FilterPy's F and Q) must agree to 1e-9.

mod common;

use common::interop::{numbers, run_json};

use nalgebra::{SMatrix, SVector};
use serde_json::Value;
use twinflow::operators::kalman::{KalmanFilter, ProcessModel, Tracker};

const TOLERANCE: f64 = 1e-9;

fn matrix<const N: usize>(v: &Value) -> SMatrix<f64, N, N> {
    let rows: Vec<Vec<f64>> = v.as_array().unwrap().iter().map(numbers).collect();
    SMatrix::from_fn(|i, j| rows[i][j])
}

/// Asserts `actual` is within 1e-9 of `expected`, relative to `scale`.
fn assert_close(actual: f64, expected: f64, scale: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= TOLERANCE * scale,
        "{what}: {actual} against FilterPy's {expected}"
    );
}

/// Runs one sequence through a tracker and a bare filter of state size `N`;
/// returns how many steps it compared.
fn check_sequence<const N: usize>(sequence: &Value) -> usize {
    let name = sequence["name"].as_str().unwrap();
    let q = sequence["q"].as_f64().unwrap();
    let model = match sequence["model"].as_str().unwrap() {
        "random_walk" => ProcessModel::RandomWalk { q },
        "constant_velocity" => ProcessModel::ConstantVelocity { q },
        other => panic!("unknown model {other}"),
    };
    let (value, variance, rate_variance) = (
        sequence["value"].as_f64().unwrap(),
        sequence["variance"].as_f64().unwrap(),
        sequence["rate_variance"].as_f64().unwrap(),
    );
    let mut tracker = Tracker::new(model, value, variance, rate_variance);
    let mut filter = KalmanFilter::<N>::new(
        SVector::from_fn(|i, _| if i == 0 { value } else { 0.0 }),
        SMatrix::from_diagonal(&SVector::from_fn(|i, _| {
            if i == 0 { variance } else { rate_variance }
        })),
    );
    let h = SVector::<f64, N>::from_fn(|i, _| if i == 0 { 1.0 } else { 0.0 });

    let steps = sequence["steps"].as_array().unwrap();
    for (k, step) in steps.iter().enumerate() {
        let dt = step["dt"].as_f64().unwrap();
        tracker.predict(dt);
        filter.predict(&matrix::<N>(&step["F"]), &matrix::<N>(&step["Q"]));
        if let Some(z) = step["z"].as_f64() {
            let r = step["r"].as_f64().unwrap();
            tracker.update(z, r);
            filter.update(&h, z, r);
        }

        let x = numbers(&step["x"]);
        let p = matrix::<N>(&step["P"]);
        let p_scale = p.abs().max();
        let at = |what: &str| format!("{name}, step {k}, {what}");
        for i in 0..N {
            assert_close(filter.state()[i], x[i], x[i].abs().max(1.0), &at("x"));
            for j in 0..N {
                assert_close(filter.covariance()[(i, j)], p[(i, j)], p_scale, &at("P"));
            }
        }
        assert_close(tracker.value(), x[0], x[0].abs().max(1.0), &at("value"));
        assert_close(tracker.variance(), p[(0, 0)], p_scale, &at("variance"));
        match tracker.rate() {
            Some((rate, rate_variance)) => {
                assert_close(rate, x[1], x[1].abs().max(1.0), &at("rate"));
                assert_close(rate_variance, p[(1, 1)], p_scale, &at("rate variance"));
            }
            None => assert_eq!(N, 1, "{name}: a tracker without a rate"),
        }
    }
    steps.len()
}

#[test]
fn kalman_filter_matches_filterpy() {
    let reference = run_json("kalman_reference.py", &[]);

    let sequences = reference["sequences"].as_array().unwrap();
    let mut models = Vec::new();
    for sequence in sequences {
        let model = sequence["model"].as_str().unwrap();
        let steps = match model {
            "random_walk" => check_sequence::<1>(sequence),
            _ => check_sequence::<2>(sequence),
        };
        let updates = sequence["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| !s["z"].is_null())
            .count();
        assert!(steps >= 300 && updates < steps && updates > steps / 2);
        println!(
            "{}: {steps} steps ({updates} with a measurement) agree with FilterPy",
            sequence["name"].as_str().unwrap()
        );
        models.push(model.to_owned());
    }
    assert!(models.iter().any(|m| m == "random_walk"));
    assert!(models.iter().any(|m| m == "constant_velocity"));
}
