//! Module II losses: gradient checks (method §17 points 17–19), the analytic gradients of method §11
//! against autodiff (point 20), and the property tests of §17.

use darlc::autodiff::gradcheck::assert_grad;
use darlc::autodiff::{Tape, Var};
use darlc::linalg::sparse::Csr;
use darlc::module2::losses::{self, MixtureConsts};
use darlc::rng;
use ndarray::{Array2, ArrayD, IxDyn};
use rand::Rng;
use statrs::function::gamma::ln_gamma;

fn rand(shape: &[usize], lo: f64, hi: f64, name: &str) -> ArrayD<f64> {
    let mut r = rng::stream(77, name);
    ArrayD::from_shape_simple_fn(IxDyn(shape), || r.random_range(lo..hi))
}

/// Well-conditioned lower-triangular factors `[k, d, d]`.
fn chol(k: usize, d: usize, name: &str) -> ArrayD<f64> {
    let mut l = rand(&[k, d, d], -0.3, 0.3, name);
    for c in 0..k {
        for i in 0..d {
            for j in i + 1..d {
                l[[c, i, j]] = 0.0;
            }
            l[[c, i, i]] = 0.8 + 0.15 * (i + c) as f64;
        }
    }
    l
}

/// Keep only the lower triangle (so the upper entries are not free parameters in the check).
fn lower(t: &mut Tape<f64>, l: Var) -> Var {
    let s = t.shape(l).to_vec();
    let mut m = ArrayD::zeros(IxDyn(&s));
    for c in 0..s[0] {
        for i in 0..s[1] {
            for j in 0..=i {
                m[[c, i, j]] = 1.0;
            }
        }
    }
    let m = t.constant(m);
    t.mul(l, m)
}

fn consts(k: usize) -> MixtureConsts {
    // π = (0.5, 0.3, 0.2)[..k] renormalised; ν = 3, 7.5, 20.
    let pi = [0.5, 0.3, 0.2];
    let s: f64 = pi[..k].iter().sum();
    MixtureConsts {
        ln_pi: pi[..k].iter().map(|p| (p / s).ln()).collect(),
        nu: vec![3.0, 7.5, 20.0][..k].to_vec(),
    }
}

#[test]
fn smm_log_density_matches_a_direct_2d_formula() {
    // d = 2: Σ = L Lᵀ, Σ⁻¹ and |Σ| in closed form; Eq. 13 written out term by term.
    let z = rand(&[4, 2], -1.0, 1.0, "z");
    let mu = rand(&[3, 2], -1.0, 1.0, "mu");
    let l = chol(3, 2, "l");
    let c = consts(3);
    let mut t = Tape::<f64>::new();
    let (zv, mv, lv) = (t.param(z.clone()), t.param(mu.clone()), t.param(l.clone()));
    let lr = losses::log_rho(&mut t, zv, mv, lv, &c);
    for i in 0..4 {
        for k in 0..3 {
            let (a, b, cc) = (l[[k, 0, 0]], l[[k, 1, 0]], l[[k, 1, 1]]);
            // Σ = [[a², ab], [ab, b² + c²]]
            let (s00, s01, s11) = (a * a, a * b, b * b + cc * cc);
            let det = s00 * s11 - s01 * s01;
            let (x0, x1) = (z[[i, 0]] - mu[[k, 0]], z[[i, 1]] - mu[[k, 1]]);
            let delta = (s11 * x0 * x0 - 2.0 * s01 * x0 * x1 + s00 * x1 * x1) / det;
            let nu = c.nu[k];
            let d = 2.0;
            let expect = c.ln_pi[k] + ln_gamma((nu + d) / 2.0)
                - ln_gamma(nu / 2.0)
                - (d / 2.0) * (nu * std::f64::consts::PI).ln()
                - 0.5 * det.ln()
                - ((nu + d) / 2.0) * (1.0 + delta / nu).ln();
            let got = t.value(lr)[[i, k]];
            assert!(
                (got - expect).abs() < 1e-12 * expect.abs().max(1.0),
                "({i},{k}): {got} vs {expect}"
            );
        }
    }
}

