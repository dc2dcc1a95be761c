//! The mixture against hand-computed mixtures, a two-regime process one Gaussian cannot follow, and its own saved copy.

use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::*;
use crate::model::conditional::LN_2PI;
use crate::model::gaussian::Shrinkage;
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

/// The plain sample mean and covariance: no forgetting, no shrinkage.
fn exact() -> GaussianOptions {
    GaussianOptions {
        half_life: f64::INFINITY,
        shrinkage: Shrinkage::Fixed(0.0),
        refresh_every: 1,
    }
}

/// A Gaussian learnt from exactly these windows.
fn component(layout: &Layout, windows: &[&[f64]]) -> OnlineGaussian {
    let mut model = OnlineGaussian::new(layout.clone(), exact());
    let mut history = History::new(layout);
    for w in windows {
        history.push(&w.iter().map(|&v| Some(v)).collect::<Vec<_>>());
        model.update(&history);
    }
    model
}

fn mixture_of(layout: &Layout, components: Vec<OnlineGaussian>) -> GaussianMixture {
    GaussianMixture {
        layout: layout.clone(),
        options: MixtureOptions {
            components: components.len(),
            gaussian: exact(),
            warmup: 0,
        },
        components,
        pending: Vec::new(),
    }
}

/// ln N(x; mean, variance), written out.
fn ln_normal(x: f64, mean: f64, variance: f64) -> f64 {
    -0.5 * ((x - mean).powi(2) / variance + LN_2PI + variance.ln())
}

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-12 * b.abs().max(1.0),
        "{what}: {a} against {b}"
    );
}

/// A: windows −1, 1 (mean 0, variance 2, weight 2); B: windows 3, 5, 7
/// (mean 5, variance 4, weight 3); so π = (0.4, 0.6).
fn one_dimensional() -> (Layout, GaussianMixture) {
    let layout = layout(1, 0);
    let a = component(&layout, &[&[-1.0], &[1.0]]);
    let b = component(&layout, &[&[3.0], &[5.0], &[7.0]]);
    let mixture = mixture_of(&layout, vec![a, b]);
    (layout, mixture)
}

#[test]
fn responsibilities_of_a_one_dimensional_mixture_match_the_hand_computation() {
    let (layout, mixture) = one_dimensional();
    let weights: Vec<f64> = mixture.log_weights().iter().map(|w| w.exp()).collect();
    close(weights[0], 0.4, "π_A");
    close(weights[1], 0.6, "π_B");
    let mut history = History::new(&layout);
    history.push(&[Some(2.0)]);
    // 0.4 N(2; 0, 2) against 0.6 N(2; 5, 4).
    let a = 0.4 * (-1.0f64).exp() / (4.0 * std::f64::consts::PI).sqrt();
    let b = 0.6 * (-9.0f64 / 8.0).exp() / (8.0 * std::f64::consts::PI).sqrt();
    let r = mixture.responsibilities(&history).unwrap();
    close(r[0], a / (a + b), "r_A");
    close(r[1], b / (a + b), "r_B");
    // Its log-likelihood is the mixture's density, whole and as the one channel's share.
    let scored = mixture.log_likelihood(&history).unwrap();
    close(scored.total, (a + b).ln(), "log-likelihood");
    close(scored.channels[0].log_density, (a + b).ln(), "share");
    // With nothing given, the predictive is the mixture itself: mean
    // 0.4·0 + 0.6·5 = 3, variance 0.4·2 + 0.6·4 + 0.4·0.6·(5 − 0)² = 9.2.
    let prediction = mixture.predict(&history, &[0]).unwrap();
    close(prediction.mean[0], 3.0, "mean");
    close(prediction.variance(0), 9.2, "variance");
    close(scored.channels[0].z, (2.0 - 3.0) / 9.2f64.sqrt(), "z");
}

