//! Results do not depend on the thread count at any count (method §0), not only on 1 and 2: every
//! split in darlc is by fixed chunk sizes, never by the number of threads, so 3, 4 and 7 threads
//! (more than this 2-core CI machine has, and counts that divide nothing evenly) must give the same
//! bits as 1. Checked on the three parts `darlc bench scaling` times (the Module I step, the GAT
//! epoch, an EM iteration; fingerprints over every parameter, loss and responsibility) and on a
//! whole tiny `darlc run` (every output file byte for byte; 2 threads are in
//! `tests/pipeline_darlc.rs`).

use darlc::bench::scaling::{Part, Sizes, measure, prepare};
use std::path::PathBuf;
use std::process::Command;

const COUNTS: [usize; 5] = [1, 2, 3, 4, 7];

fn same_bits_at_every_count(part: Part) {
    let p = prepare(part, &Sizes::test()).unwrap();
    let runs: Vec<_> = COUNTS
        .iter()
        .map(|&n| measure(&p, n, 1, 2).unwrap())
        .collect();
    for m in &runs {
        assert_eq!(m.seconds.len(), 2, "{part:?}: two timed repetitions");
        assert_eq!(
            m.fingerprint, runs[0].fingerprint,
            "{part:?}: {} threads differ from 1 thread",
            m.threads
        );
    }
}

#[test]
fn module1_step_same_bits_on_1_2_3_4_7_threads() {
    same_bits_at_every_count(Part::Ssl);
}

#[test]
fn gat_epoch_same_bits_on_1_2_3_4_7_threads() {
    same_bits_at_every_count(Part::Gat);
}

#[test]
fn em_iteration_same_bits_on_1_2_3_4_7_threads() {
    same_bits_at_every_count(Part::Em);
}

#[test]
fn fingerprints_tell_different_states_apart() {
    // The check above can fail: one more timed step changes the fingerprint of every part.
    for part in [Part::Ssl, Part::Gat, Part::Em] {
        let p = prepare(part, &Sizes::test()).unwrap();
        let a = measure(&p, 2, 1, 2).unwrap();
        let b = measure(&p, 2, 1, 3).unwrap();
        assert_ne!(a.fingerprint, b.fingerprint, "{part:?}");
    }
}

#[test]
fn tiny_run_same_bytes_on_1_3_4_7_threads() {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("darlc-threads-any-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let darlc = || Command::new(env!("CARGO_BIN_EXE_darlc"));
    let sim = base.join("sim");
    let o = darlc()
        .args(["simulate", "--genes", "300", "--seed", "1", "--out"])
        .arg(&sim)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let files = [
        "clusters.csv",
        "embeddings.safetensors",
        "embeddings.csv",
        "smm.safetensors",
        "model.safetensors",
        "metrics.json",
        "clusters.png",
        "modules.csv",
        "modules.png",
        "report.html",
    ];
    let mut first: Option<Vec<Vec<u8>>> = None;
    for t in [1usize, 3, 4, 7] {
        let out = base.join(format!("t{t}"));
        let o = darlc()
            .arg("run")
            .arg("--input")
            .arg(&sim)
            .arg("--out")
            .arg(&out)
            .args(["--preset", "tiny", "--threads", &t.to_string()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let rj: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
        assert_eq!(rj["threads"], t, "--threads reaches the pool");
        // report.html without its volatile parts (command, threads, timings).
        let bytes: Vec<Vec<u8>> = files
            .iter()
            .map(|f| {
                let b = std::fs::read(out.join(f)).unwrap();
                if *f == "report.html" {
                    let page = String::from_utf8(b).unwrap();
                    darlc::pipeline::report_html::without_volatile(&page).into_bytes()
                } else {
                    b
                }
            })
            .collect();
        match &first {
            None => first = Some(bytes),
            Some(a) => {
                for (f, (x, y)) in files.iter().zip(a.iter().zip(&bytes)) {
                    assert!(x == y, "{f} differs between 1 and {t} threads");
                }
            }
        }
    }
    std::fs::remove_dir_all(&base).ok();
}
