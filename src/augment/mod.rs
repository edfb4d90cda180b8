//! Positive views: the tied graph-attention autoencoder and Gaussian kernel smoothing (SPEC §3, §15).
