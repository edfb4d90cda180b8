//! The tied graph-attention autoencoder that makes DARLC's positive views (method §3, Eq. 1–5).
//!
//! Nodes are spots (or pixels), node features are the `C` channels (ST: all kept genes). One
//! attention head, dims `C → F1 → F2` (default 512, 30), no biases:
//!
//! ```text
//! P1 = X W1;  e_vu = sigmoid(P1[v]·a_c + P1[u]·a_n);  α = segment-softmax over N(v)   (Eq. 2–3)
//! H1 = ELU(Σ_u α_vu P1[u]);  H2 = H1 W2                                          (Eq. 1)
//! H3 = ELU(Σ_u α_vu (H2 W2ᵀ)[u]);  X̂ = H3 W1ᵀ                  (tied decoder, same α)
//! L_GAT = ‖X − X̂‖²_F / (n·C)                                                     (Eq. 4)
//! X̃ = max(X̂, 0)                                                                  (Eq. 5)
//! ```
//!
//! Weight tying is functional (method §3.3 CHOICE 11): the decoder reads the same tape leaves `W1`,
//! `W2` through `matmul_t(.., transpose)` and the same `α` node, so the gradient of each tied
//! tensor is the sum of its encoder and decoder contributions, and the optimiser sees one
//! parameter. Aggregation uses the tape's fused `segment_weighted_sum` over the CSR graph: no
//! `n × n` (or `[E, F1]`) matrix is formed.
//!
//! # The Gram form of the loss (speed, same function)
//!
//! For wide inputs (`n·C > F1·(n + C)`, e.g. a Visium section with 15 000 genes) the loss is
//! evaluated without forming `X̂`:
//!
//! ```text
//! n·C·L = ‖X‖² − 2⟨X W1, H3⟩ + ⟨W1ᵀW1, H3ᵀH3⟩
//! ```
//!
//! `X W1 = P1` is already computed by the encoder, so an epoch costs two `n×C×F1` products
//! (`P1` and `Xᵀ ∂P1`) plus `C×F1²` ones instead of five `n×C×F1` products. The gradients are those
//! of Eq. 4 exactly (algebraically identical; tests compare both forms in f64). [`LossForm`]
//! selects it; `X̂` itself is only formed once, for the smoothed output.

use super::graph::Graph;
use crate::autodiff::ops::segment::SegmentIndex;
use crate::autodiff::{Tape, Var};
use crate::error::{DarlcError, Result};
use crate::float::Float;
use crate::io::TensorFile;
use crate::nn::adam::{Adam, AdamState};
use crate::nn::clip::clip_grad_norm;
use crate::nn::params::{ParamId, ParamStore};
use crate::progress::{Eta, batch_job_line};
use crate::rng;
use ndarray::{Array1, Array2, Array4, ArrayD, ArrayView2, ArrayView4, Axis, Ix2};
use ndarray_rand::rand_distr::{Distribution, StandardNormal};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Xavier-normal gain and attention-vector scale of method §3.4 (STAGATE's 1.414, not √2).
pub const INIT_GAIN: f64 = 1.414;

/// How the loss is evaluated (same value and gradient up to rounding; see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossForm {
    /// Gram form when it needs fewer flops (`n·C > F1·(n + C)`), else direct.
    Auto,
    /// Form `X̂ = H3 W1ᵀ` and take the mean squared error (Eq. 4 literally).
    Direct,
    /// `(‖X‖² − 2⟨P1, H3⟩ + ⟨W1ᵀW1, H3ᵀH3⟩) / (n·C)`.
    Gram,
}

/// Training settings (defaults: method §3.4 / §14).
#[derive(Clone, Debug)]
pub struct GatConfig {
    /// Hidden width `F1` (512).
    pub hidden: usize,
    /// Embedding width `F2` (30).
    pub embed: usize,
    /// Full-batch epochs (1000); in shared mode, optimiser steps.
    pub epochs: usize,
    /// Adam learning rate (1e-3).
    pub lr: f64,
    /// Coupled L2 weight decay (1e-4).
    pub weight_decay: f64,
    /// Global gradient-norm clip (5).
    pub clip: f64,
    /// Images per mini-batch in shared mode (64, method §3.1).
    pub batch_images: usize,
    /// Seed of the named streams `gat.W1`, `gat.W2`, `gat.a_c`, `gat.a_n`, `gat.shared.perm.*`.
    pub seed: u64,
    /// Loss evaluation.
    pub loss_form: LossForm,
    /// Show an indicatif progress bar with epoch and loss.
    pub progress: bool,
}

impl Default for GatConfig {
    fn default() -> Self {
        GatConfig {
            hidden: 512,
            embed: 30,
            epochs: 1000,
            lr: 1e-3,
            weight_decay: 1e-4,
            clip: 5.0,
            batch_images: 64,
            seed: 0,
            loss_form: LossForm::Auto,
            progress: false,
        }
    }
}

