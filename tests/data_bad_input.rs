//! Issue 3 item 6: every malformed input is an error naming the file and line or field (and a
//! non-zero exit from the CLI), never a panic or a silently wrong image.

mod data_common;

use darlc::data::{LoadOptions, load};
use darlc::io::{TensorData, TensorFile};
use data_common::*;
use std::path::Path;

/// Write the tiny section (plain text), apply `edit` to it, load, and return the error text.
fn err_after(name: &str, edit: impl FnOnce(&mut Tiny), opts: &LoadOptions) -> String {
    let mut t = tiny();
    edit(&mut t);
    let d = temp_dir(name);
    write_tiny(&d, &t, false);
    match load(&d, opts) {
        Ok(_) => panic!("{name}: malformed input was accepted"),
        Err(e) => e.to_string(),
    }
}

fn set_line(text: &mut String, line: usize, new: &str) {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[line - 1] = new.to_string();
    *text = lines.join("\n") + "\n";
}

fn assert_has(e: &str, parts: &[&str]) {
    for p in parts {
        assert!(e.contains(p), "`{p}` missing from: {e}");
    }
}

// Tiny matrix layout: line 1 banner, 2 comment, 3 size line `4 12 41`, 4.. entries starting
// `1 1 1` (gene 1 spot 1), `2 1 1`, `3 1 7`, `4 1 2`, …

#[test]
fn bad_mtx_banner() {
    let e = err_after(
        "banner",
        |t| set_line(&mut t.matrix, 1, "%%MatrixMarket matrix coordinate integer"),
        &LoadOptions::default(),
    );
    assert_has(&e, &["matrix.mtx:1:", "banner"]);
    let e = err_after(
        "banner2",
        |t| {
            set_line(
                &mut t.matrix,
                1,
                "%%MatrixMarket matrix coordinate pattern general",
            )
        },
        &LoadOptions::default(),
    );
    assert_has(&e, &["matrix.mtx:1:", "pattern"]);
}

#[test]
fn bad_mtx_size_line() {
    let e = err_after(
        "size",
        |t| set_line(&mut t.matrix, 3, "4 12"),
        &LoadOptions::default(),
    );
    assert_has(&e, &["matrix.mtx:3:", "size line"]);
    // Dimensions that disagree with features.tsv.
    let e = err_after(
        "size2",
        |t| set_line(&mut t.matrix, 3, "5 12 41"),
        &LoadOptions::default(),
    );
    assert_has(&e, &["matrix.mtx:3:", "features.tsv has 4 lines"]);
}

#[test]
fn mtx_index_out_of_range() {
    let e = err_after(
        "row",
        |t| set_line(&mut t.matrix, 4, "9 1 1"),
        &LoadOptions::default(),
    );
    assert_has(&e, &["matrix.mtx:4:", "row index `9` out of range 1..=4"]);
    let e = err_after(
        "col",
        |t| set_line(&mut t.matrix, 4, "1 13 1"),
        &LoadOptions::default(),
    );
    assert_has(
        &e,
        &["matrix.mtx:4:", "column index `13` out of range 1..=12"],
    );
    let e = err_after(
        "col0",
        |t| set_line(&mut t.matrix, 4, "1 0 1"),
        &LoadOptions::default(),
    );
    assert_has(&e, &["matrix.mtx:4:", "column index `0`"]);
}

#[test]
fn mtx_nnz_mismatch() {
    let nnz: usize = tiny()
        .matrix
        .lines()
        .nth(2)
        .unwrap()
        .split(' ')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    let more = format!("4 12 {}", nnz + 1);
    let e = err_after(
        "nnz1",
        |t| set_line(&mut t.matrix, 3, &more),
        &LoadOptions::default(),
    );
    assert_has(
        &e,
        &[
            "matrix.mtx:3:",
            &format!("promises {} entries but the file has {nnz}", nnz + 1),
        ],
    );
    let fewer = format!("4 12 {}", nnz - 1);
    let e = err_after(
        "nnz2",
        |t| set_line(&mut t.matrix, 3, &fewer),
        &LoadOptions::default(),
    );
    assert_has(&e, &[&format!("matrix.mtx:{}:", 3 + nnz), "more entries"]);
}

#[test]
fn mtx_bad_values() {
    for (k, (v, what)) in [
        ("x", "not a number"),
        ("-2", "negative"),
        ("NaN", "NaN"),
        ("1.5", "whole number"),
        ("inf", "infinite"),
    ]
    .iter()
    .enumerate()
    {
        let e = err_after(
            &format!("val{k}"),
            |t| set_line(&mut t.matrix, 5, &format!("2 1 {v}")),
            &LoadOptions::default(),
        );
        assert_has(&e, &["matrix.mtx:5:", what]);
    }
    let e = err_after(
        "dup",
        |t| set_line(&mut t.matrix, 5, "1 1 3"),
        &LoadOptions::default(),
    );
    assert_has(
        &e,
        &[
            "matrix.mtx:5:",
            "duplicate entry for row 1 column 1 (lines 4, 5)",
        ],
    );
}

