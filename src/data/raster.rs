//! Rasterisation of spots onto an image canvas (method §2.2): the Visium hex map, the legacy-ST
//! nearest-integer square map, binning of arbitrary (cell-level) coordinates, centring in a canvas
//! of at least 75×75, padding to a multiple of the patch size, and the collision check.

use crate::error::{DarlcError, Result};
use ndarray::{Array2, Array4};
use rayon::prelude::*;
use serde::Serialize;

/// Canvas geometry of method §2.2.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Canvas {
    /// Bounding box of the tissue lattice, rows × columns.
    pub h0: usize,
    pub w0: usize,
    /// Offsets that centre the tissue in the `max(75, h0) × max(75, w0)` canvas.
    pub oy: usize,
    pub ox: usize,
    /// Final size after padding bottom/right to a multiple of the patch size.
    pub height: usize,
    pub width: usize,
}

/// method §2.2 Visium map: `y = array_row − min array_row`,
/// `x = ceil((array_col − min array_col)/2)` in integer arithmetic. Returns `(y, x)` per spot.
pub fn hex_lattice(array_row: &[i64], array_col: &[i64]) -> Vec<(i64, i64)> {
    let r0 = array_row.iter().copied().min().unwrap_or(0);
    let c0 = array_col.iter().copied().min().unwrap_or(0);
    array_row
        .iter()
        .zip(array_col)
        .map(|(&r, &c)| (r - r0, (c - c0 + 1).div_euclid(2)))
        .collect()
}

/// method §2.2 legacy ST map: round x and y to the nearest integer (half away from zero), subtract
/// the minima; image row = y, column = x. Returns `(y, x)` per spot.
pub fn square_lattice(x: &[f64], y: &[f64]) -> Vec<(i64, i64)> {
    let rx: Vec<i64> = x.iter().map(|v| v.round() as i64).collect();
    let ry: Vec<i64> = y.iter().map(|v| v.round() as i64).collect();
    let x0 = rx.iter().copied().min().unwrap_or(0);
    let y0 = ry.iter().copied().min().unwrap_or(0);
    ry.iter()
        .zip(&rx)
        .map(|(&yy, &xx)| (yy - y0, xx - x0))
        .collect()
}

/// Centre lattice positions `(y, x)` (non-negative, minima 0) in a canvas of at least
/// `min_side × min_side`, then pad bottom/right to multiples of `patch` (method §2.2).
pub fn place(yx: &[(i64, i64)], min_side: usize, patch: usize) -> (Canvas, Vec<(usize, usize)>) {
    let h0 = yx.iter().map(|p| p.0).max().map_or(0, |m| m as usize + 1);
    let w0 = yx.iter().map(|p| p.1).max().map_or(0, |m| m as usize + 1);
    let h = h0.max(min_side);
    let w = w0.max(min_side);
    let oy = (h - h0) / 2;
    let ox = (w - w0) / 2;
    let p = patch.max(1);
    let canvas = Canvas {
        h0,
        w0,
        oy,
        ox,
        height: h.div_ceil(p) * p,
        width: w.div_ceil(p) * p,
    };
    let pixels = yx
        .iter()
        .map(|&(y, x)| (oy + y as usize, ox + x as usize))
        .collect();
    (canvas, pixels)
}

/// The first pair of spots `(a, b)`, `a < b`, that share a pixel: `b` is the lowest index whose
/// pixel an earlier spot already holds, `a` that earlier spot.
pub fn find_collision(pixels: &[(usize, usize)]) -> Option<(usize, usize)> {
    let mut order: Vec<usize> = (0..pixels.len()).collect();
    order.sort_by_key(|&s| (pixels[s], s));
    order
        .windows(2)
        .filter(|w| pixels[w[0]] == pixels[w[1]])
        .map(|w| (w[0], w[1]))
        .min_by_key(|&(_, b)| b)
        .map(|(_, b)| {
            let a = (0..b).find(|&a| pixels[a] == pixels[b]).unwrap_or(0);
            (a, b)
        })
}

/// Largest canvas side darlc accepts (a larger one means coordinates far off any lattice).
pub const MAX_SIDE: usize = 4096;

/// The canvas side limit with the file whose coordinates set it: `free` is true where
/// `--coords bin` applies (spot and cell tables, `XxY` names), so only there is it suggested
/// (Visium and MSI refuse it).
pub fn check_canvas(canvas: &Canvas, file: &std::path::Path, free: bool) -> Result<()> {
    if canvas.height > MAX_SIDE || canvas.width > MAX_SIDE {
        let hint = if free {
            "; if they are free coordinates (microns, pixels), use `--coords bin` to bin them"
        } else {
            ""
        };
        return Err(DarlcError::format(
            file,
            None,
            format!(
                "the coordinates span a {} × {} canvas (limit {MAX_SIDE} per side): they are \
                 not array or grid positions{hint}",
                canvas.height, canvas.width
            ),
        ));
    }
    Ok(())
}

