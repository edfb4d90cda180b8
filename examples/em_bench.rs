//! Timings of the SMM initialisation (SPEC §6.5: k-means++, Lloyd, hard M-step) and of EM
//! iterations (§6.6–6.8) on the clustering embeddings `z` of a finished run.
//!
//! ```text
//! cargo run --release --example em_bench -- RUN_DIR/embeddings.safetensors [--k 432] [--iters 10]
//! ```

use darlc::linalg::kmeans::kmeans;
use darlc::module2::smm::{Smm, SmmPrior};
use std::path::Path;
use std::time::Instant;

mod common;
use common::arg;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = Path::new(args.get(1).expect("usage: em_bench EMBEDDINGS.safetensors"));
    let k: usize = arg(&args, "--k", 432);
    let iters: usize = arg(&args, "--iters", 10);
    let f = darlc::io::tensors::TensorFile::load(path).expect("embeddings");
    let z = f.get("z", path).expect("z").to_f64();
    let z = z.into_dimensionality::<ndarray::Ix2>().expect("[N, d]");
    let (n, d) = z.dim();
    println!(
        "z [{n}, {d}], K {k}, {} threads",
        rayon::current_num_threads()
    );
    let mut rng = darlc::rng::stream(0, "kmeans++");
    let t = Instant::now();
    let km = kmeans(z.view(), k, &mut rng).expect("kmeans");
    println!(
        "k-means++ and Lloyd: {:.2} s ({} Lloyd iterations)",
        t.elapsed().as_secs_f64(),
        km.iters
    );
    let prior = SmmPrior::default_from(z.view(), k).expect("prior");
    let t = Instant::now();
    let mut smm = Smm::from_partition(z.view(), &km.labels, k, &prior, false).expect("init");
    println!("hard M-step: {:.2} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let rep = smm.em(z.view(), &prior, iters, 0.0).expect("em");
    println!(
        "EM: {} iterations in {:.2} s ({:.3} s per iteration)",
        rep.iters,
        t.elapsed().as_secs_f64(),
        t.elapsed().as_secs_f64() / rep.iters.max(1) as f64
    );
    // Bits of the result, to compare builds (the EM must not change by a single bit).
    let last = *rep.l_map.last().expect("trace");
    let rsum: f64 = rep.estep.r.iter().sum();
    println!(
        "final l_MAP {last:e} (bits {:016x}), sum r bits {:016x}",
        last.to_bits(),
        rsum.to_bits()
    );
}
