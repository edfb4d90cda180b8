//! Training utilities (method §3.4, §4.3, §4.5, §5, §18): Adam, gradient clipping, EMA, the
//! parameter store's safetensors files, BatchNorm running statistics and calibration.

use darlc::nn::{Adam, ParamId, ParamStore, clip_grad_norm, ema_update};
use ndarray::{ArrayD, IxDyn, array};

fn scalar_store(x: f64) -> (ParamStore<f64>, ParamId) {
    let mut s = ParamStore::new();
    let id = s.add("p", array![x].into_dyn());
    (s, id)
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn adam_first_step_is_the_spec_formula() {
    // θ = 1, g = 0.5, lr = 0.1, β = (0.9, 0.999), ε = 1e-8 (method §4.5), by hand:
    //   m = 0.1·0.5 = 0.05,  v = 0.001·0.25 = 0.00025
    //   m̂ = 0.05/(1−0.9) = 0.5,  v̂ = 0.00025/(1−0.999) = 0.25,  sqrt(v̂) = 0.5
    //   θ = 1 − 0.1·0.5/(0.5 + 1e-8) = 1 − 0.05/0.50000001 = 0.90000000199999996…
    let (mut s, id) = scalar_store(1.0);
    let mut opt = Adam::new(0.1);
    opt.step(&mut s, &[id], &[array![0.5].into_dyn()]);
    let th = s.get(id)[[0]];
    assert!(close(th, 0.900_000_002, 1e-15), "θ = {th:.17}");
    let st = opt.state(id).unwrap();
    // (1 − 0.9 rounds to 0.09999999999999998 in f64, so m is a few ulps below 0.05.)
    assert!(close(st.m[[0]], 0.05, 1e-16));
    assert!(close(st.v[[0]], 0.00025, 1e-18));
    assert_eq!(st.step, 1);
    // The first step moves every coordinate by ≈ lr·sign(g), whatever |g| (m̂/sqrt(v̂) = ±1).
    let mut s2 = ParamStore::<f64>::new();
    let id2 = s2.add("q", array![0.0, 0.0, 0.0].into_dyn());
    let mut opt2 = Adam::new(1e-3);
    opt2.step(&mut s2, &[id2], &[array![1e3, -1e-3, 0.0].into_dyn()]);
    let q = s2.get(id2);
    // −1e-3·1e3/(1e3 + 1e-8) and +1e-3·1e-3/(1e-3 + 1e-8) = 1e-3/1.00001; g = 0 gives 0/(0+ε) = 0.
    assert!(close(q[[0]], -1e-3 * 1e3 / (1e3 + 1e-8), 1e-17));
    assert!(close(q[[1]], 1e-3 / 1.000_01, 1e-16));
    assert_eq!(q[[2]], 0.0);
}

#[test]
fn adam_two_step_trajectory_matches_hand_computation() {
    // g₁ = 0.5, g₂ = −0.25, lr 0.1, θ₀ = 1. Step 2 by hand:
    //   m₂ = 0.9·0.05 − 0.1·0.25 = 0.02,  v₂ = 0.999·0.00025 + 0.001·0.0625 = 0.00031225
    //   m̂ = 0.02/0.19,  v̂ = 0.00031225/0.001999,  θ₂ = θ₁ − 0.1·m̂/(sqrt(v̂) + 1e-8)
    // Expected values from python (plain floats, same formula):
    //   def adam(theta, gs, lr, wd=0.0, b1=0.9, b2=0.999, eps=1e-8):
    //       m = v = 0.0
    //       for t, g in enumerate(gs, 1):
    //           g = g + wd*theta; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g
    //           theta = theta - lr*(m/(1-b1**t))/(math.sqrt(v/(1-b2**t))+eps)
    //   adam(1.0, [0.5, -0.25], 0.1)  → θ₁ 0.900000002, θ₂ 0.8733662987078463
    let (mut s, id) = scalar_store(1.0);
    let mut opt = Adam::new(0.1);
    opt.step(&mut s, &[id], &[array![0.5].into_dyn()]);
    assert!(close(s.get(id)[[0]], 0.900_000_002, 1e-15));
    opt.step(&mut s, &[id], &[array![-0.25].into_dyn()]);
    assert!(close(s.get(id)[[0]], 0.873_366_298_707_846_3, 1e-15));
    let st = opt.state(id).unwrap();
    assert!(close(st.m[[0]], 0.02, 1e-16));
    assert!(close(st.v[[0]], 0.000_312_25, 1e-18));
    assert_eq!(st.step, 2);
}

#[test]
fn adam_coupled_weight_decay_adds_wd_theta_to_the_gradient() {
    // Coupled L2 (torch.optim.Adam(weight_decay=0.1)): g ← g + 0.1·θ before the moments.
    // Step 1: g' = 0.5 + 0.1·2 = 0.7, m = 0.07, v = 0.00049, θ₁ = 2 − 0.1·0.7/(0.7+1e-8).
    // python adam(2.0, [0.5, -0.25], 0.1, wd=0.1) (snippet above) →
    //   θ₁ 1.9000000014285714 (m 0.07, v 0.00049), θ₂ 1.8395973867971898
    //   (step 2: g' = −0.25 + 0.1·θ₁ = −0.0599999998571…)
    let (mut s, id) = scalar_store(2.0);
    let mut opt = Adam::new(0.1).with_weight_decay(0.1);
    opt.step(&mut s, &[id], &[array![0.5].into_dyn()]);
    assert!(close(s.get(id)[[0]], 1.900_000_001_428_571_4, 1e-15));
    assert!(close(opt.state(id).unwrap().m[[0]], 0.07, 1e-16));
    opt.step(&mut s, &[id], &[array![-0.25].into_dyn()]);
    assert!(close(s.get(id)[[0]], 1.839_597_386_797_189_8, 1e-15));
    // A zero gradient still moves θ under weight decay: python adam(-1.5, [0.0, 0.3], 0.01, wd=0.5)
    //   → θ₁ −1.4900000001333333, θ₂ −1.4804396294740623.
    let (mut s, id) = scalar_store(-1.5);
    let mut opt = Adam::new(0.01).with_weight_decay(0.5);
    opt.step(&mut s, &[id], &[array![0.0].into_dyn()]);
    assert!(close(s.get(id)[[0]], -1.490_000_000_133_333_3, 1e-15));
    opt.step(&mut s, &[id], &[array![0.3].into_dyn()]);
    assert!(close(s.get(id)[[0]], -1.480_439_629_474_062_3, 1e-15));
}

#[test]
fn adam_reset_state_restarts_only_the_named_parameters() {
    let mut s = ParamStore::<f64>::new();
    let a = s.add("a", array![1.0].into_dyn());
    let b = s.add("b", array![1.0].into_dyn());
    let mut opt = Adam::new(0.1);
    let g = [array![0.5].into_dyn(), array![0.5].into_dyn()];
    opt.step(&mut s, &[a, b], &g);
    opt.reset_state(&[a]);
    assert!(opt.state(a).is_none());
    assert_eq!(opt.state(b).unwrap().step, 1);
    // After the reset, `a` takes a first step again from 0.900000002 (same arithmetic as the
    // first-step test: a first step moves by 0.1·0.5/(0.5+1e-8)), while `b` takes a second step.
    opt.step(
        &mut s,
        &[a, b],
        &[array![-0.25].into_dyn(), array![-0.25].into_dyn()],
    );
    assert!(close(
        s.get(a)[[0]],
        0.900_000_002 + 0.1 * 0.25 / (0.25 + 1e-8),
        1e-15
    ));
    assert!(close(s.get(b)[[0]], 0.873_366_298_707_846_3, 1e-15));
}

#[test]
fn adam_f32_follows_f64() {
    let mut s32 = ParamStore::<f32>::new();
    let mut s64 = ParamStore::<f64>::new();
    let i32_ = s32.add("w", array![[0.3f32, -0.7], [1.1, 0.0]].into_dyn());
    let i64_ = s64.add("w", array![[0.3f64, -0.7], [1.1, 0.0]].into_dyn());
    let mut o32 = Adam::new(1e-2).with_weight_decay(1e-4);
    let mut o64 = Adam::new(1e-2).with_weight_decay(1e-4);
    for k in 0..5 {
        let g = array![[0.2, -0.1], [0.05 * k as f64, 1.0]].into_dyn();
        o64.step(&mut s64, &[i64_], std::slice::from_ref(&g));
        o32.step(&mut s32, &[i32_], &[g.mapv(|x| x as f32)]);
    }
    for (a, b) in s32.get(i32_).iter().zip(s64.get(i64_).iter()) {
        // method §16 f32 tolerance for forward values: rel 1e-4, abs 1e-5.
        assert!((*a as f64 - b).abs() <= 1e-5 + 1e-4 * b.abs(), "{a} vs {b}");
    }
}

#[test]
fn clip_grad_norm_scales_only_above_the_threshold() {
    // ‖(3, 4) ⊕ (12)‖ = sqrt(9 + 16 + 144) = 13.
    let mut g = vec![array![3.0, 4.0].into_dyn(), array![[12.0]].into_dyn()];
    let n = clip_grad_norm(&mut g, 26.0);
    assert_eq!(n, 13.0);
    // c = 26/(13 + 1e-6) > 1: untouched.
    assert_eq!(g[0], array![3.0, 4.0].into_dyn());
    let n = clip_grad_norm(&mut g, 5.0);
    assert_eq!(n, 13.0);
    // c = 5/(13 + 1e-6) (PyTorch's clip_grad_norm_ adds 1e-6 to the norm).
    let c = 5.0 / (13.0 + 1e-6);
    assert_eq!(g[0], array![3.0 * c, 4.0 * c].into_dyn());
    assert_eq!(g[1], array![[12.0 * c]].into_dyn());
    // The clipped norm is 5·13/(13+1e-6), just below 5.
    let after = darlc::nn::clip::global_norm(&g);
    assert!((after - 65.0 / (13.0 + 1e-6)).abs() < 1e-13);
    // Exactly at the threshold: c = 13/(13 + 1e-6) < 1, so PyTorch scales (by 1 − 7.7e-8).
    let mut h = vec![array![5.0, 12.0].into_dyn()];
    clip_grad_norm(&mut h, 13.0);
    assert!(h[0][[1]] < 12.0);
}

#[test]
fn ema_zero_copies_one_freezes_and_mid_matches_eq8() {
    let mut online = ParamStore::<f32>::new();
    let mut target = ParamStore::<f32>::new();
    let o = online.add("vit.W", array![1.5f32, -0.0, 3.25e-3, 7.0].into_dyn());
    let t = target.add(
        "target.vit.W",
        array![-2.0f32, -0.0, 0.125, f32::MIN_POSITIVE].into_dyn(),
    );
    let t0 = target.get(t).clone();
    ema_update(&mut target, &[t], &online, &[o], 1.0);
    let bits = |a: &ArrayD<f32>| a.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(target.get(t)), bits(&t0));
    ema_update(&mut target, &[t], &online, &[o], 0.0);
    assert_eq!(bits(target.get(t)), bits(online.get(o)));

    let mut online = ParamStore::<f64>::new();
    let mut target = ParamStore::<f64>::new();
    let o = online.add("a", array![[1.0, 2.0], [3.0, -4.0]].into_dyn());
    let t = target.add("b", array![[0.0, 1.0], [-1.0, 10.0]].into_dyn());
    ema_update(&mut target, &[t], &online, &[o], 0.999);
    // ξ = 0.999 ξ + 0.001 θ elementwise: 0.001, 1.001, −0.996, 9.986.
    let want = [0.001, 1.001, -0.996, 9.986];
    for (x, w) in target.get(t).iter().zip(want) {
        assert!((x - w).abs() < 1e-15, "{x} vs {w}");
    }
}

