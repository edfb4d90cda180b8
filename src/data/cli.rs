//! `darlc images` and `darlc simulate`: argument structs and run functions (the binary only
//! dispatches here).

use super::simulate::{SimConfig, simulate};
use super::{CoordMode, ImageSet, LoadOptions, default_input, load};
use crate::error::{DarlcError, Result};
#[cfg(doc)]
use crate::io::TensorFile;
use crate::io::{atomic_write, atomic_write_with, write_json};
use std::path::{Path, PathBuf};

/// `HxW` or `HxWxC`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageShape(pub usize, pub usize, pub usize);

fn parse_shape(s: &str) -> std::result::Result<ImageShape, String> {
    let parts: Vec<&str> = s.split(['x', 'X']).collect();
    let nums: Vec<usize> = parts
        .iter()
        .map(|p| p.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| format!("`{s}` is not HxW or HxWxC (e.g. 8x8, 32x32x3)"))?;
    match *nums.as_slice() {
        [h, w] if h > 0 && w > 0 => Ok(ImageShape(h, w, 1)),
        [h, w, c] if h > 0 && w > 0 && c > 0 => Ok(ImageShape(h, w, c)),
        _ => Err(format!("`{s}` is not HxW or HxWxC with positive sizes")),
    }
}

/// Input selection and SPEC §2 options shared by every command that reads data.
#[derive(clap::Args, Clone, Debug)]
pub struct LoadArgs {
    /// Input: a Space Ranger outs/ folder, a flat 10x/ST/cell folder, a dense counts or MSI table,
    /// or an image stack (.safetensors, CSV `label,pixel…`). Default: the embedded mouse olfactory
    /// bulb ST section (fixtures/mob_st_rep11).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Patch side: images are padded to multiples of it (SPEC §2.2).
    #[arg(long, default_value_t = 5)]
    pub patch: usize,
    /// Image shape of a CSV image stack, HxW or HxWxC.
    #[arg(long, value_parser = parse_shape)]
    pub image_shape: Option<ImageShape>,
    /// Zero this fraction of pixels per image of an image stack (SPEC §2.3), e.g. 0.9.
    #[arg(long)]
    pub sparsify: Option<f64>,
    /// Keep genes expressed in at least this many spots (SPEC §2.1).
    #[arg(long, default_value_t = 10)]
    pub min_spots: usize,
    /// Canvas: a minimum side (SPEC §2.2's 75 when not given; `darlc run` takes the preset's,
    /// 75 in `paper`) or `tissue` (the tissue's bounding box padded to the patch, as in `darlc
    /// run`'s recommended preset).
    #[arg(long, value_parser = crate::config::CanvasRule::parse)]
    pub canvas: Option<crate::config::CanvasRule>,
    /// Section to use from a multi-section spot table (its `section` column).
    #[arg(long)]
    pub section: Option<String>,
    /// Free coordinates: round to the integer lattice, or bin onto a grid.
    #[arg(long, value_enum, default_value_t = CoordMode::Auto)]
    pub coords: CoordMode,
    /// Bin side in input units for `--coords bin` (default: see the docs of the bin rule).
    #[arg(long)]
    pub bin_size: Option<f64>,
}

impl LoadArgs {
    /// The input path, defaulting to [`default_input`].
    pub fn input(&self) -> PathBuf {
        self.input.clone().unwrap_or_else(default_input)
    }
    /// The [`LoadOptions`] these flags describe; `seed` is the run's seed.
    pub fn options(&self, seed: u64) -> LoadOptions {
        LoadOptions {
            patch: self.patch,
            image_shape: self.image_shape.map(|s| (s.0, s.1, s.2)),
            sparsify: self.sparsify,
            seed,
            min_spots: self.min_spots,
            canvas: self.canvas.map_or(75, crate::config::CanvasRule::min_side),
            section: self.section.clone(),
            coords: self.coords,
            bin_size: self.bin_size,
        }
    }
}

