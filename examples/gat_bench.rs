//! GAT training benchmark (issue 4 item 7): seconds per full-batch epoch of the tied GAT
//! autoencoder (SPEC §3, f32) on a synthetic Visium-like section, and peak RSS.
//!
//! ```text
//! cargo run --release --example gat_bench -- [--spots 4000] [--genes 15000] [--epochs 5]
//!     [--threads 2] [--form auto|direct|gram] [--export DIR]
//! ```
//!
//! The section is a hexagonal lattice of rows of 80 spots (Visium geometry, graph radius 1.1 ⇒ 6
//! neighbours + self); features are 10 % non-zero `ln(1 + k)`, `k ∈ 1..=6`, from a named stream.
//! With `--export DIR` the features, the edge list (CSR order) and the initial parameters are
//! written as raw little-endian files for `benches/gat_torch.py`, which then trains the same model
//! from the same start (the first losses must agree). One JSON line of results goes to stdout.

use darlc::augment::gat::{self, GatConfig, GatParams, LossForm};
use darlc::augment::graph::{Graph, HEX_RADIUS, visium_coords};
use ndarray::Array2;
use rand::Rng;
use std::io::Write;
use std::time::Instant;

mod common;
use common::arg;

fn write_raw(path: &std::path::Path, bytes: &[u8]) {
    darlc::io::atomic_write(path, bytes).expect("write export");
}

fn f32_bytes(a: &[f32]) -> Vec<u8> {
    a.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|k| k.parse::<f64>().ok()))
                .flatten()
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let spots: usize = arg(&args, "--spots", 4000);
    let genes: usize = arg(&args, "--genes", 15000);
    let epochs: usize = arg(&args, "--epochs", 5);
    let threads: usize = arg(&args, "--threads", 2);
    let form: String = arg(&args, "--form", "auto".to_string());
    let export: Option<String> = args
        .iter()
        .position(|a| a == "--export")
        .and_then(|i| args.get(i + 1).cloned());
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("thread pool");

    let per_row = 80;
    let (rows, cols): (Vec<i64>, Vec<i64>) = (0..spots)
        .map(|s| {
            let r = (s / per_row) as i64;
            (r, 2 * (s % per_row) as i64 + r % 2)
        })
        .unzip();
    let coords = visium_coords(&rows, &cols).expect("coords");
    let graph = Graph::radius(&coords, HEX_RADIUS).expect("graph");
    let mut r = darlc::rng::stream(2024, "bench.gat.x");
    let x = Array2::<f32>::from_shape_simple_fn((spots, genes), || {
        if r.random_bool(0.1) {
            (r.random_range(1..=6) as f32).ln_1p()
        } else {
            0.0
        }
    });
    let cfg = GatConfig {
        epochs: epochs + 1,
        seed: 7,
        loss_form: match form.as_str() {
            "direct" => LossForm::Direct,
            "gram" => LossForm::Gram,
            _ => LossForm::Auto,
        },
        ..GatConfig::default()
    };
    let params = GatParams::<f32>::init(genes, cfg.hidden, cfg.embed, cfg.seed);
    if let Some(dir) = &export {
        let d = std::path::Path::new(dir);
        write_raw(&d.join("x.f32"), &f32_bytes(x.as_slice().expect("std")));
        let edges: Vec<u8> = graph
            .edges()
            .flat_map(|(v, u)| [v as i64, u as i64])
            .flat_map(|v| v.to_le_bytes())
            .collect();
        write_raw(&d.join("edges.i64"), &edges);
        for (name, a) in gat::PARAM_NAMES.iter().zip(params.to_vec()) {
            let a = a.as_standard_layout().to_owned();
            write_raw(
                &d.join(format!("{name}.f32")),
                &f32_bytes(a.as_slice().expect("std")),
            );
        }
        let meta = format!(
            "{{\"n\": {spots}, \"c\": {genes}, \"e\": {}, \"hidden\": {}, \"embed\": {}}}\n",
            graph.num_edges(),
            cfg.hidden,
            cfg.embed
        );
        write_raw(&d.join("meta.json"), meta.as_bytes());
    }
    let mut stamps = vec![Instant::now()];
    let tr = gat::train_observed(x.view(), &graph, params, &cfg, &mut |_, _| {
        stamps.push(Instant::now())
    })
    .expect("train");
    // Epoch 0 includes one-off setup (tape constant copy of X, first touches): excluded.
    let mut secs: Vec<f64> = stamps
        .windows(2)
        .skip(1)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    let mean = secs.iter().sum::<f64>() / secs.len().max(1) as f64;
    secs.sort_by(f64::total_cmp);
    let median = secs.get(secs.len() / 2).copied().unwrap_or(f64::NAN);
    let losses: Vec<String> = tr.losses.iter().map(|l| format!("{l:.9}")).collect();
    let out = format!(
        "{{\"impl\": \"darlc\", \"form\": \"{form}\", \"n\": {spots}, \"c\": {genes}, \"edges\": {}, \"threads\": {threads}, \"epochs_timed\": {}, \"sec_per_epoch_median\": {median:.4}, \"sec_per_epoch_mean\": {mean:.4}, \"peak_rss_mb\": {:.1}, \"losses\": [{}]}}\n",
        graph.num_edges(),
        secs.len(),
        peak_rss_mb(),
        losses.join(", ")
    );
    std::io::stdout().write_all(out.as_bytes()).expect("stdout");
}
