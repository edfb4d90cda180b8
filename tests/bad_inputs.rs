//! Issue 24: every input a command reads is checked before any compute. For each reader (and for
//! the config) at least 12 malformed inputs are run through the `darlc` binary; each case asserts
//! the exit code (1), that the message names the file and line (or the parameter) at fault, that
//! nothing panicked, and that no finished-looking output folder (one with `run.json`) is left.
//! Valid inputs with a UTF-8 byte-order mark must load. A bounded byte-mutation property per
//! reader that `tests/data_fuzz.rs` does not cover asserts that no input makes a reader panic.
//!
//! Tiny inputs, errors before any training: the whole file runs in a few seconds.

mod data_common;

use darlc::io::{TensorData, TensorFile};
use data_common::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Files of one case, by path relative to the case folder.
type Files = BTreeMap<String, Vec<u8>>;

/// One malformed input: the files, the command line (`{d}` is the case folder), and the parts
/// the error message must contain.
struct Case {
    reader: &'static str,
    name: String,
    files: Files,
    args: Vec<String>,
    expect: Vec<String>,
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn case_dir(name: &str) -> PathBuf {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    temp_dir(&format!("bad{n}-{clean}"))
}

fn write_files(d: &Path, files: &Files) {
    for (rel, bytes) in files {
        let p = d.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

/// Seconds a case may run: every case must fail before any compute, so one that is still running
/// has started training on a malformed input (and is killed, and reported).
const CASE_SECONDS: u64 = 60;

fn darlc(d: &Path, args: &[String]) -> std::process::Output {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("{d}", &d.display().to_string()))
        .collect();
    let (so, se) = (d.join(".stdout"), d.join(".stderr"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_darlc"))
        .args(&args)
        .env("RAYON_NUM_THREADS", "1")
        .stdout(std::fs::File::create(&so).unwrap())
        .stderr(std::fs::File::create(&se).unwrap())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed().as_secs() > CASE_SECONDS {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: std::fs::read(&so).unwrap_or_default(),
        stderr: std::fs::read(&se).unwrap_or_default(),
    }
}

/// Run every case; collect all failures so that one run lists them all. Returns the number of
/// cases per reader.
fn run_cases(cases: Vec<Case>) -> BTreeMap<&'static str, usize> {
    let mut failures = Vec::new();
    let mut per_reader: BTreeMap<&'static str, usize> = BTreeMap::new();
    for c in cases {
        *per_reader.entry(c.reader).or_default() += 1;
        let d = case_dir(&c.name);
        write_files(&d, &c.files);
        let out = darlc(&d, &c.args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        let label = format!("[{} / {}]", c.reader, c.name);
        if out.status.code() != Some(1) {
            failures.push(format!(
                "{label}: exit {:?}; stderr: {err}",
                out.status.code()
            ));
        } else if err.contains("panicked") {
            failures.push(format!("{label}: panic: {err}"));
        } else {
            let last = err
                .lines()
                .rev()
                .find(|l| l.starts_with("error: "))
                .unwrap_or("");
            let missing: Vec<&String> = c.expect.iter().filter(|p| !last.contains(*p)).collect();
            if !missing.is_empty() {
                failures.push(format!("{label}: {missing:?} missing from `{last}`"));
            }
        }
        if d.join("out").join("run.json").exists() {
            failures.push(format!(
                "{label}: a finished-looking out/ (run.json) was left"
            ));
        }
        let _ = std::fs::remove_dir_all(&d);
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    per_reader
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Replace 1-based `line` of `text` (`None` deletes it).
fn edit_line(text: &str, line: usize, new: Option<&str>) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    match new {
        Some(n) => lines[line - 1] = n,
        None => {
            lines.remove(line - 1);
        }
    }
    lines.join("\n") + "\n"
}

fn bom(text: &str) -> Vec<u8> {
    let mut v = b"\xEF\xBB\xBF".to_vec();
    v.extend_from_slice(text.as_bytes());
    v
}

// ---------------------------------------------------------------------------------------------
// Base inputs.

/// The tiny 10x section of `data_common` under `sec/`.
fn tenx() -> Files {
    let t = tiny();
    let mut f = Files::new();
    f.insert("sec/matrix.mtx".into(), t.matrix.into_bytes());
    f.insert("sec/features.tsv".into(), t.features.into_bytes());
    f.insert("sec/barcodes.tsv".into(), t.barcodes.into_bytes());
    f.insert("sec/tissue_positions.csv".into(), t.positions.into_bytes());
    f
}

/// The tiny section as legacy ST: the positions replaced by `sec/spots.csv` (`spot,x,y`).
fn legacy() -> Files {
    let mut f = tenx();
    f.remove("sec/tissue_positions.csv");
    let mut s = "spot,x,y\n".to_string();
    for k in 0..TINY_SPOTS {
        s += &format!("BC{k:02}-1,{},{}\n", k % 4, k / 4);
    }
    f.insert("sec/spots.csv".into(), s.into_bytes());
    f
}

fn text(f: &Files, name: &str) -> String {
    String::from_utf8(f[name].clone()).unwrap()
}

fn with(mut f: Files, name: &str, bytes: impl Into<Vec<u8>>) -> Files {
    f.insert(name.into(), bytes.into());
    f
}

fn without(mut f: Files, name: &str) -> Files {
    f.remove(name);
    f
}

/// `darlc run` on `input` with the tiny preset, 2 clusters, every gene kept.
fn run_args(input: &str, extra: &[&str]) -> Vec<String> {
    let mut a = s(&[
        "run",
        "--input",
        &format!("{{d}}/{input}"),
        "--out",
        "{d}/out",
        "--preset",
        "tiny",
        "--min-spots",
        "1",
        "--clusters",
        "2",
    ]);
    a.extend(s(extra));
    a
}

const DENSE: &str = "gene,1x1,2x1,1x2,2x2,3x3\nGa,1,2,0,1,3\nGb,0,3,1,2,2\nGc,4,0,2,1,1\n";
const MSI: &str = "x,y,100.5,200.5,300.5\n0,0,1,3,1\n1,0,2,0,1\n0,1,2,1,0\n1,1,4,4,2\n2,2,1,1,5\n";

fn image_csv() -> String {
    let mut img = "label".to_string();
    for p in 0..16 {
        img += &format!(",p{p}");
    }
    img += "\n";
    for r in 0..4 {
        let px: Vec<String> = (0..16).map(|v| ((v * (r + 1)) % 7).to_string()).collect();
        img += &format!("{r},{}\n", px.join(","));
    }
    img
}

fn stack_bytes(edit: impl FnOnce(&mut TensorFile)) -> Vec<u8> {
    let mut tf = TensorFile::new();
    let imgs = ndarray::Array4::from_shape_fn((4, 1, 4, 4), |(i, _, h, w)| {
        ((i + 1) * (h * 4 + w) % 7) as f32
    });
    tf.insert("images", TensorData::F32(imgs.into_dyn()));
    tf.insert_i64("labels", ndarray::arr1(&[0i64, 1, 2, 3]).into_dyn());
    edit(&mut tf);
    tf.to_bytes().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The cases, one function per reader.

fn features_cases() -> Vec<Case> {
    let f = tenx();
    let feat = text(&f, "sec/features.tsv");
    let c = |name: &str, files: Files, expect: &[&str]| Case {
        reader: "features",
        name: name.into(),
        files,
        args: run_args("sec", &[]),
        expect: s(expect),
    };
    let dup = edit_line(&feat, 2, Some("ENSG1\tG2\tGene Expression"));
    vec![
        c(
            "duplicate id",
            with(f.clone(), "sec/features.tsv", dup.clone()),
            &["features.tsv:2", "duplicate feature id `ENSG1`", "line 1"],
        ),
        c(
            "duplicate id after trimming",
            with(
                f.clone(),
                "sec/features.tsv",
                edit_line(&feat, 4, Some(" ENSG2 \tG4\tGene Expression")),
            ),
            &["features.tsv:4", "`ENSG2`"],
        ),
        c(
            "duplicate id in gzip",
            with(
                without(f.clone(), "sec/features.tsv"),
                "sec/features.tsv.gz",
                gzip(dup.as_bytes()),
            ),
            &["features.tsv.gz:2", "duplicate"],
        ),
        c(
            "duplicate id in genes.tsv",
            with(without(f.clone(), "sec/features.tsv"), "sec/genes.tsv", dup),
            &["genes.tsv:2", "duplicate"],
        ),
        c(
            "empty id",
            with(
                f.clone(),
                "sec/features.tsv",
                edit_line(&feat, 3, Some("\tMT-CO1\tGene Expression")),
            ),
            &["features.tsv:3", "empty feature id"],
        ),
        c(
            "blank line",
            with(f.clone(), "sec/features.tsv", edit_line(&feat, 3, Some(""))),
            &["features.tsv:3", "empty feature id"],
        ),
        c(
            "empty file",
            with(f.clone(), "sec/features.tsv", ""),
            &["features.tsv", "no features"],
        ),
        c(
            "not UTF-8",
            with(f.clone(), "sec/features.tsv", {
                let mut b = feat.clone().into_bytes();
                b[1] = 0xff;
                b
            }),
            &["features.tsv:1", "not UTF-8"],
        ),
        c(
            "one feature missing",
            with(f.clone(), "sec/features.tsv", edit_line(&feat, 4, None)),
            &["matrix.mtx:3", "4 rows", "features.tsv has 3"],
        ),
        c(
            "one feature too many",
            with(
                f.clone(),
                "sec/features.tsv",
                format!("{feat}ENSG5\tG5\tGene Expression\n"),
            ),
            &["matrix.mtx:3", "features.tsv has 5"],
        ),
        c(
            "truncated gzip",
            with(
                without(f.clone(), "sec/features.tsv"),
                "sec/features.tsv.gz",
                {
                    let g = gzip(feat.as_bytes());
                    g[..g.len() / 2].to_vec()
                },
            ),
            &["features.tsv.gz:", "truncated or corrupt"],
        ),
        c(
            "missing file",
            without(f.clone(), "sec/features.tsv"),
            &["sec", "no features.tsv"],
        ),
    ]
}

fn barcodes_cases() -> Vec<Case> {
    let f = tenx();
    let bc = text(&f, "sec/barcodes.tsv");
    let c = |name: &str, files: Files, expect: &[&str]| Case {
        reader: "barcodes",
        name: name.into(),
        files,
        args: run_args("sec", &[]),
        expect: s(expect),
    };
    let dup = edit_line(&bc, 5, Some("BC01-1"));
    vec![
        c(
            "duplicate",
            with(f.clone(), "sec/barcodes.tsv", dup.clone()),
            &["barcodes.tsv:5", "duplicate barcode `BC01-1`", "line 2"],
        ),
        c(
            "duplicate gzip",
            with(
                without(f.clone(), "sec/barcodes.tsv"),
                "sec/barcodes.tsv.gz",
                gzip(dup.as_bytes()),
            ),
            &["barcodes.tsv.gz:5", "duplicate"],
        ),
        c(
            "duplicate after a BOM",
            with(
                f.clone(),
                "sec/barcodes.tsv",
                bom(&edit_line(&bc, 2, Some("BC00-1"))),
            ),
            &["barcodes.tsv:2", "duplicate barcode `BC00-1`"],
        ),
        c(
            "empty barcode",
            with(f.clone(), "sec/barcodes.tsv", edit_line(&bc, 3, Some(" "))),
            &["barcodes.tsv:3", "empty barcode"],
        ),
        c(
            "empty file",
            with(f.clone(), "sec/barcodes.tsv", ""),
            &["barcodes.tsv", "no barcodes"],
        ),
        c(
            "not UTF-8",
            with(f.clone(), "sec/barcodes.tsv", {
                let mut b = bc.clone().into_bytes();
                b[8] = 0xfe;
                b
            }),
            &["barcodes.tsv:2", "not UTF-8"],
        ),
        c(
            "one barcode missing",
            with(f.clone(), "sec/barcodes.tsv", edit_line(&bc, 12, None)),
            &["matrix.mtx:3", "12 columns", "barcodes.tsv has 11"],
        ),
        c(
            "one barcode too many",
            with(
                with(f.clone(), "sec/barcodes.tsv", format!("{bc}BC99-1\n")),
                "sec/tissue_positions.csv",
                format!(
                    "{}BC99-1,0,5,7,500,350\n",
                    text(&f, "sec/tissue_positions.csv")
                ),
            ),
            &["matrix.mtx:3", "barcodes.tsv has 13"],
        ),
        c(
            "barcode not in the positions",
            with(
                f.clone(),
                "sec/barcodes.tsv",
                edit_line(&bc, 4, Some("ZZZ-1")),
            ),
            &["barcodes.tsv:4", "`ZZZ-1`", "tissue_positions.csv"],
        ),
        c(
            "truncated gzip",
            with(
                without(f.clone(), "sec/barcodes.tsv"),
                "sec/barcodes.tsv.gz",
                {
                    let g = gzip(bc.as_bytes());
                    g[..g.len() - 12].to_vec()
                },
            ),
            &["barcodes.tsv.gz:", "truncated or corrupt"],
        ),
        c(
            "missing file",
            without(f.clone(), "sec/barcodes.tsv"),
            &["sec", "no barcodes.tsv"],
        ),
        c(
            "legacy: not an XxY name and no table",
            with(
                without(legacy(), "sec/spots.csv"),
                "sec/barcodes.tsv",
                edit_line(&bc, 1, Some("1x1")),
            ),
            &["barcodes.tsv:2", "not an `XxY` spot name"],
        ),
    ]
}

fn positions_cases() -> Vec<Case> {
    let f = tenx();
    let pos = text(&f, "sec/tissue_positions.csv");
    let p = |line: usize, new: Option<&str>| {
        with(
            f.clone(),
            "sec/tissue_positions.csv",
            edit_line(&pos, line, new),
        )
    };
    let c = |name: &str, files: Files, expect: &[&str]| Case {
        reader: "positions",
        name: name.into(),
        files,
        args: run_args("sec", &[]),
        expect: s(expect),
    };
    vec![
        c(
            "in_tissue 2",
            p(3, Some("BC01-1,2,0,2,0,100")),
            &["tissue_positions.csv:3", "in_tissue"],
        ),
        c(
            "array_row not an integer",
            p(4, Some("BC02-1,1,x,4,0,200")),
            &["tissue_positions.csv:4", "array_row"],
        ),
        c(
            "array_col negative",
            p(4, Some("BC02-1,1,0,-4,0,200")),
            &["tissue_positions.csv:4", "out of range"],
        ),
        c(
            "too few fields",
            p(5, Some("BC03-1,1,0")),
            &["tissue_positions.csv:5", "fields"],
        ),
        c(
            "duplicate barcode",
            p(6, Some("BC01-1,1,1,1,100,50")),
            &["tissue_positions.csv:6", "duplicate barcode `BC01-1`"],
        ),
        c(
            "two spots on one array position",
            p(3, Some("BC01-1,1,0,0,0,100")),
            &["tissue_positions.csv:3", "same pixel"],
        ),
        c(
            "huge array position",
            p(3, Some("BC01-1,1,0,1000000,0,100")),
            &["tissue_positions.csv", "canvas"],
        ),
        c(
            "barcode missing",
            p(13, None),
            &["barcodes.tsv:12", "missing from the positions table"],
        ),
        c(
            "empty file",
            with(f.clone(), "sec/tissue_positions.csv", ""),
            &["tissue_positions.csv", "empty positions table"],
        ),
        c(
            "ragged row",
            p(7, Some("BC05-1,1,1,3,100,150,9")),
            &["tissue_positions.csv:7", "fields"],
        ),
        c(
            "not UTF-8",
            with(f.clone(), "sec/tissue_positions.csv", {
                let mut b = pos.clone().into_bytes();
                let k = pos.find("BC03").unwrap();
                b[k] = 0xff;
                b
            }),
            &["tissue_positions.csv", "UTF-8"],
        ),
        c(
            "no spot in tissue",
            with(
                f.clone(),
                "sec/tissue_positions.csv",
                pos.replace(",1,", ",0,"),
            ),
            &["nothing left", "tissue"],
        ),
    ]
}

fn matrix_cases() -> Vec<Case> {
    let f = tenx();
    let m = text(&f, "sec/matrix.mtx");
    let p = |line: usize, new: Option<&str>| {
        with(f.clone(), "sec/matrix.mtx", edit_line(&m, line, new))
    };
    let c = |name: &str, files: Files, expect: &[&str]| Case {
        reader: "matrix",
        name: name.into(),
        files,
        args: run_args("sec", &[]),
        expect: s(expect),
    };
    vec![
        c(
            "bad banner",
            p(1, Some("%%MatrixMarket matrix array real general")),
            &["matrix.mtx:1"],
        ),
        c("no banner", p(1, Some("hello")), &["matrix.mtx:1"]),
        c("bad size line", p(3, Some("4 12")), &["matrix.mtx:3"]),
        c(
            "size line not numbers",
            p(3, Some("4 x 41")),
            &["matrix.mtx:3"],
        ),
        c("row out of range", p(4, Some("9 1 1")), &["matrix.mtx:4"]),
        c(
            "column out of range",
            p(4, Some("1 99 1")),
            &["matrix.mtx:4"],
        ),
        c("row 0", p(4, Some("0 1 1")), &["matrix.mtx:4"]),
        c(
            "negative value",
            p(4, Some("1 1 -3")),
            &["matrix.mtx:4", "negative"],
        ),
        c("NaN value", p(4, Some("1 1 nan")), &["matrix.mtx:4"]),
        c("inf value", p(4, Some("1 1 inf")), &["matrix.mtx:4"]),
        c("missing entry", p(5, None), &["matrix.mtx"]),
        c("duplicate entry", p(5, Some("1 1 1")), &["matrix.mtx:5"]),
        c(
            "truncated gzip",
            with(without(f.clone(), "sec/matrix.mtx"), "sec/matrix.mtx.gz", {
                let g = gzip(m.as_bytes());
                g[..g.len() / 2].to_vec()
            }),
            &["matrix.mtx.gz:", "truncated or corrupt"],
        ),
    ]
}

fn spot_table_cases() -> Vec<Case> {
    let f = legacy();
    let t = text(&f, "sec/spots.csv");
    let p =
        |line: usize, new: Option<&str>| with(f.clone(), "sec/spots.csv", edit_line(&t, line, new));
    let c = |name: &str, files: Files, expect: &[&str]| Case {
        reader: "spot table",
        name: name.into(),
        files,
        args: run_args("sec", &[]),
        expect: s(expect),
    };
    vec![
        c(
            "no x column",
            p(1, Some("spot,u,y")),
            &["spots.csv:1", "`x`"],
        ),
        c(
            "no y column",
            p(1, Some("spot,x,v")),
            &["spots.csv:1", "`y`"],
        ),
        c(
            "x not a number",
            p(3, Some("BC01-1,a,0")),
            &["spots.csv:3", "`x`"],
        ),
        c("y NaN", p(3, Some("BC01-1,1,NaN")), &["spots.csv:3", "`y`"]),
        c("x inf", p(3, Some("BC01-1,inf,0")), &["spots.csv:3", "`x`"]),
        c(
            "x huge",
            p(3, Some("BC01-1,1e13,0")),
            &["spots.csv:3", "out of range"],
        ),
        c(
            "duplicate id",
            p(4, Some("BC01-1,2,0")),
            &["spots.csv:4", "duplicate id `BC01-1`"],
        ),
        c("empty id", p(4, Some(",2,0")), &["spots.csv:4", "empty id"]),
        c(
            "ragged row",
            p(5, Some("BC03-1,3")),
            &["spots.csv:5", "fields"],
        ),
        c(
            "two spots on one point",
            p(3, Some("BC01-1,0,0")),
            &["spots.csv:3", "same pixel"],
        ),
        c(
            "barcode missing",
            p(13, None),
            &["barcodes.tsv:12", "missing from the spot table"],
        ),
        c(
            "coordinates off any lattice",
            p(3, Some("BC01-1,9000,0")),
            &["spots.csv", "canvas", "--coords bin"],
        ),
        c(
            "in_tissue 3",
            with(
                f.clone(),
                "sec/spots.csv",
                t.replacen("spot,x,y", "spot,x,y,in_tissue", 1)
                    .lines()
                    .enumerate()
                    .map(|(k, l)| {
                        if k == 0 {
                            l.to_string()
                        } else if k == 2 {
                            format!("{l},3")
                        } else {
                            format!("{l},1")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
                    + "\n",
            ),
            &["spots.csv:3", "in_tissue"],
        ),
    ]
}

fn dense_cases() -> Vec<Case> {
    let f = with(Files::new(), "dense.csv", DENSE);
    let p = |line: usize, new: Option<&str>| {
        with(Files::new(), "dense.csv", edit_line(DENSE, line, new))
    };
    let c = |name: &str, files: Files, expect: &[&str]| Case {
        reader: "dense table",
        name: name.into(),
        files,
        args: run_args("dense.csv", &[]),
        expect: s(expect),
    };
    vec![
        c(
            "duplicate gene",
            p(3, Some("Ga,0,3,1,2,2")),
            &["dense.csv:3", "duplicate gene `Ga`"],
        ),
        c(
            "empty gene",
            p(3, Some(",0,3,1,2,2")),
            &["dense.csv:3", "empty gene"],
        ),
        c(
            "negative count",
            p(2, Some("Ga,1,-2,0,1,3")),
            &["dense.csv:2", "negative"],
        ),
        c(
            "NaN count",
            p(2, Some("Ga,1,NaN,0,1,3")),
            &["dense.csv:2", "NaN"],
        ),
        c(
            "inf count",
            p(2, Some("Ga,1,inf,0,1,3")),
            &["dense.csv:2", "infinite"],
        ),
        c(
            "text count",
            p(4, Some("Gc,4,zero,2,1,1")),
            &["dense.csv:4", "not a number"],
        ),
        c(
            "ragged row",
            p(4, Some("Gc,4,0,2")),
            &["dense.csv:4", "fields"],
        ),
        c(
            "duplicate spot",
            p(1, Some("gene,1x1,2x1,1x2,2x2,1x1")),
            &["dense.csv:1", "duplicate spot `1x1`"],
        ),
        c(
            "spots on one pixel",
            p(1, Some("gene,1x1,2x1,1x2,2x2,1.1x1")),
            &["dense.csv:1", "same pixel"],
        ),
        c(
            "spot far off",
            p(1, Some("gene,1x1,2x1,1x2,2x2,9000x1")),
            &["dense.csv", "canvas", "--coords bin"],
        ),
        c(
            "one column",
            with(Files::new(), "dense.csv", "gene\nGa\n"),
            &["dense.csv:1", "data column"],
        ),
        c(
            "duplicate gene, spots as rows",
            with(
                Files::new(),
                "dense.csv",
                "spot,Ga,Gb,Ga\n1x1,1,2,3\n2x1,2,1,1\n1x2,3,3,1\n",
            ),
            &["dense.csv:1", "duplicate gene `Ga`", "columns 2 and 4"],
        ),
        c(
            "identical genes",
            with(
                Files::new(),
                "dense.csv",
                "gene,1x1,2x1,1x2,2x2\nGa,1,2,0,1\nGb,1,2,0,1\nGc,1,2,0,1\n",
            ),
            &["all 3 images are identical", "`Ga` and `Gb`"],
        ),
        c(
            "not UTF-8",
            with(Files::new(), "dense.csv", {
                let mut b = f["dense.csv"].clone();
                b[30] = 0xff;
                b
            }),
            &["dense.csv", "UTF-8"],
        ),
    ]
}

fn msi_cases() -> Vec<Case> {
    let p =
        |line: usize, new: Option<&str>| with(Files::new(), "msi.csv", edit_line(MSI, line, new));
    let c = |name: &str, files: Files, expect: &[&str]| Case {
        reader: "MSI table",
        name: name.into(),
        files,
        args: run_args("msi.csv", &[]),
        expect: s(expect),
    };
    vec![
        c(
            "duplicate m/z",
            p(1, Some("x,y,100.5,200.5,100.5")),
            &["msi.csv:1", "duplicate m/z column `100.5`"],
        ),
        c(
            "empty m/z name",
            p(1, Some("x,y,100.5,,300.5")),
            &["msi.csv:1", "no m/z name"],
        ),
        c(
            "no m/z column",
            with(Files::new(), "msi.csv", "x,y\n0,0\n1,1\n"),
            &["msi.csv:1", "no m/z"],
        ),
        c(
            "negative intensity",
            p(3, Some("1,0,-2,0,1")),
            &["msi.csv:3", "negative"],
        ),
        c(
            "NaN intensity",
            p(3, Some("1,0,NaN,0,1")),
            &["msi.csv:3", "NaN", "`100.5`"],
        ),
        c(
            "inf intensity",
            p(3, Some("1,0,2,inf,1")),
            &["msi.csv:3", "infinite", "`200.5`"],
        ),
        c(
            "x not a number",
            p(4, Some("a,1,2,1,0")),
            &["msi.csv:4", "`x`"],
        ),
        c("y inf", p(4, Some("0,inf,2,1,0")), &["msi.csv:4", "`y`"]),
        c("ragged row", p(4, Some("0,1,2")), &["msi.csv:4", "fields"]),
        c(
            "two pixels on one point",
            p(4, Some("0,0,2,1,0")),
            &["msi.csv:4", "same (x, y)"],
        ),
        c(
            "pixel far off",
            p(4, Some("0,9000,2,1,0")),
            &["msi.csv", "canvas"],
        ),
        c(
            "no pixel rows",
            with(Files::new(), "msi.csv", "x,y,100.5\n"),
            &["msi.csv", "no pixel rows"],
        ),
        c(
            "option that does not apply",
            with(Files::new(), "msi.csv", MSI),
            &["coords"],
        ),
    ]
    .into_iter()
    .enumerate()
    .map(|(k, mut c)| {
        if k == 12 {
            c.args.extend(s(&["--coords", "bin"]));
        }
        c
    })
    .collect()
}

fn csv_stack_cases() -> Vec<Case> {
    let img = image_csv();
    let p =
        |line: usize, new: &str| with(Files::new(), "img.csv", edit_line(&img, line, Some(new)));
    let row = |r: usize| img.lines().nth(r).unwrap().to_string();
    let c = |name: &str, files: Files, expect: &[&str]| Case {
        reader: "CSV stack",
        name: name.into(),
        files,
        args: run_args("img.csv", &[]),
        expect: s(expect),
    };
    let sub = |line: usize, from: &str, to: &str| p(line, &row(line - 1).replacen(from, to, 1));
    vec![
        c(
            "NaN pixel",
            sub(2, ",1,", ",NaN,"),
            &["img.csv:2", "`p1`", "not a finite number"],
        ),
        c(
            "inf pixel",
            sub(3, ",2,", ",inf,"),
            &["img.csv:3", "not a finite number"],
        ),
        c(
            "-inf pixel",
            sub(4, ",3,", ",-inf,"),
            &["img.csv:4", "not a finite number"],
        ),
        c(
            "text pixel",
            sub(5, ",4,", ",four,"),
            &["img.csv:5", "not a number"],
        ),
        c(
            "huge pixel",
            sub(2, ",1,", ",1e300,"),
            &["img.csv:2", "out of range"],
        ),
        c("ragged row", p(3, "1,1,2"), &["img.csv:3", "fields"]),
        c(
            "not square",
            with(Files::new(), "img.csv", "label,a,b,c\n0,1,2,3\n"),
            &["img.csv", "not a square image"],
        ),
        c(
            "no images",
            with(Files::new(), "img.csv", "label,a,b,c,d\n"),
            &["img.csv", "no images"],
        ),
        c(
            "no pixel columns",
            with(Files::new(), "img.csv", "label\n0\n"),
            &["img.csv", "image"],
        ),
        c(
            "wrong --image-shape",
            with(Files::new(), "img.csv", img.clone()),
            &["img.csv", "--image-shape 3x3x1"],
        ),
        c(
            "not UTF-8",
            with(Files::new(), "img.csv", {
                let mut b = img.clone().into_bytes();
                let k = img.find("\n1,").unwrap() + 3;
                b[k] = 0xff;
                b
            }),
            &["img.csv", "UTF-8"],
        ),
        c(
            "truncated gzip",
            with(Files::new(), "img.csv.gz", {
                let g = gzip(img.as_bytes());
                g[..g.len() - 10].to_vec()
            }),
            &["img.csv.gz", "truncated or corrupt"],
        ),
    ]
    .into_iter()
    .map(|mut c| {
        if c.name == "wrong --image-shape" {
            c.args.extend(s(&["--image-shape", "3x3"]));
        }
        if c.name == "truncated gzip" {
            c.args = run_args("img.csv.gz", &[]);
        }
        c
    })
    .collect()
}

fn safetensors_stack_cases() -> Vec<Case> {
    let c = |name: &str, bytes: Vec<u8>, expect: &[&str]| Case {
        reader: "safetensors stack",
        name: name.into(),
        files: with(Files::new(), "s.safetensors", bytes),
        args: run_args("s.safetensors", &[]),
        expect: s(expect),
    };
    let imgs = |shape: &[usize], v: f32| {
        TensorData::F32(ndarray::ArrayD::from_elem(ndarray::IxDyn(shape), v))
    };
    vec![
        c(
            "NaN pixel",
            stack_bytes(|tf| {
                let mut a = ndarray::Array4::<f32>::ones((4, 1, 4, 4));
                a[[2, 0, 1, 3]] = f32::NAN;
                tf.insert("images", TensorData::F32(a.into_dyn()));
            }),
            &["s.safetensors", "element", "NaN"],
        ),
        c(
            "inf pixel",
            stack_bytes(|tf| {
                let mut a = ndarray::Array4::<f32>::ones((4, 1, 4, 4));
                a[[0, 0, 0, 0]] = f32::INFINITY;
                tf.insert("images", TensorData::F32(a.into_dyn()));
            }),
            &["s.safetensors", "inf"],
        ),
        c(
            "zero height",
            stack_bytes(|tf| tf.insert("images", imgs(&[4, 1, 0, 4], 1.0))),
            &["s.safetensors", "empty dimension"],
        ),
        c(
            "zero images",
            stack_bytes(|tf| {
                tf.insert("images", imgs(&[0, 1, 4, 4], 1.0));
                tf.tensors.remove("labels");
            }),
            &["s.safetensors", "no images"],
        ),
        c(
            "rank 2",
            stack_bytes(|tf| tf.insert("images", imgs(&[4, 16], 1.0))),
            &["s.safetensors", "expected [N, C, H, W]"],
        ),
        c(
            "rank 5",
            stack_bytes(|tf| tf.insert("images", imgs(&[4, 1, 1, 4, 4], 1.0))),
            &["s.safetensors", "expected [N, C, H, W]"],
        ),
        c(
            "labels of the wrong length",
            stack_bytes(|tf| tf.insert_i64("labels", ndarray::arr1(&[0i64, 1]).into_dyn())),
            &["s.safetensors", "`labels`", "[4]"],
        ),
        c(
            "mask of the wrong shape",
            stack_bytes(|tf| {
                tf.insert(
                    "mask",
                    TensorData::U8(ndarray::ArrayD::from_elem(ndarray::IxDyn(&[3, 4]), 1u8)),
                )
            }),
            &["s.safetensors", "`mask`"],
        ),
        c(
            "all-zero mask",
            stack_bytes(|tf| {
                tf.insert(
                    "mask",
                    TensorData::U8(ndarray::ArrayD::from_elem(ndarray::IxDyn(&[4, 4]), 0u8)),
                )
            }),
            &["s.safetensors", "`mask` is all zero"],
        ),
        c(
            "two tensors, none named images",
            stack_bytes(|tf| {
                let t = tf.tensors.remove("images").unwrap();
                tf.insert("pixels", t);
            }),
            &["s.safetensors", "no tensor named `images`"],
        ),
        c(
            "not safetensors",
            b"hello world, this is not a tensor file".to_vec(),
            &["s.safetensors", "not a valid safetensors"],
        ),
        c(
            "truncated",
            {
                let b = stack_bytes(|_| {});
                b[..b.len() - 9].to_vec()
            },
            &["s.safetensors", "safetensors"],
        ),
        c(
            "zero dimension beside huge ones",
            huge_zero_tensor(),
            &["s.safetensors"],
        ),
        c(
            "unsupported dtype",
            {
                // A valid header with dtype F16.
                let header = r#"{"images":{"dtype":"F16","shape":[1,1,2,2],"data_offsets":[0,8]}}"#;
                let mut b = (header.len() as u64).to_le_bytes().to_vec();
                b.extend_from_slice(header.as_bytes());
                b.extend_from_slice(&[0u8; 8]);
                b
            },
            &["s.safetensors", "dtype"],
        ),
    ]
}

/// A safetensors file whose tensor has shape `[0, 2^40, 2^40, 2^40]`: 0 bytes, but an element
/// count that overflows (issue 24: it panicked in `TensorFile::from_bytes`).
fn huge_zero_tensor() -> Vec<u8> {
    let big = 1u64 << 40;
    let header = format!(
        r#"{{"images":{{"dtype":"F32","shape":[0,{big},{big},{big}],"data_offsets":[0,0]}}}}"#
    );
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b
}

fn truth_cases() -> Vec<Case> {
    let base = tenx();
    // Genes kept with --min-spots 1: ENSG1, ENSG2, ENSG4 (MT-CO1 dropped).
    let good = "gene_id,label\nENSG1,a\nENSG2,b\nENSG4,a\n";
    let c = |name: &str, truth: Option<&str>, expect: &[&str]| {
        let files = match truth {
            Some(t) => with(base.clone(), "truth.csv", t),
            None => base.clone(),
        };
        Case {
            reader: "truth",
            name: name.into(),
            files,
            args: run_args("sec", &["--truth", "{d}/truth.csv"]),
            expect: s(expect),
        }
    };
    let g = |line: usize, new: Option<&str>| edit_line(good, line, new);
    vec![
        c("missing file", None, &["truth.csv", "No such file"]),
        c(
            "one column",
            Some("gene_id\nENSG1\nENSG2\nENSG4\n"),
            &["truth.csv:2", "2 columns"],
        ),
        c(
            "id missing",
            Some(&g(4, None)),
            &["truth.csv", "no label for image `ENSG4`", "1 of the 3"],
        ),
        c(
            "every id missing",
            Some("gene_id,label\nX,a\nY,b\n"),
            &["truth.csv", "3 of the 3 images"],
        ),
        c(
            "duplicate id",
            Some(&g(3, Some("ENSG1,b"))),
            &["truth.csv:3", "`ENSG1` appears twice"],
        ),
        c(
            "empty id",
            Some(&g(3, Some(",b"))),
            &["truth.csv:3", "empty id"],
        ),
        c(
            "header only",
            Some("gene_id,label\n"),
            &["truth.csv", "no rows"],
        ),
        c("empty file", Some(""), &["truth.csv", "no rows"]),
        c(
            "not UTF-8",
            Some("gene_id,label\nENSG1,\u{0}a\n"),
            &["truth.csv"],
        ),
        c(
            "short row",
            Some(&g(2, Some("ENSG1"))),
            &["truth.csv:2", "2 columns"],
        ),
        c(
            "duplicate id after a BOM",
            Some(&format!("\u{feff}{}", g(3, Some("ENSG1,x")))),
            &["truth.csv:3", "appears twice"],
        ),
        c("a folder, not a file", None, &["truth.csv"]),
    ]
    .into_iter()
    .map(|mut c| {
        if c.name == "not UTF-8" {
            let mut b = b"gene_id,label\nENSG1,a\nENSG2,".to_vec();
            b.extend_from_slice(&[0xff, 0xfe, b'\n']);
            b.extend_from_slice(b"ENSG4,a\n");
            c.files.insert("truth.csv".into(), b);
        }
        if c.name == "a folder, not a file" {
            c.files.insert("truth.csv/x".into(), b"x".to_vec());
        }
        c
    })
    .collect()
}

fn eval_cases() -> Vec<Case> {
    let labels = "id,cluster\na,0\nb,1\nc,0\nd,1\n";
    let emb = "id,e0,e1\na,0.1,1\nb,2,0.5\nc,0.3,1.2\nd,2.2,0.1\n";
    let c = |name: &str, lab: &str, e: &str, expect: &[&str]| Case {
        reader: "eval inputs",
        name: name.into(),
        files: with(with(Files::new(), "labels.csv", lab), "emb.csv", e),
        args: s(&[
            "eval",
            "--labels",
            "{d}/labels.csv",
            "--embeddings",
            "{d}/emb.csv",
        ]),
        expect: s(expect),
    };
    let e = |line: usize, new: &str| edit_line(emb, line, Some(new));
    let l = |line: usize, new: Option<&str>| edit_line(labels, line, new);
    let mut v = vec![
        c(
            "NaN embedding",
            labels,
            &e(3, "b,NaN,0.5"),
            &["emb.csv:3", "column 2", "not a finite number"],
        ),
        c(
            "inf embedding",
            labels,
            &e(4, "c,0.3,inf"),
            &["emb.csv:4", "column 3", "not a finite number"],
        ),
        c(
            "text embedding",
            labels,
            &e(2, "a,x,1"),
            &["emb.csv:2", "not a number"],
        ),
        c(
            "ragged embedding",
            labels,
            &e(5, "d,2.2"),
            &["emb.csv:5", "values"],
        ),
        c(
            "duplicate embedding id",
            labels,
            &e(5, "c,2.2,0.1"),
            &["emb.csv:5", "`c` appears twice"],
        ),
        c(
            "id without embedding",
            &l(5, Some("e,1")),
            emb,
            &["emb.csv", "no row for id `e`", "labels.csv"],
        ),
        c(
            "duplicate label id",
            &l(5, Some("a,1")),
            emb,
            &["labels.csv:5", "`a` appears twice"],
        ),
        c(
            "one-column labels",
            "id\na\nb\n",
            emb,
            &["labels.csv:2", "2 columns"],
        ),
        c(
            "empty label id",
            &l(3, Some(",1")),
            emb,
            &["labels.csv:3", "empty id"],
        ),
        c(
            "no labels",
            "id,cluster\n",
            emb,
            &["labels.csv", "no labelled items"],
        ),
    ];
    // NaN in a safetensors embedding.
    let mut tf = TensorFile::new();
    let mut z = ndarray::Array2::<f32>::ones((4, 2));
    z[[1, 1]] = f32::NAN;
    tf.insert("z", TensorData::F32(z.into_dyn()));
    tf.metadata
        .insert("ids".into(), r#"["a","b","c","d"]"#.into());
    v.push(Case {
        reader: "eval inputs",
        name: "NaN in a safetensors embedding".into(),
        files: with(
            with(Files::new(), "labels.csv", labels),
            "e.safetensors",
            tf.to_bytes().unwrap(),
        ),
        args: s(&[
            "eval",
            "--labels",
            "{d}/labels.csv",
            "--embeddings",
            "{d}/e.safetensors",
        ]),
        expect: s(&["e.safetensors", "tensor `z`", "row 1, column 1"]),
    });
    // `eval --run` on a folder that is not a finished run.
    v.push(Case {
        reader: "eval inputs",
        name: "run folder without run.json".into(),
        files: with(
            with(Files::new(), "r/clusters.csv", labels),
            "r/embeddings.csv",
            emb,
        ),
        args: s(&["eval", "--run", "{d}/r"]),
        expect: s(&["`run`", "not a finished run", "run.json"]),
    });
    // A bad family file fails before any scoring.
    v.push(Case {
        reader: "eval inputs",
        name: "family file with a duplicate".into(),
        files: with(
            with(with(Files::new(), "labels.csv", labels), "emb.csv", emb),
            "fam.csv",
            "gene,family\na,X\na,Y\n",
        ),
        args: s(&[
            "eval",
            "--labels",
            "{d}/labels.csv",
            "--embeddings",
            "{d}/emb.csv",
            "--families",
            "{d}/fam.csv",
        ]),
        expect: s(&["fam.csv:3", "appears twice"]),
    });
    v
}

fn config_cases() -> Vec<Case> {
    let base = tenx();
    let c = |name: &str, json: &str, expect: &[&str]| Case {
        reader: "config",
        name: name.into(),
        files: with(base.clone(), "c.json", json),
        args: run_args("sec", &["--config", "{d}/c.json"]),
        expect: s(expect),
    };
    vec![
        c(
            "negative lambda0",
            r#"{"module2": {"lambda0": -0.5}}"#,
            &["`module2.lambda0`"],
        ),
        c(
            "negative em_tol",
            r#"{"module2": {"em_tol": -1e-6}}"#,
            &["`module2.em_tol`"],
        ),
        c(
            "tau 1e308",
            r#"{"module1": {"tau": 1e308}}"#,
            &["`module1.tau`"],
        ),
        c(
            "mlp_ratio 0",
            r#"{"module1": {"mlp_ratio": 0}}"#,
            &["`module1.mlp_ratio`"],
        ),
        c(
            "contrastive_dim 0",
            r#"{"module1": {"contrastive_dim": 0}}"#,
            &["`module1.contrastive_dim`"],
        ),
        c(
            "negative clip",
            r#"{"smoothing": {"clip": -5}}"#,
            &["`smoothing.clip`"],
        ),
        c(
            "negative weight_decay",
            r#"{"smoothing": {"weight_decay": -1}}"#,
            &["`smoothing.weight_decay`"],
        ),
        c(
            "alpha below 1",
            r#"{"module2": {"alpha": 0.5}}"#,
            &["`module2.alpha`"],
        ),
        c(
            "nu_init 0",
            r#"{"module2": {"nu_init": 0}}"#,
            &["`module2.nu_init`"],
        ),
        c(
            "em_iters_init 0",
            r#"{"module2": {"em_iters_init": 0}}"#,
            &["`module2.em_iters_init`"],
        ),
        c(
            "unknown key",
            "{\n  \"module2\": {\"lamda0\": 1}\n}",
            &["c.json", "lamda0"],
        ),
        c(
            "unknown smoothing method",
            r#"{"smoothing": {"method": "gaussian"}}"#,
            &["c.json", "`smoothing.method`", "gaussian"],
        ),
        c(
            "wrong type",
            r#"{"module1": {"batch": "big"}}"#,
            &["c.json", "`module1.batch`"],
        ),
        c(
            "negative epochs",
            r#"{"smoothing": {"epochs": -1}}"#,
            &["c.json", "`smoothing.epochs`"],
        ),
        c(
            "bad clusters rule",
            r#"{"module2": {"clusters": {"rule": "many"}}}"#,
            &["c.json", "`module2.clusters`"],
        ),
        c(
            "invalid JSON",
            "{\"seed\": 1,\n \"module1\": {\n}",
            &["c.json:3", "invalid JSON"],
        ),
        c(
            "patch 80 on a small canvas",
            r#"{"module1": {"patch": 80}}"#,
            &["`module1.patch`", "token"],
        ),
        c(
            "heads that do not divide dim",
            r#"{"module1": {"heads": 3}}"#,
            &["`module1.heads`"],
        ),
    ]
    .into_iter()
    .map(|mut c| {
        // `--patch` on the command line overrides the config's patch only when given; the
        // patch-80 case also needs the default 75-pixel canvas of the tiny section (3 × 8 spots).
        if c.name.starts_with("patch 80") {
            c.args = run_args("sec", &["--config", "{d}/c.json"]);
        }
        c
    })
    .collect()
}

fn out_cases() -> Vec<Case> {
    let base = tenx();
    let c = |name: &str, files: Files, out: &str, expect: &[&str]| {
        let mut args = run_args("sec", &[]);
        let k = args.iter().position(|a| a == "{d}/out").unwrap();
        args[k] = out.into();
        Case {
            reader: "--out",
            name: name.into(),
            files,
            args,
            expect: s(expect),
        }
    };
    vec![
        c(
            "out is a file",
            with(base.clone(), "file", "x"),
            "{d}/file",
            &["`--out`", "is a file"],
        ),
        c(
            "out below a file",
            with(base.clone(), "file", "x"),
            "{d}/file/out",
            &["`--out`", "is a file"],
        ),
    ]
}

fn verify_cases() -> Vec<Case> {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(golden.join("manifest.json")).unwrap()).unwrap();
    let one = manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "add.same")
        .unwrap()
        .clone();
    let tensor = std::fs::read(golden.join("add.same.safetensors")).unwrap();
    let mk = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut m = manifest.clone();
        m["cases"] = serde_json::json!([one.clone()]);
        edit(&mut m);
        serde_json::to_vec_pretty(&m).unwrap()
    };
    let case_with = |name: &str, man: Vec<u8>, tensors: Vec<u8>, expect: &[&str]| {
        let args = s(&["verify", "--reference", "{d}/ref", "--candidate", "{d}/ref"]);
        Case {
            reader: "verify reference",
            name: name.into(),
            files: with(
                with(Files::new(), "ref/manifest.json", man),
                "ref/add.same.safetensors",
                tensors,
            ),
            args,
            expect: s(expect),
        }
    };
    let c =
        |name: &str, man: Vec<u8>, expect: &[&str]| case_with(name, man, tensor.clone(), expect);
    // The reference's `out` tensor with one NaN.
    let nan_tensor = {
        let mut f = TensorFile::from_bytes(&tensor, Path::new("add.same.safetensors")).unwrap();
        let mut out = f.tensors["out"].to_f64();
        *out.iter_mut().next().unwrap() = f64::NAN;
        f.tensors.insert("out".into(), TensorData::F64(out));
        f.to_bytes().unwrap()
    };
    vec![
        c(
            "no cases",
            mk(&|m| m["cases"] = serde_json::json!([])),
            &["manifest.json", "no case"],
        ),
        c(
            "no tensors",
            mk(&|m| {
                m["cases"][0]["outputs"] = serde_json::json!([]);
                m["cases"][0]["grads"] = serde_json::json!([]);
            }),
            &["manifest.json", "no output or gradient tensor"],
        ),
        c(
            "unknown format",
            mk(&|m| m["format"] = "darlc-golden-9".into()),
            &["manifest.json", "`darlc-golden-9`"],
        ),
        c(
            "format missing",
            mk(&|m| {
                m.as_object_mut().unwrap().remove("format");
            }),
            &["manifest.json", "format"],
        ),
        c(
            "invalid JSON",
            b"{\"format\": ".to_vec(),
            &["manifest.json:1", "invalid manifest"],
        ),
        c(
            "case file missing",
            mk(&|m| m["cases"][0]["file"] = "nope.safetensors".into()),
            &["nope.safetensors"],
        ),
        c(
            "tensor missing from the reference",
            mk(&|m| m["cases"][0]["outputs"] = serde_json::json!(["nope"])),
            &["add.same.safetensors", "nope"],
        ),
        c(
            "case listed twice",
            mk(&|m| {
                let one = m["cases"][0].clone();
                m["cases"].as_array_mut().unwrap().push(one);
            }),
            &["manifest.json", "`add.same` is listed twice"],
        ),
        c(
            "case file outside the folder",
            mk(&|m| m["cases"][0]["file"] = "../add.same.safetensors".into()),
            &[
                "manifest.json",
                "`../add.same.safetensors`",
                "no directory part",
            ],
        ),
        c(
            "tensor listed twice",
            mk(&|m| m["cases"][0]["grads"] = serde_json::json!(["grad.a", "grad.a"])),
            &["manifest.json", "`grad.a` is listed twice"],
        ),
        c(
            "negative tolerance",
            mk(&|m| m["cases"][0]["tolerance"]["f64"]["grads"]["abs"] = (-1e-9).into()),
            &["manifest.json", "`tolerance.f64.grads.abs`", "≥ 0"],
        ),
        c(
            "per-tensor tolerance for an unlisted tensor",
            mk(&|m| {
                m["cases"][0]["tensor_tolerance"] = serde_json::json!({
                    "grad.c": {"f32": {"rel": 0.0, "abs": 1e-6}, "f64": {"rel": 0.0, "abs": 1e-12}}
                })
            }),
            &["manifest.json", "`grad.c`", "not among"],
        ),
        c(
            "manifest is an empty file",
            Vec::new(),
            &["manifest.json", "invalid manifest"],
        ),
        c(
            "manifest is a list",
            b"[]".to_vec(),
            &["manifest.json:1", "invalid manifest"],
        ),
        case_with(
            "reference tensor file truncated",
            mk(&|_| {}),
            tensor[..tensor.len() / 2].to_vec(),
            &["add.same.safetensors"],
        ),
        case_with(
            "reference tensor holds NaN",
            mk(&|_| {}),
            nan_tensor,
            &["add.same.safetensors", "`out`", "non-finite"],
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn malformed_section_files_are_clear_errors_before_compute() {
    let mut cases = features_cases();
    cases.extend(barcodes_cases());
    cases.extend(positions_cases());
    cases.extend(matrix_cases());
    cases.extend(spot_table_cases());
    let counts = run_cases(cases);
    for (r, n) in &counts {
        assert!(*n >= 12, "{r}: only {n} cases");
    }
    eprintln!("cases per reader: {counts:?}");
}

#[test]
fn malformed_tables_and_stacks_are_clear_errors_before_compute() {
    let mut cases = dense_cases();
    cases.extend(msi_cases());
    cases.extend(csv_stack_cases());
    cases.extend(safetensors_stack_cases());
    let counts = run_cases(cases);
    for (r, n) in &counts {
        assert!(*n >= 12, "{r}: only {n} cases");
    }
    eprintln!("cases per reader: {counts:?}");
}

#[test]
fn malformed_truth_eval_config_and_reference_are_clear_errors_before_compute() {
    let mut cases = truth_cases();
    cases.extend(eval_cases());
    cases.extend(config_cases());
    cases.extend(out_cases());
    cases.extend(verify_cases());
    let counts = run_cases(cases);
    for r in ["truth", "eval inputs", "config", "verify reference"] {
        assert!(counts[r] >= 12, "{r}: only {} cases", counts[r]);
    }
    eprintln!("cases per reader: {counts:?}");
}

/// A UTF-8 byte-order mark at the start of a valid text file is skipped by every reader.
#[test]
fn a_byte_order_mark_does_not_change_what_is_read() {
    let f = tenx();
    let check = |files: Files, input: &str, extra: &[&str]| {
        let d = case_dir("bom");
        write_files(&d, &files);
        let mut args = s(&[
            "images",
            "--input",
            &format!("{{d}}/{input}"),
            "--out",
            "{d}/out",
            "--min-spots",
            "1",
        ]);
        args.extend(s(extra));
        let out = darlc(&d, &args);
        assert!(
            out.status.success(),
            "{input}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let genes = std::fs::read_to_string(d.join("out/genes.csv")).unwrap();
        let _ = std::fs::remove_dir_all(&d);
        genes
    };
    let plain = check(f.clone(), "sec", &[]);
    for name in [
        "sec/barcodes.tsv",
        "sec/features.tsv",
        "sec/tissue_positions.csv",
    ] {
        let g = check(with(f.clone(), name, bom(&text(&f, name))), "sec", &[]);
        assert_eq!(g, plain, "{name}");
    }
    let l = legacy();
    let plain = check(l.clone(), "sec", &[]);
    let g = check(
        with(l.clone(), "sec/spots.csv", bom(&text(&l, "sec/spots.csv"))),
        "sec",
        &[],
    );
    assert_eq!(g, plain, "spots.csv");
    for (name, body) in [
        ("msi.csv", MSI.to_string()),
        ("dense.csv", DENSE.to_string()),
        ("img.csv", image_csv()),
    ] {
        let plain = check(with(Files::new(), name, body.clone()), name, &[]);
        let g = check(with(Files::new(), name, bom(&body)), name, &[]);
        assert_eq!(g, plain, "{name}");
    }
    // gzip with a BOM inside
    let g = check(
        with(Files::new(), "img.csv.gz", gzip(&bom(&image_csv()))),
        "img.csv.gz",
        &[],
    );
    assert!(g.contains("label"), "{g}");
}

// ---------------------------------------------------------------------------------------------
// Byte mutations of the readers `tests/data_fuzz.rs` does not cover: no input panics.

#[derive(Clone, Debug)]
enum Mutation {
    Truncate(f64),
    Flip(Vec<(f64, u8)>),
    Insert(f64, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0.0..1.0f64).prop_map(Mutation::Truncate),
        prop::collection::vec((0.0..1.0f64, any::<u8>()), 1..6).prop_map(Mutation::Flip),
        (0.0..1.0f64, prop::collection::vec(any::<u8>(), 1..12))
            .prop_map(|(p, b)| Mutation::Insert(p, b)),
    ]
}

fn mutate(bytes: &[u8], m: &Mutation) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let at = |f: f64, n: usize| ((f * n as f64) as usize).min(n.saturating_sub(1));
    match m {
        Mutation::Truncate(f) => b.truncate(at(*f, b.len())),
        Mutation::Flip(v) => {
            for &(f, x) in v {
                if !b.is_empty() {
                    let k = at(f, b.len());
                    b[k] ^= x.max(1);
                }
            }
        }
        Mutation::Insert(f, ins) => {
            let k = at(*f, b.len() + 1);
            b.splice(k..k, ins.iter().copied());
        }
    }
    b
}

/// Write `bytes` to a fresh file called `name` and hand its path to `read`.
fn on_file(name: &str, bytes: &[u8], read: impl FnOnce(&Path)) {
    let d = case_dir("mut");
    let p = d.join(name);
    std::fs::write(&p, bytes).unwrap();
    read(&p);
    let _ = std::fs::remove_dir_all(&d);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_label_and_truth_tables_never_panic(m in mutation()) {
        let b = mutate(b"gene_id,label\nENSG1,a\nENSG2,b\nENSG4,a\n", &m);
        on_file("truth.csv", &b, |p| { let _ = darlc::eval::input::read_two_column_csv(p); });
    }

    #[test]
    fn mutated_csv_embeddings_never_panic(m in mutation()) {
        let b = mutate(b"id,e0,e1\na,0.1,1\nb,2,0.5\nc,0.3,1.2\n", &m);
        on_file("emb.csv", &b, |p| { let _ = darlc::eval::input::load_csv_matrix(p); });
    }

    #[test]
    fn mutated_safetensors_embeddings_never_panic(m in mutation()) {
        let mut tf = TensorFile::new();
        tf.insert("z", TensorData::F32(ndarray::Array2::<f32>::ones((3, 2)).into_dyn()));
        tf.metadata.insert("ids".into(), r#"["a","b","c"]"#.into());
        let b = mutate(&tf.to_bytes().unwrap(), &m);
        on_file("e.safetensors", &b, |p| {
            let _ = darlc::eval::input::load_embeddings(p, None, None);
            let _ = darlc::eval::input::load_images(p);
        });
    }

    #[test]
    fn mutated_genes_csv_never_panics(m in mutation()) {
        let b = mutate(b"index,gene_id,symbol\n0,E1,A\n1,E2,B\n", &m);
        on_file("genes.csv", &b, |p| { let _ = darlc::eval::input::read_genes_csv(p); });
    }

    #[test]
    fn mutated_configs_never_panic(m in mutation()) {
        let b = mutate(br#"{"seed": 3, "module1": {"tau": 0.5, "batch": 8}, "module2": {"clusters": {"rule": "fixed", "k": 4}, "em_tol": 1e-6}}"#, &m);
        if let Ok(c) = serde_json::from_slice::<darlc::config::Config>(&b) {
            let _ = c.check();
        }
    }

    #[test]
    fn mutated_reference_manifests_never_panic(m in mutation()) {
        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden");
        let text = std::fs::read(golden.join("manifest.json")).unwrap();
        // The first 4 kB: the header and the first cases.
        let b = mutate(&text[..text.len().min(4096)], &m);
        let d = case_dir("manifest");
        std::fs::write(d.join("manifest.json"), &b).unwrap();
        let _ = darlc::fixtures::golden::Manifest::load(&d);
        let _ = std::fs::remove_dir_all(&d);
    }
}

/// The zero-dimension tensor of issue 24 is an error from every entry point, not a panic.
#[test]
fn a_zero_dimension_beside_huge_ones_is_an_error() {
    let b = huge_zero_tensor();
    let e = TensorFile::from_bytes(&b, Path::new("z.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("z.safetensors"), "{e}");
}

/// Issue 24 item 5: the default input is compiled into the binary. A copy of the binary run from
/// another folder reads it, names it `embedded:mob_st_rep11` (never a temporary or build path),
/// and leaves nothing in the temporary folder.
#[test]
fn the_embedded_default_is_in_the_binary() {
    let d = case_dir("embedded");
    let bin = d.join("darlc-copy");
    std::fs::copy(env!("CARGO_BIN_EXE_darlc"), &bin).unwrap();
    let tmp = d.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let out = Command::new(&bin)
        .args(["images", "--out", "out"])
        .current_dir(&d)
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("out/report.json")).unwrap()).unwrap();
    assert_eq!(report["input"], "embedded:mob_st_rep11");
    let files = report["files"].as_array().unwrap();
    assert!(
        files
            .iter()
            .all(|f| f.as_str().unwrap().starts_with("embedded:mob_st_rep11/")),
        "{files:?}"
    );
    // The same images as the section in the source tree.
    let tree = darlc::data::load(
        &darlc::data::default_input(),
        &darlc::data::LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(report["images"], tree.images.dim().0);
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "the unpacked section was not removed"
    );
    let _ = std::fs::remove_dir_all(&d);
}
