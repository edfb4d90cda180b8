//! The tape: reverse-mode automatic differentiation over ndarray (method §17).
//!
//! * [`op`]: the op enum, what each op keeps for its backward pass.
//! * [`tape`]: the flat node list and the recording methods.
//! * [`backward`]: the reverse pass, the single `match` over ops.
//! * [`ops`]: forward and backward kernels, one file per family.
//! * [`composite`]: functions built from ops (Mahalanobis distance, …).
//! * [`gradcheck`]: the finite-difference harness of method §17.
//! * [`profile`]: optional per-op wall times (for `darlc bench ssl-step --profile`).

pub mod backward;
pub mod composite;
pub mod gradcheck;
pub mod op;
pub mod ops;
pub mod profile;
pub mod tape;

pub use backward::Grads;
pub use op::Op;
pub use ops::elementwise::Unary;
pub use tape::{Node, Tape, Var};
