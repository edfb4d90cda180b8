//! Does a denoiser make images more spatially coherent? (issue 4, item 6.)
//!
//! Compares Moran's I ([`crate::eval::moran`]) of every channel (gene) before and after
//! smoothing (GAT, method §3.5, or GKS, method §15) on the spatial graph of the section.

use crate::augment::graph::Graph;
use crate::augment::smooth::{Smoothed, section_graph};
use crate::data::ImageSet;
use crate::data::preprocess::median;
use crate::error::{DarlcError, Result};
use crate::eval::moran::moran_i_columns;
use crate::float::Float;
use ndarray::ArrayView2;
use serde::Serialize;

/// Moran's I of raw and smoothed channels and their summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SmoothingReport {
    /// Moran's I of each raw channel (`None` if undefined, e.g. constant).
    pub moran_raw: Vec<Option<f64>>,
    /// Moran's I of each smoothed channel.
    pub moran_smoothed: Vec<Option<f64>>,
    /// Channels where both values are defined; the summaries below are over these only.
    pub n_compared: usize,
    /// Fraction of compared channels whose Moran's I is strictly higher after smoothing.
    pub fraction_raised: f64,
    /// Median raw Moran's I (mean of the two middle values for an even count).
    pub median_raw: f64,
    /// Median smoothed Moran's I.
    pub median_smoothed: f64,
}

/// Moran's I of each column of `raw` and `smoothed` (both `[n_nodes, C]`, nodes = graph nodes)
/// and the fraction of columns it rises for. Fails on a shape mismatch or when no column has a
/// defined Moran's I both before and after smoothing.
pub fn smoothing_gain<T: Float>(
    graph: &Graph,
    raw: ArrayView2<T>,
    smoothed: ArrayView2<T>,
) -> Result<SmoothingReport> {
    if raw.dim() != smoothed.dim() {
        return Err(DarlcError::param(
            "smoothed",
            format!(
                "shape {:?} differs from raw {:?}",
                smoothed.dim(),
                raw.dim()
            ),
        ));
    }
    let moran_raw = moran_i_columns(graph, raw)?;
    let moran_smoothed = moran_i_columns(graph, smoothed)?;
    let pairs: Vec<(f64, f64)> = moran_raw
        .iter()
        .zip(&moran_smoothed)
        .filter_map(|(&a, &b)| Some((a?, b?)))
        .collect();
    if pairs.is_empty() {
        return Err(DarlcError::Data(
            "no channel has a defined Moran's I both before and after smoothing".into(),
        ));
    }
    let raised = pairs.iter().filter(|(a, b)| b > a).count();
    // `pairs` is not empty (checked above), so each median exists.
    let median_of = |mut v: Vec<f64>| median(&mut v).unwrap_or(f64::NAN);
    let median_raw = median_of(pairs.iter().map(|p| p.0).collect());
    let median_smoothed = median_of(pairs.iter().map(|p| p.1).collect());
    Ok(SmoothingReport {
        n_compared: pairs.len(),
        fraction_raised: raised as f64 / pairs.len() as f64,
        median_raw,
        median_smoothed,
        moran_raw,
        moran_smoothed,
    })
}

/// Median of a non-empty list of finite values (mean of the two middle values for even length).
/// Moran's I of every gene of `set`'s section raw vs smoothed (`sm.features`, as
/// [`crate::augment::smooth::smooth_image_set`] returns them) on the section's method §3.2 graph;
/// `None` for image stacks (no section, no node features).
pub fn section_smoothing_gain(set: &ImageSet, sm: &Smoothed) -> Result<Option<SmoothingReport>> {
    match (&set.section, &sm.features) {
        (Some(sec), Some(features)) => {
            let graph = section_graph(sec)?;
            Ok(Some(smoothing_gain(
                &graph,
                sec.expr.view(),
                features.view(),
            )?))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::gks::GksKernel;
    use ndarray::{Array2, array};
    use rand::Rng;

    #[test]
    fn smoothing_noise_raises_morans_i() {
        // White noise has I ≈ −1/(n−1); after Gaussian smoothing neighbours share most of their
        // kernel support, so I must rise for (essentially) every column.
        let coords: Vec<[f64; 2]> = (0..12)
            .flat_map(|r| (0..12).map(move |c| [r as f64, c as f64]))
            .collect();
        let g = Graph::radius(&coords, 1.5).unwrap();
        let mut rng = crate::rng::stream(4, "test.quality.noise");
        let raw = Array2::from_shape_fn((144, 40), |_| rng.random::<f64>());
        let sm = GksKernel::new(&coords).unwrap().smooth(raw.view()).unwrap();
        let r = smoothing_gain(&g, raw.view(), sm.view()).unwrap();
        assert_eq!(r.n_compared, 40);
        assert_eq!(r.fraction_raised, 1.0);
        assert!(r.median_smoothed > 0.5 && r.median_raw.abs() < 0.2, "{r:?}");
    }

    #[test]
    fn undefined_columns_are_skipped_and_errors_reported() {
        let g = Graph::radius(&[[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]], 1.1).unwrap();
        // Column 0 constant (undefined), column 1: raw [0,1,0] (by hand: mean 1/3,
        // d = [−1/3, 2/3, −1/3], Σd² = 2/3, W = 4, Σ w d_i d_j = 2·2·(−2/9) = −8/9,
        // I = (3/4)(−8/9)/(2/3) = −1), smoothed [1,1,2] (by hand the same way: I = −1/4).
        let raw = array![[5.0, 0.0], [5.0, 1.0], [5.0, 0.0]];
        let sm = array![[5.0, 1.0], [5.0, 1.0], [5.0, 2.0]];
        let r = smoothing_gain(&g, raw.view(), sm.view()).unwrap();
        assert_eq!(r.moran_raw[0], None);
        approx::assert_relative_eq!(r.moran_raw[1].unwrap(), -1.0, epsilon = 1e-15);
        assert_eq!((r.n_compared, r.fraction_raised), (1, 1.0));
        assert!(smoothing_gain(&g, raw.view(), sm.t()).is_err());
        assert!(
            smoothing_gain(
                &g,
                raw.slice(ndarray::s![.., ..1]),
                sm.slice(ndarray::s![.., ..1])
            )
            .is_err()
        );
    }
}
