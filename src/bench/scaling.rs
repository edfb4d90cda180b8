//! `darlc bench scaling`: thread scaling of the three parts of a run that take the time, each in
//! its own rayon pool per thread count (1, 2, 4, … up to the core count, and the count itself):
//!
//! * `ssl` — one Module I warm-up step (method §4.5, f32): the `darlc bench ssl-step` step at paper
//!   size (B 256, 75×75, p 5, D 64) on its synthetic pool; images = the batch;
//! * `gat` — one full-batch epoch of the tied GAT autoencoder (method §3.4, f32) on a Visium-like
//!   section (hexagonal lattice, 4,000 spots × 15,000 genes, 10 % non-zero, as
//!   `examples/gat_bench.rs`); images = the genes (each gene is one image);
//! * `em` — one MAP-ECM iteration of the joint phase (method §6.6–6.8, f64: M-step, ν-step, E-step)
//!   on `z [15,000, 32]` with K = 500 (the ST rule's K for 15,000 genes); images = the rows of `z`.
//!
//! Every part starts from the same data and state at every count, so its final state must have the
//! same bits at every count (method §0); a fingerprint of that state (FNV-1a over the bits of every
//! parameter, loss and responsibility) is compared with the 1-thread one and printed beside the
//! speed. `tests/threads_any_count.rs` runs the same parts at test sizes on 1, 2, 3, 4 and 7
//! threads and requires equal fingerprints.
//!
//! Parallel efficiency at `n` threads is `(images/s at n) / (n · images/s at 1)`.

use crate::augment::gat::{self, GatConfig, GatParams};
use crate::augment::graph::{Graph, HEX_RADIUS, visium_coords};
use crate::error::{DarlcError, Result};
use crate::module1::mim::draw_visible;
use crate::module1::model::{Config as M1Config, ModuleI};
use crate::module2::smm::{Smm, SmmPrior};
use crate::nn::adam::Adam;
use crate::rng;
use ndarray::{Array2, Array4, Axis};
use rand::Rng;
use std::time::Instant;

/// The parts that can be measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Module I warm-up step.
    Ssl,
    /// GAT training epoch.
    Gat,
    /// One EM iteration of the joint phase.
    Em,
}

impl Part {
    /// Name in the report.
    pub fn label(self) -> &'static str {
        match self {
            Part::Ssl => "Module I step",
            Part::Gat => "GAT epoch",
            Part::Em => "EM iteration",
        }
    }
}

/// Problem sizes of the three parts.
#[derive(Clone, Debug)]
pub struct Sizes {
    /// Module I: batch, image side, patch, width `D`, MIM decoder widths.
    pub ssl_batch: usize,
    pub ssl_img: usize,
    pub ssl_patch: usize,
    pub ssl_dim: usize,
    pub ssl_dec_widths: [usize; 4],
    /// GAT: spots, genes, hidden width `F1`, embedding width `F2`.
    pub gat_spots: usize,
    pub gat_genes: usize,
    pub gat_hidden: usize,
    pub gat_embed: usize,
    /// EM: rows, dimension `d`, components `K`.
    pub em_n: usize,
    pub em_d: usize,
    pub em_k: usize,
}

impl Sizes {
    /// The paper's sizes (method §14) on a Visium-size section of 15,000 genes.
    pub fn paper() -> Sizes {
        Sizes {
            ssl_batch: 256,
            ssl_img: 75,
            ssl_patch: 5,
            ssl_dim: 64,
            ssl_dec_widths: [128, 256, 512, 1024],
            gat_spots: 4000,
            gat_genes: 15000,
            gat_hidden: 512,
            gat_embed: 30,
            em_n: 15000,
            em_d: 32,
            em_k: 500,
        }
    }

    /// Small sizes that still take the parallel paths, for tests: the unmasked encoder passes have
    /// B·L = 64·16 = 1,024 token rows, the fast f32 linear kernels' minimum (4 chunks of 256 rows
    /// on AVX2/AVX-512 machines), the GAT
    /// products split into 8 row blocks, the E-step runs 12 chunks of 128 rows. The Module I model
    /// is the small one of `tests/module1_threads.rs`, the GAT sizes those of
    /// `tests/augment_gat.rs`.
    pub fn test() -> Sizes {
        Sizes {
            ssl_batch: 64,
            ssl_img: 20,
            ssl_patch: 5,
            ssl_dim: 16,
            ssl_dec_widths: [32, 64, 128, 256],
            gat_spots: 900,
            gat_genes: 200,
            gat_hidden: 64,
            gat_embed: 8,
            em_n: 1500,
            em_d: 6,
            em_k: 7,
        }
    }
}

