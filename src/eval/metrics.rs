//! Clustering metrics of method §12: Davies–Bouldin with Euclidean (DBIE) and Pearson (DBIP)
//! distances, NMI, ARI, ACC and the spectral angle mapper (SAM).
//!
//! Labels are `&[usize]` with arbitrary values (they need not be dense or start at 0); any other
//! label type can be turned into such codes with [`dense_labels`]. Data are `ArrayView2<f64>`
//! with one row per item.
//!
//! Where definitions differ between libraries:
//! * **NMI** uses the arithmetic mean of the two entropies as normaliser (scikit-learn's default
//!   `average_method="arithmetic"`); other libraries use the geometric mean or the maximum.
//!   Natural logarithms (the base cancels in the ratio).
//! * **DBIE** computes every distance from the difference vector `a − b`; scikit-learn's
//!   `davies_bouldin_score` expands `‖a‖² + ‖b‖² − 2a·b`, so the two agree to ≈1e-7 relative,
//!   not to rounding. scikit-learn also returns 0 when all widths or all centroid distances are
//!   (close to) zero; here a clustering whose every centroid pair coincides is an error, and zero
//!   widths give 0 honestly.
//! * **DBIP** (Song et al. 2022) replaces the distance by `1 − r` with Pearson `r`, and `r := 0`
//!   for a constant vector (method §16); centroids are still arithmetic means.
//! * **SAM** is the mean member-to-centroid angle per cluster (not all pairs), method §12.3.

use crate::error::{DarlcError, Result};
use crate::eval::hungarian::{Objective, assign};
use ndarray::{Array2, ArrayView1, ArrayView2, Axis};
use rayon::prelude::*;
use std::collections::BTreeMap;

/// Map labels of any ordered type to dense codes `0..K`, in the sorted order of the distinct
/// values. Returns the codes and the distinct values (`values[code]` is the original label).
pub fn dense_labels<L: Ord + Clone>(labels: &[L]) -> (Vec<usize>, Vec<L>) {
    let mut values: Vec<L> = labels.to_vec();
    values.sort();
    values.dedup();
    let codes = labels
        .iter()
        .map(|l| {
            values
                .binary_search(l)
                .expect("value is in its own sorted set")
        })
        .collect();
    (codes, values)
}

/// The distance `δ` of Eq. 26.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distance {
    /// `δ(a, b) = ‖a − b‖`, computed from the difference (DBIE).
    Euclidean,
    /// `δ(a, b) = 1 − r(a, b)`, Pearson `r`, `r := 0` for a constant vector (DBIP).
    Pearson,
}

impl Distance {
    /// `δ(a, b)` for this distance.
    pub fn between(self, a: ArrayView1<f64>, b: ArrayView1<f64>) -> f64 {
        match self {
            Distance::Euclidean => a
                .iter()
                .zip(b.iter())
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f64>()
                .sqrt(),
            Distance::Pearson => 1.0 - pearson(a, b),
        }
    }
}

fn is_constant(a: ArrayView1<f64>) -> bool {
    match a.iter().next() {
        None => true,
        Some(&first) => a.iter().all(|&x| x == first),
    }
}

/// Pearson correlation of two equally long vectors, clamped to [−1, 1]; `0` if either vector is
/// constant (method §16 "Pearson with zero variance → 0"). Constancy is tested on the values
/// themselves, not on a rounded variance.
pub fn pearson(a: ArrayView1<f64>, b: ArrayView1<f64>) -> f64 {
    assert_eq!(a.len(), b.len(), "pearson: vectors of different lengths");
    if is_constant(a) || is_constant(b) {
        return 0.0;
    }
    let n = a.len() as f64;
    let ma = a.sum() / n;
    let mb = b.sum() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b.iter()) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    let den = (saa * sbb).sqrt();
    if den == 0.0 {
        return 0.0;
    }
    (sab / den).clamp(-1.0, 1.0)
}

fn check_lengths(what: &str, n_rows: usize, labels: usize) -> Result<()> {
    if n_rows != labels {
        return Err(DarlcError::Data(format!(
            "{what}: {n_rows} data rows but {labels} labels"
        )));
    }
    if n_rows == 0 {
        return Err(DarlcError::Data(format!("{what}: no items")));
    }
    Ok(())
}

