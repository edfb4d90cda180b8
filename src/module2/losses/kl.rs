//! The self-training pair of the batch-level phase: the target distribution `P` (method Eq. 22),
//! frozen for an epoch, and `L_KL(P ‖ Q)` (Eq. 21).

use crate::autodiff::{Tape, Var};
use crate::float::Float;
use ndarray::{Array1, Array2, ArrayView2};

/// Target distribution in log space (method Eq. 22): `ln p_ij = 2 ln q_ij − ln f_j − LSE_j'(…)`,
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

/// `L_KL = (1/B) Σ_i Σ_j p_ij (ln p_ij − ln q_ij)` with `0·ln 0 = 0` (method Eq. 21, `batchmean`).
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
