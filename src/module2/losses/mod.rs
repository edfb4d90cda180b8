//! The differentiable clustering losses of Module II on the tape, one place per loss of the paper:
//!
//! * [`mixture`] — the Student-t mixture log density `ln ρ` (method Eq. 13) and the log
//!   responsibilities `ln q` (§6.6), from which the losses below are built;
//! * [`lh`] — `L_LH`, the negative log-likelihood under the fitted mixture (Eq. 18);
//! * [`size`] — `L_size`, the cluster-size hinge, and its threshold `τ = 0.2/K` (Eq. 19–20);
//! * [`laplacian`] — `L_Lap`, the graph Laplacian regulariser (Eq. 17);
//! * [`kl`] — the target distribution `P` (Eq. 22) and `L_KL` (Eq. 21).
//!
//! Constants under gradient (method §17): `π̂`, `ν̂` (from EM), the similarity graph, `λ_e`, `P`.

pub mod kl;
pub mod laplacian;
pub mod lh;
pub mod mixture;
pub mod size;

pub use kl::{kl_loss, target_log_distribution};
pub use laplacian::laplacian_loss;
pub use lh::lh_loss;
pub use mixture::{MixtureConsts, log_responsibilities, log_rho};
pub use size::{SIZE_EPS, size_loss, size_threshold};
