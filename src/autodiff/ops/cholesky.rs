//! Cholesky-based pieces of the Student-t density (method §6.1, §16, §17 point 8): the lower
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
            // Row i of X, all columns at once (contiguous): every element still takes
            // `((b − L_i0 x_0) − L_i1 x_1) − …` in j order, then the division.
            for i in 0..d {
                let (done, rest) = xk.split_at_mut(i * m);
                let xi = &mut rest[..m];
                xi.copy_from_slice(&bk[i * m..(i + 1) * m]);
                for j in 0..i {
                    let a = lk[i * d + j];
                    for (s, &xj) in xi.iter_mut().zip(&done[j * m..(j + 1) * m]) {
                        *s = *s - a * xj;
                    }
                }
                let lii = lk[i * d + i];
                xi.iter_mut().for_each(|s| *s = *s / lii);
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
            // Row i of Y, all columns at once, in the same per-element order as a column-by-column
            // substitution (j ascending from i + 1, then the division).
            for i in (0..d).rev() {
                let (head, done) = yk.split_at_mut((i + 1) * m);
                let yi = &mut head[i * m..];
                yi.copy_from_slice(&gk[i * m..(i + 1) * m]);
                for j in i + 1..d {
                    let a = lk[j * d + i];
                    let yj = &done[(j - i - 1) * m..(j - i) * m];
                    for (s, &v) in yi.iter_mut().zip(yj) {
                        *s = *s - a * v;
                    }
                }
                let lii = lk[i * d + i];
                yi.iter_mut().for_each(|s| *s = *s / lii);
            }
        });
    y
}

/// `Σ_c a_c b_c` in 16 fixed lanes (lane `u` takes `c ≡ u mod 16` in order, lanes added in index
/// order): independent of the thread count, and written so that it vectorises.
fn dot_lanes<T: Float>(a: &[T], b: &[T]) -> T {
    const L: usize = 16;
    let mut acc = [T::zero(); L];
    let full = a.len() / L * L;
    for (ca, cb) in a[..full].chunks_exact(L).zip(b[..full].chunks_exact(L)) {
        for u in 0..L {
            acc[u] = acc[u] + ca[u] * cb[u];
        }
    }
    for (u, (&x, &y)) in a[full..].iter().zip(&b[full..]).enumerate() {
        acc[u] = acc[u] + x * y;
    }
    acc.iter().fold(T::zero(), |s, &v| s + v)
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
    // The f32 path sums each dot product in 16 fixed lanes (vectorised); f64 keeps the sequential
    // sum of the oracle.
    let lanes = T::as_f32(&[]).is_some();
    let dl = need.0.then(|| {
        let mut dl = vec![T::zero(); batch * d * d];
        dl.par_chunks_mut((d * d).max(1))
            .enumerate()
            .for_each(|(k, dlk)| {
                for i in 0..d {
                    let dbi = &db[k * d * m + i * m..k * d * m + (i + 1) * m];
                    for j in 0..=i {
                        let xj = &xs[k * d * m + j * m..k * d * m + (j + 1) * m];
                        let s = if lanes {
                            dot_lanes(dbi, xj)
                        } else {
                            dbi.iter().zip(xj).fold(T::zero(), |s, (&a, &b)| s + a * b)
                        };
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
