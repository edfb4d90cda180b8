//! Golden fixtures of Module II in the tiny configuration of SPEC §18 (N = 12, 10×10 images,
//! D = 8, d = 3, K = 3, B = 6), registered in [`crate::fixtures::registry`]:
//!
//! * `smm.tiny.em_iteration` — one MAP-ECM iteration (§6.6–6.8): inputs `z [12,3]`, the starting
//!   `Θ` (`smm.pi/mu/sigma/nu`) and the prior `smm.prior.*`; outputs the starting E-step
//!   (`estep.ln_q`, `estep.w`, `estep.lse`), `Θ` after the M- and ν-steps (`after.smm.*`) and
//!   `l_map [2]` (before, after).
//! * `joint.tiny.epoch_step` — one epoch-level step (§8.6) from a state away from initialisation
//!   (see [`tiny_joint`]): inputs every parameter by dotted name, the BN running statistics, `x`,
//!   the visible lists `mask.visible [12·n_keep]`, `pos_table`, `Θ̂`, the seeding similarity as CSR
//!   (`similarity.indptr/indices` I64, `similarity.values`), `λ` and the Adam_E state
//!   `adam_e.m/v.<name>` after 3 steps; outputs `z`, `G = ∂(L_Lap+L_LH+L_size)/∂Z`, the four terms,
//!   `grad.<name>` for θ, θ_dec, θ_proj and `after.<name>` after Adam_E (lr 1e-3, step 4) and EMA
//!   (m = 0.999).
//! * `joint.tiny.batch_step` — one batch-level step (§9.2–9.4) on images 0–5: inputs as above plus
//!   `x_s`, `ln_p [6,3]` and `adam_b.m/v.<name>`; outputs `l_b`, `l_kl`, `l_ssl`, `l_mim`, `l_cl`,
//!   `grad.<name>` for every Adam_B parameter (incl. `smm.mu/eta/l_off`), `after.<name>` after
//!   Adam_B (lr 1e-3, step 4; the paper rate 1e-5 would move parameters below f64 fixture
//!   resolution) and EMA, and `after.proj.bn.running_*` (train-mode BN).
//!
//! Single parts, each small with every input stored: `smm.tiny.nu_bounds` (one EM iteration
//! whose ν step ends at 1 and at 200), `smm.tiny.init` (prior, k-means++ from stored draws,
//! Lloyd, hard M-step), `smm.tiny.em_converged` (EM to its stopping rule), `losses.tiny.l_size`
//! (`L_size` active), `losses.tiny.target_p` (P from Q), `similarity.tiny.seeding` (§7) and
//! `k_infer.tiny.eigengap` (§10, known K̂ = 3). `fixtures/golden/README.md` documents each.

use super::joint::{Joint, JointOptions};
use super::laplacian::LaplacianSym;
use super::losses::target_log_distribution;
use super::similarity::seeding_similarity;
use super::smm::{Smm, SmmPrior};
use crate::fixtures::case::{Builder, CaseData};
use crate::module1::mim::draw_visible;
use crate::nn::adam::{Adam, AdamState};
use crate::nn::params::ParamId;
use ndarray::{Array1, Array2, Array3, Array4, ArrayD, IxDyn, s};
use rand::Rng;

fn scalar(v: f64) -> ArrayD<f64> {
    ArrayD::from_elem(IxDyn(&[]), v)
}

