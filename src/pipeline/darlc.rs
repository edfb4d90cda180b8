//! The DARLC method inside `darlc run` (method §1, Algorithm 1):
//!
//! 1. smoothing: the GAT autoencoder (§3) or GKS (§15) → positive views `x̃`;
//! 2. seeding similarity `S` on the smoothed tissue vectors (§7) → `L_sym`; K by the eigengap
//!    (§10) when `clusters = auto`;
//! 3. Module I warm-up (§4.5);
//! 4. joint phase (§6.5, §8, §9) and final fit (§1 step 7) — or, with the `w/o SMM` ablation
//!    (DARLC-C1), k-means on `h` instead.
//!
//! Progress goes to stderr; per-epoch records to `log.jsonl` (rewritten atomically after every
//! epoch, so it can be watched during a long run), and a checkpoint after every block of GAT
//! epochs, warm-up epoch and joint epoch (see [`super::checkpoint`]), from which a run continues
//! with `darlc run --resume`.

use super::checkpoint::{self, Checkpoint, Header};
use super::{Phase, RunResult, guardrails};
use crate::augment::gat::{BlockHook, GatConfig, GatState};
use crate::augment::smooth;
use crate::baselines::{self, Clustering};
use crate::config::{Config, ImageScale, ScalePrior, Smoothing};
use crate::data::ImageSet;
use crate::error::{DarlcError, Result};
use crate::io::TensorFile;
use crate::module1::model::{Config as M1Config, ModuleI};
use crate::module1::warmup::{
    WarmupEvent, WarmupOptions, WarmupProgress, steps_per_epoch, warmup_from,
};
use crate::module2::joint::{
    EpochLevel, Joint, JointEvent, JointOptions, JointState, clusters_used,
};
use crate::module2::laplacian::LaplacianSym;
use crate::module2::similarity::seeding_similarity;
use crate::nn::adam::Adam;
use ndarray::{Array2, ArrayD};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Appends JSON lines to `log.jsonl`, rewriting the file atomically each time.
struct Log<'a> {
    path: &'a Path,
    text: String,
}

impl Log<'_> {
    fn push(&mut self, rec: &impl serde::Serialize) -> Result<()> {
        self.text
            .push_str(&serde_json::to_string(rec).unwrap_or_default());
        self.text.push('\n');
        crate::io::atomic_write(self.path, self.text.as_bytes())
    }
}

/// A warning when the final fit puts every image in fewer than half of the K components, or in one
/// component at any K ≥ 2 (one of two is exactly half; osmFISH's 33 genes ended so without a
/// word, issue 23): the mixture merged components (method §6.2 notes that the default NIW scale
/// prior drives ν to 1, and one Adam_E step per epoch at lr 1e-3 moves every weight by about lr;
/// both merge components on our simulated sections). The result is still a valid fit, so this is
/// a warning, not an error; `darlc run` prints it with the other [`super::guardrails`].
pub fn merge_warning(used: usize, k: usize, c: &Config) -> Option<String> {
    if 2 * used >= k && used > 1 {
        return None;
    }
    let mut hint = Vec::new();
    if c.module2.lr_epoch > 1e-4 && c.module2.joint_epochs > 0 {
        hint.push(format!(
            "module2.lr_epoch = {:e} (1e-5 kept all components on our simulated sections)",
            c.module2.lr_epoch
        ));
    }
    if c.module2.scale_prior != ScalePrior::Within {
        hint.push("module2.scale_prior = \"within\"".to_string());
    }
    let mut w = format!(
        "warning: only {used} of K = {k} clusters hold any gene after the final fit: the mixture merged components"
    );
    if !hint.is_empty() {
        w.push_str(&format!(
            "; try {} (see README, \"When clusters merge\")",
            hint.join(" and ")
        ));
    }
    Some(w)
}

/// A log record with its phase name in front.
#[derive(serde::Serialize)]
struct Tagged<'a, R: serde::Serialize> {
    phase: &'static str,
    #[serde(flatten)]
    rec: &'a R,
}

