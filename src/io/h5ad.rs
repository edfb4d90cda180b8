//! An AnnData (`.h5ad`) writer on the pure-Rust HDF5 crate `hdf5-pure` (issue 25, item 2).
//!
//! Plain data in (strings, numbers, flat row-major arrays), no darlc types: the caller builds an
//! [`AnnData`] and [`AnnData::to_bytes`] lays it out as AnnData's on-disk format describes it
//! (<https://anndata.readthedocs.io/en/latest/fileformat-prose.html>), which Python's
//! `anndata.read_h5ad` opens:
//!
//! | element | HDF5 | `encoding-type`, `-version` |
//! |---|---|---|
//! | the file (root group) | group | `anndata` 0.1.0 |
//! | `obs`, `var` | group: one dataset per column + the index dataset `_index`; attrs `_index`, `column-order` | `dataframe` 0.2.0 |
//! | string column, index, categories | variable-length UTF-8 string dataset | `string-array` 0.2.0 |
//! | numeric column | int64 / float32 / float64 dataset | `array` 0.2.0 |
//! | categorical column | group `categories` (string-array), `codes` (int32, −1 = missing), attr `ordered` | `categorical` 0.2.0 |
//! | `X` | group `data` (float32), `indices` (int32), `indptr` (int64), attr `shape` | `csr_matrix` 0.1.0 |
//! | `obsm`, `varm`, `uns`, `layers`, `obsp`, `varp` | group of named elements | `dict` 0.1.0 |
//! | dense matrix | 2-D float32/float64 dataset | `array` 0.2.0 |
//! | scalar in `uns` | 0-D dataset (a bool is h5py's `enum {FALSE, TRUE}` over int8) | `numeric-scalar` 0.2.0 |
//! | string in `uns` | 0-D fixed-length UTF-8 string | `string` 0.2.0 |
//!
//! String arrays (`string-array`: names, columns, categories) are variable-length UTF-8 as the
//! format says; string attributes (`encoding-type`, `_index`, `column-order`…) and scalar strings
//! in `uns` are fixed-length UTF-8, which anndata decodes too (see [`vstr`]): hdf5-pure spends a
//! 4 KiB heap collection on each variable-length one. Datasets are contiguous and uncompressed: what the
//! crate writes byte-for-byte the same on every run, and the X of a section (a few MB) does not
//! need compression.

use crate::error::{DarlcError, Result};
use hdf5_pure::{
    AttrValue, DatasetBuilder, EnumTypeBuilder, FileBuilder, GroupBuilder, make_i8_type,
};
use std::path::Path;

/// One column of an `obs`/`var` dataframe.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    Int(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Str(Vec<String>),
    /// pandas `Categorical`: per row an index into `categories`, or −1 for a missing value.
    Categorical {
        codes: Vec<i32>,
        categories: Vec<String>,
        ordered: bool,
    },
}

impl Column {
    fn len(&self) -> usize {
        match self {
            Column::Int(v) => v.len(),
            Column::F32(v) => v.len(),
            Column::F64(v) => v.len(),
            Column::Str(v) => v.len(),
            Column::Categorical { codes, .. } => codes.len(),
        }
    }
}

/// An `obs` or `var` table: the row names (`obs_names`/`var_names`, unique) and named columns
/// in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DataFrame {
    pub index: Vec<String>,
    pub columns: Vec<(String, Column)>,
}

/// A dense row-major matrix (`obsm`/`varm` entries).
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    pub rows: usize,
    pub cols: usize,
    pub data: DenseData,
}

/// The values of a [`Dense`], row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum DenseData {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// A compressed sparse row matrix (`X`): row `i`'s entries are `indices[indptr[i]..indptr[i+1]]`
/// (column indices, increasing within a row) with values `data[..]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Csr {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
    /// int32, as scipy stores the indices of a matrix with fewer than 2³¹ columns (half the bytes
    /// of int64 for the largest part of the file).
    pub indices: Vec<i32>,
    pub indptr: Vec<i64>,
}