/// Arithmetic-mean centroids of the dense clusters `0..k` (rows summed in index order).
fn centroids(x: ArrayView2<f64>, codes: &[usize], k: usize) -> (Array2<f64>, Vec<usize>) {
    let mut c = Array2::<f64>::zeros((k, x.ncols()));
    let mut size = vec![0usize; k];
    for (row, &g) in x.axis_iter(Axis(0)).zip(codes) {
        c.row_mut(g).zip_mut_with(&row, |s, &v| *s += v);
        size[g] += 1;
    }
    for (mut row, &s) in c.axis_iter_mut(Axis(0)).zip(&size) {
        row.mapv_inplace(|v| v / s as f64);
    }
    (c, size)
}

/// Davies–Bouldin index, method §12.1 Eq. 26, with distance `delta`:
/// `DB = (1/K') Σ_k max_{l≠k, M_kl>0} (s_k + s_l)/M_kl`.
///
/// Singletons have width 0. Pairs with `M_kl = 0` are skipped; a cluster whose every pair is skipped contributes 0 (it
/// still counts in K'). Errors if fewer than two clusters are non-empty or every pair is
/// skipped (the index is undefined).
pub fn davies_bouldin(x: ArrayView2<f64>, labels: &[usize], delta: Distance) -> Result<f64> {
    check_lengths("Davies–Bouldin index", x.nrows(), labels.len())?;
    let (codes, values) = dense_labels(labels);
    let k = values.len();
    if k < 2 {
        return Err(DarlcError::Data(
            "Davies–Bouldin index is undefined for fewer than 2 clusters".into(),
        ));
    }
    let (c, size) = centroids(x, &codes, k);
    // Member-to-centroid distances: independent per row, collected in row order.
    let d: Vec<f64> = (0..x.nrows())
        .into_par_iter()
        .map(|i| delta.between(x.row(i), c.row(codes[i])))
        .collect();
    let mut width = vec![0.0f64; k];
    for (di, &g) in d.iter().zip(&codes) {
        width[g] += di;
    }
    for (w, &s) in width.iter_mut().zip(&size) {
        // method §12.1: singletons have s_k = 0 (for DBIP a constant singleton would otherwise get
        // δ(x, x) = 1 − 0 = 1).
        *w = if s == 1 { 0.0 } else { *w / s as f64 };
    }
    // Centroid separations M_ab for a < b, one row per task (each entry independent).
    let upper: Vec<Vec<f64>> = (0..k)
        .into_par_iter()
        .map(|a| {
            (a + 1..k)
                .map(|b| delta.between(c.row(a), c.row(b)))
                .collect()
        })
        .collect();
    let sep = |a: usize, b: usize| {
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        upper[lo][hi - lo - 1]
    };
    let mut any_pair = false;
    let mut total = 0.0;
    for a in 0..k {
        let mut worst: Option<f64> = None;
        for b in 0..k {
            if a == b {
                continue;
            }
            let m = sep(a, b);
            if m > 0.0 {
                any_pair = true;
                let r = (width[a] + width[b]) / m;
                worst = Some(worst.map_or(r, |w: f64| w.max(r)));
            }
        }
        total += worst.unwrap_or(0.0);
    }
    if !any_pair {
        return Err(DarlcError::Data(
            "Davies–Bouldin index is undefined: every pair of cluster centroids is at distance 0"
                .into(),
        ));
    }
    Ok(total / k as f64)
}

/// DBIE: Davies–Bouldin with Euclidean distance (method §12.1).
pub fn dbie(x: ArrayView2<f64>, labels: &[usize]) -> Result<f64> {
    davies_bouldin(x, labels, Distance::Euclidean)
}

/// DBIP: Davies–Bouldin with Pearson distance `1 − r` (method §12.1, [Song]).
pub fn dbip(x: ArrayView2<f64>, labels: &[usize]) -> Result<f64> {
    davies_bouldin(x, labels, Distance::Pearson)
}

/// The contingency table of two labelings: sparse cells in (u, v) order and the marginals.
struct Contingency {
    cells: BTreeMap<(usize, usize), u64>,
    a: Vec<u64>,
    b: Vec<u64>,
    n: u64,
}

