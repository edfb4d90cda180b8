//! The linear layer `Y = X W + b` (method §0 row-vector convention, `W ∈ R^{d_in × d_out}`).

use super::init;
use super::params::{Bound, ParamId, ParamStore};
use crate::autodiff::{Tape, Var};
use crate::float::Float;
use crate::rng::Stream;
use ndarray::{ArrayD, IxDyn};

/// A linear layer: weight `[d_in, d_out]` and optional bias `[d_out]` in a [`ParamStore`].
#[derive(Clone, Copy, Debug)]
pub struct Linear {
    pub w: ParamId,
    pub b: Option<ParamId>,
    pub d_in: usize,
    pub d_out: usize,
}

impl Linear {
    /// Register `prefix.W` (Xavier-uniform) and, if `bias`, `prefix.b` (zeros) — the MAE
    /// initialisation of method §4.1.
    pub fn new<T: Float>(
        store: &mut ParamStore<T>,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
        rng: &mut Stream,
    ) -> Self {
        let b_name = format!("{prefix}.b");
        Self::with_names(
            store,
            &format!("{prefix}.W"),
            bias.then_some(b_name.as_str()),
            d_in,
            d_out,
            rng,
        )
    }

    /// Like [`Linear::new`] with explicit parameter names (attention's `W_q`/`b_q`, the MLP's
    /// `W_1`/`b_1`, …). The weight is drawn before the bias is registered.
    pub fn with_names<T: Float>(
        store: &mut ParamStore<T>,
        w_name: &str,
        b_name: Option<&str>,
        d_in: usize,
        d_out: usize,
        rng: &mut Stream,
    ) -> Self {
        let w = store.add(
            w_name,
            init::xavier_uniform(&[d_in, d_out], d_in, d_out, rng),
        );
        let b = b_name.map(|n| store.add(n, ArrayD::zeros(IxDyn(&[d_out]))));
        Linear { w, b, d_in, d_out }
    }

    /// `x W + b` for `x: [.., d_in]` → `[.., d_out]`: one matrix product with the leading axes
    /// flattened into rows, then a broadcast bias add.
    pub fn forward<T: Float>(&self, t: &mut Tape<T>, p: &Bound, x: Var) -> Var {
        debug_assert_eq!(
            t.shape(x).last().copied(),
            Some(self.d_in),
            "Linear input width"
        );
        let y = t.matmul(x, p.var(self.w));
        match self.b {
            Some(b) => t.add(y, p.var(b)),
            None => y,
        }
    }
}
