//! Pictures for people: a grid of gene images rendered with a perceptually ordered colour map
//! (viridis), written as PNG. Used for `smoothing.png` (raw next to smoothed) and `clusters.png`
//! (per cluster its mean pattern and a few member genes, as in the paper's Fig. 3).
//!
//! Each cell is scaled to its own maximum (zero = dark purple, maximum = yellow); pixels outside
//! the tissue mask are light grey so the section's outline is visible; empty cells stay white.

use crate::error::{DarlcError, Result};
use ndarray::ArrayView2;
use std::path::Path;

/// Viridis anchor colours at 0, 0.25, 0.5, 0.75, 1 (matplotlib's table at those points).
const VIRIDIS: [[f64; 3]; 5] = [
    [68.0, 1.0, 84.0],
    [59.0, 82.0, 139.0],
    [33.0, 145.0, 140.0],
    [94.0, 201.0, 98.0],
    [253.0, 231.0, 37.0],
];
const BACKGROUND: [u8; 3] = [225, 225, 225];
const GAP: [u8; 3] = [255, 255, 255];

/// The colour of `v ∈ [0, 1]` (clamped), linear between the viridis anchors.
pub fn viridis(v: f64) -> [u8; 3] {
    let v = if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = v * 4.0;
    let i = (x.floor() as usize).min(3);
    let f = x - i as f64;
    let mut out = [0u8; 3];
    for c in 0..3 {
        out[c] = (VIRIDIS[i][c] * (1.0 - f) + VIRIDIS[i + 1][c] * f).round() as u8;
    }
    out
}

/// A grid of images: `rows[r][c]` is one cell (`None` = blank). All images must share one shape
/// `[H, W]`; `mask` (same shape, 1 = tissue) greys out background pixels; each pixel becomes a
/// `scale × scale` block; cells are separated by `scale` white pixels.
pub fn write_grid(
    path: &Path,
    rows: &[Vec<Option<ArrayView2<f32>>>],
    mask: Option<ArrayView2<u8>>,
    scale: usize,
) -> Result<()> {
    let (h, w) = rows
        .iter()
        .flatten()
        .flatten()
        .map(|a| a.dim())
        .next()
        .ok_or_else(|| DarlcError::Data(format!("{}: nothing to draw", path.display())))?;
    if rows.iter().flatten().flatten().any(|a| a.dim() != (h, w)) {
        return Err(DarlcError::Data(format!(
            "{}: images of different shapes in one grid",
            path.display()
        )));
    }
    if let Some(m) = mask
        && m.dim() != (h, w)
    {
        return Err(DarlcError::Data(format!(
            "{}: mask shape {:?} differs from images {:?}",
            path.display(),
            m.dim(),
            (h, w)
        )));
    }
    let scale = scale.max(1);
    let ncols = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
    let nrows = rows.len().max(1);
    let (cw, ch) = (w * scale, h * scale);
    let width = ncols * cw + (ncols + 1) * scale;
    let height = nrows * ch + (nrows + 1) * scale;
    let mut buf = vec![0u8; width * height * 3];
    for px in buf.chunks_mut(3) {
        px.copy_from_slice(&GAP);
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            let Some(img) = cell else { continue };
            let max = img
                .iter()
                .fold(0.0f32, |m, &v| if v.is_finite() { m.max(v) } else { m });
            let (x0, y0) = (scale + c * (cw + scale), scale + r * (ch + scale));
            for i in 0..h {
                for j in 0..w {
                    let inside = mask.is_none_or(|m| m[[i, j]] != 0);
                    let colour = if !inside {
                        BACKGROUND
                    } else if max > 0.0 {
                        viridis((img[[i, j]] / max) as f64)
                    } else {
                        viridis(0.0)
                    };
                    for dy in 0..scale {
                        let row_off = ((y0 + i * scale + dy) * width + x0 + j * scale) * 3;
                        for dx in 0..scale {
                            buf[row_off + dx * 3..row_off + dx * 3 + 3].copy_from_slice(&colour);
                        }
                    }
                }
            }
        }
    }
    super::atomic_write_with(path, |out| {
        let mut enc = png::Encoder::new(out, width as u32, height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().map_err(std::io::Error::other)?;
        wr.write_image_data(&buf).map_err(std::io::Error::other)?;
        wr.finish().map_err(std::io::Error::other)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn viridis_endpoints_and_clamping() {
        assert_eq!(viridis(0.0), [68, 1, 84]);
        assert_eq!(viridis(1.0), [253, 231, 37]);
        assert_eq!(viridis(-3.0), viridis(0.0));
        assert_eq!(viridis(f64::NAN), viridis(0.0));
        // Halfway between the 0.5 and 0.75 anchors: mean of (33,145,140) and (94,201,98).
        assert_eq!(viridis(0.625), [64, 173, 119]);
    }

    #[test]
    fn grid_png_has_expected_size_and_decodes() {
        let a = Array2::<f32>::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f32);
        let mut m = Array2::<u8>::ones((3, 4));
        m[[0, 0]] = 0;
        let rows = vec![vec![Some(a.view()), None], vec![Some(a.view())]];
        let dir = std::env::temp_dir().join(format!("darlc-pic-{}", std::process::id()));
        let p = dir.join("g.png");
        write_grid(&p, &rows, Some(m.view()), 2).unwrap();
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&p).unwrap()));
        let reader = dec.read_info().unwrap();
        let info = reader.info();
        // 2 columns of 4·2 px + 3 gaps of 2 px; 2 rows of 3·2 px + 3 gaps.
        assert_eq!((info.width, info.height), (2 * 8 + 3 * 2, 2 * 6 + 3 * 2));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mismatched_shapes_are_an_error() {
        let a = Array2::<f32>::zeros((3, 4));
        let b = Array2::<f32>::zeros((4, 4));
        let rows = vec![vec![Some(a.view()), Some(b.view())]];
        assert!(write_grid(Path::new("/tmp/never.png"), &rows, None, 1).is_err());
    }
}