/// One part's data and starting state, built once and shared by every thread count.
pub enum Prepared {
    Ssl {
        cfg: M1Config,
        x: Array4<f32>,
        xs: Array4<f32>,
        batch: usize,
    },
    Gat {
        x: Array2<f32>,
        graph: Graph,
        cfg: GatConfig,
    },
    Em {
        z: Array2<f64>,
        start: Box<Smm>,
        prior: Box<SmmPrior>,
    },
}

/// Seed of every synthetic input and initial state.
const SEED: u64 = 0;

/// Build the data of `part` at `sizes`.
pub fn prepare(part: Part, s: &Sizes) -> Result<Prepared> {
    Ok(match part {
        Part::Ssl => {
            let mut cfg = M1Config::paper(1, s.ssl_img, s.ssl_img);
            cfg.patch = s.ssl_patch;
            cfg.dim = s.ssl_dim;
            cfg.dec_widths = s.ssl_dec_widths;
            cfg.validate()?;
            let b = s.ssl_batch.max(2);
            let (x, xs) = crate::bench::ssl_step::synthetic_pool(b, s.ssl_img, SEED);
            Prepared::Ssl {
                cfg,
                x,
                xs,
                batch: b,
            }
        }
        Part::Gat => {
            let per_row = 80.min(s.gat_spots.max(1));
            let (rows, cols): (Vec<i64>, Vec<i64>) = (0..s.gat_spots)
                .map(|i| {
                    let r = (i / per_row) as i64;
                    (r, 2 * (i % per_row) as i64 + r % 2)
                })
                .unzip();
            let coords = visium_coords(&rows, &cols)?;
            let graph = Graph::radius(&coords, HEX_RADIUS)?;
            let mut r = rng::stream(SEED, "bench.scaling.gat.x");
            let x = Array2::<f32>::from_shape_simple_fn((s.gat_spots, s.gat_genes), || {
                if r.random_bool(0.1) {
                    (r.random_range(1..=6) as f32).ln_1p()
                } else {
                    0.0
                }
            });
            let cfg = GatConfig {
                hidden: s.gat_hidden,
                embed: s.gat_embed,
                seed: SEED,
                ..GatConfig::default()
            };
            Prepared::Gat { x, graph, cfg }
        }
        Part::Em => {
            // K well separated Student-t-like clusters (Gaussian centres 6 apart per axis, unit
            // noise, every 10th row scaled up as an outlier); the start is the mixture of the
            // true partition, as after the initial fit.
            let (n, d, k) = (s.em_n, s.em_d, s.em_k);
            if k < 2 || n < 2 * k || d == 0 {
                return Err(DarlcError::param(
                    "bench scaling",
                    format!("EM needs K ≥ 2, N ≥ 2K and d ≥ 1 (got N {n}, d {d}, K {k})"),
                ));
            }
            let mut r = rng::stream(SEED, "bench.scaling.em");
            let centres =
                Array2::<f64>::from_shape_simple_fn((k, d), || 6.0 * r.random_range(-1.0..1.0));
            let labels: Vec<usize> = (0..n).map(|i| i % k).collect();
            let mut z = Array2::<f64>::zeros((n, d));
            for (i, mut row) in z.axis_iter_mut(Axis(0)).enumerate() {
                let scale = if i % 10 == 9 { 3.0 } else { 1.0 };
                for (j, v) in row.iter_mut().enumerate() {
                    // Sum of three uniforms: a cheap bell-shaped noise.
                    let e: f64 = (0..3).map(|_| r.random_range(-1.0..1.0)).sum();
                    *v = centres[[labels[i], j]] + scale * e;
                }
            }
            let prior = SmmPrior::default_from(z.view(), k)?;
            let start = Smm::from_partition(z.view(), &labels, k, &prior, false)?;
            Prepared::Em {
                z,
                start: Box::new(start),
                prior: Box::new(prior),
            }
        }
    })
}

/// What one part did at one thread count.
#[derive(Clone, Debug)]
pub struct Measured {
    pub threads: usize,
    /// Seconds of each timed repetition.
    pub seconds: Vec<f64>,
    /// Images per repetition.
    pub images: usize,
    /// FNV-1a of the bits of the final state.
    pub fingerprint: u64,
}

impl Measured {
    /// Median seconds per repetition.
    pub fn median(&self) -> f64 {
        let mut s = self.seconds.clone();
        s.sort_by(f64::total_cmp);
        match s.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => s[n / 2],
            n => 0.5 * (s[n / 2 - 1] + s[n / 2]),
        }
    }

    /// Images per second at the median.
    pub fn images_per_second(&self) -> f64 {
        self.images as f64 / self.median()
    }
}

