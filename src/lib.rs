//! darlc — Dual Advancement of Representation Learning and Clustering for sparse and noisy images.
//!
//! A deterministic, pure-CPU reference implementation of DARLC. The method's equations are in
//! `docs/method.md`; doc comments cite its sections as `method §N.M`. Data flow one way:
//!
//! ```text
//! input ─ data ─▶ images + mask ─ augment ─▶ smoothed images ─ module1 ─▶ h
//!       ─ module2 ─▶ z, responsibilities, Θ ─ pipeline ─▶ outputs ─ eval ─▶ metrics
//! ```
//!
//! Layers import only downward (`tests/layering.rs` holds the floors): the ground floor (`error`,
//! `float`, `rng`, `progress`, `memory`, `threads`, `io`) ← `config` ← `autodiff` ← {`nn`,
//! `linalg`} ← `data` ← `augment` ← `eval` ← `module1` ← `module2` ← `baselines` ← `pipeline` ←
//! `bench` ← `fixtures` ← `cli`.

pub mod augment;
pub mod autodiff;
pub mod baselines;
pub mod bench;
pub mod cli;
pub mod config;
pub mod data;
pub mod error;
pub mod eval;
pub mod fixtures;
pub mod float;
pub mod io;
pub mod linalg;
pub mod memory;
pub mod module1;
pub mod module2;
pub mod nn;
pub mod pipeline;
pub mod progress;
pub mod rng;
pub mod threads;

pub use error::{DarlcError, Result};
pub use float::Float;
