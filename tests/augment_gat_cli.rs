//! `darlc smooth` end to end on the embedded MOB section (few epochs, narrow GAT): the files, their
//! tensor names and shapes, Eq. 5 (non-negative, background 0), and GKS as the alternative.

use clap::Parser;
use darlc::cli::smooth::{SmoothArgs, run_smooth};
use darlc::io::{TensorData, TensorFile};

#[derive(Parser)]
struct Wrap {
    #[command(flatten)]
    a: SmoothArgs,
}

fn run(out: &std::path::Path, extra: &[&str]) {
    let mut argv = vec![
        "smooth",
        "--out",
        out.to_str().unwrap(),
        "--gat-epochs",
        "2",
        "--gat-hidden",
        "8",
        "--gat-latent",
        "4",
        "--quiet",
        "--threads",
        "2",
    ];
    argv.extend_from_slice(extra);
    run_smooth(Wrap::parse_from(argv).a).unwrap();
}

#[test]
fn smooth_writes_views_parameters_and_picture() {
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("darlc-smooth-cli-{}", std::process::id()));
    run(&out, &[]);
    let f = TensorFile::load(&out.join("smoothed.safetensors")).unwrap();
    let TensorData::F32(sm) = f.get("smoothed", &out).unwrap() else {
        panic!("smoothed must be f32")
    };
    let TensorData::U8(mask) = f.get("mask", &out).unwrap() else {
        panic!("mask must be u8")
    };
    let (n, c, h, w) = (sm.shape()[0], sm.shape()[1], sm.shape()[2], sm.shape()[3]);
    assert_eq!((c, mask.shape()), (1, &[h, w][..]));
    assert!(n > 1000, "MOB keeps thousands of genes, got {n}");
    assert!(sm.iter().all(|&v| v >= 0.0 && v.is_finite()));
    for g in [0, n / 2, n - 1] {
        for r in 0..h {
            for q in 0..w {
                if mask[[r, q]] == 0 {
                    assert_eq!(sm[[g, 0, r, q]], 0.0);
                }
            }
        }
    }
    let p = TensorFile::load(&out.join("gat.safetensors")).unwrap();
    assert_eq!(p.get("gat.W1", &out).unwrap().shape(), &[n, 8]);
    assert_eq!(p.get("gat.W2", &out).unwrap().shape(), &[8, 4]);
    assert_eq!(p.get("gat.a_c", &out).unwrap().shape(), &[8]);
    assert_eq!(p.get("gat.a_n", &out).unwrap().shape(), &[8]);
    let png = std::fs::read(out.join("smoothing.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let js: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("smoothing.json")).unwrap()).unwrap();
    assert_eq!(js["shown"].as_array().unwrap().len(), 6);
    // GKS: no parameter file is written; the views differ from the GAT's.
    let out2 = out.join("gks");
    run(&out2, &["--smoothing", "gks"]);
    assert!(!out2.join("gat.safetensors").exists());
    let f2 = TensorFile::load(&out2.join("smoothed.safetensors")).unwrap();
    assert_ne!(
        f2.get("smoothed", &out2).unwrap(),
        f.get("smoothed", &out).unwrap()
    );
    std::fs::remove_dir_all(&out).ok();
}
