//! The joint phase of DARLC (method §1 steps 5–7): self-paced training of the embeddings and the
//! Student's t mixture, "dual advancement" of representation learning and clustering.
//!
//! ```text
//! start (§6.5):  calibrate BN; Z = g_p(f_o(X)); k-means++ → SMM; EM (cap em_iters_init)
//! epoch e:       a. Z ← g_p(f_o(X))                          (eval mode, all N)
//!                b. EM warm-started from Θ (cap em_iters_epoch) → Θ̂; μ, L ← Θ̂
//!                c. one Adam_E step on L_E (Eq. 16), exact two-pass gradient (§8.6); EMA
//!                d. Z ← g_p(f_o(X)); P = target(Q(Z; Θ̂))     (Eq. 22, frozen for the epoch)
//!                e. per mini-batch: L_B = L_KL + L_SSL (Eq. 21); Adam_B step on Module I, the
//!                   projection head, σ₁, σ₂, μ, η, off-diagonal L (§9.3); EMA
//! final (§1.7):  Z ← g_p(f_o(X)); EM from the trained Θ (cap em_iters_final); labels = argmax q
//! ```
//!
//! All parameters live in one [`ParamStore`] (Module I's): `vit.*`, `dec.*`, `g_o.*`, `uwl.*`,
//! `proj.*` and the trainable mixture `smm.mu [K,d]`, `smm.eta [K,d]` (log-diagonal of the
//! Cholesky factor), `smm.l_off [K,d,d]` (its strictly lower part; other entries are ignored and
//! get zero gradient). `π̂, ν̂` stay at their EM values within an epoch.
//!
//! Random streams (all from one seed): `proj.init`, `kmeans++`, `joint.mim.epoch{e}` (one mask
//! per image for the epoch-level `L_MIM`), `joint.perm.epoch{e}`, `joint.mask.epoch{e}` (one mask
//! per batch, drawn batch after batch). An epoch can stop after step b, after d or after any batch
//! step of e and continue from there ([`JointMidEpoch`]) with the bits of an uninterrupted run.

use super::epoch_loss::{EpochTerms, Terms, clustering_gradient, lambda_at};
use super::laplacian::LaplacianSym;
use super::losses::{
    MixtureConsts, kl_loss, log_responsibilities, log_rho, target_log_distribution,
};
use super::projection::ProjectionHead;
use super::smm::{self, EmReport, ScalePrior, Smm, SmmConfig, SmmPrior};
use crate::autodiff::{Tape, Var};
use crate::config::Config;
use crate::error::{DarlcError, Result};
use crate::float::Float;
use crate::module1::mim::draw_visible;
use crate::module1::model::{ModuleI, mim_and_h, ssl_forward_h};
use crate::module1::uwl::check_sigmas;
use crate::module1::warmup::{batches, permutation, step_bar, steps_per_epoch};
use crate::nn::adam::Adam;
use crate::nn::params::{Bound, ParamId};
use crate::progress::{Eta, batch_job_line};
use crate::rng;
use ndarray::{Array2, Array3, ArrayD, ArrayView2, ArrayView4, Axis, IxDyn, s};
use serde::Serialize;
use std::time::Instant;

/// Settings of the joint phase (defaults: method §14; see [`crate::config::ModuleIIConfig`]).
#[derive(Clone, Debug)]
pub struct JointOptions {
    /// Clustering-space dimension `d` (32).
    pub dim: usize,
    /// Number of mixture components K.
    pub k: usize,
    /// Joint epochs `E_j` (50).
    pub epochs: usize,
    /// Mini-batch size of the batch-level steps and chunk size of full-data passes (256).
    pub batch: usize,
    /// `Adam_E` learning rate (1e-3) and `Adam_B` learning rate (1e-5), §9.4.
    pub lr_epoch: f64,
    pub lr_batch: f64,
    /// `λ₀` of Eq. 17 (0.5).
    pub lambda0: f64,
    /// EM caps (100 / 20 / 100) and relative tolerance (1e-6), §6.9.
    pub em_iters_init: usize,
    pub em_iters_epoch: usize,
    pub em_iters_final: usize,
    pub em_tol: f64,
    /// SMM prior α and κ0 (§6.2) and the initial ν (§6.5): 2, 0.01 and 3 in method §14.
    pub alpha: f64,
    pub kappa0: f64,
    pub nu_init: f64,
    /// SMM→GMM ablation (§15).
    pub gaussian: bool,
    pub scale_prior: ScalePrior,
    /// Which epoch-level terms are on (`w/o L_LH`, `w/o L_size` ablations).
    pub terms: Terms,
    pub seed: u64,
    pub progress: bool,
}

impl JointOptions {
    /// method §14 defaults for K components: the paper preset's `module2` section
    /// ([`JointOptions::from_config`] of [`Config::default`]).
    pub fn new(k: usize, seed: u64) -> Self {
        let c = Config {
            seed,
            ..Config::default()
        };
        Self::from_config(&c, 0, k, false)
    }

