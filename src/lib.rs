//! darlc — Dual Advancement of Representation Learning and Clustering for sparse and noisy images.
//!
//! A deterministic, pure-CPU reference implementation of DARLC. The contract for every formula is
//! `SPEC.md` (shipped with the project's shared materials); each module below implements one idea of
//! the paper and cites the SPEC section in its doc comment. Data flow one way:
//!
//! ```text
//! input ─ data ─▶ images + mask ─ augment ─▶ smoothed images ─ module1 ─▶ h
//!       ─ module2 ─▶ z, responsibilities, Θ ─ io ─▶ outputs ─ eval ─▶ metrics
//! ```
//!
//! Lower layers never import upper ones: `autodiff` ← `nn` ← {`augment`, `module1`, `module2`,
//! `eval`} ← `pipeline`; `data`, `io`, `rng`, `float` and `error` import nothing above them.

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