/// `smm.tiny.em_iteration` (see the module doc).
pub fn em_iteration(mut b: Builder) -> CaseData {
    let z = b
        .uniform("z", &[12, 3], -1.0, 1.0)
        .into_dimensionality::<ndarray::Ix2>()
        .expect("2-D");
    let mut r = b.stream("theta");
    let mut sigma = Array3::<f64>::zeros((3, 3, 3));
    for k in 0..3 {
        let a = Array2::from_shape_simple_fn((3, 3), || r.random_range(-0.5..0.5));
        let mut s = a.dot(&a.t());
        for j in 0..3 {
            s[[j, j]] += 0.3;
        }
        sigma.slice_mut(s![k, .., ..]).assign(&s);
    }
    let mu = Array2::from_shape_simple_fn((3, 3), || r.random_range(-0.8..0.8));
    let smm = Smm::new(
        Array1::from(vec![0.5, 0.3, 0.2]),
        mu,
        sigma,
        Array1::from(vec![3.0, 8.0, 20.0]),
        false,
    )
    .expect("valid tiny mixture");
    let prior = SmmPrior::default_from(z.view(), 3).expect("valid prior");
    b.config(
        "em",
        "one iteration: E-step, MAP M-step, ν bisection CM-step (SPEC §6.6–6.8)",
    )
    .config("d", 3)
    .config("k", 3);
    b.constant("z", z.clone().into_dyn());
    let mut before = crate::io::TensorFile::new();
    smm.insert_into(&mut before);
    prior.insert_into(&mut before);
    let mut names: Vec<&String> = before.tensors.keys().collect();
    names.sort();
    for n in names {
        if let Some(crate::io::TensorData::F64(a)) = before.tensors.get(n) {
            b.constant(n, a.clone());
        }
    }
    let e = smm.estep(z.view()).expect("finite E-step");
    let mut after = smm.clone();
    let rep = after
        .em(z.view(), &prior, 1, 0.0)
        .expect("one EM iteration");
    let mut outputs = vec![
        ("estep.ln_q".to_string(), e.ln_q.into_dyn()),
        ("estep.w".to_string(), e.w.into_dyn()),
        ("estep.lse".to_string(), e.lse.into_dyn()),
        (
            "l_map".to_string(),
            Array1::from(rep.l_map.clone()).into_dyn(),
        ),
    ];
    let mut tf = crate::io::TensorFile::new();
    after.insert_into(&mut tf);
    let mut names: Vec<&String> = tf.tensors.keys().collect();
    names.sort();
    for n in names {
        if let Some(crate::io::TensorData::F64(a)) = tf.tensors.get(n) {
            outputs.push((format!("after.{n}"), a.clone()));
        }
    }
    b.finish(outputs)
}

/// The tiny joint state of the two step fixtures, away from initialisation: Module I moved as in
/// [`crate::module1::cases::tiny_state`] (seed 3: online weights by `U(−0.1, 0.1)`, EMA targets a
/// further `U(−0.02, 0.02)` apart, σ₁ = 0.9, σ₂ = 1.2), the joint start on it (BN calibration,
/// SMM fitted on `Z⁰` with 5 EM iterations), then every projection-head parameter moved by
/// `U(−0.05, 0.05)` (stream `proj.perturb`); images `x`, `x_s` and a 3-NN seeding similarity of
/// random vectors.
fn tiny_joint(b: &Builder) -> (Joint<f64>, Array4<f64>, Array4<f64>, LaplacianSym) {
    let sparse = |name: &str| {
        let mut r = b.stream(name);
        Array4::from_shape_simple_fn((12, 1, 10, 10), || {
            if r.random::<f64>() < 0.6 {
                0.0
            } else {
                r.random_range(0.2..2.0)
            }
        })
    };
    let x = sparse("x");
    let xs = sparse("x_s").mapv(|v| 0.5 * v + 0.1);
    let m1 = crate::module1::cases::tiny_state(3);
    let mut opts = JointOptions::new(3, 3);
    opts.dim = 3;
    opts.batch = 6;
    opts.em_iters_init = 5;
    opts.em_iters_epoch = 5;
    opts.em_iters_final = 5;
    let (mut j, _) = Joint::start(m1, x.view(), opts).expect("tiny joint start");
    let mut r = b.stream("proj.perturb");
    let mut head: Vec<(String, ParamId)> =
        j.m1.store
            .ids_with_prefix("proj.")
            .into_iter()
            .map(|id| (j.m1.store.name(id).to_string(), id))
            .collect();
    head.sort();
    for (_, id) in head {
        j.m1.store
            .get_mut(id)
            .mapv_inplace(|v| v + r.random_range(-0.05..0.05));
    }
    let y = b
        .uniform("y", &[12, 20], -1.0, 1.0)
        .into_dimensionality::<ndarray::Ix2>()
        .expect("2-D");
    let lap =
        LaplacianSym::new(seeding_similarity(y.view(), 3).expect("similarity")).expect("Laplacian");
    (j, x, xs, lap)
}

/// Steps taken before the fixture's step by the stored optimiser state.
const ADAM_PRIOR_STEPS: u64 = 3;