impl GatConfig {
    /// The GAT of a run configuration's `smoothing` section (widths, epochs, Adam, clip), with
    /// the run's seed; the shared-mode batch and the loss form keep their defaults.
    pub fn from_section(sm: &crate::config::SmoothingConfig, seed: u64, progress: bool) -> Self {
        GatConfig {
            hidden: sm.hidden,
            embed: sm.latent,
            epochs: sm.epochs,
            lr: sm.lr,
            weight_decay: sm.weight_decay,
            clip: sm.clip,
            seed,
            progress,
            ..GatConfig::default()
        }
    }
}

/// The four GAT parameters (method §3.3), named `gat.W1 [C,F1]`, `gat.W2 [F1,F2]`, `gat.a_c [F1]`,
/// `gat.a_n [F1]` in files.
#[derive(Clone, Debug, PartialEq)]
pub struct GatParams<T: Float> {
    pub w1: Array2<T>,
    pub w2: Array2<T>,
    pub a_c: Array1<T>,
    pub a_n: Array1<T>,
}

/// Tensor names in the order of [`GatParams::to_vec`].
pub const PARAM_NAMES: [&str; 4] = ["gat.W1", "gat.W2", "gat.a_c", "gat.a_n"];

impl<T: Float> GatParams<T> {
    /// method §3.4 initialisation: `W1`, `W2` Xavier-normal with gain 1.414
    /// (std = `1.414·√(2/(fan_in + fan_out))`), `a_c`, `a_n` ~ N(0, (1.414/√F1)²). Each tensor
    /// comes from its own named stream (`gat.W1`, …) under `seed`, drawn in f64 in row-major order
    /// and rounded to `T`, so f32 and f64 models start from the same draws.
    pub fn init(c: usize, f1: usize, f2: usize, seed: u64) -> Self {
        let normal = |name: &str, shape: (usize, usize), std: f64| {
            let mut r = rng::stream(seed, name);
            Array2::from_shape_simple_fn(shape, || {
                let z: f64 = StandardNormal.sample(&mut r);
                T::of(z * std)
            })
        };
        let xavier = |a: usize, b: usize| INIT_GAIN * (2.0 / (a + b) as f64).sqrt();
        let att = INIT_GAIN / (f1 as f64).sqrt();
        GatParams {
            w1: normal("gat.W1", (c, f1), xavier(c, f1)),
            w2: normal("gat.W2", (f1, f2), xavier(f1, f2)),
            a_c: normal("gat.a_c", (1, f1), att).index_axis_move(Axis(0), 0),
            a_n: normal("gat.a_n", (1, f1), att).index_axis_move(Axis(0), 0),
        }
    }
    /// The tensors in [`PARAM_NAMES`] order.
    pub fn to_vec(&self) -> Vec<ArrayD<T>> {
        vec![
            self.w1.clone().into_dyn(),
            self.w2.clone().into_dyn(),
            self.a_c.clone().into_dyn(),
            self.a_n.clone().into_dyn(),
        ]
    }
    /// Rebuild from tensors in [`PARAM_NAMES`] order (shapes checked).
    pub fn from_vec(v: &[ArrayD<T>]) -> Result<Self> {
        let bad = |i: usize| DarlcError::param(PARAM_NAMES[i], "wrong rank");
        if v.len() != 4 {
            return Err(DarlcError::param("gat", "expected 4 tensors"));
        }
        let p = GatParams {
            w1: v[0].clone().into_dimensionality().map_err(|_| bad(0))?,
            w2: v[1].clone().into_dimensionality().map_err(|_| bad(1))?,
            a_c: v[2].clone().into_dimensionality().map_err(|_| bad(2))?,
            a_n: v[3].clone().into_dimensionality().map_err(|_| bad(3))?,
        };
        let f1 = p.w1.ncols();
        if p.w2.nrows() != f1 || p.a_c.len() != f1 || p.a_n.len() != f1 {
            return Err(DarlcError::param(
                "gat",
                "W2 rows, a_c and a_n must all equal W1's columns",
            ));
        }
        Ok(p)
    }
    /// Put the parameters on a tape as leaves (params, or constants if `frozen`).
    pub fn leaves(&self, t: &mut Tape<T>, frozen: bool) -> GatVars {
        let mut leaf = |a: ArrayD<T>| {
            if frozen { t.constant(a) } else { t.param(a) }
        };
        let v = self.to_vec();
        let mut it = v.into_iter();
        let mut next = || leaf(it.next().expect("four tensors"));
        GatVars {
            w1: next(),
            w2: next(),
            a_c: next(),
            a_n: next(),
        }
    }
    /// Add the parameters to a tensor file under their method §18 names.
    pub fn insert_into(&self, f: &mut TensorFile) {
        for (name, a) in PARAM_NAMES.iter().zip(self.to_vec()) {
            f.insert_float(*name, a);
        }
    }
}

/// Tape handles of the four parameters.
#[derive(Clone, Copy, Debug)]
pub struct GatVars {
    pub w1: Var,
    pub w2: Var,
    pub a_c: Var,
    pub a_n: Var,
}

