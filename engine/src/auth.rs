//! Event authentication tags (TwinBench "Authentication tag") and the key file.
//!
//! A tag is the first 16 bytes of HMAC-SHA256 over a canonical encoding of the
//! event. The generator signs with [`EventMac::tag`] and verifiers check with
//! [`EventMac::verify`]; both compute the MAC with the same private
//! `EventMac::mac`, so signing and checking cannot drift apart.

use std::path::Path;

use hmac::block_api::HmacCore;
use hmac::digest::Output;
use hmac::digest::block_api::{Buffer, CoreProxy, FixedOutputCore, UpdateCore};
use hmac::{Hmac, KeyInit};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// Length of a tag in bytes.
pub const TAG_LEN: usize = 16;
/// Length of a sensor key in bytes.
pub const KEY_LEN: usize = 32;

/// An event tag.
pub type Tag = [u8; TAG_LEN];

/// File name of the sensor keys inside a log directory.
pub const KEYS_FILE: &str = "keys.json";

/// One entry of `keys.json`: a sensor's key, hex encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorKey {
    pub sensor: String,
    pub key_id: String,
    /// 32 bytes as lowercase hex.
    pub key: String,
}

impl SensorKey {
    /// Decodes the hex key, checking its length.
    pub fn key_bytes(&self) -> std::result::Result<[u8; KEY_LEN], String> {
        let bytes = hex::decode(&self.key)
            .map_err(|e| format!("key {} of {}: {e}", self.key_id, self.sensor))?;
        bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "key {} of {}: {} bytes, expected {KEY_LEN}",
                self.key_id,
                self.sensor,
                b.len()
            )
        })
    }
}

/// Reads `keys.json` (a JSON list of [`SensorKey`]), validating every key.
pub fn read_keys(path: &Path) -> Result<Vec<SensorKey>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_keys(&bytes).map_err(|e| Error::format(path, e))
}

/// Parses the contents of a key file (see [`read_keys`]), validating every
/// key. The input is untrusted: any bytes give a list or an error, never a panic.
pub fn parse_keys(bytes: &[u8]) -> std::result::Result<Vec<SensorKey>, String> {
    let keys: Vec<SensorKey> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    for k in &keys {
        k.key_bytes()?;
    }
    Ok(keys)
}