    /// The joint phase of a run configuration for `n` images and `k` components: the `module2`
    /// section, the ablation switches `gmm`, `no_lh`, `no_size`, the run's seed, and the batch
    /// of `module1.batch` (the joint phase shares the warm-up's B).
    pub fn from_config(c: &Config, n: usize, k: usize, progress: bool) -> Self {
        let m2 = &c.module2;
        JointOptions {
            dim: m2.dim,
            k,
            epochs: m2.joint_epochs,
            batch: c.module1.batch.size_for(n),
            lr_epoch: m2.lr_epoch,
            lr_batch: m2.lr_batch,
            lambda0: m2.lambda0,
            em_iters_init: m2.em_iters_init,
            em_iters_epoch: m2.em_iters_epoch,
            em_iters_final: m2.em_iters_final,
            em_tol: m2.em_tol,
            alpha: m2.alpha,
            kappa0: m2.kappa0,
            nu_init: m2.nu_init,
            gaussian: c.ablations.gmm,
            scale_prior: m2.scale_prior,
            terms: Terms {
                lh: !c.ablations.no_lh,
                size: !c.ablations.no_size,
            },
            seed: c.seed,
            progress,
        }
    }
}

/// Ids of the trainable mixture parameters (§9.3).
#[derive(Clone, Copy, Debug)]
pub struct SmmParamIds {
    pub mu: ParamId,
    pub eta: ParamId,
    pub l_off: ParamId,
}

/// One joint epoch's record (a line of `log.jsonl`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct JointEpochLog {
    pub phase: &'static str,
    pub epoch: usize,
    /// EM of step b: iterations, convergence, `ℓ_MAP` at the end.
    pub em_iters: usize,
    pub em_converged: bool,
    pub l_map: f64,
    /// Epoch-level terms at step c (Eq. 16); `l_e` is their sum with `l_mim_epoch`.
    #[serde(flatten)]
    pub terms: EpochTerms,
    pub l_mim_epoch: f64,
    pub l_e: f64,
    /// Batch-level means (weighted by batch size) over step e.
    pub l_kl: f64,
    pub l_ssl: f64,
    pub l_mim: f64,
    pub l_cl: f64,
    pub sigma1: f64,
    pub sigma2: f64,
    /// Share of images whose argmax cluster changed since the previous epoch's EM.
    pub labels_changed: f64,
    /// Clusters that are the argmax of at least one image after this epoch's EM (≤ K): a fall
    /// shows components merging.
    pub clusters_used: usize,
    pub seconds: f64,
    /// Wall time of each step of the epoch (seconds), to see where a joint epoch goes.
    pub timing: JointTiming,
}

/// Seconds spent in the steps a–e of one joint epoch (see the module docs).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct JointTiming {
    /// a: `Z` of all images before the EM.
    pub embed: f64,
    /// b: the warm-started EM.
    pub em: f64,
    /// c: the two-pass epoch-level gradient, Adam_E and EMA.
    pub epoch_step: f64,
    /// d: `Z` after the epoch-level step and the target distribution.
    pub target: f64,
    /// e: all batch-level steps.
    pub batch_steps: f64,
}

/// The wall time of a joint epoch's steps, lap after lap.
struct Laps {
    clock: Instant,
    timing: JointTiming,
}

impl Laps {
    fn new() -> Self {
        Laps {
            clock: Instant::now(),
            timing: JointTiming::default(),
        }
    }

    /// Seconds since the last lap.
    fn lap(&mut self) -> f64 {
        let s = self.clock.elapsed().as_secs_f64();
        self.clock = Instant::now();
        s
    }
}

impl JointEpochLog {
    /// One line for a log file: `joint epoch e/E: losses, clusters used, labels changed, seconds`
    /// (the first epoch has no previous labels to compare with).
    pub fn describe(&self, epochs: usize) -> String {
        let changed = if self.epoch == 0 {
            String::new()
        } else {
            format!(", {:.1}% labels changed", 100.0 * self.labels_changed)
        };
        format!(
            "joint epoch {}/{epochs}: L_E {:.4}, L_KL {:.4}, L_SSL {:.4}, {} clusters used{changed}, \
             {:.1} s",
            self.epoch + 1,
            self.l_e,
            self.l_kl,
            self.l_ssl,
            self.clusters_used,
            self.seconds
        )
    }
}

/// Number of distinct labels (clusters that hold at least one image).
pub fn clusters_used(labels: &[usize]) -> usize {
    crate::eval::metrics::dense_labels(labels).1.len()
}

/// One batch-level step's scalars.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct BatchLosses {
    pub l_b: f64,
    pub l_kl: f64,
    pub l_ssl: f64,
    pub l_mim: f64,
    pub l_cl: f64,
}

/// What the joint epochs carry from one epoch to the next besides the model: the epochs done,
/// both optimisers and the labels of the last EM (for `labels_changed`), and, inside an epoch,
/// what the epoch has done so far ([`JointMidEpoch`]). A checkpoint stores it.
#[derive(Clone, Debug)]
pub struct JointState<T: Float> {
    /// Joint epochs completed (the next one to run).
    pub epoch: usize,
    pub adam_e: Adam<T>,
    pub adam_b: Adam<T>,
    pub prev_labels: Option<Vec<usize>>,
    /// Set inside epoch `epoch` after its epoch-level steps a–d (see the module docs); `None` at
    /// an epoch boundary.
    pub mid: Option<JointMidEpoch>,
}

/// A joint epoch stopped after its EM (step b), or after its epoch-level steps a–d and `batches`
/// of its batch-level steps: everything the rest of the epoch and its record depend on besides
/// the model and the optimisers. [`Joint::train_from`] continues from it without redoing what
/// was done (the model has moved since, so it could not be redone) and gives the epoch's record
/// the bits of an uninterrupted one.
#[derive(Clone, Debug)]
pub struct JointMidEpoch {
    /// Batch-level steps done in the epoch (step e; 0 until `level` is [`EpochLevel::Done`]).
    pub batches: usize,
    /// Running sums of the batch losses, weighted by batch size, in batch order (`l_b` unused),
    /// and the images they saw.
    pub sum: BatchLosses,
    pub images: usize,
    /// Step b's EM: iterations, convergence, last `ℓ_MAP`; the share of labels changed and the
    /// clusters used after it.
    pub em_iters: usize,
    pub em_converged: bool,
    pub l_map: f64,
    pub labels_changed: f64,
    pub clusters_used: usize,
    /// Where the epoch-level part stands.
    pub level: EpochLevel,
}

