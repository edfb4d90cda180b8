//! End-to-end tests of `darlc eval` and `darlc leiden` on small generated files.

use darlc::eval::metrics::{ari, dbie, dbip, homogeneity_completeness, nmi, sam};
use darlc::io::{TensorData, TensorFile};
use ndarray::{Array2, ArrayD, IxDyn};
use rand::Rng;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workdir(name: &str) -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("darlc-eval-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn darlc(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_darlc"))
        .args(args)
        .output()
        .expect("binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// 30 points in 3 well-separated 2-D blobs; point i belongs to blob i % 3.
fn blobs() -> Array2<f64> {
    let mut r = darlc::rng::stream(7, "test.eval_cli");
    Array2::from_shape_fn((30, 2), |(i, j)| {
        let centre = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]][i % 3][j];
        centre + r.random_range(-1.0..1.0)
    })
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn eval_embeddings_labels_truth_matches_the_library() {
    let d = workdir("basic");
    let x = blobs();
    // Embeddings written in reverse row order, labels in forward order: ids must be matched by
    // name. Predicted labels merge blobs 1 and 2 for items 0..10, otherwise follow the blob.
    let mut emb = String::from("id,e0,e1\n");
    for i in (0..30).rev() {
        emb += &format!("g{i},{},{}\n", x[[i, 0]], x[[i, 1]]);
    }
    let pred: Vec<usize> = (0..30)
        .map(|i| if i < 10 && i % 3 == 2 { 1 } else { i % 3 })
        .collect();
    let truth: Vec<usize> = (0..30).map(|i| i % 3).collect();
    let mut labels = String::from("gene,cluster,confidence\n");
    let mut truth_csv = String::from("id,blob\n");
    for i in 0..30 {
        labels += &format!("g{i},c{},0.9\n", pred[i]);
        truth_csv += &format!("g{},b{}\n", 29 - i, truth[29 - i]);
    }
    write(&d.join("emb.csv"), &emb);
    write(&d.join("labels.csv"), &labels);
    write(&d.join("truth.csv"), &truth_csv);
    let j = d.join("out.json");
    let (ok, out, err) = darlc(&[
        "eval",
        "--embeddings",
        s(&d.join("emb.csv")),
        "--labels",
        s(&d.join("labels.csv")),
        "--truth",
        s(&d.join("truth.csv")),
        "--json",
        s(&j),
    ]);
    assert!(ok, "{err}");
    for m in ["DBIE", "DBIP", "NMI", "ARI", "ACC", "HOM", "COM", "SAM"] {
        assert!(out.contains(m), "table lacks {m}:\n{out}");
    }
    assert!(out.contains("computed on the embeddings"));
    let v = json(&j);
    // Expected values: the library on the rows in their original order (tested against
    // hand computations and scikit-learn in src/eval/metrics.rs).
    let close = |a: &serde_json::Value, b: f64| (a.as_f64().unwrap() - b).abs() < 1e-12;
    assert!(close(&v["dbie"], dbie(x.view(), &pred).unwrap()));
    assert!(close(&v["dbip"], dbip(x.view(), &pred).unwrap()));
    assert!(close(&v["nmi"], nmi(&truth, &pred).unwrap()));
    assert!(close(&v["ari"], ari(&truth, &pred).unwrap()));
    let (hom, com) = homogeneity_completeness(&truth, &pred).unwrap();
    assert!(close(&v["homogeneity"], hom));
    assert!(close(&v["completeness"], com));
    assert!(close(&v["sam"], sam(x.view(), &pred).unwrap().mean));
    // ACC by hand: blobs 0 and 1 fully matched, blob 2 loses items 2, 5, 8 → 27/30.
    assert!(close(&v["acc"], 27.0 / 30.0));
    assert_eq!(v["items"], 30);
    assert_eq!(v["clusters"], 3);
    assert_eq!(v["dbi_data"], "embeddings");

    // Without truth the truth metrics are n/a.
    let (ok, out, _) = darlc(&[
        "eval",
        "--embeddings",
        s(&d.join("emb.csv")),
        "--labels",
        s(&d.join("labels.csv")),
    ]);
    assert!(ok);
    assert!(
        out.lines()
            .any(|l| l.starts_with("NMI") && l.contains("n/a"))
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("ACC") && l.contains("n/a"))
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn missing_ids_are_errors_naming_file_and_id() {
    let d = workdir("missing");
    write(&d.join("emb.csv"), "id,a\nx,0\ny,1\nz,5\n");
    write(&d.join("labels.csv"), "id,c\nx,0\ny,0\nw,1\n");
    let (ok, _, err) = darlc(&[
        "eval",
        "--embeddings",
        s(&d.join("emb.csv")),
        "--labels",
        s(&d.join("labels.csv")),
    ]);
    assert!(!ok);
    assert!(err.contains("emb.csv") && err.contains("`w`"), "{err}");
    // Truth lacking an id.
    write(&d.join("labels.csv"), "id,c\nx,0\ny,0\nz,1\n");
    write(&d.join("truth.csv"), "id,t\nx,0\ny,0\n");
    let (ok, _, err) = darlc(&[
        "eval",
        "--embeddings",
        s(&d.join("emb.csv")),
        "--labels",
        s(&d.join("labels.csv")),
        "--truth",
        s(&d.join("truth.csv")),
    ]);
    assert!(!ok);
    assert!(err.contains("truth.csv") && err.contains("`z`"), "{err}");
    // A duplicated id in a label file names the line.
    write(&d.join("labels.csv"), "id,c\nx,0\nx,1\n");
    let (ok, _, err) = darlc(&[
        "eval",
        "--embeddings",
        s(&d.join("emb.csv")),
        "--labels",
        s(&d.join("labels.csv")),
    ]);
    assert!(!ok);
    assert!(err.contains("labels.csv:3"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn eval_run_folder_uses_images_and_genes_csv() {
    let d = workdir("run");
    let x = blobs();
    let n = 30;
    // genes.csv gives ids and symbols; clusters.csv names genes by symbol, in another order.
    let mut genes = String::from("index,gene_id,symbol\n");
    for i in 0..n {
        genes += &format!("{i},ENSG{i:03},SYM{i}\n");
    }
    write(&d.join("genes.csv"), &genes);
    let mut clusters = String::from("gene,cluster,confidence\n");
    for i in (0..n).rev() {
        clusters += &format!("SYM{i},{},1.0\n", i % 3);
    }
    write(&d.join("clusters.csv"), &clusters);
    // `eval --run` reads only finished runs: `darlc run` writes run.json last.
    write(&d.join("run.json"), "{\"complete\": true}\n");
    let mut emb = TensorFile::new();
    emb.insert_float("z", x.mapv(|v| v as f32).into_dyn());
    emb.insert_float("h", Array2::<f32>::zeros((n, 4)).into_dyn());
    emb.save(&d.join("embeddings.safetensors")).unwrap();
    // Images 1×3×3 whose tissue pixels (mask: the first two) hold the blob coordinates; the
    // masked-out pixels hold noise that would change every metric if it were used.
    let mut img = vec![0f32; n * 9];
    let mut r = darlc::rng::stream(1, "test.noise");
    for i in 0..n {
        img[i * 9] = x[[i, 0]] as f32;
        img[i * 9 + 1] = x[[i, 1]] as f32;
        for p in 2..9 {
            img[i * 9 + p] = r.random_range(0.0..100.0);
        }
    }
    let mut imf = TensorFile::new();
    imf.insert(
        "images",
        TensorData::F32(ArrayD::from_shape_vec(IxDyn(&[n, 1, 3, 3]), img).unwrap()),
    );
    let mut mask = vec![0u8; 9];
    mask[0] = 1;
    mask[1] = 1;
    imf.insert(
        "mask",
        TensorData::U8(ArrayD::from_shape_vec(IxDyn(&[3, 3]), mask).unwrap()),
    );
    imf.save(&d.join("images.safetensors")).unwrap();
    let j = d.join("eval.json");
    let (ok, out, err) = darlc(&["eval", "--run", s(&d), "--json", s(&j)]);
    assert!(ok, "{err}");
    assert!(out.contains("data metrics on images"), "{out}");
    let v = json(&j);
    let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
    // The f32 images hold the coordinates rounded to f32.
    let x32 = x.mapv(|v| v as f32 as f64);
    let want = dbie(x32.view(), &labels).unwrap();
    assert!((v["dbie"].as_f64().unwrap() - want).abs() < 1e-12 * want);
    assert_eq!(v["dbi_data"], "images");
    assert!(v["nmi"].is_null());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn leiden_then_eval_recovers_blobs() {
    let d = workdir("leiden");
    let x = blobs();
    let mut emb = String::from("id,e0,e1\n");
    let mut truth = String::from("id,blob\n");
    for i in 0..30 {
        emb += &format!("p{i},{},{}\n", x[[i, 0]], x[[i, 1]]);
        truth += &format!("p{i},{}\n", i % 3);
    }
    write(&d.join("emb.csv"), &emb);
    write(&d.join("truth.csv"), &truth);
    let out_csv = d.join("leiden.csv");
    let (ok, _, err) = darlc(&[
        "leiden",
        "--embeddings",
        s(&d.join("emb.csv")),
        "--knn",
        "5",
        "--out",
        s(&out_csv),
    ]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&out_csv).unwrap();
    assert!(text.starts_with("gene,cluster\n"));
    let j = d.join("e.json");
    let (ok, _, err) = darlc(&[
        "eval",
        "--embeddings",
        s(&d.join("emb.csv")),
        "--labels",
        s(&out_csv),
        "--truth",
        s(&d.join("truth.csv")),
        "--json",
        s(&j),
    ]);
    assert!(ok, "{err}");
    let v = json(&j);
    assert_eq!(v["nmi"].as_f64().unwrap(), 1.0);
    assert_eq!(v["acc"].as_f64().unwrap(), 1.0);
    // Same seed, same file.
    let again = d.join("leiden2.csv");
    darlc(&[
        "leiden",
        "--embeddings",
        s(&d.join("emb.csv")),
        "--knn",
        "5",
        "--out",
        s(&again),
    ]);
    assert_eq!(text, std::fs::read_to_string(&again).unwrap());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn family_benchmark_from_the_command_line() {
    let d = workdir("families");
    // Four built-in families, 5 genes each, around separated centres, plus unrelated genes.
    let syms = [
        "HLA-A", "HLA-B", "HLA-C", "HLA-E", "HLA-F", "GABRA1", "GABRA2", "GABRB1", "GABRB2",
        "GABRG2", "RPL3", "RPL4", "RPL5", "RPL6", "RPL7", "MT1X", "MT2A", "MT1E", "MT1F", "MT1G",
        "ACTB", "MT-CO1",
    ];
    let mut r = darlc::rng::stream(2, "test.families_cli");
    let mut emb = String::from("id,a,b,c,d\n");
    let mut labels = String::from("id,cluster\n");
    for (i, g) in syms.iter().enumerate() {
        let v: Vec<String> = (0..4)
            .map(|j| {
                let c = if i / 5 == j { 10.0 } else { 0.0 };
                (c + r.random_range(-1.0..1.0)).to_string()
            })
            .collect();
        emb += &format!("{g},{}\n", v.join(","));
        labels += &format!("{g},{}\n", (i / 5).min(3));
    }
    write(&d.join("emb.csv"), &emb);
    write(&d.join("labels.csv"), &labels);
    let j = d.join("f.json");
    let (ok, out, err) = darlc(&[
        "eval",
        "--embeddings",
        s(&d.join("emb.csv")),
        "--labels",
        s(&d.join("labels.csv")),
        "--families",
        "--json",
        s(&j),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("family NMI"), "{out}");
    let v = json(&j);
    let f = &v["families"];
    assert_eq!(f["genes"].as_array().unwrap().len(), 20); // ACTB and MT-CO1 excluded
    assert_eq!(f["nmi"].as_f64().unwrap(), 1.0);
    assert_eq!(f["ari"].as_f64().unwrap(), 1.0);
    // Without labels: only the family benchmark, same numbers.
    let j2 = d.join("f2.json");
    let (ok, out, err) = darlc(&[
        "eval",
        "--embeddings",
        s(&d.join("emb.csv")),
        "--families",
        "--json",
        s(&j2),
    ]);
    assert!(ok, "{err}");
    assert!(!out.contains("DBIE"), "{out}");
    assert_eq!(json(&j2)["families"], v["families"]);
    // A family file instead of the rules; one gene is absent from the embeddings.
    write(
        &d.join("fam.csv"),
        "gene,family\nHLA-A,x\nHLA-B,x\nHLA-C,x\nRPL3,y\nRPL4,y\nRPL5,y\nNOPE,y\n",
    );
    let (ok, out, err) = darlc(&[
        "eval",
        "--embeddings",
        s(&d.join("emb.csv")),
        "--labels",
        s(&d.join("labels.csv")),
        "--families",
        s(&d.join("fam.csv")),
        "--knn",
        "2",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("NOPE"), "{out}");
    assert!(out.contains("family NMI 1.000000"), "{out}");
    std::fs::remove_dir_all(&d).unwrap();
}
