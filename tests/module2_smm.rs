//! SMM MAP-ECM checks (method §6, §16, §17 property tests).

use darlc::linalg::kmeans::kmeans;
use darlc::module2::smm::{NU_MAX, NU_MIN, ScalePrior, Smm, SmmConfig, SmmPrior, fit, nu_equation};
use darlc::rng::{Stream, stream};
use ndarray::{Array1, Array2, Array3, array};
use proptest::prelude::*;
use rand::Rng;

fn normal(rng: &mut Stream) -> f64 {
    // Box–Muller on (0, 1] uniforms.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// N rows from a t-mixture with K components in d dims: centres `sep·e_{k mod d}·(1 + k/d)`,
/// identity scale, integer ν (u = χ²_ν/ν). Returns (Z, true labels).
fn t_mixture(
    seed: u64,
    n: usize,
    k: usize,
    d: usize,
    sep: f64,
    nu: usize,
) -> (Array2<f64>, Vec<usize>) {
    let mut rng = stream(seed, "test.tmix");
    let mut z = Array2::<f64>::zeros((n, d));
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % k;
        labels.push(c);
        let chi2: f64 = (0..nu).map(|_| normal(&mut rng).powi(2)).sum();
        let s = (nu as f64 / chi2).sqrt();
        for j in 0..d {
            let centre = if j == c % d {
                sep * (1.0 + (c / d) as f64)
            } else {
                0.0
            };
            z[[i, j]] = centre + s * normal(&mut rng);
        }
    }
    (z, labels)
}

/// Best agreement over all label permutations (K ≤ 6).
fn perm_agreement(a: &[usize], b: &[usize], k: usize) -> f64 {
    fn perms(k: usize) -> Vec<Vec<usize>> {
        if k == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in perms(k - 1) {
            for pos in 0..=p.len() {
                let mut q = p.clone();
                q.insert(pos, k - 1);
                out.push(q);
            }
        }
        out
    }
    perms(k)
        .iter()
        .map(|p| a.iter().zip(b).filter(|&(&x, &y)| p[x] == y).count())
        .max()
        .unwrap() as f64
        / a.len() as f64
}

fn argmax_rows(r: &Array2<f64>) -> Vec<usize> {
    r.rows()
        .into_iter()
        .map(|row| {
            let mut b = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[b] {
                    b = j;
                }
            }
            b
        })
        .collect()
}

/// The d = 1 example whose expected values come from scipy (see the comments).
fn tiny_1d() -> (Smm, Array2<f64>, SmmPrior) {
    let z = array![[-1.0], [0.5], [2.0]];
    let smm = Smm::new(
        array![0.4, 0.6],
        array![[0.0], [1.5]],
        Array3::from_shape_vec((2, 1, 1), vec![1.0, 0.25]).unwrap(),
        array![3.0, 5.0],
        false,
    )
    .unwrap();
    let prior = SmmPrior {
        alpha: 2.0,
        m0: array![0.5],
        kappa0: 0.01,
        nu0: 3.0,
        s0: array![[0.2]],
    };
    (smm, z, prior)
}

