//! `darlc simulate`: write a synthetic Visium section with known gene patterns.

use crate::data::simulate::{SimConfig, simulate};
use crate::error::Result;
use std::path::PathBuf;

/// `darlc simulate`: write a synthetic Visium section with known patterns.
#[derive(clap::Args, Clone, Debug)]
pub struct SimulateArgs {
    /// Output folder (outs/…, truth.csv, simulate.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of genes.
    #[arg(long, default_value_t = 15_000)]
    pub genes: usize,
    /// Seed of the simulation's named random streams.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fraction of pure-noise genes.
    #[arg(long, default_value_t = 0.3)]
    pub noise_fraction: f64,
    /// Probability that a non-zero count is dropped.
    #[arg(long, default_value_t = 0.1)]
    pub dropout: f64,
}

/// Run `darlc simulate`.
pub fn run_simulate(args: SimulateArgs) -> Result<()> {
    let cfg = SimConfig {
        n_genes: args.genes,
        seed: args.seed,
        noise_fraction: args.noise_fraction,
        dropout: args.dropout,
        ..SimConfig::default()
    };
    let s = simulate(&args.out, &cfg)?;
    println!(
        "simulated {} genes × {} in-tissue spots (of {}), {} non-zeros, {} counts",
        s.n_genes, s.spots_in_tissue, s.spots_total, s.nnz, s.total_counts
    );
    println!(
        "patterns: {}",
        s.patterns
            .iter()
            .map(|(p, n)| format!("{p} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("wrote: {}", args.out.display());
    Ok(())
}
