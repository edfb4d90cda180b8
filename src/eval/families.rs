//! Spatially co-functional gene clustering ([P] §4.3.2): genes of a few families are clustered by
//! Leiden on their embeddings and scored by NMI/ARI against the family.
//!
//! Built-in prefix rules (case-sensitive; human symbols are upper case, mouse symbols
//! capitalised, so one rule set serves both species):
//!
//! | family | human | mouse |
//! |---|---|---|
//! | `HLA` (MHC) | starts with `HLA-` | starts with `H2-` |
//! | `GABR` (GABA-A receptor subunits) | `GABR` + one letter + optional digits (`GABRA1`, `GABRG2`, `GABRD`) | `Gabr` + one letter + optional digits |
//! | `RPL` (large ribosomal subunit) | `RPL` + digits + optional `A`, `L`, `AL` or `L1` (`RPL10A`, `RPL36AL`), or `RPLP0`–`RPLP2` | same in lower case after `Rpl` (`Rpl10a`, `Rplp0`) |
//! | `MT` (metallothioneins) | `MT` + digit 1–4 + optional one letter (`MT1X`, `MT2A`, `MT3`) | `Mt1`–`Mt4` |
//!
//! Not matched on purpose: mitochondrial genes (`MT-CO1`, `mt-Nd1`), pseudogenes and antisense
//! transcripts (`RPL13AP5`, `MT1DP`, `GABRG3-AS1`), and unrelated `MT…` symbols (`MTOR`).
//! A user's family file replaces the rules: CSV with a header, gene in the first column, family
//! in the second; genes not present in the embeddings are skipped and listed.

use crate::error::{DarlcError, Result};
use crate::eval::knn::{Metric, knn_graph};
use crate::eval::leiden::{LeidenParams, leiden};
use crate::eval::metrics::{ari, dense_labels, nmi};
use ndarray::{Array2, ArrayView2, Axis};
use std::collections::BTreeMap;

fn digits_then(s: &str) -> Option<(&str, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    (end > 0).then(|| (&s[..end], &s[end..]))
}

