//! Run configuration: every hyperparameter of method §14 with its default, named presets, and a
//! check that turns an unchecked [`Config`] (as read from JSON or flags) into one darlc can run,
//! with errors that name the parameter and say what is allowed (after linfa's checked/unchecked
//! hyperparameters).

use crate::error::{DarlcError, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How the positive views are made (method §3, §15 "GAT→GKS"): the config key `smoothing.method`,
/// the `--smoothing` flag, and what [`crate::augment::smooth`] runs (one type, spelt `gat`/`gks`
/// everywhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Smoothing {
    /// The tied graph-attention autoencoder (method §3).
    Gat,
    /// Gaussian kernel smoothing (method §15).
    Gks,
}

impl Smoothing {
    /// The name in config files and on the command line: `gat` or `gks`.
    pub fn name(self) -> &'static str {
        match self {
            Smoothing::Gat => "gat",
            Smoothing::Gks => "gks",
        }
    }
}

/// Which inverse-Wishart scale `S0` the mixture's prior uses (method §6.2; `module2.scale_prior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScalePrior {
    /// `S0 = diag(s²)/K^{2/d}` (the default, mclust's volume scaling).
    #[default]
    Default,
    /// `S0 = ν0 · W`, W the pooled within-cluster covariance of the k-means partition.
    Within,
}

/// How the number of clusters is chosen (method §10, [P] §4.1.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "rule", content = "k")]
pub enum Clusters {
    /// `round(N/30)`, the paper's default for spatial transcriptomics.
    St,
    /// Eigengap of the enhanced similarity Laplacian (Eq. 23–25).
    Auto,
    /// A given K.
    Fixed(usize),
}

/// ST default number of clusters `K = round(N/30)`, at least 2 (\[P\] §4.1.5, method §10/§14).
pub fn k_default_st(n: usize) -> usize {
    ((n as f64 / 30.0).round() as usize).max(2)
}

impl Clusters {
    /// Parse a command-line value: an integer, `st` (round(N/30)) or `auto` (eigengap).
    pub fn parse(s: &str) -> std::result::Result<Clusters, String> {
        match s.trim() {
            "st" => Ok(Clusters::St),
            "auto" => Ok(Clusters::Auto),
            t => t
                .parse()
                .map(Clusters::Fixed)
                .map_err(|_| format!("expected an integer, `st` or `auto`; got `{s}`")),
        }
    }
}

/// Which clustering method produces the outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// DARLC (method §1, Algorithm 1).
    Darlc,
    /// k-means on the raw image vectors.
    Kmeans,
    /// Gaussian mixture on a PCA of the images.
    GmmPca,
}

/// Per-image intensity scaling applied after loading, before smoothing and every method.
///
/// Not in the paper or method §2, whose images keep their log1p levels (`none`, the default). A
/// gene's image then carries its expression level: on `darlc simulate --genes 1000 --seed 2` the
/// first principal direction of the warm-up `h` holds 70–94% of its variance and tracks the image
/// mean (r ≈ 0.8–0.9). `max` divides each image by its largest value, keeping zeros and shape and
/// putting every image on [0, 1] as method §2.3 does for natural images. Measured on that section
/// (K = 33): k-means NMI 0.259 → 0.318, GMM-on-PCA 0.479 → 0.551, but k-means on the warm-up `h`
/// (50 epochs, B 64) 0.306 → 0.276, so it is an option for the baselines and for studies, not a
/// default. Metrics (DBIE, DBIP) are always computed on the unscaled images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ImageScale {
    /// No scaling: the images keep their values (method §2 and §3).
    #[default]
    None,
    /// Divide each image by its maximum (all-zero images stay zero).
    Max,
    /// Standardise each image over its tissue pixels: subtract their mean, divide by their
    /// standard deviation; pixels outside the tissue, and constant images, become 0. Removes the
    /// gene's level and spread and keeps where it is high and low. For Module I's inputs
    /// (`module1.input_scale`), the views (`smoothing.view_scale`) and the baselines'
    /// `image_scale`; not for DARLC's `image_scale`, which feeds the GAT, whose output method
    /// §3.5 clips at 0.
    Standardize,
}

/// The batch size B of the warm-up and joint phases: a given number, or `"auto"`, chosen from the
/// number of images N by [`Batch::size_for`] (issue 23; method §20 allows a recommended preset to
/// choose B from N). In JSON an integer or the string `"auto"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batch {
    /// `B = clamp(⌊N/4⌋, 2, 32)`: see [`Batch::size_for`].
    Auto,
    Fixed(usize),
}

impl Batch {
    /// The largest batch the `auto` rule picks.
    pub const AUTO_MAX: usize = 32;

    /// B for `n` images. `Fixed(b)` is `b`. `Auto` is `clamp(⌊N/4⌋, 2, 32)`: 32 is the batch of
    /// every measured run that trained a useful embedding (`benches/small_section.json` on 1,000
    /// simulated genes and on the 488-gene DLPFC section of issue 23,
    /// `benches/large_section.json` on 15,000; README, "Small sections"), and for fewer than 128
    /// images ⌊N/4⌋ keeps at least four optimiser steps per epoch. The contrastive task's chance level ln(2B − 1) is ln 63 ≈ 4.14
    /// at B = 32. Compute per epoch does not depend on B, so a smaller B buys more steps.
    pub fn size_for(self, n: usize) -> usize {
        match self {
            Batch::Fixed(b) => b,
            Batch::Auto => (n / 4).clamp(2, Self::AUTO_MAX),
        }
    }
}

