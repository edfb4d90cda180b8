//! `darlc smooth`: make the positive views of an input and show them (issue 4 item 4).

use super::input::InputArgs;
use crate::augment::gat::GatConfig;
use crate::augment::smooth::{Smoothed, smooth_image_set};
use crate::config::{Smoothing, SmoothingConfig};
use crate::data::{ImageSet, load};
use crate::error::{DarlcError, Result};
use crate::eval::quality::SmoothingReport;
use crate::io::{TensorData, TensorFile, picture, write_json};
use crate::threads::with_threads;
use ndarray::{ArrayView2, Axis, s};
use std::path::{Path, PathBuf};

/// Genes (images) shown in `smoothing.png`.
pub const SHOWN: usize = 6;

/// `darlc smooth`: denoise every image with the GAT (method §3) or GKS (method §15).
#[derive(clap::Args, Clone, Debug)]
pub struct SmoothArgs {
    #[command(flatten)]
    pub load: InputArgs,
    /// Output folder: smoothed.safetensors, gat.safetensors (GAT only), smoothing.png,
    /// smoothing.json.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub smoothing: SmoothingArgs,
    /// Seed of every named random stream.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// The denoiser's flags, the keys of the config's `smoothing` section (method §3.4), shared by
/// `run`, `embed` and `smooth`. A flag left out keeps the section's value: the preset's and
/// config file's in `run` and `embed`, the paper values (method §14) in `smooth`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct SmoothingArgs {
    /// Denoiser of the positive views (`smoothing.method`): gat, the tied graph-attention
    /// autoencoder (method §3), or gks, Gaussian kernel smoothing (the GAT→GKS ablation, §15).
    /// Default gat.
    #[arg(long, value_enum)]
    pub smoothing: Option<Smoothing>,
    /// GAT training epochs (`smoothing.epochs`; full batch, or optimiser steps in shared mode for
    /// image stacks). Default: 1000 (method §14; `smooth` and the paper preset), 200 in the
    /// recommended preset.
    #[arg(long)]
    pub gat_epochs: Option<usize>,
    /// GAT hidden width F1 (`smoothing.hidden`). Default 512 (method §14).
    #[arg(long)]
    pub gat_hidden: Option<usize>,
    /// GAT embedding width F2 (`smoothing.latent`). Default 30 (method §14).
    #[arg(long)]
    pub gat_latent: Option<usize>,
}

impl SmoothingArgs {
    /// Write the given flags into the `smoothing` section.
    pub fn apply_to(&self, sm: &mut SmoothingConfig) {
        if let Some(m) = self.smoothing {
            sm.method = m;
        }
        if let Some(e) = self.gat_epochs {
            sm.epochs = e;
        }
        if let Some(h) = self.gat_hidden {
            sm.hidden = h;
        }
        if let Some(l) = self.gat_latent {
            sm.latent = l;
        }
    }
}

/// Run `darlc smooth`.
pub fn run_smooth(a: SmoothArgs) -> Result<()> {
    with_threads(a.threads, || smooth_inner(&a))?
}

fn smooth_inner(a: &SmoothArgs) -> Result<()> {
    let input = a.load.input()?;
    let set = load(&input, &a.load.options(a.seed))?;
    let mut section = SmoothingConfig::default();
    a.smoothing.apply_to(&mut section);
    let cfg = GatConfig::from_section(&section, a.seed, !a.quiet);
    let sm = smooth_image_set(&set, section.method, &cfg)?;
    let quality = crate::eval::quality::section_smoothing_gain(&set, &sm)?;
    // Written into a staging folder beside --out and swapped in whole (issue 24).
    let folder = crate::pipeline::outdir::OutputFolder::create(&a.out, false)?;
    write_outputs(
        folder.path(),
        &set,
        &sm,
        quality.as_ref(),
        section.method,
        a.seed,
        cfg.epochs,
    )?;
    folder.finish()?;
    if let Some(q) = &quality {
        eprintln!(
            "Moran's I raw → smoothed (median over {} genes): {:.4} → {:.4}; raised for {:.1} %",
            q.n_compared,
            q.median_raw,
            q.median_smoothed,
            100.0 * q.fraction_raised
        );
    }
    eprintln!("wrote {}", a.out.display());
    Ok(())
}