fn one_letter_then_digits(s: &str, upper: bool) -> bool {
    let mut ch = s.chars();
    match ch.next() {
        Some(c) if (upper && c.is_ascii_uppercase()) || (!upper && c.is_ascii_lowercase()) => {
            ch.all(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

/// The built-in family of a gene symbol (module doc for the rules), or `None`.
pub fn family_of_symbol(symbol: &str) -> Option<&'static str> {
    if symbol.starts_with("HLA-") || symbol.starts_with("H2-") {
        return Some("HLA");
    }
    if let Some(rest) = symbol.strip_prefix("GABR") {
        return one_letter_then_digits(rest, true).then_some("GABR");
    }
    if let Some(rest) = symbol.strip_prefix("Gabr") {
        return one_letter_then_digits(rest, false).then_some("GABR");
    }
    for (prefix, suffixes, p) in [
        ("RPL", ["", "A", "L", "AL", "L1"], "P"),
        ("Rpl", ["", "a", "l", "al", "l1"], "p"),
    ] {
        if let Some(rest) = symbol.strip_prefix(prefix) {
            if let Some(d) = rest.strip_prefix(p) {
                return matches!(d, "0" | "1" | "2").then_some("RPL");
            }
            return match digits_then(rest) {
                Some((_, suffix)) if suffixes.contains(&suffix) => Some("RPL"),
                _ => None,
            };
        }
    }
    if let Some(rest) = symbol.strip_prefix("MT") {
        let b = rest.as_bytes();
        let ok = matches!(b.first(), Some(b'1'..=b'4'))
            && (b.len() == 1 || (b.len() == 2 && b[1].is_ascii_uppercase()));
        return ok.then_some("MT");
    }
    if let Some(rest) = symbol.strip_prefix("Mt") {
        return matches!(rest, "1" | "2" | "3" | "4").then_some("MT");
    }
    None
}

/// Rows of `names` that belong to a built-in family, as `(row, family)` in row order.
pub fn select_by_rules(names: &[String]) -> Vec<(usize, String)> {
    names
        .iter()
        .enumerate()
        .filter_map(|(i, s)| family_of_symbol(s).map(|f| (i, f.to_string())))
        .collect()
}

/// Read a family file: CSV with a header, gene in the first column, family in the second.
pub fn read_family_file(path: &std::path::Path) -> Result<Vec<(String, String)>> {
    crate::eval::input::read_two_column_csv(path)
}

/// Rows of `names` listed in a family file (`entries` = (gene, family)); returns the selection in
/// row order and the genes of the file not found among `names` (sorted).
pub fn select_by_file(
    names: &[String],
    entries: &[(String, String)],
) -> (Vec<(usize, String)>, Vec<String>) {
    let fam: BTreeMap<&str, &str> = entries
        .iter()
        .map(|(g, f)| (g.as_str(), f.as_str()))
        .collect();
    let sel = names
        .iter()
        .enumerate()
        .filter_map(|(i, s)| fam.get(s.as_str()).map(|f| (i, f.to_string())))
        .collect();
    let present: std::collections::BTreeSet<&str> = names.iter().map(|s| s.as_str()).collect();
    let missing = fam
        .keys()
        .filter(|g| !present.contains(*g))
        .map(|g| g.to_string())
        .collect();
    (sel, missing)
}

/// Result of the gene-family benchmark.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FamilyReport {
    /// Selected genes, their family and their Leiden cluster, in row order.
    pub genes: Vec<String>,
    pub families: Vec<String>,
    pub clusters: Vec<usize>,
    /// Genes per family.
    pub family_sizes: BTreeMap<String, usize>,
    pub n_clusters: usize,
    /// Neighbours used (the requested k, capped at genes − 1).
    pub k: usize,
    pub nmi: f64,
    pub ari: f64,
    /// Genes of a family file absent from the embeddings (empty for the built-in rules).
    pub missing: Vec<String>,
}

/// Leiden on the kNN graph of the selected rows of `x` (`selection` = (row, family)), scored by
/// NMI and ARI against the family ([P] §4.3.2). Errors unless at least 3 genes of at least 2
/// families are selected.
pub fn family_benchmark(
    names: &[String],
    x: ArrayView2<f64>,
    selection: &[(usize, String)],
    k: usize,
    metric: Metric,
    params: &LeidenParams,
) -> Result<FamilyReport> {
    let fams: Vec<String> = selection.iter().map(|(_, f)| f.clone()).collect();
    let (codes, distinct) = dense_labels(&fams);
    if selection.len() < 3 || distinct.len() < 2 {
        return Err(DarlcError::Data(format!(
            "gene-family benchmark needs at least 3 genes of at least 2 families; found {} genes \
             of {} families ({})",
            selection.len(),
            distinct.len(),
            distinct.join(", ")
        )));
    }
    let rows: Vec<usize> = selection.iter().map(|(r, _)| *r).collect();
    let sub: Array2<f64> = x.select(Axis(0), &rows);
    let k = k.min(rows.len() - 1);
    let g = knn_graph(sub.view(), k, metric)?;
    let r = leiden(&g, params)?;
    let mut family_sizes = BTreeMap::new();
    for f in &fams {
        *family_sizes.entry(f.clone()).or_insert(0) += 1;
    }
    Ok(FamilyReport {
        genes: rows.iter().map(|&i| names[i].clone()).collect(),
        families: fams,
        nmi: nmi(&codes, &r.membership)?,
        ari: ari(&codes, &r.membership)?,
        clusters: r.membership,
        family_sizes,
        n_clusters: r.n_communities,
        k,
        missing: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn prefix_rules() {
        for (s, want) in [
            ("HLA-A", Some("HLA")),
            ("HLA-DRB1", Some("HLA")),
            ("H2-K1", Some("HLA")),
            ("GABRA1", Some("GABR")),
            ("GABRD", Some("GABR")),
            ("GABRG3-AS1", None),
            ("Gabrb2", Some("GABR")),
            ("RPL3", Some("RPL")),
            ("RPL10A", Some("RPL")),
            ("RPL36AL", Some("RPL")),
            ("RPLP0", Some("RPL")),
            ("RPL13AP5", None),
            ("RPLP3", None),
            ("Rpl10a", Some("RPL")),
            ("Rplp1", Some("RPL")),
            ("MT1X", Some("MT")),
            ("MT2A", Some("MT")),
            ("MT3", Some("MT")),
            ("MT-CO1", None),
            ("MT1DP", None),
            ("MTOR", None),
            ("Mt1", Some("MT")),
            ("mt-Nd1", None),
            ("Mt5", None),
            ("ACTB", None),
        ] {
            assert_eq!(family_of_symbol(s), want, "{s}");
        }
    }

    #[test]
    fn benchmark_recovers_separated_families() {
        // Four families whose embeddings sit around well-separated centres: Leiden on a 4-NN
        // graph must recover them exactly (NMI = ARI = 1).
        let names: Vec<String> = [
            "HLA-A", "HLA-B", "HLA-C", "HLA-E", "HLA-F", "GABRA1", "GABRA2", "GABRB1", "GABRB2",
            "GABRG2", "RPL3", "RPL4", "RPL5", "RPL6", "RPL7", "MT1X", "MT2A", "MT1E", "MT1F",
            "MT1G", "ACTB",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut r = crate::rng::stream(1, "test.families");
        let x = Array2::from_shape_fn((names.len(), 4), |(i, j)| {
            let centre = if i / 5 == j { 10.0 } else { 0.0 };
            centre + r.random_range(-1.0..1.0)
        });
        let sel = select_by_rules(&names);
        assert_eq!(sel.len(), 20); // ACTB is not in any family
        let rep = family_benchmark(
            &names,
            x.view(),
            &sel,
            4,
            Metric::Euclidean,
            &Default::default(),
        )
        .unwrap();
        assert_eq!(rep.nmi, 1.0);
        assert_eq!(rep.ari, 1.0);
        assert_eq!(rep.family_sizes["MT"], 5);
    }

    #[test]
    fn file_selection_and_too_few() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let entries = vec![
            ("c".to_string(), "F1".to_string()),
            ("a".to_string(), "F2".to_string()),
            ("zz".to_string(), "F2".to_string()),
        ];
        let (sel, missing) = select_by_file(&names, &entries);
        assert_eq!(sel, vec![(0, "F2".to_string()), (2, "F1".to_string())]);
        assert_eq!(missing, vec!["zz".to_string()]);
        let x = Array2::<f64>::zeros((3, 2));
        assert!(
            family_benchmark(
                &names,
                x.view(),
                &sel,
                2,
                Metric::Euclidean,
                &Default::default()
            )
            .is_err()
        );
    }
}
