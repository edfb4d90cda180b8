//! k-means++ seeding and Lloyd iterations for the SMM initialisation (method §6.5 step 1, [KM++]).
//!
//! Deterministic: all randomness comes from the caller's named stream, distances are computed from
//! differences (never the `‖a‖² + ‖b‖² − 2a·b` expansion), argmins break ties by the lower index,
//! and the parallel assignment step works on fixed row chunks whose results do not depend on the
//! number of threads. The assignment step sums 4 rows × 8 centres at a time over blocks of 128
//! dimensions ([`assign`]), and each k-means++ pass sums 8 rows side by side (`sq_dists_to`),
//! each sum in the same order as one pair's, so the tiling changes the speed and not the bits.

use crate::error::{DarlcError, Result};
use crate::rng::Stream;
use ndarray::{Array2, ArrayView2, Axis};
use rand::Rng;
use rayon::prelude::*;

/// Rows per task in the parallel assignment step (fixed, so results never depend on threads).
const CHUNK: usize = 256;
/// Lloyd iteration cap (method §6.5).
pub const LLOYD_MAX_ITER: usize = 300;

/// The result of k-means++ + Lloyd.
#[derive(Debug, Clone)]
pub struct KMeansResult {
    /// Final label of each row, in `0..k`.
    pub labels: Vec<usize>,
    /// Final centres `[k, d]` (the means of the final partition).
    pub centres: Array2<f64>,
    /// The realised k-means++ picks (row indices, in draw order) — recorded by fixtures (§18).
    pub picks: Vec<usize>,
    /// Lloyd assignment passes performed.
    pub iters: usize,
    /// Whether Lloyd stopped because no assignment changed (false = hit the 300 cap).
    pub converged: bool,
    /// Empty-cluster re-seeds: (Lloyd pass, cluster, row).
    pub reseeds: Vec<(usize, usize, usize)>,
}

/// k-means++ seeding (method §6.5): the first centre uniform over rows, each next centre one draw
/// with probability ∝ squared distance to the nearest chosen centre. Returns the picked rows.
///
/// A draw is `u = U[0,1)·Σ D²`, the pick the first row whose running sum of `D²` exceeds `u`
/// (rows with `D² = 0` are never picked). If every row coincides with a chosen centre
/// (`Σ D² = 0`), the lowest-index row not yet picked is taken.
pub fn kmeans_pp(z: ArrayView2<f64>, k: usize, rng: &mut Stream) -> Result<Vec<usize>> {
    let n = z.nrows();
    check_input(z, k)?;
    let d = z.ncols();
    let z = z.as_standard_layout();
    let zs = z.as_slice().expect("standard layout");
    let first = rng.random_range(0..n);
    let mut picks = vec![first];
    let mut dmin: Vec<f64> = sq_dists_to(zs, n, d, &zs[first * d..(first + 1) * d]);
    while picks.len() < k {
        let total: f64 = dmin.iter().fold(0.0, |s, v| s + v);
        let next = if total > 0.0 {
            let u = rng.random::<f64>() * total;
            let mut acc = 0.0;
            let mut pick = None;
            for (i, &di) in dmin.iter().enumerate() {
                acc += di;
                if di > 0.0 && acc > u {
                    pick = Some(i);
                    break;
                }
            }
            // Rounding can leave u ≥ the final running sum: take the last row with D² > 0.
            pick.unwrap_or_else(|| dmin.iter().rposition(|&v| v > 0.0).unwrap_or(0))
        } else {
            (0..n).find(|i| !picks.contains(i)).unwrap_or(0)
        };
        picks.push(next);
        let dnew = sq_dists_to(zs, n, d, &zs[next * d..(next + 1) * d]);
        for (a, b) in dmin.iter_mut().zip(dnew) {
            if b < *a {
                *a = b;
            }
        }
    }
    Ok(picks)
}

fn check_input(z: ArrayView2<f64>, k: usize) -> Result<()> {
    let n = z.nrows();
    if k == 0 {
        return Err(DarlcError::param("clusters", "K must be at least 1"));
    }
    if k > n {
        return Err(DarlcError::Data(format!(
            "cannot form K = {k} clusters from N = {n} embeddings"
        )));
    }
    if z.iter().any(|v| !v.is_finite()) {
        return Err(DarlcError::Numerical(
            "k-means input contains a non-finite embedding value".into(),
        ));
    }
    Ok(())
}

