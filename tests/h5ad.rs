//! Issue 25, item 2: AnnData out. The spot metadata `darlc.h5ad` writes comes from the readers
//! (`Section::array`, `Section::fullres_pixel`).

use darlc::data::{LoadOptions, load};
use std::path::{Path, PathBuf};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// Visium: every kept spot carries its `(array_row, array_col)` and full-resolution pixel from
/// the positions table, for the `.h5` and the Matrix Market folder alike; the legacy ST section
/// carries its lattice point (the canvas pixel without the canvas offset) and no full-res pixel.
#[test]
fn sections_carry_array_positions_and_fullres_pixels() {
    let table =
        std::fs::read_to_string(fixture("tenx_h5/v3/outs/spatial/tissue_positions.csv")).unwrap();
    let rows: std::collections::HashMap<&str, Vec<f64>> = table
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0], f[1..].iter().map(|v| v.parse().unwrap()).collect())
        })
        .collect();
    for input in ["tenx_h5/v3/outs", "tenx_h5/mtx/outs"] {
        let set = load(&fixture(input), &LoadOptions::default()).unwrap();
        let s = set.section.unwrap();
        let px = s.fullres_pixel.as_ref().expect("Visium full-res pixels");
        assert_eq!(s.array.len(), s.spot_ids.len());
        assert_eq!(px.len(), s.spot_ids.len());
        for (i, id) in s.spot_ids.iter().enumerate() {
            let r = &rows[id.as_str()];
            assert_eq!(r[0], 1.0, "{id} is kept, so it is in the tissue");
            assert_eq!([s.array[i][0] as f64, s.array[i][1] as f64], [r[1], r[2]]);
            assert_eq!(px[i], [r[3], r[4]]);
        }
    }
    let set = load(&fixture("mob_st_rep11"), &LoadOptions::default()).unwrap();
    let s = set.section.unwrap();
    assert!(s.fullres_pixel.is_none());
    let canvas = set.report.canvas.unwrap();
    for (a, p) in s.array.iter().zip(&s.pixel) {
        assert_eq!(
            [a[0] as usize + canvas.oy, a[1] as usize + canvas.ox],
            [p.0, p.1]
        );
    }
}
