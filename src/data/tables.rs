//! Readers for the small tables beside a count matrix: features, barcodes, the Visium positions
//! table, legacy-ST spot tables and cell tables, and `XxY` spot names. Every error names the file
//! and line.

use super::preprocess::Feature;
use crate::error::{DarlcError, Result};
use crate::io::source::{
    LineReader, csv_error, first_line, open_csv, parse_finite, record_line, sniff_delimiter,
};
use std::collections::HashMap;
use std::path::Path;

/// 10x `features.tsv[.gz]` (`id<TAB>symbol<TAB>type`) or the older `genes.tsv` (`id<TAB>symbol`).
/// A one-column file uses the id as symbol. Only type "Gene Expression" is marked for use.
pub fn read_features(path: &Path) -> Result<Vec<Feature>> {
    let mut r = LineReader::open(path)?;
    let mut out = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut line_no = 0;
    while let Some(line) = r.next_str()? {
        line_no += 1;
        let f: Vec<&str> = line.split('\t').collect();
        let id = f[0].trim();
        if id.is_empty() {
            return Err(r.err("empty feature id"));
        }
        // Gene ids name the images and every output row: two genes with one id cannot be told
        // apart (symbols may repeat; ids may not).
        if let Some(first) = seen.insert(id.to_string(), line_no) {
            return Err(DarlcError::format(
                path,
                Some(line_no),
                format!(
                    "duplicate feature id `{id}` (first on line {first}); every gene needs its own id"
                ),
            ));
        }
        let symbol = f
            .get(1)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .unwrap_or(id);
        let gene_expression = f.get(2).is_none_or(|t| t.trim() == "Gene Expression");
        out.push(Feature {
            id: id.to_string(),
            symbol: symbol.to_string(),
            gene_expression,
        });
    }
    if out.is_empty() {
        return Err(DarlcError::format(path, None, "no features"));
    }
    Ok(out)
}

/// 10x `barcodes.tsv[.gz]`: one id per line (first tab field), in matrix column order. Duplicates
/// and empty ids are errors.
pub fn read_barcodes(path: &Path) -> Result<Vec<String>> {
    let mut r = LineReader::open(path)?;
    let mut out = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    while let Some(line) = r.next_str()? {
        let id = line.split('\t').next().unwrap_or("").trim().to_string();
        if id.is_empty() {
            return Err(r.err("empty barcode"));
        }
        if let Some(first) = seen.insert(id.clone(), r.line()) {
            return Err(r.err(format!("duplicate barcode `{id}` (first on line {first})")));
        }
        out.push(id);
    }
    if out.is_empty() {
        return Err(DarlcError::format(path, None, "no barcodes"));
    }
    Ok(out)
}

/// One row of a Visium positions table.
#[derive(Clone, Debug, PartialEq)]
pub struct VisiumSpot {
    pub in_tissue: bool,
    pub array_row: i64,
    pub array_col: i64,
    /// `(pxl_row_in_fullres, pxl_col_in_fullres)`: the spot's centre in pixels of the full-resolution
    /// tissue image (columns 5 and 6); `None` when the table has only the first four columns.
    pub fullres: Option<[f64; 2]>,
    pub line: usize,
}