/// The epoch-level part of a joint epoch stopped inside it.
#[derive(Clone, Debug)]
pub enum EpochLevel {
    /// After step b: the `Z` `[N, d]` of step a that step c differentiates through.
    AfterEm { z: Array2<f64> },
    /// After steps c–d: step c's terms and `L_MIM`, step d's target distribution `ln P`
    /// (Eq. 22), `[N, K]`, frozen for the epoch.
    Done {
        terms: EpochTerms,
        l_mim_epoch: f64,
        ln_p: Array2<f64>,
    },
}

impl EpochLevel {
    /// Step d's `ln P`, once the epoch-level step is done.
    pub fn target(&self) -> Result<&Array2<f64>> {
        match self {
            EpochLevel::Done { ln_p, .. } => Ok(ln_p),
            EpochLevel::AfterEm { .. } => Err(DarlcError::Data(
                "joint batch steps before the epoch-level step".into(),
            )),
        }
    }
}

/// What [`Joint::train_from`] reports as it goes.
#[derive(Clone, Copy, Debug)]
pub enum JointEvent<'a> {
    /// Inside epoch `state.epoch`, after its EM, after its epoch-level steps and after every
    /// batch-level step but the last (the position is `state.mid`; a checkpoint writer uses it
    /// only when a stop was asked for).
    Step,
    /// After an epoch, with its record and the labels of its EM (for monitoring only).
    Epoch(&'a JointEpochLog, &'a [usize]),
}

impl<T: Float> JointState<T> {
    /// Before the first joint epoch.
    pub fn fresh(opts: &JointOptions) -> Self {
        JointState {
            epoch: 0,
            adam_e: Adam::new(opts.lr_epoch),
            adam_b: Adam::new(opts.lr_batch),
            prev_labels: None,
            mid: None,
        }
    }
}

/// Module I + projection head + mixture, trained jointly.
#[derive(Clone, Debug)]
pub struct Joint<T: Float> {
    pub m1: ModuleI<T>,
    pub head: ProjectionHead<T>,
    pub smm_ids: SmmParamIds,
    /// Parameters of `Adam_E` (θ, θ_dec, θ_proj) and of `Adam_B` (those plus φ_o, σ₁, σ₂, μ, η,
    /// off-diagonal L), §9.4.
    pub epoch_ids: Vec<ParamId>,
    pub batch_ids: Vec<ParamId>,
    /// The mixture of the last EM (`π̂`, `ν̂` are used by the batch steps).
    pub smm: Smm,
    /// The prior, computed once from `Z⁰` (§6.2) and kept.
    pub prior: SmmPrior,
    pub opts: JointOptions,
    /// `Z⁰` of [`Joint::start`], reused by the first epoch of [`Joint::train`] while the parameters
    /// it was computed from are unchanged.
    start_z: Option<StartEmbedding<T>>,
}

/// The clustering embedding of all images at the end of [`Joint::start`] and the values it was
/// computed from: every `vit.*` and `proj.*` parameter and the BN running statistics.
#[derive(Clone, Debug)]
struct StartEmbedding<T: Float> {
    key: Vec<ArrayD<T>>,
    z: Array2<T>,
}

impl<T: Float> Joint<T> {
    /// The parameters and buffers that `Z = g(f(X))` depends on (see [`StartEmbedding`]).
    fn embedding_key(&self) -> Vec<ArrayD<T>> {
        let s = &self.m1.store;
        let mut key: Vec<ArrayD<T>> = ["vit", "proj"]
            .iter()
            .flat_map(|p| s.ids_with_prefix(p))
            .map(|id| s.get(id).clone())
            .collect();
        key.push(self.head.bn.running_mean.clone().into_dyn());
        key.push(self.head.bn.running_var.clone().into_dyn());
        key
    }

    /// `Z` of all `n` images: `Z⁰` of [`Joint::start`] (taken, so at most once) when it is for `n`
    /// images and every value it depends on is bit-identical, else a fresh [`Joint::embed`].
    fn embed_z(&mut self, x: ArrayView4<T>) -> Array2<T> {
        if let Some(c) = self.start_z.take() {
            let key = self.embedding_key();
            let same = c.z.nrows() == x.dim().0
                && c.key.len() == key.len()
                && c.key.iter().zip(&key).all(|(a, b)| {
                    a.shape() == b.shape()
                        && a.iter()
                            .zip(b.iter())
                            .all(|(u, v)| u.f64().to_bits() == v.f64().to_bits())
                });
            if same {
                return c.z;
            }
        }
        self.embed(x).1
    }
}

/// `[1, d, d]` constants: the identity and the strictly-lower-triangular mask.
fn tri_masks<T: Float>(d: usize) -> (ArrayD<T>, ArrayD<T>) {
    let eye = ArrayD::from_shape_fn(IxDyn(&[1, d, d]), |ix| {
        if ix[1] == ix[2] { T::one() } else { T::zero() }
    });
    let lower = ArrayD::from_shape_fn(IxDyn(&[1, d, d]), |ix| {
        if ix[1] > ix[2] { T::one() } else { T::zero() }
    });
    (eye, lower)
}

