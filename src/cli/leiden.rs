//! `darlc leiden`: Leiden communities of a kNN graph of embeddings.

use crate::error::Result;
use crate::eval::input::load_embeddings;
use crate::eval::knn::{Metric, knn_graph};
use crate::eval::leiden::{LeidenParams, Quality, leiden};
use std::path::PathBuf;

/// Leiden communities of a kNN graph of embeddings (Traag et al. 2019), written as CSV `id,cluster`.
#[derive(clap::Args, Debug)]
pub struct LeidenArgs {
    /// Embeddings: safetensors (tensor `z`, else `h`, else the only one) or CSV (id, vector…).
    #[arg(long, value_name = "FILE")]
    pub embeddings: PathBuf,
    /// Embedding tensor to read from a safetensors file.
    #[arg(long, value_name = "NAME")]
    pub tensor: Option<String>,
    /// Neighbours per item in the kNN graph.
    #[arg(long, default_value_t = 15)]
    pub k: usize,
    /// kNN distance.
    #[arg(long, value_enum, default_value_t = Metric::Euclidean)]
    pub metric: Metric,
    /// Resolution γ.
    #[arg(long, default_value_t = 1.0)]
    pub resolution: f64,
    /// Quality function.
    #[arg(long, value_enum, default_value_t = Quality::Modularity)]
    pub quality: Quality,
    /// Refinement randomness θ.
    #[arg(long, default_value_t = 0.01)]
    pub theta: f64,
    /// Seed of the named stream "leiden".
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output CSV (header `id,cluster`; clusters numbered by decreasing size).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Run `darlc leiden`.
pub fn leiden_cmd(args: LeidenArgs) -> Result<()> {
    let emb = load_embeddings(&args.embeddings, args.tensor.as_deref(), None)?;
    let g = knn_graph(emb.x.view(), args.k, args.metric)?;
    let params = LeidenParams {
        quality: args.quality,
        resolution: args.resolution,
        theta: args.theta,
        seed: args.seed,
        ..Default::default()
    };
    let r = leiden(&g, &params)?;
    crate::io::atomic_write_with(&args.out, |w| {
        let mut wr = csv::Writer::from_writer(w);
        wr.write_record(["id", "cluster"])?;
        for (id, c) in emb.ids.ids.iter().zip(&r.membership) {
            wr.write_record([id.as_str(), &c.to_string()])?;
        }
        wr.flush()
    })?;
    println!(
        "{} items, k = {}, {:?} γ = {}: {} communities, quality {:.6} ({} passes) → {}",
        emb.x.nrows(),
        args.k,
        args.quality,
        args.resolution,
        r.n_communities,
        r.quality,
        r.passes,
        args.out.display()
    );
    Ok(())
}
