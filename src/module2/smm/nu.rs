//! The ν CM-step of the mixture (method §6.8): per component, the root of `f_k(ν)` by bisection on
//! `ln ν` within `[NU_MIN, NU_MAX]`.

use super::{EStep, NU_MAX, NU_MIN, Smm, component_major};
use crate::linalg::special::ln_minus_digamma;
use ndarray::{Array1, ArrayView1};
use rayon::prelude::*;

impl Smm {
    /// ν CM-step (§6.8) from the E-step at the old Θ; no-op for Gaussian components.
    pub fn nu_step(&mut self, e: &EStep, nk: ArrayView1<f64>) {
        if self.gaussian {
            return;
        }
        let d = self.d() as f64;
        let k = e.r.ncols();
        let (rt, wt) = (component_major(e.r.view()), component_major(e.w.view()));
        let new: Vec<f64> = (0..k)
            .into_par_iter()
            .map(|comp| {
                let nu_old = self.nu[comp];
                if nk[comp] < 1e-8 {
                    return nu_old;
                }
                let mut s = 0.0;
                for (&ri, &wi) in rt.row(comp).iter().zip(wt.row(comp)) {
                    s += ri * (wi.ln() - wi);
                }
                solve_nu(s / nk[comp], nu_old, d)
            })
            .collect();
        self.nu = Array1::from(new);
    }
}

/// `f_k(ν)` of §6.8 with `g = (1/N_k) Σ_i r_ik (ln w_ik − w_ik)`:
/// `1 + ln(ν/2) − ψ(ν/2) + g + ψ((ν_old+d)/2) − ln((ν_old+d)/2)`.
pub fn nu_equation(nu: f64, g: f64, nu_old: f64, d: f64) -> f64 {
    1.0 + ln_minus_digamma(nu / 2.0) + g - ln_minus_digamma((nu_old + d) / 2.0)
}

/// The root of `f_k` by bisection on `t = ln ν` over `[ln 1, ln 200]` (§6.8): `ν_max` if
/// `f(ν_max) ≥ 0`, `ν_min` if `f(ν_min) ≤ 0`, else 100 halvings (or until the bracket is narrower
/// than 1e-12), returning the midpoint.
pub fn solve_nu(g: f64, nu_old: f64, d: f64) -> f64 {
    let f = |t: f64| nu_equation(t.exp(), g, nu_old, d);
    let (mut lo, mut hi) = (NU_MIN.ln(), NU_MAX.ln());
    if f(hi) >= 0.0 {
        return NU_MAX;
    }
    if f(lo) <= 0.0 {
        return NU_MIN;
    }
    for _ in 0..100 {
        if hi - lo < 1e-12 {
            break;
        }
        let mid = 0.5 * (lo + hi);
        if f(mid) > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (0.5 * (lo + hi)).exp()
}