/// An Adam (lr 1e-3) whose state for every parameter of `ids` is as after
/// [`ADAM_PRIOR_STEPS`] steps, stored as inputs `<prefix>.m.<name>` ~ `U(−0.02, 0.02)` and
/// `<prefix>.v.<name>` ~ `U(1e-5, 1e-3)` (sorted names), so the fixture's step is step 4 and
/// its move depends on the gradient's size, not only on its sign (Adam's first step from zero
/// moments moves every weight by ±lr whatever the gradient, which hid mistakes and turned the
/// rounding noise of structurally zero gradients into moves above the f64 tolerance). The
/// entries of `smm.l_off` on and above the diagonal (not used by the model) get `m = v = 0`, so
/// they do not move.
fn stored_adam(b: &mut Builder, j: &Joint<f64>, ids: &[ParamId], prefix: &str) -> Adam<f64> {
    let mut adam = Adam::new(1e-3);
    let mut named: Vec<(String, ParamId)> = ids
        .iter()
        .map(|&id| (j.m1.store.name(id).to_string(), id))
        .collect();
    named.sort();
    for (n, id) in named {
        let shape = j.m1.store.get(id).shape().to_vec();
        let mut m = b.uniform(&format!("{prefix}.m.{n}"), &shape, -0.02, 0.02);
        let mut v = b.uniform(&format!("{prefix}.v.{n}"), &shape, 1e-5, 1e-3);
        if n == "smm.l_off" {
            // [K, d, d]: zero the entries with column ≥ row.
            let d = shape[2];
            for (flat, (mm, vv)) in m.iter_mut().zip(v.iter_mut()).enumerate() {
                let (row, col) = ((flat / d) % d, flat % d);
                if col >= row {
                    *mm = 0.0;
                    *vv = 0.0;
                }
            }
        }
        b.constant(&format!("{prefix}.m.{n}"), m.clone());
        b.constant(&format!("{prefix}.v.{n}"), v.clone());
        adam.set_state(
            id,
            AdamState {
                m,
                v,
                step: ADAM_PRIOR_STEPS,
            },
        );
    }
    adam
}

/// Parameters, BN buffers and `Θ̂` as inputs (sorted names).
fn state_inputs(b: &mut Builder, j: &Joint<f64>) {
    let mut v = j.named_tensors();
    v.sort_by(|a, c| a.0.cmp(&c.0));
    for (n, a) in v {
        b.constant(&n, a);
    }
    b.constant("theta.pi", j.smm.pi.clone().into_dyn());
    b.constant("theta.mu", j.smm.mu.clone().into_dyn());
    b.constant("theta.chol", j.smm.chol.clone().into_dyn());
    b.constant("theta.nu", j.smm.nu.clone().into_dyn());
}

fn after_outputs(j: &Joint<f64>, out: &mut Vec<(String, ArrayD<f64>)>) {
    let mut v = j.named_tensors();
    v.sort_by(|a, c| a.0.cmp(&c.0));
    for (n, a) in v {
        out.push((format!("after.{n}"), a));
    }
}

/// `joint.tiny.epoch_step` (see the module doc).
pub fn epoch_step(mut b: Builder) -> CaseData {
    let (mut j, x, _, lap) = tiny_joint(&b);
    let lambda = 0.5;
    let cfg = j.m1.cfg.clone();
    b.config("module1", serde_json::to_value(&cfg).unwrap_or_default())
        .config("lambda", lambda)
        .config("chunk", j.opts.batch)
        .config(
            "adam_e",
            "lr 1e-3, betas (0.9, 0.999), eps 1e-8, from the stored state adam_e.m/v.* after 3 steps (this is step 4)",
        )
        .config("adam_prior_steps", ADAM_PRIOR_STEPS)
        .config("ema_momentum", cfg.momentum)
        .config("bn", "eval mode (running statistics)");
    state_inputs(&mut b, &j);
    b.constant("x", x.clone().into_dyn());
    let vis = draw_visible(&mut b.stream("mask"), 12, cfg.tokens(), cfg.n_keep());
    let flat: Vec<usize> = vis.iter().flatten().copied().collect();
    b.ints("mask.visible", &flat);
    b.constant("pos_table", crate::module1::cases::pos_table(&cfg));
    b.ints("similarity.indptr", &lap.s.indptr);
    b.ints("similarity.indices", &lap.s.indices);
    b.constant(
        "similarity.values",
        Array1::from(lap.s.values.clone()).into_dyn(),
    );
    let (_, z) = j.embed(x.view());
    let (g, _) =
        super::epoch_loss::clustering_gradient(&j.smm, z.view(), &lap, lambda, j.opts.terms)
            .expect("finite pass 1");
    let (grads, terms, l_mim) = j
        .epoch_gradient(x.view(), z.view(), &lap, lambda, &vis)
        .expect("finite epoch gradient");
    let mut out = vec![
        ("z".to_string(), z.clone().into_dyn()),
        ("G".to_string(), g.into_dyn()),
        ("l_lap".to_string(), scalar(terms.l_lap)),
        ("l_lh".to_string(), scalar(terms.l_lh)),
        ("l_size".to_string(), scalar(terms.l_size)),
        ("l_mim".to_string(), scalar(l_mim)),
    ];
    out.extend(sorted_grads(&j, &j.epoch_ids, grads));
    let ids = j.epoch_ids.clone();
    let mut adam = stored_adam(&mut b, &j, &ids, "adam_e");
    j.epoch_step(&mut adam, x.view(), z.view(), &lap, lambda, &vis)
        .expect("finite epoch step");
    after_outputs(&j, &mut out);
    b.finish(out)
}

