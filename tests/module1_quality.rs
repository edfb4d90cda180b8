//! Issue 5 item 6 (quality): on digits 8×8 sparsified 90 %, k-means (k = 10) on the warm-up
//! representation `h` beats k-means on the raw pixels in NMI, averaged over 3 seeds.
//! Ignored by default (about a minute on 2 cores); run with
//! `cargo test --release --test module1_quality -- --ignored --nocapture`.
//!
//! Setup: p = 4 (8×8 → 2×2 = 4 tokens, n_keep = 4 − round(3.2) = 1), D 64, 4 blocks, 4 heads,
//! decoder 128-256-512-1024-64, B 256, 50 epochs, GKS smoothing on the pixel grid; the same
//! sparsified images (stream "sparsify", seed 0) for both sides; seeds 0, 1, 2 drive the model
//! init, shuffles, masks and the k-means++ picks.

use darlc::augment::gks::gks_smooth_images;
use darlc::eval::metrics::nmi;
use darlc::module1::model::{Config, ModuleI};
use darlc::module1::warmup::{WarmupOptions, warmup};
use darlc::module2::kmeans::kmeans;
use darlc::rng;
use ndarray::Array2;
use std::path::PathBuf;

/// `$DARLC_SHARED/data/digits_8x8/digits.csv.gz` (default `<crate>/../shared`).
fn digits_path() -> PathBuf {
    std::env::var_os("DARLC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
        .join("data/digits_8x8/digits.csv.gz")
}

#[test]
#[ignore]
fn module1_digits_h_beats_raw_pixels_in_nmi() {
    // Patch side from M1_PATCH (default 4; 2 gives 16 tokens).
    let patch: usize = std::env::var("M1_PATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    // SPEC §2.3 sparsification through the data reader (stream `data.sparsify`, seed 0).
    let opts = darlc::data::LoadOptions {
        patch,
        image_shape: Some((8, 8, 1)),
        sparsify: Some(0.9),
        seed: 0,
        ..Default::default()
    };
    let set = darlc::data::load(&digits_path(), &opts).unwrap();
    let y = darlc::eval::metrics::dense_labels(set.labels.as_ref().unwrap()).0;
    let x = set.images;
    let xs = gks_smooth_images(x.view()).unwrap();
    let n = x.dim().0;
    let raw: Array2<f64> = x.to_shape((n, 64)).unwrap().mapv(|v| v as f64);
    let (mut nmi_raw, mut nmi_h) = (0.0, 0.0);
    for seed in 0..3u64 {
        let kr = kmeans(raw.view(), 10, &mut rng::stream(seed, "kmeans++")).unwrap();
        let a = nmi(&y, &kr.labels).unwrap();
        let mut cfg = Config::paper(1, 8, 8);
        cfg.patch = patch;
        let mut m = ModuleI::<f32>::new(cfg, seed).unwrap();
        let opts = WarmupOptions {
            seed,
            ..WarmupOptions::default()
        };
        warmup(&mut m, x.view(), xs.view(), &opts).unwrap();
        let h = m.embed(x.view(), 256).mapv(|v| v as f64);
        let kh = kmeans(h.view(), 10, &mut rng::stream(seed, "kmeans++")).unwrap();
        let b = nmi(&y, &kh.labels).unwrap();
        println!("seed {seed}: NMI raw pixels {a:.4}, NMI h {b:.4}");
        nmi_raw += a / 3.0;
        nmi_h += b / 3.0;
    }
    println!("mean over 3 seeds: NMI raw {nmi_raw:.4}, NMI h {nmi_h:.4}");
    assert!(nmi_h > nmi_raw, "h {nmi_h} does not beat raw {nmi_raw}");
}
