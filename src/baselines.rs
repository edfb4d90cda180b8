//! The baselines a user tries first (issue 6, `--method kmeans` and `--method gmm-pca`), producing
//! the same kind of result as DARLC so that the outputs and metrics are directly comparable:
//!
//! * **k-means** on the raw image vectors (tissue pixels only), k-means++ + Lloyd (method §6.5);
//! * **GMM on PCA**: the images projected on their top principal components, then a Gaussian
//!   mixture fitted with the same MAP-EM as DARLC's (method §6 with `ν ≡ ∞`, the SMM→GMM ablation).

use crate::error::{DarlcError, Result};
use crate::linalg::kmeans;
use crate::linalg::pca;
use crate::module2::smm::{self, ScalePrior, Smm, SmmConfig};
use crate::rng;
use ndarray::{Array2, ArrayView2, ArrayView4};

/// A clustering of N images.
#[derive(Clone, Debug)]
pub struct Clustering {
    /// Cluster of each image, `0..K`.
    pub labels: Vec<usize>,
    /// Per image: the maximum responsibility (mixtures) or, for k-means, the margin
    /// `1 − ‖x − c_own‖ / ‖x − c_second‖` ∈ [0, 1] (0 = on the border between two centres).
    pub confidence: Vec<f64>,
    /// The space the clusters were found in (`[N, q]` PCA scores), if not the raw vectors.
    pub embedding: Option<Array2<f64>>,
    /// Responsibilities `[N, K]` for mixture models.
    pub responsibilities: Option<Array2<f64>>,
    /// The fitted mixture, for mixture models.
    pub mixture: Option<Smm>,
}

/// Image vectors restricted to tissue pixels (all channels), `[N, C·|Ω|]` in f64: the space in
/// which DBIE/DBIP are measured (method §12.1) and in which the baselines cluster.
pub fn tissue_vectors(images: ArrayView4<f32>, mask: ArrayView2<u8>) -> Result<Array2<f64>> {
    let (n, c, h, w) = images.dim();
    if mask.dim() != (h, w) {
        return Err(DarlcError::Data(format!(
            "mask shape {:?} does not match images {h}×{w}",
            mask.dim()
        )));
    }
    let pix: Vec<(usize, usize)> = (0..h)
        .flat_map(|i| (0..w).map(move |j| (i, j)))
        .filter(|&(i, j)| mask[[i, j]] != 0)
        .collect();
    if pix.is_empty() {
        return Err(DarlcError::Data("the tissue mask is empty".into()));
    }
    Ok(Array2::from_shape_fn((n, c * pix.len()), |(r, col)| {
        let (ch, p) = (col / pix.len(), col % pix.len());
        images[[r, ch, pix[p].0, pix[p].1]] as f64
    }))
}

fn check_k(n: usize, k: usize) -> Result<()> {
    if k < 2 || k > n {
        return Err(DarlcError::param(
            "module2.clusters",
            format!("K = {k} must satisfy 2 ≤ K ≤ N = {n}"),
        ));
    }
    Ok(())
}

/// k-means on the rows of `x` with K clusters (stream `"baseline.kmeans++"`).
pub fn kmeans_baseline(x: ArrayView2<f64>, k: usize, seed: u64) -> Result<Clustering> {
    check_k(x.nrows(), k)?;
    let mut r = rng::stream(seed, "baseline.kmeans++");
    let km = kmeans::kmeans(x, k, &mut r)?;
    let confidence = x
        .rows()
        .into_iter()
        .zip(&km.labels)
        .map(|(row, &own)| {
            let mut d_own = 0.0;
            let mut d_second = f64::INFINITY;
            for (c, centre) in km.centres.rows().into_iter().enumerate() {
                let d = row
                    .iter()
                    .zip(centre.iter())
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
                    .sqrt();
                if c == own {
                    d_own = d;
                } else if d < d_second {
                    d_second = d;
                }
            }
            if d_second > 0.0 && d_second.is_finite() {
                (1.0 - d_own / d_second).clamp(0.0, 1.0)
            } else {
                1.0
            }
        })
        .collect();
    Ok(Clustering {
        labels: km.labels,
        confidence,
        embedding: None,
        responsibilities: None,
        mixture: None,
    })
}

