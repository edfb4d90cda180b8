//! The transformer MLP (SPEC §4.1): `GELU(Y W_1 + b_1) W_2 + b_2`, exact GELU, hidden width `4D`.

use super::linear::Linear;
use super::params::{Bound, ParamStore};
use crate::autodiff::{Tape, Var};
use crate::float::Float;
use crate::rng::Stream;

/// Two linear layers with an exact GELU between them; parameters `prefix.W_1`, `prefix.b_1`,
/// `prefix.W_2`, `prefix.b_2`.
#[derive(Clone, Copy, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl Mlp {
    /// `d → hidden → d`, Xavier-uniform weights and zero biases (drawn `W_1` then `W_2`).
    pub fn new<T: Float>(
        store: &mut ParamStore<T>,
        prefix: &str,
        d: usize,
        hidden: usize,
        rng: &mut Stream,
    ) -> Self {
        let fc1 = Linear::with_names(
            store,
            &format!("{prefix}.W_1"),
            Some(&format!("{prefix}.b_1")),
            d,
            hidden,
            rng,
        );
        let fc2 = Linear::with_names(
            store,
            &format!("{prefix}.W_2"),
            Some(&format!("{prefix}.b_2")),
            hidden,
            d,
            rng,
        );
        Mlp { fc1, fc2 }
    }

    /// `GELU(x W_1 + b_1) W_2 + b_2` for `x: [.., d]`.
    pub fn forward<T: Float>(&self, t: &mut Tape<T>, p: &Bound, x: Var) -> Var {
        let h = self.fc1.forward(t, p, x);
        let h = t.gelu(h);
        self.fc2.forward(t, p, h)
    }
}