#[test]
fn tiny_estep_mstep_nu_step_match_scipy() {
    // Expected values from this numpy/scipy snippet (scipy 1.x):
    //   z=[-1,.5,2]; pi=[.4,.6]; mu=[0,1.5]; s2=[1,.25]; nu=[3,5]; d=1
    //   lp[i,k]=stats.t.logpdf(z[i],df=nu[k],loc=mu[k],scale=sqrt(s2[k]))
    //   lr=log(pi)+lp; lse=logsumexp(lr,1); r=exp(lr-lse); w=(nu+1)/(nu+(z-mu)**2/s2)
    //   M-step of method §6.7 with alpha=2, m0=.5, k0=.01, nu0=3, S0=.2 (vectorised numpy);
    //   ℓ_MAP of §6.9 at the initial Θ; ν by scipy.optimize.brentq on f_k of §6.8.
    let (mut smm, z, prior) = tiny_1d();
    let e = smm.estep(z.view()).unwrap();
    let r_want = array![
        [0.975133011272459, 0.02486698872754121],
        [0.6159499979086348, 0.38405000209136514],
        [0.09291824194312748, 0.9070817580568726]
    ];
    let w_want = array![
        [1.0, 0.2],
        [1.2307692307692308, 0.6666666666666666],
        [0.5714285714285714, 1.0]
    ];
    let lse_want = [
        -2.4673623309302335,
        -1.5926755058752344,
        -1.2357400109004513,
    ];
    for i in 0..3 {
        assert!((e.lse[i] - lse_want[i]).abs() < 1e-13, "lse[{i}]");
        for k in 0..2 {
            assert!((e.r[[i, k]] - r_want[[i, k]]).abs() < 1e-13, "r[{i},{k}]");
            assert!((e.w[[i, k]] - w_want[[i, k]]).abs() < 1e-14, "w[{i},{k}]");
            assert!((e.ln_q[[i, k]].exp() - e.r[[i, k]]).abs() < 1e-15);
        }
    }
    // Component log densities: lp[0] = [-1.5762529945270716, -5.650750816178944].
    let ld = smm.log_density(z.view()).unwrap();
    assert!((ld[[0, 0]] + 1.5762529945270716).abs() < 1e-13);
    assert!((ld[[0, 1]] + 5.650750816178944).abs() < 1e-13);
    let l0 = smm.l_map(e.log_likelihood(), &prior);
    assert!((l0 - (-3.085261119986393)).abs() < 1e-12, "ℓ_MAP {l0}");
    // E[ln u] = ψ((ν+d)/2) − ln((ν+δ)/2): row 0, component 1 has δ = (−1 − 1.5)²/0.25 = 25,
    // ν = 5: ψ(3) − ln 15 = (1.5 − γ) − ln 15 (closed form ψ(3) = 1 + 1/2 − γ).
    let eln = e.e_ln_u(&smm);
    let want = 1.5 - 0.5772156649015329 - 15f64.ln();
    assert!((eln[[0, 1]] - want).abs() < 1e-13);

    let nk = smm
        .mstep(z.view(), e.r.view(), Some(e.w.view()), &prior)
        .unwrap();
    let pi_want = [0.5368002502248442, 0.46319974977515577];
    let mu_want = [-0.26993753314768865, 1.6486085734173779];
    let s2_want = [0.18852800069434575, 0.09538957417876907];
    for k in 0..2 {
        assert!((smm.pi[k] - pi_want[k]).abs() < 1e-14, "π");
        assert!((smm.mu[[k, 0]] - mu_want[k]).abs() < 1e-14, "μ");
        assert!((smm.sigma[[k, 0, 0]] - s2_want[k]).abs() < 1e-14, "Σ");
    }
    smm.nu_step(&e, nk.view());
    // brentq roots: 3.7952570258057743 and 5.021361126998536.
    assert!(
        (smm.nu[0] - 3.7952570258057743).abs() < 1e-10,
        "ν0 {}",
        smm.nu[0]
    );
    assert!(
        (smm.nu[1] - 5.021361126998536).abs() < 1e-10,
        "ν1 {}",
        smm.nu[1]
    );
}

#[test]
fn delta_2d_matches_explicit_inverse() {
    // δ = (z − μ)ᵀ Σ⁻¹ (z − μ) with the 2×2 inverse written out by hand:
    // Σ = [[a, b], [b, c]] → Σ⁻¹ = [[c, −b], [−b, a]]/(ac − b²).
    let (a, b, c) = (2.0, 0.6, 0.5);
    let smm = Smm::new(
        array![1.0],
        array![[0.3, -0.2]],
        Array3::from_shape_vec((1, 2, 2), vec![a, b, b, c]).unwrap(),
        array![4.0],
        false,
    )
    .unwrap();
    let z = array![[1.0, 1.0], [-2.0, 0.5], [0.3, -0.2]];
    let delta = smm.mahalanobis_all(z.view()).unwrap();
    let det = a * c - b * b;
    for i in 0..3 {
        let (x, y) = (z[[i, 0]] - 0.3, z[[i, 1]] + 0.2);
        let want = (c * x * x - 2.0 * b * x * y + a * y * y) / det;
        assert!((delta[[i, 0]] - want).abs() < 1e-13 * (1.0 + want));
    }
}

