//! Eigen-solvers for symmetric matrices and operators (plain f64, no tape): cyclic Jacobi for
//! small dense matrices, Lanczos with full re-orthogonalisation for large sparse operators, and
//! Sturm-sequence bisection on the tridiagonal matrix. Used by the cluster-number inference
//! (`module2::k_infer`, method §10) and the randomized PCA ([`super::pca`]). The accuracy and cost
//! of the Lanczos path on the K-inference graphs are measured in `module2::k_infer`'s doc.
//!
//! Every parallel loop runs over fixed chunks and combines in a fixed order, so the results are
//! bit-identical for any number of rayon threads.

use crate::rng::Stream;
use ndarray::Array2;
use rand::Rng;
use rayon::prelude::*;

/// Elements per parallel task of the Gram–Schmidt update.
const CHUNK: usize = 512;

/// Eigen-decomposition of a small symmetric matrix by cyclic Jacobi rotations: eigenvalues in
/// decreasing order and the matching eigenvectors as columns.
pub fn jacobi_eigh(a: &Array2<f64>) -> (Vec<f64>, Array2<f64>) {
    let n = a.nrows();
    let mut m = a.clone();
    let mut v = Array2::<f64>::eye(n);
    let norm: f64 = m
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[[i, j]] * m[[i, j]])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-15 * norm {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[[p, q]];
                if apq == 0.0 {
                    continue;
                }
                let theta = (m[[q, q]] - m[[p, p]]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[[k, p]], m[[k, q]]);
                    m[[k, p]] = c * mkp - s * mkq;
                    m[[k, q]] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[[p, k]], m[[q, k]]);
                    m[[p, k]] = c * mpk - s * mqk;
                    m[[q, k]] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[[k, p]], v[[k, q]]);
                    v[[k, p]] = c * vkp - s * vkq;
                    v[[k, q]] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| m[[j, j]].total_cmp(&m[[i, i]]).then(i.cmp(&j)));
    let vals = order.iter().map(|&i| m[[i, i]]).collect();
    let mut vecs = Array2::zeros((n, n));
    for (c, &i) in order.iter().enumerate() {
        vecs.column_mut(c).assign(&v.column(i));
    }
    (vals, vecs)
}

/// All eigenvalues (ascending) of a dense symmetric matrix, from [`jacobi_eigh`].
pub fn jacobi_eigenvalues(a: &Array2<f64>) -> Vec<f64> {
    let mut ev = jacobi_eigh(a).0;
    ev.sort_by(f64::total_cmp);
    ev
}

/// Number of eigenvalues `< x` of the symmetric tridiagonal matrix (diagonal `alpha`,
/// off-diagonal `beta`, `beta.len() = alpha.len() − 1`) by the Sturm sequence (LDLᵀ pivots).
fn sturm_count(alpha: &[f64], beta: &[f64], x: f64) -> usize {
    let mut count = 0;
    let mut q = 1.0;
    for i in 0..alpha.len() {
        let b2 = if i > 0 {
            beta[i - 1] * beta[i - 1]
        } else {
            0.0
        };
        q = alpha[i] - x - if i > 0 { b2 / q } else { 0.0 };
        if q == 0.0 {
            q = -f64::EPSILON * (x.abs() + b2.sqrt() + f64::MIN_POSITIVE);
        }
        if q < 0.0 {
            count += 1;
        }
    }
    count
}

/// The smallest `count` eigenvalues (ascending) of a symmetric tridiagonal matrix by bisection
/// on the Sturm count, each to an absolute width of 1e-15·(spectral bound) or 200 halvings.
pub fn tridiagonal_smallest(alpha: &[f64], beta: &[f64], count: usize) -> Vec<f64> {
    let n = alpha.len();
    if n == 0 {
        return Vec::new();
    }
    // Gershgorin bounds.
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for i in 0..n {
        let r = if i > 0 { beta[i - 1].abs() } else { 0.0 }
            + if i + 1 < n { beta[i].abs() } else { 0.0 };
        lo = lo.min(alpha[i] - r);
        hi = hi.max(alpha[i] + r);
    }
    let scale = lo.abs().max(hi.abs()).max(f64::MIN_POSITIVE);
    (0..count.min(n))
        .into_par_iter()
        .map(|k| {
            // λ_k (0-based) = the smallest x with count(< x) ≥ k+1 … bracket [a, b].
            let (mut a, mut b) = (lo - scale * 1e-12, hi + scale * 1e-12);
            for _ in 0..200 {
                if b - a <= 1e-15 * scale {
                    break;
                }
                let mid = 0.5 * (a + b);
                if sturm_count(alpha, beta, mid) > k {
                    b = mid;
                } else {
                    a = mid;
                }
            }
            0.5 * (a + b)
        })
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).fold(0.0, |s, (x, y)| s + x * y)
}

