//! TwinBench's verification computed the plain way, for the tests: one pass
//! over the rows in arrival order, each rule as the spec words it, HMAC-SHA256
//! from the `hmac` crate over the message built byte by byte here, and the
//! replay window as a set of every accepted number. It shares no code with
//! the engine's verification.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::reference::read_plain_csv;
use super::{Fate, Row};

/// One row's verdict: the reason it is quarantined, if it is.
pub type Verdict = Option<&'static str>;

/// What verification knows of a sensor.
#[derive(Debug, Clone)]
struct Limits {
    min: f64,
    max: f64,
    /// Events allowed per sensor and 1 s window, if its rate is known.
    budget: Option<u64>,
}

/// The spec's channel table: rates in Hz (sensors.csv has no rate column).
fn twinbench_rate(channel: &str) -> Option<f64> {
    match channel {
        "temp-1" | "temp-2" | "temp-3" | "press-1" | "press-2" | "current" => Some(10.0),
        "vib-1" => Some(50.0),
        "flow" => Some(1.0),
        _ => None,
    }
}

/// The keys and limits of a log directory (`keys.json`, `sensors.csv`).
pub struct Rules {
    keys: HashMap<String, Vec<Vec<u8>>>,
    limits: HashMap<String, Limits>,
    /// Untagged events pass the tag check (and are counted unauthenticated).
    pub accept_untagged: bool,
}

impl Rules {
    pub fn read_dir(dir: &Path) -> Rules {
        let keys_json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("keys.json")).unwrap()).unwrap();
        let mut keys: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
        for entry in keys_json.as_array().unwrap() {
            let hex_key = entry["key"].as_str().unwrap();
            keys.entry(entry["sensor"].as_str().unwrap().to_owned())
                .or_default()
                .push(hex::decode(hex_key).unwrap());
        }
        let limits = read_plain_csv(&dir.join("sensors.csv"))
            .into_iter()
            .map(|r| {
                let rate = r
                    .get("rate_hz")
                    .filter(|v| !v.is_empty())
                    .map(|v| v.parse::<f64>().unwrap())
                    .or_else(|| twinbench_rate(&r["channel"]));
                let limits = Limits {
                    min: r["min"].parse().unwrap(),
                    max: r["max"].parse().unwrap(),
                    budget: rate.map(|hz| (2.0 * hz).ceil() as u64),
                };
                (r["sensor"].clone(), limits)
            })
            .collect();
        Rules {
            keys,
            limits,
            accept_untagged: false,
        }
    }

    /// The spec's tag: the first 16 bytes of HMAC-SHA256 over sensor, a zero
    /// byte, then ts_us, the value's bits and seq as 8 bytes little-endian,
    /// and quality as one byte.
    pub fn tag_valid(&self, row: &Row) -> bool {
        let Some(tag) = &row.tag else {
            return false;
        };
        let mut message = row.sensor.as_bytes().to_vec();
        message.push(0);
        message.extend_from_slice(&row.ts_us.to_le_bytes());
        message.extend_from_slice(&row.value.to_bits().to_le_bytes());
        message.extend_from_slice(&row.seq.to_le_bytes());
        message.push(row.quality);
        self.keys.get(&row.sensor).into_iter().flatten().any(|key| {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
            mac.update(&message);
            mac.finalize().into_bytes()[..16] == tag[..]
        })
    }
}

/// A row's verdict, and whether it passes the stateless checks (tag, clock,
/// range), which is what lets it move the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub verdict: Verdict,
    pub stateless_pass: bool,
}

impl Rules {
    /// Events a sensor may send per 1 s event-time window, if its rate is known.
    pub fn budget(&self, sensor: &str) -> Option<u64> {
        self.limits.get(sensor).and_then(|l| l.budget)
    }
}

/// Every row's verdict, in arrival order.
pub fn verify(rows: &[Row], rules: &Rules) -> Vec<Checked> {
    let verdicts = verdicts(rows, rules);
    rows.iter()
        .zip(verdicts)
        .map(|(row, verdict)| {
            let limits = rules.limits.get(&row.sensor);
            let tag_ok = (rules.accept_untagged && row.tag.is_none()) || rules.tag_valid(row);
            let ahead = row.ts_us - row.arrival_us;
            let clock_ok = ahead <= 5_000_000 && -ahead <= 3_600_000_000;
            let range_ok = limits
                .is_some_and(|l| row.value.is_finite() && l.min <= row.value && row.value <= l.max);
            Checked {
                verdict,
                stateless_pass: limits.is_some() && tag_ok && clock_ok && range_ok,
            }
        })
        .collect()
}

fn verdicts(rows: &[Row], rules: &Rules) -> Vec<Verdict> {
    let mut accepted_seqs: HashMap<&str, BTreeSet<u64>> = HashMap::new();
    let mut per_second: BTreeMap<(&str, i64), u64> = BTreeMap::new();
    rows.iter()
        .map(|row| {
            let known = rules.limits.get(&row.sensor);
            let untagged_ok = rules.accept_untagged && row.tag.is_none();
            let Some(limits) = known.filter(|_| untagged_ok || rules.tag_valid(row)) else {
                return Some("bad_tag");
            };
            let seqs = accepted_seqs.entry(&row.sensor).or_default();
            let greatest = seqs.last().copied().unwrap_or(0);
            if seqs.contains(&row.seq) || greatest.saturating_sub(row.seq) > 1024 {
                return Some("replayed");
            }
            seqs.insert(row.seq);
            let ahead = row.ts_us - row.arrival_us;
            if ahead > 5_000_000 || -ahead > 3_600_000_000 {
                return Some("clock");
            }
            if !(row.value.is_finite() && limits.min <= row.value && row.value <= limits.max) {
                return Some("out_of_range");
            }
            let count = per_second
                .entry((&row.sensor, row.ts_us.div_euclid(1_000_000)))
                .or_default();
            *count += 1;
            if limits.budget.is_some_and(|b| *count > b) {
                return Some("flooding");
            }
            None
        })
        .collect()
}

/// The fates of rows under verification: accepted when no rule rejects them;
/// the watermark moved by rows that pass the stateless checks (tag, clock,
/// range), replayed and flooding ones included.
pub fn verified_fates(checked: &[Checked]) -> Vec<Fate> {
    checked
        .iter()
        .map(|c| Fate {
            accepted: c.verdict.is_none(),
            moves_watermark: c.stateless_pass,
        })
        .collect()
}

/// Counts of verdicts by reason.
pub fn count_reasons(checked: &[Checked]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for reason in checked.iter().filter_map(|c| c.verdict) {
        *counts.entry(reason.to_string()).or_default() += 1;
    }
    counts
}
