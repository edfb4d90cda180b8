//! `L_Lap`, the graph Laplacian regulariser of the embeddings on the seeding similarity (method §8.2,
//! Eq. 17).

use crate::autodiff::{Tape, Var};
use crate::float::Float;
use crate::linalg::sparse::Csr;
use ndarray::{ArrayD, IxDyn};
use std::sync::Arc;

/// `L_Lap = (λ/N) tr(Zᵀ L_sym Z) = (λ/(2N)) Σ_ij S_ij ‖z_i/√d_i − z_j/√d_j‖²` (method Eq. 17),
/// summed over the stored (symmetric) entries of `S`; isolated nodes contribute nothing.
pub fn laplacian_loss<T: Float>(t: &mut Tape<T>, z: Var, s: &Csr, lambda: f64) -> Var {
    let n = t.shape(z)[0];
    assert_eq!(
        n, s.n_rows,
        "similarity size must equal the number of embeddings"
    );
    let deg: Vec<f64> = (0..n)
        .map(|i| s.values[s.indptr[i]..s.indptr[i + 1]].iter().sum())
        .collect();
    let inv_sqrt: Vec<T> = deg
        .iter()
        .map(|&d| T::of(if d > 0.0 { 1.0 / d.sqrt() } else { 0.0 }))
        .collect();
    let scale = t.constant(ArrayD::from_shape_vec(IxDyn(&[n, 1]), inv_sqrt).expect("col"));
    let y = t.mul(z, scale);
    let mut rows = Vec::with_capacity(s.indices.len());
    for i in 0..n {
        rows.extend(std::iter::repeat_n(i, s.indptr[i + 1] - s.indptr[i]));
    }
    let yi = t.gather_rows(y, Arc::from(rows));
    let yj = t.gather_rows(y, Arc::from(s.indices.clone()));
    let diff = t.sub(yi, yj);
    let sq = t.square(diff);
    let per_edge = t.sum_axis(sq, 1, true); // [E, 1]
    let w = t.constant(
        ArrayD::from_shape_vec(
            IxDyn(&[s.values.len(), 1]),
            s.values.iter().map(|&v| T::of(v)).collect(),
        )
        .expect("w"),
    );
    let weighted = t.mul(per_edge, w);
    let total = t.sum(weighted);
    t.scale(total, lambda / (2.0 * n as f64))
}
