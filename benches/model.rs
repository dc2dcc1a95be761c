//! The cost of the online Gaussian per asset-window: 8 channels × 2 lags, one
//! update and one prediction (and, separately, one log-likelihood), printed:
//! `cargo bench --bench model`.

use std::hint::black_box;
use std::time::Instant;

use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use twinflow::operators::model::gaussian::{GaussianOptions, OnlineGaussian};
use twinflow::operators::model::{AssetModel, Channel, History, Layout};

const CHANNELS: usize = 8;
const WINDOWS: usize = 20_000;

/// Eight channels following one slowly moving load, with noise.
fn windows(n: usize, seed: u64) -> Vec<Vec<Option<f64>>> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut load = 0.5;
    (0..n)
        .map(|_| {
            load = (load + 0.01 * (rng.random::<f64>() - 0.5)).clamp(0.0, 1.0);
            (0..CHANNELS)
                .map(|c| Some((c + 1) as f64 * load + 0.05 * rng.random::<f64>()))
                .collect()
        })
        .collect()
}

fn main() {
    let channels = (0..CHANNELS)
        .map(|i| Channel {
            index: i,
            name: format!("c{i}"),
        })
        .collect();
    let layout = Layout::new(channels, 2).unwrap();
    let mut model = OnlineGaussian::new(layout.clone(), GaussianOptions::default());
    let mut history = History::new(&layout);
    for w in windows(2_000, 1) {
        history.push(&w);
        model.update(&history);
    }
    let data = windows(WINDOWS, 2);

    let started = Instant::now();
    for (t, w) in data.iter().enumerate() {
        history.push(w);
        model.update(&history);
        black_box(model.predict(&history, &[t % CHANNELS]).unwrap());
    }
    let update_predict = started.elapsed().as_secs_f64() * 1e6 / WINDOWS as f64;

    let started = Instant::now();
    for w in &data {
        history.push(w);
        black_box(model.log_likelihood(&history).unwrap());
    }
    let likelihood = started.elapsed().as_secs_f64() * 1e6 / WINDOWS as f64;
    println!(
        "8 channels x 2 lags: update + predict one channel {update_predict:.2} µs, log-likelihood with per-channel shares {likelihood:.2} µs per asset-window"
    );
}
