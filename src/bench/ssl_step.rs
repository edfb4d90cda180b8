//! `darlc bench ssl-step`: throughput of the paper-size Module I warm-up step (method §4, f32),
//! the same step as the PyTorch peer `darlc_module1_torch.py --mode train`.
//!
//! Synthetic data as in the peer: 90 % zero pixels, the rest `ln(1 + 1 + Poisson(2))`; smoothed
//! twins = 3×3 box blur computed once for the pool; pool = max(4B, 1024) rounded up to a multiple
//! of B; per-epoch permutations, consecutive batches, fresh masks.

use crate::error::Result;
use crate::memory::peak_rss_mb;
use crate::module1::mim::draw_visible;
use crate::module1::model::{Config, ModuleI};
use crate::module1::warmup::permutation;
use crate::nn::adam::Adam;
use crate::rng;
use ndarray::{Array4, Axis};
use rand::Rng;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `darlc bench ssl-step`.
#[derive(clap::Args, Debug, Clone)]
pub struct SslStepArgs {
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    #[arg(long, default_value_t = 75)]
    pub img: usize,
    #[arg(long, default_value_t = 5)]
    pub patch: usize,
    #[arg(long, default_value_t = 64)]
    pub dim: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Append one JSON line with the results here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print a per-phase timing breakdown (forward / backward / Adam+EMA) of each timed step, and
    /// the wall time per tape op over the timed steps.
    #[arg(long)]
    pub profile: bool,
    /// Time the no-grad representation pass `h = f_o(x)` of a batch instead of a training step
    /// (the peer's `--mode embed`).
    #[arg(long)]
    pub embed: bool,
}

/// Synthetic pool like the peer's: `[n, 1, s, s]` raw and its 3×3 box blur.
pub fn synthetic_pool(n: usize, s: usize, seed: u64) -> (Array4<f32>, Array4<f32>) {
    let mut r = rng::stream(seed, "bench.pool");
    let x = Array4::<f32>::from_shape_simple_fn((n, 1, s, s), || {
        if r.random::<f64>() < 0.9 {
            0.0
        } else {
            // Poisson(2) by inversion.
            let u: f64 = r.random();
            let (mut k, mut p, mut c) = (0u32, (-2f64).exp(), (-2f64).exp());
            while u > c && k < 60 {
                k += 1;
                p *= 2.0 / k as f64;
                c += p;
            }
            (2.0 + k as f64).ln() as f32
        }
    });
    let mut xs = Array4::<f32>::zeros(x.raw_dim());
    for b in 0..n {
        for i in 0..s {
            for j in 0..s {
                let mut acc = 0.0f32;
                for di in -1i64..=1 {
                    for dj in -1i64..=1 {
                        let (ii, jj) = (i as i64 + di, j as i64 + dj);
                        if ii >= 0 && jj >= 0 && (ii as usize) < s && (jj as usize) < s {
                            acc += x[[b, 0, ii as usize, jj as usize]];
                        }
                    }
                }
                xs[[b, 0, i, j]] = acc / 9.0;
            }
        }
    }
    (x, xs)
}

/// Run the benchmark and print images/s (min / median / max) and peak RSS.
pub fn ssl_step(args: SslStepArgs) -> Result<()> {
    crate::memory::retain_freed_memory();
    let threads = args.threads;
    crate::threads::with_threads(threads, move || run(&args))?
}

