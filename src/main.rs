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
    /// Module I warm-up: images → smoothing → ViT SSL → representations h (SPEC §4).
    Embed(darlc::module1::cli::EmbedArgs),
    /// Benchmark: Module I training step at paper size (temporary name until `bench` exists).
    BenchSslStep(darlc::module1::bench::SslStepArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: darlc::Result<()> = match cli.command {
        Command::Embed(a) => darlc::module1::cli::embed(a),
        Command::BenchSslStep(a) => darlc::module1::bench::ssl_step(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
