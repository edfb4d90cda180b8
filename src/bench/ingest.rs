//! The ingest benchmark of issue 3 (item 7): read + preprocess + rasterise the simulated section
//! (15,000 genes × ~4,000 spots, gzipped MTX). Bar: ≤ 10 s and ≤ 2 GB peak RSS on 2 cores.

use crate::data::simulate::{SimConfig, simulate};
use crate::data::{LoadOptions, load};
use crate::error::Result;
use crate::memory::peak_rss_bytes;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// What one timed ingest measured.
#[derive(Clone, Debug, Serialize)]
pub struct IngestBench {
    /// Wall-clock seconds of [`load`] (read, preprocess, rasterise).
    pub seconds: f64,
    /// Peak resident set size of this process so far (Linux `VmHWM`), if known. It includes
    /// anything the process did before, e.g. the simulation when it ran in the same process.
    pub peak_rss_bytes: Option<u64>,
    pub images: usize,
    pub spots: usize,
    pub height: usize,
    pub width: usize,
    /// Whether this call had to simulate the section first.
    pub simulated: bool,
}

/// Time [`load`] on the simulated section in `dir`, simulating it first (default config,
/// 15,000 genes, seed 0) if `dir/outs` does not exist. For a clean RSS figure run the simulation
/// in a separate process first (`darlc simulate --out DIR`).
pub fn ingest_benchmark(dir: &Path) -> Result<IngestBench> {
    let simulated = !dir.join("outs").is_dir();
    if simulated {
        simulate(dir, &SimConfig::default())?;
    }
    let t0 = Instant::now();
    let set = load(dir, &LoadOptions::default())?;
    let seconds = t0.elapsed().as_secs_f64();
    let (n, _, h, w) = set.images.dim();
    Ok(IngestBench {
        seconds,
        peak_rss_bytes: peak_rss_bytes(),
        images: n,
        spots: set.section.as_ref().map_or(0, |s| s.spot_ids.len()),
        height: h,
        width: w,
        simulated,
    })
}
