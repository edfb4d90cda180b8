//! Cluster-number inference by the eigengap of the normalised Laplacian of the enhanced
//! similarity `A + A·A` (SPEC §10, Eq. 23–25, \[scDML\], \[vLux\]).
//!
//! Never forms a dense N×N matrix for large N. The graph is split into connected components
//! (the spectrum of `L_norm` is the union of the components' spectra; an isolated node
//! contributes one eigenvalue 0). Small components (≤ [`DENSE_MAX`] nodes) use a dense cyclic
//! Jacobi solver; larger ones a Lanczos iteration with full re-orthogonalisation (classical
//! Gram–Schmidt, repeated when the DGKS test asks) whose tridiagonal matrix is solved by Sturm-sequence bisection.
//! Splitting into components matters: a single Krylov sequence sees a repeated eigenvalue only
//! once, and a graph with c disconnected blocks has eigenvalue 0 with multiplicity c.
//!
//! **Accuracy.** With `m = n` Lanczos steps (components up to `3·(K_max+1)` nodes) the Ritz values
//! are the eigenvalues to rounding (≈1e-12 with full re-orthogonalisation). With `m < n` they
//! are upper bounds (Cauchy interlacing) that converge fastest at the low end: the smallest
//! eigenvalues are accurate to rounding, the ones near the count limit much less so. Measured
//! (`tests/module2_k_infer.rs`, N = 300, 30 wanted, m = 90): error ≤ 6e-14 for the smallest 18,
//! ≤ 5e-8 up to 24, but 2e-3…7e-3 for the top fifth. For N = 20,000 with K_max = 1000 this means
//! the gaps near the end of the window are approximate (Ritz values over-estimate there), while
//! the low end of the spectrum, where well-separated cluster structure shows its gap, is exact
//! to rounding. Every eigenvalue comes with its residual bound (`KInference::residuals`, from
//! the last components of T's eigenvectors), so a caller can see which gaps are trustworthy;
//! in the test above the bounds are < 1e-5 for the converged values and ≈ 1e-3 for the rest.
//!
//! **Cost.** A component of n > 3·(K_max+1) nodes keeps m = 3·(K_max+1) Lanczos vectors:
//! for N = 20,000 and K_max = 1000 that is 3003 × 20,000 f64 = 480 MB, and the
//! re-orthogonalisation dominates (measured 312 s wall on 2 shared, busy cores for a planted
//! 40-group graph, K̂ = 40 recovered; `tests/module2_bench.rs`).

use super::sparse::Csr;
use crate::error::{DarlcError, Result};
use crate::rng::Stream;
use ndarray::Array2;
use rand::Rng;
use rayon::prelude::*;

/// Components up to this size use the dense Jacobi solver.
pub const DENSE_MAX: usize = 256;
/// Largest K considered (SPEC §10: `K_max = min(N − 1, 1000)`).
pub const K_MAX_CAP: usize = 1000;
/// Rows per parallel task.
const CHUNK: usize = 512;

/// The result of [`infer_k`].
#[derive(Debug, Clone)]
pub struct KInference {
    /// `K̂ = argmax_{k ∈ [2, K_max]} (λ_{k+1} − λ_k)`, ties → smallest k.
    pub k_hat: usize,
    /// The smallest `K_max + 1` eigenvalues of `L_norm`, ascending, tiny negatives clipped to 0
    /// (`eigenvalues[k-1]` is `λ_k`).
    pub eigenvalues: Vec<f64>,
    /// Error bound of each eigenvalue (some eigenvalue lies within it): 0 from the dense solver,
    /// the Lanczos residual otherwise. Large values near the end of the window flag gaps there
    /// as unreliable.
    pub residuals: Vec<f64>,
    /// The window upper end `K_max`.
    pub k_max: usize,
    /// Number of connected components of `S̃` (isolated nodes included).
    pub components: usize,
}

