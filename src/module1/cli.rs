//! `darlc embed`: images → smoothing → Module I warm-up → representations `h` (the paper's
//! "DARLC-C1", SPEC §4.5 and §13).
//!
//! Inputs: anything [`crate::data::load`] reads (10x folders, legacy ST, MSI, cell tables, image
//! stacks; ids = its item ids); the embedded section when `--input` is omitted.
//!
//! Smoothing (the positive views, SPEC §3): the tied GAT autoencoder by default (`--smoothing gat`,
//! `--gat-epochs`), or Gaussian kernel smoothing (`--smoothing gks`, the GAT→GKS ablation of §15).

use super::model::{Config, ModuleI};
use super::warmup::{WarmupOptions, warmup};
use crate::error::{DarlcError, Result};
use crate::io::TensorFile;
use std::path::{Path, PathBuf};

/// Arguments of `darlc embed`.
#[derive(clap::Args, Debug, Clone)]
pub struct EmbedArgs {
    /// Input: a spatial section, a safetensors stack (`images` [N,C,H,W]) or a CSV stack with
    /// `--image-shape` (default: the embedded mouse olfactory bulb section).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Warm-up epochs (SPEC §4.5).
    #[arg(long, default_value_t = 50)]
    pub epochs: usize,
    /// Batch size (SPEC §4.5).
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Seed of every named random stream.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Patch side p (SPEC §4.1; images must be multiples of it).
    #[arg(long, default_value_t = 5)]
    pub patch: usize,
    /// Image shape `HxW` for CSV input.
    #[arg(long)]
    pub image_shape: Option<String>,
    /// Fraction of pixels zeroed per image after loading (0 = none).
    #[arg(long, default_value_t = 0.0)]
    pub sparsify: f64,
    /// Divide every pixel value by this after loading, to put image stacks on [0, 1] as SPEC §2.3
    /// does for natural images (255 for 8-bit images, 16 for the 8×8 digits). Default: no scaling.
    #[arg(long)]
    pub pixel_max: Option<f64>,
    /// Per-image scaling after loading (not in SPEC; default none): `max` divides each image by
    /// its maximum, as `darlc run --image-scale` does.
    #[arg(long, value_enum, default_value_t = crate::config::ImageScale::None)]
    pub image_scale: crate::config::ImageScale,
    /// Denoiser for the positive views: the GAT autoencoder (SPEC §3) or Gaussian kernel
    /// smoothing (§15).
    #[arg(long, value_enum, default_value_t = crate::augment::smooth::Method::Gat)]
    pub smoothing: crate::augment::smooth::Method,
    /// Per-image scaling of the smoothed positive views (not in SPEC; default none): `max` puts
    /// each on a maximum of 1, as `darlc run --view-scale` does.
    #[arg(long, value_enum, default_value_t = crate::config::ImageScale::None)]
    pub view_scale: crate::config::ImageScale,
    /// GAT training epochs (SPEC §3.4).
    #[arg(long, default_value_t = 1000)]
    pub gat_epochs: usize,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Run `f` with `threads` rayon workers: the global pool is configured on first use (so `f` runs
/// on the calling thread), otherwise a dedicated pool is installed. `None` keeps the default.
pub fn with_threads<R: Send>(threads: Option<usize>, f: impl FnOnce() -> R + Send) -> Result<R> {
    match threads {
        None => Ok(f()),
        Some(0) => Err(DarlcError::param("--threads", "must be at least 1")),
        Some(n) => {
            if rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global()
                .is_ok()
                || rayon::current_num_threads() == n
            {
                return Ok(f());
            }
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| DarlcError::param("--threads", e.to_string()))?;
            Ok(pool.install(f))
        }
    }
}

/// Parse `HxW`.
fn parse_shape(s: &str) -> Result<(usize, usize)> {
    let bad = || DarlcError::param("--image-shape", format!("expected HxW, got {s:?}"));
    let (h, w) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    Ok((
        h.trim().parse().map_err(|_| bad())?,
        w.trim().parse().map_err(|_| bad())?,
    ))
}

/// The images to embed: any input `darlc::data::load` reads (a spatial section, a safetensors
/// stack, or a CSV stack with `--image-shape`), defaulting to the embedded section; `--sparsify`
/// masks pixels as in SPEC §2.3 (stream `data.sparsify`); `--pixel-max` rescales the values.
pub fn load_images(args: &EmbedArgs) -> Result<crate::data::ImageSet> {
    let path = crate::data::Input::or_embedded(args.input.as_deref())?;
    let image_shape = args.image_shape.as_deref().map(parse_shape).transpose()?;
    let opts = crate::data::LoadOptions {
        patch: args.patch,
        image_shape: image_shape.map(|(h, w)| (h, w, 1)),
        sparsify: (args.sparsify > 0.0).then_some(args.sparsify),
        seed: args.seed,
        ..crate::data::LoadOptions::default()
    };
    if let Some(m) = args.pixel_max
        && !(m.is_finite() && m > 0.0)
    {
        return Err(DarlcError::param(
            "--pixel-max",
            format!("must be a positive number, got {m}"),
        ));
    }
    let mut set = crate::data::load(&path, &opts)?;
    if let Some(m) = args.pixel_max {
        set.images.mapv_inplace(|v| (v as f64 / m) as f32);
    }
    crate::data::scale_images(&mut set.images, args.image_scale);
    Ok(set)
}

/// Write `embeddings.safetensors` (`h` [N, D]), `embeddings.csv` (`gene,h0,…`) and
/// `model.safetensors` (every parameter by dotted name, targets included).
pub fn write_outputs(
    out: &Path,
    ids: &[String],
    h: &ndarray::Array2<f32>,
    model: &ModuleI<f32>,
    cfg_json: &str,
) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| DarlcError::io(out, e))?;
    let mut tf = TensorFile::new();
    tf.insert_float("h", h.clone().into_dyn());
    tf.metadata.insert("config".into(), cfg_json.to_string());
    tf.save(&out.join("embeddings.safetensors"))?;
    let mut csv = String::from("gene");
    for k in 0..h.dim().1 {
        csv.push_str(&format!(",h{k}"));
    }
    csv.push('\n');
    for (id, row) in ids.iter().zip(h.outer_iter()) {
        csv.push_str(id);
        for v in row {
            csv.push_str(&format!(",{v:e}"));
        }
        csv.push('\n');
    }
    crate::io::atomic_write(&out.join("embeddings.csv"), csv.as_bytes())?;
    let mut mf = TensorFile::new();
    for (n, a) in model.named_tensors() {
        mf.insert_float(n, a);
    }
    mf.metadata.insert("config".into(), cfg_json.to_string());
    mf.save(&out.join("model.safetensors"))
}

