//! Issue 4 item 6: does the GAT denoise? `#[ignore]`d (they train real models: ~1–3 min each in
//! release on 2 cores). Run with
//!
//! ```text
//! DARLC_SHARED=/work/shared DARLC_GAT_EPOCHS=300 \
//!   cargo test --release --test augment_gat_quality -- --ignored --nocapture
//! ```
//!
//! * Simulation (`darlc::data::simulate`, 2,000 genes): Pearson correlation over tissue spots of
//!   each spatially patterned gene with its noise-free template `f_t(u, v)` (exported by
//!   `data::simulate::template`), raw vs GAT-smoothed: smoothing must raise it for most genes.
//! * Real sections (MOB replicate 11 embedded, DLPFC 151673 DESpace subset): Moran's I
//!   (`eval::moran`, binary weights on the method §3.2 graph without self-loops) raw vs smoothed, for
//!   the GAT and for GKS.

use darlc::augment::gat::GatConfig;
use darlc::augment::smooth::{Method, section_graph, smooth_image_set};
use darlc::data::simulate::{PATTERNS, SimConfig, simulate, template};
use darlc::data::{LoadOptions, load};
use darlc::eval::quality::section_smoothing_gain;
use std::path::PathBuf;

fn epochs() -> usize {
    std::env::var("DARLC_GAT_EPOCHS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

fn shared() -> PathBuf {
    std::env::var_os("DARLC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa == 0.0 || sbb == 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

#[test]
#[ignore]
fn gat_smoothing_recovers_simulated_templates() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("darlc-gat-sim-{}", std::process::id()));
    let cfg = SimConfig {
        n_genes: 2000,
        ..SimConfig::default()
    };
    simulate(&dir, &cfg).unwrap();
    let set = load(&dir, &LoadOptions::default()).unwrap();
    let sec = set.section.as_ref().unwrap();
    // gene id → pattern from truth.csv (gene_id,pattern,symbol,family,mean).
    let truth = std::fs::read_to_string(dir.join("truth.csv")).unwrap();
    let pattern: std::collections::BTreeMap<String, String> = truth
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[1].to_string())
        })
        .collect();
    let gcfg = GatConfig {
        epochs: epochs(),
        seed: 0,
        ..GatConfig::default()
    };
    let sm = smooth_image_set(&set, Method::Gat, &gcfg).unwrap();
    let smf = sm.features.as_ref().unwrap();
    let gks = smooth_image_set(&set, Method::Gks, &gcfg).unwrap();
    let gksf = gks.features.as_ref().unwrap();
    // Normalised tissue coordinates of simulate.rs: u = (px − 31.75)/30, v = (py − 33)/31.2 on
    // the physical Visium coordinates (array_col/2, array_row·√3/2), which are the section's
    // graph coordinates for a hex lattice.
    let uv: Vec<(f64, f64)> = sec
        .coords
        .iter()
        .map(|q| ((q[0] - 31.75) / 30.0, (q[1] - 33.0) / 31.2))
        .collect();
    let (mut raw_r, mut gat_r, mut gks_r) = (vec![], vec![], vec![]);
    let mut raised = 0;
    for (gi, id) in set.ids.iter().enumerate() {
        let Some(p) = pattern.get(id) else { continue };
        let Some(t) = PATTERNS.iter().position(|(n, _)| n == p) else {
            continue;
        };
        if p == "noise" {
            continue;
        }
        let f: Vec<f64> = uv.iter().map(|&(u, v)| template(t, u, v)).collect();
        let col = |m: &ndarray::Array2<f32>| -> Vec<f64> {
            m.column(gi).iter().map(|&x| x as f64).collect()
        };
        let (r0, r1, r2) = (
            pearson(&col(&sec.expr), &f),
            pearson(&col(smf), &f),
            pearson(&col(gksf), &f),
        );
        raised += (r1 > r0) as usize;
        raw_r.push(r0);
        gat_r.push(r1);
        gks_r.push(r2);
    }
    let n = raw_r.len();
    let frac = raised as f64 / n as f64;
    let gks_raised = raw_r.iter().zip(&gks_r).filter(|(a, b)| b > a).count() as f64 / n as f64;
    println!(
        "simulation (2000 genes, {} spots, {} patterned genes kept, GAT {} epochs): corr with template \
         median raw {:.4} → GAT {:.4} (raised for {:.1} %), GKS {:.4} (raised for {:.1} %)",
        sec.expr.nrows(),
        n,
        epochs(),
        median(raw_r.clone()),
        median(gat_r.clone()),
        100.0 * frac,
        median(gks_r),
        100.0 * gks_raised
    );
    std::fs::remove_dir_all(&dir).ok();
    assert!(n > 100);
    assert!(
        frac > 0.5,
        "GAT raised template correlation for only {frac}"
    );
    assert!(median(gat_r) > median(raw_r));
}

fn moran_report(input: PathBuf) {
    let set = load(&input, &LoadOptions::default()).unwrap();
    let sec = set.section.as_ref().unwrap();
    let g = section_graph(sec).unwrap();
    let cfg = GatConfig {
        epochs: epochs(),
        ..GatConfig::default()
    };
    for method in [Method::Gat, Method::Gks] {
        let sm = smooth_image_set(&set, method, &cfg).unwrap();
        let q = section_smoothing_gain(&set, &sm).unwrap().unwrap();
        println!(
            "{} ({} spots, {} edges, {} genes) {:?}{}: Moran's I median raw {:.4} → smoothed {:.4}, \
             raised for {:.1} % of {} genes",
            input.display(),
            g.n,
            g.num_edges(),
            sec.expr.ncols(),
            method,
            if method == Method::Gat {
                format!(" ({} epochs)", cfg.epochs)
            } else {
                String::new()
            },
            q.median_raw,
            q.median_smoothed,
            100.0 * q.fraction_raised,
            q.n_compared
        );
        assert!(q.fraction_raised > 0.5);
        assert!(q.median_smoothed > q.median_raw);
    }
}

#[test]
#[ignore]
fn gat_smoothing_raises_morans_i_on_mob() {
    moran_report(darlc::data::default_input());
}

#[test]
#[ignore]
fn gat_smoothing_raises_morans_i_on_dlpfc() {
    moran_report(shared().join("data/dlpfc_151673_despace500"));
}