/// `joint.tiny.batch_step` (see the module doc).
pub fn batch_step(mut b: Builder) -> CaseData {
    let (mut j, x, xs, _) = tiny_joint(&b);
    let cfg = j.m1.cfg.clone();
    b.config("module1", serde_json::to_value(&cfg).unwrap_or_default())
        .config("batch", "images 0–5")
        .config(
            "adam_b",
            "lr 1e-3 (fixture only), betas (0.9, 0.999), eps 1e-8, from the stored state adam_b.m/v.* after 3 steps (this is step 4)",
        )
        .config("adam_prior_steps", ADAM_PRIOR_STEPS)
        .config("ema_momentum", cfg.momentum)
        .config(
            "bn",
            "train mode (batch statistics; running statistics updated)",
        );
    state_inputs(&mut b, &j);
    let (_, z) = j.embed(x.view());
    let ln_q = j.smm.estep(z.view()).expect("E-step").ln_q;
    let ln_p = target_log_distribution(ln_q.view());
    let xb = x.slice(s![0..6, .., .., ..]).to_owned();
    let xsb = xs.slice(s![0..6, .., .., ..]).to_owned();
    let pb = ln_p.slice(s![0..6, ..]).to_owned();
    b.constant("x", xb.clone().into_dyn());
    b.constant("x_s", xsb.clone().into_dyn());
    b.constant("ln_p", pb.clone().into_dyn());
    let vis = draw_visible(&mut b.stream("mask"), 6, cfg.tokens(), cfg.n_keep());
    let flat: Vec<usize> = vis.iter().flatten().copied().collect();
    b.ints("mask.visible", &flat);
    b.constant("pos_table", crate::module1::cases::pos_table(&cfg));
    let mut jg = j.clone();
    let (grads, l) = jg
        .batch_gradient(xb.view(), xsb.view(), pb.view(), &vis)
        .expect("finite batch loss");
    let mut out = vec![
        ("l_b".to_string(), scalar(l.l_b)),
        ("l_kl".to_string(), scalar(l.l_kl)),
        ("l_ssl".to_string(), scalar(l.l_ssl)),
        ("l_mim".to_string(), scalar(l.l_mim)),
        ("l_cl".to_string(), scalar(l.l_cl)),
    ];
    out.extend(sorted_grads(&j, &j.batch_ids, grads));
    let ids = j.batch_ids.clone();
    let mut adam = stored_adam(&mut b, &j, &ids, "adam_b");
    j.batch_step(&mut adam, xb.view(), xsb.view(), pb.view(), &vis)
        .expect("finite batch step");
    after_outputs(&j, &mut out);
    b.finish(out)
}

/// `grad.<dotted name>` for every parameter in `ids`, sorted by name (the fixture's key order).
fn sorted_grads(
    j: &Joint<f64>,
    ids: &[ParamId],
    grads: Vec<ArrayD<f64>>,
) -> Vec<(String, ArrayD<f64>)> {
    let mut named: Vec<(String, ArrayD<f64>)> = ids
        .iter()
        .zip(grads)
        .map(|(id, g)| (format!("grad.{}", j.m1.store.name(*id)), g))
        .collect();
    named.sort_by(|a, c| a.0.cmp(&c.0));
    named
}

// ------------------------------------------------------------------ cases of single Module II parts

/// An SMM from explicit `π`, `μ`, `Σ` (positive definite) and `ν`.
fn mixture(pi: &[f64], mu: Array2<f64>, sigma: Array3<f64>, nu: &[f64]) -> Smm {
    Smm::new(
        Array1::from(pi.to_vec()),
        mu,
        sigma,
        Array1::from(nu.to_vec()),
        false,
    )
    .expect("valid tiny mixture")
}

