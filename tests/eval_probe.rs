//! The gene-pair interaction probe (`darlc::eval::probe`, paper §4.3.1).

use darlc::autodiff::gradcheck::assert_grad;
use darlc::eval::input::{IdTable, load_embeddings};
use darlc::eval::probe::{
    Pair, ProbeMlp, ProbeParams, auroc, bce_with_logits, pair_features, read_pairs, run_probe,
    stratified_folds,
};
use darlc::nn::Bound;
use darlc::rng;
use ndarray::{Array2, ArrayD, IxDyn};
use rand::Rng;
use std::path::{Path, PathBuf};

fn dir(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("darlc-probe-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Synthetic embeddings: `n_clusters` latent centres (N(0, 3²) per coordinate) and genes drawn
/// around them with unit noise; `per_class` pairs with label 1 (both genes in one cluster) and as
/// many with label 0 (different clusters), no unordered pair repeated.
fn synthetic(per_class: usize, seed: u64) -> (Array2<f64>, Vec<Pair>) {
    let (n_clusters, per_cluster, d) = (6, 20, 16);
    let mut r = rng::stream(seed, "test.probe.synthetic");
    let centres = Array2::from_shape_fn((n_clusters, d), |_| 3.0 * normal(&mut r));
    let n = n_clusters * per_cluster;
    let cluster: Vec<usize> = (0..n).map(|i| i / per_cluster).collect();
    let x = Array2::from_shape_fn((n, d), |(i, j)| centres[[cluster[i], j]] + normal(&mut r));
    let mut seen = std::collections::BTreeSet::new();
    let mut pairs = Vec::new();
    for want in [true, false] {
        let mut got = 0;
        while got < per_class {
            let (a, b) = (r.random_range(0..n), r.random_range(0..n));
            if a == b || (cluster[a] == cluster[b]) != want || !seen.insert((a.min(b), a.max(b))) {
                continue;
            }
            pairs.push(Pair { a, b, label: want });
            got += 1;
        }
    }
    (x, pairs)
}

/// Standard normal by Box–Muller.
fn normal(r: &mut darlc::rng::Stream) -> f64 {
    let u1: f64 = r.random_range(f64::EPSILON..1.0);
    let u2: f64 = r.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[test]
fn grad_bce_with_logits_through_the_mlp() {
    // Inputs W_1 [6, 5], b_1 [5], W_2 [5, 1], b_2 [1]; fixed features and 0/1 targets.
    let mut r = rng::stream(3, "test.probe.grad");
    let mlp = ProbeMlp::new(6, 5, &mut r);
    let mut inputs: Vec<ArrayD<f64>> = mlp
        .store
        .ids()
        .map(|id| mlp.store.get(id).clone())
        .collect();
    // Non-zero biases so that they matter; values away from ReLU's kink are overwhelmingly likely.
    inputs[1] = ArrayD::from_shape_simple_fn(IxDyn(&[5]), || r.random_range(-0.5..0.5));
    inputs[3] = ArrayD::from_elem(IxDyn(&[1]), 0.3);
    let x = Array2::from_shape_fn((8, 6), |_| r.random_range(-2.0..2.0)).into_dyn();
    let y = ArrayD::from_shape_fn(IxDyn(&[8, 1]), |i| (i[0] % 3 == 0) as u8 as f64);
    assert_grad("probe mlp + bce_with_logits", &inputs, |t, v| {
        let p = Bound { vars: v.to_vec() };
        let xv = t.constant(x.clone());
        let yv = t.constant(y.clone());
        let logits = mlp.forward(t, &p, xv);
        bce_with_logits(t, logits, yv)
    });
    // The loss alone, on logits away from the |x| kink at 0.
    let logits = ArrayD::from_shape_vec(IxDyn(&[4, 1]), vec![-2.0, -0.3, 0.4, 3.0]).unwrap();
    let yv = ArrayD::from_shape_vec(IxDyn(&[4, 1]), vec![1.0, 0.0, 0.0, 1.0]).unwrap();
    assert_grad("bce_with_logits", &[logits], |t, v| {
        let y = t.constant(yv.clone());
        bce_with_logits(t, v[0], y)
    });
}

#[test]
fn clustered_pairs_are_learned() {
    let (x, pairs) = synthetic(200, 1);
    let r = run_probe(x.view(), &pairs, &ProbeParams::default()).unwrap();
    assert_eq!(r.folds.len(), 5);
    eprintln!(
        "clustered: accuracy {:.4} ± {:.4}, AUROC {:?}",
        r.accuracy_mean, r.accuracy_std, r.auroc_mean
    );
    assert!(r.accuracy_mean >= 0.9, "accuracy {}", r.accuracy_mean);
    assert!(r.auroc_mean.unwrap() >= 0.9, "AUROC {:?}", r.auroc_mean);
    // Deterministic: a second run gives bit-identical figures.
    let again = run_probe(x.view(), &pairs, &ProbeParams::default()).unwrap();
    let accs = |r: &darlc::eval::probe::ProbeResult| -> Vec<f64> {
        r.folds.iter().map(|f| f.accuracy).collect()
    };
    assert_eq!(accs(&r), accs(&again));
    assert_eq!(r.folds[0].train_loss, again.folds[0].train_loss);
}

#[test]
fn shuffled_labels_give_chance_accuracy() {
    let (x, mut pairs) = synthetic(200, 2);
    let mut labels: Vec<bool> = pairs.iter().map(|p| p.label).collect();
    let mut r = rng::stream(5, "test.probe.shuffle");
    for i in (1..labels.len()).rev() {
        labels.swap(i, r.random_range(0..=i));
    }
    for (p, l) in pairs.iter_mut().zip(labels) {
        p.label = l;
    }
    let res = run_probe(x.view(), &pairs, &ProbeParams::default()).unwrap();
    eprintln!(
        "shuffled: accuracy {:.4} ± {:.4}, AUROC {:?}",
        res.accuracy_mean, res.accuracy_std, res.auroc_mean
    );
    assert!(
        (0.35..=0.65).contains(&res.accuracy_mean),
        "accuracy {} on shuffled labels",
        res.accuracy_mean
    );
}

#[test]
fn folds_are_stratified_balanced_and_deterministic() {
    // 21 positives (i ≡ 1 mod 3), 43 negatives, 5 folds: neither class divides evenly.
    let labels: Vec<bool> = (0..64).map(|i| i % 3 == 1).collect();
    let n1 = labels.iter().filter(|&&l| l).count();
    let n0 = labels.len() - n1;
    let k = 5;
    let f = stratified_folds(&labels, k, 11);
    assert_eq!(f, stratified_folds(&labels, k, 11));
    assert_ne!(f, stratified_folds(&labels, k, 12));
    let count = |class: Option<bool>, fold: usize| {
        (0..labels.len())
            .filter(|&i| f[i] == fold && class.is_none_or(|c| labels[i] == c))
            .count()
    };
    for fold in 0..k {
        // Per class: n_c / k rounded down or up; overall likewise.
        for (class, n) in [(Some(true), n1), (Some(false), n0), (None, n1 + n0)] {
            let c = count(class, fold);
            assert!(
                c == n / k || c == n.div_ceil(k),
                "fold {fold} class {class:?}: {c}"
            );
        }
    }
}

#[test]
fn pair_feature_is_symmetric() {
    let mut r = rng::stream(8, "test.probe.sym");
    let x = Array2::from_shape_fn((5, 7), |_| r.random_range(-3.0..3.0));
    let ab = pair_features(
        x.view(),
        &[Pair {
            a: 1,
            b: 3,
            label: true,
        }],
    );
    let ba = pair_features(
        x.view(),
        &[Pair {
            a: 3,
            b: 1,
            label: true,
        }],
    );
    assert_eq!(ab, ba);
    assert_eq!(ab.ncols(), 14);
    // First half e_a ⊙ e_b, second |e_a − e_b|.
    assert_eq!(ab[[0, 2]], x[[1, 2]] * x[[3, 2]]);
    assert_eq!(ab[[0, 9]], (x[[1, 2]] - x[[3, 2]]).abs());
    // The trained model's prediction is therefore order-invariant too.
    let (x, pairs) = synthetic(40, 4);
    let params = ProbeParams {
        epochs: 20,
        ..Default::default()
    };
    let feats = pair_features(x.view(), &pairs);
    let labels: Vec<bool> = pairs.iter().map(|p| p.label).collect();
    let (mlp, _) = darlc::eval::probe::train_mlp(&feats, &labels, &params, 0).unwrap();
    let swapped: Vec<Pair> = pairs
        .iter()
        .map(|p| Pair {
            a: p.b,
            b: p.a,
            label: p.label,
        })
        .collect();
    assert_eq!(
        mlp.logits(&feats),
        mlp.logits(&pair_features(x.view(), &swapped))
    );
}

fn ids() -> IdTable {
    IdTable::new(
        vec!["G1".into(), "G2".into(), "G3".into()],
        Some(vec!["Alpha".into(), "Beta".into(), "Gamma".into()]),
        Path::new("genes.csv"),
    )
    .unwrap()
}

#[test]
fn pairs_file_errors_name_file_and_line() {
    let d = dir("errors");
    let p = d.join("pairs.csv");
    let emb = Path::new("emb.safetensors");
    // Missing gene on line 3 (gene_b).
    std::fs::write(&p, "gene_a,gene_b,label\nG1,Beta,1\nG2,Nope,0\n").unwrap();
    let e = read_pairs(&p, &ids(), emb, false).unwrap_err().to_string();
    assert!(
        e.contains("pairs.csv:3") && e.contains("`Nope`") && e.contains("emb.safetensors"),
        "{e}"
    );
    // …or skipped and counted.
    let s = read_pairs(&p, &ids(), emb, true).unwrap();
    assert_eq!(s.skipped, 1);
    assert_eq!(
        s.pairs,
        vec![Pair {
            a: 0,
            b: 1,
            label: true
        }]
    );
    // Malformed label on line 4.
    std::fs::write(&p, "gene_a,gene_b,label\nG1,G2,1\nG1,G3,0\nG2,G3,yes\n").unwrap();
    let e = read_pairs(&p, &ids(), emb, false).unwrap_err().to_string();
    assert!(e.contains("pairs.csv:4") && e.contains("`yes`"), "{e}");
    // Wrong header.
    std::fs::write(&p, "a,b,label\nG1,G2,1\n").unwrap();
    let e = read_pairs(&p, &ids(), emb, false).unwrap_err().to_string();
    assert!(e.contains("pairs.csv:1") && e.contains("gene_a"), "{e}");
    // The same unordered pair twice (reversed on line 3).
    std::fs::write(&p, "gene_a,gene_b,label\nG1,G2,1\nBeta,Alpha,1\n").unwrap();
    let e = read_pairs(&p, &ids(), emb, false).unwrap_err().to_string();
    assert!(e.contains("pairs.csv:3") && e.contains("line 2"), "{e}");
    // Columns in another order with an extra one.
    std::fs::write(&p, "label,note,gene_b,gene_a\n0,x,G3,G1\n").unwrap();
    let s = read_pairs(&p, &ids(), emb, false).unwrap();
    assert_eq!(
        s.pairs,
        vec![Pair {
            a: 0,
            b: 2,
            label: false
        }]
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn auroc_on_hand_computed_cases() {
    // scikit-learn's roc_auc_score documentation example: y = [0, 0, 1, 1],
    // scores [0.1, 0.4, 0.35, 0.8] → 0.75 (of the 4 positive–negative pairs, 3 are ordered
    // correctly: 0.35 > 0.1, 0.8 > 0.1, 0.8 > 0.4; 0.35 < 0.4).
    let a = auroc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
    assert!((a - 0.75).abs() < 1e-15);
    // A tie: positives {0.5, 0.9}, negatives {0.5, 0.2}. Pair counts by hand: (0.5, 0.5) tie
    // = ½, (0.5, 0.2) = 1, (0.9, 0.5) = 1, (0.9, 0.2) = 1 → 3.5 / 4 = 0.875.
    let a = auroc(&[0.5, 0.5, 0.2, 0.9], &[true, false, false, true]).unwrap();
    assert!((a - 0.875).abs() < 1e-15);
    // Many ties, cross-checked with scikit-learn 1.9.1:
    //   roc_auc_score([1,0,0,1,0,1,0,1,1,0,1,0],
    //                 [.3,.1,.3,.7,.7,.7,.2,.9,.1,.3,.5,.5]) == 0.6944444444444445 (= 25/36)
    let a = auroc(
        &[0.3, 0.1, 0.3, 0.7, 0.7, 0.7, 0.2, 0.9, 0.1, 0.3, 0.5, 0.5],
        &[
            true, false, false, true, false, true, false, true, true, false, true, false,
        ],
    )
    .unwrap();
    assert!((a - 25.0 / 36.0).abs() < 1e-15, "{a}");
    // All scores tied → 0.5; one class only → undefined.
    assert_eq!(auroc(&[1.0, 1.0, 1.0], &[true, false, false]), Some(0.5));
    assert_eq!(auroc(&[0.1, 0.2], &[true, true]), None);
}

#[test]
fn cli_reads_csv_embeddings_and_writes_json() {
    let d = dir("cli");
    let (x, pairs) = synthetic(30, 6);
    let mut csv = String::from("id");
    for j in 0..x.ncols() {
        csv.push_str(&format!(",d{j}"));
    }
    csv.push('\n');
    for i in 0..x.nrows() {
        csv.push_str(&format!("g{i}"));
        for v in x.row(i) {
            csv.push_str(&format!(",{v}"));
        }
        csv.push('\n');
    }
    let emb = d.join("emb.csv");
    std::fs::write(&emb, csv).unwrap();
    let mut pf = String::from("gene_a,gene_b,label\n");
    for p in &pairs {
        pf.push_str(&format!("g{},g{},{}\n", p.a, p.b, p.label as u8));
    }
    let pairs_path = d.join("pairs.csv");
    std::fs::write(&pairs_path, pf).unwrap();
    let json = d.join("probe.json");
    let args = darlc::cli::probe::ProbeArgs {
        embeddings: emb.clone(),
        tensor: None,
        pairs: pairs_path,
        skip_missing: false,
        folds: 3,
        hidden: 8,
        epochs: 30,
        lr: 1e-2,
        batch_size: 0,
        seed: 1,
        json: Some(json.clone()),
    };
    darlc::cli::probe::probe_cmd(args).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["n_pairs"], 60);
    assert_eq!(v["folds"].as_array().unwrap().len(), 3);
    assert_eq!(v["feature_dims"], 32);
    // The same pairs through the library give the same mean accuracy.
    let m = load_embeddings(&emb, None, None).unwrap();
    let lib = run_probe(
        m.x.view(),
        &pairs,
        &ProbeParams {
            folds: 3,
            hidden: 8,
            epochs: 30,
            lr: 1e-2,
            batch_size: 0,
            seed: 1,
        },
    )
    .unwrap();
    assert_eq!(v["accuracy_mean"].as_f64().unwrap(), lib.accuracy_mean);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn too_few_pairs_per_class_is_an_error() {
    let x = Array2::from_shape_fn((4, 2), |(i, j)| (i + j) as f64);
    let pairs = vec![
        Pair {
            a: 0,
            b: 1,
            label: true,
        },
        Pair {
            a: 0,
            b: 2,
            label: false,
        },
        Pair {
            a: 1,
            b: 2,
            label: false,
        },
    ];
    let e = run_probe(x.view(), &pairs, &ProbeParams::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least 5 pairs of each label"), "{e}");
}
