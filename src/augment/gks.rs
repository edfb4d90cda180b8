//! Gaussian kernel smoothing, the `GAT→GKS` ablation (method §15, CHOICE 43).
//!
//! `x̃_v = Σ_u K_vu x_u / Σ_u K_vu` with `K_vu = exp(−‖q_u − q_v‖² / 2)` for `‖q_u − q_v‖ ≤ 3`
//! and 0 otherwise, on the same node coordinates as the GAT graph (Visium: spot pitches via
//! [`visium_coords`](super::graph::visium_coords); square lattices and images: `(row, col)`).
//!
//! The kernel support is the radius-3 [`Graph`]; its row-normalised weights are computed once in
//! f64 and stored in the graph's edge order. Each output row is a sum over its neighbours in
//! ascending index order, computed by one thread, so results are bit-identical for any number of
//! threads.

use super::graph::{Graph, pixel_coords};
use crate::error::{DarlcError, Result};
use crate::float::Float;
use ndarray::{Array2, Array4, ArrayView2, ArrayView4};
use rayon::prelude::*;

/// Kernel bandwidth σ in pitches/pixels (method §15, CHOICE 43).
pub const GKS_BANDWIDTH: f64 = 1.0;
/// Kernel truncation radius in pitches/pixels (method §15, CHOICE 43).
pub const GKS_TRUNCATION: f64 = 3.0;

/// Nodes per parallel work item (fixed, so the work split never depends on the thread count).
const NODE_CHUNK: usize = 64;

/// A truncated, row-normalised Gaussian kernel on fixed node coordinates (method §15).
#[derive(Clone, Debug)]
pub struct GksKernel {
    /// Kernel support: `u ∈ N(v)` iff `‖q_u − q_v‖ ≤ truncation` (self included).
    pub graph: Graph,
    /// `K_vu / Σ_u' K_vu'` for every edge `(v, u)`, in the graph's edge order.
    pub weights: Vec<f64>,
}

impl GksKernel {
    /// The method §15 kernel (bandwidth [`GKS_BANDWIDTH`], truncation [`GKS_TRUNCATION`]).
    pub fn new(coords: &[[f64; 2]]) -> Result<GksKernel> {
        Self::with_params(coords, GKS_BANDWIDTH, GKS_TRUNCATION)
    }