/// Ritz values with their residual norms: for each value θ there is an eigenvalue λ with
/// `|θ − λ| ≤ residual` (symmetric operators).
#[derive(Debug, Clone)]
pub struct RitzValues {
    /// Ritz values, ascending.
    pub values: Vec<f64>,
    /// `β_m·|s_m|` (last component of the Ritz vector in the Lanczos basis); 0 when the Krylov
    /// space is the whole space.
    pub residuals: Vec<f64>,
}

/// [`lanczos_ritz`] without the residuals.
pub fn lanczos_smallest<F>(apply: F, n: usize, count: usize, m: usize, rng: &mut Stream) -> Vec<f64>
where
    F: Fn(&[f64], &mut [f64]),
{
    lanczos_ritz(apply, n, count, m, rng).values
}

/// Lanczos with full re-orthogonalisation (classical Gram–Schmidt with DGKS refinement) for the
/// smallest `count` eigenvalues of a symmetric operator of size `n`, with `m ≤ n` steps; on
/// breakdown (invariant subspace found) it continues with a fresh random vector orthogonal to
/// all previous ones (T splits into blocks, so repeated eigenvalues are found too). Start and
/// restart vectors come from `rng`. Residuals come from the last components of T's
/// eigenvectors (inverse iteration on `T − θI`).
pub fn lanczos_ritz<F>(apply: F, n: usize, count: usize, m: usize, rng: &mut Stream) -> RitzValues
where
    F: Fn(&[f64], &mut [f64]),
{
    let m = m.min(n).max(1);
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(m);
    let mut alpha = Vec::with_capacity(m);
    let mut beta: Vec<f64> = Vec::with_capacity(m);
    let random_unit = |rng: &mut Stream, basis: &[Vec<f64>]| -> Option<Vec<f64>> {
        for _ in 0..5 {
            let mut v: Vec<f64> = (0..n).map(|_| rng.random::<f64>() - 0.5).collect();
            orthogonalise(&mut v, basis);
            orthogonalise(&mut v, basis);
            let nv = dot(&v, &v).sqrt();
            if nv > 1e-8 {
                v.iter_mut().for_each(|x| *x /= nv);
                return Some(v);
            }
        }
        None
    };
    let Some(v0) = random_unit(rng, &basis) else {
        return RitzValues {
            values: Vec::new(),
            residuals: Vec::new(),
        };
    };
    let mut beta_m = 0.0;
    basis.push(v0);
    let mut w = vec![0.0; n];
    for j in 0..m {
        apply(&basis[j], &mut w);
        let a = dot(&basis[j], &w);
        alpha.push(a);
        if j + 1 == n {
            break;
        }
        // Three-term recurrence, then one classical Gram–Schmidt pass against the whole basis,
        // and a second pass only when the first removed a lot (DGKS criterion, η = 1/√2).
        let bprev = beta.last().copied().unwrap_or(0.0);
        {
            let vj = &basis[j];
            let vprev = if j > 0 { Some(&basis[j - 1]) } else { None };
            for (i, x) in w.iter_mut().enumerate() {
                *x -= a * vj[i];
                if let Some(vp) = vprev {
                    *x -= bprev * vp[i];
                }
            }
        }
        let n0 = dot(&w, &w).sqrt();
        orthogonalise(&mut w, &basis);
        let mut b = dot(&w, &w).sqrt();
        if b < std::f64::consts::FRAC_1_SQRT_2 * n0 {
            orthogonalise(&mut w, &basis);
            b = dot(&w, &w).sqrt();
        }
        let scale = a.abs().max(beta.last().copied().unwrap_or(0.0)).max(1.0);
        if j + 1 == m {
            // The residual norm of the m-step factorisation (no further vector is kept).
            beta_m = if b > 1e-10 * scale { b } else { 0.0 };
            break;
        }
        if b > 1e-10 * scale {
            beta.push(b);
            basis.push(w.iter().map(|x| x / b).collect());
        } else {
            match random_unit(rng, &basis) {
                Some(v) => {
                    beta.push(0.0);
                    basis.push(v);
                }
                None => break,
            }
        }
    }
    let beta = &beta[..alpha.len() - 1];
    let values = tridiagonal_smallest(&alpha, beta, count);
    let residuals = values
        .iter()
        .map(|&theta| {
            if beta_m == 0.0 {
                0.0
            } else {
                beta_m * last_eigvec_component(&alpha, beta, theta).abs()
            }
        })
        .collect();
    RitzValues { values, residuals }
}

