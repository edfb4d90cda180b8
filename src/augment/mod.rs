//! Positive views: the tied graph-attention autoencoder and Gaussian kernel smoothing (method §3, §15).

pub mod gat;
pub mod gks;
pub mod graph;
pub mod smooth;

pub use graph::Graph;
