//! Everything `darlc run` writes (issue 6): each file is written atomically, and `run.json` — the
//! marker of a complete run — is removed at the start and written last, so an interrupted run never
//! leaves a folder that looks finished.

use crate::baselines::Clustering;
use crate::data::ImageSet;
use crate::error::{DarlcError, Result};
use crate::eval::input::{IdTable, Matrix};
use crate::eval::report::{EvalReport, LabelTable, evaluate};
use crate::io::{TensorFile, atomic_write};
use ndarray::{Array2, ArrayView2};
use std::path::Path;

/// The image set cut to the bounding box of its tissue mask (plus a 1-pixel margin where the
/// canvas has one). Nothing a metric uses is lost (method §12.1 works on tissue pixels), and a
/// 16×21 section stored on a 75×75 canvas shrinks twentyfold. The spots' pixels move with the
/// crop, so `spots.csv`'s `pixel_row`, `pixel_col` index the stored images (each spot's pixel
/// holds its value in every image).
///
/// Takes the set by value so that only the cropped images are copied (the run's output phase
/// holds its peak memory here).
pub fn crop_to_tissue(mut set: ImageSet) -> ImageSet {
    let (h, w) = set.mask.dim();
    let (mut r0, mut r1, mut c0, mut c1) = (h, 0, w, 0);
    for ((i, j), &m) in set.mask.indexed_iter() {
        if m != 0 {
            r0 = r0.min(i);
            r1 = r1.max(i + 1);
            c0 = c0.min(j);
            c1 = c1.max(j + 1);
        }
    }
    if r0 >= r1 {
        return set;
    }
    let (r0, c0) = (r0.saturating_sub(1), c0.saturating_sub(1));
    let (r1, c1) = ((r1 + 1).min(h), (c1 + 1).min(w));
    if (r0, c0, r1, c1) != (0, 0, h, w) {
        set.images = set
            .images
            .slice(ndarray::s![.., .., r0..r1, c0..c1])
            .to_owned();
        set.mask = set.mask.slice(ndarray::s![r0..r1, c0..c1]).to_owned();
        // Every spot is a tissue pixel (the mask is the spots' pixels), so it lies in the box.
        if let Some(sec) = &mut set.section {
            for p in &mut sec.pixel {
                *p = (p.0 - r0, p.1 - c0);
            }
        }
    }
    set
}

/// `clusters.csv`: `gene_id,symbol,cluster,confidence` (gene_id = the image id, symbol = the
/// gene symbol, or the id again where the input has none), one row per image in input order.
pub fn write_clusters_csv(
    path: &Path,
    ids: &[String],
    symbols: &[String],
    c: &Clustering,
) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| DarlcError::Data(format!("{}: {e}", path.display()));
    w.write_record(["gene_id", "symbol", "cluster", "confidence"])
        .map_err(err)?;
    for (i, id) in ids.iter().enumerate() {
        w.write_record([
            id.as_str(),
            symbols[i].as_str(),
            &c.labels[i].to_string(),
            &format!("{:.6}", c.confidence[i]),
        ])
        .map_err(err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| DarlcError::Data(format!("{}: {e}", path.display())))?;
    atomic_write(path, &bytes)
}

/// `embeddings.csv`: `gene_id,symbol,<prefix>0,<prefix>1,…` for one embedding matrix.
pub fn write_embeddings_csv(
    path: &Path,
    ids: &[String],
    symbols: &[String],
    x: ArrayView2<f64>,
    prefix: &str,
) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| DarlcError::Data(format!("{}: {e}", path.display()));
    let mut hdr = vec!["gene_id".to_string(), "symbol".to_string()];
    hdr.extend((0..x.ncols()).map(|j| format!("{prefix}{j}")));
    w.write_record(&hdr).map_err(err)?;
    for (i, id) in ids.iter().enumerate() {
        let mut rec = vec![id.clone(), symbols[i].clone()];
        rec.extend(x.row(i).iter().map(|v| format!("{v:.8e}")));
        w.write_record(&rec).map_err(err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| DarlcError::Data(format!("{}: {e}", path.display())))?;
    atomic_write(path, &bytes)
}

/// `embeddings.safetensors`: `h` [N, D] and `z` [N, d] where present, `responsibilities` [N, K];
/// the row ids are in the metadata key `ids` (JSON list) and in `genes.csv` beside it.
pub fn write_embeddings(
    path: &Path,
    ids: &[String],
    h: Option<&Array2<f64>>,
    z: Option<&Array2<f64>>,
    r: Option<&Array2<f64>>,
) -> Result<()> {
    let mut tf = TensorFile::new();
    if let Some(h) = h {
        tf.insert_float("h", h.mapv(|v| v as f32).into_dyn());
    }
    if let Some(z) = z {
        tf.insert_float("z", z.mapv(|v| v as f32).into_dyn());
    }
    if let Some(r) = r {
        tf.insert_float("responsibilities", r.mapv(|v| v as f32).into_dyn());
    }
    tf.metadata.insert(
        "ids".into(),
        serde_json::to_string(ids).expect("strings serialise"),
    );
    tf.save(path)
}

/// method §12 metrics of a clustering on the raw tissue-pixel vectors `x`, with truth when known.
pub fn metrics(
    set: &ImageSet,
    x: Array2<f64>,
    c: &Clustering,
    truth: Option<(&[(String, String)], &Path)>,
    out: &Path,
) -> Result<EvalReport> {
    let rows: Vec<(String, String)> = set
        .ids
        .iter()
        .zip(&c.labels)
        .map(|(id, l)| (id.clone(), l.to_string()))
        .collect();
    let clusters_path = out.join("clusters.csv");
    let labels = LabelTable {
        rows: &rows,
        path: &clusters_path,
    };
    let images = Matrix {
        ids: IdTable::new(
            set.ids.clone(),
            Some(set.symbols.clone()),
            &out.join("genes.csv"),
        )?,
        what: format!("raw images, {} tissue pixels", x.ncols()),
        x,
        // Relative: the run folder describes itself (and stays identical wherever it is written).
        path: std::path::PathBuf::from("images.safetensors"),
    };
    let truth_table = truth.map(|(rows, path)| LabelTable { rows, path });
    evaluate(&labels, truth_table.as_ref(), None, Some(&images))
}
