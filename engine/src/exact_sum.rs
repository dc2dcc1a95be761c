//! An order-independent sum of floating-point numbers, for checksums that must
//! not depend on how many workers added their parts.

use serde::{Deserialize, Serialize};

/// Fractional bits of the fixed-point accumulator.
const FRACTION_BITS: i32 = 64;

/// Adds `f64`s as 128-bit fixed-point integers with 64 fractional bits, so the
/// total is the same in any order and any grouping. Each addend is rounded to a
/// multiple of 2⁻⁶⁴; magnitudes up to 2⁶³ are represented exactly otherwise.
/// Non-finite or out-of-range addends are counted in `overflowed` instead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExactSum {
    fixed: i128,
    overflowed: u64,
}

impl ExactSum {
    pub fn add(&mut self, x: f64) {
        let scaled = x * 2f64.powi(FRACTION_BITS);
        // i128 holds ±2^127; stay well inside so sums of many addends cannot wrap.
        if scaled.is_finite() && scaled.abs() < 2f64.powi(120) {
            self.fixed = self.fixed.wrapping_add(scaled.round() as i128);
        } else {
            self.overflowed += 1;
        }
    }

    pub fn merge(&mut self, other: &ExactSum) {
        self.fixed = self.fixed.wrapping_add(other.fixed);
        self.overflowed += other.overflowed;
    }

    /// The sum, rounded once to the nearest `f64`.
    pub fn value(&self) -> f64 {
        self.fixed as f64 / 2f64.powi(FRACTION_BITS)
    }

    /// Addends that could not be represented (and are not in [`ExactSum::value`]).
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_does_not_matter() {
        let xs = [1e9, 0.1, -1e9, 0.2, 3.3e-7, 123.456, -0.3];
        let mut forward = ExactSum::default();
        xs.iter().for_each(|&x| forward.add(x));
        let (mut a, mut b) = (ExactSum::default(), ExactSum::default());
        xs.iter().rev().step_by(2).for_each(|&x| a.add(x));
        xs.iter().rev().skip(1).step_by(2).for_each(|&x| b.add(x));
        b.merge(&a);
        assert_eq!(forward, b);
        let naive: f64 = xs.iter().sum();
        assert!(
            (forward.value() - 123.456000330).abs() < 1e-9,
            "{} vs {naive}",
            forward.value()
        );
    }

    #[test]
    fn non_finite_is_counted_not_added() {
        let mut s = ExactSum::default();
        s.add(f64::NAN);
        s.add(1.5);
        assert_eq!(s.value(), 1.5);
        assert_eq!(s.overflowed(), 1);
    }
}