/// A: (±1, ±1), uncorrelated, mean (0, 0), variances 4/3. B: (4, 10),
/// (6, 14), (4, 12), (6, 12): mean (5, 12), variances 4/3 and 8/3,
/// covariance 4/3, so y | x ~ N(12 + (x − 5), 4/3). Equal weights.
fn two_dimensional() -> (Layout, GaussianMixture) {
    let layout = layout(2, 0);
    let a = component(
        &layout,
        &[&[-1.0, -1.0], &[1.0, 1.0], &[-1.0, 1.0], &[1.0, -1.0]],
    );
    let b = component(
        &layout,
        &[&[4.0, 10.0], &[6.0, 14.0], &[4.0, 12.0], &[6.0, 12.0]],
    );
    (layout.clone(), mixture_of(&layout, vec![a, b]))
}

#[test]
fn the_predictive_of_a_two_dimensional_mixture_matches_the_hand_computation() {
    let (layout, mixture) = two_dimensional();
    let mut history = History::new(&layout);
    history.push(&[Some(2.0), None]);
    // Weights given x = 2: both variances 4/3, so the normalisers cancel:
    // w_A ∝ exp(−2²/(2·4/3)) = e^−1.5, w_B ∝ exp(−3²/(2·4/3)) = e^−3.375.
    let w_a = 1.0 / (1.0 + (-3.375f64 + 1.5).exp());
    let w_b = 1.0 - w_a;
    // y | x = 2: N(0, 4/3) under A, N(9, 4/3) under B.
    let prediction = mixture.predict(&history, &[1]).unwrap();
    close(prediction.mean[0], w_b * 9.0, "mean");
    close(
        prediction.variance(0),
        4.0 / 3.0 + w_a * w_b * 81.0,
        "variance",
    );

    // Observing y = 10 too: the whole density, and y's share given x.
    history.set_current(1, Some(10.0));
    let v = 4.0 / 3.0;
    let a = 0.5f64.ln() + ln_normal(2.0, 0.0, v) + ln_normal(10.0, 0.0, v);
    let b = 0.5f64.ln() + ln_normal(2.0, 5.0, v) + ln_normal(10.0, 9.0, v);
    let total = (a.exp() + b.exp()).ln();
    let scored = mixture.log_likelihood(&history).unwrap();
    close(scored.total, total, "log-likelihood");
    let y = scored.channels.iter().find(|c| c.channel == 1).unwrap();
    let share = (w_a * ln_normal(10.0, 0.0, v).exp() + w_b * ln_normal(10.0, 9.0, v).exp()).ln();
    close(y.log_density, share, "y's share");
    let mean = w_b * 9.0;
    close(y.z, (10.0 - mean) / (v + w_a * w_b * 81.0).sqrt(), "y's z");
}

/// Two regimes that switch now and then: idle (x ≈ 2, y rising with x)
/// and load (x ≈ 10, y falling with x).
fn two_regimes(n: usize, seed: u64) -> Vec<[f64; 2]> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut loaded = false;
    (0..n)
        .map(|_| {
            if rng.random::<f64>() < 0.01 {
                loaded = !loaded;
            }
            let e: [f64; 2] = [rng.sample(StandardNormal), rng.sample(StandardNormal)];
            if loaded {
                let x = 10.0 + e[0];
                [x, 30.0 - 2.0 * x + 0.1 * e[1]]
            } else {
                let x = 2.0 + 0.5 * e[0];
                [x, 1.0 + 0.2 * x + 0.1 * e[1]]
            }
        })
        .collect()
}

fn learn_online(model: &mut dyn AssetModel, data: &[[f64; 2]]) -> History {
    let mut history = History::new(model.layout());
    for w in data {
        history.push(&[Some(w[0]), Some(w[1])]);
        model.update(&history);
    }
    history
}

/// y predicted from x over held-out windows: the root mean squared error
/// and the mean log-likelihood of the windows.
fn score(model: &dyn AssetModel, data: &[[f64; 2]]) -> (f64, f64) {
    let mut history = History::new(model.layout());
    let (mut squared, mut log_likelihood) = (0.0, 0.0);
    for w in data {
        history.push(&[Some(w[0]), None]);
        let predicted = model.predict(&history, &[1]).unwrap().mean[0];
        squared += (predicted - w[1]).powi(2);
        history.set_current(1, Some(w[1]));
        log_likelihood += model.log_likelihood(&history).unwrap().total;
    }
    let n = data.len() as f64;
    ((squared / n).sqrt(), log_likelihood / n)
}

