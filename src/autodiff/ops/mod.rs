//! Forward and backward kernels of the tape's ops, one file per family. Each file holds, side by
//! side, the forward computation of an op and the vector–Jacobian product its backward needs; the
//! tape's single `match` in [`crate::autodiff::Tape::backward`] dispatches to them.

pub mod attention;
pub mod cholesky;
pub mod elementwise;
pub mod fast32;
pub mod linear;
pub mod matmul;
pub mod norm;
pub mod par;
pub mod reduce;
pub mod segment;
pub mod shape;
pub mod softmax;
