//! Reading what `darlc eval` and `darlc leiden` score: embeddings, images, label tables, each
//! with row ids so that files are matched by name, never by row order.
//!
//! **Row ids of a safetensors file** (embeddings or images), the first rule that applies:
//! 1. the file's metadata key `ids`: a JSON array of N strings;
//! 2. a `genes.csv` in the same folder (header with `gene_id`, optionally `index` and `symbol`;
//!    N rows; `index`, when present, must count 0..N−1);
//! 3. for `darlc eval --run DIR` only: the first column of `DIR/clusters.csv` in file order, if it
//!    has N rows (a run writes its tables in image order);
//! 4. the row numbers `0`..`N−1`.
//!
//! A name is looked up first among the ids, then among the symbols (when a `genes.csv` gives them
//! and the symbol is unique), so labels may use either.
//!
//! **CSV embeddings**: a header, the id in the first column, then the vector; a second column
//! headed `symbol` (as `embeddings.csv` writes it) gives the symbols. **Label tables**: CSV with a
//! header, id in the first column, the label in the column headed `cluster` when there is one (as
//! `clusters.csv` writes it: `gene_id,symbol,cluster,confidence`), else in the second (further
//! columns ignored). Gzip files are decompressed (recognised by their magic bytes).

use crate::error::{DarlcError, Result};
use crate::io::{TensorData, TensorFile};
use ndarray::{Array2, ArrayD, Axis, CowArray, Ix2};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The file's text through the one opener of every text input ([`crate::io::source::open_text`]:
/// gzip recognised by its magic bytes, a leading byte-order mark skipped).
fn open_text(path: &Path) -> Result<Box<dyn Read>> {
    Ok(Box::new(crate::io::source::open_text(path)?))
}

fn csv_reader(path: &Path) -> Result<csv::Reader<Box<dyn Read>>> {
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(open_text(path)?))
}

fn csv_err(path: &Path, e: csv::Error) -> DarlcError {
    let line = e.position().map(|p| p.line() as usize);
    DarlcError::format(path, line, format!("cannot read CSV: {e}"))
}

/// Read a CSV with a header: first column id; the value in the column headed `cluster` when the
/// header has one after the first (`clusters.csv`), else in the second. Errors on a short row, an
/// empty id or a duplicated id (naming the file and line).
pub fn read_two_column_csv(path: &Path) -> Result<Vec<(String, String)>> {
    let mut rd = csv_reader(path)?;
    let header = rd.headers().map_err(|e| csv_err(path, e))?.clone();
    let value_col = header
        .iter()
        .skip(1)
        .position(|h| h == "cluster")
        .map_or(1, |c| c + 1);
    let mut out = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for rec in rd.records() {
        let rec = rec.map_err(|e| csv_err(path, e))?;
        let line = rec.position().map(|p| p.line() as usize);
        if rec.len() <= value_col.max(1) {
            return Err(DarlcError::format(
                path,
                line,
                if value_col == 1 {
                    "expected at least 2 columns (id, label)".to_string()
                } else {
                    format!(
                        "expected at least {} columns (the header has `cluster` in column {})",
                        value_col + 1,
                        value_col + 1
                    )
                },
            ));
        }
        let id = rec[0].to_string();
        if id.is_empty() {
            return Err(DarlcError::format(path, line, "empty id"));
        }
        if let Some(first) = seen.insert(id.clone(), line.unwrap_or(0)) {
            return Err(DarlcError::format(
                path,
                line,
                format!("id `{id}` appears twice (first on line {first})"),
            ));
        }
        out.push((id, rec[value_col].to_string()));
    }
    Ok(out)
}

/// Row ids (and optional symbols) of a matrix, with lookup by name.
#[derive(Clone, Debug)]
pub struct IdTable {
    pub ids: Vec<String>,
    pub symbols: Option<Vec<String>>,
    by_id: BTreeMap<String, usize>,
    /// `None` marks a symbol shared by several rows (not usable for lookup).
    by_symbol: BTreeMap<String, Option<usize>>,
}

