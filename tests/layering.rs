//! Layers import only downward (issue 26, item 3): every `crate::…` path in `src/**/*.rs` names a
//! top-level module of the crate, and a module may name only modules on its own floor or below.
//! The test fails naming the file, the line and the upward import.
//!
//! Comment lines (`//`, `///`, `//!`) are skipped: an intra-doc link to a higher floor is a
//! pointer for the reader, not a dependency. A module's own unit tests count: they are compiled
//! into the module. `main.rs` imports the library as `darlc::…` and sits on the top floor.

mod source_tree;

use source_tree::rust_files;
use std::collections::BTreeMap;
use std::path::Path;

/// The floors, from the ground up. A module may import any module on its own floor or a lower one.
///
/// * 0, the ground: errors, the float trait, named random streams, progress bars, the allocator
///   policy and memory accounting, and the outside world (atomic writes, safetensors, text input:
///   gzip sniffed from the magic bytes, byte-order marks, delimiters).
/// * 1, `config`: the run's parameters, read from JSON through `io`.
/// * 2, `autodiff`: the tape and its ops.
/// * 3, `nn` (layers on the tape) and `linalg` (Cholesky, Lanczos/Jacobi, sparse CSR, special
///   functions, PCA, k-means): the generic numerics the method is built from.
/// * 4, `data`: readers, preprocessing, rasterisation (method §2).
/// * 5, `augment`: the lattice graph, GAT and GKS smoothing (method §3).
/// * 6, `eval`: measures on arrays and labels (ARI/NMI, Moran's I and the smoothing quality,
///   Leiden, kNN, the linear probe); below the modules so that Module II may count labels with them.
/// * 7, `module1`: the ViT, MIM and contrastive warm-up (method §4–§7).
/// * 8, `module2`: the paper's Module II (method §8–§9): similarity, K inference, losses, SMM, joint.
/// * 9, `baselines`: k-means and GMM-on-PCA, written to the same outputs as DARLC.
/// * 10, `pipeline`: `darlc run` from input to `clusters.csv`.
/// * 11, `bench`: benchmarks, which only consume what is below them.
/// * 12, `fixtures`: golden fixture cases of every layer, their registry and `darlc verify`.
/// * 13, `cli`: the subcommands' arguments and glue.
const FLOORS: &[(&str, u32)] = &[
    ("error", 0),
    ("float", 0),
    ("rng", 0),
    ("progress", 0),
    ("memory", 0),
    ("io", 0),
    // The rayon pool of a command's `--threads`.
    ("threads", 0),
    ("config", 1),
    ("autodiff", 2),
    ("nn", 3),
    ("linalg", 3),
    ("data", 4),
    ("augment", 5),
    ("eval", 6),
    ("module1", 7),
    ("module2", 8),
    ("baselines", 9),
    ("pipeline", 10),
    ("bench", 11),
    ("fixtures", 12),
    ("cli", 13),
];

/// The top-level module a file of `src/` belongs to (`src/a/b.rs` and `src/a.rs` → `a`).
fn module_of(rel: &Path) -> String {
    let first = rel.components().nth(1).expect("a path under src/");
    let name = first.as_os_str().to_string_lossy();
    name.strip_suffix(".rs").unwrap_or(&name).to_string()
}

/// The top-level modules named by `crate::NAME` paths on one line of code.
fn crate_paths(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        let after = &rest[i + "crate::".len()..];
        // `darlc_crate::`, `my_crate::` are not the crate root.
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
        rest = after;
    }
    found
}

/// Every upward import under `root/src`, as "file:line: module `m` (floor a) imports `n` (floor
/// b)": the allow-list applied.
fn upward_imports(root: &Path) -> Vec<String> {
    let floors: BTreeMap<&str, u32> = FLOORS.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut bad = Vec::new();
    for path in files {
        let rel = path.strip_prefix(root).unwrap().to_path_buf();
        let rel_s = rel.to_string_lossy().replace('\\', "/");
        let module = module_of(&rel);
        if module == "main" || module == "lib" {
            continue;
        }
        let Some(&own) = floors.get(module.as_str()) else {
            bad.push(format!(
                "{rel_s}: top-level module `{module}` has no floor in tests/layering.rs"
            ));
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for target in crate_paths(line) {
                if target == module {
                    continue;
                }
                let Some(&floor) = floors.get(target.as_str()) else {
                    continue; // a re-export at the crate root (`crate::Result`, `crate::Float`)
                };
                if floor <= own {
                    continue;
                }
                bad.push(format!(
                    "{rel_s}:{}: `{module}` (floor {own}) imports `{target}` (floor {floor}): {}",
                    i + 1,
                    line.trim()
                ));
            }
        }
    }
    bad
}

#[test]
fn layers_import_only_downward() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bad = upward_imports(root);
    assert!(
        bad.is_empty(),
        "{} upward import(s); move the code down or the importer up (floors in tests/layering.rs):\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn every_top_level_module_has_a_floor() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let floors: BTreeMap<&str, u32> = FLOORS.iter().copied().collect();
    for entry in std::fs::read_dir(&root).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let name = name.strip_suffix(".rs").unwrap_or(&name).to_string();
        if name == "main" || name == "lib" {
            continue;
        }
        assert!(
            floors.contains_key(name.as_str()),
            "src/{name} has no floor in tests/layering.rs"
        );
    }
}

#[test]
fn the_scanner_reads_crate_paths() {
    // The scanner itself: `crate::` paths are found, other `…crate::` names are not.
    assert_eq!(
        crate_paths("use crate::eval::moran::moran_i_columns; x = crate::io::f();"),
        ["eval", "io"]
    );
    assert!(crate_paths("use darlc_crate::x; let s = \"my_crate::y\";").is_empty());
    let floors: BTreeMap<&str, u32> = FLOORS.iter().copied().collect();
    assert!(floors["augment"] < floors["eval"]);
    assert!(floors["memory"] < floors["module1"]);
}