/// Declare `smm.*` (Θ) and `smm.prior.*` as constants, sorted by name.
fn declare_smm(b: &mut Builder, smm: &Smm, prior: Option<&SmmPrior>) {
    let mut tf = crate::io::TensorFile::new();
    smm.insert_into(&mut tf);
    if let Some(p) = prior {
        p.insert_into(&mut tf);
    }
    let mut names: Vec<&String> = tf.tensors.keys().collect();
    names.sort();
    for n in names {
        if let Some(crate::io::TensorData::F64(a)) = tf.tensors.get(n) {
            b.constant(n, a.clone());
        }
    }
}

/// `after.smm.*` of a mixture, sorted by name.
fn smm_outputs(prefix: &str, smm: &Smm, out: &mut Vec<(String, ArrayD<f64>)>) {
    let mut tf = crate::io::TensorFile::new();
    smm.insert_into(&mut tf);
    let mut names: Vec<&String> = tf.tensors.keys().collect();
    names.sort();
    for n in names {
        if let Some(crate::io::TensorData::F64(a)) = tf.tensors.get(n) {
            out.push((format!("{prefix}{n}"), a.clone()));
        }
    }
}

/// Rows of a small literal matrix.
fn rows(r: &[&[f64]]) -> Array2<f64> {
    Array2::from_shape_fn((r.len(), r[0].len()), |(i, j)| r[i][j])
}

/// `smm.tiny.nu_bounds`: one MAP-ECM iteration (§6.6–6.8) in which the ν CM-step ends at both
/// bounds: component 0 (ν = 3) holds three points near its centre and three far out (δ ≈ 100–250,
/// heavy tails: `f(1) ≤ 0`, ν → 1), component 1 (ν = 200) four points at δ = 2 exactly, where
/// `w = 1` (`f(200) ≥ 0`, ν → 200). Same inputs and outputs as `smm.tiny.em_iteration`.
pub fn nu_bounds(mut b: Builder) -> CaseData {
    let z = rows(&[
        &[-5.2, -4.9],
        &[-4.8, -5.1],
        &[-5.1, -5.2],
        &[-17.0, -5.0],
        &[-5.0, -17.0],
        &[-14.0, -14.0],
        &[6.0, 6.0],
        &[4.0, 4.0],
        &[6.0, 4.0],
        &[4.0, 6.0],
    ]);
    let mut sigma = Array3::<f64>::zeros((2, 2, 2));
    for k in 0..2 {
        for j in 0..2 {
            sigma[[k, j, j]] = 1.0;
        }
    }
    let smm = mixture(
        &[0.6, 0.4],
        rows(&[&[-5.0, -5.0], &[5.0, 5.0]]),
        sigma,
        &[3.0, 200.0],
    );
    let prior = SmmPrior::default_from(z.view(), 2).expect("valid prior");
    b.config(
        "em",
        "one iteration: E-step, MAP M-step, ν bisection CM-step (SPEC §6.6–6.8); ν ends at 1 and 200",
    )
    .config("d", 2)
    .config("k", 2)
    .config("nu_bounds", vec![1.0, 200.0]);
    let out = one_em_iteration(&mut b, z, smm, prior);
    let nu = out
        .iter()
        .find(|(n, _)| n == "after.smm.nu")
        .expect("ν output");
    assert!(
        nu.1[[0]] == 1.0 && nu.1[[1]] == 200.0,
        "nu_bounds: ν after the step is {:?}, not at both bounds",
        nu.1
    );
    b.finish(out)
}

/// The outputs of one EM iteration from `smm` (inputs declared here).
fn one_em_iteration(
    b: &mut Builder,
    z: Array2<f64>,
    smm: Smm,
    prior: SmmPrior,
) -> Vec<(String, ArrayD<f64>)> {
    b.constant("z", z.clone().into_dyn());
    declare_smm(b, &smm, Some(&prior));
    let e = smm.estep(z.view()).expect("finite E-step");
    let mut after = smm.clone();
    let rep = after
        .em(z.view(), &prior, 1, 0.0)
        .expect("one EM iteration");
    let mut outputs = vec![
        ("estep.ln_q".to_string(), e.ln_q.into_dyn()),
        ("estep.w".to_string(), e.w.into_dyn()),
        ("estep.lse".to_string(), e.lse.into_dyn()),
        (
            "l_map".to_string(),
            Array1::from(rep.l_map.clone()).into_dyn(),
        ),
    ];
    smm_outputs("after.", &after, &mut outputs);
    outputs
}

