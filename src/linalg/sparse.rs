//! A minimal compressed-sparse-row matrix for the similarity graphs of method §7 and §10.

use ndarray::Array2;

/// CSR matrix with `f64` values and strictly increasing column indices within each row.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    /// Number of rows.
    pub n_rows: usize,
    /// Number of columns.
    pub n_cols: usize,
    /// Row pointers, length `n_rows + 1`.
    pub indptr: Vec<usize>,
    /// Column indices, sorted ascending within each row.
    pub indices: Vec<usize>,
    /// Values aligned with `indices`.
    pub values: Vec<f64>,
}

impl Csr {
    /// Build from per-row entry lists; each list is sorted by column here (stable), and a
    /// repeated column keeps its first value.
    pub fn from_rows(n_cols: usize, rows: Vec<Vec<(usize, f64)>>) -> Csr {
        let n_rows = rows.len();
        let mut indptr = Vec::with_capacity(n_rows + 1);
        indptr.push(0);
        let mut indices = Vec::new();
        let mut values = Vec::new();
        for mut row in rows {
            row.sort_by_key(|&(j, _)| j);
            let mut last = usize::MAX;
            for (j, v) in row {
                if j != last {
                    indices.push(j);
                    values.push(v);
                    last = j;
                }
            }
            indptr.push(indices.len());
        }
        Csr {
            n_rows,
            n_cols,
            indptr,
            indices,
            values,
        }
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Column indices and values of row `i`.
    pub fn row(&self, i: usize) -> (&[usize], &[f64]) {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        (&self.indices[a..b], &self.values[a..b])
    }

    /// Entry `(i, j)` (0 when not stored).
    pub fn get(&self, i: usize, j: usize) -> f64 {
        let (cols, vals) = self.row(i);
        match cols.binary_search(&j) {
            Ok(p) => vals[p],
            Err(_) => 0.0,
        }
    }

    /// Row sums, each summed in column order.
    pub fn row_sums(&self) -> Vec<f64> {
        (0..self.n_rows)
            .map(|i| self.row(i).1.iter().fold(0.0, |s, v| s + v))
            .collect()
    }

    /// Largest stored value (`-∞` when empty).
    pub fn max_value(&self) -> f64 {
        self.values.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v))
    }

    /// Whether `A = Aᵀ` exactly (same pattern, bit-equal values).
    pub fn is_symmetric(&self) -> bool {
        self.n_rows == self.n_cols
            && (0..self.n_rows).all(|i| {
                let (cols, vals) = self.row(i);
                cols.iter()
                    .zip(vals)
                    .all(|(&j, &v)| self.get(j, i).to_bits() == v.to_bits())
            })
    }

    /// Dense copy (tests and small problems only).
    pub fn to_dense(&self) -> Array2<f64> {
        let mut a = Array2::zeros((self.n_rows, self.n_cols));
        for i in 0..self.n_rows {
            let (cols, vals) = self.row(i);
            for (&j, &v) in cols.iter().zip(vals) {
                a[[i, j]] = v;
            }
        }
        a
    }
}
