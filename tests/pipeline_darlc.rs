//! `darlc run --method darlc` (the default) end to end in the tiny preset (method §18 sizes) on a
//! small simulated section: every output, finite values, identical bytes on 1 and 2 threads, and
//! the method §15 ablation switches each changing what they should.

use darlc::io::{TensorData, TensorFile};
use std::path::{Path, PathBuf};

mod pipeline_common;

use pipeline_common::darlc;

fn tmp(name: &str) -> PathBuf {
    pipeline_common::tmp("joint", name)
}

fn section() -> PathBuf {
    pipeline_common::section("joint")
}

/// `darlc run --preset tiny` with an optional JSON config override.
fn run_tiny(out: &Path, config: Option<&str>, extra: &[&str], threads: &str) {
    let mut c = darlc();
    c.env("RAYON_NUM_THREADS", threads)
        .arg("run")
        .arg("--input")
        .arg(section())
        .arg("--out")
        .arg(out)
        .args(["--preset", "tiny"])
        .args(extra);
    if let Some(json) = config {
        std::fs::create_dir_all(out).unwrap();
        let p = out.with_extension("json");
        std::fs::write(&p, json).unwrap();
        c.arg("--config").arg(&p);
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{config:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.join("run.json").exists());
}

fn floats(tf: &TensorFile, name: &str) -> Vec<f64> {
    match tf.tensors.get(name) {
        Some(TensorData::F32(a)) => a.iter().map(|&v| v as f64).collect(),
        Some(TensorData::F64(a)) => a.iter().copied().collect(),
        other => panic!("{name}: {other:?}"),
    }
}

fn joint_records(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["phase"] == "joint")
        .collect()
}