/// `S̃ = A + A·A` with `A = S / max S` and `diag(S̃) = 0` (Eq. 23's similarity), as CSR.
/// Row i of `A·A` is accumulated in the order of A's row i (ascending l), then of row l.
pub fn enhanced_similarity(s: &Csr) -> Result<Csr> {
    let n = s.n_rows;
    if s.n_cols != n {
        return Err(DarlcError::Data("similarity must be square".into()));
    }
    let mx = s.max_value();
    if !(mx > 0.0 && mx.is_finite()) {
        return Err(DarlcError::Data(
            "cluster-number inference: the similarity has no positive entry".into(),
        ));
    }
    let a: Vec<f64> = s.values.iter().map(|v| v / mx).collect();
    let rows: Vec<Vec<(usize, f64)>> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut acc = vec![0.0f64; n];
            let mut mark = vec![false; n];
            let mut touched = Vec::new();
            let mut out = Vec::new();
            for i in c * CHUNK..((c + 1) * CHUNK).min(n) {
                let (ci, _) = s.row(i);
                let oi = s.indptr[i];
                for (p, &l) in ci.iter().enumerate() {
                    let ail = a[oi + p];
                    let (cl, _) = s.row(l);
                    let ol = s.indptr[l];
                    for (q, &j) in cl.iter().enumerate() {
                        if !mark[j] {
                            mark[j] = true;
                            touched.push(j);
                        }
                        acc[j] += ail * a[ol + q];
                    }
                }
                let mut row: Vec<(usize, f64)> = Vec::with_capacity(touched.len() + ci.len());
                for (p, &j) in ci.iter().enumerate() {
                    let a2 = if mark[j] { acc[j] } else { 0.0 };
                    row.push((j, a[oi + p] + a2));
                    mark[j] = false;
                    acc[j] = 0.0;
                }
                for &j in &touched {
                    if mark[j] {
                        row.push((j, acc[j]));
                        mark[j] = false;
                        acc[j] = 0.0;
                    }
                }
                touched.clear();
                row.retain(|&(j, v)| j != i && v != 0.0);
                row.sort_by_key(|&(j, _)| j);
                out.push(row);
            }
            out
        })
        .collect::<Vec<_>>()
        .into_iter()
        .flatten()
        .collect();
    Ok(Csr::from_rows(n, rows))
}

/// Connected components (labels in order of first appearance) of a symmetric pattern.
pub fn connected_components(s: &Csr) -> Vec<Vec<usize>> {
    let n = s.n_rows;
    let mut label = vec![usize::MAX; n];
    let mut comps = Vec::new();
    for start in 0..n {
        if label[start] != usize::MAX {
            continue;
        }
        let id = comps.len();
        let mut members = vec![start];
        label[start] = id;
        let mut head = 0;
        while head < members.len() {
            let i = members[head];
            head += 1;
            for &j in s.row(i).0 {
                if label[j] == usize::MAX {
                    label[j] = id;
                    members.push(j);
                }
            }
        }
        members.sort_unstable();
        comps.push(members);
    }
    comps
}

/// `L_norm` restricted to one connected component (local indices), as a matrix-free operator.
struct ComponentLaplacian {
    /// Local CSR of `D̃^{-1/2} S̃ D̃^{-1/2}` on the component.
    m: Csr,
}

impl ComponentLaplacian {
    /// `local[g]` is node g's position inside its own component.
    fn new(s: &Csr, members: &[usize], local: &[usize], dinv: &[f64]) -> Self {
        let rows = members
            .iter()
            .map(|&g| {
                let (cols, vals) = s.row(g);
                cols.iter()
                    .zip(vals)
                    .map(|(&j, &v)| (local[j], dinv[g] * v * dinv[j]))
                    .collect()
            })
            .collect();
        ComponentLaplacian {
            m: Csr::from_rows(members.len(), rows),
        }
    }

    fn n(&self) -> usize {
        self.m.n_rows
    }

