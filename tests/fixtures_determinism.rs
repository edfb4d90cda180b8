//! method §0 determinism: `darlc fixtures regen` writes byte-identical files on 1 and 2 threads, and
//! the committed golden set passes `darlc fixtures check`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn tmp(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("darlc-fixtures-det-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn regen(out: &Path, threads: &str) {
    let st = Command::new(env!("CARGO_BIN_EXE_darlc"))
        .args(["fixtures", "regen", "--out"])
        .arg(out)
        .env("RAYON_NUM_THREADS", threads)
        .status()
        .expect("run darlc");
    assert!(st.success(), "regen with {threads} thread(s) failed");
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn fixtures_regen_is_byte_identical_on_1_and_2_threads() {
    let (d1, d2) = (tmp("t1"), tmp("t2"));
    regen(&d1, "1");
    regen(&d2, "2");
    let (f1, f2) = (files(&d1), files(&d2));
    assert_eq!(f1, f2, "different file sets");
    assert!(f1.contains(&"manifest.json".to_string()));
    assert!(
        f1.len() > 60,
        "expected every op case, got {} files",
        f1.len()
    );
    for f in &f1 {
        let (a, b) = (
            std::fs::read(d1.join(f)).unwrap(),
            std::fs::read(d2.join(f)).unwrap(),
        );
        assert!(a == b, "{f} differs between 1 and 2 threads");
    }
    std::fs::remove_dir_all(&d1).unwrap();
    std::fs::remove_dir_all(&d2).unwrap();
}

#[test]
fn fixtures_check_passes_on_committed_golden_set() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden");
    let out = Command::new(env!("CARGO_BIN_EXE_darlc"))
        .args(["fixtures", "check", "--reference"])
        .arg(&dir)
        .output()
        .expect("run darlc");
    assert!(
        out.status.success(),
        "fixtures check failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
