//! The fused "segment weighted sum" of message passing (method §3.3 Eq. 1, §17 point 1 "edge
//! aggregation"): for CSR segments (one per destination node `v`, edges `e ∈ seg(v)`, each edge
//! reading source row `src[e]`)
//!
//! ```text
//! out[v] = Σ_{e ∈ seg(v)} α_e · X[src[e]]
//! ```
//!
//! without materialising the `[E, F]` gathered rows. Backward:
//! `∂α_e = ⟨g[v(e)], X[src[e]]⟩` and `∂X[u] = Σ_{e : src[e] = u} α_e · g[v(e)]`; the latter runs
//! over a precomputed transposed index (edges grouped by source, ascending edge id), so every output
//! row is written by one task and summed in a fixed order: bit-identical on any thread count.

use crate::float::Float;
use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

/// Destination rows per parallel task (fixed, independent of the thread count).
const ROWS: usize = 64;

/// A CSR edge index for [`segment_weighted_sum`]: segments (destinations) and the source row of
/// every edge, plus the transposed grouping used by the backward pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentIndex {
    /// Segment offsets, length `n_dst + 1`.
    pub offsets: Vec<usize>,
    /// Source row of each edge, length `E`.
    pub src: Vec<u32>,
    /// Number of source rows.
    pub n_src: usize,
    /// Transposed offsets, length `n_src + 1`.
    t_offsets: Vec<usize>,
    /// Edge ids grouped by source row, ascending within a group.
    t_edges: Vec<u32>,
    /// Destination (segment) of each edge, length `E`.
    dst: Vec<u32>,
}

impl SegmentIndex {
    /// Build the index. Panics if `offsets` is not monotone from 0 to `src.len()` or a source is
    /// out of range (callers validate user input before).
    pub fn new(offsets: Vec<usize>, src: Vec<u32>, n_src: usize) -> SegmentIndex {
        assert!(
            !offsets.is_empty() && offsets[0] == 0 && *offsets.last().unwrap_or(&0) == src.len(),
            "segment offsets must run from 0 to the edge count"
        );
        assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "offsets monotone");
        let mut dst = Vec::with_capacity(src.len());
        for v in 0..offsets.len() - 1 {
            dst.extend(std::iter::repeat_n(v as u32, offsets[v + 1] - offsets[v]));
        }
        let mut count = vec![0usize; n_src + 1];
        for &u in &src {
            assert!((u as usize) < n_src, "source {u} out of range for {n_src}");
            count[u as usize + 1] += 1;
        }
        for i in 0..n_src {
            count[i + 1] += count[i];
        }
        let t_offsets = count.clone();
        let mut fill = count;
        let mut t_edges = vec![0u32; src.len()];
        for (e, &u) in src.iter().enumerate() {
            t_edges[fill[u as usize]] = e as u32;
            fill[u as usize] += 1;
        }
        SegmentIndex {
            offsets,
            src,
            n_src,
            t_offsets,
            t_edges,
            dst,
        }
    }
    /// Number of segments (destination rows).
    pub fn n_dst(&self) -> usize {
        self.offsets.len() - 1
    }
    /// Number of edges.
    pub fn n_edges(&self) -> usize {
        self.src.len()
    }
}

/// Rows `[r0, r1)` of a `[rows, f]` output, one task per fixed block of [`ROWS`] rows.
fn for_row_blocks<T: Float, F: Fn(usize, &mut [T]) + Sync>(out: &mut [T], f: usize, body: F) {
    if f == 0 {
        return;
    }
    out.par_chunks_mut(ROWS * f)
        .enumerate()
        .for_each(|(b, chunk)| {
            for (i, row) in chunk.chunks_mut(f).enumerate() {
                body(b * ROWS + i, row);
            }
        });
}

/// `out[v] = Σ_{e∈seg(v)} α_e X[src_e]` for `α` with `E` elements and `X: [n_src, F]`.
pub fn segment_weighted_sum<T: Float>(
    alpha: &ArrayD<T>,
    x: &ArrayD<T>,
    idx: &SegmentIndex,
) -> ArrayD<T> {
    let f = x.shape()[1];
    let (al, xs) = (super::par::std_slice(alpha), super::par::std_slice(x));
    let mut out = vec![T::zero(); idx.n_dst() * f];
    for_row_blocks(&mut out, f, |v, row| {
        for e in idx.offsets[v]..idx.offsets[v + 1] {
            let a = al[e];
            let u = idx.src[e] as usize;
            for (o, &xv) in row.iter_mut().zip(&xs[u * f..(u + 1) * f]) {
                *o = *o + a * xv;
            }
        }
    });
    ArrayD::from_shape_vec(IxDyn(&[idx.n_dst(), f]), out).expect("shape")
}

