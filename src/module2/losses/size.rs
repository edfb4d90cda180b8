//! `L_size`, the cluster-size hinge (method §8.4, Eq. 19–20), and its threshold `τ = 0.2/K`, written
//! once here for the tape loss and the exact epoch gradient (`module2::epoch_loss`) alike.

use crate::autodiff::{Tape, Var};
use crate::float::Float;

/// The lower clamp `ε = 1e-12` of the soft proportions in Eq. 20 (method §8.4).
pub const SIZE_EPS: f64 = 1e-12;

/// The cluster-size threshold `τ = 0.2/K` of Eq. 20 (method §8.4, a CHOICE: "tiny" means below a
/// fifth of the mean cluster size): `L_size` pushes up only clusters whose soft proportion is
/// below it.
pub fn size_threshold(k: usize) -> f64 {
    0.2 / k as f64
}

/// `L_size = Σ_j [f̄_j ln f̄_j − τ ln τ]`, `f_j = (1/N) Σ_i q_ij`, `f̄ = clamp(f, 1e-12, τ)`,
/// `τ = 0.2/K` (method Eq. 19–20). Zero for clusters at or above the threshold.
pub fn size_loss<T: Float>(t: &mut Tape<T>, ln_q: Var) -> Var {
    let k = t.shape(ln_q)[1];
    let tau = size_threshold(k);
    let q = t.exp(ln_q);
    let f = t.mean_axis(q, 0, false);
    let fb = t.clamp(f, SIZE_EPS, tau);
    let lf = t.ln(fb);
    let e = t.mul(fb, lf);
    let e = t.shift(e, -tau * tau.ln());
    t.sum(e)
}
