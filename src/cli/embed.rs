//! `darlc embed`: `darlc run` stopping after the Module I warm-up (the paper's "DARLC-C1"
//! representations, method §4.5 and §13): images → smoothing → warm-up → `h`.
//!
//! It is [`crate::pipeline::run_with`] with [`Until::WarmUp`]: the same input flags, the same
//! configuration (preset, `--config`, flags), the same training path and output folder, so its
//! outputs are exactly the warm-up outputs of the run with the same arguments.

use super::input::InputArgs;
use super::run::ConfigArgs;
use crate::config::Method;
use crate::error::{DarlcError, Result};
use crate::pipeline::{RunControl, Until, run_with};
use crate::threads::with_threads;
use std::path::PathBuf;

/// Arguments of `darlc embed`.
///
/// Until issue 26 `embed` had its own training path: method §14's schedule (`--epochs 50`, `--batch
/// 256`, 1000 GAT epochs, lr 1e-3) and its own files (`warmup.jsonl`). It now takes the preset
/// and config of `darlc run` (default: recommended) and writes the run's warm-up outputs:
/// `embeddings.safetensors` (`h`), `embeddings.csv`, `model.safetensors`, `log.jsonl`,
/// `run.json` and the images (`images.safetensors`, `genes.csv`, `report.json`). `--preset paper`
/// gives method §14's schedule.
#[derive(clap::Args, Debug, Clone)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub load: InputArgs,
    /// Output folder, written only when complete (as `darlc run --out`).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace a non-empty --out that darlc did not write, or discard an interrupted embed's
    /// checkpoint in OUT.darlc-partial and start again.
    #[arg(long)]
    pub force: bool,
    /// Continue an interrupted embed from its last checkpoint in OUT.darlc-partial; give the
    /// same arguments as the interrupted command (--threads may differ).
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Hide the progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// `darlc embed`: `darlc run` up to the end of the warm-up.
pub fn embed(args: EmbedArgs) -> Result<()> {
    crate::memory::retain_freed_memory();
    let threads = args.threads;
    with_threads(threads, move || embed_inner(&args))?
}

fn embed_inner(args: &EmbedArgs) -> Result<()> {
    let c = args.config.config(&args.load)?;
    if c.method != Method::Darlc {
        return Err(DarlcError::param(
            "method",
            format!(
                "`darlc embed` trains DARLC's Module I; the config asks for {:?} (set \"method\": \
                 \"darlc\" or leave the key out)",
                c.method
            ),
        ));
    }
    let cfg = c.check()?;
    let input = args.load.input()?;
    let load = args.load.options_for(cfg.get());
    let ctl = RunControl {
        until: Until::WarmUp,
        quiet: args.quiet,
        force: args.force,
        resume: args.resume,
        ..RunControl::default()
    };
    let r = run_with(&input, &load, &cfg, None, &args.out, &ctl)?;
    for p in &r.phases {
        eprintln!("{:>10}: {:8.2} s", p.name, p.seconds);
    }
    println!("wrote {}", args.out.display());
    Ok(())
}
