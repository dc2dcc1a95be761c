//! The robust fusion against a simulated plant whose truth the test knows:
//! a lying sensor is outvoted and named, a spike is gated but not suspected,
//! a stuck sensor is named as stuck, and clean windows come out at least as
//! accurate as inverse-variance fusion, with honest intervals.

use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use rand_xoshiro::Xoshiro256PlusPlus;
use twinflow_engine::catalog::{AssetRecord, Catalog, SensorRecord};
use twinflow_operators::align::{AlignedRow, AlignedValue, Alignment, Fill, WindowShape};
use twinflow_operators::fuse::{FusedRow, Fusion, InverseVariance};
use twinflow_operators::kalman_fusion::{KalmanFusion, KalmanOptions};
use twinflow_operators::redundancy::Redundancy;
use twinflow_operators::trust::{SuspectReason, TrustState};

/// σ of temp-1..3 and press-1..2, as in TwinBench.
const SIGMAS: [f64; 5] = [0.2, 0.35, 0.5, 0.05, 0.08];
const READINGS: usize = 10;
const SECOND: i64 = 1_000_000;

fn catalog() -> Catalog {
    let asset = AssetRecord {
        asset: "pump".into(),
        line: "l".into(),
        site: "s".into(),
        kind: "pump".into(),
    };
    let sensors = ["temp-1", "temp-2", "temp-3", "press-1", "press-2"]
        .iter()
        .zip(SIGMAS)
        .map(|(channel, sigma)| SensorRecord {
            sensor: format!("pump/{channel}"),
            asset: "pump".into(),
            channel: (*channel).into(),
            kind: if channel.starts_with("temp") {
                "temperature"
            } else {
                "pressure"
            }
            .into(),
            sigma,
            min: -50.0,
            max: 250.0,
            rate_hz: None,
            quantity: None,
        })
        .collect();
    Catalog::new(vec![asset], sensors).unwrap()
}

/// How a sensor misbehaves in a window: its value offset, frozen value,
/// extra noise σ, how many seconds its clock runs ahead, or silence.
#[derive(Clone, Copy, Default)]
struct Fault {
    offset: f64,
    frozen: Option<f64>,
    noise: f64,
    ahead_s: f64,
    silent: bool,
}

/// The truth at second `k`: temperature ramps slowly and sways, pressure sways.
fn truth(k: i64) -> (f64, f64) {
    truth_at(k as f64)
}

fn truth_at(t: f64) -> (f64, f64) {
    (
        60.0 + 0.02 * t + 2.0 * (t / 150.0).sin(),
        5.0 + 0.3 * (t / 40.0).sin(),
    )
}

struct Plant {
    rng: Xoshiro256PlusPlus,
    fusion: Box<dyn twinflow_operators::fuse::AssetFusion>,
    inverse_variance: InverseVariance,
}

impl Plant {
    fn new(options: KalmanOptions) -> Plant {
        let catalog = catalog();
        let alignment =
            Alignment::from_catalog(&catalog, SECOND, Fill::CarryForward { max_age: 0 });
        let redundancy = Redundancy::from_catalog(&catalog, &alignment);
        Plant {
            rng: Xoshiro256PlusPlus::seed_from_u64(7),
            fusion: KalmanFusion::new(&catalog, redundancy.clone(), options).start(0),
            inverse_variance: InverseVariance::new(redundancy),
        }
    }

    /// One window of readings with `faults` per sensor; the robust and the
    /// inverse-variance fusion of it.
    fn window(&mut self, k: i64, faults: [Fault; 5]) -> (FusedRow, FusedRow) {
        let (temperature, pressure) = truth(k);
        let values = SIGMAS
            .iter()
            .zip(faults)
            .enumerate()
            .map(|(i, (&sigma, fault))| {
                if fault.silent {
                    return AlignedValue::missing();
                }
                // A clock running ahead stamps what it read earlier.
                let (temperature, pressure) = match fault.ahead_s {
                    0.0 => (temperature, pressure),
                    ahead => truth_at(k as f64 - ahead),
                };
                let truth = if i < 3 { temperature } else { pressure };
                let noise =
                    Normal::new(0.0, (sigma * sigma + fault.noise * fault.noise).sqrt()).unwrap();
                let readings: Vec<f64> = (0..READINGS)
                    .map(|_| {
                        fault
                            .frozen
                            .unwrap_or(truth + fault.offset + noise.sample(&mut self.rng))
                    })
                    .collect();
                let mean = readings.iter().sum::<f64>() / READINGS as f64;
                let spread =
                    readings.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / READINGS as f64;
                let shape = WindowShape {
                    readings: READINGS as u64,
                    spread: Some(spread),
                    ahead: if fault.ahead_s > 0.1 {
                        READINGS as u64
                    } else {
                        0
                    },
                };
                AlignedValue::measured(mean, shape, Some(k * SECOND))
            })
            .collect();
        let row = AlignedRow {
            asset: 0,
            start_us: k * SECOND,
            end_us: (k + 1) * SECOND,
            values,
        };
        let plain = twinflow_operators::fuse::AssetFusion::fuse(
            &mut self.inverse_variance.clone(),
            row.clone(),
            &[None, None],
        );
        (self.fusion.fuse(row, &[None, None]), plain)
    }
}