/// Which tensors the decoder reads. [`Decoder::tied`] is the model; the other settings exist for
/// the tying checks (a detached copy cuts the decoder path of a tensor).
#[derive(Clone, Copy, Debug)]
pub struct Decoder {
    /// The tensor used as `W1` in `X̂ = H3 W1ᵀ`.
    pub w1: Var,
    /// The tensor used as `W2` in `H2 W2ᵀ`.
    pub w2: Var,
    /// Use a constant copy of `α` in the decoder.
    pub detach_alpha: bool,
}

impl Decoder {
    /// True tying: the encoder's own `W1`, `W2` and `α`.
    pub fn tied(v: &GatVars) -> Self {
        Decoder {
            w1: v.w1,
            w2: v.w2,
            detach_alpha: false,
        }
    }
}

/// The graph in the form the GAT needs: CSR segments per centre node `v` and edge arrays.
#[derive(Clone, Debug)]
pub struct GatGraph {
    /// Nodes.
    pub n: usize,
    /// Segment offsets (one segment per centre node).
    pub offsets: Arc<[usize]>,
    /// Centre node `v` of each edge.
    pub centre: Arc<[usize]>,
    /// Neighbour `u` of each edge.
    pub nbr: Arc<[usize]>,
    /// Fused aggregation index.
    pub index: Arc<SegmentIndex>,
}

impl GatGraph {
    /// From a method §3.2 graph (CSR with self-loops).
    pub fn new(g: &Graph) -> Self {
        let centre: Vec<usize> = g.edge_sources().iter().map(|&v| v as usize).collect();
        let nbr: Vec<usize> = g.nbrs.iter().map(|&u| u as usize).collect();
        GatGraph {
            n: g.n,
            offsets: Arc::from(g.offsets.clone()),
            centre: Arc::from(centre),
            nbr: Arc::from(nbr),
            index: Arc::new(SegmentIndex::new(g.offsets.clone(), g.nbrs.clone(), g.n)),
        }
    }
    /// Number of edges `|E|`.
    pub fn num_edges(&self) -> usize {
        self.nbr.len()
    }
}

/// Attention coefficients (Eq. 2–3): `α_vu = softmax_{u∈N(v)} sigmoid(P1[v]·a_c + P1[u]·a_n)`,
/// one per edge in graph edge order, shape `[E, 1]`.
pub fn attention<T: Float>(t: &mut Tape<T>, g: &GatGraph, p1: Var, a_c: Var, a_n: Var) -> Var {
    let f1 = t.shape(a_c)[0];
    let ac = t.reshape(a_c, &[f1, 1]);
    let an = t.reshape(a_n, &[f1, 1]);
    let sc = t.matmul(p1, ac); // [n, 1]
    let sn = t.matmul(p1, an);
    let ec = t.gather_rows(sc, g.centre.clone()); // [E, 1]
    let en = t.gather_rows(sn, g.nbr.clone());
    let e = t.add(ec, en);
    let e = t.sigmoid(e);
    t.segment_softmax(e, g.offsets.clone())
}

/// The attention layer (Eq. 1–3, k = 1): returns `(P1, α, H1)` with
/// `H1 = ELU(Σ_u α_vu P1[u])`.
pub fn attention_layer<T: Float>(
    t: &mut Tape<T>,
    g: &GatGraph,
    x: Var,
    w1: Var,
    a_c: Var,
    a_n: Var,
) -> (Var, Var, Var) {
    let p1 = t.matmul(x, w1);
    let alpha = attention(t, g, p1, a_c, a_n);
    let agg = t.segment_weighted_sum(alpha, p1, g.index.clone());
    (p1, alpha, t.elu(agg))
}

/// Tape nodes of one forward pass.
#[derive(Clone, Copy, Debug)]
pub struct Forward {
    pub p1: Var,
    pub alpha: Var,
    pub h1: Var,
    /// The `F2`-dimensional spot embedding.
    pub h2: Var,
    pub h3: Var,
}

/// Encoder and decoder up to `H3` (method §3.3), with the decoder reading `dec`'s tensors.
pub fn forward_hidden<T: Float>(
    t: &mut Tape<T>,
    g: &GatGraph,
    x: Var,
    v: &GatVars,
    dec: &Decoder,
) -> Forward {
    let (p1, alpha, h1) = attention_layer(t, g, x, v.w1, v.a_c, v.a_n);
    let h2 = t.matmul(h1, v.w2);
    let d = t.matmul_t(h2, dec.w2, false, true);
    let alpha_dec = if dec.detach_alpha {
        let a = t.value(alpha).clone();
        t.constant(a)
    } else {
        alpha
    };
    let agg = t.segment_weighted_sum(alpha_dec, d, g.index.clone());
    let h3 = t.elu(agg);
    Forward {
        p1,
        alpha,
        h1,
        h2,
        h3,
    }
}

/// `X̂ = H3 W1ᵀ` (decoder layer 2).
pub fn reconstruct_node<T: Float>(t: &mut Tape<T>, f: &Forward, dec: &Decoder) -> Var {
    t.matmul_t(f.h3, dec.w1, false, true)
}