    /// A kernel `K_vu = exp(−‖q_u − q_v‖² / (2σ²))` truncated at `truncation` (method §15 with
    /// other constants, for sensitivity studies).
    pub fn with_params(coords: &[[f64; 2]], bandwidth: f64, truncation: f64) -> Result<GksKernel> {
        if !(bandwidth.is_finite() && bandwidth > 0.0) {
            return Err(DarlcError::param(
                "gks.bandwidth",
                format!("must be finite and > 0, got {bandwidth}"),
            ));
        }
        let graph = Graph::radius(coords, truncation)?;
        let inv = 1.0 / (2.0 * bandwidth * bandwidth);
        let mut weights = Vec::with_capacity(graph.num_edges());
        for v in 0..graph.n {
            let start = weights.len();
            for &u in graph.neighbors(v) {
                let (a, b) = (coords[v], coords[u as usize]);
                let d2 = (a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]);
                weights.push((-d2 * inv).exp());
            }
            // Σ_u K_vu ≥ K_vv = 1, so the division is safe.
            let total: f64 = weights[start..].iter().sum();
            for w in &mut weights[start..] {
                *w /= total;
            }
        }
        Ok(GksKernel { graph, weights })
    }

    /// The kernel on an `h × w` pixel grid, node `row·w + col` (natural images, method §3.1, §15).
    pub fn pixel_grid(h: usize, w: usize) -> Result<GksKernel> {
        Self::new(&pixel_coords(h, w))
    }

    /// Number of nodes.
    pub fn n(&self) -> usize {
        self.graph.n
    }

    /// Smooth a node-feature matrix `x: [n_nodes, C]` (method §15): row v of the result is
    /// `Σ_u K_vu x_u / Σ_u K_vu`. Parallel over fixed chunks of nodes; deterministic.
    pub fn smooth<T: Float>(&self, x: ArrayView2<T>) -> Result<Array2<T>> {
        let (n, c) = x.dim();
        if n != self.n() {
            return Err(DarlcError::param(
                "x",
                format!("{n} rows for a kernel on {} nodes", self.n()),
            ));
        }
        let x = x.as_standard_layout();
        let src = x.as_slice().expect("standard layout arrays are contiguous");
        let mut out = vec![T::zero(); n * c];
        if c > 0 {
            out.par_chunks_mut(NODE_CHUNK * c)
                .enumerate()
                .for_each(|(chunk, rows)| {
                    for (i, row) in rows.chunks_mut(c).enumerate() {
                        self.smooth_node(chunk * NODE_CHUNK + i, src, c, row);
                    }
                });
        }
        Ok(Array2::from_shape_vec((n, c), out).expect("shape matches the buffer"))
    }

    /// Smooth a stack of images `x: [N, C, H, W]` plane by plane on the `H × W` pixel grid this
    /// kernel was built for ([`GksKernel::pixel_grid`]). Parallel over images; deterministic.
    pub fn smooth_images<T: Float>(&self, x: ArrayView4<T>) -> Result<Array4<T>> {
        let (n_img, ch, h, w) = x.dim();
        if h * w != self.n() {
            return Err(DarlcError::param(
                "x",
                format!(
                    "images of {h}×{w} pixels for a kernel on {} nodes",
                    self.n()
                ),
            ));
        }
        let x = x.as_standard_layout();
        let src = x.as_slice().expect("standard layout arrays are contiguous");
        let plane = h * w;
        let mut out = vec![T::zero(); n_img * ch * plane];
        if plane > 0 && ch > 0 {
            out.par_chunks_mut(ch * plane)
                .enumerate()
                .for_each(|(img, dst)| {
                    for (k, dst_plane) in dst.chunks_mut(plane).enumerate() {
                        let off = (img * ch + k) * plane;
                        let src_plane = &src[off..off + plane];
                        for (v, o) in dst_plane.iter_mut().enumerate() {
                            self.smooth_node(v, src_plane, 1, std::slice::from_mut(o));
                        }
                    }
                });
        }
        Ok(Array4::from_shape_vec((n_img, ch, h, w), out).expect("shape matches the buffer"))
    }

    /// `dst[j] = Σ_{e=(v,u)} ŵ_e · src[u·row_stride + j]` for `j < dst.len()`, neighbours in
    /// ascending order.
    #[inline]
    fn smooth_node<T: Float>(&self, v: usize, src: &[T], row_stride: usize, dst: &mut [T]) {
        let edges = self.graph.offsets[v]..self.graph.offsets[v + 1];
        for (&u, &wt) in self.graph.nbrs[edges.clone()]
            .iter()
            .zip(&self.weights[edges])
        {
            let wt = T::of(wt);
            let base = u as usize * row_stride;
            let s = &src[base..base + dst.len()];
            for (d, &xs) in dst.iter_mut().zip(s) {
                *d = *d + wt * xs;
            }
        }
    }
}

/// Gaussian kernel smoothing of `x: [n_nodes, C]` on node coordinates with the method §15
/// constants (one-shot form of [`GksKernel::new`] + [`GksKernel::smooth`]).
pub fn gks_smooth<T: Float>(coords: &[[f64; 2]], x: ArrayView2<T>) -> Result<Array2<T>> {
    GksKernel::new(coords)?.smooth(x)
}

