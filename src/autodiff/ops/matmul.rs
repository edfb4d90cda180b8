//! Matrix products (method §17 point 1): plain and batched, forward and backward, through
//! matrixmultiply's sgemm/dgemm.
//!
//! Parallelism never changes a result: the output is cut into row or column blocks (each element is
//! computed by exactly one GEMM call, over the whole `k` in the kernel's own fixed order), and only
//! when both `m` and `n` are small is `k` cut, into chunks of the fixed size [`K_CHUNK`] whose
//! partial products are summed sequentially in chunk order.

use crate::float::Float;
use ndarray::{
    Array2, Array3, ArrayD, ArrayView2, ArrayView3, ArrayViewMut2, Axis, CowArray, Ix2, s,
};
use rayon::prelude::*;

/// Fixed `k` chunk for the reduction-split path (independent of the thread count).
pub const K_CHUNK: usize = 4096;
/// Below this many multiply-adds a product runs as one call.
const SERIAL_WORK: usize = 1 << 17;

/// `c ← α·a·b + β·c` in one matrixmultiply call (views of any strides).
pub fn gemm_once<T: Float>(
    alpha: T,
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    beta: T,
    mut c: ArrayViewMut2<T>,
) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(k, k2, "matmul inner dimensions differ");
    assert_eq!(c.dim(), (m, n), "matmul output shape");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // β = 0 must not read `c` (it may be uninitialised, as matrixmultiply allows).
        if beta == T::zero() {
            c.fill(T::zero());
        } else {
            c.mapv_inplace(|x| beta * x);
        }
        return;
    }
    let (sa, sb, sc) = (
        a.strides().to_vec(),
        b.strides().to_vec(),
        c.strides().to_vec(),
    );
    // SAFETY: the views describe valid matrices of the stated sizes; `c` is a distinct mutable
    // view, so it cannot alias `a` or `b`.
    unsafe {
        T::gemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            sa[0],
            sa[1],
            b.as_ptr(),
            sb[0],
            sb[1],
            beta,
            c.as_mut_ptr(),
            sc[0],
            sc[1],
        );
    }
}

/// A new `[d0, d1, …]` array whose every element `fill` overwrites without reading it first.
///
/// The output of a product is written with β = 0, so zero-initialising it would be a wasted pass
/// over memory (and, for large blocks, the dominant cost after the GEMM itself).
fn new_output<T: Float, D: ndarray::Dimension>(
    shape: D,
    fill: impl FnOnce(ndarray::ArrayViewMut<T, D>),
) -> ndarray::Array<T, D> {
    let mut out = ndarray::Array::<T, D>::uninit(shape);
    let dim = out.raw_dim();
    // SAFETY: `out` is a fresh standard-layout allocation of `dim`; `MaybeUninit<T>` has `T`'s
    // layout. The view is only written through (gemm with β = 0, which matrixmultiply documents
    // as not reading C, and explicit fills), never read before written, and every element is
    // written by `fill` (callers pass kernels that cover the whole output), so `assume_init` is
    // sound afterwards.
    unsafe {
        let view = ndarray::ArrayViewMut::from_shape_ptr(dim, out.as_mut_ptr() as *mut T);
        fill(view);
        out.assume_init()
    }
}

/// `a: [.., k]` as the matrix `[rows, k]` of its leading axes flattened (an N-d operand of
/// [`crate::autodiff::Tape::matmul`], e.g. tokens `[B, L, D]`); copies only when `a` is not in
/// standard layout.
pub fn flatten_rows<'a, T: Float>(a: &'a ArrayD<T>) -> CowArray<'a, T, Ix2> {
    let k = *a.shape().last().expect("at least one axis");
    let rows = a.len() / k.max(1);
    a.as_standard_layout()
        .into_shape_with_order((rows, k))
        .expect("standard layout flattens")
}

/// `a·b` into a new array, parallel over output blocks (or fixed `k` chunks).
pub fn matmul<T: Float>(a: ArrayView2<T>, b: ArrayView2<T>) -> Array2<T> {
    let m = a.dim().0;
    let n = b.dim().1;
    new_output(ndarray::Ix2(m, n), |c| gemm_par(a, b, c))
}

