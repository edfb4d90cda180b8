//! The tape's op enum (method §17): one variant per recorded operation, naming its parents and
//! what its backward pass needs besides the parents' values and its own output.
//!
//! Most ops keep nothing: their vector–Jacobian product is computed from the input values and the
//! output (both on the tape). The exceptions, each documented on its variant, are LayerNorm and
//! BatchNorm (row or column statistics), L2 normalisation (the row norms), the fused
//! `GELU(x W + b)` (its pre-activation) and attention ([`AttentionSaved`]).
//!
//! [`crate::autodiff::Tape`] records these (`tape.rs`); [`crate::autodiff::Tape::backward`] walks
//! them with one `match` (`backward.rs`).

use super::ops::attention::AttentionSaved;
use super::ops::elementwise::{Binary, Unary};
use super::ops::{norm, segment};
use crate::float::Float;
use ndarray::ArrayD;
use std::sync::Arc;

/// A handle to a node of a [`crate::autodiff::Tape`] (its index); ops name their parents by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Var(pub usize);

/// How a node was computed: the op and its parents. A variant owns only what its backward pass
/// needs beyond the parents' values and the node's own output (both kept on the tape); the fields
/// that are neither a parent nor a shape argument say so.
#[derive(Clone, Debug)]
pub enum Op<T: Float> {
    /// An input: a parameter (gradient wanted) or a constant.
    Leaf,
    /// `op(a)·op(b)`; `a` may have leading batch axes when neither is transposed (`[.., k]·[k, n]`).
    MatMul { a: Var, b: Var, ta: bool, tb: bool },
    /// Batched `op(a_i)·op(b_i)` for `[bt, ., .]` operands.
    BatchMatMul { a: Var, b: Var, ta: bool, tb: bool },
    /// Broadcasting `a ∘ b`.
    Binary { kind: Binary, a: Var, b: Var },
    /// Elementwise `f(x)`.
    Unary { kind: Unary, x: Var },
    /// Sum over one axis.
    Sum { x: Var, axis: usize, keep: bool },
    /// Sum of all elements (0-d result).
    SumAll { x: Var },
    /// Same data, new shape.
    Reshape { x: Var },
    /// Axis permutation.
    Permute { x: Var, axes: Vec<usize> },
    /// Concatenation along an axis.
    Concat { xs: Vec<Var>, axis: usize },
    /// `x[start..end]` along an axis.
    Slice {
        x: Var,
        axis: usize,
        start: usize,
        end: usize,
    },
    /// `out[i] = x[idx[i]]` along axis 0.
    GatherRows { x: Var, idx: Arc<[usize]> },
    /// `out[idx[i]] += x[i]` into `n` rows.
    ScatterAddRows { x: Var, idx: Arc<[usize]>, n: usize },
    /// Softmax over the last axis.
    Softmax { x: Var },
    /// Log-softmax over the last axis.
    LogSoftmax { x: Var },
    /// Log-sum-exp over the last axis (removed).
    LogSumExp { x: Var },
    /// Softmax within CSR segments along axis 0.
    SegmentSoftmax { x: Var, offsets: Arc<[usize]> },
    /// `out[v] = Σ_{e∈seg(v)} α_e x[src_e]` (fused edge aggregation).
    SegmentWeightedSum {
        alpha: Var,
        x: Var,
        idx: Arc<segment::SegmentIndex>,
    },
    /// LayerNorm over the last axis. Saves per row the mean and `1/sqrt(var + eps)`; the backward
    /// pass recomputes `x̂` from them and the input.
    LayerNorm {
        x: Var,
        gamma: Var,
        beta: Var,
        saved: Box<norm::LayerNormSaved<T>>,
    },
    /// Train-mode BatchNorm over the rows of `[n, c]`. Saves the batch statistics of each column
    /// ([`norm::BatchNormSaved`]).
    BatchNorm {
        x: Var,
        gamma: Var,
        beta: Var,
        saved: Box<norm::BatchNormSaved<T>>,
    },
    /// `x / max(‖x‖, eps)` over the last axis. Saves the row norms `‖x‖` (and `eps`, which
    /// decides the clamped rows).
    L2Normalize { x: Var, eps: T, norms: Vec<T> },
    /// `L⁻¹ B` for lower-triangular `L`.
    TriSolveLower { l: Var, b: Var },
    /// `2 Σ ln L_jj`.
    LogDetChol { l: Var },
    /// Fused multi-head attention on packed `qkv: [B, L, 3D]` with `heads` heads. Saves what the
    /// path that ran the forward needs for its backward: the probabilities `[B, h, L, L]`
    /// (generic path) or the row log-sum-exps `[B, h, L]` (fused f32 path), see
    /// [`AttentionSaved`].
    Attention {
        qkv: Var,
        heads: usize,
        saved: Box<AttentionSaved<T>>,
    },
    /// `x W + b (+ r)` for `x: [.., k]`, `W: [k, n]`, `b: [n]` and a residual `r` of the output's
    /// shape. Saves nothing.
    Linear {
        x: Var,
        w: Var,
        b: Var,
        r: Option<Var>,
    },
    /// `GELU(x W + b)`; `pre` is `x W + b`, which the backward pass needs.
    LinearGelu {
        x: Var,
        w: Var,
        b: Var,
        pre: Box<ArrayD<T>>,
    },
}

