//! The online Gaussian against batch fits, closed forms and data of known distribution.

use nalgebra::{DMatrix, DVector};
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::*;
use crate::model::conditional::LN_2PI;
use crate::model::{Channel, load};

fn layout(channels: usize, lags: usize) -> Layout {
    let channels = (0..channels)
        .map(|i| Channel {
            index: i,
            name: format!("c{i}"),
        })
        .collect();
    Layout::new(channels, lags).unwrap()
}

fn exact(half_life: f64) -> GaussianOptions {
    GaussianOptions {
        half_life,
        shrinkage: Shrinkage::Fixed(0.0),
        refresh_every: 1,
    }
}

fn normal(rng: &mut Xoshiro256PlusPlus) -> f64 {
    rng.sample(StandardNormal)
}

/// Correlated windows of 3 channels far from zero (stability of the update).
fn windows(n: usize, seed: u64) -> Vec<[f64; 3]> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let (a, b, c) = (normal(&mut rng), normal(&mut rng), normal(&mut rng));
            [
                100.0 + 2.0 * a,
                50.0 + a + 0.5 * b,
                -20.0 + 0.3 * a - b + 0.2 * c,
            ]
        })
        .collect()
}

fn observed(window: &[f64]) -> Vec<Option<f64>> {
    window.iter().map(|&v| Some(v)).collect()
}

/// Weighted batch mean and covariance (weights as given), by their definitions.
fn batch(states: &[Vec<f64>], weights: &[f64]) -> (DVector<f64>, DMatrix<f64>) {
    let d = states[0].len();
    let w: f64 = weights.iter().sum();
    let w2: f64 = weights.iter().map(|w| w * w).sum();
    let mut mean = DVector::zeros(d);
    for (s, &wi) in states.iter().zip(weights) {
        mean += DVector::from_column_slice(s) * wi;
    }
    mean /= w;
    let mut covariance = DMatrix::zeros(d, d);
    for (s, &wi) in states.iter().zip(weights) {
        let r = DVector::from_column_slice(s) - &mean;
        covariance += &r * r.transpose() * wi;
    }
    (mean, covariance / (w - w2 / w))
}

/// The model's states (channels at t, t−1, t−2) built by hand.
fn states_with_two_lags(data: &[[f64; 3]]) -> Vec<Vec<f64>> {
    (2..data.len())
        .map(|t| [data[t], data[t - 1], data[t - 2]].concat())
        .collect()
}

fn fit(data: &[[f64; 3]], lags: usize, options: GaussianOptions) -> (OnlineGaussian, History) {
    let layout = layout(3, lags);
    let mut model = OnlineGaussian::new(layout.clone(), options);
    let mut history = History::new(&layout);
    for w in data {
        history.push(&observed(w));
        model.update(&history);
    }
    (model, history)
}

fn assert_matrices_close(a: &DMatrix<f64>, b: &DMatrix<f64>, tolerance: f64, what: &str) {
    let scale = b.abs().max().max(1.0);
    assert!(
        (a - b).abs().max() <= tolerance * scale,
        "{what}: {a} against {b}"
    );
}

#[test]
fn online_updates_equal_a_batch_fit() {
    let data = windows(500, 1);
    let states = states_with_two_lags(&data);
    for half_life in [f64::INFINITY, 50.0] {
        let (model, _) = fit(&data, 2, exact(half_life));
        let decay = 0.5f64.powf(1.0 / half_life);
        let n = states.len();
        let weights: Vec<f64> = (0..n).map(|i| decay.powi((n - 1 - i) as i32)).collect();
        let (mean, covariance) = batch(&states, &weights);
        assert_eq!(
            model.absorbed(),
            n as u64,
            "the first two windows lack lags"
        );
        assert_matrices_close(
            &DMatrix::from_column_slice(9, 1, model.mean().as_slice()),
            &DMatrix::from_column_slice(9, 1, mean.as_slice()),
            1e-9,
            "mean",
        );
        assert_matrices_close(
            &model.sample_covariance().unwrap(),
            &covariance,
            1e-9,
            "covariance",
        );
        let w: f64 = weights.iter().sum();
        let w2: f64 = weights.iter().map(|w| w * w).sum();
        assert!((model.effective_samples() - w * w / w2).abs() < 1e-9 * n as f64);
    }
}