/// `c ← a·b` (overwrites `c`), parallel as described in the module doc.
pub fn gemm_par<T: Float>(a: ArrayView2<T>, b: ArrayView2<T>, mut c: ArrayViewMut2<T>) {
    let (m, k) = a.dim();
    let n = b.dim().1;
    let work = m.saturating_mul(n).saturating_mul(k);
    // The path must not depend on the thread count: a single call over the whole `k` and the
    // k-chunked sum round differently.
    if work < SERIAL_WORK {
        gemm_once(T::one(), a, b, T::zero(), c);
        return;
    }
    if m >= 64 || n >= 64 {
        // Split the larger output dimension into ~8 blocks (multiples of 16).
        if m >= n {
            let block = (m.div_ceil(8)).div_ceil(16) * 16;
            let tasks: Vec<_> = c.axis_chunks_iter_mut(Axis(0), block).enumerate().collect();
            tasks.into_par_iter().for_each(|(i, cb)| {
                let r0 = i * block;
                let rows = cb.dim().0;
                gemm_once(T::one(), a.slice(s![r0..r0 + rows, ..]), b, T::zero(), cb);
            });
        } else {
            let block = (n.div_ceil(8)).div_ceil(16) * 16;
            let tasks: Vec<_> = c.axis_chunks_iter_mut(Axis(1), block).enumerate().collect();
            tasks.into_par_iter().for_each(|(i, cb)| {
                let c0 = i * block;
                let cols = cb.dim().1;
                gemm_once(T::one(), a, b.slice(s![.., c0..c0 + cols]), T::zero(), cb);
            });
        }
        return;
    }
    // Small output, long reduction: fixed k chunks, partials summed in chunk order.
    let chunks: Vec<usize> = (0..k).step_by(K_CHUNK).collect();
    let partials: Vec<Array2<T>> = chunks
        .par_iter()
        .map(|&k0| {
            let k1 = (k0 + K_CHUNK).min(k);
            let mut p = Array2::<T>::zeros((m, n));
            gemm_once(
                T::one(),
                a.slice(s![.., k0..k1]),
                b.slice(s![k0..k1, ..]),
                T::zero(),
                p.view_mut(),
            );
            p
        })
        .collect();
    c.fill(T::zero());
    for p in &partials {
        c.zip_mut_with(p, |x, &y| *x = *x + y);
    }
}

/// Gradients of `C = op(A)·op(B)` where `op` is the identity or a transpose (`ta`, `tb`):
/// `∂A = G·op(B)ᵀ` (transposed back if `ta`), `∂B = op(A)ᵀ·G` (transposed back if `tb`).
pub fn matmul_backward<T: Float>(
    g: ArrayView2<T>,
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    ta: bool,
    tb: bool,
    need: (bool, bool),
) -> (Option<Array2<T>>, Option<Array2<T>>) {
    let opa = if ta { a.t() } else { a.view() };
    let opb = if tb { b.t() } else { b.view() };
    let ga = need.0.then(|| {
        if ta {
            matmul(opb, g.t()) // (G·op(B)ᵀ)ᵀ = op(B)·Gᵀ
        } else {
            matmul(g, opb.t())
        }
    });
    let gb = need.1.then(|| {
        if tb {
            matmul(g.t(), opa) // (op(A)ᵀ·G)ᵀ = Gᵀ·op(A)
        } else {
            matmul(opa.t(), g)
        }
    });
    (ga, gb)
}

/// Batched `op(A_i)·op(B_i)` for `A: [bt, ., .]`, `B: [bt, ., .]`, parallel over the batch.
pub fn batch_matmul<T: Float>(a: ArrayView3<T>, b: ArrayView3<T>, ta: bool, tb: bool) -> Array3<T> {
    let bt = a.dim().0;
    assert_eq!(bt, b.dim().0, "batch sizes differ");
    let opa = |i: usize| {
        let v = a.index_axis(Axis(0), i);
        if ta { v.reversed_axes() } else { v }
    };
    let opb = |i: usize| {
        let v = b.index_axis(Axis(0), i);
        if tb { v.reversed_axes() } else { v }
    };
    let (m, k) = if bt > 0 { opa(0).dim() } else { (0, 0) };
    let n = if bt > 0 { opb(0).dim().1 } else { 0 };
    assert!(
        bt == 0 || opb(0).dim().0 == k,
        "batched matmul inner dimensions differ"
    );
    new_output(ndarray::Ix3(bt, m, n), |mut c| {
        let tasks: Vec<_> = c.outer_iter_mut().enumerate().collect();
        tasks.into_par_iter().for_each(|(i, ci)| {
            gemm_once(T::one(), opa(i), opb(i), T::zero(), ci);
        });
    })
}

