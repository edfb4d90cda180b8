//! Module II: projection head, Student's t mixture MAP-EM, self-paced losses (method §5–§11).
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
