//! The Snakemake workflow (`workflow/Snakefile`, issue 28) run locally with `--cores 2` on three
//! small sections: the embedded MOB section (k-means, 7 clusters: the tiny preset would still
//! train on its 12,947 genes) and two 300-gene `darlc simulate` sections with the `tiny` preset,
//! one of them with two seeds. The gathered `summary.tsv` must hold one row per run that agrees
//! with that run's own `run.json`, `metrics.json` and `clusters.csv`; a second invocation must find
//! nothing to do; a bad sample sheet must stop the workflow before any job, naming the section.
//!
//! Snakemake is a Python package: `.ci/run` installs it with pip, and without it this test fails
//! (saying so) unless `DARLC_SKIP_PYTHON_TESTS=1` asks to skip it with a note. `DARLC_SNAKEMAKE`
//! names the executable if it is not `snakemake` on PATH (e.g. one in a virtualenv).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The program and leading arguments that run snakemake, if any does (looked up once).
fn snakemake_program() -> Option<&'static (OsString, Vec<OsString>)> {
    static FOUND: OnceLock<Option<(OsString, Vec<OsString>)>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let candidates: Vec<(OsString, Vec<OsString>)> =
                match std::env::var_os("DARLC_SNAKEMAKE") {
                    Some(p) => vec![(p, vec![])],
                    None => vec![
                        ("snakemake".into(), vec![]),
                        ("python3".into(), vec!["-m".into(), "snakemake".into()]),
                    ],
                };
            candidates.into_iter().find(|(p, a)| {
                Command::new(p)
                    .args(a)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
        })
        .as_ref()
}

/// The snakemake command, or `None` (after a note) when it is missing and skipping is allowed.
fn snakemake() -> Option<Command> {
    if let Some((p, a)) = snakemake_program() {
        let mut c = Command::new(p);
        c.args(a);
        return Some(c);
    }
    let skip = std::env::var("DARLC_SKIP_PYTHON_TESTS").is_ok_and(|v| !v.is_empty() && v != "0");
    if skip {
        eprintln!(
            "note: snakemake not found, workflow test skipped (DARLC_SKIP_PYTHON_TESTS is set)"
        );
        return None;
    }
    panic!(
        "snakemake not found (tried $DARLC_SNAKEMAKE if set, else `snakemake` and `python3 -m \
         snakemake`): \
         `python3 -m pip install 'snakemake>=8,<10'` (.ci/run does), or set DARLC_SNAKEMAKE to \
         its path, or DARLC_SKIP_PYTHON_TESTS=1 to skip this test locally"
    );
}

fn darlc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_darlc"))
}

fn check(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn simulate(dir: &Path, seed: u64) -> PathBuf {
    let d = dir.join(format!("sim{seed}"));
    let o = darlc()
        .args([
            "simulate",
            "--genes",
            "300",
            "--seed",
            &seed.to_string(),
            "--out",
        ])
        .arg(&d)
        .output()
        .unwrap();
    check(&o, "darlc simulate");
    d
}

/// Run the workflow in `dir` with the sample sheet `config` (JSON is YAML).
fn run_workflow(dir: &Path, config: &serde_json::Value, extra: &[&str]) -> Output {
    let cfg = dir.join("study.yaml");
    std::fs::write(&cfg, serde_json::to_string_pretty(config).unwrap()).unwrap();
    let mut c = snakemake().expect("checked by the caller");
    c.arg("--snakefile")
        .arg(manifest().join("workflow/Snakefile"))
        .arg("--configfile")
        .arg(&cfg)
        .arg("--directory")
        .arg(dir)
        .args(["--cores", "2"])
        .args(extra)
        .output()
        .unwrap()
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

/// `cluster → size` of a run's clusters.csv.
fn cluster_sizes(p: &Path) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    let text = std::fs::read_to_string(p).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("gene_id,symbol,cluster,confidence"));
    for l in lines {
        let c = l.split(',').nth(2).unwrap().to_string();
        *m.entry(c).or_insert(0) += 1;
    }
    m
}

/// A score printed with 4 significant digits agrees with the value in metrics.json.
fn same_score(printed: &str, v: &serde_json::Value, what: &str) {
    match v.as_f64() {
        None => assert_eq!(printed, "NA", "{what}"),
        Some(x) => {
            let p: f64 = printed
                .parse()
                .unwrap_or_else(|_| panic!("{what}: {printed}"));
            assert!(
                (p - x).abs() <= 5e-4 * x.abs().max(1e-12),
                "{what}: table {p}, metrics.json {x}"
            );
        }
    }
}