/// `tissue_positions.csv` (with header) or `tissue_positions_list.csv` (without), sniffed from
/// the content: the first line is a header iff its second field is not an integer. Columns:
/// barcode, in_tissue, array_row, array_col, pxl_row_in_fullres, pxl_col_in_fullres (method §2.1).
pub fn read_positions(path: &Path) -> Result<HashMap<String, VisiumSpot>> {
    let first =
        first_line(path)?.ok_or_else(|| DarlcError::format(path, None, "empty positions table"))?;
    let delim = sniff_delimiter(&first);
    let header = first
        .split(delim as char)
        .nth(1)
        .is_none_or(|f| f.trim().parse::<i64>().is_err());
    let mut rdr = open_csv(path, delim, false)?;
    let mut out = HashMap::new();
    let mut rec = csv::StringRecord::new();
    let mut k = 0usize;
    loop {
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(path, e)),
        }
        k += 1;
        if k == 1 && header {
            continue;
        }
        let line = record_line(&rec).unwrap_or(k);
        let err = |m: String| DarlcError::format(path, Some(line), m);
        if rec.len() < 4 {
            return Err(err(format!(
                "{} fields; expected barcode,in_tissue,array_row,array_col,…",
                rec.len()
            )));
        }
        let int = |i: usize, name: &str| -> Result<i64> {
            rec[i].trim().parse::<i64>().map_err(|_| {
                err(format!(
                    "field {} `{name}`: `{}` is not an integer",
                    i + 1,
                    &rec[i]
                ))
            })
        };
        let in_tissue = match int(1, "in_tissue")? {
            0 => false,
            1 => true,
            v => return Err(err(format!("field 2 `in_tissue`: {v} is neither 0 nor 1"))),
        };
        let array_row = int(2, "array_row")?;
        let array_col = int(3, "array_col")?;
        if array_row < 0 || array_col < 0 || array_row > 1_000_000 || array_col > 1_000_000 {
            return Err(err(format!(
                "array position ({array_row}, {array_col}) out of range 0..=1000000"
            )));
        }
        let fullres = if rec.len() >= 6 {
            let px = |i: usize, name: &str| -> Result<f64> {
                parse_finite(&rec[i]).map_err(|m| err(format!("field {} `{name}`: {m}", i + 1)))
            };
            Some([px(4, "pxl_row_in_fullres")?, px(5, "pxl_col_in_fullres")?])
        } else {
            None
        };
        let id = rec[0].trim().to_string();
        if let Some(prev) = out.insert(
            id.clone(),
            VisiumSpot {
                in_tissue,
                array_row,
                array_col,
                fullres,
                line,
            },
        ) {
            return Err(err(format!(
                "duplicate barcode `{id}` (first on line {})",
                prev.line
            )));
        }
    }
    Ok(out)
}

/// One row of a spot or cell table with free coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct TableSpot {
    pub x: f64,
    pub y: f64,
    pub section: Option<String>,
    pub in_tissue: bool,
    pub line: usize,
}

/// A spot/cell table: rows keyed by id.
#[derive(Clone, Debug)]
pub struct SpotTable {
    pub rows: HashMap<String, TableSpot>,
    pub has_section: bool,
    /// The id column is named like a cell id (`cell_id`, `cell`): cell-level data.
    pub cells: bool,
}

/// A spot table such as `spots.csv` (`spot,x,y,…`, `barcode,section,x,y,…`) or `cells.csv`
/// (`cell_id,x,y,…`): header required; the id column is the one named spot/barcode/cell_id/cell/id,
/// else the first; `x`, `y` required; `section` and `in_tissue` optional.
pub fn read_spot_table(path: &Path) -> Result<SpotTable> {
    let first =
        first_line(path)?.ok_or_else(|| DarlcError::format(path, None, "empty spot table"))?;
    let delim = sniff_delimiter(&first);
    let mut rdr = open_csv(path, delim, true)?;
    let hdr = rdr.headers().map_err(|e| csv_error(path, e))?.clone();
    let find = |names: &[&str]| {
        hdr.iter()
            .position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
    };
    let id_col = find(&["spot", "barcode", "cell_id", "cell", "id"]).unwrap_or(0);
    let cells = ["cell_id", "cell"].iter().any(|n| {
        hdr.get(id_col)
            .is_some_and(|h| h.trim().eq_ignore_ascii_case(n))
    });
    let xc = find(&["x"])
        .ok_or_else(|| DarlcError::format(path, Some(1), "header has no `x` column"))?;
    let yc = find(&["y"])
        .ok_or_else(|| DarlcError::format(path, Some(1), "header has no `y` column"))?;
    let sc = find(&["section"]);
    let tc = find(&["in_tissue"]);
    let mut rows = HashMap::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| csv_error(path, e))?;
        let line = record_line(&rec).unwrap_or(0);
        let err = |m: String| DarlcError::format(path, Some(line), m);
        let x = parse_finite(&rec[xc]).map_err(|m| err(format!("field `x`: {m}")))?;
        let y = parse_finite(&rec[yc]).map_err(|m| err(format!("field `y`: {m}")))?;
        let in_tissue = match tc {
            None => true,
            Some(c) => match rec[c].trim() {
                "1" => true,
                "0" => false,
                v => return Err(err(format!("field `in_tissue`: `{v}` is neither 0 nor 1"))),
            },
        };
        let id = rec[id_col].trim().to_string();
        if id.is_empty() {
            return Err(err("empty id".into()));
        }
        let spot = TableSpot {
            x,
            y,
            section: sc.map(|c| rec[c].trim().to_string()),
            in_tissue,
            line,
        };
        if let Some(prev) = rows.insert(id.clone(), spot) {
            return Err(err(format!(
                "duplicate id `{id}` (first on line {})",
                prev.line
            )));
        }
    }
    Ok(SpotTable {
        rows,
        has_section: sc.is_some(),
        cells,
    })
}