/// A Gaussian mixture (MAP-EM, method §6 with Gaussian components) on the top `q` principal
/// components of the rows of `x` (streams `"baseline.pca"`, `"baseline.kmeans++"`).
pub fn gmm_pca_baseline(
    x: ArrayView2<f64>,
    k: usize,
    q: usize,
    max_iter: usize,
    seed: u64,
) -> Result<Clustering> {
    check_k(x.nrows(), k)?;
    let mut pr = rng::stream(seed, "baseline.pca");
    let fit_pca = pca::pca(x, q, &mut pr)?;
    let scores = fit_pca.transform(x);
    let cfg = SmmConfig {
        k,
        gaussian: true,
        scale_prior: ScalePrior::Default,
        max_iter,
        ..SmmConfig::new(k)
    };
    let mut kr = rng::stream(seed, "baseline.kmeans++");
    let fit = smm::fit(scores.view(), &cfg, &mut kr)?;
    let e = fit.smm.estep(scores.view())?;
    let (labels, confidence) = e.labels();
    Ok(Clustering {
        labels,
        confidence,
        embedding: Some(scores),
        responsibilities: Some(e.r.clone()),
        mixture: Some(fit.smm),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::metrics::ari;
    use ndarray::{Array2, Array4};
    use rand::Rng;

    /// 3 planted spatial patterns on 6×6 images (left block, right block, centre), 20 noisy
    /// copies each; the mask drops one corner pixel.
    fn planted() -> (Array4<f32>, Array2<u8>, Vec<usize>) {
        let mut r = rng::stream(11, "baseline.test");
        let n = 60;
        let mut imgs = Array4::<f32>::zeros((n, 1, 6, 6));
        let truth: Vec<usize> = (0..n).map(|i| i % 3).collect();
        for (i, &t) in truth.iter().enumerate() {
            for a in 0..6 {
                for b in 0..6 {
                    let on = match t {
                        0 => b < 2,
                        1 => b > 3,
                        _ => (2..4).contains(&a) && (2..4).contains(&b),
                    };
                    imgs[[i, 0, a, b]] = if on { 2.0 } else { 0.0 } + r.random_range(0.0..0.5);
                }
            }
        }
        let mut mask = Array2::<u8>::ones((6, 6));
        mask[[0, 0]] = 0;
        (imgs, mask, truth)
    }

    #[test]
    fn both_baselines_recover_planted_patterns_deterministically() {
        let (imgs, mask, truth) = planted();
        let x = tissue_vectors(imgs.view(), mask.view()).unwrap();
        assert_eq!(x.dim(), (60, 35));
        let km = kmeans_baseline(x.view(), 3, 1).unwrap();
        assert!(ari(&truth, &km.labels).unwrap() > 0.99);
        assert!(km.confidence.iter().all(|c| (0.0..=1.0).contains(c)));
        let gm = gmm_pca_baseline(x.view(), 3, 4, 100, 1).unwrap();
        assert!(ari(&truth, &gm.labels).unwrap() > 0.99);
        let r = gm.responsibilities.as_ref().unwrap();
        for row in r.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-12);
        }
        let gm2 = gmm_pca_baseline(x.view(), 3, 4, 100, 1).unwrap();
        assert_eq!(gm.labels, gm2.labels);
        assert_eq!(gm.responsibilities, gm2.responsibilities);
    }

    #[test]
    fn k_out_of_range_names_the_parameter() {
        let (imgs, mask, _) = planted();
        let x = tissue_vectors(imgs.view(), mask.view()).unwrap();
        let e = kmeans_baseline(x.view(), 61, 0).unwrap_err().to_string();
        assert!(
            e.contains("module2.clusters") && e.contains("N = 60"),
            "{e}"
        );
    }
}
