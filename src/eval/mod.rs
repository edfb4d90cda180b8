//! Judging results: metrics, Hungarian matching, Leiden, downstream probes (SPEC §12).

pub mod hungarian;
pub mod leiden;
pub mod metrics;
