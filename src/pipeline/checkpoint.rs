//! Checkpoints of `darlc run` and stopping on SIGTERM/SIGINT (issue 24: no lost work).
//!
//! A DARLC run writes `checkpoint.safetensors` into its staging folder (see [`super::outdir`]) at
//! the end of a block of GAT epochs, a warm-up epoch or a joint epoch once `--checkpoint-every`
//! seconds (default 60; 0: at every one) have passed since the last, at the end of each of the
//! three stages, and, when asked to stop, after the optimiser step under way, atomically (one
//! file, renamed into place).
//! It holds everything the rest of the run depends on:
//!
//! * the stage (`smoothing`, `warm-up`, `joint`), the epochs (GAT: optimiser steps) done in it
//!   and, for a checkpoint inside an epoch, the steps done in the next one ([`Header::within`]);
//! * the GAT parameters (and, while the GAT trains, its Adam moments and loss curve);
//! * Module I's online and EMA-target parameters, the projection head, the trainable mixture and
//!   the BatchNorm running statistics (under their `model.safetensors` names), each optimiser's
//!   moments and step counts (`ckpt.adam_*`), the mixture of the last EM and its prior
//!   (`ckpt.em.*`, `ckpt.prior.*`), the labels of the last EM (`ckpt.prev_labels`);
//! * inside an epoch (`ckpt.mid.*`): the epoch's running loss sums (in their accumulation order)
//!   and image count, and in the joint phase the results of the epoch-level steps that the
//!   epoch's record and its later steps use: of the EM (iterations, convergence and `ℓ_MAP`,
//!   labels changed, clusters used) and either the `Z` `[N, d]` that the epoch-level step will
//!   differentiate through (stopped after the EM) or that step's terms and `L_MIM` and the frozen
//!   target `ln P` `[N, K]`;
//! * `log.jsonl` so far (`ckpt.log`);
//! * in the metadata (`darlc.checkpoint`, JSON): the command, the effective configuration, the
//!   loading options and the SHA-256 of every input file, which a resume must match.
//!
//! Random-stream positions need no saving: every epoch draws from streams named by the seed and
//! the epoch index (`warmup.perm.epoch{e}`, `joint.mask.epoch{e}`, …, see [`crate::rng`]), so
//! epoch `e` of a resumed run draws what it draws in an uninterrupted one; inside an epoch the
//! permutation is drawn whole again and the masks of the steps already done are drawn and
//! discarded (the only per-step draws; the joint phase's `joint.mim.epoch{e}` belongs to step c,
//! which is not redone). With the same parameters, optimiser states, sums and draws, the resumed
//! run computes the same bits (on any thread count: every reduction has a fixed order).
//!
//! Stopping: [`install_signal_handlers`] makes the first SIGTERM or SIGINT only set a flag (and
//! restores the default action, so a second one kills at once). The training loops look at it
//! after every optimiser step (GAT, warm-up and joint batch steps, and the joint epoch-level
//! step); when it is set they write a checkpoint there and the run exits with
//! [`DarlcError::Interrupted`] saying how to resume. A stop therefore waits for the current step
//! only (on the embedded MOB section: a warm-up or joint batch step, or a joint epoch's
//! embedding, EM and epoch-level gradient over all genes). Other stretches without a step
//! (views, similarity, the initial and final mixture fits) are finished first. The hidden
//! environment variable `DARLC_STOP_AFTER` acts as a signal for tests: `stage:count` (e.g.
//! `warm-up:2`) during that epoch's last step, `stage:count.steps` (e.g. `warm-up:1.3`) after
//! that many steps of the epoch after `count` (`joint:E.0`: after the joint epoch-level step).

use crate::augment::gat::{GatParams, GatState, PARAM_NAMES};
use crate::error::{DarlcError, Result};
use crate::float::Float;
use crate::io::{TensorData, TensorFile};
use crate::module1::warmup::WarmupProgress;
use crate::module2::epoch_loss::EpochTerms;
use crate::module2::joint::{BatchLosses, EpochLevel, JointMidEpoch};
use crate::module2::smm::{Smm, SmmPrior};
use crate::nn::adam::{Adam, AdamState};
use crate::nn::params::{ParamStore, read_float_tensor};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

