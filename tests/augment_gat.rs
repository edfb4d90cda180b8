//! The tied GAT autoencoder (method §3, §17 point 10) on the method §18 tiny configuration:
//! 3×3 square grid (9 nodes, r = 1.5), C = 6 → F1 = 5 → F2 = 3.

use darlc::augment::gat::{
    self, Decoder, GatConfig, GatGraph, GatParams, LossForm, attention_layer, forward_hidden,
    loss_direct, loss_gram,
};
use darlc::augment::graph::{Graph, SQUARE_RADIUS};
use darlc::autodiff::gradcheck::assert_grad;
use darlc::autodiff::{Tape, Var};
use darlc::rng;
use ndarray::{Array2, ArrayD};
use rand::Rng;

fn tiny_graph() -> Graph {
    let coords: Vec<[f64; 2]> = (0..3)
        .flat_map(|r| (0..3).map(move |c| [r as f64, c as f64]))
        .collect();
    Graph::radius(&coords, SQUARE_RADIUS).unwrap()
}

/// Non-negative "expression" features in [0, 2) from a named stream.
fn tiny_x(n: usize, c: usize, name: &str) -> Array2<f64> {
    let mut r = rng::stream(5, name);
    Array2::from_shape_simple_fn((n, c), || r.random_range(0.0..2.0))
}

fn tiny_params() -> GatParams<f64> {
    GatParams::init(6, 5, 3, 11)
}

#[test]
fn tiny_graph_is_the_8_neighbourhood() {
    let g = tiny_graph();
    // Corners 4 (3 + self), edges 6, centre 9: 4·4 + 4·6 + 9 = 49 edges (by hand).
    assert_eq!(g.num_edges(), 49);
}

#[test]
fn grad_attention_layer_wrt_x_w1_a_c_a_n() {
    let gg = GatGraph::new(&tiny_graph());
    let p = tiny_params();
    let x = tiny_x(9, 6, "tiny.x").into_dyn();
    let inputs = [x, p.w1.into_dyn(), p.a_c.into_dyn(), p.a_n.into_dyn()];
    assert_grad("GAT attention layer H1", &inputs, |t, v| {
        attention_layer(t, &gg, v[0], v[1], v[2], v[3]).2
    });
    assert_grad("GAT attention coefficients α", &inputs, |t, v| {
        attention_layer(t, &gg, v[0], v[1], v[2], v[3]).1
    });
}

fn vars(v: &[Var]) -> gat::GatVars {
    gat::GatVars {
        w1: v[0],
        w2: v[1],
        a_c: v[2],
        a_n: v[3],
    }
}

#[test]
fn grad_tied_autoencoder_loss_direct_and_gram() {
    let g = tiny_graph();
    let gg = GatGraph::new(&g);
    let x = tiny_x(9, 6, "tiny.x");
    let x_sq = gat::frobenius_sq(x.view());
    let inputs = tiny_params().to_vec();
    for (name, form) in [
        ("L_GAT direct", LossForm::Direct),
        ("L_GAT gram", LossForm::Gram),
    ] {
        assert_grad(name, &inputs, |t, v| {
            let xv = t.constant(x.clone().into_dyn());
            gat::loss(t, &gg, xv, &vars(v), form, x_sq)
        });
    }
}

/// Loss value and gradients with the decoder reading `dec(vars)` instead of the tied tensors.
fn grads_with(
    x: &Array2<f64>,
    p: &GatParams<f64>,
    detach: (bool, bool, bool),
    gram: bool,
) -> (f64, Vec<ArrayD<f64>>) {
    let gg = GatGraph::new(&tiny_graph());
    let mut t = Tape::new();
    let xv = t.constant(x.clone().into_dyn());
    let v = p.leaves(&mut t, false);
    let copy = |t: &mut Tape<f64>, var: Var| {
        let a = t.value(var).clone();
        t.constant(a)
    };
    let dec = Decoder {
        w1: if detach.0 { copy(&mut t, v.w1) } else { v.w1 },
        w2: if detach.1 { copy(&mut t, v.w2) } else { v.w2 },
        detach_alpha: detach.2,
    };
    let f = forward_hidden(&mut t, &gg, xv, &v, &dec);
    let l = if gram {
        loss_gram(&mut t, xv, &f, &dec, gat::frobenius_sq(x.view()))
    } else {
        loss_direct(&mut t, xv, &f, &dec)
    };
    let gr = t.backward(l);
    let gs = [v.w1, v.w2, v.a_c, v.a_n]
        .iter()
        .map(|&var| gr.get_or_zeros(var, t.shape(var)))
        .collect();
    (t.scalar(l), gs)
}

