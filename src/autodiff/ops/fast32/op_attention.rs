//! The f32 path of the attention op ([`crate::autodiff::ops::attention`]): the bridge from the
//! op's generic `T` arrays to the fused kernels of [`super::attention`], one task per image.
//! [`forward`] and [`backward`] answer `None` / are only called when the kernels apply (f32, a
//! supported head width, an AVX2 or AVX-512 CPU); the op then saves the row log-sum-exps
//! instead of the probabilities.

use super::super::par;
use crate::autodiff::ops::fast32;
use crate::float::Float;
use ndarray::{Array3, ArrayView3};
use rayon::prelude::*;

/// Whether the fused f32 kernels handle this scalar type and head width on this CPU.
fn use_fast<T: Float>(dh: usize) -> bool {
    T::as_f32(&[]).is_some()
        && fast32::attention_supported(dh)
        && fast32::level() != fast32::Level::None
}

/// The f32 fused forward over all images (parallel over images; one task per image), or `None`
/// when the kernels do not apply (then the generic code runs); the saved tensor is the row
/// log-sum-exps `[B, n_h, L]` when `keep`. `qkv` has been checked by the caller (`3D` columns,
/// `heads` dividing `D`).
pub fn forward<T: Float>(
    qkv: ArrayView3<T>,
    heads: usize,
    keep: bool,
) -> Option<(Array3<T>, Option<Array3<T>>)> {
    let (b, l, d3) = qkv.dim();
    let d = d3 / 3;
    if b * l * d == 0 || !use_fast::<T>(d / heads) {
        return None;
    }
    let x = qkv.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    let mut lse = Vec::new();
    // SAFETY: the kernel writes every element of each image's output (and of its `lse` rows when
    // kept, see below).
    let out = unsafe {
        par::filled(b * l * d, |out: &mut [T]| {
            let fill_lse = |lse: &mut [T]| {
                let mut lchunks = lse.chunks_mut((heads * l).max(1));
                let tasks: Vec<_> = out
                    .chunks_mut(l * d)
                    .enumerate()
                    .map(|(i, o)| (i, o, if keep { lchunks.next() } else { None }))
                    .collect();
                tasks.into_par_iter().for_each(|(i, o, s)| {
                    let xi = T::as_f32(&xs[i * l * d3..(i + 1) * l * d3]).expect("f32");
                    let o = T::as_f32_mut(o).expect("f32");
                    let s = s.map(|s| T::as_f32_mut(s).expect("f32"));
                    let done = fast32::attention_forward(xi, l, d, heads, o, s);
                    assert!(
                        done.is_some(),
                        "fused attention kernel unavailable after the check"
                    );
                });
            };
            // SAFETY: with `keep`, every image writes its `[h, L]` log-sum-exps.
            lse = par::filled(if keep { b * heads * l } else { 0 }, fill_lse);
        })
    };
    let out = Array3::from_shape_vec((b, l, d), out).expect("shape");
    let lse = keep.then(|| Array3::from_shape_vec((b, heads, l), lse).expect("shape"));
    Some((out, lse))
}

/// The f32 fused backward over all images (parallel over images; one task per image), from the
/// row log-sum-exps `lse` that [`forward`] saved.
///
/// # Panics
/// If the kernels do not apply (a forward that saved `lse` ran them, on this thread's level).
pub fn backward<T: Float>(
    g: ArrayView3<T>,
    qkv: ArrayView3<T>,
    out: ArrayView3<T>,
    lse: &Array3<T>,
    heads: usize,
) -> Array3<T> {
    let (b, l, d3) = qkv.dim();
    let d = d3 / 3;
    assert_eq!(lse.shape(), &[b, heads, l], "saved row log-sum-exps");
    let (gs, xs, os, ls) = (
        g.as_standard_layout(),
        qkv.as_standard_layout(),
        out.as_standard_layout(),
        lse.as_standard_layout(),
    );
    let (gs, xs, os, ls) = (
        gs.as_slice().expect("standard"),
        xs.as_slice().expect("standard"),
        os.as_slice().expect("standard"),
        ls.as_slice().expect("standard"),
    );
    // SAFETY: the kernel writes every element of each image's `∂qkv`.
    let dqkv = unsafe {
        par::filled(b * l * d3, |dqkv: &mut [T]| {
            attention_backward_images(dqkv, gs, xs, os, ls, l, d, heads)
        })
    };
    Array3::from_shape_vec((b, l, d3), dqkv).expect("shape")
}

/// The per-image fused backward kernels over `dqkv` (every element written).
#[allow(clippy::too_many_arguments)]
fn attention_backward_images<T: Float>(
    dqkv: &mut [T],
    gs: &[T],
    xs: &[T],
    os: &[T],
    ls: &[T],
    l: usize,
    d: usize,
    heads: usize,
) {
    let d3 = 3 * d;
    dqkv.par_chunks_mut(l * d3).enumerate().for_each(|(i, dx)| {
        let done = fast32::attention_backward(
            T::as_f32(&gs[i * l * d..(i + 1) * l * d]).expect("f32"),
            T::as_f32(&xs[i * l * d3..(i + 1) * l * d3]).expect("f32"),
            T::as_f32(&os[i * l * d..(i + 1) * l * d]).expect("f32"),
            T::as_f32(&ls[i * heads * l..(i + 1) * heads * l]).expect("f32"),
            l,
            d,
            heads,
            T::as_f32_mut(dx).expect("f32"),
        );
        assert!(
            done.is_some(),
            "fused attention kernel unavailable after the check"
        );
    });
}
