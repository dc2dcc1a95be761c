//! The innovation gate's threshold: quantiles of the standard normal and of χ² with one degree of freedom.
//!
//! The inverse normal starts from Acklam's rational approximation (relative
//! error about 1e-9) and takes one Halley step on Φ(x) − p, with Φ from
//! `erfc`, which brings it to a few ulps. It works from the nearer tail, so
//! quantiles far out (p = 1e-12 or 1 − 1e-12) keep their precision.

/// Acklam's coefficients: central region, numerator and denominator.
const CENTRAL_NUM: [f64; 6] = [
    -3.969_683_028_665_376e1,
    2.209_460_984_245_205e2,
    -2.759_285_104_469_687e2,
    1.383_577_518_672_69e2,
    -3.066_479_806_614_716e1,
    2.506_628_277_459_239,
];
const CENTRAL_DEN: [f64; 5] = [
    -5.447_609_879_822_406e1,
    1.615_858_368_580_409e2,
    -1.556_989_798_598_866e2,
    6.680_131_188_771_972e1,
    -1.328_068_155_288_572e1,
];
/// Acklam's coefficients: tail region, numerator and denominator.
const TAIL_NUM: [f64; 6] = [
    -7.784_894_002_430_293e-3,
    -3.223_964_580_411_365e-1,
    -2.400_758_277_161_838,
    -2.549_732_539_343_734,
    4.374_664_141_464_968,
    2.938_163_982_698_783,
];
const TAIL_DEN: [f64; 4] = [
    7.784_695_709_041_462e-3,
    3.224_671_290_700_398e-1,
    2.445_134_137_142_996,
    3.754_408_661_907_416,
];
/// Below this probability the tail approximation applies.
const TAIL_BELOW: f64 = 0.02425;

/// Evaluates a polynomial with coefficients from the highest power down.
fn horner(coefficients: &[f64], x: f64) -> f64 {
    coefficients.iter().fold(0.0, |acc, &c| acc * x + c)
}

/// Φ(x), the standard normal distribution function, accurate in the lower tail.
fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// Φ⁻¹(p) for 0 < p ≤ 0.5.
fn lower_normal_quantile(p: f64) -> f64 {
    let x = if p < TAIL_BELOW {
        let t = (-2.0 * p.ln()).sqrt();
        horner(&TAIL_NUM, t) / (horner(&TAIL_DEN, t) * t + 1.0)
    } else {
        let c = p - 0.5;
        let r = c * c;
        horner(&CENTRAL_NUM, r) * c / (horner(&CENTRAL_DEN, r) * r + 1.0)
    };
    // One Halley step on f(x) = Φ(x) − p, f' = φ(x), f'' = −x φ(x).
    let u = (normal_cdf(x) - p) * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

/// Φ⁻¹(p), the standard normal quantile: −∞ at 0, +∞ at 1, NaN outside [0, 1].
pub fn normal_quantile(p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) {
        f64::NAN
    } else if p == 0.0 {
        f64::NEG_INFINITY
    } else if p == 1.0 {
        f64::INFINITY
    } else if p <= 0.5 {
        lower_normal_quantile(p)
    } else {
        // 1 − p is exact for p in (0.5, 1).
        -lower_normal_quantile(1.0 - p)
    }
}

/// The `p` quantile of χ² with one degree of freedom, (Φ⁻¹((1 + p)/2))²: the
/// NIS threshold that a consistent filter's innovations stay under with
/// probability `p`.
///
/// # Panics
/// Unless 0 ≤ p < 1 (a gate that rejects nothing has no finite threshold).
pub fn chi_square_1dof_quantile(p: f64) -> f64 {
    assert!(
        (0.0..1.0).contains(&p),
        "a gate's probability must be in [0, 1), got {p}"
    );
    // From the lower tail (1 − p)/2 rather than (1 + p)/2, which rounds away
    // the tail probability when p is close to 1.
    let z = lower_normal_quantile((1.0 - p) / 2.0);
    z * z
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance * expected.abs().max(1.0),
            "{actual} != {expected}"
        );
    }

    /// Reference values: SciPy's `chi2.ppf(p, 1)`, the task's figures.
    #[test]
    fn chi_square_quantiles_match_reference_values() {
        close(chi_square_1dof_quantile(0.95), 3.841_458_820_694_124, 1e-9);
        close(chi_square_1dof_quantile(0.99), 6.634_896_601_021_214, 1e-9);
        close(
            chi_square_1dof_quantile(0.999),
            10.827_566_170_662_733,
            1e-9,
        );
        assert_eq!(chi_square_1dof_quantile(0.0), 0.0);
    }

    /// Reference values: SciPy's `norm.ppf` (and Φ⁻¹(0.5) = 0 exactly).
    #[test]
    fn normal_quantiles_match_reference_values() {
        close(normal_quantile(0.975), 1.959_963_984_540_054, 1e-12);
        close(normal_quantile(0.025), -1.959_963_984_540_054, 1e-12);
        close(normal_quantile(0.995), 2.575_829_303_548_900_4, 1e-12);
        close(normal_quantile(0.841_344_746_068_542_9), 1.0, 1e-12);
        close(normal_quantile(1e-10), -6.361_340_902_404_056, 1e-12);
        close(normal_quantile(0.3), -0.524_400_512_708_040_9, 1e-12);
        assert_eq!(normal_quantile(0.5), 0.0);
        assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
        assert_eq!(normal_quantile(1.0), f64::INFINITY);
        assert!(normal_quantile(1.5).is_nan() && normal_quantile(f64::NAN).is_nan());
    }

    /// Φ(Φ⁻¹(p)) = p across both regions of the approximation, to a relative
    /// 1e-13 of the tail probability, and far into the tail to 1e-11 (there
    /// one ulp of x ≈ −37 moves Φ by a relative 3e-13).
    #[test]
    fn quantile_inverts_the_distribution_function() {
        for k in 1..=2000 {
            let p = k as f64 / 2001.0;
            let x = normal_quantile(p);
            let tail = p.min(1.0 - p);
            close(normal_cdf(-x.abs()) / tail, 1.0, 1e-13);
        }
        for e in 3..300 {
            let p = 10f64.powi(-e);
            close(normal_cdf(normal_quantile(p)) / p, 1.0, 1e-11);
        }
    }

    #[test]
    #[should_panic(expected = "must be in [0, 1)")]
    fn a_gate_that_rejects_nothing_is_refused() {
        chi_square_1dof_quantile(1.0);
    }
}
