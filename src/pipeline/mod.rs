//! `darlc run`: Algorithm 1 of the paper (method §1) as one readable function, plus the baselines.
//!
//! images → (smoothing → warm-up → joint training → final fit) or a baseline → outputs.

pub mod checkpoint;
pub mod darlc;
pub mod guardrails;
pub mod h5ad;
pub mod modules;
pub mod outdir;
pub mod outputs;
pub mod pictures;
pub mod report_html;
pub mod schedule;
pub mod summary;

use crate::baselines::{self, Clustering};
use crate::config::{CheckedConfig, ImageScale, Method};
use crate::data::{self, ImageSet, LoadOptions};
use crate::error::{DarlcError, Result};
use crate::io;
use ndarray::Array2;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Wall time of one phase, for `run.json` and the closing summary.
#[derive(Clone, Debug, Serialize)]
pub struct Phase {
    pub name: String,
    pub seconds: f64,
    /// The process's peak resident set size (`VmHWM`) when the phase ended, in MB: the first
    /// phase whose value jumps is the one that sets the run's memory need.
    pub peak_rss_mb: Option<f64>,
}

impl Phase {
    /// A phase called `name` that started at `t0` and ends now. Ending a phase also hands what
    /// it freed back to the kernel ([`release_freed_memory`]): under `retain_freed_memory` much of
    /// it sits in worker-thread arenas that the next phase would not reuse, so its allocations
    /// would stack on top of this phase's peak.
    ///
    /// [`release_freed_memory`]: crate::memory::release_freed_memory
    pub fn ended(name: &str, t0: Instant) -> Phase {
        let phase = Phase {
            name: name.into(),
            seconds: t0.elapsed().as_secs_f64(),
            peak_rss_mb: crate::memory::peak_rss_mb(),
        };
        crate::memory::release_freed_memory();
        phase
    }
}

/// What a run produced, before it is written.
pub struct RunResult {
    /// The clusters (`None` when the run stopped after the warm-up, [`Until::WarmUp`]).
    pub clustering: Option<Clustering>,
    /// Module I representation `h` (DARLC only).
    pub h: Option<Array2<f64>>,
    /// Clustering-space embedding `z` (DARLC), or the PCA scores (gmm-pca).
    pub z: Option<Array2<f64>>,
    pub phases: Vec<Phase>,
    /// DARLC: the contrastive loss of raw pixel correlations on the positive views
    /// ([`guardrails::pixel_reference`]), the yardstick of the trained encoder's `L_CL`.
    pub contrastive_reference: Option<f64>,
}

/// Everything `write_all` needs beyond the clustering.
struct Extras {
    /// Every trained tensor by dotted name (DARLC: `model.safetensors`).
    model: Option<io::TensorFile>,
    /// Space Ranger's low-resolution H&E image with the spots placed on it, for `modules.png`.
    he: Option<pictures::HeBackground>,
}

/// Provenance written to `run.json` (after alevin-fry's `cmd_info`/`meta_info`).
#[derive(Serialize)]
struct RunJson<'a> {
    complete: bool,
    darlc_version: &'static str,
    command: Vec<String>,
    input: String,
    input_sha256: Vec<(String, String)>,
    threads: usize,
    config: &'a crate::config::Config,
    images: usize,
    image_shape: [usize; 4],
    /// K (absent when the run stopped after the warm-up).
    #[serde(skip_serializing_if = "Option::is_none")]
    clusters: Option<usize>,
    /// DARLC: per phase the batch, epochs, optimiser steps and the target that produced them.
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<schedule::Schedule>,
    /// DARLC: the contrastive loss that raw pixel correlations score on the positive views, in
    /// the warm-up's batches (see [`guardrails::pixel_reference`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    contrastive_reference: Option<f64>,
    /// Every warning the run printed (see [`guardrails`]).
    warnings: &'a [String],
    phases: &'a [Phase],
    outputs: Vec<String>,
}