/// Three blobs of 6 points in 2-D (centres (−2, 0), (2, 0), (0, 2.5), offsets `U(−0.8, 0.8)`
/// from stream `z`) with two outliers, for the k-means and EM cases.
fn blobs(b: &Builder) -> Array2<f64> {
    let centres = [[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]];
    let off = b.uniform("z", &[18, 2], -0.8, 0.8);
    let mut z = Array2::from_shape_fn((18, 2), |(i, j)| centres[i / 6][j] + off[[i, j]]);
    z.row_mut(5).assign(&Array1::from(vec![-4.5, 1.5]));
    z.row_mut(11).assign(&Array1::from(vec![4.0, -2.0]));
    z
}

/// `smm.tiny.init`: the SMM initialisation of SPEC §6.5 on `z [18, 2]`, K = 3: the prior of
/// §6.2 from `z` (outputs `prior.*`), k-means++ from the stored draws (`kmeans.first`, the
/// uniform first pick, I64, and `kmeans.u [K−1]`, the U[0, 1) draws: pick the first row whose
/// running sum of D² exceeds `u·Σ D²`, rows with D² = 0 never), Lloyd to convergence (`picks`,
/// `lloyd.centres`, `lloyd.labels`, `lloyd.iters`, all as f64), then the hard MAP M-step with
/// `r = 1[label = k]`, `w = 1`, ν = 3 (`init.smm.*`).
pub fn smm_init(mut b: Builder) -> CaseData {
    let z = blobs(&b);
    let k = 3;
    b.constant("z", z.clone().into_dyn());
    // The draws kmeans_pp takes from its stream, in order: one index, then K − 1 uniforms.
    let mut r = b.stream("kmeans++");
    let first = r.random_range(0..z.nrows());
    let u: Vec<f64> = (1..k).map(|_| r.random::<f64>()).collect();
    b.ints("kmeans.first", &[first]);
    b.constant("kmeans.u", Array1::from(u).into_dyn());
    b.config("k", k).config("nu_init", 3.0).config(
        "lloyd",
        "until no assignment changes (cap 300); empty cluster re-seeded with the farthest row",
    );
    let km = super::kmeans::kmeans(z.view(), k, &mut b.stream("kmeans++")).expect("k-means");
    let prior = SmmPrior::default_from(z.view(), k).expect("valid prior");
    let smm = Smm::from_partition(z.view(), &km.labels, k, &prior, false).expect("hard M-step");
    let f = |v: &[usize]| Array1::from(v.iter().map(|&x| x as f64).collect::<Vec<_>>()).into_dyn();
    let mut out = vec![
        ("picks".to_string(), f(&km.picks)),
        ("lloyd.centres".to_string(), km.centres.clone().into_dyn()),
        ("lloyd.labels".to_string(), f(&km.labels)),
        ("lloyd.iters".to_string(), scalar(km.iters as f64)),
    ];
    let mut tf = crate::io::TensorFile::new();
    prior.insert_into(&mut tf);
    let mut names: Vec<&String> = tf.tensors.keys().collect();
    names.sort();
    for n in names {
        if let Some(crate::io::TensorData::F64(a)) = tf.tensors.get(n) {
            out.push((n.replacen("smm.prior.", "prior.", 1), a.clone()));
        }
    }
    smm_outputs("init.", &smm, &mut out);
    b.finish(out)
}

