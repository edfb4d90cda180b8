//! The Student-t mixture log density on the tape (method Eq. 13, evaluated via Cholesky as in §6.1)
//! and the log responsibilities (§6.6): the terms every clustering loss is built from.

use crate::autodiff::{Tape, Var, composite};
use crate::float::Float;
use crate::linalg::special::ln_gamma;
use ndarray::{ArrayD, IxDyn};

/// Per-component constants of the mixture: `ln π_k` and `ν_k` (`f64::INFINITY` = Gaussian
/// component, the SMM→GMM ablation of method §15).
#[derive(Clone, Debug)]
pub struct MixtureConsts {
    pub ln_pi: Vec<f64>,
    pub nu: Vec<f64>,
}

/// `ln ρ_ik = ln π_k + ln St(z_i | μ_k, Σ_k = L_k L_kᵀ, ν_k)` for `z: [N, d]`, `μ: [K, d]`,
/// `L: [K, d, d]` lower triangular; result `[N, K]` (method Eq. 13, evaluated via Cholesky as in
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

/// `ln q_ik = ln ρ_ik − LSE_k ln ρ_ik` (method §6.6), never the log of a clamped probability.
pub fn log_responsibilities<T: Float>(t: &mut Tape<T>, log_rho: Var) -> Var {
    t.log_softmax(log_rho)
}
