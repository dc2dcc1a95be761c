//! How the report writes numbers and UTC times.

use chrono::{DateTime, Utc};

pub(crate) const SECOND_US: i64 = twinflow_engine::time::SECOND;
pub(crate) const DAY_US: i64 = 86_400 * SECOND_US;

/// The UTC time of a count of microseconds since 1970.
fn utc(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::UNIX_EPOCH)
}

/// A time label for ticks `step` apart: time of day to the precision the
/// step needs, or the date for steps of days.
pub(crate) fn clock(us: i64, step: i64) -> String {
    let format = if step >= DAY_US {
        "%Y-%m-%d"
    } else if step >= 60 * SECOND_US {
        "%H:%M"
    } else if step >= SECOND_US {
        "%H:%M:%S"
    } else {
        "%H:%M:%S%.3f"
    };
    utc(us).format(format).to_string()
}

/// Date and time of day, `YYYY-MM-DD HH:MM:SS`.
pub(crate) fn datetime(us: i64) -> String {
    utc(us).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// An integer with thousands separators.
pub(crate) fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    grouped
}

/// A rate in K, M or G.
pub(crate) fn compact(x: f64) -> String {
    match x.abs() {
        a if a >= 1e9 => format!("{:.2} G", x / 1e9),
        a if a >= 1e6 => format!("{:.2} M", x / 1e6),
        a if a >= 1e3 => format!("{:.1} K", x / 1e3),
        _ => format!("{x:.0}"),
    }
}

/// A standard deviation, to two significant digits.
pub(crate) fn sigma(x: f64) -> String {
    if x > 0.0 && x.is_finite() && x < 1e6 {
        let decimals = (1 - x.log10().floor() as i64).clamp(0, 8) as usize;
        format!("{x:.decimals$}")
    } else {
        number(x)
    }
}

/// A measured value with about four significant digits.
pub(crate) fn number(x: f64) -> String {
    let a = x.abs();
    if !x.is_finite() {
        "–".to_owned()
    } else if a == 0.0 || (1e-3..1e6).contains(&a) {
        let decimals = if a == 0.0 {
            0
        } else {
            (3 - a.log10().floor() as i64).clamp(0, 6) as usize
        };
        format!("{x:.decimals$}")
    } else {
        format!("{x:.3e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_numbers_read_well() {
        // 2026-01-01T13:04:05Z is 20,454 days and 47,045 s after 1970.
        let t = (20_454 * 86_400 + 47_045) * SECOND_US;
        assert_eq!(datetime(t), "2026-01-01 13:04:05");
        assert_eq!(
            datetime(((11_017 * 86_400) + 1) * SECOND_US),
            "2000-03-01 00:00:01"
        );
        assert_eq!(datetime(19_782 * DAY_US), "2024-02-29 00:00:00");
        assert_eq!(clock(t + 250_000, 60 * SECOND_US), "13:04");
        assert_eq!(clock(t + 250_000, 500_000), "13:04:05.250");
        assert_eq!(clock(t + 250_000, DAY_US), "2026-01-01");
        // The twin table's clock: seconds, UTC, and times before 1970 too.
        assert_eq!(clock(t, SECOND_US), "13:04:05");
        assert_eq!(clock(-1_000_000, SECOND_US), "23:59:59");
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1_329_063), "1,329,063");
        assert_eq!(compact(4_053_424.1), "4.05 M");
        assert_eq!(number(85.49259), "85.49");
        assert_eq!(number(1.0369), "1.037");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(f64::NAN), "–");
        assert_eq!(sigma(0.164), "0.16");
        assert_eq!(sigma(2.5), "2.5");
        assert_eq!(sigma(1234.0), "1234");
    }
}
