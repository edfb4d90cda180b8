//! The pictures of a run (issue 25), built from one [`Module`] list so that they name the same
//! genes as `modules.csv`:
//!
//! * `clusters.png` (then `clusters-2.png`, … for more than [`ROWS_PER_PAGE`] clusters): one row
//!   per cluster, its number, size and SAM, its mean pattern, then its members highest confidence
//!   first, each tile named by its gene symbol; the tiles of a row share one colour scale (0 → the
//!   row's maximum, printed in the row), so a member's strength compares with its module's.
//! * `modules.png` (then `modules-2.png`, …): per cluster the **module score** over the tissue
//!   (per spot, the mean of the cluster's genes after scaling each gene to its maximum), with a
//!   colour bar, titled with the cluster's number, size and SAM. Spots sit at their lattice
//!   positions; where the input has Space Ranger's `spatial/` folder, over the low-resolution H&E
//!   image instead ([`HeBackground`]).

use super::summary::Module;
use crate::data::ImageSet;
use crate::error::{DarlcError, Result};
use crate::io::canvas::{BLACK, Canvas, Font, GREY, WHITE, read_png};
use ndarray::{Array2, ArrayView1, ArrayView2, Axis};
use std::path::{Path, PathBuf};

/// Clusters per page of `clusters.png`.
pub const ROWS_PER_PAGE: usize = 20;
/// Module maps per page of `modules.png` (4 columns).
pub const MAPS_PER_PAGE: usize = 24;
const MAP_COLUMNS: usize = 4;
/// Members shown after the mean pattern in a row of `clusters.png`.
pub const MEMBERS_SHOWN: usize = 6;
const PAD: usize = 8;
/// Width of the row label of `clusters.png`.
const LABEL_W: usize = 150;

/// `page` (0-based) of a paged picture: `clusters.png`, `clusters-2.png`, …
pub fn page_name(stem: &str, page: usize) -> String {
    if page == 0 {
        format!("{stem}.png")
    } else {
        format!("{stem}-{}.png", page + 1)
    }
}

/// Write `pages` as `stem.png`, `stem-2.png`, … into `out`; returns the files.
pub fn write_pages(out: &Path, stem: &str, pages: &[Canvas]) -> Result<Vec<PathBuf>> {
    pages
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let p = out.join(page_name(stem, i));
            c.save_png(&p)?;
            Ok(p)
        })
        .collect()
}

/// One channel of image `i` (`[H, W]`).
fn image(set: &ImageSet, i: usize) -> ArrayView2<'_, f32> {
    set.images
        .index_axis(Axis(0), i)
        .index_axis_move(Axis(0), 0)
}

fn max_of<'a>(v: impl IntoIterator<Item = &'a f32>) -> f32 {
    v.into_iter()
        .fold(0.0f32, |m, &x| if x.is_finite() { m.max(x) } else { m })
}

/// A value for a label: 3 significant digits.
pub fn short(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    if v.abs() < 1e-3 {
        return format!("{v:.2e}");
    }
    let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.digits$}")
}

/// "1 gene", "12 genes".
pub fn genes_label(n: usize) -> String {
    if n == 1 {
        "1 gene".into()
    } else {
        format!("{n} genes")
    }
}

/// Pixels per image pixel for tiles about `target` pixels across.
fn tile_scale(set: &ImageSet, target: usize) -> usize {
    let (h, w) = set.mask.dim();
    (target / h.max(w).max(1)).clamp(1, 12)
}

/// "SAM 0.523 (high)" or "SAM n/a".
fn sam_label(m: &Module) -> String {
    match (m.sam, m.quality) {
        (Some(s), Some(q)) => format!("SAM {} ({q})", short(s)),
        (Some(s), None) => format!("SAM {}", short(s)),
        _ => "SAM n/a".to_string(),
    }
}

