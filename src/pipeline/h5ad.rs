//! `darlc.h5ad` (issue 25, item 2): a run's results as an AnnData object that scanpy, squidpy and
//! STAGATE users open with `anndata.read_h5ad`. Built here from darlc's types, written by the
//! generic writer [`crate::io::h5ad`].
//!
//! AnnData is spots × genes:
//!
//! * `obs` (spots): index = spot id (barcode, `XxY` name, `bin_r<row>_c<col>`, `px_<x>_<y>`);
//!   `array_row`, `array_col` ([`Section::array`]: Visium's array position, otherwise the lattice
//!   point), `in_tissue` (always 1: a section keeps only the spots in the tissue).
//! * `obsm["spatial"]`, `[x, y]` per spot as scanpy expects it: for Visium with a full positions
//!   table the full-resolution pixel `[pxl_col_in_fullres, pxl_row_in_fullres]` (scanpy's
//!   `read_visium` convention); otherwise the section's graph coordinates of method §3.2 in
//!   `(x, y)` order (hex: `(array_col/2, array_row·√3/2)`; square lattice: `(col, row)`; free
//!   coordinates: the input's `(x, y)`, for bins the mean of the binned points).
//!   `uns["darlc"]["spatial"]` names which.
//! * `var` (genes, in the order of `clusters.csv`): index = the gene symbol made unique the way
//!   `var_names_make_unique` does (a repeated symbol gets `-1`, `-2`, …), as scanpy's
//!   `read_visium` and `read_10x_h5` name genes, so that `adata[:, "Pcp4"]` and
//!   `sc.pl.spatial(color=…)` work by symbol; `gene_ids` (the id darlc's other outputs use),
//!   `symbol` (as read), `darlc_cluster` (categorical, categories `"0"`…`"K−1"`, all K even when
//!   empty) and `darlc_confidence`.
//! * `X`: the preprocessed expression of method §2.1 (§2.3 for MSI), [`Section::expr`], as a
//!   float32 CSR matrix.
//! * `varm["darlc_h"]`, `varm["darlc_z"]`, `varm["darlc_responsibilities"]`: the values of
//!   `embeddings.safetensors` (float32), where the run has them.
//! * `obsm["darlc_module_score"]`: spots × K module scores ([`super::modules`]).
//! * `uns["darlc"]`: `darlc_version`, `method`, `input`, `clusters` (K), `config` (the effective
//!   configuration as in `run.json`, as nested dicts; JSON nulls left out) and `config_json` (the
//!   same as JSON text), `spatial` (what `obsm["spatial"]` holds).
//!
//! Inputs without a section (image stacks, digits) have no spots: no `darlc.h5ad` is written.
//! `darlc embed` (stopped after the warm-up) writes one without clusters: no `darlc_cluster`,
//! `darlc_confidence`, module scores or `clusters`, and `varm["darlc_h"]` only.

use super::RunResult;
use crate::config::Config;
use crate::data::{ImageSet, Lattice, Section};
use crate::error::Result;
use crate::io::h5ad::{AnnData, Column, Csr, DataFrame, Dense, DenseData, Value};
use ndarray::Array2;
use std::collections::BTreeSet;

/// `names` made unique as anndata's `var_names_make_unique` does: the first occurrence keeps its
/// name, each later one gets `-1`, `-2`, … (skipping any suffix that is already a name).
pub fn make_unique(names: &[String]) -> Vec<String> {
    let mut used: BTreeSet<String> = names.iter().cloned().collect();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    names
        .iter()
        .map(|n| {
            if seen.insert(n.as_str()) {
                return n.clone();
            }
            let mut i = 1;
            loop {
                let candidate = format!("{n}-{i}");
                if used.insert(candidate.clone()) {
                    return candidate;
                }
                i += 1;
            }
        })
        .collect()
}

/// `obsm["spatial"]` (`[x, y]` per spot) and what it holds (module doc).
fn spatial(s: &Section) -> (Vec<f64>, &'static str) {
    if let Some(px) = &s.fullres_pixel {
        let v = px.iter().flat_map(|&[r, c]| [c, r]).collect();
        return (
            v,
            "[pxl_col_in_fullres, pxl_row_in_fullres]: Visium full-resolution pixels",
        );
    }
    match s.lattice {
        Lattice::Square => (
            s.coords.iter().flat_map(|&[r, c]| [c, r]).collect(),
            "[col, row] of the square lattice (method 3.2 graph coordinates as x, y)",
        ),
        Lattice::Hex => (
            s.coords.iter().flatten().copied().collect(),
            "[array_col/2, array_row*sqrt(3)/2]: hex graph coordinates of method 3.2",
        ),
        Lattice::Arbitrary => (
            s.coords.iter().flatten().copied().collect(),
            "[x, y] of the input (bins: the mean of the binned points)",
        ),
    }
}

