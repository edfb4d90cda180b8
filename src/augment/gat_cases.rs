//! Golden fixture cases of the tied GAT autoencoder on the SPEC §18 tiny configuration (3×3 square
//! grid, 9 nodes, r = 1.5, C = 6 → 5 → 3), registered in [`crate::fixtures::registry`].
//!
//! Shared inputs: `x [9, 6]` (constant, U[0, 2)), the parameters `gat.W1 [6, 5]`, `gat.W2 [5, 3]`,
//! `gat.a_c [5]`, `gat.a_n [5]` (SPEC §3.4 init, seed 18, stored), and the graph as CSR integers
//! `graph.offsets [10]`, `graph.nbrs [49]` (edge e of node v is `(v, nbrs[e])`, self-loops
//! included, neighbours ascending). Edge-indexed outputs (`alpha [49, 1]`) are in that order.

use super::gat::{self, Decoder, GatConfig, GatGraph, GatParams, GatVars, LossForm, PARAM_NAMES};
use super::graph::{Graph, SQUARE_RADIUS};
use crate::autodiff::Var;
use crate::fixtures::case::{Builder, CaseData, Out};
use ndarray::{Array2, ArrayD};

const SEED: u64 = 18;

fn tiny_graph() -> Graph {
    let coords: Vec<[f64; 2]> = (0..3)
        .flat_map(|r| (0..3).map(move |c| [r as f64, c as f64]))
        .collect();
    Graph::radius(&coords, SQUARE_RADIUS).expect("3×3 grid")
}

/// Declare the shared inputs; returns the graph, the parameters and the input positions
/// `[x, W1, W2, a_c, a_n]`.
fn setup(b: &mut Builder, params_trainable: bool) -> (Graph, GatParams<f64>, Vec<usize>) {
    let g = tiny_graph();
    let p = GatParams::<f64>::init(6, 5, 3, SEED);
    b.config(
        "graph",
        "3x3 square grid, radius 1.5, self-loops (SPEC §18)",
    )
    .config("C", 6)
    .config("F1", 5)
    .config("F2", 3)
    .config(
        "attention",
        "sigmoid(P1[v].a_c + P1[u].a_n), softmax over N(v)",
    )
    .config("activation", "ELU(alpha=1) after both aggregations")
    .config("tying", "decoder uses W2^T, W1^T and the same alpha")
    .config("init_seed", SEED);
    let x = b.uniform("x", &[9, 6], 0.0, 2.0);
    let mut pos = vec![b.constant("x", x)];
    for (name, v) in PARAM_NAMES.iter().zip(p.to_vec()) {
        pos.push(if params_trainable {
            b.param(name, v)
        } else {
            b.constant(name, v)
        });
    }
    b.ints("graph.offsets", &g.offsets);
    let nbrs: Vec<usize> = g.nbrs.iter().map(|&u| u as usize).collect();
    b.ints("graph.nbrs", &nbrs);
    (g, p, pos)
}

fn vars(v: &[Var], pos: &[usize]) -> GatVars {
    GatVars {
        w1: v[pos[1]],
        w2: v[pos[2]],
        a_c: v[pos[3]],
        a_n: v[pos[4]],
    }
}

/// `gat.tiny.forward`: α, H1, H2 (embedding), H3 and X̂, all in the weighted loss.
pub fn forward(mut b: Builder) -> CaseData {
    let (g, _, pos) = setup(&mut b, true);
    let gg = GatGraph::new(&g);
    b.run_tape(move |t, v| {
        let gv = vars(v, &pos);
        let dec = Decoder::tied(&gv);
        let f = gat::forward_hidden(t, &gg, v[pos[0]], &gv, &dec);
        let xh = gat::reconstruct_node(t, &f, &dec);
        vec![
            Out::diff("alpha", f.alpha),
            Out::diff("h1", f.h1),
            Out::diff("h2", f.h2),
            Out::diff("h3", f.h3),
            Out::diff("x_hat", xh),
        ]
    })
}

