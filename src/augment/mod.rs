//! Positive views: the tied graph-attention autoencoder and Gaussian kernel smoothing (SPEC §3, §15).

pub mod gks;
pub mod graph;
pub mod quality;

pub use graph::Graph;