#[test]
fn conditioning_matches_a_direct_matrix_computation() {
    // 3 channels, no lags: predict channel 0 from channels 1 and 2, and 0 and 1 from 2,
    // against μ_t + Σ_tg Σ_gg⁻¹ (x_g − μ_g) with an explicit inverse.
    let data = windows(200, 2);
    let (model, _) = fit(&data, 0, exact(f64::INFINITY));
    let states: Vec<Vec<f64>> = data.iter().map(|w| w.to_vec()).collect();
    let (mu, sigma) = batch(&states, &vec![1.0; states.len()]);
    let x = [103.0, 51.0, -22.0];
    for (targets, given) in [(vec![0], vec![1, 2]), (vec![0, 1], vec![2])] {
        let mut history = History::new(model.layout());
        history.push(&[Some(x[0]), Some(x[1]), Some(x[2])]);
        let predicted = model.predict(&history, &targets).unwrap();
        let pick = |rows: &[usize], cols: &[usize]| {
            DMatrix::from_fn(rows.len(), cols.len(), |i, j| sigma[(rows[i], cols[j])])
        };
        let gain = pick(&targets, &given) * pick(&given, &given).try_inverse().unwrap();
        let residual = DVector::from_fn(given.len(), |i, _| x[given[i]] - mu[given[i]]);
        let mean = DVector::from_fn(targets.len(), |i, _| mu[targets[i]]) + &gain * residual;
        let covariance = pick(&targets, &targets) - &gain * pick(&given, &targets);
        assert_matrices_close(
            &DMatrix::from_column_slice(targets.len(), 1, predicted.mean.as_slice()),
            &DMatrix::from_column_slice(targets.len(), 1, mean.as_slice()),
            1e-9,
            "conditional mean",
        );
        assert_matrices_close(
            &predicted.covariance,
            &covariance,
            1e-9,
            "conditional covariance",
        );
        // A target's own value, observed or not, is not conditioned on.
        let mut hidden = history.clone();
        for &t in &targets {
            hidden.set_current(t, None);
        }
        assert_eq!(model.predict(&hidden, &targets).unwrap(), predicted);
    }
}

#[test]
fn log_likelihood_matches_the_closed_form() {
    // Channels 0 and 2 observed at t, channel 1 not; lags 1 and 2 observed.
    let data = windows(300, 3);
    let (model, mut history) = fit(&data, 2, exact(f64::INFINITY));
    history.push(&[Some(98.0), None, Some(-19.0)]);
    let joint = model.joint().unwrap();
    let (mu, sigma) = (&joint.mean, &joint.covariance);
    let now = [0usize, 2];
    let lags: Vec<usize> = (3..9).collect();
    let pick = |rows: &[usize], cols: &[usize]| {
        DMatrix::from_fn(rows.len(), cols.len(), |i, j| sigma[(rows[i], cols[j])])
    };
    let gain = pick(&now, &lags) * pick(&lags, &lags).try_inverse().unwrap();
    let lag_residual = DVector::from_fn(6, |i, _| history.state()[3 + i].unwrap() - mu[3 + i]);
    let mean = DVector::from_fn(2, |i, _| mu[now[i]]) + &gain * lag_residual;
    let covariance = pick(&now, &now) - &gain * pick(&lags, &now);
    let r = DVector::from_vec(vec![98.0 - mean[0], -19.0 - mean[1]]);
    let quadratic = (r.transpose() * covariance.clone().try_inverse().unwrap() * &r)[(0, 0)];
    let expected = -0.5 * (quadratic + 2.0 * LN_2PI + covariance.determinant().ln());

    let scored = model.log_likelihood(&history).unwrap();
    assert!(
        (scored.total - expected).abs() < 1e-9 * expected.abs().max(1.0),
        "{} against {expected}",
        scored.total
    );
    // Each channel's share: its density given the other (2×2 conditional by hand).
    let channels: Vec<usize> = scored.channels.iter().map(|c| c.channel).collect();
    assert_eq!(channels, vec![0, 2]);
    for (k, share) in scored.channels.iter().enumerate() {
        let o = 1 - k;
        let m = mean[k] + covariance[(k, o)] / covariance[(o, o)] * r[o];
        let v = covariance[(k, k)] - covariance[(k, o)].powi(2) / covariance[(o, o)];
        let x = [98.0, -19.0][k];
        let expected = -0.5 * ((x - m).powi(2) / v + LN_2PI + v.ln());
        assert!((share.log_density - expected).abs() < 1e-9, "channel {k}");
        assert!((share.z - (x - m) / v.sqrt()).abs() < 1e-9);
    }
}