/// The member montage of one cluster: its mean pattern, then up to `members` member genes,
/// each tile labelled (`mean`, then the gene symbols), on the row's shared colour scale.
/// Returns the picture and the scale's maximum.
pub fn montage(set: &ImageSet, m: &Module, members: usize) -> (Canvas, f32) {
    let (h, w) = set.mask.dim();
    let scale = tile_scale(set, 150);
    let (tw, th) = (w * scale, h * scale);
    let font = Font::SMALL;
    let mut mean = Array2::<f32>::zeros((h, w));
    for &i in &m.members {
        mean += &image(set, i);
    }
    mean /= m.size().max(1) as f32;
    let shown: Vec<usize> = m.members.iter().take(members).copied().collect();
    let vmax = shown
        .iter()
        .map(|&i| max_of(image(set, i)))
        .fold(max_of(&mean), f32::max);
    let cells = 1 + shown.len();
    let mut c = Canvas::new(
        cells * (tw + PAD) + PAD,
        PAD + th + 2 + font.line_height() + PAD,
        WHITE,
    );
    let tile = |c: &mut Canvas, k: usize, img: ArrayView2<f32>, label: &str| {
        let x = PAD + k * (tw + PAD);
        c.image(x, PAD, img, Some(set.mask.view()), scale, vmax);
        let label = font.fit(label, tw + PAD);
        c.text_centred(x + tw / 2, PAD + th + 2, &label, font, BLACK);
    };
    tile(&mut c, 0, mean.view(), "mean");
    for (k, &i) in shown.iter().enumerate() {
        tile(&mut c, k + 1, image(set, i), &set.symbols[i]);
    }
    (c, vmax)
}

/// `clusters.png` and its further pages: per cluster a row with its label (number, size, SAM,
/// the colour scale's maximum) and its [`montage`] (`montages[i]` for `modules[i]`).
pub fn clusters_pages(modules: &[Module], montages: &[(Canvas, f32)]) -> Vec<Canvas> {
    let pages = modules.len().div_ceil(ROWS_PER_PAGE).max(1);
    let mut out = Vec::with_capacity(pages);
    for (p, (chunk, rows)) in modules
        .chunks(ROWS_PER_PAGE)
        .zip(montages.chunks(ROWS_PER_PAGE))
        .enumerate()
    {
        let title = format!(
            "clusters {}-{} of {} (page {} of {}): mean pattern, then members by confidence",
            p * ROWS_PER_PAGE + 1,
            p * ROWS_PER_PAGE + chunk.len(),
            modules.len(),
            p + 1,
            pages
        );
        let legend = "each row on its own colour scale, 0 to its max";
        let head_h = PAD + Font::TITLE.line_height() + 2 + Font::SMALL.line_height() + PAD;
        let row_w = rows.iter().map(|r| r.0.width).max().unwrap_or(0);
        let width = (LABEL_W + row_w)
            .max(PAD * 2 + Font::TITLE.width_of(&title))
            .max(PAD * 3 + Font::SMALL.width_of(legend) + 120);
        let label_h = PAD + Font::TITLE.line_height() + 3 * Font::SMALL.line_height() + PAD;
        let heights: Vec<usize> = rows.iter().map(|r| r.0.height.max(label_h)).collect();
        let mut c = Canvas::new(width, head_h + heights.iter().sum::<usize>(), WHITE);
        c.text(PAD, PAD, &title, Font::TITLE, BLACK);
        let y = PAD + Font::TITLE.line_height() + 2;
        let lw = c.text(PAD, y, legend, Font::SMALL, GREY);
        c.colour_bar(2 * PAD + lw, y + 3, 100, 10, "", "");
        let mut y = head_h;
        for ((m, (row, vmax)), h) in chunk.iter().zip(rows).zip(&heights) {
            c.fill_rect(0, y, width, 1, GREY);
            let mut ty = y + PAD;
            c.text(
                PAD,
                ty,
                &format!("cluster {}", m.cluster),
                Font::TITLE,
                BLACK,
            );
            ty += Font::TITLE.line_height();
            for line in [
                genes_label(m.size()),
                sam_label(m),
                format!("max {}", short(*vmax as f64)),
            ] {
                c.text(
                    PAD,
                    ty,
                    &Font::SMALL.fit(&line, LABEL_W - PAD),
                    Font::SMALL,
                    BLACK,
                );
                ty += Font::SMALL.line_height();
            }
            c.paste(LABEL_W, y, row);
            y += h;
        }
        out.push(c);
    }
    out
}

