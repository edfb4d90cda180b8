//! The f32 path of the affine op ([`crate::autodiff::ops::linear`]): the bridge from the op's
//! generic `T` arrays to the direct products of [`super::gemm`] (weights packed once per call,
//! activations read in place, bias added in the register tile), over fixed chunks of
//! [`FAST_ROWS`] rows. It takes products with at least [`FAST_MIN_ROWS`] rows and output widths
//! that are multiples of 16, in f32 on an AVX2/AVX-512 CPU; otherwise [`affine`] answers `None`
//! and [`backward`] computes nothing, and the op's generic code runs.
//!
//! For the fused forms each 256-row chunk gets its residual or GELU right after its GEMM, while it
//! is still in cache, instead of in a later pass over the whole array; the values are
//! bit-identical to the separate ops (`tests/autodiff_grad.rs`).

use super::super::par::{self, ROW_CHUNK};
use super::gemm::Panels;
use crate::autodiff::ops::fast32;
use crate::float::Float;
use ndarray::{Array1, Array2, ArrayD, ArrayView1, ArrayView2, IxDyn};
use rayon::prelude::*;

/// Rows per parallel task of the fast f32 kernels (fixed: results do not depend on the thread
/// count).
pub const FAST_ROWS: usize = 256;
/// Fewer rows keep the generic GEMM, which splits columns across threads.
pub const FAST_MIN_ROWS: usize = 1024;

/// Whether the fast f32 kernels take a product of `rows` rows with output width `n`.
fn fast<T: Float>(rows: usize, n: usize) -> bool {
    T::as_f32(&[]).is_some()
        && rows >= FAST_MIN_ROWS
        && n.is_multiple_of(16)
        && n > 0
        && fast32::level() != fast32::Level::None
}

/// The contiguous f32 data of a standard-layout array of `T = f32`.
fn f32_data<T: Float, S: ndarray::Data<Elem = T>, D: ndarray::Dimension>(
    a: &ndarray::ArrayBase<S, D>,
) -> &[f32] {
    T::as_f32(a.as_slice().expect("standard layout")).expect("f32")
}

/// What a fast row chunk does right after its GEMM, while the chunk is still in cache.
#[derive(Default)]
struct Epilogue<'a> {
    /// `c += r` (a residual connection, method §4.1 `U = T + MHSA(·)`, `T' = U + MLP(·)`).
    residual: Option<&'a [f32]>,
    /// `gelu_out = GELU(c)` (the MLP's hidden activation), `c` itself kept as the pre-activation.
    gelu_out: Option<&'a mut [f32]>,
}

/// `c = a · b (+ bias)` for `a: [rows, k]` (row-major), `b` packed, `c: [rows, b.n()]`, in
/// parallel over fixed chunks of [`FAST_ROWS`] rows, each followed by its part of `epi`.
fn fast_rows(a: &[f32], k: usize, b: &Panels, bias: Option<&[f32]>, c: &mut [f32], epi: Epilogue) {
    let n = b.n();
    let len = FAST_ROWS * n;
    let run = |ci: usize, cc: &mut [f32], gelu: Option<&mut [f32]>| {
        let r0 = ci * FAST_ROWS;
        let m = cc.len() / n;
        let done = fast32::gemm::gemm_rows(&a[r0 * k..], k, m, b, bias, cc, n);
        assert!(done.is_some(), "fast GEMM unavailable after the check");
        if let Some(r) = epi.residual {
            // The same IEEE sums as the separate `add` op (addition commutes exactly).
            let r = &r[ci * len..ci * len + cc.len()];
            for (y, &v) in cc.iter_mut().zip(r) {
                *y += v;
            }
        }
        if let Some(o) = gelu {
            let done = fast32::gelu_slice(cc, o);
            assert!(done.is_some(), "fast GELU unavailable after the check");
        }
    };
    match epi.gelu_out {
        None => c
            .par_chunks_mut(len)
            .enumerate()
            .for_each(|(ci, cc)| run(ci, cc, None)),
        Some(o) => c
            .par_chunks_mut(len)
            .zip(o.par_chunks_mut(len))
            .enumerate()
            .for_each(|(ci, (cc, oc))| run(ci, cc, Some(oc))),
    }
}

/// Rows per sequential step of the weight-gradient kernel inside one [`ROW_CHUNK`] (keeps the
/// step's rows of `x` and `g` in L2 while all column tiles run over them).
const TN_STEP: usize = 256;