/// Squared errors of fused temperature and pressure against the truth.
fn errors(row: &FusedRow, k: i64) -> [f64; 2] {
    let (t, p) = truth(k);
    [
        row.values[0].unwrap().value - t,
        row.values[1].unwrap().value - p,
    ]
}

fn rmse(squares: &[f64]) -> f64 {
    (squares.iter().sum::<f64>() / squares.len() as f64).sqrt()
}

#[test]
fn clean_windows_are_at_least_as_accurate_as_inverse_variance_with_honest_intervals() {
    let mut plant = Plant::new(KalmanOptions::default());
    let (mut robust, mut plain, mut covered) = (vec![Vec::new(); 2], vec![Vec::new(); 2], 0);
    let windows = 3000;
    for k in 0..windows {
        let (row, iv) = plant.window(k, [Fault::default(); 5]);
        assert!(row.suspects.is_empty(), "window {k}: {:?}", row.suspects);
        if k < 300 {
            continue; // the filter learns its process noise first
        }
        for q in 0..2 {
            let (e, f) = (errors(&row, k)[q], errors(&iv, k)[q]);
            robust[q].push(e * e);
            plain[q].push(f * f);
            let v = row.values[q].unwrap();
            let (lo, hi) = v.interval95();
            let truth = if q == 0 { truth(k).0 } else { truth(k).1 };
            covered += usize::from(lo <= truth && truth <= hi);
        }
    }
    for q in 0..2 {
        let (r, p) = (rmse(&robust[q]), rmse(&plain[q]));
        // Inverse-variance is σ/√(Σ n/σ²): about 0.052 °C and 0.0134 bar.
        assert!(
            r <= p,
            "quantity {q}: robust {r} against inverse-variance {p}"
        );
    }
    let coverage = covered as f64 / (2 * (windows - 300)) as f64;
    assert!(
        (0.93..=0.97).contains(&coverage),
        "95 % intervals cover {coverage}"
    );
}

#[test]
fn a_biased_sensor_is_outvoted_excluded_and_named() {
    let mut plant = Plant::new(KalmanOptions::default());
    let mut squares = Vec::new();
    let mut named = Vec::new();
    for k in 0..900 {
        let mut faults = [Fault::default(); 5];
        if k >= 400 {
            faults[0].offset = 5.0; // temp-1, the most precise, lies by 5 °C
        }
        let (row, _) = plant.window(k, faults);
        named.extend(row.suspects.iter().map(|s| (k, s.sensor, s.reason)));
        if k >= 400 {
            squares.push(errors(&row, k)[0].powi(2));
            let temp1 = row.trust[0];
            if k >= 410 {
                assert_eq!(temp1.state, TrustState::Excluded, "window {k}");
                assert_eq!(temp1.weight, 0.0);
            }
        }
    }
    assert_eq!(named.len(), 1, "{named:?}");
    let (k, sensor, reason) = named[0];
    assert_eq!((sensor, reason), (0, SuspectReason::Deviating));
    assert!((400..410).contains(&k), "named at window {k}");
    // The lie never reaches the fused value: gated from its first window.
    assert!(
        rmse(&squares) < 0.1,
        "fused temperature RMSE {}",
        rmse(&squares)
    );
}

#[test]
fn a_spike_is_gated_not_suspected() {
    let mut plant = Plant::new(KalmanOptions::default());
    for k in 0..600 {
        let mut faults = [Fault::default(); 5];
        if k == 400 || k == 401 {
            faults[1].offset = 40.0;
        }
        let (row, _) = plant.window(k, faults);
        assert!(row.suspects.is_empty(), "window {k}: {:?}", row.suspects);
        if k == 400 {
            assert_eq!(row.trust[1].weight, 0.0, "the spike is not absorbed");
            assert!(errors(&row, k)[0].abs() < 0.3);
        }
    }
}

#[test]
fn a_stuck_sensor_is_named_as_stuck() {
    let mut plant = Plant::new(KalmanOptions::default());
    let mut named = Vec::new();
    for k in 0..600 {
        let mut faults = [Fault::default(); 5];
        if k >= 400 {
            faults[3].frozen = Some(truth(400).1); // press-1 freezes
        }
        let (row, _) = plant.window(k, faults);
        named.extend(row.suspects.iter().map(|s| (k, s.sensor, s.reason)));
    }
    assert_eq!(named.len(), 1, "{named:?}");
    assert_eq!((named[0].1, named[0].2), (3, SuspectReason::Stuck));
    assert!(named[0].0 < 405, "{named:?}");
}

