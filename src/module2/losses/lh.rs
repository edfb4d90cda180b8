//! `L_LH`, the negative log-likelihood of the embeddings under the fitted mixture (method §8.3,
//! Eq. 18).

use crate::autodiff::{Tape, Var};
use crate::float::Float;

/// `L_LH = −(1/N) Σ_i LSE_k ln ρ_ik` (method Eq. 18).
pub fn lh_loss<T: Float>(t: &mut Tape<T>, log_rho: Var) -> Var {
    let lse = t.logsumexp(log_rho);
    let m = t.mean(lse);
    t.neg(m)
}
