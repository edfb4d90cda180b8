//! Positive views of an [`ImageSet`]: GAT smoothing (method §3) or Gaussian kernel smoothing (method
//! §15, the "GAT→GKS" ablation), on the graph method §3.2 prescribes for the input's lattice.

use super::gat::{self, BlockHook, GatConfig, GatParams, GatState};
use super::gks::{gks_smooth, gks_smooth_images};
use super::graph::{Graph, HEX_RADIUS, KNN_K, SQUARE_RADIUS};
use crate::data::{ImageSet, Lattice, Section};
use crate::error::{DarlcError, Result};
use ndarray::{Array2, Array4};

/// Which denoiser makes the positive views: the config's [`Smoothing`] (one type for the config
/// key `smoothing.method`, the `--smoothing` flag and this module).
pub use crate::config::Smoothing as Method;
#[cfg(doc)]
use crate::config::Smoothing;

/// The smoothed images and what produced them.
#[derive(Clone, Debug)]
pub struct Smoothed {
    /// `[N, C, H, W]`, same layout as the raw images; background pixels 0.
    pub images: Array4<f32>,
    /// Node features `[n_spots, G]` after smoothing (sections only).
    pub features: Option<Array2<f32>>,
    /// The trained GAT (method `Gat`).
    pub params: Option<GatParams<f32>>,
    /// GAT loss before each step.
    pub losses: Vec<f64>,
}

/// The method §3.2 graph of a section: hex radius 1.1 (Visium), square radius 1.5 (legacy ST, MSI,
/// binned cells), symmetrised kNN with k = 6 (free coordinates); self-loops included.
pub fn section_graph(sec: &Section) -> Result<Graph> {
    match sec.lattice {
        Lattice::Hex => Graph::radius(&sec.coords, HEX_RADIUS),
        Lattice::Square => Graph::radius(&sec.coords, SQUARE_RADIUS),
        Lattice::Arbitrary => Graph::knn_symmetric(&sec.coords, KNN_K),
    }
}

/// The positive views of `set` (the images of [`smooth_image_set`]),
/// with a resumable GAT: training starts from `start` (a checkpoint's [`GatState`]; `None` = the
/// method §3.4 initialisation) and calls `hook` at the end of every block of epochs. Returns the
/// views and the GAT's final state (method `Gat`).
pub fn smooth_views_resumable(
    set: &ImageSet,
    method: Method,
    cfg: &GatConfig,
    start: Option<GatState<f32>>,
    hook: Option<BlockHook<'_, f32>>,
) -> Result<(Array4<f32>, Option<GatState<f32>>)> {
    let (n, c, h, w) = set.images.dim();
    match (&set.section, method) {
        (_, Method::Gks) => Ok((smooth_image_set(set, method, cfg)?.images, None)),
        (Some(sec), Method::Gat) => {
            let graph = section_graph(sec)?;
            if sec.expr.ncols() != n {
                return Err(DarlcError::Data(format!(
                    "section has {} genes but {n} images",
                    sec.expr.ncols()
                )));
            }
            let start = start.unwrap_or_else(|| GatState::fresh(sec.expr.ncols(), cfg));
            let tr =
                gat::train_resumable(sec.expr.view(), &graph, start, cfg, &mut |_, _| {}, hook)?;
            let features = gat::smoothed(&tr.params, &graph, sec.expr.view());
            let images = gat::scatter_to_images(features.view(), &sec.pixel, h, w)?;
            Ok((images, Some(final_state(tr))))
        }
        (None, Method::Gat) => {
            let start = start.unwrap_or_else(|| GatState::fresh(c, cfg));
            let tr = gat::train_shared_resumable(set.images.view(), start, cfg, hook)?;
            let images = gat::smoothed_images(&tr.params, set.images.view(), cfg.batch_images)?;
            Ok((images, Some(final_state(tr))))
        }
    }
}

/// A finished training as a state (no optimiser moments: nothing resumes after the last step).
fn final_state(tr: gat::GatTrained<f32>) -> GatState<f32> {
    GatState {
        params: tr.params,
        adam: vec![None; 4],
        losses: tr.losses,
    }
}

/// Smooth every image of `set` (method §3.5 / §15). Sections (ST, MSI, cells): one model on the
/// whole section (nodes = spots, channels = genes), smoothed values scattered back onto the
/// canvas. Image stacks: the shared GAT over per-image pixel graphs (method §3.1) or per-plane GKS.
pub fn smooth_image_set(set: &ImageSet, method: Method, cfg: &GatConfig) -> Result<Smoothed> {
    let (_, _, h, w) = set.images.dim();
    match &set.section {
        Some(sec) => {
            let graph = section_graph(sec)?;
            if sec.expr.ncols() != set.images.dim().0 {
                return Err(DarlcError::Data(format!(
                    "section has {} genes but {} images",
                    sec.expr.ncols(),
                    set.images.dim().0
                )));
            }
            let (features, params, losses) = match method {
                Method::Gat => {
                    let tr = gat::train(sec.expr.view(), &graph, cfg)?;
                    let sm = gat::smoothed(&tr.params, &graph, sec.expr.view());
                    (sm, Some(tr.params), tr.losses)
                }
                Method::Gks => (gks_smooth(&sec.coords, sec.expr.view())?, None, vec![]),
            };
            let images = gat::scatter_to_images(features.view(), &sec.pixel, h, w)?;
            Ok(Smoothed {
                images,
                features: Some(features),
                params,
                losses,
            })
        }
        None => {
            let (images, params, losses) = match method {
                Method::Gat => {
                    let tr = gat::train_shared(set.images.view(), cfg)?;
                    let sm = gat::smoothed_images(&tr.params, set.images.view(), cfg.batch_images)?;
                    (sm, Some(tr.params), tr.losses)
                }
                Method::Gks => (gks_smooth_images(set.images.view())?, None, vec![]),
            };
            Ok(Smoothed {
                images,
                features: None,
                params,
                losses,
            })
        }
    }
}