/// Last component of the unit eigenvector of the tridiagonal `T` for the eigenvalue `theta`, by
/// three steps of inverse iteration with an LU factorisation of `T − θI` with partial pivoting
/// (zero pivots replaced by `ε·‖T‖`).
fn last_eigvec_component(alpha: &[f64], beta: &[f64], theta: f64) -> f64 {
    let n = alpha.len();
    if n == 1 {
        return 1.0;
    }
    let norm = alpha
        .iter()
        .map(|a| a.abs())
        .chain(beta.iter().map(|b| b.abs()))
        .fold(f64::MIN_POSITIVE, f64::max);
    let tiny = f64::EPSILON * norm;
    // LU with partial pivoting of the tridiagonal matrix (dl, dd, du) into (dl, dd, du, du2).
    let mut dl = beta.to_vec();
    let mut dd: Vec<f64> = alpha.iter().map(|a| a - theta).collect();
    let mut du = beta.to_vec();
    let mut du2 = vec![0.0; n.saturating_sub(2)];
    let mut swap = vec![false; n - 1];
    for i in 0..n - 1 {
        if dd[i].abs() >= dl[i].abs() {
            if dd[i] == 0.0 {
                dd[i] = tiny;
            }
            let f = dl[i] / dd[i];
            dl[i] = f;
            dd[i + 1] -= f * du[i];
        } else {
            swap[i] = true;
            let f = dd[i] / dl[i];
            dd[i] = dl[i];
            dl[i] = f;
            let t = du[i];
            du[i] = dd[i + 1];
            dd[i + 1] = t - f * dd[i + 1];
            if i + 2 < n {
                du2[i] = du[i + 1];
                du[i + 1] *= -f;
            }
        }
    }
    if dd[n - 1] == 0.0 {
        dd[n - 1] = tiny;
    }
    let mut x = vec![1.0 / (n as f64).sqrt(); n];
    for _ in 0..3 {
        for i in 0..n - 1 {
            if swap[i] {
                x.swap(i, i + 1);
            }
            x[i + 1] -= dl[i] * x[i];
        }
        for i in (0..n).rev() {
            let mut v = x[i];
            if i + 1 < n {
                v -= du[i] * x[i + 1];
            }
            if i + 2 < n {
                v -= du2[i] * x[i + 2];
            }
            x[i] = v / dd[i];
        }
        let nx = dot(&x, &x).sqrt();
        if !(nx.is_finite() && nx > 0.0) {
            return 1.0; // no information: report the worst case
        }
        x.iter_mut().for_each(|v| *v /= nx);
    }
    x[n - 1]
}

/// `w ← w − V (Vᵀ w)` (one classical Gram–Schmidt pass; coefficients and updates in fixed order,
/// parallel over basis vectors and over fixed element chunks).
fn orthogonalise(w: &mut [f64], basis: &[Vec<f64>]) {
    if basis.is_empty() {
        return;
    }
    let coef: Vec<f64> = basis.par_iter().map(|v| dot(v, w)).collect();
    w.par_chunks_mut(CHUNK).enumerate().for_each(|(c, dst)| {
        let off = c * CHUNK;
        let len = dst.len();
        // Per element the sum runs over the basis in index order (streamed chunk by chunk).
        let mut acc = vec![0.0; len];
        for (v, &cf) in basis.iter().zip(&coef) {
            for (s, x) in acc.iter_mut().zip(&v[off..off + len]) {
                *s += cf * x;
            }
        }
        for (o, s) in dst.iter_mut().zip(&acc) {
            *o -= s;
        }
    });
}