#[test]
fn grad_smm_log_density_and_responsibilities() {
    let z = rand(&[5, 3], -1.0, 1.0, "z");
    let mu = rand(&[3, 3], -1.0, 1.0, "mu");
    let l = chol(3, 3, "l");
    let c = consts(3);
    assert_grad("ln rho", &[z.clone(), mu.clone(), l.clone()], |t, v| {
        let l = lower(t, v[2]);
        losses::log_rho(t, v[0], v[1], l, &c)
    });
    assert_grad("ln q", &[z.clone(), mu.clone(), l.clone()], |t, v| {
        let l = lower(t, v[2]);
        let lr = losses::log_rho(t, v[0], v[1], l, &c);
        losses::log_responsibilities(t, lr)
    });
    assert_grad("q", &[z.clone(), mu.clone(), l.clone()], |t, v| {
        let l = lower(t, v[2]);
        let lr = losses::log_rho(t, v[0], v[1], l, &c);
        let lq = losses::log_responsibilities(t, lr);
        t.exp(lq)
    });
    let gauss = MixtureConsts {
        ln_pi: c.ln_pi.clone(),
        nu: vec![f64::INFINITY; 3],
    };
    assert_grad("ln rho gaussian", &[z, mu, l], |t, v| {
        let l = lower(t, v[2]);
        losses::log_rho(t, v[0], v[1], l, &gauss)
    });
}

#[test]
fn grad_lh_size_and_laplacian_losses() {
    let z = rand(&[6, 2], -1.5, 1.5, "z");
    let mu = rand(&[3, 2], -1.0, 1.0, "mu");
    let l = chol(3, 2, "l");
    let c = consts(3);
    let mu_c = mu.clone();
    let l_c = l.clone();
    assert_grad("L_LH wrt Z", std::slice::from_ref(&z), |t, v| {
        let (m, lv) = (t.constant(mu_c.clone()), t.constant(l_c.clone()));
        let lr = losses::log_rho(t, v[0], m, lv, &c);
        losses::lh_loss(t, lr)
    });
    // L_size: K = 3 gives τ = 0.2/3 ≈ 0.067; a far-away component makes its f_j tiny (below τ,
    // strictly inside the clamp), the other two are above τ (exempt).
    let mut mu_far = mu.clone();
    mu_far[[2, 0]] = 4.0;
    mu_far[[2, 1]] = 4.0;
    let mu_far_c = mu_far.clone();
    let f_check = {
        let mut t = Tape::<f64>::no_grad();
        let (zv, m, lv) = (
            t.constant(z.clone()),
            t.constant(mu_far.clone()),
            t.constant(l.clone()),
        );
        let lr = losses::log_rho(&mut t, zv, m, lv, &c);
        let lq = losses::log_responsibilities(&mut t, lr);
        let q = t.exp(lq);
        t.mean_axis(q, 0, false);
        t.value(Var(t.len() - 1)).clone()
    };
    let tau = 0.2 / 3.0;
    assert!(
        f_check.iter().any(|&f| f < tau && f > 1e-6),
        "need one cluster below τ: {f_check:?}"
    );
    assert!(
        f_check.iter().any(|&f| f > tau * 1.01),
        "need one cluster above τ"
    );
    assert_grad("L_size wrt Z", std::slice::from_ref(&z), |t, v| {
        let (m, lv) = (t.constant(mu_far_c.clone()), t.constant(l_c.clone()));
        let lr = losses::log_rho(t, v[0], m, lv, &c);
        let lq = losses::log_responsibilities(t, lr);
        losses::size_loss(t, lq)
    });
    let s = small_graph();
    assert_grad("L_Lap wrt Z", &[z], |t, v| {
        losses::laplacian_loss(t, v[0], &s, 0.5)
    });
}

