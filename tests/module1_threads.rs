//! Module I results do not depend on the thread count (method §0): one training step and a short
//! `darlc embed` run give byte-identical results on 1 and 2 threads.

use clap::Parser;
use darlc::cli::embed::embed;
use darlc::cli::{Cli, Command};
use darlc::io::TensorFile;
use darlc::module1::mim::draw_visible;
use darlc::module1::model::{Config, ModuleI};
use darlc::nn::adam::Adam;
use darlc::rng;
use ndarray::{Array4, ArrayD, IxDyn};
use rand::Rng;

fn images(n: usize, s: usize, name: &str) -> Array4<f32> {
    let mut r = rng::stream(4, name);
    Array4::from_shape_simple_fn((n, 1, s, s), || {
        if r.random::<f64>() < 0.7 {
            0.0
        } else {
            r.random_range(0.1f32..3.0)
        }
    })
}

fn in_pool<R: Send>(n: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn module1_train_steps_identical_on_1_and_2_threads() {
    // Larger than tiny so that the parallel paths (row splits, attention over the batch, chunked
    // reductions) are taken: 20×20, p 5 (L 16), D 16, 2 heads, B 24, three steps.
    let mut cfg = Config::tiny();
    cfg.height = 20;
    cfg.width = 20;
    cfg.dim = 16;
    cfg.dec_widths = [32, 64, 128, 256];
    let x = images(24, 20, "x");
    let xs = images(24, 20, "xs");
    let run = || {
        let mut m = ModuleI::<f32>::new(cfg.clone(), 7).unwrap();
        let mut adam = Adam::new(1e-3);
        let mut mr = rng::stream(7, "mask");
        let mut losses = Vec::new();
        for _ in 0..3 {
            let vis = draw_visible(&mut mr, 24, cfg.tokens(), cfg.n_keep());
            losses.push(
                m.train_step(&mut adam, x.view(), xs.view(), &vis)
                    .unwrap()
                    .l_ssl,
            );
        }
        (m.named_tensors(), losses)
    };
    let a = in_pool(1, run);
    let b = in_pool(2, run);
    assert_eq!(a.1, b.1);
    assert_eq!(a.0.len(), b.0.len());
    for ((n, p), (m, q)) in a.0.iter().zip(&b.0) {
        assert_eq!(n, m);
        assert_eq!(p, q, "{n}");
    }
}

#[test]
fn module1_embed_outputs_identical_on_1_and_2_threads() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("darlc_m1_threads_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.safetensors");
    let mut tf = TensorFile::new();
    let x = images(14, 10, "embed");
    tf.insert_float(
        "images",
        ArrayD::from_shape_vec(IxDyn(&[14, 1, 10, 10]), x.iter().copied().collect()).unwrap(),
    );
    tf.save(&input).unwrap();
    let mut files = Vec::new();
    for threads in [1usize, 2] {
        let out = dir.join(format!("out{threads}"));
        let t = threads.to_string();
        let argv = [
            "darlc",
            "embed",
            "--input",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--preset",
            "paper",
            "--warmup-epochs",
            "2",
            "--batch",
            "6",
            "--seed",
            "3",
            "--threads",
            &t,
            "--patch",
            "5",
            "--smoothing",
            "gat",
            "--gat-epochs",
            "3",
            "--quiet",
        ];
        let Command::Embed(args) = Cli::try_parse_from(argv).unwrap().command else {
            unreachable!("parsed as embed")
        };
        embed(args).unwrap();
        let read = |f: &str| std::fs::read(out.join(f)).unwrap();
        files.push((
            read("embeddings.safetensors"),
            read("model.safetensors"),
            read("embeddings.csv"),
        ));
        // 14 images, B 6: batches 6, 6, 2 per epoch; h is [14, 64].
        let h = TensorFile::load(&out.join("embeddings.safetensors")).unwrap();
        assert_eq!(h.get("h", &out).unwrap().shape(), &[14, 64]);
        let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
        assert_eq!(log.lines().count(), 2);
    }
    assert!(
        files[0] == files[1],
        "outputs differ between 1 and 2 threads"
    );
    std::fs::remove_dir_all(&dir).ok();
}
