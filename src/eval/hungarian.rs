//! Optimal one-to-one assignment (Kuhn–Munkres with potentials, shortest augmenting paths in the
//! Jonker–Volgenant style), O(n³). Used by ACC (method §12.2) to match predicted to true labels.
//!
//! A rectangular `r × c` matrix is padded with zeros to `n × n`, `n = max(r, c)`. Every perfect
//! matching of the padded matrix uses exactly `n − min(r, c)` padding cells, so padding adds the
//! same constant (zero) to every candidate and the optimum over the real cells is unchanged.

use crate::error::{DarlcError, Result};
use ndarray::{Array2, ArrayView2};

/// Whether the assignment should make the total as small or as large as possible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    Minimise,
    Maximise,
}

/// An optimal assignment: `row_to_col[i]` is the column given to row `i` (`None` when there are
/// more rows than columns and row `i` got a padding column); `total` is the sum of the chosen
/// real cells.
#[derive(Clone, Debug, PartialEq)]
pub struct Assignment {
    pub row_to_col: Vec<Option<usize>>,
    pub total: f64,
}

/// Solve the assignment problem on `weights` (rows × columns) for `objective`.
///
/// Errors if an entry is not finite. Ties between optimal assignments are resolved by the
/// algorithm's fixed scan order (lowest column index first), so the result is deterministic.
pub fn assign(weights: ArrayView2<f64>, objective: Objective) -> Result<Assignment> {
    let (r, c) = weights.dim();
    if let Some(((i, j), _)) = weights.indexed_iter().find(|(_, x)| !x.is_finite()) {
        return Err(DarlcError::Data(format!(
            "assignment: entry ({i}, {j}) of the weight matrix is not finite"
        )));
    }
    let n = r.max(c);
    if n == 0 {
        return Ok(Assignment {
            row_to_col: vec![],
            total: 0.0,
        });
    }
    // Square cost matrix to minimise: negate for maximisation, zeros as padding.
    let sign = match objective {
        Objective::Minimise => 1.0,
        Objective::Maximise => -1.0,
    };
    let mut cost = Array2::<f64>::zeros((n, n));
    cost.slice_mut(ndarray::s![..r, ..c])
        .assign(&weights.mapv(|x| sign * x));
    let col_of_row = solve_square(&cost);
    let row_to_col: Vec<Option<usize>> = (0..r)
        .map(|i| Some(col_of_row[i]).filter(|&j| j < c))
        .collect();
    let total = row_to_col
        .iter()
        .enumerate()
        .filter_map(|(i, j)| j.map(|j| weights[[i, j]]))
        .sum();
    Ok(Assignment { row_to_col, total })
}

