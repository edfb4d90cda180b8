//! The affine layer `Y = X W + b` as one op (method §0 row-vector convention): the bias is added row
//! by row right after the GEMM, and its gradient is a column sum over fixed row chunks combined in
//! chunk order, so results are bit-identical on any number of threads.
//!
//! In f32 on an AVX2/AVX-512 CPU, products with at least [`op_linear::FAST_MIN_ROWS`] rows and
//! output widths that are multiples of 16 run the direct kernels of [`super::fast32::gemm`] instead
//! ([`op_linear`]: weights packed once per call, activations read in place, bias added in the
//! register tile), over fixed chunks of [`op_linear::FAST_ROWS`] rows; f64 never goes there.
//!
//! Two fused forms serve the ViT block (method §4.1): [`linear`] with a residual `r` (`x W + b + r`:
//! the output projection plus `T`, the second MLP layer plus `U`) and [`linear_gelu`]
//! (`GELU(x W + b)`, the first MLP layer). On the fast path each 256-row chunk gets its residual or
//! GELU right after its GEMM, while it is still in cache, instead of in a later pass over the whole
//! array; the values are bit-identical to the separate ops (`tests/autodiff_grad.rs`).

use super::elementwise::Unary;
use super::fast32::op_linear;
use super::matmul::{gemm_once, matmul, matmul_backward};
use super::par::{self, CHUNK, ROW_CHUNK};
use crate::float::Float;
use ndarray::{Array1, Array2, ArrayD, ArrayView1, ArrayView2, IxDyn, s};
use rayon::prelude::*;

/// `x: [.., k]` flattened to rows, `w: [k, n]`, `b: [n]` → `x W + b` `[.., n]`, plus `r` (same
/// shape as the output) when given: the affine layer with its residual connection in one pass.
pub fn linear<T: Float>(
    x: &ArrayD<T>,
    w: ArrayView2<T>,
    b: ArrayView1<T>,
    r: Option<&ArrayD<T>>,
) -> ArrayD<T> {
    affine(x, w, b, r, false).0
}

/// `(Y, GELU(Y))` for `Y = x W + b` (shapes as in [`linear`]): the MLP's first layer and its
/// exact GELU in one pass; `Y` is what the backward pass needs.
pub fn linear_gelu<T: Float>(
    x: &ArrayD<T>,
    w: ArrayView2<T>,
    b: ArrayView1<T>,
) -> (ArrayD<T>, ArrayD<T>) {
    let (y, a) = affine(x, w, b, None, true);
    (y, a.expect("GELU output"))
}

/// `Y = x W + b (+ r)` and, if `gelu`, `GELU(Y)`. The fast f32 path applies `r` and GELU to each
/// row chunk right after its GEMM; the generic path runs the same operations as separate passes
/// ([`Unary::Gelu`]), so both give the values of the unfused ops.
fn affine<T: Float>(
    x: &ArrayD<T>,
    w: ArrayView2<T>,
    b: ArrayView1<T>,
    r: Option<&ArrayD<T>>,
    gelu: bool,
) -> (ArrayD<T>, Option<ArrayD<T>>) {
    let k = *x.shape().last().expect("linear: input needs an axis");
    let rows = x.len() / k.max(1);
    let xs = x.as_standard_layout();
    let n = w.dim().1;
    let mut shape = x.shape().to_vec();
    *shape.last_mut().expect("axis") = n;
    if let Some(r) = r {
        assert_eq!(r.shape(), &shape[..], "linear: residual shape");
    }
    let x2 = xs.view().into_shape_with_order((rows, k)).expect("flatten");
    if let Some(fused) = op_linear::affine(x2, w, b, r, gelu, &shape) {
        return fused;
    }
    let mut y = matmul(x2, w);
    let bs: Vec<T> = b.iter().copied().collect();
    if let Some(ys) = y.as_slice_mut() {
        let chunk_rows = (CHUNK / n.max(1)).max(1);
        ys.par_chunks_mut(chunk_rows * n).for_each(|c| {
            for row in c.chunks_mut(n) {
                for (v, &bb) in row.iter_mut().zip(&bs) {
                    *v = *v + bb;
                }
            }
        });
    }
    let mut y = y.into_shape_with_order(IxDyn(&shape)).expect("unflatten");
    if let Some(r) = r {
        par::add_assign(&mut y, r);
    }
    let a = gelu.then(|| Unary::Gelu.forward(&y));
    (y, a)
}

