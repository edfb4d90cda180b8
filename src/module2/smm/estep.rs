//! The E-step of the mixture (method §6.1, §6.6): per-component constants of the log density, the
//! Mahalanobis distances by the tiled δ kernel (bit-identical to a row-by-row forward
//! substitution on every instruction set), log-domain responsibilities, the scale weights `w`, and
//! the per-row gradient `g_ik` of `ln St(z|θ_k)` (method §11).

use super::Smm;
use crate::error::{DarlcError, Result};
use crate::linalg::cholesky::{back_solve_t, forward_solve, log_det};
use crate::linalg::special::{ln_gamma, ln_minus_digamma};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use rayon::prelude::*;

/// Rows per E-step task (fixed: results never depend on the thread count).
const CHUNK: usize = 128;

/// One E-step (§6.6) on `Z [N, d]`.
#[derive(Debug, Clone)]
pub struct EStep {
    /// Log responsibilities `ln q_ik = ln ρ_ik − LSE_k' ln ρ_ik'` `[N, K]`.
    pub ln_q: Array2<f64>,
    /// Responsibilities `r_ik = exp(ln q_ik)` `[N, K]` (rows sum to 1).
    pub r: Array2<f64>,
    /// Scale weights `w_ik = E[u_i | c_i = k, z_i] = (ν_k + d)/(ν_k + δ_ik)` `[N, K]` (1 when
    /// Gaussian).
    pub w: Array2<f64>,
    /// `ln p(z_i | Θ) = LSE_k ln ρ_ik` `[N]`.
    pub lse: Array1<f64>,
}

impl EStep {
    /// `E[ln u_i | c_i = k, z_i] = ψ((ν_k+d)/2) − ln((ν_k+δ_ik)/2) = ln w_ik − (ln x − ψ(x))` at
    /// `x = (ν_k+d)/2` (§6.6), `[N, K]`; 0 for Gaussian components.
    pub fn e_ln_u(&self, smm: &Smm) -> Array2<f64> {
        let d = smm.d() as f64;
        let mut out = self.w.mapv(f64::ln);
        if !smm.gaussian {
            for (k, mut col) in out.axis_iter_mut(Axis(1)).enumerate() {
                let c = ln_minus_digamma((smm.nu[k] + d) / 2.0);
                col.mapv_inplace(|v| v - c);
            }
        } else {
            out.fill(0.0);
        }
        out
    }

    /// Hard labels `argmax_k r_ik` (ties → lower k) and their confidence `max_k r_ik` (§1 step 7,
    /// §13 `clusters.csv`).
    pub fn labels(&self) -> (Vec<usize>, Vec<f64>) {
        self.ln_q
            .rows()
            .into_iter()
            .map(|row| {
                let mut best = 0;
                for (k, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = k;
                    }
                }
                (best, row[best].exp())
            })
            .unzip()
    }

    /// `Σ_i ln p(z_i|Θ)`, summed in row order.
    pub fn log_likelihood(&self) -> f64 {
        self.lse.iter().fold(0.0, |s, v| s + v)
    }
}

/// Per-component constants of the log density.
struct CompConst {
    /// `ln π_k + lnΓ((ν+d)/2) − lnΓ(ν/2) − (d/2) ln(νπ) − ½ ln|Σ|` (Gaussian:
    /// `ln π_k − (d/2) ln 2π − ½ ln|Σ|`).
    c: f64,
    /// `(ν + d)/2` (unused when Gaussian).
    h: f64,
    nu: f64,
}

impl Smm {
    fn comp_consts(&self) -> Vec<CompConst> {
        let d = self.d() as f64;
        (0..self.k())
            .map(|k| {
                let half_logdet = 0.5 * log_det(self.chol.index_axis(Axis(0), k));
                let lnpi = self.pi[k].ln();
                if self.gaussian {
                    CompConst {
                        c: lnpi - 0.5 * d * (2.0 * std::f64::consts::PI).ln() - half_logdet,
                        h: 0.0,
                        nu: f64::INFINITY,
                    }
                } else {
                    let nu = self.nu[k];
                    CompConst {
                        c: lnpi + ln_gamma((nu + d) / 2.0)
                            - ln_gamma(nu / 2.0)
                            - 0.5 * d * (nu * std::f64::consts::PI).ln()
                            - half_logdet,
                        h: (nu + d) / 2.0,
                        nu,
                    }
                }
            })
            .collect()
    }