impl Serialize for Batch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Batch::Auto => s.serialize_str("auto"),
            Batch::Fixed(b) => s.serialize_u64(*b as u64),
        }
    }
}

impl<'de> Deserialize<'de> for Batch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match NumberOrWord::deserialize(d)? {
            NumberOrWord::Number(b) => Ok(Batch::Fixed(b)),
            NumberOrWord::Word(w) if w == "auto" => Ok(Batch::Auto),
            NumberOrWord::Word(w) => Err(serde::de::Error::custom(format!(
                "module1.batch must be an integer ≥ 2 or \"auto\"; got {w:?}"
            ))),
        }
    }
}

/// An integer or a word, for the keys that take either (`module1.batch`, `canvas`).
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrWord {
    Number(usize),
    Word(String),
}

/// How large the image canvas is (method §2.2). In JSON an integer (the minimum side, the method's 75) or
/// `"tissue"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CanvasRule {
    /// At least `side × side`, the tissue centred in it (method §2.2 and §14: 75).
    MinSide(usize),
    /// The tissue's bounding box, padded bottom/right to a multiple of the patch. Not in method (a
    /// CHOICE of the recommended preset): the mouse olfactory bulb's 16×21 spots sit on 20×25
    /// pixels instead of 75×75, so the ViT sees 20 tokens instead of 225 and the MIM decoder
    /// writes 500 pixels instead of 5,625. The pixels outside the tissue are zero in every image
    /// and carry nothing; method §12's metrics use tissue pixels only.
    Tissue,
}

impl CanvasRule {
    /// The minimum canvas side for [`crate::data::LoadOptions::canvas`] (0 = fit the tissue).
    pub fn min_side(self) -> usize {
        match self {
            CanvasRule::MinSide(s) => s,
            CanvasRule::Tissue => 0,
        }
    }

    /// Parse a command-line value: an integer or `tissue`.
    pub fn parse(s: &str) -> std::result::Result<CanvasRule, String> {
        match s.trim() {
            "tissue" => Ok(CanvasRule::Tissue),
            t => t.parse().map(CanvasRule::MinSide).map_err(|_| {
                format!(
                    "`{s}` is neither a minimum side (an integer, the method's 75) nor `tissue`"
                )
            }),
        }
    }
}

impl Serialize for CanvasRule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            CanvasRule::Tissue => s.serialize_str("tissue"),
            CanvasRule::MinSide(v) => s.serialize_u64(*v as u64),
        }
    }
}

impl<'de> Deserialize<'de> for CanvasRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match NumberOrWord::deserialize(d)? {
            NumberOrWord::Number(v) => Ok(CanvasRule::MinSide(v)),
            NumberOrWord::Word(w) => CanvasRule::parse(&w).map_err(serde::de::Error::custom),
        }
    }
}

/// GAT autoencoder settings (method §3.4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmoothingConfig {
    pub method: Smoothing,
    pub epochs: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub clip: f64,
    pub hidden: usize,
    pub latent: usize,
    /// Per-image scaling of the smoothed views `x̃` (the contrastive positives), applied after the
    /// seeding similarity is built. Not in the paper or method §3.5 (`none`, the paper preset's
    /// value). `max` puts every `x̃` on a maximum of 1 while `x` keeps its level, so the positive
    /// pair differs in intensity and the encoder is pushed towards features of the pattern rather
    /// than of the gene's expression level or detection rate (without it, the warm-up `h` of
    /// `darlc simulate --genes 1000 --seed 3` predicts each image's share of non-zero pixels with
    /// R² 0.98). See the README, "Quality against the baselines". `standardize` (with
    /// `module1.input_scale` the same) puts `x` and `x̃` on mean 0 and unit spread over the tissue,
    /// so neither carries the level; the recommended preset uses it (README, "Real data").
    pub view_scale: ImageScale,
}

/// ViT and Module I settings (method §4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModuleIConfig {
    pub patch: usize,
    pub dim: usize,
    pub depth: usize,
    pub heads: usize,
    pub mlp_ratio: usize,
    /// MIM decoder widths `D-w1-w2-w3-w4-(C·H·W)` (method §4.2).
    pub dec_widths: [usize; 4],
    pub mask_ratio: f64,
    pub contrastive_dim: usize,
    pub tau: f64,
    pub ema: f64,
    /// Warm-up epochs; replaced by the epochs that reach `warmup_steps` when that is set.
    pub warmup_epochs: usize,
    /// Target number of warm-up optimiser steps (issue 23, method §20). When set, the warm-up runs
    /// the fewest whole epochs that make at least this many steps at the run's batch
    /// ([`crate::pipeline::schedule`]); when absent (the paper preset) `warmup_epochs` counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_steps: Option<usize>,
    /// With `warmup_steps`: run at least this many warm-up epochs (default 0, no floor), so that
    /// a large section, whose epochs are long, still sees each image several times.
    #[serde(skip_serializing_if = "is_zero")]
    pub warmup_min_epochs: usize,
    /// B of the warm-up and joint phases: an integer or `"auto"` ([`Batch::size_for`]).
    pub batch: Batch,
    pub lr: f64,
    /// Per-image scaling of Module I's input images `x` (the encoder's input and the MIM target),
    /// applied after the GAT and the seeding similarity, which see the images as loaded. Not in
    /// the paper (`none`). Issue 23: on sparse sections the raw-pixel MIM target is dominated by
    /// the highly expressed genes and the encoder learns each gene's level and detection rate;
    /// `standardize` puts every gene's image on mean 0 and unit spread over the tissue.
    #[serde(skip_serializing_if = "is_no_scale")]
    pub input_scale: ImageScale,
}