/// `darlc images`: preprocess and rasterise an input, write the images.
#[derive(clap::Args, Clone, Debug)]
pub struct ImagesArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// Output folder (images.safetensors, genes.csv, spots.csv, report.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the named random streams (only `--sparsify` draws).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `darlc simulate`: write a synthetic Visium section with known patterns.
#[derive(clap::Args, Clone, Debug)]
pub struct SimulateArgs {
    /// Output folder (outs/…, truth.csv, simulate.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of genes.
    #[arg(long, default_value_t = 15_000)]
    pub genes: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fraction of pure-noise genes.
    #[arg(long, default_value_t = 0.3)]
    pub noise_fraction: f64,
    /// Probability that a non-zero count is dropped.
    #[arg(long, default_value_t = 0.1)]
    pub dropout: f64,
}

fn csv_bytes(rows: impl FnOnce(&mut csv::Writer<Vec<u8>>) -> csv::Result<()>) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    rows(&mut w).map_err(|e| DarlcError::Data(format!("csv: {e}")))?;
    w.into_inner()
        .map_err(|e| DarlcError::Data(format!("csv: {e}")))
}

/// Write `images` (`[N,C,H,W]` f32) and `mask` (`[H,W]` u8) as a safetensors file, streaming the
/// image bytes (no second copy of the images in memory). Metadata follows [`TensorFile`]'s
/// convention (one `darlc` key holding a JSON object), so [`TensorFile::load`] reads it back.
pub fn write_images_safetensors(path: &Path, set: &ImageSet) -> Result<()> {
    let (n, c, h, w) = set.images.dim();
    let img_bytes = n * c * h * w * 4;
    let mut meta = std::collections::BTreeMap::new();
    meta.insert("kind", set.report.kind.clone());
    let meta = serde_json::to_string(&meta).map_err(|e| DarlcError::Data(e.to_string()))?;
    let header = serde_json::json!({
        "__metadata__": { "darlc": meta },
        "images": { "dtype": "F32", "shape": [n, c, h, w], "data_offsets": [0, img_bytes] },
        "mask": { "dtype": "U8", "shape": [h, w], "data_offsets": [img_bytes, img_bytes + h * w] },
    });
    let mut header = serde_json::to_string(&header).map_err(|e| DarlcError::Data(e.to_string()))?;
    while (8 + header.len()) % 8 != 0 {
        header.push(' ');
    }
    let images = set.images.as_standard_layout();
    let mask = set.mask.as_standard_layout();
    atomic_write_with(path, |wr| {
        wr.write_all(&(header.len() as u64).to_le_bytes())?;
        wr.write_all(header.as_bytes())?;
        let mut buf = Vec::with_capacity(1 << 16);
        for chunk in images.as_slice().unwrap_or(&[]).chunks(1 << 14) {
            buf.clear();
            for v in chunk {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            wr.write_all(&buf)?;
        }
        wr.write_all(mask.as_slice().unwrap_or(&[]))
    })
}

/// Write `images.safetensors` (`images` `[N,C,H,W]` f32, `mask` `[H,W]` u8), `genes.csv`
/// (`index,gene_id,symbol[,label]`), `spots.csv` (sections only: `spot_id,pixel_row,pixel_col,
/// coord_0,coord_1`) and `report.json` into `out`. Returns the files written.
pub fn write_outputs(set: &ImageSet, out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|e| DarlcError::io(out, e))?;
    let mut files = vec![];
    let p = out.join("images.safetensors");
    write_images_safetensors(&p, set)?;
    files.push(p);

    let genes = csv_bytes(|w| {
        let mut hdr = vec!["index", "gene_id", "symbol"];
        if set.labels.is_some() {
            hdr.push("label");
        }
        w.write_record(&hdr)?;
        for (i, (id, sym)) in set.ids.iter().zip(&set.symbols).enumerate() {
            let mut rec = vec![i.to_string(), id.clone(), sym.clone()];
            if let Some(l) = &set.labels {
                rec.push(l[i].clone());
            }
            w.write_record(&rec)?;
        }
        Ok(())
    })?;
    let p = out.join("genes.csv");
    atomic_write(&p, &genes)?;
    files.push(p);

    if let Some(sec) = &set.section {
        let spots = csv_bytes(|w| {
            w.write_record(["spot_id", "pixel_row", "pixel_col", "coord_0", "coord_1"])?;
            for (k, id) in sec.spot_ids.iter().enumerate() {
                let (r, c) = sec.pixel[k];
                let q = sec.coords[k];
                w.write_record([
                    id.clone(),
                    r.to_string(),
                    c.to_string(),
                    q[0].to_string(),
                    q[1].to_string(),
                ])?;
            }
            Ok(())
        })?;
        let p = out.join("spots.csv");
        atomic_write(&p, &spots)?;
        files.push(p);
    }
    let p = out.join("report.json");
    write_json(&p, &set.report)?;
    files.push(p);
    Ok(files)
}