/// `darlc embed`: load → smooth (GAT, SPEC §3; or GKS) → warm-up (SPEC §4.5) → write outputs.
pub fn embed(args: EmbedArgs) -> Result<()> {
    crate::memory::retain_freed_memory();
    let threads = args.threads;
    with_threads(threads, move || embed_inner(&args))?
}

fn embed_inner(args: &EmbedArgs) -> Result<()> {
    let set = load_images(args)?;
    let (n, c, h, w) = set.images.dim();
    if n < 2 {
        return Err(DarlcError::Data(format!("need at least 2 images, got {n}")));
    }
    let gat_cfg = crate::augment::gat::GatConfig {
        epochs: args.gat_epochs,
        seed: args.seed,
        progress: !args.quiet,
        ..crate::augment::gat::GatConfig::default()
    };
    let mut xs = crate::augment::smooth::smooth_image_set(&set, args.smoothing, &gat_cfg)?.images;
    crate::data::scale_images(&mut xs, args.view_scale);
    let (x, ids) = (set.images, set.ids);
    let mut cfg = Config::paper(c, h, w);
    cfg.patch = args.patch;
    let mut model = ModuleI::<f32>::new(cfg.clone(), args.seed)?;
    // Written into a staging folder beside --out and swapped in whole (issue 24).
    let folder = crate::pipeline::outdir::OutputFolder::create(&args.out, false)?;
    let opts = WarmupOptions {
        epochs: args.epochs,
        batch: args.batch,
        lr: 1e-3,
        seed: args.seed,
        progress: !args.quiet,
        log: Some(folder.path().join("warmup.jsonl")),
    };
    warmup(&mut model, x.view(), xs.view(), &opts, |_| Ok(()))?;
    let hrep = model.embed(x.view(), 256);
    let cfg_json = serde_json::to_string(&cfg).unwrap_or_default();
    write_outputs(folder.path(), &ids, &hrep, &model, &cfg_json)?;
    folder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(input: PathBuf, pixel_max: Option<f64>) -> EmbedArgs {
        EmbedArgs {
            input: Some(input),
            out: PathBuf::from("unused"),
            epochs: 1,
            batch: 2,
            seed: 0,
            threads: None,
            patch: 2,
            image_shape: Some("2x2".into()),
            sparsify: 0.0,
            pixel_max,
            image_scale: crate::config::ImageScale::None,
            view_scale: crate::config::ImageScale::None,
            smoothing: crate::augment::smooth::Method::Gks,
            gat_epochs: 1,
            quiet: true,
        }
    }

    #[test]
    fn pixel_max_divides_every_value_and_rejects_non_positive() {
        let dir = std::env::temp_dir().join(format!("darlc-embed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stack.csv");
        // Two 2×2 images in the digits layout `label,p0_0,p0_1,p1_0,p1_1`.
        std::fs::write(&path, "label,p0_0,p0_1,p1_0,p1_1\n3,0,4,8,16\n7,16,2,0,1\n").unwrap();
        let raw = load_images(&args(path.clone(), None)).unwrap().images;
        let scaled = load_images(&args(path.clone(), Some(16.0))).unwrap().images;
        // 0/16, 4/16, 8/16, 16/16, 16/16, 2/16, 0/16, 1/16 (hand computation; exact in f32).
        let want = [0.0, 0.25, 0.5, 1.0, 1.0, 0.125, 0.0, 0.0625];
        assert_eq!(scaled.iter().copied().collect::<Vec<f32>>(), want);
        assert_eq!(raw.mapv(|v| v / 16.0), scaled);
        for bad in [0.0, -1.0, f64::NAN] {
            let e = load_images(&args(path.clone(), Some(bad))).unwrap_err();
            assert!(e.to_string().contains("--pixel-max"), "{e}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
