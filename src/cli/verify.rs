//! `darlc verify`: compare another backend's outputs with a reference golden set (method §16).

use crate::error::{DarlcError, Result};
use crate::fixtures::case::Tier;
use crate::fixtures::verify::{self, format_line};
use clap::Args;
use std::path::PathBuf;

/// `darlc verify`: compare a candidate backend's outputs with a reference golden set.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Reference folder with manifest.json (e.g. fixtures/golden).
    #[arg(long)]
    pub reference: PathBuf,
    /// Candidate folder with one <case>.safetensors per manifest case.
    #[arg(long)]
    pub candidate: PathBuf,
    /// Tolerance tier of the manifest: f32 (method §16 defaults) or f64 (tight).
    #[arg(long, value_enum, default_value = "f32")]
    pub tier: Tier,
}

/// Run `darlc verify`.
pub fn verify(args: VerifyArgs) -> Result<()> {
    let results = verify::verify(&args.reference, &args.candidate, args.tier)?;
    let mut failed = Vec::new();
    for r in &results {
        println!("{}", format_line(r));
        if !r.passed() {
            failed.push(format!("{}/{}", r.case, r.tensor));
        }
    }
    let cases: std::collections::BTreeSet<&str> = results.iter().map(|r| r.case.as_str()).collect();
    println!(
        "verify (tier {}): {} cases, {} tensors, {} passed, {} FAILED",
        args.tier.name(),
        cases.len(),
        results.len(),
        results.len() - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        Ok(())
    } else {
        let shown = failed.len().min(20);
        Err(DarlcError::Mismatch(format!(
            "{} of {} tensors FAILED: {}{}",
            failed.len(),
            results.len(),
            failed[..shown].join(", "),
            if failed.len() > shown { ", …" } else { "" }
        )))
    }
}
