//! Student's t mixture model and its MAP-ECM fit (SPEC §6, Eq. 13–15), plain f64 numerics.
//!
//! The EM is non-differentiable (its outputs are constants for all gradients, §6.9). Every
//! parallel loop works on fixed row chunks (E-step) or on independent components (M-step, ν-step)
//! and combines sequentially, so results are bit-identical for any number of threads.

use crate::error::{DarlcError, Result};
use crate::float::Float;
use crate::io::TensorFile;
use crate::linalg::cholesky::{
    CholeskyFactor, back_solve_t, cholesky_jitter, forward_solve, log_det, mahalanobis,
    trace_inv_times,
};
use crate::linalg::kmeans::{KMeansResult, kmeans};
use crate::linalg::special::{ln_gamma, ln_minus_digamma};
use crate::rng::Stream;
use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, Axis};
use rayon::prelude::*;
use std::path::Path;

/// Rows per E-step task (fixed: results never depend on the thread count).
const CHUNK: usize = 128;
/// Lower bound of ν (§6.8).
pub const NU_MIN: f64 = 1.0;
/// Upper bound of ν (§6.8).
pub const NU_MAX: f64 = 200.0;
/// ν of the hard initial M-step (§6.5).
pub const NU_INIT: f64 = 3.0;

/// NIW–Dirichlet prior hyperparameters (SPEC §6.2), fixed once computed.
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

/// Which IW scale S0 to use (SPEC §6.2; `smm.scale_prior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScalePrior {
    /// `S0 = diag(s²)/K^{2/d}` (the default, mclust's volume scaling).
    #[default]
    Default,
    /// `S0 = ν0 · W`, W the pooled within-cluster covariance of the k-means partition.
    Within,
}

