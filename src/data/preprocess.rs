//! Count preprocessing (method §2.1) and MSI total-ion-current normalisation (method §2.3).

use crate::error::{DarlcError, Result};
use ndarray::Array2;
use serde::Serialize;

/// One row of the features table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feature {
    pub id: String,
    pub symbol: String,
    /// Feature type is "Gene Expression" (10x `features.tsv` column 3; always true for `genes.tsv`).
    pub gene_expression: bool,
}

/// A stored count: spot `spot` (index into the used spots), gene `gene` (index into the features).
/// Entry lists are sorted by (spot, gene) with no repeated pair.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpotEntry {
    pub spot: u32,
    pub gene: u32,
    pub value: f64,
}

/// Why a gene was dropped, or kept (method §2.1 steps 1–2, in that order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeneFate {
    NotGeneExpression,
    Mitochondrial,
    SpikeIn,
    TooFewSpots,
    Kept,
}

/// The per-rule gene counts of method §2.1.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GeneFilterReport {
    pub genes_in: usize,
    pub dropped_not_gene_expression: usize,
    pub dropped_mt: usize,
    pub dropped_ercc: usize,
    pub dropped_min_spots: usize,
    pub genes_kept: usize,
    pub min_spots: usize,
    /// Median positive library size `T` used by normalize_total.
    pub library_median: f64,
    /// Spots whose library (over kept genes) is 0; left at zero, never dropped.
    pub spots_zero_library: usize,
}

/// `true` if `prefix` is a case-insensitive prefix of `s`.
fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Step 1 of method §2.1 plus the feature-type rule: the fate of a gene before counting spots.
pub fn symbol_fate(f: &Feature) -> GeneFate {
    let name = if f.symbol.is_empty() {
        &f.id
    } else {
        &f.symbol
    };
    if !f.gene_expression {
        GeneFate::NotGeneExpression
    } else if starts_with_ci(name, "MT-") {
        GeneFate::Mitochondrial
    } else if starts_with_ci(name, "ERCC-") {
        GeneFate::SpikeIn
    } else {
        GeneFate::Kept
    }
}

/// Median with numpy's even-count rule (mean of the two middle values); `None` if empty.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    })
}

/// method §2.1 steps 1–4 on a sparse count list: drop non-"Gene Expression", `MT-` and `ERCC-`
/// genes, keep genes expressed (> 0) in at least `min_spots` spots, normalise every spot to the
/// median positive library size and take `ln(1 + ·)`.
///
/// Returns `X` `[n_spots, G]` (f32, computed in f64), the feature indices of the kept genes in
/// feature order, and the per-rule report. Nothing left after filtering is an error.
pub fn preprocess_counts(
    features: &[Feature],
    n_spots: usize,
    entries: &[SpotEntry],
    min_spots: usize,
) -> Result<(Array2<f32>, Vec<usize>, GeneFilterReport)> {
    let mut report = GeneFilterReport {
        genes_in: features.len(),
        min_spots,
        ..Default::default()
    };
    let mut spots_expressing = vec![0usize; features.len()];
    for e in entries {
        if e.value > 0.0 {
            spots_expressing[e.gene as usize] += 1;
        }
    }
    let mut kept_index = vec![usize::MAX; features.len()];
    let mut kept = Vec::new();
    for (g, f) in features.iter().enumerate() {
        let fate = match symbol_fate(f) {
            GeneFate::Kept if spots_expressing[g] < min_spots => GeneFate::TooFewSpots,
            other => other,
        };
        match fate {
            GeneFate::NotGeneExpression => report.dropped_not_gene_expression += 1,
            GeneFate::Mitochondrial => report.dropped_mt += 1,
            GeneFate::SpikeIn => report.dropped_ercc += 1,
            GeneFate::TooFewSpots => report.dropped_min_spots += 1,
            GeneFate::Kept => {
                kept_index[g] = kept.len();
                kept.push(g);
            }
        }
    }
    report.genes_kept = kept.len();
    if kept.is_empty() || n_spots == 0 {
        return Err(DarlcError::Data(format!(
            "nothing left after filtering: {} genes in, {} not \"Gene Expression\", {} MT-, {} ERCC-, \
             {} expressed in fewer than {} of the {} spots (lower --min-spots, or check the input)",
            report.genes_in,
            report.dropped_not_gene_expression,
            report.dropped_mt,
            report.dropped_ercc,
            report.dropped_min_spots,
            min_spots,
            n_spots
        )));
    }
    // Library sizes over kept genes, summed in (spot, gene) order.
    let mut library = vec![0.0f64; n_spots];
    for e in entries {
        if kept_index[e.gene as usize] != usize::MAX {
            library[e.spot as usize] += e.value;
        }
    }
    let mut positive: Vec<f64> = library.iter().copied().filter(|&t| t > 0.0).collect();
    report.spots_zero_library = n_spots - positive.len();
    let target = median(&mut positive).ok_or_else(|| {
        DarlcError::Data(
            "nothing left after filtering: every spot has zero counts over the kept genes".into(),
        )
    })?;
    report.library_median = target;
    let mut x = Array2::<f32>::zeros((n_spots, kept.len()));
    for e in entries {
        let k = kept_index[e.gene as usize];
        let t = library[e.spot as usize];
        if k != usize::MAX && t > 0.0 && e.value > 0.0 {
            x[[e.spot as usize, k]] = (e.value * (target / t)).ln_1p() as f32;
        }
    }
    Ok((x, kept, report))
}