fn timed<R>(phases: &mut Vec<Phase>, name: &str, f: impl FnOnce() -> Result<R>) -> Result<R> {
    let t = Instant::now();
    eprintln!("[darlc] {name} …");
    let r = f()?;
    let phase = Phase::ended(name, t);
    let peak = phase.peak_rss_mb.map_or(String::new(), |m| {
        format!(" (peak RSS so far {:.2} GB)", m / 1024.0)
    });
    eprintln!("[darlc] {name} done in {:.1} s{peak}", phase.seconds);
    phases.push(phase);
    Ok(r)
}

fn check_finite(name: &str, a: &Array2<f64>) -> Result<()> {
    if a.iter().any(|v| !v.is_finite()) {
        return Err(DarlcError::Numerical(format!(
            "{name} has non-finite entries; nothing was written (try another --seed, or report \
             the input)"
        )));
    }
    Ok(())
}

/// Checkpoint settings of one DARLC run (see [`super::checkpoint`]).
pub struct Checkpointing {
    /// The staging folder (checkpoints and `log.jsonl` go here).
    pub dir: PathBuf,
    /// The `--out` the user gave (for messages).
    pub out: PathBuf,
    /// What every checkpoint records about the run.
    pub base: Header,
    /// The checkpoint to continue from.
    pub resume: Option<Checkpoint>,
    /// Seconds between two checkpoints at epoch ends (0: after every epoch and GAT block); the
    /// end of each stage and a stop request always write one.
    pub every: f64,
    /// When the last checkpoint was written (or the run started).
    last: std::cell::Cell<Instant>,
    /// Checkpoints written, seconds spent writing them, size of the last one (bytes).
    stats: std::cell::Cell<(usize, f64, u64)>,
}

impl Checkpointing {
    /// Checkpoints written into `dir` for a run described by `base` (no resume), at an epoch end
    /// once `every` seconds have passed since the last one (0: at every epoch end).
    pub fn new(dir: &Path, out: &Path, base: Header, every: f64) -> Self {
        Checkpointing {
            dir: dir.to_path_buf(),
            out: out.to_path_buf(),
            base,
            resume: None,
            every,
            last: std::cell::Cell::new(Instant::now()),
            stats: std::cell::Cell::new((0, 0.0, 0)),
        }
    }

    /// `checkpoints: N written, X MB each, Y s in total`, for the closing summary.
    pub fn summary(&self) -> String {
        let (n, secs, bytes) = self.stats.get();
        format!(
            "checkpoints: {n} written, the last {:.1} MB, {secs:.2} s in total",
            bytes as f64 / 1e6
        )
    }

    /// Stop now if a signal (or `DARLC_STOP_AFTER`) asks for it, after `what` (at a point where
    /// the last checkpoint still describes the run).
    fn stop_if_asked(&self, stage: &str, done: usize, what: &str) -> Result<()> {
        match checkpoint::stop_reason(stage, done) {
            Some((why, signal)) => Err(self.interrupted(&why, signal, what)),
            None => Ok(()),
        }
    }

    /// At the end of `done` of the `total` epochs (GAT: steps) of `stage`: write a checkpoint,
    /// filled in by `fill`, if `every` seconds have passed since the last one, at the stage's
    /// end, or when a signal (or `DARLC_STOP_AFTER=stage:done`) asks to stop; then stop if
    /// asked, after `what`. A skipped checkpoint changes nothing but what a kill loses: a resume
    /// continues from the last one written, to the same outputs, and redoes at most `every`
    /// seconds of work plus an epoch.
    fn epoch_checkpoint(
        &self,
        (stage, done, total): (&str, usize, usize),
        what: impl FnOnce() -> String,
        fill: impl FnOnce(&mut Checkpoint),
    ) -> Result<()> {
        let stop = checkpoint::stop_reason(stage, done);
        let due = self.last.get().elapsed().as_secs_f64() >= self.every;
        if stop.is_some() || due || done >= total {
            let mut cp = Checkpoint::new(&self.base, stage, done);
            fill(&mut cp);
            self.save(cp)?;
        }
        match stop {
            Some((why, signal)) => Err(self.interrupted(&why, signal, &what())),
            None => Ok(()),
        }
    }

