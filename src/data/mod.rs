//! Everything before the first image: readers, preprocessing, rasterisation, simulation (method §2).
//!
//! [`load`] sniffs what a path holds and returns an [`ImageSet`]:
//!
//! | input | recognised by | result |
//! |---|---|---|
//! | Space Ranger `outs/` (or its parent) | `filtered_feature_bc_matrix/` folder | Visium hex section |
//! | flat 10x folder (`../shared/data/dlpfc_*`) | `matrix.mtx[.gz]` + `tissue_positions[_list].csv` | Visium hex section |
//! | legacy ST folder (`mob_st_rep11`) | matrix + `spots.csv` with `x`,`y`, or `XxY` barcodes | square lattice |
//! | cell-level folder (`osmfish_sscortex`) | matrix + `cells.csv` (id column `cell_id`) | bins on a square grid |
//! | dense counts CSV/TSV | spot names `XxY` in the first column or the header | square lattice |
//! | MSI table CSV/TSV | header with `x` and `y` columns, other columns m/z | square lattice, TIC |
//! | image stack | `.safetensors` `[N,C,H,W]`, or CSV `label,pixel…` | images, no section |
//!
//! Spatial inputs are preprocessed per method §2.1 (MSI per §2.3) and rasterised per §2.2. The
//! coordinate rules per lattice are in [`raster`]; the bin rule for cell-level data is
//! [`raster::bin_points`].

pub mod mtx;
pub mod output;
pub mod preprocess;
pub mod raster;
pub mod simulate;
pub mod tables;
pub mod tenx_h5;

mod msi;
mod st;
mod stack;

use crate::error::{DarlcError, Result};
use crate::io::source;
use ndarray::{Array2, Array4, ArrayView2};
use serde::Serialize;
use std::path::{Path, PathBuf};

pub use preprocess::GeneFilterReport;
pub use raster::Canvas;

/// The lattice the spots of a section lie on; it decides the graph of method §3.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Lattice {
    /// Visium hexagonal array: radius 1.1 in spot pitches.
    Hex,
    /// Square grid (legacy ST, MSI): radius 1.5 (8-neighbourhood).
    Square,
    /// Free coordinates (binned cells, re-centred ST): symmetrised kNN, k = 6.
    Arbitrary,
}

/// A tissue section as spots × genes: the GAT's input (method §3.1: nodes = spots, channels = genes).
#[derive(Clone, Debug)]
pub struct Section {
    /// `[n_spots, G]` preprocessed values (after §2.1 filter/normalise/log1p, or §2.3 TIC), same
    /// gene order as the images.
    pub expr: Array2<f32>,
    /// Graph coordinates per method §3.2: Visium `(array_col/2, array_row·√3/2)`; square lattice
    /// `(row, col)` of the lattice point; arbitrary: the raw `(x, y)` (for bins: the mean of the
    /// binned points).
    pub coords: Vec<[f64; 2]>,
    pub lattice: Lattice,
    /// `(row, col)` of each spot on the image canvas.
    pub pixel: Vec<(usize, usize)>,
    /// Spot ids (barcodes, `XxY` names, `bin_r<row>_c<col>` for bins, `px_<x>_<y>` for MSI).
    /// Every spot of a section is in the tissue: the readers drop the others (Visium
    /// `in_tissue` 0, spot-table rows with `in_tissue` 0, MSI pixels with zero TIC).
    pub spot_ids: Vec<String>,
    /// `(array_row, array_col)` per spot. Visium: the positions table's array position, as Space
    /// Ranger and scanpy give it. Other inputs: the integer lattice point the spot is placed on,
    /// `(row, col)` with minima 0 (legacy ST and MSI: rounded `(y, x)`; bins: the bin's row and
    /// column), i.e. `pixel` without the canvas offset.
    pub array: Vec<[i64; 2]>,
    /// Visium only: `(pxl_row_in_fullres, pxl_col_in_fullres)` per spot, the spot centre in pixels
    /// of the full-resolution tissue image (columns 5–6 of `tissue_positions.csv`); multiply by
    /// `scalefactors_json.json`'s `tissue_lowres_scalef` for `tissue_lowres_image.png`. `None`
    /// for other inputs and for positions tables without these columns.
    pub fullres_pixel: Option<Vec<[f64; 2]>>,
}