/// Gradients of the batched product (same rules as [`matmul_backward`], per batch item).
pub fn batch_matmul_backward<T: Float>(
    g: ArrayView3<T>,
    a: ArrayView3<T>,
    b: ArrayView3<T>,
    ta: bool,
    tb: bool,
    need: (bool, bool),
) -> (Option<Array3<T>>, Option<Array3<T>>) {
    let opa = if ta {
        a.permuted_axes([0, 2, 1])
    } else {
        a.view()
    };
    let opb = if tb {
        b.permuted_axes([0, 2, 1])
    } else {
        b.view()
    };
    let gt = g.permuted_axes([0, 2, 1]);
    let ga = need.0.then(|| {
        if ta {
            batch_matmul(opb, gt, false, false)
        } else {
            batch_matmul(g, opb, false, true)
        }
    });
    let gb = need.1.then(|| {
        if tb {
            batch_matmul(gt, opa, false, false)
        } else {
            batch_matmul(opa, g, true, false)
        }
    });
    (ga, gb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;

    fn naive(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
        let (m, k) = a.dim();
        let n = b.dim().1;
        Array2::from_shape_fn((m, n), |(i, j)| (0..k).map(|p| a[[i, p]] * b[[p, j]]).sum())
    }

    #[test]
    fn all_split_paths_match_naive() {
        // Shapes chosen to hit: serial, row split, column split, k split.
        for &(m, k, n) in &[(3, 4, 5), (300, 70, 20), (20, 70, 300), (8, 9000, 8)] {
            let a = Array::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 11) as f64 - 5.0);
            let b = Array::from_shape_fn((k, n), |(i, j)| ((i * 5 + j * 2) % 13) as f64 - 6.0);
            // Small integers: every partial sum is exact, so equality is exact.
            assert_eq!(
                matmul(a.view(), b.view()),
                naive(&a, &b),
                "shape {:?}",
                (m, k, n)
            );
        }
    }

    #[test]
    fn split_paths_do_not_depend_on_the_thread_count() {
        // Regression: a [6, 5625]·[5625, 12] product (the MIM decoder's input gradient at 75×75)
        // once ran as one call on 1 thread and k-chunked on 2, rounding differently in f32.
        use rand::Rng;
        let mut r = crate::rng::stream(1, "test.matmul.threads");
        for &(m, k, n) in &[(6, 5625, 12), (6, 9000, 3), (300, 70, 20), (20, 70, 300)] {
            let a = Array::from_shape_simple_fn((m, k), || r.random_range(-1.0f32..1.0));
            let b = Array::from_shape_simple_fn((k, n), || r.random_range(-1.0f32..1.0));
            let run = |t: usize| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .unwrap()
                    .install(|| matmul(a.view(), b.view()))
            };
            assert_eq!(run(1), run(2), "shape {:?}", (m, k, n));
        }
    }

    #[test]
    fn empty_inner_dimension_gives_zeros_in_uninitialised_outputs() {
        // Outputs are allocated uninitialised; with k = 0 every element must still be written
        // (an empty sum is 0).
        let a = Array2::<f64>::zeros((3, 0));
        let b = Array2::<f64>::zeros((0, 4));
        assert_eq!(matmul(a.view(), b.view()), Array2::<f64>::zeros((3, 4)));
        let a3 = Array3::<f32>::zeros((2, 3, 0));
        let b3 = Array3::<f32>::zeros((2, 0, 5));
        assert_eq!(
            batch_matmul(a3.view(), b3.view(), false, false),
            Array3::<f32>::zeros((2, 3, 5))
        );
    }
}