    /// Mahalanobis distances `δ_ik = ‖L_k⁻¹(z_i − μ_k)‖²` (clamped at 0) `[N, K]` (§6.1).
    pub fn mahalanobis_all(&self, z: ArrayView2<f64>) -> Result<Array2<f64>> {
        self.check_z(z)?;
        let (n, k) = (z.nrows(), self.k());
        let mut out = vec![0.0; n * k];
        let zs = z.as_standard_layout();
        let (chol, mu) = (self.chol.as_standard_layout(), self.mu.as_standard_layout());
        let (chol, mu) = (std_slice(&chol), std_slice(&mu));
        out.par_chunks_mut(CHUNK * k)
            .enumerate()
            .for_each(|(c, dst)| {
                let r0 = c * CHUNK;
                let nb = dst.len() / k;
                delta_chunk(zs.view(), chol, mu, r0, nb, dst);
            });
        Ok(Array2::from_shape_vec((n, k), out).expect("shape"))
    }

    /// Component log densities `ln St(z_i | μ_k, Σ_k, ν_k)` `[N, K]` (Eq. 13; Gaussian in the
    /// ablation), via Cholesky and `log1p` (§6.1, §16).
    pub fn log_density(&self, z: ArrayView2<f64>) -> Result<Array2<f64>> {
        let delta = self.mahalanobis_all(z)?;
        let cc = self.comp_consts();
        let mut out = delta;
        for mut row in out.axis_iter_mut(Axis(0)) {
            for (k, v) in row.iter_mut().enumerate() {
                let lnpi = self.pi[k].ln();
                *v = component_log_rho(&cc[k], *v, self.gaussian) - lnpi;
            }
        }
        Ok(out)
    }

    /// E-step (§6.6) on `z [N, d]`: log-domain responsibilities via log-sum-exp, `w_ik`, and
    /// `LSE_k ln ρ_ik`. Parallel over fixed chunks of 128 rows.
    pub fn estep(&self, z: ArrayView2<f64>) -> Result<EStep> {
        self.check_z(z)?;
        let (n, k, d) = (z.nrows(), self.k(), self.d() as f64);
        let cc = self.comp_consts();
        let zs = z.as_standard_layout();
        let mut ln_q = vec![0.0; n * k];
        let mut r = vec![0.0; n * k];
        let mut w = vec![0.0; n * k];
        let mut lse = vec![0.0; n];
        let gaussian = self.gaussian;
        let (chol, mu) = (self.chol.as_standard_layout(), self.mu.as_standard_layout());
        let (chol, mu) = (std_slice(&chol), std_slice(&mu));
        let results: Vec<Option<usize>> = ln_q
            .par_chunks_mut(CHUNK * k)
            .zip(r.par_chunks_mut(CHUNK * k))
            .zip(w.par_chunks_mut(CHUNK * k))
            .zip(lse.par_chunks_mut(CHUNK))
            .enumerate()
            .map(|(c, (((lq, rr), ww), ls))| {
                let r0 = c * CHUNK;
                let nb = ls.len();
                // δ into ww first, then overwrite with w.
                delta_chunk(zs.view(), chol, mu, r0, nb, ww);
                let mut bad = None;
                #[allow(clippy::needless_range_loop)]
                for i in 0..nb {
                    let row = i * k..(i + 1) * k;
                    let mut mx = f64::NEG_INFINITY;
                    for (j, (q, dl)) in lq[row.clone()].iter_mut().zip(&ww[row.clone()]).enumerate()
                    {
                        *q = component_log_rho(&cc[j], *dl, gaussian);
                        if *q > mx {
                            mx = *q;
                        }
                    }
                    let mut s = 0.0;
                    for q in &lq[row.clone()] {
                        s += (q - mx).exp();
                    }
                    let l = mx + s.ln();
                    if !l.is_finite() && bad.is_none() {
                        bad = Some(r0 + i);
                    }
                    ls[i] = l;
                    for j in row.clone() {
                        lq[j] -= l;
                        rr[j] = lq[j].exp();
                        let comp = j - i * k;
                        ww[j] = if gaussian {
                            1.0
                        } else {
                            (cc[comp].nu + d) / (cc[comp].nu + ww[j])
                        };
                    }
                }
                bad
            })
            .collect();
        if let Some(i) = results.into_iter().flatten().next() {
            return Err(DarlcError::Numerical(format!(
                "SMM E-step: log-likelihood of embedding row {i} is not finite"
            )));
        }
        Ok(EStep {
            ln_q: Array2::from_shape_vec((n, k), ln_q).expect("shape"),
            r: Array2::from_shape_vec((n, k), r).expect("shape"),
            w: Array2::from_shape_vec((n, k), w).expect("shape"),
            lse: Array1::from(lse),
        })
    }
}