impl IdTable {
    /// Build the table; `source` names where the ids came from (for the duplicate-id error).
    pub fn new(ids: Vec<String>, symbols: Option<Vec<String>>, source: &Path) -> Result<Self> {
        let mut by_id = BTreeMap::new();
        for (i, id) in ids.iter().enumerate() {
            if by_id.insert(id.clone(), i).is_some() {
                return Err(DarlcError::format(
                    source,
                    None,
                    format!("row id `{id}` appears twice"),
                ));
            }
        }
        let mut by_symbol = BTreeMap::new();
        for (i, s) in symbols.iter().flatten().enumerate() {
            by_symbol
                .entry(s.clone())
                .and_modify(|e| *e = None)
                .or_insert(Some(i));
        }
        Ok(IdTable {
            ids,
            symbols,
            by_id,
            by_symbol,
        })
    }

    /// Ids `0`..`n−1`.
    pub fn row_numbers(n: usize) -> Self {
        let ids = (0..n).map(|i| i.to_string()).collect();
        Self::new(ids, None, Path::new("")).expect("row numbers are unique")
    }

    /// The row called `name`: an id, else a unique symbol.
    pub fn lookup(&self, name: &str) -> Option<usize> {
        self.by_id
            .get(name)
            .copied()
            .or_else(|| self.by_symbol.get(name).copied().flatten())
    }