/// How far `darlc run` goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Until {
    /// The whole method: clusters, metrics and every output.
    #[default]
    Clusters,
    /// DARLC up to the end of the Module I warm-up (`darlc embed`, method §4.5): the images, the
    /// representations `h` (`embeddings.safetensors`, `embeddings.csv`), the trained Module I
    /// (`model.safetensors`), `log.jsonl` and `run.json`; no similarity, K, mixture or metrics.
    WarmUp,
}

/// SHA-256 of the input: every regular file of a folder (sorted by relative path), or the file.
/// Folders in `exclude` (absolute paths: a run's own output folders when `--out` lies inside
/// `--input`) are skipped.
fn input_hashes(input: &Path, exclude: &[PathBuf]) -> Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    if input.is_dir() {
        let root = outdir::absolute(input);
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).map_err(|e| DarlcError::io(&d, e))? {
                let p = e.map_err(|e| DarlcError::io(&d, e))?.path();
                if p.is_dir() {
                    if !exclude.contains(&p) {
                        stack.push(p);
                    }
                } else if p.is_file() {
                    files.push(p);
                }
            }
        }
        files.sort();
        files
            .iter()
            .map(|f| {
                let rel = f.strip_prefix(&root).unwrap_or(f).display().to_string();
                Ok((rel, io::sha256_file(f)?))
            })
            .collect()
    } else {
        Ok(vec![(input.display().to_string(), io::sha256_file(input)?)])
    }
}

/// Seconds between two checkpoints at epoch ends by default (`darlc run --checkpoint-every`).
/// A checkpoint after every epoch cost 8% of a DLPFC run (230 checkpoints of up to 119 MB, 68 s of
/// 847 s, 2026-12-07); a kill now loses at most this much work plus an epoch.
pub const CHECKPOINT_EVERY_S: f64 = 60.0;

/// How `darlc run` treats its output folder and checkpoints.
#[derive(Clone, Debug)]
pub struct RunControl {
    /// Replace a non-empty `--out` that darlc did not write, or discard an interrupted run's
    /// staging folder.
    pub force: bool,
    /// Continue the interrupted run into `--out` from its checkpoint.
    pub resume: bool,
    /// The `darlc run` arguments (after `run`), recorded in checkpoints so that `--resume` alone
    /// can repeat them.
    pub args: Vec<String>,
    /// Where the run stops (`darlc embed` stops after the warm-up).
    pub until: Until,
    /// Hide the progress bars.
    pub quiet: bool,
    /// Seconds between two checkpoints at epoch ends (0: after every epoch and GAT block); a
    /// stop request and the end of each stage always write one.
    pub checkpoint_every: f64,
}

impl Default for RunControl {
    fn default() -> Self {
        RunControl {
            force: false,
            resume: false,
            args: Vec::new(),
            until: Until::default(),
            quiet: false,
            checkpoint_every: CHECKPOINT_EVERY_S,
        }
    }
}

/// Run `cfg` on the data at `input` and write everything to `out` (a fresh run, see
/// [`run_with`]).
pub fn run(
    input: &Path,
    load: &LoadOptions,
    cfg: &CheckedConfig,
    truth: Option<&Path>,
    out: &Path,
) -> Result<RunResult> {
    run_with(input, load, cfg, truth, out, &RunControl::default())
}

