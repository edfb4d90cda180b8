//! A synthetic Visium section with known gene patterns: the scale benchmark and a labelled test
//! for everything downstream (issue 3, item 4).
//!
//! * Array: the full Visium capture area, `array_row` 0–77, `array_col` 0–127 with
//!   `array_row + array_col` even (4,992 spots). Tissue: the spots inside a superellipse
//!   `|u|⁴ + |v|⁴ ≤ 1` on physical coordinates `(array_col/2, array_row·√3/2)`, centred, semi-axes
//!   30 × 31.2 spot pitches: 4,000 spots or so (the exact count is printed and in `simulate.json`).
//! * Patterns (templates `f_t(s) ∈ [0, 1]`, `u, v ∈ [−1, 1]` across the tissue): 5 curved layers
//!   (bands of `v + 0.15u²`), 4 linear gradients (±u, ±v), 4 hot-spot sets (Gaussian blobs), and
//!   pure noise (`f = 1`). A fraction `noise_fraction` of genes is noise; the rest are spread
//!   uniformly over the 13 spatial templates. The first `mt_genes` genes are named `MT-…` (pattern
//!   `mt`) so that the method §2.1 filter has something to remove.
//! * Counts: gene mean `m_g` log-normal (median 0.2, log-sd 1.3, clipped to [0.005, 30]); spot size
//!   factor `L_s` log-normal (log-sd 0.3); `μ_sg = m_g · L_s · (0.1 + f_t(s)) / mean_s(0.1 + f_t)`;
//!   `y ~ NB(μ, r = 2)` drawn as Poisson(Gamma(r, μ/r)); then each non-zero is dropped (set to 0)
//!   with probability `dropout`.
//! * Randomness: stream `simulate.spots` for size factors, `simulate.genes` for the pattern and
//!   mean of every gene (in gene order), `simulate.counts.<g>` for the counts of gene g — so the
//!   output is identical on any number of threads.
//!
//! Written in the Space Ranger layout: `outs/filtered_feature_bc_matrix/{matrix.mtx.gz,
//! features.tsv.gz, barcodes.tsv.gz}` (in-tissue spots only), `outs/spatial/tissue_positions.csv`
//! (all 4,992 spots, with header), plus `truth.csv` (gene → pattern) and `simulate.json`.

use crate::error::{DarlcError, Result};
use crate::io::{atomic_write_with, write_json};
use flate2::Compression;
use flate2::write::GzEncoder;
use ndarray_rand::rand_distr::{Distribution, Gamma, Normal, Poisson};
use rand::Rng;
use rayon::prelude::*;
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// Settings of the simulated section.
#[derive(Clone, Debug, Serialize)]
pub struct SimConfig {
    /// Number of features written (including the `MT-` ones). Default 15,000.
    pub n_genes: usize,
    pub seed: u64,
    /// Fraction of non-MT genes with the pure-noise pattern. Default 0.3.
    pub noise_fraction: f64,
    /// Probability that a non-zero count is dropped. Default 0.1.
    pub dropout: f64,
    /// Negative-binomial size `r` (variance `μ + μ²/r`). Default 2.
    pub dispersion: f64,
    /// Leading `MT-` genes. Default 13.
    pub mt_genes: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            n_genes: 15_000,
            seed: 0,
            noise_fraction: 0.3,
            dropout: 0.1,
            dispersion: 2.0,
            mt_genes: 13,
        }
    }
}

/// What was written.
#[derive(Clone, Debug, Serialize)]
pub struct SimSummary {
    pub config: SimConfig,
    pub spots_total: usize,
    pub spots_in_tissue: usize,
    pub n_genes: usize,
    pub nnz: usize,
    pub total_counts: u64,
    /// Genes per pattern, sorted by pattern name.
    pub patterns: Vec<(String, usize)>,
}