/// For `skip_serializing_if`: a count left at 0 is not written.
pub(crate) fn is_zero(v: &usize) -> bool {
    *v == 0
}

fn is_no_scale(s: &ImageScale) -> bool {
    *s == ImageScale::None
}

/// Module II settings (method §5–§10).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModuleIIConfig {
    pub dim: usize,
    pub clusters: Clusters,
    /// Joint epochs; replaced by the epochs that reach `joint_steps` when that is set.
    pub joint_epochs: usize,
    /// Target number of batch-level optimiser steps of the joint phase (Adam_B, method §9.4; each
    /// epoch adds one epoch-level step). When set, the joint phase runs the fewest whole epochs
    /// (at least one) that make at least this many; when absent `joint_epochs` counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub joint_steps: Option<usize>,
    pub lr_epoch: f64,
    pub lr_batch: f64,
    pub lambda0: f64,
    pub em_iters_init: usize,
    pub em_iters_epoch: usize,
    pub em_iters_final: usize,
    pub em_tol: f64,
    pub alpha: f64,
    pub kappa0: f64,
    pub nu_init: f64,
    /// `"default"` (method §6.2) or `"within"` (pooled within-cluster scale prior).
    pub scale_prior: ScalePrior,
    pub knn: usize,
}

/// The ablation switches of method §15.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ablations {
    /// `w/o CLR`: drop the contrastive loss.
    pub no_clr: bool,
    /// `SMM→GMM`: Gaussian components.
    pub gmm: bool,
    /// `w/o L_LH`.
    pub no_lh: bool,
    /// `w/o L_size`.
    pub no_size: bool,
    /// `w/o SMM` (DARLC-C1): stop after warm-up.
    pub no_smm: bool,
}

/// Everything a run needs. Field defaults are the paper preset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub seed: u64,
    pub method: Method,
    pub min_spots: usize,
    /// Per-image scaling of the inputs (not in the method; default `none`).
    pub image_scale: ImageScale,
    /// Canvas size (method §2.2: at least 75×75; `"tissue"` in the recommended preset).
    pub canvas: CanvasRule,
    pub smoothing: SmoothingConfig,
    pub module1: ModuleIConfig,
    pub module2: ModuleIIConfig,
    pub ablations: Ablations,
}

impl Default for SmoothingConfig {
    fn default() -> Self {
        SmoothingConfig {
            method: Smoothing::Gat,
            epochs: 1000,
            lr: 1e-3,
            weight_decay: 1e-4,
            clip: 5.0,
            hidden: 512,
            latent: 30,
            view_scale: ImageScale::None,
        }
    }
}

impl Default for ModuleIConfig {
    fn default() -> Self {
        ModuleIConfig {
            patch: 5,
            dim: 64,
            depth: 4,
            heads: 4,
            mlp_ratio: 4,
            dec_widths: [128, 256, 512, 1024],
            mask_ratio: 0.8,
            contrastive_dim: 64,
            tau: 0.5,
            ema: 0.999,
            warmup_epochs: 50,
            warmup_steps: None,
            warmup_min_epochs: 0,
            batch: Batch::Fixed(256),
            lr: 1e-3,
            input_scale: ImageScale::None,
        }
    }
}

impl Default for ModuleIIConfig {
    fn default() -> Self {
        ModuleIIConfig {
            dim: 32,
            clusters: Clusters::St,
            joint_epochs: 50,
            joint_steps: None,
            lr_epoch: 1e-3,
            lr_batch: 1e-5,
            lambda0: 0.5,
            em_iters_init: 100,
            em_iters_epoch: 20,
            em_iters_final: 100,
            em_tol: 1e-6,
            alpha: 2.0,
            kappa0: 0.01,
            nu_init: 3.0,
            scale_prior: ScalePrior::Default,
            knn: 15,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 0,
            method: Method::Darlc,
            min_spots: 10,
            image_scale: ImageScale::None,
            canvas: CanvasRule::MinSide(75),
            smoothing: SmoothingConfig::default(),
            module1: ModuleIConfig::default(),
            module2: ModuleIIConfig::default(),
            ablations: Ablations::default(),
        }
    }
}

/// Warm-up optimiser steps of the recommended preset: `benches/small_section.json`'s 100 epochs
/// at B 32 on the 488-gene DLPFC section of issue 23 (16 steps per epoch), which gave an
/// embedding that beats PCA on gene-family clustering there, and more than the EMA target's time
/// constant of 1,000 steps (momentum 0.999).
pub const RECOMMENDED_WARMUP_STEPS: usize = 1600;