#[test]
fn em_recovers_separated_t_mixture_and_invariants_hold() {
    let (z, truth) = t_mixture(11, 400, 4, 3, 12.0, 5);
    let cfg = SmmConfig::new(4);
    let f = fit(z.view(), &cfg, &mut stream(5, "kmeans++")).unwrap();
    let labels = argmax_rows(&f.report.estep.r);
    let (labels2, conf) = f.report.estep.labels();
    assert_eq!(labels, labels2);
    assert!(conf.iter().all(|&c| (0.25..=1.0).contains(&c)));
    let agree = perm_agreement(&labels, &truth, 4);
    assert!(agree > 0.97, "agreement {agree}");
    assert!(!f.report.jitter_used);
    // ℓ_MAP never decreases (ECM), responsibilities sum to 1, π on the simplex.
    for w in f.report.l_map.windows(2) {
        assert!(
            w[1] >= w[0] - 1e-9 * (1.0 + w[0].abs()),
            "{} → {}",
            w[0],
            w[1]
        );
    }
    for row in f.report.estep.r.rows() {
        assert!((row.sum() - 1.0).abs() < 1e-12);
    }
    assert!((f.smm.pi.sum() - 1.0).abs() < 1e-12);
    assert!(f.smm.nu.iter().all(|&v| (NU_MIN..=NU_MAX).contains(&v)));
    assert_eq!(f.report.l_map.len(), f.report.iters + 1);
}

#[test]
fn nu_root_satisfies_equation_inside_bounds() {
    let (z, _) = t_mixture(12, 300, 3, 2, 8.0, 4);
    let f = fit(
        z.view(),
        &SmmConfig {
            max_iter: 3,
            ..SmmConfig::new(3)
        },
        &mut stream(1, "kmeans++"),
    )
    .unwrap();
    let mut smm = f.smm.clone();
    let e = smm.estep(z.view()).unwrap();
    let nu_old = smm.nu.clone();
    let nk = smm
        .mstep(z.view(), e.r.view(), Some(e.w.view()), &f.prior)
        .unwrap();
    smm.nu_step(&e, nk.view());
    let mut inside = 0;
    for k in 0..3 {
        let g: f64 = (0..z.nrows())
            .map(|i| e.r[[i, k]] * (e.w[[i, k]].ln() - e.w[[i, k]]))
            .sum::<f64>()
            / nk[k];
        let nu = smm.nu[k];
        let fk = nu_equation(nu, g, nu_old[k], 2.0);
        if nu > NU_MIN && nu < NU_MAX {
            inside += 1;
            assert!(fk.abs() <= 1e-8, "component {k}: f(ν = {nu}) = {fk:e}");
        } else if nu == NU_MAX {
            assert!(fk >= 0.0);
        } else {
            assert!(fk <= 0.0);
        }
    }
    assert!(inside > 0, "no interior ν to check: {:?}", smm.nu);
}

#[test]
fn gaussian_ablation_has_unit_weights() {
    let (z, truth) = t_mixture(13, 300, 3, 2, 12.0, 30);
    let cfg = SmmConfig {
        gaussian: true,
        ..SmmConfig::new(3)
    };
    let f = fit(z.view(), &cfg, &mut stream(2, "kmeans++")).unwrap();
    assert!(f.smm.nu.iter().all(|v| v.is_infinite()));
    assert!(f.report.estep.w.iter().all(|&w| w == 1.0));
    assert!(f.report.estep.e_ln_u(&f.smm).iter().all(|&v| v == 0.0));
    for w in f.report.l_map.windows(2) {
        assert!(w[1] >= w[0] - 1e-9 * (1.0 + w[0].abs()));
    }
    let agree = perm_agreement(&argmax_rows(&f.report.estep.r), &truth, 3);
    assert!(agree > 0.97, "agreement {agree}");
}