#[test]
fn workflow_runs_three_sections_and_gathers_one_table() {
    if snakemake().is_none() {
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("darlc-workflow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (sim1, sim2) = (simulate(&dir, 1), simulate(&dir, 2));
    let mob = manifest().join("fixtures/mob_st_rep11");
    let config = serde_json::json!({
        "darlc": env!("CARGO_BIN_EXE_darlc"),
        "results": "results",
        "threads": 1,
        "mem_mb": 1000,
        "runtime": 10,
        "preset": "tiny",
        "seeds": [0],
        "sections": [
            {"name": "mob_st_rep11", "input": mob, "method": "kmeans", "clusters": "7",
             "threads": 2},
            {"name": "sim1", "input": sim1},
            {"name": "sim2", "input": sim2, "seeds": [0, 5]},
        ],
    });
    let t0 = std::time::Instant::now();
    let o = run_workflow(&dir, &config, &[]);
    check(&o, "snakemake");
    eprintln!("workflow: 4 runs in {:.1} s", t0.elapsed().as_secs_f64());
    let results = dir.join("results");

    // The table: a header and one row per (section, seed), sorted.
    let tsv = std::fs::read_to_string(results.join("summary.tsv")).unwrap();
    let mut lines = tsv.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let rows: Vec<BTreeMap<&str, &str>> = lines
        .map(|l| {
            let cells: Vec<&str> = l.split('\t').collect();
            assert_eq!(cells.len(), header.len(), "{l}");
            header.iter().copied().zip(cells).collect()
        })
        .collect();
    let keys: Vec<(&str, &str)> = rows.iter().map(|r| (r["section"], r["seed"])).collect();
    assert_eq!(
        keys,
        [
            ("mob_st_rep11", "0"),
            ("sim1", "0"),
            ("sim2", "0"),
            ("sim2", "5")
        ]
    );
    for col in [
        "seconds_total",
        "seconds_load",
        "seconds_method",
        "seconds_outputs",
        "seconds_warm-up",
        "seconds_joint",
        "peak_rss_mb",
        "dbie",
        "nmi",
    ] {
        assert!(header.contains(&col), "summary.tsv lacks {col}: {header:?}");
    }
    for r in &rows {
        let run = results
            .join(r["section"])
            .join(format!("seed{}", r["seed"]));
        let rj = json(&run.join("run.json"));
        let m = json(&run.join("metrics.json"));
        let sizes = cluster_sizes(&run.join("clusters.csv"));
        let what = format!("{} seed {}", r["section"], r["seed"]);
        assert_eq!(rj["config"]["seed"].to_string(), r["seed"], "{what}");
        assert_eq!(r["images"], rj["images"].to_string(), "{what}");
        assert_eq!(r["k"], rj["clusters"].to_string(), "{what}");
        assert_eq!(r["clusters_used"], sizes.len().to_string(), "{what}");
        assert_eq!(
            r["largest_cluster"],
            sizes.values().max().unwrap().to_string(),
            "{what}"
        );
        let threads = if r["section"] == "mob_st_rep11" {
            "2"
        } else {
            "1"
        };
        assert_eq!(
            r["threads"], threads,
            "{what}: the sheet's threads reach darlc"
        );
        for s in ["dbie", "dbip", "sam", "nmi", "ari", "acc"] {
            same_score(r[s], &m[s], &format!("{what} {s}"));
        }
        let total: f64 = r["seconds_total"].parse().unwrap();
        let parts: f64 = ["seconds_load", "seconds_method", "seconds_outputs"]
            .iter()
            .map(|c| r[c].parse::<f64>().unwrap())
            .sum();
        assert!(
            total > 0.0 && (total - parts).abs() <= 1e-3 * total + 0.01,
            "{what}"
        );
        assert!(
            results
                .join(format!(
                    "logs/darlc_run/{}.seed{}.log",
                    r["section"], r["seed"]
                ))
                .is_file(),
            "{what}: no log"
        );
    }
    let mob_row = &rows[0];
    assert_eq!(mob_row["method"], "kmeans");
    assert_eq!(mob_row["k"], "7");
    assert_eq!(mob_row["images"], "12947", "the embedded section's genes");
    assert_eq!(mob_row["nmi"], "NA", "no truth for the embedded section");
    assert_eq!(mob_row["seconds_warm-up"], "NA");
    for r in &rows[1..] {
        assert_eq!(r["method"], "darlc");
        assert_eq!(r["preset"], "tiny");
        // Tiny preset: K 3; 300 simulated genes − 13 MT- genes.
        assert_eq!((r["k"], r["images"]), ("3", "287"));
        assert_ne!(r["nmi"], "NA", "simulated truth gives NMI");
        assert_ne!(r["seconds_joint"], "NA");
    }
    // Two seeds of one section are two different runs.
    let c = |s: &str| std::fs::read(results.join(format!("sim2/seed{s}/clusters.csv"))).unwrap();
    assert_ne!(c("0"), c("5"));
    let md = std::fs::read_to_string(results.join("summary.md")).unwrap();
    assert!(md.contains("4 runs of 3 sections"), "{md}");
    for s in ["mob_st_rep11", "sim1", "sim2"] {
        assert!(md.contains(&format!("| {s} |")), "{md}");
    }

    // Everything is up to date: a second invocation runs nothing, also with fewer cores (the
    // thread count, capped by the cores, is not a parameter that triggers a rerun).
    let before = std::fs::metadata(results.join("sim1/seed0/run.json"))
        .unwrap()
        .modified()
        .unwrap();
    let o = run_workflow(&dir, &config, &["--cores", "1"]);
    check(&o, "snakemake, second time");
    let after = std::fs::metadata(results.join("sim1/seed0/run.json"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "a finished run was run again");
    let says = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(says.contains("Nothing to be done"), "{says}");

    // A bad sample sheet stops the workflow before any job, naming the section and the key.
    let mut bad = config.clone();
    bad["sections"][1]["input"] = serde_json::json!(dir.join("no-such-folder"));
    let o = run_workflow(&dir, &bad, &["--dry-run"]);
    assert!(!o.status.success());
    let says = String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout);
    assert!(
        says.contains("section sim1") && says.contains("does not exist"),
        "{says}"
    );
    let mut bad = config.clone();
    bad["sections"][2]["seeds"] = serde_json::json!([0, "x"]);
    let o = run_workflow(&dir, &bad, &["--dry-run"]);
    assert!(!o.status.success());
    let says = String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout);
    assert!(says.contains("section sim2, seeds"), "{says}");

    let names: BTreeSet<String> = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for n in [
        "mob_st_rep11",
        "sim1",
        "sim2",
        "summary.tsv",
        "summary.md",
        "logs",
    ] {
        assert!(names.contains(n), "results/ lacks {n}: {names:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
