//! Cholesky factorisation of small symmetric positive-definite matrices (d ≤ ~64) with the jitter
//! rule of method §16, triangular solves and log-determinants. Plain f64 numerics for the EM; the
//! differentiable versions live on the autodiff tape.

use crate::error::{DarlcError, Result};
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1};

/// A Cholesky factor `L` (lower triangular, `Σ + εI = L Lᵀ`) and the jitter `ε` that was needed
/// (0 when the plain factorisation succeeded).
#[derive(Debug, Clone)]
pub struct CholeskyFactor {
    /// Lower-triangular factor (upper triangle is exactly zero).
    pub l: Array2<f64>,
    /// The diagonal jitter `ε` added before the successful factorisation (0 = none).
    pub jitter: f64,
}

impl CholeskyFactor {
    /// Whether the factorisation needed jitter (to be recorded in fixtures, method §16).
    pub fn jitter_used(&self) -> bool {
        self.jitter > 0.0
    }
}

/// Plain Cholesky–Banachiewicz factorisation of a symmetric matrix (only the lower triangle of
/// `a` is read). Returns `None` if a pivot is not strictly positive and finite.
pub fn cholesky_plain(a: ArrayView2<f64>) -> Option<Array2<f64>> {
    let d = a.nrows();
    let mut l = Array2::<f64>::zeros((d, d));
    for j in 0..d {
        let mut s = a[[j, j]];
        for p in 0..j {
            s -= l[[j, p]] * l[[j, p]];
        }
        if !(s > 0.0 && s.is_finite()) {
            return None;
        }
        let ljj = s.sqrt();
        l[[j, j]] = ljj;
        for i in j + 1..d {
            let mut s = a[[i, j]];
            for p in 0..j {
                s -= l[[i, p]] * l[[j, p]];
            }
            l[[i, j]] = s / ljj;
        }
    }
    Some(l)
}

/// `(A + Aᵀ)/2`.
pub fn symmetrise(a: ArrayView2<f64>) -> Array2<f64> {
    let d = a.nrows();
    Array2::from_shape_fn((d, d), |(i, j)| 0.5 * (a[[i, j]] + a[[j, i]]))
}

/// Cholesky with jitter (method §16): symmetrise `sigma`, factorise; on failure retry with
/// `Σ + εI`, `ε = 1e-10·tr(Σ)/d`, multiplying ε by 10 after each failure, at most 8 retries; then
/// a `Numerical` error naming `what` (e.g. "SMM component 7").
pub fn cholesky_jitter(sigma: ArrayView2<f64>, what: &str) -> Result<CholeskyFactor> {
    let d = sigma.nrows();
    if sigma.ncols() != d || d == 0 {
        return Err(DarlcError::Numerical(format!(
            "{what}: covariance must be square and non-empty, got {}×{}",
            sigma.nrows(),
            sigma.ncols()
        )));
    }
    if sigma.iter().any(|v| !v.is_finite()) {
        return Err(DarlcError::Numerical(format!(
            "{what}: covariance has a non-finite entry"
        )));
    }
    let s = symmetrise(sigma);
    if let Some(l) = cholesky_plain(s.view()) {
        return Ok(CholeskyFactor { l, jitter: 0.0 });
    }
    let trace: f64 = (0..d).map(|i| s[[i, i]]).sum();
    let mut eps = 1e-10 * trace / d as f64;
    if eps > 0.0 && eps.is_finite() {
        for _ in 0..8 {
            let mut sj = s.clone();
            for i in 0..d {
                sj[[i, i]] += eps;
            }
            if let Some(l) = cholesky_plain(sj.view()) {
                return Ok(CholeskyFactor { l, jitter: eps });
            }
            eps *= 10.0;
        }
    }
    Err(DarlcError::Numerical(format!(
        "{what}: covariance is not positive definite (Cholesky failed after 8 jitter retries, \
         trace {trace:e})"
    )))
}

/// Solve `L x = b` in place (forward substitution, index order).
pub fn forward_solve(l: ArrayView2<f64>, mut b: ArrayViewMut1<f64>) {
    let d = l.nrows();
    for i in 0..d {
        let mut s = b[i];
        for p in 0..i {
            s -= l[[i, p]] * b[p];
        }
        b[i] = s / l[[i, i]];
    }
}

/// Solve `Lᵀ x = b` in place (back substitution).
pub fn back_solve_t(l: ArrayView2<f64>, mut b: ArrayViewMut1<f64>) {
    let d = l.nrows();
    for i in (0..d).rev() {
        let mut s = b[i];
        for p in i + 1..d {
            s -= l[[p, i]] * b[p];
        }
        b[i] = s / l[[i, i]];
    }
}

/// `ln|Σ| = 2 Σ_j ln L_jj` (method §6.1).
pub fn log_det(l: ArrayView2<f64>) -> f64 {
    2.0 * (0..l.nrows()).map(|j| l[[j, j]].ln()).sum::<f64>()
}