/// File name of the checkpoint inside the staging folder.
pub const FILE: &str = "checkpoint.safetensors";
/// Format tag in the checkpoint's metadata (2: with [`Header::within`]; a checkpoint of format 1,
/// always at an epoch boundary, is read as one with `within: None`).
const FORMAT: &str = "darlc-checkpoint-2";
/// Earlier format tags this darlc reads.
const OLDER_FORMATS: &[&str] = &["darlc-checkpoint-1"];
/// Metadata key of the [`Header`].
const HEADER_KEY: &str = "darlc.checkpoint";

/// The signal that asked the run to stop (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// Handle SIGTERM and SIGINT by setting a flag that the training loops read after every
/// optimiser step (SLURM sends SIGTERM some time before the wall-time kill). `SA_RESETHAND` restores the
/// default action after the first delivery, so a second signal ends the process at once.
pub fn install_signal_handlers() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a zeroed `sigaction` is a valid value to fill in; the handler only performs an
        // atomic store, which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Give SIGTERM and SIGINT their default action back (after the last checkpoint of a run).
pub fn restore_default_signals() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: resetting a disposition to SIG_DFL has no preconditions.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
}

/// Why the run should stop now, if it should: a signal received, or `DARLC_STOP_AFTER` naming
/// this stage and count of completed epochs (`stage:done`).
pub fn stop_reason(stage: &str, done: usize) -> Option<(String, i32)> {
    signal_received().or_else(|| stop_after_asks(|| format!("{stage}:{done}")))
}

/// [`stop_reason`] inside an epoch: after `done` epochs of `stage` and, of the next one, the
/// point `step`: a number of optimiser steps (`DARLC_STOP_AFTER=stage:done.steps`, e.g.
/// `warm-up:1.3`), or in the joint phase `em` (after the epoch's EM, `joint:1.em`); `joint:E.0`
/// is the point after epoch E's epoch-level steps, before its first batch.
pub fn stop_reason_in_epoch(
    stage: &str,
    done: usize,
    step: impl std::fmt::Display,
) -> Option<(String, i32)> {
    signal_received().or_else(|| stop_after_asks(|| format!("{stage}:{done}.{step}")))
}

/// The signal received, by name, and its number.
fn signal_received() -> Option<(String, i32)> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s if s == libc::SIGINT => Some(("SIGINT".into(), s)),
        s if s == libc::SIGTERM => Some(("SIGTERM".into(), s)),
        s => Some((format!("signal {s}"), s)),
    }
}

/// Whether `DARLC_STOP_AFTER` names the point `point()` (acting as a SIGTERM there).
fn stop_after_asks(point: impl FnOnce() -> String) -> Option<(String, i32)> {
    let want = std::env::var("DARLC_STOP_AFTER").ok()?;
    (want == point()).then(|| ("DARLC_STOP_AFTER".into(), libc::SIGTERM))
}

/// What a checkpoint must agree on with the run that resumes it, and where it stands.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Header {
    pub format: String,
    pub darlc_version: String,
    /// `darlc run` arguments of the original command (after `run`).
    pub args: Vec<String>,
    /// The command line of the original run (for `run.json`).
    pub command: Vec<String>,
    /// Effective configuration (JSON).
    pub config: serde_json::Value,
    /// `{:?}` of the data-loading options (`--format`, `--coords`, …).
    pub load: String,
    /// `(relative path, SHA-256)` of every input file, and of `--truth` when given.
    pub inputs: Vec<(String, String)>,
    /// `smoothing`, `warm-up` or `joint`.
    pub stage: String,
    /// Epochs done in `stage` (GAT: optimiser steps).
    pub done: usize,
    /// Inside the next epoch: its optimiser steps done (`None`: at an epoch boundary). The
    /// epoch's running sums and, in the joint phase, the results of its epoch-level steps are
    /// the `ckpt.mid.*` tensors.
    #[serde(default)]
    pub within: Option<usize>,
    /// Written by `darlc embed` (a run that stops after the warm-up): only `darlc embed --resume`
    /// continues it.
    #[serde(default)]
    pub embed: bool,
}

