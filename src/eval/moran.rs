//! Moran's I, the global spatial autocorrelation of a node signal on a spatial graph (issue 4,
//! item 6: does smoothing make gene images more spatially coherent?).
//!
//! # Definition
//!
//! For a signal `x ∈ Rⁿ` on a [`Graph`] with binary weights `w_ij = 1` iff `j ∈ N(i)` and
//! `j ≠ i` (self-loops excluded, so the method §3.2 neighbourhoods are used without their
//! self-loops):
//!
//! ```text
//! I = (n / W) · Σ_i Σ_j w_ij (x_i − x̄)(x_j − x̄) / Σ_i (x_i − x̄)²,    W = Σ_ij w_ij
//! ```
//!
//! `I ≈ 1` for smooth patterns, `I ≈ −1/(n − 1)` on average for spatially random signals and
//! negative for alternating (checkerboard-like) ones. `I` is undefined — reported as `None` — when
//! the signal is constant (every value equal to the first, compared exactly), when `n < 2`, or
//! when the graph has no edge other than self-loops (`W = 0`).
//!
//! All sums are taken in f64 in ascending node/edge order, so results do not depend on the thread
//! count.

use crate::augment::graph::Graph;
use crate::error::{DarlcError, Result};
use crate::float::Float;
use ndarray::ArrayView2;
use rayon::prelude::*;

/// Columns per parallel work item (fixed, independent of the thread count).
const COL_CHUNK: usize = 32;

/// Moran's I of one node signal `x` (length `graph.n`), see the module docs for the definition.
/// Returns `None` for a constant signal, `n < 2` or a graph without non-self edges.
pub fn moran_i(graph: &Graph, x: &[f64]) -> Result<Option<f64>> {
    let view = ArrayView2::from_shape((x.len(), 1), x)
        .map_err(|e| DarlcError::param("x", e.to_string()))?;
    Ok(moran_i_columns(graph, view)?[0])
}

/// Moran's I of every column of `x: [n_nodes, G]` (one signal per column, e.g. one gene image
/// per column), parallel over fixed chunks of columns. Fails if `x` has not `graph.n` rows.
pub fn moran_i_columns<T: Float>(graph: &Graph, x: ArrayView2<T>) -> Result<Vec<Option<f64>>> {
    let (n, g) = x.dim();
    if n != graph.n {
        return Err(DarlcError::param(
            "x",
            format!("{n} rows for a graph on {} nodes", graph.n),
        ));
    }
    // W = number of ordered non-self pairs.
    let w_total = graph.edges().filter(|&(v, u)| v != u).count();
    if n < 2 || w_total == 0 {
        return Ok(vec![None; g]);
    }
    let x = x.as_standard_layout();
    let src = x.as_slice().expect("standard layout arrays are contiguous");
    let starts: Vec<usize> = (0..g).step_by(COL_CHUNK).collect();
    let per_chunk: Vec<Vec<Option<f64>>> = starts
        .par_iter()
        .map(|&c0| {
            let c1 = (c0 + COL_CHUNK).min(g);
            moran_chunk(graph, src, g, c0, c1, w_total)
        })
        .collect();
    Ok(per_chunk.into_iter().flatten().collect())
}

