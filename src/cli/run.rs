//! `darlc run` flags: data options, config layering (preset, then `--config` file, then flags).

use super::input::InputArgs;
use super::smooth::SmoothingArgs;
use crate::config::{Batch, Clusters, Config, ImageScale, Method};
use crate::error::{DarlcError, Result};
use crate::pipeline::{RunControl, run_with};
use std::path::PathBuf;

/// `darlc run [--input PATH] --out DIR [--config FILE] [--preset NAME] …`
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub load: InputArgs,
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
    /// Seconds between two checkpoints at epoch ends (0: after every GAT block, warm-up epoch and
    /// joint epoch). A stop (SIGTERM, Ctrl-C) and the end of each stage always write one, so this
    /// only bounds what a kill without warning (SIGKILL, a node failure) loses.
    #[arg(
        long,
        value_name = "SECONDS",
        allow_negative_numbers = true,
        default_value_t = crate::pipeline::CHECKPOINT_EVERY_S
    )]
    pub checkpoint_every: f64,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Clustering method: darlc (method §1), kmeans (k-means on the image vectors) or gmm-pca (a
    /// Gaussian mixture on a PCA of the images). Default: the config's `method`, darlc in every
    /// preset.
    #[arg(long, value_enum)]
    pub method: Option<Method>,
    /// Number of clusters K: an integer, `st` (round(N/30), at least 2) or `auto` (the eigengap
    /// of the seeding similarity, method §10). Default: the config's `module2.clusters`, `st` in
    /// `recommended` and `paper`.
    #[arg(long, value_parser = Clusters::parse)]
    pub clusters: Option<Clusters>,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Ground-truth labels (CSV: id, label) for NMI/ARI/ACC. Default: the labels that come with
    /// the input (simulations, labelled image stacks), else none.
    #[arg(long)]
    pub truth: Option<PathBuf>,
}

/// The configuration flags of `darlc run` and `darlc embed`, layered in this order: the preset,
/// then the `--config` file, then the flags that are given (a flag left out changes nothing).
#[derive(clap::Args, Clone, Debug)]
pub struct ConfigArgs {
    /// JSON config; its keys override the preset's values (unknown keys are errors).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Starting values: recommended (the default: schedule in optimiser steps, scaled views,
    /// canvas fitted to the tissue; README), paper (method §14 literally: 50 + 50 epochs at B 256),
    /// fast (an alias of recommended) or tiny (tests).
    #[arg(long, default_value = crate::config::DEFAULT_PRESET)]
    pub preset: String,
    /// Seed of every named random stream. Default: the config's `seed`, 0 in every preset.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Per-image scaling of the inputs before smoothing and clustering (`image_scale`; not in the
    /// method; default none): `max` divides each image by its maximum so that genes group by
    /// pattern rather than level; `standardize` (the baselines only) centres and scales each image
    /// over the tissue. Metrics use the unscaled images.
    #[arg(long, value_enum)]
    pub image_scale: Option<ImageScale>,
    /// Per-image scaling of the smoothed positive views x̃ (`smoothing.view_scale`; not in the method;
    /// `none` in the paper preset, `standardize` in the recommended one): `max` divides each view
    /// by its maximum, so that the contrastive pair (x, x̃) differs in level and `h` follows the
    /// pattern rather than the level; `standardize` centres and scales each view over the tissue
    /// (use it with `--input-scale standardize`).
    #[arg(long, value_enum)]
    pub view_scale: Option<ImageScale>,
    /// Per-image scaling of Module I's input images x, the encoder's input and the MIM target
    /// (`module1.input_scale`; not in the method; `none` in the paper preset, `standardize` in the
    /// recommended one): `standardize` puts every image on mean 0 and unit spread over the
    /// tissue, so that the encoder cannot tell genes apart by level. The GAT, K, the metrics and
    /// the outputs keep the images as loaded.
    #[arg(long, value_enum)]
    pub input_scale: Option<ImageScale>,
    #[command(flatten)]
    pub smoothing: SmoothingArgs,
    /// Warm-up epochs (`module1.warmup_epochs`, method §4.5). Given, it replaces the preset's
    /// step target (`module1.warmup_steps`). Default: the preset's schedule (recommended: the
    /// epochs that reach 2,000 optimiser steps; paper: 50 epochs).
    #[arg(long)]
    pub warmup_epochs: Option<usize>,
    /// Batch size B of the warm-up and joint phases (`module1.batch`): an integer ≥ 2 or `auto`
    /// (⌊N/4⌋ clamped to 2..=32). Default: the preset's (recommended `auto`, paper 256).
    #[arg(long, value_parser = parse_batch)]
    pub batch: Option<Batch>,
}

