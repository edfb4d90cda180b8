//! Stacks of generic images (method §2.3): safetensors `[N, C, H, W]` (or `[N, H, W]`) and CSV rows
//! `label,pixel…` (values in `[C][H][W]` row-major order). Values are kept as they are (no
//! rescaling); `--sparsify f` zeroes, per image, a uniformly random set of `round(f·H·W)` pixel
//! positions in all channels, drawn from the named stream `data.sparsify`. Images are padded
//! bottom/right to a multiple of the patch size; the mask is 1 on the original pixels.

use super::{ImageSet, LoadOptions, PreprocessReport};
use crate::error::{DarlcError, Result};
use crate::io::source::{csv_error, first_line, open_csv, record_line, sniff_delimiter};
use crate::io::{TensorData, TensorFile};
use ndarray::{Array2, Array4, s};
use rand::Rng;
use std::path::Path;

fn shape_error(path: &Path, msg: String) -> DarlcError {
    DarlcError::format(path, None, format!("wrong image shape: {msg}"))
}

/// Zero `round(f·H·W)` random pixel positions of every image, all channels (method §2.3).
pub fn sparsify(images: &mut Array4<f32>, fraction: f64, seed: u64) {
    let (n, _, h, w) = images.dim();
    let hw = h * w;
    let k = ((fraction * hw as f64).round() as usize).min(hw);
    let mut rng = crate::rng::stream(seed, "data.sparsify");
    let mut idx: Vec<usize> = Vec::with_capacity(hw);
    for i in 0..n {
        idx.clear();
        idx.extend(0..hw);
        for t in 0..k {
            let j = rng.random_range(t..hw);
            idx.swap(t, j);
        }
        let mut img = images.slice_mut(s![i, .., .., ..]);
        for &p in &idx[..k] {
            img.slice_mut(s![.., p / w, p % w]).fill(0.0);
        }
    }
}

fn finish(
    path: &Path,
    mut raw: Array4<f32>,
    labels: Option<Vec<String>>,
    mask: Option<Array2<u8>>,
    opts: &LoadOptions,
) -> Result<ImageSet> {
    let (n, c, h, w) = raw.dim();
    if n == 0 {
        return Err(DarlcError::format(path, None, "no images"));
    }
    if let Some(m) = &mask
        && m.iter().all(|&v| v == 0)
    {
        return Err(DarlcError::format(
            path,
            None,
            "tensor `mask` is all zero: it marks no pixel as tissue (1 = tissue); fix the mask or \
             leave it out to use every pixel",
        ));
    }
    if let Some(f) = opts.sparsify {
        sparsify(&mut raw, f, opts.seed);
    }
    let p = opts.patch;
    let (hp, wp) = (h.div_ceil(p) * p, w.div_ceil(p) * p);
    let images = if (hp, wp) == (h, w) {
        raw
    } else {
        let mut out = Array4::<f32>::zeros((n, c, hp, wp));
        out.slice_mut(s![.., .., ..h, ..w]).assign(&raw);
        out
    };
    let mut m = Array2::<u8>::zeros((hp, wp));
    match mask {
        Some(given) => m
            .slice_mut(s![..h, ..w])
            .assign(&given.mapv(|v| (v != 0) as u8)),
        None => m.slice_mut(s![..h, ..w]).fill(1),
    }
    let ids: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    Ok(ImageSet {
        images,
        mask: m,
        symbols: ids.clone(),
        ids,
        labels,
        section: None,
        report: PreprocessReport {
            kind: "image-stack".into(),
            files: vec![path.display().to_string()],
            items_in: n,
            sparsify: opts.sparsify,
            ..Default::default()
        },
    })
}

fn check_shape(path: &Path, opts: &LoadOptions, h: usize, w: usize, c: usize) -> Result<()> {
    if let Some((eh, ew, ec)) = opts.image_shape
        && (eh, ew, ec) != (h, w, c)
    {
        return Err(shape_error(
            path,
            format!("the file holds {h}x{w}x{c} (HxWxC) images, --image-shape says {eh}x{ew}x{ec}"),
        ));
    }
    if h * w > super::raster::MAX_SIDE * super::raster::MAX_SIDE {
        return Err(shape_error(path, format!("{h}x{w} images are too large")));
    }
    Ok(())
}

