//! `darlc verify` and `darlc fixtures check` behaviour: the reference verifies against itself, a
//! perturbed, missing or incomplete candidate fails loudly and names what failed.

use darlc::fixtures::verify::Status;
use darlc::fixtures::{Manifest, Tier, check, registry, verify};
use darlc::io::{TensorData, TensorFile};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden")
}

/// A fresh copy of the committed golden set in a temporary folder.
fn copy_of_golden(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("darlc-fixtures-ver-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    for e in std::fs::read_dir(golden()).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
        }
    }
    d
}

fn run_verify(cand: &Path, tier: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_darlc"))
        .args(["verify", "--reference"])
        .arg(golden())
        .arg("--candidate")
        .arg(cand)
        .args(["--tier", tier])
        .output()
        .expect("run darlc")
}

/// `--tier` takes f32 or f64 only; anything else is refused by the parser, which lists both.
#[test]
fn verify_refuses_an_unknown_tier_and_names_the_tiers() {
    let out = run_verify(&golden(), "f16");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("'f16'") && err.contains("f32, f64"), "{err}");
}

#[test]
fn fixtures_check_library_passes_and_manifest_matches_registry() {
    let rep = check(&golden()).unwrap();
    assert!(rep.problems.is_empty(), "{:?}", rep.problems);
    assert_eq!(rep.cases, registry::cases().len());
    let m = Manifest::load(&golden()).unwrap();
    assert_eq!(m.cases.len(), rep.cases);
}

#[test]
fn fixtures_cover_every_tape_op_of_spec_17() {
    // method §17 points 1–8, as tape methods (or composites) named in the manifest.
    let ops: Vec<&str> = registry::cases().iter().map(|c| c.op).collect();
    for want in [
        "matmul_t",
        "batch_matmul",
        "add",
        "sub",
        "mul",
        "div",
        "sum_axis",
        "mean_axis",
        "sum",
        "mean",
        "reshape",
        "permute",
        "transpose",
        "gather_rows",
        "scatter_add_rows",
        "segment_softmax",
        "unary",
        "softmax",
        "log_softmax",
        "logsumexp",
        "layer_norm",
        "batch_norm_train",
        "batch_norm_eval",
        "l2_normalize",
        "tri_solve_lower",
        "log_det_chol",
        "mahalanobis",
    ] {
        assert!(ops.contains(&want), "no golden case for op `{want}`");
    }
    let m = Manifest::load(&golden()).unwrap();
    let functions: Vec<String> = m
        .cases
        .iter()
        .filter_map(|c| {
            c.config
                .get("function")
                .and_then(|f| f.as_str())
                .map(String::from)
        })
        .collect();
    for f in [
        "elu",
        "selu",
        "gelu",
        "sigmoid",
        "leaky_relu",
        "relu",
        "exp",
        "ln",
        "log1p",
        "expm1",
        "sqrt",
        "clamp",
    ] {
        assert!(functions.iter().any(|g| g == f), "no golden case for `{f}`");
    }
}