/// `f` on the fixed row chunks `[c·CHUNK, (c+1)·CHUNK)` of `0..n`, in parallel, each returning
/// one value per row; the results concatenated in row order (so they never depend on threads).
fn par_row_chunks<R: Send>(
    n: usize,
    f: impl Fn(std::ops::Range<usize>) -> Vec<R> + Sync,
) -> Vec<R> {
    let chunks: Vec<Vec<R>> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| f(c * CHUNK..((c + 1) * CHUNK).min(n)))
        .collect();
    chunks.into_iter().flatten().collect()
}

/// The `N` rows from `r0` of the row-major `zs` (`d` columns) that a tile sums side by side, of
/// which the first `rn ≤ N` are real: a short last group repeats row `r0` (callers drop those
/// results).
fn row_group<const N: usize>(zs: &[f64], d: usize, r0: usize, rn: usize) -> [&[f64]; N] {
    std::array::from_fn(|r| {
        let i = if r < rn { r0 + r } else { r0 };
        &zs[i * d..(i + 1) * d]
    })
}

/// Rows summed side by side in [`sq_dists_to`].
const PP_ROWS: usize = 8;

/// Squared distance of every row of the row-major `zs` (`n` rows of `d` columns) to the point
/// `c`, for the k-means++ draws. Each distance is `(x − y)²` summed over the dimensions in order
/// from 0.0, as the one-pair loop sums it (the same bits; tested). The rows are taken 8 at a time
/// so that the CPU overlaps 8 independent sums instead of waiting on one chain of `d` dependent
/// additions. Parallel over the fixed chunks of [`assign`], results in row order.
fn sq_dists_to(zs: &[f64], n: usize, d: usize, c: &[f64]) -> Vec<f64> {
    par_row_chunks(n, |rows| {
        let mut out = Vec::with_capacity(rows.len());
        for r0 in rows.clone().step_by(PP_ROWS) {
            let rn = PP_ROWS.min(rows.end - r0);
            let xs: [&[f64]; PP_ROWS] = row_group(zs, d, r0, rn);
            let mut acc = [0.0f64; PP_ROWS];
            for (t, &y) in c.iter().enumerate() {
                for (a, x) in acc.iter_mut().zip(&xs) {
                    *a += (x[t] - y) * (x[t] - y);
                }
            }
            out.extend_from_slice(&acc[..rn]);
        }
        out
    })
}

/// Rows of one register tile of [`assign`].
const TILE_R: usize = 4;
/// Centres of one register tile of [`assign`].
const TILE_C: usize = 8;
/// Dimensions per pass of [`assign`] over all centres (128 · 504 centres · 8 B ≈ 0.5 MB, within a
/// core's L2 cache at K 500).
const DIM_BLOCK: usize = 128;

/// Nearest centre of each row (ties → lower centre index) and its squared distance.
///
/// The distances are those of the one-pair loop to the bit: each of a tile's `TILE_R × TILE_C`
/// sums runs over the dimensions in order from 0.0, exactly as that loop sums one pair. The tile
/// only lets the CPU work on 32 independent sums instead of one latency-bound chain, with the
/// tile's centres transposed so that one dimension of 8 centres is one contiguous load. Centres
/// are compared in ascending index with a strict `<`, as in a plain loop over them.
pub fn assign(z: ArrayView2<f64>, centres: ArrayView2<f64>) -> Vec<(usize, f64)> {
    let (n, d) = z.dim();
    let z = z.as_standard_layout();
    let zs = z.as_slice().expect("standard layout");
    let tiles = CentreTiles::new(centres);
    par_row_chunks(n, |rows| nearest_in_rows(zs, d, &tiles, rows))
}