/// `gat.tiny.loss`: `L_GAT` (Eq. 4, mean over n·C) as the only weighted output, so
/// `grad.gat.* = w.l_gat · ∂L_GAT/∂θ` through both encoder and decoder paths.
pub fn loss(mut b: Builder) -> CaseData {
    let (g, _, pos) = setup(&mut b, true);
    let gg = GatGraph::new(&g);
    b.config("loss", "mean((x - x_hat)^2) over n*C");
    b.run_tape(move |t, v| {
        let gv = vars(v, &pos);
        let l = gat::loss(t, &gg, v[pos[0]], &gv, LossForm::Direct, 0.0);
        vec![Out::diff("l_gat", l)]
    })
}

/// `gat.tiny.step`: one SPEC §3.4 training step (backprop, clip 5, coupled wd 1e-4, Adam lr
/// 1e-3) from the stored parameters; outputs `l_gat` (before the step), the unclipped gradient
/// norm and the parameters after the step (`after.gat.*`).
pub fn step(mut b: Builder) -> CaseData {
    let (g, p, _) = setup(&mut b, false);
    let x: Array2<f64> = tiny_x(&b);
    let cfg = GatConfig {
        hidden: 5,
        embed: 3,
        ..GatConfig::default()
    };
    b.config("lr", cfg.lr)
        .config("weight_decay", cfg.weight_decay)
        .config(
            "weight_decay_kind",
            "coupled (g + wd*theta, torch.optim.Adam)",
        )
        .config("clip_max_norm", cfg.clip)
        .config("clip_rule", "c = max_norm / (norm + 1e-6), scale if c < 1")
        .config("betas", vec![0.9, 0.999])
        .config("eps", 1e-8);
    let (l, grads) = gat::loss_and_grads(&p, &g, x.view(), LossForm::Direct);
    let norm = crate::nn::clip::global_norm(&grads);
    let after = gat::one_step(&p, &g, x.view(), &cfg).expect("valid tiny inputs");
    let mut outputs = vec![
        (
            "l_gat".to_string(),
            ArrayD::from_elem(ndarray::IxDyn(&[]), l),
        ),
        (
            "grad_norm".to_string(),
            ArrayD::from_elem(ndarray::IxDyn(&[]), norm),
        ),
    ];
    for (name, a) in PARAM_NAMES.iter().zip(after.to_vec()) {
        outputs.push((format!("after.{name}"), a));
    }
    b.finish(outputs)
}

/// `gat.tiny.two_steps`: two SPEC §3.4 training steps in a row with one Adam state (same
/// inputs and configuration as `gat.tiny.step`); outputs `l_gat` per step (`[2]`) and
/// `after.gat.*` after the second step. Adam's first step from zero moments moves each weight by
/// about ±lr whatever the gradient's size, so dropping the weight decay or the clipping changed
/// `gat.tiny.step` by only 3e-11 and 1.1e-9; in the second step both change the move by far more.
pub fn two_steps(mut b: Builder) -> CaseData {
    let (g, p, _) = setup(&mut b, false);
    let x: Array2<f64> = tiny_x(&b);
    let cfg = GatConfig {
        hidden: 5,
        embed: 3,
        epochs: 2,
        progress: false,
        ..GatConfig::default()
    };
    b.config("lr", cfg.lr)
        .config("weight_decay", cfg.weight_decay)
        .config(
            "weight_decay_kind",
            "coupled (g + wd*theta, torch.optim.Adam)",
        )
        .config("clip_max_norm", cfg.clip)
        .config("clip_rule", "c = max_norm / (norm + 1e-6), scale if c < 1")
        .config("betas", vec![0.9, 0.999])
        .config("eps", 1e-8)
        .config("steps", 2);
    let tr = gat::train_from(x.view(), &g, p, &cfg).expect("valid tiny inputs");
    let mut outputs = vec![(
        "l_gat".to_string(),
        ndarray::Array1::from(tr.losses.clone()).into_dyn(),
    )];
    for (name, a) in PARAM_NAMES.iter().zip(tr.params.to_vec()) {
        outputs.push((format!("after.{name}"), a));
    }
    b.finish(outputs)
}

/// The case's `x` (same stream as [`setup`] declares it from).
fn tiny_x(b: &Builder) -> Array2<f64> {
    b.uniform("x", &[9, 6], 0.0, 2.0)
        .into_dimensionality()
        .expect("2-D")
}
