//! Streaming Matrix Market reader for count matrices (the 10x `matrix.mtx[.gz]`, method §2.1).
//!
//! The file is read line by line and only the entries of wanted rows (genes) and columns (spots)
//! are kept, as a sparse triplet list; no dense matrix is formed here. Every violation of the
//! format is an error naming the file and line: banner, size line, index range, entry count,
//! value (non-numeric, negative, NaN, non-integer in an `integer` file) and duplicate entries.

use crate::error::{DarlcError, Result};
use crate::io::source::LineReader;
use std::path::Path;

/// What the banner and size line say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MtxHeader {
    pub n_rows: usize,
    pub n_cols: usize,
    pub nnz: usize,
    /// `integer` field (values must be whole numbers) rather than `real`/`double`.
    pub integer: bool,
    /// 1-based line of the size line.
    pub size_line: usize,
}

/// One stored entry, 0-based indices.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entry {
    pub row: u32,
    pub col: u32,
    pub value: f64,
}

fn tokens(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|b| b.is_ascii_whitespace())
        .filter(|t| !t.is_empty())
}

/// Parse an unsigned decimal integer without allocation.
fn parse_usize(t: &[u8]) -> Option<usize> {
    if t.is_empty() || t.len() > 19 {
        return None;
    }
    let mut v: usize = 0;
    for &b in t {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((b - b'0') as usize)?;
    }
    Some(v)
}

fn parse_value(t: &[u8], integer: bool) -> std::result::Result<f64, String> {
    if let Some(v) = parse_usize(t) {
        return Ok(v as f64);
    }
    let s = String::from_utf8_lossy(t);
    let v = crate::io::source::parse_nonneg(&s)?;
    if integer && v.fract() != 0.0 {
        return Err(format!(
            "`{s}` is not a whole number, but the banner says `integer`"
        ));
    }
    Ok(v)
}

/// Read the banner, comments and size line.
fn read_header(r: &mut LineReader) -> Result<MtxHeader> {
    let banner = match r.next_line()? {
        None => return Err(r.err("empty file; expected a `%%MatrixMarket` banner")),
        Some(b) => String::from_utf8_lossy(b).to_lowercase(),
    };
    let words: Vec<&str> = banner.split_whitespace().collect();
    if words.len() != 5 || words[0] != "%%matrixmarket" {
        return Err(r.err(format!(
            "bad Matrix Market banner `{}`; expected `%%MatrixMarket matrix coordinate integer general`",
            banner.trim()
        )));
    }
    if words[1] != "matrix" || words[2] != "coordinate" {
        return Err(r.err(format!(
            "banner says `{} {}`; darlc reads only sparse `matrix coordinate` files",
            words[1], words[2]
        )));
    }
    let integer = match words[3] {
        "integer" => true,
        "real" | "double" => false,
        other => {
            return Err(r.err(format!(
                "banner field `{other}`; darlc reads `integer` or `real` count matrices"
            )));
        }
    };
    if words[4] != "general" {
        return Err(r.err(format!(
            "banner symmetry `{}`; a genes × spots matrix must be `general`",
            words[4]
        )));
    }
    loop {
        if !r.advance()? {
            return Err(r.err("file ends before the size line `rows cols entries`"));
        }
        let line = r.current();
        let first = line.iter().find(|b| !b.is_ascii_whitespace());
        match first {
            None => continue,
            Some(b'%') => continue,
            Some(_) => {}
        }
        let t: Vec<&[u8]> = tokens(line).collect();
        let nums: Vec<Option<usize>> = t.iter().map(|x| parse_usize(x)).collect();
        if t.len() != 3 || nums.iter().any(|n| n.is_none()) {
            return Err(r.err(format!(
                "bad size line `{}`; expected three non-negative integers `rows cols entries`",
                String::from_utf8_lossy(line).trim()
            )));
        }
        let (n_rows, n_cols, nnz) = (
            nums[0].unwrap_or(0),
            nums[1].unwrap_or(0),
            nums[2].unwrap_or(0),
        );
        if n_rows > u32::MAX as usize || n_cols > u32::MAX as usize {
            return Err(r.err("matrix dimensions exceed 2^32"));
        }
        match n_rows.checked_mul(n_cols) {
            Some(cap) if nnz <= cap => {}
            _ => {
                return Err(r.err(format!(
                    "size line promises {nnz} entries, more than {n_rows} × {n_cols} cells"
                )));
            }
        }
        return Ok(MtxHeader {
            n_rows,
            n_cols,
            nnz,
            integer,
            size_line: r.line(),
        });
    }
}