/// A few lines describing what loading did (printed by `darlc images`).
pub fn summary(set: &ImageSet) -> String {
    let r = &set.report;
    let mut s = format!("input: {} ({})\n", r.input, r.kind);
    if let Some(g) = &r.genes {
        s += &format!(
            "genes: {} in; dropped {} not \"Gene Expression\", {} MT-, {} ERCC-, {} in < {} spots; kept {}\n",
            g.genes_in,
            g.dropped_not_gene_expression,
            g.dropped_mt,
            g.dropped_ercc,
            g.dropped_min_spots,
            g.min_spots,
            g.genes_kept
        );
        s += &format!(
            "library size median (normalize_total target): {}; spots with zero library: {}\n",
            g.library_median, g.spots_zero_library
        );
    }
    if let Some(sec) = &set.section {
        s += &format!(
            "spots: {} (of {} matrix columns), lattice {:?}",
            sec.spot_ids.len(),
            r.items_in,
            sec.lattice
        );
        if let Some(x) = &r.section_selected {
            s += &format!(", section {x}");
        }
        s += "\n";
    }
    if let Some(b) = &r.binning {
        s += &format!(
            "binning: {} points into {} bins of side {} (at most {} per bin)\n",
            b.points, b.bins, b.bin_size, b.max_points_per_bin
        );
    }
    if let Some(m) = r.tic_median {
        s += &format!("TIC median: {m}\n");
    }
    if let Some(c) = &r.canvas {
        s += &format!(
            "canvas: tissue {}×{} at offset ({}, {}), padded to {}×{}\n",
            c.h0, c.w0, c.oy, c.ox, c.height, c.width
        );
    }
    s += &format!(
        "images: {} × {} × {} × {}; non-zero over tissue pixels {:.4} (sparsity {:.4})\n",
        r.images,
        r.channels,
        r.height,
        r.width,
        r.nonzero_fraction,
        1.0 - r.nonzero_fraction
    );
    if let Some(f) = r.sparsify {
        s += &format!("sparsified: {f} of the pixels of each image zeroed\n");
    }
    s
}

/// Run `darlc images`.
pub fn run_images(args: ImagesArgs) -> Result<()> {
    let input = args.load.input();
    let set = load(&input, &args.load.options(args.seed))?;
    let files = write_outputs(&set, &args.out)?;
    print!("{}", summary(&set));
    println!(
        "wrote: {}",
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// Run `darlc simulate`.
pub fn run_simulate(args: SimulateArgs) -> Result<()> {
    let cfg = SimConfig {
        n_genes: args.genes,
        seed: args.seed,
        noise_fraction: args.noise_fraction,
        dropout: args.dropout,
        ..SimConfig::default()
    };
    let s = simulate(&args.out, &cfg)?;
    println!(
        "simulated {} genes × {} in-tissue spots (of {}), {} non-zeros, {} counts",
        s.n_genes, s.spots_in_tissue, s.spots_total, s.nnz, s.total_counts
    );
    println!(
        "patterns: {}",
        s.patterns
            .iter()
            .map(|(p, n)| format!("{p} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("wrote: {}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse() {
        assert_eq!(parse_shape("8x8"), Ok(ImageShape(8, 8, 1)));
        assert_eq!(parse_shape("32x32x3"), Ok(ImageShape(32, 32, 3)));
        assert!(parse_shape("8").is_err());
        assert!(parse_shape("0x8").is_err());
        assert!(parse_shape("axb").is_err());
    }
}