#[test]
fn on_two_regimes_the_mixture_predicts_far_better_than_one_gaussian() {
    let layout = layout(2, 0);
    let options = MixtureOptions {
        components: 2,
        gaussian: GaussianOptions::default(),
        warmup: 500,
    };
    let train = two_regimes(4000, 1);
    let test = two_regimes(2000, 2);
    let mut gaussian = OnlineGaussian::new(layout.clone(), GaussianOptions::default());
    let mut mixture = GaussianMixture::new(layout.clone(), options);
    learn_online(&mut gaussian, &train);
    learn_online(&mut mixture, &train);
    let (gaussian_rmse, gaussian_ll) = score(&gaussian, &test);
    let (mixture_rmse, mixture_ll) = score(&mixture, &test);
    // Within a regime y is x's line plus noise of 0.1.
    assert!(mixture_rmse < 0.15, "mixture RMSE {mixture_rmse}");
    assert!(
        mixture_rmse < 0.1 * gaussian_rmse,
        "mixture {mixture_rmse} against one Gaussian {gaussian_rmse}"
    );
    assert!(
        mixture_ll > gaussian_ll + 1.0,
        "mean log-likelihood {mixture_ll} against {gaussian_ll}"
    );

    // Trained by EM passes instead, it finds the two regimes.
    let mut history = History::new(&layout);
    let states: Vec<Vec<Option<f64>>> = train
        .iter()
        .map(|w| {
            history.push(&[Some(w[0]), Some(w[1])]);
            history.state().to_vec()
        })
        .collect();
    let mut passes = 0;
    let fitted = GaussianMixture::fit(layout, options, &states, 3, || passes += 1).unwrap();
    assert_eq!(passes, 3);
    let mut means: Vec<f64> = fitted.components().iter().map(|c| c.mean()[0]).collect();
    means.sort_by(f64::total_cmp);
    assert!(
        (means[0] - 2.0).abs() < 0.1 && (means[1] - 10.0).abs() < 0.2,
        "{means:?}"
    );
    let (fitted_rmse, _) = score(&fitted, &test);
    assert!(fitted_rmse < 0.15, "fitted RMSE {fitted_rmse}");
}

#[test]
fn an_online_mixture_starts_after_its_warmup() {
    let layout = layout(2, 1);
    let options = MixtureOptions {
        components: 2,
        gaussian: GaussianOptions::default(),
        warmup: 100,
    };
    let mut mixture = GaussianMixture::new(layout.clone(), options);
    let mut history = History::new(&layout);
    for (t, w) in two_regimes(101, 3).iter().enumerate() {
        history.push(&[Some(w[0]), Some(w[1])]);
        // The first window has no lag: it is not complete.
        assert!(
            matches!(
                mixture.predict(&history, &[1]),
                Err(ModelError::NotReady { needed: 100, .. })
            ),
            "window {t}"
        );
        assert!(mixture.save(Path::new("/nonexistent")).is_err());
        mixture.update(&history);
    }
    assert_eq!(mixture.components().len(), 2);
    assert!(mixture.predict(&history, &[1]).is_ok());
}

