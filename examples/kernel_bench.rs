//! Single-thread timings of the f32 fused kernels at the paper's Module I sizes (one image per
//! call, as the tape runs them, each thread on its own images): attention forward (no-grad and
//! recording), attention backward, with GFLOP/s of the `Q Kᵀ` / `A V` products (forward 2 products,
//! backward 5 with the recomputed scores), the linear layers against matrixmultiply's sgemm, and the
//! GELU epilogue in ns per element. Median of `--reps` runs over `--images` images.
//!
//! ```text
//! cargo run --release --example kernel_bench -- [--images 64] [--reps 7] [--tokens 225] [--dim 64] [--heads 4]
//! ```

use darlc::autodiff::ops::fast32;
use rand::Rng;
use std::time::Instant;

mod common;
use common::arg;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = arg(&args, "--images", 64);
    let reps: usize = arg(&args, "--reps", 7);
    let l: usize = arg(&args, "--tokens", 225);
    let d: usize = arg(&args, "--dim", 64);
    let heads: usize = arg(&args, "--heads", 4);
    let mut r = darlc::rng::stream(0, "kernel_bench");
    let x: Vec<f32> = (0..n * l * 3 * d)
        .map(|_| r.random_range(-1.0f32..1.0))
        .collect();
    let g: Vec<f32> = (0..n * l * d)
        .map(|_| r.random_range(-1.0f32..1.0))
        .collect();
    let mut out = vec![0.0f32; n * l * d];
    let mut lse = vec![0.0f32; n * heads * l];
    let mut dx = vec![0.0f32; n * l * 3 * d];
    let flop = |products: f64| products * 2.0 * (l * l * d) as f64 * n as f64;
    let time = |f: &mut dyn FnMut()| {
        f();
        median(
            (0..reps)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64()
                })
                .collect(),
        )
    };
    println!(
        "fast32 level {:?}, L {l}, D {d}, {heads} heads, {n} images, 1 thread",
        fast32::level()
    );
    let t_fwd = time(&mut || {
        for i in 0..n {
            fast32::attention_forward(
                &x[i * l * 3 * d..(i + 1) * l * 3 * d],
                l,
                d,
                heads,
                &mut out[i * l * d..(i + 1) * l * d],
                None,
            )
            .expect("fast kernel");
        }
    });
    let t_rec = time(&mut || {
        for i in 0..n {
            fast32::attention_forward(
                &x[i * l * 3 * d..(i + 1) * l * 3 * d],
                l,
                d,
                heads,
                &mut out[i * l * d..(i + 1) * l * d],
                Some(&mut lse[i * heads * l..(i + 1) * heads * l]),
            )
            .expect("fast kernel");
        }
    });
    let t_bwd = time(&mut || {
        for i in 0..n {
            fast32::attention_backward(
                &g[i * l * d..(i + 1) * l * d],
                &x[i * l * 3 * d..(i + 1) * l * 3 * d],
                &out[i * l * d..(i + 1) * l * d],
                &lse[i * heads * l..(i + 1) * heads * l],
                l,
                d,
                heads,
                &mut dx[i * l * 3 * d..(i + 1) * l * 3 * d],
            )
            .expect("fast kernel");
        }
    });
    // The linear layers: [rows, k] · [k, n] (forward), the same through the f32 tape op, and
    // matrixmultiply's sgemm on the same operands for reference.
    let rows = 64 * l;
    for (k, nn) in [(64usize, 256usize), (256, 64), (64, 192), (64, 64)] {
        let a: Vec<f32> = (0..rows * k)
            .map(|_| r.random_range(-1.0f32..1.0))
            .collect();
        let w: Vec<f32> = (0..k * nn).map(|_| r.random_range(-1.0f32..1.0)).collect();
        let gy: Vec<f32> = (0..rows * nn)
            .map(|_| r.random_range(-1.0f32..1.0))
            .collect();
        let mut c = vec![0.0f32; rows * nn];
        let panels = fast32::gemm::Panels::pack(&w, k, nn, nn, 1);
        let t_fast = time(&mut || {
            fast32::gemm::gemm_rows(&a, k, rows, &panels, None, &mut c, nn).expect("kernel");
        });
        let t_mm = time(&mut || unsafe {
            matrixmultiply::sgemm(
                rows,
                k,
                nn,
                1.0,
                a.as_ptr(),
                k as isize,
                1,
                w.as_ptr(),
                nn as isize,
                1,
                0.0,
                c.as_mut_ptr(),
                nn as isize,
                1,
            )
        });
        let mut gw = vec![0.0f32; k * nn];
        let t_tn = time(&mut || {
            gw.fill(0.0);
            for s0 in (0..rows).step_by(256) {
                let m = 256.min(rows - s0);
                fast32::gemm::gemm_tn_acc(
                    &a[s0 * k..],
                    k,
                    &gy[s0 * nn..],
                    nn,
                    m,
                    k,
                    nn,
                    &mut gw,
                    None,
                )
                .expect("kernel");
            }
        });
        let t_mm_tn = time(&mut || unsafe {
            matrixmultiply::sgemm(
                k,
                rows,
                nn,
                1.0,
                a.as_ptr(),
                1,
                k as isize,
                gy.as_ptr(),
                nn as isize,
                1,
                0.0,
                gw.as_mut_ptr(),
                nn as isize,
                1,
            )
        });
        let gf = |t: f64| 2.0 * (rows * k * nn) as f64 / t / 1e9;
        println!(
            "linear [{rows},{k}]x[{k},{nn}]: fast {:6.1} GFLOP/s, sgemm {:6.1}; Xᵀ·G fast {:6.1}, sgemm {:6.1}",
            gf(t_fast),
            gf(t_mm),
            gf(t_tn),
            gf(t_mm_tn)
        );
    }
    // GELU over one FAST_ROWS chunk of the MLP's hidden activation (256 rows × 4D), as the fused
    // epilogue of the linear layer runs it, forward and backward.
    let hidden = 256 * 4 * d;
    let xs: Vec<f32> = (0..hidden).map(|_| r.random_range(-4.0f32..4.0)).collect();
    let gs: Vec<f32> = (0..hidden).map(|_| r.random_range(-1.0f32..1.0)).collect();
    let mut ys = vec![0.0f32; hidden];
    let t_gelu = time(&mut || {
        for _ in 0..64 {
            fast32::gelu_slice(&xs, &mut ys).expect("kernel");
        }
    });
    let t_gelu_b = time(&mut || {
        for _ in 0..64 {
            fast32::gelu_backward_slice(&gs, &xs, &mut ys).expect("kernel");
        }
    });
    let ns = |t: f64| 1e9 * t / (64 * hidden) as f64;
    println!(
        "GELU {hidden} elements: forward {:.3} ns/element, backward {:.3} ns/element",
        ns(t_gelu),
        ns(t_gelu_b)
    );
    let per = |t: f64| 1e6 * t / (n * heads) as f64;
    println!(
        "attention forward (no-grad)  {:8.2} µs/(image·head)  {:6.1} GFLOP/s",
        per(t_fwd),
        flop(2.0) / t_fwd / 1e9
    );
    println!(
        "attention forward (recording) {:7.2} µs/(image·head)  {:6.1} GFLOP/s",
        per(t_rec),
        flop(2.0) / t_rec / 1e9
    );
    println!(
        "attention backward           {:8.2} µs/(image·head)  {:6.1} GFLOP/s",
        per(t_bwd),
        flop(5.0) / t_bwd / 1e9
    );
}