impl Smm {
    /// `g_ik = w_ik Σ_k⁻¹ (z_i − μ_k)` for one row `z` (method §11; `∂ ln St(z|θ_k)/∂z = −g_ik`),
    /// `[K, d]`, via two triangular solves per component (`w ≡ 1` when Gaussian).
    pub fn g_row(&self, z: ArrayView1<f64>) -> Array2<f64> {
        let (k, d) = (self.k(), self.d());
        let mut g = Array2::<f64>::zeros((k, d));
        for comp in 0..k {
            let l = self.chol.index_axis(Axis(0), comp);
            let mut y = &z - &self.mu.row(comp);
            forward_solve(l, y.view_mut());
            let delta = y.iter().map(|v| v * v).sum::<f64>().max(0.0);
            back_solve_t(l, y.view_mut());
            let w = if self.gaussian {
                1.0
            } else {
                (self.nu[comp] + d as f64) / (self.nu[comp] + delta)
            };
            g.row_mut(comp).assign(&(y * w));
        }
        g
    }

    /// Exact gradient of `L_LH = −(1/N) Σ_i LSE_k ln ρ_ik` (Eq. 18) w.r.t. `Z`:
    /// `∂L_LH/∂z_i = (1/N) Σ_k q_ik g_ik` (§11), `[N, d]` — an autodiff-free cross-check.
    pub fn grad_l_lh(&self, z: ArrayView2<f64>) -> Result<Array2<f64>> {
        let e = self.estep(z)?;
        let (n, d) = z.dim();
        let mut out = vec![0.0; n * d];
        out.par_chunks_mut(CHUNK * d.max(1))
            .enumerate()
            .for_each(|(c, dst)| {
                for (r, row) in dst.chunks_mut(d.max(1)).enumerate() {
                    let i = c * CHUNK + r;
                    let g = self.g_row(z.row(i));
                    for (comp, gk) in g.axis_iter(Axis(0)).enumerate() {
                        let q = e.r[[i, comp]];
                        for (o, v) in row.iter_mut().zip(gk.iter()) {
                            *o += q * v / n as f64;
                        }
                    }
                }
            });
        Ok(Array2::from_shape_vec((n, d), out).expect("shape"))
    }
}

#[inline]
fn component_log_rho(c: &CompConst, delta: f64, gaussian: bool) -> f64 {
    if gaussian {
        c.c - 0.5 * delta
    } else {
        c.c - c.h * (delta / c.nu).ln_1p()
    }
}

/// Rows per register tile of the δ kernel (four AVX-512 or eight AVX2 vectors of f64).
const DELTA_TILE: usize = 32;