#[test]
fn fixtures_verify_reference_against_itself_passes() {
    for tier in [Tier::F32, Tier::F64] {
        let res = verify(&golden(), &golden(), tier).unwrap();
        assert!(res.len() > 100);
        assert!(res.iter().all(|r| r.passed() && r.max_abs == 0.0));
        let out = run_verify(&golden(), tier.name());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn fixtures_verify_fails_on_a_perturbed_candidate_and_names_the_tensor() {
    let cand = copy_of_golden("perturbed");
    let path = cand.join("layer_norm.safetensors");
    let mut f = TensorFile::load(&path).unwrap();
    let TensorData::F64(g) = f.tensors.get_mut("grad.gamma").unwrap() else {
        panic!("gradients are stored as f64")
    };
    // 1% relative change of one element: beyond the f32 gradient tolerance (rel 1e-3 + abs 1e-5,
    // |grad.gamma| entries are O(1) here).
    let v = g.iter_mut().nth(2).unwrap();
    assert!(v.abs() > 0.01);
    *v *= 1.01;
    f.save(&path).unwrap();

    let res = verify(&golden(), &cand, Tier::F32).unwrap();
    let failed: Vec<_> = res.iter().filter(|r| !r.passed()).collect();
    assert_eq!(failed.len(), 1, "exactly the perturbed tensor fails");
    assert_eq!(
        (failed[0].case.as_str(), failed[0].tensor.as_str()),
        ("layer_norm", "grad.gamma")
    );
    assert_eq!(failed[0].status, Status::Fail { worst: 2 });

    let out = run_verify(&cand, "f32");
    assert!(!out.status.success(), "verify must exit non-zero");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("FAIL"))
        .expect("a FAIL line");
    assert!(
        line.starts_with("layer_norm ") && line.contains("grad.gamma"),
        "{line}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("layer_norm/grad.gamma"));
    std::fs::remove_dir_all(&cand).unwrap();
}

#[test]
fn fixtures_verify_fails_on_missing_case_file_and_missing_tensor() {
    let cand = copy_of_golden("missing");
    std::fs::remove_file(cand.join("softmax.safetensors")).unwrap();
    let path = cand.join("mahalanobis.safetensors");
    let mut f = TensorFile::load(&path).unwrap();
    f.tensors.remove("grad.l").unwrap();
    f.save(&path).unwrap();

    let res = verify(&golden(), &cand, Tier::F32).unwrap();
    let failed: Vec<(String, String)> = res
        .iter()
        .filter(|r| !r.passed())
        .map(|r| (r.case.clone(), r.tensor.clone()))
        .collect();
    // softmax: out, loss, grad.x — all missing; mahalanobis: grad.l missing.
    assert_eq!(
        failed,
        vec![
            ("softmax".to_string(), "out".to_string()),
            ("softmax".to_string(), "loss".to_string()),
            ("softmax".to_string(), "grad.x".to_string()),
            ("mahalanobis".to_string(), "grad.l".to_string()),
        ]
    );
    assert!(
        res.iter()
            .any(|r| r.tensor == "grad.l" && r.status == Status::MissingTensor)
    );
    let out = run_verify(&cand, "f32");
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("MISSING case file"), "{stdout}");
    assert!(stdout.contains("MISSING tensor"), "{stdout}");
    std::fs::remove_dir_all(&cand).unwrap();
}

#[test]
fn fixtures_check_detects_a_changed_golden_file() {
    let dir = copy_of_golden("check");
    let path = dir.join("matmul.nn.safetensors");
    let mut f = TensorFile::load(&path).unwrap();
    let TensorData::F64(o) = f.tensors.get_mut("out").unwrap() else {
        panic!("f64")
    };
    o.iter_mut().for_each(|x| *x += 1e-9);
    f.save(&path).unwrap();
    let rep = check(&dir).unwrap();
    assert_eq!(rep.problems.len(), 1, "{:?}", rep.problems);
    assert!(rep.problems[0].contains("`out`"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fixtures_cover_every_composite_part_of_spec_17() {
    // method §17 points 10–19 and the parts of Module II without a gradient (issue 27).
    let ops: Vec<&str> = registry::cases().iter().map(|c| c.op).collect();
    for want in [
        "gat.TiedAutoencoder",
        "gat.L_GAT",
        "gat.train_step",
        "gat.train_steps",
        "nn.MultiHeadAttention",
        "nn.Block",
        "module1.train_step",
        "smm.em",
        "smm.init",
        "smm.em_fit",
        "losses.l_size_l_lh",
        "losses.target_distribution",
        "similarity.seeding",
        "k_infer.eigengap",
        "joint.epoch_step",
        "joint.batch_step",
    ] {
        assert!(ops.contains(&want), "no golden case for `{want}`");
    }
}

fn f64_tensor(case: &str, name: &str) -> ndarray::ArrayD<f64> {
    let f = TensorFile::load(&golden().join(format!("{case}.safetensors"))).unwrap();
    match f.tensors.get(name) {
        Some(TensorData::F64(a)) => a.clone(),
        _ => panic!("{case}: no f64 tensor `{name}`"),
    }
}

fn max_abs_diff(a: &ndarray::ArrayD<f64>, b: &ndarray::ArrayD<f64>) -> f64 {
    a.iter()
        .zip(b.iter())
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn fixtures_make_the_parts_that_used_to_hide_visible() {
    // L_size is active: some cluster lies below tau = 0.2/K.
    let l = f64_tensor("losses.tiny.l_size", "l_size");
    assert!(l.iter().all(|&v| v > 1e-4), "L_size = {l}");
    // The EMA of the target head moves in the epoch step (the targets differ from the online head).
    for case in ["joint.tiny.epoch_step", "joint.tiny.batch_step"] {
        let d = max_abs_diff(
            &f64_tensor(case, "target.g_t.W"),
            &f64_tensor(case, "after.target.g_t.W"),
        );
        assert!(d > 1e-7, "{case}: target.g_t.W moved by only {d:e}");
        // A structurally zero gradient's parameter moves by its stored Adam state, far above noise.
        let d = max_abs_diff(
            &f64_tensor(case, "vit.block0.attn.b_k"),
            &f64_tensor(case, "after.vit.block0.attn.b_k"),
        );
        assert!(d > 1e-6, "{case}: b_k moved by only {d:e}");
    }
    // ν at both bounds, K̂ = 3 on the three-clique graph.
    let nu = f64_tensor("smm.tiny.nu_bounds", "after.smm.nu");
    assert_eq!(nu.iter().copied().collect::<Vec<_>>(), vec![1.0, 200.0]);
    assert_eq!(f64_tensor("k_infer.tiny.eigengap", "k_hat").sum(), 3.0);
    assert_eq!(f64_tensor("smm.tiny.em_converged", "converged").sum(), 1.0);
}

#[test]
fn fixtures_structurally_zero_gradients_have_an_absolute_tolerance() {
    let m = Manifest::load(&golden()).unwrap();
    let case = m
        .cases
        .iter()
        .find(|c| c.name == "joint.tiny.batch_step")
        .unwrap();
    for t in [
        "grad.vit.block0.attn.b_k",
        "grad.vit.block1.attn.b_k",
        "grad.proj.lin1.b",
    ] {
        let tol = case.tol_of(t, "outputs", Tier::F64);
        assert_eq!((tol.rel, tol.abs), (0.0, 1e-12), "{t}");
    }
    // A tensor without an override keeps its role's tolerance.
    let tol = case.tol_of("grad.vit.block0.attn.b_q", "outputs", Tier::F64);
    assert_eq!((tol.rel, tol.abs), (1e-10, 1e-12));
    // verify applies the override: 2e-12 on a structurally zero gradient fails.
    let cand = copy_of_golden("structural_zero");
    let path = cand.join("joint.tiny.batch_step.safetensors");
    let mut f = TensorFile::load(&path).unwrap();
    let TensorData::F64(g) = f.tensors.get_mut("grad.proj.lin1.b").unwrap() else {
        panic!("f64")
    };
    *g.iter_mut().next().unwrap() += 2e-12;
    f.save(&path).unwrap();
    let res = verify(&golden(), &cand, Tier::F64).unwrap();
    let failed: Vec<_> = res
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.tensor.as_str())
        .collect();
    assert_eq!(failed, vec!["grad.proj.lin1.b"]);
}