/// The images to cluster, with everything known about them.
#[derive(Clone, Debug)]
pub struct ImageSet {
    /// `[N, C, H, W]` raw images, H and W multiples of the patch size.
    pub images: Array4<f32>,
    /// `[H, W]` tissue mask (1 = tissue).
    pub mask: Array2<u8>,
    /// Per image: gene id (ST), m/z label (MSI) or image index.
    pub ids: Vec<String>,
    /// Per image: gene symbol (ST) or the same as `ids`.
    pub symbols: Vec<String>,
    /// Ground truth per image where known (digit label, simulation pattern).
    pub labels: Option<Vec<String>>,
    /// Some for ST / MSI / cell inputs.
    pub section: Option<Section>,
    pub report: PreprocessReport,
}

/// How binning was done (cell-level / free coordinates).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BinReport {
    pub bin_size: f64,
    pub points: usize,
    pub bins: usize,
    pub max_points_per_bin: usize,
}

/// What loading did: input kind, genes kept/dropped per rule, spots, canvas, sparsity.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PreprocessReport {
    pub input: String,
    /// `visium`, `legacy-st`, `cells-binned`, `dense-st`, `msi`, `image-stack`.
    pub kind: String,
    /// Files read, in order.
    pub files: Vec<String>,
    pub genes: Option<GeneFilterReport>,
    /// Matrix columns (barcodes / cells / pixels / images) in the input.
    pub items_in: usize,
    /// Spots (nodes) of the section after the tissue / section selection (bins when binned).
    pub spots: usize,
    pub section_selected: Option<String>,
    pub binning: Option<BinReport>,
    pub canvas: Option<Canvas>,
    pub tic_median: Option<f64>,
    pub images: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Fraction of non-zero values over the tissue pixels of all images.
    pub nonzero_fraction: f64,
    pub sparsify: Option<f64>,
}

/// How to treat spot coordinates that are not a Visium array.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CoordMode {
    /// Cell tables are binned; spot tables and `XxY` names are rounded to the integer lattice.
    #[default]
    Auto,
    /// Round to the nearest integer lattice point (method §2.2 legacy ST); a collision is an error.
    Lattice,
    /// Bin onto a square grid (side --bin-size); the points in one bin are summed.
    Bin,
}

/// Options of [`load`].
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Patch side p: H and W are padded to multiples of it (method §2.2). Default 5.
    pub patch: usize,
    /// `(H, W, C)` of image-stack rows (CSV) or the expected shape (safetensors).
    pub image_shape: Option<(usize, usize, usize)>,
    /// Fraction of pixels zeroed per image in image stacks (method §2.3), stream `data.sparsify`.
    pub sparsify: Option<f64>,
    pub seed: u64,
    /// Gene filter of method §2.1: keep genes expressed in at least this many spots. Default 10.
    pub min_spots: usize,
    /// Minimum canvas side (method §2.2). Default 75; 0 fits the canvas to the tissue (padded to
    /// the patch; [`crate::config::CanvasRule::Tissue`]). Binning free coordinates then still
    /// aims at 75 bins.
    pub canvas: usize,
    /// Which section of a multi-section spot table (its `section` column) to use.
    pub section: Option<String>,
    pub coords: CoordMode,
    /// Bin side for [`CoordMode::Bin`], in input units; default from [`raster::bin_points`].
    pub bin_size: Option<f64>,
    /// Divide every pixel value by this after loading (and after `sparsify`), to put an image
    /// stack on [0, 1] as method §2.3 does for natural images (255 for 8-bit images, 16 for the
    /// 8×8 digits). `None`: no scaling.
    pub pixel_max: Option<f64>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            patch: 5,
            image_shape: None,
            sparsify: None,
            seed: 0,
            min_spots: 10,
            canvas: 75,
            section: None,
            coords: CoordMode::Auto,
            bin_size: None,
            pixel_max: None,
        }
    }
}

