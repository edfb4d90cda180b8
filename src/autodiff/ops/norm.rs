//! Normalisations: LayerNorm (method §4.1, §17 point 5), BatchNorm in train mode (method §5, §17
//! point 6; eval mode is an affine map of constants, built from elementary ops) and L2 row
//! normalisation (method §4.3, §17 point 7).
//!
//! In f32 on an AVX2/AVX-512 CPU, LayerNorm runs the vectorised rows of [`super::fast32`]
//! instead ([`op_norm`]; f64 never goes there).

use super::fast32::op_norm;
use super::par;
use crate::float::Float;
use ndarray::{Array1, ArrayD};
use rayon::prelude::*;

/// What LayerNorm's backward needs besides its input: per row the mean and `1/sqrt(var + eps)`.
/// The backward pass recomputes `x̂ = (x − mean)·rstd` with the forward's operations (same bits)
/// instead of keeping a second array of the input's size on the tape.
#[derive(Clone, Debug)]
pub struct LayerNormSaved<T> {
    pub mean: Vec<T>,
    pub rstd: Vec<T>,
}

/// Row `r`'s normalised input `x̂_rj = (x_rj − mean_r)·rstd_r`, the forward's formula.
#[inline(always)]
fn xhat_at<T: Float>(xs: &[T], saved: &LayerNormSaved<T>, w: usize, r: usize, j: usize) -> T {
    (xs[r * w + j] - saved.mean[r]) * saved.rstd[r]
}

/// `y = γ ⊙ (x − x̄)/sqrt(var(x) + eps) + β` over the last axis (biased variance).
pub fn layer_norm<T: Float>(
    x: &ArrayD<T>,
    gamma: &ArrayD<T>,
    beta: &ArrayD<T>,
    eps: T,
) -> (ArrayD<T>, LayerNormSaved<T>) {
    if let Some((y, mean, rstd)) = op_norm::layer_norm(x, gamma, beta, eps) {
        return (y, LayerNormSaved { mean, rstd });
    }
    let w = *x.shape().last().expect("layer norm needs an axis");
    let xs = par::std_slice(x);
    let (gs, bs) = (par::std_slice(gamma), par::std_slice(beta));
    let rows = xs.len() / w.max(1);
    let wt = T::of(w as f64);
    let chunk_rows = (par::CHUNK / w.max(1)).max(1);
    let (mut mean, mut rstd) = (Vec::new(), Vec::new());
    // SAFETY (the three buffers): every row of every chunk writes its `y`, `mean` and `rstd`
    // entries.
    let y = unsafe {
        par::filled(xs.len(), |y: &mut [T]| {
            mean = par::filled(rows, |mean: &mut [T]| {
                rstd = par::filled(rows, |rstd: &mut [T]| {
                    layer_norm_chunks(&xs, &gs, &bs, eps, wt, w, chunk_rows, y, mean, rstd)
                })
            })
        })
    };
    (
        ArrayD::from_shape_vec(x.raw_dim(), y).expect("shape"),
        LayerNormSaved { mean, rstd },
    )
}

/// LayerNorm over fixed chunks of `chunk_rows` rows, writing every element of `y`, `mean` and
/// `rstd`.
#[allow(clippy::too_many_arguments)]
fn layer_norm_chunks<T: Float>(
    xs: &[T],
    gs: &[T],
    bs: &[T],
    eps: T,
    wt: T,
    w: usize,
    chunk_rows: usize,
    y: &mut [T],
    mean: &mut [T],
    rstd: &mut [T],
) {
    y.par_chunks_mut(chunk_rows * w)
        .zip(mean.par_chunks_mut(chunk_rows))
        .zip(rstd.par_chunks_mut(chunk_rows))
        .enumerate()
        .for_each(|(ci, ((yc, mc), rc))| {
            for (r, rs) in rc.iter_mut().enumerate() {
                let off = (ci * chunk_rows + r) * w;
                let xr = &xs[off..off + w];
                let mean = xr.iter().fold(T::zero(), |a, &v| a + v) / wt;
                let var = xr
                    .iter()
                    .fold(T::zero(), |a, &v| a + (v - mean) * (v - mean))
                    / wt;
                let s = T::one() / (var + eps).sqrt();
                *rs = s;
                mc[r] = mean;
                for j in 0..w {
                    let h = (xr[j] - mean) * s;
                    yc[r * w + j] = h * gs[j] + bs[j];
                }
            }
        });
}

