//! What a scientist reads about each cluster (issue 25): its members ordered by confidence, its
//! size and its spatial-pattern quality (SAM, method §12.3). One list feeds `modules.csv`, the
//! pictures and the report page, so they always name the same genes in the same order.

use crate::baselines::Clustering;
use crate::error::{DarlcError, Result};
use crate::eval::report::EvalReport;
use crate::io::atomic_write;
use std::path::Path;

/// One non-empty cluster (a gene module).
#[derive(Clone, Debug, PartialEq)]
pub struct Module {
    /// The cluster's number, as in `clusters.csv`.
    pub cluster: usize,
    /// Member images, highest confidence first (ties: input order).
    pub members: Vec<usize>,
    /// `SAM_k` in radians (method §12.3) on the raw images, when the metrics computed it.
    pub sam: Option<f64>,
    /// "high" (`SAM_k ≤` the median over clusters) or "medium" (method §12.3).
    pub quality: Option<&'static str>,
}

impl Module {
    pub fn size(&self) -> usize {
        self.members.len()
    }
}

/// The non-empty clusters of `c` in cluster order, with the SAM of `report` (matched by the
/// cluster's label as written in `clusters.csv`).
pub fn modules(c: &Clustering, report: Option<&EvalReport>) -> Vec<Module> {
    let k = c.labels.iter().copied().max().map_or(0, |m| m + 1);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (i, &l) in c.labels.iter().enumerate() {
        members[l].push(i);
    }
    members
        .into_iter()
        .enumerate()
        .filter(|(_, m)| !m.is_empty())
        .map(|(j, mut m)| {
            m.sort_by(|&a, &b| c.confidence[b].total_cmp(&c.confidence[a]).then(a.cmp(&b)));
            let named =
                report.and_then(|r| r.sam_clusters.iter().find(|s| s.cluster == j.to_string()));
            Module {
                cluster: j,
                members: m,
                sam: named.map(|s| s.sam),
                quality: named.map(|s| s.quality),
            }
        })
        .collect()
}

/// `modules.csv`: one row per non-empty cluster, `cluster,size,sam,quality,mean_confidence,
/// symbols,gene_ids`; the member lists are `;`-separated, highest confidence first.
pub fn write_modules_csv(
    path: &Path,
    modules: &[Module],
    ids: &[String],
    symbols: &[String],
    confidence: &[f64],
) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| DarlcError::Data(format!("{}: {e}", path.display()));
    w.write_record([
        "cluster",
        "size",
        "sam",
        "quality",
        "mean_confidence",
        "symbols",
        "gene_ids",
    ])
    .map_err(err)?;
    for m in modules {
        let mean_conf =
            m.members.iter().map(|&i| confidence[i]).sum::<f64>() / m.size().max(1) as f64;
        let join = |names: &[String]| {
            m.members
                .iter()
                .map(|&i| names[i].as_str())
                .collect::<Vec<_>>()
                .join(";")
        };
        w.write_record([
            m.cluster.to_string(),
            m.size().to_string(),
            m.sam.map_or_else(String::new, |s| format!("{s:.6}")),
            m.quality.unwrap_or("").to_string(),
            format!("{mean_conf:.6}"),
            join(symbols),
            join(ids),
        ])
        .map_err(err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| DarlcError::Data(format!("{}: {e}", path.display())))?;
    atomic_write(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clustering(labels: Vec<usize>, confidence: Vec<f64>) -> Clustering {
        Clustering {
            labels,
            confidence,
            embedding: None,
            responsibilities: None,
            mixture: None,
        }
    }

    #[test]
    fn members_by_confidence_and_empty_clusters_skipped() {
        let c = clustering(vec![2, 0, 2, 2, 0], vec![0.5, 0.9, 0.8, 0.5, 0.9]);
        let m = modules(&c, None);
        assert_eq!(m.len(), 2, "cluster 1 is empty");
        assert_eq!((m[0].cluster, m[0].members.clone()), (0, vec![1, 4]));
        // 0.8 first, then the two 0.5 in input order.
        assert_eq!((m[1].cluster, m[1].members.clone()), (2, vec![2, 0, 3]));
        assert_eq!(m[1].sam, None);
    }

    #[test]
    fn modules_csv_lists_symbols_in_confidence_order() {
        let c = clustering(vec![1, 1, 0], vec![0.6, 0.7, 1.0]);
        let m = modules(&c, None);
        let ids: Vec<String> = ["E1", "E2", "E3"].map(String::from).into();
        let sym: Vec<String> = ["Foo", "Bar", "Baz"].map(String::from).into();
        let d = std::env::temp_dir().join(format!("darlc-modules-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("modules.csv");
        write_modules_csv(&p, &m, &ids, &sym, &c.confidence).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "cluster,size,sam,quality,mean_confidence,symbols,gene_ids\n\
             0,1,,,1.000000,Baz,E3\n\
             1,2,,,0.650000,Bar;Foo,E2;E1\n"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
