//! A total order on records holding floats, so they can live in differential collections (which need `Ord`).

/// Maps an `f64` to bits whose unsigned order is `f64::total_cmp`'s order.
pub fn total_bits(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

/// An `f64` ordered by `f64::total_cmp` and equal bitwise: a float that can
/// sit in a sorted collection or a differential dataflow record.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct TotalF64(pub f64);

crate::total_order_by_key!(TotalF64, |x: &TotalF64| total_bits(x.0));

/// Implements `PartialEq`, `Eq`, `PartialOrd` and `Ord` for `$type` by
/// comparing `$key(self)`: equality is bitwise on floats, the order total.
#[macro_export]
macro_rules! total_order_by_key {
    ($type:ty, $key:expr) => {
        impl PartialEq for $type {
            fn eq(&self, other: &Self) -> bool {
                $key(self) == $key(other)
            }
        }
        impl Eq for $type {}
        impl PartialOrd for $type {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }
        impl Ord for $type {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                $key(self).cmp(&$key(other))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::total_bits;

    #[test]
    fn total_f64_orders_like_total_cmp_and_equals_bitwise() {
        use super::TotalF64;
        assert!(TotalF64(-0.0) < TotalF64(0.0));
        assert_ne!(TotalF64(-0.0), TotalF64(0.0));
        assert_eq!(TotalF64(f64::NAN), TotalF64(f64::NAN));
        assert!(TotalF64(1.0) < TotalF64(2.0));
    }

    #[test]
    fn bits_order_like_total_cmp() {
        let xs = [
            f64::NEG_INFINITY,
            -2.5,
            -0.0,
            0.0,
            1e-300,
            3.0,
            f64::INFINITY,
        ];
        for pair in xs.windows(2) {
            assert!(total_bits(pair[0]) < total_bits(pair[1]), "{pair:?}");
        }
    }
}
