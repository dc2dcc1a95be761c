//! Independent random streams derived from the run's seed.
//!
//! Each concern (plant properties, the incident plan, sampling, keys) draws
//! from its own stream, so the plan can be reproduced without sampling a single
//! event, and a sensor's key does not depend on any other draw.

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// What a stream is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Asset properties, initial states and sensor phases.
    Plant = 1,
    /// Faults and attacks: when, where, how strong.
    Incidents = 2,
    /// Noise, drops, lateness and attack events, in generation order.
    Sampling = 3,
    /// One sensor key (the index says which sensor and generation).
    Key = 4,
    /// Which sensors rotate their key, and when.
    KeyRotation = 5,
    /// Time-shift attacks: planned apart from the other incidents, so
    /// adding them left every other draw of a seed as it was.
    TimeShifts = 6,
    /// Synthesis from trained models ([`mod@super::synthesize`]): each asset's
    /// trajectory (the index says which asset).
    Synthesis = 7,
}

/// The stream `which`, instance `index`, of the run seeded with `seed`.
pub fn stream(seed: u64, which: Stream, index: u64) -> Xoshiro256PlusPlus {
    let mixed = splitmix64(splitmix64(splitmix64(seed) ^ which as u64) ^ index);
    Xoshiro256PlusPlus::seed_from_u64(mixed)
}

/// SplitMix64's finaliser: a bijective mix, so distinct inputs give distinct seeds.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