/// Moran's I of columns `c0..c1` of the row-major `[n, g]` matrix `src`.
fn moran_chunk<T: Float>(
    graph: &Graph,
    src: &[T],
    g: usize,
    c0: usize,
    c1: usize,
    w_total: usize,
) -> Vec<Option<f64>> {
    let n = graph.n;
    let m = c1 - c0;
    let row = |v: usize| &src[v * g + c0..v * g + c1];
    // Exact constancy test and means.
    let first = row(0);
    let mut constant = vec![true; m];
    let mut mean = vec![0.0f64; m];
    for v in 0..n {
        for (j, &xv) in row(v).iter().enumerate() {
            constant[j] &= xv == first[j];
            mean[j] += xv.f64();
        }
    }
    for mu in &mut mean {
        *mu /= n as f64;
    }
    // Σ_i (x_i − x̄)² and Σ_i (x_i − x̄) Σ_{j ∈ N(i), j ≠ i} (x_j − x̄).
    let mut denom = vec![0.0f64; m];
    let mut numer = vec![0.0f64; m];
    let mut nbr_sum = vec![0.0f64; m];
    for v in 0..n {
        nbr_sum.iter_mut().for_each(|s| *s = 0.0);
        for &u in graph.neighbors(v) {
            let u = u as usize;
            if u != v {
                for ((s, &xu), mu) in nbr_sum.iter_mut().zip(row(u)).zip(&mean) {
                    *s += xu.f64() - mu;
                }
            }
        }
        for j in 0..m {
            let dv = row(v)[j].f64() - mean[j];
            denom[j] += dv * dv;
            numer[j] += dv * nbr_sum[j];
        }
    }
    let scale = n as f64 / w_total as f64;
    (0..m)
        .map(|j| {
            if constant[j] || denom[j] <= 0.0 {
                None
            } else {
                Some(scale * numer[j] / denom[j])
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use ndarray::Array2;
    use rand::Rng;

    use crate::augment::graph::pixel_coords;

    #[test]
    fn checkerboard_on_rook_graph_is_minus_one() {
        // 4×4 grid, 4-neighbourhood (radius 1). Checkerboard x = ±1 has mean 0 and every
        // neighbour pair has opposite signs: Σ w x_i x_j = −W, Σ x² = n, so I = (n/W)(−W)/n = −1.
        let g = Graph::radius(&pixel_coords(4, 4), 1.0).unwrap();
        let x: Vec<f64> = (0..16)
            .map(|i| if (i / 4 + i % 4) % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        assert_relative_eq!(moran_i(&g, &x).unwrap().unwrap(), -1.0, epsilon = 1e-15);
    }

    #[test]
    fn hand_computed_small_cases() {
        // 2×2 grid, 8-neighbourhood = complete graph K4, W = 12. x = [1, −1, −1, 1]: mean 0,
        // Σx² = 4, Σ_{i≠j} x_i x_j = (Σx)² − Σx² = −4, so I = (4/12)(−4)/4 = −1/3.
        let g = Graph::radius(&pixel_coords(2, 2), 1.5).unwrap();
        let i = moran_i(&g, &[1.0, -1.0, -1.0, 1.0]).unwrap().unwrap();
        assert_relative_eq!(i, -1.0 / 3.0, epsilon = 1e-15);
        // Path 0–1–2–3, x = [0, 1, 2, 3]: mean 1.5, d = [−1.5, −.5, .5, 1.5], Σd² = 5, W = 6,
        // Σ w d_i d_j = 2(0.75 − 0.25 + 0.75) = 2.5, so I = (4/6)·2.5/5 = 1/3.
        let g = Graph::radius(&[[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]], 1.1).unwrap();
        let i = moran_i(&g, &[0.0, 1.0, 2.0, 3.0]).unwrap().unwrap();
        assert_relative_eq!(i, 1.0 / 3.0, epsilon = 1e-15);
    }

    #[test]
    fn undefined_cases_are_none() {
        let g = Graph::radius(&pixel_coords(3, 3), 1.5).unwrap();
        assert_eq!(moran_i(&g, &[0.1; 9]).unwrap(), None);
        // No non-self edges.
        let lonely = Graph::radius(&[[0.0, 0.0], [5.0, 0.0]], 1.0).unwrap();
        assert_eq!(moran_i(&lonely, &[1.0, 2.0]).unwrap(), None);
        assert!(moran_i(&g, &[1.0, 2.0]).is_err());
    }

    #[test]
    fn smooth_gradient_is_positive() {
        // A linear ramp along the rows of a 10×10 grid is strongly autocorrelated.
        let g = Graph::radius(&pixel_coords(10, 10), 1.5).unwrap();
        let x: Vec<f64> = (0..100).map(|i| (i / 10) as f64).collect();
        let i = moran_i(&g, &x).unwrap().unwrap();
        assert!(i > 0.8, "I = {i}");
    }

    #[test]
    fn random_signals_average_minus_one_over_n_minus_one() {
        // Under randomisation E[I] = −1/(n − 1) (Cliff & Ord). Check the mean over 2000 i.i.d.
        // uniform signals lies within 4 standard errors of it.
        let g = Graph::radius(&pixel_coords(10, 10), 1.5).unwrap();
        let cols = 2000;
        let mut rng = crate::rng::stream(3, "test.moran.random");
        let x = Array2::from_shape_fn((100, cols), |_| rng.random::<f64>());
        let is: Vec<f64> = moran_i_columns(&g, x.view())
            .unwrap()
            .into_iter()
            .map(|i| i.unwrap())
            .collect();
        let mean = is.iter().sum::<f64>() / cols as f64;
        let var = is.iter().map(|i| (i - mean).powi(2)).sum::<f64>() / (cols - 1) as f64;
        let se = (var / cols as f64).sqrt();
        let expect = -1.0 / 99.0;
        assert!(
            (mean - expect).abs() < 4.0 * se,
            "mean {mean}, E {expect}, se {se}"
        );
        // The f32 path and the single-signal path agree with the f64 matrix path.
        let i0 = moran_i(&g, x.column(0).to_vec().as_slice())
            .unwrap()
            .unwrap();
        assert_eq!(i0, is[0]);
        let f = moran_i_columns(&g, x.mapv(|v| v as f32).view()).unwrap();
        for (a, b) in f.iter().zip(&is) {
            assert_relative_eq!(a.unwrap(), *b, epsilon = 1e-5);
        }
        // Bit-identical on 1 and 2 threads.
        let run = |t: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
                .install(|| moran_i_columns(&g, x.view()).unwrap())
        };
        assert_eq!(run(1), run(2));
    }
}
