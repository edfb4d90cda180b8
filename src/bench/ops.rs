//! `darlc bench ops`: f32 matmul forward + backward through the tape versus raw matrixmultiply
//! sgemm on the paper-size ViT shapes (method §0: B 256, L 225, D 64, 4 heads of width 16), and the
//! tape's fixed cost per one-element op.
//!
//! For `C = A·B` the forward + backward work is three GEMMs of `2mkn` flops each (`C`,
//! `∂A = G·Bᵀ`, `∂B = Aᵀ·G`). The raw baselines run the same three products on preallocated
//! buffers, once as single matrixmultiply calls (one thread) and once through darlc's parallel
//! split ([`gemm_par`], or a parallel loop over batch items); the tape figure includes everything
//! the tape does (allocating outputs and gradients, layout handling). Each figure is the median of
//! `reps` runs.

use crate::autodiff::Tape;
use crate::autodiff::ops::matmul::{gemm_once, gemm_par};
use crate::memory::retain_freed_memory;
use crate::rng;
use ndarray::{Array2, Array3, ArrayD, Axis, IxDyn};
use rand::Rng;
use rayon::prelude::*;
use std::hint::black_box;
use std::time::Instant;

/// Figures of one product shape.
#[derive(Clone, Debug)]
pub struct GemmFigure {
    pub label: String,
    /// Flops of forward + backward (three GEMMs).
    pub flops: f64,
    /// Median seconds: raw single calls, raw parallel split, tape.
    pub raw_single: f64,
    pub raw_par: f64,
    pub tape: f64,
}

impl GemmFigure {
    /// GFLOP/s of a time.
    pub fn gflops(&self, secs: f64) -> f64 {
        self.flops / secs / 1e9
    }
}

