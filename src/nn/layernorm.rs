//! LayerNorm over the last axis (SPEC §4.1): `γ ⊙ (y − ȳ)/sqrt(var(y) + eps) + β`, biased
//! variance, `eps = 1e-5` (PyTorch's default), `γ = 1`, `β = 0` at init.

use super::params::{Bound, ParamId, ParamStore};
use crate::autodiff::{Tape, Var};
use crate::float::Float;
use ndarray::{ArrayD, IxDyn};

/// LayerNorm with affine parameters `prefix.gamma`, `prefix.beta` (shape `[d]`).
#[derive(Clone, Copy, Debug)]
pub struct LayerNorm {
    pub gamma: ParamId,
    pub beta: ParamId,
    pub eps: f64,
}

impl LayerNorm {
    /// Register `prefix.gamma` (ones) and `prefix.beta` (zeros) of width `d`, `eps = 1e-5`.
    pub fn new<T: Float>(store: &mut ParamStore<T>, prefix: &str, d: usize) -> Self {
        let gamma = store.add(
            &format!("{prefix}.gamma"),
            ArrayD::from_elem(IxDyn(&[d]), T::one()),
        );
        let beta = store.add(&format!("{prefix}.beta"), ArrayD::zeros(IxDyn(&[d])));
        LayerNorm {
            gamma,
            beta,
            eps: 1e-5,
        }
    }

    /// The same layer with another `eps`.
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Normalise `x: [.., d]` over its last axis (one fused tape op).
    pub fn forward<T: Float>(&self, t: &mut Tape<T>, p: &Bound, x: Var) -> Var {
        t.layer_norm(x, p.var(self.gamma), p.var(self.beta), self.eps)
    }
}