#[test]
fn samples_are_deterministic_and_visit_both_regimes_in_proportion() {
    // No lags: a window that switches regime would mix both in its state.
    let layout = layout(2, 0);
    let mut mixture = GaussianMixture::new(
        layout.clone(),
        MixtureOptions {
            components: 2,
            gaussian: GaussianOptions::default(),
            warmup: 500,
        },
    );
    let data = two_regimes(6000, 4);
    learn_online(&mut mixture, &data);
    let start = History::new(&layout);
    let rng = |seed| Xoshiro256PlusPlus::seed_from_u64(seed);
    let drawn = mixture.sample(&mut rng(5), &start, 20_000).unwrap();
    assert_eq!(drawn, mixture.sample(&mut rng(5), &start, 20_000).unwrap());
    assert_ne!(drawn, mixture.sample(&mut rng(6), &start, 20_000).unwrap());
    // Every window lies on one regime's line, not between them.
    let on_a_line = drawn
        .iter()
        .filter(|w| {
            let idle = (w[1] - (1.0 + 0.2 * w[0])).abs() < 0.5 && w[0] < 6.0;
            let load = (w[1] - (30.0 - 2.0 * w[0])).abs() < 0.5 && w[0] > 6.0;
            idle || load
        })
        .count();
    assert!(
        on_a_line as f64 > 0.97 * drawn.len() as f64,
        "{on_a_line} of {} on a regime's line",
        drawn.len()
    );
    let loaded = |windows: &[Vec<f64>]| {
        windows.iter().filter(|w| w[0] > 6.0).count() as f64 / windows.len() as f64
    };
    let observed: Vec<Vec<f64>> = data.iter().map(|w| w.to_vec()).collect();
    assert!(
        (loaded(&drawn) - loaded(&observed)).abs() < 0.1,
        "share at load: drawn {}, observed {}",
        loaded(&drawn),
        loaded(&observed)
    );
}

#[test]
fn save_then_load_predicts_bit_for_bit() {
    let layout = layout(2, 1);
    let mut mixture = GaussianMixture::new(
        layout.clone(),
        MixtureOptions {
            components: 3,
            gaussian: GaussianOptions::default(),
            warmup: 300,
        },
    );
    let mut history = learn_online(&mut mixture, &two_regimes(1500, 7));
    let dir = std::env::temp_dir().join(format!("twinflow-mixture-{}", std::process::id()));
    mixture.save(&dir).unwrap();
    assert_eq!(GaussianMixture::load(&dir).unwrap(), mixture);
    let mut loaded = load(&dir).unwrap();
    assert_eq!(loaded.kind(), ModelKind::Mixture);
    assert_eq!(loaded.layout(), mixture.layout());
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for w in two_regimes(100, 8) {
        history.push(&[Some(w[0]), None]);
        let (a, b) = (
            mixture.predict(&history, &[1]).unwrap(),
            loaded.predict(&history, &[1]).unwrap(),
        );
        assert_eq!(bits(a.mean.as_slice()), bits(b.mean.as_slice()));
        assert_eq!(bits(a.covariance.as_slice()), bits(b.covariance.as_slice()));
        history.set_current(1, Some(w[1]));
        assert_eq!(
            mixture.log_likelihood(&history).unwrap().total.to_bits(),
            loaded.log_likelihood(&history).unwrap().total.to_bits()
        );
        mixture.update(&history);
        loaded.update(&history);
    }
    let rng = |seed| Xoshiro256PlusPlus::seed_from_u64(seed);
    assert_eq!(
        mixture.sample(&mut rng(9), &history, 50).unwrap(),
        loaded.sample(&mut rng(9), &history, 50).unwrap()
    );
    // A Gaussian's files are not a mixture's.
    OnlineGaussian::new(layout, GaussianOptions::default());
    let gaussian_dir = dir.join("gaussian");
    let (_, one) = one_dimensional();
    one.components()[0].save(&gaussian_dir).unwrap();
    assert!(matches!(
        GaussianMixture::load(&gaussian_dir),
        Err(ModelError::Format(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_start_slices_states_along_their_first_principal_component() {
    // Three clumps on a line through 3-D space, given out of order: the
    // clusters are the clumps, whatever the order.
    let clump = |c: f64, i: usize| {
        let jitter = (i as f64 * 0.37).sin() * 0.1;
        DVector::from_vec(vec![c + jitter, 2.0 * c - jitter, -c + 0.5 * jitter])
    };
    let states: Vec<DVector<f64>> = (0..30).map(|i| clump([5.0, 0.0, 10.0][i % 3], i)).collect();
    let assignment = clusters(&states, 3);
    for i in 0..30 {
        for j in 0..30 {
            assert_eq!(assignment[i] == assignment[j], i % 3 == j % 3, "{i}, {j}");
        }
    }
    assert_eq!(assignment, clusters(&states, 3), "deterministic");
}
