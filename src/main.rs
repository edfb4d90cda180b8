//! The `darlc` command line: parse, call the library, print. No algorithm lives here.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "darlc",
    version,
    about = "DARLC: cluster sparse and noisy images (spatial gene-expression patterns)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job: images → smoothing → warm-up → joint training → clusters (or a baseline).
    Run(darlc::pipeline::cli::RunArgs),
    /// Golden fixtures: regenerate or check (SPEC §18).
    Fixtures(darlc::fixtures::cli::FixturesArgs),
    /// Compare another backend's outputs with a reference golden set.
    Verify(darlc::fixtures::cli::VerifyArgs),
    /// Performance figures (prints, does not assert).
    Bench(darlc::bench::cli::BenchArgs),
    /// Preprocess and rasterise an input into images (SPEC §2); writes images.safetensors,
    /// genes.csv, spots.csv, report.json.
    Images(darlc::data::cli::ImagesArgs),
    /// Write a synthetic Visium section with known gene patterns (10x layout + truth.csv).
    Simulate(darlc::data::cli::SimulateArgs),
    /// Score a clustering: DBIE, DBIP, NMI, ARI, ACC, SAM; optional gene-family benchmark.
    Eval(darlc::eval::cli::EvalArgs),
    /// Leiden communities of a kNN graph of embeddings.
    Leiden(darlc::eval::cli::LeidenArgs),
    /// Denoise every image (tied GAT autoencoder, SPEC §3, or GKS, §15); writes
    /// smoothed.safetensors, gat.safetensors, smoothing.png, smoothing.json.
    Smooth(darlc::augment::cli::SmoothArgs),
    /// Gene-pair interaction probe: k-fold accuracy of an MLP on labelled gene pairs.
    Probe(darlc::eval::probe::ProbeArgs),
    /// Module I warm-up: images → smoothing → ViT SSL → representations h (SPEC §4).
    Embed(darlc::module1::cli::EmbedArgs),
}

fn main() -> ExitCode {
    // Keep freed memory in the process for reuse: the tape allocates and frees tens of MB per
    // op, and glibc would otherwise map and unmap (and page-fault) every block (see darlc::memory).
    darlc::memory::retain_freed_memory();
    let cli = Cli::parse();
    // DARLC_PROFILE_OPS=1: time every tape op of the command and print the table at the end.
    let profile = std::env::var_os("DARLC_PROFILE_OPS").is_some_and(|v| v != "0");
    darlc::autodiff::profile::set_enabled(profile);
    let result: darlc::Result<()> = match cli.command {
        Command::Run(a) => darlc::pipeline::cli::run_cmd(a),
        Command::Fixtures(a) => darlc::fixtures::cli::fixtures(a),
        Command::Verify(a) => darlc::fixtures::cli::verify(a),
        Command::Bench(a) => darlc::bench::cli::bench(a),
        Command::Images(a) => darlc::data::cli::run_images(a),
        Command::Simulate(a) => darlc::data::cli::run_simulate(a),
        Command::Eval(args) => darlc::eval::cli::eval(args),
        Command::Leiden(args) => darlc::eval::cli::leiden_cmd(args),
        Command::Smooth(a) => darlc::augment::cli::run_smooth(a),
        Command::Probe(args) => darlc::eval::probe::probe_cmd(args),
        Command::Embed(a) => darlc::module1::cli::embed(a),
    };
    if profile {
        darlc::autodiff::profile::print(1);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(darlc::error::DarlcError::Interrupted { msg, signal }) => {
            eprintln!("interrupted: {msg}");
            ExitCode::from(u8::try_from(128 + signal).unwrap_or(1))
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