/// A VAR(1) process x_t = A x_{t−1} + e, e ~ N(0, Q): its transition, noise
/// factor and noise covariance.
fn var1() -> (DMatrix<f64>, DMatrix<f64>, DMatrix<f64>) {
    let a = DMatrix::from_row_slice(3, 3, &[0.7, 0.2, 0.0, 0.1, 0.6, 0.2, -0.2, 0.3, 0.5]);
    let l = DMatrix::from_row_slice(3, 3, &[1.0, 0.0, 0.0, 0.8, 0.6, 0.0, -0.5, 0.4, 0.7]);
    let q = &l * l.transpose();
    (a, l, q)
}

fn simulate(n: usize, seed: u64) -> Vec<[f64; 3]> {
    let (a, l, _) = var1();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let offset = DVector::from_vec(vec![10.0, -5.0, 2.0]);
    let mut x = DVector::zeros(3);
    (0..n + 100)
        .map(|_| {
            let e = DVector::from_fn(3, |_, _| normal(&mut rng));
            x = &a * &x + &l * e;
            let y = &x + &offset;
            [y[0], y[1], y[2]]
        })
        .skip(100)
        .collect()
}

#[test]
fn predictions_converge_to_the_true_conditionals_of_a_var1_process() {
    let (a, _, q) = var1();
    let converging = GaussianOptions {
        half_life: f64::INFINITY,
        ..Default::default()
    };
    let (mut model, mut history) = fit(&simulate(30_000, 4), 1, converging);
    let offset = [10.0, -5.0, 2.0];
    let test = simulate(4_000, 5);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(6);
    let (mut covered, mut predicted, mut worst_mean, mut worst_variance) = (0, 0, 0.0f64, 0.0f64);
    for w in &test {
        // Hide one or two channels at random; the rest and the lag are observed.
        let hidden: Vec<usize> = match rng.random_range(0..6) {
            k @ 0..3 => vec![k],
            k => (0..3).filter(|&c| c != k - 3).collect(),
        };
        let lag: Vec<f64> = (0..3).map(|c| history.value(0, c).unwrap()).collect();
        history.push(&observed(w));
        let prediction = model.predict(&history, &hidden).unwrap();

        // The truth: N(A x_{t−1}, Q) conditioned on the observed channels at t.
        let centred = DVector::from_fn(3, |c, _| lag[c] - offset[c]);
        let prior = &a * centred;
        let seen: Vec<usize> = (0..3).filter(|c| !hidden.contains(c)).collect();
        let pick = |rows: &[usize], cols: &[usize]| {
            DMatrix::from_fn(rows.len(), cols.len(), |i, j| q[(rows[i], cols[j])])
        };
        let gain = pick(&hidden, &seen) * pick(&seen, &seen).try_inverse().unwrap();
        let residual = DVector::from_fn(seen.len(), |i, _| {
            w[seen[i]] - offset[seen[i]] - prior[seen[i]]
        });
        let mean = DVector::from_fn(hidden.len(), |i, _| prior[hidden[i]] + offset[hidden[i]])
            + &gain * residual;
        let covariance = pick(&hidden, &hidden) - &gain * pick(&seen, &hidden);
        for (k, &c) in hidden.iter().enumerate() {
            let sd = covariance[(k, k)].sqrt();
            worst_mean = worst_mean.max((prediction.mean[k] - mean[k]).abs() / sd);
            worst_variance =
                worst_variance.max((prediction.variance(k) / covariance[(k, k)] - 1.0).abs());
            predicted += 1;
            if (w[c] - prediction.mean[k]).abs() <= 1.959_964 * prediction.variance(k).sqrt() {
                covered += 1;
            }
        }
        model.update(&history);
    }
    let coverage = covered as f64 / predicted as f64;
    println!(
        "VAR(1): {predicted} predictions, coverage {coverage:.4}, worst mean error {worst_mean:.4} sd, worst variance error {worst_variance:.4}"
    );
    assert!(worst_mean < 0.1, "mean off by {worst_mean} sd");
    assert!(worst_variance < 0.05, "variance off by {worst_variance}");
    assert!(
        (0.935..=0.965).contains(&coverage),
        "95 % intervals cover {coverage}"
    );
}

