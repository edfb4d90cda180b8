//! The clustering part of the epoch-level loss (method §8, Eq. 16–20) and its exact gradient with
//! respect to all N embeddings — pass 1 of the two-pass full-data gradient of method §8.6.
//!
//! ```text
//! L_E − L_MIM = L_Lap + L_LH + L_size
//! L_Lap  = (λ_e/N) tr(Zᵀ L_sym Z)                       ∂/∂Z   = (2λ_e/N) L_sym Z
//! L_LH   = −(1/N) Σ_i LSE_k ln ρ_ik                     ∂/∂z_i = (1/N) Σ_k q_ik g_ik
//! L_size = Σ_j [f̄_j ln f̄_j − τ ln τ]                    ∂/∂z_i = (1/N) Σ_k q_ik g_ik (ā_i − a_k)
//! ```
//!
//! with `g_ik = w_ik Σ_k⁻¹ (z_i − μ_k)` (§11), `f_k = (1/N) Σ_i q_ik`,
//! `a_k = ∂L_size/∂f_k = (ln f_k + 1)·1[ε < f_k < τ]` and `ā_i = Σ_k q_ik a_k` (the chain rule
//! through `q_ik = softmax_k ln ρ_ik`: `∂ ln q_ik/∂z_i = −g_ik + Σ_l q_il g_il`). Θ̂ is constant.
//!
//! The same terms are on the tape in [`super::losses`]; a test shows both give the same gradient.
//! This closed form needs no `[K, N, d]` intermediate, so it runs at ST scale (N ≈ 18,000,
//! K ≈ 600) in `O(N·K·d²)` time and `O(N·K)` memory.

use super::laplacian::LaplacianSym;
use super::losses::{SIZE_EPS, size_threshold};
use super::smm::Smm;
use crate::error::{DarlcError, Result};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::Serialize;

/// Rows per parallel work item (fixed, so results do not depend on the thread count).
const CHUNK: usize = 64;

/// Which terms of Eq. 16 are on (the `w/o L_LH` and `w/o L_size` ablations of method §15 turn one
/// off; the Laplacian term is always on, with weight `λ_e`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Terms {
    pub lh: bool,
    pub size: bool,
}

impl Default for Terms {
    fn default() -> Self {
        Terms {
            lh: true,
            size: true,
        }
    }
}

/// The values of the clustering terms at one epoch (0 for a term that is off).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct EpochTerms {
    pub lambda: f64,
    pub l_lap: f64,
    pub l_lh: f64,
    pub l_size: f64,
}

/// `λ_e = λ₀ (1 − e/E_j)` (method §8.2).
pub fn lambda_at(lambda0: f64, epoch: usize, epochs: usize) -> f64 {
    lambda0 * (1.0 - epoch as f64 / epochs.max(1) as f64)
}

/// The soft proportions `f_k = (1/N) Σ_i q_ik` of Eq. 20 from responsibilities `[N, K]`, summed
/// in row order.
pub fn proportions(r: ArrayView2<f64>) -> Array1<f64> {
    let mut f = Array1::<f64>::zeros(r.ncols());
    for row in r.axis_iter(Axis(0)) {
        f += &row;
    }
    f / r.nrows().max(1) as f64
}

/// `τ = 0.2/K` and the lower clamp `ε = 1e-12` of Eq. 20 ([`size_threshold`], [`SIZE_EPS`]).
fn size_bounds(k: usize) -> (f64, f64) {
    (SIZE_EPS, size_threshold(k))
}

/// `G = ∂(L_Lap + L_LH + L_size)/∂Z` `[N, d]` and the term values, for embeddings `z` under the
/// fitted mixture `smm` (constants) and the seeding Laplacian `lap` (method §8.6 pass 1).
pub fn clustering_gradient(
    smm: &Smm,
    z: ArrayView2<f64>,
    lap: &LaplacianSym,
    lambda: f64,
    terms: Terms,
) -> Result<(Array2<f64>, EpochTerms)> {
    let (n, d) = z.dim();
    if n == 0 {
        return Err(DarlcError::Data("epoch loss: no embeddings".into()));
    }
    let k = smm.k();
    let e = smm.estep(z)?;
    let nf = n as f64;
    // L_LH (Eq. 18), summed in row order.
    let l_lh = -e.log_likelihood() / nf;
    let f = proportions(e.r.view());
    let (eps, tau) = size_bounds(k);
    let mut l_size = 0.0;
    let mut a = Array1::<f64>::zeros(k);
    for (j, &fj) in f.iter().enumerate() {
        let fb = fj.clamp(eps, tau);
        l_size += fb * fb.ln() - tau * tau.ln();
        if terms.size && fj > eps && fj < tau {
            a[j] = fj.ln() + 1.0;
        }
    }
    let lh = if terms.lh { 1.0 } else { 0.0 };
    let mut g = vec![0.0; n * d];
    g.par_chunks_mut(CHUNK * d)
        .enumerate()
        .for_each(|(c, dst)| {
            for (r, out) in dst.chunks_mut(d).enumerate() {
                let i = c * CHUNK + r;
                let q = e.r.row(i);
                let a_bar: f64 = q.iter().zip(a.iter()).map(|(q, a)| q * a).sum();
                let gi = smm.g_row(z.row(i));
                for (comp, gk) in gi.axis_iter(Axis(0)).enumerate() {
                    let coef = q[comp] * (lh + a_bar - a[comp]) / nf;
                    if coef != 0.0 {
                        for (o, v) in out.iter_mut().zip(gk.iter()) {
                            *o += coef * v;
                        }
                    }
                }
            }
        });
    let mut g = Array2::from_shape_vec((n, d), g).expect("shape");
    let l_lap = lambda / nf * lap.trace_quadratic(z)?;
    if lambda != 0.0 {
        let lz = lap.apply(z)?;
        g.scaled_add(2.0 * lambda / nf, &lz);
    }
    let terms_out = EpochTerms {
        lambda,
        l_lap,
        l_lh: if terms.lh { l_lh } else { 0.0 },
        l_size: if terms.size { l_size } else { 0.0 },
    };
    Ok((g, terms_out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_decays_linearly_to_zero() {
        // λ₀ = 0.5, E_j = 4: 0.5, 0.375, 0.25, 0.125 (method §8.2).
        let v: Vec<f64> = (0..4).map(|e| lambda_at(0.5, e, 4)).collect();
        assert_eq!(v, vec![0.5, 0.375, 0.25, 0.125]);
    }
}
