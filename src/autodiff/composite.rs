//! Functions composed from tape ops; their gradients come from the ops' own backward rules.

use super::tape::{Tape, Var};
use crate::float::Float;

/// Squared Mahalanobis distances `δ[n, k] = ‖L_k⁻¹ (z_n − μ_k)‖²` (method §6.1) for
/// `z: [N, d]`, `μ: [K, d]`, lower-triangular `L: [K, d, d]`; result `[N, K]`.
pub fn mahalanobis<T: Float>(t: &mut Tape<T>, z: Var, mu: Var, l: Var) -> Var {
    let (n, d) = (t.shape(z)[0], t.shape(z)[1]);
    let k = t.shape(mu)[0];
    let z3 = t.reshape(z, &[1, n, d]);
    let m3 = t.reshape(mu, &[k, 1, d]);
    let diff = t.sub(z3, m3); // [K, N, d]
    let diff = t.permute(diff, &[0, 2, 1]); // [K, d, N]
    let x = t.tri_solve_lower(l, diff); // [K, d, N]
    let sq = t.square(x);
    let delta = t.sum_axis(sq, 1, false); // [K, N]
    t.transpose(delta)
}

/// Mean squared error `mean((a − b)²)` over all elements.
pub fn mse<T: Float>(t: &mut Tape<T>, a: Var, b: Var) -> Var {
    let d = t.sub(a, b);
    let s = t.square(d);
    t.mean(s)
}
