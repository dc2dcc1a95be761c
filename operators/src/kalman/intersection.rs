//! Covariance intersection: two estimates of one state fused without knowing how their errors correlate.
//!
//! P⁻¹ = ω Pa⁻¹ + (1 − ω) Pb⁻¹ and x = P (ω Pa⁻¹ a + (1 − ω) Pb⁻¹ b), with ω
//! in [0, 1] minimising trace(P). For any cross-correlation of the two errors
//! the result is consistent (P bounds the true error covariance), which
//! inverse-variance fusion is not once the errors correlate.

use nalgebra::{SMatrix, SVector};

/// A fused estimate: state `x`, covariance `p` and the weight `omega` of the
/// first input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Intersection<const N: usize> {
    pub x: SVector<f64, N>,
    pub p: SMatrix<f64, N, N>,
    pub omega: f64,
}

/// An input covariance was not symmetric positive definite (or not finite).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotPositiveDefinite;

impl std::fmt::Display for NotPositiveDefinite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("covariance intersection needs positive definite covariances")
    }
}

impl std::error::Error for NotPositiveDefinite {}

/// The golden-section search stops when ω is known to this width.
const OMEGA_TOLERANCE: f64 = 1e-10;

/// Fuses estimate `a` (covariance `pa`) with `b` (covariance `pb`) by
/// covariance intersection, ω minimising trace(P).
///
/// In one dimension the minimum is closed-form: 1/P is linear in ω, so ω = 1
/// (keep `a`) when pa < pb, ω = 0 when pb < pa, and ω = ½ on a tie. In more
/// dimensions trace(P(ω)) is convex in ω and a golden-section search over
/// [0, 1] finds it; the ends are compared too, since the minimum often lies
/// on one.
pub fn covariance_intersection<const N: usize>(
    a: &SVector<f64, N>,
    pa: &SMatrix<f64, N, N>,
    b: &SVector<f64, N>,
    pb: &SMatrix<f64, N, N>,
) -> Result<Intersection<N>, NotPositiveDefinite> {
    let info_a = information(pa)?;
    let info_b = information(pb)?;
    let omega = if N == 1 {
        let (va, vb) = (pa[(0, 0)], pb[(0, 0)]);
        if va < vb {
            1.0
        } else if vb < va {
            0.0
        } else {
            0.5
        }
    } else {
        let trace =
            |w: f64| covariance_at(w, &info_a, &info_b).map_or(f64::INFINITY, |p| p.trace());
        minimise_on_unit_interval(trace)
    };
    // At an end the result is one input, exactly (not re-derived through two inverses).
    let (x, p) = if omega == 1.0 {
        (*a, *pa)
    } else if omega == 0.0 {
        (*b, *pb)
    } else {
        let p = covariance_at(omega, &info_a, &info_b).ok_or(NotPositiveDefinite)?;
        (p * (omega * info_a * a + (1.0 - omega) * info_b * b), p)
    };
    Ok(Intersection { x, p, omega })
}

/// P⁻¹, checking that P is symmetric positive definite.
fn information<const N: usize>(
    p: &SMatrix<f64, N, N>,
) -> Result<SMatrix<f64, N, N>, NotPositiveDefinite> {
    let symmetric = (p - p.transpose()).abs().max() <= 1e-12 * p.abs().max();
    if !symmetric || !p.iter().all(|v| v.is_finite()) {
        return Err(NotPositiveDefinite);
    }
    p.cholesky().map(|c| c.inverse()).ok_or(NotPositiveDefinite)
}

/// (ω Ia + (1 − ω) Ib)⁻¹.
fn covariance_at<const N: usize>(
    omega: f64,
    info_a: &SMatrix<f64, N, N>,
    info_b: &SMatrix<f64, N, N>,
) -> Option<SMatrix<f64, N, N>> {
    (omega * info_a + (1.0 - omega) * info_b)
        .cholesky()
        .map(|c| c.inverse())
}