    /// `y = (I − M) x` (every node of a component of size ≥ 2 has positive degree).
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        y.par_chunks_mut(CHUNK).enumerate().for_each(|(c, dst)| {
            for (r, o) in dst.iter_mut().enumerate() {
                let i = c * CHUNK + r;
                let (cols, vals) = self.m.row(i);
                let mut v = x[i];
                for (&j, &mij) in cols.iter().zip(vals) {
                    v -= mij * x[j];
                }
                *o = v;
            }
        });
    }

    fn to_dense(&self) -> Array2<f64> {
        let mut d = -self.m.to_dense();
        for i in 0..self.n() {
            d[[i, i]] += 1.0;
        }
        d
    }
}

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

/// The smallest `count` eigenvalues of `L_norm` (Eq. 24) of the enhanced similarity `s_tilde`,
/// ascending, negatives clipped to 0, each with an error bound (0 for the dense solver and for
/// isolated nodes, the Lanczos residual otherwise); also the number of connected components.
pub fn smallest_laplacian_eigenvalues(
    s_tilde: &Csr,
    count: usize,
    rng: &mut Stream,
) -> (RitzValues, usize) {
    let deg = s_tilde.row_sums();
    let dinv: Vec<f64> = deg
        .iter()
        .map(|&d| if d > 0.0 { 1.0 / d.sqrt() } else { 0.0 })
        .collect();
    let comps = connected_components(s_tilde);
    let mut local = vec![0usize; s_tilde.n_rows];
    for members in &comps {
        for (p, &g) in members.iter().enumerate() {
            local[g] = p;
        }
    }
    let mut all: Vec<(f64, f64)> = Vec::new();
    for members in &comps {
        if members.len() == 1 {
            all.push((0.0, 0.0));
            continue;
        }
        let lap = ComponentLaplacian::new(s_tilde, members, &local, &dinv);
        let nc = lap.n();
        let want = count.min(nc);
        if nc <= DENSE_MAX {
            let e = jacobi_eigenvalues(&lap.to_dense());
            all.extend(e.into_iter().take(want).map(|v| (v, 0.0)));
        } else {
            let m = nc.min((3 * want).max(want + 100));
            let r = lanczos_ritz(|x, y| lap.apply(x, y), nc, want, m, rng);
            all.extend(r.values.into_iter().zip(r.residuals));
        }
    }
    // Stable sort by value: equal values keep component order.
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    all.truncate(count);
    let values = all.iter().map(|&(v, _)| v.max(0.0)).collect();
    let residuals = all.iter().map(|&(_, r)| r).collect();
    (RitzValues { values, residuals }, comps.len())
}

/// Eigengap argmax over `k ∈ [k_min, k_max]` of `λ_{k+1} − λ_k` (1-based λ), ties → smallest k.
pub fn eigengap(eigenvalues: &[f64], k_min: usize, k_max: usize) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for k in k_min..=k_max {
        if k + 1 > eigenvalues.len() || k == 0 {
            break;
        }
        let gap = eigenvalues[k] - eigenvalues[k - 1];
        if best.is_none_or(|(_, g)| gap > g) {
            best = Some((k, gap));
        }
    }
    best.map(|(k, _)| k)
}

/// Cluster-number inference of SPEC §10 from the seeding similarity `S` (§7): `K̂` by the
/// eigengap of `L_norm` of `S̃ = A + A²` in the window `[2, min(N − 1, 1000)]`. `rng` (e.g.
/// `rng::stream(seed, "k_infer.lanczos")`) supplies the Lanczos start vectors.
pub fn infer_k(s: &Csr, rng: &mut Stream) -> Result<KInference> {
    let n = s.n_rows;
    if n < 3 {
        return Err(DarlcError::Data(format!(
            "cluster-number inference needs at least 3 images, got {n}"
        )));
    }
    let k_max = (n - 1).min(K_MAX_CAP);
    let s_tilde = enhanced_similarity(s)?;
    let (ritz, components) = smallest_laplacian_eigenvalues(&s_tilde, k_max + 1, rng);
    let k_hat = eigengap(&ritz.values, 2, k_max).ok_or_else(|| {
        DarlcError::Numerical("cluster-number inference: too few eigenvalues".into())
    })?;
    Ok(KInference {
        k_hat,
        eigenvalues: ritz.values,
        residuals: ritz.residuals,
        k_max,
        components,
    })
}