impl Csr {
    /// The non-zero entries of a dense `rows × cols` matrix given row-major (an iterator, so
    /// that a large matrix is not copied first). Missing values are zeros; extra ones are ignored.
    pub fn from_row_major(rows: usize, cols: usize, values: impl IntoIterator<Item = f32>) -> Csr {
        let mut c = Csr {
            rows,
            cols,
            data: vec![],
            indices: vec![],
            indptr: Vec::with_capacity(rows + 1),
        };
        c.indptr.push(0);
        let mut it = values.into_iter();
        for _ in 0..rows {
            for (j, v) in it.by_ref().take(cols).enumerate() {
                if v != 0.0 {
                    c.data.push(v);
                    c.indices.push(j as i32);
                }
            }
            c.indptr.push(c.data.len() as i64);
        }
        c
    }
}

/// A value of `uns` (AnnData's unstructured metadata).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Dict(Vec<(String, Value)>),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Ints(Vec<i64>),
    Floats(Vec<f64>),
    Strs(Vec<String>),
}

impl Value {
    /// A JSON value as `uns` holds it: objects become dicts (keys in the JSON's order), numbers
    /// numeric scalars (integers as int64), arrays of numbers / strings / booleans 1-D arrays.
    /// AnnData has no null: a `null` member of an object is left out, and any other value that
    /// has no AnnData form (`null` in an array, an array of mixed kinds or of objects) is kept as
    /// its JSON text.
    pub fn from_json(v: &serde_json::Value) -> Option<Value> {
        use serde_json::Value as J;
        Some(match v {
            J::Null => return None,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::Str(s.clone()),
            J::Object(m) => Value::Dict(
                m.iter()
                    .filter_map(|(k, v)| Value::from_json(v).map(|v| (k.clone(), v)))
                    .collect(),
            ),
            J::Array(a) => {
                if a.iter().all(|x| x.as_i64().is_some()) {
                    Value::Ints(a.iter().filter_map(|x| x.as_i64()).collect())
                } else if a.iter().all(|x| x.is_number()) {
                    Value::Floats(a.iter().filter_map(|x| x.as_f64()).collect())
                } else if a.iter().all(|x| x.is_string()) {
                    Value::Strs(
                        a.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect(),
                    )
                } else if a.iter().all(|x| x.is_boolean()) {
                    Value::Ints(
                        a.iter()
                            .map(|x| i64::from(x.as_bool() == Some(true)))
                            .collect(),
                    )
                } else {
                    Value::Str(v.to_string())
                }
            }
        })
    }
}

/// An AnnData object: `n_obs × n_vars`, as much of it as darlc writes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnnData {
    pub obs: DataFrame,
    pub var: DataFrame,
    /// `X`, `n_obs × n_vars` (absent: no `X` in the file, which anndata reads as `X = None`).
    pub x: Option<Csr>,
    pub obsm: Vec<(String, Dense)>,
    pub varm: Vec<(String, Dense)>,
    pub uns: Vec<(String, Value)>,
}

/// A string attribute: fixed-length UTF-8. hdf5-pure gives every variable-length string
/// attribute a global-heap collection of its own, at least 4 KiB: 176 attributes made a 20-gene
/// file 0.8 MB. anndata decodes fixed-length string attributes (its path for files written by
/// Julia's HDF5.jl), so they cost only their bytes.
fn vstr(s: &str) -> AttrValue {
    AttrValue::String(s.to_string())
}

/// Anything that holds datasets and attributes: the root or a group.
trait Node {
    fn dataset(&mut self, name: &str) -> &mut DatasetBuilder;
    fn attr(&mut self, name: &str, value: AttrValue);
    fn group(&mut self, name: &str) -> GroupBuilder;
    fn add(&mut self, g: hdf5_pure::FinishedGroup);
}

impl Node for FileBuilder {
    fn dataset(&mut self, name: &str) -> &mut DatasetBuilder {
        self.create_dataset(name)
    }
    fn attr(&mut self, name: &str, value: AttrValue) {
        self.set_attr(name, value)
    }
    fn group(&mut self, name: &str) -> GroupBuilder {
        self.create_group(name)
    }
    fn add(&mut self, g: hdf5_pure::FinishedGroup) {
        self.add_group(g)
    }
}