#[test]
fn duplicate_barcode() {
    let e = err_after(
        "dupbc",
        |t| set_line(&mut t.barcodes, 5, "BC00-1"),
        &LoadOptions::default(),
    );
    assert_has(
        &e,
        &[
            "barcodes.tsv:5:",
            "duplicate barcode `BC00-1` (first on line 1)",
        ],
    );
    let e = err_after(
        "dupbc2",
        |t| set_line(&mut t.positions, 5, "BC00-1,1,9,9,0,0"),
        &LoadOptions::default(),
    );
    assert_has(
        &e,
        &["tissue_positions.csv:5:", "duplicate barcode `BC00-1`"],
    );
}

#[test]
fn barcode_missing_from_positions() {
    // Positions line 5 is BC03 (line 1 is the header); rename it.
    let e = err_after(
        "missing",
        |t| set_line(&mut t.positions, 5, "ZZ-1,1,0,6,0,0"),
        &LoadOptions::default(),
    );
    assert_has(
        &e,
        &[
            "barcodes.tsv:4:",
            "`BC03-1` is missing from the positions table",
            "tissue_positions.csv",
        ],
    );
}

#[test]
fn bad_positions_fields() {
    let e = err_after(
        "intissue",
        |t| set_line(&mut t.positions, 3, "BC01-1,2,0,2,0,0"),
        &LoadOptions::default(),
    );
    assert_has(&e, &["tissue_positions.csv:3:", "in_tissue"]);
    let e = err_after(
        "arow",
        |t| set_line(&mut t.positions, 3, "BC01-1,1,zero,2,0,0"),
        &LoadOptions::default(),
    );
    assert_has(&e, &["tissue_positions.csv:3:", "array_row"]);
    let e = err_after(
        "nfields",
        |t| set_line(&mut t.positions, 3, "BC01-1,1,0"),
        &LoadOptions::default(),
    );
    assert_has(&e, &["tissue_positions.csv:3:", "fields"]);
}

#[test]
fn two_spots_on_one_pixel() {
    // BC01 (line 3) moved onto BC00's array position (0, 0).
    let e = err_after(
        "collide",
        |t| set_line(&mut t.positions, 3, "BC01-1,1,0,0,0,0"),
        &LoadOptions::default(),
    );
    assert_has(
        &e,
        &[
            "tissue_positions.csv:3:",
            "`BC00-1` (line 2) and `BC01-1` (line 3)",
            "same pixel",
        ],
    );
}

#[test]
fn nothing_left_after_filtering() {
    let opts = LoadOptions {
        min_spots: 13,
        ..Default::default()
    };
    let e = err_after("empty", |_| {}, &opts);
    assert_has(&e, &["nothing left after filtering", "fewer than 13"]);
    // No spot in tissue.
    let e = err_after(
        "notissue",
        |t| t.positions = t.positions.replace(",1,", ",0,"),
        &LoadOptions::default(),
    );
    assert_has(&e, &["nothing left after filtering"]);
}

fn gz_case(name: &str, corrupt: impl FnOnce(&mut Vec<u8>)) -> String {
    let d = temp_dir(name);
    write_tiny(&d, &tiny(), true);
    let p = d.join("matrix.mtx.gz");
    let mut bytes = std::fs::read(&p).unwrap();
    corrupt(&mut bytes);
    std::fs::write(&p, bytes).unwrap();
    load(&d, &LoadOptions::default()).unwrap_err().to_string()
}

#[test]
fn truncated_or_corrupt_gzip() {
    let e = gz_case("trunc", |b| b.truncate(b.len() / 2));
    assert_has(&e, &["matrix.mtx.gz:", "gzip"]);
    // Flip a bit of the CRC-32 trailer: the text inflates fine, the checksum fails.
    let e = gz_case("crc", |b| {
        let n = b.len();
        b[n - 8] ^= 1;
    });
    assert_has(&e, &["matrix.mtx.gz:", "gzip"]);
    // Garbage in the middle of the deflate stream: some error naming the file, never a panic.
    let e = gz_case("mid", |b| {
        let n = b.len();
        for x in &mut b[n / 3..n / 3 + 8] {
            *x ^= 0xA5;
        }
    });
    assert_has(&e, &["matrix.mtx.gz"]);
}