/// `dst[i·K + k] = ‖L_k⁻¹(z_i − μ_k)‖²` for the `nb` rows of `zt [d, nb]` (transposed) and every
/// component `k` of `chol [K, d, d]`, `mu [K, d]`. Each element follows the row-by-row forward
/// substitution exactly: `y_l = ((((z_l − μ_l) − L_l0 y_0) − L_l1 y_1) − …) / L_ll` and
/// `δ = ((y_0² + y_1²) + …)`, separate multiplies and subtractions (no fused multiply-add), so the
/// variants compiled for AVX-512, AVX2 and the baseline give the same bits.
fn delta_kernel(zt: &[f64], nb: usize, d: usize, chol: &[f64], mu: &[f64], dst: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn v512(zt: &[f64], nb: usize, d: usize, chol: &[f64], mu: &[f64], dst: &mut [f64]) {
            delta_rows(zt, nb, d, chol, mu, dst)
        }
        #[target_feature(enable = "avx2")]
        fn v256(zt: &[f64], nb: usize, d: usize, chol: &[f64], mu: &[f64], dst: &mut [f64]) {
            delta_rows(zt, nb, d, chol, mu, dst)
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked above).
            return unsafe { v512(zt, nb, d, chol, mu, dst) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked above).
            return unsafe { v256(zt, nb, d, chol, mu, dst) };
        }
    }
    delta_rows(zt, nb, d, chol, mu, dst)
}

/// The elements of a standard-layout array as a row-major slice.
fn std_slice<'a, D: ndarray::Dimension>(a: &'a ndarray::CowArray<'_, f64, D>) -> &'a [f64] {
    a.as_slice().expect("standard layout")
}

/// δ for rows `r0..r0+nb` of `z` into `dst [nb, K]`, given the Cholesky factors `chol [K, d, d]`
/// and means `mu [K, d]` as row-major slices: the chunk is transposed to `[d, nb]` and each
/// component's forward substitution `L y = z − μ` runs over tiles of [`DELTA_TILE`] rows
/// ([`delta_kernel`]; the same operations, in the same order, as a row-by-row substitution).
fn delta_chunk(
    z: ArrayView2<f64>,
    chol: &[f64],
    mu: &[f64],
    r0: usize,
    nb: usize,
    dst: &mut [f64],
) {
    let d = z.ncols();
    let mut zt = vec![0.0; d * nb];
    for i in 0..nb {
        for l in 0..d {
            zt[l * nb + i] = z[[r0 + i, l]];
        }
    }
    delta_kernel(&zt, nb, d, chol, mu, dst);
}

/// Body of [`delta_kernel`] (inlined into each compiled variant).
#[inline(always)]
fn delta_rows(zt: &[f64], nb: usize, d: usize, chol: &[f64], mu: &[f64], dst: &mut [f64]) {
    let k = mu.len() / d.max(1);
    let mut y = vec![0.0; d * DELTA_TILE];
    for comp in 0..k {
        let lk = &chol[comp * d * d..(comp + 1) * d * d];
        let mk = &mu[comp * d..(comp + 1) * d];
        let mut i0 = 0;
        while i0 + DELTA_TILE <= nb {
            let ds = delta_tile::<DELTA_TILE>(zt, nb, i0, lk, mk, &mut y);
            for (u, v) in ds.iter().enumerate() {
                dst[(i0 + u) * k + comp] = v.max(0.0);
            }
            i0 += DELTA_TILE;
        }
        for i in i0..nb {
            let [v] = delta_tile::<1>(zt, nb, i, lk, mk, &mut y);
            dst[i * k + comp] = v.max(0.0);
        }
    }
}

/// δ of rows `i0..i0+T` for one component (`lk [d, d]`, `mk [d]`); `y` is scratch of `d·T`.
#[inline(always)]
fn delta_tile<const T: usize>(
    zt: &[f64],
    nb: usize,
    i0: usize,
    lk: &[f64],
    mk: &[f64],
    y: &mut [f64],
) -> [f64; T] {
    let d = mk.len();
    let mut ds = [0.0; T];
    for l in 0..d {
        let zl = &zt[l * nb + i0..l * nb + i0 + T];
        let mut acc = [0.0; T];
        for u in 0..T {
            acc[u] = zl[u] - mk[l];
        }
        for (j, &a) in lk[l * d..l * d + l].iter().enumerate() {
            let yj = &y[j * T..(j + 1) * T];
            for u in 0..T {
                acc[u] -= a * yj[u];
            }
        }
        let lll = lk[l * d + l];
        for u in 0..T {
            acc[u] /= lll;
            ds[u] += acc[u] * acc[u];
        }
        y[l * T..(l + 1) * T].copy_from_slice(&acc);
    }
    ds
}