/// `L = L_off ⊙ strict_lower + diag(exp η)` for `η: [K, d]`, `L_off: [K, d, d]` (method §9.3: the
/// Cholesky factor with a log-parameterised positive diagonal; entries of `L_off` on or above the
/// diagonal are ignored and get zero gradient).
pub fn cholesky_from_params<T: Float>(t: &mut Tape<T>, eta: Var, l_off: Var) -> Var {
    let (k, d) = (t.shape(eta)[0], t.shape(eta)[1]);
    let (eye, lower) = tri_masks::<T>(d);
    let eye = t.constant(eye);
    let lower = t.constant(lower);
    let e = t.exp(eta);
    let e = t.reshape(e, &[k, d, 1]);
    let diag = t.mul(e, eye);
    let off = t.mul(l_off, lower);
    t.add(off, diag)
}

fn to_f64<T: Float>(a: ArrayView2<T>) -> Array2<f64> {
    a.mapv(|v| v.f64())
}

impl<T: Float> Joint<T> {
    /// Start of the joint phase (method §1 step 5, §5 calibration, §6.5): add the projection head
    /// (stream `proj.init`) and the mixture parameters to `m1`'s store, calibrate BN on all `x`,
    /// fit the SMM on `Z⁰` (k-means++ from stream `kmeans++`, EM capped at `em_iters_init`).
    pub fn start(
        mut m1: ModuleI<T>,
        x: ArrayView4<T>,
        opts: JointOptions,
    ) -> Result<(Self, EmReport)> {
        let n = x.dim().0;
        if opts.k < 2 || opts.k > n {
            return Err(DarlcError::param(
                "module2.clusters",
                format!("K = {} must satisfy 2 ≤ K ≤ N = {n}", opts.k),
            ));
        }
        if opts.batch < 2 {
            return Err(DarlcError::param(
                "module1.batch",
                "the joint phase needs batches of at least 2 (BatchNorm)",
            ));
        }
        let mut r = rng::stream(opts.seed, "proj.init");
        let mut head = ProjectionHead::new(&mut m1.store, "proj", m1.cfg.dim, opts.dim, &mut r);
        let h = m1.embed(x, opts.batch);
        head.calibrate(&m1.store, h.view())?;
        let z_t = head.embed(&m1.store, h.view());
        let z = to_f64(z_t.view());
        let cfg = SmmConfig {
            k: opts.k,
            gaussian: opts.gaussian,
            scale_prior: opts.scale_prior,
            max_iter: opts.em_iters_init,
            tol: opts.em_tol,
            alpha: opts.alpha,
            kappa0: opts.kappa0,
            nu_init: opts.nu_init,
        };
        let fit = smm::fit(z.view(), &cfg, &mut rng::stream(opts.seed, "kmeans++"))?;
        let mut j = Joint::assemble(m1, head, fit.smm, fit.prior, opts);
        j.start_z = Some(StartEmbedding {
            key: j.embedding_key(),
            z: z_t,
        });
        j.load_smm_params();
        Ok((j, fit.report))
    }

    /// Register the mixture parameters after the projection head's and build the joint model
    /// (the parameter layout of [`Joint::start`]).
    fn assemble(
        mut m1: ModuleI<T>,
        head: ProjectionHead<T>,
        smm: Smm,
        prior: SmmPrior,
        opts: JointOptions,
    ) -> Self {
        let (k, d) = (opts.k, opts.dim);
        let smm_ids = SmmParamIds {
            mu: m1.store.add("smm.mu", ArrayD::zeros(IxDyn(&[k, d]))),
            eta: m1.store.add("smm.eta", ArrayD::zeros(IxDyn(&[k, d]))),
            l_off: m1.store.add("smm.l_off", ArrayD::zeros(IxDyn(&[k, d, d]))),
        };
        let mut epoch_ids = Vec::new();
        for p in ["vit", "dec", "proj"] {
            epoch_ids.extend(m1.store.ids_with_prefix(p));
        }
        let mut batch_ids = Vec::new();
        for p in ["vit", "dec", "g_o", "proj", "uwl", "smm"] {
            batch_ids.extend(m1.store.ids_with_prefix(p));
        }
        Joint {
            m1,
            head,
            smm_ids,
            epoch_ids,
            batch_ids,
            smm,
            prior,
            opts,
            start_z: None,
        }
    }

    /// The joint model with [`Joint::start`]'s parameter layout but none of its computation, for
    /// resuming from a checkpoint: `m1` is a freshly built Module I (its values, the projection
    /// head's, the mixture parameters' and the BN statistics are then loaded by the caller), and
    /// `smm`, `prior` are the checkpoint's mixture of the last EM and the prior of `Z⁰`.
    pub fn restore(mut m1: ModuleI<T>, smm: Smm, prior: SmmPrior, opts: JointOptions) -> Self {
        let mut r = rng::stream(opts.seed, "proj.init");
        let head = ProjectionHead::new(&mut m1.store, "proj", m1.cfg.dim, opts.dim, &mut r);
        Joint::assemble(m1, head, smm, prior, opts)
    }

    /// `μ ← μ̂`, `η ← ln diag chol(Σ̂)`, `L_off ← strict lower part of chol(Σ̂)` (§9.3).
    pub fn load_smm_params(&mut self) {
        let (k, d) = (self.smm.k(), self.smm.d());
        let ids = self.smm_ids;
        *self.m1.store.get_mut(ids.mu) = self.smm.mu.mapv(T::of).into_dyn();
        let chol = &self.smm.chol;
        *self.m1.store.get_mut(ids.eta) =
            Array2::from_shape_fn((k, d), |(c, j)| T::of(chol[[c, j, j]].ln())).into_dyn();
        *self.m1.store.get_mut(ids.l_off) = Array3::from_shape_fn((k, d, d), |(c, i, j)| {
            if i > j {
                T::of(chol[[c, i, j]])
            } else {
                T::zero()
            }
        })
        .into_dyn();
    }