/// A symmetric 6-node similarity with one isolated node (node 5).
fn small_graph() -> Csr {
    let edges = [
        (0, 1, 0.9),
        (0, 2, 0.4),
        (1, 2, 0.7),
        (2, 3, 0.2),
        (3, 4, 0.8),
    ];
    let n = 6;
    let mut rows: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    for &(i, j, w) in &edges {
        rows[i].push((j, w));
        rows[j].push((i, w));
    }
    let mut offsets = vec![0];
    let (mut cols, mut vals) = (Vec::new(), Vec::new());
    for r in rows.iter_mut() {
        r.sort_by_key(|e| e.0);
        for &(j, w) in r.iter() {
            cols.push(j);
            vals.push(w);
        }
        offsets.push(cols.len());
    }
    Csr {
        n_rows: n,
        n_cols: n,
        indptr: offsets,
        indices: cols,
        values: vals,
    }
}

#[test]
fn laplacian_loss_equals_dense_trace_form() {
    // (λ/N) tr(Zᵀ L_sym Z) with L_sym = I₊ − D^{-1/2} S D^{-1/2} built densely.
    let s = small_graph();
    let z = rand(&[6, 2], -1.0, 1.0, "zl");
    let n = 6;
    let mut sd = Array2::<f64>::zeros((n, n));
    for i in 0..n {
        for e in s.indptr[i]..s.indptr[i + 1] {
            sd[[i, s.indices[e]]] = s.values[e];
        }
    }
    let d: Vec<f64> = (0..n).map(|i| sd.row(i).sum()).collect();
    let mut lsym = Array2::<f64>::zeros((n, n));
    for i in 0..n {
        for j in 0..n {
            let inv = |x: f64| if x > 0.0 { 1.0 / x.sqrt() } else { 0.0 };
            lsym[[i, j]] =
                if i == j && d[i] > 0.0 { 1.0 } else { 0.0 } - inv(d[i]) * sd[[i, j]] * inv(d[j]);
        }
    }
    let z2 = z.clone().into_dimensionality::<ndarray::Ix2>().unwrap();
    let dense = 0.5 / n as f64 * (z2.t().dot(&lsym).dot(&z2)).diag().sum();
    let mut t = Tape::<f64>::new();
    let zv = t.param(z);
    let lv = losses::laplacian_loss(&mut t, zv, &s, 0.5);
    assert!(
        (t.scalar(lv) - dense).abs() < 1e-14,
        "{} vs {}",
        t.scalar(lv),
        dense
    );
    // method §11: ∂L_Lap/∂Z = (2λ/N) L_sym Z.
    let g = t.backward(lv);
    let expect = lsym.dot(&z2) * (2.0 * 0.5 / n as f64);
    let got = g
        .get(zv)
        .unwrap()
        .clone()
        .into_dimensionality::<ndarray::Ix2>()
        .unwrap();
    assert!((&got - &expect).iter().all(|e| e.abs() < 1e-14));
}

#[test]
fn grad_kl_loss_wrt_z_mu_and_l() {
    let z = rand(&[5, 2], -1.0, 1.0, "zk");
    let mu = rand(&[3, 2], -1.0, 1.0, "muk");
    let l = chol(3, 2, "lk");
    let c = consts(3);
    // P from the current Q (as in the algorithm), then frozen.
    let ln_p = {
        let mut t = Tape::<f64>::no_grad();
        let (zv, m, lv) = (
            t.constant(z.clone()),
            t.constant(mu.clone()),
            t.constant(l.clone()),
        );
        let lr = losses::log_rho(&mut t, zv, m, lv, &c);
        let lq = losses::log_responsibilities(&mut t, lr);
        losses::target_log_distribution(t.value(lq).view().into_dimensionality().unwrap())
    };
    assert_grad("L_KL", &[z, mu, l], |t, v| {
        let l = lower(t, v[2]);
        let lr = losses::log_rho(t, v[0], v[1], l, &c);
        let lq = losses::log_responsibilities(t, lr);
        losses::kl_loss(t, ln_p.view(), lq)
    });
}

