//! Benchmarks that print figures (not timed tests): `darlc bench ops` measures the f32 tape's
//! matmul throughput against raw matrixmultiply GEMM on the paper-size ViT shapes (method §0) and the
//! fixed cost of recording one tiny op; `darlc bench scaling` the thread scaling of the Module I
//! step, the GAT epoch and an EM iteration; `darlc bench ingest` the reader on a simulated
//! Visium-size section ([`ingest`]); `darlc bench ssl-step` the paper-size Module I step
//! ([`ssl_step`]). Benchmarks only consume: nothing below imports this folder.

pub mod ingest;
pub mod ops;
pub mod scaling;
pub mod ssl_step;
