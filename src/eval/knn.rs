//! Exact k-nearest-neighbour graphs of embeddings, the input of Leiden ([P] §4.3.2).
//!
//! Distances for a block of rows against all rows come from one matrix product (ndarray's `dot`,
//! i.e. matrixmultiply's GEMM): Euclidean `‖a‖² + ‖b‖² − 2a·b` (clamped at 0), cosine
//! `1 − â·b̂` on L2-normalised rows (denominator `max(‖a‖, 1e-12)`, method §16). Row blocks of fixed
//! size are processed in parallel and each row's neighbours depend only on that row's distances,
//! so results are identical on any number of threads. Neighbours are the k smallest distances
//! excluding the row itself, ties broken by lower index.
//!
//! The graph is the symmetrised kNN relation with weights `w_ij = (b_ij + b_ji)/2`, where
//! `b_ij = 1` if j is among the k nearest neighbours of i: mutual neighbours get weight 1,
//! one-sided neighbours 0.5.

use crate::error::{DarlcError, Result};
use crate::eval::leiden::Graph;
use ndarray::{Array2, ArrayView2, Axis, s};
use rayon::prelude::*;

/// The distance used to find neighbours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    Euclidean,
    Cosine,
}

const BLOCK: usize = 256;

/// The `k` nearest neighbours of every row of `x` (excluding itself), nearest first, ties by
/// lower index. Errors unless `1 ≤ k < N` and every entry is finite.
pub fn knn_indices(x: ArrayView2<f64>, k: usize, metric: Metric) -> Result<Vec<Vec<usize>>> {
    let n = x.nrows();
    if k == 0 || k >= n {
        return Err(DarlcError::param(
            "k",
            format!("need 1 ≤ k < number of items ({n}), got {k}"),
        ));
    }
    if let Some(((i, j), _)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(DarlcError::Data(format!(
            "kNN: embedding row {i}, column {j} is not finite"
        )));
    }
    let y: Array2<f64> = match metric {
        Metric::Euclidean => x.to_owned(),
        Metric::Cosine => {
            let mut y = x.to_owned();
            for mut row in y.axis_iter_mut(Axis(0)) {
                let norm = row.dot(&row).sqrt().max(1e-12);
                row.mapv_inplace(|v| v / norm);
            }
            y
        }
    };
    let sq: Vec<f64> = y.axis_iter(Axis(0)).map(|r| r.dot(&r)).collect();
    let yt = y.t();
    let n_blocks = n.div_ceil(BLOCK);
    let blocks: Vec<Vec<Vec<usize>>> = (0..n_blocks)
        .into_par_iter()
        .map(|b| {
            let lo = b * BLOCK;
            let hi = (lo + BLOCK).min(n);
            let gram = y.slice(s![lo..hi, ..]).dot(&yt);
            (lo..hi)
                .map(|i| {
                    let row = gram.row(i - lo);
                    nearest(
                        k,
                        (0..n).filter(|&j| j != i).map(|j| {
                            let d = match metric {
                                Metric::Euclidean => (sq[i] + sq[j] - 2.0 * row[j]).max(0.0),
                                Metric::Cosine => 1.0 - row[j],
                            };
                            (d, j)
                        }),
                    )
                })
                .collect()
        })
        .collect();
    Ok(blocks.into_iter().flatten().collect())
}

/// The `k` smallest `(distance, index)` pairs of a stream with increasing indices, nearest first,
/// ties by lower index: a sorted buffer of at most `k` entries (a later equal distance never
/// displaces an earlier one because its index is larger).
fn nearest(k: usize, cands: impl Iterator<Item = (f64, usize)>) -> Vec<usize> {
    let mut buf: Vec<(f64, usize)> = Vec::with_capacity(k + 1);
    for (d, j) in cands {
        if buf.len() == k && d.total_cmp(&buf[k - 1].0).is_ge() {
            continue;
        }
        let pos = buf.partition_point(|&(e, _)| e.total_cmp(&d).is_le());
        buf.insert(pos, (d, j));
        buf.truncate(k);
    }
    buf.iter().map(|&(_, j)| j).collect()
}

/// The symmetrised kNN graph of the rows of `x` (module doc for the weights).
pub fn knn_graph(x: ArrayView2<f64>, k: usize, metric: Metric) -> Result<Graph> {
    let nn = knn_indices(x, k, metric)?;
    let edges: Vec<(usize, usize, f64)> = nn
        .iter()
        .enumerate()
        .flat_map(|(i, js)| js.iter().map(move |&j| (i, j, 0.5)))
        .collect();
    Graph::from_edges(x.nrows(), &edges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use rand::Rng;

    #[test]
    fn neighbours_by_hand_with_ties() {
        // Points on a line at 0, 1, 2, 10. Row 1 has a tie (0 and 2 both at distance 1) →
        // lower index first.
        let x = array![[0.0], [1.0], [2.0], [10.0]];
        let nn = knn_indices(x.view(), 2, Metric::Euclidean).unwrap();
        assert_eq!(nn, vec![vec![1, 2], vec![0, 2], vec![1, 0], vec![2, 1]]);
        // Graph weights: 0–1 mutual (1.0), 0–2 mutual (0 lists 2, 2 lists 0) → 1.0,
        // 1–2 mutual → 1.0, 3–2 and 3–1 one-sided → 0.5.
        let g = knn_graph(x.view(), 2, Metric::Euclidean).unwrap();
        assert_eq!(
            g.neighbors(2).collect::<Vec<_>>(),
            vec![(0, 1.0), (1, 1.0), (3, 0.5)]
        );
        assert_eq!(g.neighbors(3).collect::<Vec<_>>(), vec![(1, 0.5), (2, 0.5)]);
    }

    #[test]
    fn cosine_ignores_scale() {
        // (1,0) and (5,0) have cosine distance 0; (0,1) is orthogonal; (1,1) in between.
        let x = array![[1.0, 0.0], [0.0, 1.0], [5.0, 0.0], [1.0, 1.0]];
        let nn = knn_indices(x.view(), 1, Metric::Cosine).unwrap();
        assert_eq!(nn, vec![vec![2], vec![3], vec![0], vec![0]]);
    }

    #[test]
    fn matches_brute_force_and_is_thread_independent() {
        let mut r = crate::rng::stream(3, "test.knn");
        // More rows than one block, so several blocks run in parallel.
        let x = Array2::from_shape_fn((600, 5), |_| r.random_range(-1.0..1.0));
        let a = knn_indices(x.view(), 7, Metric::Euclidean).unwrap();
        for i in [0usize, 299, 599] {
            let mut d: Vec<(f64, usize)> = (0..600)
                .filter(|&j| j != i)
                .map(|j| {
                    let diff = &x.row(i) - &x.row(j);
                    (diff.dot(&diff), j)
                })
                .collect();
            d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let want: Vec<usize> = d[..7].iter().map(|p| p.1).collect();
            assert_eq!(a[i], want);
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = pool.install(|| knn_indices(x.view(), 7, Metric::Euclidean).unwrap());
        assert_eq!(a, b);
    }

    #[test]
    fn bad_k_and_nan_are_errors() {
        let x = array![[0.0], [1.0]];
        assert!(knn_indices(x.view(), 2, Metric::Euclidean).is_err());
        assert!(knn_indices(x.view(), 0, Metric::Euclidean).is_err());
        let x = array![[0.0], [f64::NAN], [1.0]];
        assert!(knn_indices(x.view(), 1, Metric::Euclidean).is_err());
    }
}