#[test]
fn a_sudden_lie_on_one_of_two_sensors_is_told_by_the_prediction() {
    let mut plant = Plant::new(KalmanOptions::default());
    let mut named = Vec::new();
    let mut squares = Vec::new();
    for k in 0..700 {
        let mut faults = [Fault::default(); 5];
        if k >= 400 {
            faults[4].offset = -1.0; // press-2 reads 1 bar low
        }
        let (row, _) = plant.window(k, faults);
        named.extend(row.suspects.iter().map(|s| (k, s.sensor, s.reason)));
        if k >= 400 {
            squares.push(errors(&row, k)[1].powi(2));
        }
    }
    assert_eq!(named.len(), 1, "{named:?}");
    assert_eq!((named[0].1, named[0].2), (4, SuspectReason::Deviating));
    assert!(
        rmse(&squares) < 0.03,
        "fused pressure RMSE {}",
        rmse(&squares)
    );
}

#[test]
fn a_noisy_sensor_weighs_less() {
    let mut plant = Plant::new(KalmanOptions::default());
    let (mut before, mut during) = (0.0, 0.0);
    for k in 0..500 {
        let mut faults = [Fault::default(); 5];
        if k >= 400 {
            faults[0].noise = 5.0; // temp-1, 25 times its σ
        }
        let (row, _) = plant.window(k, faults);
        if k == 399 {
            before = row.trust[0].weight;
        }
        if k >= 400 {
            during = row.trust[0].weight.max(during);
            assert!(errors(&row, k)[0].abs() < 0.5, "window {k}");
        }
    }
    assert!(
        during < before / 20.0,
        "weight {before} before, {during} during"
    );
}

#[test]
fn a_sensor_whose_clock_runs_ahead_is_a_last_resort() {
    let mut plant = Plant::new(KalmanOptions::default());
    for k in 0..700 {
        let mut faults = [Fault::default(); 5];
        if k >= 400 {
            // temp-3 and press-2 stamp their readings 4 s ahead ...
            faults[2].ahead_s = 4.0;
            faults[4].ahead_s = 4.0;
        }
        // ... and for a while press-1 falls silent.
        let alone = (550..650).contains(&k);
        faults[3].silent = alone;
        let (row, _) = plant.window(k, faults);
        assert!(
            row.suspects.iter().all(|s| s.sensor == 2 || s.sensor == 4),
            "window {k}: {:?}",
            row.suspects
        );
        if k < 400 {
            continue;
        }
        let pressure = row.values[1].unwrap();
        assert_eq!(row.trust[2].weight, 0.0, "window {k}");
        if alone {
            // The last pressure sensor standing, believed as much as the
            // pressure can move in the clock check's 5 s.
            assert_eq!(pressure.sensors, 1, "window {k}");
            assert!(row.trust[4].weight > 0.0, "window {k}");
        } else {
            assert_eq!(row.trust[4].weight, 0.0, "window {k}");
        }
        assert!(errors(&row, k)[1].abs() < 0.1, "window {k}");
    }
}

#[test]
fn a_lie_told_while_alone_is_caught_when_the_partner_returns() {
    // press-1 falls silent; while it is away press-2 jumps 1 bar and the
    // filter, having nothing else, follows it; press-1 comes back honest.
    let mut plant = Plant::new(KalmanOptions::default());
    let mut named = Vec::new();
    let mut squares = Vec::new();
    for k in 0..900 {
        let mut faults = [Fault::default(); 5];
        faults[3].silent = (300..500).contains(&k);
        if k >= 350 {
            faults[4].offset = 1.0;
        }
        let (row, _) = plant.window(k, faults);
        named.extend(row.suspects.iter().map(|s| (k, s.sensor, s.reason)));
        if k >= 520 {
            squares.push(errors(&row, k)[1].powi(2));
        }
    }
    assert!(
        named.iter().all(|&(_, sensor, _)| sensor == 4),
        "only press-2 may be named: {named:?}"
    );
    assert!(!named.is_empty(), "press-2 is named");
    assert!(
        rmse(&squares) < 0.03,
        "fused pressure RMSE after press-1 returns {}",
        rmse(&squares)
    );
}

#[test]
fn a_slow_drift_on_one_of_two_sensors_is_never_blamed_on_the_other() {
    // press-2 drifts: the prediction follows the pair as the drift grows, so
    // it cannot say which of the two lies; and while they still agree, how
    // far apart they are says nothing about which is off.
    let mut plant = Plant::new(KalmanOptions::default());
    let mut named = Vec::new();
    let (mut covered, mut windows) = (0, 0);
    for k in 0..900 {
        let mut faults = [Fault::default(); 5];
        if k >= 400 {
            faults[4].offset = 0.0005 * (k - 400) as f64;
        }
        let (row, _) = plant.window(k, faults);
        named.extend(row.suspects.iter().map(|s| (k, s.sensor, s.reason)));
        if k >= 400 {
            let (lo, hi) = row.values[1].unwrap().interval95();
            covered += usize::from(lo <= truth(k).1 && truth(k).1 <= hi);
            windows += 1;
        }
    }
    // What it cannot resolve, the interval owns up to.
    let coverage = covered as f64 / windows as f64;
    assert!(coverage >= 0.9, "95 % intervals cover {coverage}");
    assert!(
        named
            .iter()
            .all(|&(_, sensor, reason)| sensor == 4 || reason == SuspectReason::Ambiguous),
        "{named:?}"
    );
    assert!(!named.is_empty(), "the dispute is named");
}
