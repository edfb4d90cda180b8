//! Writing an [`ImageSet`]: `images.safetensors`, `genes.csv`, `spots.csv`, `report.json`, and
//! the summary lines `darlc images` and `darlc run` print (method §2).

use super::ImageSet;
use crate::error::{DarlcError, Result};
#[cfg(doc)]
use crate::io::TensorFile;
use crate::io::{atomic_write, atomic_write_with, write_json};
use std::path::{Path, PathBuf};

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
