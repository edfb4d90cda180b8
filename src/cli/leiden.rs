//! `darlc leiden`: Leiden communities of a kNN graph of embeddings.

use crate::error::Result;
use crate::eval::input::load_embeddings;
use crate::eval::knn::{Metric, knn_graph};
use crate::eval::leiden::{LeidenParams, Quality, leiden};
use std::path::PathBuf;

/// Leiden communities of a kNN graph of embeddings (Traag et al. 2019), written as CSV
/// `gene,cluster`, which `darlc eval` reads as it reads `darlc run`'s clusters.csv (id first, the
/// `cluster` column by name).
#[derive(clap::Args, Debug)]
pub struct LeidenArgs {
    /// Embeddings: safetensors (tensor `z`, else `h`, else the only one) or CSV (id, [symbol,]
    /// vector…).
    #[arg(long, value_name = "FILE")]
    pub embeddings: PathBuf,
    /// Embedding tensor to read from a safetensors file (default: z, else h, else the only one).
    #[arg(long, value_name = "NAME")]
    pub tensor: Option<String>,
    #[command(flatten)]
    pub graph: CommunityArgs,
    /// Output CSV (header `gene,cluster`; clusters numbered by decreasing size).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// The kNN graph and Leiden flags shared by `darlc leiden` and the gene-family benchmark of
/// `darlc eval`.
#[derive(clap::Args, Clone, Debug)]
pub struct CommunityArgs {
    /// Neighbours per item in the kNN graph (capped at items − 1). Default: 15 in `leiden`, 5 in
    /// `eval`'s gene-family benchmark.
    #[arg(long)]
    pub knn: Option<usize>,
    /// kNN distance.
    #[arg(long, value_enum, default_value_t = Metric::Euclidean)]
    pub metric: Metric,
    /// Leiden resolution γ: larger values give more, smaller communities.
    #[arg(long, default_value_t = 1.0)]
    pub resolution: f64,
    /// Leiden quality function.
    #[arg(long, value_enum, default_value_t = Quality::Modularity)]
    pub quality: Quality,
    /// Leiden refinement randomness θ.
    #[arg(long, default_value_t = 0.01)]
    pub theta: f64,
    /// Seed of the named stream "leiden".
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl CommunityArgs {
    /// The Leiden parameters of these flags.
    pub fn params(&self) -> LeidenParams {
        LeidenParams {
            quality: self.quality,
            resolution: self.resolution,
            theta: self.theta,
            seed: self.seed,
            ..Default::default()
        }
    }
}

/// Neighbours of `darlc leiden`'s kNN graph when `--knn` is not given.
pub const LEIDEN_KNN: usize = 15;

/// Run `darlc leiden`.
pub fn leiden_cmd(args: LeidenArgs) -> Result<()> {
    let emb = load_embeddings(&args.embeddings, args.tensor.as_deref(), None)?;
    let g = &args.graph;
    let knn = g.knn.unwrap_or(LEIDEN_KNN);
    let params = g.params();
    let r = leiden(&knn_graph(emb.x.view(), knn, g.metric)?, &params)?;
    crate::io::atomic_write_with(&args.out, |w| {
        let mut wr = csv::Writer::from_writer(w);
        wr.write_record(["gene", "cluster"])?;
        for (id, c) in emb.ids.ids.iter().zip(&r.membership) {
            wr.write_record([id.as_str(), &c.to_string()])?;
        }
        wr.flush()
    })?;
    println!(
        "{} items, k = {}, {:?} γ = {}: {} communities, quality {:.6} ({} passes) → {}",
        emb.x.nrows(),
        knn,
        g.quality,
        g.resolution,
        r.n_communities,
        r.quality,
        r.passes,
        args.out.display()
    );
    Ok(())
}
