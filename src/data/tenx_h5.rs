//! The 10x Genomics HDF5 count matrix (`filtered_feature_bc_matrix.h5` of Cell Ranger and Space
//! Ranger), read without the HDF5 C library (method §2.1 input; issue 25).
//!
//! Two layouts exist, as scanpy's `read_10x_h5` knows them:
//!
//! * **v3** (Cell Ranger ≥ 3, every Space Ranger): group `matrix` with `data`, `indices`, `indptr`,
//!   `shape`, `barcodes` and `features/{id, name, feature_type}`;
//! * **v2** (Cell Ranger 2): one group per genome holding `data`, `indices`, `indptr`, `shape`,
//!   `barcodes`, `genes` (ids) and `gene_names` (symbols); every feature is a gene.
//!
//! Either way the matrix is features × barcodes stored column by column (CSC): the entries of
//! barcode `j` are `data[indptr[j]..indptr[j+1]]` at feature rows `indices[…]`. This reader turns
//! it into the same [`Feature`] list, barcode list and `(col, row)`-sorted [`Entry`] list that the
//! Matrix Market reader gives, so an `.h5` and the MTX folder of the same counts make the same
//! images bit for bit. Every inconsistency is an error naming the file and the dataset.

use super::mtx::Entry;
use super::preprocess::Feature;
use crate::error::{DarlcError, Result};
use hdf5_pure::File;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A 10x count matrix as read from its HDF5 file.
#[derive(Clone, Debug)]
pub struct TenxH5 {
    pub path: PathBuf,
    /// The group holding the matrix (`matrix`, or the genome's name in the v2 layout).
    pub group: String,
    pub features: Vec<Feature>,
    pub barcodes: Vec<String>,
    indptr: Vec<u64>,
    indices: Vec<u64>,
    data: Vec<f64>,
}