fn max_abs_diff(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    a.iter()
        .zip(b.iter())
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn grad_tying_sees_encoder_and_decoder_paths() {
    // For each tied tensor, the full gradient must equal (encoder path) + (decoder path): the
    // encoder path is the gradient with the decoder reading a detached copy; the decoder path is
    // the full gradient minus it, and must be non-zero. Checked for W1, W2 (detached copies) and
    // α (which carries the decoder path of a_c and a_n), in both loss forms.
    let x = tiny_x(9, 6, "tiny.x");
    let p = tiny_params();
    for gram in [false, true] {
        let (l_full, full) = grads_with(&x, &p, (false, false, false), gram);
        let (l_enc, enc) = grads_with(&x, &p, (true, true, true), gram);
        // Detaching does not change the forward value.
        assert!((l_full - l_enc).abs() <= 1e-15 * l_full.abs());
        for (i, name) in ["W1", "W2", "a_c", "a_n"].iter().enumerate() {
            let diff = max_abs_diff(&full[i], &enc[i]);
            let scale = full[i].iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(
                diff > 1e-3 * scale,
                "{name}: decoder path contributes nothing (diff {diff:e}, scale {scale:e}, gram {gram})"
            );
        }
        // The gradient-checked loss above is the tied one, so `full` is the true gradient; the
        // detached variants each remove exactly one path: removing W1's decoder use leaves W2's
        // gradient within rounding of the variant that detaches W1 only from the decoder.
        let (_, only_w1) = grads_with(&x, &p, (true, false, false), gram);
        let (_, only_w2) = grads_with(&x, &p, (false, true, false), gram);
        let (_, only_a) = grads_with(&x, &p, (false, false, true), gram);
        // dL/dW1 = enc + dec(W1): detaching W2 or α changes W1's grad only through H3, so W1's
        // decoder path is full − only_w1, and it must be non-zero.
        assert!(max_abs_diff(&full[0], &only_w1[0]) > 0.0);
        assert!(max_abs_diff(&full[1], &only_w2[1]) > 0.0);
        assert!(max_abs_diff(&full[2], &only_a[2]) > 0.0);
        assert!(max_abs_diff(&full[3], &only_a[3]) > 0.0);
    }
}

#[test]
fn gram_form_equals_direct_form() {
    // Same function: values and gradients agree to f64 rounding (the Gram form is an algebraic
    // identity, module docs of augment::gat).
    let x = tiny_x(9, 6, "tiny.x");
    let p = tiny_params();
    let g = tiny_graph();
    let (ld, gd) = gat::loss_and_grads(&p, &g, x.view(), LossForm::Direct);
    let (lg, gg) = gat::loss_and_grads(&p, &g, x.view(), LossForm::Gram);
    assert!((ld - lg).abs() <= 1e-12 * ld.abs(), "{ld} vs {lg}");
    for (a, b) in gd.iter().zip(&gg) {
        let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(max_abs_diff(a, b) <= 1e-12 * scale.max(1e-300));
    }
    // And the direct loss is Eq. 4 by hand: mean over n·C of (x − x̂)².
    let xh = gat::reconstruct(&p, &g, x.view());
    let by_hand: f64 = (&x - &xh).iter().map(|d| d * d).sum::<f64>() / 54.0;
    assert!((by_hand - ld).abs() <= 1e-14 * ld);
}

#[test]
fn attention_is_a_neighbourhood_softmax_of_sigmoid_scores() {
    // α recomputed by explicit loops from P1 = X W1 (Eq. 2–3).
    let g = tiny_graph();
    let gg = GatGraph::new(&g);
    let p = tiny_params();
    let x = tiny_x(9, 6, "tiny.x");
    let mut t = Tape::<f64>::no_grad();
    let xv = t.constant(x.clone().into_dyn());
    let v = p.leaves(&mut t, true);
    let (_, alpha, h1) = attention_layer(&mut t, &gg, xv, v.w1, v.a_c, v.a_n);
    let p1 = x.dot(&p.w1);
    let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
    for node in 0..9 {
        let nb = g.neighbors(node);
        let scores: Vec<f64> = nb
            .iter()
            .map(|&u| sig(p1.row(node).dot(&p.a_c) + p1.row(u as usize).dot(&p.a_n)))
            .collect();
        let z: f64 = scores.iter().map(|s| s.exp()).sum();
        let mut agg = ndarray::Array1::<f64>::zeros(5);
        for (k, &u) in nb.iter().enumerate() {
            let a = scores[k].exp() / z;
            let e = g.offsets[node] + k;
            assert!((t.value(alpha)[[e, 0]] - a).abs() < 1e-15);
            agg += &p1.row(u as usize).mapv(|q| q * a);
        }
        for f in 0..5 {
            let elu = if agg[f] > 0.0 {
                agg[f]
            } else {
                agg[f].exp_m1()
            };
            assert!((t.value(h1)[[node, f]] - elu).abs() < 1e-14);
        }
    }
}

#[test]
fn init_follows_spec_scales() {
    // Xavier-normal std for W1 [600, 512]: 1.414·√(2/1112) = 0.05997; a: 1.414/√512 = 0.06249.
    let p = GatParams::<f64>::init(600, 512, 30, 3);
    let sd = |a: &[f64]| (a.iter().map(|v| v * v).sum::<f64>() / a.len() as f64).sqrt();
    let s1 = sd(p.w1.as_slice().unwrap());
    assert!((s1 / 0.05997 - 1.0).abs() < 0.01, "W1 std {s1}");
    let sa = sd(p.a_c.as_slice().unwrap());
    assert!((sa / 0.06249 - 1.0).abs() < 0.15, "a_c std {sa}");
    // Named streams: same seed same draws, f32 = rounded f64.
    let p32 = GatParams::<f32>::init(600, 512, 30, 3);
    assert_eq!(p32.w2[[3, 4]], p.w2[[3, 4]] as f32);
    assert_ne!(GatParams::<f64>::init(600, 512, 30, 4).w1, p.w1);
}

#[test]
fn training_reduces_the_loss() {
    let g = tiny_graph();
    let x = tiny_x(9, 6, "tiny.x");
    let cfg = GatConfig {
        hidden: 5,
        embed: 3,
        epochs: 300,
        lr: 1e-2,
        seed: 11,
        ..GatConfig::default()
    };
    let tr = gat::train(x.view(), &g, &cfg).unwrap();
    assert_eq!(tr.losses.len(), 300);
    let (first, last) = (tr.losses[0], *tr.losses.last().unwrap());
    assert!(last < 0.5 * first, "loss {first} → {last}");
    // The recorded loss is the loss of the parameters before each step: epoch 0 = init.
    let (l0, _) = gat::loss_and_grads(&tiny_params(), &g, x.view(), LossForm::Auto);
    assert_eq!(tr.losses[0], l0);
    let sm = gat::smoothed(&tr.params, &g, x.view());
    assert!(sm.iter().all(|&v| v >= 0.0));
}

#[test]
fn one_adam_step_by_hand() {
    // First Adam step (PyTorch semantics): m̂ = g', v̂ = g'², so θ₁ = θ₀ − lr·g'/(|g'| + ε) with
    // g' = c·g + wd·θ₀ and c the clip factor 5/(‖g‖ + 1e-6) when below 1.
    let g = tiny_graph();
    let x = tiny_x(9, 6, "tiny.x").mapv(|v| 40.0 * v); // large loss, so clipping engages
    let p = tiny_params();
    let cfg = GatConfig {
        hidden: 5,
        embed: 3,
        ..GatConfig::default()
    };
    let (_, grads) = gat::loss_and_grads(&p, &g, x.view(), LossForm::Auto);
    let norm = grads
        .iter()
        .map(|a| a.iter().map(|v| v * v).sum::<f64>())
        .sum::<f64>()
        .sqrt();
    assert!(
        norm > 5.0,
        "clipping must engage in this test (norm {norm})"
    );
    let c = 5.0 / (norm + 1e-6);
    let after = gat::one_step(&p, &g, x.view(), &cfg).unwrap().to_vec();
    for ((p0, g0), p1) in p.to_vec().iter().zip(&grads).zip(&after) {
        for ((&t0, &gv), &t1) in p0.iter().zip(g0.iter()).zip(p1.iter()) {
            let gp = c * gv + 1e-4 * t0;
            let bc2 = (1.0f64 - 0.999).sqrt();
            let expect = t0 - 1e-3 / 0.1 * (0.1 * gp) / ((0.001 * gp * gp).sqrt() / bc2 + 1e-8);
            assert!((t1 - expect).abs() <= 1e-15 + 1e-12 * expect.abs());
        }
    }
}

fn run_threads<R: Send>(n: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn training_is_identical_on_1_and_2_threads() {
    // Tiny config, and a 30×30 hex-ish section with 200 channels and F1 = 64 (large enough that
    // GEMMs, segment ops and elementwise kernels take their parallel paths), a few epochs, f32.
    let tiny = |thr| {
        run_threads(thr, || {
            let cfg = GatConfig {
                hidden: 5,
                embed: 3,
                epochs: 5,
                seed: 2,
                ..GatConfig::default()
            };
            gat::train(tiny_x(9, 6, "tiny.x").view(), &tiny_graph(), &cfg).unwrap()
        })
    };
    let (a, b) = (tiny(1), tiny(2));
    assert_eq!(a.params, b.params);
    assert_eq!(a.losses, b.losses);

    let coords: Vec<[f64; 2]> = (0..30)
        .flat_map(|r| (0..30).map(move |c| [c as f64 + 0.5 * (r % 2) as f64, r as f64 * 0.866]))
        .collect();
    let g = Graph::radius(&coords, 1.1).unwrap();
    let mut r = rng::stream(9, "det.x");
    let x = Array2::<f32>::from_shape_simple_fn((900, 200), || {
        if r.random_bool(0.3) {
            r.random_range(0.0..3.0)
        } else {
            0.0
        }
    });
    for form in [LossForm::Direct, LossForm::Gram] {
        let real = |thr| {
            run_threads(thr, || {
                let cfg = GatConfig {
                    hidden: 64,
                    embed: 8,
                    epochs: 3,
                    seed: 4,
                    loss_form: form,
                    ..GatConfig::default()
                };
                let tr = gat::train(x.view(), &g, &cfg).unwrap();
                let sm = gat::smoothed(&tr.params, &g, x.view());
                (tr.params, tr.losses, sm)
            })
        };
        let (a, b) = (real(1), real(2));
        assert_eq!(a.0, b.0, "{form:?}");
        assert_eq!(a.1, b.1, "{form:?}");
        assert_eq!(a.2, b.2, "{form:?}");
    }
}

#[test]
fn shared_mode_trains_on_image_stacks() {
    // 10 RGB-like 4×5 images, batches of 4 (3 per pass: 4, 4, 2), 6 steps.
    let mut r = rng::stream(3, "shared.x");
    let imgs = ndarray::Array4::<f64>::from_shape_simple_fn((10, 3, 4, 5), || r.random());
    let b = gat::shared_batches(10, 4, 6, 1);
    assert_eq!(
        b.iter().map(|v| v.len()).collect::<Vec<_>>(),
        vec![4, 4, 2, 4, 4, 2]
    );
    let mut all: Vec<usize> = b[..3].concat();
    all.sort();
    assert_eq!(all, (0..10).collect::<Vec<_>>());
    let cfg = GatConfig {
        hidden: 8,
        embed: 4,
        epochs: 6,
        batch_images: 4,
        seed: 1,
        ..GatConfig::default()
    };
    let tr = gat::train_shared(imgs.view(), &cfg).unwrap();
    assert_eq!(tr.losses.len(), 6);
    let sm = gat::smoothed_images(&tr.params, imgs.view(), 4).unwrap();
    // Image 7 alone equals its block in the batched pass (block-diagonal graph).
    let one =
        gat::smoothed_images(&tr.params, imgs.slice(ndarray::s![7..8, .., .., ..]), 4).unwrap();
    let d = (&sm.slice(ndarray::s![7..8, .., .., ..]) - &one)
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(d < 1e-12, "{d}");
}
