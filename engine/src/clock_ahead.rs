//! Naming a sensor whose accepted readings keep arriving before their own event time.
//!
//! A sensor stamping its readings in the future, but less than the clock
//! check's 5 s, passes verification reading by reading, and since TwinBench
//! W counts every event with `min(ts_us, arrival_us)` it can no longer make
//! other sensors' events late; its windows, though, are shifted in time.
//! [`AheadWatch`] follows one sensor's accepted readings in arrival order and
//! reports an episode when, within the last [`SPAN_SECONDS`] seconds of
//! arrival time, more than [`MIN_READINGS`] readings, and most of the
//! sensor's readings, arrived more than [`SLACK_US`] before their event time. One record per
//! episode: the watch re-arms once the sensor has sent no reading ahead for
//! [`REARM_US`].

use crate::catalog::SensorId;
use crate::event::ClockAhead;
use crate::time::{Micros, SECOND};

/// How far ahead of its arrival a reading may be stamped without counting
/// as ahead: real clocks jitter, and a sensor synchronised to within a few
/// milliseconds is not what this looks for.
pub const SLACK_US: Micros = 100_000;
/// The span of arrival time over which readings ahead are counted, in
/// whole seconds (the current one and those before it): long enough for a
/// 1 Hz sensor (TwinBench's flow) to send more than [`MIN_READINGS`]
/// readings in it.
pub const SPAN_SECONDS: usize = 12;
/// Readings ahead in the span needed (more than this many) to report.
pub const MIN_READINGS: u32 = 10;
/// How long a sensor must send no reading ahead before another episode
/// can be reported.
pub const REARM_US: Micros = 60 * SECOND;

/// One sensor's recent accepted readings, counted per second of arrival
/// time: every reading passes by, so it costs a counter, not a queue entry.
#[derive(Debug, Default, Clone)]
pub struct AheadWatch {
    /// The span's seconds, each in the slot of its number modulo the span.
    seconds: [ArrivalSecond; SPAN_SECONDS],
    /// Arrival time of the latest reading ahead, while an episode is on.
    episode_last_ahead: Option<Micros>,
}

/// The readings that arrived in one second.
#[derive(Debug, Default, Clone, Copy)]
struct ArrivalSecond {
    /// Which second (of arrival time, since the epoch).
    second: i64,
    readings: u32,
    ahead: u32,
    /// The greatest lead of its readings ahead.
    max_lead: Micros,
}

