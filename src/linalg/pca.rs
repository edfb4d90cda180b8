//! Principal component analysis by randomized subspace iteration (Halko, Martinsson & Tropp
//! 2011, Alg. 4.4), for the `gmm-pca` baseline. The centred matrix is never formed: products with
//! `X − 1 x̄ᵀ` are applied as `X v − 1 (x̄·v)`.
//!
//! Deterministic: the Gaussian test matrix comes from a named stream, orthonormalisation is
//! modified Gram–Schmidt applied twice, the small eigenproblem is cyclic Jacobi, and each
//! component's sign is fixed so that its largest-magnitude loading is positive.

use super::eigen::jacobi_eigh;
use crate::error::{DarlcError, Result};
use crate::rng::Stream;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use ndarray_rand::rand_distr::{Distribution, StandardNormal};

/// A fitted PCA.
#[derive(Clone, Debug)]
pub struct Pca {
    /// Column means `[P]`.
    pub mean: Array1<f64>,
    /// Principal directions as rows `[q, P]`, orthonormal, by decreasing variance.
    pub components: Array2<f64>,
    /// Variance along each component (`λ / (N − 1)`).
    pub explained_variance: Vec<f64>,
}

impl Pca {
    /// Scores `(x − x̄) Vᵀ`, `[N, q]`.
    pub fn transform(&self, x: ArrayView2<f64>) -> Array2<f64> {
        let xc = &x - &self.mean.view().insert_axis(Axis(0));
        xc.dot(&self.components.t())
    }
}

/// Orthonormalise the columns of `a` in place (modified Gram–Schmidt, twice for stability).
fn orthonormalise(a: &mut Array2<f64>) {
    for _ in 0..2 {
        for j in 0..a.ncols() {
            for i in 0..j {
                let d = a.column(i).dot(&a.column(j));
                let ci = a.column(i).to_owned();
                a.column_mut(j).scaled_add(-d, &ci);
            }
            let n = a.column(j).dot(&a.column(j)).sqrt();
            if n > 0.0 {
                a.column_mut(j).mapv_inplace(|v| v / n);
            }
        }
    }
}