#[test]
fn darlc_tiny_run_is_complete_finite_and_thread_independent() {
    let (a, b) = (tmp("t1"), tmp("t2"));
    run_tiny(&a, None, &[], "1");
    run_tiny(&b, None, &[], "2");
    for f in [
        "clusters.csv",
        "embeddings.safetensors",
        "embeddings.csv",
        "smm.safetensors",
        "model.safetensors",
        "metrics.json",
        "clusters.png",
        "darlc.h5ad",
    ] {
        let (x, y) = (
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
        );
        assert!(x == y, "{f} differs between 1 and 2 threads");
    }
    let e = TensorFile::load(&a.join("embeddings.safetensors")).unwrap();
    // Tiny preset: D = 8, d = 3, K = 3; 287 genes survive the MT- filter.
    for (name, len) in [
        ("h", 287 * 8),
        ("z", 287 * 3),
        ("responsibilities", 287 * 3),
    ] {
        let v = floats(&e, name);
        assert_eq!(v.len(), len, "{name}");
        assert!(v.iter().all(|x| x.is_finite()), "{name} has NaN/inf");
    }
    let r = floats(&e, "responsibilities");
    // Stored as f32: each of the K = 3 entries carries at most 2⁻²⁴ relative rounding.
    for row in r.chunks(3) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() <= 3.0 * 2f64.powi(-24));
    }
    let m = TensorFile::load(&a.join("model.safetensors")).unwrap();
    for name in [
        "vit.W_pe",
        "target.vit.W_pe",
        "dec.lin5.W",
        "proj.lin1.W",
        "proj.bn.running_var",
        "smm.mu",
        "smm.eta",
        "smm.l_off",
    ] {
        assert!(
            m.tensors.contains_key(name),
            "model.safetensors lacks {name}"
        );
    }
    // log.jsonl: 2 warm-up epochs, the initial fit, 2 joint epochs, the final fit (tiny preset).
    let log = std::fs::read_to_string(a.join("log.jsonl")).unwrap();
    let phases: Vec<String> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["phase"].to_string())
        .collect();
    assert_eq!(
        phases,
        [
            "\"warm-up\"",
            "\"warm-up\"",
            "\"smm-init\"",
            "\"joint\"",
            "\"joint\"",
            "\"final\""
        ]
    );
    // λ_e = 0.5(1 − e/2): 0.5, 0.25.
    let j = joint_records(&a);
    assert_eq!(j[0]["lambda"], 0.5);
    assert_eq!(j[1]["lambda"], 0.25);
    // The per-step wall times are non-negative and account for no more than the epoch's time.
    for r in &j {
        let steps = ["embed", "em", "epoch_step", "target", "batch_steps"];
        let parts: Vec<f64> = steps
            .iter()
            .map(|s| r["timing"][s].as_f64().unwrap())
            .collect();
        assert!(parts.iter().all(|&p| p >= 0.0), "{r}");
        assert!(
            parts.iter().sum::<f64>() <= r["seconds"].as_f64().unwrap(),
            "{r}"
        );
    }
    // The simulated section carries its patterns as labels, so every fit logs its NMI against
    // them and the number of clusters it uses (1 ≤ used ≤ K = 10); the final fit's NMI is the
    // one in metrics.json.
    let recs: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for r in recs.iter().filter(|r| r["phase"] != "warm-up") {
        let used = r["clusters_used"].as_u64().unwrap();
        assert!((1..=10).contains(&used), "{r}");
        let nmi = r["nmi_truth"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&nmi), "{r}");
    }
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("metrics.json")).unwrap()).unwrap();
    let last = recs.last().unwrap();
    assert!((last["nmi_truth"].as_f64().unwrap() - m["nmi"].as_f64().unwrap()).abs() < 1e-12);
    for d in [&a, &b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn ablation_switches_change_what_they_should() {
    // Reference run: K = 20 so that some clusters fall below τ = 0.2/K and L_size is active.
    let k = ["--clusters", "20"];
    let base = tmp("ab-base");
    run_tiny(&base, None, &k, "2");
    let model = |d: &Path| TensorFile::load(&d.join("model.safetensors")).unwrap();
    let smm = |d: &Path| TensorFile::load(&d.join("smm.safetensors")).unwrap();
    let jb = joint_records(&base);
    assert!(jb.iter().any(|r| r["l_size"].as_f64().unwrap() > 0.0));
    assert!(jb.iter().all(|r| r["l_lh"].as_f64().unwrap() != 0.0));
    assert_ne!(floats(&model(&base), "uwl.sigma2"), vec![1.0]);
    assert!(floats(&smm(&base), "smm.nu").iter().all(|v| v.is_finite()));

    // w/o CLR: σ₂ is never trained (stays at its initial 1).
    let d = tmp("ab-no-clr");
    run_tiny(&d, Some(r#"{"ablations": {"no_clr": true}}"#), &k, "2");
    assert_eq!(floats(&model(&d), "uwl.sigma2"), vec![1.0]);
    assert_ne!(floats(&model(&d), "uwl.sigma1"), vec![1.0]);

    // SMM→GMM: ν ≡ +∞.
    let d = tmp("ab-gmm");
    run_tiny(&d, Some(r#"{"ablations": {"gmm": true}}"#), &k, "2");
    assert!(
        floats(&smm(&d), "smm.nu")
            .iter()
            .all(|v| *v == f64::INFINITY)
    );

    // w/o L_LH and w/o L_size: the term is 0 in every joint epoch, and the results differ.
    for (key, field) in [("no_lh", "l_lh"), ("no_size", "l_size")] {
        let d = tmp(key);
        let cfg = format!(r#"{{"ablations": {{"{key}": true}}}}"#);
        run_tiny(&d, Some(&cfg), &k, "2");
        assert!(joint_records(&d).iter().all(|r| r[field] == 0.0), "{key}");
        let differs = std::fs::read(d.join("embeddings.safetensors")).unwrap()
            != std::fs::read(base.join("embeddings.safetensors")).unwrap();
        assert!(differs, "{key} changed nothing");
    }

    // w/o SMM (DARLC-C1): k-means on h; no z, no mixture, no joint epochs.
    let d = tmp("ab-no-smm");
    run_tiny(&d, Some(r#"{"ablations": {"no_smm": true}}"#), &k, "2");
    let e = TensorFile::load(&d.join("embeddings.safetensors")).unwrap();
    assert!(e.tensors.contains_key("h") && !e.tensors.contains_key("z"));
    assert!(!d.join("smm.safetensors").exists());
    assert!(joint_records(&d).is_empty());

    // GAT→GKS and w/o pretraining run through the same switches as `darlc smooth`/warm-up.
    let d = tmp("ab-gks");
    run_tiny(
        &d,
        Some(r#"{"smoothing": {"method": "gks"}, "module1": {"warmup_epochs": 0}}"#),
        &k,
        "2",
    );
    let log = std::fs::read_to_string(d.join("log.jsonl")).unwrap();
    assert!(!log.contains("\"warm-up\""));
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["config"]["smoothing"]["method"], "gks");
}

/// Runs the tiny preset with `--clusters auto` twice, without and with `flag value`, and checks
/// what a per-image scaling of Module I's inputs or views must keep: the images a run stores and
/// the seeding similarity (the eigengap K is the same), while `h` changes. Returns both
/// `run.json`s.
fn scaling_changes_h_only(tag: &str, flag: &str, value: &str) -> [serde_json::Value; 2] {
    let (a, b) = (tmp(&format!("{tag}-none")), tmp(&format!("{tag}-{value}")));
    let auto = ["--clusters", "auto"];
    run_tiny(&a, None, &auto, "2");
    run_tiny(&b, None, &[&auto[..], &[flag, value]].concat(), "2");
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
    assert_eq!(
        read(&a, "images.safetensors"),
        read(&b, "images.safetensors")
    );
    let h = |d: &Path| {
        floats(
            &TensorFile::load(&d.join("embeddings.safetensors")).unwrap(),
            "h",
        )
    };
    assert_ne!(h(&a), h(&b), "{flag} {value} changed nothing in h");
    let rj: [serde_json::Value; 2] =
        [&a, &b].map(|d| serde_json::from_slice(&read(d, "run.json")).unwrap());
    assert_eq!(rj[0]["clusters"], rj[1]["clusters"]);
    assert!(rj[0]["clusters"].as_u64().unwrap() >= 2);
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
    rj
}

/// `--view-scale max` (`smoothing.view_scale`) changes the contrastive positives and so the
/// learned `h`, but neither the images a run stores nor the seeding similarity (K by the eigengap
/// is the same); `run.json` records it. The paper preset keeps the views as smoothed.
#[test]
fn view_scale_changes_the_positive_views_only() {
    let [a, b] = scaling_changes_h_only("view", "--view-scale", "max");
    assert_eq!(a["config"]["smoothing"]["view_scale"], "none");
    assert_eq!(b["config"]["smoothing"]["view_scale"], "max");
}

/// `--input-scale standardize` (`module1.input_scale`, issue 23) changes what the encoder sees,
/// and so `h`, but not the images a run stores nor the seeding similarity (K by the eigengap);
/// `run.json` records it. DARLC refuses `--image-scale standardize` (its GAT input must stay
/// non-negative) before any compute, naming the key to use; the baselines accept it.
#[test]
fn input_scale_changes_the_encoder_input_only() {
    let [a, b] = scaling_changes_h_only("input", "--input-scale", "standardize");
    assert!(a["config"]["module1"].get("input_scale").is_none());
    assert_eq!(b["config"]["module1"]["input_scale"], "standardize");
    let refused = tmp("image-std");
    let o = darlc()
        .args(["run", "--input"])
        .arg(section())
        .arg("--out")
        .arg(&refused)
        .args(["--preset", "tiny", "--image-scale", "standardize"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("module1.input_scale"), "{err}");
    assert!(!refused.join("run.json").exists());
    let base = tmp("kmeans-std");
    run_tiny(
        &base,
        None,
        &[
            "--method",
            "kmeans",
            "--clusters",
            "3",
            "--image-scale",
            "standardize",
        ],
        "2",
    );
    std::fs::remove_dir_all(base).unwrap();
}

fn run_json(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap()
}

/// Issue 23: step targets set the epochs, `run.json` records the schedule per phase with the
/// target that produced it, and the guardrails' warnings land in `run.json` with their remedy.
#[test]
fn step_targets_set_the_schedule_and_run_json_records_it() {
    let out = tmp("steps");
    run_tiny(
        &out,
        Some(
            r#"{"module1": {"warmup_steps": 20, "batch": "auto"},
                "module2": {"joint_steps": 5}}"#,
        ),
        &["--canvas", "tissue"],
        "2",
    );
    let rj = run_json(&out);
    // 287 genes: B = min(⌊287/4⌋, 32) = 32, 8 full batches + one of 31 = 9 steps per epoch;
    // ⌈20/9⌉ = 3 warm-up epochs (27 steps), ⌈5/9⌉ = 1 joint epoch (9 batch steps).
    let s = &rj["schedule"];
    assert_eq!(s["batch_rule"], "auto");
    for (phase, epochs, steps, target) in [("warmup", 3, 27, 20), ("joint", 1, 9, 5)] {
        let p = &s[phase];
        assert_eq!(p["batch"], 32, "{phase}");
        assert_eq!(p["steps_per_epoch"], 9, "{phase}");
        assert_eq!(p["epochs"], epochs, "{phase}");
        assert_eq!(p["steps"], steps, "{phase}");
        assert_eq!(p["target_steps"], target, "{phase}");
    }
    // The config in run.json is what the loops ran with; the targets stay beside it.
    assert_eq!(rj["config"]["module1"]["batch"], 32);
    assert_eq!(rj["config"]["module1"]["warmup_epochs"], 3);
    assert_eq!(rj["config"]["module1"]["warmup_steps"], 20);
    assert_eq!(rj["config"]["module2"]["joint_epochs"], 1);
    assert_eq!(rj["config"]["canvas"], "tissue");
    // The log holds exactly the resolved epochs.
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    let recs: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let count = |ph: &str| recs.iter().filter(|r| r["phase"] == ph).count();
    assert_eq!((count("warm-up"), count("joint")), (3, 1));
    assert!(
        recs.iter()
            .filter(|r| r["phase"] == "warm-up")
            .all(|r| r["steps"] == 9)
    );
    // Too few steps in both phases: two warnings naming the remedy's keys.
    let warnings: Vec<String> = rj["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("only 27 optimiser steps") && w.contains("warmup_steps")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("only 9 batch-level") && w.contains("joint_steps")),
        "{warnings:?}"
    );
    // The contrastive warning appears exactly when the last contrastive loss is above 0.98 of
    // ln(2·32 − 1), or not below what raw pixel correlations score on the same views (run.json's
    // `contrastive_reference`), computed here from the log.
    let last_cl = recs
        .iter()
        .filter_map(|r| r["l_cl"].as_f64())
        .next_back()
        .unwrap();
    let reference = rj["contrastive_reference"].as_f64().unwrap();
    assert!(
        reference > 0.0 && reference < 2.0 * 63f64.ln(),
        "reference {reference}"
    );
    assert_eq!(
        warnings.iter().any(|w| w.contains("chance level")),
        last_cl > 0.98 * 63f64.ln() || last_cl >= reference,
        "l_cl {last_cl}, reference {reference}: {warnings:?}"
    );
    // The canvas fits the tissue: padded to the patch (5) and no larger than the method's canvas.
    let shape: Vec<u64> = rj["image_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(
        shape[2].is_multiple_of(5) && shape[3].is_multiple_of(5),
        "{shape:?}"
    );
    std::fs::remove_dir_all(&out).unwrap();
}

/// Issue 23: a section of tens of genes warns before training and points to `--method gmm-pca`.
#[test]
fn a_section_of_tens_of_genes_warns_and_names_gmm_pca() {
    let sim = tmp("small-sim");
    pipeline_common::simulate(60, &sim);
    let out = tmp("small");
    let o = darlc()
        .env("RAYON_NUM_THREADS", "2")
        .args(["run", "--preset", "tiny", "--input"])
        .arg(&sim)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    let rj = run_json(&out);
    let n = rj["images"].as_u64().unwrap();
    assert!(n < 100, "{n} images");
    let w = rj["warnings"].to_string();
    assert!(
        w.contains(&format!("{n} images (genes) are too few")) && w.contains("--method gmm-pca"),
        "{w}"
    );
    assert!(err.contains("--method gmm-pca"), "{err}");
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_dir_all(&sim).unwrap();
}
