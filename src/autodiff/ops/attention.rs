//! Fused multi-head scaled dot-product attention (SPEC §4.1 `MHSA`, §17 point 11).
//!
//! Input is the packed projection `qkv: [B, L, 3D]` (columns `[Q | K | V]`, each split into `n_h`
//! heads of width `d_h = D/n_h`); output is the head-merged `[A_1 V_1 | … | A_{n_h} V_{n_h}]` of shape
//! `[B, L, D]`, where `A_h = softmax_row(Q_h K_hᵀ / √d_h)`. Heads are read and written through
//! strided views, so there are no head split/merge copies; the per-head GEMMs run on one thread
//! each, in parallel over the batch (each output element is written by exactly one task, so results
//! do not depend on the thread count). The attention probabilities are kept for the backward pass.

use super::matmul::gemm_once;
use crate::float::Float;
use ndarray::{Array2, Array3, Array4, ArrayView3, ArrayView4, Axis, s};
use rayon::prelude::*;

/// Forward: returns `(out [B, L, D], probs [B, n_h, L, L])`.
pub fn attention<T: Float>(qkv: ArrayView3<T>, heads: usize) -> (Array3<T>, Array4<T>) {
    let (b, l, d3) = qkv.dim();
    assert!(d3 % 3 == 0, "attention: last axis must be 3·D, got {d3}");
    let d = d3 / 3;
    assert!(
        heads > 0 && d % heads == 0,
        "attention: D = {d} not divisible by {heads} heads"
    );
    let dh = d / heads;
    let scale = T::of(1.0 / (dh as f64).sqrt());
    let mut out = Array3::<T>::zeros((b, l, d));
    let mut probs = Array4::<T>::zeros((b, heads, l, l));
    let tasks: Vec<_> = out
        .outer_iter_mut()
        .zip(probs.outer_iter_mut())
        .enumerate()
        .collect();
    tasks.into_par_iter().for_each(|(bi, (mut ob, mut pb))| {
        let x = qkv.index_axis(Axis(0), bi);
        for h in 0..heads {
            let c = h * dh;
            let q = x.slice(s![.., c..c + dh]);
            let k = x.slice(s![.., d + c..d + c + dh]);
            let v = x.slice(s![.., 2 * d + c..2 * d + c + dh]);
            let mut p = pb.index_axis_mut(Axis(0), h);
            gemm_once(scale, q, k.t(), T::zero(), p.view_mut());
            for mut row in p.rows_mut() {
                let r = row.as_slice_mut().expect("contiguous row");
                let m = r.iter().copied().fold(T::neg_infinity(), T::max);
                let mut sum = T::zero();
                for e in r.iter_mut() {
                    *e = (*e - m).exp();
                    sum = sum + *e;
                }
                let inv = T::one() / sum;
                for e in r.iter_mut() {
                    *e = *e * inv;
                }
            }
            gemm_once(
                T::one(),
                p.view(),
                v,
                T::zero(),
                ob.slice_mut(s![.., c..c + dh]),
            );
        }
    });
    (out, probs)
}

/// Backward: `∂qkv` from `g = ∂out [B, L, D]`, the input and the saved probabilities.
/// Per head: `∂V = Aᵀ G`, `∂A = G Vᵀ`, `∂S = A ⊙ (∂A − rowsum(∂A ⊙ A))`,
/// `∂Q = ∂S K / √d_h`, `∂K = ∂Sᵀ Q / √d_h`.
pub fn attention_backward<T: Float>(
    g: ArrayView3<T>,
    qkv: ArrayView3<T>,
    probs: ArrayView4<T>,
) -> Array3<T> {
    let (b, l, d3) = qkv.dim();
    let d = d3 / 3;
    let heads = probs.dim().1;
    let dh = d / heads;
    let scale = T::of(1.0 / (dh as f64).sqrt());
    let mut dqkv = Array3::<T>::zeros((b, l, d3));
    let tasks: Vec<_> = dqkv.outer_iter_mut().enumerate().collect();
    tasks.into_par_iter().for_each(|(bi, mut db)| {
        let x = qkv.index_axis(Axis(0), bi);
        let gb = g.index_axis(Axis(0), bi);
        let mut ds = Array2::<T>::zeros((l, l));
        for h in 0..heads {
            let c = h * dh;
            let q = x.slice(s![.., c..c + dh]);
            let k = x.slice(s![.., d + c..d + c + dh]);
            let v = x.slice(s![.., 2 * d + c..2 * d + c + dh]);
            let p = probs.slice(s![bi, h, .., ..]);
            let go = gb.slice(s![.., c..c + dh]);
            // ∂V = Aᵀ G
            gemm_once(
                T::one(),
                p.t(),
                go,
                T::zero(),
                db.slice_mut(s![.., 2 * d + c..2 * d + c + dh]),
            );
            // ∂A = G Vᵀ, then the softmax backward in place.
            gemm_once(T::one(), go, v.t(), T::zero(), ds.view_mut());
            for (mut dr, pr) in ds.rows_mut().into_iter().zip(p.rows()) {
                let dr = dr.as_slice_mut().expect("contiguous row");
                let dot = dr
                    .iter()
                    .zip(pr.iter())
                    .fold(T::zero(), |a, (&x, &y)| a + x * y);
                for (e, &pv) in dr.iter_mut().zip(pr.iter()) {
                    *e = pv * (*e - dot);
                }
            }
            gemm_once(
                scale,
                ds.view(),
                k,
                T::zero(),
                db.slice_mut(s![.., c..c + dh]),
            );
            gemm_once(
                scale,
                ds.t(),
                q,
                T::zero(),
                db.slice_mut(s![.., d + c..d + c + dh]),
            );
        }
    });
    dqkv
}