fn dense_f32(m: &Array2<f64>) -> Dense {
    Dense {
        rows: m.nrows(),
        cols: m.ncols(),
        data: DenseData::F32(m.iter().map(|&v| v as f32).collect()),
    }
}

/// The AnnData of a run (module doc), or `None` when the input has no section. `k` is the number
/// of clusters (None when the run stopped after the warm-up: no cluster columns, no module
/// scores); `config` the effective configuration written to `run.json`.
pub fn build(
    set: &ImageSet,
    r: &RunResult,
    k: Option<usize>,
    config: &Config,
) -> Result<Option<AnnData>> {
    let Some(s) = &set.section else {
        return Ok(None);
    };
    let (n_obs, n_vars) = s.expr.dim();
    let obs = DataFrame {
        index: s.spot_ids.clone(),
        columns: vec![
            (
                "array_row".into(),
                Column::Int(s.array.iter().map(|a| a[0]).collect()),
            ),
            (
                "array_col".into(),
                Column::Int(s.array.iter().map(|a| a[1]).collect()),
            ),
            ("in_tissue".into(), Column::Int(vec![1; n_obs])),
        ],
    };
    let mut var = DataFrame {
        index: make_unique(&set.symbols),
        columns: vec![
            ("gene_ids".into(), Column::Str(set.ids.clone())),
            ("symbol".into(), Column::Str(set.symbols.clone())),
        ],
    };
    let (xy, spatial_note) = spatial(s);
    let mut obsm = vec![(
        "spatial".to_string(),
        Dense {
            rows: n_obs,
            cols: 2,
            data: DenseData::F64(xy),
        },
    )];
    let mut varm = Vec::new();
    if let (Some(cl), Some(k)) = (&r.clustering, k) {
        var.columns.push((
            "darlc_cluster".into(),
            Column::Categorical {
                codes: cl.labels.iter().map(|&l| l as i32).collect(),
                categories: (0..k).map(|j| j.to_string()).collect(),
                ordered: false,
            },
        ));
        var.columns.push((
            "darlc_confidence".into(),
            Column::F64(cl.confidence.clone()),
        ));
        let scores = super::modules::module_scores(s.expr.view(), &cl.labels, k)?;
        obsm.push((
            "darlc_module_score".into(),
            Dense {
                rows: n_obs,
                cols: k,
                data: DenseData::F32(scores.iter().copied().collect()),
            },
        ));
    }
    let responsibilities = r
        .clustering
        .as_ref()
        .and_then(|c| c.responsibilities.as_ref());
    for (name, m) in [
        ("darlc_h", r.h.as_ref()),
        ("darlc_z", r.z.as_ref()),
        ("darlc_responsibilities", responsibilities),
    ] {
        if let Some(m) = m {
            varm.push((name.to_string(), dense_f32(m)));
        }
    }
    let config_json = serde_json::to_value(config).unwrap_or_default();
    let mut darlc = vec![
        (
            "darlc_version".to_string(),
            Value::Str(env!("CARGO_PKG_VERSION").into()),
        ),
        (
            "method".into(),
            Value::Str(config_json["method"].as_str().unwrap_or_default().into()),
        ),
        ("input".into(), Value::Str(set.report.input.clone())),
    ];
    if let Some(k) = k {
        darlc.push(("clusters".into(), Value::Int(k as i64)));
    }
    if let Some(v) = Value::from_json(&config_json) {
        darlc.push(("config".into(), v));
    }
    darlc.push(("config_json".into(), Value::Str(config_json.to_string())));
    darlc.push(("spatial".into(), Value::Str(spatial_note.into())));
    Ok(Some(AnnData {
        obs,
        var,
        x: Some(Csr::from_row_major(n_obs, n_vars, s.expr.iter().copied())),
        obsm,
        varm,
        uns: vec![("darlc".into(), Value::Dict(darlc))],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_like_anndata() {
        let v: Vec<String> = ["a", "b", "a", "a-1", "a"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(make_unique(&v), vec!["a", "b", "a-2", "a-1", "a-3"]);
    }
}
