//! Finite-difference gradient checks (method §17 points 5, 6, 11, 16) of the layers in `darlc::nn`
//! and of the ViT block (`darlc::module1::vit`), with respect to the input and every parameter. Parameters are made inputs of the checked
//! closure: the closure receives one leaf per input and wraps the parameter leaves in a
//! [`Bound`] (its `vars` are indexed by `ParamId`), so the layer code under test is the real one.
//! Test names contain `grad`, so `cargo test grad` runs them.

use darlc::autodiff::gradcheck::assert_grad;
use darlc::autodiff::{Tape, Var};
use darlc::module1::vit::{self, ParamVars};
use darlc::nn::{BatchNorm1d, Bound, Linear, ParamStore};
use darlc::rng;
use ndarray::{Array1, ArrayD, IxDyn};
use rand::Rng;

/// Uniform values in `[lo, hi)` from a named stream.
fn rand(shape: &[usize], lo: f64, hi: f64, name: &str) -> ArrayD<f64> {
    let mut r = rng::stream(2024, name);
    ArrayD::from_shape_simple_fn(IxDyn(shape), || r.random_range(lo..hi))
}

/// The store's values (in `ParamId` order) moved away from their init by U(−0.3, 0.3) noise, so
/// that no path is trivially zero (zero biases, γ = 1, β = 0).
fn perturbed(store: &ParamStore<f64>) -> Vec<ArrayD<f64>> {
    store
        .ids()
        .map(|id| {
            let v = store.get(id);
            v + &rand(v.shape(), -0.3, 0.3, store.name(id))
        })
        .collect()
}

/// `[x] ++ perturbed params`.
fn inputs(x: ArrayD<f64>, store: &ParamStore<f64>) -> Vec<ArrayD<f64>> {
    let mut v = vec![x];
    v.extend(perturbed(store));
    v
}

/// The parameter leaves of a closure whose inputs are `[x] ++ params`.
fn params(v: &[Var]) -> Bound {
    Bound {
        vars: v[1..].to_vec(),
    }
}

/// The same leaves by the store's dotted names (for the ViT block's functions).
fn named(v: &[Var], store: &ParamStore<f64>) -> ParamVars {
    store
        .ids()
        .zip(&v[1..])
        .map(|(id, &var)| (store.name(id).to_string(), var))
        .collect()
}

#[test]
fn grad_linear_with_leading_axes_and_without_bias() {
    let mut s = ParamStore::new();
    let lin = Linear::new(&mut s, "lin", 4, 5, true, &mut rng::stream(1, "init"));
    assert_eq!(
        (s.name(lin.w), s.get(lin.w).shape()),
        ("lin.W", &[4usize, 5][..])
    );
    assert_eq!(s.name(lin.b.unwrap()), "lin.b");
    let x = rand(&[2, 3, 4], -1.0, 1.0, "x3");
    assert_grad("linear [2,3,4]", &inputs(x, &s), |t, v| {
        lin.forward(t, &params(v), v[0])
    });
    let x = rand(&[6, 4], -1.0, 1.0, "x2");
    assert_grad("linear [6,4]", &inputs(x, &s), |t, v| {
        lin.forward(t, &params(v), v[0])
    });
    let mut s = ParamStore::new();
    let nob = Linear::new(&mut s, "g", 3, 2, false, &mut rng::stream(1, "init"));
    assert_eq!(s.len(), 1);
    let x = rand(&[5, 3], -1.0, 1.0, "xnb");
    assert_grad("linear no bias", &inputs(x, &s), |t, v| {
        nob.forward(t, &params(v), v[0])
    });
}

#[test]
fn grad_layernorm_input_gamma_beta() {
    let mut s = ParamStore::new();
    vit::add_layer_norm_params(&mut s, "ln", 6);
    let x = rand(&[2, 3, 6], -2.0, 2.0, "x");
    assert_grad("layernorm", &inputs(x, &s), |t, v| {
        vit::layer_norm(t, &named(v, &s), "ln", v[0])
    });
}

#[test]
fn grad_batchnorm_train_couples_the_batch() {
    let mut s = ParamStore::new();
    let bn = BatchNorm1d::new(&mut s, "bn", 3);
    // Columns with different offsets and spreads.
    let x = &rand(&[5, 3], -1.0, 1.0, "x") * &ndarray::arr1(&[1.0, 3.0, 0.5]).into_dyn()
        + &ndarray::arr1(&[0.0, 2.0, -1.0]).into_dyn();
    assert_grad("batchnorm train", &inputs(x, &s), |t, v| {
        let mut bn = bn.clone();
        bn.forward_train(t, &params(v), v[0]).unwrap()
    });
}

#[test]
fn grad_batchnorm_eval_mode() {
    let mut s = ParamStore::new();
    let mut bn = BatchNorm1d::new(&mut s, "bn", 3);
    bn.running_mean = Array1::from(vec![0.3, -1.0, 2.0]);
    bn.running_var = Array1::from(vec![0.5, 2.0, 1.5]);
    let x = rand(&[4, 3], -2.0, 2.0, "x");
    assert_grad("batchnorm eval", &inputs(x, &s), |t, v| {
        bn.forward_eval(t, &params(v), v[0])
    });
}

