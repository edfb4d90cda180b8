//! Command-line front end of `darlc bench …`.

use crate::error::Result;
use clap::{Args, Subcommand};

/// `darlc bench`: performance figures.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub which: BenchWhich,
}

/// Which benchmark.
#[derive(Subcommand, Debug)]
pub enum BenchWhich {
    /// Tape matmul forward+backward vs raw sgemm on the ViT shapes (B 256, L 225, D 64), and the
    /// tape overhead of a one-element op.
    Ops {
        /// Repetitions per measurement (the median is reported).
        #[arg(long, default_value_t = 7)]
        reps: usize,
        /// One-element ops timed for the overhead figure.
        #[arg(long, default_value_t = 200_000)]
        tiny_ops: usize,
    },
    /// Ingest + preprocess + rasterise a simulated Visium-size section (15,000 genes × ~4,000
    /// spots, gzipped MTX; simulated into DIR first if it is not there): seconds and peak RSS.
    Ingest {
        /// Folder of the simulated section (reused across runs).
        #[arg(long, default_value = "target/bench-ingest")]
        dir: std::path::PathBuf,
    },
    /// Module I warm-up step at paper size (75×75, p 5, D 64, 4 blocks, 4 heads, B 256, f32):
    /// images/s and peak RSS (same step as the PyTorch peer `darlc_module1_torch.py`).
    SslStep(crate::bench::ssl_step::SslStepArgs),
    /// Thread scaling: the Module I step, the GAT epoch and one EM iteration at 1, 2, 4, … up to
    /// the core count (and the count itself): images/s, parallel efficiency, and whether every
    /// count gives the same bits.
    Scaling(crate::bench::scaling::ScalingArgs),
}

/// Run `darlc bench …`.
pub fn bench(args: BenchArgs) -> Result<()> {
    match args.which {
        BenchWhich::Ops { reps, tiny_ops } => {
            let rep = crate::bench::ops::run(reps.max(1), tiny_ops.max(1));
            print!("{}", crate::bench::ops::format_report(&rep));
            Ok(())
        }
        BenchWhich::Ingest { dir } => {
            let first = crate::bench::ingest::ingest_benchmark(&dir)?;
            // Measure on a warm page cache: a second load after the (possible) simulation.
            let r = if first.simulated {
                crate::bench::ingest::ingest_benchmark(&dir)?
            } else {
                first
            };
            println!(
                "ingest: {} images of {}×{} from {} spots in {:.2} s; peak RSS {} (bar: ≤ 10 s, ≤ 2 GB)",
                r.images,
                r.height,
                r.width,
                r.spots,
                r.seconds,
                r.peak_rss_bytes.map_or("unknown".to_string(), |b| format!(
                    "{:.0} MB",
                    b as f64 / 1e6
                )),
            );
            Ok(())
        }
        BenchWhich::SslStep(a) => crate::bench::ssl_step::ssl_step(a),
        BenchWhich::Scaling(a) => crate::bench::scaling::scaling(a),
    }
}