    /// The trainable `μ [K,d]` and `L [K,d,d]` (f64) from the store.
    pub fn trained_mu_chol(&self) -> (Array2<f64>, Array3<f64>) {
        let ids = self.smm_ids;
        let (k, d) = (self.smm.k(), self.smm.d());
        let mu = self
            .m1
            .store
            .get(ids.mu)
            .mapv(|v| v.f64())
            .into_shape_with_order((k, d))
            .expect("[K, d]");
        let eta = self.m1.store.get(ids.eta);
        let off = self.m1.store.get(ids.l_off);
        let chol = Array3::from_shape_fn((k, d, d), |(c, i, j)| match i.cmp(&j) {
            std::cmp::Ordering::Greater => off[[c, i, j]].f64(),
            std::cmp::Ordering::Equal => eta[[c, i]].f64().exp(),
            std::cmp::Ordering::Less => 0.0,
        });
        (mu, chol)
    }

    /// The mixture with the gradient-trained `μ, Σ = L Lᵀ` and the EM's `π̂, ν̂`: the warm start of
    /// the next EM (§9.3, §6.9).
    pub fn trained_smm(&self) -> Result<Smm> {
        let (mu, chol) = self.trained_mu_chol();
        Smm::from_cholesky(
            self.smm.pi.clone(),
            mu,
            chol,
            self.smm.nu.clone(),
            self.smm.gaussian,
        )
    }

    /// `(h, z)` for all images, eval mode, no gradient (chunks of `opts.batch`).
    pub fn embed(&self, x: ArrayView4<T>) -> (Array2<T>, Array2<T>) {
        let h = self.m1.embed(x, self.opts.batch);
        let z = self.head.embed(&self.m1.store, h.view());
        (h, z)
    }

    /// `μ` and `L` of the trainable mixture on the tape (§9.3).
    fn smm_vars(&self, t: &mut Tape<T>, bound: &Bound) -> (Var, Var) {
        let l = cholesky_from_params(
            t,
            bound.var(self.smm_ids.eta),
            bound.var(self.smm_ids.l_off),
        );
        (bound.var(self.smm_ids.mu), l)
    }

    /// `ln π̂_k` and `ν̂_k` of the last EM: constants of the batch-level loss (§9.2).
    pub fn mixture_consts(&self) -> MixtureConsts {
        MixtureConsts {
            ln_pi: self.smm.pi.iter().map(|p| p.ln()).collect(),
            nu: self.smm.nu.to_vec(),
        }
    }

    /// The exact epoch-level gradient (method §8.6) of
    /// `L_E = L_Lap + L_LH + L_SIZE + L_MIM` with respect to [`Self::epoch_ids`], given all
    /// embeddings `z` (eval mode, the same values the chunks recompute), the Laplacian, `λ_e`, and
    /// one visible set per image for `L_MIM`:
    ///
    /// 1. `G = ∂(L_Lap + L_LH + L_size)/∂Z` in closed form ([`clustering_gradient`]);
    /// 2. per chunk `c` of `opts.batch` images in index order: backprop
    ///    `s_c = Σ_{i∈c} ⟨G_i, z_i⟩ + (|c|/N) L_MIM(c)` and add the parameter gradients.
    ///
    /// Returns the gradients (in `epoch_ids` order), the clustering terms and the full-data
    /// `L_MIM`.
    pub fn epoch_gradient(
        &self,
        x: ArrayView4<T>,
        z: ArrayView2<f64>,
        lap: &LaplacianSym,
        lambda: f64,
        visible: &[Vec<usize>],
    ) -> Result<(Vec<ArrayD<T>>, EpochTerms, f64)> {
        let n = x.dim().0;
        let (g, terms) = clustering_gradient(&self.smm, z, lap, lambda, self.opts.terms)?;
        let mut acc: Vec<ArrayD<T>> = self
            .epoch_ids
            .iter()
            .map(|&id| ArrayD::zeros(self.m1.store.get(id).raw_dim()))
            .collect();
        let mut l_mim = 0.0;
        let cfg = &self.m1.cfg;
        for start in (0..n).step_by(self.opts.batch) {
            let end = (start + self.opts.batch).min(n);
            let w = (end - start) as f64 / n as f64;
            let mut t = Tape::new();
            let (bound, vars) = self.m1.leaves(&mut t, true);
            let xc = x.slice(s![start..end, .., .., ..]);
            let (lm, h) = mim_and_h(&mut t, &vars, cfg, &self.m1.pe, xc, &visible[start..end]);
            let zc = self.head.forward_eval(&mut t, &bound, h);
            let gc = t.constant(g.slice(s![start..end, ..]).mapv(T::of).into_dyn());
            let dot = t.mul(gc, zc);
            let dot = t.sum(dot);
            let lmw = t.scale(lm, w);
            let sc = t.add(dot, lmw);
            l_mim += w * t.scalar(lm).f64();
            let mut grads = t.backward(sc);
            let gs = bound.take_grads(&mut grads, &self.m1.store, &self.epoch_ids);
            for (a, g) in acc.iter_mut().zip(gs) {
                a.zip_mut_with(&g, |x, &y| *x = *x + y);
            }
        }
        if !l_mim.is_finite() || acc.iter().any(|a| a.iter().any(|v| !v.f64().is_finite())) {
            return Err(DarlcError::Numerical(format!(
                "epoch-level loss: non-finite gradient (L_MIM = {l_mim}, L_LH = {}, L_size = {})",
                terms.l_lh, terms.l_size
            )));
        }
        Ok((acc, terms, l_mim))
    }