#[test]
fn within_scale_prior_is_nu0_times_pooled_covariance() {
    let (z, _) = t_mixture(14, 120, 2, 2, 10.0, 6);
    let km = kmeans(z.view(), 2, &mut stream(3, "kmeans++")).unwrap();
    let mut p = SmmPrior::default_from(z.view(), 2).unwrap();
    // Default: S0 = diag(var)/K^{2/d} = diag(var)/2 for K = 2, d = 2; ν0 = 4; m0 = mean.
    let mean0 = z.column(0).sum() / 120.0;
    let var0 = z.column(0).iter().map(|v| (v - mean0).powi(2)).sum::<f64>() / 120.0;
    assert!((p.s0[[0, 0]] - var0 / 2.0).abs() < 1e-12);
    assert_eq!(p.s0[[0, 1]], 0.0);
    assert_eq!(p.nu0, 4.0);
    p.set_within_scale(z.view(), &km.labels, km.centres.view())
        .unwrap();
    let mut w01 = 0.0;
    for i in 0..120 {
        let c = km.labels[i];
        w01 += (z[[i, 0]] - km.centres[[c, 0]]) * (z[[i, 1]] - km.centres[[c, 1]]);
    }
    assert!((p.s0[[0, 1]] - 4.0 * w01 / 120.0).abs() < 1e-12);
    let cfg = SmmConfig {
        scale_prior: ScalePrior::Within,
        ..SmmConfig::new(2)
    };
    let f = fit(z.view(), &cfg, &mut stream(3, "kmeans++")).unwrap();
    assert!((f.prior.s0[[0, 1]] - p.s0[[0, 1]]).abs() < 1e-15);
}

#[test]
fn degenerate_inputs_never_give_nan() {
    // A constant column makes S0 and every Σ_k singular in that direction: the §16 jitter makes
    // the factorisation succeed and is reported.
    let (mut z, _) = t_mixture(15, 90, 3, 3, 10.0, 5);
    z.column_mut(2).fill(1.5);
    let f = fit(z.view(), &SmmConfig::new(3), &mut stream(4, "kmeans++")).unwrap();
    assert!(f.report.jitter_used);
    assert!(f.report.estep.r.iter().all(|v| v.is_finite()));
    assert!(f.report.l_map.iter().all(|v| v.is_finite()));
    // An empty component (far from all data): N_k underflows to 0, ν is kept, μ → m0 and
    // Σ → S0/(ν0 + d + 2) exactly as the division-free M-step of §6.7 promises.
    let (z, _) = t_mixture(16, 60, 2, 2, 10.0, 5);
    let prior = SmmPrior::default_from(z.view(), 3).unwrap();
    let mut sig = Array3::<f64>::zeros((3, 2, 2));
    for k in 0..3 {
        sig[[k, 0, 0]] = 1.0;
        sig[[k, 1, 1]] = 1.0;
    }
    let mut smm = Smm::new(
        Array1::from_elem(3, 1.0 / 3.0),
        array![[10.0, 0.0], [0.0, 10.0], [1e6, 1e6]],
        sig,
        array![5.0, 5.0, 7.0],
        false,
    )
    .unwrap();
    let e = smm.estep(z.view()).unwrap();
    // t tails are polynomial: at δ ≈ 2e12, ln ρ ≈ −4.5·ln(δ/ν) ≈ −120, so r ≈ 1e-50 (not 0).
    assert!(e.r.column(2).iter().all(|&v| v < 1e-40));
    let nk = smm
        .mstep(z.view(), e.r.view(), Some(e.w.view()), &prior)
        .unwrap();
    smm.nu_step(&e, nk.view());
    assert_eq!(smm.nu[2], 7.0);
    assert!((smm.mu[[2, 0]] - prior.m0[0]).abs() < 1e-9);
    assert!((smm.sigma[[2, 0, 0]] - prior.s0[[0, 0]] / (prior.nu0 + 4.0)).abs() < 1e-12);
    assert!(smm.pi[2] >= 1.0 / (60.0 + 3.0) - 1e-15);
    // Non-finite embeddings are an error, not NaN output.
    let mut bad = z.clone();
    bad[[3, 1]] = f64::NAN;
    assert!(smm.estep(bad.view()).is_err());
}