/// Run `cfg` on the data at `input` into `out`. Everything is written into the staging folder
/// beside `out` and swapped in when complete ([`outdir`]); DARLC writes checkpoints there and, with
/// `ctl.resume`, continues from the last one after checking that the configuration and the inputs
/// are those of the interrupted run.
pub fn run_with(
    input: &Path,
    load: &LoadOptions,
    cfg: &CheckedConfig,
    truth: Option<&Path>,
    out: &Path,
    ctl: &RunControl,
) -> Result<RunResult> {
    let c = cfg.get();
    if outdir::absolute(input).starts_with(outdir::absolute(out)) {
        return Err(DarlcError::param(
            "--out",
            format!(
                "{} contains the input {}; a finished run replaces its output folder, so choose \
                 an --out outside the input",
                out.display(),
                input.display()
            ),
        ));
    }
    // Every input the run will read is checked before the folder is claimed and before any
    // compute (issue 24): `--out` (which the finished run replaces) and the folder beside it,
    // where the staging folder goes, must be writable.
    probe_out(out)?;
    let truth_rows = read_truth(truth)?;
    let mut inputs = input_hashes(input, &outdir::owned_paths(out))?;
    if let Some(t) = truth {
        inputs.push((format!("--truth {}", t.display()), io::sha256_file(t)?));
    }
    let mut base = checkpoint::header(
        ctl.args.clone(),
        std::env::args().collect(),
        c,
        format!("{load:?}"),
        inputs.clone(),
        ctl.until == Until::WarmUp,
    );
    let (folder, resume) = if ctl.resume {
        let folder = outdir::OutputFolder::reopen(out)?;
        let ck = checkpoint::Checkpoint::load(folder.path())?;
        // Later checkpoints keep describing the original command.
        base.args = ck.header.args.clone();
        base.command = ck.header.command.clone();
        let diff = ck.header.differences(&base);
        if !diff.is_empty() {
            return Err(DarlcError::param(
                "--resume",
                format!(
                    "the checkpoint in {} is of a different run:\n  {}\nresume with the \
                     original configuration and inputs, or start a new run",
                    folder.path().display(),
                    diff.join("\n  ")
                ),
            ));
        }
        (folder, Some(ck))
    } else {
        (outdir::OutputFolder::create(out, ctl.force)?, None)
    };
    // A resumed run records the command that started it.
    let command = base.command.clone();
    let mut ck = darlc::Checkpointing::new(folder.path(), out, base, ctl.checkpoint_every);
    ck.resume = resume;
    if c.method == Method::Darlc {
        checkpoint::install_signal_handlers();
    }
    let result = run_in(
        input,
        load,
        cfg,
        truth_rows,
        folder.path(),
        &mut ck,
        inputs,
        command,
        ctl.until,
        !ctl.quiet,
    );
    checkpoint::restore_default_signals();
    match result {
        Ok(r) => {
            folder.finish()?;
            Ok(r)
        }
        Err(e) => {
            let cp = checkpoint::Checkpoint::path(folder.path());
            if cp.exists() && !matches!(e, DarlcError::Interrupted { .. }) {
                eprintln!(
                    "note: the last checkpoint is kept in {}; after fixing the cause, `darlc run \
                     --resume {}` continues from it",
                    cp.display(),
                    out.display()
                );
            }
            Err(e)
        }
    }
}

