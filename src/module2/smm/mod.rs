//! Student's t mixture model and its MAP-ECM fit (method §6, Eq. 13–15), plain f64 numerics.
//!
//! The EM is non-differentiable (its outputs are constants for all gradients, §6.9). Every
//! parallel loop works on fixed row chunks (E-step) or on independent components (M-step, ν-step)
//! and combines sequentially, so results are bit-identical for any number of threads.
//!
//! This file holds the mixture `Θ` and its state, the MAP-ECM loop ([`Smm::em`]), the full fit
//! ([`fit`]) and Θ's tensor-file I/O; the steps live beside it:
//!
//! * `prior` — the NIW–Dirichlet prior and its IW scale choice (§6.2);
//! * `estep` — component log densities, the E-step and its tiled δ kernel (§6.1, §6.6), and the
//!   per-row gradient of `ln p(z|Θ)` (§11);
//! * `mstep` — the MAP M-step and the hard initial M-step (§6.5, §6.7);
//! * `nu` — the ν CM-step (§6.8).

mod estep;
mod mstep;
mod nu;
mod prior;

pub use estep::EStep;
pub use nu::{nu_equation, solve_nu};
pub use prior::{ScalePrior, SmmPrior};

use crate::error::{DarlcError, Result};
use crate::io::TensorFile;
use crate::linalg::cholesky::{
    CholeskyFactor, cholesky_jitter, log_det, mahalanobis, trace_inv_times,
};
use crate::linalg::kmeans::{KMeansResult, kmeans};
use crate::rng::Stream;
use ndarray::{Array1, Array2, Array3, ArrayView2, Axis};
use rayon::prelude::*;
use std::path::Path;

/// Lower bound of ν (§6.8).
pub const NU_MIN: f64 = 1.0;
/// Upper bound of ν (§6.8).
pub const NU_MAX: f64 = 200.0;
/// ν of the hard initial M-step (§6.5).
pub const NU_INIT: f64 = 3.0;

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
    /// Defaults of method §14 for `k` components.
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
}

impl Smm {
    /// Store Θ in a tensor file under the method §18 names `smm.pi [K]`, `smm.mu [K,d]`,
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
