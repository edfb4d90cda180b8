//! Generic linear algebra and numerics, plain f64 and no tape, on which Module II and the
//! baselines are built; nothing here knows about images or clusters of genes:
//!
//! * [`special`] — `lnΓ`, ψ, ψ₁, `ln x − ψ(x)` (method §16);
//! * [`cholesky`] — small SPD factorisations with the jitter rule, triangular solves (§16);
//! * [`eigen`] — cyclic Jacobi, Lanczos with full re-orthogonalisation, Sturm bisection;
//! * [`sparse`] — compressed sparse rows;
//! * [`kmeans`] — k-means++ from a named stream + Lloyd with re-seeding (§6.5);
//! * [`pca`] — randomized PCA.
//!
//! Every parallel loop runs over fixed chunks (or independent components) and combines in a fixed
//! order, so all outputs are bit-identical for any number of rayon threads.

pub mod cholesky;
pub mod eigen;
pub mod kmeans;
pub mod pca;
pub mod sparse;
pub mod special;