/// [`run_with`] once the staging folder `out` is claimed.
#[allow(clippy::too_many_arguments)]
fn run_in(
    input: &Path,
    load: &LoadOptions,
    cfg: &CheckedConfig,
    truth: Option<Truth>,
    out: &Path,
    ck: &mut darlc::Checkpointing,
    inputs: Vec<(String, String)>,
    command: Vec<String>,
    until: Until,
    progress: bool,
) -> Result<RunResult> {
    let c = cfg.get();
    if until == Until::WarmUp && c.method != Method::Darlc {
        return Err(DarlcError::param(
            "method",
            "only DARLC has a warm-up; `darlc embed` runs method `darlc`",
        ));
    }
    let mut phases = Vec::new();
    let t0 = Instant::now();
    let set = data::load(input, load)?;
    phases.push(Phase::ended("load", t0));
    eprint!("{}", data::output::summary(&set));
    let n = set.images.dim().0;
    check_data(&set, cfg, truth.as_ref())?;
    // The methods see `model_set`, which differs from `set` only under a per-image scaling
    // (`image_scale`, not in the method); metrics and outputs use the images as loaded.
    let scaled = (c.image_scale != ImageScale::None).then(|| {
        let mut s = set.clone();
        data::scale_images(&mut s.images, s.mask.view(), c.image_scale);
        let how = match c.image_scale {
            ImageScale::Standardize => "standardised over its tissue pixels",
            _ => "divided by its maximum",
        };
        eprintln!("images: each {how} (image_scale; metrics use the images as loaded)");
        s
    });
    let model_set = scaled.as_ref().unwrap_or(&set);
    // Tissue-pixel vectors `[N, P]` in f64 (480 MB for 15,000 genes at 75×75): built only when a
    // baseline needs them and, after the method, for the metrics, so that DARLC's training does
    // not hold them.
    let tissue = |s: &ImageSet| baselines::tissue_vectors(s.images.view(), s.mask.view());
    let k_given = cfg.clusters_for(n)?;
    // `darlc embed` stops before clustering: K means nothing to it.
    if let Some(k) = k_given.filter(|_| until == Until::Clusters)
        && let Some(line) = guardrails::explain_k(c.module2.clusters, k, n)
    {
        eprintln!("{line}");
    }
    // DARLC's schedule for this N (issue 23) and the warnings that can be given before training.
    let mut warnings = Vec::new();
    let sched = (c.method == Method::Darlc).then(|| schedule::resolve(n, c));
    // run.json's config: the batch and epochs the loops ran with (the targets stay as a record;
    // resolving it again gives the same schedule).
    let resolved = sched.as_ref().map(|s| s.apply(c));
    if let Some(s) = &sched {
        eprint!("{}", s.describe());
        warnings.extend(guardrails::small_section_warning(n));
        warnings.extend(guardrails::few_steps_warnings(s, c));
        for w in &warnings {
            eprintln!("{w}");
        }
    }
    let baseline_k = |x_model: &Array2<f64>| match k_given {
        Some(k) => Ok(k),
        None => infer_clusters(x_model, c.module2.knn, c.seed),
    };
    // A baseline's input, kept for the metrics when it is also the images as loaded.
    let mut x_loaded: Option<Array2<f64>> = None;
    let t1 = Instant::now();
    // The H&E image under the module maps, read before training so that a malformed one is
    // reported now (it only costs the maps their background, not the run).
    let he = match pictures::he_background(&set) {
        Ok(he) => he,
        Err(e) => {
            let w = format!("warning: {e}; modules.png draws the spots on the lattice instead");
            eprintln!("{w}");
            warnings.push(w);
            None
        }
    };
    let mut extras = Extras { model: None, he };
    let (mut result, k) = match c.method {
        Method::Kmeans => {
            let x_model = x_loaded.insert(tissue(model_set)?);
            let k = baseline_k(x_model)?;
            let cl = baselines::kmeans_baseline(x_model.view(), k, c.seed)?;
            let r = RunResult {
                clustering: Some(cl),
                h: None,
                z: None,
                phases: vec![],
                contrastive_reference: None,
            };
            (r, Some(k))
        }
        Method::GmmPca => {
            let x_model = x_loaded.insert(tissue(model_set)?);
            let k = baseline_k(x_model)?;
            let mut cl = baselines::gmm_pca_baseline(
                x_model.view(),
                k,
                c.module2.dim,
                c.module2.em_iters_final,
                c.seed,
            )?;
            let z = cl.embedding.take();
            let r = RunResult {
                clustering: Some(cl),
                h: None,
                z,
                phases: vec![],
                contrastive_reference: None,
            };
            (r, Some(k))
        }
        Method::Darlc => {
            let (r, mut model, k) = darlc::run_darlc(model_set, k_given, c, ck, progress, until)?;
            model.metadata.insert(
                "config".into(),
                serde_json::to_string(resolved.as_ref().unwrap_or(c)).unwrap_or_default(),
            );
            extras.model = Some(model);
            (r, k)
        }
    };
    phases.push(Phase::ended(&format!("{:?}", c.method).to_lowercase(), t1));
    // Warnings on what the training reached (DARLC's contrastive loss, read back from its
    // log.jsonl) and on the clustering.
    let mut after = Vec::new();
    if let Some(s) = &sched
        && !c.ablations.no_clr
        && let Ok(log) = std::fs::read_to_string(out.join("log.jsonl"))
    {
        after.extend(guardrails::chance_warning(
            &log,
            s.warmup.batch,
            s.warmup.steps,
            result.contrastive_reference,
        ));
    }
    if let (Some(s), Some(cl), Some(k)) = (&sched, &result.clustering, k)
        && !c.ablations.no_smm
    {
        let used = crate::module2::joint::clusters_used(&cl.labels);
        after.extend(darlc::merge_warning(used, k, &s.apply(c)));
    }
    if let (Some(cl), Some(k)) = (&result.clustering, k) {
        after.extend(guardrails::dominant_cluster_warning(&cl.labels, k));
    }
    for w in &after {
        eprintln!("{w}");
    }
    warnings.append(&mut after);
    phases.append(&mut result.phases);
    let contrastive_reference = result.contrastive_reference;
    let t2 = Instant::now();
    let x = match (x_loaded, &scaled) {
        (Some(x), None) => x,
        _ => tissue(&set)?,
    };
    // The outputs need the images as loaded only: free the scaled copy, and hand `set` and `x`
    // over so that writing them copies as little as possible (the output phase used to double
    // the run's peak memory on 15,000 genes).
    drop(scaled);
    let image_shape = set.images.dim().into();
    let run_config = resolved.as_ref().unwrap_or(c);
    let (mut written, cards) = write_all(
        set,
        x,
        &result,
        &extras,
        truth.as_ref(),
        (k, run_config),
        out,
    )?;
    let report_html = out.join("report.html");
    if cards.is_some() {
        written.push(report_html.clone());
    }
    phases.push(Phase::ended("outputs", t2));
    let rj = RunJson {
        complete: true,
        darlc_version: env!("CARGO_PKG_VERSION"),
        command,
        input: data::input_name(input),
        input_sha256: inputs,
        threads: rayon::current_num_threads(),
        config: resolved.as_ref().unwrap_or(c),
        images: n,
        image_shape,
        clusters: k,
        schedule: sched,
        contrastive_reference,
        warnings: &warnings,
        phases: &phases,
        outputs: written
            .iter()
            .map(|p| {
                p.file_name()
                    .map_or_else(String::new, |f| f.to_string_lossy().into_owned())
            })
            .collect(),
    };
    if let Some(cards) = &cards {
        // Written from the files the run wrote (and run.json's content), just before run.json.
        let t3 = Instant::now();
        write_report_html(&report_html, &rj, cards, out)?;
        eprintln!(
            "report: {} ({:.1} s)",
            report_html.display(),
            t3.elapsed().as_secs_f64()
        );
    }
    io::write_json(&out.join("run.json"), &rj)?;
    result.phases = phases;
    Ok(result)
}