/// Refuse canvases or image stacks too large to hold: `n_images` images of `canvas`.
pub fn check_size(canvas: &Canvas, n_images: usize) -> Result<()> {
    if canvas.height > MAX_SIDE || canvas.width > MAX_SIDE {
        return Err(DarlcError::Data(format!(
            "the spots span a {} × {} canvas (limit {MAX_SIDE}); coordinates are not array positions",
            canvas.height, canvas.width
        )));
    }
    let bytes = (n_images as u128) * (canvas.height * canvas.width) as u128 * 4;
    if bytes > 16u128 << 30 {
        return Err(DarlcError::Data(format!(
            "{n_images} images of {} × {} need {:.1} GiB (limit 16 GiB)",
            canvas.height,
            canvas.width,
            bytes as f64 / (1u64 << 30) as f64
        )));
    }
    Ok(())
}

/// Write `x[s, g]` at `pixels[s]` of image g: images `[G, 1, H, W]` and the tissue mask `[H, W]`.
pub fn rasterise(
    x: &Array2<f32>,
    pixels: &[(usize, usize)],
    canvas: &Canvas,
) -> (Array4<f32>, Array2<u8>) {
    let (n, g) = x.dim();
    assert_eq!(n, pixels.len(), "one pixel per spot");
    let hw = canvas.height * canvas.width;
    let flat: Vec<usize> = pixels.iter().map(|&(r, c)| r * canvas.width + c).collect();
    let xs = x.as_standard_layout();
    let xs = xs.as_slice().expect("standard layout");
    let mut out = vec![0.0f32; g * hw];
    const BLOCK: usize = 64;
    out.par_chunks_mut(BLOCK * hw)
        .enumerate()
        .for_each(|(b, chunk)| {
            let g0 = b * BLOCK;
            let nb = chunk.len() / hw;
            for (s, &k) in flat.iter().enumerate() {
                let row = &xs[s * g + g0..s * g + g0 + nb];
                for (j, &v) in row.iter().enumerate() {
                    chunk[j * hw + k] = v;
                }
            }
        });
    let images = Array4::from_shape_vec((g, 1, canvas.height, canvas.width), out).expect("shape");
    let mut mask = Array2::<u8>::zeros((canvas.height, canvas.width));
    for &(r, c) in pixels {
        mask[[r, c]] = 1;
    }
    (images, mask)
}

/// Binning of arbitrary coordinates onto a square grid (cell-level data, re-centred ST).
#[derive(Clone, Debug)]
pub struct Binning {
    /// Side of a bin in input units.
    pub bin_size: f64,
    /// `(row, col)` of each occupied bin, sorted row-major; these are the pseudo-spots.
    pub bins: Vec<(i64, i64)>,
    /// Index into `bins` of each input point.
    pub bin_of_point: Vec<usize>,
    /// Number of input points in each bin.
    pub members: Vec<usize>,
    /// Mean input `(x, y)` of each bin's points.
    pub centroids: Vec<[f64; 2]>,
}

/// Median distance from each point to its nearest other point (0 for fewer than two points).
pub fn median_nn_distance(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len();
    if n < 2 {
        return 0.0;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]).then(a.cmp(&b)));
    let mut best = vec![f64::INFINITY; n];
    for (k, &i) in order.iter().enumerate() {
        // Sweep outwards in x order; stop on each side once the x gap alone exceeds the best.
        let mut b = f64::INFINITY;
        for &j in &order[k + 1..] {
            let dx = x[j] - x[i];
            if dx > b {
                break;
            }
            b = b.min((dx * dx + (y[j] - y[i]).powi(2)).sqrt());
        }
        for &j in order[..k].iter().rev() {
            let dx = x[i] - x[j];
            if dx > b {
                break;
            }
            b = b.min((dx * dx + (y[j] - y[i]).powi(2)).sqrt());
        }
        best[i] = b;
    }
    super::preprocess::median(&mut best).unwrap_or(0.0)
}

