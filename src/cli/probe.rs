//! `darlc probe`: the gene-pair interaction probe ([P] §4.3.1) on a user's embeddings and
//! labelled pairs (the library is [`crate::eval::probe`]).

use crate::error::Result;
use crate::eval::input::load_embeddings;
use crate::eval::probe::{ProbeParams, ProbeResult, format_probe, read_pairs, run_probe};
use std::path::PathBuf;

/// Gene-pair interaction probe ([P] §4.3.1): stratified k-fold accuracy and AUROC of an MLP on
/// the symmetric pair features of a user's labelled gene pairs.
#[derive(clap::Args, Debug)]
pub struct ProbeArgs {
    /// Embeddings: safetensors (tensor `z`, else `h`, else the only one) or CSV (id, vector…),
    /// rows named by the id rules of `darlc eval`.
    #[arg(long, value_name = "FILE")]
    pub embeddings: PathBuf,
    /// Embedding tensor to read from a safetensors file.
    #[arg(long, value_name = "NAME")]
    pub tensor: Option<String>,
    /// Pairs: CSV with header `gene_a,gene_b,label`, label 0 or 1.
    #[arg(long, value_name = "FILE")]
    pub pairs: PathBuf,
    /// Drop pairs naming a gene not in the embeddings (default: such a pair is an error).
    #[arg(long)]
    pub skip_missing: bool,
    /// Number of stratified folds.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Hidden units of the MLP.
    #[arg(long, default_value_t = 64)]
    pub hidden: usize,
    /// Training epochs per fold.
    #[arg(long, default_value_t = 200)]
    pub epochs: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Pairs per mini-batch (0 = full batch; capped at the training-fold size).
    #[arg(long, default_value_t = 200)]
    pub batch_size: usize,
    /// Seed of the streams probe.folds, probe.init.fold*, probe.batches.fold*.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the result as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Run `darlc probe`.
pub fn probe_cmd(args: ProbeArgs) -> Result<()> {
    let emb = load_embeddings(&args.embeddings, args.tensor.as_deref(), None)?;
    let set = read_pairs(&args.pairs, &emb.ids, &args.embeddings, args.skip_missing)?;
    let params = ProbeParams {
        folds: args.folds,
        hidden: args.hidden,
        epochs: args.epochs,
        lr: args.lr,
        batch_size: args.batch_size,
        seed: args.seed,
    };
    let result = run_probe(emb.x.view(), &set.pairs, &params)?;
    println!(
        "embeddings {} ({}, {} × {}); pairs {}",
        args.embeddings.display(),
        emb.what,
        emb.x.nrows(),
        emb.x.ncols(),
        args.pairs.display()
    );
    if args.skip_missing {
        println!(
            "skipped {} pair(s) naming a gene not in the embeddings",
            set.skipped
        );
    }
    print!("{}", format_probe(&result));
    if let Some(j) = &args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            embeddings: String,
            tensor: &'a str,
            pairs: String,
            skipped: usize,
            #[serde(flatten)]
            result: &'a ProbeResult,
        }
        crate::io::write_json(
            j,
            &Out {
                embeddings: args.embeddings.display().to_string(),
                tensor: &emb.what,
                pairs: args.pairs.display().to_string(),
                skipped: set.skipped,
                result: &result,
            },
        )?;
    }
    Ok(())
}