impl Contingency {
    fn new(what: &str, truth: &[usize], pred: &[usize]) -> Result<Self> {
        check_lengths(what, truth.len(), pred.len())?;
        let (tu, tv) = dense_labels(truth);
        let (pu, pv) = dense_labels(pred);
        let mut cells = BTreeMap::new();
        let mut a = vec![0u64; tv.len()];
        let mut b = vec![0u64; pv.len()];
        for (&u, &v) in tu.iter().zip(&pu) {
            *cells.entry((u, v)).or_insert(0u64) += 1;
            a[u] += 1;
            b[v] += 1;
        }
        Ok(Contingency {
            cells,
            a,
            b,
            n: truth.len() as u64,
        })
    }
}

fn entropy(counts: &[u64], n: f64) -> f64 {
    -counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            p * p.ln()
        })
        .sum::<f64>()
}

/// Normalised mutual information, method §12.2, arithmetic normalisation:
/// `NMI = I / ((H(y) + H(ŷ))/2)`; 1 if both labelings have a single class, 0 if exactly one
/// entropy is 0. `I` is clamped at 0 from below (rounding), as scikit-learn does.
pub fn nmi(truth: &[usize], pred: &[usize]) -> Result<f64> {
    let t = Contingency::new("NMI", truth, pred)?;
    let n = t.n as f64;
    let (ha, hb) = (entropy(&t.a, n), entropy(&t.b, n));
    if t.a.len() == 1 && t.b.len() == 1 {
        return Ok(1.0);
    }
    if ha == 0.0 || hb == 0.0 {
        return Ok(0.0);
    }
    Ok(mutual_info(&t) / ((ha + hb) / 2.0))
}

/// `I(y; ŷ)` in nats from the contingency table, clamped at 0 from below (rounding).
fn mutual_info(t: &Contingency) -> f64 {
    let n = t.n as f64;
    let mut mi = 0.0;
    for (&(u, v), &c) in &t.cells {
        let c = c as f64;
        mi += (c / n) * ((n * c) / (t.a[u] as f64 * t.b[v] as f64)).ln();
    }
    mi.max(0.0)
}

/// Homogeneity `I / H(y)` and completeness `I / H(ŷ)` (Rosenberg & Hirschberg 2007, as
/// scikit-learn's `homogeneity_completeness_v_measure`; each is 1 when its entropy is 0). Not in
/// method §12: NMI above is their harmonic mean, and they tell apart the two ways it falls.
/// Homogeneity is 1 when every cluster holds a single true class; completeness is 1 when every
/// class lies in a single cluster. With K far above the number of classes (the ST default
/// K = N/30 on a section of a few patterns) pure clusters still lose completeness, and NMI with
/// it, by how evenly they split each class; homogeneity says whether the clusters are pure.
pub fn homogeneity_completeness(truth: &[usize], pred: &[usize]) -> Result<(f64, f64)> {
    let t = Contingency::new("homogeneity", truth, pred)?;
    let n = t.n as f64;
    let (ha, hb) = (entropy(&t.a, n), entropy(&t.b, n));
    let mi = mutual_info(&t);
    let h = if ha == 0.0 { 1.0 } else { mi / ha };
    let c = if hb == 0.0 { 1.0 } else { mi / hb };
    Ok((h, c))
}

fn comb2(x: u64) -> f64 {
    // x(x−1)/2 exactly in integers, then widened (exact below 2^53).
    (x as u128 * x.saturating_sub(1) as u128 / 2) as f64
}

/// Adjusted Rand index (Hubert & Arabie), method §12.2; 1 when the denominator is 0.
pub fn ari(truth: &[usize], pred: &[usize]) -> Result<f64> {
    let t = Contingency::new("ARI", truth, pred)?;
    let sij: f64 = t.cells.values().map(|&c| comb2(c)).sum();
    let sa: f64 = t.a.iter().map(|&c| comb2(c)).sum();
    let sb: f64 = t.b.iter().map(|&c| comb2(c)).sum();
    let pairs = comb2(t.n);
    let expected = if pairs > 0.0 { sa * sb / pairs } else { 0.0 };
    let den = 0.5 * (sa + sb) - expected;
    if den == 0.0 {
        return Ok(1.0);
    }
    Ok((sij - expected) / den)
}