impl Header {
    /// Every way `other` (the resuming run) differs from this checkpoint, one line each, naming
    /// the configuration key or the file.
    pub fn differences(&self, other: &Header) -> Vec<String> {
        let mut out = Vec::new();
        if self.embed != other.embed {
            let by = |embed: bool| if embed { "darlc embed" } else { "darlc run" };
            out.push(format!(
                "command: `{}` (checkpoint) vs `{}` (now)",
                by(self.embed),
                by(other.embed)
            ));
        }
        json_diff("", &self.config, &other.config, &mut out);
        if self.load != other.load {
            out.push(format!(
                "data-loading options: {} (checkpoint) vs {} (now)",
                self.load, other.load
            ));
        }
        let old: std::collections::BTreeMap<_, _> = self.inputs.iter().cloned().collect();
        let new: std::collections::BTreeMap<_, _> = other.inputs.iter().cloned().collect();
        for (f, h) in &old {
            match new.get(f) {
                None => out.push(format!("input file {f}: in the checkpoint, missing now")),
                Some(h2) if h2 != h => out.push(format!("input file {f}: contents changed")),
                _ => {}
            }
        }
        for f in new.keys().filter(|f| !old.contains_key(*f)) {
            out.push(format!("input file {f}: new since the checkpoint"));
        }
        out
    }
}

/// Differing leaves of two JSON values, as `config key: old vs new`.
fn json_diff(key: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let sub = if key.is_empty() {
                    k.clone()
                } else {
                    format!("{key}.{k}")
                };
                json_diff(
                    &sub,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if a != b => out.push(format!("config `{key}`: {a} (checkpoint) vs {b} (now)")),
        _ => {}
    }
}

/// One checkpoint: the header and the tensors (see the module docs for the names).
pub struct Checkpoint {
    pub header: Header,
    pub tensors: TensorFile,
}

impl Checkpoint {
    /// An empty checkpoint at `stage`/`done` of the run described by `base`.
    pub fn new(base: &Header, stage: &str, done: usize) -> Self {
        let mut header = base.clone();
        header.stage = stage.into();
        header.done = done;
        Checkpoint {
            header,
            tensors: TensorFile::new(),
        }
    }

    /// Write atomically to `dir/checkpoint.safetensors`.
    pub fn save(mut self, dir: &Path) -> Result<()> {
        let h = serde_json::to_string(&self.header)
            .map_err(|e| DarlcError::Data(format!("cannot serialise the checkpoint: {e}")))?;
        self.tensors.metadata.insert(HEADER_KEY.into(), h);
        self.tensors.save(&dir.join(FILE))
    }

