//! Module II: projection head, Student's t mixture MAP-EM, self-paced losses (SPEC §5–§11).
//!
//! Non-differentiable numerics (plain f64, no tape), on the generic solvers of [`crate::linalg`]:
//!
//! * [`smm`] — the Student's t mixture: E-step, MAP M-step, ν CM-step, ℓ_MAP, EM, `fit` (§6);
//! * [`similarity`] / [`laplacian`] — Pearson kNN seeding graph, `L_sym` (§7);
//! * [`k_infer`] — eigengap cluster-number inference on `A + A²` (§10).
//!
//! Differentiable (tape) parts: [`projection`] (Eq. 12) and [`losses`] (Eq. 13, 17–22).
//!
//! Every parallel loop runs over fixed chunks (or independent components) and combines in a fixed
//! order, so all outputs are bit-identical for any number of rayon threads.

pub mod epoch_loss;
pub mod joint;
pub mod k_infer;
pub mod laplacian;
pub mod losses;
pub mod projection;
pub mod similarity;
pub mod smm;

/// ST default number of clusters `K = round(N/30)`, at least 2 (\[P\] §4.1.5, SPEC §10/§14).
pub fn k_default_st(n: usize) -> usize {
    ((n as f64 / 30.0).round() as usize).max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_default() {
        // round(18000/30) = 600; round(44/30) = round(1.47) = 1 → floor 2; round(75/30) = round(2.5)
        // = 3 (f64::round rounds half away from zero).
        assert_eq!(k_default_st(18000), 600);
        assert_eq!(k_default_st(44), 2);
        assert_eq!(k_default_st(75), 3);
        assert_eq!(k_default_st(0), 2);
    }
}
