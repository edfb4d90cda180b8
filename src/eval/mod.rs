//! Judging results: metrics, Hungarian matching, Leiden, downstream probes (method §12).
//!
//! * [`metrics`]: DBIE, DBIP, NMI, ARI, ACC, SAM (method §12.1–12.3).
//! * [`hungarian`]: optimal assignment, used by ACC.
//! * [`knn`] + [`leiden`]: community detection on embeddings (Traag et al. 2019).
//! * [`families`]: the gene-family benchmark ([P] §4.3.2).
//! * [`moran`] + [`quality`]: Moran's I, and whether a denoiser raises it (method §3.5, §15).
//! * [`input`], [`report`], [`cli`]: `darlc eval` and `darlc leiden`.

pub mod families;
pub mod hungarian;
pub mod input;
pub mod knn;
pub mod leiden;
pub mod metrics;
pub mod moran;
pub mod probe;
pub mod quality;
pub mod report;