impl Node for GroupBuilder {
    fn dataset(&mut self, name: &str) -> &mut DatasetBuilder {
        self.create_dataset(name)
    }
    fn attr(&mut self, name: &str, value: AttrValue) {
        self.set_attr(name, value)
    }
    fn group(&mut self, name: &str) -> GroupBuilder {
        self.create_group(name)
    }
    fn add(&mut self, g: hdf5_pure::FinishedGroup) {
        self.add_group(g)
    }
}

fn encoding(n: &mut dyn Node, kind: &str, version: &str) {
    n.attr("encoding-type", vstr(kind));
    n.attr("encoding-version", vstr(version));
}

fn tag(d: &mut DatasetBuilder, kind: &str, version: &str) {
    d.set_attr("encoding-type", vstr(kind));
    d.set_attr("encoding-version", vstr(version));
}

fn strings(n: &mut dyn Node, name: &str, values: &[String]) {
    let v: Vec<&str> = values.iter().map(String::as_str).collect();
    tag(
        n.dataset(name).with_vlen_strings(&v),
        "string-array",
        "0.2.0",
    );
}

fn column(n: &mut dyn Node, name: &str, c: &Column) {
    match c {
        Column::Int(v) => tag(n.dataset(name).with_i64_data(v), "array", "0.2.0"),
        Column::F32(v) => tag(n.dataset(name).with_f32_data(v), "array", "0.2.0"),
        Column::F64(v) => tag(n.dataset(name).with_f64_data(v), "array", "0.2.0"),
        Column::Str(v) => strings(n, name, v),
        Column::Categorical {
            codes,
            categories,
            ordered,
        } => {
            let mut g = n.group(name);
            encoding(&mut g, "categorical", "0.2.0");
            g.set_attr("ordered", AttrValue::I8(i8::from(*ordered)));
            strings(&mut g, "categories", categories);
            tag(
                g.create_dataset("codes").with_i32_data(codes),
                "array",
                "0.2.0",
            );
            n.add(g.finish());
        }
    }
}

fn dataframe(n: &mut dyn Node, name: &str, df: &DataFrame) {
    let mut g = n.group(name);
    encoding(&mut g, "dataframe", "0.2.0");
    g.set_attr("_index", vstr("_index"));
    g.set_attr(
        "column-order",
        AttrValue::StringArray(df.columns.iter().map(|(k, _)| k.clone()).collect()),
    );
    strings(&mut g, "_index", &df.index);
    for (k, c) in &df.columns {
        column(&mut g, k, c);
    }
    n.add(g.finish());
}

fn dense(n: &mut dyn Node, name: &str, m: &Dense) {
    let shape = [m.rows as u64, m.cols as u64];
    let d = n.dataset(name);
    match &m.data {
        DenseData::F32(v) => d.with_f32_data(v),
        DenseData::F64(v) => d.with_f64_data(v),
    };
    tag(d.with_shape(&shape), "array", "0.2.0");
}

fn dict_of_dense(n: &mut dyn Node, name: &str, items: &[(String, Dense)]) {
    let mut g = n.group(name);
    encoding(&mut g, "dict", "0.1.0");
    for (k, m) in items {
        dense(&mut g, k, m);
    }
    n.add(g.finish());
}

fn empty_dict(n: &mut dyn Node, name: &str) {
    let mut g = n.group(name);
    encoding(&mut g, "dict", "0.1.0");
    n.add(g.finish());
}

