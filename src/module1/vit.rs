//! The ViT encoder of Module I (method §4.1): patchify, fixed 2-D sin-cos positions, pre-LN blocks
//! with multi-head self-attention and an exact-GELU MLP, final LayerNorm and mean pooling.
//!
//! Every function builds on a [`Tape`]; parameters are looked up by their dotted names (e.g.
//! `vit.block0.attn.W_q`) in a [`ParamVars`] map, with a `prefix` (`"vit"` for the online/masked
//! encoder θ, `"target.vit"` for the EMA target ξ).

use crate::autodiff::{Tape, Var};
use crate::float::Float;
use crate::nn::init::xavier_uniform;
use crate::nn::params::ParamStore;
use crate::rng::Stream;
use ndarray::{Array2, Array3, ArrayD, ArrayView4, IxDyn};
use std::collections::BTreeMap;
use std::sync::Arc;

/// LayerNorm epsilon everywhere in Module I (method §4.1, §4.2).
pub const LN_EPS: f64 = 1e-5;

/// Tape leaves by parameter name.
pub type ParamVars = BTreeMap<String, Var>;

/// The leaf of parameter `name` (a missing name is a programming error, not user input).
pub fn pv(vars: &ParamVars, name: &str) -> Var {
    match vars.get(name) {
        Some(v) => *v,
        None => panic!("module1: parameter {name} is not on the tape"),
    }
}

/// Patch vectors `[B, L, P]` of images `[B, C, H, W]` (method §4.1 "Patchify"):
/// `patch_l(x)[(i·p + j)·C + c] = x[c, a·p + i, b·p + j]`, `l = a·gw + b`.
/// `H` and `W` must be multiples of `p` (checked by the caller's config).
pub fn patchify<T: Float>(x: ArrayView4<T>, p: usize) -> Array3<T> {
    let (b, c, h, w) = x.dim();
    let (gh, gw) = (h / p, w / p);
    let pl = c * p * p;
    let mut out = Array3::<T>::zeros((b, gh * gw, pl));
    if let (1, Some(xs), Some(os)) = (c, x.as_slice(), out.as_slice_mut()) {
        // One channel, contiguous input: each patch row is a run of p pixels.
        for n in 0..b {
            let img = &xs[n * h * w..(n + 1) * h * w];
            let dst = &mut os[n * gh * gw * pl..(n + 1) * gh * gw * pl];
            for a in 0..gh {
                for bb in 0..gw {
                    let l = a * gw + bb;
                    for i in 0..p {
                        let src = (a * p + i) * w + bb * p;
                        dst[l * pl + i * p..l * pl + (i + 1) * p]
                            .copy_from_slice(&img[src..src + p]);
                    }
                }
            }
        }
        return out;
    }
    for n in 0..b {
        for a in 0..gh {
            for bb in 0..gw {
                let l = a * gw + bb;
                for i in 0..p {
                    for j in 0..p {
                        for ch in 0..c {
                            out[[n, l, (i * p + j) * c + ch]] = x[[n, ch, a * p + i, bb * p + j]];
                        }
                    }
                }
            }
        }
    }
    out
}

/// The fixed 2-D sin-cos table `PE [L, D]` (method §4.1): `ω_k = 10000^{−k/(D/4)}`,
/// `PE[l] = [sin(b·ω), cos(b·ω), sin(a·ω), cos(a·ω)]` for `l = a·gw + b`. Needs `D % 4 = 0`.
pub fn sincos_pe(d: usize, gh: usize, gw: usize) -> Array2<f64> {
    assert!(d.is_multiple_of(4), "sin-cos positions need D % 4 = 0");
    let q = d / 4;
    let mut pe = Array2::<f64>::zeros((gh * gw, d));
    for a in 0..gh {
        for b in 0..gw {
            let l = a * gw + b;
            for k in 0..q {
                let om = 10000f64.powf(-(k as f64) / q as f64);
                pe[[l, k]] = (b as f64 * om).sin();
                pe[[l, q + k]] = (b as f64 * om).cos();
                pe[[l, 2 * q + k]] = (a as f64 * om).sin();
                pe[[l, 3 * q + k]] = (a as f64 * om).cos();
            }
        }
    }
    pe
}

