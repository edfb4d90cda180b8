//! The pre-norm transformer block (SPEC §4.1):
//! `U = T + MHSA(LN_1(T))`, `T' = U + MLP(LN_2(U))`.

use super::attention::MultiHeadAttention;
use super::layernorm::LayerNorm;
use super::mlp::Mlp;
use super::params::{Bound, ParamStore};
use crate::autodiff::{Tape, Var};
use crate::float::Float;
use crate::rng::Stream;

/// One block with parameters `prefix.ln1.{gamma,beta}`, `prefix.attn.{W_q,b_q,…,W_o,b_o}`,
/// `prefix.ln2.{gamma,beta}`, `prefix.mlp.{W_1,b_1,W_2,b_2}` (registered in that order).
#[derive(Clone, Copy, Debug)]
pub struct Block {
    pub ln1: LayerNorm,
    pub attn: MultiHeadAttention,
    pub ln2: LayerNorm,
    pub mlp: Mlp,
}

impl Block {
    /// Width `d`, `n_heads` heads, MLP hidden width `mlp_ratio · d` (SPEC: 4).
    pub fn new<T: Float>(
        store: &mut ParamStore<T>,
        prefix: &str,
        d: usize,
        n_heads: usize,
        mlp_ratio: usize,
        rng: &mut Stream,
    ) -> Self {
        let ln1 = LayerNorm::new(store, &format!("{prefix}.ln1"), d);
        let attn = MultiHeadAttention::new(store, &format!("{prefix}.attn"), d, n_heads, rng);
        let ln2 = LayerNorm::new(store, &format!("{prefix}.ln2"), d);
        let mlp = Mlp::new(store, &format!("{prefix}.mlp"), d, mlp_ratio * d, rng);
        Block {
            ln1,
            attn,
            ln2,
            mlp,
        }
    }

    /// `x: [B, L, D]` → `[B, L, D]`.
    pub fn forward<T: Float>(&self, t: &mut Tape<T>, p: &Bound, x: Var) -> Var {
        let h = self.ln1.forward(t, p, x);
        let a = self.attn.forward(t, p, h);
        let u = t.add(x, a);
        let h = self.ln2.forward(t, p, u);
        let m = self.mlp.forward(t, p, h);
        t.add(u, m)
    }
}
