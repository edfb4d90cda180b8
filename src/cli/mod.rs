//! The `darlc` command line: one file per subcommand, each holding its flags and the glue that
//! turns them into library calls. No algorithm lives here; library folders hold no flags.
//!
//! Flag names are shared across subcommands: one input-args struct ([`input::InputArgs`]) for
//! every command that reads data, `--smoothing`/`--gat-epochs` for the denoiser wherever it runs,
//! `--knn` for the neighbours of a kNN graph.

pub mod bench;
pub mod embed;
pub mod eval;
pub mod fixtures;
pub mod images;
pub mod input;
pub mod leiden;
pub mod probe;
pub mod run;
pub mod simulate;
pub mod smooth;
pub mod verify;

use clap::{Parser, Subcommand};

/// `darlc`'s arguments.
#[derive(Parser)]
#[command(
    name = "darlc",
    version,
    about = "DARLC: cluster sparse and noisy images (spatial gene-expression patterns)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// The main job: images → smoothing → warm-up → joint training → clusters (or a baseline).
    Run(run::RunArgs),
    /// Golden fixtures: regenerate or check (method §18).
    Fixtures(fixtures::FixturesArgs),
    /// Compare another backend's outputs with a reference golden set.
    Verify(verify::VerifyArgs),
    /// Performance figures (prints, does not assert).
    Bench(bench::BenchArgs),
    /// Preprocess and rasterise an input into images (method §2); writes images.safetensors,
    /// genes.csv, spots.csv, report.json.
    Images(images::ImagesArgs),
    /// Write a synthetic Visium section with known gene patterns (10x layout + truth.csv).
    Simulate(simulate::SimulateArgs),
    /// Score a clustering: DBIE, DBIP, NMI, ARI, ACC, SAM; optional gene-family benchmark.
    Eval(eval::EvalArgs),
    /// Leiden communities of a kNN graph of embeddings.
    Leiden(leiden::LeidenArgs),
    /// Denoise every image (tied GAT autoencoder, method §3, or GKS, §15); writes
    /// smoothed.safetensors, gat.safetensors, smoothing.png, smoothing.json.
    Smooth(smooth::SmoothArgs),
    /// Gene-pair interaction probe: k-fold accuracy of an MLP on labelled gene pairs.
    Probe(probe::ProbeArgs),
    /// Module I warm-up: images → smoothing → ViT SSL → representations h (method §4).
    Embed(embed::EmbedArgs),
}

/// Run one parsed command.
pub fn dispatch(command: Command) -> crate::Result<()> {
    match command {
        Command::Run(a) => run::run_cmd(a),
        Command::Fixtures(a) => fixtures::fixtures(a),
        Command::Verify(a) => verify::verify(a),
        Command::Bench(a) => bench::bench(a),
        Command::Images(a) => images::run_images(a),
        Command::Simulate(a) => simulate::run_simulate(a),
        Command::Eval(args) => eval::eval(args),
        Command::Leiden(args) => leiden::leiden_cmd(args),
        Command::Smooth(a) => smooth::run_smooth(a),
        Command::Probe(args) => probe::probe_cmd(args),
        Command::Embed(a) => embed::embed(a),
    }
}
