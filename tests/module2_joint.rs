//! The joint phase (method §8.6, §9): the closed-form pass-1 gradient equals the tape's; the
//! two-pass epoch-level gradient equals one full-batch tape; the trainable Cholesky
//! parameterisation passes a finite-difference check; a batch step changes what it should.

use darlc::autodiff::Tape;
use darlc::autodiff::gradcheck::assert_grad;
use darlc::module1::mim::draw_visible;
use darlc::module1::model::{Config, ModuleI, mim_and_h};
use darlc::module2::epoch_loss::{Terms, clustering_gradient};
use darlc::module2::joint::{Joint, JointOptions, cholesky_from_params};
use darlc::module2::laplacian::LaplacianSym;
use darlc::module2::losses::{
    MixtureConsts, kl_loss, laplacian_loss, lh_loss, log_responsibilities, log_rho, size_loss,
    target_log_distribution,
};
use darlc::module2::similarity::seeding_similarity;
use darlc::module2::smm::Smm;
use darlc::nn::adam::Adam;
use darlc::rng;
use ndarray::{Array1, Array2, Array3, Array4, ArrayD, IxDyn, array};
use rand::Rng;

fn uniform2(n: usize, d: usize, name: &str) -> Array2<f64> {
    let mut r = rng::stream(17, name);
    Array2::from_shape_simple_fn((n, d), || r.random_range(-1.0..1.0))
}

/// A 4-component mixture in d = 3 whose last component sits far from the data, so that its
/// proportion falls below τ = 0.2/K and the size hinge is active.
fn mixture(gaussian: bool) -> Smm {
    let mut sigma = Array3::<f64>::zeros((4, 3, 3));
    for (k, s) in [0.3, 0.5, 0.4, 0.6].iter().enumerate() {
        for j in 0..3 {
            sigma[[k, j, j]] = s * (1.0 + 0.2 * j as f64);
        }
        sigma[[k, 1, 0]] = 0.05;
        sigma[[k, 0, 1]] = 0.05;
    }
    Smm::new(
        array![0.3, 0.3, 0.3, 0.1],
        array![
            [-0.5, 0.0, 0.0],
            [0.5, 0.0, 0.1],
            [0.0, 0.5, -0.2],
            [1.8, 1.8, 1.8]
        ],
        sigma,
        array![3.0, 5.0, 10.0, 4.0],
        gaussian,
    )
    .unwrap()
}

fn consts(smm: &Smm) -> MixtureConsts {
    MixtureConsts {
        ln_pi: smm.pi.iter().map(|p| p.ln()).collect(),
        nu: smm.nu.to_vec(),
    }
}

/// `|a − b| ≤ rel · max|b| + floor` elementwise.
fn assert_close_floor(a: &ArrayD<f64>, b: &ArrayD<f64>, rel: f64, floor: f64, what: &str) {
    assert_eq!(a.shape(), b.shape(), "{what}");
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (x, y) in a.iter().zip(b.iter()) {
        assert!(
            (x - y).abs() <= rel * scale + floor,
            "{what}: {x} vs {y} (scale {scale})"
        );
    }
}

fn assert_close(a: &ArrayD<f64>, b: &ArrayD<f64>, rel: f64, what: &str) {
    assert_close_floor(a, b, rel, 0.0, what)
}