/// Fewest warm-up epochs of the recommended preset, whatever the step target gives: on a large
/// section 1,600 steps are few passes over each gene (4 on the 12,947-gene MOB section), and 16
/// there lifted anatomical coherence from 0.320 to 0.413 (seed 0, issue 23; README, "Real data").
/// Sections below about 3,200 genes already get more than 16 epochs from the step target.
pub const RECOMMENDED_WARMUP_MIN_EPOCHS: usize = 16;

/// Joint batch-level steps of the recommended preset: `small_section.json`'s 10 joint epochs on
/// the 488-gene DLPFC section (160 steps); on 15,000 genes one epoch at B 32 (469 steps), as in
/// `benches/large_section.json`.
pub const RECOMMENDED_JOINT_STEPS: usize = 160;

/// Largest step target [`Config::check`] accepts.
pub const MAX_TARGET_STEPS: usize = 1_000_000;

/// Names of the presets, for `--preset` help and errors; the first is `darlc run`'s default.
pub const PRESETS: &[&str] = &["recommended", "paper", "fast", "tiny"];

/// The preset `darlc run` uses when `--preset` is not given.
pub const DEFAULT_PRESET: &str = "recommended";

impl Config {
    /// A named preset:
    /// * `recommended` — the default of `darlc run` (issue 23): the schedule counted in optimiser
    ///   steps and B chosen from N (method §20), so that a 500-gene section trains as long as a
    ///   15,000-gene one: [`RECOMMENDED_WARMUP_STEPS`] warm-up steps (and at least
    ///   [`RECOMMENDED_WARMUP_MIN_EPOCHS`] epochs) and
    ///   [`RECOMMENDED_JOINT_STEPS`] joint batch steps at `B = "auto"` ([`Batch::size_for`]);
    ///   Module I's inputs and positive views standardised per image over the tissue
    ///   (`module1.input_scale` and `smoothing.view_scale` = `standardize`; a CHOICE of issue 23,
    ///   which refines method §20's scaled views: README, "Real data"); the two
    ///   joint-phase settings that keep the mixture from merging (`lr_epoch` 1e-5 and the pooled
    ///   within-cluster scale prior; README "When clusters merge") and `lr_batch` 1e-4 (README
    ///   "Small sections"); 200 GAT epochs and EM caps 50/10/50 (`benches/large_section.json`);
    ///   and the canvas fitted to the tissue ([`CanvasRule::Tissue`]). Model sizes are the method's;
    /// * `paper` — method §14 exactly (the oracle's schedule: 50 + 50 epochs at B = 256);
    /// * `fast` — the same values as `recommended` (an alias kept for old scripts). Until issue
    ///   23 it meant 3 warm-up epochs and 1 joint epoch, which leave the embedding untrained on
    ///   any section below about 10,000 genes (6 optimiser steps on 488 genes): a quick try that
    ///   shows nothing about the method is no use. `benches/fast_epochs.json` with
    ///   `--preset paper` reproduces the old values;
    /// * `tiny` — the method §18 tiny configuration's training lengths and model sizes, for tests.
    pub fn preset(name: &str) -> Result<Config> {
        let mut c = Config::default();
        match name {
            "paper" => {}
            "recommended" | "fast" => {
                c.canvas = CanvasRule::Tissue;
                c.smoothing.epochs = 200;
                c.smoothing.view_scale = ImageScale::Standardize;
                c.module1.input_scale = ImageScale::Standardize;
                c.module1.batch = Batch::Auto;
                c.module1.warmup_steps = Some(RECOMMENDED_WARMUP_STEPS);
                c.module1.warmup_min_epochs = RECOMMENDED_WARMUP_MIN_EPOCHS;
                c.module2.joint_steps = Some(RECOMMENDED_JOINT_STEPS);
                c.module2.em_iters_init = 50;
                c.module2.em_iters_epoch = 10;
                c.module2.em_iters_final = 50;
                c.module2.lr_epoch = 1e-5;
                c.module2.lr_batch = 1e-4;
                c.module2.scale_prior = ScalePrior::Within;
            }
            "tiny" => {
                c.smoothing.epochs = 5;
                c.smoothing.hidden = 5;
                c.smoothing.latent = 3;
                c.module1.dim = 8;
                c.module1.depth = 2;
                c.module1.heads = 2;
                c.module1.contrastive_dim = 4;
                c.module1.dec_widths = [6, 8, 10, 12];
                c.module1.warmup_epochs = 2;
                c.module1.batch = Batch::Fixed(6);
                c.module1.mask_ratio = 0.5;
                c.module2.dim = 3;
                c.module2.clusters = Clusters::Fixed(3);
                c.module2.joint_epochs = 2;
                c.module2.em_iters_init = 5;
                c.module2.em_iters_epoch = 5;
                c.module2.em_iters_final = 5;
                c.module2.knn = 3;
            }
            other => {
                return Err(DarlcError::param(
                    "--preset",
                    format!(
                        "unknown preset `{other}`; choose one of: {}",
                        PRESETS.join(", ")
                    ),
                ));
            }
        }
        Ok(c)
    }