#[test]
fn param_store_safetensors_roundtrip_names_and_shape_errors() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("darlc-nn-params-{}", std::process::id()));
    let path = dir.join("params.safetensors");
    let mut s = ParamStore::<f32>::new();
    let w = s.add(
        "vit.block0.attn.W_q",
        ArrayD::from_shape_fn(IxDyn(&[3, 3]), |i| (i[0] * 3 + i[1]) as f32 * 0.1 - 0.3),
    );
    let b = s.add(
        "vit.block0.attn.b_q",
        array![1e-30f32, -7.5, 0.0].into_dyn(),
    );
    s.add("uwl.sigma1", ArrayD::from_elem(IxDyn(&[]), 1.0f32));
    s.save(&path).unwrap();

    // Names in the file are the dotted names, stored as F32.
    let f = darlc::io::TensorFile::load(&path).unwrap();
    let names: Vec<&str> = f.tensors.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        ["uwl.sigma1", "vit.block0.attn.W_q", "vit.block0.attn.b_q"]
    );
    assert_eq!(f.tensors["vit.block0.attn.W_q"].dtype_name(), "F32");

    // Load into a store with the same layout but other values: exact (bitwise) roundtrip.
    let mut s2 = s.clone();
    s2.get_mut(w).fill(9.0);
    s2.get_mut(b).fill(9.0);
    s2.load_into(&path).unwrap();
    for id in s.ids() {
        assert_eq!(s.get(id), s2.get(id), "{}", s.name(id));
    }

    // A wrong shape is an error naming the tensor and the file; nothing is changed.
    let mut s3 = ParamStore::<f32>::new();
    s3.add("vit.block0.attn.W_q", ArrayD::zeros(IxDyn(&[3, 4])));
    let e = s3.load_into(&path).unwrap_err().to_string();
    assert!(
        e.contains("vit.block0.attn.W_q") && e.contains("params.safetensors"),
        "{e}"
    );
    assert!(e.contains("[3, 3]") && e.contains("[3, 4]"), "{e}");
    assert!(s3.get(ParamId(0)).iter().all(|&x| x == 0.0));
    // A missing tensor too.
    let mut s4 = ParamStore::<f32>::new();
    s4.add("vit.ln_f.gamma", ArrayD::zeros(IxDyn(&[3])));
    let e = s4.load_into(&path).unwrap_err().to_string();
    assert!(e.contains("vit.ln_f.gamma"), "{e}");

    // f64 store reading the f32 file: values widen exactly.
    let mut s5 = ParamStore::<f64>::new();
    s5.add("vit.block0.attn.b_q", ArrayD::zeros(IxDyn(&[3])));
    s5.load_into(&path).unwrap();
    assert_eq!(s5.get(ParamId(0))[[0]], 1e-30f32 as f64);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ema_target_copy_and_update_within_one_store() {
    let mut s = ParamStore::<f64>::new();
    let w = s.add("vit.W_pe", array![[1.0, -2.0]].into_dyn());
    let b = s.add("vit.b_pe", array![0.5, 0.25].into_dyn());
    s.add("dec.m_tok", array![3.0].into_dyn());
    let online = s.ids_with_prefix("vit");
    // The target starts as an exact copy, under `target.` names (peer README naming).
    let target_store = s.copy_subset(&online, Some("target"));
    let names: Vec<&str> = target_store.ids().map(|id| target_store.name(id)).collect();
    assert_eq!(names, ["target.vit.W_pe", "target.vit.b_pe"]);
    for (i, &o) in online.iter().enumerate() {
        assert_eq!(target_store.get(ParamId(i)), s.get(o));
    }
    // Put the copies into the same store and update within it: ξ = 0.5 ξ + 0.5 θ.
    let t_ids: Vec<ParamId> = target_store
        .ids()
        .map(|id| s.add(target_store.name(id), target_store.get(id).clone()))
        .collect();
    s.get_mut(w).fill(3.0);
    s.get_mut(b).fill(-1.0);
    darlc::nn::ema_update_within(&mut s, &t_ids, &online, 0.5);
    // W: (1 + 3)/2 = 2, (−2 + 3)/2 = 0.5; b: (0.5 − 1)/2 = −0.25, (0.25 − 1)/2 = −0.375 (exact).
    assert_eq!(s.get(t_ids[0]), &array![[2.0, 0.5]].into_dyn());
    assert_eq!(s.get(t_ids[1]), &array![-0.25, -0.375].into_dyn());
    assert_eq!(s.get(w), &array![[3.0, 3.0]].into_dyn());
}
