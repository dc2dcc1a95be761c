//! The neural model against hand computations, a linear Gaussian on a nonlinear relation, and itself saved and reloaded.

use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::train::{AssetStates, NeuralOptions, train};
use super::*;
use crate::model::gaussian::{GaussianOptions, OnlineGaussian, Shrinkage};
use crate::model::load;

fn layout(names: &[&str], lags: usize) -> Layout {
    Layout::of_names(names, lags).unwrap()
}

/// Windows of x uniform in [−2, 2], drawn afresh each window, and
/// y = x² + N(0, 0.1²): y owes nothing linear to x (x is symmetric).
fn parabola(n: usize, seed: u64) -> Vec<[f64; 2]> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let x = 4.0 * rng.random::<f64>() - 2.0;
            let noise: f64 = rng.sample(StandardNormal);
            [x, x * x + 0.1 * noise]
        })
        .collect()
}

/// The states of `layout`'s history as `windows` are pushed, with every
/// 7th window's y missing (the data's own gaps).
fn states(layout: &Layout, windows: &[[f64; 2]]) -> Vec<Vec<Option<f64>>> {
    let mut history = History::new(layout);
    windows
        .iter()
        .enumerate()
        .map(|(t, w)| {
            history.push(&[Some(w[0]), Some(w[1]).filter(|_| t % 7 != 3)]);
            history.state().to_vec()
        })
        .collect()
}

fn small() -> NeuralOptions {
    NeuralOptions {
        hidden_layers: 2,
        width: 32,
        epochs: 25,
        learning_rate: 5e-3,
        batch: 64,
        seed: 7,
    }
}

fn trained(layout: &Layout, seed: u64) -> (NeuralModel, Vec<f64>) {
    let states = states(layout, &parabola(3000, 1));
    let assets = [AssetStates {
        layout,
        states: &states,
    }];
    let out = train(&assets, &NeuralOptions { seed, ..small() }, |_, _| {}).unwrap();
    (out.models.into_iter().next().unwrap(), out.losses)
}

#[test]
fn standardises_each_slot_by_its_observed_values() {
    let states = vec![
        vec![Some(1.0), None, Some(5.0)],
        vec![Some(3.0), None, Some(5.0)],
        vec![Some(8.0), Some(2.0), Some(5.0)],
    ];
    let s = Standardiser::fit(&states, 3);
    // Slot 0: mean 4, sample variance ((−3)² + (−1)² + 4²)/2 = 13.
    assert!((s.mean[0] - 4.0).abs() < 1e-12);
    assert!((s.std[0] - 13f64.sqrt()).abs() < 1e-12);
    // One value: unit spread; a stuck slot: the floor, not zero.
    assert_eq!((s.mean[1], s.std[1]), (2.0, 1.0));
    assert!(s.std[2] > 0.0 && s.std[2] < 1e-6);
    let mut input = Vec::new();
    s.encode(&[Some(8.0), None, Some(5.0)], &mut input);
    assert_eq!(input.len(), 6);
    assert!((input[0] - 4.0 / 13f64.sqrt()).abs() < 1e-12);
    assert_eq!(&input[1..], &[0.0, 0.0, 0.0, 1.0, 0.0]);
}

#[test]
fn learns_a_nonlinear_coupling_a_linear_gaussian_cannot() {
    let layout = layout(&["x", "y"], 1);
    let (model, losses) = trained(&layout, 7);
    // Predicting each standardised channel by its mean with unit variance
    // scores ½ (ln 1 + E z²) = ½: learning must take the loss well below.
    let last = *losses.last().unwrap();
    assert!(
        last < losses[0] - 0.5 && last < 0.0,
        "the loss fell from {} to {last}",
        losses[0]
    );
    let mut gaussian = OnlineGaussian::new(
        layout.clone(),
        GaussianOptions {
            half_life: f64::INFINITY,
            shrinkage: Shrinkage::Fixed(0.0),
            refresh_every: 1,
        },
    );
    let mut history = History::new(&layout);
    for w in parabola(3000, 1) {
        history.push(&[Some(w[0]), Some(w[1])]);
        gaussian.update(&history);
    }
    // Held-out windows: y hidden at every lag, imputed from x.
    let (mut neural_se, mut gaussian_se, mut z2, mut n) = (0.0, 0.0, 0.0, 0.0);
    let mut history = History::new(&layout);
    for w in parabola(1000, 2) {
        history.push(&[Some(w[0]), Some(w[1])]);
        let alone = history.hiding(&[1]);
        let p = model.predict(&alone, &[1]).unwrap();
        let g = gaussian.predict(&alone, &[1]).unwrap();
        neural_se += (p.mean[0] - w[1]).powi(2);
        gaussian_se += (g.mean[0] - w[1]).powi(2);
        z2 += (p.mean[0] - w[1]).powi(2) / p.variance(0);
        n += 1.0;
    }
    let (neural, linear) = ((neural_se / n).sqrt(), (gaussian_se / n).sqrt());
    // The best linear predictor of x² from x is its mean: RMSE is x²'s
    // standard deviation, √(16/5 − 16/9) ≈ 1.19 (and the noise's 0.1).
    assert!((linear - 1.19).abs() < 0.1, "linear RMSE {linear}");
    // The network's can fall to the noise's 0.1.
    assert!(neural < 0.15, "neural RMSE {neural} against {linear}");
    // Its variances own up to its errors: mean z² near 1.
    let z2 = z2 / n;
    assert!((0.4..2.5).contains(&z2), "mean z² {z2}");
}