    /// Read `dir/checkpoint.safetensors` (errors name the file).
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(FILE);
        let tensors = TensorFile::load(&path)?;
        let header: Header = tensors
            .metadata
            .get(HEADER_KEY)
            .and_then(|h| serde_json::from_str(h).ok())
            .ok_or_else(|| {
                DarlcError::format(&path, None, "not a darlc checkpoint (no readable header)")
            })?;
        if header.format != FORMAT && !OLDER_FORMATS.contains(&header.format.as_str()) {
            return Err(DarlcError::format(
                &path,
                None,
                format!(
                    "checkpoint format `{}`, this darlc reads `{FORMAT}`",
                    header.format
                ),
            ));
        }
        Ok(Checkpoint { header, tensors })
    }

    /// The path of the file, for messages.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    // ------------------------------------------------------------------ writing pieces

    pub fn put_log(&mut self, log: &str) {
        let bytes =
            ArrayD::from_shape_vec(IxDyn(&[log.len()]), log.as_bytes().to_vec()).expect("1-D");
        self.tensors.insert("ckpt.log", TensorData::U8(bytes));
    }

    pub fn put_gat(&mut self, st: &GatState<f32>) {
        for (name, t) in PARAM_NAMES.iter().zip(st.params.to_vec()) {
            self.tensors.insert_float(format!("ckpt.{name}"), t);
        }
        for (i, a) in st.adam.iter().enumerate() {
            if let Some(a) = a {
                put_adam_state(&mut self.tensors, &format!("ckpt.gat.adam.{i}"), a);
            }
        }
        let l = ArrayD::from_shape_vec(IxDyn(&[st.losses.len()]), st.losses.clone()).expect("1-D");
        self.tensors.insert_float("ckpt.gat.losses", l);
    }

    /// Parameters of `store` under their own names.
    pub fn put_store<T: Float>(&mut self, store: &ParamStore<T>) {
        for id in store.ids() {
            self.tensors
                .insert_float(store.name(id), store.get(id).clone());
        }
    }

    pub fn put_buffers<T: Float>(&mut self, named: Vec<(String, ArrayD<T>)>) {
        for (n, a) in named {
            self.tensors.insert_float(n, a);
        }
    }

    /// Every state of `adam` (a parameter of `store` by name) under `ckpt.<tag>.<name>.{m,v,step}`.
    pub fn put_adam<T: Float>(&mut self, tag: &str, adam: &Adam<T>, store: &ParamStore<T>) {
        for (id, st) in adam.states() {
            put_adam_state(
                &mut self.tensors,
                &format!("ckpt.{tag}.{}", store.name(id)),
                st,
            );
        }
    }

    pub fn put_smm(&mut self, smm: &Smm, prior: &SmmPrior) {
        let t = &mut self.tensors;
        t.insert_float("ckpt.em.pi", smm.pi.clone().into_dyn());
        t.insert_float("ckpt.em.mu", smm.mu.clone().into_dyn());
        t.insert_float("ckpt.em.sigma", smm.sigma.clone().into_dyn());
        t.insert_float("ckpt.em.chol", smm.chol.clone().into_dyn());
        t.insert_float("ckpt.em.nu", smm.nu.clone().into_dyn());
        let flags = [smm.gaussian, smm.jitter_used].map(i64::from);
        t.insert_i64(
            "ckpt.em.flags",
            ArrayD::from_shape_vec(IxDyn(&[2]), flags.to_vec()).expect("1-D"),
        );
        let scalar = |v: f64| ndarray::arr0(v).into_dyn();
        t.insert_float("ckpt.prior.alpha", scalar(prior.alpha));
        t.insert_float("ckpt.prior.m0", prior.m0.clone().into_dyn());
        t.insert_float("ckpt.prior.kappa0", scalar(prior.kappa0));
        t.insert_float("ckpt.prior.nu0", scalar(prior.nu0));
        t.insert_float("ckpt.prior.s0", prior.s0.clone().into_dyn());
    }

    pub fn put_labels(&mut self, labels: &[usize]) {
        let a = ArrayD::from_shape_vec(
            IxDyn(&[labels.len()]),
            labels.iter().map(|&l| l as i64).collect(),
        )
        .expect("1-D");
        self.tensors.insert_i64("ckpt.prev_labels", a);
    }

    /// The running sums of a warm-up epoch stopped inside (its batches are [`Header::within`]).
    pub fn put_warmup_progress(&mut self, p: &WarmupProgress) {
        self.put_f64s("ckpt.mid.sums", &[p.l_ssl, p.l_mim, p.l_cl]);
        self.put_i64s("ckpt.mid.counts", &[p.images as i64]);
    }

    /// What a joint epoch stopped inside has done besides its batches (see [`JointMidEpoch`]).
    pub fn put_joint_mid(&mut self, m: &JointMidEpoch) {
        let s = &m.sum;
        self.put_f64s("ckpt.mid.sums", &[s.l_kl, s.l_ssl, s.l_mim, s.l_cl]);
        self.put_i64s(
            "ckpt.mid.counts",
            &[
                m.images as i64,
                m.em_iters as i64,
                i64::from(m.em_converged),
                m.clusters_used as i64,
            ],
        );
        self.put_f64s("ckpt.mid.em", &[m.l_map, m.labels_changed]);
        match &m.level {
            EpochLevel::AfterEm { z } => {
                self.tensors
                    .insert_float("ckpt.mid.z", z.clone().into_dyn());
            }
            EpochLevel::Done {
                terms: t,
                l_mim_epoch,
                ln_p,
            } => {
                self.put_f64s(
                    "ckpt.mid.terms",
                    &[t.lambda, t.l_lap, t.l_lh, t.l_size, *l_mim_epoch],
                );
                self.tensors
                    .insert_float("ckpt.mid.ln_p", ln_p.clone().into_dyn());
            }
        }
    }

    fn put_f64s(&mut self, name: &str, v: &[f64]) {
        let a = ArrayD::from_shape_vec(IxDyn(&[v.len()]), v.to_vec()).expect("1-D");
        self.tensors.insert_float(name, a);
    }

    fn put_i64s(&mut self, name: &str, v: &[i64]) {
        let a = ArrayD::from_shape_vec(IxDyn(&[v.len()]), v.to_vec()).expect("1-D");
        self.tensors.insert_i64(name, a);
    }

    // ------------------------------------------------------------------ reading pieces

    /// `name` as exactly `len` f64 values.
    fn f64s_of_len(&self, dir: &Path, name: &str, len: usize) -> Result<Vec<f64>> {
        let v: Vec<f64> = self.f64s(dir, name)?.iter().copied().collect();
        if v.len() != len {
            return Err(self.corrupt(dir, name, "length"));
        }
        Ok(v)
    }

    /// `name` as exactly `len` non-negative integers.
    fn counts_of_len(&self, dir: &Path, name: &str, len: usize) -> Result<Vec<usize>> {
        match self.get(dir, name)? {
            TensorData::I64(a) if a.len() == len && a.iter().all(|&v| v >= 0) => {
                Ok(a.iter().map(|&v| v as usize).collect())
            }
            other => Err(self.corrupt(dir, name, other.dtype_name())),
        }
    }

    /// Where the warm-up stands: at the start of epoch [`Header::done`], or inside it after
    /// [`Header::within`] batches with the saved running sums.
    pub fn warmup_progress(&self, dir: &Path) -> Result<WarmupProgress> {
        let epoch = self.header.done;
        let Some(batches) = self.header.within else {
            return Ok(WarmupProgress::at_epoch(epoch));
        };
        let s = self.f64s_of_len(dir, "ckpt.mid.sums", 3)?;
        let c = self.counts_of_len(dir, "ckpt.mid.counts", 1)?;
        Ok(WarmupProgress {
            epoch,
            batches,
            images: c[0],
            l_ssl: s[0],
            l_mim: s[1],
            l_cl: s[2],
        })
    }

    /// The joint epoch stopped inside, if the checkpoint was written inside one (`n` images, `d`
    /// clustering dimensions and `k` components: the shapes of `Z` and `ln P`).
    pub fn joint_mid(
        &self,
        dir: &Path,
        n: usize,
        d: usize,
        k: usize,
    ) -> Result<Option<JointMidEpoch>> {
        let Some(batches) = self.header.within else {
            return Ok(None);
        };
        let s = self.f64s_of_len(dir, "ckpt.mid.sums", 4)?;
        let c = self.counts_of_len(dir, "ckpt.mid.counts", 4)?;
        let em = self.f64s_of_len(dir, "ckpt.mid.em", 2)?;
        let matrix = |name: &str, shape: (usize, usize)| {
            self.f64s(dir, name)?
                .into_dimensionality::<ndarray::Ix2>()
                .ok()
                .filter(|a| a.dim() == shape)
                .ok_or_else(|| self.corrupt(dir, name, "shape"))
        };
        let level = if self.tensors.tensors.contains_key("ckpt.mid.z") {
            EpochLevel::AfterEm {
                z: matrix("ckpt.mid.z", (n, d))?,
            }
        } else {
            let t = self.f64s_of_len(dir, "ckpt.mid.terms", 5)?;
            EpochLevel::Done {
                terms: EpochTerms {
                    lambda: t[0],
                    l_lap: t[1],
                    l_lh: t[2],
                    l_size: t[3],
                },
                l_mim_epoch: t[4],
                ln_p: matrix("ckpt.mid.ln_p", (n, k))?,
            }
        };
        Ok(Some(JointMidEpoch {
            batches,
            sum: BatchLosses {
                l_b: 0.0,
                l_kl: s[0],
                l_ssl: s[1],
                l_mim: s[2],
                l_cl: s[3],
            },
            images: c[0],
            em_iters: c[1],
            em_converged: c[2] != 0,
            clusters_used: c[3],
            l_map: em[0],
            labels_changed: em[1],
            level,
        }))
    }

    fn get(&self, dir: &Path, name: &str) -> Result<&TensorData> {
        self.tensors.get(name, &Self::path(dir))
    }

    fn f64s(&self, dir: &Path, name: &str) -> Result<ArrayD<f64>> {
        match self.get(dir, name)? {
            TensorData::F64(a) => Ok(a.clone()),
            other => Err(self.corrupt(dir, name, other.dtype_name())),
        }
    }

    fn corrupt(&self, dir: &Path, name: &str, what: &str) -> DarlcError {
        DarlcError::format(
            Self::path(dir),
            None,
            format!("tensor `{name}`: unexpected {what}; the checkpoint is damaged"),
        )
    }

    pub fn log(&self, dir: &Path) -> Result<String> {
        match self.get(dir, "ckpt.log")? {
            TensorData::U8(a) => String::from_utf8(a.iter().copied().collect())
                .map_err(|_| self.corrupt(dir, "ckpt.log", "bytes (not UTF-8)")),
            other => Err(self.corrupt(dir, "ckpt.log", other.dtype_name())),
        }
    }

    pub fn gat(&self, dir: &Path) -> Result<GatState<f32>> {
        let path = Self::path(dir);
        let v: Vec<ArrayD<f32>> = PARAM_NAMES
            .iter()
            .map(|n| Ok(self.get(dir, &format!("ckpt.{n}"))?.to_float::<f32>()))
            .collect::<Result<_>>()?;
        let params = GatParams::from_vec(&v)?;
        let mut adam = Vec::new();
        for (i, t) in v.iter().enumerate() {
            let tag = format!("ckpt.gat.adam.{i}");
            adam.push(if self.tensors.tensors.contains_key(&format!("{tag}.m")) {
                Some(get_adam_state(&self.tensors, &path, &tag, t.shape())?)
            } else {
                None
            });
        }
        let losses = self.f64s(dir, "ckpt.gat.losses")?.iter().copied().collect();
        Ok(GatState {
            params,
            adam,
            losses,
        })
    }

    /// Overwrite every parameter of `store` with the checkpoint's (same names and shapes).
    pub fn load_store<T: Float>(&self, dir: &Path, store: &mut ParamStore<T>) -> Result<()> {
        store.load_from(&self.tensors, &Self::path(dir))
    }

    /// `adam` with the states saved under `tag` for the parameters of `store` that have one.
    pub fn adam<T: Float>(
        &self,
        dir: &Path,
        tag: &str,
        mut adam: Adam<T>,
        store: &ParamStore<T>,
    ) -> Result<Adam<T>> {
        let path = Self::path(dir);
        for id in store.ids() {
            let key = format!("ckpt.{tag}.{}", store.name(id));
            if self.tensors.tensors.contains_key(&format!("{key}.m")) {
                let st = get_adam_state(&self.tensors, &path, &key, store.get(id).shape())?;
                adam.set_state(id, st);
            }
        }
        Ok(adam)
    }

    pub fn smm(&self, dir: &Path) -> Result<(Smm, SmmPrior)> {
        use ndarray::{Ix1, Ix2, Ix3};
        let rank = |n: &str| self.corrupt(dir, n, "rank");
        let f = |n: &str| self.f64s(dir, n);
        let flags = match self.get(dir, "ckpt.em.flags")? {
            TensorData::I64(a) if a.len() == 2 => [a[[0]] != 0, a[[1]] != 0],
            other => return Err(self.corrupt(dir, "ckpt.em.flags", other.dtype_name())),
        };
        let smm = Smm {
            pi: f("ckpt.em.pi")?
                .into_dimensionality::<Ix1>()
                .map_err(|_| rank("ckpt.em.pi"))?,
            mu: f("ckpt.em.mu")?
                .into_dimensionality::<Ix2>()
                .map_err(|_| rank("ckpt.em.mu"))?,
            sigma: f("ckpt.em.sigma")?
                .into_dimensionality::<Ix3>()
                .map_err(|_| rank("ckpt.em.sigma"))?,
            chol: f("ckpt.em.chol")?
                .into_dimensionality::<Ix3>()
                .map_err(|_| rank("ckpt.em.chol"))?,
            nu: f("ckpt.em.nu")?
                .into_dimensionality::<Ix1>()
                .map_err(|_| rank("ckpt.em.nu"))?,
            gaussian: flags[0],
            jitter_used: flags[1],
        };
        let scalar =
            |n: &str| -> Result<f64> { f(n)?.iter().next().copied().ok_or_else(|| rank(n)) };
        let prior = SmmPrior {
            alpha: scalar("ckpt.prior.alpha")?,
            m0: f("ckpt.prior.m0")?
                .into_dimensionality::<Ix1>()
                .map_err(|_| rank("ckpt.prior.m0"))?,
            kappa0: scalar("ckpt.prior.kappa0")?,
            nu0: scalar("ckpt.prior.nu0")?,
            s0: f("ckpt.prior.s0")?
                .into_dimensionality::<Ix2>()
                .map_err(|_| rank("ckpt.prior.s0"))?,
        };
        Ok((smm, prior))
    }

    pub fn labels(&self, dir: &Path) -> Result<Option<Vec<usize>>> {
        match self.tensors.tensors.get("ckpt.prev_labels") {
            None => Ok(None),
            Some(TensorData::I64(a)) => Ok(Some(a.iter().map(|&l| l.max(0) as usize).collect())),
            Some(other) => Err(self.corrupt(dir, "ckpt.prev_labels", other.dtype_name())),
        }
    }
}