#[test]
fn closed_form_pass1_gradient_equals_the_tape() {
    let n = 30;
    let z = uniform2(n, 3, "z");
    let lap =
        LaplacianSym::new(seeding_similarity(uniform2(n, 12, "y").view(), 4).unwrap()).unwrap();
    for gaussian in [false, true] {
        let smm = mixture(gaussian);
        // The far component's share: f_3 < τ = 0.2/4 = 0.05, and > 0 (the hinge is active).
        let r = smm.estep(z.view()).unwrap().r;
        let f3 = r.column(3).sum() / n as f64;
        assert!(f3 > 1e-12 && f3 < 0.05, "f_3 = {f3}");
        for terms in [
            Terms::default(),
            Terms {
                lh: false,
                size: true,
            },
            Terms {
                lh: true,
                size: false,
            },
        ] {
            let lambda = 0.3;
            let (g, vals) = clustering_gradient(&smm, z.view(), &lap, lambda, terms).unwrap();
            let mut t = Tape::<f64>::new();
            let zv = t.param(z.clone().into_dyn());
            let mu = t.constant(smm.mu.clone().into_dyn());
            let l = t.constant(smm.chol.clone().into_dyn());
            let lr = log_rho(&mut t, zv, mu, l, &consts(&smm));
            let mut total = laplacian_loss(&mut t, zv, &lap.s, lambda);
            let lap_v = t.scalar(total);
            if terms.lh {
                let lh = lh_loss(&mut t, lr);
                assert!((t.scalar(lh) - vals.l_lh).abs() <= 1e-12 * vals.l_lh.abs().max(1.0));
                total = t.add(total, lh);
            }
            if terms.size {
                let lnq = log_responsibilities(&mut t, lr);
                let sz = size_loss(&mut t, lnq);
                assert!(t.scalar(sz) > 0.0, "hinge active");
                assert!((t.scalar(sz) - vals.l_size).abs() <= 1e-12);
                total = t.add(total, sz);
            }
            assert!((lap_v - vals.l_lap).abs() <= 1e-12 * lap_v.abs().max(1.0));
            let grads = t.backward(total);
            let gt = grads.get(zv).unwrap().clone();
            assert_close(
                &g.into_dyn(),
                &gt,
                1e-11,
                &format!("G, gaussian {gaussian}, {terms:?}"),
            );
        }
    }
}

fn tiny_images(n: usize, name: &str) -> Array4<f64> {
    let mut r = rng::stream(9, name);
    Array4::from_shape_simple_fn((n, 1, 10, 10), || {
        if r.random::<f64>() < 0.6 {
            0.0
        } else {
            r.random_range(0.2..2.0)
        }
    })
}

/// The tiny configuration of method §18: N = 12, K = 3, d = 3, B = 5 (chunks 5, 5, 2).
fn tiny_joint() -> (Joint<f64>, Array4<f64>, LaplacianSym) {
    let x = tiny_images(12, "x");
    let m1 = ModuleI::<f64>::new(Config::tiny(), 3).unwrap();
    let mut opts = JointOptions::new(3, 5);
    opts.dim = 3;
    opts.batch = 5;
    opts.em_iters_init = 5;
    opts.em_iters_epoch = 5;
    opts.em_iters_final = 5;
    let (j, _) = Joint::start(m1, x.view(), opts).unwrap();
    let y = uniform2(12, 20, "y");
    let lap = LaplacianSym::new(seeding_similarity(y.view(), 3).unwrap()).unwrap();
    (j, x, lap)
}

#[test]
fn two_pass_epoch_gradient_equals_one_full_batch_tape() {
    let (j, x, lap) = tiny_joint();
    let lambda = 0.3;
    let (_, z) = j.embed(x.view());
    let visible = draw_visible(&mut rng::stream(4, "mim"), 12, 4, 2);
    let (grads, terms, l_mim) = j
        .epoch_gradient(x.view(), z.view(), &lap, lambda, &visible)
        .unwrap();
    // Reference: L_E on one tape over all 12 images.
    let mut t = Tape::<f64>::new();
    let (bound, vars) = j.m1.leaves(&mut t, true);
    let (lm, h) = mim_and_h(&mut t, &vars, &j.m1.cfg, &j.m1.pe, x.view(), &visible);
    let zv = j.head.forward_eval(&mut t, &bound, h);
    let mu = t.constant(j.smm.mu.clone().into_dyn());
    let l = t.constant(j.smm.chol.clone().into_dyn());
    let lr = log_rho(&mut t, zv, mu, l, &j.mixture_consts());
    let lh = lh_loss(&mut t, lr);
    let lnq = log_responsibilities(&mut t, lr);
    let sz = size_loss(&mut t, lnq);
    let lp = laplacian_loss(&mut t, zv, &lap.s, lambda);
    let a = t.add(lh, sz);
    let a = t.add(a, lp);
    let total = t.add(a, lm);
    let want = t.scalar(total);
    let got = terms.l_lap + terms.l_lh + terms.l_size + l_mim;
    assert!((got - want).abs() <= 1e-12 * want.abs(), "{got} vs {want}");
    let mut g = t.backward(total);
    let reference = bound.take_grads(&mut g, &j.m1.store, &j.epoch_ids);
    assert_eq!(grads.len(), reference.len());
    // Relative to each tensor's largest entry, with a floor at 1e-12 of the largest gradient
    // overall: the key biases `attn.b_k` have an exactly-zero true gradient (softmax is invariant
    // to them), so both sides hold only rounding noise (~1e-17) there.
    let global = reference
        .iter()
        .flat_map(|a| a.iter())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let mut nonzero = 0;
    for ((id, a), b) in j.epoch_ids.iter().zip(&grads).zip(&reference) {
        let name = j.m1.store.name(*id);
        assert_close_floor(a, b, 1e-11, 1e-12 * global, name);
        let big = b.iter().any(|v| v.abs() > 1e-9 * global);
        nonzero += usize::from(big || name.contains(".b_k"));
    }
    // Every epoch-level parameter (encoder, decoder, head) receives gradient.
    assert_eq!(nonzero, grads.len());
}

