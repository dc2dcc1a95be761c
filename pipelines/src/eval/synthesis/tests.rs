//! The synthesis figures on series small enough to score by hand.

use twinflow_operators::model::Layout;

use super::*;

fn asset(names: &[&str], start_us: Micros, columns: &[&[Option<f64>]]) -> AssetWindows {
    let windows = (0..columns[0].len())
        .map(|t| columns.iter().map(|c| c[t]).collect())
        .collect();
    AssetWindows {
        asset: "a".into(),
        layout: Layout::of_names(names, 0).unwrap(),
        start_us,
        window_us: 1_000_000,
        windows,
    }
}

fn all(values: &[f64]) -> Vec<Option<f64>> {
    values.iter().map(|&v| Some(v)).collect()
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() < 1e-12, "{what}: {a} against {b}");
}

#[test]
fn moments_lag1_and_correlations_match_the_hand_computation() {
    // Real: current 1, 2, 3, 4 (mean 2.5, variance 1.25, lag-1 r = 1) and
    // flow 2, 4, 6, 8 (r with current = 1).
    let real = [asset(
        &["current", "flow"],
        0,
        &[&all(&[1.0, 2.0, 3.0, 4.0]), &all(&[2.0, 4.0, 6.0, 8.0])],
    )];
    // Synthetic: current 2, 2, 4, 4 (mean 3, variance 1; lag-1 pairs (2, 2),
    // (2, 4), (4, 4): r = (4/3) / (24/9) = 0.5) and flow 4, 2, 4, 2, which
    // does not follow current (r = 0); a last window without flow counts
    // for current's pairs, not for the correlations.
    let synthetic = [asset(
        &["current", "flow"],
        0,
        &[
            &all(&[2.0, 2.0, 4.0, 4.0, 3.0]),
            &[Some(4.0), Some(2.0), Some(4.0), Some(2.0), None],
        ],
    )];
    let score = score(&synthetic, &real).unwrap();
    let current = &score.channels[0];
    assert_eq!(current.channel, "current");
    close(current.real_mean, 2.5, "real mean");
    // With the fifth window: mean 15/5 = 3, variance (1 + 1 + 1 + 1 + 0) / 5 = 0.8.
    close(current.synthetic_mean, 3.0, "synthetic mean");
    close(current.mean_difference, 0.2, "mean difference");
    close(current.real_std, 1.25f64.sqrt(), "real std");
    close(current.synthetic_std, 0.8f64.sqrt(), "synthetic std");
    close(
        current.std_difference,
        (0.8f64.sqrt() - 1.25f64.sqrt()).abs() / 1.25f64.sqrt(),
        "std difference",
    );
    close(current.real_lag1, 1.0, "real lag-1");
    // Pairs (2, 2), (2, 4), (4, 4), (4, 3): x̄ = 3, ȳ = 3.25;
    // Σ dx dy = (−1)(−1.25) + (−1)(0.75) + (1)(0.75) + (1)(−0.25) = 1,
    // Σ dx² = 4, Σ dy² = 1.5625 + 0.5625 + 0.5625 + 0.0625 = 2.75.
    let r = 1.0 / (4.0f64 * 2.75).sqrt();
    close(current.synthetic_lag1, r, "synthetic lag-1");
    close(current.lag1_difference, 1.0 - r, "lag-1 difference");
    // Flow's pairs: (4, 2), (2, 4), (4, 2): r = −1.
    close(score.channels[1].synthetic_lag1, -1.0, "flow's lag-1");
    // Correlation matrices [[1, 1], [1, 1]] and [[1, 0], [0, 1]]:
    // ‖Δ‖_F = √2, over 2 channels.
    close(score.real_correlation[0][1], 1.0, "real correlation");
    close(
        score.synthetic_correlation[0][1],
        0.0,
        "synthetic correlation",
    );
    close(
        score.correlation_difference,
        2.0f64.sqrt() / 2.0,
        "correlation difference",
    );
    // No temperature: no regression.
    assert_eq!(score.train_on_synthetic, None);
}

#[test]
fn train_on_synthetic_scores_the_synthetic_law_on_the_real_last_40_percent() {
    // 50 windows; temperature follows current and flow exactly, in the real
    // log as 10 + 2 current + 3 flow, in the synthetic one 1 higher. The
    // current's filters are features too, but with the exact law their
    // coefficients are 0. Trained on the real first 60 % (windows 1–29: the
    // first has no filter yet), the regression is exact; trained on the
    // synthetic windows it misses each real window by exactly 1.
    let current: Vec<f64> = (0..50)
        .map(|t| 20.0 + 10.0 * (t as f64 * 0.3).sin())
        .collect();
    let flow: Vec<f64> = (0..50).map(|t| 50.0 + (t * t % 17) as f64).collect();
    let law = |offset: f64| -> Vec<f64> {
        current
            .iter()
            .zip(&flow)
            .map(|(c, f)| offset + 10.0 + 2.0 * c + 3.0 * f)
            .collect()
    };
    let names = ["temperature", "current", "flow"];
    let start = 1_767_225_600_000_000;
    let real = [asset(
        &names,
        start,
        &[&all(&law(0.0)), &all(&current), &all(&flow)],
    )];
    let synthetic = [asset(
        &names,
        start,
        &[&all(&law(1.0)), &all(&current), &all(&flow)],
    )];
    let tstr = score(&synthetic, &real)
        .unwrap()
        .train_on_synthetic
        .unwrap();
    assert_eq!(
        (
            tstr.synthetic_windows,
            tstr.real_train_windows,
            tstr.real_test_windows
        ),
        (49, 29, 20)
    );
    assert!(
        (tstr.tstr_rmse - 1.0).abs() < 1e-6,
        "TSTR {}",
        tstr.tstr_rmse
    );
    assert!(tstr.trtr_rmse < 1e-6, "TRTR {}", tstr.trtr_rmse);
    assert_eq!(
        tstr.inputs,
        [
            "current",
            "flow",
            "current_filtered_60",
            "current_filtered_300"
        ]
    );
}