/// Bin points `(x, y)` onto a square grid (the documented cell-level rule):
///
/// * bin side `s` = `bin_size` if given, else `max(extent / target, median nearest-neighbour
///   distance)`, where `extent` is the larger of the x and y ranges: the grid spans at most
///   `target` bins (75: the default canvas) and is never finer than the typical point spacing;
/// * `col = floor((x − min x)/s)`, `row = floor((y − min y)/s)`, the last bin of each axis closed
///   on the right so the maximum falls in it;
/// * every occupied bin is one pseudo-spot whose counts are the sum of its points' counts.
pub fn bin_points(x: &[f64], y: &[f64], bin_size: Option<f64>, target: usize) -> Result<Binning> {
    if x.is_empty() {
        return Err(DarlcError::Data("no points to bin".into()));
    }
    let (xmin, xmax) = x
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let (ymin, ymax) = y
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let extent = (xmax - xmin).max(ymax - ymin);
    let s = match bin_size {
        Some(s) if s.is_finite() && s > 0.0 => s,
        Some(s) => {
            return Err(DarlcError::param(
                "bin-size",
                format!("{s} is not a positive number"),
            ));
        }
        None => {
            let auto = (extent / target.max(1) as f64).max(median_nn_distance(x, y));
            if auto > 0.0 { auto } else { 1.0 }
        }
    };
    let ncols = (((xmax - xmin) / s).ceil() as i64).max(1);
    let nrows = (((ymax - ymin) / s).ceil() as i64).max(1);
    if ncols.saturating_mul(nrows) > 100_000_000 {
        return Err(DarlcError::param(
            "bin-size",
            format!("{s} gives a {nrows} × {ncols} grid; choose a larger bin"),
        ));
    }
    let cell: Vec<(i64, i64)> = x
        .iter()
        .zip(y)
        .map(|(&xv, &yv)| {
            let c = (((xv - xmin) / s).floor() as i64).min(ncols - 1);
            let r = (((yv - ymin) / s).floor() as i64).min(nrows - 1);
            (r, c)
        })
        .collect();
    let mut bins = cell.clone();
    bins.sort();
    bins.dedup();
    let bin_of_point: Vec<usize> = cell
        .iter()
        .map(|rc| bins.binary_search(rc).expect("bin present"))
        .collect();
    let mut members = vec![0usize; bins.len()];
    let mut sums = vec![[0.0f64; 2]; bins.len()];
    for (p, &b) in bin_of_point.iter().enumerate() {
        members[b] += 1;
        sums[b][0] += x[p];
        sums[b][1] += y[p];
    }
    let centroids = sums
        .iter()
        .zip(&members)
        .map(|(s, &m)| [s[0] / m as f64, s[1] / m as f64])
        .collect();
    Ok(Binning {
        bin_size: s,
        bins,
        bin_of_point,
        members,
        centroids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn hex_map_matches_spec_formula() {
        // method §2.2: x = ceil((col − min col)/2). min col 5: col 5 → 0, 6 → 1 (ceil .5), 7 → 1, 8 → 2.
        let yx = hex_lattice(&[0, 1, 0, 1], &[6, 5, 8, 7]);
        assert_eq!(yx, vec![(0, 1), (1, 0), (0, 2), (1, 1)]);
    }

    #[test]
    fn dlpfc_worked_example_canvas() {
        // method §2.2: array_row 0–76, array_col 5–120 -> h0 77, w0 59, canvas 77×75, oy 0, ox 8,
        // padded to 80×75.
        let yx = hex_lattice(&[0, 76], &[5, 120]);
        let (c, px) = place(&yx, 75, 5);
        assert_eq!(
            (c.h0, c.w0, c.oy, c.ox, c.height, c.width),
            (77, 59, 0, 8, 80, 75)
        );
        assert_eq!(px, vec![(0, 8), (76, 8 + 58)]);
    }

    #[test]
    fn square_map_rounds_half_away_from_zero() {
        let yx = square_lattice(&[16.92, 18.5, -0.5], &[9.015, 10.49, 9.0]);
        // x rounds to 17, 19, -1 -> minus min (-1): 18, 20, 0; y rounds 9, 10, 9 -> 0, 1, 0.
        assert_eq!(yx, vec![(0, 18), (1, 20), (0, 0)]);
    }

    #[test]
    fn collisions_are_found_and_rasterisation_places_values() {
        let yx = vec![(0, 0), (1, 1), (0, 0)];
        let (c, px) = place(&yx, 3, 2);
        assert_eq!((c.height, c.width), (4, 4));
        assert_eq!(find_collision(&px), Some((0, 2)));
        assert_eq!(
            find_collision(&[(0, 0), (1, 1), (1, 1), (0, 0)]),
            Some((1, 2))
        );
        let (c, px) = place(&yx[..2], 3, 2);
        assert_eq!(find_collision(&px), None);
        let x = array![[1.0f32, 2.0], [3.0, 4.0]];
        let (img, mask) = rasterise(&x, &px, &c);
        assert_eq!(img.dim(), (2, 1, 4, 4));
        // h0 = w0 = 2 in a 3×3 canvas: oy = ox = 0.
        assert_eq!(img[[0, 0, 0, 0]], 1.0);
        assert_eq!(img[[1, 0, 1, 1]], 4.0);
        assert_eq!(img.iter().filter(|&&v| v != 0.0).count(), 4);
        assert_eq!(mask.sum(), 2);
    }

    #[test]
    fn binning_rule() {
        // Points on x 0..10, nearest-neighbour spacing 1 -> with target 5: s = max(10/5, 1) = 2.
        let x: Vec<f64> = (0..=10).map(|v| v as f64).collect();
        let y = vec![0.0; 11];
        let b = bin_points(&x, &y, None, 5).unwrap();
        assert_eq!(b.bin_size, 2.0);
        // cols floor(x/2): 0,0,1,1,2,2,3,3,4,4,5→clamped 4 (last bin closed).
        assert_eq!(b.bins, vec![(0, 0), (0, 1), (0, 2), (0, 3), (0, 4)]);
        assert_eq!(b.members, vec![2, 2, 2, 2, 3]);
        assert_eq!(b.centroids[4], [9.0, 0.0]);
        assert!((median_nn_distance(&x, &y) - 1.0).abs() < 1e-12);
    }
}
