//! Module I: ViT masked image modelling + contrastive learning + uncertainty weighting (method §4).
//!
//! * [`vit`]: patchify, sin-cos positions, the pre-LN ViT encoder and mean pooling (§4.1).
//! * [`mim`]: masking, decoder input, residual MLP decoder, `L_MIM` (§4.2).
//! * [`contrastive`]: symmetric NT-Xent (§4.3).
//! * [`uwl`]: uncertainty-weighted SSL loss (§4.4).
//! * [`model`]: the whole module with EMA target, Adam, one training step.
//! * [`warmup`]: warm-up training (§4.5).
//! * [`cli`]: `darlc embed`.

pub mod contrastive;
pub mod mim;
pub mod model;
pub mod uwl;
pub mod vit;
pub mod warmup;

pub use model::{Config, ModuleI, StepLosses};