    /// Display names: the symbol when known and non-empty, else the id.
    pub fn names(&self) -> Vec<String> {
        match &self.symbols {
            Some(s) => s
                .iter()
                .zip(&self.ids)
                .map(|(s, id)| if s.is_empty() { id.clone() } else { s.clone() })
                .collect(),
            None => self.ids.clone(),
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Read `genes.csv` (header with `gene_id`, optional `index` and `symbol`): ids and symbols in
/// row order.
pub fn read_genes_csv(path: &Path) -> Result<(Vec<String>, Option<Vec<String>>)> {
    let mut rd = csv_reader(path)?;
    let header = rd.headers().map_err(|e| csv_err(path, e))?.clone();
    let col = |name: &str| header.iter().position(|h| h == name);
    let id_col = col("gene_id")
        .ok_or_else(|| DarlcError::format(path, Some(1), "header has no `gene_id` column"))?;
    let (index_col, symbol_col) = (col("index"), col("symbol"));
    let mut ids = Vec::new();
    let mut symbols = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (row, rec) in rd.records().enumerate() {
        let rec = rec.map_err(|e| csv_err(path, e))?;
        let line = rec.position().map(|p| p.line() as usize);
        let field = |c: usize| {
            rec.get(c)
                .map(str::to_string)
                .ok_or_else(|| DarlcError::format(path, line, format!("missing column {}", c + 1)))
        };
        if let Some(c) = index_col {
            let v = field(c)?;
            if v.parse::<usize>().ok() != Some(row) {
                return Err(DarlcError::format(
                    path,
                    line,
                    format!("index `{v}` but this is row {row}; rows must be in index order"),
                ));
            }
        }
        let id = field(id_col)?;
        if let Some(first) = seen.insert(id.clone(), line.unwrap_or(0)) {
            return Err(DarlcError::format(
                path,
                line,
                format!("gene_id `{id}` appears twice (first on line {first})"),
            ));
        }
        ids.push(id);
        if let Some(c) = symbol_col {
            symbols.push(field(c)?);
        }
    }
    Ok((ids, symbol_col.map(|_| symbols)))
}

/// A data matrix with named rows.
#[derive(Clone, Debug)]
pub struct Matrix {
    pub ids: IdTable,
    pub x: Array2<f64>,
    /// The file it came from.
    pub path: PathBuf,
    /// What the rows are, for messages and the report ("tensor `z`", "CSV", "images, 812 pixels").
    pub what: String,
}

impl Matrix {
    /// Rows of `x` for the given names, in that order; a missing name is an error naming this
    /// file, the name, and where the name came from (`origin`). When the names are this file's
    /// rows in order (a run folder scoring itself) the rows are borrowed, not copied: for 15,000
    /// images of 4,007 tissue pixels a copy is another 480 MB at the run's output phase.
    pub fn rows_for(&self, names: &[String], origin: &Path) -> Result<CowArray<'_, f64, Ix2>> {
        let mut idx = Vec::with_capacity(names.len());
        for name in names {
            let i = self.ids.lookup(name).ok_or_else(|| {
                DarlcError::format(
                    &self.path,
                    None,
                    format!("no row for id `{name}` (listed in {})", origin.display()),
                )
            })?;
            idx.push(i);
        }
        if idx.len() == self.x.nrows() && idx.iter().enumerate().all(|(k, &i)| k == i) {
            return Ok(CowArray::from(self.x.view()));
        }
        Ok(CowArray::from(self.x.select(Axis(0), &idx)))
    }
}

fn is_safetensors(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e == "safetensors" || e == "st")
}

/// Ids of an N-row safetensors file, rules 1, 2 and 4 of the module doc, with `fallback` as
/// rule 3.
fn safetensors_ids(
    path: &Path,
    file: &TensorFile,
    n: usize,
    fallback: Option<&[String]>,
) -> Result<IdTable> {
    if let Some(json) = file.metadata.get("ids") {
        let ids: Vec<String> = serde_json::from_str(json).map_err(|e| {
            DarlcError::format(
                path,
                None,
                format!("metadata `ids` is not a JSON string list: {e}"),
            )
        })?;
        if ids.len() != n {
            return Err(DarlcError::format(
                path,
                None,
                format!("metadata `ids` has {} entries for {n} rows", ids.len()),
            ));
        }
        return IdTable::new(ids, None, path);
    }
    let genes = path
        .parent()
        .map(|d| d.join("genes.csv"))
        .filter(|p| p.is_file());
    if let Some(g) = genes {
        let (ids, symbols) = read_genes_csv(&g)?;
        if ids.len() != n {
            return Err(DarlcError::format(
                &g,
                None,
                format!(
                    "has {} genes but {} has {n} rows; they must describe the same genes",
                    ids.len(),
                    path.display()
                ),
            ));
        }
        return IdTable::new(ids, symbols, &g);
    }
    if let Some(ids) = fallback.filter(|f| f.len() == n) {
        return IdTable::new(ids.to_vec(), None, path);
    }
    Ok(IdTable::row_numbers(n))
}

/// NaN or ±inf in a numeric input is an error naming the file, row and column (issue 24): the
/// metrics would otherwise print NaN and exit 0.
fn check_finite_rows(x: &Array2<f64>, path: &Path, what: &str) -> Result<()> {
    if let Some(((i, j), v)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(DarlcError::format(
            path,
            None,
            format!("{what}: row {i}, column {j} is {v}; every value must be finite"),
        ));
    }
    Ok(())
}

fn to_rows(a: ArrayD<f64>, path: &Path, name: &str) -> Result<Array2<f64>> {
    let shape = a.shape().to_vec();
    if shape.is_empty() {
        return Err(DarlcError::format(
            path,
            None,
            format!("tensor `{name}` is a scalar; expected one row per item"),
        ));
    }
    let n = shape[0];
    let d: usize = shape[1..].iter().product();
    a.into_shape_with_order((n, d))
        .map_err(|e| DarlcError::format(path, None, format!("tensor `{name}`: {e}")))
}

/// Load embeddings from safetensors (tensor `tensor`, else `z`, else `h`, else the only tensor;
/// trailing dimensions flattened) or CSV (module doc). `fallback_ids` is rule 3 of the id rules.
pub fn load_embeddings(
    path: &Path,
    tensor: Option<&str>,
    fallback_ids: Option<&[String]>,
) -> Result<Matrix> {
    if !is_safetensors(path) {
        return load_csv_matrix(path);
    }
    let file = TensorFile::load(path)?;
    let name = match tensor {
        Some(t) => t.to_string(),
        None => ["z", "h"]
            .iter()
            .find(|t| file.tensors.contains_key(**t))
            .map(|t| t.to_string())
            .or_else(|| (file.tensors.len() == 1).then(|| file.tensors.keys().next().cloned())?)
            .ok_or_else(|| {
                DarlcError::format(
                    path,
                    None,
                    format!(
                        "no tensor `z` or `h` and not exactly one tensor (has: {}); name one \
                         with --tensor",
                        file.tensors.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
            })?,
    };
    let x = to_rows(file.get(&name, path)?.to_f64(), path, &name)?;
    check_finite_rows(&x, path, &format!("tensor `{name}`"))?;
    let ids = safetensors_ids(path, &file, x.nrows(), fallback_ids)?;
    Ok(Matrix {
        ids,
        x,
        path: path.to_path_buf(),
        what: format!("tensor `{name}`"),
    })
}

/// CSV matrix: header, id in the first column, then numbers; a second column headed `symbol`
/// (`embeddings.csv`) holds the symbols.
pub fn load_csv_matrix(path: &Path) -> Result<Matrix> {
    let mut rd = csv_reader(path)?;
    let header = rd.headers().map_err(|e| csv_err(path, e))?.clone();
    let has_symbol = header.get(1) == Some("symbol");
    let first_value = if has_symbol { 2 } else { 1 };
    let mut symbols = Vec::new();
    let mut ids = Vec::new();
    let mut values = Vec::new();
    let mut width: Option<usize> = None;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for rec in rd.records() {
        let rec = rec.map_err(|e| csv_err(path, e))?;
        let line = rec.position().map(|p| p.line() as usize);
        let d = rec.len().saturating_sub(first_value);
        if d == 0 {
            return Err(DarlcError::format(
                path,
                line,
                "a row needs an id and ≥ 1 value",
            ));
        }
        if *width.get_or_insert(d) != d {
            return Err(DarlcError::format(
                path,
                line,
                format!("{d} values but earlier rows have {}", width.unwrap_or(0)),
            ));
        }
        if let Some(first) = seen.insert(rec[0].to_string(), line.unwrap_or(0)) {
            return Err(DarlcError::format(
                path,
                line,
                format!("id `{}` appears twice (first on line {first})", &rec[0]),
            ));
        }
        ids.push(rec[0].to_string());
        if has_symbol {
            symbols.push(rec[1].to_string());
        }
        for (c, f) in rec.iter().enumerate().skip(first_value) {
            let v: f64 = f.parse().map_err(|_| {
                DarlcError::format(
                    path,
                    line,
                    format!("column {}: `{f}` is not a number", c + 1),
                )
            })?;
            if !v.is_finite() {
                return Err(DarlcError::format(
                    path,
                    line,
                    format!("column {}: `{f}` is not a finite number", c + 1),
                ));
            }
            values.push(v);
        }
    }
    let n = ids.len();
    let x = Array2::from_shape_vec((n, width.unwrap_or(0)), values)
        .map_err(|e| DarlcError::format(path, None, e.to_string()))?;
    Ok(Matrix {
        ids: IdTable::new(ids, has_symbol.then_some(symbols), path)?,
        x,
        path: path.to_path_buf(),
        what: "CSV".into(),
    })
}

/// Load raw images for DBIE/DBIP/SAM: tensor `images` [N, C, H, W] (or [N, H, W]) and optional
/// `mask` [H, W] (non-zero = tissue). Each image becomes the vector of its tissue pixels over all
/// channels (method §12.1 CHOICE); all pixels when there is no mask.
pub fn load_images(path: &Path) -> Result<Matrix> {
    let file = TensorFile::load(path)?;
    let images = file.get("images", path)?.to_f64();
    let shape = images.shape().to_vec();
    let (n, c, h, w) = match shape.as_slice() {
        [n, c, h, w] => (*n, *c, *h, *w),
        [n, h, w] => (*n, 1, *h, *w),
        _ => {
            return Err(DarlcError::format(
                path,
                None,
                format!("tensor `images` has shape {shape:?}; expected [N, C, H, W]"),
            ));
        }
    };
    let keep: Vec<bool> = match file.tensors.get("mask") {
        None => vec![true; h * w],
        Some(m) => {
            if m.shape() != [h, w] {
                return Err(DarlcError::format(
                    path,
                    None,
                    format!(
                        "tensor `mask` has shape {:?}; expected [{h}, {w}]",
                        m.shape()
                    ),
                ));
            }
            match m {
                TensorData::U8(a) => a.iter().map(|&v| v != 0).collect(),
                other => other.to_f64().iter().map(|&v| v != 0.0).collect(),
            }
        }
    };
    let pix: Vec<usize> = (0..h * w).filter(|&p| keep[p]).collect();
    if pix.is_empty() {
        return Err(DarlcError::format(path, None, "the mask selects no pixel"));
    }
    let flat = images
        .into_shape_with_order((n, c, h * w))
        .map_err(|e| DarlcError::format(path, None, e.to_string()))?;
    let mut x = Array2::<f64>::zeros((n, c * pix.len()));
    for i in 0..n {
        for ch in 0..c {
            for (q, &p) in pix.iter().enumerate() {
                x[[i, ch * pix.len() + q]] = flat[[i, ch, p]];
            }
        }
    }
    check_finite_rows(&x, path, "tensor `images` (tissue pixels)")?;
    let ids = safetensors_ids(path, &file, n, None)?;
    Ok(Matrix {
        ids,
        x,
        path: path.to_path_buf(),
        what: format!("images, {} tissue pixels × {c} channel(s)", pix.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("darlc-input-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn tensor_choice_and_id_rules() {
        let d = dir("rules");
        let p = d.join("e.safetensors");
        let mut f = TensorFile::new();
        f.insert_float("h", array![[1.0f32, 2.0], [3.0, 4.0]].into_dyn());
        f.insert_float("z", array![[5.0f64], [6.0]].into_dyn());
        f.save(&p).unwrap();
        // Rule 4 (no ids anywhere): row numbers; `z` preferred over `h`.
        let m = load_embeddings(&p, None, None).unwrap();
        assert_eq!(m.x, array![[5.0], [6.0]]);
        assert_eq!(m.ids.ids, vec!["0", "1"]);
        // Rule 3: the fallback list when it has N entries.
        let fb = vec!["a".to_string(), "b".to_string()];
        let m = load_embeddings(&p, Some("h"), Some(&fb)).unwrap();
        assert_eq!(m.ids.lookup("b"), Some(1));
        assert_eq!(m.x[[1, 0]], 3.0);
        // Rule 2: genes.csv beside the file, lookup by id or symbol.
        std::fs::write(
            d.join("genes.csv"),
            "index,gene_id,symbol\n0,E1,Foo\n1,E2,Bar\n",
        )
        .unwrap();
        let m = load_embeddings(&p, None, Some(&fb)).unwrap();
        assert_eq!(
            (m.ids.lookup("E2"), m.ids.lookup("Foo")),
            (Some(1), Some(0))
        );
        assert_eq!(m.ids.lookup("a"), None);
        // Rule 1: metadata ids win over genes.csv.
        f.metadata.insert("ids".into(), r#"["p","q"]"#.into());
        f.save(&p).unwrap();
        let m = load_embeddings(&p, None, None).unwrap();
        assert_eq!(m.ids.ids, vec!["p", "q"]);
        // Neither z nor h and several tensors: an error listing them.
        let mut g = TensorFile::new();
        g.insert_float("a", array![[1.0f32]].into_dyn());
        g.insert_float("b", array![[1.0f32]].into_dyn());
        let q = d.join("other.st");
        g.save(&q).unwrap();
        let e = load_embeddings(&q, None, None).unwrap_err().to_string();
        assert!(e.contains("a, b"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn genes_csv_and_csv_matrix_errors_name_the_line() {
        let d = dir("errs");
        let g = d.join("genes.csv");
        std::fs::write(&g, "index,gene_id,symbol\n0,E1,A\n2,E2,B\n").unwrap();
        let e = read_genes_csv(&g).unwrap_err().to_string();
        assert!(e.contains("genes.csv:3"), "{e}");
        let c = d.join("m.csv");
        std::fs::write(&c, "id,a,b\nx,1,2\ny,3\n").unwrap();
        let e = load_csv_matrix(&c).unwrap_err().to_string();
        assert!(e.contains("m.csv:3"), "{e}");
        std::fs::write(&c, "id,a\nx,1\ny,oops\n").unwrap();
        let e = load_csv_matrix(&c).unwrap_err().to_string();
        assert!(e.contains("m.csv:3") && e.contains("oops"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn clusters_csv_label_and_embeddings_csv_symbol_columns() {
        let d = dir("cols");
        // clusters.csv: the label is the `cluster` column, not the symbol beside the id.
        let c = d.join("clusters.csv");
        std::fs::write(
            &c,
            "gene_id,symbol,cluster,confidence\nE1,Foo,3,0.9\nE2,Bar,0,0.8\n",
        )
        .unwrap();
        assert_eq!(
            read_two_column_csv(&c).unwrap(),
            vec![("E1".into(), "3".into()), ("E2".into(), "0".into())]
        );
        // A row too short for the `cluster` column names it.
        std::fs::write(&c, "gene_id,symbol,cluster\nE1,Foo\n").unwrap();
        let e = read_two_column_csv(&c).unwrap_err().to_string();
        assert!(
            e.contains("clusters.csv:2") && e.contains("column 3"),
            "{e}"
        );
        // embeddings.csv: `symbol` is not a coordinate; it makes the symbols known.
        let m = d.join("embeddings.csv");
        std::fs::write(&m, "gene_id,symbol,z0,z1\nE1,Foo,1,2\nE2,Bar,3,4\n").unwrap();
        let x = load_csv_matrix(&m).unwrap();
        assert_eq!(x.x, ndarray::array![[1.0, 2.0], [3.0, 4.0]]);
        assert_eq!(x.ids.lookup("Bar"), Some(1));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn gzipped_csv_and_ambiguous_symbols() {
        use std::io::Write;
        let d = dir("gz");
        let p = d.join("l.csv.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&p).unwrap(),
            flate2::Compression::default(),
        );
        enc.write_all(b"id,label\na,1\nb,2\n").unwrap();
        enc.finish().unwrap();
        assert_eq!(
            read_two_column_csv(&p).unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        // A symbol shared by two rows cannot be used to look a row up.
        let t = IdTable::new(
            vec!["E1".into(), "E2".into()],
            Some(vec!["S".into(), "S".into()]),
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(t.lookup("S"), None);
        assert_eq!(t.lookup("E2"), Some(1));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn rows_for_borrows_rows_in_file_order_and_copies_otherwise() {
        let ids: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let m = Matrix {
            ids: IdTable::new(ids.clone(), None, Path::new("m.csv")).unwrap(),
            x: array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
            path: PathBuf::from("m.csv"),
            what: "test".into(),
        };
        let same = m.rows_for(&ids, Path::new("labels.csv")).unwrap();
        assert!(same.is_view(), "rows in file order are borrowed");
        assert_eq!(same, m.x);
        let names: Vec<String> = ["c", "a"].iter().map(|s| s.to_string()).collect();
        let sel = m.rows_for(&names, Path::new("labels.csv")).unwrap();
        assert!(!sel.is_view());
        assert_eq!(sel, array![[5.0, 6.0], [1.0, 2.0]]);
        // A subset in file order is not the whole file: it is copied, not borrowed.
        let first = m.rows_for(&ids[..2], Path::new("labels.csv")).unwrap();
        assert!(!first.is_view());
        assert_eq!(first, array![[1.0, 2.0], [3.0, 4.0]]);
        let e = m
            .rows_for(&["z".to_string()], Path::new("labels.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`z`") && e.contains("labels.csv"), "{e}");
    }
}
