//! Softmax family over the last axis (method §17 point 3) and the segment (edge) softmax over graph
//! neighbourhoods (point 4). Every sum of exponentials subtracts the maximum first (method §16).

use super::par;
use crate::float::Float;
use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

fn last_width<T>(x: &ArrayD<T>) -> usize {
    *x.shape().last().expect("softmax needs at least one axis")
}

/// Row softmax over the last axis.
pub fn softmax<T: Float>(x: &ArrayD<T>) -> ArrayD<T> {
    let w = last_width(x);
    let xs = par::std_slice(x);
    let mut out = vec![T::zero(); xs.len()];
    par::rows_map(&xs, w, &mut out, w, |_, i, o| {
        for (ir, or) in i.chunks(w).zip(o.chunks_mut(w)) {
            let m = ir.iter().copied().fold(T::neg_infinity(), T::max);
            let mut s = T::zero();
            for (o, &v) in or.iter_mut().zip(ir) {
                *o = (v - m).exp();
                s = s + *o;
            }
            for o in or.iter_mut() {
                *o = *o / s;
            }
        }
    });
    ArrayD::from_shape_vec(x.raw_dim(), out).expect("shape")
}

/// Backward of softmax given its output `y`: `∂x = y ⊙ (g − Σ g⊙y)` per row.
pub fn softmax_backward<T: Float>(g: &ArrayD<T>, y: &ArrayD<T>) -> ArrayD<T> {
    let (gs, ys) = (par::std_slice(g), par::std_slice(y));
    let mut out = vec![T::zero(); ys.len()];
    par::rows_zip2(&gs, &ys, last_width(y), &mut out, |gr, yr, or| {
        let dot = gr.iter().zip(yr).fold(T::zero(), |a, (&g, &y)| a + g * y);
        for ((o, &g), &y) in or.iter_mut().zip(gr).zip(yr) {
            *o = y * (g - dot);
        }
    });
    ArrayD::from_shape_vec(y.raw_dim(), out).expect("shape")
}

/// Row log-softmax over the last axis: `x − LSE(x)`.
pub fn log_softmax<T: Float>(x: &ArrayD<T>) -> ArrayD<T> {
    let w = last_width(x);
    let xs = par::std_slice(x);
    let mut out = vec![T::zero(); xs.len()];
    par::rows_map(&xs, w, &mut out, w, |_, i, o| {
        for (ir, or) in i.chunks(w).zip(o.chunks_mut(w)) {
            let l = lse_row(ir);
            for (o, &v) in or.iter_mut().zip(ir) {
                *o = v - l;
            }
        }
    });
    ArrayD::from_shape_vec(x.raw_dim(), out).expect("shape")
}

/// Backward of log-softmax given its output `y`: `∂x = g − softmax(x)·Σg`.
pub fn log_softmax_backward<T: Float>(g: &ArrayD<T>, y: &ArrayD<T>) -> ArrayD<T> {
    let (gs, ys) = (par::std_slice(g), par::std_slice(y));
    let mut out = vec![T::zero(); ys.len()];
    par::rows_zip2(&gs, &ys, last_width(y), &mut out, |gr, yr, or| {
        let sg = gr.iter().fold(T::zero(), |a, &g| a + g);
        for ((o, &g), &y) in or.iter_mut().zip(gr).zip(yr) {
            *o = g - y.exp() * sg;
        }
    });
    ArrayD::from_shape_vec(y.raw_dim(), out).expect("shape")
}

/// `ln Σ exp(row)`, max-shifted; `−∞` for an all-`−∞` row.
pub fn lse_row<T: Float>(r: &[T]) -> T {
    let m = r.iter().copied().fold(T::neg_infinity(), T::max);
    if m == T::neg_infinity() {
        return m;
    }
    let s = r.iter().fold(T::zero(), |a, &v| a + (v - m).exp());
    m + s.ln()
}

/// Log-sum-exp over the last axis (the axis is removed).
pub fn logsumexp<T: Float>(x: &ArrayD<T>) -> ArrayD<T> {
    let w = last_width(x);
    let xs = par::std_slice(x);
    let rows = xs.len().checked_div(w).unwrap_or(0);
    let mut out = vec![T::zero(); rows];
    let chunk_rows = (par::CHUNK / w.max(1)).max(1);
    out.par_chunks_mut(chunk_rows)
        .enumerate()
        .for_each(|(ci, o)| {
            for (r, o) in o.iter_mut().enumerate() {
                let off = (ci * chunk_rows + r) * w;
                *o = lse_row(&xs[off..off + w]);
            }
        });
    let shape = &x.shape()[..x.ndim() - 1];
    ArrayD::from_shape_vec(IxDyn(shape), out).expect("shape")
}