/// A safetensors file with tensor `images` (or its only tensor) `[N, C, H, W]` or `[N, H, W]`;
/// optional `labels` `[N]` and `mask` `[H, W]`.
pub(super) fn load_safetensors(path: &Path, opts: &LoadOptions) -> Result<ImageSet> {
    let tf = TensorFile::load(path)?;
    let name = if tf.tensors.contains_key("images") {
        "images".to_string()
    } else if tf.tensors.len() == 1 {
        tf.tensors.keys().next().cloned().unwrap_or_default()
    } else {
        return Err(DarlcError::format(
            path,
            None,
            format!(
                "no tensor named `images` (the file has: {})",
                tf.tensors.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    };
    let t = tf.get(&name, path)?;
    let shape = t.shape().to_vec();
    let (n, c, h, w) = match shape.as_slice() {
        &[n, c, h, w] => (n, c, h, w),
        &[n, h, w] => (n, 1, h, w),
        other => {
            return Err(shape_error(
                path,
                format!("tensor `{name}` has shape {other:?}; expected [N, C, H, W] or [N, H, W]"),
            ));
        }
    };
    if c == 0 || h == 0 || w == 0 {
        return Err(shape_error(
            path,
            format!("tensor `{name}` has an empty dimension {shape:?}"),
        ));
    }
    check_shape(path, opts, h, w, c)?;
    let vals = t.to_f64();
    if let Some((k, v)) = vals.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        let (i, ch, y, x) = (k / (c * h * w), k / (h * w) % c, k / w % h, k % w);
        return Err(DarlcError::format(
            path,
            None,
            format!(
                "tensor `{name}` element {k} (image {i}, channel {ch}, row {y}, column {x}) is \
                 {v}; every value must be finite"
            ),
        ));
    }
    let data: Vec<f32> = vals.iter().map(|&v| v as f32).collect();
    let images =
        Array4::from_shape_vec((n, c, h, w), data).map_err(|e| shape_error(path, e.to_string()))?;
    let labels = match tf.tensors.get("labels") {
        None => None,
        Some(l) if l.shape() == [n] => Some(
            l.to_f64()
                .iter()
                .map(|v| {
                    if v.fract() == 0.0 {
                        format!("{}", *v as i64)
                    } else {
                        v.to_string()
                    }
                })
                .collect(),
        ),
        Some(l) => {
            return Err(DarlcError::format(
                path,
                None,
                format!("tensor `labels` has shape {:?}; expected [{n}]", l.shape()),
            ));
        }
    };
    let mask = match tf.tensors.get("mask") {
        None => None,
        Some(TensorData::U8(m)) if m.shape() == [h, w] => Some(
            m.clone()
                .into_dimensionality()
                .map_err(|e| shape_error(path, e.to_string()))?,
        ),
        Some(m) => {
            return Err(DarlcError::format(
                path,
                None,
                format!(
                    "tensor `mask` is {} {:?}; expected U8 [{h}, {w}]",
                    m.dtype_name(),
                    m.shape()
                ),
            ));
        }
    };
    finish(path, images, labels, mask, opts)
}

/// CSV (plain or gzip) with header `label,…` and one image per row; the shape comes from
/// `--image-shape HxW[xC]`, or is square single-channel when the pixel count is a square.
pub(super) fn load_csv(path: &Path, opts: &LoadOptions) -> Result<ImageSet> {
    let first = first_line(path)?.ok_or_else(|| DarlcError::format(path, None, "empty file"))?;
    let delim = sniff_delimiter(&first);
    let mut rdr = open_csv(path, delim, true)?;
    let hdr = rdr.headers().map_err(|e| csv_error(path, e))?.clone();
    let npix = hdr.len().saturating_sub(1);
    let (h, w, c) = match opts.image_shape {
        Some((h, w, c)) => {
            if h * w * c != npix {
                return Err(shape_error(
                    path,
                    format!(
                        "--image-shape {h}x{w}x{c} needs {} values per row, the header has {npix}",
                        h * w * c
                    ),
                ));
            }
            (h, w, c)
        }
        None => {
            let side = (npix as f64).sqrt().round() as usize;
            if side == 0 || side * side != npix {
                return Err(shape_error(
                    path,
                    format!(
                        "{npix} values per row is not a square image; give --image-shape HxW[xC]"
                    ),
                ));
            }
            (side, side, 1)
        }
    };
    check_shape(path, opts, h, w, c)?;
    let mut data: Vec<f32> = Vec::new();
    let mut labels = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| csv_error(path, e))?;
        let line = record_line(&rec).unwrap_or(0);
        labels.push(rec[0].trim().to_string());
        for (k, f) in rec.iter().skip(1).enumerate() {
            let v = crate::io::source::parse_finite(f).map_err(|m| {
                DarlcError::format(path, Some(line), format!("column `{}`: {m}", &hdr[k + 1]))
            })?;
            data.push(v as f32);
        }
    }
    let n = labels.len();
    let images =
        Array4::from_shape_vec((n, c, h, w), data).map_err(|e| shape_error(path, e.to_string()))?;
    finish(path, images, Some(labels), None, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparsify_zeroes_exactly_round_fraction_per_image_and_is_seeded() {
        let mut a = Array4::<f32>::ones((3, 2, 8, 8));
        sparsify(&mut a, 0.9, 7);
        for i in 0..3 {
            // round(0.9·64) = round(57.6) = 58 zeroed positions, in both channels.
            let zeros0 = a
                .slice(s![i, 0, .., ..])
                .iter()
                .filter(|&&v| v == 0.0)
                .count();
            assert_eq!(zeros0, 58);
            assert_eq!(a.slice(s![i, 0, .., ..]), a.slice(s![i, 1, .., ..]));
        }
        let mut b = Array4::<f32>::ones((3, 2, 8, 8));
        sparsify(&mut b, 0.9, 7);
        assert_eq!(a, b);
        let mut c = Array4::<f32>::ones((3, 2, 8, 8));
        sparsify(&mut c, 0.9, 8);
        assert_ne!(a, c);
        assert_ne!(a.slice(s![0, .., .., ..]), a.slice(s![1, .., .., ..]));
    }
}