fn put_adam_state<T: Float>(t: &mut TensorFile, key: &str, st: &AdamState<T>) {
    t.insert_float(format!("{key}.m"), st.m.clone());
    t.insert_float(format!("{key}.v"), st.v.clone());
    t.insert_i64(
        format!("{key}.step"),
        ndarray::arr0(st.step as i64).into_dyn(),
    );
}

fn get_adam_state<T: Float>(
    t: &TensorFile,
    path: &Path,
    key: &str,
    shape: &[usize],
) -> Result<AdamState<T>> {
    let m = read_float_tensor::<T>(t, path, &format!("{key}.m"), shape)?;
    let v = read_float_tensor::<T>(t, path, &format!("{key}.v"), shape)?;
    let step = match t.get(&format!("{key}.step"), path)? {
        TensorData::I64(a) if a.len() == 1 => a.iter().next().copied().unwrap_or(0).max(0) as u64,
        _ => {
            return Err(DarlcError::format(
                path,
                None,
                format!("tensor `{key}.step` is damaged"),
            ));
        }
    };
    Ok(AdamState { m, v, step })
}

/// A fresh header for this run (stage and count are filled in per checkpoint).
pub fn header(
    args: Vec<String>,
    command: Vec<String>,
    config: &crate::config::Config,
    load: String,
    inputs: Vec<(String, String)>,
    embed: bool,
) -> Header {
    Header {
        format: FORMAT.into(),
        darlc_version: env!("CARGO_PKG_VERSION").into(),
        args,
        command,
        config: serde_json::to_value(config).unwrap_or(serde_json::Value::Null),
        load,
        inputs,
        stage: String::new(),
        done: 0,
        within: None,
        embed,
    }
}