/// Rows `r0..r1` and columns `c0..c1` of the tissue mask's bounding box (the whole canvas if the
/// mask is empty).
fn tissue_box(mask: ArrayView2<u8>) -> (usize, usize, usize, usize) {
    let (h, w) = mask.dim();
    let (mut r0, mut r1, mut c0, mut c1) = (h, 0, w, 0);
    for ((r, c), &m) in mask.indexed_iter() {
        if m != 0 {
            r0 = r0.min(r);
            r1 = r1.max(r + 1);
            c0 = c0.min(c);
            c1 = c1.max(c + 1);
        }
    }
    if r0 >= r1 {
        (0, h, 0, w)
    } else {
        (r0, r1, c0, c1)
    }
}

/// The `SHOWN` images with the most non-zero tissue pixels (ties → lower index).
pub fn pick_genes(set: &ImageSet) -> Vec<usize> {
    let mut nz: Vec<(usize, usize)> = set
        .images
        .outer_iter()
        .enumerate()
        .map(|(i, img)| (i, img.iter().filter(|&&v| v != 0.0).count()))
        .collect();
    nz.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    nz.into_iter().take(SHOWN).map(|(i, _)| i).collect()
}

fn write_outputs(
    out: &Path,
    set: &ImageSet,
    sm: &Smoothed,
    quality: Option<&SmoothingReport>,
    method: Smoothing,
    seed: u64,
    epochs: usize,
) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| DarlcError::io(out, e))?;
    let mut f = TensorFile::new();
    f.insert_float("smoothed", sm.images.clone().into_dyn());
    f.insert("mask", TensorData::U8(set.mask.clone().into_dyn()));
    f.metadata.insert("method".into(), method.name().into());
    f.metadata.insert("ids".into(), set.ids.join(","));
    f.save(&out.join("smoothed.safetensors"))?;
    if let Some(p) = &sm.params {
        let mut g = TensorFile::new();
        p.insert_into(&mut g);
        g.metadata.insert("epochs".into(), epochs.to_string());
        g.metadata.insert("seed".into(), seed.to_string());
        g.save(&out.join("gat.safetensors"))?;
    }
    // Row 0 raw, row 1 smoothed (channel 0), one column per shown gene, cropped to the tissue's
    // bounding box.
    let genes = pick_genes(set);
    let (r0, r1, c0, c1) = tissue_box(set.mask.view());
    let plane = |imgs: &ndarray::Array4<f32>, i: usize| -> ndarray::Array2<f32> {
        imgs.index_axis(Axis(0), i)
            .slice(s![0, r0..r1, c0..c1])
            .to_owned()
    };
    let raw: Vec<_> = genes.iter().map(|&i| plane(&set.images, i)).collect();
    let smo: Vec<_> = genes.iter().map(|&i| plane(&sm.images, i)).collect();
    let rows: Vec<Vec<Option<ArrayView2<f32>>>> = vec![
        raw.iter().map(|a| Some(a.view())).collect(),
        smo.iter().map(|a| Some(a.view())).collect(),
    ];
    let (h, w) = (r1 - r0, c1 - c0);
    let scale = (900 / (w.max(h) * SHOWN).max(1)).clamp(1, 12);
    let mask = set.mask.slice(s![r0..r1, c0..c1]);
    picture::write_grid(&out.join("smoothing.png"), &rows, Some(mask), scale)?;
    let summary = serde_json::json!({
        "method": method.name(),
        "input": set.report.input,
        "epochs": epochs,
        "seed": seed,
        "shown": genes.iter().map(|&i| set.symbols.get(i).cloned().unwrap_or_default()).collect::<Vec<_>>(),
        "losses_first_last": [sm.losses.first(), sm.losses.last()],
        "moran": quality.map(|q| serde_json::json!({
            "n_compared": q.n_compared,
            "fraction_raised": q.fraction_raised,
            "median_raw": q.median_raw,
            "median_smoothed": q.median_smoothed,
        })),
    });
    write_json(&out.join("smoothing.json"), &summary)
}
