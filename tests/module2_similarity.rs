//! Seeding similarity (method §7) against a brute-force dense computation, and L_sym against its
//! dense matrix.

use darlc::module2::laplacian::LaplacianSym;
use darlc::module2::similarity::{pearson_knn_blocked, seeding_similarity};
use darlc::rng::stream;
use ndarray::Array2;
use rand::Rng;

/// Sparse-ish random images with planted groups, two zero-variance rows (5: all zero, 11: all
/// 3.0) and an exact duplicate pair (20 = 21) so that ties occur (when n > 21).
fn images(n: usize, n_pix: usize, seed: u64) -> Array2<f64> {
    let mut rng = stream(seed, "test.images");
    let mut y = Array2::<f64>::zeros((n, n_pix));
    let patterns: Vec<Vec<f64>> = (0..4)
        .map(|_| (0..n_pix).map(|_| rng.random::<f64>()).collect())
        .collect();
    for i in 0..n {
        for p in 0..n_pix {
            if rng.random::<f64>() < 0.4 {
                y[[i, p]] = patterns[i % 4][p] + 0.5 * rng.random::<f64>();
            }
        }
    }
    if n > 21 {
        y.row_mut(5).fill(0.0);
        y.row_mut(11).fill(3.0);
        let r20 = y.row(20).to_owned();
        y.row_mut(21).assign(&r20);
    }
    y
}

/// Pearson by the textbook formula (two-pass mean, explicit sums); 0 for zero variance.
fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let ma = a.iter().sum::<f64>() / n;
    let mb = b.iter().sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    let var0 = |v: &[f64]| v.iter().all(|&x| x == v[0]);
    if var0(a) || var0(b) {
        0.0
    } else {
        sab / (saa.sqrt() * sbb.sqrt())
    }
}

#[test]
fn knn_equals_brute_force() {
    let (n, n_pix, k) = (70, 40, 15);
    let y = images(n, n_pix, 1);
    let rows: Vec<Vec<f64>> = y.rows().into_iter().map(|r| r.to_vec()).collect();
    let dense = Array2::from_shape_fn((n, n), |(i, j)| pearson(&rows[i], &rows[j]));
    for &block in &[7usize, 32, 1000] {
        let knn = pearson_knn_blocked(y.view(), k, block).unwrap();
        for i in 0..n {
            // Brute force: sort j ≠ i by (−r, j); a tie tolerance of 1e-12 decides which
            // brute-force neighbours are "clearly" in the top k.
            let mut cand: Vec<(f64, usize)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| (dense[[i, j]], j))
                .collect();
            cand.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(a.1.cmp(&b.1)));
            let got = &knn[i];
            assert_eq!(got.len(), k);
            let kth = cand[k - 1].0;
            for (p, &(r, j)) in got.iter().enumerate() {
                assert!((r - dense[[i, j]]).abs() < 1e-12, "row {i}: r_{i},{j}");
                assert!(r >= kth - 1e-12, "row {i}: {j} not in the top k");
                if p > 0 {
                    let (r0, j0) = got[p - 1];
                    assert!(r0 > r || (r0 == r && j0 < j), "row {i} not ordered");
                }
            }
            // Zero-variance rows: every r is 0, so the k lowest indices ≠ i are chosen.
            if i == 5 || i == 11 {
                let want: Vec<usize> = (0..n).filter(|&j| j != i).take(k).collect();
                let got_j: Vec<usize> = got.iter().map(|c| c.1).collect();
                assert_eq!(got_j, want);
            }
        }
        // The duplicate pair are each other's best neighbour with r = 1 (clamped).
        assert_eq!(knn[20][0], (1.0, 21));
        assert_eq!(knn[21][0], (1.0, 20));
    }
}

#[test]
fn similarity_is_symmetric_nonnegative_and_f32_input_works() {
    let y = images(60, 25, 2);
    let s = seeding_similarity(y.view(), 15).unwrap();
    assert!(s.is_symmetric());
    assert!(s.values.iter().all(|&v| v > 0.0 && v <= 1.0));
    for i in 0..60 {
        assert_eq!(s.get(i, i), 0.0);
        // Zero-variance rows have no edges.
        if i == 5 || i == 11 {
            assert_eq!(s.row(i).0.len(), 0);
        }
        let (cols, _) = s.row(i);
        assert!(cols.windows(2).all(|w| w[0] < w[1]));
    }
    let y32 = y.mapv(|v| v as f32);
    let s32 = seeding_similarity(y32.view(), 15).unwrap();
    assert_eq!(s32.n_rows, 60);
    assert!(s32.is_symmetric());
}

