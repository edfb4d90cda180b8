//! The symmetric normalised Laplacian `L_sym = I₊ − D^{−1/2} S D^{−1/2}` of method §7 as a sparse
//! operator, for the Laplacian regulariser (Eq. 17) and the eigengap (§10, Eq. 24).

use crate::error::{DarlcError, Result};
use crate::float::Float;
use crate::linalg::sparse::Csr;
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// Rows per parallel task (fixed).
const CHUNK: usize = 1024;

/// `L_sym = I₊ − D^{−1/2} S D^{−1/2}` with `d_i = Σ_j S_ij`, `0^{−1/2} := 0`, `I₊ = diag(1[d_i > 0])`.
#[derive(Debug, Clone)]
pub struct LaplacianSym {
    /// The symmetric similarity S (zero diagonal).
    pub s: Csr,
    /// Degrees `d_i` (row sums of S, in column order).
    pub degree: Vec<f64>,
    /// `d_i^{−1/2}` (0 for isolated nodes).
    pub dinv_sqrt: Vec<f64>,
}

impl LaplacianSym {
    /// Wrap a square, non-negative similarity (method §7).
    pub fn new(s: Csr) -> Result<Self> {
        if s.n_rows != s.n_cols {
            return Err(DarlcError::Data(format!(
                "Laplacian: similarity must be square, got {}×{}",
                s.n_rows, s.n_cols
            )));
        }
        if s.values.iter().any(|&v| !(v >= 0.0 && v.is_finite())) {
            return Err(DarlcError::Numerical(
                "Laplacian: similarity has a negative or non-finite entry".into(),
            ));
        }
        let degree = s.row_sums();
        let dinv_sqrt = degree
            .iter()
            .map(|&d| if d > 0.0 { 1.0 / d.sqrt() } else { 0.0 })
            .collect();
        Ok(LaplacianSym {
            s,
            degree,
            dinv_sqrt,
        })
    }

    /// Number of nodes N.
    pub fn n(&self) -> usize {
        self.s.n_rows
    }

    /// One output row `(L_sym Z)_i` in f64.
    fn row_apply<T: Float>(&self, z: &ArrayView2<T>, i: usize, out: &mut [f64]) {
        let di = self.dinv_sqrt[i];
        let own = if self.degree[i] > 0.0 { 1.0 } else { 0.0 };
        for (o, v) in out.iter_mut().zip(z.row(i).iter()) {
            *o = own * v.f64();
        }
        let (cols, vals) = self.s.row(i);
        for (&j, &sij) in cols.iter().zip(vals) {
            let a = di * sij * self.dinv_sqrt[j];
            for (o, v) in out.iter_mut().zip(z.row(j).iter()) {
                *o -= a * v.f64();
            }
        }
    }

    /// `L_sym Z` for `Z [N, d]` (Eq. 17's gradient direction), accumulated in f64 in column
    /// order; parallel over fixed row chunks (bit-identical for any thread count).
    pub fn apply<T: Float>(&self, z: ArrayView2<T>) -> Result<Array2<T>> {
        let (n, d) = z.dim();
        if n != self.n() {
            return Err(DarlcError::Data(format!(
                "Laplacian has {} nodes, embeddings have {n} rows",
                self.n()
            )));
        }
        let mut out = vec![T::zero(); n * d];
        out.par_chunks_mut(CHUNK * d.max(1))
            .enumerate()
            .for_each(|(c, dst)| {
                let mut buf = vec![0.0; d];
                for (r, row) in dst.chunks_mut(d.max(1)).enumerate() {
                    self.row_apply(&z, c * CHUNK + r, &mut buf);
                    for (o, v) in row.iter_mut().zip(&buf) {
                        *o = T::of(*v);
                    }
                }
            });
        Ok(Array2::from_shape_vec((n, d), out).expect("shape"))
    }

    /// `tr(Zᵀ L_sym Z) = Σ_i ⟨z_i, (L_sym Z)_i⟩` in f64 (per-chunk partial sums combined in
    /// chunk order).
    pub fn trace_quadratic<T: Float>(&self, z: ArrayView2<T>) -> Result<f64> {
        let (n, d) = z.dim();
        if n != self.n() {
            return Err(DarlcError::Data(format!(
                "Laplacian has {} nodes, embeddings have {n} rows",
                self.n()
            )));
        }
        let partial: Vec<f64> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let mut buf = vec![0.0; d];
                let mut s = 0.0;
                for i in c * CHUNK..((c + 1) * CHUNK).min(n) {
                    self.row_apply(&z, i, &mut buf);
                    for (a, b) in buf.iter().zip(z.row(i).iter()) {
                        s += a * b.f64();
                    }
                }
                s
            })
            .collect();
        Ok(partial.iter().fold(0.0, |s, v| s + v))
    }

    /// `y = L_sym x` for one vector (used by the Lanczos solver of §10).
    pub fn apply_vec(&self, x: &[f64], y: &mut [f64]) {
        y.par_chunks_mut(CHUNK).enumerate().for_each(|(c, dst)| {
            for (r, o) in dst.iter_mut().enumerate() {
                let i = c * CHUNK + r;
                let di = self.dinv_sqrt[i];
                let mut v = if self.degree[i] > 0.0 { x[i] } else { 0.0 };
                let (cols, vals) = self.s.row(i);
                for (&j, &sij) in cols.iter().zip(vals) {
                    v -= di * sij * self.dinv_sqrt[j] * x[j];
                }
                *o = v;
            }
        });
    }

    /// Dense `L_sym` (tests and small problems only).
    pub fn to_dense(&self) -> Array2<f64> {
        let n = self.n();
        let mut l = Array2::zeros((n, n));
        for i in 0..n {
            if self.degree[i] > 0.0 {
                l[[i, i]] = 1.0;
            }
            let (cols, vals) = self.s.row(i);
            for (&j, &v) in cols.iter().zip(vals) {
                l[[i, j]] -= self.dinv_sqrt[i] * v * self.dinv_sqrt[j];
            }
        }
        l
    }
}