    /// Read a JSON config file; keys left out keep their defaults, unknown keys are errors.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| DarlcError::io(path, e))?;
        serde_json::from_str(crate::io::source::strip_bom(&text))
            .map_err(|e| DarlcError::format(path, Some(e.line()), format!("invalid config: {e}")))
    }

    /// Check every value; the error names the first offending key and what is allowed.
    ///
    /// Every key of the config has a range here, so a value darlc cannot run is refused before
    /// the first epoch (issue 24): widths and counts ≥ 1, rates positive and finite, ratios in
    /// their interval. Epoch counts and iteration caps are bounded by [`MAX_ITERS`] so that a
    /// typo (`1e9` epochs) is an error rather than a run that never ends. Checks that need the
    /// data (patch against the image size, K against N) are made after loading, before any
    /// compute ([`crate::pipeline`]).
    // `!(x > 0.0)` is deliberate: it also rejects NaN.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub fn check(self) -> Result<CheckedConfig> {
        let m1 = &self.module1;
        let m2 = &self.module2;
        let sm = &self.smoothing;
        let p = |name: &str, msg: String| Err(DarlcError::param(name, msg));
        if self.image_scale == ImageScale::Standardize && self.method == Method::Darlc {
            return p(
                "image_scale",
                "`standardize` makes pixels negative, and DARLC's GAT views are clipped at 0 \
                 (method §3.5); use `module1.input_scale = \"standardize\"` to standardise \
                 Module I's inputs (the baselines, `--method kmeans` or `gmm-pca`, accept \
                 `image_scale = \"standardize\"`)"
                    .into(),
            );
        }
        // Counts and widths that must be at least 1.
        for (name, v) in [
            ("min_spots", self.min_spots),
            ("smoothing.hidden", sm.hidden),
            ("smoothing.latent", sm.latent),
            ("module1.patch", m1.patch),
            ("module1.depth", m1.depth),
            ("module1.mlp_ratio", m1.mlp_ratio),
            ("module1.contrastive_dim", m1.contrastive_dim),
            ("module2.dim", m2.dim),
            ("module2.em_iters_init", m2.em_iters_init),
            ("module2.em_iters_epoch", m2.em_iters_epoch),
            ("module2.em_iters_final", m2.em_iters_final),
            ("module2.knn", m2.knn),
        ] {
            if v == 0 {
                return p(name, "must be ≥ 1; got 0".into());
            }
        }
        // Widths that size a weight matrix: bounded so that a typo cannot ask for terabytes.
        for (name, v) in [
            ("smoothing.hidden", sm.hidden),
            ("smoothing.latent", sm.latent),
            ("module1.dim", m1.dim),
            ("module1.depth", m1.depth),
            ("module1.mlp_ratio", m1.mlp_ratio),
            ("module1.contrastive_dim", m1.contrastive_dim),
            ("module2.dim", m2.dim),
        ] {
            if v > MAX_WIDTH {
                return p(name, format!("must be ≤ {MAX_WIDTH}; got {v}"));
            }
        }
        if m1.patch > 1024 {
            return p(
                "module1.patch",
                format!("must be in 1..=1024; got {}", m1.patch),
            );
        }
        // Epochs and iteration caps (0 epochs is allowed: e.g. `warmup_epochs: 0` is an ablation).
        for (name, v) in [
            ("smoothing.epochs", sm.epochs),
            ("module1.warmup_epochs", m1.warmup_epochs),
            ("module1.warmup_min_epochs", m1.warmup_min_epochs),
            ("module2.joint_epochs", m2.joint_epochs),
            ("module2.em_iters_init", m2.em_iters_init),
            ("module2.em_iters_epoch", m2.em_iters_epoch),
            ("module2.em_iters_final", m2.em_iters_final),
        ] {
            if v > MAX_ITERS {
                return p(name, format!("must be ≤ {MAX_ITERS}; got {v}"));
            }
        }
        if m1.dim == 0 || !m1.dim.is_multiple_of(4) {
            return p(
                "module1.dim",
                format!(
                    "must be a positive multiple of 4 (2-D sin-cos positions, method §4.1); got {}",
                    m1.dim
                ),
            );
        }
        if let Some(w) = m1.dec_widths.iter().find(|&&w| w == 0 || w > MAX_WIDTH) {
            return p(
                "module1.dec_widths",
                format!(
                    "every decoder width must be in 1..={MAX_WIDTH}; got {w} in {:?}",
                    m1.dec_widths
                ),
            );
        }
        if m1.heads == 0 || !m1.dim.is_multiple_of(m1.heads) {
            return p(
                "module1.heads",
                format!("must divide module1.dim = {}; got {}", m1.dim, m1.heads),
            );
        }
        if !(0.0..1.0).contains(&m1.mask_ratio) {
            return p(
                "module1.mask_ratio",
                format!("must be in [0, 1); got {}", m1.mask_ratio),
            );
        }
        if let Batch::Fixed(b) = m1.batch
            && !(2..=MAX_BATCH).contains(&b)
        {
            return p(
                "module1.batch",
                format!(
                    "must be in 2..={MAX_BATCH} (NT-Xent and BatchNorm need two items) or \"auto\"; \
                     got {b}"
                ),
            );
        }
        // Step targets (issue 23): 0 is allowed (no warm-up: the "w/o pretraining" ablation; no
        // joint epochs); a target beyond a million steps is a typo, not a schedule.
        for (name, target) in [
            ("module1.warmup_steps", m1.warmup_steps),
            ("module2.joint_steps", m2.joint_steps),
        ] {
            if let Some(t) = target
                && t > MAX_TARGET_STEPS
            {
                return p(
                    name,
                    format!(
                        "a target of {t} optimiser steps is more than {MAX_TARGET_STEPS}; give the \
                         number of steps (the recommended preset uses {RECOMMENDED_WARMUP_STEPS} \
                         and {RECOMMENDED_JOINT_STEPS}), or leave the key out to count epochs"
                    ),
                );
            }
        }
        if !(m1.tau >= TAU_RANGE.0 && m1.tau <= TAU_RANGE.1) {
            return p(
                "module1.tau",
                format!(
                    "the NT-Xent temperature must be in [{:e}, {:e}] (method §4.3: 0.5); got {}",
                    TAU_RANGE.0, TAU_RANGE.1, m1.tau
                ),
            );
        }
        if !(0.0..=1.0).contains(&m1.ema) {
            return p("module1.ema", format!("must be in [0, 1]; got {}", m1.ema));
        }
        for (name, v) in [
            ("module1.lr", m1.lr),
            ("module2.lr_epoch", m2.lr_epoch),
            ("module2.lr_batch", m2.lr_batch),
            ("smoothing.lr", sm.lr),
            ("smoothing.clip", sm.clip),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return p(name, format!("must be a positive finite number; got {v}"));
            }
        }
        for (name, v) in [
            ("smoothing.weight_decay", sm.weight_decay),
            ("module2.lambda0", m2.lambda0),
            ("module2.em_tol", m2.em_tol),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return p(name, format!("must be a finite number ≥ 0; got {v}"));
            }
        }
        if let Clusters::Fixed(k) = m2.clusters
            && k < 2
        {
            return p("module2.clusters", format!("K must be ≥ 2; got {k}"));
        }
        if !(m2.alpha >= 1.0 && m2.alpha.is_finite()) {
            return p(
                "module2.alpha",
                format!(
                    "Dirichlet α must be finite and ≥ 1 (method §6.2); got {}",
                    m2.alpha
                ),
            );
        }
        if !(m2.kappa0 > 0.0 && m2.kappa0.is_finite()) {
            return p(
                "module2.kappa0",
                format!(
                    "must be a positive finite number (method §6.2); got {}",
                    m2.kappa0
                ),
            );
        }
        if !(1.0..=200.0).contains(&m2.nu_init) {
            return p(
                "module2.nu_init",
                format!("must lie in the ν bounds [1, 200]; got {}", m2.nu_init),
            );
        }
        Ok(CheckedConfig(self))
    }
}