/// Space Ranger's low-resolution H&E image and where each spot falls on it, for module maps over
/// the tissue (`spatial/tissue_lowres_image.png`, `spatial/scalefactors_json.json`).
#[derive(Clone, Debug)]
pub struct HeBackground {
    pub image: Canvas,
    /// Per spot `(x, y)` in low-resolution pixels (`pxl_col_in_fullres`, `pxl_row_in_fullres`
    /// times `tissue_lowres_scalef`).
    pub spots: Vec<[f64; 2]>,
    /// Spot radius in low-resolution pixels (`spot_diameter_fullres · tissue_lowres_scalef / 2`).
    pub radius: f64,
}

impl HeBackground {
    /// Read `dir/tissue_lowres_image.png` and `dir/scalefactors_json.json` and place the spots,
    /// whose full-resolution pixels are `fullres` (`[row, col]` per spot). `Ok(None)` when
    /// either file is absent; a malformed file is an error naming it.
    pub fn load(dir: &Path, fullres: &[[f64; 2]]) -> Result<Option<HeBackground>> {
        let img = dir.join("tissue_lowres_image.png");
        let sf = dir.join("scalefactors_json.json");
        if !img.is_file() || !sf.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&sf).map_err(|e| DarlcError::io(&sf, e))?;
        let j: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| DarlcError::format(&sf, Some(e.line()), format!("not JSON: {e}")))?;
        let num = |key: &str| {
            j.get(key)
                .and_then(|v| v.as_f64())
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| {
                    DarlcError::format(
                        &sf,
                        None,
                        format!("`{key}` is missing or not a positive number"),
                    )
                })
        };
        let scalef = num("tissue_lowres_scalef")?;
        let diameter = num("spot_diameter_fullres")?;
        let image = read_png(&img)?;
        let spots = fullres
            .iter()
            .map(|&[r, c]| [c * scalef, r * scalef])
            .collect();
        Ok(Some(HeBackground {
            image,
            spots,
            radius: (diameter * scalef / 2.0).max(1.0),
        }))
    }
}

/// The folder of Space Ranger's `spatial/` images of `set`: the folder of a positions file it
/// read that also holds `tissue_lowres_image.png`.
pub fn spatial_dir(set: &ImageSet) -> Option<PathBuf> {
    set.report
        .files
        .iter()
        .filter_map(|f| Path::new(f).parent())
        .find(|d| d.join("tissue_lowres_image.png").is_file())
        .map(Path::to_path_buf)
}

/// The H&E background of `set`'s module maps: `Ok(None)` without a `spatial/` image folder or
/// without full-resolution spot pixels (inputs other than Visium).
pub fn he_background(set: &ImageSet) -> Result<Option<HeBackground>> {
    let Some(fullres) = set.section.as_ref().and_then(|s| s.fullres_pixel.as_ref()) else {
        return Ok(None);
    };
    match spatial_dir(set) {
        Some(dir) => HeBackground::load(&dir, fullres),
        None => Ok(None),
    }
}

/// Height of a module map's picture (without title) for a map `map_h` high.
fn map_block_height(map_h: usize) -> usize {
    map_h + PAD + 10 + 1 + Font::SMALL.line_height()
}

/// The module-score map of one cluster: `score` per spot (`[spots]`), drawn at the spots' pixels
/// of the stored images (or over the H&E image), scaled to its maximum, with a colour bar.
pub fn module_map(set: &ImageSet, score: ArrayView1<f32>, he: Option<&HeBackground>) -> Canvas {
    const TARGET: usize = 240;
    let vmax = max_of(score.iter());
    let map = match (he, &set.section) {
        (Some(he), _) => he_map(he, score, vmax, TARGET),
        (None, Some(sec)) => {
            let mut img = Array2::<f32>::zeros(set.mask.dim());
            for (s, &(r, c)) in sec.pixel.iter().enumerate() {
                img[[r, c]] = score[s];
            }
            let (h, w) = img.dim();
            let scale = tile_scale(set, TARGET);
            let mut c = Canvas::new(w * scale, h * scale, WHITE);
            c.image(0, 0, img.view(), Some(set.mask.view()), scale, vmax);
            c
        }
        (None, None) => Canvas::new(TARGET, TARGET / 4, WHITE),
    };
    let width = map.width.max(160);
    let mut c = Canvas::new(width, map_block_height(map.height), WHITE);
    c.paste((width - map.width) / 2, 0, &map);
    c.colour_bar(
        0,
        map.height + PAD,
        width,
        10,
        "0",
        &format!("{} (max)", short(vmax as f64)),
    );
    c
}