/// `L_GAT` (Eq. 4) in the direct form: mean squared error of `X̂`.
pub fn loss_direct<T: Float>(t: &mut Tape<T>, x: Var, f: &Forward, dec: &Decoder) -> Var {
    let xh = reconstruct_node(t, f, dec);
    let n = t.value(x).len() as f64;
    let d = t.sub(xh, x);
    let sq = t.square(d);
    let s = sum_2d(t, sq);
    t.scale(s, 1.0 / n)
}

/// Sum of a 2-D node: rows first, then the row sums. A single sequential f32 sum over millions of
/// elements drifts (≈4e-4 relative on a 400 × 1500 loss); summing per row keeps each chain short.
fn sum_2d<T: Float>(t: &mut Tape<T>, x: Var) -> Var {
    let rows = t.sum_axis(x, 1, false);
    t.sum(rows)
}

/// `L_GAT` (Eq. 4) in the Gram form (module docs); `x_sq` = `‖X‖²_F` (a constant).
pub fn loss_gram<T: Float>(t: &mut Tape<T>, x: Var, f: &Forward, dec: &Decoder, x_sq: f64) -> Var {
    let (n, c) = (t.shape(x)[0], t.shape(x)[1]);
    let nc = (n * c) as f64;
    // ⟨X W1_dec, H3⟩; with true tying X W1 is P1, otherwise recompute with the decoder's W1.
    let xw = if dec.w1 == tape_w1(t, f) {
        f.p1
    } else {
        t.matmul(x, dec.w1)
    };
    let cross = t.mul(xw, f.h3);
    let cross = sum_2d(t, cross);
    let gram_w = t.matmul_t(dec.w1, dec.w1, true, false); // [F1, F1]
    let gram_h = t.matmul_t(f.h3, f.h3, true, false);
    let quad = t.mul(gram_w, gram_h);
    let quad = sum_2d(t, quad);
    let cross = t.scale(cross, -2.0 / nc);
    let quad = t.scale(quad, 1.0 / nc);
    let l = t.add(cross, quad);
    t.shift(l, x_sq / nc)
}

/// The `W1` leaf that produced `P1` (the right operand of the `P1` matmul).
fn tape_w1<T: Float>(t: &Tape<T>, f: &Forward) -> Var {
    match t.node(f.p1).op {
        crate::autodiff::Op::MatMul { b, .. } => b,
        _ => Var(usize::MAX), // not recorded (no_grad tape): never equal to a real leaf
    }
}

/// Whether the Gram form needs fewer flops for `n` nodes, `c` channels and width `f1`.
pub fn gram_is_cheaper(n: usize, c: usize, f1: usize) -> bool {
    (n as f64) * (c as f64) > (f1 as f64) * ((n + c) as f64)
}

/// The loss of the tied model on a tape (chooses the form per `form`).
pub fn loss<T: Float>(
    t: &mut Tape<T>,
    g: &GatGraph,
    x: Var,
    v: &GatVars,
    form: LossForm,
    x_sq: f64,
) -> Var {
    let dec = Decoder::tied(v);
    let f = forward_hidden(t, g, x, v, &dec);
    let (n, c) = (t.shape(x)[0], t.shape(x)[1]);
    let f1 = t.shape(v.w1)[1];
    let gram = match form {
        LossForm::Direct => false,
        LossForm::Gram => true,
        LossForm::Auto => gram_is_cheaper(n, c, f1),
    };
    if gram {
        loss_gram(t, x, &f, &dec, x_sq)
    } else {
        loss_direct(t, x, &f, &dec)
    }
}

/// `‖X‖²_F` in f64, summed row by row in index order.
pub fn frobenius_sq<T: Float>(x: ArrayView2<T>) -> f64 {
    let mut s = 0.0;
    for row in x.rows() {
        let mut r = 0.0;
        for &v in row {
            r += v.f64() * v.f64();
        }
        s += r;
    }
    s
}

// ------------------------------------------------------------------------------------ optimiser

/// The optimiser of method §3.4: the `nn` branch's PyTorch-semantics Adam with coupled weight decay,
/// over a parameter store holding the four GAT tensors under their method §18 names.
struct Optimiser<T: Float> {
    store: ParamStore<T>,
    ids: [ParamId; 4],
    adam: Adam<T>,
}