/// K by the eigengap of the enhanced seeding similarity (method §10) on the given vectors.
fn infer_clusters(x: &Array2<f64>, knn: usize, seed: u64) -> Result<usize> {
    let s = crate::module2::similarity::seeding_similarity(x.view(), knn)?;
    eigengap_k(&s, seed)
}

/// K by the eigengap of the seeding similarity `s` (method §10; stream `k_infer.lanczos`), the one
/// place both the baselines and DARLC (on its smoothed images) infer K.
pub(crate) fn eigengap_k(s: &crate::linalg::sparse::Csr, seed: u64) -> Result<usize> {
    let mut r = crate::rng::stream(seed, "k_infer.lanczos");
    let inf = crate::module2::k_infer::infer_k(s, &mut r)?;
    eprintln!("clusters: K = {} by the eigengap (method §10)", inf.k_hat);
    Ok(inf.k_hat)
}

/// A `--truth` file as read at start-up: its rows (id, label) and its path for messages.
pub struct Truth {
    pub rows: Vec<(String, String)>,
    pub path: PathBuf,
}

/// Read `--truth` before any compute: a missing file, a single column, an empty or duplicated
/// id are errors naming the file and line.
fn read_truth(truth: Option<&Path>) -> Result<Option<Truth>> {
    let Some(p) = truth else { return Ok(None) };
    let rows = crate::eval::input::read_two_column_csv(p)?;
    if rows.is_empty() {
        return Err(DarlcError::format(
            p,
            None,
            "no rows (expected a header, then id,label)",
        ));
    }
    Ok(Some(Truth {
        rows,
        path: p.to_path_buf(),
    }))
}