impl LoadOptions {
    fn validate(&self) -> Result<()> {
        if self.patch == 0 || self.patch > 1024 {
            return Err(DarlcError::param(
                "patch",
                format!("{} must be in 1..=1024", self.patch),
            ));
        }
        if self.canvas > 100_000 {
            return Err(DarlcError::param(
                "canvas",
                format!("{} is too large", self.canvas),
            ));
        }
        if let Some(f) = self.sparsify
            && !(0.0..1.0).contains(&f)
        {
            return Err(DarlcError::param(
                "sparsify",
                format!("{f} must be in [0, 1)"),
            ));
        }
        if let Some((h, w, c)) = self.image_shape
            && (h == 0 || w == 0 || c == 0)
        {
            return Err(DarlcError::param(
                "image-shape",
                "every dimension must be ≥ 1",
            ));
        }
        if let Some(m) = self.pixel_max
            && !(m.is_finite() && m > 0.0)
        {
            return Err(DarlcError::param(
                "--pixel-max",
                format!("must be a positive number, got {m}"),
            ));
        }
        Ok(())
    }
}

/// The default data set in the source tree: the mouse olfactory bulb ST section (Ståhl 2016,
/// replicate 11) under `fixtures/mob_st_rep11` (for tests and examples, which run in the tree).
/// The commands use the copy compiled into the binary, [`Input::embedded`].
pub fn default_input() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join("mob_st_rep11")
}

/// How the embedded section is named in reports (`report.json`, `run.json`) and messages.
pub const EMBEDDED_NAME: &str = "embedded:mob_st_rep11";

/// The files of `fixtures/mob_st_rep11`, compiled into the binary (about 5 MB) so that
/// `darlc run --out X` works from a binary copied to another machine or installed with
/// `cargo install` (issue 24), where the source tree is absent.
const EMBEDDED_FILES: &[(&str, &[u8])] = &[
    (
        "matrix.mtx.gz",
        include_bytes!("../../fixtures/mob_st_rep11/matrix.mtx.gz"),
    ),
    (
        "features.tsv.gz",
        include_bytes!("../../fixtures/mob_st_rep11/features.tsv.gz"),
    ),
    (
        "barcodes.tsv.gz",
        include_bytes!("../../fixtures/mob_st_rep11/barcodes.tsv.gz"),
    ),
    (
        "spots.csv",
        include_bytes!("../../fixtures/mob_st_rep11/spots.csv"),
    ),
    (
        "README.md",
        include_bytes!("../../fixtures/mob_st_rep11/README.md"),
    ),
];

/// Folders holding an unpacked embedded section right now (see [`input_name`]).
static EMBEDDED_DIRS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// The input of a command: a path the user gave, or the embedded section unpacked into a fresh
/// temporary folder that is removed when the `Input` is dropped (the readers work on files).
/// Dereferences to the path.
#[derive(Debug)]
pub struct Input {
    path: PathBuf,
    /// The temporary folder to remove (embedded input only).
    temp: Option<PathBuf>,
}

impl Input {
    /// A path given by the user.
    pub fn given(path: impl Into<PathBuf>) -> Input {
        Input {
            path: path.into(),
            temp: None,
        }
    }

    /// `path`, or the embedded section when `None`.
    pub fn or_embedded(path: Option<&Path>) -> Result<Input> {
        match path {
            Some(p) => Ok(Input::given(p)),
            None => Input::embedded(),
        }
    }

    /// The embedded section, unpacked into `<temp>/darlc-embedded-<pid>-<n>/mob_st_rep11`.
    pub fn embedded() -> Result<Input> {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp = std::env::temp_dir().join(format!("darlc-embedded-{}-{n}", std::process::id()));
        let dir = temp.join("mob_st_rep11");
        let unpack = || -> Result<()> {
            let _ = std::fs::remove_dir_all(&temp);
            std::fs::create_dir_all(&dir).map_err(|e| DarlcError::io(&dir, e))?;
            for (name, bytes) in EMBEDDED_FILES {
                let p = dir.join(name);
                std::fs::write(&p, bytes).map_err(|e| DarlcError::io(&p, e))?;
            }
            Ok(())
        };
        if let Err(e) = unpack() {
            let _ = std::fs::remove_dir_all(&temp);
            return Err(e);
        }
        if let Ok(mut v) = EMBEDDED_DIRS.lock() {
            v.push(dir.clone());
        }
        Ok(Input {
            path: dir,
            temp: Some(temp),
        })
    }

