//! Multi-head self-attention (SPEC §4.1):
//!
//! ```text
//! Q = Y W_q + b_q,  K = Y W_k + b_k,  V = Y W_v + b_v          (all D×D)
//! A_h = softmax_row(Q_h K_hᵀ / √d_h)                           (heads = column blocks of width d_h)
//! MHSA(Y) = [A_1 V_1 | … | A_{n_h} V_{n_h}] W_o + b_o
//! ```
//!
//! The layer is three stages so that a fused kernel can replace the middle one:
//! projections ([`Linear`] on `[B, L, D]`, one GEMM each), [`attend`] (head split, scaled
//! dot products, softmax, weighted sum, head merge), and the output projection.

use super::linear::Linear;
use super::params::{Bound, ParamStore};
use crate::autodiff::{Tape, Var};
use crate::float::Float;
use crate::rng::Stream;

/// Multi-head self-attention with parameters `prefix.W_q, prefix.b_q, prefix.W_k, prefix.b_k,
/// prefix.W_v, prefix.b_v, prefix.W_o, prefix.b_o`.
#[derive(Clone, Copy, Debug)]
pub struct MultiHeadAttention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub n_heads: usize,
    pub d: usize,
}

impl MultiHeadAttention {
    /// Width `d` split into `n_heads` heads (`d % n_heads == 0`); each of `W_q, W_k, W_v, W_o` is
    /// Xavier-uniform on its own `d×d` matrix (drawn in that order), biases zero (SPEC §4.1 init).
    ///
    /// # Panics
    /// If `n_heads` does not divide `d` (the model's configuration is validated before layers are
    /// built).
    pub fn new<T: Float>(
        store: &mut ParamStore<T>,
        prefix: &str,
        d: usize,
        n_heads: usize,
        rng: &mut Stream,
    ) -> Self {
        assert!(
            n_heads > 0 && d.is_multiple_of(n_heads),
            "MultiHeadAttention: {n_heads} heads do not divide width {d}"
        );
        let mut lin = |s: &str| {
            Linear::with_names(
                store,
                &format!("{prefix}.W_{s}"),
                Some(&format!("{prefix}.b_{s}")),
                d,
                d,
                rng,
            )
        };
        let (q, k, v, o) = (lin("q"), lin("k"), lin("v"), lin("o"));
        MultiHeadAttention {
            q,
            k,
            v,
            o,
            n_heads,
            d,
        }
    }

    /// Self-attention over `x: [B, L, D]` → `[B, L, D]` (a 2-D `[L, D]` input is one sequence).
    pub fn forward<T: Float>(&self, t: &mut Tape<T>, p: &Bound, x: Var) -> Var {
        let q = self.q.forward(t, p, x);
        let k = self.k.forward(t, p, x);
        let v = self.v.forward(t, p, x);
        let ctx = attend(t, q, k, v, self.n_heads);
        self.o.forward(t, p, ctx)
    }
}

/// The attention core: for `q, k, v: [B, L, D]` (or `[L, D]`), per batch item and head `h`
/// (columns `h·d_h .. (h+1)·d_h`), `softmax_row(Q_h K_hᵀ / √d_h) V_h`, heads concatenated back
/// along the columns. Result has `q`'s shape.
///
/// The scale is applied to `Q` before the product (`[B, L, D]` instead of `[B·h, L, L]`
/// multiplications; exact when `√d_h` is a power of two, as for `d_h = 4, 16`).
pub fn attend<T: Float>(t: &mut Tape<T>, q: Var, k: Var, v: Var, n_heads: usize) -> Var {
    let shape = t.shape(q).to_vec();
    let (b, l, d) = match shape.len() {
        2 => (1, shape[0], shape[1]),
        3 => (shape[0], shape[1], shape[2]),
        _ => panic!("attend: expected [B, L, D] or [L, D], got {shape:?}"),
    };
    assert_eq!(d % n_heads, 0, "attend: {n_heads} heads do not divide {d}");
    let dh = d / n_heads;
    let q = t.scale(q, 1.0 / (dh as f64).sqrt());
    let qh = split_heads(t, q, b, l, n_heads, dh);
    let kh = split_heads(t, k, b, l, n_heads, dh);
    let vh = split_heads(t, v, b, l, n_heads, dh);
    let scores = t.batch_matmul(qh, kh, false, true); // [B·h, L, L]
    let a = t.softmax(scores);
    let ctx = t.batch_matmul(a, vh, false, false); // [B·h, L, d_h]
    let ctx = t.reshape(ctx, &[b, n_heads, l, dh]);
    let ctx = t.permute(ctx, &[0, 2, 1, 3]); // [B, L, h, d_h]
    t.reshape(ctx, &shape)
}

/// `[B, L, h·d_h]` → `[B·h, L, d_h]` (head `j` of item `i` at index `i·h + j`).
fn split_heads<T: Float>(t: &mut Tape<T>, x: Var, b: usize, l: usize, h: usize, dh: usize) -> Var {
    let x = t.reshape(x, &[b, l, h, dh]);
    let x = t.permute(x, &[0, 2, 1, 3]);
    t.reshape(x, &[b * h, l, dh])
}
