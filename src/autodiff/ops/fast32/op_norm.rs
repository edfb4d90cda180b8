//! The f32 path of LayerNorm ([`crate::autodiff::ops::norm`]): the bridge from the op's generic
//! `T` arrays to the vectorised rows [`super::layer_norm_rows`] and
//! [`super::layer_norm_backward_rows`], over the same fixed row chunks as the generic code.
//! Both answer `None` unless `T` is f32 on an AVX2/AVX-512 CPU (then the generic code runs).

use super::super::par;
use crate::autodiff::ops::fast32;
use crate::float::Float;
use ndarray::ArrayD;
use rayon::prelude::*;

/// Whether LayerNorm over width `w` runs the vectorised f32 rows of [`fast32`] (f32 only; the f64
/// oracle keeps the generic code below).
fn use_fast<T: Float>(w: usize) -> bool {
    w > 0 && T::as_f32(&[]).is_some() && fast32::level() != fast32::Level::None
}

/// The f32 view of an f32 slice (only called when [`use_fast`] said `T` is f32).
fn f32s<T: Float>(a: &[T]) -> &[f32] {
    T::as_f32(a).expect("f32")
}

/// LayerNorm forward over the last axis (as [`crate::autodiff::ops::norm::layer_norm`]) with the
/// vectorised rows, per fixed chunk of rows: `(y, mean, rstd)` (per row the mean and
/// `1/sqrt(var + eps)`), or `None` when the rows do not apply.
pub fn layer_norm<T: Float>(
    x: &ArrayD<T>,
    gamma: &ArrayD<T>,
    beta: &ArrayD<T>,
    eps: T,
) -> Option<(ArrayD<T>, Vec<T>, Vec<T>)> {
    let w = *x.shape().last().expect("layer norm needs an axis");
    if !use_fast::<T>(w) {
        return None;
    }
    let xs = par::std_slice(x);
    let (gs, bs) = (par::std_slice(gamma), par::std_slice(beta));
    let rows = xs.len() / w.max(1);
    let chunk_rows = (par::CHUNK / w.max(1)).max(1);
    let f = f32s::<T>;
    let (mut mean, mut rstd) = (Vec::new(), Vec::new());
    // SAFETY (the three buffers): the kernel writes every row's `y`, `mean` and `rstd` entries
    // of every chunk.
    let y = unsafe {
        par::filled(xs.len(), |y: &mut [T]| {
            mean = par::filled(rows, |mean: &mut [T]| {
                rstd = par::filled(rows, |rstd: &mut [T]| {
                    y.par_chunks_mut(chunk_rows * w)
                        .zip(mean.par_chunks_mut(chunk_rows))
                        .zip(rstd.par_chunks_mut(chunk_rows))
                        .enumerate()
                        .for_each(|(ci, ((yc, mc), rc))| {
                            let off = ci * chunk_rows * w;
                            let done = fast32::layer_norm_rows(
                                f(&xs[off..off + yc.len()]),
                                f(&gs),
                                f(&bs),
                                eps.to_f32().expect("f32"),
                                T::as_f32_mut(yc).expect("f32"),
                                T::as_f32_mut(mc).expect("f32"),
                                T::as_f32_mut(rc).expect("f32"),
                            );
                            assert!(done.is_some(), "fast LayerNorm unavailable after the check");
                        })
                })
            })
        })
    };
    Some((
        ArrayD::from_shape_vec(x.raw_dim(), y).expect("shape"),
        mean,
        rstd,
    ))
}

/// The f32 LayerNorm backward of [`fast32::layer_norm_backward_rows`] from the forward's row
/// `mean` and `rstd`: `(∂x, ∂γ, ∂β)` with `∂x`
/// per fixed chunk of rows and each chunk's partial `∂γ`, `∂β` added in chunk order afterwards
/// (one pass over `g` and `x̂` instead of three); `None` when the rows do not apply.
#[allow(clippy::type_complexity)]
pub fn layer_norm_backward<T: Float>(
    g: &ArrayD<T>,
    x: &ArrayD<T>,
    gamma: &ArrayD<T>,
    (mean, rstd): (&[T], &[T]),
) -> Option<(ArrayD<T>, ArrayD<T>, ArrayD<T>)> {
    let w = *g.shape().last().expect("axis");
    if !use_fast::<T>(w) {
        return None;
    }
    let chunk_rows = (par::CHUNK / w.max(1)).max(1);
    let (gs, xs, gm) = (par::std_slice(g), par::std_slice(x), par::std_slice(gamma));
    let f = f32s::<T>;
    let mut partials: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
    // SAFETY: the kernel writes every `∂x` entry of every row of every chunk.
    let dx = unsafe {
        par::filled(gs.len(), |dx: &mut [T]| {
            dx.par_chunks_mut(chunk_rows * w)
                .enumerate()
                .map(|(ci, dc)| {
                    let (r0, off) = (ci * chunk_rows, ci * chunk_rows * w);
                    let n = dc.len() / w;
                    let (mut dg, mut db) = (vec![0.0f32; w], vec![0.0f32; w]);
                    let done = fast32::layer_norm_backward_rows(
                        f(&gs[off..off + dc.len()]),
                        f(&xs[off..off + dc.len()]),
                        f(&gm),
                        f(&mean[r0..r0 + n]),
                        f(&rstd[r0..r0 + n]),
                        T::as_f32_mut(dc).expect("f32"),
                        &mut dg,
                        &mut db,
                    );
                    assert!(done.is_some(), "fast LayerNorm unavailable after the check");
                    (dg, db)
                })
                .collect_into_vec(&mut partials)
        })
    };
    let (mut dgamma, mut dbeta) = (vec![0.0f32; w], vec![0.0f32; w]);
    for (dg, db) in &partials {
        for j in 0..w {
            dgamma[j] += dg[j];
            dbeta[j] += db[j];
        }
    }
    let to_t = |v: Vec<f32>| v.into_iter().map(|x| T::of(x as f64)).collect::<Vec<T>>();
    Some((
        ArrayD::from_shape_vec(g.raw_dim(), dx).expect("shape"),
        ArrayD::from_shape_vec(gamma.raw_dim(), to_t(dgamma)).expect("shape"),
        ArrayD::from_shape_vec(gamma.raw_dim(), to_t(dbeta)).expect("shape"),
    ))
}
