//! Issue 3 item 6: random byte corruption of each input file never panics (the loader returns
//! `Ok` or an error). Small inputs and few cases, so the whole file runs in about a second.

mod data_common;

use darlc::data::{CoordMode, LoadOptions, load};
use darlc::io::{TensorData, TensorFile};
use data_common::*;
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Clone, Debug)]
enum Corruption {
    Truncate(f64),
    Flip(Vec<(f64, u8)>),
    Insert(f64, Vec<u8>),
}

fn corruption() -> impl Strategy<Value = Corruption> {
    prop_oneof![
        (0.0..1.0f64).prop_map(Corruption::Truncate),
        prop::collection::vec((0.0..1.0f64, any::<u8>()), 1..6).prop_map(Corruption::Flip),
        (0.0..1.0f64, prop::collection::vec(any::<u8>(), 1..12))
            .prop_map(|(p, b)| Corruption::Insert(p, b)),
    ]
}

fn apply(bytes: &mut Vec<u8>, c: &Corruption) {
    let at = |f: f64, n: usize| ((f * n as f64) as usize).min(n.saturating_sub(1));
    match c {
        Corruption::Truncate(f) => bytes.truncate(at(*f, bytes.len())),
        Corruption::Flip(v) => {
            for &(f, b) in v {
                if !bytes.is_empty() {
                    let k = at(f, bytes.len());
                    bytes[k] ^= b.max(1);
                }
            }
        }
        Corruption::Insert(f, ins) => {
            let k = at(*f, bytes.len() + 1);
            bytes.splice(k..k, ins.iter().copied());
        }
    }
}

static CASE: AtomicUsize = AtomicUsize::new(0);

/// Write `files` into a fresh folder, corrupt `target`, and load `input` (relative to the
/// folder; empty = the folder). Any panic fails the property.
fn run(files: &[(String, Vec<u8>)], target: &str, input: &str, c: &Corruption, opts: &LoadOptions) {
    let d = temp_dir(&format!("fuzz{}", CASE.fetch_add(1, Ordering::Relaxed)));
    for (name, bytes) in files {
        let mut b = bytes.clone();
        if name == target {
            apply(&mut b, c);
        }
        std::fs::write(d.join(name), b).unwrap();
    }
    let p: PathBuf = if input.is_empty() {
        d.clone()
    } else {
        d.join(input)
    };
    let _ = load(&p, opts); // Ok or Err, both fine
    let _ = std::fs::remove_dir_all(&d);
}

fn tiny_files(gz: bool) -> Vec<(String, Vec<u8>)> {
    let t = tiny();
    let mut v = vec![];
    for (name, text) in [
        ("matrix.mtx", &t.matrix),
        ("features.tsv", &t.features),
        ("barcodes.tsv", &t.barcodes),
    ] {
        if gz {
            v.push((format!("{name}.gz"), gzip(text.as_bytes())));
        } else {
            v.push((name.to_string(), text.as_bytes().to_vec()));
        }
    }
    v.push(("tissue_positions.csv".into(), t.positions.into_bytes()));
    v
}

fn legacy_files(cells: bool) -> Vec<(String, Vec<u8>)> {
    let t = tiny();
    let mut v: Vec<(String, Vec<u8>)> = tiny_files(false)
        .into_iter()
        .filter(|f| f.0 != "tissue_positions.csv")
        .collect();
    let (table, head) = if cells {
        ("cells.csv", "cell_id,x,y,region\n")
    } else {
        ("spots.csv", "spot,x,y,section\n")
    };
    let mut s = head.to_string();
    for (k, bc) in t.barcodes.lines().enumerate() {
        s += &format!("{bc},{}.1,{}.2,A\n", k % 4, k / 4);
    }
    v.push((table.into(), s.into_bytes()));
    v
}

fn small_opts() -> LoadOptions {
    LoadOptions {
        min_spots: 1,
        ..Default::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn corrupt_10x_plain_files_never_panic(k in 0usize..4, c in corruption()) {
        let files = tiny_files(false);
        run(&files, &files[k].0.clone(), "", &c, &small_opts());
    }

    #[test]
    fn corrupt_10x_gzip_files_never_panic(k in 0usize..4, c in corruption()) {
        let files = tiny_files(true);
        run(&files, &files[k].0.clone(), "", &c, &small_opts());
    }

    #[test]
    fn corrupt_legacy_and_cell_tables_never_panic(k in 0usize..4, cells in any::<bool>(), bin in any::<bool>(), c in corruption()) {
        let files = legacy_files(cells);
        let opts = LoadOptions { coords: if bin { CoordMode::Bin } else { CoordMode::Auto }, ..small_opts() };
        run(&files, &files[k].0.clone(), "", &c, &opts);
    }

    #[test]
    fn corrupt_dense_msi_and_image_tables_never_panic(k in 0usize..3, c in corruption()) {
        let dense = ",G1,G2,G3\n1x1,1,2,0\n2x1,0,3,1\n1x2,4,0,2\n2x2,1,1,1\n".to_string();
        let msi = "x,y,100.5,200.5\n0,0,1,3\n1,0,0,0\n0,1,2,0\n1,1,4,4\n".to_string();
        let mut img = "label".to_string();
        for p in 0..16 { img += &format!(",p{p}"); }
        img += "\n";
        for r in 0..3 { img += &format!("{r},{}\n", (0..16).map(|v| ((v * r) % 5).to_string()).collect::<Vec<_>>().join(",")); }
        let files = vec![
            ("dense.csv".to_string(), dense.into_bytes()),
            ("msi.csv".to_string(), msi.into_bytes()),
            ("img.csv".to_string(), img.into_bytes()),
        ];
        let name = files[k].0.clone();
        let opts = LoadOptions { sparsify: Some(0.5), ..small_opts() };
        run(&files, &name, &name, &c, &opts);
        // The gzipped image table too.
        if k == 2 {
            let gz = vec![("img.csv.gz".to_string(), gzip(&files[2].1))];
            run(&gz, "img.csv.gz", "img.csv.gz", &c, &opts);
        }
    }

    #[test]
    fn corrupt_safetensors_never_panics(c in corruption()) {
        let mut tf = TensorFile::new();
        tf.insert("images", TensorData::F32(ndarray::Array4::<f32>::ones((2, 1, 3, 4)).into_dyn()));
        tf.insert_i64("labels", ndarray::arr1(&[1i64, 2]).into_dyn());
        let bytes = tf.to_bytes().unwrap();
        run(&[("s.safetensors".to_string(), bytes)], "s.safetensors", "s.safetensors", &c, &small_opts());
    }
}

#[test]
fn uncorrupted_fuzz_inputs_load() {
    // The inputs the properties corrupt are valid to begin with.
    let d = temp_dir("fuzz-base");
    for (files, input) in [
        (tiny_files(false), ""),
        (tiny_files(true), ""),
        (legacy_files(false), ""),
        (legacy_files(true), ""),
    ] {
        let sub = d.join(format!(
            "{}",
            files.len() + input.len() + files[0].0.len() + files[3].0.len()
        ));
        std::fs::create_dir_all(&sub).unwrap();
        for (n, b) in &files {
            std::fs::write(sub.join(n), b).unwrap();
        }
        load(Path::new(&sub), &small_opts()).unwrap();
    }
}