impl Header {
    /// How to continue this checkpoint's run into `out`: `darlc run --resume OUT`, or for
    /// `darlc embed` its own command line again with `--resume`.
    pub fn resume_hint(&self, out: &Path) -> String {
        if self.embed {
            // The command as it was typed, without a --force that conflicts with --resume.
            let args: Vec<&str> = (self.command.iter().skip(1).map(String::as_str))
                .filter(|a| *a != "--force")
                .collect();
            format!("darlc {} --resume", args.join(" "))
        } else {
            format!("darlc run --resume {}", out.display())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_the_key_and_the_file() {
        let mut c = crate::config::Config::default();
        let a = header(
            vec![],
            vec![],
            &c,
            "L".into(),
            vec![("x.csv".into(), "1".into())],
            false,
        );
        c.seed = 9;
        c.module1.batch = crate::config::Batch::Fixed(7);
        let b = header(
            vec![],
            vec![],
            &c,
            "L".into(),
            vec![("x.csv".into(), "2".into()), ("y.csv".into(), "3".into())],
            true,
        );
        let d = a.differences(&b).join("\n");
        assert!(
            d.contains("config `seed`: 0 (checkpoint) vs 9 (now)"),
            "{d}"
        );
        assert!(d.contains("config `module1.batch`"), "{d}");
        assert!(d.contains("input file x.csv: contents changed"), "{d}");
        assert!(d.contains("input file y.csv: new since"), "{d}");
        assert!(
            d.contains("command: `darlc run` (checkpoint) vs `darlc embed` (now)"),
            "{d}"
        );
        assert!(a.differences(&a).is_empty());
    }

    #[test]
    fn stop_after_names_stage_and_count() {
        // No signal is pending in the test process and the variable is unset.
        assert!(stop_reason("warm-up", 1).is_none());
        assert!(stop_reason_in_epoch("warm-up", 1, 3).is_none());
        // The points a variable names: `stage:count` at epoch ends, `stage:count.steps` inside.
        assert!(stop_after_asks(|| "warm-up:1.3".into()).is_none());
    }
}
