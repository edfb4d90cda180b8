//! Issue 5 item 6 (quality): on digits 8×8 sparsified 90 %, k-means (k = 10) on the warm-up
//! representation `h` should beat k-means on the raw pixels in NMI, averaged over 3 seeds.
//! **Status: the bar is not met** (chosen setting: h 0.0316 ± 0.0015 vs raw 0.0397 ± 0.0030); the
//! test asserts the bar as stated and fails. Ignored (975 s on 2 shared cores with the GAT views,
//! about 7.5 min with `M1_SMOOTH=gks`); run with
//! `DARLC_SHARED=/work/shared cargo test --release --test module1_quality -- --ignored --nocapture`
//! (`DARLC_SHARED` defaults to `<crate>/../shared`).
//!
//! Chosen setting (the defaults), each from method/paper rather than from the metric:
//! * pixel values / 16 (`M1_SCALE=1`): method §2.3 puts natural images on [0, 1] (/255); the
//!   digits' grey range is 0..16.
//! * p = 2 (`M1_PATCH`): 16 tokens, n_keep = 16 − round(12.8) = 3 at the paper's ρ = 0.8 (§4.2).
//!   p = 4 leaves 1 visible token of 4 (fewer than the 5 for which §4.1 rejects p = 15), p = 1
//!   makes every token one pixel (90 % of them sparsified to 0) at 3.4× the cost.
//! * B = 32, 50 epochs (`M1_BATCH`, `M1_EPOCHS`): keeps the paper's 50 epochs and EMA 0.999 (time
//!   constant 1,000 steps) and matches the paper's step count (STL-10*: 13,000 / 256 · 50 ≈ 2,550;
//!   ST ≈ 3,500): 57 steps/epoch → 2,850 steps, EMA target keeps 0.999^2850 = 6 % of its random
//!   init. At the §4.5 CHOICE B = 256 the 1,797 digits give 8 steps/epoch → 400 steps, the target
//!   still holds 67 % of its init and NT-Xent stays at chance (L_CL 6.22 vs ln 511 = 6.24).
//! * positive views from the shared GAT on per-image 8-neighbour pixel graphs (`M1_SMOOTH=gat`,
//!   method §3.1, what `darlc embed` uses); `gks` is the §15 ablation.
//!
//! Measured (3 seeds, mean ± sample sd; raw pixels 0.0397 ± 0.0030 in every row; chance NMI for
//! 10 random clusters of 1,797 items ≈ 0.01; s/seed on 2 shared cores, two runs at a time):
//!
//! | p | B | epochs | steps | view | scale | NMI h | NMI x̃ | s/seed |
//! |---|---|---|---|---|---|---|---|---|
//! | 4 | 256 | 50 | 400 | GKS | none | 0.0206 ± 0.0027 | 0.0425 | 45 |
//! | 4 | 256 | 50 | 400 | GKS | /16 | 0.0197 ± 0.0048 | 0.0425 | 93 |
//! | 2 | 256 | 50 | 400 | GKS | /16 | 0.0210 ± 0.0031 | 0.0425 | 218 |
//! | 2 | 32 | 50 | 2,850 | GKS | none | 0.0239 ± 0.0048 | 0.0425 | 141 |
//! | 2 | 32 | 50 | 2,850 | GKS | /16 | 0.0346 ± 0.0035 | 0.0425 | 151 |
//! | 2 | 32 | 50 | 2,850 | GKS, `M1_VIEW=max` | /16 | 0.0366 ± 0.0050 | 0.0456 | 54 |
//! | 2 | 32 | 50 | 2,850 | GAT, `M1_VIEW=max` | /16 | 0.0291 ± 0.0031 | 0.0399 | 151 |
//! | **2** | **32** | **50** | **2,850** | **GAT** | **/16** | **0.0316 ± 0.0015** | 0.0377 | 261–325 |
//! | 2 | 32 | 0 (init) | 0 | — | /16 | 0.0127 ± 0.0012 | — | 2 |
//! | 2 | 32 | 125 | 7,125 | GAT | /16 | 0.0332 ± 0.0070 | 0.0377 | 540 |
//!
//! Seed 0 only (raw 0.0414): p 4 B 256 e 50 GAT 0.0173; p 4 B 64 e 50 GKS 0.0321; p 4 B 64 e 125
//! GKS 0.0319; p 4 B 256 e 500 GKS 0.0297; p 2 B 64 e 125 GKS 0.0375; p 2 B 256 e 320 GKS 0.0291
//! (L_CL 5.90, still near chance); p 1 B 64 e 50 GKS 0.0266 (439 s, L_CL at chance).
//!
//! Other sparsity (`M1_SPARSIFY`, GKS, p 2, B 32, 50 epochs, /16, 3 seeds, 2026-12-06): at 0.5 raw
//! 0.2480 ± 0.0073, x̃ 0.1678, h 0.1364 ± 0.0318; at 0 (no sparsification) raw 0.7355 ± 0.0175,
//! x̃ 0.6297, h 0.5214 ± 0.0105. The warm-up h loses to the raw pixels at every sparsity measured.
//! Nor does preprocessing h help (seed 0, `darlc embed … --patch 2 --batch 32 --epochs 50
//! --smoothing gks --view-scale max`, scikit-learn k-means, mean of 5 inits, 2026-12-06): h 0.0347,
//! L2-normalised 0.0357, centred then L2-normalised 0.0373, standardised 0.0365, PCA-10 whitened
//! 0.0309, against raw 0.0414 on the same draw (seed 0 above).
//!
//! Why h loses: the images keep 6 of 64 pixels, about 3 of them non-zero. L_MIM settles at 0.0203,
//! the variance of a pixel around the mean image (0.0206): which pixels survived is random, so the
//! masked ones are unpredictable and MIM learns nothing image-specific, while UWL gives it weight
//! 1/(2σ₁²) ≈ 4.7 (σ₁ → 0.325) against 0.19 for NT-Xent. The positive pair (x, x̃) holds the same
//! ~3 pixels, so the contrastive branch is instance discrimination without any class invariance;
//! x̃ alone scores 0.0425 (GKS) / 0.0377 (GAT). With the views scaled by their maximum the
//! contrastive branch does learn (GAT: L_CL 2.97–3.08 after 50 epochs against ln 63 = 4.14 at
//! chance), yet `h` scores lower (0.0291, 2026-12-06): what it learns to tell apart is the
//! instance, i.e. which few pixels survived, and nothing in the pair pulls two images of the same
//! digit together. For scale: logistic regression on the sparse pixels reaches 22 % accuracy
//! (sklearn, 5-fold, our own sparsification draw), so little class information is left to find.
//!
//! The contrastive branch barely leaves chance (measured 2026-12-04 with `darlc embed … --patch 2
//! --batch 32 --smoothing gks`, seed 0): at init `h` is nearly one common vector (mean pairwise
//! cosine 0.999; the image-specific part `‖H − H̄‖_F / ‖H‖_F` is 0.032 over the 1,797 images: the
//! tokens of the ~13 empty patches per image are the same in every image), so all `c` point the
//! same way and
//! `L_CL` starts at ln 63 = 4.143. After 20 epochs (1,140 steps) it is 4.126, after 50 epochs
//! 4.12; `h` spreads (cosine 0.43) but k-means on it scores NMI 0.035. For comparison, with the
//! EMA momentum (the method's fixed 0.999) set to 0.99 `L_CL` falls to 3.55 in 20 epochs, yet NMI is
//! 0.033 (`--image-scale max`, numpy k-means, 5 restarts); with momentum 0 (target = online)
//! `h` stays collapsed (cosine 0.9997) and `L_CL` at 4.138.
//!
//! Environment overrides (for the table): `M1_PATCH`, `M1_EPOCHS`, `M1_BATCH`, `M1_SMOOTH`
//! (`gat` | `gks`), `M1_SCALE` (1 = /16, 0 = keep 0..16), `M1_VIEW` (`max`: the positive views
//! each divided by their maximum, `smoothing.view_scale`), `M1_SPARSIFY` (0.9, the bar's
//! setting; other values are diagnostics), `M1_SEEDS` (3).
//! The same sparsified images (method §2.3, stream `data.sparsify`, seed 0) feed both sides; the
//! seed s = 0, 1, 2 drives the positive-view GAT, the model init, shuffles, masks and the
//! k-means++ picks (stream `kmeans++`, one k-means++ + Lloyd run per side, the same
//! `linalg::kmeans` for both). Prints per seed the NMI of k-means on the raw pixels, on the
//! smoothed views x̃ (diagnostic) and on `h`, with the last epoch's losses and σ, then the means ±
//! sample sd over the seeds.