/// Check that `out` can be written, before any compute: an existing `out` must be a writable
/// folder; otherwise its nearest existing ancestor must be a writable folder (nothing is
/// created). Writes and removes one small probe file. The output-folder logic proper (staging,
/// lock) builds on this.
pub fn probe_out(out: &Path) -> Result<()> {
    let mut dir = out.to_path_buf();
    if dir.as_os_str().is_empty() {
        dir = PathBuf::from(".");
    }
    loop {
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(DarlcError::param(
                    "--out",
                    format!(
                        "{} is a file, not a folder; give a folder for the outputs",
                        dir.display()
                    ),
                ));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                dir = match dir.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
            }
            Err(e) => return Err(DarlcError::io(&dir, e)),
        }
    }
    let probe = dir.join(format!(".darlc-probe-{}", std::process::id()));
    std::fs::write(&probe, b"probe").map_err(|e| {
        DarlcError::param(
            "--out",
            format!(
                "cannot write into {} ({e}); choose a folder you can write to",
                dir.display()
            ),
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Checks that need the data, made right after loading and before any compute: every image has
/// a `--truth` label; the images are not all identical (and at least K of them differ, else the
/// mixture would end in a Cholesky failure); DARLC's patch and mask ratio leave a visible token.
fn check_data(set: &ImageSet, cfg: &CheckedConfig, truth: Option<&Truth>) -> Result<()> {
    let c = cfg.get();
    let (n, ch, h, w) = set.images.dim();
    if let Some(t) = truth {
        let known: std::collections::BTreeSet<&str> =
            t.rows.iter().map(|(id, _)| id.as_str()).collect();
        let missing: Vec<&String> = set
            .ids
            .iter()
            .filter(|id| !known.contains(id.as_str()))
            .collect();
        if let Some(first) = missing.first() {
            return Err(DarlcError::format(
                &t.path,
                None,
                format!(
                    "no label for image `{first}` ({} of the {n} images have none); the truth \
                     file needs a row `id,label` for every gene kept",
                    missing.len()
                ),
            ));
        }
    }
    if c.method == Method::Darlc {
        if n < 2 {
            return Err(DarlcError::Data(format!(
                "DARLC needs at least 2 images, got {n}"
            )));
        }
        let m1 = crate::module1::model::Config::from_run(c, ch, h, w);
        m1.validate().map_err(|e| match e {
            DarlcError::Param { name, msg } => DarlcError::Param {
                name: format!("module1.{name}"),
                msg,
            },
            other => other,
        })?;
    }
    let k_min = cfg.clusters_for(n)?.unwrap_or(2);
    let (distinct, pair) = distinct_images(set);
    if distinct < k_min {
        let example = pair.map_or(String::new(), |(a, b)| {
            format!(
                " (e.g. `{}` and `{}` have identical images)",
                set.ids[a], set.ids[b]
            )
        });
        let what = if distinct == 1 {
            format!("all {n} images are identical{example}")
        } else {
            format!("only {distinct} of the {n} images differ{example}")
        };
        return Err(DarlcError::Data(format!(
            "{what}; {k_min} clusters need at least {k_min} different images: remove the \
             duplicated genes or choose fewer clusters (--clusters)"
        )));
    }
    Ok(())
}

/// How many images differ (bit patterns of the f32 values), and the first identical pair.
fn distinct_images(set: &ImageSet) -> (usize, Option<(usize, usize)>) {
    use std::hash::{Hash, Hasher};
    let mut first: std::collections::HashMap<u64, Vec<usize>> = Default::default();
    let mut pair = None;
    let mut distinct = 0;
    let img = |i: usize| set.images.index_axis(ndarray::Axis(0), i);
    for i in 0..set.images.dim().0 {
        let mut hs = std::hash::DefaultHasher::new();
        for v in img(i).iter() {
            v.to_bits().hash(&mut hs);
        }
        let same = first.entry(hs.finish()).or_default();
        match same.iter().find(|&&j| img(j) == img(i)) {
            Some(&j) => {
                pair.get_or_insert((j, i));
            }
            None => {
                same.push(i);
                distinct += 1;
            }
        }
    }
    (distinct, pair)
}

/// Truth labels: the `--truth` rows or the labels that came with the data.
fn truth_rows(set: &ImageSet, truth: Option<&Truth>) -> Option<(Vec<(String, String)>, PathBuf)> {
    if let Some(t) = truth {
        return Some((t.rows.clone(), t.path.clone()));
    }
    set.labels.as_ref().map(|l| {
        (
            set.ids.iter().cloned().zip(l.iter().cloned()).collect(),
            PathBuf::from(&set.report.input),
        )
    })
}

/// `report.html` ([`report_html`]) from `run.json`'s content and the files in `out`.
fn write_report_html(
    path: &Path,
    rj: &RunJson,
    cards: &report_html::Cards,
    out: &Path,
) -> Result<()> {
    let run = serde_json::to_value(rj).map_err(|e| DarlcError::Data(format!("run.json: {e}")))?;
    let read_json = |name: &str| -> Result<Option<serde_json::Value>> {
        let p = out.join(name);
        if !p.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&p).map_err(|e| DarlcError::io(&p, e))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| DarlcError::format(&p, Some(e.line()), e.to_string()))
    };
    let data = read_json("report.json")?.unwrap_or_default();
    let metrics = read_json("metrics.json")?;
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap_or_default();
    let page = report_html::render(&report_html::Page {
        run: &run,
        data: &data,
        metrics: metrics.as_ref(),
        log: &log,
        cards: &cards.cards,
        ids: &cards.ids,
        symbols: &cards.symbols,
        confidence: &cards.confidence,
    });
    io::atomic_write(path, page.as_bytes())
}

/// Everything a run writes but `run.json` into the staging folder `out`; `run` is K and the
/// effective configuration (as in `run.json`), for `darlc.h5ad`. Returns the files and, when
/// there are clusters, what `report.html` shows of them.
fn write_all(
    set: ImageSet,
    x: Array2<f64>,
    r: &RunResult,
    extras: &Extras,
    truth: Option<&Truth>,
    run: (Option<usize>, &crate::config::Config),
    out: &Path,
) -> Result<(Vec<PathBuf>, Option<report_html::Cards>)> {
    // The run folder stores the images cropped to the tissue (see `outputs::crop_to_tissue`).
    let cropped = outputs::crop_to_tissue(set);
    let set = &cropped;
    let mut files = data::output::write_outputs(set, out)?;
    let responsibilities = r
        .clustering
        .as_ref()
        .and_then(|c| c.responsibilities.as_ref());
    if let Some(cl) = &r.clustering {
        let p = out.join("clusters.csv");
        outputs::write_clusters_csv(&p, &set.ids, &set.symbols, cl)?;
        files.push(p);
    }
    if r.h.is_some() || r.z.is_some() || responsibilities.is_some() {
        let p = out.join("embeddings.safetensors");
        outputs::write_embeddings(&p, &set.ids, r.h.as_ref(), r.z.as_ref(), responsibilities)?;
        files.push(p);
        if let Some(e) = r.z.as_ref().or(r.h.as_ref()) {
            let p = out.join("embeddings.csv");
            outputs::write_embeddings_csv(
                &p,
                &set.ids,
                &set.symbols,
                e.view(),
                if r.z.is_some() { "z" } else { "h" },
            )?;
            files.push(p);
        }
    }
    if let Some(m) = r.clustering.as_ref().and_then(|c| c.mixture.as_ref()) {
        let p = out.join("smm.safetensors");
        let mut tf = io::TensorFile::new();
        m.insert_into(&mut tf);
        tf.save(&p)?;
        files.push(p);
    }
    if let Some(m) = &extras.model {
        let p = out.join("model.safetensors");
        m.save(&p)?;
        files.push(p);
        let p = out.join("log.jsonl");
        if p.exists() {
            files.push(p);
        }
    }
    // AnnData for scanpy users (sections only, see `h5ad`).
    let t = Instant::now();
    if let Some(a) = h5ad::build(set, r, run.0, run.1)? {
        let p = out.join("darlc.h5ad");
        a.write(&p)?;
        let mb = std::fs::metadata(&p).map_or(0.0, |m| m.len() as f64 / 1e6);
        eprintln!(
            "darlc.h5ad: {} spots × {} genes, {mb:.1} MB in {:.2} s",
            a.obs.index.len(),
            a.var.index.len(),
            t.elapsed().as_secs_f64()
        );
        files.push(p);
    }
    // Stopped after the warm-up: no clusters to score or draw.
    let Some(clustering) = &r.clustering else {
        return Ok((files, None));
    };
    let truth = truth_rows(set, truth);
    let truth = truth
        .as_ref()
        .map(|(rows, p)| (rows.as_slice(), p.as_path()));
    let report = outputs::metrics(set, x, clustering, truth, out)?;
    let p = out.join("metrics.json");
    io::write_json(&p, &report)?;
    files.push(p);
    eprint!("{}", crate::eval::report::format_table(&report));
    let modules = summary::modules(clustering, Some(&report));
    let p = out.join("modules.csv");
    summary::write_modules_csv(&p, &modules, &set.ids, &set.symbols, &clustering.confidence)?;
    files.push(p);
    // The pictures: per cluster its member montage and (sections) its module map, each made
    // once for the paged pictures and the report's cards.
    let montages: Vec<_> = modules
        .iter()
        .map(|m| pictures::montage(set, m, pictures::MEMBERS_SHOWN))
        .collect();
    files.extend(pictures::write_pages(
        out,
        "clusters",
        &pictures::clusters_pages(&modules, &montages),
    )?);
    let maps = match &set.section {
        Some(sec) => {
            let k = clustering.labels.iter().copied().max().map_or(0, |m| m + 1);
            let scores = modules::module_scores(sec.expr.view(), &clustering.labels, k)?;
            let maps: Vec<_> = modules
                .iter()
                .map(|m| pictures::module_map(set, scores.column(m.cluster), extras.he.as_ref()))
                .collect();
            files.extend(pictures::write_pages(
                out,
                "modules",
                &pictures::modules_pages(set, &modules, &maps),
            )?);
            Some(maps)
        }
        None => None,
    };
    let mut cards = Vec::with_capacity(modules.len());
    for (i, m) in modules.into_iter().enumerate() {
        cards.push(report_html::Card {
            module: m,
            map_png: maps.as_ref().map(|v| v[i].to_png()).transpose()?,
            montage_png: montages[i].0.to_png()?,
        });
    }
    let cards = report_html::Cards {
        cards,
        ids: set.ids.clone(),
        symbols: set.symbols.clone(),
        confidence: clustering.confidence.clone(),
    };
    Ok((files, Some(cards)))
}
