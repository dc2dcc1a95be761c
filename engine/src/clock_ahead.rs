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
/// How far a reading stamped `ts_us` that arrived at `arrival_us` is ahead
/// of its arrival (0 if it is not), and whether that counts as ahead: the
/// one definition the watch, windows and fusion share.
#[inline]
pub fn lead_us(ts_us: Micros, arrival_us: Micros) -> Micros {
    ts_us.saturating_sub(arrival_us).max(0)
}

/// Whether a reading's lead ([`lead_us`]) is more than [`SLACK_US`].
#[inline]
pub fn is_ahead(lead_us: Micros) -> bool {
    lead_us > SLACK_US
}

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
    /// Arrival times `[from, until)` of the second the latest reading came
    /// in, and its slot: a reading that is not ahead, in that second, and
    /// with no episode on (almost every reading) only adds to that slot's
    /// count. Empty until the first reading.
    latest_from_us: Micros,
    latest_until_us: Micros,
    latest_slot: usize,
    /// Arrival time of the latest reading ahead, while an episode is on.
    episode_last_ahead: Option<Micros>,
    /// The span's seconds, each in the slot of its number modulo the span.
    seconds: [ArrivalSecond; SPAN_SECONDS],
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
        let lead = lead_us(ts_us, arrival_us);
        let ahead = is_ahead(lead);
        // The latest reading's slot holds its second with a reading in it,
        // so this one would only be counted there below.
        if !ahead
            && self.episode_last_ahead.is_none()
            && (self.latest_from_us..self.latest_until_us).contains(&arrival_us)
        {
            self.seconds[self.latest_slot].readings += 1;
            return None;
        }
        let second = arrival_us.div_euclid(SECOND);
        let index = second.rem_euclid(SPAN_SECONDS as i64) as usize;
        self.latest_slot = index;
        self.latest_from_us = second.saturating_mul(SECOND);
        self.latest_until_us = (second + 1).saturating_mul(SECOND);
        let slot = &mut self.seconds[index];
        if slot.second != second || slot.readings == 0 {
            *slot = ArrivalSecond {
                second,
                ..ArrivalSecond::default()
            };
        }
        slot.readings += 1;
        if ahead {
            slot.ahead += 1;
            slot.max_lead = slot.max_lead.max(lead);
        }
        if let Some(last) = self.episode_last_ahead {
            if ahead {
                self.episode_last_ahead = Some(arrival_us);
            } else if arrival_us.saturating_sub(last) >= REARM_US {
                self.episode_last_ahead = None;
            }
            return None;
        }
        if !ahead {
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

    /// Episodes as a direct count over every reading kept finds them: the
    /// readings of the current second of arrival and the 11 before it, ahead
    /// ones among them, an episode on until a minute without one ahead. On
    /// a 4 Hz sensor whose clock runs ahead in stretches, with gaps of
    /// silence, readings in the same second and readings on second
    /// boundaries.
    #[test]
    fn episodes_match_a_direct_count() {
        let mut readings: Vec<(Micros, Micros)> = Vec::new();
        let mut arrival = -3 * SECOND;
        for k in 0..20_000i64 {
            // A gap of silence now and then, and some readings at the same arrival.
            arrival += match k % 997 {
                0 => 20 * SECOND,
                _ if k % 7 == 0 => 0,
                _ if k % 5 == 0 => SECOND - arrival.rem_euclid(SECOND),
                _ => 250 * MS,
            };
            // Ahead in stretches of a few hundred readings, honest otherwise.
            let lead = match (k / 300) % 5 {
                1 => 2 * SECOND,
                3 if k % 2 == 0 => SLACK_US + 1,
                _ => -(k % 4) * 10 * MS,
            };
            readings.push((arrival + lead, arrival));
        }
        let mut watch = AheadWatch::default();
        let got: Vec<ClockAhead> = readings
            .iter()
            .filter_map(|&(ts, arrival)| watch.observe(5, ts, arrival))
            .collect();

        let mut expected = Vec::new();
        let mut episode_last_ahead: Option<Micros> = None;
        for (i, &(ts, arrival)) in readings.iter().enumerate() {
            let lead = ts - arrival;
            let is_ahead = lead > SLACK_US;
            if let Some(last) = episode_last_ahead {
                if is_ahead {
                    episode_last_ahead = Some(arrival);
                } else if arrival - last >= REARM_US {
                    episode_last_ahead = None;
                }
                continue;
            }
            if !is_ahead {
                continue;
            }
            let second = arrival.div_euclid(SECOND);
            let span: Vec<Micros> = readings[..=i]
                .iter()
                .filter(|(_, a)| {
                    (0..SPAN_SECONDS as i64).contains(&(second - a.div_euclid(SECOND)))
                })
                .map(|(t, a)| t - a)
                .collect();
            let ahead: Vec<Micros> = span.iter().copied().filter(|&l| l > SLACK_US).collect();
            if ahead.len() as u32 > MIN_READINGS && 2 * ahead.len() > span.len() {
                episode_last_ahead = Some(arrival);
                expected.push(ClockAhead {
                    sensor: 5,
                    first_ts_us: ts,
                    arrival_us: arrival,
                    ahead_us: *ahead.iter().max().unwrap(),
                    readings: ahead.len() as u32,
                });
            }
        }
        assert!(expected.len() >= 4, "the log has episodes: {expected:?}");
        assert_eq!(got, expected);
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