impl SmmPrior {
    /// The default prior of SPEC §6.2 from the initial embeddings `Z⁰ [N, d]` and `K`:
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

fn check_finite(z: ArrayView2<f64>) -> Result<()> {
    if let Some(pos) = z.iter().position(|v| !v.is_finite()) {
        let d = z.ncols().max(1);
        return Err(DarlcError::Numerical(format!(
            "embedding row {} column {} is not finite",
            pos / d,
            pos % d
        )));
    }
    Ok(())
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

/// A Student's t (or, in the SMM→GMM ablation, Gaussian) mixture `Θ = {π, μ, Σ, ν}` (§6.1).
#[derive(Debug, Clone)]
pub struct Smm {
    /// Mixing weights `[K]` (on the simplex).
    pub pi: Array1<f64>,
    /// Means `[K, d]`.
    pub mu: Array2<f64>,
    /// Covariances `[K, d, d]` (symmetric).
    pub sigma: Array3<f64>,
    /// Cholesky factors `[K, d, d]` of `Σ_k` (plus jitter when it was needed).
    pub chol: Array3<f64>,
    /// Degrees of freedom `[K]`; `+∞` for Gaussian components.
    pub nu: Array1<f64>,
    /// SMM→GMM ablation (§15): `ν ≡ ∞`, `w ≡ 1`, no ν-step.
    pub gaussian: bool,
    /// Whether any Cholesky factor of the current Σ needed jitter (§16).
    pub jitter_used: bool,
}

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

/// What `Smm::em` did (§6.9).
#[derive(Debug, Clone)]
pub struct EmReport {
    /// M-steps performed.
    pub iters: usize,
    /// `ℓ_MAP` at the starting Θ and after every iteration (`iters + 1` values).
    pub l_map: Vec<f64>,
    /// Whether the relative-change tolerance was met (false = stopped at the cap).
    pub converged: bool,
    /// Whether any Cholesky factorisation during the run needed jitter.
    pub jitter_used: bool,
    /// The E-step at the returned Θ (responsibilities, `ln q`, `w`).
    pub estep: EStep,
}

/// Options of a full SMM fit ([`fit`]).
#[derive(Debug, Clone)]
pub struct SmmConfig {
    /// Number of components K.
    pub k: usize,
    /// SMM→GMM ablation.
    pub gaussian: bool,
    /// IW scale choice.
    pub scale_prior: ScalePrior,
    /// EM iteration cap (100 for initial/final fits, §6.9).
    pub max_iter: usize,
    /// Relative tolerance on ℓ_MAP (1e-6).
    pub tol: f64,
    /// Dirichlet concentration α of the prior (§6.2; 2, `module2.alpha`).
    pub alpha: f64,
    /// NIW mean precision scale κ0 of the prior (§6.2; 0.01, `module2.kappa0`).
    pub kappa0: f64,
    /// ν of the hard initial M-step (§6.5; [`NU_INIT`] = 3, `module2.nu_init`).
    pub nu_init: f64,
}

impl SmmConfig {
    /// Defaults of SPEC §14 for `k` components.
    pub fn new(k: usize) -> Self {
        SmmConfig {
            k,
            gaussian: false,
            scale_prior: ScalePrior::Default,
            max_iter: 100,
            tol: 1e-6,
            alpha: 2.0,
            kappa0: 0.01,
            nu_init: NU_INIT,
        }
    }
}

/// The outcome of [`fit`].
#[derive(Debug, Clone)]
pub struct SmmFit {
    /// The fitted mixture.
    pub smm: Smm,
    /// The prior computed from `Z⁰` (keep it fixed for later EM runs).
    pub prior: SmmPrior,
    /// The k-means++/Lloyd initialisation (its `picks` go into fixtures).
    pub kmeans: KMeansResult,
    /// The EM run.
    pub report: EmReport,
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
    /// Build a mixture from its parameters, factorising every Σ_k with the §16 jitter rule.
    pub fn new(
        pi: Array1<f64>,
        mu: Array2<f64>,
        sigma: Array3<f64>,
        nu: Array1<f64>,
        gaussian: bool,
    ) -> Result<Self> {
        let (k, d) = mu.dim();
        if pi.len() != k || sigma.dim() != (k, d, d) || nu.len() != k {
            return Err(DarlcError::Data(format!(
                "SMM parameter shapes disagree: π {:?}, μ {:?}, Σ {:?}, ν {:?}",
                pi.dim(),
                mu.dim(),
                sigma.dim(),
                nu.dim()
            )));
        }
        if k == 0 || d == 0 {
            return Err(DarlcError::Data(format!(
                "SMM needs K ≥ 1 components of dimension d ≥ 1 (got K = {k}, d = {d})"
            )));
        }
        if pi.iter().any(|&p| !(p > 0.0 && p.is_finite())) {
            return Err(DarlcError::Numerical(
                "SMM: mixing weights must be positive and finite".into(),
            ));
        }
        if mu.iter().any(|v| !v.is_finite()) {
            return Err(DarlcError::Numerical(
                "SMM: a component mean is not finite".into(),
            ));
        }
        if !gaussian && nu.iter().any(|&v| !(v > 0.0 && v.is_finite())) {
            return Err(DarlcError::Numerical(
                "SMM: degrees of freedom must be positive and finite".into(),
            ));
        }
        let mut s = Smm {
            pi,
            mu,
            chol: Array3::zeros(sigma.dim()),
            sigma,
            nu,
            gaussian,
            jitter_used: false,
        };
        if gaussian {
            s.nu.fill(f64::INFINITY);
        }
        s.refactor()?;
        Ok(s)
    }

    /// Build a mixture from Cholesky factors (the trainable parameterisation of §9.3):
    /// `Σ_k = L_k L_kᵀ`.
    pub fn from_cholesky(
        pi: Array1<f64>,
        mu: Array2<f64>,
        chol: Array3<f64>,
        nu: Array1<f64>,
        gaussian: bool,
    ) -> Result<Self> {
        let mut sigma = Array3::<f64>::zeros(chol.dim());
        for k in 0..chol.dim().0 {
            let l = chol.index_axis(Axis(0), k);
            sigma.index_axis_mut(Axis(0), k).assign(&l.dot(&l.t()));
        }
        Smm::new(pi, mu, sigma, nu, gaussian)
    }

    /// Number of components K.
    pub fn k(&self) -> usize {
        self.mu.nrows()
    }

    /// Embedding dimension d.
    pub fn d(&self) -> usize {
        self.mu.ncols()
    }

    /// Recompute every Cholesky factor from `sigma` (jitter rule of §16; error names the
    /// component). Returns whether jitter was needed.
    pub fn refactor(&mut self) -> Result<bool> {
        let k = self.k();
        let factors: Vec<Result<CholeskyFactor>> = (0..k)
            .into_par_iter()
            .map(|j| {
                cholesky_jitter(
                    self.sigma.index_axis(Axis(0), j),
                    &format!("SMM component {j}"),
                )
            })
            .collect();
        let mut jitter = false;
        for (j, f) in factors.into_iter().enumerate() {
            let f = f?;
            jitter |= f.jitter_used();
            self.chol.index_axis_mut(Axis(0), j).assign(&f.l);
        }
        self.jitter_used = jitter;
        Ok(jitter)
    }

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

    fn check_z(&self, z: ArrayView2<f64>) -> Result<()> {
        if z.ncols() != self.d() {
            return Err(DarlcError::Data(format!(
                "embeddings have {} columns, the SMM has d = {}",
                z.ncols(),
                self.d()
            )));
        }
        check_finite(z)
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

    /// `ℓ_MAP(Θ)` of §6.9 given `Σ_i LSE_k ln ρ_ik` (from [`EStep::log_likelihood`]).
    pub fn l_map(&self, log_likelihood: f64, prior: &SmmPrior) -> f64 {
        let d = self.d() as f64;
        let mut total = log_likelihood;
        for k in 0..self.k() {
            let l = self.chol.index_axis(Axis(0), k);
            let dm = &self.mu.row(k) - &prior.m0;
            // (α − 1) ln π_k with 0·ln 0 := 0 (α = 1 lets an empty component reach π_k = 0).
            if prior.alpha != 1.0 {
                total += (prior.alpha - 1.0) * self.pi[k].ln();
            }
            total += -0.5 * (prior.nu0 + d + 2.0) * log_det(l)
                - 0.5 * trace_inv_times(l, prior.s0.view())
                - 0.5 * prior.kappa0 * mahalanobis(l, dm.view());
        }
        total
    }

    /// MAP M-step (§6.7), division-free, from responsibilities `r [N, K]` and weights `w [N, K]`
    /// (`None` = all 1). Updates π, μ, Σ (symmetrised) and the Cholesky factors; ν is untouched.
    /// Returns `N_k`.
    pub fn mstep(
        &mut self,
        z: ArrayView2<f64>,
        r: ArrayView2<f64>,
        w: Option<ArrayView2<f64>>,
        prior: &SmmPrior,
    ) -> Result<Array1<f64>> {
        self.check_z(z)?;
        let (n, d) = z.dim();
        let k = self.k();
        if r.dim() != (n, k) || w.is_some_and(|w| w.dim() != (n, k)) {
            return Err(DarlcError::Data(
                "M-step: responsibilities have the wrong shape".into(),
            ));
        }
        if prior.alpha.is_nan() || prior.alpha < 1.0 {
            return Err(DarlcError::param(
                "smm.alpha",
                format!(
                    "the Dirichlet concentration must be ≥ 1, got {}",
                    prior.alpha
                ),
            ));
        }
        let zs = z.as_standard_layout();
        // Component-major copies [K, N] so that each component reads contiguous memory.
        let rt = component_major(r);
        let wt = w.map(component_major);
        let zsl = zs.as_slice().expect("standard layout");
        let updates: Vec<(f64, Array1<f64>, Array2<f64>)> = (0..k)
            .into_par_iter()
            .map(|comp| {
                let rk = rt.row(comp);
                let wk = wt.as_ref().map(|w| w.row(comp));
                mstep_component(
                    zsl,
                    d,
                    rk.as_slice().expect("row"),
                    wk.as_ref().map(|w| w.as_slice().expect("row")),
                    prior,
                )
            })
            .collect();
        let denom = n as f64 + k as f64 * (prior.alpha - 1.0);
        let mut nk = Array1::<f64>::zeros(k);
        for (comp, (nkc, mu, sigma)) in updates.into_iter().enumerate() {
            nk[comp] = nkc;
            self.pi[comp] = (nkc + prior.alpha - 1.0) / denom;
            self.mu.row_mut(comp).assign(&mu);
            self.sigma.index_axis_mut(Axis(0), comp).assign(&sigma);
        }
        self.refactor()?;
        Ok(nk)
    }

    /// ν CM-step (§6.8) from the E-step at the old Θ; no-op for Gaussian components.
    pub fn nu_step(&mut self, e: &EStep, nk: ArrayView1<f64>) {
        if self.gaussian {
            return;
        }
        let d = self.d() as f64;
        let k = e.r.ncols();
        let (rt, wt) = (component_major(e.r.view()), component_major(e.w.view()));
        let new: Vec<f64> = (0..k)
            .into_par_iter()
            .map(|comp| {
                let nu_old = self.nu[comp];
                if nk[comp] < 1e-8 {
                    return nu_old;
                }
                let mut s = 0.0;
                for (&ri, &wi) in rt.row(comp).iter().zip(wt.row(comp)) {
                    s += ri * (wi.ln() - wi);
                }
                solve_nu(s / nk[comp], nu_old, d)
            })
            .collect();
        self.nu = Array1::from(new);
    }

    /// MAP-ECM from the current Θ (warm start, §6.9): E-step, then M-step and ν-step, until
    /// `|Δℓ_MAP| ≤ tol·(1 + |ℓ_MAP^{(t−1)}|)` or `max_iter` M-steps. The returned report holds the
    /// E-step at the final Θ.
    pub fn em(
        &mut self,
        z: ArrayView2<f64>,
        prior: &SmmPrior,
        max_iter: usize,
        tol: f64,
    ) -> Result<EmReport> {
        let mut jitter = self.jitter_used;
        let mut e = self.estep(z)?;
        let mut trace = vec![self.l_map(e.log_likelihood(), prior)];
        let mut iters = 0;
        let mut converged = false;
        while iters < max_iter {
            let nk = self.mstep(z, e.r.view(), Some(e.w.view()), prior)?;
            self.nu_step(&e, nk.view());
            jitter |= self.jitter_used;
            e = self.estep(z)?;
            let l = self.l_map(e.log_likelihood(), prior);
            if !l.is_finite() {
                return Err(DarlcError::Numerical(format!(
                    "SMM EM: ℓ_MAP became non-finite at iteration {}",
                    iters + 1
                )));
            }
            let prev = *trace.last().expect("non-empty");
            trace.push(l);
            iters += 1;
            if (l - prev).abs() <= tol * (1.0 + prev.abs()) {
                converged = true;
                break;
            }
        }
        Ok(EmReport {
            iters,
            l_map: trace,
            converged,
            jitter_used: jitter,
            estep: e,
        })
    }

    /// Initial mixture from a hard partition (§6.5 step 2): the M-step with `r_ik = 1[l_i = k]`,
    /// `w_ik = 1`, `ν_k = 3` (∞ when Gaussian).
    pub fn from_partition(
        z: ArrayView2<f64>,
        labels: &[usize],
        k: usize,
        prior: &SmmPrior,
        gaussian: bool,
    ) -> Result<Self> {
        Self::from_partition_nu(z, labels, k, prior, gaussian, NU_INIT)
    }

    /// [`Smm::from_partition`] with every `ν_k = nu_init` (`module2.nu_init`, §6.5).
    pub fn from_partition_nu(
        z: ArrayView2<f64>,
        labels: &[usize],
        k: usize,
        prior: &SmmPrior,
        gaussian: bool,
        nu_init: f64,
    ) -> Result<Self> {
        if !(NU_MIN..=NU_MAX).contains(&nu_init) {
            return Err(DarlcError::param(
                "module2.nu_init",
                format!("must lie in the ν bounds [{NU_MIN}, {NU_MAX}]; got {nu_init}"),
            ));
        }
        let (n, d) = z.dim();
        if labels.len() != n {
            return Err(DarlcError::Data(
                "labels and embeddings differ in length".into(),
            ));
        }
        let mut r = Array2::<f64>::zeros((n, k));
        for (i, &l) in labels.iter().enumerate() {
            if l >= k {
                return Err(DarlcError::Data(format!("label {l} of row {i} ≥ K = {k}")));
            }
            r[[i, l]] = 1.0;
        }
        let mut sigma = Array3::<f64>::zeros((k, d, d));
        for c in 0..k {
            for j in 0..d {
                sigma[[c, j, j]] = 1.0;
            }
        }
        let mut smm = Smm::new(
            Array1::from_elem(k, 1.0 / k as f64),
            Array2::zeros((k, d)),
            sigma,
            Array1::from_elem(k, nu_init),
            gaussian,
        )?;
        smm.mstep(z, r.view(), None, prior)?;
        Ok(smm)
    }
}

impl Smm {
    /// Store Θ in a tensor file under the SPEC §18 names `smm.pi [K]`, `smm.mu [K,d]`,
    /// `smm.sigma [K,d,d]`, `smm.chol [K,d,d]`, `smm.nu [K]` (f64; +∞ for Gaussian components)
    /// and metadata `smm.gaussian`, `smm.jitter_used` ("true"/"false").
    pub fn insert_into(&self, tf: &mut TensorFile) {
        tf.insert_float("smm.pi", self.pi.clone().into_dyn());
        tf.insert_float("smm.mu", self.mu.clone().into_dyn());
        tf.insert_float("smm.sigma", self.sigma.clone().into_dyn());
        tf.insert_float("smm.chol", self.chol.clone().into_dyn());
        tf.insert_float("smm.nu", self.nu.clone().into_dyn());
        tf.metadata
            .insert("smm.gaussian".into(), self.gaussian.to_string());
        tf.metadata
            .insert("smm.jitter_used".into(), self.jitter_used.to_string());
    }

    /// Read Θ written by [`Smm::insert_into`] (`path` names the file in errors); the Cholesky
    /// factors are recomputed from `smm.sigma`.
    pub fn from_tensor_file(tf: &TensorFile, path: &Path) -> Result<Smm> {
        let get = |name: &str| -> Result<ndarray::ArrayD<f64>> { Ok(tf.get(name, path)?.to_f64()) };
        let shape_err = |name: &str| {
            DarlcError::format(path, None, format!("tensor `{name}` has the wrong rank"))
        };
        let pi = get("smm.pi")?
            .into_dimensionality::<ndarray::Ix1>()
            .map_err(|_| shape_err("smm.pi"))?;
        let mu = get("smm.mu")?
            .into_dimensionality::<ndarray::Ix2>()
            .map_err(|_| shape_err("smm.mu"))?;
        let sigma = get("smm.sigma")?
            .into_dimensionality::<ndarray::Ix3>()
            .map_err(|_| shape_err("smm.sigma"))?;
        let nu = get("smm.nu")?
            .into_dimensionality::<ndarray::Ix1>()
            .map_err(|_| shape_err("smm.nu"))?;
        let gaussian = tf.metadata.get("smm.gaussian").is_some_and(|v| v == "true");
        Smm::new(pi, mu, sigma, nu, gaussian)
    }
}

impl Smm {
    /// `g_ik = w_ik Σ_k⁻¹ (z_i − μ_k)` for one row `z` (SPEC §11; `∂ ln St(z|θ_k)/∂z = −g_ik`),
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

#[inline]
fn component_log_rho(c: &CompConst, delta: f64, gaussian: bool) -> f64 {
    if gaussian {
        c.c - 0.5 * delta
    } else {
        c.c - c.h * (delta / c.nu).ln_1p()
    }
}

/// `a [N, K]` as a standard-layout `[K, N]` copy (each component's column contiguous), built in
/// parallel over fixed blocks of 16 components.
fn component_major(a: ArrayView2<f64>) -> Array2<f64> {
    const COMPS: usize = 16;
    let (n, k) = a.dim();
    let mut out = Array2::<f64>::zeros((k, n));
    if let Some(dst) = out.as_slice_mut() {
        dst.par_chunks_mut(COMPS * n.max(1))
            .enumerate()
            .for_each(|(b, blk)| {
                let c0 = b * COMPS;
                let nc = blk.len() / n.max(1);
                for i in 0..n {
                    for c in 0..nc {
                        blk[c * n + i] = a[[i, c0 + c]];
                    }
                }
            });
    }
    out
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

/// Rows per block of the M-step scatter (the block's centred rows stay in L2).
const SCATTER_ROWS: usize = 512;

/// One component's M-step: `(N_k, μ_k, Σ_k)` (§6.7), sums over rows in index order; the scatter
/// `Σ_i r w (z_i − μ)(z_i − μ)ᵀ` runs over the rows with `r·w ≠ 0` in blocks of
/// [`SCATTER_ROWS`] (one GEMM per block, added to the scatter block by block, in row order).
/// `r`, `w` are this component's columns (`[N]`).
fn mstep_component(
    z: &[f64],
    d: usize,
    r: &[f64],
    w: Option<&[f64]>,
    prior: &SmmPrior,
) -> (f64, Array1<f64>, Array2<f64>) {
    let n = r.len();
    let mut nk = 0.0;
    let mut wk = 0.0;
    let mut s = vec![0.0; d];
    let mut rows = Vec::new();
    let mut rw = Vec::new();
    for i in 0..n {
        let ri = r[i];
        let v = ri * w.map_or(1.0, |w| w[i]);
        nk += ri;
        wk += v;
        if v != 0.0 {
            rows.push(i);
            rw.push(v);
            for l in 0..d {
                s[l] += v * z[i * d + l];
            }
        }
    }
    let mu = Array1::from_shape_fn(d, |l| {
        (s[l] + prior.kappa0 * prior.m0[l]) / (wk + prior.kappa0)
    });
    let mut scatter = Array2::<f64>::zeros((d, d));
    let mut a = vec![0.0; SCATTER_ROWS.min(rows.len()) * d];
    let mut b = vec![0.0; a.len()];
    for (blk, (rows, rw)) in rows
        .chunks(SCATTER_ROWS)
        .zip(rw.chunks(SCATTER_ROWS))
        .enumerate()
    {
        let m = rows.len();
        for (p, (&i, &v)) in rows.iter().zip(rw).enumerate() {
            for l in 0..d {
                let c = z[i * d + l] - mu[l];
                a[p * d + l] = c;
                b[p * d + l] = v * c;
            }
        }
        let beta = if blk == 0 { 0.0 } else { 1.0 };
        // SAFETY: a, b hold m×d row-major values; bᵀ is d×m with strides (1, d); scatter is d×d
        // row-major and does not alias a or b.
        unsafe {
            f64::gemm(
                d,
                m,
                d,
                1.0,
                b.as_ptr(),
                1,
                d as isize,
                a.as_ptr(),
                d as isize,
                1,
                beta,
                scatter.as_mut_ptr(),
                d as isize,
                1,
            );
        }
    }
    let dm = &mu - &prior.m0;
    let denom = prior.nu0 + nk + d as f64 + 2.0;
    let mut sigma = Array2::from_shape_fn((d, d), |(i, j)| {
        (prior.s0[[i, j]] + scatter[[i, j]] + prior.kappa0 * dm[i] * dm[j]) / denom
    });
    for i in 0..d {
        for j in 0..i {
            let v = 0.5 * (sigma[[i, j]] + sigma[[j, i]]);
            sigma[[i, j]] = v;
            sigma[[j, i]] = v;
        }
    }
    (nk, mu, sigma)
}

/// `f_k(ν)` of §6.8 with `g = (1/N_k) Σ_i r_ik (ln w_ik − w_ik)`:
/// `1 + ln(ν/2) − ψ(ν/2) + g + ψ((ν_old+d)/2) − ln((ν_old+d)/2)`.
pub fn nu_equation(nu: f64, g: f64, nu_old: f64, d: f64) -> f64 {
    1.0 + ln_minus_digamma(nu / 2.0) + g - ln_minus_digamma((nu_old + d) / 2.0)
}

/// The root of `f_k` by bisection on `t = ln ν` over `[ln 1, ln 200]` (§6.8): `ν_max` if
/// `f(ν_max) ≥ 0`, `ν_min` if `f(ν_min) ≤ 0`, else 100 halvings (or until the bracket is narrower
/// than 1e-12), returning the midpoint.
pub fn solve_nu(g: f64, nu_old: f64, d: f64) -> f64 {
    let f = |t: f64| nu_equation(t.exp(), g, nu_old, d);
    let (mut lo, mut hi) = (NU_MIN.ln(), NU_MAX.ln());
    if f(hi) >= 0.0 {
        return NU_MAX;
    }
    if f(lo) <= 0.0 {
        return NU_MIN;
    }
    for _ in 0..100 {
        if hi - lo < 1e-12 {
            break;
        }
        let mid = 0.5 * (lo + hi);
        if f(mid) > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (0.5 * (lo + hi)).exp()
}

/// Full fit (§6.5): prior from `z` with the configured α and κ0, k-means++ (stream supplied by the
/// caller, conventionally `rng::stream(seed, "kmeans++")`) + Lloyd, optional within-cluster scale
/// prior, hard MAP M-step with ν = `cfg.nu_init` (3), then EM up to `cfg.max_iter` iterations.
pub fn fit(z: ArrayView2<f64>, cfg: &SmmConfig, rng: &mut Stream) -> Result<SmmFit> {
    let mut prior = SmmPrior::default_from(z, cfg.k)?;
    prior.alpha = cfg.alpha;
    prior.kappa0 = cfg.kappa0;
    let km = kmeans(z, cfg.k, rng)?;
    if cfg.scale_prior == ScalePrior::Within {
        prior.set_within_scale(z, &km.labels, km.centres.view())?;
    }
    let mut smm = Smm::from_partition_nu(z, &km.labels, cfg.k, &prior, cfg.gaussian, cfg.nu_init)?;
    let init_jitter = smm.jitter_used;
    let mut report = smm.em(z, &prior, cfg.max_iter, cfg.tol)?;
    report.jitter_used |= init_jitter;
    Ok(SmmFit {
        smm,
        prior,
        kmeans: km,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tiled δ kernel against one plain forward substitution per (row, component), bit for
    /// bit: N = 300 covers whole chunks, whole 32-row tiles and single remainder rows; d = 5 is not
    /// a multiple of any vector width.
    #[test]
    fn mahalanobis_all_equals_the_row_by_row_substitution_bitwise() {
        use ndarray_rand::RandomExt;
        use ndarray_rand::rand_distr::StandardNormal;
        let (n, k, d) = (300, 3, 5);
        let mut rng = crate::rng::stream(7, "test.delta");
        let z = Array2::<f64>::random_using((n, d), StandardNormal, &mut rng);
        let mu = Array2::<f64>::random_using((k, d), StandardNormal, &mut rng);
        let mut sigma = Array3::<f64>::zeros((k, d, d));
        for c in 0..k {
            let a = Array2::<f64>::random_using((d, d), StandardNormal, &mut rng);
            let s = a.dot(&a.t()) + Array2::<f64>::eye(d);
            sigma.index_axis_mut(Axis(0), c).assign(&s);
        }
        let smm = Smm::new(
            Array1::from_elem(k, 1.0 / 3.0),
            mu,
            sigma,
            Array1::from_elem(k, 3.0),
            false,
        )
        .unwrap();
        let delta = smm.mahalanobis_all(z.view()).unwrap();
        for i in 0..n {
            for c in 0..k {
                let x = &z.row(i) - &smm.mu.row(c);
                let want = mahalanobis(smm.chol.index_axis(Axis(0), c), x.view()).max(0.0);
                assert_eq!(
                    delta[[i, c]].to_bits(),
                    want.to_bits(),
                    "row {i}, component {c}"
                );
            }
        }
    }

    #[test]
    fn tensor_file_roundtrip() {
        use ndarray::array;
        let smm = Smm::new(
            array![0.25, 0.75],
            array![[0.0, 1.0], [2.0, -1.0]],
            Array3::from_shape_vec((2, 2, 2), vec![1.0, 0.2, 0.2, 0.5, 2.0, 0.0, 0.0, 3.0])
                .unwrap(),
            array![3.0, 150.0],
            false,
        )
        .unwrap();
        let mut tf = TensorFile::new();
        smm.insert_into(&mut tf);
        let path = Path::new("mem.safetensors");
        let back = Smm::from_tensor_file(
            &TensorFile::from_bytes(&tf.to_bytes().unwrap(), path).unwrap(),
            path,
        )
        .unwrap();
        assert_eq!(back.pi, smm.pi);
        assert_eq!(back.mu, smm.mu);
        assert_eq!(back.sigma, smm.sigma);
        assert_eq!(back.chol, smm.chol);
        assert_eq!(back.nu, smm.nu);
        assert!(!back.gaussian);
        assert!(Smm::from_tensor_file(&TensorFile::new(), path).is_err());
    }

    #[test]
    fn nu_bisection_edges() {
        // g very negative (heavy tails) → f(ν_min) ≤ 0 → ν_min; g ≈ −1 (w ≡ 1, Gaussian-like
        // data) → f(ν) = ln(ν/2) − ψ(ν/2) − (ln x − ψ(x))|_{x=(ν_old+d)/2} > 0 for ν < ν_old + d.
        let d = 2.0;
        assert_eq!(solve_nu(-5.0, 3.0, d), NU_MIN);
        assert_eq!(solve_nu(-1.0, 500.0, d), NU_MAX);
        let nu = solve_nu(-1.02, 3.0, d);
        assert!(nu > NU_MIN && nu < NU_MAX);
        assert!(nu_equation(nu, -1.02, 3.0, d).abs() <= 1e-8);
    }
}
