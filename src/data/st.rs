//! Spatial transcriptomics inputs: 10x Space Ranger folders (nested or flat), legacy ST folders
//! (matrix + spot table or `XxY` names), cell-level folders (binned), and dense counts tables.

use super::mtx::read_mtx;
use super::preprocess::{Feature, GeneFate, SpotEntry, preprocess_counts, symbol_fate};
use super::raster::{
    Binning, Canvas, bin_points, check_canvas, check_size, find_collision, hex_lattice, place,
    rasterise, square_lattice,
};
use super::tables::{
    SpotTable, parse_xy_name, read_barcodes, read_features, read_positions, read_spot_table,
    read_truth,
};
use super::tenx_h5::TenxH5;
use super::{BinReport, CoordMode, ImageSet, Lattice, LoadOptions, PreprocessReport, Section};
use crate::error::{DarlcError, Result};
use crate::io::source::{
    csv_error, find_maybe_gz, first_line, open_csv, parse_nonneg, record_line, sniff_delimiter,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where the spots of the section are and which matrix columns feed each spot.
struct Layout {
    kind: &'static str,
    lattice: Lattice,
    spot_ids: Vec<String>,
    /// Per matrix column: the spot it feeds (several columns feed one bin).
    col_to_spot: Vec<Option<u32>>,
    /// Lattice position `(y, x)` per spot, minima 0.
    yx: Vec<(i64, i64)>,
    /// [`Section::array`]: Visium `(array_row, array_col)`, otherwise `yx`.
    array: Vec<[i64; 2]>,
    /// [`Section::fullres_pixel`] (Visium).
    fullres: Option<Vec<[f64; 2]>>,
    coords: Vec<[f64; 2]>,
    /// File and line that defined each spot (for collision errors).
    origin: Vec<(PathBuf, usize)>,
    hint: &'static str,
    binning: Option<BinReport>,
    section: Option<String>,
}

const LATTICE_HINT: &str = "; these coordinates are not on an integer lattice (re-centred or rotated?): \
use `--coords bin` to bin them onto a grid (and `--section` to pick one section of a multi-section table)";
const HEX_HINT: &str = "; the positions table is corrupt (two spots with one array position?)";

/// Coordinates from a free-coordinate source, rounded to the lattice or binned.
fn free_layout(
    kind_lattice: &'static str,
    kind_bin: &'static str,
    bin: bool,
    opts: &LoadOptions,
    n_cols: usize,
    used: Vec<(usize, String, f64, f64, PathBuf, usize)>,
) -> Result<Layout> {
    let xs: Vec<f64> = used.iter().map(|u| u.2).collect();
    let ys: Vec<f64> = used.iter().map(|u| u.3).collect();
    let mut col_to_spot = vec![None; n_cols];
    if bin {
        // A canvas fitted to the tissue (0) bins onto the method's 75 as well.
        let target = if opts.canvas == 0 { 75 } else { opts.canvas };
        let b: Binning = bin_points(&xs, &ys, opts.bin_size, target)?;
        for (p, u) in used.iter().enumerate() {
            col_to_spot[u.0] = Some(b.bin_of_point[p] as u32);
        }
        let spot_ids = b
            .bins
            .iter()
            .map(|(r, c)| format!("bin_r{r}_c{c}"))
            .collect();
        let origin = b.bins.iter().map(|_| (PathBuf::new(), 0)).collect();
        Ok(Layout {
            kind: kind_bin,
            lattice: Lattice::Arbitrary,
            spot_ids,
            col_to_spot,
            yx: b.bins.clone(),
            array: b.bins.iter().map(|&(r, c)| [r, c]).collect(),
            fullres: None,
            coords: b.centroids.clone(),
            origin,
            hint: "",
            binning: Some(BinReport {
                bin_size: b.bin_size,
                points: used.len(),
                bins: b.bins.len(),
                max_points_per_bin: b.members.iter().copied().max().unwrap_or(0),
            }),
            section: None,
        })
    } else {
        let yx = square_lattice(&xs, &ys);
        for (s, u) in used.iter().enumerate() {
            col_to_spot[u.0] = Some(s as u32);
        }
        Ok(Layout {
            kind: kind_lattice,
            lattice: Lattice::Square,
            coords: yx.iter().map(|&(y, x)| [y as f64, x as f64]).collect(),
            array: yx.iter().map(|&(y, x)| [y, x]).collect(),
            fullres: None,
            yx,
            spot_ids: used.iter().map(|u| u.1.clone()).collect(),
            col_to_spot,
            origin: used.iter().map(|u| (u.4.clone(), u.5)).collect(),
            hint: LATTICE_HINT,
            binning: None,
            section: None,
        })
    }
}

fn visium_layout(
    barcodes: &[String],
    bc_path: &Path,
    pos_path: &Path,
    opts: &LoadOptions,
) -> Result<Layout> {
    if opts.coords == CoordMode::Bin {
        return Err(DarlcError::param(
            "coords",
            "a Visium section is a hex array; `bin` applies to free coordinates",
        ));
    }
    if opts.section.is_some() {
        return Err(DarlcError::param(
            "section",
            "a Visium folder holds one section; `--section` applies to spot tables",
        ));
    }
    let pos = read_positions(pos_path)?;
    let mut col_to_spot = vec![None; barcodes.len()];
    let (mut rows, mut cols, mut ids, mut origin) = (vec![], vec![], vec![], vec![]);
    let mut fullres = Some(Vec::new());
    for (j, b) in barcodes.iter().enumerate() {
        let p = pos.get(b).ok_or_else(|| {
            DarlcError::format(
                bc_path,
                Some(j + 1),
                format!(
                    "barcode `{b}` is missing from the positions table {}",
                    pos_path.display()
                ),
            )
        })?;
        if p.in_tissue {
            col_to_spot[j] = Some(ids.len() as u32);
            rows.push(p.array_row);
            cols.push(p.array_col);
            // Kept only when every spot of the section has its full-resolution pixel.
            fullres = fullres.zip(p.fullres).map(|(mut v, px)| {
                v.push(px);
                v
            });
            ids.push(b.clone());
            origin.push((pos_path.to_path_buf(), p.line));
        }
    }
    let s3 = 3f64.sqrt() / 2.0;
    Ok(Layout {
        kind: "visium",
        lattice: Lattice::Hex,
        coords: rows
            .iter()
            .zip(&cols)
            .map(|(&r, &c)| [c as f64 / 2.0, r as f64 * s3])
            .collect(),
        yx: hex_lattice(&rows, &cols),
        array: rows.iter().zip(&cols).map(|(&r, &c)| [r, c]).collect(),
        fullres,
        spot_ids: ids,
        col_to_spot,
        origin,
        hint: HEX_HINT,
        binning: None,
        section: None,
    })
}

fn table_layout(
    barcodes: &[String],
    bc_path: &Path,
    tab_path: &Path,
    opts: &LoadOptions,
) -> Result<Layout> {
    let t: SpotTable = read_spot_table(tab_path)?;
    let mut looked = Vec::with_capacity(barcodes.len());
    for (j, b) in barcodes.iter().enumerate() {
        let s = t.rows.get(b).ok_or_else(|| {
            DarlcError::format(
                bc_path,
                Some(j + 1),
                format!(
                    "barcode `{b}` is missing from the spot table {}",
                    tab_path.display()
                ),
            )
        })?;
        looked.push(s);
    }
    let mut sections: Vec<String> = looked.iter().filter_map(|s| s.section.clone()).collect();
    sections.sort();
    sections.dedup();
    let chosen = match (&opts.section, t.has_section) {
        (Some(want), true) => {
            if !sections.contains(want) {
                return Err(DarlcError::param(
                    "section",
                    format!(
                        "`{want}` is not in the `section` column of {} (it has: {})",
                        tab_path.display(),
                        sections.join(", ")
                    ),
                ));
            }
            Some(want.clone())
        }
        (Some(want), false) => {
            return Err(DarlcError::param(
                "section",
                format!(
                    "`{want}` given but {} has no `section` column",
                    tab_path.display()
                ),
            ));
        }
        (None, true) if sections.len() > 1 => {
            return Err(DarlcError::param(
                "section",
                format!(
                    "{} holds {} sections ({}); choose one with --section",
                    tab_path.display(),
                    sections.len(),
                    sections.join(", ")
                ),
            ));
        }
        _ => None,
    };
    let used: Vec<_> = looked
        .iter()
        .enumerate()
        .filter(|(_, s)| s.in_tissue && (chosen.is_none() || s.section == chosen))
        .map(|(j, s)| {
            (
                j,
                barcodes[j].clone(),
                s.x,
                s.y,
                tab_path.to_path_buf(),
                s.line,
            )
        })
        .collect();
    let bin = match opts.coords {
        CoordMode::Auto => t.cells,
        CoordMode::Lattice => false,
        CoordMode::Bin => true,
    };
    let mut l = free_layout(
        "legacy-st",
        if t.cells {
            "cells-binned"
        } else {
            "spots-binned"
        },
        bin,
        opts,
        barcodes.len(),
        used,
    )?;
    l.section = chosen;
    Ok(l)
}

fn names_layout(
    barcodes: &[String],
    bc_path: &Path,
    dir: &Path,
    opts: &LoadOptions,
) -> Result<Layout> {
    if opts.section.is_some() {
        return Err(DarlcError::param(
            "section",
            "there is no spot table with a `section` column",
        ));
    }
    let mut used = Vec::with_capacity(barcodes.len());
    for (j, b) in barcodes.iter().enumerate() {
        let (x, y) = parse_xy_name(b).ok_or_else(|| {
            DarlcError::format(
                bc_path,
                Some(j + 1),
                format!(
                    "barcode `{b}` is not an `XxY` spot name, and {} has no positions table \
                     (spatial/tissue_positions.csv, tissue_positions_list.csv, spots.csv or cells.csv)",
                    dir.display()
                ),
            )
        })?;
        used.push((j, b.clone(), x, y, bc_path.to_path_buf(), j + 1));
    }
    free_layout(
        "legacy-st",
        "spots-binned",
        opts.coords == CoordMode::Bin,
        opts,
        barcodes.len(),
        used,
    )
}

/// Place the spots on the canvas; two spots on one pixel is an error naming both lines.
fn place_checked(l: &Layout, opts: &LoadOptions) -> Result<(Canvas, Vec<(usize, usize)>)> {
    if l.spot_ids.is_empty() {
        return Err(DarlcError::Data(
            "nothing left after filtering: no spot is in the tissue / selected section".into(),
        ));
    }
    let (canvas, pixels) = place(&l.yx, opts.canvas, opts.patch);
    if let Some((file, _)) = l.origin.first() {
        check_canvas(&canvas, file, l.hint == LATTICE_HINT)?;
    }
    check_size(&canvas, 1)?;
    if let Some((a, b)) = find_collision(&pixels) {
        let (pa, la) = &l.origin[a];
        let (pb, lb) = &l.origin[b];
        let _ = pa;
        return Err(DarlcError::format(
            pb,
            Some(*lb),
            format!(
                "spots `{}` (line {la}) and `{}` (line {lb}) fall on the same pixel {:?}{}",
                l.spot_ids[a], l.spot_ids[b], pixels[b], l.hint
            ),
        ));
    }
    Ok((canvas, pixels))
}

/// Turn column-indexed entries into spot entries sorted by (spot, gene), summing columns that
/// feed one bin.
fn to_spot_entries(entries: Vec<super::mtx::Entry>, col_to_spot: &[Option<u32>]) -> Vec<SpotEntry> {
    let mut out: Vec<SpotEntry> = entries
        .into_iter()
        .filter_map(|e| {
            col_to_spot[e.col as usize].map(|s| SpotEntry {
                spot: s,
                gene: e.row,
                value: e.value,
            })
        })
        .collect();
    let key = |e: &SpotEntry| ((e.spot as u64) << 32) | e.gene as u64;
    if !out.windows(2).all(|w| key(&w[0]) < key(&w[1])) {
        out.sort_by_key(key);
        let mut merged: Vec<SpotEntry> = Vec::with_capacity(out.len());
        for e in out {
            match merged.last_mut() {
                Some(m) if key(m) == key(&e) => m.value += e.value,
                _ => merged.push(e),
            }
        }
        out = merged;
    }
    out
}

/// Preprocess (method §2.1), rasterise (§2.2) and assemble the image set.
fn finish(
    features: &[Feature],
    entries: Vec<SpotEntry>,
    layout: Layout,
    (canvas, pixels): (Canvas, Vec<(usize, usize)>),
    opts: &LoadOptions,
    mut report: PreprocessReport,
    truth: Option<HashMap<String, String>>,
) -> Result<ImageSet> {
    let n_spots = layout.spot_ids.len();
    let (x, kept, genes) = preprocess_counts(features, n_spots, &entries, opts.min_spots)?;
    drop(entries);
    check_size(&canvas, kept.len())?;
    let (images, mask) = rasterise(&x, &pixels, &canvas);
    let ids: Vec<String> = kept.iter().map(|&g| features[g].id.clone()).collect();
    let symbols = kept.iter().map(|&g| features[g].symbol.clone()).collect();
    let labels = truth.map(|t| {
        ids.iter()
            .map(|id| t.get(id).cloned().unwrap_or_default())
            .collect()
    });
    report.kind = layout.kind.to_string();
    report.genes = Some(genes);
    report.spots = n_spots;
    report.section_selected = layout.section.clone();
    report.binning = layout.binning.clone();
    report.canvas = Some(canvas);
    Ok(ImageSet {
        images,
        mask,
        ids,
        symbols,
        labels,
        section: Some(Section {
            expr: x,
            coords: layout.coords,
            lattice: layout.lattice,
            pixel: pixels,
            spot_ids: layout.spot_ids,
            array: layout.array,
            fullres_pixel: layout.fullres,
        }),
        report,
    })
}

fn missing(dir: &Path, what: &str) -> DarlcError {
    DarlcError::format(
        dir,
        None,
        format!(
            "no {what} found; expected a Space Ranger outs/ folder (filtered_feature_bc_matrix/ or \
             filtered_feature_bc_matrix.h5, + spatial/), or one folder with matrix.mtx[.gz], \
             features.tsv[.gz] (or genes.tsv) and barcodes.tsv[.gz]"
        ),
    )
}

/// Where a 10x folder's counts come from.
enum Counts {
    /// `matrix.mtx[.gz]` with its `features.tsv[.gz]` (or `genes.tsv`) and `barcodes.tsv[.gz]`.
    Mtx {
        features: Vec<Feature>,
        barcodes: Vec<String>,
        matrix: PathBuf,
        features_path: PathBuf,
        barcodes_path: PathBuf,
    },
    /// `filtered_feature_bc_matrix.h5` (v3 or v2 layout).
    H5(TenxH5),
}

/// Load a count-matrix folder: Space Ranger `outs/` (or its parent), the flat layout, legacy ST
/// or cell-level folders.
pub(super) fn load_dir(dir: &Path, h5: Option<&Path>, opts: &LoadOptions) -> Result<ImageSet> {
    let base = if dir.join("outs").is_dir() {
        dir.join("outs")
    } else {
        dir.to_path_buf()
    };
    let mdir = if base.join("filtered_feature_bc_matrix").is_dir() {
        base.join("filtered_feature_bc_matrix")
    } else {
        base.clone()
    };
    // The counts: the HDF5 file named on the command line, else the Matrix Market folder, else
    // the folder's `filtered_feature_bc_matrix.h5` (what most public Visium downloads hold).
    let source = match h5 {
        Some(p) => Counts::H5(TenxH5::read(p)?),
        None => match find_maybe_gz(&mdir, "matrix.mtx") {
            Some(matrix) => {
                let features_path = find_maybe_gz(&mdir, "features.tsv")
                    .or_else(|| find_maybe_gz(&mdir, "genes.tsv"))
                    .ok_or_else(|| missing(&mdir, "features.tsv[.gz] or genes.tsv[.gz]"))?;
                let barcodes_path = find_maybe_gz(&mdir, "barcodes.tsv")
                    .ok_or_else(|| missing(&mdir, "barcodes.tsv[.gz]"))?;
                Counts::Mtx {
                    features: read_features(&features_path)?,
                    barcodes: read_barcodes(&barcodes_path)?,
                    matrix,
                    features_path,
                    barcodes_path,
                }
            }
            None => {
                let h5 = base.join("filtered_feature_bc_matrix.h5");
                if h5.is_file() {
                    Counts::H5(TenxH5::read(&h5)?)
                } else {
                    return Err(missing(
                        dir,
                        "matrix.mtx[.gz] (or filtered_feature_bc_matrix.h5)",
                    ));
                }
            }
        },
    };
    let (features, barcodes, barcodes_path) = match &source {
        Counts::Mtx {
            features,
            barcodes,
            barcodes_path,
            ..
        } => (features, barcodes, barcodes_path.clone()),
        Counts::H5(m) => (&m.features, &m.barcodes, m.path.clone()),
    };
    let mut files = match &source {
        Counts::Mtx {
            features_path,
            barcodes_path,
            ..
        } => vec![
            features_path.display().to_string(),
            barcodes_path.display().to_string(),
        ],
        Counts::H5(_) => vec![],
    };

    let mut positions = None;
    for d in [base.join("spatial"), base.clone(), mdir.clone()] {
        for n in ["tissue_positions.csv", "tissue_positions_list.csv"] {
            if positions.is_none() {
                positions = find_maybe_gz(&d, n);
            }
        }
    }
    let layout = if let Some(p) = &positions {
        files.push(p.display().to_string());
        visium_layout(barcodes, &barcodes_path, p, opts)?
    } else if let Some(p) =
        find_maybe_gz(&base, "spots.csv").or_else(|| find_maybe_gz(&base, "cells.csv"))
    {
        files.push(p.display().to_string());
        table_layout(barcodes, &barcodes_path, &p, opts)?
    } else {
        names_layout(barcodes, &barcodes_path, dir, opts)?
    };
    let (canvas, pixels) = place_checked(&layout, opts)?;

    let keep_row: Vec<bool> = features
        .iter()
        .map(|f| symbol_fate(f) == GeneFate::Kept)
        .collect();
    let keep_col: Vec<bool> = layout.col_to_spot.iter().map(|s| s.is_some()).collect();
    let entries = match &source {
        Counts::Mtx {
            matrix,
            features_path,
            barcodes_path,
            ..
        } => {
            let check = |h: &super::mtx::MtxHeader| -> Result<()> {
                let bad = |what: &str, n: usize, file: &Path, m: usize| {
                    DarlcError::format(
                        matrix,
                        Some(h.size_line),
                        format!(
                            "size line says {n} {what}, but {} has {m} lines",
                            file.display()
                        ),
                    )
                };
                if h.n_rows != features.len() {
                    return Err(bad("rows (genes)", h.n_rows, features_path, features.len()));
                }
                if h.n_cols != barcodes.len() {
                    return Err(bad(
                        "columns (spots)",
                        h.n_cols,
                        barcodes_path,
                        barcodes.len(),
                    ));
                }
                Ok(())
            };
            let (_, entries) = read_mtx(matrix, check, &keep_row, &keep_col)?;
            files.insert(0, matrix.display().to_string());
            entries
        }
        Counts::H5(m) => {
            files.insert(0, m.path.display().to_string());
            m.entries(&keep_row, &keep_col)?
        }
    };
    let entries = to_spot_entries(entries, &layout.col_to_spot);

    let mut truth_candidates = vec![dir.join("truth.csv")];
    if base != dir {
        truth_candidates.push(base.join("truth.csv"));
    }
    if dir.ends_with("outs")
        && let Some(p) = dir.parent()
    {
        truth_candidates.push(p.join("truth.csv"));
    }
    let truth = match truth_candidates.into_iter().find(|p| p.is_file()) {
        Some(p) => {
            files.push(p.display().to_string());
            Some(read_truth(&p)?)
        }
        None => None,
    };
    let report = PreprocessReport {
        files,
        items_in: barcodes.len(),
        ..Default::default()
    };
    finish(
        features,
        entries,
        layout,
        (canvas, pixels),
        opts,
        report,
        truth,
    )
}

/// A dense counts table (legacy ST, e.g. SpatialDE's `Rep11_MOB_0.csv`): spot names `XxY` either
/// in the first column (rows = spots, header = genes) or in the header (rows = genes).
pub(super) fn load_dense(path: &Path, opts: &LoadOptions) -> Result<ImageSet> {
    let first = first_line(path)?.ok_or_else(|| DarlcError::format(path, None, "empty file"))?;
    let delim = sniff_delimiter(&first);
    let mut rdr = open_csv(path, delim, true)?;
    let hdr = rdr.headers().map_err(|e| csv_error(path, e))?.clone();
    if hdr.len() < 2 {
        return Err(DarlcError::format(
            path,
            Some(1),
            "a counts table needs an id column and at least one data column",
        ));
    }
    let head_names: Vec<String> = hdr.iter().skip(1).map(|s| s.trim().to_string()).collect();
    let spots_in_header = head_names.iter().all(|n| parse_xy_name(n).is_some());
    let mut names: Vec<String> = Vec::new(); // row ids
    let mut name_lines: Vec<usize> = Vec::new();
    let mut entries: Vec<SpotEntry> = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| csv_error(path, e))?;
        let line = record_line(&rec).unwrap_or(0);
        let r = names.len() as u32;
        for (k, field) in rec.iter().skip(1).enumerate() {
            let v = parse_nonneg(field).map_err(|m| {
                DarlcError::format(path, Some(line), format!("column `{}`: {m}", head_names[k]))
            })?;
            if v != 0.0 {
                let (spot, gene) = if spots_in_header {
                    (k as u32, r)
                } else {
                    (r, k as u32)
                };
                entries.push(SpotEntry {
                    spot,
                    gene,
                    value: v,
                });
            }
        }
        names.push(rec[0].trim().to_string());
        name_lines.push(line);
    }
    let (spot_names, spot_lines, gene_names) = if spots_in_header {
        (head_names.clone(), vec![1; head_names.len()], names.clone())
    } else {
        (names.clone(), name_lines.clone(), head_names.clone())
    };
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut used = Vec::with_capacity(spot_names.len());
    for (s, n) in spot_names.iter().enumerate() {
        let (x, y) = parse_xy_name(n).ok_or_else(|| {
            DarlcError::format(
                path,
                Some(spot_lines[s]),
                format!("spot name `{n}` is not `XxY` (e.g. 16.92x9.015)"),
            )
        })?;
        if let Some(prev) = seen.insert(n.as_str(), spot_lines[s]) {
            return Err(DarlcError::format(
                path,
                Some(spot_lines[s]),
                format!("duplicate spot `{n}` (first on line {prev})"),
            ));
        }
        used.push((s, n.clone(), x, y, path.to_path_buf(), spot_lines[s]));
    }
    // Gene names name the images: a repeated one is an error at its line (genes in the header:
    // line 1, the column; genes as rows: the row's line).
    let mut genes_seen: HashMap<&str, usize> = HashMap::new();
    for (g, name) in gene_names.iter().enumerate() {
        let line = if spots_in_header { name_lines[g] } else { 1 };
        if name.is_empty() {
            return Err(DarlcError::format(path, Some(line), "empty gene name"));
        }
        if let Some(first) = genes_seen.insert(name.as_str(), g) {
            let where_ = if spots_in_header {
                format!("first on line {}", name_lines[first])
            } else {
                format!("columns {} and {}", first + 2, g + 2)
            };
            return Err(DarlcError::format(
                path,
                Some(line),
                format!("duplicate gene `{name}` ({where_})"),
            ));
        }
    }
    let features: Vec<Feature> = gene_names
        .iter()
        .map(|g| Feature {
            id: g.clone(),
            symbol: g.clone(),
            gene_expression: true,
        })
        .collect();
    let n_spots = spot_names.len();
    let mut layout = free_layout(
        "dense-st",
        "dense-st-binned",
        opts.coords == CoordMode::Bin,
        opts,
        n_spots,
        used,
    )?;
    layout.kind = if layout.binning.is_some() {
        "dense-st-binned"
    } else {
        "dense-st"
    };
    let (canvas, pixels) = place_checked(&layout, opts)?;
    let entries: Vec<super::mtx::Entry> = entries
        .into_iter()
        .map(|e| super::mtx::Entry {
            row: e.gene,
            col: e.spot,
            value: e.value,
        })
        .collect();
    let entries = to_spot_entries(entries, &layout.col_to_spot);
    let report = PreprocessReport {
        files: vec![path.display().to_string()],
        items_in: n_spots,
        ..Default::default()
    };
    finish(
        &features,
        entries,
        layout,
        (canvas, pixels),
        opts,
        report,
        None,
    )
}
