//! Deterministic data-parallel helpers: work is cut into fixed-size chunks (independent of the
//! number of threads) and every output element is written by exactly one task, so results are
//! bit-identical on 1 or N threads.

use crate::float::Float;
use ndarray::ArrayD;
use rayon::prelude::*;

/// Elements per parallel task for elementwise kernels.
pub const CHUNK: usize = 1 << 14;

/// Rows per chunk of the affine layer's weight-gradient reduction `xᵀ g` (fixed, independent of
/// the thread count; the generic and the f32 path both cut rows so).
pub const ROW_CHUNK: usize = 2048;

/// A contiguous (standard-layout) copy of `x`'s data, or a borrow when it already is.
pub fn std_slice<T: Float>(x: &ArrayD<T>) -> std::borrow::Cow<'_, [T]> {
    match x.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(x.iter().copied().collect()),
    }
}

/// A vector of `len` elements written by `fill`, without first zero-filling the memory (on the
/// large outputs of the tape that pass cost as much as a cheap op itself).
///
/// # Safety
/// `fill` receives uninitialised memory: it must write every element of the slice and must not
/// read an element before writing it. (If it panics, the vector is dropped empty.)
pub unsafe fn filled<T: Float>(len: usize, fill: impl FnOnce(&mut [T])) -> Vec<T> {
    let mut v = Vec::<T>::with_capacity(len);
    // SAFETY: the capacity is `len`; the caller's `fill` writes every element before any read, so
    // all `len` elements are initialised when the length is set.
    unsafe {
        fill(std::slice::from_raw_parts_mut(v.as_mut_ptr(), len));
        v.set_len(len);
    }
    v
}

/// `y[i] = f(x[i])` in parallel over fixed chunks.
pub fn map<T: Float, F: Fn(T) -> T + Sync>(x: &ArrayD<T>, f: F) -> ArrayD<T> {
    let xs = std_slice(x);
    // SAFETY: the chunks of `out` and `xs` have equal lengths; every element is written.
    let out = unsafe {
        filled(xs.len(), |out: &mut [T]| {
            out.par_chunks_mut(CHUNK)
                .zip(xs.par_chunks(CHUNK))
                .for_each(|(o, i)| {
                    for (o, &i) in o.iter_mut().zip(i) {
                        *o = f(i);
                    }
                })
        })
    };
    ArrayD::from_shape_vec(x.raw_dim(), out).expect("shape preserved")
}

/// `y[i] = f(a[i], b[i])` for two arrays of the same shape, in parallel over fixed chunks.
pub fn zip_map<T: Float, F: Fn(T, T) -> T + Sync>(a: &ArrayD<T>, b: &ArrayD<T>, f: F) -> ArrayD<T> {
    assert_eq!(a.shape(), b.shape(), "zip_map needs equal shapes");
    let as_ = std_slice(a);
    let bs = std_slice(b);
    // SAFETY: the chunks of `out`, `as_` and `bs` have equal lengths; every element is written.
    let out = unsafe {
        filled(as_.len(), |out: &mut [T]| {
            out.par_chunks_mut(CHUNK)
                .zip(as_.par_chunks(CHUNK).zip(bs.par_chunks(CHUNK)))
                .for_each(|(o, (x, y))| {
                    for ((o, &x), &y) in o.iter_mut().zip(x).zip(y) {
                        *o = f(x, y);
                    }
                })
        })
    };
    ArrayD::from_shape_vec(a.raw_dim(), out).expect("shape preserved")
}

/// `y[i] = f(a[i], b[i], c[i])` for three arrays of the same shape.
pub fn zip3_map<T: Float, F: Fn(T, T, T) -> T + Sync>(
    a: &ArrayD<T>,
    b: &ArrayD<T>,
    c: &ArrayD<T>,
    f: F,
) -> ArrayD<T> {
    assert_eq!(a.shape(), b.shape());
    assert_eq!(a.shape(), c.shape());
    let (as_, bs, cs) = (std_slice(a), std_slice(b), std_slice(c));
    // SAFETY: every element of every chunk is written.
    let out = unsafe {
        filled(as_.len(), |out: &mut [T]| {
            out.par_chunks_mut(CHUNK).enumerate().for_each(|(ci, o)| {
                let s = ci * CHUNK;
                for (j, o) in o.iter_mut().enumerate() {
                    *o = f(as_[s + j], bs[s + j], cs[s + j]);
                }
            })
        })
    };
    ArrayD::from_shape_vec(a.raw_dim(), out).expect("shape preserved")
}

/// `acc += g` in place (shapes equal), parallel over fixed chunks.
pub fn add_assign<T: Float>(acc: &mut ArrayD<T>, g: &ArrayD<T>) {
    assert_eq!(acc.shape(), g.shape(), "gradient shape mismatch");
    match (acc.as_slice_mut(), g.as_slice()) {
        (Some(a), Some(b)) => {
            a.par_chunks_mut(CHUNK)
                .zip(b.par_chunks(CHUNK))
                .for_each(|(a, b)| {
                    for (a, &b) in a.iter_mut().zip(b) {
                        *a = *a + b;
                    }
                })
        }
        _ => {
            ndarray::Zip::from(acc).and(g).for_each(|a, &b| *a = *a + b);
        }
    }
}

/// Process the rows of a `[rows, width]` row-major buffer in parallel over fixed row chunks:
/// `f(first_row_index, in_rows, out_rows)`.
pub fn rows_map<T: Float, F>(input: &[T], width: usize, out: &mut [T], out_width: usize, f: F)
where
    F: Fn(usize, &[T], &mut [T]) + Sync,
{
    let rows = input.len().checked_div(width).unwrap_or(0);
    let chunk_rows = (CHUNK / width.max(1)).max(1);
    if rows == 0 {
        return;
    }
    out.par_chunks_mut(chunk_rows * out_width)
        .zip(input.par_chunks(chunk_rows * width))
        .enumerate()
        .for_each(|(ci, (o, i))| f(ci * chunk_rows, i, o));
}

/// `f(a_row, b_row, out_row)` for every row of two `[rows, width]` row-major buffers of equal
/// length, in parallel over fixed row chunks (rows are independent, so results do not depend on
/// the thread count).
pub fn rows_zip2<T: Float, F>(a: &[T], b: &[T], width: usize, out: &mut [T], f: F)
where
    F: Fn(&[T], &[T], &mut [T]) + Sync,
{
    assert_eq!(a.len(), b.len(), "rows_zip2 needs equal lengths");
    if width == 0 || a.is_empty() {
        return;
    }
    let chunk = (CHUNK / width).max(1) * width;
    out.par_chunks_mut(chunk)
        .zip(a.par_chunks(chunk).zip(b.par_chunks(chunk)))
        .for_each(|(o, (ac, bc))| {
            for ((or, ar), br) in o
                .chunks_mut(width)
                .zip(ac.chunks(width))
                .zip(bc.chunks(width))
            {
                f(ar, br, or);
            }
        });
}