/// The minimiser over [0, 1] of a convex `f`: golden-section search, then the
/// best of its result and the two ends.
fn minimise_on_unit_interval(f: impl Fn(f64) -> f64) -> f64 {
    let shrink = (5f64.sqrt() - 1.0) / 2.0;
    let (mut lo, mut hi) = (0.0, 1.0);
    let mut left = hi - shrink * (hi - lo);
    let mut right = lo + shrink * (hi - lo);
    let (mut f_left, mut f_right) = (f(left), f(right));
    while hi - lo > OMEGA_TOLERANCE {
        if f_left <= f_right {
            hi = right;
            right = left;
            f_right = f_left;
            left = hi - shrink * (hi - lo);
            f_left = f(left);
        } else {
            lo = left;
            left = right;
            f_left = f_right;
            right = lo + shrink * (hi - lo);
            f_right = f(right);
        }
    }
    let middle = (lo + hi) / 2.0;
    [(f(middle), middle), (f(0.0), 0.0), (f(1.0), 1.0)]
        .into_iter()
        .min_by(|x, y| x.0.total_cmp(&y.0))
        .map(|(_, w)| w)
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::{Matrix1, Matrix2, Matrix4, Vector1, Vector2};
    use rand::{RngExt, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    /// In 1-D the textbook result is the better of the two estimates, whole.
    #[test]
    fn one_dimension_keeps_the_smaller_variance() {
        let fused = covariance_intersection(
            &Vector1::new(3.0),
            &Matrix1::new(2.0),
            &Vector1::new(5.0),
            &Matrix1::new(0.5),
        )
        .unwrap();
        assert_eq!(fused.omega, 0.0);
        assert_eq!(fused.x[0], 5.0);
        assert_eq!(fused.p[(0, 0)], 0.5);

        let tie = covariance_intersection(
            &Vector1::new(3.0),
            &Matrix1::new(2.0),
            &Vector1::new(5.0),
            &Matrix1::new(2.0),
        )
        .unwrap();
        assert_eq!(tie.omega, 0.5);
        assert!((tie.x[0] - 4.0).abs() < 1e-15 && (tie.p[(0, 0)] - 2.0).abs() < 1e-15);
    }

    /// Two estimates that each know one axis well: the trace-optimal ω is ½
    /// by symmetry, so P⁻¹ = ½ (diag(1, 1/9) + diag(1/9, 1)) = diag(5/9, 5/9),
    /// P = 1.8 I, and x = P · ½ (Pa⁻¹ a + Pb⁻¹ b) = 0.9 · ([1, 0] + [0, 2])
    /// = [0.9, 1.8].
    #[test]
    fn symmetric_pair_by_hand() {
        let a = Vector2::new(1.0, 0.0);
        let b = Vector2::new(0.0, 2.0);
        let pa = Matrix2::new(1.0, 0.0, 0.0, 9.0);
        let pb = Matrix2::new(9.0, 0.0, 0.0, 1.0);
        let fused = covariance_intersection(&a, &pa, &b, &pb).unwrap();
        assert!((fused.omega - 0.5).abs() < 1e-8, "{}", fused.omega);
        assert!((fused.x - Vector2::new(0.9, 1.8)).abs().max() < 1e-8);
        assert!((fused.p - Matrix2::new(1.8, 0.0, 0.0, 1.8)).abs().max() < 1e-8);
    }

    /// Random 2×2 covariance: L Lᵀ with a random lower-triangular L.
    fn random_covariance(rng: &mut Xoshiro256PlusPlus) -> Matrix2<f64> {
        let l = Matrix2::new(
            rng.random_range(0.2..3.0),
            0.0,
            rng.random_range(-2.0..2.0),
            rng.random_range(0.2..3.0),
        );
        l * l.transpose()
    }

    /// Consistency: whatever the cross-covariance C of the two errors (any C
    /// that makes the joint covariance [[Pa, C], [Cᵀ, Pb]] PSD, including
    /// fully correlated ones), the fused estimate's true error covariance
    /// Wa Pa Waᵀ + Wa C Wbᵀ + Wb Cᵀ Waᵀ + Wb Pb Wbᵀ (Wa = ω P Pa⁻¹,
    /// Wb = (1 − ω) P Pb⁻¹) is bounded by P: P − true is PSD. Inverse-variance
    /// fusion, which assumes C = 0, fails the same check for some C.
    #[test]
    fn bounds_the_true_covariance_for_any_correlation() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(17);
        let mut naive_failures = 0;
        for _ in 0..2000 {
            let (pa, pb) = (random_covariance(&mut rng), random_covariance(&mut rng));
            // C = La K Lbᵀ with ‖K‖ ≤ 1 keeps the joint covariance PSD;
            // K a scaled rotation or reflection, at full correlation half the time.
            let (la, lb) = (pa.cholesky().unwrap().l(), pb.cholesky().unwrap().l());
            let angle: f64 = rng.random_range(0.0..std::f64::consts::TAU);
            let scale = if rng.random_bool(0.5) {
                1.0
            } else {
                rng.random_range(0.0..1.0)
            };
            let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            let k = scale
                * Matrix2::new(
                    angle.cos(),
                    -angle.sin(),
                    sign * angle.sin(),
                    sign * angle.cos(),
                );
            let c = la * k * lb.transpose();
            let mut joint = Matrix4::zeros();
            joint.fixed_view_mut::<2, 2>(0, 0).copy_from(&pa);
            joint.fixed_view_mut::<2, 2>(0, 2).copy_from(&c);
            joint.fixed_view_mut::<2, 2>(2, 0).copy_from(&c.transpose());
            joint.fixed_view_mut::<2, 2>(2, 2).copy_from(&pb);
            assert!(joint.symmetric_eigenvalues().min() > -1e-9);

            let a = Vector2::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
            let b = Vector2::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
            let fused = covariance_intersection(&a, &pa, &b, &pb).unwrap();
            let (ia, ib) = (pa.try_inverse().unwrap(), pb.try_inverse().unwrap());
            let true_covariance = |wa: Matrix2<f64>, wb: Matrix2<f64>| {
                wa * pa * wa.transpose()
                    + wa * c * wb.transpose()
                    + wb * c.transpose() * wa.transpose()
                    + wb * pb * wb.transpose()
            };
            let wa = fused.omega * fused.p * ia;
            let wb = (1.0 - fused.omega) * fused.p * ib;
            let slack = fused.p - true_covariance(wa, wb);
            let scale_of = fused.p.abs().max();
            assert!(
                slack.symmetric_eigenvalues().min() >= -1e-9 * scale_of,
                "CI inconsistent: P = {}, true = {}",
                fused.p,
                true_covariance(wa, wb)
            );

            let naive_p = (ia + ib).try_inverse().unwrap();
            let naive_slack = naive_p - true_covariance(naive_p * ia, naive_p * ib);
            if naive_slack.symmetric_eigenvalues().min() < -1e-6 * naive_p.abs().max() {
                naive_failures += 1;
            }
        }
        assert!(naive_failures > 100, "only {naive_failures}");
    }

    /// trace(P) at the chosen ω is no larger than on a fine grid of ω.
    #[test]
    fn omega_minimises_the_trace() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        for _ in 0..200 {
            let (pa, pb) = (random_covariance(&mut rng), random_covariance(&mut rng));
            let z = Vector2::zeros();
            let fused = covariance_intersection(&z, &pa, &z, &pb).unwrap();
            let (ia, ib) = (pa.try_inverse().unwrap(), pb.try_inverse().unwrap());
            for k in 0..=1000 {
                let w = k as f64 / 1000.0;
                let p = (w * ia + (1.0 - w) * ib).try_inverse().unwrap();
                assert!(fused.p.trace() <= p.trace() * (1.0 + 1e-12));
            }
        }
    }

    #[test]
    fn refuses_covariances_that_are_not_positive_definite() {
        let z = Vector2::zeros();
        let good = Matrix2::identity();
        for bad in [
            Matrix2::new(1.0, 2.0, 2.0, 1.0),
            Matrix2::new(1.0, 0.5, 0.0, 1.0),
            Matrix2::new(f64::NAN, 0.0, 0.0, 1.0),
            Matrix2::zeros(),
        ] {
            assert_eq!(
                covariance_intersection(&z, &bad, &z, &good),
                Err(NotPositiveDefinite)
            );
            assert_eq!(
                covariance_intersection(&z, &good, &z, &bad),
                Err(NotPositiveDefinite)
            );
        }
    }
}
