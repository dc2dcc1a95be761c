//! A multivariate Gaussian conditioned on some of its coordinates (the Schur complement, by Cholesky), and its log density with each coordinate's leave-one-out share.
//!
//! For x ~ N(μ, Σ) split into given coordinates g and targets t,
//! x_t | x_g ~ N(μ_t + Σ_tg Σ_gg⁻¹ (x_g − μ_g), Σ_tt − Σ_tg Σ_gg⁻¹ Σ_gt).
//! With Σ_gg = L Lᵀ this is computed from a = L⁻¹ (x_g − μ_g) and
//! B = L⁻¹ Σ_gt as mean μ_t + Bᵀ a and covariance Σ_tt − Bᵀ B: two
//! triangular solves, no inverse, and the covariance is symmetric by
//! construction.
//!
//! The leave-one-out predictions of [`Gaussian::log_density`] come from the
//! precision Λ = Σ⁻¹ (from the same factor): x_i given all the other
//! coordinates has variance 1/Λ_ii and mean x_i − (Λ (x − μ))_i / Λ_ii, so
//! one factorisation predicts every coordinate from the others.

use nalgebra::{DMatrix, DVector};

/// ln(2π), the constant of every normal log density.
pub const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// A multivariate normal distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct Gaussian {
    pub mean: DVector<f64>,
    pub covariance: DMatrix<f64>,
}

/// A covariance that is not positive definite: its Cholesky factorisation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotPositiveDefinite;

/// One coordinate predicted from the others.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Univariate {
    pub mean: f64,
    pub variance: f64,
}

impl Univariate {
    /// ln N(x; mean, variance).
    pub fn log_density(&self, x: f64) -> f64 {
        let d = x - self.mean;
        -0.5 * (d * d / self.variance + LN_2PI + self.variance.ln())
    }
}

/// The log density of a point, and how each coordinate fares against the others.
#[derive(Debug, Clone, PartialEq)]
pub struct Density {
    /// ln N(x; μ, Σ).
    pub log_density: f64,
    /// Per coordinate, its prediction from all the others.
    pub leave_one_out: Vec<Univariate>,
}