/// `x W + b` (method §0 row-vector convention), `x: [.., d_in]`.
pub fn linear<T: Float>(t: &mut Tape<T>, x: Var, w: Var, b: Var) -> Var {
    t.linear(x, w, b)
}

/// `T⁰ = patch·W_pe + b_pe + PE` for `patches: [B, L, P]`, `pe: [L, D]` (method §4.1 "Embedding").
pub fn embed<T: Float>(t: &mut Tape<T>, v: &ParamVars, prefix: &str, patches: Var, pe: Var) -> Var {
    let w = pv(v, &format!("{prefix}.W_pe"));
    let b = pv(v, &format!("{prefix}.b_pe"));
    let y = linear(t, patches, w, b);
    t.add(y, pe)
}

/// `MHSA(Y) = [A_1 V_1 | … ] W_o + b_o` with `Q, K, V = Y W_{q,k,v} + b_{q,k,v}` (method §4.1), for
/// `y: [B, L, D]`, plus `residual` when given (the block's `T + MHSA(LN₁(T))`, added by the output
/// projection's op in the same pass). The three projections run as one GEMM on
/// `[W_q | W_k | W_v]`.
pub fn mhsa<T: Float>(
    t: &mut Tape<T>,
    v: &ParamVars,
    p: &str,
    y: Var,
    heads: usize,
    residual: Option<Var>,
) -> Var {
    let w = [
        pv(v, &format!("{p}.W_q")),
        pv(v, &format!("{p}.W_k")),
        pv(v, &format!("{p}.W_v")),
    ];
    let b = [
        pv(v, &format!("{p}.b_q")),
        pv(v, &format!("{p}.b_k")),
        pv(v, &format!("{p}.b_v")),
    ];
    let w = t.concat(&w, 1);
    let b = t.concat(&b, 0);
    let qkv = linear(t, y, w, b);
    let o = t.attention(qkv, heads);
    let (w_o, b_o) = (pv(v, &format!("{p}.W_o")), pv(v, &format!("{p}.b_o")));
    t.linear_plus(o, w_o, b_o, residual)
}

/// `MLP(Y) = GELU(Y W_1 + b_1) W_2 + b_2` (exact GELU, method §4.1), plus `residual` when given
/// (the block's `U + MLP(LN₂(U))`). The first layer and its GELU are one op, as are the second
/// layer and the residual.
pub fn mlp<T: Float>(
    t: &mut Tape<T>,
    v: &ParamVars,
    p: &str,
    y: Var,
    residual: Option<Var>,
) -> Var {
    let h = t.linear_gelu(y, pv(v, &format!("{p}.W_1")), pv(v, &format!("{p}.b_1")));
    let (w2, b2) = (pv(v, &format!("{p}.W_2")), pv(v, &format!("{p}.b_2")));
    t.linear_plus(h, w2, b2, residual)
}

/// LayerNorm `{p}.gamma`, `{p}.beta` over the last axis, eps 1e-5.
pub fn layer_norm<T: Float>(t: &mut Tape<T>, v: &ParamVars, p: &str, x: Var) -> Var {
    let g = pv(v, &format!("{p}.gamma"));
    let b = pv(v, &format!("{p}.beta"));
    t.layer_norm(x, g, b, LN_EPS)
}

