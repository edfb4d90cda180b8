//! Shared helpers of the data integration tests: a tiny 10x-style section written to a temp
//! folder, and the location of the shared real data.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

/// A fresh empty temp folder for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "darlc-test-{}-{}",
        name,
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The text files of a tiny Visium section: 4 genes × 12 in-tissue spots (+1 off tissue) on a hex
/// array, rows 0–2, columns of matching parity.
///
/// * genes: `G1`, `G2` expressed everywhere, `MT-CO1` (dropped by the MT- rule), `G4` expressed
///   in 5 spots only (dropped by min_spots = 10);
/// * count of gene g (1-based) at spot s (0-based): G1: 1 + s % 3, G2: 1 + (2s) % 5,
///   MT-CO1: 7, G4: 2 if s < 5 else absent.
pub struct Tiny {
    pub matrix: String,
    pub features: String,
    pub barcodes: String,
    pub positions: String,
}

pub const TINY_SPOTS: usize = 12;

/// `(array_row, array_col)` of tiny spot s: 3 rows of 4 spots, `row + col` even.
pub fn tiny_pos(s: usize) -> (usize, usize) {
    let row = s / 4;
    (row, 2 * (s % 4) + row % 2)
}

pub fn tiny_count(g: usize, s: usize) -> Option<u32> {
    match g {
        1 => Some(1 + (s % 3) as u32),
        2 => Some(1 + (2 * s % 5) as u32),
        3 => Some(7),
        4 if s < 5 => Some(2),
        _ => None,
    }
}

pub fn tiny() -> Tiny {
    let mut entries = vec![];
    for s in 0..TINY_SPOTS {
        for g in 1..=4 {
            if let Some(v) = tiny_count(g, s) {
                entries.push(format!("{} {} {}", g, s + 1, v));
            }
        }
    }
    let matrix = format!(
        "%%MatrixMarket matrix coordinate integer general\n%metadata\n4 {} {}\n{}\n",
        TINY_SPOTS,
        entries.len(),
        entries.join("\n")
    );
    let features = "ENSG1\tG1\tGene Expression\nENSG2\tG2\tGene Expression\nENSG3\tMT-CO1\tGene Expression\nENSG4\tG4\tGene Expression\n".to_string();
    let barcodes: String = (0..TINY_SPOTS).map(|s| format!("BC{s:02}-1\n")).collect();
    let mut positions =
        "barcode,in_tissue,array_row,array_col,pxl_row_in_fullres,pxl_col_in_fullres\n".to_string();
    for s in 0..TINY_SPOTS {
        let (r, c) = tiny_pos(s);
        positions += &format!("BC{s:02}-1,1,{r},{c},{},{}\n", 100 * r, 50 * c);
    }
    positions += "OFF-1,0,5,5,500,250\n";
    Tiny {
        matrix,
        features,
        barcodes,
        positions,
    }
}

/// Write a tiny section into `dir` (flat layout); gzip the three matrix files if `gz`.
pub fn write_tiny(dir: &Path, t: &Tiny, gz: bool) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, text) in [
        ("matrix.mtx", &t.matrix),
        ("features.tsv", &t.features),
        ("barcodes.tsv", &t.barcodes),
    ] {
        if gz {
            std::fs::write(dir.join(format!("{name}.gz")), gzip(text.as_bytes())).unwrap();
        } else {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }
    std::fs::write(dir.join("tissue_positions.csv"), &t.positions).unwrap();
}

/// `shared/data`, from `DARLC_SHARED` or `<manifest>/../shared`; `None` (with a note) if absent.
pub fn shared_data() -> Option<PathBuf> {
    let root = std::env::var_os("DARLC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("shared")
        });
    let d = root.join("data");
    if d.is_dir() {
        Some(d)
    } else {
        eprintln!(
            "note: {} not found (set DARLC_SHARED); skipping real-data checks",
            d.display()
        );
        None
    }
}
