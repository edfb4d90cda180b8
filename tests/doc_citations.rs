//! Every section a doc comment, help text or test cites resolves in `docs/method.md` (issue 26,
//! item 7).
//!
//! Citations are written `method §N.M` (the older prefix `SPEC` named the project's restatement
//! of the paper outside the repository, whose numbering `docs/method.md` keeps; it is refused). A citation may chain further numbers: `§3, §15`, `§3.1–3.2`, `§5–§10`,
//! `§2.2 and §14`, `§10/§14`; each is checked. Equation citations (`… Eq. 17`, `Eq. 19–20`)
//! must find their tag `(Eq. N)` in the document. The test fails naming the file, the line and the
//! missing section.

mod source_tree;

use source_tree::rust_files;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// The prefixes a citation starts with. Built from parts so that this file cites nothing itself.
fn prefixes() -> [String; 2] {
    [format!("{} §", "SPEC"), format!("{} §", "method")]
}

fn eq_prefixes() -> [String; 2] {
    [format!("{} Eq.", "SPEC"), format!("{} Eq.", "method")]
}

/// A section number `N` or `N.M…` at the start of `s`: its text and the bytes it spans. A final
/// `.` that no digit follows is punctuation, not part of the number.
fn number_at(s: &str) -> Option<(String, usize)> {
    let b = s.as_bytes();
    let mut end = 0;
    while end < b.len() && b[end].is_ascii_digit() {
        end += 1;
    }
    if end == 0 {
        return None;
    }
    while end + 1 < b.len() && b[end] == b'.' && b[end + 1].is_ascii_digit() {
        end += 1;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
    }
    Some((s[..end].to_string(), end))
}

/// The numbers chained after a first one: a range (`–12.3`, `-§9`, `–§10`) may drop the `§`;
/// a list (`, §15`, ` and §14`, ` or §4`, `/§14`) needs it.
fn chained(mut rest: &str, out: &mut Vec<String>) {
    loop {
        let mut next = None;
        for sep in ["–", "-"] {
            if let Some(r) = rest.strip_prefix(sep) {
                let r = r.strip_prefix('§').unwrap_or(r);
                next = Some(r);
            }
        }
        if next.is_none() {
            for sep in [", §", ",§", " and §", " or §", "/§"] {
                if let Some(r) = rest.strip_prefix(sep) {
                    next = Some(r);
                }
            }
        }
        let Some(r) = next else { return };
        let Some((n, len)) = number_at(r) else { return };
        out.push(n);
        rest = &r[len..];
    }
}

/// Every section number cited in `line`.
fn sections_cited(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    for p in prefixes() {
        let mut from = 0;
        while let Some(i) = line[from..].find(&p) {
            let start = from + i + p.len();
            if let Some((n, len)) = number_at(&line[start..]) {
                out.push(n);
                chained(&line[start + len..], &mut out);
            }
            from = start;
        }
    }
    out
}

/// Every equation number cited in `line` (`Eq. 19–20` gives 19 and 20).
fn equations_cited(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    for p in eq_prefixes() {
        let mut from = 0;
        while let Some(i) = line[from..].find(&p) {
            let start = from + i + p.len();
            let s = line[start..].trim_start();
            if let Some((n, len)) = number_at(s) {
                out.push(n);
                let tail = &s[len..];
                if let Some(r) = tail.strip_prefix('–').or(tail.strip_prefix('-'))
                    && let Some((m, _)) = number_at(r)
                {
                    out.push(m);
                }
            }
            from = start;
        }
    }
    out
}

/// The section numbers of the document's headings: a line `#… §N.M title`.
fn headings(method: &str) -> Vec<String> {
    method
        .lines()
        .filter(|l| l.starts_with('#'))
        .filter_map(|l| {
            let t = l.trim_start_matches('#').trim_start();
            number_at(t.strip_prefix('§')?).map(|(n, _)| n)
        })
        .collect()
}

/// Whether the document tags equation `n`: the text `(Eq. n)`, as written beside each equation.
fn tags_equation(method: &str, n: &str) -> bool {
    method.contains(&format!("(Eq. {n})"))
}

/// `file:line: what is missing`, for every citation `method` does not resolve.
fn unresolved(method: &str, files: &[(String, String)]) -> Vec<String> {
    let have: BTreeSet<String> = headings(method).into_iter().collect();
    let mut missing = Vec::new();
    for (path, text) in files {
        for (i, line) in text.lines().enumerate() {
            for n in sections_cited(line) {
                if !have.contains(&n) {
                    missing.push(format!(
                        "{path}:{}: cites §{n}, which docs/method.md has no heading for",
                        i + 1
                    ));
                }
            }
            for n in equations_cited(line) {
                if !tags_equation(method, &n) {
                    missing.push(format!(
                        "{path}:{}: cites Eq. {n}, which docs/method.md does not tag",
                        i + 1
                    ));
                }
            }
        }
    }
    missing
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `(path relative to the crate, text)` of every `.rs` file under `src/` and `tests/`.
fn crate_sources() -> Vec<(String, String)> {
    let mut paths = Vec::new();
    rust_files(&root().join("src"), &mut paths);
    rust_files(&root().join("tests"), &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let rel = p.strip_prefix(root()).unwrap().display().to_string();
            (rel, text)
        })
        .collect()
}

