//! `darlc simulate`: deterministic on any thread count, readable as a Space Ranger folder, with
//! truth labels attached and the patterns actually present in the images.

mod data_common;

use darlc::data::simulate::{PATTERNS, SimConfig, simulate};
use darlc::data::{Lattice, LoadOptions, load};
use data_common::temp_dir;
use std::collections::BTreeMap;
use std::path::Path;

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in ["", "outs/filtered_feature_bc_matrix", "outs/spatial"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                out.insert(
                    format!("{sub}/{}", e.file_name().to_string_lossy()),
                    std::fs::read(e.path()).unwrap(),
                );
            }
        }
    }
    out
}

fn pool(n: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap()
}

#[test]
fn simulation_is_deterministic_and_loads_with_truth() {
    let cfg = SimConfig {
        n_genes: 400,
        seed: 11,
        ..SimConfig::default()
    };
    let (a, b) = (temp_dir("sim-a"), temp_dir("sim-b"));
    let sa = pool(1).install(|| simulate(&a, &cfg)).unwrap();
    pool(2).install(|| simulate(&b, &cfg)).unwrap();
    let (fa, fb) = (files(&a), files(&b));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    assert!(fa.len() >= 6);
    for (k, v) in &fa {
        assert!(v == &fb[k], "{k} differs between 1 and 2 threads");
    }
    let other = temp_dir("sim-c");
    simulate(
        &other,
        &SimConfig {
            seed: 12,
            ..cfg.clone()
        },
    )
    .unwrap();
    assert_ne!(files(&other)["/truth.csv"], fa["/truth.csv"]);

    let set1 = pool(1)
        .install(|| load(&a, &LoadOptions::default()))
        .unwrap();
    let set2 = pool(2)
        .install(|| load(&a, &LoadOptions::default()))
        .unwrap();
    assert_eq!(set1.images, set2.images);
    assert_eq!(
        set1.section.as_ref().unwrap().expr,
        set2.section.as_ref().unwrap().expr
    );

    let set = set1;
    assert_eq!(set.report.kind, "visium");
    let sec = set.section.as_ref().unwrap();
    assert_eq!(sec.lattice, Lattice::Hex);
    assert_eq!(sec.spot_ids.len(), sa.spots_in_tissue);
    assert_eq!(set.report.genes.as_ref().unwrap().dropped_mt, cfg.mt_genes);
    let labels = set.labels.as_ref().expect("truth.csv labels");
    assert_eq!(labels.len(), set.ids.len());
    let names: Vec<&str> = PATTERNS.iter().map(|p| p.0).collect();
    assert!(
        labels.iter().all(|l| names.contains(&l.as_str())),
        "{labels:?}"
    );
    // The same folder read through outs/ finds truth.csv one level up.
    let via_outs = load(&a.join("outs"), &LoadOptions::default()).unwrap();
    assert_eq!(via_outs.labels, set.labels);

    // Patterns are visible: compare mean expression of all genes of a pattern between two
    // regions of the tissue (pixel rows / columns relative to the tissue box).
    let c = set.report.canvas.clone().unwrap();
    let mean_where = |pat: &str, pick: &dyn Fn(f64, f64) -> bool| -> f64 {
        let (mut s, mut n) = (0.0, 0usize);
        for (k, l) in labels.iter().enumerate() {
            if l != pat {
                continue;
            }
            for (spot, &(r, col)) in sec.pixel.iter().enumerate() {
                let fy = (r - c.oy) as f64 / c.h0 as f64;
                let fx = (col - c.ox) as f64 / c.w0 as f64;
                if pick(fx, fy) {
                    s += sec.expr[[spot, k]] as f64;
                    n += 1;
                }
            }
        }
        s / n.max(1) as f64
    };
    let top = |_: f64, y: f64| y < 0.15;
    let bottom = |_: f64, y: f64| y > 0.5;
    let left = |x: f64, _: f64| x < 0.3;
    let right = |x: f64, _: f64| x > 0.7;
    assert!(mean_where("layer1", &top) > 3.0 * mean_where("layer1", &bottom));
    assert!(mean_where("gradient_x+", &right) > 2.0 * mean_where("gradient_x+", &left));
    assert!(mean_where("gradient_x-", &left) > 2.0 * mean_where("gradient_x-", &right));
    let (nl, nr) = (mean_where("noise", &left), mean_where("noise", &right));
    assert!(nl / nr > 0.8 && nl / nr < 1.25, "noise {nl} vs {nr}");
}

#[test]
fn simulate_cli_writes_the_layout() {
    let d = temp_dir("sim-cli");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_darlc"))
        .args(["simulate", "--genes", "50", "--seed", "3", "--out"])
        .arg(&d)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "outs/filtered_feature_bc_matrix/matrix.mtx.gz",
        "outs/filtered_feature_bc_matrix/features.tsv.gz",
        "outs/filtered_feature_bc_matrix/barcodes.tsv.gz",
        "outs/spatial/tissue_positions.csv",
        "truth.csv",
        "simulate.json",
    ] {
        assert!(d.join(f).is_file(), "{f}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_darlc"))
        .args(["images", "--input"])
        .arg(&d)
        .arg("--out")
        .arg(d.join("img"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("13 MT-") && stdout.contains("canvas:"),
        "{stdout}"
    );
    let tf = darlc::io::TensorFile::load(&d.join("img").join("images.safetensors")).unwrap();
    let imgs = tf.get("images", Path::new("images.safetensors")).unwrap();
    assert_eq!(imgs.shape()[1..], [1, 75, 75]);
    assert_eq!(tf.get("mask", Path::new("m")).unwrap().shape(), [75, 75]);
    let genes = std::fs::read_to_string(d.join("img").join("genes.csv")).unwrap();
    assert!(genes.starts_with("index,gene_id,symbol,label\n0,SIMG"));
    assert_eq!(genes.lines().count(), imgs.shape()[0] + 1);
    let spots = std::fs::read_to_string(d.join("img").join("spots.csv")).unwrap();
    assert!(spots.starts_with("spot_id,pixel_row,pixel_col,coord_0,coord_1\n"));
}