#[test]
fn save_then_load_predicts_bit_for_bit() {
    let data = windows(400, 7);
    let (model, mut history) = fit(&data, 2, GaussianOptions::default());
    let dir = std::env::temp_dir().join(format!("twinflow-model-{}", std::process::id()));
    model.save(&dir).unwrap();
    let mut loaded = load(&dir).unwrap();
    assert_eq!(loaded.kind(), ModelKind::Gaussian);
    assert_eq!(loaded.layout(), model.layout());
    assert_eq!(OnlineGaussian::load(&dir).unwrap(), model);

    let mut model = model;
    for w in windows(50, 8) {
        history.push(&[Some(w[0]), None, Some(w[2])]);
        let (a, b) = (
            model.predict(&history, &[1, 2]).unwrap(),
            loaded.predict(&history, &[1, 2]).unwrap(),
        );
        assert!(
            a.mean
                .iter()
                .zip(b.mean.iter())
                .all(|(x, y)| x.to_bits() == y.to_bits())
        );
        assert!(
            a.covariance
                .iter()
                .zip(b.covariance.iter())
                .all(|(x, y)| x.to_bits() == y.to_bits())
        );
        let (a, b) = (
            model.log_likelihood(&history).unwrap(),
            loaded.log_likelihood(&history).unwrap(),
        );
        assert_eq!(a.total.to_bits(), b.total.to_bits());
        model.update(&history);
        loaded.update(&history);
    }
    let rng = |seed| Xoshiro256PlusPlus::seed_from_u64(seed);
    assert_eq!(
        model.sample(&mut rng(9), &history, 20).unwrap(),
        loaded.sample(&mut rng(9), &history, 20).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn damaged_files_are_clear_errors() {
    let (model, _) = fit(&windows(50, 10), 1, exact(100.0));
    let dir = std::env::temp_dir().join(format!("twinflow-model-bad-{}", std::process::id()));
    model.save(&dir).unwrap();
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"kind\": \"gaussian\"") && manifest.contains("\"lags\": 1"));
    std::fs::write(
        dir.join("manifest.json"),
        manifest.replace("\"lags\": 1", "\"lags\": 2"),
    )
    .unwrap();
    let err = load(&dir)
        .err()
        .expect("a manifest that does not fit the tensors");
    assert!(err.to_string().contains("expected [9]"), "{err}");
    std::fs::write(dir.join("parameters.safetensors"), b"not a model").unwrap();
    assert!(matches!(load(&dir), Err(ModelError::Format(_))));
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(load(&dir), Err(ModelError::Io(_))));
}

