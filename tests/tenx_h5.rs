//! Issue 25, item 1: the 10x HDF5 count matrix (`filtered_feature_bc_matrix.h5`) is read like the
//! Matrix Market folder of the same counts. The fixtures are written by
//! `fixtures/tenx_h5/make_fixtures.py` (h5py, Cell Ranger's v3 and v2 layouts); see its docstring.

mod data_common;

use darlc::data::tenx_h5::TenxH5;
use darlc::data::{LoadOptions, load};
use data_common::temp_dir;
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/tenx_h5")
        .join(rel)
}

fn darlc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_darlc"))
        .args(args)
        .output()
        .expect("run darlc")
}

/// `darlc images` on `input`; returns the bytes of its images, genes and spots files.
fn images_of(input: &Path, name: &str) -> Vec<(String, Vec<u8>)> {
    let out = temp_dir(name).join("out");
    let o = darlc(&[
        "images",
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "{}: {}",
        input.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    ["images.safetensors", "genes.csv", "spots.csv"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(out.join(f)).unwrap()))
        .collect()
}

/// The `.h5` (v3 and v2 layouts, found in `outs/` or named directly) and the MTX folder of the
/// same counts give byte-identical images, gene and spot tables.
#[test]
fn h5_and_mtx_folder_give_identical_images() {
    let mtx = images_of(&fixture("mtx/outs"), "mtx");
    for (input, name) in [
        (fixture("v3/outs"), "v3 outs/ with only the .h5"),
        (
            fixture("v3/outs/filtered_feature_bc_matrix.h5"),
            "v3 .h5 named directly",
        ),
        (fixture("v2/outs"), "v2 outs/ with only the .h5"),
    ] {
        let got = images_of(&input, "h5");
        for ((f, a), (_, b)) in mtx.iter().zip(&got) {
            assert!(a == b, "{name}: {f} differs from the MTX folder's");
        }
    }
    // And the images are not empty: 20 genes kept (25 features less 2 antibodies, MT-CO1,
    // ERCC-00002 and one gene without counts).
    let genes = String::from_utf8(mtx[1].1.clone()).unwrap();
    assert_eq!(genes.lines().count(), 1 + 20, "{genes}");
}

/// What the reader holds matches what h5py wrote (the generator's section: 25 features,
/// 112 barcodes, 2,040 stored counts; 2 antibody features in v3, none in v2).
#[test]
fn reader_sees_the_written_layouts() {
    let v3 = TenxH5::read(&fixture("v3/outs/filtered_feature_bc_matrix.h5")).unwrap();
    assert_eq!(v3.group, "matrix");
    assert_eq!((v3.features.len(), v3.barcodes.len()), (25, 112));
    assert_eq!(v3.features.iter().filter(|f| !f.gene_expression).count(), 2);
    assert_eq!(v3.features[0].id, "ENSG00000000000");
    assert_eq!(v3.features[0].symbol, "GENE0");
    let all = v3.entries(&[true; 25], &[true; 112]).unwrap();
    assert_eq!(all.len(), 2040);
    assert!(
        all.windows(2)
            .all(|w| (w[0].col, w[0].row) < (w[1].col, w[1].row))
    );
    let v2 = TenxH5::read(&fixture("v2/outs/filtered_feature_bc_matrix.h5")).unwrap();
    assert_eq!(v2.group, "GRCh38");
    assert_eq!((v2.features.len(), v2.barcodes.len()), (23, 112));
    assert!(v2.features.iter().all(|f| f.gene_expression));
    assert_eq!(v2.barcodes, v3.barcodes);
}

/// Each malformed file is a clear error naming the file and the dataset at fault; no panic.
#[test]
fn malformed_h5_files_are_clear_errors() {
    let cases: &[(&str, &[&str])] = &[
        ("shape_mismatch", &["matrix/shape", "[3, 5]"]),
        ("indptr_short", &["matrix/indptr", "4 barcodes need 5"]),
        (
            "indptr_decreasing",
            &["matrix/indptr", "decreases at barcode 2"],
        ),
        ("index_out_of_range", &["matrix/indices", "outside 0..3"]),
        ("negative_count", &["matrix/data", "entry 3 is -3"]),
        (
            "duplicate_barcode",
            &["matrix/barcodes", "duplicate barcode `AAAC-1`"],
        ),
        (
            "duplicate_feature",
            &["matrix/features/id", "duplicate feature id `G1`"],
        ),
        ("entry_twice", &["matrix/indices", "`G1` is stored twice"]),
        ("missing_indptr", &["matrix/indptr", "missing"]),
        ("missing_features", &["matrix/features/id", "missing"]),
        ("names_short", &["matrix/features/name", "2 names for 3"]),
        ("no_matrix_group", &["not a 10x count matrix"]),
        ("huge_claim", &["matrix/data", "implausible"]),
        ("two_genomes", &["2 genome groups", "GRCh38, mm10"]),
    ];
    for (name, expect) in cases {
        let path = fixture(&format!("bad/{name}.h5"));
        let o = darlc(&[
            "images",
            "--input",
            path.to_str().unwrap(),
            "--out",
            temp_dir("bad_h5").join("out").to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(err.contains(&format!("{name}.h5")), "{name}: {err}");
        for e in *expect {
            assert!(err.contains(e), "{name}: expected `{e}` in: {err}");
        }
    }
    // A truncated file.
    let bytes = std::fs::read(fixture("v3/outs/filtered_feature_bc_matrix.h5")).unwrap();
    let d = temp_dir("truncated_h5");
    let p = d.join("filtered_feature_bc_matrix.h5");
    std::fs::write(&p, &bytes[..bytes.len() / 3]).unwrap();
    let o = darlc(&[
        "images",
        "--input",
        p.to_str().unwrap(),
        "--out",
        d.join("out").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("filtered_feature_bc_matrix.h5"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Loading through the library (the path `darlc run` takes) sees the same images too.
#[test]
fn load_reads_the_h5_of_an_outs_folder() {
    let opts = LoadOptions::default();
    let a = load(&fixture("v3/outs"), &opts).unwrap();
    let b = load(&fixture("mtx/outs"), &opts).unwrap();
    assert_eq!(a.images, b.images);
    assert!(a.report.files[0].ends_with("filtered_feature_bc_matrix.h5"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]
    /// Corrupting bytes of a valid file never makes the reader panic: it reads or it errs.
    #[test]
    fn mutated_h5_never_panics(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = std::fs::read(fixture("v3/outs/filtered_feature_bc_matrix.h5")).unwrap();
        for (i, b) in edits {
            let k = i.index(bytes.len());
            bytes[k] = b;
        }
        let d = temp_dir("mutated_h5");
        let p = d.join("m.h5");
        std::fs::write(&p, &bytes).unwrap();
        let r = std::panic::catch_unwind(|| TenxH5::read(&p).map(|m| m.entries(&vec![true; m.features.len()], &vec![true; m.barcodes.len()])));
        prop_assert!(r.is_ok(), "the reader panicked on a mutated file");
        let _ = std::fs::remove_dir_all(&d);
    }
}