/// `smm.tiny.em_converged`: MAP-ECM (§6.6–6.9) from a stored start Θ (`smm.*`: the hard
/// initialisation of the `smm.tiny.init` recipe on this case's points) with the prior
/// `smm.prior.*`, until `|Δℓ_MAP| ≤ 1e-6·(1 + |ℓ_MAP^{(t−1)}|)` (cap 100): outputs `l_map`
/// (the trace, `iters + 1` values), `iters`, `converged` (1/0), the final E-step's `estep.ln_q`
/// and `after.smm.*`.
pub fn em_converged(mut b: Builder) -> CaseData {
    let z = blobs(&b);
    let k = 3;
    let km = super::kmeans::kmeans(z.view(), k, &mut b.stream("kmeans++")).expect("k-means");
    let prior = SmmPrior::default_from(z.view(), k).expect("valid prior");
    let start = Smm::from_partition(z.view(), &km.labels, k, &prior, false).expect("hard M-step");
    b.config("max_iter", 100).config("tol", 1e-6).config(
        "stop",
        "|l_t - l_{t-1}| <= tol * (1 + |l_{t-1}|), checked after each M+nu step",
    );
    b.constant("z", z.clone().into_dyn());
    declare_smm(&mut b, &start, Some(&prior));
    let mut fit = start.clone();
    let rep = fit.em(z.view(), &prior, 100, 1e-6).expect("EM");
    assert!(rep.converged, "em_converged: EM hit the cap");
    let mut out = vec![
        (
            "l_map".to_string(),
            Array1::from(rep.l_map.clone()).into_dyn(),
        ),
        ("iters".to_string(), scalar(rep.iters as f64)),
        (
            "converged".to_string(),
            scalar(if rep.converged { 1.0 } else { 0.0 }),
        ),
        ("estep.ln_q".to_string(), rep.estep.ln_q.clone().into_dyn()),
    ];
    smm_outputs("after.", &fit, &mut out);
    b.finish(out)
}

/// `losses.tiny.l_size`: `L_size` (Eq. 19–20) and `L_LH` (Eq. 18) of `z [12, 3]` under a fixed
/// Θ̂ (`theta.pi/mu/chol/nu`) where component 2 holds f₂ ≈ 0.02 of the mass, below
/// τ = 0.2/K ≈ 0.067, so `L_size > 0` and its gradient reaches `z`. A tape case: outputs
/// `l_size`, `l_lh` with weights `w.*`, `grad.z`.
pub fn l_size_active(mut b: Builder) -> CaseData {
    let mu = rows(&[&[-1.0, 0.0, 0.0], &[1.0, 0.0, 0.0], &[0.0, 1.2, 0.0]]);
    let off = b.uniform("z", &[12, 3], -0.4, 0.4);
    let z = Array2::from_shape_fn((12, 3), |(i, j)| mu[[i / 6, j]] + off[[i, j]]);
    let mut chol = Array3::<f64>::zeros((3, 3, 3));
    for k in 0..3 {
        for j in 0..3 {
            chol[[k, j, j]] = 0.5 + 0.05 * (k + j) as f64;
        }
        chol[[k, 1, 0]] = 0.1;
    }
    let pi = Array1::from(vec![0.45, 0.45, 0.1]);
    let nu = Array1::from(vec![3.0, 5.0, 4.0]);
    b.config("tau", "0.2 / K").config("eps", 1e-12);
    b.param("z", z.into_dyn());
    b.constant("theta.pi", pi.clone().into_dyn());
    b.constant("theta.mu", mu.into_dyn());
    b.constant("theta.chol", chol.into_dyn());
    b.constant("theta.nu", nu.clone().into_dyn());
    let consts = super::losses::MixtureConsts {
        ln_pi: pi.iter().map(|p| p.ln()).collect(),
        nu: nu.to_vec(),
    };
    b.run_tape(move |t, v| {
        let lr = super::losses::log_rho(t, v[0], v[2], v[3], &consts);
        let ln_q = super::losses::log_responsibilities(t, lr);
        let q = t.value(ln_q).mapv(f64::exp);
        let f2 = q.index_axis(ndarray::Axis(1), 2).mean().expect("rows");
        assert!(
            f2 > 0.005 && f2 < 0.2 / 3.0 - 0.01,
            "l_size_active: f_2 = {f2} is not clearly below tau"
        );
        let ls = super::losses::size_loss(t, ln_q);
        let lh = super::losses::lh_loss(t, lr);
        vec![
            crate::fixtures::Out::diff("l_size", ls),
            crate::fixtures::Out::diff("l_lh", lh),
        ]
    })
}

/// `losses.tiny.target_p`: the target distribution of Eq. 22 in log space from stored
/// `ln_q [8, 3]` (log-softmax of `U(−3, 3)` logits, one column mostly small): output `ln_p`.
pub fn target_p(mut b: Builder) -> CaseData {
    let mut logits = b.uniform("logits", &[8, 3], -3.0, 3.0);
    logits
        .index_axis_mut(ndarray::Axis(1), 2)
        .mapv_inplace(|v| v - 2.0);
    let ln_q = logits.map_axis(ndarray::Axis(1), |row| {
        let m = row.fold(f64::NEG_INFINITY, |a, &v| a.max(v));
        m + row.iter().map(|&v| (v - m).exp()).sum::<f64>().ln()
    });
    let ln_q = Array2::from_shape_fn((8, 3), |(i, j)| logits[[i, j]] - ln_q[i]);
    b.constant("ln_q", ln_q.clone().into_dyn());
    b.config(
        "formula",
        "ln p_ij = 2 ln q_ij - ln f_j - LSE_j'(2 ln q_ij' - ln f_j'), ln f_j = LSE_i ln q_ij",
    );
    let ln_p = target_log_distribution(ln_q.view());
    b.finish(vec![("ln_p".to_string(), ln_p.into_dyn())])
}