#[test]
fn adaptive_shrinkage_has_the_schafer_strimmer_intensity_and_falls_with_samples() {
    // Two channels: ρ = ((1 − r²)²/n + 1/n³) / r² with r the sample correlation.
    let layout = layout(2, 0);
    let mut model = OnlineGaussian::new(
        layout.clone(),
        GaussianOptions {
            half_life: f64::INFINITY,
            ..Default::default()
        },
    );
    let mut history = History::new(&layout);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    let mut rhos = Vec::new();
    for n in 1..=1000 {
        let a = normal(&mut rng);
        history.push(&[Some(a), Some(0.6 * a + 0.8 * normal(&mut rng))]);
        model.update(&history);
        if [20, 100, 1000].contains(&n) {
            let s = model.sample_covariance().unwrap();
            let r2 = s[(0, 1)].powi(2) / (s[(0, 0)] * s[(1, 1)]);
            let n = n as f64;
            let rho = (((1.0 - r2).powi(2) / n + 1.0 / (n * n * n)) / r2).min(1.0);
            let joint = model.joint().unwrap();
            let shrunk = joint.covariance[(0, 1)];
            assert!(
                (shrunk - (1.0 - rho) * s[(0, 1)]).abs() < 1e-12,
                "n {n}: ρ {rho}"
            );
            assert_eq!(joint.covariance[(0, 0)], s[(0, 0)]);
            rhos.push(rho);
        }
    }
    assert!(
        rhos[0] > rhos[1] && rhos[1] > rhos[2] && rhos[2] < 0.01,
        "{rhos:?}"
    );
}

#[test]
fn each_pair_is_shrunk_by_its_own_intensity() {
    // Three channels: a close pair (0, 1), a weak pair (0, 2): the close
    // coupling is kept almost whole, the weak one cut.
    let layout = layout(3, 0);
    let mut model = OnlineGaussian::new(layout.clone(), GaussianOptions::default());
    let mut history = History::new(&layout);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(19);
    for _ in 0..200 {
        let a = normal(&mut rng);
        let (b, c) = (a + 0.01 * normal(&mut rng), 0.02 * a + normal(&mut rng));
        history.push(&[Some(a), Some(b), Some(c)]);
        model.update(&history);
    }
    let s = model.sample_covariance().unwrap();
    let joint = model.joint().unwrap();
    let n = model.effective_samples();
    for (i, j) in [(0, 1), (0, 2), (1, 2)] {
        let r2 = s[(i, j)].powi(2) / (s[(i, i)] * s[(j, j)]);
        let rho = (((1.0 - r2).powi(2) / n + 1.0 / (n * n * n)) / r2).min(1.0);
        let shrunk = joint.covariance[(i, j)];
        assert!(
            (shrunk - (1.0 - rho) * s[(i, j)]).abs() < 1e-12,
            "({i}, {j})"
        );
    }
    let kept = |i: usize, j: usize| joint.covariance[(i, j)] / s[(i, j)];
    assert!(kept(0, 1) > 0.9999 && kept(0, 2) < 0.99 * kept(0, 1));
}

/// The ratio of a symmetric matrix's largest eigenvalue to its smallest.
fn condition_number(m: &DMatrix<f64>) -> f64 {
    let eigenvalues = m.clone().symmetric_eigenvalues();
    eigenvalues.max() / eigenvalues.min().max(f64::MIN_POSITIVE)
}

#[test]
fn shrinkage_keeps_a_few_windows_of_many_lags_well_conditioned() {
    // 3 channels × 5 lags = 18 coordinates from 10 windows: the sample
    // covariance has rank ≤ 9, the shrunk one is well-conditioned.
    let data = windows(15, 12);
    let (model, mut history) = fit(&data, 5, GaussianOptions::default());
    assert_eq!(model.absorbed(), 10);
    assert!(condition_number(&model.sample_covariance().unwrap()) > 1e12);
    assert!(condition_number(&model.joint().unwrap().covariance) < 1e4);
    history.push(&[Some(100.0), None, None]);
    let prediction = model.predict(&history, &[1, 2]).unwrap();
    let marginal = model.joint().unwrap();
    for k in 0..2 {
        let v = prediction.variance(k);
        assert!(v > 0.0 && v <= marginal.covariance[(k + 1, k + 1)], "{v}");
    }
}

