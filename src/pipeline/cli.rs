//! `darlc run` flags: data options, config layering (preset, then `--config` file, then flags).

use super::{RunControl, run_with};
use crate::config::{Clusters, Config, ImageScale, Method};
use crate::data::cli::LoadArgs;
use crate::error::{DarlcError, Result};
use std::path::PathBuf;

/// `darlc run [--input PATH] --out DIR [--config FILE] [--preset NAME] …`
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// Output folder. It is written only when the run is complete (until then everything goes to
    /// `OUT.darlc-partial` beside it); a non-empty folder that darlc did not write is refused.
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Replace a non-empty --out that darlc did not write, or discard an interrupted run's
    /// checkpoint in OUT.darlc-partial and start again.
    #[arg(long)]
    pub force: bool,
    /// Continue an interrupted run from its last checkpoint: DIR is its --out (or
    /// OUT.darlc-partial). Alone, it repeats the original arguments; with them, they must give the
    /// same configuration and inputs (--threads may differ).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// JSON config; its keys override the preset's values (unknown keys are errors).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Starting values: recommended (the default: schedule in optimiser steps, scaled views,
    /// canvas fitted to the tissue; README), paper (SPEC §14 literally: 50 + 50 epochs at B 256),
    /// fast (an alias of recommended) or tiny (tests).
    #[arg(long, default_value = crate::config::DEFAULT_PRESET)]
    pub preset: String,
    /// Clustering method.
    #[arg(long, value_parser = ["darlc", "kmeans", "gmm-pca"])]
    pub method: Option<String>,
    /// Number of clusters: an integer, `st` (round(N/30)) or `auto` (eigengap).
    #[arg(long)]
    pub clusters: Option<String>,
    /// Seed of every random stream.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Ground-truth labels (CSV: id, label) for NMI/ARI/ACC.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Per-image scaling before smoothing and clustering (not in SPEC; default none). `max`
    /// divides each image by its maximum so that genes group by pattern rather than level.
    #[arg(long, value_enum)]
    pub image_scale: Option<ImageScale>,
    /// Per-image scaling of the smoothed positive views (`smoothing.view_scale`; not in SPEC;
    /// `none` in the paper preset, `max` in the recommended one): `max` puts every view on a
    /// maximum of 1 so that the contrastive pair differs in level and `h` follows the pattern
    /// rather than the level.
    #[arg(long, value_enum)]
    pub view_scale: Option<ImageScale>,
}

/// Merge JSON `over` into `base` (objects key by key, anything else replaced).
fn merge(base: &mut serde_json::Value, over: serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

/// The dotted name of the first key of `over` whose value does not fit the config (serde's
/// message names the value's type but not its key): each key is tried alone on top of `base`.
fn bad_key(base: &serde_json::Value, over: &serde_json::Value, prefix: &str) -> Option<String> {
    let obj = over.as_object()?;
    for (k, v) in obj {
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        // `over` holding only this key, nested under `prefix`.
        let mut one = serde_json::json!({ k: v });
        for part in prefix.rsplit('.').filter(|p| !p.is_empty()) {
            one = serde_json::json!({ part: one });
        }
        let mut trial = base.clone();
        merge(&mut trial, one);
        if serde_json::from_value::<Config>(trial).is_err() {
            return Some(
                (v.is_object() && !name.ends_with("clusters"))
                    .then(|| bad_key(base, v, &name))
                    .flatten()
                    .unwrap_or(name),
            );
        }
    }
    None
}

/// The effective configuration of `args`.
pub fn config_of(args: &RunArgs) -> Result<Config> {
    let mut c = Config::preset(&args.preset)?;
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path).map_err(|e| DarlcError::io(path, e))?;
        let over: serde_json::Value = serde_json::from_str(crate::io::source::strip_bom(&text))
            .map_err(|e| DarlcError::format(path, Some(e.line()), format!("invalid JSON: {e}")))?;
        let preset = serde_json::to_value(&c).expect("config serialises");
        let mut base = preset.clone();
        // A file that counts a phase in epochs takes that phase off the preset's step target.
        for (section, epochs, steps) in [
            ("module1", "warmup_epochs", "warmup_steps"),
            ("module2", "joint_epochs", "joint_steps"),
        ] {
            let sets = |key: &str| over.get(section).and_then(|m| m.get(key)).is_some();
            if sets(epochs) && !sets(steps) {
                base[section][steps] = serde_json::Value::Null;
            }
        }
        merge(&mut base, over.clone());
        c = serde_json::from_value(base).map_err(|e| {
            let key = bad_key(&preset, &over, "").map_or(String::new(), |k| format!("key `{k}`: "));
            DarlcError::format(path, None, format!("invalid config: {key}{e}"))
        })?;
    }
    if let Some(m) = &args.method {
        c.method = match m.as_str() {
            "kmeans" => Method::Kmeans,
            "gmm-pca" => Method::GmmPca,
            _ => Method::Darlc,
        };
    }
    if let Some(k) = &args.clusters {
        c.module2.clusters = match k.as_str() {
            "st" => Clusters::St,
            "auto" => Clusters::Auto,
            s => Clusters::Fixed(s.parse().map_err(|_| {
                DarlcError::param(
                    "--clusters",
                    format!("expected an integer, `st` or `auto`; got `{s}`"),
                )
            })?),
        };
    }
    if let Some(s) = args.seed {
        c.seed = s;
    }
    if let Some(s) = args.image_scale {
        c.image_scale = s;
    }
    if let Some(s) = args.view_scale {
        c.smoothing.view_scale = s;
    }
    // `--patch` (default 5) sets the ViT patch side; a config file's `module1.patch` wins only
    // when the flag is left at its default.
    if args.load.patch != 5 {
        c.module1.patch = args.load.patch;
    }
    if let Some(canvas) = args.load.canvas {
        c.canvas = canvas;
    }
    if args.load.min_spots != c.min_spots {
        c.min_spots = args.load.min_spots;
    }
    Ok(c)
}