/// Backward of log-sum-exp: `∂x = g · softmax(x)` (`g` broadcast along the reduced axis).
pub fn logsumexp_backward<T: Float>(g: &ArrayD<T>, x: &ArrayD<T>, y: &ArrayD<T>) -> ArrayD<T> {
    let w = last_width(x);
    let (gs, xs, ys) = (par::std_slice(g), par::std_slice(x), par::std_slice(y));
    let mut out = vec![T::zero(); xs.len()];
    let chunk_rows = (par::CHUNK / w.max(1)).max(1);
    out.par_chunks_mut(chunk_rows * w)
        .enumerate()
        .for_each(|(ci, o)| {
            for (r, or) in o.chunks_mut(w).enumerate() {
                let row = ci * chunk_rows + r;
                let off = row * w;
                for (o, &v) in or.iter_mut().zip(&xs[off..off + w]) {
                    *o = if ys[row] == T::neg_infinity() {
                        T::zero()
                    } else {
                        gs[row] * (v - ys[row]).exp()
                    };
                }
            }
        });
    ArrayD::from_shape_vec(x.raw_dim(), out).expect("shape")
}

/// Segment softmax (method Eq. 3): `x` is `[E]` or `[E, h]` edge scores grouped into consecutive
/// segments `offsets[v]..offsets[v+1]` (one per destination node, CSR order); each segment (and
/// each column) is normalised on its own.
pub fn segment_softmax<T: Float>(x: &ArrayD<T>, offsets: &[usize]) -> ArrayD<T> {
    let h: usize = x.shape()[1..].iter().product();
    let xs = par::std_slice(x);
    let mut out = vec![T::zero(); xs.len()];
    seg_apply(&mut out, h, offsets, |v, o| {
        let (s0, s1) = (offsets[v], offsets[v + 1]);
        for c in 0..h {
            let mut m = T::neg_infinity();
            for e in s0..s1 {
                m = m.max(xs[e * h + c]);
            }
            let mut s = T::zero();
            for e in s0..s1 {
                let z = (xs[e * h + c] - m).exp();
                o[(e - s0) * h + c] = z;
                s = s + z;
            }
            for e in s0..s1 {
                o[(e - s0) * h + c] = o[(e - s0) * h + c] / s;
            }
        }
    });
    ArrayD::from_shape_vec(x.raw_dim(), out).expect("shape")
}

/// Backward of the segment softmax given its output `y`: per segment and column,
/// `∂x_e = y_e (g_e − Σ_{e'} g_e' y_e')`.
pub fn segment_softmax_backward<T: Float>(
    g: &ArrayD<T>,
    y: &ArrayD<T>,
    offsets: &[usize],
) -> ArrayD<T> {
    let h: usize = y.shape()[1..].iter().product();
    let (gs, ys) = (par::std_slice(g), par::std_slice(y));
    let mut out = vec![T::zero(); ys.len()];
    seg_apply(&mut out, h, offsets, |v, o| {
        let (s0, s1) = (offsets[v], offsets[v + 1]);
        for c in 0..h {
            let mut dot = T::zero();
            for e in s0..s1 {
                dot = dot + gs[e * h + c] * ys[e * h + c];
            }
            for e in s0..s1 {
                o[(e - s0) * h + c] = ys[e * h + c] * (gs[e * h + c] - dot);
            }
        }
    });
    ArrayD::from_shape_vec(y.raw_dim(), out).expect("shape")
}

/// Run `f(v, out_segment)` for every segment, in parallel over fixed blocks of segments.
fn seg_apply<T: Float, F: Fn(usize, &mut [T]) + Sync>(
    out: &mut [T],
    h: usize,
    offsets: &[usize],
    f: F,
) {
    let n = offsets.len().saturating_sub(1);
    const SEGS: usize = 1024;
    // Split `out` at segment-block boundaries so each block is owned by one task.
    let mut pieces: Vec<(usize, &mut [T])> = Vec::new();
    let mut rest = out;
    let mut v0 = 0;
    while v0 < n {
        let v1 = (v0 + SEGS).min(n);
        let len = (offsets[v1] - offsets[v0]) * h;
        let (head, tail) = rest.split_at_mut(len);
        pieces.push((v0, head));
        rest = tail;
        v0 = v1;
    }
    pieces.into_par_iter().for_each(|(v0, piece)| {
        let v1 = (v0 + SEGS).min(n);
        let base = offsets[v0];
        for v in v0..v1 {
            let (a, b) = ((offsets[v] - base) * h, (offsets[v + 1] - base) * h);
            f(v, &mut piece[a..b]);
        }
    });
}