/// Column sums of `g: [rows, n]` over fixed chunks of rows, partials added in chunk order.
pub fn column_sums<T: Float>(g: ArrayView2<T>) -> Array1<T> {
    let (rows, n) = g.dim();
    let chunk_rows = (CHUNK / n.max(1)).max(1);
    let starts: Vec<usize> = (0..rows).step_by(chunk_rows).collect();
    let partials: Vec<Vec<T>> = starts
        .par_iter()
        .map(|&s| {
            let mut acc = vec![T::zero(); n];
            for r in s..(s + chunk_rows).min(rows) {
                for (a, &v) in acc.iter_mut().zip(g.row(r).iter()) {
                    *a = *a + v;
                }
            }
            acc
        })
        .collect();
    let mut out = Array1::<T>::zeros(n);
    for p in &partials {
        for (o, &v) in out.iter_mut().zip(p) {
            *o = *o + v;
        }
    }
    out
}

/// `∂W = xᵀ g` for `x: [rows, k]`, `g: [rows, n]`: one GEMM per fixed chunk of rows (each packs only
/// its own slice), partials added in chunk order.
pub fn weight_grad<T: Float>(x: ArrayView2<T>, g: ArrayView2<T>) -> Array2<T> {
    let (rows, k) = x.dim();
    let n = g.dim().1;
    if rows <= ROW_CHUNK {
        let mut out = Array2::<T>::zeros((k, n));
        gemm_once(T::one(), x.t(), g, T::zero(), out.view_mut());
        return out;
    }
    let starts: Vec<usize> = (0..rows).step_by(ROW_CHUNK).collect();
    let partials: Vec<Array2<T>> = starts
        .par_iter()
        .map(|&s0| {
            let e = (s0 + ROW_CHUNK).min(rows);
            let mut p = Array2::<T>::zeros((k, n));
            gemm_once(
                T::one(),
                x.slice(s![s0..e, ..]).t(),
                g.slice(s![s0..e, ..]),
                T::zero(),
                p.view_mut(),
            );
            p
        })
        .collect();
    let mut out = Array2::<T>::zeros((k, n));
    for p in &partials {
        out.zip_mut_with(p, |a, &b| *a = *a + b);
    }
    out
}

/// Gradients `(∂x, ∂W, ∂b)` of [`linear`] for the upstream `g: [.., n]`.
#[allow(clippy::type_complexity)]
pub fn linear_backward<T: Float>(
    g: &ArrayD<T>,
    x: &ArrayD<T>,
    w: ArrayView2<T>,
    need: (bool, bool, bool),
) -> (Option<ArrayD<T>>, Option<Array2<T>>, Option<Array1<T>>) {
    let k = *x.shape().last().expect("axis");
    let n = w.dim().1;
    let rows = x.len() / k.max(1);
    let xs = x.as_standard_layout();
    let x2 = xs.view().into_shape_with_order((rows, k)).expect("flatten");
    let gs = g.as_standard_layout();
    let g2 = gs.view().into_shape_with_order((rows, n)).expect("flatten");
    let (fast_gx, fast_gwb) = op_linear::backward(g2, x2, w, need);
    let gx = match fast_gx {
        Some(gx) => Some(gx),
        None => matmul_backward(g2, x2, w, false, false, (need.0, false)).0,
    };
    let (gw, gb) = match fast_gwb {
        Some((gw, gb)) => (Some(gw), gb),
        None => (
            need.1.then(|| weight_grad(x2, g2)),
            need.2.then(|| column_sums(g2)),
        ),
    };
    let gx = gx.map(|a| {
        a.into_shape_with_order(IxDyn(x.shape()))
            .expect("unflatten")
    });
    (gx, gw, gb)
}