impl<T: Float> Optimiser<T> {
    fn new(p: GatParams<T>, cfg: &GatConfig) -> Self {
        let mut store = ParamStore::new();
        let v = p.to_vec();
        let ids = [0, 1, 2, 3].map(|i| store.add(PARAM_NAMES[i], v[i].clone()));
        let adam = Adam::new(cfg.lr).with_weight_decay(cfg.weight_decay);
        Optimiser { store, ids, adam }
    }
    /// The optimiser at `state` (parameters and Adam moments of an interrupted training).
    fn resumed(state: &GatState<T>, cfg: &GatConfig) -> Self {
        let mut opt = Optimiser::new(state.params.clone(), cfg);
        for (&id, st) in opt.ids.iter().zip(&state.adam) {
            if let Some(st) = st {
                opt.adam.set_state(id, st.clone());
            }
        }
        opt
    }
    /// Where the training stands after `losses.len()` steps.
    fn state(&self, losses: &[f64]) -> Result<GatState<T>> {
        Ok(GatState {
            params: self.params()?,
            adam: self
                .ids
                .iter()
                .map(|&id| self.adam.state(id).cloned())
                .collect(),
            losses: losses.to_vec(),
        })
    }
    fn params(&self) -> Result<GatParams<T>> {
        let v: Vec<ArrayD<T>> = self
            .ids
            .iter()
            .map(|&i| self.store.get(i).clone())
            .collect();
        GatParams::from_vec(&v)
    }
}

// ------------------------------------------------------------------------------------ training

/// A trained model and its loss curve (loss before each step).
#[derive(Clone, Debug)]
pub struct GatTrained<T: Float> {
    pub params: GatParams<T>,
    pub losses: Vec<f64>,
}

/// Where a GAT training stands between two steps, for checkpoints: the parameters, the Adam state
/// of each ([`PARAM_NAMES`] order; `None` before the first step) and the loss before each step
/// taken so far (`losses.len()` steps are done). Training from a state continues exactly as if it
/// had not stopped: the full-batch steps draw no random numbers, and shared mode's batches are a
/// function of the seed and the step index.
#[derive(Clone, Debug)]
pub struct GatState<T: Float> {
    pub params: GatParams<T>,
    pub adam: Vec<Option<AdamState<T>>>,
    pub losses: Vec<f64>,
}

impl<T: Float> GatState<T> {
    /// The state before the first step: the method §3.4 initialisation for `c` channels.
    pub fn fresh(c: usize, cfg: &GatConfig) -> Self {
        GatState {
            params: GatParams::init(c, cfg.hidden, cfg.embed, cfg.seed),
            adam: vec![None; 4],
            losses: Vec::new(),
        }
    }
}

/// Called with the state so far after every `every` steps, after the last, and after any step
/// for which `stop(steps done)` is true; an error stops the training (a checkpoint writer that saw
/// a stop request returns one).
pub struct BlockHook<'a, T: Float> {
    pub every: usize,
    pub stop: &'a dyn Fn(usize) -> bool,
    pub f: &'a mut dyn FnMut(&GatState<T>) -> Result<()>,
}

impl<T: Float> BlockHook<'_, T> {
    /// Whether the hook wants the state after `done` of `total` steps.
    fn due(&self, done: usize, total: usize) -> bool {
        done.is_multiple_of(self.every.max(1)) || done == total || (self.stop)(done)
    }
}

fn progress_bar(enabled: bool, len: usize, what: &str) -> Option<indicatif::ProgressBar> {
    if !enabled {
        return None;
    }
    let pb = indicatif::ProgressBar::new(len as u64);
    let style = indicatif::ProgressStyle::with_template(&format!(
        "{what} {{bar:30}} {{pos}}/{{len}} [{{elapsed_precise}}<{{eta_precise}}] {{msg}}"
    ))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    pb.set_style(style);
    Some(pb)
}

fn check_finite(loss: f64, epoch: usize) -> Result<()> {
    if loss.is_finite() {
        Ok(())
    } else {
        Err(DarlcError::Numerical(format!(
            "GAT loss is {loss} at epoch {epoch}"
        )))
    }
}

/// One full optimisation step (method §3.4: backprop, clip at global norm `cfg.clip`, coupled weight
/// decay and Adam) with `x` the last node kept on `tape`. Returns the loss before the step.
fn train_step<T: Float>(
    tape: &mut Tape<T>,
    x: Var,
    g: &GatGraph,
    opt: &mut Optimiser<T>,
    cfg: &GatConfig,
    x_sq: f64,
) -> f64 {
    tape.truncate(x.0 + 1);
    let leaf: Vec<Var> = opt
        .ids
        .iter()
        .map(|&i| tape.param(opt.store.get(i).clone()))
        .collect();
    let vars = GatVars {
        w1: leaf[0],
        w2: leaf[1],
        a_c: leaf[2],
        a_n: leaf[3],
    };
    let l = loss(tape, g, x, &vars, cfg.loss_form, x_sq);
    let value = tape.scalar(l).f64();
    let mut grads = tape.backward(l);
    let mut gs: Vec<ArrayD<T>> = leaf
        .iter()
        .zip(opt.ids)
        .map(|(&v, i)| {
            grads
                .take(v)
                .unwrap_or_else(|| ArrayD::zeros(opt.store.get(i).raw_dim()))
        })
        .collect();
    tape.truncate(x.0 + 1);
    clip_grad_norm(&mut gs, cfg.clip);
    opt.adam.step(&mut opt.store, &opt.ids, &gs);
    value
}