/// Spots as discs over the H&E image, cut to the spots' box and scaled to about `target` pixels.
fn he_map(he: &HeBackground, score: ArrayView1<f32>, vmax: f32, target: usize) -> Canvas {
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for &[x, y] in &he.spots {
        x0 = x0.min(x);
        y0 = y0.min(y);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    let margin = 2.0 * he.radius;
    let bx = (x0 - margin).max(0.0).floor() as usize;
    let by = (y0 - margin).max(0.0).floor() as usize;
    let bw = ((x1 + margin).ceil() as usize).saturating_sub(bx).max(1);
    let bh = ((y1 + margin).ceil() as usize).saturating_sub(by).max(1);
    let f = (target as f64 / bw.max(bh) as f64).max(0.05);
    let mut c = he.image.crop(bx, by, bw, bh).resized(f);
    for (s, &[x, y]) in he.spots.iter().enumerate() {
        let v = if vmax > 0.0 { score[s] / vmax } else { 0.0 };
        c.disc(
            (x - bx as f64) * f,
            (y - by as f64) * f,
            he.radius * f,
            crate::io::picture::viridis(v as f64),
        );
    }
    c
}

/// `modules.png` and its further pages: per cluster (in [`MAP_COLUMNS`] columns) its title,
/// SAM, its first member symbols and its [`module_map`] (`maps[i]` for `modules[i]`).
pub fn modules_pages(set: &ImageSet, modules: &[Module], maps: &[Canvas]) -> Vec<Canvas> {
    let pages = modules.len().div_ceil(MAPS_PER_PAGE).max(1);
    let mut out = Vec::with_capacity(pages);
    for (p, (chunk, maps)) in modules
        .chunks(MAPS_PER_PAGE)
        .zip(maps.chunks(MAPS_PER_PAGE))
        .enumerate()
    {
        let cell_w = maps.iter().map(|m| m.width).max().unwrap_or(160).max(240);
        let text_h = Font::TITLE.line_height() + 2 * Font::SMALL.line_height() + 4;
        let cell_h = text_h + maps.iter().map(|m| m.height).max().unwrap_or(0) + PAD;
        let cols = MAP_COLUMNS.min(chunk.len()).max(1);
        let title = format!(
            "module scores, clusters {}-{} of {} (page {} of {})",
            p * MAPS_PER_PAGE + 1,
            p * MAPS_PER_PAGE + chunk.len(),
            modules.len(),
            p + 1,
            pages
        );
        let note = "per spot: mean of the cluster's genes, each scaled to its maximum";
        let head_h = PAD + Font::TITLE.line_height() + Font::SMALL.line_height() + PAD;
        let width = (cols * (cell_w + 2 * PAD) + PAD)
            .max(2 * PAD + Font::TITLE.width_of(&title))
            .max(2 * PAD + Font::SMALL.width_of(note));
        let rows = chunk.len().div_ceil(cols);
        let mut c = Canvas::new(width, head_h + rows * (cell_h + PAD), WHITE);
        c.text(PAD, PAD, &title, Font::TITLE, BLACK);
        c.text(
            PAD,
            PAD + Font::TITLE.line_height(),
            note,
            Font::SMALL,
            GREY,
        );
        for (k, (m, map)) in chunk.iter().zip(maps).enumerate() {
            let x = PAD + (k % cols) * (cell_w + 2 * PAD);
            let mut y = head_h + (k / cols) * (cell_h + PAD);
            let t = format!("cluster {} - {}", m.cluster, genes_label(m.size()));
            c.text(x, y, &Font::TITLE.fit(&t, cell_w), Font::TITLE, BLACK);
            y += Font::TITLE.line_height();
            c.text(x, y, &sam_label(m), Font::SMALL, BLACK);
            y += Font::SMALL.line_height();
            let genes: Vec<&str> = m.members.iter().map(|&i| set.symbols[i].as_str()).collect();
            c.text(
                x,
                y,
                &Font::SMALL.fit(&genes.join(" "), cell_w),
                Font::SMALL,
                GREY,
            );
            y += Font::SMALL.line_height() + 4;
            c.paste(x + (cell_w - map.width) / 2, y, map);
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::picture::viridis;

    #[test]
    fn page_names() {
        assert_eq!(page_name("clusters", 0), "clusters.png");
        assert_eq!(page_name("clusters", 1), "clusters-2.png");
    }

    #[test]
    fn short_keeps_three_significant_digits() {
        assert_eq!(short(0.52345), "0.523");
        assert_eq!(short(12.345), "12.3");
        assert_eq!(short(1234.5), "1234");
        assert_eq!(short(0.0), "0");
        assert_eq!(short(2.11e-8), "2.11e-8");
    }

    #[test]
    fn he_background_reads_scale_factors_and_names_a_bad_file() {
        let d = std::env::temp_dir().join(format!("darlc-he-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let fullres = [[100.0, 40.0]];
        assert!(
            HeBackground::load(&d, &fullres).unwrap().is_none(),
            "no images: none"
        );
        Canvas::new(60, 50, WHITE)
            .save_png(&d.join("tissue_lowres_image.png"))
            .unwrap();
        let sf = d.join("scalefactors_json.json");
        std::fs::write(
            &sf,
            r#"{"tissue_lowres_scalef": 0.25, "spot_diameter_fullres": 20}"#,
        )
        .unwrap();
        let he = HeBackground::load(&d, &fullres).unwrap().unwrap();
        assert_eq!((he.spots, he.radius), (vec![[10.0, 25.0]], 2.5));
        std::fs::write(
            &sf,
            r#"{"tissue_lowres_scalef": -1, "spot_diameter_fullres": 20}"#,
        )
        .unwrap();
        let e = HeBackground::load(&d, &fullres).unwrap_err().to_string();
        assert!(
            e.contains("scalefactors_json.json") && e.contains("tissue_lowres_scalef"),
            "{e}"
        );
        std::fs::write(&sf, "{").unwrap();
        let e = HeBackground::load(&d, &fullres).unwrap_err().to_string();
        assert!(e.contains("scalefactors_json.json"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn clusters_pages_hold_twenty_rows_each() {
        let modules: Vec<Module> = (0..45)
            .map(|j| Module {
                cluster: j,
                members: vec![j],
                sam: None,
                quality: None,
            })
            .collect();
        let montages: Vec<(Canvas, f32)> =
            (0..45).map(|_| (Canvas::new(50, 40, WHITE), 1.0)).collect();
        let pages = clusters_pages(&modules, &montages);
        assert_eq!(pages.len(), 3, "45 clusters: 20 + 20 + 5");
        assert!(pages[2].height < pages[0].height);
        let maps: Vec<Canvas> = (0..45).map(|_| Canvas::new(50, 40, WHITE)).collect();
        let set = ImageSet {
            images: ndarray::Array4::zeros((45, 1, 2, 2)),
            mask: Array2::ones((2, 2)),
            ids: (0..45).map(|i| format!("g{i}")).collect(),
            symbols: (0..45).map(|i| format!("G{i}")).collect(),
            labels: None,
            section: None,
            report: Default::default(),
        };
        assert_eq!(
            modules_pages(&set, &modules, &maps).len(),
            2,
            "24 + 21 maps"
        );
    }

    #[test]
    fn he_map_puts_each_spot_at_its_scaled_position() {
        let he = HeBackground {
            image: Canvas::new(100, 100, WHITE),
            spots: vec![[20.0, 20.0], [80.0, 60.0]],
            radius: 3.0,
        };
        let score = ndarray::array![0.0f32, 2.0];
        let c = he_map(&he, score.view(), 2.0, 120);
        // Box: x 14..86, y 14..66 (margin 2r = 6); f = 120 / 72.
        let f = 120.0 / 72.0;
        let at = |x: f64, y: f64| c.pixel(((x - 14.0) * f) as usize, ((y - 14.0) * f) as usize);
        assert_eq!(at(20.0, 20.0), viridis(0.0));
        assert_eq!(at(80.0, 60.0), viridis(1.0));
        assert_eq!(at(50.0, 20.0), WHITE, "between spots the H&E image shows");
    }
}
