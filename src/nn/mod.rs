//! Layers built on the tape and training utilities (method §4.1, §4.3, §4.5, §5, §18).
//!
//! * [`params`]: the parameter store with dotted names, tape binding, safetensors save/load.
//! * [`init`]: Xavier and normal initialisers from named streams.
//! * [`linear`], [`batchnorm`]: layers; each registers its parameters in a [`ParamStore`] at
//!   construction and has a `forward` on a [`crate::autodiff::Tape`] given the store's [`Bound`]
//!   leaves. The ViT block (LayerNorm, attention, MLP) is Module I's, in
//!   [`crate::module1::vit`].
//! * [`adam`], [`clip`], [`ema`]: the training utilities.

pub mod adam;
pub mod clip;
pub mod ema;
pub mod init;
pub mod linear;
pub mod params;

pub use adam::Adam;
pub use clip::clip_grad_norm;
pub use ema::{ema_update, ema_update_within};
pub use linear::Linear;
pub use params::{Bound, ParamId, ParamStore};
pub mod batchnorm;

pub use batchnorm::BatchNorm1d;
