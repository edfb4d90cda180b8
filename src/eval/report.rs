//! The `darlc eval` table: every method §12 metric for one labeling, computed on named rows.

use crate::error::{DarlcError, Result};
use crate::eval::families::FamilyReport;
use crate::eval::input::Matrix;
use crate::eval::metrics::{
    acc, ari, dbie, dbip, dense_labels, homogeneity_completeness, nmi, sam,
};
use std::collections::BTreeMap;
use std::path::Path;

/// SAM of one cluster, with the cluster's label as written in the labels file.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct NamedClusterSam {
    pub cluster: String,
    pub size: usize,
    pub sam: f64,
    /// "high" (`SAM_k ≤ median`) or "medium" (method §12.3).
    pub quality: &'static str,
}

/// Everything `darlc eval` prints; serialised as the `--json` file. `None` = not available
/// (no truth) or undefined (see `notes`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EvalReport {
    pub items: usize,
    pub clusters: usize,
    /// `"images"` (method §12.1 CHOICE) or `"embeddings"` (no images given).
    pub dbi_data: String,
    /// File and content the data metrics (DBIE, DBIP, SAM) were computed on.
    pub dbi_source: String,
    pub dbie: Option<f64>,
    pub dbip: Option<f64>,
    pub nmi: Option<f64>,
    pub ari: Option<f64>,
    pub acc: Option<f64>,
    /// Homogeneity and completeness (not in method §12; NMI is their harmonic mean): whether the
    /// clusters are pure, and whether each class stays in one cluster. With K far above the
    /// number of classes, NMI falls with completeness even when every cluster is pure.
    pub homogeneity: Option<f64>,
    pub completeness: Option<f64>,
    /// Mean of `SAM_k` over clusters, radians.
    pub sam: Option<f64>,
    pub sam_median: Option<f64>,
    pub sam_clusters: Vec<NamedClusterSam>,
    pub notes: Vec<String>,
    pub families: Option<FamilyReport>,
}

/// Labels of the items being scored and where they came from.
pub struct LabelTable<'a> {
    pub rows: &'a [(String, String)],
    pub path: &'a Path,
}

/// Score `labels` (method §12). Data metrics use `images` when given, else `embeddings`; truth
/// metrics need `truth`. Every labelled id must be present in the data and in the truth table;
/// a missing id is an error naming the file and the id.
pub fn evaluate(
    labels: &LabelTable,
    truth: Option<&LabelTable>,
    embeddings: Option<&Matrix>,
    images: Option<&Matrix>,
) -> Result<EvalReport> {
    if labels.rows.is_empty() {
        return Err(DarlcError::format(labels.path, None, "no labelled items"));
    }
    let ids: Vec<String> = labels.rows.iter().map(|(id, _)| id.clone()).collect();
    let pred_names: Vec<String> = labels.rows.iter().map(|(_, l)| l.clone()).collect();
    let (pred, cluster_names) = dense_labels(&pred_names);
    let mut notes = Vec::new();

    let (data_kind, data) = match (images, embeddings) {
        (Some(m), _) => ("images", m),
        (None, Some(m)) => {
            notes.push(
                "no images given: DBIE, DBIP and SAM are computed on the embeddings".to_string(),
            );
            ("embeddings", m)
        }
        (None, None) => {
            return Err(DarlcError::param(
                "embeddings",
                "need embeddings or images to compute DBIE, DBIP and SAM",
            ));
        }
    };
    let x = data.rows_for(&ids, labels.path)?;
    let mut defined = |name: &str, r: Result<f64>| match r {
        Ok(v) => Some(v),
        Err(e) => {
            notes.push(format!("{name} undefined: {e}"));
            None
        }
    };
    let dbie_v = defined("DBIE", dbie(x.view(), &pred));
    let dbip_v = defined("DBIP", dbip(x.view(), &pred));
    let s = sam(x.view(), &pred)?;

    let (nmi_v, ari_v, acc_v, hc_v) = match truth {
        Some(t) => {
            let map: BTreeMap<&str, &str> = t
                .rows
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            let mut y = Vec::with_capacity(ids.len());
            for id in &ids {
                let v = map.get(id.as_str()).ok_or_else(|| {
                    DarlcError::format(
                        t.path,
                        None,
                        format!(
                            "no entry for id `{id}` (listed in {})",
                            labels.path.display()
                        ),
                    )
                })?;
                y.push(v.to_string());
            }
            let (truth_codes, _) = dense_labels(&y);
            (
                Some(nmi(&truth_codes, &pred)?),
                Some(ari(&truth_codes, &pred)?),
                Some(acc(&truth_codes, &pred)?),
                Some(homogeneity_completeness(&truth_codes, &pred)?),
            )
        }
        None => {
            notes.push(
                "no truth given: NMI, ARI, ACC, homogeneity and completeness are n/a".to_string(),
            );
            (None, None, None, None)
        }
    };
    let mut sam_clusters: Vec<NamedClusterSam> = s
        .clusters
        .iter()
        .map(|c| NamedClusterSam {
            cluster: cluster_names[c.label].clone(),
            size: c.size,
            sam: c.sam,
            quality: if c.high_quality { "high" } else { "medium" },
        })
        .collect();
    // Numeric labels in numeric order (2 before 10), the rest after them as text (stable sort).
    sam_clusters.sort_by_key(|c| match c.cluster.parse::<i64>() {
        Ok(v) => (0, v),
        Err(_) => (1, 0),
    });
    Ok(EvalReport {
        items: ids.len(),
        clusters: cluster_names.len(),
        dbi_data: data_kind.to_string(),
        dbi_source: format!("{} ({})", data.path.display(), data.what),
        dbie: dbie_v,
        dbip: dbip_v,
        nmi: nmi_v,
        ari: ari_v,
        acc: acc_v,
        homogeneity: hc_v.map(|v| v.0),
        completeness: hc_v.map(|v| v.1),
        sam: Some(s.mean),
        sam_median: Some(s.median),
        sam_clusters,
        notes,
        families: None,
    })
}