/// One pre-LN block (method §4.1): `U = T + MHSA(LN₁(T))`, `T ← U + MLP(LN₂(U))`.
pub fn block<T: Float>(t: &mut Tape<T>, v: &ParamVars, p: &str, x: Var, heads: usize) -> Var {
    let y = layer_norm(t, v, &format!("{p}.ln1"), x);
    let u = mhsa(t, v, &format!("{p}.attn"), y, heads, Some(x));
    let y = layer_norm(t, v, &format!("{p}.ln2"), u);
    mlp(t, v, &format!("{p}.mlp"), y, Some(u))
}

/// Register LayerNorm `{p}.gamma` (ones) and `{p}.beta` (zeros) of width `d` (method §4.1 init).
pub fn add_layer_norm_params<T: Float>(store: &mut ParamStore<T>, p: &str, d: usize) {
    store.add(
        &format!("{p}.gamma"),
        ArrayD::from_elem(IxDyn(&[d]), T::one()),
    );
    store.add(&format!("{p}.beta"), ArrayD::zeros(IxDyn(&[d])));
}

/// Register `{p}.W_{s}` (Xavier-uniform `[d_in, d_out]`, drawn from `rng`) and `{p}.b_{s}` (zeros).
fn add_affine_params<T: Float>(
    store: &mut ParamStore<T>,
    p: &str,
    s: &str,
    (d_in, d_out): (usize, usize),
    rng: &mut Stream,
) {
    let w = xavier_uniform(&[d_in, d_out], d_in, d_out, rng);
    store.add(&format!("{p}.W_{s}"), w);
    store.add(&format!("{p}.b_{s}"), ArrayD::zeros(IxDyn(&[d_out])));
}

/// Register the parameters of [`mhsa`] `{p}.W_q, b_q, W_k, b_k, W_v, b_v, W_o, b_o` (each `W`
/// Xavier-uniform `D×D`, drawn in that order; biases zero; method §4.1 init).
pub fn add_mhsa_params<T: Float>(store: &mut ParamStore<T>, p: &str, d: usize, rng: &mut Stream) {
    for s in ["q", "k", "v", "o"] {
        add_affine_params(store, p, s, (d, d), rng);
    }
}

/// Register the parameters of [`mlp`] `{p}.W_1, b_1` (`d → hidden`) and `{p}.W_2, b_2`
/// (`hidden → d`), Xavier-uniform weights drawn `W_1` then `W_2`, zero biases (method §4.1 init).
pub fn add_mlp_params<T: Float>(
    store: &mut ParamStore<T>,
    p: &str,
    d: usize,
    hidden: usize,
    rng: &mut Stream,
) {
    add_affine_params(store, p, "1", (d, hidden), rng);
    add_affine_params(store, p, "2", (hidden, d), rng);
}

/// Register the parameters of one [`block`] `p` in the peer's `state_dict` order: `{p}.ln1.*`,
/// `{p}.attn.*`, `{p}.ln2.*`, `{p}.mlp.*` (MLP hidden width `mlp_ratio · d`). For layer-level
/// fixtures and tests; Module I registers its whole model in `model.rs`
/// ([`super::model::ModuleI::new`]).
pub fn add_block_params<T: Float>(
    store: &mut ParamStore<T>,
    p: &str,
    d: usize,
    mlp_ratio: usize,
    rng: &mut Stream,
) {
    add_layer_norm_params(store, &format!("{p}.ln1"), d);
    add_mhsa_params(store, &format!("{p}.attn"), d, rng);
    add_layer_norm_params(store, &format!("{p}.ln2"), d);
    add_mlp_params(store, &format!("{p}.mlp"), d, mlp_ratio * d, rng);
}

/// The blocks and the final LayerNorm on tokens `[B, L', D]`: `E = LN_f(blocks(T))` (method §4.1).
pub fn encode<T: Float>(
    t: &mut Tape<T>,
    v: &ParamVars,
    prefix: &str,
    tokens: Var,
    blocks: usize,
    heads: usize,
) -> Var {
    let mut x = tokens;
    for b in 0..blocks {
        x = block(t, v, &format!("{prefix}.block{b}"), x, heads);
    }
    layer_norm(t, v, &format!("{prefix}.ln_f"), x)
}

