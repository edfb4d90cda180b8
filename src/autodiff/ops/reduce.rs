//! Sums and means over an axis or over everything (method §17 point 1). Sums run in index order
//! (ndarray's `sum_axis` / sequential iteration), so they are deterministic.

use crate::float::Float;
use ndarray::{ArrayD, Axis, IxDyn};

/// Sum over `axis`, keeping it as size 1 if `keep`.
pub fn sum_axis<T: Float>(x: &ArrayD<T>, axis: usize, keep: bool) -> ArrayD<T> {
    let s = x.sum_axis(Axis(axis));
    if keep { s.insert_axis(Axis(axis)) } else { s }
}

/// Backward of [`sum_axis`]: broadcast `g` back along `axis`.
pub fn sum_axis_backward<T: Float>(
    g: &ArrayD<T>,
    in_shape: &[usize],
    axis: usize,
    keep: bool,
) -> ArrayD<T> {
    let g = if keep {
        g.clone()
    } else {
        g.clone().insert_axis(Axis(axis))
    };
    g.broadcast(IxDyn(in_shape))
        .expect("sum backward broadcast")
        .to_owned()
}

/// Sum of all elements as a 0-d tensor: sequential in index order, accumulated in f64 (exact
/// widening for f32, so a long f32 sum does not drift; identical to a plain sum for f64).
pub fn sum_all<T: Float>(x: &ArrayD<T>) -> ArrayD<T> {
    let mut acc = 0.0f64;
    for &v in x.iter() {
        acc += v.f64();
    }
    ArrayD::from_elem(IxDyn(&[]), T::of(acc))
}

/// Backward of [`sum_all`]: every input element gets the scalar gradient.
pub fn sum_all_backward<T: Float>(g: &ArrayD<T>, in_shape: &[usize]) -> ArrayD<T> {
    let v = *g.iter().next().expect("scalar gradient");
    ArrayD::from_elem(IxDyn(in_shape), v)
}
