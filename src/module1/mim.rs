//! The MIM branch (method §4.2, Eq. 6–7): MAE masking with realised visible-index lists, the decoder
//! input `u` in closed form, the residual MLP decoder `g_d` and the masked reconstruction loss.

use super::vit::{ParamVars, linear, pv};
use crate::autodiff::{Tape, Var};
use crate::float::Float;
use ndarray::{Array2, ArrayD, IxDyn};
use rand::Rng;

/// LeakyReLU slope of the decoder (method §4.2).
pub const LRELU_SLOPE: f64 = 0.01;

/// `n_keep = L − round(ρ·L)` in integer arithmetic (method §4.2, §16): `ρ` is read as a decimal with
/// six digits (`ρ·10⁶` rounded to an integer), the product is exact and is rounded half away from
/// zero. `n_keep(225, 0.8) = 45` (floating `int(225·0.2)` would give 44).
pub fn n_keep(l: usize, rho: f64) -> usize {
    let r = (rho * 1e6).round() as u128; // exact for decimals with ≤ 6 digits
    let masked = (r * l as u128 + 500_000) / 1_000_000;
    l - (masked as usize).min(l)
}

/// The visible set of one image from its uniforms `u` (method §4.2): indices of the `n_keep`
/// smallest `u_l`, ties to the lower index (stable sort), returned in ascending index order.
pub fn visible_from_u(u: &[f64], n_keep: usize) -> Vec<usize> {
    let mut ids: Vec<usize> = (0..u.len()).collect();
    ids.sort_by(|&a, &b| u[a].total_cmp(&u[b]));
    let mut v = ids[..n_keep].to_vec();
    v.sort_unstable();
    v
}

/// Fresh visible sets for `b` images of `l` tokens from a stream (one `u ∈ [0,1)^L` per image).
pub fn draw_visible<R: Rng>(rng: &mut R, b: usize, l: usize, n_keep: usize) -> Vec<Vec<usize>> {
    (0..b)
        .map(|_| {
            let u: Vec<f64> = (0..l).map(|_| rng.random::<f64>()).collect();
            visible_from_u(&u, n_keep)
        })
        .collect()
}

/// Decoder input (method §4.2): `u = (1/L)[Σ_{l∈V} E^V[l] + |M|·m_tok + Σ_l PE_dec[l]]` for
/// `e_vis: [B, n_keep, D]`, `m_tok: [D]`, `pe_sum = Σ_l PE[l]: [D]` (a constant), `l` tokens.
pub fn decoder_input<T: Float>(
    t: &mut Tape<T>,
    e_vis: Var,
    m_tok: Var,
    pe_sum: Var,
    l: usize,
) -> Var {
    let nk = t.shape(e_vis)[1];
    let s = t.sum_axis(e_vis, 1, false);
    let m = t.scale(m_tok, (l - nk) as f64);
    let s = t.add(s, m);
    let s = t.add(s, pe_sum);
    t.scale(s, 1.0 / l as f64)
}

fn ln<T: Float>(t: &mut Tape<T>, v: &ParamVars, name: &str, x: Var) -> Var {
    let g = pv(v, &format!("dec.{name}.gamma"));
    let b = pv(v, &format!("dec.{name}.beta"));
    t.layer_norm(x, g, b, super::vit::LN_EPS)
}

fn lin<T: Float>(t: &mut Tape<T>, v: &ParamVars, name: &str, x: Var) -> Var {
    linear(
        t,
        x,
        pv(v, &format!("dec.{name}.W")),
        pv(v, &format!("dec.{name}.b")),
    )
}

/// The residual MLP decoder `g_d` (method §4.2, Eq. 6), `u: [B, D] → ŷ: [B, C·H·W]`:
/// `a = lin3(LReLU(ln2(lin2(LReLU(ln1(lin1 u)))))`, `v = a + short(u)`,
/// `ŷ = lin5(LReLU(ln4(lin4 v)))`.
pub fn decoder<T: Float>(t: &mut Tape<T>, v: &ParamVars, u: Var) -> Var {
    let a = lin(t, v, "lin1", u);
    let a = ln(t, v, "ln1", a);
    let a = t.leaky_relu(a, LRELU_SLOPE);
    let a = lin(t, v, "lin2", a);
    let a = ln(t, v, "ln2", a);
    let a = t.leaky_relu(a, LRELU_SLOPE);
    let a = lin(t, v, "lin3", a);
    let s = lin(t, v, "short", u);
    let x = t.add(a, s);
    let x = lin(t, v, "lin4", x);
    let x = ln(t, v, "ln4", x);
    let x = t.leaky_relu(x, LRELU_SLOPE);
    lin(t, v, "lin5", x)
}

