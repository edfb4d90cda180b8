//! The seeding similarity of method §7: Pearson correlation of (smoothed, tissue-restricted) image
//! vectors, kNN sparsification with k = 15, symmetrised, negatives dropped.
//!
//! Built for N ≈ 18,000 rows of ≈ 4,000 pixels without ever holding an N×N matrix: rows are
//! standardised on the fly in fixed blocks, each unordered block pair `(I, J ≥ I)` is one GEMM,
//! and every row keeps only its best k candidates. Each correlation `r_ij` is computed once (in
//! the block pair that contains it) and used for both rows, so S is exactly symmetric. The kNN
//! lists are a deterministic function of the `r` values (total order: larger r first, then lower
//! index), so the result does not depend on the thread count or on the merge order.

use crate::error::{DarlcError, Result};
use crate::float::Float;
use crate::linalg::sparse::Csr;
use ndarray::ArrayView2;
use rayon::prelude::*;

/// Neighbourhood size of the seeding graph (method §7, Scanpy's default).
pub const KNN_K: usize = 15;
/// Rows per GEMM block.
const BLOCK: usize = 384;
/// Block pairs computed in parallel before their candidates are merged.
const PAIRS_PER_BATCH: usize = 8;

/// The best `cap` candidates `(r, j)` of one row, best first: larger r, ties → lower j.
#[derive(Debug, Clone)]
struct TopK {
    cap: usize,
    items: Vec<(f64, usize)>,
}

