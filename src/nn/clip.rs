//! Global gradient-norm clipping with PyTorch `clip_grad_norm_` semantics (method §3.4).

use crate::float::Float;
use ndarray::ArrayD;

/// Clip a list of gradients by their global L2 norm: `‖g‖ = sqrt(Σ_tensors Σ_elements g²)`,
/// `c = max_norm / (‖g‖ + 1e-6)`, and every gradient is multiplied by `c` if `c < 1` (method §3.4
/// step 2, before the coupled weight decay). Returns the norm before clipping.
///
/// The sum of squares is accumulated in f64, sequentially in tensor order then element order
/// (row-major), so the result is independent of the thread count.
pub fn clip_grad_norm<T: Float>(grads: &mut [ArrayD<T>], max_norm: f64) -> f64 {
    let total = global_norm(grads);
    let c = max_norm / (total + 1e-6);
    if c < 1.0 {
        let c = T::of(c);
        for g in grads.iter_mut() {
            g.mapv_inplace(|x| x * c);
        }
    }
    total
}

/// `sqrt(Σ g²)` over all elements of all tensors, accumulated in f64 in a fixed order.
pub fn global_norm<T: Float>(grads: &[ArrayD<T>]) -> f64 {
    let mut s = 0.0f64;
    for g in grads {
        for &x in g.iter() {
            let x = x.f64();
            s += x * x;
        }
    }
    s.sqrt()
}
