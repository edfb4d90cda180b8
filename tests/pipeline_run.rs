//! `darlc run` end to end on a small simulated section: the outputs a user gets, the completion
//! marker, errors for impossible requests, and thread-count independence.

use std::path::{Path, PathBuf};

mod pipeline_common;

use pipeline_common::darlc;

fn tmp(name: &str) -> PathBuf {
    pipeline_common::tmp("run", name)
}

fn section() -> PathBuf {
    pipeline_common::section("run")
}

fn run(input: &Path, out: &Path, extra: &[&str], threads: &str) -> std::process::Output {
    darlc()
        .env("RAYON_NUM_THREADS", threads)
        .arg("run")
        .arg("--input")
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn baselines_write_every_output_and_a_complete_marker() {
    let input = section();
    for method in ["kmeans", "gmm-pca"] {
        let out = tmp(method);
        let o = run(&input, &out, &["--method", method], "2");
        assert!(
            o.status.success(),
            "{method}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        for f in [
            "clusters.csv",
            "clusters.png",
            "genes.csv",
            "images.safetensors",
            "metrics.json",
            "run.json",
        ] {
            assert!(out.join(f).is_file(), "{method}: missing {f}");
        }
        let rj: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
        assert_eq!(rj["complete"], true);
        assert_eq!(
            rj["images"], 287,
            "300 genes − 13 MT- genes (simulate's defaults)"
        );
        // round(287 / 30) = 10 clusters (the ST rule).
        assert_eq!(rj["clusters"], 10);
        assert!(rj["input_sha256"].as_array().unwrap().len() >= 4);
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
        assert!(
            m["nmi"].as_f64().unwrap() > 0.0,
            "simulated truth is attached as labels"
        );
        assert!(m["dbie"].as_f64().unwrap() > 0.0);
        let csv = std::fs::read_to_string(out.join("clusters.csv")).unwrap();
        assert!(csv.starts_with("gene_id,symbol,cluster,confidence\n"));
        assert_eq!(csv.lines().count(), 288);
        // `darlc eval` scores the finished run folder with the simulator's truth file and agrees
        // with the run's own metrics.
        let j = out.join("eval.json");
        let e = darlc()
            .args(["eval", "--run"])
            .arg(&out)
            .arg("--truth")
            .arg(input.join("truth.csv"))
            .arg("--json")
            .arg(&j)
            .output()
            .unwrap();
        assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
        let ev: serde_json::Value = serde_json::from_slice(&std::fs::read(&j).unwrap()).unwrap();
        for key in [
            "nmi",
            "ari",
            "acc",
            "homogeneity",
            "completeness",
            "dbie",
            "dbip",
        ] {
            assert_eq!(
                ev[key], m[key],
                "{method}: eval --run disagrees with metrics.json on {key}"
            );
        }
        if method == "gmm-pca" {
            assert!(out.join("smm.safetensors").is_file());
            assert!(out.join("embeddings.safetensors").is_file());
        }
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[test]
fn impossible_k_fails_and_leaves_the_previous_run_intact() {
    let input = section();
    let out = tmp("bad-k");
    let o = run(
        &input,
        &out,
        &["--method", "kmeans", "--clusters", "5"],
        "2",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let before = std::fs::read(out.join("run.json")).unwrap();
    let o = run(
        &input,
        &out,
        &["--method", "kmeans", "--clusters", "1000"],
        "2",
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("K = 1000") && err.contains("N = 287"), "{err}");
    assert_eq!(
        std::fs::read(out.join("run.json")).unwrap(),
        before,
        "a failed rerun must leave the previous run as it was"
    );
    let staging = out.with_file_name(format!(
        "{}.darlc-partial",
        out.file_name().unwrap().to_string_lossy()
    ));
    assert!(!staging.exists(), "a failed run leaves no staging folder");
    let o = run(&input, &out, &["--preset", "fastest"], "2");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--preset"));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let input = section();
    let (a, b) = (tmp("t1"), tmp("t2"));
    for (dir, t) in [(&a, "1"), (&b, "2")] {
        let o = run(&input, dir, &["--method", "gmm-pca"], t);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for f in [
        "clusters.csv",
        "embeddings.safetensors",
        "smm.safetensors",
        "metrics.json",
    ] {
        let same = std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap();
        assert!(same, "{f} differs between 1 and 2 threads");
    }
    std::fs::remove_dir_all(&a).unwrap();
    std::fs::remove_dir_all(&b).unwrap();
}

/// `--image-scale max` changes what the method sees but not the stored images or what the
/// metrics are measured on, and `run.json` records it.
#[test]
fn image_scale_changes_the_clustering_input_only() {
    let input = section();
    let (a, b) = (tmp("scale-none"), tmp("scale-max"));
    let o = run(&input, &a, &["--method", "kmeans"], "2");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(
        &input,
        &b,
        &["--method", "kmeans", "--image-scale", "max"],
        "2",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
    assert_eq!(
        read(&a, "images.safetensors"),
        read(&b, "images.safetensors"),
        "the stored images stay unscaled"
    );
    assert_ne!(
        read(&a, "clusters.csv"),
        read(&b, "clusters.csv"),
        "k-means on max-scaled vectors groups genes differently"
    );
    let rj =
        |d: &Path| -> serde_json::Value { serde_json::from_slice(&read(d, "run.json")).unwrap() };
    assert_eq!(rj(&a)["config"]["image_scale"], "none");
    assert_eq!(rj(&b)["config"]["image_scale"], "max");
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
