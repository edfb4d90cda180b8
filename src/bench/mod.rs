//! Benchmarks that print figures (not timed tests): `darlc bench ops` measures the f32 tape's
//! matmul throughput against raw matrixmultiply GEMM on the paper-size ViT shapes (SPEC §0) and the
//! fixed cost of recording one tiny op; `darlc bench scaling` the thread scaling of the Module I
//! step, the GAT epoch and an EM iteration.

pub mod alloc;
pub mod ops;
pub mod scaling;
