//! Alarms from a model's surprise: per channel, a CUSUM of how far the channel stands from its prediction given all the others, in units of how far it usually stands.
//!
//! A model's leave-one-out z of a channel (its value against its prediction
//! from every other channel and the past) is large when the channel does not
//! fit the others: a lying or failing sensor, or the plant doing what it
//! never did. One large z is common (a spike, a model that has not seen a
//! regime), so an alarm needs a run of them. Per channel:
//! - z² is put in units of its usual size u (a slow mean of z² while no
//!   alarm is raised: a model's predictive variance is seldom exact; the plain
//!   mean over the first windows, during which no alarm is raised) and
//!   capped, so that one wild window cannot raise an alarm alone;
//! - S ← max(0, S + min(z²/u, cap) − k), the CUSUM of the excess over k;
//! - an alarm is raised when S crosses h, naming the channel, and the
//!   channel is re-armed once S is back at 0.
//!
//! With the defaults (k = 4, h = 60, cap = 25) a channel standing 5 usual σ
//! off raises an alarm in 3 windows, 3 σ off in 12, and one that is honest
//! (z²/u about 1) never.

/// The choices of [`SurpriseAlarm`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlarmOptions {
    /// The reference k subtracted from each window's z²/u.
    pub drift: f64,
    /// The threshold h of the CUSUM.
    pub threshold: f64,
    /// The most one window adds, in units of u.
    pub cap: f64,
    /// The weight of each quiet window in the usual z², u.
    pub usual_weight: f64,
    /// Windows a channel is observed before it can raise an alarm.
    pub warm_up: u32,
}

impl Default for AlarmOptions {
    fn default() -> Self {
        AlarmOptions {
            drift: 4.0,
            threshold: 60.0,
            cap: 25.0,
            usual_weight: 1.0 / 600.0,
            warm_up: 60,
        }
    }
}

/// The CUSUM of one channel.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Channel {
    usual: f64,
    sum: f64,
    raised: bool,
    seen: u32,
}

/// Per channel of one asset's model, a CUSUM of its surprise (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct SurpriseAlarm {
    options: AlarmOptions,
    channels: Vec<Channel>,
}

/// An alarm raised in a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Raised {
    /// The channel standing out most in the window.
    pub channel: usize,
    /// The CUSUM that crossed the threshold (the largest, if several did).
    pub score: f64,
    /// Every observed channel's z in units of its usual size, largest first.
    pub standing: Vec<(usize, f64)>,
}

impl SurpriseAlarm {
    pub fn new(channels: usize, options: AlarmOptions) -> Self {
        SurpriseAlarm {
            options,
            channels: vec![
                Channel {
                    usual: 1.0,
                    sum: 0.0,
                    raised: false,
                    seen: 0,
                };
                channels
            ],
        }
    }

    /// How large a channel's z² usually is (1 for a model whose predictive
    /// variance is exact; 1 before the channel was observed): the factor by
    /// which the model's variance of that channel falls short.
    pub fn usual(&self, channel: usize) -> f64 {
        let c = &self.channels[channel];
        if c.seen == 0 { 1.0 } else { c.usual }
    }

