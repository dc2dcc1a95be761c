//! How wide an imputation's interval must be: each window one measured channel, in turn, is predicted as if it had been missing for a while, and the spread of those errors (in predicted σ) scales the variances of imputed values.
//!
//! A model's predictive variance describes its errors where it learnt, with
//! the asset's healthy channels to go by. An imputation runs where it did not:
//! a block of missing windows, the channel's own past hidden, other channels
//! perhaps faulty, the plant in a regime the model barely saw. Its errors
//! are then larger and heavier-tailed than the variance says, and a 95 %
//! interval built from it covered the truth about two times in three. The
//! remedy is to measure: a measured channel predicted blind (hidden at
//! every lag and in its slow copies, exactly as a channel imputed through a
//! block) gives one error z = (x − μ)/σ, and over the last [`RECENT`] such
//! errors of the channel the factor f = (q₉₅(|z|) / 1.96)² makes the interval
//! μ ± 1.96 √(f σ²) cover 95 % of them. Each window checks the next channel
//! in turn, so the cost is one prediction per window.

/// Blind errors kept per channel.
pub const RECENT: usize = 300;
/// Errors a channel needs before its factor is trusted; 1 until then.
const FEW: usize = 20;
/// The share of blind errors an imputed 95 % interval is to cover.
const COVERED: f64 = 0.95;
/// The 97.5 % normal quantile: a 95 % two-sided interval is μ ± this σ.
const Z95: f64 = 1.959_963_984_540_054;
/// The factor's floor: an interval narrows at most to half its width.
const NARROWEST: f64 = 0.25;

/// Each channel's recent blind errors and the variance factor they imply.
#[derive(Debug, Clone)]
pub struct Calibration {
    channels: Vec<Recent>,
    /// The channel to check next.
    next: usize,
    /// Rounds over all channels completed.
    rounds: u64,
}

#[derive(Debug, Clone, Default)]
struct Recent {
    /// |z| of the last [`RECENT`] blind predictions, oldest overwritten first.
    errors: Vec<f64>,
    oldest: usize,
    /// Room to select the quantile in, kept so that a check allocates nothing.
    scratch: Vec<f64>,
    factor: f64,
    /// The mean blind error over about the last [`RECENT`], and how many.
    offset: f64,
    seen: u64,
}

impl Calibration {
    pub fn new(channels: usize) -> Self {
        Calibration {
            channels: vec![
                Recent {
                    factor: 1.0,
                    ..Recent::default()
                };
                channels
            ],
            next: 0,
            rounds: 0,
        }
    }

    /// The channel to check in this window, each in turn, and how many
    /// rounds over all channels came before this one.
    pub fn next_channel(&mut self) -> (usize, u64) {
        let checked = (self.next, self.rounds);
        self.next = (self.next + 1) % self.channels.len();
        if self.next == 0 {
            self.rounds += 1;
        }
        checked
    }

    /// Records a blind prediction of `channel`: its error (measured minus
    /// predicted) in predicted σ, `z`, and in the channel's units. A z that
    /// is not finite is ignored.
    pub fn record(&mut self, channel: usize, z: f64, error: f64) {
        if !z.is_finite() {
            return;
        }
        let recent = &mut self.channels[channel];
        recent.seen += 1;
        recent.offset += (error - recent.offset) / recent.seen.min(RECENT as u64) as f64;
        if recent.errors.len() < RECENT {
            recent.errors.push(z.abs());
        } else {
            recent.errors[recent.oldest] = z.abs();
            recent.oldest = (recent.oldest + 1) % RECENT;
        }
        if recent.errors.len() >= FEW {
            // The smallest |z| with at least 95 % of the errors at or below it.
            recent.scratch.clone_from(&recent.errors);
            let errors = &mut recent.scratch;
            let rank = ((COVERED * errors.len() as f64).ceil() as usize).clamp(1, errors.len());
            let (_, quantile, _) = errors.select_nth_unstable_by(rank - 1, f64::total_cmp);
            recent.factor = ((*quantile / Z95).powi(2)).max(NARROWEST);
        }
    }

    /// The mean blind error of `channel` over about the last [`RECENT`] (0
    /// before [`FEW`]): how far a model trained on other assets (or on this
    /// one, before its wear) sits off this asset's level.
    pub fn offset(&self, channel: usize) -> f64 {
        let recent = &self.channels[channel];
        if recent.seen >= FEW as u64 {
            recent.offset
        } else {
            0.0
        }
    }

    /// The factor by which an imputed variance of `channel` is multiplied
    /// (1 before [`FEW`] blind errors of it).
    pub fn variance_factor(&self, channel: usize) -> f64 {
        self.channels[channel].factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_factor_makes_the_interval_cover_95_percent_of_recent_errors() {
        let mut calibration = Calibration::new(2);
        assert_eq!(
            (0..5)
                .map(|_| calibration.next_channel())
                .collect::<Vec<_>>(),
            [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2)]
        );
        // 100 errors 0.01, 0.02, …, 1.00 σ … times 4: the 95th is 3.8.
        for k in 1..=100 {
            calibration.record(0, -4.0 * k as f64 / 100.0, 1.0);
        }
        let expected = (3.8f64 / Z95).powi(2);
        assert!((calibration.variance_factor(0) - expected).abs() < 1e-12);
        assert_eq!(calibration.variance_factor(1), 1.0, "no errors yet");
        // Errors much smaller than predicted narrow the interval, to half.
        for _ in 0..RECENT {
            calibration.record(1, 0.01, 0.5);
        }
        assert_eq!(calibration.variance_factor(1), NARROWEST);
        // Only the last RECENT count: 300 errors of 2σ replace the others.
        for _ in 0..RECENT {
            calibration.record(0, 2.0, 3.0);
        }
        assert!((calibration.variance_factor(0) - (2.0 / Z95).powi(2)).abs() < 1e-12);
        calibration.record(0, f64::NAN, 3.0);
        assert!((calibration.variance_factor(0) - (2.0 / Z95).powi(2)).abs() < 1e-12);
    }

    #[test]
    fn the_offset_is_the_recent_mean_error_once_there_are_enough() {
        let mut calibration = Calibration::new(1);
        for k in 0..FEW - 1 {
            calibration.record(0, 1.0, 0.5 + k as f64);
        }
        assert_eq!(calibration.offset(0), 0.0, "too few yet");
        calibration.record(0, 1.0, 0.5 + (FEW - 1) as f64);
        // The plain mean of 0.5, 1.5, …, 19.5.
        assert!((calibration.offset(0) - 10.0).abs() < 1e-12);
        // Past RECENT errors the mean forgets: a new level takes over.
        for _ in 0..10 * RECENT {
            calibration.record(0, 1.0, -2.0);
        }
        assert!((calibration.offset(0) + 2.0).abs() < 1e-3);
    }
}