impl AheadWatch {
    /// Looks at the sensor's next accepted reading (in arrival order); the
    /// episode it tips, if any.
    pub fn observe(
        &mut self,
        sensor: SensorId,
        ts_us: Micros,
        arrival_us: Micros,
    ) -> Option<ClockAhead> {
        let lead = ts_us.saturating_sub(arrival_us);
        let is_ahead = lead > SLACK_US;
        let second = arrival_us.div_euclid(SECOND);
        let slot = &mut self.seconds[second.rem_euclid(SPAN_SECONDS as i64) as usize];
        if slot.second != second || slot.readings == 0 {
            *slot = ArrivalSecond {
                second,
                ..ArrivalSecond::default()
            };
        }
        slot.readings += 1;
        if is_ahead {
            slot.ahead += 1;
            slot.max_lead = slot.max_lead.max(lead);
        }
        if let Some(last) = self.episode_last_ahead {
            if is_ahead {
                self.episode_last_ahead = Some(arrival_us);
            } else if arrival_us.saturating_sub(last) >= REARM_US {
                self.episode_last_ahead = None;
            }
            return None;
        }
        if !is_ahead {
            return None;
        }
        let span = self
            .seconds
            .iter()
            .filter(|s| s.readings > 0 && (0..SPAN_SECONDS as i64).contains(&(second - s.second)));
        let (mut readings, mut ahead, mut ahead_us) = (0, 0, lead);
        for s in span {
            readings += s.readings;
            ahead += s.ahead;
            ahead_us = ahead_us.max(s.max_lead);
        }
        if ahead <= MIN_READINGS || 2 * ahead <= readings {
            return None;
        }
        self.episode_last_ahead = Some(arrival_us);
        Some(ClockAhead {
            sensor,
            first_ts_us: ts_us,
            arrival_us,
            ahead_us,
            readings: ahead,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Micros = 1_000;

    /// Feeds a 10 Hz sensor's readings from `from_s` to `to_s` seconds of
    /// arrival time, stamped `lead` after arrival; returns the episodes.
    fn feed(watch: &mut AheadWatch, from_s: i64, to_s: i64, lead: Micros) -> Vec<ClockAhead> {
        (from_s * 10..to_s * 10)
            .filter_map(|k| {
                let arrival = k * 100 * MS;
                watch.observe(7, arrival + lead, arrival)
            })
            .collect()
    }

    #[test]
    fn one_record_per_episode_rearmed_after_a_clean_minute() {
        let mut watch = AheadWatch::default();
        // Honest, and within the slack: nothing.
        assert!(feed(&mut watch, 0, 30, -200 * MS).is_empty());
        assert!(feed(&mut watch, 30, 40, SLACK_US).is_empty());
        // 3 s ahead from 40 s on: 11 readings ahead are enough, but not yet
        // the majority of the span's (the current second and the 11 before
        // it at 10 Hz) ...
        let first = feed(&mut watch, 40, 100, 3 * SECOND);
        assert_eq!(first.len(), 1, "{first:?}");
        // ... until 61 of its 111 are ahead: at 46 s of arrival (at 45.9 s,
        // 60 of 120).
        assert_eq!(first[0].arrival_us, 46_000 * MS);
        assert_eq!(first[0].first_ts_us, 49_000 * MS);
        assert_eq!(first[0].ahead_us, 3 * SECOND);
        assert_eq!(first[0].readings, 61);
        // Clean for 59 s (last lead at 99.9 s): the episode goes on, and
        // new leads are not reported.
        assert!(feed(&mut watch, 100, 159, 0).is_empty());
        assert!(feed(&mut watch, 159, 170, 2 * SECOND).is_empty());
        // Clean for a minute (from 169.9 s): re-armed, and the next run of
        // leads is reported, once 61 readings of the span's 111 are ahead.
        assert!(feed(&mut watch, 170, 231, 0).is_empty());
        let second = feed(&mut watch, 231, 240, 2 * SECOND);
        assert_eq!(second.len(), 1, "{second:?}");
        assert_eq!(second[0].arrival_us, 237_000 * MS);
        assert_eq!(second[0].ahead_us, 2 * SECOND);
    }

    /// A 1 Hz sensor all ahead is named at its 11th reading.
    #[test]
    fn a_slow_sensor_is_named_after_more_than_ten_readings() {
        let mut watch = AheadWatch::default();
        let episodes: Vec<ClockAhead> = (0..30i64)
            .filter_map(|k| watch.observe(3, k * SECOND + 4 * SECOND, k * SECOND))
            .collect();
        assert_eq!(episodes.len(), 1);
        assert_eq!(
            (episodes[0].arrival_us, episodes[0].readings),
            (10 * SECOND, 11)
        );
    }

    /// A few readings ahead among many honest ones are jitter, not an episode.
    #[test]
    fn a_minority_ahead_is_not_reported() {
        let mut watch = AheadWatch::default();
        let mut episodes = Vec::new();
        for k in 0..10_000i64 {
            let arrival = k * 10 * MS;
            // Every third reading 1 s ahead: 33 % of the span.
            let ts = if k % 3 == 0 {
                arrival + SECOND
            } else {
                arrival
            };
            episodes.extend(watch.observe(1, ts, arrival));
        }
        assert!(episodes.is_empty(), "{episodes:?}");
    }
}