#[test]
fn a_channel_gone_for_a_while_keeps_its_variance() {
    // Channel 2 (variance 1.09, of which the others explain 0.09) is missing
    // for 2000 windows after 500 complete ones; the expectation step must
    // neither shrink nor inflate its variance.
    let layout = layout(3, 1);
    let mut model = OnlineGaussian::new(layout.clone(), exact(f64::INFINITY));
    let mut history = History::new(&layout);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(13);
    for t in 0..6000 {
        let (a, b, c) = (normal(&mut rng), normal(&mut rng), normal(&mut rng));
        let gone = (500..2500).contains(&t);
        let third = -20.0 + 0.3 * a + c;
        history.push(&[Some(a), Some(a + b), (!gone).then_some(third)]);
        model.update(&history);
    }
    assert_eq!(
        model.absorbed(),
        5999,
        "every window after the first is absorbed"
    );
    let variance = model.sample_covariance().unwrap()[(2, 2)];
    assert!(
        (variance / 1.09 - 1.0).abs() < 0.06,
        "{variance} against 1.09"
    );
    assert!((model.mean()[2] + 20.0).abs() < 0.05);
}

#[test]
fn forgetting_follows_a_change_of_coupling() {
    // Channel 1 = 2 · channel 0, then = −channel 0.
    let layout = layout(2, 0);
    let run = |half_life| {
        let mut model = OnlineGaussian::new(
            layout.clone(),
            GaussianOptions {
                half_life,
                ..Default::default()
            },
        );
        let mut history = History::new(&layout);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(14);
        for t in 0..4000 {
            let a = normal(&mut rng);
            let gain = if t < 2000 { 2.0 } else { -1.0 };
            history.push(&[Some(a), Some(gain * a + 0.1 * normal(&mut rng))]);
            model.update(&history);
        }
        history.push(&[Some(1.0), None]);
        model.predict(&history, &[1]).unwrap().mean[0]
    };
    assert!((run(100.0) + 1.0).abs() < 0.05, "{}", run(100.0));
    assert!(
        (run(f64::INFINITY) - 0.5).abs() < 0.1,
        "{}",
        run(f64::INFINITY)
    );
}

#[test]
fn samples_are_deterministic_and_reproduce_the_process() {
    let (model, _) = fit(&simulate(30_000, 15), 1, GaussianOptions::default());
    let start = History::new(model.layout());
    let sample = |seed| {
        model
            .sample(&mut Xoshiro256PlusPlus::seed_from_u64(seed), &start, 20_000)
            .unwrap()
    };
    let trajectory = sample(16);
    assert_eq!(trajectory, sample(16));
    assert_ne!(trajectory[..10], sample(17)[..10]);
    // Its lag-1 cross-covariance and covariance give back A (Yule–Walker).
    let (a, _, _) = var1();
    let states: Vec<Vec<f64>> = (1..trajectory.len())
        .map(|t| [trajectory[t].as_slice(), &trajectory[t - 1]].concat())
        .collect();
    let (_, c) = batch(&states, &vec![1.0; states.len()]);
    let estimate = c.view((0, 3), (3, 3)) * c.view((3, 3), (3, 3)).try_inverse().unwrap();
    assert!(
        (&estimate - &a).abs().max() < 0.05,
        "A from samples: {estimate}"
    );
    // And the spread of the process: the model's variances.
    let joint = model.joint().unwrap();
    for k in 0..3 {
        let ratio = c[(k, k)] / joint.covariance[(k, k)];
        assert!(
            (ratio - 1.0).abs() < 0.1,
            "channel {k}: sampled variance ratio {ratio}"
        );
    }
}

