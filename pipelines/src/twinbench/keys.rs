//! Sensor keys: derived from the seed, with a mid-run rotation for some
//! sensors, and the MACs that sign genuine events.
//!
//! The keys are pseudo-random, not secret: a benchmark must be reproducible
//! from its seed, so they come from a seeded generator like everything else.

use rand::Rng;
use rand_xoshiro::Xoshiro256PlusPlus;
use twinflow_engine::auth::{EventMac, KEY_LEN, SensorKey};

use super::plant::Plant;
use super::rng::{Stream, stream};

/// One sensor in this many gets its key rotated during the run.
pub const ROTATING_SENSOR_SHARE: usize = 20;

/// A sensor's keys: the MAC of every key, oldest first, and the event times at
/// which the next key takes over (events are signed when they are sampled, so
/// the rotation goes by event time).
struct SensorKeys {
    macs: Vec<EventMac>,
    rotation_us: Option<i64>,
}

/// The keys of every sensor of the plant.
pub struct KeyRing {
    sensors: Vec<SensorKeys>,
    records: Vec<SensorKey>,
}

impl KeyRing {
    /// Derives every sensor's keys from the seed. `ceil(sensors / 20)` sensors,
    /// chosen at random, rotate to a second key at a random time in the middle
    /// 60 % of `[run_start_us, run_end_us)`.
    pub fn derive(plant: &Plant, seed: u64, run_start_us: i64, run_end_us: i64) -> Self {
        let n = plant.sensor_count();
        let mut rotations: Vec<Option<i64>> = vec![None; n];
        let mut rng = stream(seed, Stream::KeyRotation, 0);
        let span = (run_end_us - run_start_us).max(1);
        for sensor in choose_distinct(&mut rng, n, n.div_ceil(ROTATING_SENSOR_SHARE)) {
            let at =
                run_start_us + span / 5 + (rng.next_u64() % (span * 3 / 5).max(1) as u64) as i64;
            rotations[sensor] = Some(at);
        }

        let mut sensors = Vec::with_capacity(n);
        let mut records = Vec::with_capacity(n + n / ROTATING_SENSOR_SHARE + 1);
        for (sensor, rotation_us) in rotations.into_iter().enumerate() {
            let key_count = if rotation_us.is_some() { 2 } else { 1 };
            let mut macs = Vec::with_capacity(key_count);
            for generation in 0..key_count {
                let key = derive_key(seed, sensor, generation);
                macs.push(EventMac::new(&key));
                records.push(SensorKey {
                    sensor: plant.sensor_name(sensor).to_owned(),
                    key_id: format!("k{generation}"),
                    key: lower_hex(&key),
                });
            }
            sensors.push(SensorKeys { macs, rotation_us });
        }
        KeyRing { sensors, records }
    }

    /// The MAC a sensor signs an event of time `ts_us` with.
    #[inline]
    pub fn mac(&self, sensor: usize, ts_us: i64) -> &EventMac {
        let keys = &self.sensors[sensor];
        match keys.rotation_us {
            Some(at) if ts_us >= at => &keys.macs[1],
            _ => &keys.macs[0],
        }
    }

    /// When the sensor's key rotates, if it does.
    pub fn rotation_us(&self, sensor: usize) -> Option<i64> {
        self.sensors[sensor].rotation_us
    }

    /// The entries of `keys.json`, in sensor order, oldest key first.
    pub fn records(&self) -> &[SensorKey] {
        &self.records
    }
}

/// Key `generation` of a sensor: its own stream, so a sensor's keys do not
/// depend on which other sensors rotate.
fn derive_key(seed: u64, sensor: usize, generation: usize) -> [u8; KEY_LEN] {
    let mut rng = stream(seed, Stream::Key, (sensor as u64) << 8 | generation as u64);
    let mut key = [0u8; KEY_LEN];
    rng.fill_bytes(&mut key);
    key
}

/// `count` distinct indices below `n` (a partial Fisher–Yates shuffle), in the
/// order drawn.
fn choose_distinct(rng: &mut Xoshiro256PlusPlus, n: usize, count: usize) -> Vec<usize> {
    let mut pool: Vec<usize> = (0..n).collect();
    let count = count.min(n);
    for i in 0..count {
        let j = i + (rng.next_u64() % (n - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool.truncate(count);
    pool
}

/// Lowercase hex, as `keys.json` requires.
fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_deterministic_hex_and_rotate_by_event_time() {
        let plant = Plant::new(30);
        let (start, end) = (1_000_000, 61_000_000);
        let ring = KeyRing::derive(&plant, 5, start, end);
        let again = KeyRing::derive(&plant, 5, start, end);
        let other = KeyRing::derive(&plant, 6, start, end);
        assert_eq!(ring.records(), again.records());
        assert_ne!(ring.records()[0].key, other.records()[0].key);

        let rotating: Vec<usize> = (0..plant.sensor_count())
            .filter(|&s| ring.rotation_us(s).is_some())
            .collect();
        assert_eq!(rotating.len(), (30 * 8usize).div_ceil(20));
        assert_eq!(ring.records().len(), 240 + rotating.len());
        for r in ring.records() {
            assert_eq!(r.key.len(), 64);
            assert!(
                r.key
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
            );
            assert!(r.key_bytes().is_ok());
        }
        let s = rotating[0];
        let at = ring.rotation_us(s).unwrap();
        assert!(at >= start + 12_000_000 && at < start + 48_000_000);
        let name = plant.sensor_name(s);
        let keys: Vec<_> = ring.records().iter().filter(|r| r.sensor == name).collect();
        assert_eq!(
            keys.iter().map(|k| k.key_id.as_str()).collect::<Vec<_>>(),
            ["k0", "k1"]
        );
        let old = EventMac::new(&keys[0].key_bytes().unwrap());
        let new = EventMac::new(&keys[1].key_bytes().unwrap());
        let before = ring.mac(s, at - 1).tag(name, at - 1, 1.0, 0, 0);
        let after = ring.mac(s, at).tag(name, at, 1.0, 0, 0);
        assert!(old.verify(name, at - 1, 1.0, 0, 0, &before));
        assert!(new.verify(name, at, 1.0, 0, 0, &after));
        assert!(!old.verify(name, at, 1.0, 0, 0, &after));
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(lower_hex(&[0x00, 0xab, 0x7f]), "00ab7f");
    }
}