/// `similarity.tiny.seeding`: the seeding similarity of SPEC §7 (Pearson, kNN k = 3, union,
/// negatives dropped, zero-variance rows → 0) of `y [10, 16]` (U(0, 1) with some negatively
/// correlated rows, row 7 constant and row 9 anti-correlated with most rows, so that its kNN list
/// holds a negative correlation): output `s`, dense `[10, 10]`.
pub fn similarity(mut b: Builder) -> CaseData {
    let mut y = b
        .uniform("y", &[10, 16], 0.0, 1.0)
        .into_dimensionality::<ndarray::Ix2>()
        .expect("2-D");
    for j in 0..16 {
        y[[1, j]] = 1.0 - y[[0, j]] + 0.1 * y[[1, j]];
        y[[4, j]] = 0.5 * y[[3, j]] + 0.3 * y[[4, j]];
        y[[7, j]] = 0.25;
        // Row 9 against the mean of rows 0, 2–6, 8: its kNN list (rows 1, 7, 2) holds r₉₂ ≈ −0.13,
        // which S drops.
        let mean: f64 = [0, 2, 3, 4, 5, 6, 8]
            .iter()
            .map(|&i| y[[i, j]])
            .sum::<f64>()
            / 7.0;
        y[[9, j]] = 1.0 - mean + 0.05 * y[[9, j]];
    }
    b.constant("y", y.clone().into_dyn());
    b.config("k", 3).config(
        "rule",
        "S_ij = max(0, r_ij) if j in kNN(i) or i in kNN(j) (ties -> lower index), S_ii = 0",
    );
    let s = seeding_similarity(y.view(), 3).expect("similarity");
    b.finish(vec![("s".to_string(), s.to_dense().into_dyn())])
}

/// `k_infer.tiny.eigengap`: cluster-number inference (SPEC §10) on a 12-node graph of three
/// 4-cliques (weights `U(0.5, 1)`) joined by two weak edges (0.05): the known answer is K̂ = 3.
/// Input `s` (dense, symmetric); outputs `s_tilde` (Eq. 23, dense), `eigenvalues` (all 12 of
/// `L_norm`, ascending, negatives clipped to 0) and `k_hat` (window [2, N − 1]).
pub fn eigengap(mut b: Builder) -> CaseData {
    let w = b.uniform("w", &[12, 12], 0.5, 1.0);
    let mut s = Array2::<f64>::zeros((12, 12));
    for i in 0..12 {
        for j in 0..i {
            if i / 4 == j / 4 {
                s[[i, j]] = w[[i, j]];
                s[[j, i]] = w[[i, j]];
            }
        }
    }
    for (i, j) in [(3, 4), (7, 8)] {
        s[[i, j]] = 0.05;
        s[[j, i]] = 0.05;
    }
    b.constant("s", s.clone().into_dyn());
    b.config("k_min", 2)
        .config("k_max", "N - 1")
        .config("known_k", 3);
    let csr = super::sparse::Csr::from_rows(
        12,
        (0..12)
            .map(|i| {
                (0..12)
                    .filter(|&j| s[[i, j]] != 0.0)
                    .map(|j| (j, s[[i, j]]))
                    .collect()
            })
            .collect(),
    );
    let st = super::k_infer::enhanced_similarity(&csr).expect("enhanced similarity");
    let (ritz, _) =
        super::k_infer::smallest_laplacian_eigenvalues(&st, 12, &mut b.stream("lanczos"));
    let k_hat = super::k_infer::eigengap(&ritz.values, 2, 11).expect("eigengap");
    assert_eq!(k_hat, 3, "eigengap: the three-clique graph must give K = 3");
    b.finish(vec![
        ("s_tilde".to_string(), st.to_dense().into_dyn()),
        (
            "eigenvalues".to_string(),
            Array1::from(ritz.values).into_dyn(),
        ),
        ("k_hat".to_string(), scalar(k_hat as f64)),
    ])
}