#[test]
fn analytic_gradients_of_section_11_match_autodiff() {
    // g_ik = w_ik Σ_k⁻¹ (z_i − μ_k), w = (ν+d)/(ν+δ). Checks ∂L_LH/∂z, ∂L_KL/∂z and ∂L_KL/∂μ.
    let (n, k, d) = (5, 3, 2);
    let z = rand(&[n, d], -1.0, 1.0, "za");
    let mu = rand(&[k, d], -1.0, 1.0, "mua");
    let l = chol(k, d, "la");
    let c = consts(k);
    let mut t = Tape::<f64>::new();
    let (zv, mv, lv) = (t.param(z.clone()), t.param(mu.clone()), t.param(l.clone()));
    let lr = losses::log_rho(&mut t, zv, mv, lv, &c);
    let lq = losses::log_responsibilities(&mut t, lr);
    let q = t.value(lq).mapv(f64::exp);
    let ln_p = losses::target_log_distribution(t.value(lq).view().into_dimensionality().unwrap());
    let p = ln_p.mapv(f64::exp);
    // g_ik by hand (d = 2 closed-form inverse).
    let mut g = ndarray::Array3::<f64>::zeros((n, k, d));
    for kk in 0..k {
        let (a, b, cc) = (l[[kk, 0, 0]], l[[kk, 1, 0]], l[[kk, 1, 1]]);
        let (s00, s01, s11) = (a * a, a * b, b * b + cc * cc);
        let det = s00 * s11 - s01 * s01;
        let inv = [[s11 / det, -s01 / det], [-s01 / det, s00 / det]];
        for i in 0..n {
            let x = [z[[i, 0]] - mu[[kk, 0]], z[[i, 1]] - mu[[kk, 1]]];
            let sx = [
                inv[0][0] * x[0] + inv[0][1] * x[1],
                inv[1][0] * x[0] + inv[1][1] * x[1],
            ];
            let delta = x[0] * sx[0] + x[1] * sx[1];
            let w = (c.nu[kk] + d as f64) / (c.nu[kk] + delta);
            g[[i, kk, 0]] = w * sx[0];
            g[[i, kk, 1]] = w * sx[1];
        }
    }
    let lh = losses::lh_loss(&mut t, lr);
    let glh = t.backward(lh);
    let gz = glh.get(zv).unwrap();
    for i in 0..n {
        for j in 0..d {
            let expect: f64 = (0..k).map(|kk| q[[i, kk]] * g[[i, kk, j]]).sum::<f64>() / n as f64;
            assert!((gz[[i, j]] - expect).abs() < 1e-13, "∂L_LH/∂z [{i},{j}]");
        }
    }
    let kl = losses::kl_loss(&mut t, ln_p.view(), lq);
    let gkl = t.backward(kl);
    let (gz, gm) = (gkl.get(zv).unwrap(), gkl.get(mv).unwrap());
    for i in 0..n {
        for j in 0..d {
            let expect: f64 = (0..k)
                .map(|kk| (p[[i, kk]] - q[[i, kk]]) * g[[i, kk, j]])
                .sum::<f64>()
                / n as f64;
            assert!((gz[[i, j]] - expect).abs() < 1e-13, "∂L_KL/∂z [{i},{j}]");
        }
    }
    for kk in 0..k {
        for j in 0..d {
            let expect: f64 = -(0..n)
                .map(|i| (p[[i, kk]] - q[[i, kk]]) * g[[i, kk, j]])
                .sum::<f64>()
                / n as f64;
            assert!((gm[[kk, j]] - expect).abs() < 1e-13, "∂L_KL/∂μ [{kk},{j}]");
        }
    }
}

#[test]
fn size_loss_is_non_negative_and_target_rows_sum_to_one() {
    for seed in 0..20 {
        let (n, k) = (8, 4);
        let logits = rand(&[n, k], -4.0, 4.0, &format!("lg{seed}"));
        let mut t = Tape::<f64>::no_grad();
        let x = t.constant(logits);
        let lq = t.log_softmax(x);
        let s = losses::size_loss(&mut t, lq);
        assert!(t.scalar(s) >= 0.0);
        let lp = losses::target_log_distribution(t.value(lq).view().into_dimensionality().unwrap());
        for row in lp.rows() {
            let sum: f64 = row.iter().map(|v| v.exp()).sum();
            assert!((sum - 1.0).abs() < 1e-12);
        }
    }
}
