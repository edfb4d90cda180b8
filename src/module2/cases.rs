//! Golden fixtures of Module II in the tiny configuration of SPEC §18 (N = 12, 10×10 images,
//! D = 8, d = 3, K = 3, B = 6), registered in [`crate::fixtures::registry`]:
//!
//! * `smm.tiny.em_iteration` — one MAP-ECM iteration (§6.6–6.8): inputs `z [12,3]`, the starting
//!   `Θ` (`smm.pi/mu/sigma/nu`) and the prior `smm.prior.*`; outputs the starting E-step
//!   (`estep.ln_q`, `estep.w`, `estep.lse`), `Θ` after the M- and ν-steps (`after.smm.*`) and
//!   `l_map [2]` (before, after).
//! * `joint.tiny.epoch_step` — one epoch-level step (§8.6): inputs every parameter by dotted name,
//!   the BN running statistics, `x`, the visible lists `mask.visible [12·n_keep]`, `Θ̂`, the seeding
//!   similarity as CSR (`similarity.indptr/indices` I64, `similarity.values`) and `λ`; outputs
//!   `z`, `G = ∂(L_Lap+L_LH+L_size)/∂Z`, the four terms, `grad.<name>` for θ, θ_dec, θ_proj and
//!   `after.<name>` after Adam_E (lr 1e-3, first step) and EMA (m = 0.999).
//! * `joint.tiny.batch_step` — one batch-level step (§9.2–9.4) on images 0–5: inputs as above plus
//!   `x_s`, `ln_p [6,3]`; outputs `l_b`, `l_kl`, `l_ssl`, `l_mim`, `l_cl`, `grad.<name>` for every
//!   Adam_B parameter (incl. `smm.mu/eta/l_off`), `after.<name>` after Adam_B (lr 1e-3, first
//!   step; the paper rate 1e-5 would move parameters below f64 fixture resolution) and EMA, and
//!   `after.proj.bn.running_*` (train-mode BN).

use super::joint::{Joint, JointOptions};
use super::laplacian::LaplacianSym;
use super::losses::target_log_distribution;
use super::similarity::seeding_similarity;
use super::smm::{Smm, SmmPrior};
use crate::fixtures::case::{Builder, CaseData};
use crate::module1::mim::draw_visible;
use crate::module1::model::{Config, ModuleI};
use crate::nn::adam::Adam;
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

/// The tiny joint state of the two step fixtures: Module I (seed 3) + head + SMM fitted on `Z⁰`
/// (5 EM iterations), images `x`, `x_s` and a 3-NN seeding similarity of random vectors.
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
    let m1 = ModuleI::<f64>::new(Config::tiny(), 3).expect("tiny config");
    let mut opts = JointOptions::new(3, 3);
    opts.dim = 3;
    opts.batch = 6;
    opts.em_iters_init = 5;
    opts.em_iters_epoch = 5;
    opts.em_iters_final = 5;
    let (j, _) = Joint::start(m1, x.view(), opts).expect("tiny joint start");
    let y = b
        .uniform("y", &[12, 20], -1.0, 1.0)
        .into_dimensionality::<ndarray::Ix2>()
        .expect("2-D");
    let lap =
        LaplacianSym::new(seeding_similarity(y.view(), 3).expect("similarity")).expect("Laplacian");
    (j, x, xs, lap)
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
            "lr 1e-3, betas (0.9, 0.999), eps 1e-8, first step",
        )
        .config("ema_momentum", cfg.momentum)
        .config("bn", "eval mode (running statistics)");
    state_inputs(&mut b, &j);
    b.constant("x", x.clone().into_dyn());
    let vis = draw_visible(&mut b.stream("mask"), 12, cfg.tokens(), cfg.n_keep());
    let flat: Vec<usize> = vis.iter().flatten().copied().collect();
    b.ints("mask.visible", &flat);
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
    let mut adam = Adam::new(1e-3);
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
            "lr 1e-3 (fixture only), betas (0.9, 0.999), eps 1e-8, first step",
        )
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
    let mut adam = Adam::new(1e-3);
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