#[test]
fn deterministic_across_threads_and_blocks() {
    let y = images(90, 33, 3);
    let run = |t: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap()
            .install(|| pearson_knn_blocked(y.view(), 15, 16).unwrap())
    };
    let a = run(1);
    let b = run(2);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.len(), y.len());
        for (p, q) in x.iter().zip(y) {
            assert_eq!((p.0.to_bits(), p.1), (q.0.to_bits(), q.1));
        }
    }
}

#[test]
fn laplacian_apply_equals_dense() {
    let y = images(50, 30, 4);
    let s = seeding_similarity(y.view(), 5).unwrap();
    let lap = LaplacianSym::new(s).unwrap();
    let dense = lap.to_dense();
    // Independent dense construction: L = I₊ − D^{-1/2} S D^{-1/2} from the dense S.
    let sd = lap.s.to_dense();
    let deg: Vec<f64> = (0..50).map(|i| sd.row(i).sum()).collect();
    let mut want = Array2::<f64>::zeros((50, 50));
    for i in 0..50 {
        for j in 0..50 {
            let inv = |d: f64| if d > 0.0 { 1.0 / d.sqrt() } else { 0.0 };
            want[[i, j]] = if i == j && deg[i] > 0.0 { 1.0 } else { 0.0 }
                - inv(deg[i]) * sd[[i, j]] * inv(deg[j]);
        }
    }
    assert!((&dense - &want).iter().all(|v| v.abs() < 1e-14));
    // Isolated nodes (the zero-variance rows) have an all-zero row and column.
    assert!(dense.row(5).iter().all(|&v| v == 0.0));
    let mut rng = stream(5, "test.z");
    let z = Array2::from_shape_fn((50, 3), |_| rng.random::<f64>() - 0.5);
    let lz = lap.apply(z.view()).unwrap();
    let lz_dense = want.dot(&z);
    assert!((&lz - &lz_dense).iter().all(|v| v.abs() < 1e-13));
    let tr = lap.trace_quadratic(z.view()).unwrap();
    let tr_dense: f64 = (0..3).map(|c| z.column(c).dot(&lz_dense.column(c))).sum();
    assert!((tr - tr_dense).abs() < 1e-12);
    // Eq. 17 edge form: tr(Zᵀ L Z) = ½ Σ_ij S_ij ‖z_i/√d_i − z_j/√d_j‖² (I₊ drops isolated rows).
    let mut edge = 0.0;
    for i in 0..50 {
        for j in 0..50 {
            if sd[[i, j]] > 0.0 {
                let mut s2 = 0.0;
                for c in 0..3 {
                    let v = z[[i, c]] / deg[i].sqrt() - z[[j, c]] / deg[j].sqrt();
                    s2 += v * v;
                }
                edge += 0.5 * sd[[i, j]] * s2;
            }
        }
    }
    assert!((tr - edge).abs() < 1e-12);
    // L_sym is PSD: the quadratic form is non-negative; f32 path agrees.
    assert!(tr >= 0.0);
    let z32 = z.mapv(|v| v as f32);
    let tr32 = lap.trace_quadratic(z32.view()).unwrap();
    assert!((tr32 - tr).abs() < 1e-5 * (1.0 + tr));
}

#[test]
fn tiny_inputs_and_errors() {
    // N = 5 < k + 1: every row gets the other 4 rows.
    let y = images(5, 12, 6);
    let knn = darlc::module2::similarity::pearson_knn(y.view(), 15).unwrap();
    assert!(knn.iter().all(|l| l.len() == 4));
    // N = 1: no neighbours, empty S.
    let one = images(1, 12, 7);
    let s = seeding_similarity(one.view(), 15).unwrap();
    assert_eq!((s.n_rows, s.nnz()), (1, 0));
    // Non-finite pixels and zero-pixel images are errors, not NaN similarities.
    let mut bad = images(8, 12, 8);
    bad[[3, 4]] = f64::NAN;
    assert!(seeding_similarity(bad.view(), 15).is_err());
    let empty = Array2::<f64>::zeros((4, 0));
    assert!(seeding_similarity(empty.view(), 15).is_err());
}