/// `--batch`: an integer or `auto`.
fn parse_batch(s: &str) -> std::result::Result<Batch, String> {
    match s.trim() {
        "auto" => Ok(Batch::Auto),
        t => t
            .parse()
            .map(Batch::Fixed)
            .map_err(|_| format!("`{s}` is neither a batch size (an integer) nor `auto`")),
    }
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

impl ConfigArgs {
    /// The effective configuration: the preset, then the `--config` file, then the given flags
    /// (those of `input` too: `--patch`, `--min-spots`, `--canvas`).
    pub fn config(&self, input: &InputArgs) -> Result<Config> {
        let mut c = Config::preset(&self.preset)?;
        if let Some(path) = &self.config {
            c = layer_file(c, path)?;
        }
        if let Some(s) = self.seed {
            c.seed = s;
        }
        if let Some(s) = self.image_scale {
            c.image_scale = s;
        }
        if let Some(s) = self.view_scale {
            c.smoothing.view_scale = s;
        }
        if let Some(s) = self.input_scale {
            c.module1.input_scale = s;
        }
        self.smoothing.apply_to(&mut c.smoothing);
        if let Some(e) = self.warmup_epochs {
            // Counting the warm-up in epochs takes it off the preset's step target, as a config
            // file's `module1.warmup_epochs` does.
            c.module1.warmup_epochs = e;
            c.module1.warmup_steps = None;
        }
        if let Some(b) = self.batch {
            c.module1.batch = b;
        }
        input.apply_to(&mut c);
        Ok(c)
    }
}

/// `c` with the keys of the JSON file at `path` written over it.
fn layer_file(c: Config, path: &std::path::Path) -> Result<Config> {
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
    serde_json::from_value(base).map_err(|e| {
        let key = bad_key(&preset, &over, "").map_or(String::new(), |k| format!("key `{k}`: "));
        DarlcError::format(path, None, format!("invalid config: {key}{e}"))
    })
}

/// The effective configuration of `darlc run`.
pub fn config_of(args: &RunArgs) -> Result<Config> {
    let mut c = args.config.config(&args.load)?;
    if let Some(m) = args.method {
        c.method = m;
    }
    if let Some(k) = args.clusters {
        c.module2.clusters = k;
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
    let out = crate::pipeline::outdir::out_of(&dir);
    if let Some(o) = &args.out {
        if crate::pipeline::outdir::absolute(o) != crate::pipeline::outdir::absolute(&out) {
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
    let staging = crate::pipeline::outdir::staging_of(&out);
    let ck = crate::pipeline::checkpoint::Checkpoint::load(&staging).map_err(|e| {
        DarlcError::param(
            "--resume",
            format!("nothing to resume in {}: {e}", staging.display()),
        )
    })?;
    if ck.header.embed {
        return Err(DarlcError::param(
            "--resume",
            format!(
                "the checkpoint in {} is of an interrupted `darlc embed`; continue it with: {}",
                staging.display(),
                ck.header.resume_hint(&out)
            ),
        ));
    }
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
    let load = args.load.options_for(cfg.get());
    let out = args
        .out
        .clone()
        .ok_or_else(|| DarlcError::param("--out", "is required"))?;
    if !(args.checkpoint_every.is_finite() && args.checkpoint_every >= 0.0) {
        return Err(DarlcError::param(
            "--checkpoint-every",
            format!(
                "{} is not a number of seconds ≥ 0 (0 checkpoints after every epoch)",
                args.checkpoint_every
            ),
        ));
    }
    let ctl = RunControl {
        force: args.force,
        resume: args.resume.is_some(),
        args: run_arguments(),
        checkpoint_every: args.checkpoint_every,
        ..RunControl::default()
    };
    let r = run_with(&input, &load, &cfg, args.truth.as_deref(), &out, &ctl)?;
    for p in &r.phases {
        eprintln!("{:>10}: {:8.2} s", p.name, p.seconds);
    }
    println!("wrote {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CanvasRule, Smoothing};
    use clap::Parser;

    fn run_args(argv: &[&str]) -> RunArgs {
        let all = ["darlc", "run", "--out", "unused"].iter().chain(argv);
        match crate::cli::Cli::try_parse_from(all).unwrap().command {
            crate::cli::Command::Run(a) => a,
            _ => unreachable!("parsed as run"),
        }
    }

    /// Issue 26: a config file's `min_spots` was replaced by the flag's default 10 (and run.json
    /// recorded 10); `--patch` won only when it differed from 5. A flag left out now changes
    /// nothing, a flag given wins.
    #[test]
    fn a_config_files_values_are_not_overridden_by_flag_defaults() {
        let dir = std::env::temp_dir().join(format!("darlc-cli-run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.json");
        std::fs::write(
            &f,
            r#"{"min_spots": 3, "canvas": 60, "module1": {"patch": 4}, "seed": 9}"#,
        )
        .unwrap();
        let path = f.to_str().unwrap();
        let c = config_of(&run_args(&["--config", path])).unwrap();
        assert_eq!(c.min_spots, 3);
        assert_eq!(c.module1.patch, 4);
        assert_eq!(c.canvas, CanvasRule::MinSide(60));
        assert_eq!(c.seed, 9);
        // The loader gets the config's values.
        let a = run_args(&["--config", path]);
        let load = a.load.options_for(&c);
        assert_eq!(
            (load.min_spots, load.patch, load.canvas, load.seed),
            (3, 4, 60, 9)
        );
        // Given flags win, including a flag equal to the old default.
        let c = config_of(&run_args(&[
            "--config",
            path,
            "--min-spots",
            "10",
            "--patch",
            "5",
            "--canvas",
            "tissue",
            "--seed",
            "2",
        ]))
        .unwrap();
        assert_eq!(c.min_spots, 10);
        assert_eq!(c.module1.patch, 5);
        assert_eq!(c.canvas, CanvasRule::Tissue);
        assert_eq!(c.seed, 2);
        // No file, no flags: the preset.
        let c = config_of(&run_args(&[])).unwrap();
        assert_eq!(c, Config::preset(crate::config::DEFAULT_PRESET).unwrap());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn config_flags_set_their_keys() {
        let c = config_of(&run_args(&[
            "--smoothing",
            "gks",
            "--gat-epochs",
            "7",
            "--gat-hidden",
            "8",
            "--gat-latent",
            "2",
            "--warmup-epochs",
            "3",
            "--batch",
            "16",
            "--method",
            "gmm-pca",
            "--clusters",
            "auto",
        ]))
        .unwrap();
        assert_eq!(c.smoothing.method, Smoothing::Gks);
        assert_eq!(
            (c.smoothing.epochs, c.smoothing.hidden, c.smoothing.latent),
            (7, 8, 2)
        );
        // Counting the warm-up in epochs takes it off the preset's step target.
        assert_eq!(c.module1.warmup_epochs, 3);
        assert_eq!(c.module1.warmup_steps, None);
        assert_eq!(c.module1.batch, Batch::Fixed(16));
        assert_eq!(c.method, Method::GmmPca);
        assert_eq!(c.module2.clusters, Clusters::Auto);
        let e =
            crate::cli::Cli::try_parse_from(["darlc", "run", "--out", "x", "--clusters", "many"])
                .err()
                .unwrap()
                .to_string();
        assert!(e.contains("`st` or `auto`"), "{e}");
    }
}