fn method_doc() -> String {
    let p = root().join("docs/method.md");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn every_cited_section_and_equation_has_its_place_in_docs_method() {
    let files = crate_sources();
    let cited: usize = files
        .iter()
        .flat_map(|(_, t)| t.lines())
        .map(|l| sections_cited(l).len())
        .sum();
    // The crate cites its method hundreds of times; a parser that finds none is broken.
    assert!(
        cited > 100,
        "only {cited} citations found: is the parser broken?"
    );
    let missing = unresolved(&method_doc(), &files);
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// The old prefix named a file outside the repository: every citation now says `method`.
#[test]
fn no_citation_uses_the_old_prefix() {
    let old = [format!("{} §", "SPEC"), format!("{} Eq.", "SPEC")];
    let mut found = Vec::new();
    for (file, text) in crate_sources() {
        for (i, line) in text.lines().enumerate() {
            if old.iter().any(|o| line.contains(o.as_str())) {
                found.push(format!("{file}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "cite docs/method.md as `method §N`:\n{}",
        found.join("\n")
    );
}

#[test]
fn a_missing_heading_is_reported_with_file_and_line() {
    let method = method_doc();
    let files = crate_sources();
    // Drop the heading of §4.1 (the ViT encoder, cited from several files).
    let without: String = method
        .lines()
        .filter(|l| !(l.starts_with('#') && headings(l) == ["4.1"]))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(
        without, method,
        "docs/method.md has no §4.1 heading to drop"
    );
    // What dropping the heading adds to the report (whatever else the document lacks).
    let before = unresolved(&method, &files);
    let missing: Vec<String> = unresolved(&without, &files)
        .into_iter()
        .filter(|m| !before.contains(m))
        .collect();
    assert!(!missing.is_empty(), "dropping §4.1 went unnoticed");
    assert!(
        missing.iter().all(|m| m.contains("cites §4.1,")),
        "{missing:?}"
    );
    // Each report names a file and a line that really carries the citation.
    for m in &missing {
        let mut parts = m.splitn(3, ':');
        let (path, line) = (parts.next().unwrap(), parts.next().unwrap());
        let line: usize = line.parse().unwrap();
        let text = &files.iter().find(|(p, _)| p == path).unwrap().1;
        let cited = text.lines().nth(line - 1).unwrap();
        assert!(
            sections_cited(cited).contains(&"4.1".to_string()),
            "{m}: {cited}"
        );
    }
    // The same for an equation tag.
    let untagged = method.replace("(Eq. 13)", "(Eq. thirteen)");
    assert!(
        unresolved(&untagged, &files)
            .iter()
            .any(|m| m.contains("cites Eq. 13,") && !before.contains(m)),
        "removing the Eq. 13 tag went unnoticed"
    );
}

#[test]
fn citation_parser_reads_chains_ranges_and_stops_at_punctuation() {
    let c = |s: &str| sections_cited(&s.replace("CITE", &prefixes()[0]));
    assert_eq!(c("(CITE4.1.)"), ["4.1"]);
    assert_eq!(c("CITE3, §15 and"), ["3", "15"]);
    assert_eq!(c("CITE12.1–12.3"), ["12.1", "12.3"]);
    assert_eq!(c("CITE5–§10"), ["5", "10"]);
    assert_eq!(c("CITE2.2 and §14; CITE10/§14"), ["2.2", "14", "10", "14"]);
    // A list needs its `§`: a number after a comma is not a section.
    assert_eq!(c("CITE2.2, 75×75"), ["2.2"]);
    let m = format!("{}6.6", prefixes()[1]);
    assert_eq!(sections_cited(&m), ["6.6"]);
    let e = |s: &str| equations_cited(&s.replace("EQ", &eq_prefixes()[0]));
    assert_eq!(e("(EQ 19–20)"), ["19", "20"]);
    assert_eq!(e("EQ 8;"), ["8"]);
    assert!(tags_equation("(Eq. 13)", "13") && !tags_equation("(Eq. 13)", "1"));
    assert!(!tags_equation("see Eq. 13 above", "13"));
    assert_eq!(
        headings("## §4 Module I\n### §4.1 ViT\ntext §5\n#### §6.10."),
        ["4", "4.1", "6.10"]
    );
}

/// The document keeps the numbering of the restatement it replaces, when that file is at hand
/// (`$DARLC_SHARED/SPEC.md`, default `<crate>/../shared`): the same top-level and sub-section
/// numbers, no more and no fewer.
#[test]
fn docs_method_has_the_same_section_numbers_as_the_shared_restatement() {
    let shared = std::env::var_os("DARLC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared"));
    let Ok(spec) = std::fs::read_to_string(shared.join("SPEC.md")) else {
        eprintln!(
            "note: {} not found; skipping",
            shared.join("SPEC.md").display()
        );
        return;
    };
    // The restatement's headings read `## 4. Title` and `### 4.1 Title`.
    let spec_numbers: Vec<String> = spec
        .lines()
        .filter(|l| l.starts_with("## ") || l.starts_with("### "))
        .filter_map(|l| number_at(l.trim_start_matches('#').trim_start()).map(|(n, _)| n))
        .collect();
    assert!(spec_numbers.len() > 40, "{spec_numbers:?}");
    assert_eq!(headings(&method_doc()), spec_numbers);
}
