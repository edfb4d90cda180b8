//! The contrastive branch (method §4.3, Eq. 9–10): symmetric 2B-view NT-Xent between the online
//! vectors `c` (raw images) and the target vectors `c̃` (smoothed images, stop-gradient).

use crate::autodiff::{Tape, Var};
use crate::float::Float;
use ndarray::{ArrayD, IxDyn};

/// NT-Xent temperature τ (method §4.3).
pub const TAU: f64 = 0.5;
/// L2-normalisation floor (method §16).
pub const NORM_EPS: f64 = 1e-12;
/// Additive mask for the excluded `n = m` terms (its `exp` underflows to exactly 0).
const DIAG_MASK: f64 = -1e30;

/// `L_CL` (Eq. 10) for `c: [B, d_c]` (online) and `c_t: [B, d_c]` (target; pass a constant leaf):
/// `v = [a; b]` (unit rows), `ℓ_m = −v_m·v_pos(m)/τ + ln Σ_{n≠m} exp(v_m·v_n/τ)`, mean over 2B.
/// The positives sum to `(2/τ) Σ_i a_i·b_i`.
pub fn nt_xent<T: Float>(t: &mut Tape<T>, c: Var, c_t: Var, tau: f64) -> Var {
    let b = t.shape(c)[0];
    let a = t.l2_normalize(c, NORM_EPS);
    let bt = t.l2_normalize(c_t, NORM_EPS);
    let v = t.concat(&[a, bt], 0);
    let s = t.matmul_t(v, v, false, true);
    let s = t.scale(s, 1.0 / tau);
    let mask = t.constant(ArrayD::from_shape_fn(IxDyn(&[2 * b, 2 * b]), |ix| {
        if ix[0] == ix[1] {
            T::of(DIAG_MASK)
        } else {
            T::zero()
        }
    }));
    let s = t.add(s, mask);
    let lse = t.logsumexp(s);
    let lse = t.sum(lse);
    let pos = t.mul(a, bt);
    let pos = t.sum(pos);
    let pos = t.scale(pos, 2.0 / tau);
    let l = t.sub(lse, pos);
    t.scale(l, 1.0 / (2 * b) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct per-row evaluation of Eq. 10 in f64 (no tape).
    fn reference(c: &[[f64; 3]], ct: &[[f64; 3]], tau: f64) -> f64 {
        let norm = |x: &[f64; 3]| {
            let n = x.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
            [x[0] / n, x[1] / n, x[2] / n]
        };
        let mut v: Vec<[f64; 3]> = c.iter().map(norm).collect();
        v.extend(ct.iter().map(norm));
        let b = c.len();
        let dot = |x: &[f64; 3], y: &[f64; 3]| x[0] * y[0] + x[1] * y[1] + x[2] * y[2];
        let mut total = 0.0;
        for m in 0..2 * b {
            let pos = if m < b { m + b } else { m - b };
            let den: f64 = (0..2 * b)
                .filter(|&n| n != m)
                .map(|n| (dot(&v[m], &v[n]) / tau).exp())
                .sum();
            total += -dot(&v[m], &v[pos]) / tau + den.ln();
        }
        total / (2 * b) as f64
    }

    #[test]
    fn matches_per_row_definition() {
        let c = [[0.3, -1.0, 0.5], [1.2, 0.1, -0.4], [-0.7, 0.8, 0.9]];
        let ct = [[0.2, -0.8, 0.7], [1.0, 0.3, -0.1], [0.1, 0.1, 1.0]];
        let mut t = Tape::<f64>::no_grad();
        let cv = t.constant(ArrayD::from_shape_fn(IxDyn(&[3, 3]), |i| c[i[0]][i[1]]));
        let ctv = t.constant(ArrayD::from_shape_fn(IxDyn(&[3, 3]), |i| ct[i[0]][i[1]]));
        let l = nt_xent(&mut t, cv, ctv, TAU);
        let r = reference(&c, &ct, TAU);
        assert!((t.scalar(l) - r).abs() < 1e-14, "{} vs {r}", t.scalar(l));
    }
}