    /// Inside an epoch of `stage` (`done` epochs and `batches` steps of the next one done, at the
    /// point called `point`, see [`checkpoint::stop_reason_in_epoch`]): if a signal (or
    /// `DARLC_STOP_AFTER=stage:done.point`) asks to stop, write a checkpoint of this
    /// point, filled in by `fill`, and stop; otherwise do nothing (no checkpoint is written
    /// between epochs unless asked, so an uninterrupted run pays nothing per step).
    fn stop_inside_epoch(
        &self,
        (stage, done, batches): (&str, usize, usize),
        point: &str,
        what: impl FnOnce() -> String,
        fill: impl FnOnce(&mut Checkpoint),
    ) -> Result<()> {
        let Some((why, signal)) = checkpoint::stop_reason_in_epoch(stage, done, point) else {
            return Ok(());
        };
        let mut cp = Checkpoint::new(&self.base, stage, done);
        cp.header.within = Some(batches);
        fill(&mut cp);
        self.save(cp)?;
        Err(self.interrupted(&why, signal, &what()))
    }

    /// The error that ends a run stopped by `why` after `what`, saying how to resume.
    fn interrupted(&self, why: &str, signal: i32, what: &str) -> DarlcError {
        eprintln!("[darlc] {}", self.summary());
        let ck = Checkpoint::path(&self.dir);
        let msg = if ck.exists() {
            format!(
                "stopped by {why} after {what}; the checkpoint is {}. Continue with: {}",
                ck.display(),
                self.base.resume_hint(&self.out)
            )
        } else {
            format!("stopped by {why} after {what}, before the first checkpoint; nothing to resume")
        };
        DarlcError::Interrupted { msg, signal }
    }

    fn save(&self, c: Checkpoint) -> Result<()> {
        let t = Instant::now();
        c.save(&self.dir)?;
        let bytes = std::fs::metadata(Checkpoint::path(&self.dir)).map_or(0, |m| m.len());
        let (n, secs, _) = self.stats.get();
        self.stats
            .set((n + 1, secs + t.elapsed().as_secs_f64(), bytes));
        self.last.set(Instant::now());
        Ok(())
    }
}

/// A checkpoint written inside an epoch must have stopped before the epoch's last step (after
/// which the epoch ends and an epoch checkpoint is written instead).
fn check_within(dir: &Path, batches: usize, steps: usize) -> Result<()> {
    if batches >= steps {
        return Err(DarlcError::format(
            Checkpoint::path(dir),
            None,
            format!(
                "stopped after {batches} steps of an epoch of {steps}; the checkpoint is damaged \
                 or of another schedule"
            ),
        ));
    }
    Ok(())
}

/// GAT epochs between two checkpoints: a tenth of the training (a stop request is honoured after
/// any epoch).
fn gat_block(epochs: usize) -> usize {
    (epochs / 10).max(1)
}