use darlc::augment::gat::GatConfig;
use darlc::augment::smooth::{Method, smooth_image_set};
use darlc::eval::metrics::nmi;
use darlc::linalg::kmeans::kmeans;
use darlc::module1::model::{Config, ModuleI};
use darlc::module1::warmup::{WarmupOptions, warmup};
use darlc::rng;
use ndarray::{Array2, Array4};
use std::path::PathBuf;
use std::time::Instant;

/// `$DARLC_SHARED/data/digits_8x8/digits.csv.gz` (default `<crate>/../shared`).
fn digits_path() -> PathBuf {
    std::env::var_os("DARLC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
        .join("data/digits_8x8/digits.csv.gz")
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn flat(x: &Array4<f32>) -> Array2<f64> {
    let n = x.dim().0;
    let d = x.len() / n;
    x.to_shape((n, d)).unwrap().mapv(|v| v as f64)
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, var.sqrt())
}

#[test]
#[ignore]
fn module1_digits_h_beats_raw_pixels_in_nmi() {
    let patch: usize = env_or("M1_PATCH", 2);
    let epochs: usize = env_or("M1_EPOCHS", 50);
    let batch: usize = env_or("M1_BATCH", 32);
    let scale: u32 = env_or("M1_SCALE", 1);
    let seeds: u64 = env_or("M1_SEEDS", 3);
    // `M1_SPARSIFY`: the share of pixels set to 0 (the bar is at 0.9; other values diagnose).
    let sparsify: f64 = env_or("M1_SPARSIFY", 0.9);
    // `M1_VIEW=max`: the positive views each divided by their maximum (`smoothing.view_scale`).
    let view_scale = match std::env::var("M1_VIEW").as_deref() {
        Ok("max") => darlc::config::ImageScale::Max,
        _ => darlc::config::ImageScale::None,
    };
    let method = match std::env::var("M1_SMOOTH").as_deref() {
        Ok("gks") => Method::Gks,
        _ => Method::Gat,
    };
    println!(
        "setting: sparsify {sparsify}, p {patch}, epochs {epochs}, B {batch}, smoothing {method:?}, \
         scale {}, views {:?}",
        if scale == 1 { "/16" } else { "none" },
        view_scale
    );
    // method §2.3 sparsification through the data reader (stream `data.sparsify`, seed 0).
    let opts = darlc::data::LoadOptions {
        patch,
        image_shape: Some((8, 8, 1)),
        sparsify: Some(sparsify),
        seed: 0,
        ..Default::default()
    };
    let mut set = darlc::data::load(&digits_path(), &opts).unwrap();
    if scale == 1 {
        set.images.mapv_inplace(|v| v / 16.0);
    }
    let y = darlc::eval::metrics::dense_labels(set.labels.as_ref().unwrap()).0;
    let raw = flat(&set.images);
    let (mut r_raw, mut r_s, mut r_h, mut secs) = (vec![], vec![], vec![], vec![]);
    for seed in 0..seeds {
        let start = Instant::now();
        let kr = kmeans(raw.view(), 10, &mut rng::stream(seed, "kmeans++")).unwrap();
        let a = nmi(&y, &kr.labels).unwrap();
        let gat = GatConfig {
            seed,
            ..GatConfig::default()
        };
        let mut xs = smooth_image_set(&set, method, &gat).unwrap().images;
        darlc::data::scale_images(&mut xs, set.mask.view(), view_scale);
        let ks = kmeans(flat(&xs).view(), 10, &mut rng::stream(seed, "kmeans++")).unwrap();
        let s = nmi(&y, &ks.labels).unwrap();
        let mut cfg = Config::paper(1, 8, 8);
        cfg.patch = patch;
        let mut m = ModuleI::<f32>::new(cfg, seed).unwrap();
        let wopts = WarmupOptions {
            seed,
            epochs,
            batch,
            ..WarmupOptions::default()
        };
        let logs = warmup(&mut m, set.images.view(), xs.view(), &wopts, |_| Ok(())).unwrap();
        let h = m.embed(set.images.view(), 256).mapv(|v| v as f64);
        let kh = kmeans(h.view(), 10, &mut rng::stream(seed, "kmeans++")).unwrap();
        let b = nmi(&y, &kh.labels).unwrap();
        let t = start.elapsed().as_secs_f64();
        let last = logs.last().map_or(String::from("no warm-up"), |l| {
            format!(
                "last epoch L_MIM {:.4} L_CL {:.4} σ1 {:.3} σ2 {:.3}",
                l.l_mim, l.l_cl, l.sigma1, l.sigma2
            )
        });
        println!("seed {seed}: NMI raw {a:.4}, x̃ {s:.4}, h {b:.4}  ({t:.0} s; {last})");
        r_raw.push(a);
        r_s.push(s);
        r_h.push(b);
        secs.push(t);
    }
    let ((mr, sr), (ms, ss), (mh, sh)) = (mean_sd(&r_raw), mean_sd(&r_s), mean_sd(&r_h));
    println!(
        "mean ± sd over {seeds} seeds: NMI raw {mr:.4} ± {sr:.4}, x̃ {ms:.4} ± {ss:.4}, \
         h {mh:.4} ± {sh:.4}; {:.0} s per seed",
        secs.iter().sum::<f64>() / secs.len() as f64
    );
    assert!(mh > mr, "h {mh} does not beat raw {mr}");
}