impl Gaussian {
    pub fn new(mean: DVector<f64>, covariance: DMatrix<f64>) -> Self {
        assert_eq!(
            (covariance.nrows(), covariance.ncols()),
            (mean.len(), mean.len()),
            "a Gaussian's covariance must be square and match its mean"
        );
        Gaussian { mean, covariance }
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// The distribution of the coordinates `targets` given that the
    /// coordinates `given` take `values`. `given` and `targets` must not
    /// overlap; with nothing given, it is the targets' marginal.
    pub fn condition(
        &self,
        given: &[usize],
        values: &[f64],
        targets: &[usize],
    ) -> Result<Gaussian, NotPositiveDefinite> {
        self.condition_with_evidence(given, values, targets)
            .map(|(conditional, _)| conditional)
    }

    /// [`Gaussian::condition`], and the evidence: ln N(values; μ_g, Σ_gg),
    /// the log density of what was given under its marginal (0 with nothing
    /// given). The evidence comes from the same factor: with
    /// a = L⁻¹ (x_g − μ_g) it is −½ (‖a‖² + g ln 2π) − Σ ln Lᵢᵢ.
    pub fn condition_with_evidence(
        &self,
        given: &[usize],
        values: &[f64],
        targets: &[usize],
    ) -> Result<(Gaussian, f64), NotPositiveDefinite> {
        debug_assert_eq!(given.len(), values.len());
        debug_assert!(targets.iter().all(|t| !given.contains(t)));
        let marginal = self.marginal(targets);
        if given.is_empty() {
            return Ok((marginal, 0.0));
        }
        let given_cov = DMatrix::from_fn(given.len(), given.len(), |i, j| {
            self.covariance[(given[i], given[j])]
        });
        let factor = given_cov.cholesky().ok_or(NotPositiveDefinite)?;
        let l = factor.l_dirty();
        let mut a = DVector::from_fn(given.len(), |i, _| values[i] - self.mean[given[i]]);
        let mut b = DMatrix::from_fn(given.len(), targets.len(), |i, j| {
            self.covariance[(given[i], targets[j])]
        });
        if !l.solve_lower_triangular_mut(&mut a) || !l.solve_lower_triangular_mut(&mut b) {
            return Err(NotPositiveDefinite);
        }
        let evidence = -0.5 * (a.norm_squared() + given.len() as f64 * LN_2PI)
            - l.diagonal().map(f64::ln).sum();
        let mean = marginal.mean + b.tr_mul(&a);
        let covariance = marginal.covariance - b.tr_mul(&b);
        Ok((Gaussian { mean, covariance }, evidence))
    }

    /// The marginal distribution of `coordinates`.
    pub fn marginal(&self, coordinates: &[usize]) -> Gaussian {
        Gaussian {
            mean: DVector::from_fn(coordinates.len(), |i, _| self.mean[coordinates[i]]),
            covariance: DMatrix::from_fn(coordinates.len(), coordinates.len(), |i, j| {
                self.covariance[(coordinates[i], coordinates[j])]
            }),
        }
    }

    /// ln N(x; μ, Σ) and each coordinate's prediction from the others.
    pub fn log_density(&self, x: &DVector<f64>) -> Result<Density, NotPositiveDefinite> {
        let factor = self
            .covariance
            .clone()
            .cholesky()
            .ok_or(NotPositiveDefinite)?;
        let residual = x - &self.mean;
        let mut z = residual.clone();
        if !factor.l_dirty().solve_lower_triangular_mut(&mut z) {
            return Err(NotPositiveDefinite);
        }
        let log_density = -0.5 * (z.norm_squared() + self.dim() as f64 * LN_2PI)
            - factor.l_dirty().diagonal().map(f64::ln).sum();
        let precision = factor.inverse();
        let pulled = &precision * &residual;
        let leave_one_out = (0..self.dim())
            .map(|i| {
                let p = precision[(i, i)];
                Univariate {
                    mean: x[i] - pulled[i] / p,
                    variance: 1.0 / p,
                }
            })
            .collect();
        Ok(Density {
            log_density,
            leave_one_out,
        })
    }

    /// The Cholesky factor L (Σ = L Lᵀ), with zeros above the diagonal: what
    /// turns standard normal draws z into draws μ + L z.
    pub fn cholesky_factor(&self) -> Result<DMatrix<f64>, NotPositiveDefinite> {
        Ok(self
            .covariance
            .clone()
            .cholesky()
            .ok_or(NotPositiveDefinite)?
            .l())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Gaussian {
        // A 3×3 example small enough to condition by hand.
        Gaussian::new(
            DVector::from_vec(vec![1.0, 2.0, 3.0]),
            DMatrix::from_row_slice(3, 3, &[4.0, 2.0, 1.0, 2.0, 3.0, 0.5, 1.0, 0.5, 2.0]),
        )
    }

    #[test]
    fn conditioning_on_one_coordinate_matches_the_scalar_formulas() {
        // x0 | x2 = 5: mean 1 + (1/2)(5 − 3) = 2, variance 4 − 1·1/2 = 3.5.
        let c = example().condition(&[2], &[5.0], &[0]).unwrap();
        assert!((c.mean[0] - 2.0).abs() < 1e-12);
        assert!((c.covariance[(0, 0)] - 3.5).abs() < 1e-12);
    }

    #[test]
    fn conditioning_on_two_coordinates_matches_the_hand_computation() {
        // x0 | (x1, x2) = (1, 4). Σ_gg = [[3, .5], [.5, 2]], det 5.75,
        // Σ_gg⁻¹ = [[2, −.5], [−.5, 3]] / 5.75; Σ_0g = [2, 1];
        // Σ_0g Σ_gg⁻¹ = [3.5, 2] / 5.75; residual (−1, 1):
        // mean 1 + (−3.5 + 2)/5.75, variance 4 − (3.5·2 + 2·1)/5.75.
        let c = example().condition(&[1, 2], &[1.0, 4.0], &[0]).unwrap();
        assert!((c.mean[0] - (1.0 - 1.5 / 5.75)).abs() < 1e-12);
        assert!((c.covariance[(0, 0)] - (4.0 - 9.0 / 5.75)).abs() < 1e-12);
    }

    #[test]
    fn the_evidence_is_the_log_density_of_what_was_given() {
        // x2 = 5 under its marginal N(3, 2).
        let (conditional, evidence) = example()
            .condition_with_evidence(&[2], &[5.0], &[0])
            .unwrap();
        assert_eq!(
            conditional,
            example().condition(&[2], &[5.0], &[0]).unwrap()
        );
        let expected = -0.5 * (4.0 / 2.0 + LN_2PI + 2.0f64.ln());
        assert!((evidence - expected).abs() < 1e-12);
        let (_, evidence) = example()
            .condition_with_evidence(&[1, 2], &[1.0, 4.0], &[0])
            .unwrap();
        let direct = example()
            .marginal(&[1, 2])
            .log_density(&DVector::from_vec(vec![1.0, 4.0]))
            .unwrap()
            .log_density;
        assert!((evidence - direct).abs() < 1e-12);
        assert_eq!(
            example().condition_with_evidence(&[], &[], &[0]).unwrap().1,
            0.0
        );
    }

    #[test]
    fn leave_one_out_equals_conditioning_on_the_others() {
        let g = example();
        let x = DVector::from_vec(vec![0.5, 2.5, 1.0]);
        let density = g.log_density(&x).unwrap();
        for i in 0..3 {
            let others: Vec<usize> = (0..3).filter(|&j| j != i).collect();
            let values: Vec<f64> = others.iter().map(|&j| x[j]).collect();
            let direct = g.condition(&others, &values, &[i]).unwrap();
            assert!((density.leave_one_out[i].mean - direct.mean[0]).abs() < 1e-12);
            assert!((density.leave_one_out[i].variance - direct.covariance[(0, 0)]).abs() < 1e-12);
        }
    }

    #[test]
    fn log_density_matches_the_closed_form() {
        let g = example();
        let x = DVector::from_vec(vec![0.5, 2.5, 1.0]);
        let inverse = g.covariance.clone().try_inverse().unwrap();
        let r = &x - &g.mean;
        let quadratic = (r.transpose() * inverse * &r)[(0, 0)];
        let expected = -0.5 * (quadratic + 3.0 * LN_2PI + g.covariance.determinant().ln());
        assert!((g.log_density(&x).unwrap().log_density - expected).abs() < 1e-12);
    }

    #[test]
    fn a_singular_covariance_is_an_error() {
        let g = Gaussian::new(DVector::zeros(2), DMatrix::from_element(2, 2, 1.0));
        assert_eq!(
            g.condition(&[0, 1], &[0.0, 0.0], &[]),
            Err(NotPositiveDefinite)
        );
        assert_eq!(g.log_density(&DVector::zeros(2)), Err(NotPositiveDefinite));
    }
}