/// Run DARLC on `set`: `k` clusters (`None` = infer by the eigengap on the smoothed images).
/// Writes `log.jsonl` after every epoch and a checkpoint at the end of a block of GAT epochs,
/// warm-up epoch or joint epoch once `ck.every` seconds have passed since the last (and at the
/// end of each of the three stages) into `ck.dir` as it goes, and continues from `ck.resume`
/// when given; returns the clustering, `h`, `z`, the model tensors and the phase timings.
pub fn run_darlc(
    set: &ImageSet,
    k: Option<usize>,
    c: &Config,
    ck: &mut Checkpointing,
    progress: bool,
    until: super::Until,
) -> Result<(RunResult, TensorFile, Option<usize>)> {
    let (n, ch, hgt, wid) = set.images.dim();
    if n < 2 {
        return Err(DarlcError::Data(format!(
            "DARLC needs at least 2 images, got {n}"
        )));
    }
    // The schedule in optimiser steps (issue 23): batch and epochs for this N, written into
    // the configuration the loops read (unchanged when it counts epochs, as the paper preset does).
    let c = &super::schedule::resolve(n, c).apply(c);
    let resume = ck.resume.take();
    let ck = &*ck;
    let dir = ck.dir.clone();
    let (r_stage, r_done) = match &resume {
        Some(r) => (
            match r.header.stage.as_str() {
                "smoothing" => 0,
                "warm-up" => 1,
                _ => 2,
            },
            r.header.done,
        ),
        None => (0, 0),
    };
    let mut phases = Vec::new();
    let log_path = dir.join("log.jsonl");
    let mut log = Log {
        path: &log_path,
        text: match &resume {
            Some(r) => r.log(&dir)?,
            None => String::new(),
        },
    };
    if let Some(r) = &resume {
        let h = &r.header;
        let at = match h.within {
            Some(b) => format!("{} epoch {}, step {b}", h.stage, h.done + 1),
            None => format!("{} {}", h.stage, h.done),
        };
        eprintln!(
            "[darlc] resuming after {at} (checkpoint {})",
            Checkpoint::path(&dir).display()
        );
    }
    // 1. Positive views.
    let gat_cfg = GatConfig::from_section(&c.smoothing, c.seed, progress);
    let method = c.smoothing.method;
    let gat_start = match (&resume, method) {
        (Some(r), Smoothing::Gat) => Some(r.gat(&dir)?),
        _ => None,
    };
    let (xs, gat_final) = timed(&mut phases, "smoothing", || {
        let stop = |done: usize| checkpoint::stop_reason("smoothing", done).is_some();
        let mut write = |st: &GatState<f32>| -> Result<()> {
            let done = st.losses.len();
            ck.epoch_checkpoint(
                ("smoothing", done, gat_cfg.epochs),
                || format!("GAT epoch {done} of {}", gat_cfg.epochs),
                |cp| {
                    cp.put_gat(st);
                    cp.put_log(&log.text);
                },
            )
        };
        let hook = BlockHook {
            every: gat_block(gat_cfg.epochs),
            stop: &stop,
            f: &mut write,
        };
        smooth::smooth_views_resumable(set, method, &gat_cfg, gat_start, Some(hook))
    })?;
    // Every later checkpoint carries the trained GAT, from which the views are recomputed.
    let put_views = |cp: &mut Checkpoint| {
        if let Some(g) = &gat_final {
            cp.put_gat(g);
        }
    };
    // 2. Seeding similarity and its Laplacian on the smoothed tissue vectors (§7); K (§10).
    // Not needed by a run that stops after the warm-up (`darlc embed`).
    let mut similarity = None;
    if until == super::Until::Clusters {
        let (lap, k) = timed(&mut phases, "similarity", || {
            let y = baselines::tissue_vectors(xs.view(), set.mask.view())?;
            let s = seeding_similarity(y.view(), c.module2.knn)?;
            let k = match k {
                Some(k) => k,
                None => super::eigengap_k(&s, c.seed)?,
            };
            Ok((LaplacianSym::new(s)?, k))
        })?;
        if k < 2 || k > n {
            return Err(DarlcError::param(
                "module2.clusters",
                format!("K = {k} must satisfy 2 ≤ K ≤ N = {n}"),
            ));
        }
        ck.stop_if_asked("similarity", 0, "the seeding similarity")?;
        similarity = Some((lap, k));
    }
    // The positive views' per-image scaling (`smoothing.view_scale`, not in the method), after the
    // similarity so that `S` and K do not depend on it.
    let mut xs = xs;
    crate::data::scale_images(&mut xs, set.mask.view(), c.smoothing.view_scale);
    // Module I's inputs under `module1.input_scale` (not in the method; issue 23): the encoder's
    // input and the MIM target. The GAT, the similarity, the metrics and the outputs keep the
    // images as loaded.
    let x_scaled = (c.module1.input_scale != ImageScale::None).then(|| {
        let mut x = set.images.clone();
        crate::data::scale_images(&mut x, set.mask.view(), c.module1.input_scale);
        x
    });
    // What raw pixels score on these views: the yardstick of the warm-up's L_CL (issue 23).
    let x = x_scaled.as_ref().unwrap_or(&set.images);
    let contrastive_reference = guardrails::pixel_reference(
        x.view(),
        xs.view(),
        set.mask.view(),
        c.module1.batch.size_for(n),
        c.module1.tau,
        c.seed,
    );
    // 3. Module I warm-up.
    let m1cfg = M1Config::from_run(c, ch, hgt, wid);
    let mut m1 = ModuleI::<f32>::new(m1cfg.clone(), c.seed)?;
    let wopts = WarmupOptions {
        epochs: c.module1.warmup_epochs,
        batch: c.module1.batch.size_for(n),
        lr: c.module1.lr,
        seed: c.seed,
        progress,
        log: None,
    };
    let mut adam_w = Adam::<f32>::new(wopts.lr);
    let mut from = WarmupProgress::default();
    if let (Some(r), 1) = (&resume, r_stage) {
        r.load_store(&dir, &mut m1.store)?;
        r.load_store(&dir, &mut m1.target)?;
        adam_w = r.adam(&dir, "adam_w", adam_w, &m1.store)?;
        from = r.warmup_progress(&dir)?;
        check_within(&dir, from.batches, steps_per_epoch(n, wopts.batch))?;
    }
    // What a warm-up checkpoint holds besides its position (method §4.5: Module I, its EMA
    // target and Adam's moments; the GAT for the views; the log so far).
    let warmup_state = |cp: &mut Checkpoint, m1: &ModuleI<f32>, adam: &Adam<f32>, log: &str| {
        put_views(cp);
        cp.put_store(&m1.store);
        cp.put_store(&m1.target);
        cp.put_adam("adam_w", adam, &m1.store);
        cp.put_log(log);
    };
    if r_stage < 2 {
        let steps = steps_per_epoch(n, wopts.batch);
        timed(&mut phases, "warm-up", || {
            warmup_from(
                &mut m1,
                &mut adam_w,
                from,
                x.view(),
                xs.view(),
                &wopts,
                |ev, m1, adam| match ev {
                    WarmupEvent::Step(p) => ck.stop_inside_epoch(
                        ("warm-up", p.epoch, p.batches),
                        &p.batches.to_string(),
                        || {
                            format!(
                                "step {} of {steps} of warm-up epoch {} of {}",
                                p.batches,
                                p.epoch + 1,
                                wopts.epochs
                            )
                        },
                        |cp| {
                            warmup_state(cp, m1, adam, &log.text);
                            cp.put_warmup_progress(p);
                        },
                    ),
                    WarmupEvent::Epoch(rec) => {
                        log.push(&Tagged {
                            phase: "warm-up",
                            rec,
                        })?;
                        let done = rec.epoch + 1;
                        ck.epoch_checkpoint(
                            ("warm-up", done, wopts.epochs),
                            || format!("warm-up epoch {done} of {}", wopts.epochs),
                            |cp| warmup_state(cp, m1, adam, &log.text),
                        )
                    }
                },
            )?;
            Ok(())
        })?;
    }
    // The representations h of the warm-up model.
    let embed_h = |m1: &ModuleI<f32>| -> Result<Array2<f64>> {
        let h = m1
            .embed(x.view(), c.module1.batch.size_for(n))
            .mapv(f64::from);
        check_finite("h", &h)?;
        Ok(h)
    };
    // `darlc embed` stops after the warm-up: h and Module I.
    let Some((lap, k)) = similarity else {
        checkpoint::restore_default_signals();
        let h = embed_h(&m1)?;
        let model = tensor_file(m1.named_tensors());
        let r = RunResult {
            clustering: None,
            h: Some(h),
            z: None,
            phases,
            contrastive_reference,
        };
        return Ok((r, model, None));
    };
    // 4. DARLC-C1 (w/o SMM): k-means on h.
    if c.ablations.no_smm {
        checkpoint::restore_default_signals();
        let h = embed_h(&m1)?;
        let cl = timed(&mut phases, "kmeans-on-h", || {
            baselines::kmeans_baseline(h.view(), k, c.seed)
        })?;
        let model = tensor_file(m1.named_tensors());
        return Ok((
            RunResult {
                clustering: Some(cl),
                h: Some(h),
                z: None,
                phases,
                contrastive_reference,
            },
            model,
            Some(k),
        ));
    }
    // 5–6. Joint phase. With labels attached to the data (simulations, digit stacks) the log
    // records the NMI of every fit against them; they are never used for training.
    let truth = set
        .labels
        .as_ref()
        .map(|l| crate::eval::metrics::dense_labels(l).0);
    let nmi_of = |labels: &[usize]| -> Option<f64> {
        let t = truth.as_ref()?;
        crate::eval::metrics::nmi(t, labels).ok()
    };
    let jopts = JointOptions::from_config(c, n, k, progress);
    let (mut joint, mut state) = match (&resume, r_stage) {
        (Some(r), 2) => {
            let (smm, prior) = r.smm(&dir)?;
            let mut j = Joint::restore(ModuleI::new(m1cfg, c.seed)?, smm, prior, jopts.clone());
            r.load_store(&dir, &mut j.m1.store)?;
            r.load_store(&dir, &mut j.m1.target)?;
            j.head
                .bn
                .load_buffers(&r.tensors, &Checkpoint::path(&dir))?;
            let st = JointState {
                epoch: r_done,
                adam_e: r.adam(&dir, "adam_e", Adam::new(jopts.lr_epoch), &j.m1.store)?,
                adam_b: r.adam(&dir, "adam_b", Adam::new(jopts.lr_batch), &j.m1.store)?,
                prev_labels: r.labels(&dir)?,
                mid: r.joint_mid(&dir, n, jopts.dim, k)?,
            };
            if let Some(m) = &st.mid {
                check_within(&dir, m.batches, steps_per_epoch(n, jopts.batch))?;
            }
            (j, st)
        }
        _ => {
            let (joint, init) = timed(&mut phases, "smm-init", || {
                Joint::start(m1, x.view(), jopts.clone())
            })?;
            log.push(&serde_json::json!({
                "phase": "smm-init", "em_iters": init.iters, "em_converged": init.converged,
                "l_map": init.l_map.last(), "jitter_used": init.jitter_used,
                "clusters_used": clusters_used(&init.estep.labels().0),
                "nmi_truth": nmi_of(&init.estep.labels().0),
            }))?;
            ck.stop_if_asked("smm-init", 0, "the initial mixture fit")?;
            (joint, JointState::fresh(&jopts))
        }
    };
    // What a joint checkpoint holds besides its position (method §8–§9: Module I with the
    // projection head and the trainable mixture, the EMA target, the BN statistics, both Adams,
    // the mixture of the last EM and its prior, that EM's labels; the GAT; the log so far).
    let joint_state = |cp: &mut Checkpoint, j: &Joint<f32>, st: &JointState<f32>, log: &str| {
        put_views(cp);
        cp.put_store(&j.m1.store);
        cp.put_store(&j.m1.target);
        cp.put_buffers(j.head.bn.buffers());
        cp.put_adam("adam_e", &st.adam_e, &j.m1.store);
        cp.put_adam("adam_b", &st.adam_b, &j.m1.store);
        cp.put_smm(&j.smm, &j.prior);
        if let Some(l) = &st.prev_labels {
            cp.put_labels(l);
        }
        cp.put_log(log);
    };
    let steps = steps_per_epoch(n, jopts.batch);
    timed(&mut phases, "joint", || {
        joint.train_from(
            x.view(),
            xs.view(),
            &lap,
            &mut state,
            |ev, j, st| match ev {
                JointEvent::Step => {
                    let Some(mid) = &st.mid else { return Ok(()) };
                    let after_em = matches!(mid.level, EpochLevel::AfterEm { .. });
                    let point = match after_em {
                        true => "em".to_string(),
                        false => mid.batches.to_string(),
                    };
                    ck.stop_inside_epoch(
                        ("joint", st.epoch, mid.batches),
                        &point,
                        || {
                            let epoch = format!("joint epoch {} of {}", st.epoch + 1, jopts.epochs);
                            match (after_em, mid.batches) {
                                (true, _) => format!("the EM of {epoch}"),
                                (false, 0) => format!("the epoch-level step of {epoch}"),
                                (false, b) => format!("batch step {b} of {steps} of {epoch}"),
                            }
                        },
                        |cp| {
                            joint_state(cp, j, st, &log.text);
                            cp.put_joint_mid(mid);
                        },
                    )
                }
                JointEvent::Epoch(rec, labels) => {
                    let mut v = serde_json::to_value(rec).unwrap_or_default();
                    if let (Some(m), Some(obj)) = (nmi_of(labels), v.as_object_mut()) {
                        obj.insert("nmi_truth".into(), m.into());
                    }
                    log.push(&v)?;
                    let done = st.epoch;
                    ck.epoch_checkpoint(
                        ("joint", done, jopts.epochs),
                        || format!("joint epoch {done} of {}", jopts.epochs),
                        |cp| joint_state(cp, j, st, &log.text),
                    )
                }
            },
        )?;
        Ok(())
    })?;
    // After the last checkpoint a signal ends the process again (the checkpoint stays).
    checkpoint::restore_default_signals();
    eprintln!("[darlc] {}", ck.summary());
    // 7. Final fit.
    let (h, z, report) = timed(&mut phases, "final-fit", || joint.finish(x.view()))?;
    log.push(&serde_json::json!({
        "phase": "final", "em_iters": report.iters, "em_converged": report.converged,
        "l_map": report.l_map.last(), "jitter_used": report.jitter_used,
        "clusters_used": clusters_used(&report.estep.labels().0),
        "nmi_truth": nmi_of(&report.estep.labels().0),
    }))?;
    check_finite("h", &h)?;
    check_finite("z", &z)?;
    check_finite("responsibilities", &report.estep.r)?;
    let (labels, confidence) = report.estep.labels();
    let model = tensor_file(joint.named_tensors());
    Ok((
        RunResult {
            clustering: Some(Clustering {
                labels,
                confidence,
                embedding: None,
                responsibilities: Some(report.estep.r.clone()),
                mixture: Some(joint.smm.clone()),
            }),
            h: Some(h),
            z: Some(z),
            phases,
            contrastive_reference,
        },
        model,
        Some(k),
    ))
}

