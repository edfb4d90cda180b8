//! Judging results: metrics, Hungarian matching, Leiden, downstream probes (SPEC §12).
pub mod moran;