fn value(n: &mut dyn Node, name: &str, v: &Value) -> Result<()> {
    match v {
        Value::Dict(items) => {
            let mut g = n.group(name);
            encoding(&mut g, "dict", "0.1.0");
            for (k, v) in items {
                value(&mut g, k, v)?;
            }
            n.add(g.finish());
        }
        // Fixed-length too (one heap collection per scalar would cost 4 KiB each); anndata reads
        // a `string` with h5py's `asstr()`, which decodes either kind.
        Value::Str(s) => {
            let d = n
                .dataset(name)
                .with_strings(&[s])
                .map_err(|e| DarlcError::Data(format!("h5ad: string `{name}`: {e}")))?;
            tag(d.with_shape(&[]), "string", "0.2.0")
        }
        Value::Int(i) => tag(
            n.dataset(name).with_i64_data(&[*i]).with_shape(&[]),
            "numeric-scalar",
            "0.2.0",
        ),
        Value::Float(f) => tag(
            n.dataset(name).with_f64_data(&[*f]).with_shape(&[]),
            "numeric-scalar",
            "0.2.0",
        ),
        Value::Bool(b) => {
            // h5py's bool: an enumeration {FALSE = 0, TRUE = 1} over int8, read back as numpy bool.
            let t = EnumTypeBuilder::with_base(make_i8_type())
                .value("FALSE", 0)
                .value("TRUE", 1)
                .build()
                .map_err(|e| DarlcError::Data(format!("h5ad: bool type: {e}")))?;
            tag(
                n.dataset(name)
                    .with_enum_u8_data(t, &[u8::from(*b)])
                    .with_shape(&[]),
                "numeric-scalar",
                "0.2.0",
            )
        }
        Value::Ints(a) => tag(n.dataset(name).with_i64_data(a), "array", "0.2.0"),
        Value::Floats(a) => tag(n.dataset(name).with_f64_data(a), "array", "0.2.0"),
        Value::Strs(a) => strings(n, name, a),
    }
    Ok(())
}

impl AnnData {
    /// Check that every part has the shape `n_obs × n_vars` implies and that the names are
    /// unique, before anything is written.
    pub fn validate(&self) -> Result<()> {
        let (n_obs, n_vars) = (self.obs.index.len(), self.var.index.len());
        let bad = |m: String| Err(DarlcError::Data(format!("h5ad: {m}")));
        for (what, df, n) in [("obs", &self.obs, n_obs), ("var", &self.var, n_vars)] {
            let mut seen = std::collections::BTreeSet::new();
            if let Some(dup) = df.index.iter().find(|s| !seen.insert(s.as_str())) {
                return bad(format!("{what} name `{dup}` is not unique"));
            }
            let mut names = std::collections::BTreeSet::new();
            for (k, c) in &df.columns {
                if k == "_index" || !names.insert(k.as_str()) || k.contains('/') || k.is_empty() {
                    return bad(format!(
                        "{what} column name `{k}` is empty, repeated, reserved or has a `/`"
                    ));
                }
                if c.len() != n {
                    return bad(format!("{what} column `{k}` has {} rows, not {n}", c.len()));
                }
                if let Column::Categorical {
                    codes, categories, ..
                } = c
                    && let Some(&code) = codes
                        .iter()
                        .find(|&&v| v < -1 || v >= categories.len() as i32)
                {
                    return bad(format!(
                        "{what} column `{k}`: code {code} outside -1..{}",
                        categories.len()
                    ));
                }
            }
        }
        if let Some(x) = &self.x {
            let ok = x.rows == n_obs
                && x.cols == n_vars
                && x.indptr.len() == n_obs + 1
                && x.indptr.first() == Some(&0)
                && x.indptr.windows(2).all(|w| w[0] <= w[1])
                && x.indptr.last() == Some(&(x.data.len() as i64))
                && x.indices.len() == x.data.len()
                && n_vars <= i32::MAX as usize
                && x.indices.iter().all(|&j| j >= 0 && (j as usize) < n_vars);
            if !ok {
                return bad(format!(
                    "X is not a consistent {n_obs} × {n_vars} CSR matrix"
                ));
            }
        }
        for (what, items, n) in [("obsm", &self.obsm, n_obs), ("varm", &self.varm, n_vars)] {
            for (k, m) in items {
                let len = match &m.data {
                    DenseData::F32(v) => v.len(),
                    DenseData::F64(v) => v.len(),
                };
                if m.rows != n || len != m.rows * m.cols || k.contains('/') || k.is_empty() {
                    return bad(format!(
                        "{what}[\"{k}\"] is {} × {} with {len} values; it needs {n} rows",
                        m.rows, m.cols
                    ));
                }
            }
        }
        Ok(())
    }