fn tensor_file(named: Vec<(String, ArrayD<f32>)>) -> TensorFile {
    let mut tf = TensorFile::new();
    for (n, a) in named {
        tf.insert_float(n, a);
    }
    tf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smm_prior_keys_reach_the_joint_phase() {
        // Defaults: method §6.2 / §6.5 (α 2, κ0 0.01, ν 3), as the fit used before the keys were
        // honoured (issue 24).
        let o = JointOptions::from_config(&Config::default(), 100, 5, false);
        assert_eq!((o.alpha, o.kappa0, o.nu_init), (2.0, 0.01, 3.0));
        let mut c = Config::default();
        c.module2.alpha = 3.5;
        c.module2.kappa0 = 0.2;
        c.module2.nu_init = 7.0;
        let o = JointOptions::from_config(&c, 100, 5, false);
        assert_eq!((o.alpha, o.kappa0, o.nu_init), (3.5, 0.2, 7.0));
    }

    #[test]
    fn merge_warning_names_the_parameters_to_try() {
        let c = Config::default();
        // 7 of 432 (the MOB fast run) warns; 216 of 432 (exactly half) does not.
        let w = merge_warning(7, 432, &c).unwrap();
        assert!(w.contains("7 of K = 432"), "{w}");
        assert!(w.contains("module2.lr_epoch = 1e-3"), "{w}");
        assert!(w.contains("scale_prior"), "{w}");
        assert!(merge_warning(216, 432, &c).is_none());
        let mut tuned = Config::default();
        tuned.module2.lr_epoch = 1e-5;
        tuned.module2.scale_prior = ScalePrior::Within;
        let w = merge_warning(3, 33, &tuned).unwrap();
        assert!(!w.contains("try"), "{w}");
        // One cluster of two: half of K, but nothing is clustered.
        let w = merge_warning(1, 2, &tuned).unwrap();
        assert!(w.contains("only 1 of K = 2"), "{w}");
        assert!(merge_warning(2, 2, &tuned).is_none());
    }
}