/// FNV-1a, 64 bit, over a stream of words (fixed order: the fingerprint of a state).
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn word(&mut self, w: u64) {
        for b in w.to_le_bytes() {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn f32s<'a>(&mut self, xs: impl IntoIterator<Item = &'a f32>) {
        for x in xs {
            self.word(u64::from(x.to_bits()));
        }
    }
    fn f64s<'a>(&mut self, xs: impl IntoIterator<Item = &'a f64>) {
        for x in xs {
            self.word(x.to_bits());
        }
    }
}

/// Run `warmup` untimed and `reps` timed repetitions of the prepared part in a fresh pool of
/// `threads` threads, from the same starting state every time.
pub fn measure(p: &Prepared, threads: usize, warmup: usize, reps: usize) -> Result<Measured> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| DarlcError::param("--threads", e.to_string()))?;
    let (seconds, images, fingerprint) = pool.install(|| run_part(p, warmup, reps))?;
    Ok(Measured {
        threads,
        seconds,
        images,
        fingerprint,
    })
}

fn run_part(p: &Prepared, warmup: usize, reps: usize) -> Result<(Vec<f64>, usize, u64)> {
    let mut times = Vec::with_capacity(reps);
    let mut h = Fnv::new();
    match p {
        Prepared::Ssl { cfg, x, xs, batch } => {
            let mut model = ModuleI::<f32>::new(cfg.clone(), SEED)?;
            let mut adam = Adam::<f32>::new(1e-3);
            let mut masks = rng::stream(SEED, "bench.scaling.mask");
            for step in 0..warmup + reps {
                let vis = draw_visible(&mut masks, *batch, cfg.tokens(), cfg.n_keep());
                let t0 = Instant::now();
                let l = model.train_step(&mut adam, x.view(), xs.view(), &vis)?;
                let dt = t0.elapsed().as_secs_f64();
                if step >= warmup {
                    times.push(dt);
                }
                h.f64s([l.l_ssl, l.l_mim, l.l_cl].iter());
            }
            for (_, t) in model.named_tensors() {
                h.f32s(t.iter());
            }
            Ok((times, *batch, h.0))
        }
        Prepared::Gat { x, graph, cfg } => {
            let cfg = GatConfig {
                epochs: warmup + reps,
                progress: false,
                ..cfg.clone()
            };
            let params = GatParams::<f32>::init(x.ncols(), cfg.hidden, cfg.embed, cfg.seed);
            let mut stamps = vec![Instant::now()];
            let tr = gat::train_observed(x.view(), graph, params, &cfg, &mut |_, _| {
                stamps.push(Instant::now())
            })?;
            times.extend(
                stamps
                    .windows(2)
                    .skip(warmup)
                    .map(|w| (w[1] - w[0]).as_secs_f64()),
            );
            h.f64s(tr.losses.iter());
            for a in tr.params.to_vec() {
                h.f32s(a.iter());
            }
            Ok((times, x.ncols(), h.0))
        }
        Prepared::Em { z, start, prior } => {
            let mut smm = (**start).clone();
            let mut e = smm.estep(z.view())?;
            for it in 0..warmup + reps {
                let t0 = Instant::now();
                let nk = smm.mstep(z.view(), e.r.view(), Some(e.w.view()), prior)?;
                smm.nu_step(&e, nk.view());
                e = smm.estep(z.view())?;
                let dt = t0.elapsed().as_secs_f64();
                if it >= warmup {
                    times.push(dt);
                }
                h.f64s([smm.l_map(e.log_likelihood(), prior)].iter());
            }
            for a in [smm.pi.iter(), smm.nu.iter()] {
                h.f64s(a);
            }
            h.f64s(smm.mu.iter());
            h.f64s(smm.sigma.iter());
            h.f64s(smm.chol.iter());
            h.f64s(e.r.iter());
            h.f64s(e.w.iter());
            Ok((times, z.nrows(), h.0))
        }
    }
}

/// The default thread counts: 1, 2, 4, … below `max`, and `max` itself.
pub fn default_counts(max: usize) -> Vec<usize> {
    let max = max.max(1);
    let mut v: Vec<usize> = std::iter::successors(Some(1usize), |&n| n.checked_mul(2))
        .take_while(|&n| n < max)
        .collect();
    v.push(max);
    v
}

/// Arguments of `darlc bench scaling`.
#[derive(clap::Args, Debug, Clone)]
pub struct ScalingArgs {
    /// Thread counts, comma-separated (default: 1, 2, 4, … up to the core count, and the count).
    #[arg(long, value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Parts to measure, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Part::Ssl, Part::Gat, Part::Em])]
    pub parts: Vec<Part>,
    /// Timed repetitions per part and count (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Untimed repetitions first (page faults, pool start-up).
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Use the small test sizes instead of the paper's (seconds instead of minutes; the figures
    /// then say little about a real run).
    #[arg(long)]
    pub small: bool,
}