/// Per-pixel weights of Eq. 7 in image layout `[B, C·H·W]`: `1/(P·Σ_b|M_b|)` on pixels of masked
/// patches, 0 elsewhere, so that `L_MIM = Σ w ⊙ (ŷ − x)²` (a patch's pixels are a permutation of the
/// image's, so nothing needs patchifying).
pub fn mim_weights(visible: &[Vec<usize>], c: usize, h: usize, w: usize, p: usize) -> Array2<f64> {
    let (gh, gw) = (h / p, w / p);
    let l = gh * gw;
    let masked_total: usize = visible.iter().map(|v| l - v.len()).sum();
    let val = 1.0 / ((c * p * p) as f64 * masked_total.max(1) as f64);
    let mut out = Array2::<f64>::zeros((visible.len(), c * h * w));
    for (b, vis) in visible.iter().enumerate() {
        let mut masked = vec![true; l];
        for &i in vis {
            masked[i] = false;
        }
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    if masked[(y / p) * gw + x / p] {
                        out[[b, ch * h * w + y * w + x]] = val;
                    }
                }
            }
        }
    }
    out
}

/// `L_MIM` (Eq. 7) `= Σ_b Σ_l m_bl ℓ_bl / Σ m`, `ℓ_bl = (1/P)‖patch_l(x_b) − patch_l(x̂_b)‖²`, for
/// `yhat: [B, C·H·W]`, raw target `x: [B, C·H·W]` (a constant) and the weights of [`mim_weights`].
pub fn mim_loss<T: Float>(t: &mut Tape<T>, yhat: Var, x: Var, weights: &Array2<f64>) -> Var {
    let wv = t.constant(
        ArrayD::from_shape_vec(
            IxDyn(weights.shape()),
            weights.iter().map(|&v| T::of(v)).collect(),
        )
        .expect("shape"),
    );
    let d = t.sub(yhat, x);
    let d = t.square(d);
    let d = t.mul(d, wv);
    t.sum(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_keep_in_integers() {
        // method §4.2: 225 − round(180) = 45; tiny config 4 − round(2) = 2; 10 − round(2.5) = 7
        // (half away from zero: 2.5 → 3).
        assert_eq!(n_keep(225, 0.8), 45);
        assert_eq!(n_keep(4, 0.5), 2);
        assert_eq!(n_keep(10, 0.25), 7);
        assert_eq!(n_keep(7, 0.0), 7);
        assert_eq!(n_keep(7, 1.0), 0);
    }

    #[test]
    fn visible_ties_to_lower_index_ascending() {
        // u = [.5, .1, .5, .1, .9]: the two smallest are 1 and 3; the third pick among the tied .5s is
        // index 0 (lower index), returned sorted.
        assert_eq!(visible_from_u(&[0.5, 0.1, 0.5, 0.1, 0.9], 2), vec![1, 3]);
        assert_eq!(visible_from_u(&[0.5, 0.1, 0.5, 0.1, 0.9], 3), vec![0, 1, 3]);
        assert_eq!(visible_from_u(&[0.3, 0.2, 0.1], 3), vec![0, 1, 2]);
    }

    #[test]
    fn mim_weights_mark_masked_patch_pixels() {
        // 1 image, 4×4, p = 2 (L = 4), visible {0, 3}: masked patches 1 (top right) and 2 (bottom
        // left); each weight = 1/(P·|M|) = 1/(4·2).
        let w = mim_weights(&[vec![0, 3]], 1, 4, 4, 2);
        let expect = [
            0., 0., 1., 1., 0., 0., 1., 1., 1., 1., 0., 0., 1., 1., 0., 0.,
        ];
        for (a, e) in w.iter().zip(expect) {
            assert_eq!(*a, e / 8.0);
        }
    }
}