    /// The `.h5ad` file's bytes (after [`AnnData::validate`]).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.builder()?
            .finish()
            .map_err(|e| DarlcError::Data(format!("h5ad: HDF5 writer: {e}")))
    }

    /// Write the file atomically ([`super::atomic_write_with`]), streamed from the HDF5 builder
    /// (no second copy of the file in memory).
    pub fn write(&self, path: &Path) -> Result<()> {
        let b = self.builder()?;
        super::atomic_write_with(path, |w| {
            b.finish_to(w)
                .map_err(|e| std::io::Error::other(format!("HDF5 writer: {e}")))
        })
    }

    /// The file, laid out (after [`AnnData::validate`]).
    fn builder(&self) -> Result<FileBuilder> {
        self.validate()?;
        let mut f = FileBuilder::new();
        encoding(&mut f, "anndata", "0.1.0");
        dataframe(&mut f, "obs", &self.obs);
        dataframe(&mut f, "var", &self.var);
        if let Some(x) = &self.x {
            let mut g = f.create_group("X");
            encoding(&mut g, "csr_matrix", "0.1.0");
            g.set_attr(
                "shape",
                AttrValue::I64Array(vec![x.rows as i64, x.cols as i64]),
            );
            g.create_dataset("data").with_f32_data(&x.data);
            g.create_dataset("indices").with_i32_data(&x.indices);
            g.create_dataset("indptr").with_i64_data(&x.indptr);
            f.add_group(g.finish());
        }
        dict_of_dense(&mut f, "obsm", &self.obsm);
        dict_of_dense(&mut f, "varm", &self.varm);
        for name in ["layers", "obsp", "varp"] {
            empty_dict(&mut f, name);
        }
        let mut g = f.create_group("uns");
        encoding(&mut g, "dict", "0.1.0");
        for (k, v) in &self.uns {
            value(&mut g, k, v)?;
        }
        f.add_group(g.finish());
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdf5_pure::File;

    fn small() -> AnnData {
        AnnData {
            obs: DataFrame {
                index: vec!["s0".into(), "s1".into(), "s2".into()],
                columns: vec![
                    ("row".into(), Column::Int(vec![0, 1, 2])),
                    ("w".into(), Column::F64(vec![0.5, 1.5, 2.5])),
                ],
            },
            var: DataFrame {
                index: vec!["g0".into(), "g1".into()],
                columns: vec![
                    (
                        "cl".into(),
                        Column::Categorical {
                            codes: vec![1, 0],
                            categories: vec!["0".into(), "1".into()],
                            ordered: false,
                        },
                    ),
                    ("sym".into(), Column::Str(vec!["A".into(), "Bé".into()])),
                ],
            },
            x: Some(Csr::from_row_major(3, 2, [1.0, 0.0, 0.0, 0.0, 0.0, 2.5])),
            obsm: vec![(
                "m".into(),
                Dense {
                    rows: 3,
                    cols: 1,
                    data: DenseData::F32(vec![1.0, 2.0, 3.0]),
                },
            )],
            varm: vec![],
            uns: vec![(
                "d".into(),
                Value::from_json(
                    &serde_json::json!({"a": 1, "b": "x", "c": true, "n": null, "f": [0.5, 1]}),
                )
                .unwrap(),
            )],
        }
    }

    #[test]
    fn csr_from_dense() {
        let c = Csr::from_row_major(2, 3, [0.0, 1.0, 0.0, 2.0, 0.0, 3.0]);
        assert_eq!(c.indptr, vec![0, 1, 3]);
        assert_eq!(c.indices, vec![1, 0, 2]);
        assert_eq!(c.data, vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn json_to_uns_values() {
        let v = Value::from_json(
            &serde_json::json!({"a": 1, "n": null, "f": [0.5, 1], "s": ["x"], "m": [1, "x"]}),
        )
        .unwrap();
        assert_eq!(
            v,
            Value::Dict(vec![
                ("a".into(), Value::Int(1)),
                ("f".into(), Value::Floats(vec![0.5, 1.0])),
                ("m".into(), Value::Str("[1,\"x\"]".into())),
                ("s".into(), Value::Strs(vec!["x".into()])),
            ])
        );
    }

    /// The layout anndata reads: encodings, the dataframe index and column order, CSR parts,
    /// categorical codes; read back with hdf5-pure (tests/h5ad.rs reads it with anndata).
    #[test]
    fn layout_reads_back() {
        let bytes = small().to_bytes().unwrap();
        let f = File::from_bytes(bytes.clone()).unwrap();
        let enc = |attrs: std::collections::HashMap<String, AttrValue>| {
            attrs["encoding-type"].as_str().unwrap().to_string()
        };
        assert_eq!(enc(f.root().attrs().unwrap()), "anndata");
        let obs = f.group("obs").unwrap();
        let a = obs.attrs().unwrap();
        assert_eq!(a["encoding-type"].as_str(), Some("dataframe"));
        assert_eq!(a["_index"].as_str(), Some("_index"));
        assert_eq!(
            a["column-order"].as_strings(),
            Some(&["row".to_string(), "w".to_string()][..])
        );
        assert_eq!(
            f.dataset("obs/_index").unwrap().read_string().unwrap(),
            vec!["s0", "s1", "s2"]
        );
        assert_eq!(
            f.dataset("var/sym").unwrap().read_string().unwrap(),
            vec!["A", "Bé"]
        );
        assert_eq!(
            f.dataset("obs/row").unwrap().read::<i64>().unwrap(),
            vec![0, 1, 2]
        );
        assert_eq!(
            enc(f.group("var/cl").unwrap().attrs().unwrap()),
            "categorical"
        );
        assert_eq!(
            f.dataset("var/cl/codes").unwrap().read::<i32>().unwrap(),
            vec![1, 0]
        );
        assert_eq!(enc(f.group("X").unwrap().attrs().unwrap()), "csr_matrix");
        assert_eq!(
            f.group("X").unwrap().attrs().unwrap()["shape"].to_i64s(),
            Some(vec![3, 2])
        );
        assert_eq!(
            f.dataset("X/indptr").unwrap().read::<i64>().unwrap(),
            vec![0, 1, 1, 2]
        );
        assert_eq!(
            f.dataset("X/data").unwrap().read::<f32>().unwrap(),
            vec![1.0, 2.5]
        );
        assert_eq!(f.dataset("obsm/m").unwrap().shape().unwrap(), vec![3, 1]);
        assert_eq!(
            f.dataset("uns/d/a").unwrap().shape().unwrap(),
            Vec::<u64>::new()
        );
        assert_eq!(enc(f.group("uns/d").unwrap().attrs().unwrap()), "dict");
        assert!(
            f.group("uns/d")
                .unwrap()
                .datasets()
                .unwrap()
                .iter()
                .all(|n| n != "n")
        );
        // Same data, same bytes, streamed to a file too.
        assert_eq!(small().to_bytes().unwrap(), bytes);
        let dir = std::env::temp_dir().join(format!("darlc-h5ad-{}", std::process::id()));
        let p = dir.join("a.h5ad");
        small().write(&p).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), bytes);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_inconsistent_parts() {
        let mut a = small();
        a.obs.index[1] = "s0".into();
        assert!(a.to_bytes().unwrap_err().to_string().contains("not unique"));
        let mut a = small();
        a.obsm[0].1.rows = 2;
        assert!(a.validate().is_err());
        let mut a = small();
        a.x.as_mut().unwrap().indices[0] = 5;
        assert!(a.validate().is_err());
        let mut a = small();
        if let Column::Categorical { codes, .. } = &mut a.var.columns[0].1 {
            codes[0] = 2;
        }
        assert!(a.validate().is_err());
    }
}