/// The spatial templates: name and family.
pub const PATTERNS: [(&str, &str); 14] = [
    ("layer1", "layers"),
    ("layer2", "layers"),
    ("layer3", "layers"),
    ("layer4", "layers"),
    ("layer5", "layers"),
    ("gradient_x+", "gradients"),
    ("gradient_x-", "gradients"),
    ("gradient_y+", "gradients"),
    ("gradient_y-", "gradients"),
    ("hotspot_a", "hotspots"),
    ("hotspot_b", "hotspots"),
    ("hotspot_c", "hotspots"),
    ("hotspot_d", "hotspots"),
    ("noise", "noise"),
];
const NOISE: usize = 13;

const ROWS: i64 = 78;
const COLS: i64 = 128;
const CX: f64 = 31.75;
const CY: f64 = 33.0;
const AX: f64 = 30.0;
const AY: f64 = 31.2;

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Template `t` at normalised position `(u, v)`.
pub fn template(t: usize, u: f64, v: f64) -> f64 {
    match t {
        0..=4 => {
            let w = v + 0.15 * u * u; // curved layers, like cortex
            let lo = -1.0 + 2.0 * t as f64 / 5.0;
            let hi = lo + 0.4;
            sigmoid((w - lo) / 0.04) * sigmoid((hi - w) / 0.04)
        }
        5 => (1.0 + u) / 2.0,
        6 => (1.0 - u) / 2.0,
        7 => (1.0 + v) / 2.0,
        8 => (1.0 - v) / 2.0,
        9..=12 => {
            const BLOBS: [&[(f64, f64, f64)]; 4] = [
                &[(-0.5, -0.5, 0.15)],
                &[(0.45, 0.3, 0.2)],
                &[(-0.4, 0.5, 0.12), (0.5, -0.4, 0.12)],
                &[(0.0, 0.0, 0.1), (-0.6, 0.0, 0.08), (0.3, 0.65, 0.08)],
            ];
            BLOBS[t - 9]
                .iter()
                .map(|&(bu, bv, s)| (-((u - bu).powi(2) + (v - bv).powi(2)) / (2.0 * s * s)).exp())
                .fold(0.0, f64::max)
        }
        _ => 1.0,
    }
}

/// A 16-letter ACGT barcode from an index (base 4), with the `-1` GEM-well suffix.
fn barcode(k: usize) -> String {
    let mut s: Vec<u8> = (0..16)
        .map(|i| b"ACGT"[(k >> (2 * (15 - i))) & 3])
        .collect();
    s.extend_from_slice(b"-1");
    String::from_utf8(s).unwrap_or_default()
}

struct Spot {
    row: i64,
    col: i64,
    u: f64,
    v: f64,
    in_tissue: bool,
}

fn spots() -> Vec<Spot> {
    let mut out = vec![];
    for row in 0..ROWS {
        for col in (0..COLS).filter(|c| (row + c) % 2 == 0) {
            let px = col as f64 / 2.0;
            let py = row as f64 * 3f64.sqrt() / 2.0;
            let (u, v) = ((px - CX) / AX, (py - CY) / AY);
            out.push(Spot {
                row,
                col,
                u,
                v,
                in_tissue: u.powi(4) + v.powi(4) <= 1.0,
            });
        }
    }
    out
}

fn gz_write(path: &Path, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    atomic_write_with(path, |w| {
        let mut e = GzEncoder::new(w, Compression::fast());
        fill(&mut e)?;
        e.try_finish()
    })
}

