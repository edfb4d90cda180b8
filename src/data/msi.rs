//! Mass-spectrometry imaging tables (method §2.3): one row per pixel with integer `x`, `y` and one
//! column per m/z bin (the header names the channel). Intensities are TIC-normalised, no log;
//! pixels with TIC 0 are not tissue. Pixels lie on a square grid: `x`, `y` are rounded to the
//! nearest integer as for legacy ST (method §2.2), and two pixels on one grid point are an error.

use super::preprocess::{SpotEntry, tic_normalise};
use super::raster::{check_canvas, check_size, find_collision, place, rasterise, square_lattice};
use super::{ImageSet, Lattice, LoadOptions, PreprocessReport, Section};
use crate::error::{DarlcError, Result};
use crate::io::source::{
    csv_error, first_line, open_csv, parse_finite, parse_nonneg, record_line, sniff_delimiter,
};
use std::path::Path;

/// Read an MSI pixel table and build its images.
pub(super) fn load(path: &Path, opts: &LoadOptions) -> Result<ImageSet> {
    let first = first_line(path)?.ok_or_else(|| DarlcError::format(path, None, "empty file"))?;
    let delim = sniff_delimiter(&first);
    let mut rdr = open_csv(path, delim, true)?;
    let hdr = rdr.headers().map_err(|e| csv_error(path, e))?.clone();
    let pos = |n: &str| {
        hdr.iter()
            .position(|h| h.trim().trim_matches('"').eq_ignore_ascii_case(n))
    };
    let (xc, yc) = match (pos("x"), pos("y")) {
        (Some(x), Some(y)) => (x, y),
        _ => {
            return Err(DarlcError::format(
                path,
                Some(1),
                "MSI header needs `x` and `y` columns",
            ));
        }
    };
    let channels: Vec<(usize, String)> = hdr
        .iter()
        .enumerate()
        .filter(|(k, _)| *k != xc && *k != yc)
        .map(|(k, h)| (k, h.trim().to_string()))
        .collect();
    if channels.is_empty() {
        return Err(DarlcError::format(
            path,
            Some(1),
            "no m/z columns besides `x` and `y`",
        ));
    }
    // Each m/z column names one image: two columns with one name cannot be told apart.
    let mut seen = std::collections::HashMap::new();
    for (k, name) in &channels {
        if name.is_empty() {
            return Err(DarlcError::format(
                path,
                Some(1),
                format!("column {} of the header has no m/z name", k + 1),
            ));
        }
        if let Some(first) = seen.insert(name.as_str(), *k) {
            return Err(DarlcError::format(
                path,
                Some(1),
                format!(
                    "duplicate m/z column `{name}` (columns {} and {})",
                    first + 1,
                    k + 1
                ),
            ));
        }
    }
    let (mut xs, mut ys, mut lines, mut entries) = (vec![], vec![], vec![], vec![]);
    for rec in rdr.records() {
        let rec = rec.map_err(|e| csv_error(path, e))?;
        let line = record_line(&rec).unwrap_or(0);
        let err = |m: String| DarlcError::format(path, Some(line), m);
        let q = xs.len() as u32;
        xs.push(parse_finite(&rec[xc]).map_err(|m| err(format!("field `x`: {m}")))?);
        ys.push(parse_finite(&rec[yc]).map_err(|m| err(format!("field `y`: {m}")))?);
        lines.push(line);
        for (m, (k, name)) in channels.iter().enumerate() {
            let v = parse_nonneg(&rec[*k]).map_err(|e| err(format!("column `{name}`: {e}")))?;
            if v != 0.0 {
                entries.push(SpotEntry {
                    spot: q,
                    gene: m as u32,
                    value: v,
                });
            }
        }
    }
    let n_pixels = xs.len();
    if n_pixels == 0 {
        return Err(DarlcError::format(path, None, "no pixel rows"));
    }
    // Collisions are checked over all rows (a repeated pixel is a corrupt table even if empty).
    let all_yx = square_lattice(&xs, &ys);
    let all_px: Vec<(usize, usize)> = all_yx
        .iter()
        .map(|&(y, x)| (y as usize, x as usize))
        .collect();
    if let Some((a, b)) = find_collision(&all_px) {
        return Err(DarlcError::format(
            path,
            Some(lines[b]),
            format!(
                "pixel rows on lines {} and {} have the same (x, y) after rounding",
                lines[a], lines[b]
            ),
        ));
    }
    let (x_all, tic, med) = tic_normalise(n_pixels, channels.len(), &entries)?;
    drop(entries);
    let tissue: Vec<usize> = (0..n_pixels).filter(|&q| tic[q] > 0.0).collect();
    let txs: Vec<f64> = tissue.iter().map(|&q| xs[q]).collect();
    let tys: Vec<f64> = tissue.iter().map(|&q| ys[q]).collect();
    let yx = square_lattice(&txs, &tys);
    let (canvas, pixels) = place(&yx, opts.canvas, opts.patch);
    check_canvas(&canvas, path, false)?;
    check_size(&canvas, channels.len())?;
    let x = x_all.select(ndarray::Axis(0), &tissue);
    let (images, mask) = rasterise(&x, &pixels, &canvas);
    let ids: Vec<String> = channels.iter().map(|c| c.1.clone()).collect();
    let report = PreprocessReport {
        kind: "msi".into(),
        files: vec![path.display().to_string()],
        items_in: n_pixels,
        spots: tissue.len(),
        canvas: Some(canvas),
        tic_median: Some(med),
        ..Default::default()
    };
    Ok(ImageSet {
        images,
        mask,
        symbols: ids.clone(),
        ids,
        labels: None,
        section: Some(Section {
            expr: x,
            coords: yx.iter().map(|&(r, c)| [r as f64, c as f64]).collect(),
            lattice: Lattice::Square,
            pixel: pixels,
            spot_ids: tissue
                .iter()
                .map(|&q| format!("px_{}_{}", xs[q], ys[q]))
                .collect(),
            array: yx.iter().map(|&(r, c)| [r, c]).collect(),
            fullres_pixel: None,
        }),
        report,
    })
}