/// The top `q` principal components of the rows of `x: [N, P]` (randomized subspace iteration
/// with 10 extra columns and 4 power iterations).
pub fn pca(x: ArrayView2<f64>, q: usize, rng: &mut Stream) -> Result<Pca> {
    let (n, p) = x.dim();
    if n < 2 || p == 0 {
        return Err(DarlcError::Data(format!(
            "PCA needs at least 2 rows and 1 column; got {n}×{p}"
        )));
    }
    let q = q.min(n - 1).min(p);
    let l = (q + 10).min(p).min(n);
    let mean = x.mean_axis(Axis(0)).expect("n ≥ 2");
    let xc_dot = |v: &Array2<f64>| -> Array2<f64> {
        // (X − 1 x̄ᵀ) v
        let mv = mean.dot(v);
        let mut out = x.dot(v);
        out -= &mv.view().insert_axis(Axis(0));
        out
    };
    let xct_dot = |u: &Array2<f64>| -> Array2<f64> {
        // (X − 1 x̄ᵀ)ᵀ u = Xᵀu − x̄ (1ᵀu)
        let s = u.sum_axis(Axis(0));
        let mut out = x.t().dot(u);
        for (j, &sj) in s.iter().enumerate() {
            out.column_mut(j).scaled_add(-sj, &mean);
        }
        out
    };
    let omega = Array2::from_shape_simple_fn((p, l), || StandardNormal.sample(rng));
    let mut y = xc_dot(&omega);
    orthonormalise(&mut y);
    for _ in 0..4 {
        let mut z = xct_dot(&y);
        orthonormalise(&mut z);
        y = xc_dot(&z);
        orthonormalise(&mut y);
    }
    let b = xct_dot(&y).reversed_axes(); // Qᵀ Xc, [l, P]
    let c = b.dot(&b.t());
    let (vals, u) = jacobi_eigh(&c);
    let mut components = Array2::zeros((q, p));
    let mut explained = Vec::with_capacity(q);
    for (k, &val) in vals.iter().enumerate().take(q) {
        let lam = val.max(0.0);
        let mut row = u.column(k).dot(&b);
        let nr = row.dot(&row).sqrt();
        if nr > 0.0 {
            row.mapv_inplace(|v| v / nr);
        }
        let (mut best, mut bi) = (0.0f64, 0);
        for (i, &v) in row.iter().enumerate() {
            if v.abs() > best {
                best = v.abs();
                bi = i;
            }
        }
        if row[bi] < 0.0 {
            row.mapv_inplace(|v| -v);
        }
        components.row_mut(k).assign(&row);
        explained.push(lam / (n - 1) as f64);
    }
    Ok(Pca {
        mean,
        components,
        explained_variance: explained,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;
    use rand::Rng;

    #[test]
    fn jacobi_matches_a_known_spectrum() {
        // [[2,1],[1,2]] has eigenvalues 3 and 1 with vectors (1,1)/√2 and (1,−1)/√2.
        let a = ndarray::arr2(&[[2.0, 1.0], [1.0, 2.0]]);
        let (vals, vecs) = jacobi_eigh(&a);
        assert!((vals[0] - 3.0).abs() < 1e-14 && (vals[1] - 1.0).abs() < 1e-14);
        assert!((vecs[[0, 0]].abs() - 0.5f64.sqrt()).abs() < 1e-14);
        let back = vecs
            .dot(&Array2::from_diag(&ndarray::arr1(&vals)))
            .dot(&vecs.t());
        assert!((back - a).iter().all(|e| e.abs() < 1e-13));
    }

    #[test]
    fn recovers_a_planted_low_rank_structure() {
        // Data = two orthogonal directions with variances 25 and 4, plus tiny noise.
        let mut r = rng::stream(3, "pca.test");
        let p = 30;
        let mut d1 = Array1::<f64>::zeros(p);
        let mut d2 = Array1::<f64>::zeros(p);
        d1[0] = 0.6;
        d1[1] = 0.8;
        d2[2] = 1.0;
        let n = 400;
        let x = Array2::from_shape_fn((n, p), |_| 0.0);
        let mut x = x;
        for i in 0..n {
            let a: f64 = StandardNormal.sample(&mut r);
            let b: f64 = StandardNormal.sample(&mut r);
            let row = &d1 * (5.0 * a) + &d2 * (2.0 * b);
            x.row_mut(i).assign(&row);
            for j in 0..p {
                x[[i, j]] += 1e-3 * r.random_range(-1.0..1.0) + 7.0; // offset tests centring
            }
        }
        let mut r2 = rng::stream(3, "pca.fit");
        let fit = pca(x.view(), 2, &mut r2).unwrap();
        // Reference: the exact eigenvectors of the full sample covariance (30×30, Jacobi).
        let mean = x.mean_axis(Axis(0)).unwrap();
        let xc = &x - &mean.view().insert_axis(Axis(0));
        let cov = xc.t().dot(&xc) / (n - 1) as f64;
        let (vals, vecs) = jacobi_eigh(&cov);
        for (k, &val) in vals.iter().enumerate().take(2) {
            let dot = fit.components.row(k).dot(&vecs.column(k)).abs();
            assert!(dot > 1.0 - 1e-10, "component {k}: |cos| = {dot}");
            assert!((fit.explained_variance[k] - val).abs() < 1e-9 * val);
        }
        // The planted directions are recovered up to sampling error.
        assert!(fit.components.row(0).dot(&d1).abs() > 0.999);
        assert!(fit.components.row(1).dot(&d2).abs() > 0.999);
        assert!(fit.explained_variance[0] > 20.0 && fit.explained_variance[1] > 3.0);
        // Scores are uncorrelated and centred.
        let s = fit.transform(x.view());
        assert!(s.column(0).sum().abs() < 1e-8 * n as f64);
        assert!(s.column(0).dot(&s.column(1)).abs() < 1e-6 * n as f64);
        // Deterministic.
        let mut r3 = rng::stream(3, "pca.fit");
        assert_eq!(
            pca(x.view(), 2, &mut r3).unwrap().components,
            fit.components
        );
    }
}