/// The whole report.
#[derive(Clone, Debug)]
pub struct OpsReport {
    pub threads: usize,
    pub reps: usize,
    /// The products, measured as `darlc` runs them.
    pub gemms: Vec<GemmFigure>,
    /// Whether freed memory is retained (`darlc`'s `main` sets it at startup; glibc only).
    pub retained: bool,
    /// Microseconds per recorded `t.add(a, b)` on one-element tensors.
    pub tiny_add_us: f64,
    /// Microseconds per node of the backward pass over those adds.
    pub tiny_backward_us: f64,
    pub tiny_ops: usize,
    /// The machine's GEMM ceiling as darlc reaches it: a square `2048³` sgemm, GFLOP/s as one
    /// matrixmultiply call (one thread) and through darlc's parallel split (all threads).
    pub square_single: f64,
    pub square_split: f64,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Median seconds of three measurements `f(0)`, `f(1)`, `f(2)`, run round-robin `reps` times
/// after one warm-up round (page faults, thread pool).
fn interleaved(reps: usize, mut f: impl FnMut(usize) -> f64) -> [f64; 3] {
    let mut times: [Vec<f64>; 3] = Default::default();
    for round in 0..=reps {
        for (which, ts) in times.iter_mut().enumerate() {
            let dt = f(which);
            if round > 0 {
                ts.push(dt);
            }
        }
    }
    times.map(median)
}

fn random(shape: &[usize], name: &str) -> ArrayD<f32> {
    let mut r = rng::stream(1, name);
    ArrayD::from_shape_simple_fn(IxDyn(shape), || r.random_range(-1.0f32..1.0))
}

/// Linear-layer product `[B·L, k]·[k, n]` (the tape sees `[B, L, k]`, as a ViT does).
fn linear(reps: usize, bl: (usize, usize), k: usize, n: usize) -> GemmFigure {
    let m = bl.0 * bl.1;
    let a = random(&[bl.0, bl.1, k], "a");
    let b = random(&[k, n], "b");
    let g = random(&[bl.0, bl.1, n], "g");
    let a2 = a.view().into_shape_with_order((m, k)).expect("flat");
    let b2 = b.view().into_dimensionality().expect("2-D");
    let g2 = g.view().into_shape_with_order((m, n)).expect("flat");
    let mut c = Array2::<f32>::zeros((m, n));
    let mut da = Array2::<f32>::zeros((m, k));
    let mut db = Array2::<f32>::zeros((k, n));
    // 0: raw single calls, 1: raw parallel split, 2: tape. Interleaved so that load from other
    // processes affects the three alike.
    let [raw_single, raw_par, tape] = interleaved(reps, |which| match which {
        0 => {
            let t0 = Instant::now();
            gemm_once(1.0, a2, b2, 0.0, c.view_mut());
            gemm_once(1.0, g2, b2.t(), 0.0, da.view_mut());
            gemm_once(1.0, a2.t(), g2, 0.0, db.view_mut());
            t0.elapsed().as_secs_f64()
        }
        1 => {
            let t0 = Instant::now();
            gemm_par(a2, b2, c.view_mut());
            gemm_par(g2, b2.t(), da.view_mut());
            gemm_par(a2.t(), g2, db.view_mut());
            t0.elapsed().as_secs_f64()
        }
        _ => {
            let mut t = Tape::<f32>::new();
            let av = t.param(a.clone());
            let bv = t.param(b.clone());
            let seed = g.clone();
            let t0 = Instant::now();
            let cv = t.matmul(av, bv);
            let grads = t.backward_with(cv, seed);
            let dt = t0.elapsed().as_secs_f64();
            black_box(grads);
            dt
        }
    });
    GemmFigure {
        label: format!("linear [{m},{k}]x[{k},{n}]"),
        flops: 3.0 * 2.0 * (m * k * n) as f64,
        raw_single,
        raw_par,
        tape,
    }
}

/// Attention scores `Q·Kᵀ` per (image, head): `[bt, l, d]·[bt, l, d]ᵀ` (`batch_matmul` with
/// `tb = true`).
fn attention(reps: usize, bt: usize, l: usize, d: usize) -> GemmFigure {
    let q = random(&[bt, l, d], "q");
    let k = random(&[bt, l, d], "k");
    let g = random(&[bt, l, l], "g");
    let q3 = q.view().into_dimensionality::<ndarray::Ix3>().expect("3-D");
    let k3 = k.view().into_dimensionality::<ndarray::Ix3>().expect("3-D");
    let g3 = g.view().into_dimensionality::<ndarray::Ix3>().expect("3-D");
    let mut c = Array3::<f32>::zeros((bt, l, l));
    let mut dq = Array3::<f32>::zeros((bt, l, d));
    let mut dk = Array3::<f32>::zeros((bt, l, d));
    // One batch item: S = Q Kᵀ, ∂Q = G K, ∂K = Gᵀ Q.
    let item = |i: usize,
                c: ndarray::ArrayViewMut2<f32>,
                dq: ndarray::ArrayViewMut2<f32>,
                dk: ndarray::ArrayViewMut2<f32>| {
        let (qi, ki, gi) = (
            q3.index_axis(Axis(0), i),
            k3.index_axis(Axis(0), i),
            g3.index_axis(Axis(0), i),
        );
        gemm_once(1.0, qi, ki.t(), 0.0, c);
        gemm_once(1.0, gi, ki, 0.0, dq);
        gemm_once(1.0, gi.t(), qi, 0.0, dk);
    };
    let [raw_single, raw_par, tape] = interleaved(reps, |which| match which {
        0 => {
            let t0 = Instant::now();
            for (i, ((c, dq), dk)) in c
                .outer_iter_mut()
                .zip(dq.outer_iter_mut())
                .zip(dk.outer_iter_mut())
                .enumerate()
            {
                item(i, c, dq, dk);
            }
            t0.elapsed().as_secs_f64()
        }
        1 => {
            let t0 = Instant::now();
            let tasks: Vec<_> = c
                .outer_iter_mut()
                .zip(dq.outer_iter_mut())
                .zip(dk.outer_iter_mut())
                .enumerate()
                .collect();
            tasks
                .into_par_iter()
                .for_each(|(i, ((c, dq), dk))| item(i, c, dq, dk));
            t0.elapsed().as_secs_f64()
        }
        _ => {
            let mut t = Tape::<f32>::new();
            let qv = t.param(q.clone());
            let kv = t.param(k.clone());
            let seed = g.clone();
            let t0 = Instant::now();
            let s = t.batch_matmul(qv, kv, false, true);
            let grads = t.backward_with(s, seed);
            let dt = t0.elapsed().as_secs_f64();
            black_box(grads);
            dt
        }
    });
    GemmFigure {
        label: format!("attention [{bt},{l},{d}]x[{bt},{d},{l}]"),
        flops: 3.0 * 2.0 * (bt * l * l * d) as f64,
        raw_single,
        raw_par,
        tape,
    }
}

/// Seconds per recorded one-element `add`, and per node of the backward over them.
fn tiny_ops(n: usize, reps: usize) -> (f64, f64) {
    let one = || ArrayD::from_elem(IxDyn(&[1]), 0.5f32);
    let mut fwd = Vec::new();
    let mut bwd = Vec::new();
    for _ in 0..reps.clamp(1, 3) {
        let mut t = Tape::<f32>::new();
        let a = t.param(one());
        let mut x = t.param(one());
        let t0 = Instant::now();
        for _ in 0..n {
            x = t.add(a, x);
        }
        fwd.push(t0.elapsed().as_secs_f64() / n as f64);
        let t1 = Instant::now();
        let g = t.backward(x);
        bwd.push(t1.elapsed().as_secs_f64() / n as f64);
        black_box(g);
    }
    (median(fwd), median(bwd))
}

/// A square `n³` sgemm (`2n³` flops): GFLOP/s as one call and through the parallel split, the
/// median of `reps` interleaved runs. The ceiling that any mix of darlc's products stays under.
fn square(reps: usize, n: usize) -> (f64, f64) {
    let a = random(&[n, n], "square.a");
    let b = random(&[n, n], "square.b");
    let a2 = a.view().into_dimensionality().expect("2-D");
    let b2 = b.view().into_dimensionality().expect("2-D");
    let mut c = Array2::<f32>::zeros((n, n));
    let [single, split, _] = interleaved(reps, |which| {
        let t0 = Instant::now();
        match which {
            0 => gemm_once(1.0, a2, b2, 0.0, c.view_mut()),
            1 => gemm_par(a2, b2, c.view_mut()),
            _ => {} // the third slot of `interleaved` is not used here
        }
        t0.elapsed().as_secs_f64()
    });
    let flops = 2.0 * (n * n * n) as f64;
    (flops / single / 1e9, flops / split / 1e9)
}

/// Run every measurement (takes a few seconds at the paper sizes).
pub fn run(reps: usize, tiny: usize) -> OpsReport {
    let (b, l, d) = (256, 225, 64);
    let all = || {
        vec![
            linear(reps, (b, l), d, d),
            linear(reps, (b, l), d, 4 * d),
            linear(reps, (b, l), 4 * d, d),
            attention(reps, b * 4, l, d / 4),
        ]
    };
    // The binary already did this at startup; repeating it is harmless and makes library callers
    // measure the same configuration.
    let retained = retain_freed_memory();
    let gemms = all();
    let (fwd, bwd) = tiny_ops(tiny, reps);
    let (square_single, square_split) = square(reps, 2048);
    OpsReport {
        threads: rayon::current_num_threads(),
        reps,
        gemms,
        retained,
        tiny_add_us: fwd * 1e6,
        tiny_backward_us: bwd * 1e6,
        tiny_ops: tiny,
        square_single,
        square_split,
    }
}

/// The printed report.
pub fn format_report(r: &OpsReport) -> String {
    let mut s = format!(
        "darlc bench ops — f32, rayon threads {}, median of {} runs; forward+backward = 3 GEMMs\n",
        r.threads, r.reps
    );
    s += &table(
        if r.retained {
            "allocator: freed memory retained (set at startup, darlc::memory)"
        } else {
            "allocator: platform defaults (retaining freed memory is not available here)"
        },
        &r.gemms,
    );
    s += &format!(
        "tape overhead, one-element add ({} ops): {:.3} µs/op forward (bar ≤ 2 µs: {}), {:.3} µs/node backward\n",
        r.tiny_ops,
        r.tiny_add_us,
        if r.tiny_add_us <= 2.0 {
            "met"
        } else {
            "MISSED"
        },
        r.tiny_backward_us
    );
    s += &format!(
        "GEMM ceiling, square sgemm 2048³: {:.1} GFLOP/s as one call (1 thread), {:.1} split over {} threads\n",
        r.square_single, r.square_split, r.threads
    );
    s
}

fn table(title: &str, gemms: &[GemmFigure]) -> String {
    let mut s = format!("{title}\n");
    s += &format!(
        "  {:<38} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
        "product (GFLOP/s)", "raw 1-call", "raw split", "tape", "tape/1call", "tape/split"
    );
    let mut worst = f64::INFINITY;
    for g in gemms {
        let ratio_split = g.raw_par / g.tape;
        worst = worst.min(ratio_split);
        s += &format!(
            "  {:<38} {:>10.2} {:>10.2} {:>10.2} {:>10.3} {:>10.3}\n",
            g.label,
            g.gflops(g.raw_single),
            g.gflops(g.raw_par),
            g.gflops(g.tape),
            g.raw_single / g.tape,
            ratio_split
        );
    }
    s += &format!(
        "  lowest tape/raw-split ratio {:.3} (bar ≥ 0.9): {}\n",
        worst,
        if worst >= 0.9 { "met" } else { "MISSED" }
    );
    s
}