    /// The batch-level loss `L_B = L_KL + L_SSL` (method §9.2) on one mini-batch (train-mode BN, so
    /// the BN running statistics are updated) and its gradient with respect to
    /// [`Self::batch_ids`] (same order). `ln_p` are the batch rows of the frozen target
    /// distribution.
    pub fn batch_gradient(
        &mut self,
        x: ArrayView4<T>,
        x_s: ArrayView4<T>,
        ln_p: ArrayView2<f64>,
        visible: &[Vec<usize>],
    ) -> Result<(Vec<ArrayD<T>>, BatchLosses)> {
        let mut t = Tape::new();
        let (bound, vars) = self.m1.leaves(&mut t, true);
        let ct = self.m1.target_c(x_s);
        let o = ssl_forward_h(&mut t, &vars, &self.m1.cfg, &self.m1.pe, x, ct, visible);
        let z = self.head.forward_train(&mut t, &bound, o.h)?;
        let (mu, l) = self.smm_vars(&mut t, &bound);
        let consts = self.mixture_consts();
        let lr = log_rho(&mut t, z, mu, l, &consts);
        let lnq = log_responsibilities(&mut t, lr);
        let kl = kl_loss(&mut t, ln_p, lnq);
        let total = t.add(kl, o.l_ssl);
        let losses = BatchLosses {
            l_b: t.scalar(total).f64(),
            l_kl: t.scalar(kl).f64(),
            l_ssl: t.scalar(o.l_ssl).f64(),
            l_mim: t.scalar(o.l_mim).f64(),
            l_cl: t.scalar(o.l_cl).f64(),
        };
        if !losses.l_b.is_finite() {
            return Err(DarlcError::Numerical(format!(
                "batch-level loss is not finite (L_KL = {}, L_SSL = {})",
                losses.l_kl, losses.l_ssl
            )));
        }
        let mut grads = t.backward(total);
        let gs = bound.take_grads(&mut grads, &self.m1.store, &self.batch_ids);
        Ok((gs, losses))
    }

    /// One batch-level step (method §9.2, §9.4): [`Self::batch_gradient`], Adam_B on
    /// [`Self::batch_ids`], the σ divergence check (§16), then EMA.
    pub fn batch_step(
        &mut self,
        adam: &mut Adam<T>,
        x: ArrayView4<T>,
        x_s: ArrayView4<T>,
        ln_p: ArrayView2<f64>,
        visible: &[Vec<usize>],
    ) -> Result<BatchLosses> {
        let (gs, losses) = self.batch_gradient(x, x_s, ln_p, visible)?;
        adam.step(&mut self.m1.store, &self.batch_ids, &gs);
        let (s1, s2) = self.m1.sigmas();
        check_sigmas(s1, s2)?;
        let m = self.m1.cfg.momentum;
        self.m1.ema(m);
        Ok(losses)
    }

    /// One epoch-level step (method §8.6 step 3): [`Self::epoch_gradient`], Adam_E on
    /// [`Self::epoch_ids`], then EMA.
    pub fn epoch_step(
        &mut self,
        adam: &mut Adam<T>,
        x: ArrayView4<T>,
        z: ArrayView2<f64>,
        lap: &LaplacianSym,
        lambda: f64,
        visible: &[Vec<usize>],
    ) -> Result<(EpochTerms, f64)> {
        let (grads, terms, l_mim) = self.epoch_gradient(x, z, lap, lambda, visible)?;
        adam.step(&mut self.m1.store, &self.epoch_ids, &grads);
        let m = self.m1.cfg.momentum;
        self.m1.ema(m);
        Ok((terms, l_mim))
    }

    /// Joint epochs 0…E_j−1 (method §1 step 6) on raw images `x`, their smoothed twins `x_s` and
    /// the seeding Laplacian. `on_epoch` receives each epoch's record as soon as it is complete,
    /// with the labels of that epoch's EM (for monitoring only).
    pub fn train(
        &mut self,
        x: ArrayView4<T>,
        x_s: ArrayView4<T>,
        lap: &LaplacianSym,
        mut on_epoch: impl FnMut(&JointEpochLog, &[usize]) -> Result<()>,
    ) -> Result<Vec<JointEpochLog>> {
        let mut state = JointState::fresh(&self.opts);
        self.train_from(x, x_s, lap, &mut state, |ev, _, _| match ev {
            JointEvent::Epoch(log, labels) => on_epoch(log, labels),
            JointEvent::Step => Ok(()),
        })
    }

