//! The differentiable clustering losses of Module II on the tape: the Student-t mixture log
//! density (SPEC Eq. 13), responsibilities, the epoch-level terms `L_LH` (Eq. 18), `L_size`
//! (Eq. 19–20) and `L_Lap` (Eq. 17), the target distribution (Eq. 22) and `L_KL` (Eq. 21).
//!
//! Constants under gradient (SPEC §17): `π̂`, `ν̂` (from EM), the similarity graph, `λ_e`, `P`.

use crate::autodiff::{Tape, Var, composite};
use crate::float::Float;
use crate::linalg::sparse::Csr;
use crate::linalg::special::ln_gamma;
use ndarray::{Array1, Array2, ArrayD, ArrayView2, IxDyn};
use std::sync::Arc;

/// Per-component constants of the mixture: `ln π_k` and `ν_k` (`f64::INFINITY` = Gaussian
/// component, the SMM→GMM ablation of SPEC §15).
#[derive(Clone, Debug)]
pub struct MixtureConsts {
    pub ln_pi: Vec<f64>,
    pub nu: Vec<f64>,
}

/// `ln ρ_ik = ln π_k + ln St(z_i | μ_k, Σ_k = L_k L_kᵀ, ν_k)` for `z: [N, d]`, `μ: [K, d]`,
/// `L: [K, d, d]` lower triangular; result `[N, K]` (SPEC Eq. 13, evaluated via Cholesky as in
/// §6.1: `δ = ‖L⁻¹(z − μ)‖²`, `ln|Σ| = 2 Σ ln L_jj`, `ln(1 + δ/ν)` by `log1p`).
pub fn log_rho<T: Float>(t: &mut Tape<T>, z: Var, mu: Var, l: Var, c: &MixtureConsts) -> Var {
    let d = t.shape(z)[1] as f64;
    let k = c.nu.len();
    assert_eq!(
        t.shape(mu)[0],
        k,
        "μ rows must equal the number of components"
    );
    let delta = composite::mahalanobis(t, z, mu, l); // [N, K]
    let logdet = t.log_det_chol(l); // [K]
    let half_logdet = t.scale(logdet, -0.5);
    let gaussian = c.nu.iter().all(|v| v.is_infinite());
    let row = |v: Vec<f64>| {
        ArrayD::from_shape_vec(IxDyn(&[k]), v.into_iter().map(T::of).collect()).expect("row")
    };
    let quad = if gaussian {
        t.scale(delta, -0.5)
    } else {
        assert!(
            c.nu.iter().all(|v| v.is_finite()),
            "mix of Gaussian and t components is not supported"
        );
        let inv_nu = t.constant(row(c.nu.iter().map(|v| 1.0 / v).collect()));
        let coef = t.constant(row(c.nu.iter().map(|v| -(v + d) / 2.0).collect()));
        let r = t.mul(delta, inv_nu);
        let r = t.log1p(r);
        t.mul(r, coef)
    };
    let konst: Vec<f64> = (0..k)
        .map(|j| {
            let nu = c.nu[j];
            let norm = if gaussian {
                -(d / 2.0) * (2.0 * std::f64::consts::PI).ln()
            } else {
                ln_gamma((nu + d) / 2.0)
                    - ln_gamma(nu / 2.0)
                    - (d / 2.0) * (nu * std::f64::consts::PI).ln()
            };
            c.ln_pi[j] + norm
        })
        .collect();
    let kc = t.constant(row(konst));
    let s = t.add(quad, half_logdet);
    t.add(s, kc)
}

/// `ln q_ik = ln ρ_ik − LSE_k ln ρ_ik` (SPEC §6.6), never the log of a clamped probability.
pub fn log_responsibilities<T: Float>(t: &mut Tape<T>, log_rho: Var) -> Var {
    t.log_softmax(log_rho)
}

/// `L_LH = −(1/N) Σ_i LSE_k ln ρ_ik` (SPEC Eq. 18).
pub fn lh_loss<T: Float>(t: &mut Tape<T>, log_rho: Var) -> Var {
    let lse = t.logsumexp(log_rho);
    let m = t.mean(lse);
    t.neg(m)
}