impl TenxH5 {
    /// Read and check the whole matrix (it is sparse: a Visium section is a few million entries).
    pub fn read(path: &Path) -> Result<TenxH5> {
        let file = File::open(path)
            .map_err(|e| DarlcError::format(path, None, format!("cannot read as HDF5: {e}")))?;
        let err =
            |what: &str, msg: String| DarlcError::format(path, None, format!("{what}: {msg}"));
        let root = file.root();
        let groups = root
            .groups()
            .map_err(|e| err("/", format!("cannot list the groups: {e}")))?;
        let (group, v3) = if groups.iter().any(|g| g == "matrix") {
            ("matrix".to_string(), true)
        } else {
            // v2: exactly one genome group holding `genes`.
            let genomes: Vec<&String> = groups
                .iter()
                .filter(|g| file.dataset(&format!("{g}/genes")).is_ok())
                .collect();
            match genomes.as_slice() {
                [g] => ((*g).clone(), false),
                [] => {
                    return Err(DarlcError::format(
                        path,
                        None,
                        format!(
                            "not a 10x count matrix: no group `matrix` (Cell Ranger ≥ 3 layout) and \
                             no genome group with `genes` (Cell Ranger 2 layout); groups found: {}",
                            if groups.is_empty() {
                                "none".to_string()
                            } else {
                                groups.join(", ")
                            }
                        ),
                    ));
                }
                many => {
                    return Err(DarlcError::format(
                        path,
                        None,
                        format!(
                            "{} genome groups ({}); darlc reads one section of one genome: \
                             export the genome you want",
                            many.len(),
                            groups.join(", ")
                        ),
                    ));
                }
            }
        };
        // What a dataset may hold once decompressed: a corrupt header can claim petabytes, and the
        // HDF5 reader allocates what it claims before reading (an abort, not an error). Gzip
        // shrinks 10x matrices by well under 64×.
        let file_len = std::fs::metadata(path)
            .map_err(|e| DarlcError::io(path, e))?
            .len();
        let max_bytes = file_len.saturating_mul(64).saturating_add(64 << 20);
        let ds = |name: &str| {
            let full = format!("{group}/{name}");
            let d = file
                .dataset(&full)
                .map_err(|e| err(&full, format!("missing or unreadable dataset ({e})")))?;
            let bytes = d
                .shape()
                .and_then(|shape| {
                    let size = d.element_size()?;
                    Ok(shape
                        .iter()
                        .try_fold(size, |acc, &n| acc.checked_mul(n))
                        .unwrap_or(u64::MAX))
                })
                .map_err(|e| err(&full, format!("unreadable shape or type ({e})")))?;
            if bytes > max_bytes {
                return Err(err(
                    &full,
                    format!(
                        "claims {bytes} bytes, implausible for a {file_len}-byte file (corrupt?)"
                    ),
                ));
            }
            Ok((d, full))
        };
        let strings = |name: &str| -> Result<Vec<String>> {
            let (d, full) = ds(name)?;
            d.read_string()
                .map_err(|e| err(&full, format!("cannot read as strings: {e}")))
                .map(|v| {
                    v.into_iter()
                        .map(|s| s.trim_end_matches('\0').to_string())
                        .collect()
                })
        };
        let ints = |name: &str| -> Result<Vec<i64>> {
            let (d, full) = ds(name)?;
            d.read_i64()
                .map_err(|e| err(&full, format!("cannot read as integers: {e}")))
        };

        let (ids, names, types) = if v3 {
            (
                strings("features/id")?,
                strings("features/name")?,
                Some(strings("features/feature_type")?),
            )
        } else {
            (strings("genes")?, strings("gene_names")?, None)
        };
        let id_path = if v3 { "features/id" } else { "genes" };
        let names_path = if v3 { "features/name" } else { "gene_names" };
        if names.len() != ids.len() {
            return Err(err(
                &format!("{group}/{names_path}"),
                format!("{} names for {} feature ids", names.len(), ids.len()),
            ));
        }
        if let Some(t) = &types
            && t.len() != ids.len()
        {
            return Err(err(
                &format!("{group}/features/feature_type"),
                format!("{} feature types for {} feature ids", t.len(), ids.len()),
            ));
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut features = Vec::with_capacity(ids.len());
        for (k, id) in ids.iter().enumerate() {
            let id = id.trim();
            if id.is_empty() {
                return Err(err(
                    &format!("{group}/{id_path}"),
                    format!("feature {} has an empty id", k + 1),
                ));
            }
            if let Some(first) = seen.insert(id, k + 1) {
                return Err(err(
                    &format!("{group}/{id_path}"),
                    format!(
                        "duplicate feature id `{id}` (features {first} and {}); every gene needs \
                         its own id",
                        k + 1
                    ),
                ));
            }
            let symbol = names[k].trim();
            features.push(Feature {
                id: id.to_string(),
                symbol: if symbol.is_empty() { id } else { symbol }.to_string(),
                gene_expression: types
                    .as_ref()
                    .is_none_or(|t| t[k].trim() == "Gene Expression"),
            });
        }
        if features.is_empty() {
            return Err(err(&format!("{group}/{id_path}"), "no features".into()));
        }

        let barcodes = strings("barcodes")?;
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (j, b) in barcodes.iter().enumerate() {
            if b.trim().is_empty() {
                return Err(err(
                    &format!("{group}/barcodes"),
                    format!("barcode {} is empty", j + 1),
                ));
            }
            if let Some(first) = seen.insert(b.as_str(), j + 1) {
                return Err(err(
                    &format!("{group}/barcodes"),
                    format!("duplicate barcode `{b}` (barcodes {first} and {})", j + 1),
                ));
            }
        }

        let shape = ints("shape")?;
        if shape.len() != 2
            || shape[0] as usize != features.len()
            || shape[1] as usize != barcodes.len()
        {
            return Err(err(
                &format!("{group}/shape"),
                format!(
                    "is {shape:?}, but the file has {} features and {} barcodes (expected [{}, {}])",
                    features.len(),
                    barcodes.len(),
                    features.len(),
                    barcodes.len()
                ),
            ));
        }
        let indptr = ints("indptr")?;
        let indices = ints("indices")?;
        let data_path = format!("{group}/data");
        let data = ds("data")?
            .0
            .read_f64()
            .map_err(|e| err(&data_path, format!("cannot read as numbers: {e}")))?;
        let (n_rows, n_cols, nnz) = (features.len(), barcodes.len(), data.len());
        let ip = format!("{group}/indptr");
        if indptr.len() != n_cols + 1 {
            return Err(err(
                &ip,
                format!(
                    "has {} entries; {} barcodes need {}",
                    indptr.len(),
                    n_cols,
                    n_cols + 1
                ),
            ));
        }
        if indptr[0] != 0 || indptr[n_cols] as usize != nnz || indices.len() != nnz {
            return Err(err(
                &ip,
                format!(
                    "runs from {} to {}, but `data` has {nnz} and `indices` {} entries (expected \
                     0 to {nnz})",
                    indptr[0],
                    indptr[n_cols],
                    indices.len()
                ),
            ));
        }
        if let Some(j) = (0..n_cols).find(|&j| indptr[j + 1] < indptr[j]) {
            return Err(err(
                &ip,
                format!(
                    "decreases at barcode {} ({} → {})",
                    j + 1,
                    indptr[j],
                    indptr[j + 1]
                ),
            ));
        }
        if let Some(k) = indices.iter().position(|&r| r < 0 || r as usize >= n_rows) {
            return Err(err(
                &format!("{group}/indices"),
                format!(
                    "entry {} is feature {}, outside 0..{n_rows}",
                    k + 1,
                    indices[k]
                ),
            ));
        }
        if let Some(k) = data.iter().position(|v| !v.is_finite() || *v < 0.0) {
            return Err(err(
                &data_path,
                format!(
                    "entry {} is {}; counts must be finite and ≥ 0",
                    k + 1,
                    data[k]
                ),
            ));
        }
        // A feature stored twice for one barcode would be summed by some tools and overwritten
        // by others: refuse it, as the Matrix Market reader refuses a duplicate entry.
        let mut col: Vec<i64> = Vec::new();
        for j in 0..n_cols {
            col.clear();
            col.extend_from_slice(&indices[indptr[j] as usize..indptr[j + 1] as usize]);
            col.sort_unstable();
            if let Some(w) = col.windows(2).find(|w| w[0] == w[1]) {
                return Err(err(
                    &format!("{group}/indices"),
                    format!(
                        "feature `{}` is stored twice for barcode `{}`",
                        features[w[0] as usize].id, barcodes[j]
                    ),
                ));
            }
        }
        Ok(TenxH5 {
            path: path.to_path_buf(),
            group,
            features,
            barcodes,
            indptr: indptr.into_iter().map(|v| v as u64).collect(),
            indices: indices.into_iter().map(|v| v as u64).collect(),
            data,
        })
    }

    /// The stored entries (explicit zeros included, as in a Matrix Market file) with
    /// `keep_row[feature] && keep_col[barcode]`, sorted by (col, row) as [`super::mtx::read_mtx`]
    /// returns them ([`TenxH5::read`] has refused a feature stored twice in one barcode).
    pub fn entries(&self, keep_row: &[bool], keep_col: &[bool]) -> Result<Vec<Entry>> {
        if keep_row.len() != self.features.len() || keep_col.len() != self.barcodes.len() {
            return Err(DarlcError::format(
                &self.path,
                None,
                format!(
                    "the matrix is {} × {}, but {} × {} keep flags were given",
                    self.features.len(),
                    self.barcodes.len(),
                    keep_row.len(),
                    keep_col.len()
                ),
            ));
        }
        let mut out = Vec::new();
        for (j, _) in keep_col.iter().enumerate().filter(|(_, k)| **k) {
            let (a, b) = (self.indptr[j] as usize, self.indptr[j + 1] as usize);
            let mut col: Vec<(u32, f64)> = (a..b)
                .map(|k| (self.indices[k] as u32, self.data[k]))
                .collect();
            col.sort_by_key(|e| e.0);
            out.extend(col.into_iter().filter(|&(r, _)| keep_row[r as usize]).map(
                |(row, value)| Entry {
                    row,
                    col: j as u32,
                    value,
                },
            ));
        }
        Ok(out)
    }
}
