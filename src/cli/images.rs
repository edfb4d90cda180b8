//! `darlc images`: preprocess and rasterise an input into images (method §2) and write them.

use super::input::InputArgs;
use crate::data::load;
use crate::data::output::{summary, write_outputs};
use crate::error::Result;
use std::path::PathBuf;

/// `darlc images`: preprocess and rasterise an input, write the images.
#[derive(clap::Args, Clone, Debug)]
pub struct ImagesArgs {
    #[command(flatten)]
    pub load: InputArgs,
    /// Output folder (images.safetensors, genes.csv, spots.csv, report.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the named random streams (only `--sparsify` draws).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Run `darlc images`.
pub fn run_images(args: ImagesArgs) -> Result<()> {
    let input = args.load.input()?;
    let set = load(&input, &args.load.options(args.seed))?;
    let files = write_outputs(&set, &args.out)?;
    print!("{}", summary(&set));
    println!(
        "wrote: {}",
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