/// Upper bound of every epoch count and EM iteration cap in [`Config::check`] (method §14 uses at
/// most 1000).
pub const MAX_ITERS: usize = 1_000_000;
/// Upper bound of every layer width in [`Config::check`] (method §14 uses at most 1024).
pub const MAX_WIDTH: usize = 65_536;
/// Upper bound of `module1.batch` (method §14: 256).
pub const MAX_BATCH: usize = 1 << 20;
/// Accepted range of the NT-Xent temperature τ (method §14: 0.5). Logits are `cos/τ`: below 1e-3
/// they pass 1000 and the f32 loss saturates; above 1e3 every logit is about 0 and the
/// contrastive loss is constant (no gradient).
pub const TAU_RANGE: (f64, f64) = (1e-3, 1e3);

/// A configuration that passed [`Config::check`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckedConfig(Config);

impl CheckedConfig {
    /// The checked values.
    pub fn get(&self) -> &Config {
        &self.0
    }
    /// The cluster count for `n` images when the rule does not need data (ST rule or fixed):
    /// errors if K > N.
    pub fn clusters_for(&self, n: usize) -> Result<Option<usize>> {
        let k = match self.0.module2.clusters {
            Clusters::St => k_default_st(n),
            Clusters::Fixed(k) => k,
            Clusters::Auto => return Ok(None),
        };
        if k > n {
            return Err(DarlcError::param(
                "module2.clusters",
                format!("K = {k} is larger than the number of images N = {n}; choose K ≤ N"),
            ));
        }
        Ok(Some(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_check_and_unknown_preset_is_named() {
        for p in PRESETS {
            Config::preset(p).unwrap().check().unwrap();
        }
        // The views' and inputs' scaling: the method's in the paper preset, standardised in
        // `fast` = `recommended` (README, "Real data").
        let paper = Config::preset("paper").unwrap();
        assert_eq!(paper.smoothing.view_scale, ImageScale::None);
        assert_eq!(paper.module1.input_scale, ImageScale::None);
        let fast = Config::preset("fast").unwrap();
        assert_eq!(fast.smoothing.view_scale, ImageScale::Standardize);
        assert_eq!(fast.module1.input_scale, ImageScale::Standardize);
        let e = Config::preset("fastest").unwrap_err().to_string();
        assert!(e.contains("--preset") && e.contains("fast"), "{e}");
        // `darlc run`'s default counts steps on a tissue-sized canvas; the paper counts epochs
        // at B 256 on the method's 75×75 canvas and serialises as before (no step keys).
        let rec = Config::preset(DEFAULT_PRESET).unwrap();
        assert_eq!(DEFAULT_PRESET, "recommended");
        assert_eq!(rec.module1.batch, Batch::Auto);
        assert_eq!(rec.module1.warmup_steps, Some(RECOMMENDED_WARMUP_STEPS));
        assert_eq!(rec.module2.joint_steps, Some(RECOMMENDED_JOINT_STEPS));
        assert_eq!(rec.canvas, CanvasRule::Tissue);
        assert_eq!(rec.smoothing.view_scale, ImageScale::Standardize);
        assert_eq!(Config::preset("fast").unwrap(), rec, "fast is an alias");
        let paper = Config::preset("paper").unwrap();
        assert_eq!(paper, Config::default());
        let j = serde_json::to_value(&paper).unwrap();
        assert_eq!(j["module1"]["batch"], 256);
        assert_eq!(j["canvas"], 75);
        assert!(j["module1"].get("warmup_steps").is_none());
        assert!(j["module2"].get("joint_steps").is_none());
        assert!(j["module1"].get("input_scale").is_none());
        assert!(j["module1"].get("warmup_min_epochs").is_none());
    }

    /// `standardize` is for Module I's inputs and the views; the GAT's input must stay
    /// non-negative, so `image_scale = standardize` is refused before any compute.
    #[test]
    fn standardize_is_refused_for_the_gat_input_only() {
        let mut c = Config::preset("recommended").unwrap();
        c.module1.input_scale = ImageScale::Standardize;
        c.smoothing.view_scale = ImageScale::Standardize;
        let j = serde_json::to_value(&c).unwrap();
        assert_eq!(j["module1"]["input_scale"], "standardize");
        c.clone().check().unwrap();
        c.image_scale = ImageScale::Standardize;
        let e = c.clone().check().unwrap_err().to_string();
        assert!(
            e.contains("image_scale") && e.contains("module1.input_scale"),
            "{e}"
        );
        // The baselines have no GAT: they may cluster standardised images.
        for m in [Method::Kmeans, Method::GmmPca] {
            c.method = m;
            c.clone().check().unwrap();
        }
    }

    #[test]
    fn batch_and_canvas_read_numbers_or_their_word() {
        let j = serde_json::to_value(Config::preset("recommended").unwrap()).unwrap();
        assert_eq!(j["module1"]["batch"], "auto");
        assert_eq!(j["canvas"], "tissue");
        let c: Config =
            serde_json::from_str(r#"{"module1": {"batch": 32}, "canvas": 80}"#).unwrap();
        assert_eq!(c.module1.batch, Batch::Fixed(32));
        assert_eq!(c.canvas, CanvasRule::MinSide(80));
        for bad in [r#"{"module1": {"batch": "big"}}"#, r#"{"canvas": "tisue"}"#] {
            let e = serde_json::from_str::<Config>(bad).unwrap_err().to_string();
            assert!(e.contains("batch") || e.contains("tissue"), "{e}");
        }
        assert_eq!(CanvasRule::parse("tissue"), Ok(CanvasRule::Tissue));
        assert_eq!(CanvasRule::parse("75"), Ok(CanvasRule::MinSide(75)));
        assert!(CanvasRule::parse("wide").unwrap_err().contains("tissue"));
        assert_eq!(CanvasRule::Tissue.min_side(), 0);
    }

    #[test]
    fn step_targets_and_batch_are_checked_by_name() {
        let mut c = Config::preset("recommended").unwrap();
        c.module1.warmup_steps = Some(MAX_TARGET_STEPS + 1);
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("module1.warmup_steps"), "{e}");
        let mut c = Config::preset("recommended").unwrap();
        c.module2.joint_steps = Some(5_000_000);
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("module2.joint_steps"), "{e}");
        let mut c = Config::default();
        c.module1.batch = Batch::Fixed(1);
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("module1.batch") && e.contains("auto"), "{e}");
        // 0 steps is the "w/o pretraining" ablation, not an error.
        let mut c = Config::preset("recommended").unwrap();
        c.module1.warmup_steps = Some(0);
        c.check().unwrap();
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut c = Config::default();
        c.module1.heads = 3;
        assert!(c.check().unwrap_err().to_string().contains("module1.heads"));
        let mut c = Config::default();
        c.module1.mask_ratio = 1.0;
        assert!(
            c.check()
                .unwrap_err()
                .to_string()
                .contains("module1.mask_ratio")
        );
        let mut c = Config::default();
        c.module2.lr_batch = f64::NAN;
        assert!(
            c.check()
                .unwrap_err()
                .to_string()
                .contains("module2.lr_batch")
        );
    }

    /// Issue 24: every checked key, one bad value each; the error must name that key (and not
    /// another one). Values are set through the JSON form, as a config file would set them.
    #[test]
    fn every_key_with_a_bad_value_is_refused_naming_the_key() {
        let cases: &[(&str, serde_json::Value)] = &[
            ("min_spots", 0.into()),
            ("smoothing.epochs", 2_000_000.into()),
            ("smoothing.lr", (-1e-3).into()),
            ("smoothing.weight_decay", (-1e-4).into()),
            ("smoothing.clip", (-5.0).into()),
            ("smoothing.hidden", 0.into()),
            ("smoothing.latent", 0.into()),
            ("module1.patch", 0.into()),
            ("module1.patch", 5000.into()),
            ("module1.dim", 30.into()),
            ("module1.depth", 0.into()),
            ("module1.heads", 3.into()),
            ("module1.heads", 0.into()),
            ("module1.mlp_ratio", 0.into()),
            ("module1.dec_widths", serde_json::json!([128, 0, 512, 1024])),
            ("module1.mask_ratio", 1.0.into()),
            ("module1.mask_ratio", (-0.1).into()),
            ("module1.contrastive_dim", 0.into()),
            ("module1.tau", 1e308.into()),
            ("module1.tau", 0.0.into()),
            ("module1.ema", 1.5.into()),
            ("module1.warmup_epochs", 10_000_000.into()),
            ("module1.warmup_min_epochs", 10_000_000.into()),
            ("module1.batch", 1.into()),
            ("module1.lr", 0.0.into()),
            ("module2.dim", 0.into()),
            (
                "module2.clusters",
                serde_json::json!({"rule": "fixed", "k": 1}),
            ),
            ("module2.joint_epochs", 10_000_000.into()),
            ("module2.lr_epoch", (-1.0).into()),
            ("module2.lr_batch", 0.0.into()),
            ("module2.lambda0", (-0.5).into()),
            ("module2.em_iters_init", 0.into()),
            ("module2.em_iters_epoch", 0.into()),
            ("module2.em_iters_final", 0.into()),
            ("module2.em_tol", (-1e-6).into()),
            ("module2.alpha", 0.5.into()),
            ("module2.kappa0", 0.0.into()),
            ("module2.nu_init", 300.0.into()),
            ("module2.knn", 0.into()),
        ];
        for (key, bad) in cases {
            let mut v = serde_json::to_value(Config::default()).unwrap();
            // Keys the default omits when unset.
            v["module1"]["warmup_min_epochs"] = 0.into();
            let mut slot = &mut v;
            for part in key.split('.') {
                slot = slot.get_mut(part).unwrap_or_else(|| panic!("no key {key}"));
            }
            *slot = bad.clone();
            let c: Config = serde_json::from_value(v).unwrap();
            let e = c.check().map(|_| ()).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("parameter `{key}`")),
                "{key} = {bad}: {e}"
            );
        }
        // An enum key (issue 26: `scale_prior` was a string checked here) refuses a bad value when
        // the file is read, naming the value and what is allowed.
        let mut v = serde_json::to_value(Config::default()).unwrap();
        v["module2"]["scale_prior"] = "pooled".into();
        let e = serde_json::from_value::<Config>(v).unwrap_err().to_string();
        assert!(
            e.contains("pooled") && e.contains("default") && e.contains("within"),
            "{e}"
        );
        // JSON cannot hold NaN or inf: set them directly.
        for (key, set) in [
            (
                "module2.em_tol",
                (|c: &mut Config| c.module2.em_tol = f64::NAN) as fn(&mut Config),
            ),
            ("module2.alpha", |c| c.module2.alpha = f64::INFINITY),
            ("module2.kappa0", |c| c.module2.kappa0 = f64::INFINITY),
            ("module2.lambda0", |c| c.module2.lambda0 = f64::NAN),
            ("module1.tau", |c| c.module1.tau = f64::NAN),
            ("smoothing.clip", |c| c.smoothing.clip = f64::INFINITY),
        ] {
            let mut c = Config::default();
            set(&mut c);
            let e = c.check().map(|_| ()).unwrap_err().to_string();
            assert!(e.starts_with(&format!("parameter `{key}`")), "{key}: {e}");
        }
    }

    #[test]
    fn k_default() {
        // round(18000/30) = 600; round(44/30) = round(1.47) = 1 → floor 2; round(75/30) = round(2.5)
        // = 3 (f64::round rounds half away from zero).
        assert_eq!(k_default_st(18000), 600);
        assert_eq!(k_default_st(44), 2);
        assert_eq!(k_default_st(75), 3);
        assert_eq!(k_default_st(0), 2);
    }

    #[test]
    fn k_larger_than_n_is_an_error_and_st_rule_rounds() {
        let c = Config::default().check().unwrap();
        // round(18000/30) = 600 (method §14); tiny N keeps K ≥ 2.
        assert_eq!(c.clusters_for(18000).unwrap(), Some(600));
        assert_eq!(c.clusters_for(40).unwrap(), Some(2));
        let mut raw = Config::default();
        raw.module2.clusters = Clusters::Fixed(50);
        let e = raw
            .check()
            .unwrap()
            .clusters_for(10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("K = 50") && e.contains("N = 10"), "{e}");
    }

    #[test]
    fn json_roundtrip_and_unknown_key_error_has_a_line() {
        for p in PRESETS {
            let c = Config::preset(p).unwrap();
            let s = serde_json::to_string_pretty(&c).unwrap();
            let back: Config = serde_json::from_str(&s).unwrap();
            assert_eq!(c, back, "{p}");
        }
        let dir = std::env::temp_dir().join(format!("darlc-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.json");
        std::fs::write(&f, "{\n  \"seed\": 1,\n  \"modul1\": {}\n}\n").unwrap();
        let e = Config::from_file(&f).unwrap_err().to_string();
        assert!(e.contains("c.json:3") && e.contains("modul1"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
