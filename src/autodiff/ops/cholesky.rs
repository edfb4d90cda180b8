//! Cholesky-based pieces of the Student-t density (SPEC §6.1, §16, §17 point 8): the lower
//! triangular solve `L X = B` and `ln|Σ| = 2 Σ_j ln L_jj`, both batched over components.
//! The Mahalanobis distance `δ = ‖L⁻¹(z − μ)‖²` is composed from these on the tape.

use crate::float::Float;
use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

fn dims(l: &[usize], b: &[usize]) -> (usize, usize, usize) {
    let nd = l.len();
    assert!(nd >= 2 && l[nd - 1] == l[nd - 2], "L must be [.., d, d]");
    assert_eq!(b.len(), nd, "B must have L's rank");
    assert_eq!(&l[..nd - 2], &b[..nd - 2], "batch shapes of L and B differ");
    let d = l[nd - 1];
    assert_eq!(b[nd - 2], d, "B must be [.., d, m]");
    let batch: usize = l[..nd - 2].iter().product();
    (batch, d, b[nd - 1])
}

/// Forward substitution `L X = B` for lower-triangular `L: [.., d, d]`, `B: [.., d, m]`
/// (entries above the diagonal of `L` are ignored).
pub fn tri_solve_lower<T: Float>(l: &ArrayD<T>, b: &ArrayD<T>) -> ArrayD<T> {
    let (batch, d, m) = dims(l.shape(), b.shape());
    let (ls, bs) = (super::par::std_slice(l), super::par::std_slice(b));
    let mut x = vec![T::zero(); bs.len()];
    x.par_chunks_mut((d * m).max(1))
        .enumerate()
        .take(batch)
        .for_each(|(k, xk)| {
            let lk = &ls[k * d * d..(k + 1) * d * d];
            let bk = &bs[k * d * m..(k + 1) * d * m];
            for col in 0..m {
                for i in 0..d {
                    let mut s = bk[i * m + col];
                    for j in 0..i {
                        s = s - lk[i * d + j] * xk[j * m + col];
                    }
                    xk[i * m + col] = s / lk[i * d + i];
                }
            }
        });
    ArrayD::from_shape_vec(IxDyn(b.shape()), x).expect("shape")
}

/// Back substitution `Lᵀ Y = G` (upper-triangular system) with the same layout.
fn tri_solve_lower_transposed<T: Float>(
    l: &[T],
    g: &[T],
    batch: usize,
    d: usize,
    m: usize,
) -> Vec<T> {
    let mut y = vec![T::zero(); g.len()];
    y.par_chunks_mut((d * m).max(1))
        .enumerate()
        .take(batch)
        .for_each(|(k, yk)| {
            let lk = &l[k * d * d..(k + 1) * d * d];
            let gk = &g[k * d * m..(k + 1) * d * m];
            for col in 0..m {
                for i in (0..d).rev() {
                    let mut s = gk[i * m + col];
                    for j in i + 1..d {
                        s = s - lk[j * d + i] * yk[j * m + col];
                    }
                    yk[i * m + col] = s / lk[i * d + i];
                }
            }
        });
    y
}

/// Backward of `X = L⁻¹B`: `∂B = L⁻ᵀ G`, `∂L = −tril(∂B Xᵀ)`.
pub fn tri_solve_lower_backward<T: Float>(
    g: &ArrayD<T>,
    l: &ArrayD<T>,
    x: &ArrayD<T>,
    need: (bool, bool),
) -> (Option<ArrayD<T>>, Option<ArrayD<T>>) {
    let (batch, d, m) = dims(l.shape(), x.shape());
    let (ls, gs, xs) = (
        super::par::std_slice(l),
        super::par::std_slice(g),
        super::par::std_slice(x),
    );
    let db = tri_solve_lower_transposed(&ls, &gs, batch, d, m);
    let dl = need.0.then(|| {
        let mut dl = vec![T::zero(); batch * d * d];
        dl.par_chunks_mut((d * d).max(1))
            .enumerate()
            .for_each(|(k, dlk)| {
                for i in 0..d {
                    for j in 0..=i {
                        let mut s = T::zero();
                        for c in 0..m {
                            s = s + db[k * d * m + i * m + c] * xs[k * d * m + j * m + c];
                        }
                        dlk[i * d + j] = -s;
                    }
                }
            });
        ArrayD::from_shape_vec(IxDyn(l.shape()), dl).expect("shape")
    });
    let db = need
        .1
        .then(|| ArrayD::from_shape_vec(IxDyn(x.shape()), db).expect("shape"));
    (dl, db)
}

/// `ln|Σ| = 2 Σ_j ln L_jj` for each `L: [.., d, d]`; output has the batch shape.
pub fn log_det_chol<T: Float>(l: &ArrayD<T>) -> ArrayD<T> {
    let nd = l.ndim();
    let d = l.shape()[nd - 1];
    let ls = super::par::std_slice(l);
    let batch: usize = l.shape()[..nd - 2].iter().product();
    let out: Vec<T> = (0..batch)
        .map(|k| {
            let mut s = T::zero();
            for j in 0..d {
                s = s + ls[k * d * d + j * d + j].ln();
            }
            s + s
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(&l.shape()[..nd - 2]), out).expect("shape")
}

/// Backward of [`log_det_chol`]: `∂L_jj = 2g / L_jj`, zero off the diagonal.
pub fn log_det_chol_backward<T: Float>(g: &ArrayD<T>, l: &ArrayD<T>) -> ArrayD<T> {
    let nd = l.ndim();
    let d = l.shape()[nd - 1];
    let ls = super::par::std_slice(l);
    let gs = super::par::std_slice(g);
    let mut out = vec![T::zero(); ls.len()];
    for (k, &gk) in gs.iter().enumerate() {
        for j in 0..d {
            let i = k * d * d + j * d + j;
            out[i] = (gk + gk) / ls[i];
        }
    }
    ArrayD::from_shape_vec(IxDyn(l.shape()), out).expect("shape")
}