/// Clustering accuracy, method §12.2: the best one-to-one map between predicted and true labels
/// (Hungarian algorithm on the contingency matrix, padded with zeros), `Σ n_{u,perm(u)} / N`.
pub fn acc(truth: &[usize], pred: &[usize]) -> Result<f64> {
    let t = Contingency::new("ACC", truth, pred)?;
    let mut m = Array2::<f64>::zeros((t.a.len(), t.b.len()));
    for (&(u, v), &c) in &t.cells {
        m[[u, v]] = c as f64;
    }
    let best = assign(m.view(), Objective::Maximise)?;
    Ok(best.total / t.n as f64)
}

/// Spectral angle `θ(a, b) = arccos(clamp(a·b/(‖a‖‖b‖), −1, 1))`, `π/2` if either vector is
/// zero (method §12.3).
pub fn spectral_angle(a: ArrayView1<f64>, b: ArrayView1<f64>) -> f64 {
    let na = a.dot(&a).sqrt();
    let nb = b.dot(&b).sqrt();
    if na == 0.0 || nb == 0.0 {
        return std::f64::consts::FRAC_PI_2;
    }
    (a.dot(&b) / (na * nb)).clamp(-1.0, 1.0).acos()
}

/// SAM of one cluster.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ClusterSam {
    /// The cluster's label as given.
    pub label: usize,
    pub size: usize,
    /// `SAM_k`: mean member-to-centroid angle, radians.
    pub sam: f64,
    /// `SAM_k ≤ median_k SAM_k` ("high quality"), else "medium".
    pub high_quality: bool,
}

/// SAM scores of a clustering (method §12.3).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SamReport {
    /// One entry per non-empty cluster, in increasing label order.
    pub clusters: Vec<ClusterSam>,
    /// Unweighted mean of `SAM_k` over clusters (the single number of the `eval` table).
    pub mean: f64,
    /// Median of `SAM_k` (mean of the two middle values for an even count): the split point.
    pub median: f64,
}