#[test]
fn training_is_deterministic_and_a_reloaded_model_predicts_the_same() {
    let layout = layout(&["x", "y"], 1);
    let (a, _) = trained(&layout, 3);
    let (b, _) = trained(&layout, 3);
    let (c, _) = trained(&layout, 4);
    let mut history = History::new(&layout);
    history.push(&[Some(0.5), Some(0.3)]);
    history.push(&[Some(1.5), None]);
    let of = |m: &NeuralModel| m.predict(&history, &[1]).unwrap();
    assert_eq!(of(&a), of(&b));
    assert_ne!(of(&a), of(&c));

    let dir = std::env::temp_dir().join(format!("twinflow-neural-{}", std::process::id()));
    a.save(&dir).unwrap();
    let read = load(&dir).unwrap();
    assert_eq!(read.kind(), ModelKind::Neural);
    assert_eq!(read.layout(), &layout);
    for targets in [&[0usize][..], &[1], &[1, 0]] {
        assert_eq!(
            read.predict(&history, targets).unwrap(),
            a.predict(&history, targets).unwrap()
        );
    }
    history.set_current(1, Some(2.0));
    assert_eq!(
        read.log_likelihood(&history).unwrap(),
        a.log_likelihood(&history).unwrap()
    );
    assert_eq!(read.marginal(1).unwrap(), a.marginal(1).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn scores_each_channel_against_its_prediction_from_the_others() {
    let layout = layout(&["x", "y"], 1);
    let (model, _) = trained(&layout, 7);
    let mut history = History::new(&layout);
    history.push(&[Some(1.0), Some(1.0)]);
    history.push(&[Some(1.5), Some(4.0)]);
    let scored = model.log_likelihood(&history).unwrap();
    assert_eq!(scored.channels.len(), 2);
    let mut total = 0.0;
    for (c, surprise) in scored.channels.iter().enumerate() {
        // By hand from the channel's prediction with it hidden in the newest window.
        let p = model.predict(&history, &[c]).unwrap();
        let x = history.current()[c].unwrap();
        let z = (x - p.mean[0]) / p.variance(0).sqrt();
        let density = -0.5 * ((2.0 * std::f64::consts::PI * p.variance(0)).ln() + z * z);
        assert_eq!(surprise.channel, c);
        assert!((surprise.z - z).abs() < 1e-9 * (1.0 + z.abs()));
        assert!((surprise.log_density - density).abs() < 1e-9 * (1.0 + density.abs()));
        total += density;
    }
    assert!((scored.total - total).abs() < 1e-9 * (1.0 + total.abs()));
    // y = 4 where x = 1.5 says 2.25: y stands out, by many σ.
    assert_eq!(scored.most_surprising()[0].channel, 1);
    assert!(scored.channels[1].z > 5.0);
    // A history of another layout, or a channel outside it, is refused.
    let other = History::new(&self::layout(&["x", "y", "z"], 1));
    assert!(matches!(
        model.predict(&other, &[0]),
        Err(ModelError::Layout(_))
    ));
    assert!(matches!(
        model.predict(&history, &[2]),
        Err(ModelError::BadChannel { .. })
    ));
    // Nothing observed: nothing to score.
    history.push(&[None, None]);
    assert_eq!(model.log_likelihood(&history).unwrap().channels.len(), 0);
    // Its marginal is the training data's.
    let (mean, variance) = model.marginal(1).unwrap();
    assert!((mean - 4.0 / 3.0).abs() < 0.1 && (variance - 1.42).abs() < 0.2);
}

#[test]
fn runs_the_network_as_candle_trained_it() {
    use candle_core::{Device, Tensor as CandleTensor};
    let layout = layout(&["x", "y"], 1);
    let (model, _) = trained(&layout, 7);
    let network = model.network();
    let candle = train::CandleNetwork {
        layers: network
            .layers
            .iter()
            .map(|l| {
                let outputs = l.bias.len();
                (
                    CandleTensor::from_vec(l.weight.clone(), (outputs, l.inputs()), &Device::Cpu)
                        .unwrap(),
                    CandleTensor::from_vec(l.bias.clone(), outputs, &Device::Cpu).unwrap(),
                )
            })
            .collect(),
        channels: 2,
    };
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
    let rows: Vec<Vec<f64>> = (0..5)
        .map(|_| (0..8).map(|_| rng.random::<f64>() * 4.0 - 2.0).collect())
        .collect();
    let input = CandleTensor::from_vec(rows.concat(), (5, 8), &Device::Cpu).unwrap();
    let (mean, log_variance) = candle.forward(&input).unwrap();
    let (mean, log_variance) = (
        mean.to_vec2::<f64>().unwrap(),
        log_variance.to_vec2::<f64>().unwrap(),
    );
    for (i, row) in rows.iter().enumerate() {
        let (m, v) = network.forward(row);
        for c in 0..2 {
            assert!((m[c] - mean[i][c]).abs() < 1e-12 * (1.0 + m[c].abs()));
            assert!((v[c] - log_variance[i][c]).abs() < 1e-12 * (1.0 + v[c].abs()));
        }
    }
    assert_eq!(candle.weights().unwrap(), **network);
}

#[test]
fn refuses_assets_of_different_layouts_and_names_quantities() {
    let a = layout(&["x", "y"], 1);
    let b = layout(&["x", "z"], 1);
    let states = vec![vec![Some(1.0); a.state_len()]; 4];
    let assets = [
        AssetStates {
            layout: &a,
            states: &states,
        },
        AssetStates {
            layout: &b,
            states: &states,
        },
    ];
    assert!(matches!(
        train(&assets, &small(), |_, _| {}),
        Err(ModelError::Layout(_))
    ));
    assert_eq!(train::quantity_of("vib-1"), "vib");
    assert_eq!(train::quantity_of("temp-12"), "temp");
    assert_eq!(train::quantity_of("current"), "current");
    assert_eq!(train::quantity_of("flow-"), "flow-");
    assert_eq!(train::quantity_of("a-b"), "a-b");
}