#[test]
fn bad_requests_are_errors() {
    let layout = layout(3, 1);
    let mut model = OnlineGaussian::new(layout.clone(), GaussianOptions::default());
    let mut history = History::new(&layout);
    history.push(&[Some(1.0), Some(2.0), Some(3.0)]);
    history.push(&[Some(1.5), Some(2.5), Some(3.5)]);
    model.update(&history);
    assert_eq!(
        model.predict(&history, &[0]),
        Err(ModelError::NotReady {
            absorbed: 1,
            needed: 2
        })
    );
    history.push(&[Some(1.2), Some(2.1), Some(3.9)]);
    model.update(&history);
    assert!(model.predict(&history, &[0]).is_ok());
    assert!(matches!(
        model.predict(&history, &[3]),
        Err(ModelError::BadChannel { channel: 3, .. })
    ));
    assert!(matches!(
        model.predict(&history, &[1, 1]),
        Err(ModelError::BadChannel { channel: 1, .. })
    ));
    let other = History::new(&self::layout(2, 1));
    assert!(matches!(
        model.predict(&other, &[0]),
        Err(ModelError::Layout(_))
    ));
}

#[test]
fn an_early_model_skips_incomplete_windows() {
    // 3 channels × 1 lag: 6 coordinates. Until 6 windows are learnt, a
    // window with a value missing is not filled in from the model.
    let layout = layout(3, 1);
    let mut model = OnlineGaussian::new(layout.clone(), GaussianOptions::default());
    let mut history = History::new(&layout);
    let data = windows(12, 16);
    for (t, w) in data.iter().enumerate() {
        let third = (!(4..8).contains(&t)).then_some(w[2]);
        history.push(&[Some(w[0]), Some(w[1]), third]);
        model.update(&history);
        let expected = match t {
            0 => 0,              // no lag yet
            1..=3 => t as u64,   // complete
            4..=8 => 3,          // incomplete (t = 8 lacks its lag), too early
            _ => (t - 5) as u64, // complete again
        };
        assert_eq!(model.absorbed(), expected, "after window {t}");
    }
}

#[test]
fn a_stuck_channel_does_not_make_the_model_singular() {
    // Channel 2 reads 5.0 throughout: its variance is 0 but for the floor.
    let layout = layout(3, 1);
    let mut model = OnlineGaussian::new(layout.clone(), GaussianOptions::default());
    let mut history = History::new(&layout);
    for w in windows(300, 17) {
        history.push(&[Some(w[0]), Some(w[1]), Some(5.0)]);
        model.update(&history);
    }
    history.push(&[Some(102.0), None, Some(5.0)]);
    let predicted = model.predict(&history, &[1]).unwrap();
    // Channel 1 = 50 + a + b/2 with channel 0 = 100 + 2a: 51 ± 0.5.
    assert!(
        (predicted.mean[0] - 51.0).abs() < 0.1,
        "{}",
        predicted.mean[0]
    );
    assert!(
        (predicted.variance(0) - 0.25).abs() < 0.05,
        "{}",
        predicted.variance(0)
    );
    assert!(model.log_likelihood(&history).unwrap().total.is_finite());
}

#[test]
fn a_weak_pair_does_not_blur_a_close_coupling() {
    // b = 2a + noise of sd 0.1 with a of sd 30 (r = 0.999995), beside a
    // channel w that barely follows a (r ≈ 0.1): after 1000 windows, b is
    // predicted from a with about the noise's variance.
    let layout = layout(3, 0);
    let mut model = OnlineGaussian::new(layout.clone(), GaussianOptions::default());
    let mut history = History::new(&layout);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(18);
    for _ in 0..1000 {
        let a = 60.0 + 30.0 * normal(&mut rng);
        let b = 2.0 * a + 0.1 * normal(&mut rng);
        let w = 0.1 * (a - 60.0) / 30.0 + normal(&mut rng);
        history.push(&[Some(a), Some(b), Some(w)]);
        model.update(&history);
    }
    history.push(&[Some(75.0), None, Some(0.3)]);
    let predicted = model.predict(&history, &[1]).unwrap();
    assert!(
        (predicted.mean[0] - 150.0).abs() < 0.05,
        "{}",
        predicted.mean[0]
    );
    let ratio = predicted.variance(0) / 0.01;
    assert!(
        (0.8..1.25).contains(&ratio),
        "variance {} times the noise's",
        ratio
    );
}

