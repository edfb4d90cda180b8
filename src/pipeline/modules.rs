//! Gene-module scores (issue 25): where in the tissue each cluster of genes is expressed.
//!
//! A cluster of genes that share a spatial pattern is a *gene module*; its map over the tissue is
//! what a scientist reads from gene clustering. Per spot `s` and cluster `j` with member genes
//! `C_j`, the module score is the mean over the members of each gene's preprocessed value
//! (method §2.1) scaled to that gene's maximum over the spots:
//!
//! ```text
//! score[s, j] = (1 / |C_j|) · Σ_{g ∈ C_j} x[s, g] / max_{s'} x[s', g]
//! ```
//!
//! Scaling each gene to its maximum makes every member weigh the same whatever its expression
//! level, so a score lies in [0, 1] for the non-negative values of method §2.1 and §2.3. A gene
//! whose maximum is not positive (all zero) contributes 0; an empty cluster's column is 0.
//! Written to `darlc.h5ad` as `obsm["darlc_module_score"]` and drawn in the module maps.

use crate::error::{DarlcError, Result};
use ndarray::{Array2, ArrayView2};

/// Module scores `[n_spots, k]` of the clusters `labels` (one per gene, in `0..k`) over the
/// section's expression `expr` (`[n_spots, G]`, [`crate::data::Section::expr`]); see the module
/// doc for the formula.
///
/// Deterministic: each gene's maximum and each spot's sum run in a fixed order (spots, then genes
/// in input order), accumulated in f64 and rounded to f32 once.
///
/// Errors when `labels` does not have one entry per gene or holds a cluster ≥ `k`.
pub fn module_scores(expr: ArrayView2<f32>, labels: &[usize], k: usize) -> Result<Array2<f32>> {
    let (n_spots, n_genes) = expr.dim();
    if labels.len() != n_genes {
        return Err(DarlcError::Data(format!(
            "module scores: {} cluster labels for {n_genes} genes",
            labels.len()
        )));
    }
    if let Some((g, &l)) = labels.iter().enumerate().find(|&(_, &l)| l >= k) {
        return Err(DarlcError::Data(format!(
            "module scores: gene {g} is in cluster {l}, but K = {k}"
        )));
    }
    // 1 / max_s x[s, g], or 0 for a gene that is nowhere positive.
    let inv_max: Vec<f64> = (0..n_genes)
        .map(|g| {
            let m = expr
                .column(g)
                .iter()
                .fold(f32::NEG_INFINITY, |a, &v| a.max(v));
            if m > 0.0 { 1.0 / f64::from(m) } else { 0.0 }
        })
        .collect();
    let mut size = vec![0usize; k];
    for &l in labels {
        size[l] += 1;
    }
    let mut scores = Array2::<f32>::zeros((n_spots, k));
    let mut sums = vec![0.0f64; k];
    for (s, row) in expr.rows().into_iter().enumerate() {
        sums.iter_mut().for_each(|v| *v = 0.0);
        for ((&v, &l), &im) in row.iter().zip(labels).zip(&inv_max) {
            sums[l] += f64::from(v) * im;
        }
        for j in 0..k {
            if size[j] > 0 {
                scores[[s, j]] = (sums[j] / size[j] as f64) as f32;
            }
        }
    }
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// 3 spots × 4 genes, K = 3 with cluster 2 empty, computed by hand:
    /// gene maxima 2, 4, 0 (all zero), 1; genes 0 and 1 in cluster 0, genes 2 and 3 in cluster 1.
    #[test]
    fn hand_computed_scores() {
        let expr = array![
            [2.0f32, 1.0, 0.0, 0.0],
            [1.0, 4.0, 0.0, 0.5],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let s = module_scores(expr.view(), &[0, 0, 1, 1], 3).unwrap();
        // spot 0: cluster 0 = (2/2 + 1/4) / 2 = 0.625; cluster 1 = (0 + 0/1) / 2 = 0
        // spot 1: cluster 0 = (1/2 + 4/4) / 2 = 0.75;  cluster 1 = (0 + 0.5/1) / 2 = 0.25
        // spot 2: cluster 0 = 0;                       cluster 1 = (0 + 1/1) / 2 = 0.5
        let want = array![[0.625f32, 0.0, 0.0], [0.75, 0.25, 0.0], [0.0, 0.5, 0.0]];
        assert_eq!(s, want);
    }

    #[test]
    fn rejects_bad_labels() {
        let expr = Array2::<f32>::zeros((2, 3));
        assert!(module_scores(expr.view(), &[0, 1], 2).is_err());
        assert!(module_scores(expr.view(), &[0, 1, 2], 2).is_err());
    }

    /// Every score lies in [0, 1] on non-negative values, and a single-gene cluster's column is
    /// that gene scaled to its maximum (1 at its peak spot).
    #[test]
    fn single_gene_cluster_is_the_scaled_gene() {
        let expr = array![[0.0f32, 3.0], [1.5, 6.0], [3.0, 0.0]];
        let s = module_scores(expr.view(), &[1, 0], 2).unwrap();
        assert_eq!(s.column(0).to_vec(), vec![0.5, 1.0, 0.0]);
        assert_eq!(s.column(1).to_vec(), vec![0.0, 0.5, 1.0]);
        assert!(s.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}