    /// [`Joint::train`] from `state` (fresh, or a checkpoint's): epochs `state.epoch..E_j`, the
    /// first of them from `state.mid` when set. Every epoch's random streams are named by its
    /// index, and the batches a checkpoint's epoch had done are skipped after drawing their masks,
    /// so the steps run here draw exactly what an uninterrupted run draws. `on_event` receives the
    /// model and the updated state after an epoch's EM, after its epoch-level step, after every
    /// batch-level step but the last, and after the epoch (for checkpoints); an error from it
    /// stops the training.
    pub fn train_from(
        &mut self,
        x: ArrayView4<T>,
        x_s: ArrayView4<T>,
        lap: &LaplacianSym,
        state: &mut JointState<T>,
        mut on_event: impl FnMut(JointEvent, &Self, &JointState<T>) -> Result<()>,
    ) -> Result<Vec<JointEpochLog>> {
        let n = x.dim().0;
        if lap.n() != n {
            return Err(DarlcError::Data(format!(
                "the seeding similarity has {} nodes but there are {n} images",
                lap.n()
            )));
        }
        let (l, nk) = (self.m1.cfg.tokens(), self.m1.cfg.n_keep());
        let smm_param_ids = [self.smm_ids.mu, self.smm_ids.eta, self.smm_ids.l_off];
        let e_total = self.opts.epochs;
        let steps = steps_per_epoch(n, self.opts.batch);
        let left = e_total.saturating_sub(state.epoch);
        let done = state.mid.as_ref().map_or(0, |m| m.batches);
        let bar = step_bar(
            self.opts.progress,
            (left * steps).saturating_sub(done) as u64,
        );
        let mut eta = Eta::new(left);
        let mut logs = Vec::new();
        for e in state.epoch..e_total {
            let t0 = Instant::now();
            bar.set_prefix(format!("joint {}/{}", e + 1, e_total));
            let mut laps = Laps::new();
            // a–d, unless a checkpoint taken inside this epoch has their results.
            if state.mid.is_none() {
                let mid = self.epoch_em(x, state, &mut laps)?;
                state.mid = Some(mid);
                on_event(JointEvent::Step, self, state)?;
            }
            let mut mid = state.mid.take().expect("set above");
            if let EpochLevel::AfterEm { z } = &mid.level {
                mid.level = self.epoch_level_step(x, z.view(), lap, e, state, &mut laps)?;
                // e starts with fresh Adam_B moments for μ, η, L_off (§9.4).
                state.adam_b.reset_state(&smm_param_ids);
                state.mid = Some(mid);
                on_event(JointEvent::Step, self, state)?;
                mid = state.mid.take().expect("set above");
            }
            // e: batch-level steps.
            let perm = permutation(
                &mut rng::stream(self.opts.seed, &format!("joint.perm.epoch{e}")),
                n,
            );
            let mut mask_rng = rng::stream(self.opts.seed, &format!("joint.mask.epoch{e}"));
            let skip = mid.batches;
            let all = batches(&perm, self.opts.batch);
            for (i, idx) in all.iter().enumerate() {
                let vis = draw_visible(&mut mask_rng, idx.len(), l, nk);
                if i < skip {
                    continue;
                }
                let xb = x.select(Axis(0), idx);
                let xsb = x_s.select(Axis(0), idx);
                let pb = mid.level.target()?.select(Axis(0), idx);
                let b =
                    self.batch_step(&mut state.adam_b, xb.view(), xsb.view(), pb.view(), &vis)?;
                let w = idx.len() as f64;
                mid.sum.l_kl += w * b.l_kl;
                mid.sum.l_ssl += w * b.l_ssl;
                mid.sum.l_mim += w * b.l_mim;
                mid.sum.l_cl += w * b.l_cl;
                mid.images += idx.len();
                mid.batches += 1;
                bar.set_message(format!(
                    "L_KL {:.4} L_SSL {:.4}  K {}  changed {:.1}%",
                    b.l_kl,
                    b.l_ssl,
                    self.smm.k(),
                    100.0 * mid.labels_changed
                ));
                bar.inc(1);
                if i + 1 < all.len() {
                    state.mid = Some(mid);
                    on_event(JointEvent::Step, self, state)?;
                    mid = state.mid.take().expect("set above");
                }
            }
            laps.timing.batch_steps = laps.lap();
            let im = mid.images.max(1) as f64;
            let (sigma1, sigma2) = self.m1.sigmas();
            let EpochLevel::Done {
                terms, l_mim_epoch, ..
            } = mid.level
            else {
                return Err(DarlcError::Data(
                    "joint epoch without its epoch-level step".into(),
                ));
            };
            let log = JointEpochLog {
                phase: "joint",
                epoch: e,
                em_iters: mid.em_iters,
                em_converged: mid.em_converged,
                l_map: mid.l_map,
                terms,
                l_mim_epoch,
                l_e: terms.l_lap + terms.l_lh + terms.l_size + l_mim_epoch,
                l_kl: mid.sum.l_kl / im,
                l_ssl: mid.sum.l_ssl / im,
                l_mim: mid.sum.l_mim / im,
                l_cl: mid.sum.l_cl / im,
                sigma1,
                sigma2,
                labels_changed: mid.labels_changed,
                clusters_used: mid.clusters_used,
                seconds: t0.elapsed().as_secs_f64(),
                timing: laps.timing,
            };
            if self.opts.progress {
                let left = eta.after(log.seconds);
                batch_job_line(&format!("{}{left}", log.describe(e_total)));
            }
            state.epoch = e + 1;
            let labels = state.prev_labels.as_deref().unwrap_or(&[]);
            on_event(JointEvent::Epoch(&log, labels), self, state)?;
            logs.push(log);
        }
        bar.finish_and_clear();
        Ok(logs)
    }