/// `L_size = Σ_j [f̄_j ln f̄_j − τ ln τ]`, `f_j = (1/N) Σ_i q_ij`, `f̄ = clamp(f, 1e-12, τ)`,
/// `τ = 0.2/K` (SPEC Eq. 19–20). Zero for clusters at or above the threshold.
pub fn size_loss<T: Float>(t: &mut Tape<T>, ln_q: Var) -> Var {
    let k = t.shape(ln_q)[1];
    let tau = 0.2 / k as f64;
    let q = t.exp(ln_q);
    let f = t.mean_axis(q, 0, false);
    let fb = t.clamp(f, 1e-12, tau);
    let lf = t.ln(fb);
    let e = t.mul(fb, lf);
    let e = t.shift(e, -tau * tau.ln());
    t.sum(e)
}

/// `L_Lap = (λ/N) tr(Zᵀ L_sym Z) = (λ/(2N)) Σ_ij S_ij ‖z_i/√d_i − z_j/√d_j‖²` (SPEC Eq. 17),
/// summed over the stored (symmetric) entries of `S`; isolated nodes contribute nothing.
pub fn laplacian_loss<T: Float>(t: &mut Tape<T>, z: Var, s: &Csr, lambda: f64) -> Var {
    let n = t.shape(z)[0];
    assert_eq!(
        n, s.n_rows,
        "similarity size must equal the number of embeddings"
    );
    let deg: Vec<f64> = (0..n)
        .map(|i| s.values[s.indptr[i]..s.indptr[i + 1]].iter().sum())
        .collect();
    let inv_sqrt: Vec<T> = deg
        .iter()
        .map(|&d| T::of(if d > 0.0 { 1.0 / d.sqrt() } else { 0.0 }))
        .collect();
    let scale = t.constant(ArrayD::from_shape_vec(IxDyn(&[n, 1]), inv_sqrt).expect("col"));
    let y = t.mul(z, scale);
    let mut rows = Vec::with_capacity(s.indices.len());
    for i in 0..n {
        rows.extend(std::iter::repeat_n(i, s.indptr[i + 1] - s.indptr[i]));
    }
    let yi = t.gather_rows(y, Arc::from(rows));
    let yj = t.gather_rows(y, Arc::from(s.indices.clone()));
    let diff = t.sub(yi, yj);
    let sq = t.square(diff);
    let per_edge = t.sum_axis(sq, 1, true); // [E, 1]
    let w = t.constant(
        ArrayD::from_shape_vec(
            IxDyn(&[s.values.len(), 1]),
            s.values.iter().map(|&v| T::of(v)).collect(),
        )
        .expect("w"),
    );
    let weighted = t.mul(per_edge, w);
    let total = t.sum(weighted);
    t.scale(total, lambda / (2.0 * n as f64))
}

/// Target distribution in log space (SPEC Eq. 22): `ln p_ij = 2 ln q_ij − ln f_j − LSE_j'(…)`,
/// `ln f_j = LSE_i ln q_ij`. Rows sum to 1. Not differentiated (frozen for an epoch).
pub fn target_log_distribution(ln_q: ArrayView2<f64>) -> Array2<f64> {
    let (n, k) = ln_q.dim();
    let ln_f: Array1<f64> = (0..k)
        .map(|j| {
            let col: Vec<f64> = ln_q.column(j).to_vec();
            crate::autodiff::ops::softmax::lse_row(&col)
        })
        .collect();
    let mut out = Array2::zeros((n, k));
    for i in 0..n {
        let a: Vec<f64> = (0..k).map(|j| 2.0 * ln_q[[i, j]] - ln_f[j]).collect();
        let l = crate::autodiff::ops::softmax::lse_row(&a);
        for j in 0..k {
            out[[i, j]] = a[j] - l;
        }
    }
    out
}

/// `L_KL = (1/B) Σ_i Σ_j p_ij (ln p_ij − ln q_ij)` with `0·ln 0 = 0` (SPEC Eq. 21, `batchmean`).
/// `ln_p` is a constant `[B, K]`; `ln_q` is on the tape.
pub fn kl_loss<T: Float>(t: &mut Tape<T>, ln_p: ArrayView2<f64>, ln_q: Var) -> Var {
    let b = ln_p.nrows() as f64;
    let p = ln_p.mapv(|v| T::of(v.exp())).into_dyn();
    // Σ p ln p is a constant (0·ln 0 = 0); only −Σ p ln q carries gradient.
    let plogp: f64 = ln_p
        .iter()
        .map(|&v| {
            if v == f64::NEG_INFINITY {
                0.0
            } else {
                v.exp() * v
            }
        })
        .sum();
    let pc = t.constant(p);
    let cross = t.mul(pc, ln_q);
    let cross = t.sum(cross);
    let s = t.scale(cross, -1.0 / b);
    t.shift(s, plogp / b)
}
