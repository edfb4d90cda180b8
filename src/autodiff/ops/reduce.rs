//! Sums and means over an axis or over everything (SPEC §17 point 1). Sums run in index order
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

/// Sum of all elements as a 0-d tensor (sequential, index order).
pub fn sum_all<T: Float>(x: &ArrayD<T>) -> ArrayD<T> {
    let mut acc = T::zero();
    for &v in x.iter() {
        acc = acc + v;
    }
    ArrayD::from_elem(IxDyn(&[]), acc)
}

/// Backward of [`sum_all`]: every input element gets the scalar gradient.
pub fn sum_all_backward<T: Float>(g: &ArrayD<T>, in_shape: &[usize]) -> ArrayD<T> {
    let v = *g.iter().next().expect("scalar gradient");
    ArrayD::from_elem(IxDyn(in_shape), v)
}