/// One part's rows of the report.
pub struct PartReport {
    pub part: Part,
    pub rows: Vec<Measured>,
}

/// Run `darlc bench scaling`.
pub fn scaling(args: ScalingArgs) -> Result<()> {
    crate::memory::retain_freed_memory();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let counts = if args.threads.is_empty() {
        default_counts(cores)
    } else {
        args.threads.clone()
    };
    if let Some(&bad) = counts.iter().find(|&&n| n == 0) {
        return Err(DarlcError::param(
            "--threads",
            format!("thread counts must be at least 1 (got {bad})"),
        ));
    }
    let reps = args.reps.max(1);
    let sizes = if args.small {
        Sizes::test()
    } else {
        Sizes::paper()
    };
    println!(
        "darlc bench scaling: {} cores available, thread counts {:?}, median of {} reps after {} \
         untimed; load average {}",
        cores,
        counts,
        reps,
        args.warmup,
        load_average()
    );
    let mut reports = Vec::new();
    for &part in &args.parts {
        let p = prepare(part, &sizes)?;
        let mut rows = Vec::new();
        for &n in &counts {
            let m = measure(&p, n, args.warmup, reps)?;
            rows.push(m);
        }
        let r = PartReport { part, rows };
        print!("{}", format_part(&r, &sizes));
        reports.push(r);
    }
    println!("load average at the end {}", load_average());
    let differ: Vec<&str> = reports
        .iter()
        .filter(|r| {
            r.rows
                .iter()
                .any(|m| m.fingerprint != r.rows[0].fingerprint)
        })
        .map(|r| r.part.label())
        .collect();
    if !differ.is_empty() {
        return Err(DarlcError::Numerical(format!(
            "results differ between thread counts in: {} (method §0 requires the same bits)",
            differ.join(", ")
        )));
    }
    Ok(())
}

/// `/proc/loadavg`'s first three fields, or `unknown`.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// The table of one part.
pub fn format_part(r: &PartReport, s: &Sizes) -> String {
    let shape = match r.part {
        Part::Ssl => format!(
            "B {}, {}×{} p {}, D {}, f32",
            s.ssl_batch, s.ssl_img, s.ssl_img, s.ssl_patch, s.ssl_dim
        ),
        Part::Gat => format!(
            "{} spots × {} genes, F1 {}, F2 {}, f32",
            s.gat_spots, s.gat_genes, s.gat_hidden, s.gat_embed
        ),
        Part::Em => format!("z [{}, {}], K {}, f64", s.em_n, s.em_d, s.em_k),
    };
    let mut out = format!("{} ({shape})\n", r.part.label());
    out += &format!(
        "  {:>7} {:>12} {:>10} {:>9} {:>10} {:>11}\n",
        "threads", "s/rep", "images/s", "speed-up", "efficiency", "same bits"
    );
    let base = r.rows.iter().find(|m| m.threads == 1);
    for m in &r.rows {
        let (speedup, eff) = match base {
            Some(b) => {
                let sp = m.images_per_second() / b.images_per_second();
                (
                    format!("{sp:.2}×"),
                    format!("{:.0} %", 100.0 * sp / m.threads as f64),
                )
            }
            None => ("–".into(), "–".into()),
        };
        let same = if m.fingerprint == r.rows[0].fingerprint {
            "yes"
        } else {
            "NO"
        };
        out += &format!(
            "  {:>7} {:>12.4} {:>10.1} {:>9} {:>10} {:>11}\n",
            m.threads,
            m.median(),
            m.images_per_second(),
            speedup,
            eff,
            same
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_counts_double_up_to_the_core_count() {
        assert_eq!(default_counts(1), vec![1]);
        assert_eq!(default_counts(2), vec![1, 2]);
        assert_eq!(default_counts(6), vec![1, 2, 4, 6]);
        assert_eq!(default_counts(8), vec![1, 2, 4, 8]);
        assert_eq!(default_counts(0), vec![1]);
    }

    #[test]
    fn fingerprint_sees_every_bit() {
        let mut a = Fnv::new();
        let mut b = Fnv::new();
        a.f64s([1.0f64, 2.0].iter());
        b.f64s([1.0f64, f64::from_bits(2.0f64.to_bits() ^ 1)].iter());
        assert_ne!(a.0, b.0);
        let mut c = Fnv::new();
        c.f64s([2.0f64, 1.0].iter());
        assert_ne!(a.0, c.0, "order matters");
    }
}