#[inline]
fn better(a: (f64, usize), b: (f64, usize)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

impl TopK {
    fn new(cap: usize) -> Self {
        TopK {
            cap,
            items: Vec::with_capacity(cap + 1),
        }
    }

    #[inline]
    fn push(&mut self, c: (f64, usize)) {
        if self.items.len() == self.cap {
            if self.cap == 0 || !better(c, self.items[self.cap - 1]) {
                return;
            }
            self.items.pop();
        }
        let mut p = self.items.len();
        while p > 0 && better(c, self.items[p - 1]) {
            p -= 1;
        }
        self.items.insert(p, c);
    }
}

/// Per-row standardisation: `(mean, 1/‖y − ȳ‖)`, or `None` for a zero-variance row (all values
/// equal), whose correlations are all 0 (§16).
fn row_stats<T: Float>(y: ArrayView2<T>) -> Vec<Option<(f64, f64)>> {
    let n_pix = y.ncols();
    (0..y.nrows())
        .into_par_iter()
        .map(|i| {
            let row = y.row(i);
            let first = row[0].f64();
            if row.iter().all(|v| v.f64() == first) {
                return None;
            }
            let mean = row.iter().fold(0.0, |s, v| s + v.f64()) / n_pix as f64;
            let ss = row.iter().fold(0.0, |s, v| {
                let c = v.f64() - mean;
                s + c * c
            });
            Some((mean, 1.0 / ss.sqrt()))
        })
        .collect()
}

/// Standardised rows `a..b` as a row-major `[(b−a), n_pix]` f64 buffer.
fn standardised_block<T: Float>(
    y: ArrayView2<T>,
    stats: &[Option<(f64, f64)>],
    a: usize,
    b: usize,
) -> Vec<f64> {
    let n_pix = y.ncols();
    let mut out = vec![0.0; (b - a) * n_pix];
    for i in a..b {
        if let Some((mean, inv)) = stats[i] {
            let dst = &mut out[(i - a) * n_pix..(i - a + 1) * n_pix];
            for (d, v) in dst.iter_mut().zip(y.row(i).iter()) {
                *d = (v.f64() - mean) * inv;
            }
        }
    }
    out
}

/// For every row i, its `k` nearest rows `j ≠ i` by Pearson correlation, best first
/// (`(r_ij, j)`, larger r first, ties → lower j) — method §7 steps 1–3. `y` is `[N, n_pix]`.
pub fn pearson_knn<T: Float>(y: ArrayView2<T>, k: usize) -> Result<Vec<Vec<(f64, usize)>>> {
    pearson_knn_blocked(y, k, BLOCK)
}

/// [`pearson_knn`] with an explicit block size (exposed for tests of the blocking).
pub fn pearson_knn_blocked<T: Float>(
    y: ArrayView2<T>,
    k: usize,
    block: usize,
) -> Result<Vec<Vec<(f64, usize)>>> {
    let (n, n_pix) = y.dim();
    if n_pix == 0 {
        return Err(DarlcError::Data(
            "similarity: image vectors have no pixels".into(),
        ));
    }
    if let Some(p) = y.iter().position(|v| !v.f64().is_finite()) {
        return Err(DarlcError::Numerical(format!(
            "similarity: image {} has a non-finite pixel value",
            p / n_pix
        )));
    }
    let block = block.max(1);
    let k = k.min(n.saturating_sub(1));
    let stats = row_stats(y);
    let nb = n.div_ceil(block);
    let pairs: Vec<(usize, usize)> = (0..nb)
        .flat_map(|bi| (bi..nb).map(move |bj| (bi, bj)))
        .collect();
    let mut global: Vec<TopK> = (0..n).map(|_| TopK::new(k)).collect();
    for batch in pairs.chunks(PAIRS_PER_BATCH) {
        let locals: Vec<Vec<(usize, TopK)>> = batch
            .par_iter()
            .map(|&(bi, bj)| block_pair(y, &stats, block, bi, bj, k))
            .collect();
        for local in locals {
            for (row, top) in local {
                for c in top.items {
                    global[row].push(c);
                }
            }
        }
    }
    Ok(global.into_iter().map(|t| t.items).collect())
}

/// Candidates from one block pair: `C = Ŷ_I Ŷ_Jᵀ` by GEMM, then per-row top-k.
fn block_pair<T: Float>(
    y: ArrayView2<T>,
    stats: &[Option<(f64, f64)>],
    block: usize,
    bi: usize,
    bj: usize,
    k: usize,
) -> Vec<(usize, TopK)> {
    let (n, n_pix) = y.dim();
    let (a0, a1) = (bi * block, ((bi + 1) * block).min(n));
    let (b0, b1) = (bj * block, ((bj + 1) * block).min(n));
    let (ma, mb) = (a1 - a0, b1 - b0);
    let ya = standardised_block(y, stats, a0, a1);
    let yb = if bi == bj {
        Vec::new()
    } else {
        standardised_block(y, stats, b0, b1)
    };
    let ybr = if bi == bj { &ya } else { &yb };
    let mut c = vec![0.0f64; ma * mb];
    // SAFETY: ya is ma×n_pix row-major; ybr is mb×n_pix row-major, read as its transpose
    // (n_pix×mb, strides (1, n_pix)); c is ma×mb row-major and aliases neither.
    unsafe {
        f64::gemm(
            ma,
            n_pix,
            mb,
            1.0,
            ya.as_ptr(),
            n_pix as isize,
            1,
            ybr.as_ptr(),
            1,
            n_pix as isize,
            0.0,
            c.as_mut_ptr(),
            mb as isize,
            1,
        );
    }
    let clamp = |v: f64| v.clamp(-1.0, 1.0);
    let mut rows_a: Vec<TopK> = (0..ma).map(|_| TopK::new(k)).collect();
    let mut out = Vec::new();
    if bi == bj {
        for i in 0..ma {
            for j in i + 1..ma {
                let v = clamp(c[i * mb + j]);
                rows_a[i].push((v, a0 + j));
                rows_a[j].push((v, a0 + i));
            }
        }
    } else {
        let mut rows_b: Vec<TopK> = (0..mb).map(|_| TopK::new(k)).collect();
        for i in 0..ma {
            for j in 0..mb {
                let v = clamp(c[i * mb + j]);
                rows_a[i].push((v, b0 + j));
                rows_b[j].push((v, a0 + i));
            }
        }
        out.extend(rows_b.into_iter().enumerate().map(|(j, t)| (b0 + j, t)));
    }
    out.extend(rows_a.into_iter().enumerate().map(|(i, t)| (a0 + i, t)));
    out
}

/// The seeding similarity `S` of method §7 as a symmetric CSR matrix: `S_ij = max(0, r_ij)` if
/// `j ∈ kNN(i)` or `i ∈ kNN(j)`, else 0, `S_ii = 0`. Entries that would be 0 (non-positive r)
/// are not stored.
pub fn seeding_similarity<T: Float>(y: ArrayView2<T>, k: usize) -> Result<Csr> {
    let knn = pearson_knn(y, k)?;
    Ok(symmetrise_knn(&knn))
}

/// Union-symmetrisation of kNN lists (§7 step 3), dropping non-positive correlations.
pub fn symmetrise_knn(knn: &[Vec<(f64, usize)>]) -> Csr {
    let n = knn.len();
    let mut rows: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    for (i, list) in knn.iter().enumerate() {
        for &(r, j) in list {
            if r > 0.0 {
                rows[i].push((j, r));
                rows[j].push((i, r));
            }
        }
    }
    Csr::from_rows(n, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topk_keeps_best_with_index_ties() {
        let mut t = TopK::new(3);
        for c in [(0.5, 7), (0.9, 3), (0.5, 2), (0.1, 0), (0.9, 1), (0.5, 1)] {
            t.push(c);
        }
        assert_eq!(t.items, vec![(0.9, 1), (0.9, 3), (0.5, 1)]);
    }
}