/// The centres as [`assign`] reads them: transposed and padded to a multiple of `TILE_C` with
/// copies of centre 0, so that `ct[t * kp + j]` is dimension t of centre j and one dimension of a
/// tile's 8 centres is one contiguous load. Padded columns (`j ≥ k`) are never chosen.
struct CentreTiles {
    ct: Vec<f64>,
    /// Real centres.
    k: usize,
    /// Centres with padding (a multiple of `TILE_C`).
    kp: usize,
}

impl CentreTiles {
    fn new(centres: ArrayView2<f64>) -> Self {
        let (k, d) = centres.dim();
        let kp = k.div_ceil(TILE_C) * TILE_C;
        let mut ct = vec![0.0f64; d * kp];
        for j in 0..kp {
            let c = centres.row(if j < k { j } else { 0 });
            for (t, &v) in c.iter().enumerate() {
                ct[t * kp + j] = v;
            }
        }
        CentreTiles { ct, k, kp }
    }
}

/// [`assign`] for the rows `rows` of the row-major `zs` (`d` columns). Compiled for AVX-512 or
/// AVX2 when the CPU has them: the same operations in the same order (Rust never fuses a multiply
/// and an add), so the same bits, with the tile's 8 centres in one vector register.
fn nearest_in_rows(
    zs: &[f64],
    d: usize,
    c: &CentreTiles,
    rows: std::ops::Range<usize>,
) -> Vec<(usize, f64)> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { nearest_in_rows_avx512(zs, d, c, rows) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { nearest_in_rows_avx2(zs, d, c, rows) };
        }
    }
    nearest_in_rows_body(zs, d, c, rows)
}

/// `nearest_in_rows_body` compiled with a target feature (callers check that the CPU has it).
macro_rules! nearest_in_rows_for {
    ($name:ident, $feature:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        fn $name(
            zs: &[f64],
            d: usize,
            c: &CentreTiles,
            rows: std::ops::Range<usize>,
        ) -> Vec<(usize, f64)> {
            nearest_in_rows_body(zs, d, c, rows)
        }
    };
}
nearest_in_rows_for!(nearest_in_rows_avx512, "avx512f");
nearest_in_rows_for!(nearest_in_rows_avx2, "avx2");

#[inline(always)]
fn nearest_in_rows_body(
    zs: &[f64],
    d: usize,
    c: &CentreTiles,
    rows: std::ops::Range<usize>,
) -> Vec<(usize, f64)> {
    let (ct, k, kp) = (&c.ct, c.k, c.kp);
    let (start, end) = (rows.start, rows.end);
    let m = end - start;
    // Running sums of every (row, centre) pair of the chunk, `[m, kp]`: the dimensions are taken
    // in blocks of DIM_BLOCK (in order), so a block of all centres (kp · DIM_BLOCK values) stays
    // in cache while every row tile of the chunk passes over it. Each pair's sum still adds its
    // terms in dimension order, so the bits do not change.
    let mut sums = vec![0.0f64; m * kp];
    for t0 in (0..d).step_by(DIM_BLOCK) {
        let t1 = (t0 + DIM_BLOCK).min(d);
        for r0 in (start..end).step_by(TILE_R) {
            let rn = TILE_R.min(end - r0);
            let xs: [&[f64]; TILE_R] = row_group(zs, d, r0, rn);
            for j0 in (0..kp).step_by(TILE_C) {
                let mut acc = [[0.0f64; TILE_C]; TILE_R];
                for (r, a) in acc.iter_mut().enumerate().take(rn) {
                    let o = (r0 - start + r) * kp + j0;
                    a.copy_from_slice(&sums[o..o + TILE_C]);
                }
                for t in t0..t1 {
                    let cv: &[f64; TILE_C] = ct[t * kp + j0..t * kp + j0 + TILE_C]
                        .try_into()
                        .expect("TILE_C centres");
                    for (a, x) in acc.iter_mut().zip(&xs) {
                        let xv = x[t];
                        for (s, &y) in a.iter_mut().zip(cv) {
                            *s += (xv - y) * (xv - y);
                        }
                    }
                }
                for (r, a) in acc.iter().enumerate().take(rn) {
                    let o = (r0 - start + r) * kp + j0;
                    sums[o..o + TILE_C].copy_from_slice(a);
                }
            }
        }
    }
    let mut best = vec![(0usize, f64::INFINITY); m];
    for (b, s) in best.iter_mut().zip(sums.chunks_exact(kp)) {
        for (j, &dist) in s.iter().enumerate().take(k) {
            if dist < b.1 {
                *b = (j, dist);
            }
        }
    }
    best
}