#[test]
fn a_settled_model_works_out_its_joint_every_few_windows() {
    // 2 channels, no lags: d = 2, settled after 40 windows.
    let layout = layout(2, 0);
    let lazy = GaussianOptions {
        refresh_every: 8,
        ..exact(f64::INFINITY)
    };
    let mut every = OnlineGaussian::new(layout.clone(), exact(f64::INFINITY));
    let mut eighth = OnlineGaussian::new(layout.clone(), lazy);
    let mut history = History::new(&layout);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let mut step = |every: &mut OnlineGaussian, eighth: &mut OnlineGaussian| {
        let x = normal(&mut rng);
        history.push(&[Some(x), Some(x + normal(&mut rng))]);
        every.update(&history);
        eighth.update(&history);
    };
    // Unsettled, both work it out after each window.
    for _ in 0..39 {
        step(&mut every, &mut eighth);
        assert_eq!(every.joint(), eighth.joint());
    }
    // Settled: after 48 windows (a multiple of 8) they agree; after 49,
    // the lazy one still predicts with the joint of 48.
    for _ in 39..48 {
        step(&mut every, &mut eighth);
    }
    assert_eq!(every.joint(), eighth.joint());
    let at_48 = eighth.joint().unwrap().clone();
    step(&mut every, &mut eighth);
    assert_eq!(eighth.joint().unwrap(), &at_48);
    assert_ne!(every.joint().unwrap(), &at_48);
    // What it learns is the same: mean and scatter are exact.
    assert_eq!(every.mean(), eighth.mean());
}

#[test]
fn marginals_are_the_predictions_from_nothing() {
    let layout = layout(3, 1);
    let mut model = OnlineGaussian::new(layout.clone(), GaussianOptions::default());
    let mut history = History::new(&layout);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    for _ in 0..200 {
        let x = normal(&mut rng);
        history.push(&[
            Some(x),
            Some(2.0 * x + normal(&mut rng)),
            Some(normal(&mut rng)),
        ]);
        model.update(&history);
    }
    for channel in 0..3 {
        let nothing = model.predict(&History::new(&layout), &[channel]).unwrap();
        let (mean, variance) = model.marginal(channel).unwrap();
        assert!((mean - nothing.mean[0]).abs() < 1e-12, "channel {channel}");
        assert!(
            (variance - nothing.variance(0)).abs() < 1e-12,
            "channel {channel}"
        );
    }
    assert!(model.marginal(3).is_err());
}

#[test]
fn a_reweighted_model_keeps_its_estimate_and_weighs_as_many_windows() {
    let data = windows(500, 4);
    let (model, mut history) = fit(&data, 0, exact(f64::INFINITY));
    let (mean, covariance) = (model.mean().clone(), model.sample_covariance().unwrap());
    let prior = model.reweighted(100.0, 50.0);
    assert_eq!(prior.options().half_life, 50.0);
    assert!((prior.effective_samples() - 100.0).abs() < 1e-9);
    assert_matrices_close(
        &DMatrix::from_column_slice(3, 1, prior.mean().as_slice()),
        &DMatrix::from_column_slice(3, 1, mean.as_slice()),
        1e-12,
        "mean",
    );
    assert_matrices_close(
        &prior.sample_covariance().unwrap(),
        &covariance,
        1e-12,
        "covariance",
    );
    // One new window moves the mean as one window against 100 decayed by
    // one step of a 50-window half-life: μ' = (λ·100·μ + x) / (λ·100 + 1).
    let x = [110.0, 40.0, -25.0];
    history.push(&observed(&x));
    let mut updated = prior.clone();
    updated.update(&history);
    let old = 0.5f64.powf(1.0 / 50.0) * 100.0;
    for (i, &xi) in x.iter().enumerate() {
        let expected = (old * mean[i] + xi) / (old + 1.0);
        assert!(
            (updated.mean()[i] - expected).abs() < 1e-9,
            "channel {i}: {} against {expected}",
            updated.mean()[i]
        );
    }
}