#[test]
fn bit_identical_on_one_and_two_threads() {
    let (z, _) = t_mixture(17, 1000, 5, 4, 6.0, 5);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let cfg = SmmConfig {
                max_iter: 10,
                ..SmmConfig::new(5)
            };
            fit(z.view(), &cfg, &mut stream(8, "kmeans++")).unwrap()
        })
    };
    let a = run(1);
    let b = run(2);
    let bits = |x: &[f64]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(a.kmeans.picks, b.kmeans.picks);
    assert_eq!(
        bits(a.smm.pi.as_slice().unwrap()),
        bits(b.smm.pi.as_slice().unwrap())
    );
    assert_eq!(
        bits(a.smm.mu.as_slice().unwrap()),
        bits(b.smm.mu.as_slice().unwrap())
    );
    assert_eq!(
        bits(a.smm.sigma.as_slice().unwrap()),
        bits(b.smm.sigma.as_slice().unwrap())
    );
    assert_eq!(
        bits(a.smm.nu.as_slice().unwrap()),
        bits(b.smm.nu.as_slice().unwrap())
    );
    assert_eq!(bits(&a.report.l_map), bits(&b.report.l_map));
    assert_eq!(
        bits(a.report.estep.ln_q.as_slice().unwrap()),
        bits(b.report.estep.ln_q.as_slice().unwrap())
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// ECM never decreases ℓ_MAP (method §6.9, §17), on random mixtures including overlapping ones.
    #[test]
    fn l_map_never_decreases(seed in 0u64..1_000_000, k in 2usize..5, d in 1usize..4,
                             n in 25usize..90, sep in 0.5f64..8.0, nu in 1usize..12,
                             gaussian in any::<bool>(), within in any::<bool>()) {
        let (z, _) = t_mixture(seed, n, k, d, sep, nu);
        let scale_prior = if within { ScalePrior::Within } else { ScalePrior::Default };
        let cfg = SmmConfig { max_iter: 25, tol: 0.0, gaussian, scale_prior, ..SmmConfig::new(k) };
        let f = fit(z.view(), &cfg, &mut stream(seed, "kmeans++")).unwrap();
        for w in f.report.l_map.windows(2) {
            prop_assert!(w[1] >= w[0] - 1e-10 * (1.0 + w[0].abs()), "{} → {}", w[0], w[1]);
        }
        for row in f.report.estep.r.rows() {
            prop_assert!((row.sum() - 1.0).abs() < 1e-12);
        }
    }
}