/// Mean pooling over tokens: `h = (1/L) Σ_l E[l]`, `[B, L, D] → [B, D]` (method §4.1).
pub fn mean_pool<T: Float>(t: &mut Tape<T>, e: Var) -> Var {
    t.mean_axis(e, 1, false)
}

/// Tokens `[B, n_keep, D]` of `t0: [B, L, D]` at each image's visible indices (method §4.2
/// "Masked encoder": positions are added before tokens are dropped).
pub fn gather_tokens<T: Float>(t: &mut Tape<T>, t0: Var, visible: &[Vec<usize>]) -> Var {
    let s = t.shape(t0).to_vec();
    let (b, l, d) = (s[0], s[1], s[2]);
    let nk = visible.first().map_or(0, |v| v.len());
    let idx: Vec<usize> = visible
        .iter()
        .enumerate()
        .flat_map(|(i, v)| {
            assert_eq!(v.len(), nk, "every image keeps n_keep tokens");
            v.iter().map(move |&l_| i * l + l_)
        })
        .collect();
    assert_eq!(visible.len(), b, "one visible list per image");
    let flat = t.reshape(t0, &[b * l, d]);
    let g = t.gather_rows(flat, Arc::from(idx));
    t.reshape(g, &[b, nk, d])
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    #[test]
    fn patchify_one_channel_fast_path_follows_the_formula() {
        // C = 1 with contiguous input takes the row-copy path; a strided view (every other
        // image) takes the general loop. Both against the method §4.1 formula directly.
        let x = Array4::from_shape_fn((4, 1, 6, 4), |(n, _, i, j)| (n * 100 + i * 10 + j) as f64);
        let strided = x.slice(ndarray::s![..;2, .., .., ..]);
        for (v, picked) in [(x.view(), vec![0, 1, 2, 3]), (strided, vec![0, 2])] {
            let p = patchify(v, 2);
            assert_eq!(p.dim(), (picked.len(), 6, 4));
            for (n, &src) in picked.iter().enumerate() {
                for a in 0..3 {
                    for b in 0..2 {
                        for i in 0..2 {
                            for j in 0..2 {
                                assert_eq!(
                                    p[[n, a * 2 + b, i * 2 + j]],
                                    x[[src, 0, a * 2 + i, b * 2 + j]]
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn patchify_follows_the_spec_index_formula() {
        // C = 3, 4×6 image, p = 2: check every element against the method §4.1 formula directly.
        let x = Array4::from_shape_fn((2, 3, 4, 6), |(n, c, i, j)| {
            (n * 1000 + c * 100 + i * 10 + j) as f64
        });
        let p = patchify(x.view(), 2);
        assert_eq!(p.dim(), (2, 6, 12));
        for n in 0..2 {
            for a in 0..2 {
                for b in 0..3 {
                    for i in 0..2 {
                        for j in 0..2 {
                            for c in 0..3 {
                                assert_eq!(
                                    p[[n, a * 3 + b, (i * 2 + j) * 3 + c]],
                                    x[[n, c, a * 2 + i, b * 2 + j]]
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn pe_layout_column_half_first() {
        // D = 8 (q = 2), grid 2×3; token l = 1·3 + 2 is row a = 1, column b = 2.
        // ω = [1, 10000^{-1/2} = 0.01] (hand computation).
        let pe = sincos_pe(8, 2, 3);
        let row = pe.row(5);
        let expect = [
            2f64.sin(),
            0.02f64.sin(),
            2f64.cos(),
            0.02f64.cos(),
            1f64.sin(),
            0.01f64.sin(),
            1f64.cos(),
            0.01f64.cos(),
        ];
        for (a, b) in row.iter().zip(expect) {
            assert!((a - b).abs() < 1e-15, "{a} vs {b}");
        }
    }
}
