//! Fused multi-head scaled dot-product attention (method §4.1 `MHSA`, §17 point 11).
//!
//! Input is the packed projection `qkv: [B, L, 3D]` (columns `[Q | K | V]`, each split into `n_h`
//! heads of width `d_h = D/n_h`); output is the head-merged `[A_1 V_1 | … | A_{n_h} V_{n_h}]` of shape
//! `[B, L, D]`, where `A_h = softmax_row(Q_h K_hᵀ / √d_h)`. Heads are read and written through
//! strided views, so there are no head split/merge copies; the per-head GEMMs run on one thread
//! each, in parallel over the batch (each output element is written by exactly one task, so results
//! do not depend on the thread count). The attention probabilities are kept for the backward pass
//! (only when asked for: a no-grad pass does not store them).
//!
//! In f32 with head width 8, 16 or 32 on an AVX2/AVX-512 CPU, both passes run the fused row-block
//! kernels of [`super::fast32`] instead (same function; f32 rounding differs, f64 never goes
//! there): they keep one log-sum-exp per query row instead of the `[B, n_h, L, L]` probabilities
//! and recompute the probabilities in the backward pass. [`AttentionSaved`] names which of the two
//! the forward kept, and the backward takes the path that matches it.

use super::fast32::op_attention;
use super::matmul::gemm_once;
use crate::float::Float;
use ndarray::{Array2, Array3, Array4, ArrayView3, Axis, s};
use rayon::prelude::*;

/// What [`attention`] keeps for [`attention_backward`]: which tensor depends on the path that ran
/// the forward pass, and the backward pass runs the same path.
#[derive(Clone, Debug)]
pub enum AttentionSaved<T> {
    /// Nothing (the forward was told not to keep anything: no gradient flows through it).
    Nothing,
    /// Generic path: the attention probabilities `A` `[B, n_h, L, L]`.
    Probs(Array4<T>),
    /// Fused f32 path: the row log-sum-exps `lse_i = m_i + ln Σ_j exp(s_ij − m_i)` `[B, n_h, L]`
    /// of the scaled scores, from which the backward pass recomputes `A`.
    RowLse(Array3<T>),
}

/// Forward: returns `(out [B, L, D], saved)`, with `saved` (only if `keep`, for the backward
/// pass) the probabilities `[B, n_h, L, L]`, or on the fused f32 path the row log-sum-exps
/// `[B, n_h, L]` from which the backward pass recomputes them.
pub fn attention<T: Float>(
    qkv: ArrayView3<T>,
    heads: usize,
    keep: bool,
) -> (Array3<T>, AttentionSaved<T>) {
    let keep_probs = keep;
    let (b, l, d3) = qkv.dim();
    assert!(d3 % 3 == 0, "attention: last axis must be 3·D, got {d3}");
    let d = d3 / 3;
    assert!(
        heads > 0 && d % heads == 0,
        "attention: D = {d} not divisible by {heads} heads"
    );
    let dh = d / heads;
    if let Some((out, lse)) = op_attention::forward(qkv, heads, keep) {
        return (
            out,
            lse.map_or(AttentionSaved::Nothing, AttentionSaved::RowLse),
        );
    }
    let scale = T::of(1.0 / (dh as f64).sqrt());
    let mut out = Array3::<T>::zeros((b, l, d));
    // Without `keep_probs`, each image's probabilities live in a per-task scratch instead.
    let mut probs = Array4::<T>::zeros(if keep_probs {
        (b, heads, l, l)
    } else {
        (b, 1, 0, 0)
    });
    let tasks: Vec<_> = out
        .outer_iter_mut()
        .zip(probs.outer_iter_mut())
        .enumerate()
        .collect();
    tasks.into_par_iter().for_each(|(bi, (ob, pb))| {
        let x = qkv.index_axis(Axis(0), bi);
        let mut ob = ob;
        let mut scratch = Array2::<T>::zeros(if keep_probs { (0, 0) } else { (l, l) });
        let mut pb = pb;
        for h in 0..heads {
            let c = h * dh;
            let q = x.slice(s![.., c..c + dh]);
            let k = x.slice(s![.., d + c..d + c + dh]);
            let v = x.slice(s![.., 2 * d + c..2 * d + c + dh]);
            let mut p = if keep_probs {
                pb.index_axis_mut(Axis(0), h)
            } else {
                scratch.view_mut()
            };
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
    let saved = match keep_probs {
        true => AttentionSaved::Probs(probs),
        false => AttentionSaved::Nothing,
    };
    (out, saved)
}

/// Backward: `∂qkv` from `g = ∂out [B, L, D]`, the input `qkv`, the forward's output `out` and
/// what [`attention`] saved (`heads` heads).
/// Per head: `∂V = Aᵀ G`, `∂A = G Vᵀ`, `∂S = A ⊙ (∂A − rowsum(∂A ⊙ A))`,
/// `∂Q = ∂S K / √d_h`, `∂K = ∂Sᵀ Q / √d_h`.
pub fn attention_backward<T: Float>(
    g: ArrayView3<T>,
    qkv: ArrayView3<T>,
    out: ArrayView3<T>,
    saved: &AttentionSaved<T>,
    heads: usize,
) -> Array3<T> {
    let (b, l, d3) = qkv.dim();
    let d = d3 / 3;
    let dh = d / heads;
    let probs = match saved {
        AttentionSaved::RowLse(lse) => return op_attention::backward(g, qkv, out, lse, heads),
        AttentionSaved::Probs(p) => p,
        AttentionSaved::Nothing => panic!("attention backward: the forward kept nothing"),
    };
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