#[test]
fn tiny_2d_estep_mstep_lmap_match_scipy() {
    // Expected values from numpy/scipy:
    //   z=[[0,0],[1,.5],[-.5,2],[3,1],[2.5,2.5]]; pi=[.5,.5]; mu=[[0,.5],[2.5,1.5]]
    //   S=[[[1,.3],[.3,.8]],[[.6,-.2],[-.2,.9]]]; nu=[4,2.5]
    //   lp[i,k]=stats.multivariate_t.logpdf(z[i],loc=mu[k],shape=S[k],df=nu[k]); r=softmax(log pi+lp)
    //   M-step of method §6.7 (np.einsum scatter) with alpha=2, m0=[1,1], k0=.01, nu0=4,
    //   S0=[[.5,.1],[.1,.4]]; ℓ_MAP of §6.9 with np.linalg.det/inv at the initial Θ.
    let z = array![[0.0, 0.0], [1.0, 0.5], [-0.5, 2.0], [3.0, 1.0], [2.5, 2.5]];
    let mut smm = Smm::new(
        array![0.5, 0.5],
        array![[0.0, 0.5], [2.5, 1.5]],
        Array3::from_shape_vec((2, 2, 2), vec![1.0, 0.3, 0.3, 0.8, 0.6, -0.2, -0.2, 0.9]).unwrap(),
        array![4.0, 2.5],
        false,
    )
    .unwrap();
    let prior = SmmPrior {
        alpha: 2.0,
        m0: array![1.0, 1.0],
        kappa0: 0.01,
        nu0: 4.0,
        s0: array![[0.5, 0.1], [0.1, 0.4]],
    };
    let lp_want = array![
        [-1.9197330281455756, -6.107305237057549],
        [-2.4111708003625614, -4.360869777057743],
        [-3.7775973864110384, -5.907845858333113],
        [-5.254155635077129, -1.9387179083059942],
        [-5.0730803853652695, -2.373398173625426]
    ];
    let r_want = array![
        [0.9850439772503621, 0.01495602274963803],
        [0.875413814576039, 0.12458618542396124],
        [0.8938085942931674, 0.1061914057068328],
        [0.03504536493309617, 0.964954635066904],
        [0.06299211061979475, 0.9370078893802054]
    ];
    let lp = smm.log_density(z.view()).unwrap();
    let e = smm.estep(z.view()).unwrap();
    for i in 0..5 {
        for k in 0..2 {
            assert!((lp[[i, k]] - lp_want[[i, k]]).abs() < 1e-13, "lp[{i},{k}]");
            assert!((e.r[[i, k]] - r_want[[i, k]]).abs() < 1e-13, "r[{i},{k}]");
        }
    }
    let l0 = smm.l_map(e.log_likelihood(), &prior);
    assert!((l0 - (-14.050127095052654)).abs() < 1e-12, "ℓ_MAP {l0}");
    smm.mstep(z.view(), e.r.view(), Some(e.w.view()), &prior)
        .unwrap();
    let pi_want = [0.5503291230960655, 0.4496708769039345];
    let mu_want = array![
        [0.2664074207818408, 0.6256143436801281],
        [2.69266761863917, 1.6381503095279322]
    ];
    let s_want = Array3::from_shape_vec(
        (2, 2, 2),
        vec![
            0.16706209709549855,
            -0.02955093093608218,
            -0.02955093093608218,
            0.21294934830069817,
            0.11664093058709057,
            -0.02490471004440346,
            -0.02490471004440346,
            0.18962742301908397,
        ],
    )
    .unwrap();
    for k in 0..2 {
        assert!((smm.pi[k] - pi_want[k]).abs() < 1e-14);
        for a in 0..2 {
            assert!((smm.mu[[k, a]] - mu_want[[k, a]]).abs() < 1e-14);
            for b in 0..2 {
                assert!(
                    (smm.sigma[[k, a, b]] - s_want[[k, a, b]]).abs() < 1e-14,
                    "Σ[{k},{a},{b}]"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The bisection of §6.8 returns a root to |f| ≤ 1e-8 whenever the root is interior, and
    /// respects the edge rules otherwise. `g = mean(ln w − w) ≤ −1` always (ln x − x ≤ −1).
    #[test]
    fn nu_bisection_root(g in -6.0f64..-1.0, nu_old in 1.0f64..200.0, d in 1usize..65) {
        let d = d as f64;
        let nu = darlc::module2::smm::solve_nu(g, nu_old, d);
        let f = nu_equation(nu, g, nu_old, d);
        if nu > NU_MIN && nu < NU_MAX {
            prop_assert!(f.abs() <= 1e-8, "f({nu}) = {f:e}");
        } else if nu == NU_MAX {
            prop_assert!(f >= 0.0);
        } else {
            prop_assert!(nu == NU_MIN && f <= 0.0);
        }
    }
}

#[test]
fn grad_l_lh_matches_central_differences() {
    // method §17 harness: h = 1e-6·max(1, |θ|), pass if |g_fd − g| ≤ 1e-7·max(1, |f|) + 1e-5·|g_fd|.
    for gaussian in [false, true] {
        let (z, _) = t_mixture(21, 12, 3, 3, 2.0, 4);
        let f = fit(
            z.view(),
            &SmmConfig {
                max_iter: 5,
                gaussian,
                ..SmmConfig::new(3)
            },
            &mut stream(21, "kmeans++"),
        )
        .unwrap();
        let smm = f.smm;
        let l_lh = |z: &Array2<f64>| -smm.estep(z.view()).unwrap().log_likelihood() / 12.0;
        let g = smm.grad_l_lh(z.view()).unwrap();
        let f0 = l_lh(&z);
        for i in 0..12 {
            for j in 0..3 {
                let h = 1e-6 * z[[i, j]].abs().max(1.0);
                let mut zp = z.clone();
                zp[[i, j]] += h;
                let mut zm = z.clone();
                zm[[i, j]] -= h;
                let fd = (l_lh(&zp) - l_lh(&zm)) / (2.0 * h);
                let tol = 1e-7 * f0.abs().max(1.0) + 1e-5 * fd.abs();
                assert!(
                    (fd - g[[i, j]]).abs() <= tol,
                    "({i},{j}) fd {fd} vs {}",
                    g[[i, j]]
                );
            }
        }
    }
}

/// Issue 24: `module2.alpha`, `module2.kappa0` and `module2.nu_init` reach the fit. Each changes
/// the fitted mixture, and the defaults are method §6.2's α = 2, κ0 = 0.01 and §6.5's ν = 3 (so
/// configs that leave them out fit exactly as before).
#[test]
fn prior_hyperparameters_from_the_config_change_the_fit() {
    let (z, _) = t_mixture(31, 200, 3, 2, 6.0, 5);
    let base = SmmConfig {
        max_iter: 5,
        ..SmmConfig::new(3)
    };
    assert_eq!((base.alpha, base.kappa0, base.nu_init), (2.0, 0.01, 3.0));
    let run = |cfg: &SmmConfig| fit(z.view(), cfg, &mut stream(4, "kmeans++")).unwrap();
    let f0 = run(&base);
    // The default prior is the method's, and the same config fits the same bits.
    let p = SmmPrior::default_from(z.view(), 3).unwrap();
    assert_eq!((f0.prior.alpha, f0.prior.kappa0), (p.alpha, p.kappa0));
    let again = run(&base);
    assert_eq!(again.smm.mu, f0.smm.mu);
    assert_eq!(again.report.l_map, f0.report.l_map);
    for (what, cfg) in [
        (
            "alpha",
            SmmConfig {
                alpha: 50.0,
                ..base.clone()
            },
        ),
        (
            "kappa0",
            SmmConfig {
                kappa0: 100.0,
                ..base.clone()
            },
        ),
        (
            "nu_init",
            SmmConfig {
                nu_init: 150.0,
                ..base.clone()
            },
        ),
    ] {
        let f = run(&cfg);
        assert_ne!(
            f.report.l_map.first(),
            f0.report.l_map.first(),
            "{what} did not change the fit"
        );
        assert_eq!(f.prior.alpha, cfg.alpha, "{what}");
        assert_eq!(f.prior.kappa0, cfg.kappa0, "{what}");
    }
    // ν of the initial M-step outside the ν bounds is refused, naming the key.
    let e = Smm::from_partition_nu(z.view(), &vec![0; 200], 3, &p, false, 0.5)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("module2.nu_init"), "{e}");
}