/// `darlc run`'s arguments alone, to repeat a checkpoint's recorded command.
#[derive(clap::Parser, Debug)]
#[command(name = "darlc run", no_binary_name = true)]
struct Replay {
    #[command(flatten)]
    args: RunArgs,
}

/// The arguments of this `darlc run` invocation (after `run`), for checkpoints.
fn run_arguments() -> Vec<String> {
    let all: Vec<String> = std::env::args().collect();
    match all.iter().position(|a| a == "run") {
        Some(i) => all[i + 1..].to_vec(),
        None => Vec::new(),
    }
}

/// With `--resume DIR` and no `--out`: the interrupted run's own arguments (this invocation's
/// `--threads` kept). With `--out` too: check that both name the same folder.
fn resolve_resume(args: RunArgs) -> Result<RunArgs> {
    let Some(dir) = args.resume.clone() else {
        return Ok(args);
    };
    let out = super::outdir::out_of(&dir);
    if let Some(o) = &args.out {
        if super::outdir::absolute(o) != super::outdir::absolute(&out) {
            return Err(DarlcError::param(
                "--resume",
                format!(
                    "--resume {} and --out {} name different folders",
                    dir.display(),
                    o.display()
                ),
            ));
        }
        return Ok(args);
    }
    let staging = super::outdir::staging_of(&out);
    let ck = super::checkpoint::Checkpoint::load(&staging).map_err(|e| {
        DarlcError::param(
            "--resume",
            format!("nothing to resume in {}: {e}", staging.display()),
        )
    })?;
    let replay = <Replay as clap::Parser>::try_parse_from(&ck.header.args).map_err(|e| {
        DarlcError::param(
            "--resume",
            format!("the checkpoint's recorded arguments do not parse: {e}"),
        )
    })?;
    let mut a = replay.args;
    a.out = Some(out);
    a.resume = Some(dir);
    a.force = false;
    if args.threads.is_some() {
        a.threads = args.threads;
    }
    Ok(a)
}

/// Entry point of `darlc run`.
pub fn run_cmd(args: RunArgs) -> Result<()> {
    let args = resolve_resume(args)?;
    if let Some(t) = args.threads {
        if t == 0 {
            return Err(DarlcError::param("--threads", "must be ≥ 1"));
        }
        // Ignore "already initialised" (a library caller may own the pool).
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global();
    }
    let cfg = config_of(&args)?.check()?;
    let input = args.load.input()?;
    let mut load = args.load.options(cfg.get().seed);
    load.min_spots = cfg.get().min_spots;
    load.patch = cfg.get().module1.patch;
    load.canvas = cfg.get().canvas.min_side();
    let out = args
        .out
        .clone()
        .ok_or_else(|| DarlcError::param("--out", "is required"))?;
    let ctl = RunControl {
        force: args.force,
        resume: args.resume.is_some(),
        args: run_arguments(),
    };
    let r = run_with(&input, &load, &cfg, args.truth.as_deref(), &out, &ctl)?;
    for p in &r.phases {
        eprintln!("{:>10}: {:8.2} s", p.name, p.seconds);
    }
    println!("wrote {}", out.display());
    Ok(())
}
