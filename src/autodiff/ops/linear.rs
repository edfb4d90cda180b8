//! The affine layer `Y = X W + b` as one op (SPEC §0 row-vector convention): the bias is added row
//! by row right after the GEMM, and its gradient is a column sum over fixed row chunks combined in
//! chunk order, so results are bit-identical on any number of threads.
//!
//! In f32 on an AVX2/AVX-512 CPU, products with at least [`FAST_MIN_ROWS`] rows and output widths
//! that are multiples of 16 run the direct kernels of [`fast32::gemm`] instead (weights packed
//! once per call, activations read in place, bias added in the register tile), over fixed chunks
//! of [`FAST_ROWS`] rows; f64 never goes there.
//!
//! Two fused forms serve the ViT block (SPEC §4.1): [`linear`] with a residual `r` (`x W + b + r`:
//! the output projection plus `T`, the second MLP layer plus `U`) and [`linear_gelu`]
//! (`GELU(x W + b)`, the first MLP layer). On the fast path each 256-row chunk gets its residual or
//! GELU right after its GEMM, while it is still in cache, instead of in a later pass over the whole
//! array; the values are bit-identical to the separate ops (`tests/autodiff_grad.rs`).

use super::elementwise::Unary;
use super::fast32::{self, gemm::Panels};
use super::matmul::{gemm_once, matmul, matmul_backward};
use super::par::{self, CHUNK};
use crate::float::Float;
use ndarray::{Array1, Array2, ArrayD, ArrayView1, ArrayView2, IxDyn, s};
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
    /// `c += r` (a residual connection, SPEC §4.1 `U = T + MHSA(·)`, `T' = U + MLP(·)`).
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
    if fast::<T>(rows, n) {
        let rs = r.map(|r| r.as_standard_layout());
        let ws = w.as_standard_layout();
        let panels = Panels::pack(f32_data(&ws), k, n, n, 1);
        let bs = b.as_standard_layout();
        let residual = rs.as_ref().map(f32_data);
        let run = |y: &mut [T], gelu_out: Option<&mut [f32]>| {
            let y = T::as_f32_mut(y).expect("f32");
            let epi = Epilogue { residual, gelu_out };
            fast_rows(f32_data(&xs), k, &panels, Some(f32_data(&bs)), y, epi)
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
        let y = ArrayD::from_shape_vec(IxDyn(&shape), y).expect("shape");
        let a = act.map(|a| ArrayD::from_shape_vec(IxDyn(&shape), a).expect("shape"));
        return (y, a);
    }
    let x2 = xs.view().into_shape_with_order((rows, k)).expect("flatten");
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

/// Rows per chunk of the weight gradient's reduction (fixed, independent of the thread count).
pub const ROW_CHUNK: usize = 2048;

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
    let fast_gx = need.0 && fast::<T>(rows, k);
    let fast_gw = need.1 && fast::<T>(rows, n);
    let (gx, _) = matmul_backward(g2, x2, w, false, false, (need.0 && !fast_gx, false));
    let gx = if fast_gx {
        // ∂x = g Wᵀ: Wᵀ packed as the [n, k] operand (b(j, kk) = W[kk][j]).
        let ws = w.as_standard_layout();
        let panels = Panels::pack(f32_data(&ws), n, k, 1, n);
        // SAFETY: the kernel writes every element of every row chunk.
        let gx = unsafe {
            par::filled(rows * k, |gx: &mut [T]| {
                let gx = T::as_f32_mut(gx).expect("f32");
                fast_rows(f32_data(&gs), n, &panels, None, gx, Epilogue::default())
            })
        };
        Some(Array2::from_shape_vec((rows, k), gx).expect("shape"))
    } else {
        gx
    };
    let (gw, gb) = if fast_gw {
        let mut gw = fast_weight_grad(f32_data(&xs), f32_data(&gs), rows, k, n, need.2);
        let gb = need
            .2
            .then(|| Array1::from_vec(from_f32(gw.split_off(k * n))));
        let gw = Array2::from_shape_vec((k, n), from_f32(gw)).expect("shape");
        (Some(gw), gb)
    } else {
        (
            need.1.then(|| weight_grad(x2, g2)),
            need.2.then(|| column_sums(g2)),
        )
    };
    let gx = gx.map(|a| {
        a.into_shape_with_order(IxDyn(x.shape()))
            .expect("unflatten")
    });
    (gx, gw, gb)
}