    /// The path the readers open.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::ops::Deref for Input {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl Drop for Input {
    fn drop(&mut self) {
        if let Some(t) = &self.temp {
            if let Ok(mut v) = EMBEDDED_DIRS.lock() {
                v.retain(|d| d != &self.path);
            }
            let _ = std::fs::remove_dir_all(t);
        }
    }
}

/// How an input path is named in reports: [`EMBEDDED_NAME`] (plus the file's name inside it)
/// for the unpacked embedded section, so that outputs never hold a temporary path; else the
/// path as given.
pub fn input_name(path: &Path) -> String {
    let dirs = EMBEDDED_DIRS.lock().map(|v| v.clone()).unwrap_or_default();
    for d in dirs {
        if let Ok(rest) = path.strip_prefix(&d) {
            return if rest.as_os_str().is_empty() {
                EMBEDDED_NAME.to_string()
            } else {
                format!("{EMBEDDED_NAME}/{}", rest.display())
            };
        }
    }
    path.display().to_string()
}

/// Load any supported input (see the module table), preprocess (method §2.1 / §2.3) and rasterise
/// (method §2.2) it. Bad input is an error naming the file and line or field.
pub fn load(input: &Path, opts: &LoadOptions) -> Result<ImageSet> {
    opts.validate()?;
    let kind = sniff(input)?;
    check_options(kind.clone(), opts)?;
    let mut set = match kind {
        Kind::Folder(dir) => st::load_dir(&dir, None, opts)?,
        Kind::TenxH5(h5) => {
            let dir = h5
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf();
            st::load_dir(&dir, Some(&h5), opts)?
        }
        Kind::Safetensors => stack::load_safetensors(input, opts)?,
        Kind::ImageCsv => stack::load_csv(input, opts)?,
        Kind::Msi => msi::load(input, opts)?,
        Kind::Dense => st::load_dense(input, opts)?,
    };
    if let Some(m) = opts.pixel_max {
        set.images.mapv_inplace(|v| (v as f64 / m) as f32);
    }
    set.report.input = input_name(input);
    for f in &mut set.report.files {
        *f = input_name(Path::new(f));
    }
    finish_report(&mut set);
    Ok(set)
}

/// What an input path holds, sniffed from the file system and the first line of a file.
#[derive(Clone, Debug)]
enum Kind {
    /// A count-matrix folder (10x, legacy ST, cells); a `.mtx[.gz]` path resolves to its folder.
    Folder(PathBuf),
    /// A 10x HDF5 count matrix (`filtered_feature_bc_matrix.h5`), sniffed from its signature; the
    /// positions are looked for beside it as in its folder.
    TenxH5(PathBuf),
    Safetensors,
    /// CSV whose header starts with `label`.
    ImageCsv,
    /// CSV/TSV whose header has `x` and `y`.
    Msi,
    /// Any other table: dense counts with `XxY` spot names.
    Dense,
}

fn sniff(input: &Path) -> Result<Kind> {
    let meta = std::fs::metadata(input).map_err(|e| DarlcError::io(input, e))?;
    if meta.is_dir() {
        return Ok(Kind::Folder(input.to_path_buf()));
    }
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if name.ends_with(".mtx") || name.ends_with(".mtx.gz") {
        let mut dir = input
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if dir.ends_with("filtered_feature_bc_matrix") || dir.ends_with("raw_feature_bc_matrix") {
            dir = dir.parent().unwrap_or(dir);
        }
        return Ok(Kind::Folder(dir.to_path_buf()));
    }
    if name.ends_with(".safetensors") {
        return Ok(Kind::Safetensors);
    }
    if crate::io::source::is_hdf5(input)? {
        return Ok(Kind::TenxH5(input.to_path_buf()));
    }
    let first =
        source::first_line(input)?.ok_or_else(|| DarlcError::format(input, None, "empty file"))?;
    let delim = source::sniff_delimiter(&first) as char;
    let fields: Vec<String> = first
        .split(delim)
        .map(|f| f.trim().trim_matches('"').to_lowercase())
        .collect();
    Ok(if fields.first().is_some_and(|f| f == "label") {
        Kind::ImageCsv
    } else if fields.iter().any(|f| f == "x") && fields.iter().any(|f| f == "y") {
        Kind::Msi
    } else {
        Kind::Dense
    })
}