impl<T: Float> Op<T> {
    /// A short name for profiles and printing (`"linear"`, `"unary.gelu"`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Leaf => "leaf",
            Op::MatMul { .. } => "matmul",
            Op::BatchMatMul { .. } => "batch_matmul",
            Op::Binary { kind, .. } => match kind {
                Binary::Add => "binary.add",
                Binary::Sub => "binary.sub",
                Binary::Mul => "binary.mul",
                Binary::Div => "binary.div",
            },
            Op::Unary { kind, .. } => match kind {
                Unary::Neg => "unary.neg",
                Unary::Scale(_) => "unary.scale",
                Unary::Shift(_) => "unary.shift",
                Unary::Square => "unary.square",
                Unary::Exp => "unary.exp",
                Unary::Ln => "unary.ln",
                Unary::Log1p => "unary.log1p",
                Unary::Expm1 => "unary.expm1",
                Unary::Sqrt => "unary.sqrt",
                Unary::Sigmoid => "unary.sigmoid",
                Unary::Elu => "unary.elu",
                Unary::Selu => "unary.selu",
                Unary::LeakyRelu(_) => "unary.leaky_relu",
                Unary::Relu => "unary.relu",
                Unary::Gelu => "unary.gelu",
                Unary::Clamp(..) => "unary.clamp",
            },
            Op::Sum { .. } => "sum_axis",
            Op::SumAll { .. } => "sum_all",
            Op::Reshape { .. } => "reshape",
            Op::Permute { .. } => "permute",
            Op::Concat { .. } => "concat",
            Op::Slice { .. } => "slice",
            Op::GatherRows { .. } => "gather_rows",
            Op::ScatterAddRows { .. } => "scatter_add_rows",
            Op::Softmax { .. } => "softmax",
            Op::LogSoftmax { .. } => "log_softmax",
            Op::LogSumExp { .. } => "logsumexp",
            Op::SegmentSoftmax { .. } => "segment_softmax",
            Op::SegmentWeightedSum { .. } => "segment_weighted_sum",
            Op::LayerNorm { .. } => "layer_norm",
            Op::BatchNorm { .. } => "batch_norm",
            Op::L2Normalize { .. } => "l2_normalize",
            Op::TriSolveLower { .. } => "tri_solve_lower",
            Op::LogDetChol { .. } => "log_det_chol",
            Op::Attention { .. } => "attention",
            Op::Linear { r: None, .. } => "linear",
            Op::Linear { r: Some(_), .. } => "linear_add",
            Op::LinearGelu { .. } => "linear_gelu",
        }
    }
}
