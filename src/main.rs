//! The `darlc` command line: parse, call the library, print. No algorithm lives here.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Keep freed memory in the process for reuse: the tape allocates and frees tens of MB per
    // op, and glibc would otherwise map and unmap (and page-fault) every block (see darlc::memory).
    darlc::memory::retain_freed_memory();
    let cli = darlc::cli::Cli::parse();
    // DARLC_PROFILE_OPS=1: time every tape op of the command and print the table at the end.
    let profile = std::env::var_os("DARLC_PROFILE_OPS").is_some_and(|v| v != "0");
    darlc::autodiff::profile::set_enabled(profile);
    let result = darlc::cli::dispatch(cli.command);
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