/// Column sums of a `[rows, w]` buffer in fixed row chunks, combined in chunk order.
fn column_sums<T: Float>(rows_buf: &[T], w: usize, f: impl Fn(usize, usize) -> T + Sync) -> Vec<T> {
    let rows = rows_buf.len() / w.max(1);
    const R: usize = 256;
    let chunks: Vec<usize> = (0..rows).step_by(R).collect();
    let partial: Vec<Vec<T>> = chunks
        .par_iter()
        .map(|&r0| {
            let mut acc = vec![T::zero(); w];
            for r in r0..(r0 + R).min(rows) {
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = *a + f(r, j);
                }
            }
            acc
        })
        .collect();
    let mut out = vec![T::zero(); w];
    for p in &partial {
        for (o, &v) in out.iter_mut().zip(p) {
            *o = *o + v;
        }
    }
    out
}

/// LayerNorm backward: `(∂x, ∂γ, ∂β)`.
pub fn layer_norm_backward<T: Float>(
    g: &ArrayD<T>,
    x: &ArrayD<T>,
    gamma: &ArrayD<T>,
    saved: &LayerNormSaved<T>,
) -> (ArrayD<T>, ArrayD<T>, ArrayD<T>) {
    let w = *g.shape().last().expect("axis");
    assert_eq!(
        g.shape(),
        x.shape(),
        "layer norm backward: gradient and input shapes"
    );
    if let Some(fast) = op_norm::layer_norm_backward(g, x, gamma, (&saved.mean, &saved.rstd)) {
        return fast;
    }
    let (gs, xs, gm) = (par::std_slice(g), par::std_slice(x), par::std_slice(gamma));
    let wt = T::of(w as f64);
    let chunk_rows = (par::CHUNK / w.max(1)).max(1);
    let hat = |r: usize, j: usize| xhat_at(&xs, saved, w, r, j);
    // SAFETY: every row of every chunk writes its `∂x` entries.
    let dx = unsafe {
        par::filled(gs.len(), |dx: &mut [T]| {
            dx.par_chunks_mut(chunk_rows * w)
                .enumerate()
                .for_each(|(ci, dc)| {
                    for (r, dr) in dc.chunks_mut(w).enumerate() {
                        let row = ci * chunk_rows + r;
                        let off = row * w;
                        let gr = &gs[off..off + w];
                        let mut s1 = T::zero();
                        let mut s2 = T::zero();
                        for j in 0..w {
                            let d = gr[j] * gm[j];
                            s1 = s1 + d;
                            s2 = s2 + d * hat(row, j);
                        }
                        let (m1, m2) = (s1 / wt, s2 / wt);
                        for j in 0..w {
                            dr[j] = saved.rstd[row] * (gr[j] * gm[j] - m1 - hat(row, j) * m2);
                        }
                    }
                });
        })
    };
    let dgamma = column_sums(&gs, w, |r, j| gs[r * w + j] * hat(r, j));
    let dbeta = column_sums(&gs, w, |r, j| gs[r * w + j]);
    (
        ArrayD::from_shape_vec(g.raw_dim(), dx).expect("shape"),
        ArrayD::from_shape_vec(gamma.raw_dim(), dgamma).expect("shape"),
        ArrayD::from_shape_vec(gamma.raw_dim(), dbeta).expect("shape"),
    )
}

/// What train-mode BatchNorm's backward (and the running-statistics update) needs.
#[derive(Clone, Debug)]
pub struct BatchNormSaved<T> {
    pub xhat: ArrayD<T>,
    pub rstd: Vec<T>,
    /// Batch mean per feature.
    pub mean: Array1<T>,
    /// Biased batch variance per feature.
    pub var: Array1<T>,
}

/// Train-mode BatchNorm over the rows of `x: [n, c]`: batch mean and biased variance per column.
pub fn batch_norm_train<T: Float>(
    x: &ArrayD<T>,
    gamma: &ArrayD<T>,
    beta: &ArrayD<T>,
    eps: T,
) -> (ArrayD<T>, BatchNormSaved<T>) {
    assert_eq!(x.ndim(), 2, "batch norm input must be [n, c]");
    let (n, c) = (x.shape()[0], x.shape()[1]);
    let xs = par::std_slice(x);
    let nt = T::of(n as f64);
    let mean: Vec<T> = column_sums(&xs, c, |r, j| xs[r * c + j])
        .into_iter()
        .map(|s| s / nt)
        .collect();
    let var: Vec<T> = column_sums(&xs, c, |r, j| {
        let d = xs[r * c + j] - mean[j];
        d * d
    })
    .into_iter()
    .map(|s| s / nt)
    .collect();
    let rstd: Vec<T> = var.iter().map(|&v| T::one() / (v + eps).sqrt()).collect();
    let (gs, bs) = (par::std_slice(gamma), par::std_slice(beta));
    let mut xhat = vec![T::zero(); xs.len()];
    let mut y = vec![T::zero(); xs.len()];
    for r in 0..n {
        for j in 0..c {
            let h = (xs[r * c + j] - mean[j]) * rstd[j];
            xhat[r * c + j] = h;
            y[r * c + j] = gs[j] * h + bs[j];
        }
    }
    let saved = BatchNormSaved {
        xhat: ArrayD::from_shape_vec(x.raw_dim(), xhat).expect("shape"),
        rstd,
        mean: Array1::from(mean),
        var: Array1::from(var),
    };
    (
        ArrayD::from_shape_vec(x.raw_dim(), y).expect("shape"),
        saved,
    )
}