/// Gaussian kernel smoothing of every plane of an image stack `x: [N, C, H, W]` on its pixel
/// grid with the method §15 constants (natural images).
pub fn gks_smooth_images<T: Float>(x: ArrayView4<T>) -> Result<Array4<T>> {
    let (_, _, h, w) = x.dim();
    GksKernel::pixel_grid(h, w)?.smooth_images(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use ndarray::{Array, Axis, array, s};
    use rand::Rng;

    #[test]
    fn hand_computed_three_nodes() {
        // Nodes on a line at 0, 1, 3: every pair is within the truncation radius 3.
        // Expected values from python (math.exp):
        //   K01 = e^-0.5, K02 = e^-4.5, K12 = e^-2, x = [1, 2, 4]
        //   x̃0 = (1 + 2K01 + 4K02)/(1 + K01 + K02)   = 1.3955501751300576
        //   x̃1 = (K01 + 2 + 4K12)/(K01 + 1 + K12)    = 1.8071837304134064
        //   x̃2 = (K02 + 2K12 + 4)/(K02 + K12 + 1)    = 3.7348344254919628
        let q = [[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]];
        let x = array![[1.0f64], [2.0], [4.0]];
        let y = gks_smooth(&q, x.view()).unwrap();
        let want = [1.3955501751300576, 1.8071837304134064, 3.7348344254919628];
        for v in 0..3 {
            assert_relative_eq!(y[[v, 0]], want[v], max_relative = 1e-14);
        }
        // Just beyond the truncation radius there is no interaction: nodes 3.0001 apart.
        let q = [[0.0, 0.0], [3.0001, 0.0]];
        let y = gks_smooth(&q, array![[1.0f64], [5.0]].view()).unwrap();
        assert_eq!(y, array![[1.0], [5.0]]);
    }

    #[test]
    fn constant_stays_constant() {
        let q = pixel_coords(7, 9);
        let x = Array2::<f64>::from_elem((63, 3), 2.5);
        let y = gks_smooth(&q, x.view()).unwrap();
        // Weights sum to 1 up to rounding of ~30 terms: a few ulps of 2.5.
        for &v in &y {
            assert_relative_eq!(v, 2.5, max_relative = 1e-14);
        }
        let xf = Array2::<f32>::from_elem((63, 3), 2.5);
        let yf = gks_smooth(&q, xf.view()).unwrap();
        for &v in &yf {
            assert_relative_eq!(v, 2.5, max_relative = 1e-6);
        }
    }

    #[test]
    fn impulse_gives_normalised_kernel_column() {
        // x = e_c (impulse at node c) → x̃_v = K_vc / Σ_u K_vu: the c-th column of the
        // row-normalised kernel, recomputed here directly from the definition.
        let (h, w) = (6, 7);
        let q = pixel_coords(h, w);
        let c = 2 * w + 3;
        let mut x = Array2::<f64>::zeros((h * w, 1));
        x[[c, 0]] = 1.0;
        let y = gks_smooth(&q, x.view()).unwrap();
        for v in 0..h * w {
            let k = |a: usize, b: usize| {
                let d2 = (q[a][0] - q[b][0]).powi(2) + (q[a][1] - q[b][1]).powi(2);
                if d2 <= 9.0 { (-d2 / 2.0).exp() } else { 0.0 }
            };
            let total: f64 = (0..h * w).map(|u| k(v, u)).sum();
            assert_relative_eq!(
                y[[v, 0]],
                k(v, c) / total,
                max_relative = 1e-13,
                epsilon = 1e-300
            );
        }
    }

    #[test]
    fn linear_in_input_and_f32_matches_f64() {
        let q = pixel_coords(5, 6);
        let mut rng = crate::rng::stream(1, "test.gks.linear");
        let a = Array::from_shape_fn((30, 4), |_| rng.random::<f64>());
        let b = Array::from_shape_fn((30, 4), |_| rng.random::<f64>());
        let k = GksKernel::new(&q).unwrap();
        let lhs = k.smooth((&a * 2.0 - &b * 3.0).view()).unwrap();
        let rhs = k.smooth(a.view()).unwrap() * 2.0 - k.smooth(b.view()).unwrap() * 3.0;
        for (l, r) in lhs.iter().zip(&rhs) {
            assert_relative_eq!(l, r, epsilon = 1e-13);
        }
        let yf = k.smooth(a.mapv(|v| v as f32).view()).unwrap();
        let yd = k.smooth(a.view()).unwrap();
        for (f, d) in yf.iter().zip(&yd) {
            // method §16 forward tolerance for f32 against f64: rel 1e-4, abs 1e-5.
            assert_relative_eq!(*f as f64, *d, max_relative = 1e-4, epsilon = 1e-5);
        }
        // Column-major input gives the same result.
        let t = a.t().to_owned();
        assert_eq!(k.smooth(t.t()).unwrap(), yd);
        assert!(k.smooth(a.slice(s![..29, ..])).is_err());
    }

    #[test]
    fn image_stack_matches_per_plane_node_smoothing_and_threads() {
        let (n, ch, h, w) = (3, 2, 5, 4);
        let mut rng = crate::rng::stream(2, "test.gks.images");
        let x = Array::from_shape_fn((n, ch, h, w), |_| rng.random::<f32>());
        let y = gks_smooth_images(x.view()).unwrap();
        let k = GksKernel::new(&pixel_coords(h, w)).unwrap();
        for i in 0..n {
            for c in 0..ch {
                let plane = x.index_axis(Axis(0), i).index_axis(Axis(0), c).to_owned();
                let flat = plane.into_shape_with_order((h * w, 1)).unwrap();
                let want = k.smooth(flat.view()).unwrap();
                let got = y.slice(s![i, c, .., ..]).to_owned();
                assert_eq!(got.into_shape_with_order((h * w, 1)).unwrap(), want);
            }
        }
        // Bit-identical on 1 and 2 threads, for images and node matrices.
        let big = Array::from_shape_fn((300, 5), |_| rng.random::<f32>());
        let kb = GksKernel::new(&pixel_coords(15, 20)).unwrap();
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    (
                        gks_smooth_images(x.view()).unwrap(),
                        kb.smooth(big.view()).unwrap(),
                    )
                })
        };
        assert_eq!(run(1), run(2));
    }
}
