//! What each channel is predicted from: everything the asset's history holds, or its recent windows without the slow copies, whichever has lately predicted the channel better blind.
//!
//! Slow copies (filters over minutes) are how a linear model sees a lag of
//! minutes: temperature following load. For a channel that follows load
//! within seconds (current, flow, pressure) they add little, and a model
//! fitted across regimes or assets reads spurious couplings into them: a
//! model pooled over a plant imputed current at 0.51 of its spread with
//! them and 0.10 without, while temperature needed them. Which channels
//! need them is the asset's to show: the blind predictions made for
//! [`super::calibration`] are made both ways, and each channel is
//! predicted the way whose recent squared errors are smaller.
//!
//! (A second model beside the first, an online Gaussian learning beside a
//! pooled one, was tried as a third and fourth way: it won the blind checks
//! of the fast channels on the asset's ordinary windows and then lost
//! through gaps, where it had to extrapolate; imputation of current, flow
//! and vibration went from 0.30 to 0.61 of their spread.)

use std::borrow::Cow;

use super::calibration::RECENT;
use crate::model::History;

/// Errors each way needs before the choice is made; everything the history
/// holds until then.
const FEW: u64 = 20;

/// What part of the history a prediction is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inputs {
    /// Every value the history holds.
    Everything,
    /// The recent windows (lags), without the slow copies.
    Recent,
}

impl Inputs {
    /// Both ways, in the order a choice starts from.
    pub const BOTH: [Inputs; 2] = [Inputs::Everything, Inputs::Recent];

    /// `history` as a prediction from these inputs sees it.
    pub fn view(self, history: &History) -> Cow<'_, History> {
        match self {
            Inputs::Everything => Cow::Borrowed(history),
            Inputs::Recent => Cow::Owned(history.without_slow_copies()),
        }
    }
}

/// Per channel, the recent mean squared blind error of each way.
#[derive(Debug, Clone)]
pub struct InputChoice {
    /// Per channel: each way's exponentially weighted mean squared error
    /// (in [`Inputs::BOTH`] order) and how many were recorded.
    channels: Vec<([f64; 2], u64)>,
}

impl InputChoice {
    pub fn new(channels: usize) -> Self {
        InputChoice {
            channels: vec![([0.0; 2], 0); channels],
        }
    }

    /// Records one blind prediction of `channel` made each way: their
    /// squared errors, in [`Inputs::BOTH`] order. The mean runs over about
    /// the last [`RECENT`] (a plain mean until then). Errors that are not
    /// finite are not recorded.
    pub fn record(&mut self, channel: usize, squared_errors: [f64; 2]) {
        if !squared_errors.iter().all(|e| e.is_finite()) {
            return;
        }
        let (means, seen) = &mut self.channels[channel];
        *seen += 1;
        let weight = 1.0 / (*seen).min(RECENT as u64) as f64;
        for (mean, error) in means.iter_mut().zip(squared_errors) {
            *mean += weight * (error - *mean);
        }
    }

    /// The ways to predict `channel`, best first: the smaller recent errors
    /// first (everything on a tie); everything first until [`FEW`] of each
    /// were recorded.
    pub fn ranked(&self, channel: usize) -> [Inputs; 2] {
        let ([everything, recent], seen) = self.channels[channel];
        if seen >= FEW && recent < everything {
            [Inputs::Recent, Inputs::Everything]
        } else {
            Inputs::BOTH
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_way_with_smaller_recent_errors_comes_first_once_both_were_seen_enough() {
        let mut choice = InputChoice::new(2);
        let recent_first = [Inputs::Recent, Inputs::Everything];
        for _ in 0..FEW - 1 {
            choice.record(0, [4.0, 1.0]);
        }
        assert_eq!(choice.ranked(0), Inputs::BOTH, "too few yet");
        choice.record(0, [4.0, 1.0]);
        assert_eq!(choice.ranked(0), recent_first);
        assert_eq!(choice.ranked(1), Inputs::BOTH);
        // The mean forgets: after many windows the other way wins.
        for _ in 0..3 * RECENT {
            choice.record(0, [1.0, 4.0]);
        }
        assert_eq!(choice.ranked(0), Inputs::BOTH);
        for _ in 0..3 * RECENT {
            choice.record(0, [f64::NAN, 0.0]);
        }
        assert_eq!(choice.ranked(0), Inputs::BOTH, "a NaN is no error");
    }
}