/// Train-mode BatchNorm backward (the batch coupling included): `(∂x, ∂γ, ∂β)`.
pub fn batch_norm_train_backward<T: Float>(
    g: &ArrayD<T>,
    gamma: &ArrayD<T>,
    saved: &BatchNormSaved<T>,
) -> (ArrayD<T>, ArrayD<T>, ArrayD<T>) {
    let (n, c) = (g.shape()[0], g.shape()[1]);
    let (gs, hs, gm) = (
        par::std_slice(g),
        par::std_slice(&saved.xhat),
        par::std_slice(gamma),
    );
    let dbeta = column_sums(&gs, c, |r, j| gs[r * c + j]);
    let dgamma = column_sums(&gs, c, |r, j| gs[r * c + j] * hs[r * c + j]);
    let nt = T::of(n as f64);
    let mut dx = vec![T::zero(); gs.len()];
    for r in 0..n {
        for j in 0..c {
            // ∂x = γ·rstd/n · (n·g − Σg − x̂·Σ(g·x̂))
            dx[r * c + j] = gm[j] * saved.rstd[j] / nt
                * (nt * gs[r * c + j] - dbeta[j] - hs[r * c + j] * dgamma[j]);
        }
    }
    (
        ArrayD::from_shape_vec(g.raw_dim(), dx).expect("shape"),
        ArrayD::from_shape_vec(gamma.raw_dim(), dgamma).expect("shape"),
        ArrayD::from_shape_vec(gamma.raw_dim(), dbeta).expect("shape"),
    )
}

/// `y = x / max(‖x‖, eps)` per row (last axis). Returns `y` and the row norms.
pub fn l2_normalize<T: Float>(x: &ArrayD<T>, eps: T) -> (ArrayD<T>, Vec<T>) {
    let w = *x.shape().last().expect("axis");
    let xs = par::std_slice(x);
    let rows = xs.len() / w.max(1);
    let norms: Vec<T> = (0..rows)
        .map(|r| {
            xs[r * w..(r + 1) * w]
                .iter()
                .fold(T::zero(), |a, &v| a + v * v)
                .sqrt()
        })
        .collect();
    let mut y = vec![T::zero(); xs.len()];
    for r in 0..rows {
        let d = norms[r].max(eps);
        for j in 0..w {
            y[r * w + j] = xs[r * w + j] / d;
        }
    }
    (
        ArrayD::from_shape_vec(x.raw_dim(), y).expect("shape"),
        norms,
    )
}

/// L2-normalisation backward: `(g − y (g·y)) / ‖x‖` where `‖x‖ > eps`, `g / eps` on the clamp.
pub fn l2_normalize_backward<T: Float>(
    g: &ArrayD<T>,
    y: &ArrayD<T>,
    norms: &[T],
    eps: T,
) -> ArrayD<T> {
    let w = *y.shape().last().expect("axis");
    let (gs, ys) = (par::std_slice(g), par::std_slice(y));
    let mut dx = vec![T::zero(); gs.len()];
    for (r, &nr) in norms.iter().enumerate() {
        let (gr, yr) = (&gs[r * w..(r + 1) * w], &ys[r * w..(r + 1) * w]);
        if nr > eps {
            let dot = gr.iter().zip(yr).fold(T::zero(), |a, (&g, &y)| a + g * y);
            for j in 0..w {
                dx[r * w + j] = (gr[j] - yr[j] * dot) / nr;
            }
        } else {
            for j in 0..w {
                dx[r * w + j] = gr[j] / eps;
            }
        }
    }
    ArrayD::from_shape_vec(y.raw_dim(), dx).expect("shape")
}