/// k-means++ then Lloyd until no assignment changes or 300 passes (method §6.5).
///
/// After each assignment pass the centres become the means of their clusters; an empty cluster is
/// re-seeded (in ascending cluster order) with the row farthest from its current centre (ties →
/// lowest index), which moves to the empty cluster before the means are taken.
pub fn kmeans(z: ArrayView2<f64>, k: usize, rng: &mut Stream) -> Result<KMeansResult> {
    let picks = kmeans_pp(z, k, rng)?;
    let mut centres = Array2::<f64>::zeros((k, z.ncols()));
    for (j, &p) in picks.iter().enumerate() {
        centres.row_mut(j).assign(&z.row(p));
    }
    let mut r = lloyd(z, centres)?;
    r.picks = picks;
    Ok(r)
}

/// Lloyd iterations from given initial centres `[k, d]` (the second half of [`kmeans`]; `picks`
/// of the result is empty).
pub fn lloyd(z: ArrayView2<f64>, centres: Array2<f64>) -> Result<KMeansResult> {
    let n = z.nrows();
    let k = centres.nrows();
    check_input(z, k)?;
    let mut centres = centres;
    let mut labels: Vec<usize> = vec![usize::MAX; n];
    let mut reseeds = Vec::new();
    let mut iters = 0;
    let mut converged = false;
    while iters < LLOYD_MAX_ITER {
        let assigned = assign(z, centres.view());
        iters += 1;
        let changed = assigned.iter().zip(&labels).any(|(&(a, _), &b)| a != b);
        if !changed {
            converged = true;
            break;
        }
        let mut dist: Vec<f64> = assigned.iter().map(|&(_, dd)| dd).collect();
        labels = assigned.iter().map(|&(a, _)| a).collect();
        let mut counts = vec![0usize; k];
        for &l in &labels {
            counts[l] += 1;
        }
        // Lowest-index empty cluster first; a donor emptied by a re-seed is handled in turn
        // (at most k re-seeds per pass, so degenerate data cannot loop forever).
        let mut budget = k;
        while let Some(j) = (0..k).find(|&j| counts[j] == 0) {
            if budget == 0 {
                break;
            }
            budget -= 1;
            // Farthest row from its current centre, ties → lowest index.
            let mut far = 0;
            for i in 1..n {
                if dist[i] > dist[far] {
                    far = i;
                }
            }
            counts[labels[far]] -= 1;
            labels[far] = j;
            counts[j] = 1;
            dist[far] = 0.0;
            reseeds.push((iters, j, far));
        }
        centres = means(z, &labels, k);
    }
    Ok(KMeansResult {
        labels,
        centres,
        picks: Vec::new(),
        iters,
        converged,
        reseeds,
    })
}

