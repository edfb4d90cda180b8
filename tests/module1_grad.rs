//! Gradient checks of Module I (method §17 points 11–15) in the tiny configuration of method §18, plus
//! the property tests of §17 that concern Module I. Test names contain `grad` or `module1`.

use darlc::autodiff::gradcheck::assert_grad;
use darlc::autodiff::{Tape, Var};
use darlc::module1::contrastive::nt_xent;
use darlc::module1::mim::{decoder, decoder_input, draw_visible, n_keep};
use darlc::module1::model::{Config, ModuleI, ssl_forward};
use darlc::module1::uwl::uwl;
use darlc::module1::vit::{self, ParamVars};
use darlc::rng;
use ndarray::{Array4, ArrayD, IxDyn};
use rand::Rng;
use std::collections::BTreeMap;

/// Tiny-config parameters moved away from the init (so no path is trivially zero): every tensor
/// `+= U(−0.1, 0.1)`, σ₁ = 0.9, σ₂ = 1.2.
fn tiny_model() -> ModuleI<f64> {
    let mut m = ModuleI::<f64>::new(Config::tiny(), 11).unwrap();
    let mut r = rng::stream(5, "test.perturb");
    for id in m.store.ids().collect::<Vec<_>>() {
        let n = m.store.name(id).to_string();
        let a = m.store.get_mut(id);
        if n == "uwl.sigma1" {
            a.fill(0.9);
        } else if n == "uwl.sigma2" {
            a.fill(1.2);
        } else {
            a.mapv_inplace(|v| v + r.random_range(-0.1..0.1));
        }
    }
    for id in m.target.ids().collect::<Vec<_>>() {
        m.target
            .get_mut(id)
            .mapv_inplace(|v| v + r.random_range(-0.02..0.02));
    }
    m
}

/// Sparse positive tiny images `[6, 1, 10, 10]` (about 60 % zeros).
fn tiny_images(name: &str) -> Array4<f64> {
    let mut r = rng::stream(9, name);
    Array4::from_shape_simple_fn((6, 1, 10, 10), || {
        if r.random::<f64>() < 0.6 {
            0.0
        } else {
            r.random_range(0.2..2.0)
        }
    })
}

fn rand(shape: &[usize], name: &str) -> ArrayD<f64> {
    let mut r = rng::stream(21, name);
    ArrayD::from_shape_simple_fn(IxDyn(shape), || r.random_range(-1.0..1.0))
}

/// Names and values of the parameters whose name starts with one of `prefixes`.
fn select(m: &ModuleI<f64>, prefixes: &[&str]) -> (Vec<String>, Vec<ArrayD<f64>>) {
    m.named_tensors()
        .into_iter()
        .filter(|(n, _)| prefixes.iter().any(|p| n.starts_with(p)))
        .unzip()
}

fn vars_of(names: &[String], v: &[Var]) -> ParamVars {
    names.iter().cloned().zip(v.iter().copied()).collect()
}

#[test]
fn grad_mhsa_and_block() {
    let m = tiny_model();
    let (names, vals) = select(&m, &["vit.block0.attn."]);
    let y = rand(&[2, 4, 8], "y");
    let mut inputs = vec![y.clone()];
    inputs.extend(vals);
    assert_grad("MHSA", &inputs, |t, v| {
        let pv = vars_of(&names, &v[1..]);
        vit::mhsa(t, &pv, "vit.block0.attn", v[0], 2, None)
    });
    let (names, vals) = select(&m, &["vit.block1."]);
    let mut inputs = vec![y];
    inputs.extend(vals);
    assert_grad("ViT block", &inputs, |t, v| {
        let pv = vars_of(&names, &v[1..]);
        vit::block(t, &pv, "vit.block1", v[0], 2)
    });
}

#[test]
fn grad_encoder_with_and_without_masking_and_mean_pooling() {
    let m = tiny_model();
    let (names, vals) = select(&m, &["vit."]);
    let x = tiny_images("x");
    let patches = vit::patchify(x.view(), 5).into_dyn();
    let pe = m.pe.clone().into_dyn();
    let visible = draw_visible(&mut rng::stream(3, "mask"), 6, 4, 2);
    for masked in [false, true] {
        let name = if masked {
            "encoder (masked)"
        } else {
            "encoder (all tokens)"
        };
        assert_grad(name, &vals, |t, v| {
            let pv = vars_of(&names, v);
            let p = t.constant(patches.clone());
            let pe = t.constant(pe.clone());
            let t0 = vit::embed(t, &pv, "vit", p, pe);
            let tok = if masked {
                vit::gather_tokens(t, t0, &visible)
            } else {
                t0
            };
            vit::encode(t, &pv, "vit", tok, 2, 2)
        });
    }
    // Mean pooling w.r.t. its input, and the pooled encoder w.r.t. all encoder parameters.
    assert_grad("mean pooling", &[rand(&[3, 4, 8], "e")], |t, v| {
        vit::mean_pool(t, v[0])
    });
    assert_grad("pooled encoder h", &vals, |t, v| {
        let pv = vars_of(&names, v);
        let p = t.constant(patches.clone());
        let pe = t.constant(pe.clone());
        let t0 = vit::embed(t, &pv, "vit", p, pe);
        let e = vit::encode(t, &pv, "vit", t0, 2, 2);
        vit::mean_pool(t, e)
    });
}

