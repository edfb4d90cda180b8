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
    /// Golden fixtures: regenerate or check (SPEC §18).
    Fixtures(darlc::fixtures::cli::FixturesArgs),
    /// Compare another backend's outputs with a reference golden set.
    Verify(darlc::fixtures::cli::VerifyArgs),
    /// Performance figures (prints, does not assert).
    Bench(darlc::bench::cli::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: darlc::Result<()> = match cli.command {
        Command::Fixtures(a) => darlc::fixtures::cli::fixtures(a),
        Command::Verify(a) => darlc::fixtures::cli::verify(a),
        Command::Bench(a) => darlc::bench::cli::bench(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