/// Writes `keys.json`.
pub fn write_keys(path: &Path, keys: &[SensorKey]) -> Result<()> {
    let text = serde_json::to_string_pretty(keys).map_err(|e| Error::format(path, e))?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// A MAC keyed once for one sensor key; cloning the keyed state per event
/// avoids re-deriving the HMAC pads for every event.
///
/// Only the two keyed hash states are kept (80 bytes; the MAC with its empty
/// block buffer is 152): a verifier holds one per sensor and events of all
/// sensors interleave, so the smaller state is about one cache miss an event
/// fewer. Events are hashed with `hmac`'s block-level API (the same
/// `HmacCore` its `Hmac` wraps): the wrapper moved its 150-byte state by
/// value to start and to finish, and without it a verified replay's reader
/// is 10 % less busy.
#[derive(Clone)]
pub struct EventMac {
    keyed: HmacCore<Sha256>,
    /// SHA-256's state after the key's inner pad block, and after its outer
    /// pad block: where HMAC's two hashes start.
    inner: [u32; 8],
    outer: [u32; 8],
}

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const SHA256_INITIAL: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// SHA-256's block size in bytes.
const BLOCK: usize = 64;

/// Where a one-block message's padding needs room: the 0x80 byte and the
/// 8-byte length.
const ONE_BLOCK_MESSAGE: usize = BLOCK - 9;

/// The message bytes after the sensor name.
const TAIL_LEN: usize = 26;

/// SHA-256's state after one block: the key padded with zeros and XORed with `pad`.
fn padded_key_state(key: &[u8; KEY_LEN], pad: u8) -> [u32; 8] {
    let mut block = [pad; BLOCK];
    for (b, k) in block.iter_mut().zip(key) {
        *b ^= k;
    }
    let mut state = SHA256_INITIAL;
    sha2::block_api::compress256(&mut state, &[block]);
    state
}

/// Pads `block`, which holds a message of `len` bytes (at most
/// [`ONE_BLOCK_MESSAGE`]) after `before` bytes already hashed, as SHA-256's
/// last block, and hashes it into `state`.
fn finish_one_block(state: &mut [u32; 8], block: &mut [u8; BLOCK], len: usize, before: usize) {
    block[len] = 0x80;
    let bits = ((before + len) as u64) * 8;
    block[BLOCK - 8..].copy_from_slice(&bits.to_be_bytes());
    sha2::block_api::compress256(state, std::slice::from_ref(block));
}

/// Writes the message's bytes after the sensor name into `tail`
/// ([`TAIL_LEN`] bytes): a zero byte, `ts_us`, the bits of `value` and
/// `seq` as 8 bytes little-endian each, and `quality`.
fn write_tail(tail: &mut [u8], ts_us: i64, value: f64, seq: u64, quality: u8) {
    tail[0] = 0;
    tail[1..9].copy_from_slice(&ts_us.to_le_bytes());
    tail[9..17].copy_from_slice(&value.to_bits().to_le_bytes());
    tail[17..25].copy_from_slice(&seq.to_le_bytes());
    tail[25] = quality;
}

impl EventMac {
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        let mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
        EventMac {
            keyed: mac.decompose().0,
            inner: padded_key_state(key, 0x36),
            outer: padded_key_state(key, 0x5c),
        }
    }

    /// The full HMAC-SHA256 of an event's canonical message: sensor bytes, a
    /// zero byte, then `ts_us`, the bits of `value` and `seq` as 8 bytes
    /// little-endian each, and `quality` as one byte.
    fn mac(&self, sensor: &str, ts_us: i64, value: f64, seq: u64, quality: u8) -> [u8; 32] {
        let sensor = sensor.as_bytes();
        let len = sensor.len() + TAIL_LEN;
        if len > ONE_BLOCK_MESSAGE {
            let mut tail = [0u8; TAIL_LEN];
            write_tail(&mut tail, ts_us, value, seq, quality);
            return self.mac_blocks(sensor, &tail);
        }
        // Almost every message (a sensor name of up to 29 bytes) fits in one
        // block with its padding: HMAC is then two compressions from the
        // keyed states, without the generic buffering of the general path.
        // The fields go straight into the block: assembled elsewhere and
        // copied in, the copy's wide loads waited for the narrow stores
        // (a quarter of the function's time, perf annotate).
        let mut block = [0u8; BLOCK];
        block[..sensor.len()].copy_from_slice(sensor);
        write_tail(&mut block[sensor.len()..len], ts_us, value, seq, quality);
        let mut inner = self.inner;
        finish_one_block(&mut inner, &mut block, len, BLOCK);
        let mut block = [0u8; BLOCK];
        for (bytes, word) in block.chunks_exact_mut(4).zip(inner) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        let mut outer = self.outer;
        finish_one_block(&mut outer, &mut block, 32, BLOCK);
        let mut out = [0u8; 32];
        for (bytes, word) in out.chunks_exact_mut(4).zip(outer) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// [`EventMac::mac`] of a message longer than one block.
    fn mac_blocks(&self, sensor: &[u8], tail: &[u8; TAIL_LEN]) -> [u8; 32] {
        let mut core = self.keyed.clone();
        let mut buffer = Buffer::<HmacCore<Sha256>>::default();
        for part in [sensor, tail] {
            buffer.digest_blocks(part, |blocks| core.update_blocks(blocks));
        }
        let mut out = Output::<Sha256>::default();
        core.finalize_fixed_core(&mut buffer, &mut out);
        out.into()
    }

    /// The tag of an event.
    pub fn tag(&self, sensor: &str, ts_us: i64, value: f64, seq: u64, quality: u8) -> Tag {
        let full = self.mac(sensor, ts_us, value, seq, quality);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// Whether `tag` is the event's tag, compared in constant time.
    pub fn verify(
        &self,
        sensor: &str,
        ts_us: i64,
        value: f64,
        seq: u64,
        quality: u8,
        tag: &[u8],
    ) -> bool {
        let Ok(tag) = <[u8; TAG_LEN]>::try_from(tag) else {
            return false;
        };
        let full = self.mac(sensor, ts_us, value, seq, quality);
        const _: () = assert!(TAG_LEN == 16, "a tag is two 8-byte halves");
        // The differences of both halves in one word, compared with zero in
        // constant time: a slice's `ct_eq` goes byte by byte, each through an
        // optimization barrier (2.2 % of a verified replay's time).
        let half = |bytes: &[u8], at: usize| {
            u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
        };
        let difference = (half(&full, 0) ^ half(&tag, 0)) | (half(&full, 8) ^ half(&tag, 8));
        bool::from(difference.ct_eq(&0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::Mac;

    /// The tag must equal HMAC-SHA256 over the message as the spec spells it
    /// out, built here byte by byte and hashed with `hmac`'s own `Hmac`;
    /// sensor names of every length around the block size (64 bytes) cover
    /// messages of one, two and three blocks (one block, the fast path, up
    /// to 29 bytes of name), under keys of equal and of distinct bytes.
    #[test]
    fn tag_matches_spec_encoding() {
        let distinct: [u8; KEY_LEN] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0xa5);
        for (key, len) in [[7u8; KEY_LEN], distinct, [0xff; KEY_LEN]]
            .into_iter()
            .flat_map(|key| (1..=140).map(move |len| (key, len)))
        {
            tag_matches_spec_encoding_for(key, len);
        }
    }

    fn tag_matches_spec_encoding_for(key: [u8; KEY_LEN], len: usize) {
        let (ts, value, seq, quality) = (-5i64, 21.5f64, 42u64, 1u8);
        let mac = EventMac::new(&key);
        {
            let sensor: String = "asset-0001/temp-1".chars().cycle().take(len).collect();
            let mut m = Vec::new();
            m.extend_from_slice(sensor.as_bytes());
            m.push(0);
            m.extend_from_slice(&ts.to_le_bytes());
            m.extend_from_slice(&value.to_bits().to_le_bytes());
            m.extend_from_slice(&seq.to_le_bytes());
            m.push(quality);
            let mut reference = Hmac::<Sha256>::new_from_slice(&key).unwrap();
            reference.update(&m);
            let expect = reference.finalize().into_bytes();
            let tag = mac.tag(&sensor, ts, value, seq, quality);
            assert_eq!(&tag[..], &expect[..16], "sensor name of {len} bytes");
            assert!(mac.verify(&sensor, ts, value, seq, quality, &tag));
            assert!(!mac.verify(&sensor, ts, value + 1e-9, seq, quality, &tag));
            assert!(!mac.verify(&sensor, ts, value, seq, quality, &tag[..15]));
            for byte in 0..TAG_LEN {
                let mut flipped = tag;
                flipped[byte] ^= 0x10;
                assert!(!mac.verify(&sensor, ts, value, seq, quality, &flipped));
            }
        }
    }

    /// The key file is outside input: anything but a list of valid keys is an
    /// error, never a panic (the `keys` fuzz target covers this at large).
    #[test]
    fn parse_keys_from_bytes() {
        let key = "07".repeat(KEY_LEN);
        let good = format!(r#"[{{"sensor":"a/t","key_id":"k1","key":"{key}"}}]"#);
        assert_eq!(
            parse_keys(good.as_bytes()).unwrap()[0].key_bytes(),
            Ok([7; KEY_LEN])
        );
        for bad in [
            &b"\xff\xfe"[..],
            b"",
            b"{}",
            br#"[{"sensor":"a/t","key_id":"k1","key":"0g"}]"#,
            br#"[{"sensor":"a/t","key_id":"k1","key":"00"}]"#,
        ] {
            assert!(parse_keys(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    /// RFC 4231 test case 2 pins the HMAC-SHA256 primitive itself.
    #[test]
    fn hmac_rfc4231_case2() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