/// Options that do not apply to the input are an error rather than silently ignored.
fn check_options(kind: Kind, opts: &LoadOptions) -> Result<()> {
    let stack = matches!(kind, Kind::Safetensors | Kind::ImageCsv);
    let unused = |name: &str, what: &str| {
        Err(DarlcError::param(
            name,
            format!("applies to {what} only, not to this input"),
        ))
    };
    if !stack && opts.sparsify.is_some() {
        return unused("sparsify", "image stacks");
    }
    if !stack && opts.image_shape.is_some() {
        return unused("image-shape", "image stacks");
    }
    let free = matches!(kind, Kind::Folder(_) | Kind::TenxH5(_) | Kind::Dense);
    if !free && opts.coords != CoordMode::Auto {
        return unused("coords", "spot or cell coordinates");
    }
    if !free && opts.bin_size.is_some() {
        return unused("bin-size", "spot or cell coordinates");
    }
    if !matches!(kind, Kind::Folder(_) | Kind::TenxH5(_)) && opts.section.is_some() {
        return unused("section", "spot tables with a `section` column");
    }
    Ok(())
}

/// Fill the shape and sparsity fields of the report.
fn finish_report(set: &mut ImageSet) {
    let (n, c, h, w) = set.images.dim();
    let r = &mut set.report;
    r.images = n;
    r.channels = c;
    r.height = h;
    r.width = w;
    let tissue: Vec<usize> = set
        .mask
        .iter()
        .enumerate()
        .filter(|(_, m)| **m != 0)
        .map(|(k, _)| k)
        .collect();
    let hw = h * w;
    let flat = set.images.as_slice();
    let mut nz = 0usize;
    if let Some(flat) = flat {
        for img in flat.chunks(hw.max(1)) {
            nz += tissue.iter().filter(|&&k| img[k] != 0.0).count();
        }
    }
    let total = n * c * tissue.len();
    r.nonzero_fraction = if total > 0 {
        nz as f64 / total as f64
    } else {
        0.0
    };
}