/// Read only the header of a Matrix Market file.
pub fn read_mtx_header(path: &Path) -> Result<MtxHeader> {
    let mut r = LineReader::open(path)?;
    read_header(&mut r)
}

/// Stream a coordinate Matrix Market file, keeping entries with `keep_row[row] && keep_col[col]`.
///
/// `keep_row`/`keep_col` must have the lengths the caller expects (`check` validates the header
/// against them first and may return an error naming the companion file). Entries come back
/// sorted by (col, row); duplicates are an error naming both lines.
pub fn read_mtx(
    path: &Path,
    check: impl FnOnce(&MtxHeader) -> Result<()>,
    keep_row: &[bool],
    keep_col: &[bool],
) -> Result<(MtxHeader, Vec<Entry>)> {
    let mut r = LineReader::open(path)?;
    let h = read_header(&mut r)?;
    check(&h)?;
    if keep_row.len() != h.n_rows || keep_col.len() != h.n_cols {
        return Err(DarlcError::format(
            path,
            Some(h.size_line),
            format!(
                "size line says {} × {}, expected {} × {}",
                h.n_rows,
                h.n_cols,
                keep_row.len(),
                keep_col.len()
            ),
        ));
    }
    // Reserve for the promised entries (bounded: a corrupt size line must not reserve terabytes).
    let mut entries: Vec<Entry> = Vec::with_capacity(h.nnz.min(1 << 24));
    let mut seen = 0usize;
    while r.advance()? {
        let line = r.current();
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        if line.first() == Some(&b'%') {
            continue;
        }
        let mut it = tokens(line);
        let (ti, tj, tv) = match (it.next(), it.next(), it.next(), it.next()) {
            (Some(a), Some(b), Some(c), None) => (a, b, c),
            _ => {
                let shown = String::from_utf8_lossy(line)
                    .chars()
                    .take(80)
                    .collect::<String>();
                return Err(r.err(format!("bad entry `{shown}`; expected `row col value`")));
            }
        };
        seen += 1;
        if seen > h.nnz {
            return Err(r.err(format!(
                "more entries than the {} promised by the size line (line {})",
                h.nnz, h.size_line
            )));
        }
        let i = match parse_usize(ti) {
            Some(i) if i >= 1 && i <= h.n_rows => i - 1,
            _ => {
                return Err(r.err(format!(
                    "row index `{}` out of range 1..={}",
                    String::from_utf8_lossy(ti),
                    h.n_rows
                )));
            }
        };
        let j = match parse_usize(tj) {
            Some(j) if j >= 1 && j <= h.n_cols => j - 1,
            _ => {
                return Err(r.err(format!(
                    "column index `{}` out of range 1..={}",
                    String::from_utf8_lossy(tj),
                    h.n_cols
                )));
            }
        };
        let v = parse_value(tv, h.integer).map_err(|m| r.err(format!("bad value: {m}")))?;
        if keep_row[i] && keep_col[j] {
            entries.push(Entry {
                row: i as u32,
                col: j as u32,
                value: v,
            });
        }
    }
    if seen != h.nnz {
        return Err(DarlcError::format(
            path,
            Some(h.size_line),
            format!(
                "the size line promises {} entries but the file has {} (truncated?)",
                h.nnz, seen
            ),
        ));
    }
    let key = |e: &Entry| ((e.col as u64) << 32) | e.row as u64;
    if !entries.windows(2).all(|w| key(&w[0]) <= key(&w[1])) {
        entries.sort_by_key(key);
    }
    if let Some(w) = entries.windows(2).find(|w| key(&w[0]) == key(&w[1])) {
        let (row, col) = (w[0].row, w[0].col);
        let lines = lines_of(path, row, col)?;
        return Err(DarlcError::format(
            path,
            lines.get(1).copied(),
            format!(
                "duplicate entry for row {} column {} (lines {})",
                row + 1,
                col + 1,
                lines
                    .iter()
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok((h, entries))
}

/// Lines holding entry (row, col), 0-based indices (used only to report a duplicate).
fn lines_of(path: &Path, row: u32, col: u32) -> Result<Vec<usize>> {
    let mut r = LineReader::open(path)?;
    read_header(&mut r)?;
    let mut out = vec![];
    while r.advance()? {
        let mut it = tokens(r.current());
        let (a, b) = (it.next(), it.next());
        if a.and_then(parse_usize) == Some(row as usize + 1)
            && b.and_then(parse_usize) == Some(col as usize + 1)
        {
            out.push(r.line());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("darlc-mtx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn read_all(p: &Path, rows: usize, cols: usize) -> Result<Vec<Entry>> {
        read_mtx(p, |_| Ok(()), &vec![true; rows], &vec![true; cols]).map(|x| x.1)
    }

    #[test]
    fn reads_and_sorts_entries() {
        let p = write(
            "ok.mtx",
            "%%MatrixMarket matrix coordinate integer general\n% comment\n3 2 3\n2 2 5\n1 1 1\n3 1 2\n",
        );
        let e = read_all(&p, 3, 2).unwrap();
        // Sorted by (col, row): (1,1)=1, (3,1)=2, (2,2)=5 in 1-based terms.
        assert_eq!(
            e,
            vec![
                Entry {
                    row: 0,
                    col: 0,
                    value: 1.0
                },
                Entry {
                    row: 2,
                    col: 0,
                    value: 2.0
                },
                Entry {
                    row: 1,
                    col: 1,
                    value: 5.0
                }
            ]
        );
    }

    #[test]
    fn filters_rows_and_columns_but_counts_all_entries() {
        let p = write(
            "filt.mtx",
            "%%MatrixMarket matrix coordinate real general\n3 2 3\n2 2 5.5\n1 1 1\n3 1 2\n",
        );
        let (h, e) = read_mtx(&p, |_| Ok(()), &[true, true, false], &[true, true]).unwrap();
        assert_eq!(h.nnz, 3);
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].value, 5.5);
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            (
                "%%MatrixMarket matrix array integer general\n1 1\n",
                ":1:",
                "coordinate",
            ),
            (
                "%%MatrixMarket matrix coordinate integer general\n2 x 1\n1 1 1\n",
                ":2:",
                "size line",
            ),
            (
                "%%MatrixMarket matrix coordinate integer general\n2 2 1\n3 1 1\n",
                ":3:",
                "row index",
            ),
            (
                "%%MatrixMarket matrix coordinate integer general\n2 2 1\n1 0 1\n",
                ":3:",
                "column index",
            ),
            (
                "%%MatrixMarket matrix coordinate integer general\n2 2 2\n1 1 1\n",
                ":2:",
                "promises 2",
            ),
            (
                "%%MatrixMarket matrix coordinate integer general\n2 2 1\n1 1 1\n2 2 1\n",
                ":4:",
                "more entries",
            ),
            (
                "%%MatrixMarket matrix coordinate integer general\n2 2 1\n1 1 -1\n",
                ":3:",
                "negative",
            ),
            (
                "%%MatrixMarket matrix coordinate real general\n2 2 1\n1 1 nan\n",
                ":3:",
                "NaN",
            ),
            (
                "%%MatrixMarket matrix coordinate integer general\n2 2 1\n1 1 abc\n",
                ":3:",
                "not a number",
            ),
            (
                "%%MatrixMarket matrix coordinate integer general\n2 2 1\n1 1 1.5\n",
                ":3:",
                "whole number",
            ),
            (
                "%%MatrixMarket matrix coordinate integer general\n2 2 2\n1 1 1\n1 1 2\n",
                ":4:",
                "duplicate",
            ),
        ];
        for (k, (text, line, what)) in cases.iter().enumerate() {
            let p = write(&format!("bad{k}.mtx"), text);
            let e = read_all(&p, 2, 2).unwrap_err().to_string();
            assert!(e.contains(&format!("bad{k}.mtx{line}")), "case {k}: {e}");
            assert!(e.contains(what), "case {k}: {e}");
        }
    }
}