/// method §2.3 (MSI): `X_qm = a_qm · median{TIC_q' > 0} / TIC_q`, no log; pixels with TIC 0 are not
/// tissue. Returns the dense `[n_pixels, M]` matrix (zero rows for non-tissue pixels), the TIC per
/// pixel and the median TIC.
pub fn tic_normalise(
    n_pixels: usize,
    n_channels: usize,
    entries: &[SpotEntry],
) -> Result<(Array2<f32>, Vec<f64>, f64)> {
    let mut tic = vec![0.0f64; n_pixels];
    for e in entries {
        tic[e.spot as usize] += e.value;
    }
    let mut positive: Vec<f64> = tic.iter().copied().filter(|&t| t > 0.0).collect();
    let med = median(&mut positive).ok_or_else(|| {
        DarlcError::Data("nothing left: every MSI pixel has total ion current 0".into())
    })?;
    let mut x = Array2::<f32>::zeros((n_pixels, n_channels));
    for e in entries {
        let t = tic[e.spot as usize];
        if t > 0.0 {
            x[[e.spot as usize, e.gene as usize]] = (e.value * (med / t)) as f32;
        }
    }
    Ok((x, tic, med))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feat(s: &str) -> Feature {
        Feature {
            id: s.into(),
            symbol: s.into(),
            gene_expression: true,
        }
    }

    #[test]
    fn prefixes_are_case_insensitive_and_need_the_hyphen() {
        assert_eq!(symbol_fate(&feat("MT-CO1")), GeneFate::Mitochondrial);
        assert_eq!(symbol_fate(&feat("mt-Nd1")), GeneFate::Mitochondrial);
        assert_eq!(symbol_fate(&feat("MT2A")), GeneFate::Kept);
        assert_eq!(symbol_fate(&feat("ERCC-00002")), GeneFate::SpikeIn);
        assert_eq!(symbol_fate(&feat("Ercc1")), GeneFate::Kept);
        let mut f = feat("A");
        f.gene_expression = false;
        assert_eq!(symbol_fate(&f), GeneFate::NotGeneExpression);
    }

    #[test]
    fn median_even_and_odd() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn normalise_and_log_by_hand() {
        // 3 spots × 3 genes; gene 2 is MT-; min_spots = 2.
        // counts: spot0: g0=1,g1=3,g2=5 ; spot1: g0=2 ; spot2: g1=1
        let f = vec![feat("A"), feat("B"), feat("MT-X")];
        let e = vec![
            SpotEntry {
                spot: 0,
                gene: 0,
                value: 1.0,
            },
            SpotEntry {
                spot: 0,
                gene: 1,
                value: 3.0,
            },
            SpotEntry {
                spot: 0,
                gene: 2,
                value: 5.0,
            },
            SpotEntry {
                spot: 1,
                gene: 0,
                value: 2.0,
            },
            SpotEntry {
                spot: 2,
                gene: 1,
                value: 1.0,
            },
        ];
        let (x, kept, rep) = preprocess_counts(&f, 3, &e, 2).unwrap();
        assert_eq!(kept, vec![0, 1]);
        assert_eq!(rep.dropped_mt, 1);
        // libraries over kept genes: 4, 2, 1 -> median T = 2 (hand computation).
        assert_eq!(rep.library_median, 2.0);
        // spot0 g1: ln(1 + 3·2/4) = ln 2.5
        assert!((x[[0, 1]] as f64 - 2.5f64.ln()).abs() < 1e-6);
        // spot1 g0: ln(1 + 2·2/2) = ln 3 ; spot2 g1: ln(1 + 1·2/1) = ln 3
        assert!((x[[1, 0]] as f64 - 3f64.ln()).abs() < 1e-6);
        assert!((x[[2, 1]] as f64 - 3f64.ln()).abs() < 1e-6);
        assert_eq!(x[[1, 1]], 0.0);
        // min_spots 3 removes both: error.
        let err = preprocess_counts(&f, 3, &e, 3).unwrap_err().to_string();
        assert!(err.contains("nothing left"), "{err}");
    }

    #[test]
    fn tic_by_hand() {
        // pixel0: 1, 3 (TIC 4); pixel1: 2 (TIC 2); pixel2: nothing -> median TIC 3.
        let e = vec![
            SpotEntry {
                spot: 0,
                gene: 0,
                value: 1.0,
            },
            SpotEntry {
                spot: 0,
                gene: 1,
                value: 3.0,
            },
            SpotEntry {
                spot: 1,
                gene: 1,
                value: 2.0,
            },
        ];
        let (x, tic, med) = tic_normalise(3, 2, &e).unwrap();
        assert_eq!(med, 3.0);
        assert_eq!(tic, vec![4.0, 2.0, 0.0]);
        assert_eq!(x[[0, 1]], 2.25); // 3·3/4
        assert_eq!(x[[1, 1]], 3.0); // 2·3/2
    }
}