#[test]
fn grad_multi_head_attention_input_and_all_parameters() {
    // method §18 tiny ViT: D = 8, 2 heads (d_h = 4).
    let mut s = ParamStore::new();
    vit::add_mhsa_params(&mut s, "attn", 8, &mut rng::stream(3, "init"));
    let names: Vec<&str> = s.ids().map(|id| s.name(id)).collect();
    assert_eq!(
        names,
        [
            "attn.W_q", "attn.b_q", "attn.W_k", "attn.b_k", "attn.W_v", "attn.b_v", "attn.W_o",
            "attn.b_o"
        ]
    );
    let x = rand(&[2, 3, 8], -1.0, 1.0, "x");
    assert_grad("mhsa", &inputs(x, &s), |t, v| {
        vit::mhsa(t, &named(v, &s), "attn", v[0], 2, None)
    });
    // One sequence given as [L, D].
    let x = rand(&[4, 8], -1.0, 1.0, "x2");
    assert_grad("mhsa 2-D", &inputs(x, &s), |t, v| {
        let x = t.reshape(v[0], &[1, 4, 8]);
        vit::mhsa(t, &named(v, &s), "attn", x, 2, None)
    });
}

#[test]
fn grad_mlp_exact_gelu() {
    let mut s = ParamStore::new();
    vit::add_mlp_params(&mut s, "mlp", 4, 16, &mut rng::stream(4, "init"));
    let x = rand(&[2, 3, 4], -1.5, 1.5, "x");
    assert_grad("mlp", &inputs(x, &s), |t, v| {
        vit::mlp(t, &named(v, &s), "mlp", v[0], None)
    });
}

#[test]
fn grad_pre_norm_block_input_and_every_parameter() {
    let mut s = ParamStore::new();
    vit::add_block_params(&mut s, "vit.block0", 8, 4, &mut rng::stream(5, "init"));
    assert_eq!(s.len(), 16);
    let x = rand(&[2, 3, 8], -1.0, 1.0, "x");
    assert_grad("block", &inputs(x, &s), |t, v| {
        vit::block(t, &named(v, &s), "vit.block0", v[0], 2)
    });
}

/// method Eq. 12 layout: `SELU(BN(h W_p1 + b_p1)) W_p2 + b_p2`.
fn projection(
    t: &mut Tape<f64>,
    p: &Bound,
    x: Var,
    l1: &Linear,
    bn: &mut BatchNorm1d<f64>,
    l2: &Linear,
    train: bool,
) -> Var {
    let h = l1.forward(t, p, x);
    let h = if train {
        bn.forward_train(t, p, h).unwrap()
    } else {
        bn.forward_eval(t, p, h)
    };
    let h = t.selu(h);
    l2.forward(t, p, h)
}

#[test]
fn grad_projection_head_train_and_eval() {
    let mut s = ParamStore::new();
    let mut r = rng::stream(6, "init");
    let l1 = Linear::new(&mut s, "proj.lin1", 4, 3, true, &mut r);
    let mut bn = BatchNorm1d::new(&mut s, "proj.bn", 3);
    let l2 = Linear::new(&mut s, "proj.lin2", 3, 3, true, &mut r);
    let x = rand(&[6, 4], -1.0, 1.0, "x");
    let inp = inputs(x, &s);
    // SELU has a kink at 0: the BN outputs entering it must be at least 1e-3 away (method §17).
    let min_abs = |train: bool, bn: &BatchNorm1d<f64>| {
        let mut t = Tape::no_grad();
        let v: Vec<Var> = inp.iter().map(|a| t.constant(a.clone())).collect();
        let p = params(&v);
        let h = l1.forward(&mut t, &p, v[0]);
        let mut bn = bn.clone();
        let h = if train {
            bn.forward_train(&mut t, &p, h).unwrap()
        } else {
            bn.forward_eval(&mut t, &p, h)
        };
        t.value(h).iter().fold(f64::INFINITY, |m, x| m.min(x.abs()))
    };
    assert!(min_abs(true, &bn) > 1e-3);
    assert_grad("projection train", &inp, |t, v| {
        let mut bn = bn.clone();
        projection(t, &params(v), v[0], &l1, &mut bn, &l2, true)
    });
    bn.running_mean = Array1::from(vec![0.1, -0.2, 0.05]);
    bn.running_var = Array1::from(vec![0.4, 0.9, 1.3]);
    assert!(min_abs(false, &bn) > 1e-3);
    assert_grad("projection eval", &inp, |t, v| {
        let mut bn = bn.clone();
        projection(t, &params(v), v[0], &l1, &mut bn, &l2, false)
    });
}

mod random_shapes {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

        /// Linear, LayerNorm and MHSA on random batch, length, width and head counts.
        #[test]
        fn grad_layers_random_shapes(b in 1usize..4, l in 1usize..5, heads in 1usize..4,
                                     dh in 1usize..4, d_out in 1usize..5, seed in 0u64..1000) {
            let d = heads * dh;
            let mut s = ParamStore::new();
            let mut r = rng::stream(seed, "init");
            let lin = Linear::new(&mut s, "lin", d, d_out, true, &mut r);
            let x = rand(&[b, l, d], -1.0, 1.0, &format!("x{seed}"));
            assert_grad("linear random", &inputs(x.clone(), &s), |t, v| {
                lin.forward(t, &params(v), v[0])
            });
            let mut s = ParamStore::new();
            vit::add_layer_norm_params(&mut s, "ln", d);
            if d > 1 {
                assert_grad("layernorm random", &inputs(x.clone(), &s), |t, v| {
                    vit::layer_norm(t, &named(v, &s), "ln", v[0])
                });
            }
            let mut s = ParamStore::new();
            vit::add_mhsa_params(&mut s, "attn", d, &mut r);
            assert_grad("mhsa random", &inputs(x, &s), |t, v| {
                vit::mhsa(t, &named(v, &s), "attn", v[0], heads, None)
            });
        }
    }
}