fn check_inputs<T: Float>(x: ArrayView2<T>, g: &Graph, cfg: &GatConfig) -> Result<()> {
    if x.nrows() != g.n {
        return Err(DarlcError::param(
            "x",
            format!("{} rows for a graph on {} nodes", x.nrows(), g.n),
        ));
    }
    if x.ncols() == 0 || x.nrows() == 0 {
        return Err(DarlcError::Data(
            "GAT input has no nodes or no channels".into(),
        ));
    }
    for (name, w) in [
        ("smoothing.hidden", cfg.hidden),
        ("smoothing.latent", cfg.embed),
    ] {
        if w == 0 {
            return Err(DarlcError::param(name, "widths must be ≥ 1"));
        }
    }
    for (name, v, zero_ok) in [
        ("smoothing.lr", cfg.lr, false),
        ("smoothing.clip", cfg.clip, false),
        ("smoothing.weight_decay", cfg.weight_decay, true),
    ] {
        let ok = v.is_finite() && (v > 0.0 || (zero_ok && v == 0.0));
        if !ok {
            let what = if zero_ok { "≥ 0" } else { "> 0" };
            return Err(DarlcError::param(
                name,
                format!("must be a finite number {what}; got {v}"),
            ));
        }
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(DarlcError::Data(
            "GAT input contains a non-finite value".into(),
        ));
    }
    Ok(())
}

/// Train the GAT on one section (method §3.4): full-batch Adam for `cfg.epochs` epochs from the
/// §3.4 initialisation. `x: [n, C]` node features (ST: spots × genes), `graph` on the same nodes.
pub fn train<T: Float>(x: ArrayView2<T>, graph: &Graph, cfg: &GatConfig) -> Result<GatTrained<T>> {
    check_inputs(x, graph, cfg)?;
    let params = GatParams::<T>::init(x.ncols(), cfg.hidden, cfg.embed, cfg.seed);
    train_from(x, graph, params, cfg)
}

/// [`train`] from given initial parameters.
pub fn train_from<T: Float>(
    x: ArrayView2<T>,
    graph: &Graph,
    params: GatParams<T>,
    cfg: &GatConfig,
) -> Result<GatTrained<T>> {
    train_observed(x, graph, params, cfg, &mut |_, _| {})
}

/// [`train_from`] calling `on_epoch(epoch, loss)` after every optimiser step (benchmarks, logs).
pub fn train_observed<T: Float>(
    x: ArrayView2<T>,
    graph: &Graph,
    params: GatParams<T>,
    cfg: &GatConfig,
    on_epoch: &mut dyn FnMut(usize, f64),
) -> Result<GatTrained<T>> {
    let state = GatState {
        params,
        adam: vec![None; 4],
        losses: Vec::new(),
    };
    train_resumable(x, graph, state, cfg, on_epoch, None)
}

/// [`train_observed`] from a [`GatState`] (a fresh one or a checkpoint's), calling `hook` at the
/// end of every block of `hook.every` epochs and after the last one.
pub fn train_resumable<T: Float>(
    x: ArrayView2<T>,
    graph: &Graph,
    state: GatState<T>,
    cfg: &GatConfig,
    on_epoch: &mut dyn FnMut(usize, f64),
    mut hook: Option<BlockHook<'_, T>>,
) -> Result<GatTrained<T>> {
    check_inputs(x, graph, cfg)?;
    let params = &state.params;
    if params.w1.nrows() != x.ncols() {
        return Err(DarlcError::param(
            "gat.W1",
            format!("{} rows for {} channels", params.w1.nrows(), x.ncols()),
        ));
    }
    let g = GatGraph::new(graph);
    let x_sq = frobenius_sq(x);
    let mut tape = Tape::<T>::new();
    let xv = tape.constant(x.to_owned().into_dyn());
    let mut opt = Optimiser::resumed(&state, cfg);
    let first = state.losses.len();
    let pb = progress_bar(cfg.progress, cfg.epochs, "GAT");
    let mut losses = state.losses;
    losses.reserve(cfg.epochs.saturating_sub(first));
    // Without a terminal: a line at every tenth of the epochs.
    let every = (cfg.epochs / 10).max(1);
    let mut eta = Eta::new(cfg.epochs.saturating_sub(first));
    let mut tick = Instant::now();
    for epoch in first..cfg.epochs {
        let l = train_step(&mut tape, xv, &g, &mut opt, cfg, x_sq);
        check_finite(l, epoch)?;
        losses.push(l);
        on_epoch(epoch, l);
        if let Some(h) = hook.as_mut()
            && h.due(epoch + 1, cfg.epochs)
        {
            (h.f)(&opt.state(&losses)?)?;
        }
        eta.record(tick.elapsed().as_secs_f64());
        tick = Instant::now();
        if cfg.progress && (epoch + 1) % every == 0 {
            batch_job_line(&format!(
                "GAT epoch {}/{}: loss {l:.6}{}",
                epoch + 1,
                cfg.epochs,
                eta.left()
            ));
        }
        if let Some(pb) = &pb {
            pb.set_position(epoch as u64 + 1);
            pb.set_message(format!("epoch {} loss {:.6}", epoch + 1, l));
        }
    }
    if let Some(pb) = pb {
        pb.finish();
    }
    Ok(GatTrained {
        params: opt.params()?,
        losses,
    })
}