/// Mahalanobis form `xᵀ Σ⁻¹ x = ‖L⁻¹x‖²` (never forming `Σ⁻¹`, method §16).
pub fn mahalanobis(l: ArrayView2<f64>, x: ArrayView1<f64>) -> f64 {
    let mut y = x.to_owned();
    forward_solve(l, y.view_mut());
    y.iter().map(|v| v * v).sum()
}

/// `tr(Σ⁻¹ A) = tr(L⁻¹ A L⁻ᵀ)` for a symmetric `A` (used by the NIW term of ℓ_MAP, §6.9).
pub fn trace_inv_times(l: ArrayView2<f64>, a: ArrayView2<f64>) -> f64 {
    let d = l.nrows();
    // M = L⁻¹ A (column by column), then tr(L⁻¹ Mᵀ) = Σ_i (L⁻¹ Mᵀ)_ii.
    let mut m = a.to_owned();
    for j in 0..d {
        forward_solve(l, m.column_mut(j));
    }
    let mut mt = m.t().to_owned();
    let mut tr = 0.0;
    for j in 0..d {
        forward_solve(l, mt.column_mut(j));
        tr += mt[[j, j]];
    }
    tr
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, array};

    #[test]
    fn factor_solve_logdet_small() {
        // Σ = [[4, 2], [2, 3]]: L = [[2, 0], [1, √2]] (hand computation), |Σ| = 12 − 4 = 8.
        let s = array![[4.0, 2.0], [2.0, 3.0]];
        let f = cholesky_jitter(s.view(), "test").unwrap();
        assert!(!f.jitter_used());
        assert!((f.l[[0, 0]] - 2.0).abs() < 1e-15);
        assert!((f.l[[1, 0]] - 1.0).abs() < 1e-15);
        assert!((f.l[[1, 1]] - 2f64.sqrt()).abs() < 1e-15);
        assert_eq!(f.l[[0, 1]], 0.0);
        assert!((log_det(f.l.view()) - 8f64.ln()).abs() < 1e-14);
        // Σ⁻¹ = [[3, −2], [−2, 4]]/8; x = (1, 1): xᵀΣ⁻¹x = (3 − 4 + 4)/8 = 3/8.
        let x = array![1.0, 1.0];
        assert!((mahalanobis(f.l.view(), x.view()) - 0.375).abs() < 1e-15);
        // Solve Σ x = b by forward then back substitution; b = Σ (1, −2) = (0, −4).
        let mut b = array![0.0, -4.0];
        forward_solve(f.l.view(), b.view_mut());
        back_solve_t(f.l.view(), b.view_mut());
        assert!((b[0] - 1.0).abs() < 1e-14 && (b[1] + 2.0).abs() < 1e-14);
        // tr(Σ⁻¹ I) = (3 + 4)/8.
        let eye = Array2::<f64>::eye(2);
        assert!((trace_inv_times(f.l.view(), eye.view()) - 7.0 / 8.0).abs() < 1e-15);
    }

    #[test]
    fn random_spd_reconstructs() {
        use rand::Rng;
        let mut rng = crate::rng::stream(1, "test.chol");
        let d = 40;
        let a = Array2::from_shape_fn((d, d), |_| rng.random::<f64>() - 0.5);
        let s = a.dot(&a.t()) + Array2::<f64>::eye(d) * 0.1;
        let f = cholesky_jitter(s.view(), "test").unwrap();
        let rec = f.l.dot(&f.l.t());
        let err = (&rec - &s).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(err < 1e-12, "max reconstruction error {err:e}");
        let x = Array1::from_shape_fn(d, |_| rng.random::<f64>());
        let mut y = x.clone();
        forward_solve(f.l.view(), y.view_mut());
        back_solve_t(f.l.view(), y.view_mut());
        let back = s.dot(&y);
        assert!((&back - &x).iter().all(|v| v.abs() < 1e-9));
    }

    #[test]
    fn jitter_path_and_failure() {
        // Rank-one PSD matrix v vᵀ (singular): the plain factorisation fails at pivot 2, a jitter
        // of 1e-10·tr/d makes it PD.
        let v = array![1.0, 2.0, 3.0];
        let s = Array2::from_shape_fn((3, 3), |(i, j)| v[i] * v[j]);
        assert!(cholesky_plain(s.view()).is_none());
        let f = cholesky_jitter(s.view(), "SMM component 4").unwrap();
        assert!(f.jitter_used());
        assert!(f.jitter >= 1e-10 * 14.0 / 3.0 * 0.999);
        // Indefinite matrix: every retry fails, the error names the component.
        let bad = array![[1.0, 0.0], [0.0, -1.0]];
        let e = cholesky_jitter(bad.view(), "SMM component 4").unwrap_err();
        assert!(format!("{e}").contains("SMM component 4"));
        // Non-symmetric input is symmetrised first: [[2, 1], [0, 2]] → [[2, .5], [.5, 2]].
        let ns = array![[2.0, 1.0], [0.0, 2.0]];
        let f = cholesky_jitter(ns.view(), "x").unwrap();
        assert!((f.l[[1, 0]] - 0.5 / 2f64.sqrt()).abs() < 1e-15);
    }
}