fn run(args: &SslStepArgs) -> Result<()> {
    let mut cfg = Config::paper(1, args.img, args.img);
    cfg.patch = args.patch;
    cfg.dim = args.dim;
    let mut model = ModuleI::<f32>::new(cfg.clone(), args.seed)?;
    let b = args.batch.max(2);
    let pool = (4 * b).max(1024).div_ceil(b) * b;
    let (x, xs) = synthetic_pool(pool, args.img, args.seed);
    let mut adam = Adam::<f32>::new(1e-3);
    let (l, nk) = (cfg.tokens(), cfg.n_keep());
    let mut times = Vec::new();
    let mut last = None;
    let mut step = 0usize;
    let mut epoch = 0usize;
    'outer: loop {
        let perm = permutation(
            &mut rng::stream(args.seed, &format!("bench.perm.epoch{epoch}")),
            pool,
        );
        let mut mrng = rng::stream(args.seed, &format!("bench.mask.epoch{epoch}"));
        for idx in perm.chunks(b) {
            if step >= args.warmup + args.steps {
                break 'outer;
            }
            if args.profile && step == args.warmup {
                let _ = crate::autodiff::profile::take();
                crate::autodiff::profile::set_enabled(true);
            }
            let t0 = Instant::now();
            let xb = x.select(Axis(0), idx);
            let xsb = xs.select(Axis(0), idx);
            let vis = draw_visible(&mut mrng, idx.len(), l, nk);
            if args.embed {
                let h = model.embed(xb.view(), b);
                assert_eq!(h.dim().0, idx.len());
            } else if args.profile {
                let p0 = Instant::now();
                let g = model.forward_step(xb.view(), xsb.view(), &vis);
                let f = p0.elapsed().as_secs_f64();
                let p1 = Instant::now();
                let mut grads = g.tape.backward(g.l_ssl);
                let bw = p1.elapsed().as_secs_f64();
                let p2 = Instant::now();
                let ids = model.ssl_ids().to_vec();
                let gs = g.bound.take_grads(&mut grads, &model.store, &ids);
                adam.step(&mut model.store, &ids, &gs);
                model.ema(cfg.momentum);
                let ad = p2.elapsed().as_secs_f64();
                eprintln!(
                    "step {step}: forward {f:.3}s backward {bw:.3}s adam+ema {ad:.3}s nodes {}",
                    g.tape.len()
                );
            } else {
                last = Some(model.train_step(&mut adam, xb.view(), xsb.view(), &vis)?);
            }
            let dt = t0.elapsed().as_secs_f64();
            if step >= args.warmup {
                times.push(dt);
            }
            step += 1;
        }
        epoch += 1;
    }
    if args.profile {
        crate::autodiff::profile::set_enabled(false);
        crate::autodiff::profile::print(args.steps);
    }
    let mut ips: Vec<f64> = times.iter().map(|t| b as f64 / t).collect();
    ips.sort_by(f64::total_cmp);
    let med = if ips.is_empty() {
        f64::NAN
    } else if ips.len() % 2 == 1 {
        ips[ips.len() / 2]
    } else {
        0.5 * (ips[ips.len() / 2 - 1] + ips[ips.len() / 2])
    };
    let rss = peak_rss_mb().unwrap_or(f64::NAN);
    let rec = serde_json::json!({
        "tool": "darlc", "mode": if args.embed { "embed" } else { "train" }, "batch": b, "img": args.img, "patch": args.patch,
        "dim": args.dim, "threads": rayon::current_num_threads(),
        "img_s_min": ips.first(), "img_s_med": med, "img_s_max": ips.last(),
        "step_s": times, "peak_rss_mb": rss, "last": last,
    });
    println!(
        "darlc ssl-step{}: B {b}, {}x{} p {} D {}, {} threads: images/s min {:.1} median {:.1} max {:.1}; peak RSS {:.0} MB",
        if args.embed { " (embed)" } else { "" },
        args.img,
        args.img,
        args.patch,
        args.dim,
        rayon::current_num_threads(),
        ips.first().copied().unwrap_or(f64::NAN),
        med,
        ips.last().copied().unwrap_or(f64::NAN),
        rss
    );
    if let Some(p) = &args.out {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| crate::error::DarlcError::io(p, e))?;
        writeln!(f, "{rec}").map_err(|e| crate::error::DarlcError::io(p, e))?;
    }
    Ok(())
}
