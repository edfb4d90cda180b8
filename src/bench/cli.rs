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
    /// Module I warm-up step at paper size (75×75, p 5, D 64, 4 blocks, 4 heads, B 256, f32):
    /// images/s and peak RSS (same step as the PyTorch peer `darlc_module1_torch.py`).
    SslStep(crate::module1::bench::SslStepArgs),
}

/// Run `darlc bench …`.
pub fn bench(args: BenchArgs) -> Result<()> {
    match args.which {
        BenchWhich::Ops { reps, tiny_ops } => {
            let rep = super::ops::run(reps.max(1), tiny_ops.max(1));
            print!("{}", super::ops::format_report(&rep));
            Ok(())
        }
        BenchWhich::SslStep(a) => crate::module1::bench::ssl_step(a),
    }
}