/// Cluster means (rows summed in index order); an empty cluster's mean is 0 (never used by
/// `kmeans`, which re-seeds empties first).
pub fn means(z: ArrayView2<f64>, labels: &[usize], k: usize) -> Array2<f64> {
    let d = z.ncols();
    let mut sums = Array2::<f64>::zeros((k, d));
    let mut counts = vec![0usize; k];
    for (i, &l) in labels.iter().enumerate() {
        counts[l] += 1;
        let mut s = sums.row_mut(l);
        s += &z.row(i);
    }
    for (mut row, &cnt) in sums.axis_iter_mut(Axis(0)).zip(&counts) {
        if cnt > 0 {
            let c = cnt as f64;
            row.mapv_inplace(|v| v / c);
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;
    use ndarray::ArrayView1;

    fn blobs(seed: u64, per: usize, centres: &[[f64; 2]]) -> Array2<f64> {
        let mut rng = stream(seed, "test.blobs");
        let n = per * centres.len();
        Array2::from_shape_fn((n, 2), |(i, j)| {
            centres[i / per][j] + 0.3 * (rng.random::<f64>() - 0.5)
        })
    }

    /// The reference squared distance: `(x − y)²` summed over the dimensions in order from 0.0.
    /// [`assign`] and `sq_dists_to` must give its bits.
    fn sq_dist(a: ArrayView1<f64>, b: ArrayView1<f64>) -> f64 {
        match (a.as_slice(), b.as_slice()) {
            (Some(a), Some(b)) => a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y) * (x - y))
                .fold(0.0, |s, v| s + v),
            _ => a
                .iter()
                .zip(b.iter())
                .map(|(x, y)| (x - y) * (x - y))
                .fold(0.0, |s, v| s + v),
        }
    }

    /// `f` on every row, in parallel over the fixed chunks, results in row order.
    fn par_map_rows<R: Send>(
        z: ArrayView2<f64>,
        f: impl Fn(ArrayView1<f64>) -> R + Sync,
    ) -> Vec<R> {
        par_row_chunks(z.nrows(), |rows| rows.map(|i| f(z.row(i))).collect())
    }

    /// The plain loop that [`assign`] replaced: one `sq_dist` per (row, centre) pair.
    fn assign_pairwise(z: ArrayView2<f64>, centres: ArrayView2<f64>) -> Vec<(usize, f64)> {
        par_map_rows(z, |row| {
            let mut best = (0usize, f64::INFINITY);
            for (j, c) in centres.axis_iter(Axis(0)).enumerate() {
                let dist = sq_dist(row, c);
                if dist < best.1 {
                    best = (j, dist);
                }
            }
            best
        })
    }

    #[test]
    fn tiled_assign_gives_the_bits_of_the_pairwise_loop() {
        use rand::Rng;
        let mut r = crate::rng::stream(5, "test.kmeans.tiles");
        // Shapes that leave partial tiles (rows not a multiple of 4, centres not of 8), a chunk
        // boundary (300 rows > 256), d = 1, d = 0 (every distance 0: centre 0), k = 1, and
        // d = 300 across three dimension blocks, the last one partial.
        for &(n, d, k) in &[
            (300, 37, 13),
            (9, 1, 3),
            (5, 4, 1),
            (257, 5, 8),
            (3, 2, 9),
            (6, 0, 3),
            (70, 300, 21),
        ] {
            let z = Array2::from_shape_fn((n, d), |_| r.random::<f64>() * 3.0 - 1.0);
            let c = Array2::from_shape_fn((k, d), |_| r.random::<f64>() * 3.0 - 1.0);
            let got = assign(z.view(), c.view());
            let want = assign_pairwise(z.view(), c.view());
            assert_eq!(got.len(), n);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.0, w.0, "row {i} of {n}x{d}, k {k}");
                assert_eq!(g.1.to_bits(), w.1.to_bits(), "row {i} of {n}x{d}, k {k}");
            }
            // A transposed (non-standard) view of the same rows gives the same answer.
            let zt = z.t().to_owned();
            assert_eq!(assign(zt.t(), c.view()), got);
            // Every compiled variant of the tile loop gives the same bits (the dispatch above
            // picks one; the others are checked here when this CPU can run them).
            let tiles = CentreTiles::new(c.view());
            let zs = z.as_slice().unwrap();
            assert_eq!(nearest_in_rows_body(zs, d, &tiles, 0..n), got);
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: AVX2 is present (checked).
                    let v = unsafe { nearest_in_rows_avx2(zs, d, &tiles, 0..n) };
                    assert_eq!(v, got);
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: AVX-512F is present (checked).
                    let v = unsafe { nearest_in_rows_avx512(zs, d, &tiles, 0..n) };
                    assert_eq!(v, got);
                }
            }
        }
        // Ties go to the lower centre index, as in the plain loop (centres 2 and 5 coincide).
        let z = ndarray::array![[1.0, 1.0], [0.0, 0.0]];
        let mut c = Array2::from_elem((9, 2), 10.0);
        c.row_mut(2).assign(&ndarray::array![1.0, 1.0]);
        c.row_mut(5).assign(&ndarray::array![1.0, 1.0]);
        assert_eq!(assign(z.view(), c.view())[0], (2, 0.0));
        assert_eq!(
            assign(z.view(), c.view()),
            assign_pairwise(z.view(), c.view())
        );
    }

    #[test]
    fn grouped_seeding_distances_give_the_bits_of_the_one_pair_loop() {
        use rand::Rng;
        let mut r = crate::rng::stream(6, "test.kmeans.pp_rows");
        // Groups of 8 with a short last group (300, 13 rows), a chunk boundary (300 > 256),
        // fewer rows than a group (3), d = 1 and d = 0 (every distance the empty sum 0).
        for &(n, d) in &[(300, 37), (13, 1), (3, 5), (6, 0), (64, 300)] {
            let z = Array2::from_shape_fn((n, d), |_| r.random::<f64>() * 3.0 - 1.0);
            let c = Array2::from_shape_fn((1, d), |_| r.random::<f64>() * 3.0 - 1.0);
            let got = sq_dists_to(z.as_slice().unwrap(), n, d, c.as_slice().unwrap());
            let want = par_map_rows(z.view(), |row| sq_dist(row, c.row(0)));
            assert_eq!(got.len(), n);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), w.to_bits(), "row {i} of {n}x{d}");
            }
        }
        // The draws do not depend on the input's memory layout.
        let z = Array2::from_shape_fn((50, 7), |_| r.random::<f64>());
        let zt = z.t().to_owned();
        assert_eq!(
            kmeans_pp(z.view(), 9, &mut stream(2, "kmeans++")).unwrap(),
            kmeans_pp(zt.t(), 9, &mut stream(2, "kmeans++")).unwrap()
        );
    }

    /// Benchmark (ignored): `cargo test --release --lib bench_seeding -- --ignored --nocapture`
    /// times one k-means++ distance pass, 8 rows at a time against one row at a time, on 15,000
    /// rows of 4,007 pixels (the simulated section's shape). 2026-12-06, AMD EPYC Zen 4, quiet
    /// machine: 0.012 s against 0.029 s (2.4×); the pass streams 480 MB.
    #[test]
    #[ignore]
    fn bench_seeding_distances_grouped_vs_one_pair() {
        use rand::Rng;
        let mut r = crate::rng::stream(5, "test.kmeans.bench");
        let (n, d) = (15_000, 4007);
        let z = Array2::from_shape_fn((n, d), |_| r.random::<f64>());
        let c = z.row(17).to_owned();
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let a = sq_dists_to(z.as_slice().unwrap(), n, d, c.as_slice().unwrap());
            let ta = t.elapsed().as_secs_f64();
            let t = std::time::Instant::now();
            let b = par_map_rows(z.view(), |row| sq_dist(row, c.view()));
            let tb = t.elapsed().as_secs_f64();
            assert_eq!(a, b);
            println!("grouped {ta:.4} s, one pair {tb:.4} s, {:.1}x", tb / ta);
        }
    }

    /// Benchmark (ignored): `cargo test --release --lib bench_assign -- --ignored --nocapture`
    /// times the tiled [`assign`] against the pairwise loop on 2,000 rows of 4,007 pixels and
    /// 64 centres (2026-12-06, AMD EPYC Zen 4, AVX-512 path: 0.025–0.036 s against 0.216 s).
    #[test]
    #[ignore]
    fn bench_assign_tiled_vs_pairwise() {
        use rand::Rng;
        let mut r = crate::rng::stream(5, "test.kmeans.bench");
        let (n, d, k) = (2000, 4007, 64);
        let z = Array2::from_shape_fn((n, d), |_| r.random::<f64>());
        let c = Array2::from_shape_fn((k, d), |_| r.random::<f64>());
        for _ in 0..2 {
            let t = std::time::Instant::now();
            let a = assign(z.view(), c.view());
            let ta = t.elapsed().as_secs_f64();
            let t = std::time::Instant::now();
            let b = assign_pairwise(z.view(), c.view());
            let tb = t.elapsed().as_secs_f64();
            assert_eq!(a, b);
            println!("tiled {ta:.3} s, pairwise {tb:.3} s, {:.1}x", tb / ta);
        }
    }

    #[test]
    fn recovers_separated_blobs_and_is_deterministic() {
        let z = blobs(3, 50, &[[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]);
        let a = kmeans(z.view(), 4, &mut stream(9, "kmeans++")).unwrap();
        let b = kmeans(z.view(), 4, &mut stream(9, "kmeans++")).unwrap();
        assert_eq!(a.picks, b.picks);
        assert_eq!(a.labels, b.labels);
        assert!(a.converged);
        // Each true blob maps to one label, and the four labels are distinct.
        let mut seen = Vec::new();
        for blob in 0..4 {
            let l = a.labels[blob * 50];
            assert!(a.labels[blob * 50..(blob + 1) * 50].iter().all(|&x| x == l));
            seen.push(l);
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 4);
        // k-means++ picked one point from each blob (D² sampling with well-separated blobs picks
        // a new blob with probability > 0.999 each time).
        let mut blob_of_pick: Vec<usize> = a.picks.iter().map(|&p| p / 50).collect();
        blob_of_pick.sort();
        assert_eq!(blob_of_pick, vec![0, 1, 2, 3]);
    }

    #[test]
    fn identical_points_and_k_equals_n() {
        // All rows equal: Σ D² = 0 after the first pick, the lowest unpicked rows are taken.
        let z = Array2::<f64>::ones((5, 3));
        let r = kmeans(z.view(), 3, &mut stream(1, "kmeans++")).unwrap();
        assert_eq!(r.picks.len(), 3);
        let mut p = r.picks.clone();
        p.sort();
        p.dedup();
        assert_eq!(p.len(), 3);
        // K = N on distinct points: every row its own cluster.
        let z = blobs(5, 1, &[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]);
        let r = kmeans(z.view(), 3, &mut stream(1, "kmeans++")).unwrap();
        let mut l = r.labels.clone();
        l.sort();
        assert_eq!(l, vec![0, 1, 2]);
        assert!(kmeans(z.view(), 4, &mut stream(1, "kmeans++")).is_err());
    }

    #[test]
    fn more_clusters_than_distinct_points_terminates() {
        // Two distinct values, K = 3: a duplicate must serve as a centre; assignment ties go to
        // the lower centre, so a cluster empties and is re-seeded every pass. Lloyd must still
        // stop (no change or the 300-pass cap) with valid labels and finite centres.
        let z = ndarray::array![[0.0], [0.0], [0.0], [1.0], [1.0]];
        let r = kmeans(z.view(), 3, &mut stream(2, "kmeans++")).unwrap();
        assert!(r.iters <= LLOYD_MAX_ITER);
        assert!(r.labels.iter().all(|&l| l < 3));
        assert!(r.centres.iter().all(|v| v.is_finite()));
        let r2 = kmeans(z.view(), 3, &mut stream(2, "kmeans++")).unwrap();
        assert_eq!(r.labels, r2.labels);
    }

    #[test]
    fn empty_cluster_is_reseeded_with_farthest_point() {
        // Hand-made start: centres 0 and 100; all rows go to centre 0, cluster 1 is empty, and the
        // row farthest from its centre (row 3, distance² 25) re-seeds it. The next pass keeps the
        // partition {0,1,2} / {3} (means 0 and 5), so Lloyd stops after 2 passes.
        let z = ndarray::array![[0.0], [0.1], [-0.1], [5.0]];
        let r = lloyd(z.view(), ndarray::array![[0.0], [100.0]]).unwrap();
        assert_eq!(r.reseeds, vec![(1, 1, 3)]);
        assert_eq!(r.labels, vec![0, 0, 0, 1]);
        assert_eq!(r.iters, 2);
        assert!(r.converged);
        assert!((r.centres[[1, 0]] - 5.0).abs() < 1e-15);
        // Ties in the farthest distance go to the lowest index: rows 0 and 1 are both at
        // distance² 1 from centre 0; row 0 re-seeds cluster 1.
        let z = ndarray::array![[-1.0], [1.0]];
        let r = lloyd(z.view(), ndarray::array![[0.0], [50.0]]).unwrap();
        assert_eq!(r.reseeds[0], (1, 1, 0));
    }
}