/// `xᵀ g` for `x: [rows, k]`, `g: [rows, n]` with the fast kernel, followed (if `bias`) by the
/// column sums of `g` as row `k`: one partial per fixed chunk of [`ROW_CHUNK`] rows (accumulated
/// over steps of [`TN_STEP`] rows in order), partials added in chunk order.
fn fast_weight_grad(x: &[f32], g: &[f32], rows: usize, k: usize, n: usize, bias: bool) -> Vec<f32> {
    let kb = k + usize::from(bias);
    let starts: Vec<usize> = (0..rows).step_by(ROW_CHUNK).collect();
    let partials: Vec<Vec<f32>> = starts
        .par_iter()
        .map(|&s0| {
            let mut p = vec![0.0f32; kb * n];
            let (pw, pb) = p.split_at_mut(k * n);
            let mut pb = bias.then_some(pb);
            let e = (s0 + ROW_CHUNK).min(rows);
            for t in (s0..e).step_by(TN_STEP) {
                let m = TN_STEP.min(e - t);
                let (xt, gt) = (&x[t * k..], &g[t * n..]);
                let done = fast32::gemm::gemm_tn_acc(xt, k, gt, n, m, k, n, pw, pb.as_deref_mut());
                assert!(done.is_some(), "fast GEMM unavailable after the check");
            }
            p
        })
        .collect();
    let mut out = vec![0.0f32; kb * n];
    for p in &partials {
        for (o, &v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
    out
}

/// `T` data from f32 data (`T = f32` whenever the fast path ran).
fn from_f32<T: Float>(v: Vec<f32>) -> Vec<T> {
    v.into_iter().map(|x| T::of(x as f64)).collect()
}

/// `Y = x W + b (+ r)` and, if `gelu`, `GELU(Y)` for `x: [rows, k]` (standard layout), output
/// shape `shape` (`x`'s leading axes and `W`'s width), with `r` and GELU applied to each row chunk
/// right after its GEMM; `None` when the fast kernels do not take this product.
#[allow(clippy::type_complexity)]
pub fn affine<T: Float>(
    x: ArrayView2<T>,
    w: ArrayView2<T>,
    b: ArrayView1<T>,
    r: Option<&ArrayD<T>>,
    gelu: bool,
    shape: &[usize],
) -> Option<(ArrayD<T>, Option<ArrayD<T>>)> {
    let (rows, k) = x.dim();
    let n = w.dim().1;
    if !fast::<T>(rows, n) {
        return None;
    }
    let rs = r.map(|r| r.as_standard_layout());
    let ws = w.as_standard_layout();
    let panels = Panels::pack(f32_data(&ws), k, n, n, 1);
    let bs = b.as_standard_layout();
    let residual = rs.as_ref().map(f32_data);
    let run = |y: &mut [T], gelu_out: Option<&mut [f32]>| {
        let y = T::as_f32_mut(y).expect("f32");
        let epi = Epilogue { residual, gelu_out };
        fast_rows(f32_data(&x), k, &panels, Some(f32_data(&bs)), y, epi)
    };
    let mut act: Option<Vec<T>> = None;
    // SAFETY: the kernel writes every element of every row chunk (and the GELU kernel every
    // element of the activation chunks).
    let y = unsafe {
        par::filled(rows * n, |y: &mut [T]| match gelu {
            true => {
                act = Some(par::filled(rows * n, |a: &mut [T]| {
                    run(y, Some(T::as_f32_mut(a).expect("f32")))
                }))
            }
            false => run(y, None),
        })
    };
    let y = ArrayD::from_shape_vec(IxDyn(shape), y).expect("shape");
    let a = act.map(|a| ArrayD::from_shape_vec(IxDyn(shape), a).expect("shape"));
    Some((y, a))
}

/// The gradients of the affine op that the fast kernels compute for the upstream `g: [rows, n]`,
/// `x: [rows, k]` (both standard layout): `∂x = g Wᵀ` if wanted and the product qualifies, and
/// `(∂W, ∂b)` (`∂b` if wanted) if `∂W` is wanted and qualifies. What is `None` here the op's
/// generic code computes.
#[allow(clippy::type_complexity)]
pub fn backward<T: Float>(
    g: ArrayView2<T>,
    x: ArrayView2<T>,
    w: ArrayView2<T>,
    need: (bool, bool, bool),
) -> (Option<Array2<T>>, Option<(Array2<T>, Option<Array1<T>>)>) {
    let (rows, k) = x.dim();
    let n = w.dim().1;
    let gx = (need.0 && fast::<T>(rows, k)).then(|| {
        // ∂x = g Wᵀ: Wᵀ packed as the [n, k] operand (b(j, kk) = W[kk][j]).
        let ws = w.as_standard_layout();
        let panels = Panels::pack(f32_data(&ws), n, k, 1, n);
        // SAFETY: the kernel writes every element of every row chunk.
        let gx = unsafe {
            par::filled(rows * k, |gx: &mut [T]| {
                let gx = T::as_f32_mut(gx).expect("f32");
                fast_rows(f32_data(&g), n, &panels, None, gx, Epilogue::default())
            })
        };
        Array2::from_shape_vec((rows, k), gx).expect("shape")
    });
    let gwb = (need.1 && fast::<T>(rows, n)).then(|| {
        let mut gw = fast_weight_grad(f32_data(&x), f32_data(&g), rows, k, n, need.2);
        let gb = need
            .2
            .then(|| Array1::from_vec(from_f32(gw.split_off(k * n))));
        let gw = Array2::from_shape_vec((k, n), from_f32(gw)).expect("shape");
        (gw, gb)
    });
    (gx, gwb)
}
