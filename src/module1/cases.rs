//! Golden fixture of one complete Module I training step in the tiny configuration (SPEC §18),
//! registered in [`crate::fixtures::registry`] as `module1.tiny.step`.
//!
//! Inputs: every trainable parameter by its dotted name (moved away from the init, see
//! [`tiny_state`]), the EMA targets `target.*`, the raw batch `x [6, 1, 10, 10]`, the smoothed batch
//! `x_s`, and the realised visible-index lists `mask.visible` (I64, row-major `[6, n_keep = 2]`).
//! Outputs: `c_t` (target head output), `l_ssl`, `l_mim`, `l_cl`, `grad.<name>` (∂L_SSL for every
//! trainable parameter), and `after.<name>` / `after.target.*` after Adam (lr 1e-3, t = 1) + EMA
//! (m = 0.999).

use super::mim::draw_visible;
use super::model::{Config, ModuleI};
use crate::fixtures::case::{Builder, CaseData};
use crate::nn::adam::Adam;
use crate::rng;
use ndarray::{ArrayD, IxDyn};
use rand::Rng;

/// Tiny-config parameters and targets with every tensor moved by `U(−0.1, 0.1)` (targets by
/// `U(−0.02, 0.02)` more, so they differ from the online weights as after some steps);
/// σ₁ = 0.9, σ₂ = 1.2.
pub fn tiny_state(seed: u64) -> ModuleI<f64> {
    let mut m = ModuleI::<f64>::new(Config::tiny(), seed).expect("tiny config is valid");
    let mut r = rng::stream(seed, "fixture.perturb");
    // Draws are taken in sorted-name order (online, then targets).
    let mut online: Vec<_> = m.store.ids().collect();
    online.sort_by(|&a, &b| m.store.name(a).cmp(m.store.name(b)));
    for id in online {
        let name = m.store.name(id).to_string();
        let a = m.store.get_mut(id);
        match name.as_str() {
            "uwl.sigma1" => a.fill(0.9),
            "uwl.sigma2" => a.fill(1.2),
            _ => a.mapv_inplace(|v| v + r.random_range(-0.1..0.1)),
        }
    }
    let mut targets: Vec<_> = m.target.ids().collect();
    targets.sort_by(|&a, &b| m.target.name(a).cmp(m.target.name(b)));
    for id in targets {
        let src = m
            .target
            .name(id)
            .strip_prefix("target.")
            .map(|s| s.replace("g_t.", "g_o."))
            .and_then(|s| m.store.id(&s));
        if let Some(o) = src {
            let v = m.store.get(o).mapv(|v| v + r.random_range(-0.02..0.02));
            *m.target.get_mut(id) = v;
        }
    }
    m
}

/// `module1.tiny.step` (see the module doc).
pub fn step(mut b: Builder) -> CaseData {
    let m = tiny_state(18);
    let cfg = m.cfg.clone();
    b.config("config", serde_json::to_value(&cfg).unwrap_or_default())
        .config("mask.visible_shape", vec![6, cfg.n_keep()])
        .config(
            "adam",
            "lr 1e-3, betas (0.9, 0.999), eps 1e-8, t = 1, zero moments",
        )
        .config("ema_momentum", cfg.momentum)
        .config("ln_eps", 1e-5)
        .config("tau", cfg.tau);
    // Listed in sorted-name order (online, then targets), as the manifest has always had them.
    for (n, a) in sorted(m.named_tensors()) {
        b.constant(&n, a);
    }
    let x = b
        .uniform("x", &[6, 1, 10, 10], 0.0, 2.0)
        .mapv(|v| if v < 1.0 { 0.0 } else { v });
    let xs = b.uniform("x_s", &[6, 1, 10, 10], 0.0, 1.0);
    b.constant("x", x.clone());
    b.constant("x_s", xs.clone());
    let vis = draw_visible(&mut b.stream("mask"), 6, cfg.tokens(), cfg.n_keep());
    let flat: Vec<usize> = vis.iter().flatten().copied().collect();
    b.ints("mask.visible", &flat);
    b.constant("pos_table", pos_table(&cfg));
    let x4 = x.into_dimensionality().expect("4-D");
    let xs4 = xs.into_dimensionality().expect("4-D");
    let g = m.forward_step(x4.view(), xs4.view(), &vis);
    let s = |v: f64| ArrayD::from_elem(IxDyn(&[]), v);
    let mut outputs = vec![
        ("c_t".to_string(), m.target_c(xs4.view())),
        ("l_ssl".to_string(), s(g.tape.scalar(g.l_ssl))),
        ("l_mim".to_string(), s(g.tape.scalar(g.l_mim))),
        ("l_cl".to_string(), s(g.tape.scalar(g.l_cl))),
    ];
    let grads = g.tape.backward(g.l_ssl);
    let grad_list: Vec<_> = m
        .store
        .ids()
        .map(|id| {
            (
                format!("grad.{}", m.store.name(id)),
                grads.get_or_zeros(g.bound.var(id), m.store.get(id).shape()),
            )
        })
        .collect();
    outputs.extend(sorted(grad_list));
    let mut after = m.clone();
    let mut adam = Adam::new(1e-3);
    after
        .train_step(&mut adam, x4.view(), xs4.view(), &vis)
        .expect("finite tiny step");
    for (n, a) in sorted(after.named_tensors()) {
        outputs.push((format!("after.{n}"), a));
    }
    b.finish(outputs)
}

/// The fixed positional table `PE [L, D]` of SPEC §4.1 (stored as the input `pos_table` so that a
/// port can check its own table; it is the same for the encoder and the decoder).
pub fn pos_table(cfg: &Config) -> ArrayD<f64> {
    super::vit::sincos_pe(cfg.dim, cfg.height / cfg.patch, cfg.width / cfg.patch).into_dyn()
}

/// Sort named tensors by name, keeping online names before `target.*` ones.
fn sorted(mut v: Vec<(String, ArrayD<f64>)>) -> Vec<(String, ArrayD<f64>)> {
    v.sort_by(|a, b| {
        let key = |n: &str| (n.starts_with("target."), n.to_string());
        key(&a.0).cmp(&key(&b.0))
    });
    v
}