/// Write the synthetic section into `out` (see the module doc). Deterministic for a given config.
pub fn simulate(out: &Path, cfg: &SimConfig) -> Result<SimSummary> {
    if cfg.n_genes == 0 || cfg.n_genes > 1_000_000 {
        return Err(DarlcError::param(
            "genes",
            format!("{} must be in 1..=1000000", cfg.n_genes),
        ));
    }
    if !(0.0..=1.0).contains(&cfg.noise_fraction) || !(0.0..1.0).contains(&cfg.dropout) {
        return Err(DarlcError::param(
            "noise_fraction/dropout",
            "must be probabilities (dropout < 1)",
        ));
    }
    if !(cfg.dispersion > 0.0 && cfg.dispersion.is_finite()) {
        return Err(DarlcError::param("dispersion", "must be > 0"));
    }
    let all = spots();
    let tissue: Vec<&Spot> = all.iter().filter(|s| s.in_tissue).collect();
    let n = tissue.len();

    let mut rng = crate::rng::stream(cfg.seed, "simulate.spots");
    let size_dist = Normal::<f64>::new(0.0, 0.3).map_err(|e| DarlcError::Data(e.to_string()))?;
    let size: Vec<f64> = (0..n)
        .map(|_| f64::exp(size_dist.sample(&mut rng)))
        .collect();

    let mut rng = crate::rng::stream(cfg.seed, "simulate.genes");
    let mean_dist = Normal::new(0.2f64.ln(), 1.3).map_err(|e| DarlcError::Data(e.to_string()))?;
    let genes: Vec<(Option<usize>, f64)> = (0..cfg.n_genes)
        .map(|g| {
            let m = mean_dist.sample(&mut rng).exp().clamp(0.005, 30.0);
            let noise = rng.random::<f64>() < cfg.noise_fraction;
            let spatial = rng.random_range(0..NOISE);
            if g < cfg.mt_genes {
                (None, 5.0)
            } else if noise {
                (Some(NOISE), m)
            } else {
                (Some(spatial), m)
            }
        })
        .collect();

    // Template values per spot, normalised to mean 1 over the tissue.
    let shapes: Vec<Vec<f64>> = (0..PATTERNS.len())
        .map(|t| {
            let raw: Vec<f64> = tissue.iter().map(|s| 0.1 + template(t, s.u, s.v)).collect();
            let mean = raw.iter().sum::<f64>() / n as f64;
            raw.iter().map(|r| r / mean).collect()
        })
        .collect();

    let r = cfg.dispersion;
    let per_gene: Vec<Vec<(u32, u32)>> = genes
        .par_iter()
        .enumerate()
        .map(|(g, &(t, m))| {
            let mut rng = crate::rng::stream(cfg.seed, &format!("simulate.counts.{g}"));
            let shape = &shapes[t.unwrap_or(NOISE)];
            let gamma = Gamma::new(r, 1.0).expect("r > 0 checked");
            let mut out = Vec::new();
            for s in 0..n {
                let mu = m * size[s] * shape[s];
                let lambda = gamma.sample(&mut rng) * mu / r;
                let y = if lambda > 1e-12 {
                    Poisson::new(lambda)
                        .map(|p| p.sample(&mut rng))
                        .unwrap_or(0.0)
                } else {
                    0.0
                };
                if y > 0.0 && rng.random::<f64>() >= cfg.dropout {
                    out.push((s as u32, y as u32));
                }
            }
            out
        })
        .collect();

    // Transpose to spot-major order (10x writes the matrix column by column).
    let mut per_spot_count = vec![0usize; n + 1];
    for v in &per_gene {
        for &(s, _) in v {
            per_spot_count[s as usize + 1] += 1;
        }
    }
    for s in 0..n {
        per_spot_count[s + 1] += per_spot_count[s];
    }
    let nnz = per_spot_count[n];
    let mut fill = per_spot_count.clone();
    let mut cols: Vec<(u32, u32)> = vec![(0, 0); nnz];
    for (g, v) in per_gene.iter().enumerate() {
        for &(s, y) in v {
            cols[fill[s as usize]] = (g as u32, y);
            fill[s as usize] += 1;
        }
    }
    drop(per_gene);
    let total_counts: u64 = cols.iter().map(|c| c.1 as u64).sum();

    let outs = out.join("outs");
    let mdir = outs.join("filtered_feature_bc_matrix");
    gz_write(&mdir.join("matrix.mtx.gz"), |w| {
        writeln!(w, "%%MatrixMarket matrix coordinate integer general")?;
        writeln!(w, "%metadata_json: {{\"software\": \"darlc simulate\"}}")?;
        writeln!(w, "{} {} {}", cfg.n_genes, n, nnz)?;
        let mut buf = Vec::with_capacity(1 << 16);
        for s in 0..n {
            for &(g, y) in &cols[per_spot_count[s]..per_spot_count[s + 1]] {
                writeln!(buf, "{} {} {}", g + 1, s + 1, y)?;
            }
            if buf.len() > 60_000 {
                w.write_all(&buf)?;
                buf.clear();
            }
        }
        w.write_all(&buf)
    })?;
    let gene_id = |g: usize| {
        if g < cfg.mt_genes {
            format!("SIMMT{:04}", g + 1)
        } else {
            format!("SIMG{:06}", g + 1)
        }
    };
    let symbol = |g: usize| {
        if g < cfg.mt_genes {
            format!("MT-S{}", g + 1)
        } else {
            format!("Sim{:06}", g + 1)
        }
    };
    gz_write(&mdir.join("features.tsv.gz"), |w| {
        for g in 0..cfg.n_genes {
            writeln!(w, "{}\t{}\tGene Expression", gene_id(g), symbol(g))?;
        }
        Ok(())
    })?;
    let index_of = |s: &Spot| (s.row * COLS + s.col) as usize;
    gz_write(&mdir.join("barcodes.tsv.gz"), |w| {
        for s in &tissue {
            writeln!(w, "{}", barcode(index_of(s)))?;
        }
        Ok(())
    })?;
    atomic_write_with(&outs.join("spatial").join("tissue_positions.csv"), |w| {
        writeln!(
            w,
            "barcode,in_tissue,array_row,array_col,pxl_row_in_fullres,pxl_col_in_fullres"
        )?;
        for s in &all {
            let pr = 1500 + (s.row as f64 * 137.5).round() as i64;
            let pc = 1500 + (s.col as f64 * 79.4).round() as i64;
            writeln!(
                w,
                "{},{},{},{},{},{}",
                barcode(index_of(s)),
                s.in_tissue as u8,
                s.row,
                s.col,
                pr,
                pc
            )?;
        }
        Ok(())
    })?;
    atomic_write_with(&out.join("truth.csv"), |w| {
        // Id first and label second: the `--truth` convention of `darlc eval` and `darlc run`.
        writeln!(w, "gene_id,pattern,symbol,family,mean")?;
        for (g, &(t, m)) in genes.iter().enumerate() {
            let (p, f) = t.map_or(("mt", "mt"), |t| PATTERNS[t]);
            writeln!(w, "{},{},{},{},{}", gene_id(g), p, symbol(g), f, m)?;
        }
        Ok(())
    })?;
    let mut counts = std::collections::BTreeMap::new();
    for &(t, _) in &genes {
        *counts
            .entry(t.map_or("mt", |t| PATTERNS[t].0).to_string())
            .or_insert(0usize) += 1;
    }
    let summary = SimSummary {
        config: cfg.clone(),
        spots_total: all.len(),
        spots_in_tissue: n,
        n_genes: cfg.n_genes,
        nnz,
        total_counts,
        patterns: counts.into_iter().collect(),
    };
    write_json(&out.join("simulate.json"), &summary)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_and_tissue_sizes() {
        let s = spots();
        // 78 rows × 64 columns of one parity (method §2.2 lattice facts).
        assert_eq!(s.len(), 4992);
        let n = s.iter().filter(|s| s.in_tissue).count();
        // Superellipse area 4ab·Γ(5/4)²/Γ(3/2) ≈ 3.708·30·31.2 = 3471 pitch², one spot per
        // √3/2 pitch² -> about 4008 spots.
        assert!((3900..=4100).contains(&n), "{n}");
    }

    #[test]
    fn barcodes_are_distinct() {
        let mut b: Vec<String> = (0..4992).map(barcode).collect();
        assert_eq!(b[0], "AAAAAAAAAAAAAAAA-1");
        b.sort();
        b.dedup();
        assert_eq!(b.len(), 4992);
    }

    #[test]
    fn templates_are_in_unit_range() {
        for t in 0..PATTERNS.len() {
            for &(u, v) in &[(-1.0, -1.0), (0.0, 0.0), (0.5, -0.3), (1.0, 1.0)] {
                let f = template(t, u, v);
                assert!((0.0..=1.0).contains(&f), "{t} {f}");
            }
        }
        // layer1 covers the top band, not the bottom.
        assert!(template(0, 0.0, -0.8) > 0.9 && template(0, 0.0, 0.8) < 0.01);
    }
}
