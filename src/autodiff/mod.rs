//! The tape: reverse-mode automatic differentiation over ndarray (SPEC §17).
//!
//! * [`tape`]: the flat node list and the single backward `match`.
//! * [`ops`]: forward and backward kernels, one file per family.
//! * [`composite`]: functions built from ops (Mahalanobis distance, …).
//! * [`gradcheck`]: the finite-difference harness of SPEC §17.
//! * [`profile`]: optional per-op wall times (for `darlc bench ssl-step --profile`).

pub mod composite;
pub mod gradcheck;
pub mod ops;
pub mod profile;
pub mod tape;

pub use ops::elementwise::Unary;
pub use tape::{Grads, Node, Op, Tape, Var};