/// Minimum-cost perfect matching on a square matrix; returns the column of each row.
///
/// Rows are added one at a time; for each, a Dijkstra-like search over columns with reduced
/// costs `cost[i][j] − u[i] − v[j]` finds the cheapest augmenting path, and the dual potentials
/// `u`, `v` are updated so that reduced costs stay non-negative. Index 0 of the column arrays is
/// a virtual column that holds the row being inserted.
fn solve_square(cost: &Array2<f64>) -> Vec<usize> {
    let n = cost.nrows();
    let mut u = vec![0.0f64; n + 1]; // row potentials, 1-based rows
    let mut v = vec![0.0f64; n + 1]; // column potentials, 1-based columns
    let mut row_of_col = vec![0usize; n + 1]; // 0 = free
    let mut prev_col = vec![0usize; n + 1];
    for row in 1..=n {
        row_of_col[0] = row;
        let mut col0 = 0usize;
        let mut min_slack = vec![f64::INFINITY; n + 1];
        let mut visited = vec![false; n + 1];
        loop {
            visited[col0] = true;
            let i0 = row_of_col[col0];
            let mut delta = f64::INFINITY;
            let mut col1 = 0usize;
            for j in 1..=n {
                if visited[j] {
                    continue;
                }
                let reduced = cost[[i0 - 1, j - 1]] - u[i0] - v[j];
                if reduced < min_slack[j] {
                    min_slack[j] = reduced;
                    prev_col[j] = col0;
                }
                if min_slack[j] < delta {
                    delta = min_slack[j];
                    col1 = j;
                }
            }
            for j in 0..=n {
                if visited[j] {
                    u[row_of_col[j]] += delta;
                    v[j] -= delta;
                } else {
                    min_slack[j] -= delta;
                }
            }
            col0 = col1;
            if row_of_col[col0] == 0 {
                break;
            }
        }
        // Augment along the path back to the virtual column.
        loop {
            let col1 = prev_col[col0];
            row_of_col[col0] = row_of_col[col1];
            col0 = col1;
            if col0 == 0 {
                break;
            }
        }
    }
    let mut col_of_row = vec![0usize; n];
    for j in 1..=n {
        col_of_row[row_of_col[j] - 1] = j - 1;
    }
    col_of_row
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use proptest::prelude::*;

    /// Brute force over all injective maps rows → columns (r ≤ c) or columns → rows.
    fn brute_force(w: &Array2<f64>, objective: Objective) -> f64 {
        let (r, c) = w.dim();
        let better = |a: f64, b: f64| match objective {
            Objective::Minimise => a < b,
            Objective::Maximise => a > b,
        };
        fn rec(
            w: &Array2<f64>,
            i: usize,
            used: &mut Vec<bool>,
            acc: f64,
            best: &mut Option<f64>,
            better: &dyn Fn(f64, f64) -> bool,
        ) {
            if i == w.nrows() {
                if best.is_none_or(|b| better(acc, b)) {
                    *best = Some(acc);
                }
                return;
            }
            for j in 0..w.ncols() {
                if !used[j] {
                    used[j] = true;
                    rec(w, i + 1, used, acc + w[[i, j]], best, better);
                    used[j] = false;
                }
            }
        }
        let m = if r <= c { w.clone() } else { w.t().to_owned() };
        let mut best = None;
        rec(&m, 0, &mut vec![false; m.ncols()], 0.0, &mut best, &better);
        best.unwrap_or(0.0)
    }

    #[test]
    fn known_square_minimum() {
        // Rows [4,1,3], [2,0,5], [3,2,2]; by hand over all 6 permutations (column of row 0,1,2):
        // perms: (0,1,2)=4+0+2=6, (0,2,1)=4+5+2=11, (1,0,2)=1+2+2=5, (1,2,0)=1+5+3=9,
        //        (2,0,1)=3+2+2=7, (2,1,0)=3+0+3=6 → minimum 5 at (1,0,2).
        let w = array![[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]];
        let a = assign(w.view(), Objective::Minimise).unwrap();
        assert_eq!(a.row_to_col, vec![Some(1), Some(0), Some(2)]);
        assert_eq!(a.total, 5.0);
    }

    #[test]
    fn known_square_maximum() {
        // Same matrix maximised: the permutation list above gives the maximum 11 at (0,2,1).
        let w = array![[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]];
        let a = assign(w.view(), Objective::Maximise).unwrap();
        assert_eq!(a.row_to_col, vec![Some(0), Some(2), Some(1)]);
        assert_eq!(a.total, 11.0);
    }

    #[test]
    fn rectangular_more_rows_than_columns() {
        // 3 rows, 2 columns, maximise: options by hand: rows (0,1)→10+0? Pick row 2 for col 0
        // (9) and row 0 for col 1 (8) = 17; alternatives: r0c0+r2c1 = 1+7 = 8, r1c0+r0c1 =
        // 5+8 = 13, r2c0+r1c1 = 9+3 = 12, r0c0+r1c1 = 4, r1c0+r2c1 = 12 → 17 is best.
        let w = array![[1.0, 8.0], [5.0, 3.0], [9.0, 7.0]];
        let a = assign(w.view(), Objective::Maximise).unwrap();
        assert_eq!(a.row_to_col, vec![Some(1), None, Some(0)]);
        assert_eq!(a.total, 17.0);
    }

    #[test]
    fn rectangular_more_columns_than_rows() {
        // 1 row, 3 columns: minimum is simply the smallest entry (2.0 at column 1).
        let w = array![[3.0, 2.0, 7.0]];
        let a = assign(w.view(), Objective::Minimise).unwrap();
        assert_eq!(a.row_to_col, vec![Some(1)]);
        assert_eq!(a.total, 2.0);
    }

    #[test]
    fn empty_and_nonfinite() {
        let w = Array2::<f64>::zeros((0, 0));
        assert_eq!(assign(w.view(), Objective::Minimise).unwrap().total, 0.0);
        let w = array![[1.0, f64::NAN]];
        assert!(assign(w.view(), Objective::Minimise).is_err());
    }

    proptest! {
        #[test]
        fn matches_brute_force(r in 1usize..6, c in 1usize..6, seed in any::<u64>(), maximise in any::<bool>()) {
            use rand::Rng;
            let mut rng = crate::rng::stream(seed, "test.hungarian");
            // Small integers make ties common, which exercises tie handling.
            let w = Array2::from_shape_fn((r, c), |_| rng.random_range(-5i32..10) as f64);
            let obj = if maximise { Objective::Maximise } else { Objective::Minimise };
            let a = assign(w.view(), obj).unwrap();
            // The assignment is injective and uses min(r, c) real cells.
            let cols: Vec<usize> = a.row_to_col.iter().flatten().copied().collect();
            let mut sorted = cols.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), cols.len());
            prop_assert_eq!(cols.len(), r.min(c));
            prop_assert_eq!(a.total, brute_force(&w, obj));
        }
    }
}