/// Apply a per-image scaling ([`crate::config::ImageScale`]) in place. `Max` divides every image
/// (all channels together) by its largest value; an image whose maximum is ≤ 0 is left as is.
/// Preprocessed values are non-negative, so `Max` maps each image onto [0, 1] with its maximum at 1.
/// `Standardize` uses the tissue pixels of `mask` (`[H, W]`) only and sets the others to 0.
pub fn scale_images(
    images: &mut Array4<f32>,
    mask: ArrayView2<u8>,
    scale: crate::config::ImageScale,
) {
    use crate::config::ImageScale;
    match scale {
        ImageScale::None => {}
        ImageScale::Standardize => {
            for mut img in images.outer_iter_mut() {
                // Mean and variance over the tissue pixels of every channel, in f64 and in
                // pixel order (deterministic).
                let (mut n, mut sum, mut sq) = (0usize, 0.0f64, 0.0f64);
                for ch in img.outer_iter() {
                    for (&v, &m) in ch.iter().zip(mask.iter()) {
                        if m != 0 {
                            n += 1;
                            sum += f64::from(v);
                        }
                    }
                }
                let mean = if n > 0 { sum / n as f64 } else { 0.0 };
                for ch in img.outer_iter() {
                    for (&v, &m) in ch.iter().zip(mask.iter()) {
                        if m != 0 {
                            sq += (f64::from(v) - mean).powi(2);
                        }
                    }
                }
                let sd = if n > 0 { (sq / n as f64).sqrt() } else { 0.0 };
                for mut ch in img.outer_iter_mut() {
                    for (v, &m) in ch.iter_mut().zip(mask.iter()) {
                        *v = if m != 0 && sd > 0.0 {
                            ((f64::from(*v) - mean) / sd) as f32
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
        ImageScale::Max => {
            for mut img in images.outer_iter_mut() {
                let m = img.fold(f32::NEG_INFINITY, |a, &v| a.max(v));
                if m > 0.0 {
                    img.mapv_inplace(|v| v / m);
                }
            }
        }
    }
}

#[cfg(test)]
mod scale_tests {
    use super::scale_images;
    use crate::config::ImageScale;
    use ndarray::{Array2, Array4};

    #[test]
    fn max_scaling_puts_each_image_on_unit_max_and_keeps_zeros() {
        // image 0: values {0, 2, 4, 1}; image 1: all zero; image 2: {0.5, 0, 0, 0.25}
        let mut x = Array4::from_shape_vec(
            (3, 1, 2, 2),
            vec![0.0, 2.0, 4.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.25],
        )
        .unwrap();
        let before = x.clone();
        let mask = Array2::<u8>::ones((2, 2));
        scale_images(&mut x, mask.view(), ImageScale::None);
        assert_eq!(x, before);
        scale_images(&mut x, mask.view(), ImageScale::Max);
        // 2/4, 4/4, 1/4 and 0.5/0.5, 0.25/0.5 — exact in binary floating point.
        assert_eq!(
            x.as_slice().unwrap(),
            &[0.0, 0.5, 1.0, 0.25, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.5]
        );
    }

    /// `Standardize` uses the tissue pixels only: with the last pixel outside the tissue, image 0
    /// {1, 3, 5 | 100} has mean 3 and population sd √(8/3) over its tissue, so it becomes
    /// {−√1.5, 0, √1.5 | 0}; a constant image (1) and an all-zero one (2) become 0.
    #[test]
    fn standardizing_uses_the_tissue_pixels_and_zeroes_the_rest() {
        let mut x = Array4::from_shape_vec(
            (3, 1, 2, 2),
            vec![1.0, 3.0, 5.0, 100.0, 2.0, 2.0, 2.0, 7.0, 0.0, 0.0, 0.0, 0.0],
        )
        .unwrap();
        let mask = Array2::from_shape_vec((2, 2), vec![1u8, 1, 1, 0]).unwrap();
        scale_images(&mut x, mask.view(), ImageScale::Standardize);
        let r = 1.5f64.sqrt() as f32;
        let want = [-r, 0.0, r, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        for (got, want) in x.iter().zip(want) {
            assert!((got - want).abs() <= 1e-6, "{got} against {want}");
        }
    }
}

#[cfg(test)]
mod pixel_max_tests {
    use super::{LoadOptions, load};
    use std::path::PathBuf;

    fn opts(pixel_max: Option<f64>) -> LoadOptions {
        LoadOptions {
            patch: 2,
            image_shape: Some((2, 2, 1)),
            pixel_max,
            ..LoadOptions::default()
        }
    }

    /// `--pixel-max` (until issue 26 a flag of `darlc embed` alone, now an input flag of every
    /// command that reads data).
    #[test]
    fn pixel_max_divides_every_value_and_rejects_non_positive() {
        let dir = std::env::temp_dir().join(format!("darlc-embed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path: PathBuf = dir.join("stack.csv");
        // Two 2×2 images in the digits layout `label,p0_0,p0_1,p1_0,p1_1`.
        std::fs::write(&path, "label,p0_0,p0_1,p1_0,p1_1\n3,0,4,8,16\n7,16,2,0,1\n").unwrap();
        let raw = load(&path, &opts(None)).unwrap().images;
        let scaled = load(&path, &opts(Some(16.0))).unwrap().images;
        // 0/16, 4/16, 8/16, 16/16, 16/16, 2/16, 0/16, 1/16 (hand computation; exact in f32).
        let want = [0.0, 0.25, 0.5, 1.0, 1.0, 0.125, 0.0, 0.0625];
        assert_eq!(scaled.iter().copied().collect::<Vec<f32>>(), want);
        assert_eq!(raw.mapv(|v| v / 16.0), scaled);
        for bad in [0.0, -1.0, f64::NAN] {
            let e = load(&path, &opts(Some(bad))).unwrap_err();
            assert!(e.to_string().contains("--pixel-max"), "{e}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
