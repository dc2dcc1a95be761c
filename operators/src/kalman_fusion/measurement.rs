//! Step 1 of the robust fusion: a sensor's window as a measurement, with the tests of its spread.

use crate::align::AlignedRow;
use crate::kalman::gate::normal_quantile;

/// One sensor's window as a measurement.
#[derive(Debug, Clone, Copy)]
pub(super) struct Measurement {
    pub(super) z: f64,
    /// Its variance: σ²/n, or the window's own spread when the sensor is noisy.
    pub(super) r: f64,
    /// Most of its readings arrived ahead of their own event time (see the
    /// module doc).
    pub(super) ahead: bool,
    /// Its readings barely varied (see the module doc).
    pub(super) still: bool,
}

/// The window-spread tests of step 1, as standard normal quantiles (worked
/// out once: each costs an inverse normal).
#[derive(Debug, Clone, Copy)]
pub(super) struct SpreadTests {
    /// Above χ²'s 99.9 % quantile, a window is noisy.
    noisy: f64,
    /// Below its 0.01 % quantile, a window is still.
    still: f64,
}

impl SpreadTests {
    pub(super) fn new() -> Self {
        SpreadTests {
            noisy: normal_quantile(0.999),
            still: normal_quantile(1e-4),
        }
    }
}

impl Measurement {
    /// An estimate `(value, variance)` (the prediction, a witness) as a
    /// measurement, to compare it with another.
    pub(super) fn estimate((z, r): (f64, f64)) -> Self {
        Measurement {
            z,
            r,
            ahead: false,
            still: false,
        }
    }

    /// Its normalised difference to a witness `(value, variance)`: the
    /// residual in σ of both, with its sign.
    pub(super) fn against(self, (value, variance): (f64, f64)) -> f64 {
        (self.z - value) / (self.r + variance).sqrt()
    }

    pub(super) fn of(
        row: &AlignedRow,
        slot: usize,
        sigma: f64,
        tests: SpreadTests,
    ) -> Option<Measurement> {
        let (z, window) = row.values[slot].measurement()?;
        let n = window.readings.max(1);
        let reading_variance = sigma * sigma;
        let mut m = Measurement {
            z,
            r: reading_variance / n as f64,
            ahead: window.mostly_ahead(),
            still: false,
        };
        if let (Some(spread), true) = (window.spread, n >= 3 && reading_variance > 0.0) {
            // n·s²/σ² is χ² with n − 1 degrees of freedom for honest readings.
            let dof = (n - 1) as f64;
            let statistic = n as f64 * spread / reading_variance;
            if statistic > chi_square_quantile(dof, tests.noisy) {
                m.r = spread / dof;
            }
            m.still = statistic < chi_square_quantile(dof, tests.still);
        }
        Some(m)
    }
}

/// The quantile of χ² with `dof` degrees of freedom whose standard normal
/// quantile is `z` (Wilson–Hilferty: within a few per cent from 2 degrees of
/// freedom on, ample for a test).
fn chi_square_quantile(dof: f64, z: f64) -> f64 {
    let a = 2.0 / (9.0 * dof);
    dof * (1.0 - a + z * a.sqrt()).powi(3).max(0.0)
}