    /// Takes one window's observed channels and their z; returns the alarm
    /// it raises, if any. A channel not observed keeps its CUSUM.
    pub fn observe(&mut self, observed: &[(usize, f64)]) -> Option<Raised> {
        let o = self.options;
        let mut crossed: Option<(usize, f64)> = None;
        let mut standing = Vec::with_capacity(observed.len());
        for &(c, z) in observed {
            let channel = &mut self.channels[c];
            if channel.seen < o.warm_up {
                // The plain mean of z² so far (floored: a model exact on
                // its first windows would make any later z look wild).
                channel.seen += 1;
                let mean =
                    channel.usual + ((z * z).min(1e6) - channel.usual) / f64::from(channel.seen);
                channel.usual = if channel.seen == 1 {
                    (z * z).min(1e6)
                } else {
                    mean
                };
                if channel.seen == o.warm_up {
                    channel.usual = channel.usual.max(1.0);
                }
                continue;
            }
            let squared = (z * z / channel.usual).min(o.cap);
            standing.push((c, z / channel.usual.sqrt()));
            channel.sum = (channel.sum + squared - o.drift).clamp(0.0, 2.0 * o.threshold);
            if channel.sum == 0.0 {
                channel.raised = false;
            }
            if !channel.raised {
                channel.usual +=
                    o.usual_weight * ((z * z).min(o.cap * channel.usual) - channel.usual);
            }
            if !channel.raised && channel.sum > o.threshold {
                channel.raised = true;
                if crossed.is_none_or(|(_, s)| channel.sum > s) {
                    crossed = Some((c, channel.sum));
                }
            }
        }
        let (_, score) = crossed?;
        standing.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        // The alarm names the channel standing out most now, which is not
        // always the one whose sum crossed first: a lie on one channel
        // makes those it couples with look off too, less so.
        Some(Raised {
            channel: standing[0].0,
            score,
            standing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_five_usual_sigma_off_raises_one_alarm_in_three_windows() {
        let mut alarm = SurpriseAlarm::new(2, AlarmOptions::default());
        // Quiet: z of ±1 on both (the first 60 learn the usual size: 1).
        for k in 0..100 {
            let z = if k % 2 == 0 { 1.0 } else { -1.0 };
            assert_eq!(alarm.observe(&[(0, z), (1, z)]), None);
        }
        // Channel 1 stands 5 σ off: about 21 a window over k (the usual size
        // creeps up by 24/600 a window until the alarm); > 60 after three.
        assert_eq!(alarm.observe(&[(0, 1.0), (1, 5.0)]), None);
        assert_eq!(alarm.observe(&[(0, 1.0), (1, 5.0)]), None);
        let raised = alarm.observe(&[(0, 1.0), (1, 5.0)]).unwrap();
        assert_eq!(raised.channel, 1);
        assert!(raised.score > 60.0 && raised.score < 63.0, "{raised:?}");
        assert_eq!(raised.standing[0].0, 1);
        // No second alarm while it stays off ...
        for _ in 0..50 {
            assert_eq!(alarm.observe(&[(0, 1.0), (1, 5.0)]), None);
        }
        // ... until it has come back (the sum, capped at 2h = 120, falls by 3 a window).
        for _ in 0..40 {
            assert_eq!(alarm.observe(&[(0, 1.0), (1, 1.0)]), None);
        }
        let alarms: Vec<Raised> = (0..4)
            .filter_map(|_| alarm.observe(&[(0, 1.0), (1, 5.0)]))
            .collect();
        assert_eq!(alarms.len(), 1);
        assert_eq!(alarms[0].channel, 1);
    }

    #[test]
    fn one_wild_window_is_capped_and_a_usual_scale_is_learnt() {
        let mut alarm = SurpriseAlarm::new(1, AlarmOptions::default());
        for _ in 0..60 {
            assert_eq!(alarm.observe(&[(0, 1.0)]), None);
        }
        // A single z of 100 adds at most cap − k = 21.
        assert_eq!(alarm.observe(&[(0, 100.0)]), None);
        for _ in 0..10 {
            assert_eq!(alarm.observe(&[(0, 0.0)]), None);
        }
        // A model whose z run at 2 (its variance a quarter of the truth):
        // the usual z² learns 4, and z = 2 stays quiet.
        for _ in 0..5000 {
            assert_eq!(alarm.observe(&[(0, 2.0)]), None);
        }
        let usual = alarm.channels[0].usual;
        assert!((usual - 4.0).abs() < 0.01, "{usual}");
        // 5 usual σ is now z = 10.
        assert_eq!(alarm.observe(&[(0, 10.0)]), None);
        assert_eq!(alarm.observe(&[(0, 10.0)]), None);
        assert!(alarm.observe(&[(0, 10.0)]).is_some());
    }
}