#[test]
fn wrong_image_shape() {
    let d = temp_dir("shape");
    let p = d.join("img.csv");
    let header: Vec<String> = (0..64).map(|k| format!("p{k}")).collect();
    let row: Vec<String> = (0..64).map(|k| (k % 3).to_string()).collect();
    std::fs::write(
        &p,
        format!("label,{}\n3,{}\n", header.join(","), row.join(",")),
    )
    .unwrap();
    let e = load(
        &p,
        &LoadOptions {
            image_shape: Some((3, 3, 1)),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert_has(
        &e,
        &[
            "img.csv",
            "wrong image shape",
            "3x3x1 needs 9 values per row, the header has 64",
        ],
    );
    // A row with a missing value.
    std::fs::write(
        &p,
        format!("label,{}\n3,{}\n4,1,2\n", header.join(","), row.join(",")),
    )
    .unwrap();
    let e = load(&p, &LoadOptions::default()).unwrap_err().to_string();
    assert_has(&e, &["img.csv:3:", "fields"]);
    // Non-square pixel count without --image-shape.
    std::fs::write(&p, "label,a,b,c\n1,1,2,3\n").unwrap();
    let e = load(&p, &LoadOptions::default()).unwrap_err().to_string();
    assert_has(&e, &["img.csv", "not a square image"]);
    // A non-numeric pixel.
    std::fs::write(&p, "label,a,b,c,d\n1,1,2,x,3\n").unwrap();
    let e = load(&p, &LoadOptions::default()).unwrap_err().to_string();
    assert_has(&e, &["img.csv:2:", "column `c`", "not a number"]);
    // safetensors of rank 2, and a shape that disagrees with --image-shape.
    let st = d.join("img.safetensors");
    let mut tf = TensorFile::new();
    tf.insert(
        "images",
        TensorData::F32(ndarray::Array2::<f32>::zeros((4, 4)).into_dyn()),
    );
    tf.save(&st).unwrap();
    let e = load(&st, &LoadOptions::default()).unwrap_err().to_string();
    assert_has(&e, &["img.safetensors", "wrong image shape", "[4, 4]"]);
    let mut tf = TensorFile::new();
    tf.insert(
        "images",
        TensorData::F32(ndarray::Array4::<f32>::zeros((2, 1, 4, 4)).into_dyn()),
    );
    tf.save(&st).unwrap();
    let e = load(
        &st,
        &LoadOptions {
            image_shape: Some((5, 4, 1)),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert_has(&e, &["img.safetensors", "wrong image shape", "4x4x1"]);
}

#[test]
fn bad_msi_and_dense_tables() {
    let d = temp_dir("tables");
    let p = d.join("msi.tsv");
    std::fs::write(&p, "x\ty\t100.1\n0\t0\t1\n1\t0\t-3\n").unwrap();
    let e = load(&p, &LoadOptions::default()).unwrap_err().to_string();
    assert_has(&e, &["msi.tsv:3:", "column `100.1`", "negative"]);
    std::fs::write(&p, "x\ty\t100.1\n0\t0\t1\n0.2\t0\t3\n").unwrap();
    let e = load(&p, &LoadOptions::default()).unwrap_err().to_string();
    assert_has(&e, &["msi.tsv:3:", "same (x, y)"]);
    let q = d.join("dense.csv");
    std::fs::write(&q, ",G1,G2\n1x1,1,2\nspotA,1,2\n").unwrap();
    let e = load(&q, &LoadOptions::default()).unwrap_err().to_string();
    assert_has(&e, &["dense.csv:3:", "`spotA` is not `XxY`"]);
    std::fs::write(&q, ",G1,G2\n1x1,1,2\n2x1,1,NaN\n").unwrap();
    let e = load(&q, &LoadOptions::default()).unwrap_err().to_string();
    assert_has(&e, &["dense.csv:3:", "column `G2`", "NaN"]);
}

#[test]
fn cli_exits_non_zero_with_the_message() {
    let mut t = tiny();
    set_line(&mut t.matrix, 4, "9 1 1");
    let d = temp_dir("cli");
    write_tiny(&d, &t, false);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_darlc"))
        .args(["images", "--input"])
        .arg(&d)
        .arg("--out")
        .arg(d.join("out"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_has(&err, &["matrix.mtx:4:", "row index"]);
    assert!(!Path::new(&d.join("out").join("images.safetensors")).exists());
}

#[test]
fn options_that_do_not_apply_are_errors() {
    let d = temp_dir("opts");
    write_tiny(&d, &tiny(), false);
    let e = load(
        &d,
        &LoadOptions {
            sparsify: Some(0.9),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert_has(&e, &["sparsify", "image stacks only"]);
    let e = load(
        &d,
        &LoadOptions {
            section: Some("1".into()),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert_has(&e, &["section"]);
    let e = load(
        &d,
        &LoadOptions {
            sparsify: Some(1.5),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert_has(&e, &["sparsify", "[0, 1)"]);
    let e = load(
        &d,
        &LoadOptions {
            patch: 0,
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert_has(&e, &["patch"]);
}