/// Parse a legacy ST spot name `XxY` (e.g. `16.92x9.015`; an `X` that R's `make.names` put in
/// front is ignored) into array coordinates `(x, y)`.
pub fn parse_xy_name(name: &str) -> Option<(f64, f64)> {
    let s = name.trim();
    let s = s
        .strip_prefix('X')
        .filter(|r| r.starts_with(|c: char| c.is_ascii_digit() || c == '-'))
        .unwrap_or(s);
    let (a, b) = s.split_once('x')?;
    let x = parse_finite(a).ok()?;
    let y = parse_finite(b).ok()?;
    Some((x, y))
}

/// `truth.csv` of a simulated section: `gene_id,…,pattern,…` → pattern per gene id.
pub fn read_truth(path: &Path) -> Result<HashMap<String, String>> {
    let mut rdr = open_csv(path, b',', true)?;
    let hdr = rdr.headers().map_err(|e| csv_error(path, e))?.clone();
    let col = |n: &str| hdr.iter().position(|h| h == n);
    let (gc, pc) = match (col("gene_id"), col("pattern")) {
        (Some(g), Some(p)) => (g, p),
        _ => {
            return Err(DarlcError::format(
                path,
                Some(1),
                "expected columns `gene_id` and `pattern`",
            ));
        }
    };
    let mut out = HashMap::new();
    let mut lines: HashMap<String, usize> = HashMap::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| csv_error(path, e))?;
        let line = record_line(&rec).unwrap_or(0);
        let id = rec[gc].trim().to_string();
        if id.is_empty() {
            return Err(DarlcError::format(path, Some(line), "empty gene_id"));
        }
        if let Some(first) = lines.insert(id.clone(), line) {
            return Err(DarlcError::format(
                path,
                Some(line),
                format!("duplicate gene_id `{id}` (first on line {first})"),
            ));
        }
        out.insert(id, rec[pc].to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xy_names() {
        assert_eq!(parse_xy_name("16.92x9.015"), Some((16.92, 9.015)));
        assert_eq!(parse_xy_name("X16.92x9.015"), Some((16.92, 9.015)));
        assert_eq!(parse_xy_name("-1x2"), Some((-1.0, 2.0)));
        assert_eq!(parse_xy_name("AAAC-1"), None);
        assert_eq!(parse_xy_name("cell_1"), None);
    }

    /// Columns 5 and 6 are kept as the full-resolution pixel position (integers or decimals);
    /// a four-column table has none, a non-number there is an error at its line.
    #[test]
    fn positions_fullres_pixels() {
        let dir = std::env::temp_dir().join(format!("darlc-pos-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("tissue_positions.csv");
        std::fs::write(
            &p,
            "barcode,in_tissue,array_row,array_col,pxl_row_in_fullres,pxl_col_in_fullres\n\
             A-1,1,3,5,220,123.5\nB-1,0,4,6,240,150\n",
        )
        .unwrap();
        let pos = read_positions(&p).unwrap();
        assert_eq!(pos["A-1"].fullres, Some([220.0, 123.5]));
        assert_eq!((pos["A-1"].array_row, pos["A-1"].array_col), (3, 5));
        assert_eq!(pos["B-1"].fullres, Some([240.0, 150.0]));
        std::fs::write(&p, "A-1,1,3,5\n").unwrap();
        assert_eq!(read_positions(&p).unwrap()["A-1"].fullres, None);
        std::fs::write(&p, "A-1,1,3,5,220,123\nB-1,1,4,6,x,150\n").unwrap();
        let e = read_positions(&p).unwrap_err().to_string();
        assert!(
            e.contains("tissue_positions.csv:2") && e.contains("pxl_row_in_fullres"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