fn cell(v: Option<f64>) -> String {
    v.map_or("n/a".to_string(), |v| format!("{v:.6}"))
}

fn cell_defined(v: Option<f64>) -> String {
    v.map_or("undefined (see note)".to_string(), |v| format!("{v:.6}"))
}

/// The human-readable table of a report.
pub fn format_table(r: &EvalReport) -> String {
    let mut s = String::new();
    s.push_str(&format!("items {}, clusters {}\n", r.items, r.clusters));
    s.push_str(&format!(
        "data metrics on {}: {}\n\n",
        r.dbi_data, r.dbi_source
    ));
    s.push_str("metric  value\n");
    let n_high = r
        .sam_clusters
        .iter()
        .filter(|c| c.quality == "high")
        .count();
    let rows = [
        ("DBIE", cell_defined(r.dbie), String::new()),
        ("DBIP", cell_defined(r.dbip), String::new()),
        ("NMI", cell(r.nmi), String::new()),
        ("ARI", cell(r.ari), String::new()),
        ("ACC", cell(r.acc), String::new()),
        (
            "HOM",
            cell(r.homogeneity),
            "  (homogeneity: clusters pure)".to_string(),
        ),
        (
            "COM",
            cell(r.completeness),
            "  (completeness: classes unsplit)".to_string(),
        ),
        (
            "SAM",
            cell(r.sam),
            format!(
                "  (mean over clusters, radians; {} high-quality ≤ median {}, {} medium)",
                n_high,
                cell(r.sam_median),
                r.sam_clusters.len() - n_high
            ),
        ),
    ];
    for (name, v, extra) in rows {
        s.push_str(&format!("{name:<7} {v}{extra}\n"));
    }
    if let Some(f) = &r.families {
        s.push('\n');
        s.push_str(&format_families(f));
    }
    for n in &r.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s
}

/// The gene-family section of the table.
pub fn format_families(f: &FamilyReport) -> String {
    let mut s = format!(
        "gene families ({} genes: {}; k = {}, {} Leiden clusters)\n",
        f.genes.len(),
        f.family_sizes
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        f.k,
        f.n_clusters
    );
    s.push_str(&format!(
        "family NMI {:.6}\nfamily ARI {:.6}\n",
        f.nmi, f.ari
    ));
    if !f.missing.is_empty() {
        s.push_str(&format!(
            "family-file genes not in the embeddings: {}\n",
            f.missing.join(", ")
        ));
    }
    s
}
