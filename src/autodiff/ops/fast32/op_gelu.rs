//! The f32 path of the exact GELU ([`crate::autodiff::ops::elementwise::Unary::Gelu`]): the
//! bridge from the op's generic `T` arrays to the vectorised [`super::gelu_slice`] and
//! [`super::gelu_backward_slice`], over fixed chunks of [`par::CHUNK`] elements.

use super::super::par;
use crate::autodiff::ops::fast32;
use crate::float::Float;
use ndarray::ArrayD;
use rayon::prelude::*;

/// The vectorised f32 GELU ([`fast32::gelu`]): `gelu(x)`, or `g ⊙ gelu'(x)` when `g` is given;
/// `None` for f64 or without a fast variant (the generic code then runs).
pub fn gelu<T: Float>(x: &ArrayD<T>, g: Option<&ArrayD<T>>) -> Option<ArrayD<T>> {
    T::as_f32(&[])?;
    if fast32::level() == fast32::Level::None {
        return None;
    }
    let xs = par::std_slice(x);
    let gs = g.map(par::std_slice);
    // SAFETY: the GELU kernels write every element of each chunk.
    let out = unsafe {
        par::filled(xs.len(), |out: &mut [T]| {
            out.par_chunks_mut(par::CHUNK)
                .enumerate()
                .for_each(|(ci, o)| {
                    let r = ci * par::CHUNK..ci * par::CHUNK + o.len();
                    let xi = T::as_f32(&xs[r.clone()]).expect("f32");
                    let o = T::as_f32_mut(o).expect("f32");
                    let done = match &gs {
                        None => fast32::gelu_slice(xi, o),
                        Some(gs) => {
                            fast32::gelu_backward_slice(T::as_f32(&gs[r]).expect("f32"), xi, o)
                        }
                    };
                    assert!(done.is_some(), "fast GELU unavailable after the check");
                })
        })
    };
    Some(ArrayD::from_shape_vec(x.raw_dim(), out).expect("shape preserved"))
}
