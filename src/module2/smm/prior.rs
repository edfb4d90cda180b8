//! The NIW–Dirichlet prior of the mixture and its inverse-Wishart scale choice (method §6.2).

use super::check_finite;
use crate::error::{DarlcError, Result};
use crate::io::TensorFile;
use ndarray::{Array1, Array2, ArrayView2};

/// NIW–Dirichlet prior hyperparameters (method §6.2), fixed once computed.
#[derive(Debug, Clone)]
pub struct SmmPrior {
    /// Dirichlet concentration α (same for every component).
    pub alpha: f64,
    /// NIW location m0 `[d]`.
    pub m0: Array1<f64>,
    /// NIW mean precision scale κ0.
    pub kappa0: f64,
    /// Inverse-Wishart degrees of freedom ν0.
    pub nu0: f64,
    /// Inverse-Wishart scale S0 `[d, d]`.
    pub s0: Array2<f64>,
}

/// Which IW scale S0 to use (method §6.2): defined with the config key `module2.scale_prior`.
pub use crate::config::ScalePrior;

impl SmmPrior {
    /// The default prior of method §6.2 from the initial embeddings `Z⁰ [N, d]` and `K`:
    /// `m0 = mean(Z⁰)`, `κ0 = 0.01`, `ν0 = d + 2`, `S0 = diag(s₁², …, s_d²)/K^{2/d}` (biased
    /// per-dimension variances), `α = 2`.
    pub fn default_from(z: ArrayView2<f64>, k: usize) -> Result<Self> {
        let (n, d) = z.dim();
        if n == 0 || d == 0 || k == 0 {
            return Err(DarlcError::Data(format!(
                "SMM prior needs N, d, K ≥ 1 (got N = {n}, d = {d}, K = {k})"
            )));
        }
        check_finite(z)?;
        let m0 = column_mean(z);
        let scale = (k as f64).powf(2.0 / d as f64);
        let mut s0 = Array2::<f64>::zeros((d, d));
        for j in 0..d {
            let mut ss = 0.0;
            for i in 0..n {
                let c = z[[i, j]] - m0[j];
                ss += c * c;
            }
            s0[[j, j]] = ss / n as f64 / scale;
        }
        Ok(SmmPrior {
            alpha: 2.0,
            m0,
            kappa0: 0.01,
            nu0: d as f64 + 2.0,
            s0,
        })
    }

    /// The `scale_prior = "within"` option (§6.2): `S0 = ν0 · W`, where
    /// `W = (1/N) Σ_i (z_i − c_{l(i)})(z_i − c_{l(i)})ᵀ` for the partition `labels` with centroids
    /// `centres [K, d]`.
    pub fn set_within_scale(
        &mut self,
        z: ArrayView2<f64>,
        labels: &[usize],
        centres: ArrayView2<f64>,
    ) -> Result<()> {
        let (n, d) = z.dim();
        if labels.len() != n || centres.ncols() != d {
            return Err(DarlcError::Data(
                "within-cluster scale: labels/centres do not match the embeddings".into(),
            ));
        }
        let mut w = Array2::<f64>::zeros((d, d));
        let mut diff = vec![0.0; d];
        for (i, &l) in labels.iter().enumerate() {
            if l >= centres.nrows() {
                return Err(DarlcError::Data(format!(
                    "label {l} of row {i} out of range"
                )));
            }
            for j in 0..d {
                diff[j] = z[[i, j]] - centres[[l, j]];
            }
            for a in 0..d {
                for b in 0..d {
                    w[[a, b]] += diff[a] * diff[b];
                }
            }
        }
        self.s0 = w.mapv(|v| self.nu0 * v / n as f64);
        Ok(())
    }
}

impl SmmPrior {
    /// Store the prior as `smm.prior.{alpha, m0, kappa0, nu0, s0}` (scalars as shape `[]`).
    pub fn insert_into(&self, tf: &mut TensorFile) {
        let scalar = |v: f64| ndarray::arr0(v).into_dyn();
        tf.insert_float("smm.prior.alpha", scalar(self.alpha));
        tf.insert_float("smm.prior.m0", self.m0.clone().into_dyn());
        tf.insert_float("smm.prior.kappa0", scalar(self.kappa0));
        tf.insert_float("smm.prior.nu0", scalar(self.nu0));
        tf.insert_float("smm.prior.s0", self.s0.clone().into_dyn());
    }
}

fn column_mean(z: ArrayView2<f64>) -> Array1<f64> {
    let (n, d) = z.dim();
    let mut m = Array1::<f64>::zeros(d);
    for i in 0..n {
        for j in 0..d {
            m[j] += z[[i, j]];
        }
    }
    m.mapv_inplace(|v| v / n as f64);
    m
}