/// Backward of [`segment_weighted_sum`]: `(∂α, ∂X)` (each only if `need`), `∂α` in `α`'s shape.
pub fn segment_weighted_sum_backward<T: Float>(
    g: &ArrayD<T>,
    alpha: &ArrayD<T>,
    x: &ArrayD<T>,
    idx: &SegmentIndex,
    need: (bool, bool),
) -> (Option<ArrayD<T>>, Option<ArrayD<T>>) {
    let f = x.shape()[1];
    let (gs, al, xs) = (
        super::par::std_slice(g),
        super::par::std_slice(alpha),
        super::par::std_slice(x),
    );
    let d_alpha = need.0.then(|| {
        let mut d = vec![T::zero(); idx.n_edges()];
        d.par_chunks_mut(ROWS * 16)
            .enumerate()
            .for_each(|(b, chunk)| {
                for (i, de) in chunk.iter_mut().enumerate() {
                    let e = b * ROWS * 16 + i;
                    let (v, u) = (idx.dst[e] as usize, idx.src[e] as usize);
                    let mut s = T::zero();
                    for (&gv, &xv) in gs[v * f..(v + 1) * f].iter().zip(&xs[u * f..(u + 1) * f]) {
                        s = s + gv * xv;
                    }
                    *de = s;
                }
            });
        ArrayD::from_shape_vec(alpha.raw_dim(), d).expect("shape")
    });
    let d_x = need.1.then(|| {
        let mut d = vec![T::zero(); idx.n_src * f];
        for_row_blocks(&mut d, f, |u, row| {
            for &e in &idx.t_edges[idx.t_offsets[u]..idx.t_offsets[u + 1]] {
                let e = e as usize;
                let a = al[e];
                let v = idx.dst[e] as usize;
                for (o, &gv) in row.iter_mut().zip(&gs[v * f..(v + 1) * f]) {
                    *o = *o + a * gv;
                }
            }
        });
        ArrayD::from_shape_vec(IxDyn(&[idx.n_src, f]), d).expect("shape")
    });
    (d_alpha, d_x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_gather_scale_scatter() {
        // 3 destinations, 4 sources, 5 edges; reference by explicit loops.
        let idx = SegmentIndex::new(vec![0, 2, 2, 5], vec![1, 3, 0, 1, 2], 4);
        let alpha =
            ArrayD::from_shape_vec(IxDyn(&[5, 1]), vec![0.5, 2.0, -1.0, 3.0, 0.25]).unwrap();
        let x = ArrayD::from_shape_fn(IxDyn(&[4, 2]), |i| (i[0] * 2 + i[1]) as f64 + 1.0);
        let out = segment_weighted_sum(&alpha, &x, &idx);
        // Row 0: 0.5·x1 + 2·x3 = 0.5·[3,4] + 2·[7,8] = [15.5, 18];  row 1 empty;
        // row 2: −x0 + 3·x1 + 0.25·x2 = −[1,2] + [9,12] + [1.25,1.5] = [9.25, 11.5].
        assert_eq!(out.as_slice().unwrap(), &[15.5, 18.0, 0.0, 0.0, 9.25, 11.5]);
        let g =
            ArrayD::from_shape_vec(IxDyn(&[3, 2]), vec![1.0, -1.0, 5.0, 5.0, 2.0, 0.5]).unwrap();
        let (da, dx) = segment_weighted_sum_backward(&g, &alpha, &x, &idx, (true, true));
        // ∂α_e = ⟨g[dst e], x[src e]⟩: e0 ⟨[1,−1],[3,4]⟩ = −1, e1 ⟨[1,−1],[7,8]⟩ = −1,
        // e2 ⟨[2,.5],[1,2]⟩ = 3, e3 ⟨[2,.5],[3,4]⟩ = 8, e4 ⟨[2,.5],[5,6]⟩ = 13.
        assert_eq!(
            da.unwrap().as_slice().unwrap(),
            &[-1.0, -1.0, 3.0, 8.0, 13.0]
        );
        // ∂x0 = −1·g2 = [−2, −.5]; ∂x1 = .5·g0 + 3·g2 = [6.5, 1]; ∂x2 = .25·g2 = [.5, .125];
        // ∂x3 = 2·g0 = [2, −2].
        assert_eq!(
            dx.unwrap().as_slice().unwrap(),
            &[-2.0, -0.5, 6.5, 1.0, 0.5, 0.125, 2.0, -2.0]
        );
    }
}