#[test]
fn grad_cholesky_parameterisation_through_kl() {
    // method §9.3: L = L_off ⊙ strict_lower + diag(exp η), then ln q and L_KL (Eq. 21) with a fixed
    // target P; gradient checked in μ, η, L_off and z.
    let z = uniform2(5, 3, "kl.z").into_dyn();
    let mu = uniform2(3, 3, "kl.mu").into_dyn();
    let eta = uniform2(3, 3, "kl.eta").mapv(|v| 0.3 * v).into_dyn();
    let l_off = ArrayD::from_shape_vec(
        IxDyn(&[3, 3, 3]),
        uniform2(9, 3, "kl.off")
            .mapv(|v| 0.4 * v)
            .into_raw_vec_and_offset()
            .0,
    )
    .unwrap();
    let ln_q0 = uniform2(5, 3, "kl.p");
    let ln_p = target_log_distribution(
        (&ln_q0
            - &ln_q0
                .mapv(f64::exp)
                .sum_axis(ndarray::Axis(1))
                .mapv(f64::ln)
                .insert_axis(ndarray::Axis(1)))
            .view(),
    );
    let c = MixtureConsts {
        ln_pi: vec![(0.2f64).ln(), (0.5f64).ln(), (0.3f64).ln()],
        nu: vec![3.0, 6.0, 12.0],
    };
    assert_grad("L_KL(μ, η, L_off, z)", &[mu, eta, l_off, z], |t, v| {
        let l = cholesky_from_params(t, v[1], v[2]);
        let lr = log_rho(t, v[3], v[0], l, &c);
        let lnq = log_responsibilities(t, lr);
        kl_loss(t, ln_p.view(), lnq)
    });
}

#[test]
fn batch_step_trains_the_mixture_and_resets_by_em() {
    let (mut j, x, _) = tiny_joint();
    let xs = tiny_images(12, "xs");
    let (_, z) = j.embed(x.view());
    let ln_q = j.smm.estep(z.view()).unwrap().ln_q;
    let ln_p = target_log_distribution(ln_q.view());
    let before = j.trained_mu_chol();
    let idx: Vec<usize> = (0..6).collect();
    let xb = x.select(ndarray::Axis(0), &idx);
    let xsb = xs.select(ndarray::Axis(0), &idx);
    let pb = ln_p.select(ndarray::Axis(0), &idx);
    let vis = draw_visible(&mut rng::stream(2, "m"), 6, 4, 2);
    let mut adam = Adam::new(1e-2);
    let rm_before = j.head.bn.buffers();
    let l = j
        .batch_step(&mut adam, xb.view(), xsb.view(), pb.view(), &vis)
        .unwrap();
    assert!(l.l_kl >= 0.0 && l.l_b.is_finite());
    let after = j.trained_mu_chol();
    // μ and L moved; L stayed lower triangular with a positive diagonal.
    assert!(after.0 != before.0);
    assert!(after.1 != before.1);
    for k in 0..3 {
        for a in 0..3 {
            assert!(after.1[[k, a, a]] > 0.0);
            for b in a + 1..3 {
                assert_eq!(after.1[[k, a, b]], 0.0);
            }
        }
    }
    // BN running statistics were updated (train mode).
    assert!(j.head.bn.buffers()[0].1 != rm_before[0].1);
    // The trained (μ, L Lᵀ) is a valid mixture for the next EM's warm start.
    let warm = j.trained_smm().unwrap();
    assert_eq!(warm.pi, j.smm.pi);
    // After EM, the parameters are reset to Θ̂ exactly (f64 store).
    j.smm = warm;
    j.load_smm_params();
    let (mu, chol) = j.trained_mu_chol();
    assert_eq!(mu, j.smm.mu);
    for (a, b) in chol.iter().zip(j.smm.chol.iter()) {
        assert!((a - b).abs() <= 1e-15 * b.abs().max(1.0));
    }
    let _ = Array1::<f64>::zeros(1);
}