#[test]
fn grad_decoder_input_and_decoder() {
    let m = tiny_model();
    let pe_sum = m.pe.sum_axis(ndarray::Axis(0)).into_dyn();
    let e_vis = rand(&[6, 2, 8], "ev");
    assert_grad(
        "decoder input u",
        &[e_vis, m.param("dec.m_tok").clone()],
        |t, v| {
            let ps = t.constant(pe_sum.clone());
            decoder_input(t, v[0], v[1], ps, 4)
        },
    );
    let (names, vals) = select(&m, &["dec.lin", "dec.ln", "dec.short"]);
    let mut inputs = vec![rand(&[6, 8], "u")];
    inputs.extend(vals);
    assert_grad("decoder g_d", &inputs, |t, v| {
        let pv = vars_of(&names, &v[1..]);
        decoder(t, &pv, v[0])
    });
}

/// The whole loss graph on the tiny batch, as a function of the selected parameters.
fn loss_check(which: usize, prefixes: &[&str], label: &str) {
    let m = tiny_model();
    let x = tiny_images("x");
    let xs = tiny_images("xs");
    let ct = m.target_c(xs.view());
    let visible = draw_visible(&mut rng::stream(3, "mask"), 6, 4, 2);
    let (names, vals) = select(&m, prefixes);
    let fixed: BTreeMap<String, ArrayD<f64>> = m
        .named_tensors()
        .into_iter()
        .filter(|(n, _)| !names.contains(n) && !n.starts_with("target."))
        .collect();
    assert_grad(label, &vals, |t, v| {
        let mut pv = vars_of(&names, v);
        for (n, a) in &fixed {
            pv.insert(n.clone(), t.constant(a.clone()));
        }
        let (ssl, mim, cl) = ssl_forward(t, &pv, &m.cfg, &m.pe, x.view(), ct.clone(), &visible);
        [ssl, mim, cl][which]
    });
}

#[test]
fn grad_l_mim_wrt_encoder_decoder_and_mask_token() {
    loss_check(1, &["vit.", "dec."], "L_MIM");
}

#[test]
fn grad_l_cl_wrt_online_c_and_through_head_and_encoder() {
    let c = rand(&[6, 4], "c");
    let ct = rand(&[6, 4], "ct");
    assert_grad("NT-Xent w.r.t. c", &[c], |t, v| {
        let k = t.constant(ct.clone());
        nt_xent(t, v[0], k, 0.5)
    });
    loss_check(2, &["vit.", "g_o."], "L_CL through g_o and the encoder");
}

#[test]
fn grad_l_ssl_wrt_sigmas_task_losses_and_everything() {
    let s = |x: f64| ArrayD::from_elem(IxDyn(&[]), x);
    assert_grad("UWL", &[s(0.37), s(2.1), s(0.9), s(1.2)], |t, v| {
        uwl(t, v[0], v[1], v[2], v[3])
    });
    loss_check(
        0,
        &["vit.", "dec.", "g_o.", "uwl."],
        "L_SSL (all trainable)",
    );
}

#[test]
fn module1_nt_xent_invariant_to_common_row_permutation() {
    let c = rand(&[6, 4], "c");
    let ct = rand(&[6, 4], "ct");
    let perm = [3usize, 0, 5, 1, 4, 2];
    let pc = ndarray::stack(
        ndarray::Axis(0),
        &perm
            .iter()
            .map(|&i| c.index_axis(ndarray::Axis(0), i))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let pct = ndarray::stack(
        ndarray::Axis(0),
        &perm
            .iter()
            .map(|&i| ct.index_axis(ndarray::Axis(0), i))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let eval = |a: &ArrayD<f64>, b: &ArrayD<f64>| {
        let mut t = Tape::<f64>::no_grad();
        let (a, b) = (t.constant(a.clone()), t.constant(b.clone()));
        let l = nt_xent(&mut t, a, b, 0.5);
        t.scalar(l)
    };
    let (l0, l1) = (eval(&c, &ct), eval(&pc, &pct));
    // Same terms summed in another order: equal up to rounding.
    assert!((l0 - l1).abs() < 1e-13, "{l0} vs {l1}");
    assert_eq!(n_keep(225, 0.8), 45);
}
