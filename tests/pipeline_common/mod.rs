//! Shared helpers of the `darlc run` end-to-end tests: the binary, scratch folders, and a small
//! simulated section.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The `darlc` binary built for these tests.
pub fn darlc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_darlc"))
}

/// A fresh (removed) scratch folder `darlc-<tag>-<pid>-<name>` in the temp dir.
pub fn tmp(tag: &str, name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("darlc-{tag}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A 300-gene simulated section (287 genes kept after the MT- filter), written once per test
/// binary under `darlc-<tag>-sim-<pid>` (simulation is deterministic).
pub fn section(tag: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("darlc-{tag}-sim-{}", std::process::id()));
    if !d.join("truth.csv").exists() {
        simulate(300, &d);
    }
    d
}

/// `darlc simulate --genes GENES --seed 1 --out DIR`, asserting that it succeeds.
pub fn simulate(genes: usize, dir: &std::path::Path) {
    let st = darlc()
        .args([
            "simulate",
            "--genes",
            &genes.to_string(),
            "--seed",
            "1",
            "--out",
        ])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
}