/// `X̂` of a trained model (no tape recorded).
pub fn reconstruct<T: Float>(params: &GatParams<T>, graph: &Graph, x: ArrayView2<T>) -> Array2<T> {
    let g = GatGraph::new(graph);
    let mut t = Tape::<T>::no_grad();
    let xv = t.constant(x.to_owned().into_dyn());
    let v = params.leaves(&mut t, true);
    let dec = Decoder::tied(&v);
    let f = forward_hidden(&mut t, &g, xv, &v, &dec);
    let xh = reconstruct_node(&mut t, &f, &dec);
    t.value(xh)
        .clone()
        .into_dimensionality::<Ix2>()
        .expect("2-D")
}

/// Smoothed features `X̃ = max(X̂, 0)` (Eq. 5).
pub fn smoothed<T: Float>(params: &GatParams<T>, graph: &Graph, x: ArrayView2<T>) -> Array2<T> {
    reconstruct(params, graph, x).mapv(|v| v.max(T::zero()))
}

/// Scatter node features `[n, G]` back onto `G` canvases `[G, 1, H, W]` (Eq. 5):
/// `out[g, 0, pixel(s)] = x[s, g]`, background 0. Fails on a pixel outside the canvas.
pub fn scatter_to_images<T: Float>(
    x: ArrayView2<T>,
    pixel: &[(usize, usize)],
    h: usize,
    w: usize,
) -> Result<Array4<T>> {
    if pixel.len() != x.nrows() {
        return Err(DarlcError::param(
            "pixel",
            format!("{} pixels for {} nodes", pixel.len(), x.nrows()),
        ));
    }
    let mut out = Array4::<T>::zeros((x.ncols(), 1, h, w));
    for (s, &(r, c)) in pixel.iter().enumerate() {
        if r >= h || c >= w {
            return Err(DarlcError::param(
                "pixel",
                format!("({r}, {c}) outside the {h}×{w} canvas"),
            ));
        }
        for (gi, &v) in x.row(s).iter().enumerate() {
            out[[gi, 0, r, c]] = v;
        }
    }
    Ok(out)
}

// ------------------------------------------------------------------------------------ shared mode

/// Block-diagonal graph of `b` copies of the `h × w` pixel grid (one image graph per copy).
fn batch_graph(h: usize, w: usize, b: usize) -> Result<GatGraph> {
    let one = Graph::pixel_grid(h, w)?;
    let n1 = one.n;
    let mut offsets = Vec::with_capacity(n1 * b + 1);
    let mut nbrs = Vec::with_capacity(one.nbrs.len() * b);
    offsets.push(0);
    for i in 0..b {
        let base = (i * n1) as u32;
        for v in 0..n1 {
            nbrs.extend(one.neighbors(v).iter().map(|&u| u + base));
            offsets.push(nbrs.len());
        }
    }
    Ok(GatGraph::new(&Graph::from_csr(n1 * b, offsets, nbrs)?))
}

/// Node features of images `ids` of `x: [N, C, H, W]`: row `i·H·W + p` = pixel p of image
/// `ids[i]` (its C channel values).
fn batch_features<T: Float>(x: ArrayView4<T>, ids: &[usize]) -> Array2<T> {
    let (_, c, h, w) = x.dim();
    let hw = h * w;
    let mut out = Array2::<T>::zeros((ids.len() * hw, c));
    for (i, &img) in ids.iter().enumerate() {
        for ch in 0..c {
            let plane = x.index_axis(Axis(0), img);
            let plane = plane.index_axis(Axis(0), ch);
            for (p, &v) in plane.iter().enumerate() {
                out[[i * hw + p, ch]] = v;
            }
        }
    }
    out
}

/// The mini-batches of shared mode: per pass over the stack a permutation from the named stream
/// `gat.shared.perm.<pass>`, cut into consecutive batches of `batch` images (the last may be
/// smaller); `steps` batches in total.
pub fn shared_batches(n_images: usize, batch: usize, steps: usize, seed: u64) -> Vec<Vec<usize>> {
    use rand::seq::SliceRandom;
    let mut out = Vec::with_capacity(steps);
    let mut pass = 0;
    while out.len() < steps && n_images > 0 {
        let mut perm: Vec<usize> = (0..n_images).collect();
        perm.shuffle(&mut rng::stream(seed, &format!("gat.shared.perm.{pass}")));
        for chunk in perm.chunks(batch.max(1)) {
            if out.len() == steps {
                break;
            }
            out.push(chunk.to_vec());
        }
        pass += 1;
    }
    out
}

/// Shared-GAT mode for natural-image stacks (method §3.1 CHOICE 8): one GAT over the per-image
/// 8-neighbourhood pixel graphs, `cfg.epochs` optimiser steps on mini-batches of
/// `cfg.batch_images` image graphs ([`shared_batches`]). `x: [N, C, H, W]`.
pub fn train_shared<T: Float>(x: ArrayView4<T>, cfg: &GatConfig) -> Result<GatTrained<T>> {
    let c = x.dim().1;
    train_shared_resumable(x, GatState::fresh(c, cfg), cfg, None)
}