/// SAM per cluster and the high/medium quality split at the median (method §12.3).
pub fn sam(x: ArrayView2<f64>, labels: &[usize]) -> Result<SamReport> {
    check_lengths("SAM", x.nrows(), labels.len())?;
    let (codes, values) = dense_labels(labels);
    let k = values.len();
    let (c, size) = centroids(x, &codes, k);
    let theta: Vec<f64> = (0..x.nrows())
        .into_par_iter()
        .map(|i| spectral_angle(x.row(i), c.row(codes[i])))
        .collect();
    let mut per = vec![0.0f64; k];
    for (t, &g) in theta.iter().zip(&codes) {
        per[g] += t;
    }
    for (p, &s) in per.iter_mut().zip(&size) {
        *p /= s as f64;
    }
    let mut sorted = per.clone();
    sorted.sort_by(f64::total_cmp);
    let median = if k % 2 == 1 {
        sorted[k / 2]
    } else {
        (sorted[k / 2 - 1] + sorted[k / 2]) / 2.0
    };
    let mean = per.iter().sum::<f64>() / k as f64;
    let clusters = (0..k)
        .map(|g| ClusterSam {
            label: values[g],
            size: size[g],
            sam: per[g],
            high_quality: per[g] <= median,
        })
        .collect();
    Ok(SamReport {
        clusters,
        mean,
        median,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use ndarray::array;
    use proptest::prelude::*;

    #[test]
    fn dense_labels_sorted_codes() {
        let (c, v) = dense_labels(&["b", "a", "b", "c"]);
        assert_eq!(c, vec![1, 0, 1, 2]);
        assert_eq!(v, vec!["a", "b", "c"]);
    }

    #[test]
    fn dbie_hand_computed() {
        // Clusters {(0,0),(2,0)} and {(10,0)}: centroids (1,0) and (10,0); widths 1 and 0;
        // separation 9 → both ratios (1+0)/9, DB = 1/9.
        let x = array![[0.0, 0.0], [2.0, 0.0], [10.0, 0.0]];
        assert_relative_eq!(
            dbie(x.view(), &[0, 0, 1]).unwrap(),
            1.0 / 9.0,
            max_relative = 1e-15
        );
    }

    #[test]
    fn dbie_matches_sklearn() {
        // python: from sklearn.metrics import davies_bouldin_score as d; import numpy as np
        // X=[[1,2],[2,1],[0,0],[8,9],[9,7],[5,5],[5,6],[-1,3]]; y=[0,0,0,1,1,2,2,0]
        // d(np.array(X,float), y) → 0.36138882633802605 (scikit-learn 1.9.1; agrees to ~1e-7 rel)
        let x = array![
            [1.0, 2.0],
            [2.0, 1.0],
            [0.0, 0.0],
            [8.0, 9.0],
            [9.0, 7.0],
            [5.0, 5.0],
            [5.0, 6.0],
            [-1.0, 3.0]
        ];
        let v = dbie(x.view(), &[0, 0, 0, 1, 1, 2, 2, 0]).unwrap();
        assert_relative_eq!(v, 0.36138882633802605, max_relative = 1e-7);
    }

    #[test]
    fn dbip_hand_computed() {
        // Cluster 0: a=(1,2,3), b=(1,2,4); centroid (1,2,3.5). Cluster 1: c=(3,2,1), centroid c.
        // numpy (np.corrcoef): r(a,c0)=0.9933992677987828, r(b,c0)=0.997176464952738 →
        // s0 = ((1−r1)+(1−r2))/2 = 0.004712133624239556; s1 = 0; M = 1 − r(c0,c) =
        // 1.9933992677987828; DB = (s0 + s1)/M for both clusters = 0.002363868443396663.
        let x = array![[1.0, 2.0, 3.0], [1.0, 2.0, 4.0], [3.0, 2.0, 1.0]];
        let v = dbip(x.view(), &[0, 0, 1]).unwrap();
        assert_relative_eq!(v, 0.002363868443396663, max_relative = 1e-12);
    }

    #[test]
    fn dbip_constant_images_use_r_zero() {
        // Cluster 0: two constant images (0 and 5 everywhere) → centroid constant 2.5; r := 0 so
        // each member distance is 1, s0 = 1. Cluster 1: (0,1,0,1) alone, s1 = 0. M = 1 − 0 = 1.
        // DB = (1 + 0)/1 = 1 for both clusters → 1.
        let x = array![
            [0.0, 0.0, 0.0, 0.0],
            [5.0, 5.0, 5.0, 5.0],
            [0.0, 1.0, 0.0, 1.0]
        ];
        let v = dbip(x.view(), &[3, 3, 7]).unwrap();
        assert_eq!(v, 1.0);
        // Constant 0.1 vectors: the rounded mean differs from 0.1, but r is still exactly 0.
        let a = array![0.1, 0.1, 0.1];
        assert_eq!(pearson(a.view(), array![1.0, 2.0, 4.0].view()), 0.0);
    }

    #[test]
    fn dbip_constant_singleton_has_zero_width() {
        // Cluster 0: a constant image alone (s0 = 0 by method §12.1, although δ(x, x) = 1 − 0).
        // Cluster 1: (1,2,3) and (3,2,1): centroid (2,2,2) constant → r := 0, s1 = 1.
        // M = 1 − r(const, const) = 1. DB = ((0+1)/1 + (1+0)/1)/2 = 1.
        let x = array![[4.0, 4.0, 4.0], [1.0, 2.0, 3.0], [3.0, 2.0, 1.0]];
        assert_eq!(dbip(x.view(), &[0, 1, 1]).unwrap(), 1.0);
    }

    #[test]
    fn db_undefined_cases_are_errors() {
        let x = array![[0.0], [1.0]];
        assert!(dbie(x.view(), &[0, 0]).is_err()); // K' = 1
        let x = array![[0.0], [2.0], [1.0], [1.0]];
        // Both centroids at 1 → every pair skipped.
        assert!(dbie(x.view(), &[0, 0, 1, 1]).is_err());
        assert!(dbie(x.view(), &[0, 0, 1]).is_err()); // length mismatch
    }

    #[test]
    fn db_skips_zero_separation_pairs() {
        // Clusters 0 and 1 share centroid (1); cluster 2 at 11. Widths 1, 0, 0.
        // k=0: pair (0,1) skipped, (0,2): (1+0)/10 = 0.1; k=1: (1,2): 0/10 = 0; k=2: max(0.1, 0)
        // → DB = (0.1 + 0 + 0.1)/3.
        let x = array![[0.0], [2.0], [1.0], [11.0]];
        let v = dbie(x.view(), &[0, 0, 1, 2]).unwrap();
        assert_relative_eq!(v, 0.2 / 3.0, max_relative = 1e-15);
    }

    #[test]
    fn nmi_ari_acc_hand_and_sklearn() {
        // python: from sklearn.metrics import normalized_mutual_info_score as nmi,
        //   adjusted_rand_score as ari; t=[0,0,0,1,1,1]; p=[0,0,1,1,2,2]
        //   nmi(t,p) → 0.5158037429793889, ari(t,p) → 0.24242424242424243
        let t = [0, 0, 0, 1, 1, 1];
        let p = [0, 0, 1, 1, 2, 2];
        assert_relative_eq!(
            nmi(&t, &p).unwrap(),
            0.5158037429793889,
            max_relative = 1e-12
        );
        assert_relative_eq!(
            ari(&t, &p).unwrap(),
            0.24242424242424243,
            max_relative = 1e-12
        );
        // ACC by hand: contingency rows t0:[2,1,0], t1:[0,1,2]; best map t0→p0, t1→p2 → 4/6.
        assert_relative_eq!(acc(&t, &p).unwrap(), 4.0 / 6.0, max_relative = 1e-15);
        // By hand: H(t) = ln 2, H(p) = ln 3, I = (1/3)ln(12/6) + 0 + 0 + (1/3)ln(12/6) = (2/3)ln 2,
        // so homogeneity 2/3 and completeness (2/3)ln 2 / ln 3 = 0.4206198357143049 (python:
        // 2/3*math.log(2)/math.log(3)); sklearn's homogeneity_completeness_v_measure has the
        // same definitions, and its V-measure is the NMI above.
        let (h, c) = homogeneity_completeness(&t, &p).unwrap();
        assert_relative_eq!(h, 2.0 / 3.0, max_relative = 1e-14);
        assert_relative_eq!(c, 2.0 / 3.0 * 2f64.ln() / 3f64.ln(), max_relative = 1e-14);
        // NMI is their harmonic mean.
        assert_relative_eq!(
            nmi(&t, &p).unwrap(),
            2.0 * h * c / (h + c),
            max_relative = 1e-14
        );
        // Splitting each class into pure clusters keeps homogeneity at 1 and lowers completeness.
        let (h, c) = homogeneity_completeness(&t, &[0, 0, 1, 2, 2, 3]).unwrap();
        assert_relative_eq!(h, 1.0, max_relative = 1e-14);
        assert!(c < 1.0);
        // Single-class edge cases follow scikit-learn: an entropy of 0 gives 1 for its score.
        assert_eq!(
            homogeneity_completeness(&[1, 1, 1], &[0, 1, 2]).unwrap(),
            (1.0, 0.0)
        );
        assert_eq!(
            homogeneity_completeness(&[0, 1, 2], &[1, 1, 1]).unwrap(),
            (0.0, 1.0)
        );
        assert!(homogeneity_completeness(&[0], &[0, 1]).is_err());
    }

    #[test]
    fn nmi_ari_edge_cases() {
        // Both single class → 1 (method §12.2); exactly one single class → 0.
        assert_eq!(nmi(&[1, 1, 1], &[4, 4, 4]).unwrap(), 1.0);
        assert_eq!(nmi(&[1, 1, 1], &[0, 1, 2]).unwrap(), 0.0);
        assert_eq!(nmi(&[0, 1, 2], &[1, 1, 1]).unwrap(), 0.0);
        // ARI denominator 0 (both all singletons, or both one class) → 1.
        assert_eq!(ari(&[0, 1, 2], &[5, 6, 7]).unwrap(), 1.0);
        assert_eq!(ari(&[0, 0], &[1, 1]).unwrap(), 1.0);
        // Identical partitions up to renaming.
        assert_relative_eq!(
            nmi(&[0, 0, 1, 2], &[9, 9, 3, 1]).unwrap(),
            1.0,
            max_relative = 1e-15
        );
        assert_relative_eq!(
            ari(&[0, 0, 1, 2], &[9, 9, 3, 1]).unwrap(),
            1.0,
            max_relative = 1e-15
        );
        assert_eq!(acc(&[0, 0, 1, 2], &[9, 9, 3, 1]).unwrap(), 1.0);
        assert!(nmi(&[], &[]).is_err());
        assert!(ari(&[0], &[0, 1]).is_err());
    }

    #[test]
    fn acc_more_clusters_than_classes() {
        // t=[0,0,0,0,1,1], p=[0,0,1,1,2,2]: contingency t0:[2,2,0], t1:[0,0,2]; best 2+2 = 4 → 4/6.
        assert_relative_eq!(
            acc(&[0, 0, 0, 0, 1, 1], &[0, 0, 1, 1, 2, 2]).unwrap(),
            4.0 / 6.0,
            max_relative = 1e-15
        );
    }

    #[test]
    fn sam_hand_computed() {
        // Cluster 0: (1,0),(0,1): centroid (.5,.5), both angles π/4 → SAM 0.785398…
        // Cluster 1: (1,0),(2,0): centroid (1.5,0), angles 0 → SAM 0.
        // Cluster 2: (0,0) alone: zero vector → π/2.
        // Median of {π/4, 0, π/2} = π/4 → clusters 0 and 1 high quality, 2 medium.
        let x = array![[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [2.0, 0.0], [0.0, 0.0]];
        let r = sam(x.view(), &[0, 0, 1, 1, 2]).unwrap();
        let pi = std::f64::consts::PI;
        assert_relative_eq!(r.clusters[0].sam, pi / 4.0, max_relative = 1e-15);
        assert_eq!(r.clusters[1].sam, 0.0);
        assert_eq!(r.clusters[2].sam, pi / 2.0);
        assert_relative_eq!(r.median, pi / 4.0, max_relative = 1e-15);
        assert_relative_eq!(r.mean, (pi / 4.0 + pi / 2.0) / 3.0, max_relative = 1e-15);
        let q: Vec<bool> = r.clusters.iter().map(|c| c.high_quality).collect();
        assert_eq!(q, vec![true, true, false]);
    }

    fn relabel(labels: &[usize], perm: &[usize]) -> Vec<usize> {
        labels.iter().map(|&l| perm[l] * 3 + 1).collect()
    }

    proptest! {
        #[test]
        fn metrics_invariant_under_label_permutation(
            truth in proptest::collection::vec(0usize..4, 2..40),
            pred_seed in any::<u64>(),
            perm_seed in any::<u64>(),
        ) {
            use rand::Rng;
            use rand::seq::SliceRandom;
            let n = truth.len();
            let mut rng = crate::rng::stream(pred_seed, "test.pred");
            let pred: Vec<usize> = (0..n).map(|_| rng.random_range(0..5)).collect();
            let x = Array2::from_shape_fn((n, 3), |_| rng.random_range(-3.0..3.0));
            let mut prng = crate::rng::stream(perm_seed, "test.perm");
            let mut pt: Vec<usize> = (0..4).collect();
            pt.shuffle(&mut prng);
            let mut pp: Vec<usize> = (0..5).collect();
            pp.shuffle(&mut prng);
            let (t2, p2) = (relabel(&truth, &pt), relabel(&pred, &pp));
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + a.abs());
            prop_assert!(close(nmi(&truth, &pred).unwrap(), nmi(&t2, &p2).unwrap()));
            prop_assert!(close(ari(&truth, &pred).unwrap(), ari(&t2, &p2).unwrap()));
            prop_assert_eq!(acc(&truth, &pred).unwrap(), acc(&t2, &p2).unwrap());
            // NMI and ARI are symmetric in their arguments.
            prop_assert!(close(nmi(&truth, &pred).unwrap(), nmi(&pred, &truth).unwrap()));
            prop_assert!(close(ari(&truth, &pred).unwrap(), ari(&pred, &truth).unwrap()));
            // Data metrics depend only on the partition.
            for d in [Distance::Euclidean, Distance::Pearson] {
                let a = davies_bouldin(x.view(), &pred, d);
                let b = davies_bouldin(x.view(), &p2, d);
                match (a, b) {
                    (Ok(a), Ok(b)) => prop_assert!(close(a, b)),
                    (Err(_), Err(_)) => {}
                    _ => prop_assert!(false, "defined for one labeling only"),
                }
            }
            let s1 = sam(x.view(), &pred).unwrap();
            let s2 = sam(x.view(), &p2).unwrap();
            prop_assert!(close(s1.mean, s2.mean));
            prop_assert_eq!(s1.median, s2.median);
        }
    }
}
