//! Layout ops (method §17 point 1): reshape, permute, concatenate, slice, row gather (token selection
//! and unshuffle) and its adjoint, scatter-add (edge aggregation).

use crate::float::Float;
use ndarray::{ArrayD, Axis, IxDyn, Slice};
use rayon::prelude::*;

/// Reshape (row-major); a contiguous input is copied in one block, any other in logical order.
pub fn reshape<T: Float>(x: &ArrayD<T>, shape: &[usize]) -> ArrayD<T> {
    let v: Vec<T> = match x.as_slice() {
        Some(s) => s.to_vec(),
        None => x.iter().copied().collect(),
    };
    ArrayD::from_shape_vec(IxDyn(shape), v).expect("reshape element count checked by the tape")
}

/// Permute axes (result in standard layout).
pub fn permute<T: Float>(x: &ArrayD<T>, axes: &[usize]) -> ArrayD<T> {
    x.view()
        .permuted_axes(IxDyn(axes))
        .as_standard_layout()
        .into_owned()
}

/// The inverse permutation.
pub fn inverse_permutation(axes: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; axes.len()];
    for (i, &a) in axes.iter().enumerate() {
        inv[a] = i;
    }
    inv
}

/// Concatenate along `axis`.
pub fn concat<T: Float>(xs: &[&ArrayD<T>], axis: usize) -> ArrayD<T> {
    let views: Vec<_> = xs.iter().map(|x| x.view()).collect();
    ndarray::concatenate(Axis(axis), &views).expect("concat shapes checked by the tape")
}

/// `x[start..end]` along `axis`.
pub fn slice<T: Float>(x: &ArrayD<T>, axis: usize, start: usize, end: usize) -> ArrayD<T> {
    x.slice_axis(Axis(axis), Slice::from(start..end)).to_owned()
}

/// Backward of [`slice`]: zeros with `g` placed at `start..end`.
pub fn slice_backward<T: Float>(
    g: &ArrayD<T>,
    in_shape: &[usize],
    axis: usize,
    start: usize,
    end: usize,
) -> ArrayD<T> {
    let mut out = ArrayD::<T>::zeros(IxDyn(in_shape));
    out.slice_axis_mut(Axis(axis), Slice::from(start..end))
        .assign(g);
    out
}

/// Rows `idx` of `x` viewed as `[n, rest…]`: out`[i] = x[idx[i]]`.
pub fn gather_rows<T: Float>(x: &ArrayD<T>, idx: &[usize]) -> ArrayD<T> {
    let n = x.shape()[0];
    let width: usize = x.shape()[1..].iter().product();
    let xs = super::par::std_slice(x);
    let mut out = vec![T::zero(); idx.len() * width];
    if width > 0 {
        out.par_chunks_mut(width)
            .zip(idx.par_iter())
            .for_each(|(o, &r)| {
                assert!(r < n, "gather index {r} out of range for {n} rows");
                o.copy_from_slice(&xs[r * width..(r + 1) * width]);
            });
    }
    let mut shape = x.shape().to_vec();
    shape[0] = idx.len();
    ArrayD::from_shape_vec(IxDyn(&shape), out).expect("gather shape")
}

/// out`[idx[i]] += x[i]` into `n` rows. Sequential in `i` order, so sums are deterministic; this
/// is the adjoint of [`gather_rows`] and the edge aggregation of message passing.
pub fn scatter_add_rows<T: Float>(x: &ArrayD<T>, idx: &[usize], n: usize) -> ArrayD<T> {
    let width: usize = x.shape()[1..].iter().product();
    let xs = super::par::std_slice(x);
    let mut out = vec![T::zero(); n * width];
    for (i, &r) in idx.iter().enumerate() {
        assert!(r < n, "scatter index {r} out of range for {n} rows");
        let dst = &mut out[r * width..(r + 1) * width];
        for (d, &s) in dst.iter_mut().zip(&xs[i * width..(i + 1) * width]) {
            *d = *d + s;
        }
    }
    let mut shape = x.shape().to_vec();
    shape[0] = n;
    ArrayD::from_shape_vec(IxDyn(&shape), out).expect("scatter shape")
}