/// [`train_shared`] from a [`GatState`], calling `hook` every `hook.every` steps and after the last.
pub fn train_shared_resumable<T: Float>(
    x: ArrayView4<T>,
    state: GatState<T>,
    cfg: &GatConfig,
    mut hook: Option<BlockHook<'_, T>>,
) -> Result<GatTrained<T>> {
    let (n_img, c, h, w) = x.dim();
    if n_img == 0 || c == 0 || h == 0 || w == 0 {
        return Err(DarlcError::Data("empty image stack".into()));
    }
    if state.params.w1.nrows() != c {
        return Err(DarlcError::param(
            "gat.W1",
            format!("{} rows for {} channels", state.params.w1.nrows(), c),
        ));
    }
    let mut opt = Optimiser::resumed(&state, cfg);
    let batches = shared_batches(n_img, cfg.batch_images, cfg.epochs, cfg.seed);
    let mut graphs: BTreeMap<usize, GatGraph> = BTreeMap::new();
    let pb = progress_bar(cfg.progress, batches.len(), "GAT (shared)");
    let first = state.losses.len();
    let mut losses = state.losses;
    for (step, ids) in batches.iter().enumerate().skip(first) {
        let g = match graphs.entry(ids.len()) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(batch_graph(h, w, ids.len())?)
            }
        };
        let xb = batch_features(x, ids);
        let x_sq = frobenius_sq(xb.view());
        let mut tape = Tape::<T>::new();
        let xv = tape.constant(xb.into_dyn());
        let l = train_step(&mut tape, xv, g, &mut opt, cfg, x_sq);
        check_finite(l, step)?;
        losses.push(l);
        if let Some(pb) = &pb {
            pb.set_position(step as u64 + 1);
            pb.set_message(format!("step {} loss {:.6}", step + 1, l));
        }
        if let Some(hk) = hook.as_mut()
            && hk.due(step + 1, batches.len())
        {
            (hk.f)(&opt.state(&losses)?)?;
        }
    }
    if let Some(pb) = pb {
        pb.finish();
    }
    Ok(GatTrained {
        params: opt.params()?,
        losses,
    })
}

/// Smoothed images of a stack with a shared GAT: `max(X̂, 0)` per image, `[N, C, H, W]`.
pub fn smoothed_images<T: Float>(
    params: &GatParams<T>,
    x: ArrayView4<T>,
    batch: usize,
) -> Result<Array4<T>> {
    let (n_img, c, h, w) = x.dim();
    let hw = h * w;
    let mut out = Array4::<T>::zeros((n_img, c, h, w));
    let ids: Vec<usize> = (0..n_img).collect();
    let mut graphs: BTreeMap<usize, GatGraph> = BTreeMap::new();
    for chunk in ids.chunks(batch.max(1)) {
        let g = match graphs.entry(chunk.len()) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(batch_graph(h, w, chunk.len())?)
            }
        };
        let xb = batch_features(x, chunk);
        let mut t = Tape::<T>::no_grad();
        let xv = t.constant(xb.into_dyn());
        let v = params.leaves(&mut t, true);
        let dec = Decoder::tied(&v);
        let f = forward_hidden(&mut t, g, xv, &v, &dec);
        let xh = reconstruct_node(&mut t, &f, &dec);
        let xh = t.value(xh);
        for (i, &img) in chunk.iter().enumerate() {
            for p in 0..hw {
                for ch in 0..c {
                    out[[img, ch, p / w, p % w]] = xh[[i * hw + p, ch]].max(T::zero());
                }
            }
        }
    }
    Ok(out)
}

/// Convenience for tests and fixtures: the loss value and the four gradients at `params`.
pub fn loss_and_grads<T: Float>(
    params: &GatParams<T>,
    graph: &Graph,
    x: ArrayView2<T>,
    form: LossForm,
) -> (f64, Vec<ArrayD<T>>) {
    let g = GatGraph::new(graph);
    let mut t = Tape::<T>::new();
    let xv = t.constant(x.to_owned().into_dyn());
    let v = params.leaves(&mut t, false);
    let l = loss(&mut t, &g, xv, &v, form, frobenius_sq(x));
    let grads = t.backward(l);
    let gs = [v.w1, v.w2, v.a_c, v.a_n]
        .iter()
        .map(|&var| grads.get_or_zeros(var, t.shape(var)))
        .collect();
    (t.scalar(l).f64(), gs)
}

/// One training step from `params` (for fixtures): returns the parameters after the step.
pub fn one_step<T: Float>(
    params: &GatParams<T>,
    graph: &Graph,
    x: ArrayView2<T>,
    cfg: &GatConfig,
) -> Result<GatParams<T>> {
    let cfg1 = GatConfig {
        epochs: 1,
        progress: false,
        ..cfg.clone()
    };
    Ok(train_from(x, graph, params.clone(), &cfg1)?.params)
}