    /// Steps a–b of a joint epoch (see the module docs): `Z`, the EM warm-started from the
    /// trained Θ (its labels become `state.prev_labels`), `μ, L ← Θ̂`.
    fn epoch_em(
        &mut self,
        x: ArrayView4<T>,
        state: &mut JointState<T>,
        laps: &mut Laps,
    ) -> Result<JointMidEpoch> {
        let n = x.dim().0;
        // At e = 0 the Z⁰ of `start`: nothing has changed since.
        let z = self.embed_z(x);
        let z = to_f64(z.view());
        laps.timing.embed = laps.lap();
        let mut warm = self.trained_smm()?;
        let em = warm.em(
            z.view(),
            &self.prior,
            self.opts.em_iters_epoch,
            self.opts.em_tol,
        )?;
        self.smm = warm;
        self.load_smm_params();
        let (labels, _) = em.estep.labels();
        let used = clusters_used(&labels);
        let changed = state.prev_labels.as_ref().map_or(1.0, |p| {
            p.iter().zip(&labels).filter(|(a, b)| a != b).count() as f64 / n as f64
        });
        state.prev_labels = Some(labels);
        laps.timing.em = laps.lap();
        Ok(JointMidEpoch {
            batches: 0,
            sum: BatchLosses::default(),
            images: 0,
            em_iters: em.iters,
            em_converged: em.converged,
            l_map: em.l_map.last().copied().unwrap_or(f64::NAN),
            labels_changed: changed,
            clusters_used: used,
            level: EpochLevel::AfterEm { z },
        })
    }

    /// Steps c–d of joint epoch `e` on step a's `z`: the epoch-level step with `Adam_E` and EMA,
    /// then the target distribution (see the module docs).
    fn epoch_level_step(
        &mut self,
        x: ArrayView4<T>,
        z: ArrayView2<f64>,
        lap: &LaplacianSym,
        e: usize,
        state: &mut JointState<T>,
        laps: &mut Laps,
    ) -> Result<EpochLevel> {
        let n = x.dim().0;
        let (l, nk) = (self.m1.cfg.tokens(), self.m1.cfg.n_keep());
        // c: the epoch-level step.
        let lambda = lambda_at(self.opts.lambda0, e, self.opts.epochs);
        let visible = draw_visible(
            &mut rng::stream(self.opts.seed, &format!("joint.mim.epoch{e}")),
            n,
            l,
            nk,
        );
        let (grads, terms, l_mim_epoch) = self.epoch_gradient(x, z, lap, lambda, &visible)?;
        state
            .adam_e
            .step(&mut self.m1.store, &self.epoch_ids, &grads);
        let m = self.m1.cfg.momentum;
        self.m1.ema(m);
        laps.timing.epoch_step = laps.lap();
        // d: the target distribution under Θ̂, frozen for the epoch.
        let (_, z) = self.embed(x);
        let ln_q = self.smm.estep(to_f64(z.view()).view())?.ln_q;
        let ln_p = target_log_distribution(ln_q.view());
        laps.timing.target = laps.lap();
        Ok(EpochLevel::Done {
            terms,
            l_mim_epoch,
            ln_p,
        })
    }

    /// Final fit (method §1 step 7): `Z` of all images, EM warm-started from the trained Θ to
    /// convergence or `em_iters_final`. Returns `(h, z, report)`; `self.smm` becomes `Θ̂`.
    pub fn finish(&mut self, x: ArrayView4<T>) -> Result<(Array2<f64>, Array2<f64>, EmReport)> {
        let (h, z) = self.embed(x);
        let z = to_f64(z.view());
        let mut warm = self.trained_smm()?;
        let report = warm.em(
            z.view(),
            &self.prior,
            self.opts.em_iters_final,
            self.opts.em_tol,
        )?;
        self.smm = warm;
        self.load_smm_params();
        Ok((to_f64(h.view()), z, report))
    }

    /// Every parameter (Module I, targets, projection head, trainable mixture) and the BN running
    /// statistics, by dotted name (for `model.safetensors`).
    pub fn named_tensors(&self) -> Vec<(String, ArrayD<T>)> {
        let mut v = self.m1.named_tensors();
        v.extend(self.head.bn.buffers());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module1::model::Config;
    use ndarray::Array4;

    fn tiny() -> (Joint<f64>, Array4<f64>) {
        // 12 deterministic 10×10 images with zeros (the tiny configuration of method §18).
        let x = Array4::from_shape_fn((12, 1, 10, 10), |(i, _, a, b)| {
            ((i * 7 + a * 3 + b) % 5) as f64 * 0.3
        });
        let m1 = ModuleI::<f64>::new(Config::tiny(), 3).unwrap();
        let mut opts = JointOptions::new(3, 5);
        opts.dim = 3;
        opts.batch = 5;
        opts.em_iters_init = 2;
        let (j, _) = Joint::start(m1, x.view(), opts).unwrap();
        (j, x)
    }

    #[test]
    fn first_epoch_reuses_z0_only_while_its_inputs_are_unchanged() {
        let (mut j, x) = tiny();
        let fresh = j.embed(x.view()).1;
        assert_eq!(j.embed_z(x.view()), fresh, "Z⁰ is the embedding at start");
        assert!(j.start_z.is_none(), "Z⁰ is used at most once");
        // An encoder parameter changed after `start`: Z⁰ is stale and must be recomputed.
        let (mut j, x) = tiny();
        let z0 = j.start_z.as_ref().unwrap().z.clone();
        let id = j.m1.store.ids_with_prefix("vit")[0];
        j.m1.store.get_mut(id).mapv_inplace(|v| v + 0.5);
        let fresh = j.embed(x.view()).1;
        assert_ne!(fresh, z0);
        assert_eq!(j.embed_z(x.view()), fresh);
        // A changed BN running statistic (only `proj.*` and the BN buffers feed g) likewise.
        let (mut j, x) = tiny();
        j.head.bn.running_var[0] *= 2.0;
        let fresh = j.embed(x.view()).1;
        assert_eq!(j.embed_z(x.view()), fresh);
    }
}
