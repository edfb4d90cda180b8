//! Uncertainty-weighted SSL loss (method §4.4, Eq. 11).

use crate::autodiff::{Tape, Var};
use crate::error::{DarlcError, Result};
use crate::float::Float;

/// Smallest admissible `σ²` (method §16: no clamp; below this is a divergence error).
pub const SIGMA2_MIN: f64 = 1e-12;

/// `L_SSL = L_MIM/(2σ₁²) + L_CL/(2σ₂²) + ln(1 + σ₁²) + ln(1 + σ₂²)` (Eq. 11), all 0-d nodes.
pub fn uwl<T: Float>(t: &mut Tape<T>, l_mim: Var, l_cl: Var, sigma1: Var, sigma2: Var) -> Var {
    let a = uwl_term(t, l_mim, sigma1);
    let b = uwl_term(t, l_cl, sigma2);
    t.add(a, b)
}

/// method §15 `w/o CLR`: `L_SSL = L_MIM/(2σ₁²) + ln(1 + σ₁²)`.
pub fn uwl_mim_only<T: Float>(t: &mut Tape<T>, l_mim: Var, sigma1: Var) -> Var {
    uwl_term(t, l_mim, sigma1)
}

/// One task's term of Eq. 11: `L/(2σ²) + ln(1 + σ²)`.
fn uwl_term<T: Float>(t: &mut Tape<T>, l: Var, sigma: Var) -> Var {
    let s2 = t.square(sigma);
    let den = t.scale(s2, 2.0);
    let a = t.div(l, den);
    let r = t.log1p(s2);
    t.add(a, r)
}

/// Error if `σ₁²` or `σ₂²` is below 1e-12 or not finite (method §16).
pub fn check_sigmas(sigma1: f64, sigma2: f64) -> Result<()> {
    for (name, s) in [("uwl.sigma1", sigma1), ("uwl.sigma2", sigma2)] {
        let s2 = s * s;
        if s2.is_nan() || s2 < SIGMA2_MIN || !s2.is_finite() {
            return Err(DarlcError::Numerical(format!(
                "{name}² = {s2:e} fell below {SIGMA2_MIN:e} (or is not finite): the uncertainty \
                 weighting diverged (method §16); lower the learning rate or check the inputs"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn};

    #[test]
    fn value_and_divergence_error() {
        // L_MIM = 0.3, L_CL = 2.0, σ₁ = 1, σ₂ = 2: 0.3/2 + 2/8 + ln 2 + ln 5 (hand computation).
        let mut t = Tape::<f64>::no_grad();
        let c = |t: &mut Tape<f64>, x: f64| t.constant(ArrayD::from_elem(IxDyn(&[]), x));
        let (a, b, s1, s2) = (
            c(&mut t, 0.3),
            c(&mut t, 2.0),
            c(&mut t, 1.0),
            c(&mut t, 2.0),
        );
        let l = uwl(&mut t, a, b, s1, s2);
        let e = 0.15 + 0.25 + 2f64.ln() + 5f64.ln();
        assert!((t.scalar(l) - e).abs() < 1e-15);
        assert!(check_sigmas(1.0, 1e-5).is_ok()); // σ² = 1e-10
        assert!(check_sigmas(1.0, 1e-7).is_err()); // σ² = 1e-14
        assert!(check_sigmas(f64::NAN, 1.0).is_err());
    }
}
