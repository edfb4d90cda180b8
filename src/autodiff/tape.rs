//! The tape: a flat list of nodes (node id = index), each holding its value and the op that made
//! it; [`Tape::backward`] walks the list once in reverse with one `match` over [`Op`].
//!
//! * Parameters and inputs are explicit leaves ([`Tape::param`], [`Tape::constant`]).
//! * Gradients live in a `Vec` indexed by node id, never a map.
//! * A tape made with [`Tape::no_grad`] records no ops: every result is a constant leaf, nothing is
//!   kept for a backward pass (evaluation paths use it).

use super::ops::elementwise::{Binary, Unary};
use super::ops::{
    attention, cholesky, elementwise, linear, matmul, norm, reduce, segment, shape, softmax,
};
use super::profile;
use crate::float::Float;
use ndarray::{ArrayD, ArrayView2, Ix2, Ix3, IxDyn};
use std::sync::Arc;
use std::time::Instant;

/// A handle to a node of a [`Tape`] (its index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Var(pub usize);

/// How a node was computed. Ops own only what their backward needs beyond input values.
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
    /// LayerNorm over the last axis.
    LayerNorm {
        x: Var,
        gamma: Var,
        beta: Var,
        saved: Box<norm::LayerNormSaved<T>>,
    },
    /// Train-mode BatchNorm over the rows of `[n, c]`.
    BatchNorm {
        x: Var,
        gamma: Var,
        beta: Var,
        saved: Box<norm::BatchNormSaved<T>>,
    },
    /// `x / max(‖x‖, eps)` over the last axis.
    L2Normalize { x: Var, eps: T, norms: Vec<T> },
    /// `L⁻¹ B` for lower-triangular `L`.
    TriSolveLower { l: Var, b: Var },
    /// `2 Σ ln L_jj`.
    LogDetChol { l: Var },
    /// Fused multi-head attention on packed `qkv: [B, L, 3D]` with `heads` heads; `saved` is what
    /// the backward pass needs besides the input and output (probabilities `[B, h, L, L]`, or the
    /// row log-sum-exps `[B, h, L]` on the fused f32 path).
    Attention {
        qkv: Var,
        heads: usize,
        saved: Box<ArrayD<T>>,
    },
    /// `x W + b (+ r)` for `x: [.., k]`, `W: [k, n]`, `b: [n]` and a residual `r` of the output's
    /// shape.
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

/// One node: its value, how it was made, and whether any parameter flows into it.
#[derive(Clone, Debug)]
pub struct Node<T: Float> {
    pub value: ArrayD<T>,
    pub op: Op<T>,
    pub needs_grad: bool,
}

/// A computation record over `T` (f32 or f64).
#[derive(Clone, Debug)]
pub struct Tape<T: Float> {
    nodes: Vec<Node<T>>,
    record: bool,
}

/// Gradients after [`Tape::backward`], indexed by node id; only leaves keep theirs.
#[derive(Clone, Debug)]
pub struct Grads<T: Float> {
    grads: Vec<Option<ArrayD<T>>>,
}

impl<T: Float> Grads<T> {
    /// The gradient of a leaf, or `None` if nothing flowed into it.
    pub fn get(&self, v: Var) -> Option<&ArrayD<T>> {
        self.grads.get(v.0).and_then(|g| g.as_ref())
    }
    /// The gradient of a leaf, or zeros of `like`'s shape.
    pub fn get_or_zeros(&self, v: Var, shape: &[usize]) -> ArrayD<T> {
        self.get(v)
            .cloned()
            .unwrap_or_else(|| ArrayD::zeros(IxDyn(shape)))
    }
    /// Take ownership of a leaf's gradient.
    pub fn take(&mut self, v: Var) -> Option<ArrayD<T>> {
        self.grads.get_mut(v.0).and_then(|g| g.take())
    }
}

impl<T: Float> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Tape<T> {
    /// A recording tape.
    pub fn new() -> Self {
        Tape {
            nodes: Vec::new(),
            record: true,
        }
    }
    /// A tape that records nothing: for evaluation passes.
    pub fn no_grad() -> Self {
        Tape {
            nodes: Vec::new(),
            record: false,
        }
    }
    /// Whether ops are recorded.
    pub fn is_recording(&self) -> bool {
        self.record
    }
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    /// True if no node was added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
    /// A node's value.
    pub fn value(&self, v: Var) -> &ArrayD<T> {
        &self.nodes[v.0].value
    }
    /// A node's shape.
    pub fn shape(&self, v: Var) -> &[usize] {
        self.nodes[v.0].value.shape()
    }
    /// The scalar value of a one-element node.
    pub fn scalar(&self, v: Var) -> T {
        let a = self.value(v);
        assert_eq!(a.len(), 1, "scalar() on a node with {} elements", a.len());
        *a.iter().next().expect("one element")
    }
    /// Drop every node from `len` on, keeping the first `len` (e.g. a large constant input reused
    /// across training steps without copying it into a fresh tape each step).
    pub fn truncate(&mut self, len: usize) {
        self.nodes.truncate(len);
    }
    /// A node (for printing or study).
    pub fn node(&self, v: Var) -> &Node<T> {
        &self.nodes[v.0]
    }

    fn push(&mut self, value: ArrayD<T>, op: Op<T>, parents: &[Var]) -> Var {
        self.profile_gap(op.name());
        let needs_grad = self.record && parents.iter().any(|p| self.nodes[p.0].needs_grad);
        let op = if needs_grad { op } else { Op::Leaf };
        self.nodes.push(Node {
            value,
            op,
            needs_grad,
        });
        Var(self.nodes.len() - 1)
    }

    /// Charge the time since the previous push (on any tape of this thread) to `name`, only while
    /// profiling.
    fn profile_gap(&mut self, name: &'static str) {
        if profile::enabled() {
            profile::gap(name);
        }
    }

    /// A leaf whose gradient is wanted.
    pub fn param(&mut self, value: ArrayD<T>) -> Var {
        self.profile_gap("leaf");
        let needs_grad = self.record;
        self.nodes.push(Node {
            value,
            op: Op::Leaf,
            needs_grad,
        });
        Var(self.nodes.len() - 1)
    }
    /// A leaf without gradient.
    pub fn constant(&mut self, value: ArrayD<T>) -> Var {
        self.profile_gap("leaf");
        self.nodes.push(Node {
            value,
            op: Op::Leaf,
            needs_grad: false,
        });
        Var(self.nodes.len() - 1)
    }
    /// A 0-d constant.
    pub fn scalar_const(&mut self, x: f64) -> Var {
        self.constant(ArrayD::from_elem(IxDyn(&[]), T::of(x)))
    }

    // ---------------------------------------------------------------- products

    /// `a·b` for `a: [.., k]`, `b: [k, n]` (leading axes of `a` are flattened as rows).
    pub fn matmul(&mut self, a: Var, b: Var) -> Var {
        self.matmul_t(a, b, false, false)
    }
    /// `op(a)·op(b)` with optional transposes (2-D operands when a transpose is used).
    pub fn matmul_t(&mut self, a: Var, b: Var, ta: bool, tb: bool) -> Var {
        let (av, bv) = (self.value(a), self.value(b));
        assert_eq!(
            bv.ndim(),
            2,
            "matmul: right operand must be 2-D, got {:?}",
            bv.shape()
        );
        let out = if av.ndim() == 2 || ta {
            let a2 = av
                .view()
                .into_dimensionality::<Ix2>()
                .expect("matmul: left operand 2-D when transposed");
            let b2 = bv.view().into_dimensionality::<Ix2>().expect("2-D");
            let a2 = if ta { a2.reversed_axes() } else { a2 };
            let b2 = if tb { b2.reversed_axes() } else { b2 };
            assert_eq!(
                a2.dim().1,
                b2.dim().0,
                "matmul: shapes {:?} and {:?}",
                av.shape(),
                bv.shape()
            );
            matmul::matmul(a2, b2).into_dyn()
        } else {
            let k = *av.shape().last().expect("axis");
            let rows = av.len() / k.max(1);
            let a_std = av.as_standard_layout();
            let a2 = a_std
                .view()
                .into_shape_with_order((rows, k))
                .expect("flatten");
            let b2 = bv.view().into_dimensionality::<Ix2>().expect("2-D");
            let b2 = if tb { b2.reversed_axes() } else { b2 };
            assert_eq!(
                k,
                b2.dim().0,
                "matmul: shapes {:?} and {:?}",
                av.shape(),
                bv.shape()
            );
            let mut shape = av.shape().to_vec();
            *shape.last_mut().expect("axis") = b2.dim().1;
            matmul::matmul(a2, b2)
                .into_shape_with_order(IxDyn(&shape))
                .expect("unflatten")
        };
        self.push(out, Op::MatMul { a, b, ta, tb }, &[a, b])
    }
    /// Batched `op(a_i)·op(b_i)` for `a, b: [bt, ., .]`.
    pub fn batch_matmul(&mut self, a: Var, b: Var, ta: bool, tb: bool) -> Var {
        let a3 = self
            .value(a)
            .view()
            .into_dimensionality::<Ix3>()
            .expect("batch_matmul: 3-D operands");
        let b3 = self
            .value(b)
            .view()
            .into_dimensionality::<Ix3>()
            .expect("batch_matmul: 3-D operands");
        let out = matmul::batch_matmul(a3, b3, ta, tb).into_dyn();
        self.push(out, Op::BatchMatMul { a, b, ta, tb }, &[a, b])
    }

    // ---------------------------------------------------------------- arithmetic

    fn binary(&mut self, kind: Binary, a: Var, b: Var) -> Var {
        let (av, bv) = (self.value(a), self.value(b));
        assert!(
            elementwise::broadcast_shape(av.shape(), bv.shape()).is_some(),
            "{kind:?}: shapes {:?} and {:?} do not broadcast",
            av.shape(),
            bv.shape()
        );
        let out = kind.forward(av, bv);
        self.push(out, Op::Binary { kind, a, b }, &[a, b])
    }
    /// `a + b` (broadcasting).
    pub fn add(&mut self, a: Var, b: Var) -> Var {
        self.binary(Binary::Add, a, b)
    }
    /// `a − b` (broadcasting).
    pub fn sub(&mut self, a: Var, b: Var) -> Var {
        self.binary(Binary::Sub, a, b)
    }
    /// `a ⊙ b` (broadcasting).
    pub fn mul(&mut self, a: Var, b: Var) -> Var {
        self.binary(Binary::Mul, a, b)
    }
    /// `a / b` (broadcasting).
    pub fn div(&mut self, a: Var, b: Var) -> Var {
        self.binary(Binary::Div, a, b)
    }
    /// Elementwise `f(x)`.
    pub fn unary(&mut self, kind: Unary, x: Var) -> Var {
        let out = kind.forward(self.value(x));
        self.push(out, Op::Unary { kind, x }, &[x])
    }
    /// `c·x`.
    pub fn scale(&mut self, x: Var, c: f64) -> Var {
        self.unary(Unary::Scale(c), x)
    }
    /// `x + c`.
    pub fn shift(&mut self, x: Var, c: f64) -> Var {
        self.unary(Unary::Shift(c), x)
    }
    /// `−x`.
    pub fn neg(&mut self, x: Var) -> Var {
        self.unary(Unary::Neg, x)
    }
    /// `x²`.
    pub fn square(&mut self, x: Var) -> Var {
        self.unary(Unary::Square, x)
    }
    /// `eˣ`.
    pub fn exp(&mut self, x: Var) -> Var {
        self.unary(Unary::Exp, x)
    }
    /// `ln x`.
    pub fn ln(&mut self, x: Var) -> Var {
        self.unary(Unary::Ln, x)
    }
    /// `ln(1 + x)`.
    pub fn log1p(&mut self, x: Var) -> Var {
        self.unary(Unary::Log1p, x)
    }
    /// `eˣ − 1`.
    pub fn expm1(&mut self, x: Var) -> Var {
        self.unary(Unary::Expm1, x)
    }
    /// `√x`.
    pub fn sqrt(&mut self, x: Var) -> Var {
        self.unary(Unary::Sqrt, x)
    }
    /// Logistic sigmoid.
    pub fn sigmoid(&mut self, x: Var) -> Var {
        self.unary(Unary::Sigmoid, x)
    }
    /// ELU (α = 1).
    pub fn elu(&mut self, x: Var) -> Var {
        self.unary(Unary::Elu, x)
    }
    /// SELU.
    pub fn selu(&mut self, x: Var) -> Var {
        self.unary(Unary::Selu, x)
    }
    /// LeakyReLU with the given negative slope.
    pub fn leaky_relu(&mut self, x: Var, slope: f64) -> Var {
        self.unary(Unary::LeakyRelu(slope), x)
    }
    /// `max(x, 0)`.
    pub fn relu(&mut self, x: Var) -> Var {
        self.unary(Unary::Relu, x)
    }
    /// Exact GELU.
    pub fn gelu(&mut self, x: Var) -> Var {
        self.unary(Unary::Gelu, x)
    }
    /// `min(max(x, lo), hi)`.
    pub fn clamp(&mut self, x: Var, lo: f64, hi: f64) -> Var {
        self.unary(Unary::Clamp(lo, hi), x)
    }

    // ---------------------------------------------------------------- reductions

    /// Sum over `axis` (kept as size 1 if `keep`).
    pub fn sum_axis(&mut self, x: Var, axis: usize, keep: bool) -> Var {
        let out = reduce::sum_axis(self.value(x), axis, keep);
        self.push(out, Op::Sum { x, axis, keep }, &[x])
    }
    /// Mean over `axis`.
    pub fn mean_axis(&mut self, x: Var, axis: usize, keep: bool) -> Var {
        let n = self.shape(x)[axis] as f64;
        let s = self.sum_axis(x, axis, keep);
        self.scale(s, 1.0 / n)
    }
    /// Sum of all elements (0-d).
    pub fn sum(&mut self, x: Var) -> Var {
        let out = reduce::sum_all(self.value(x));
        self.push(out, Op::SumAll { x }, &[x])
    }
    /// Mean of all elements (0-d).
    pub fn mean(&mut self, x: Var) -> Var {
        let n = self.value(x).len() as f64;
        let s = self.sum(x);
        self.scale(s, 1.0 / n)
    }

    // ---------------------------------------------------------------- layout

    /// Same elements (row-major), new shape.
    pub fn reshape(&mut self, x: Var, shape: &[usize]) -> Var {
        let n: usize = shape.iter().product();
        assert_eq!(
            n,
            self.value(x).len(),
            "reshape {:?} to {:?}",
            self.shape(x),
            shape
        );
        let out = shape::reshape(self.value(x), shape);
        self.push(out, Op::Reshape { x }, &[x])
    }
    /// Permute axes.
    pub fn permute(&mut self, x: Var, axes: &[usize]) -> Var {
        let out = shape::permute(self.value(x), axes);
        self.push(
            out,
            Op::Permute {
                x,
                axes: axes.to_vec(),
            },
            &[x],
        )
    }
    /// Transpose a 2-D node.
    pub fn transpose(&mut self, x: Var) -> Var {
        assert_eq!(self.value(x).ndim(), 2, "transpose needs 2-D");
        self.permute(x, &[1, 0])
    }
    /// Concatenate along `axis`.
    pub fn concat(&mut self, xs: &[Var], axis: usize) -> Var {
        let vals: Vec<&ArrayD<T>> = xs.iter().map(|v| self.value(*v)).collect();
        let out = shape::concat(&vals, axis);
        self.push(
            out,
            Op::Concat {
                xs: xs.to_vec(),
                axis,
            },
            xs,
        )
    }
    /// `x[start..end]` along `axis`.
    pub fn slice(&mut self, x: Var, axis: usize, start: usize, end: usize) -> Var {
        let out = shape::slice(self.value(x), axis, start, end);
        self.push(
            out,
            Op::Slice {
                x,
                axis,
                start,
                end,
            },
            &[x],
        )
    }
    /// Rows `idx` of `x` along axis 0.
    pub fn gather_rows(&mut self, x: Var, idx: Arc<[usize]>) -> Var {
        let out = shape::gather_rows(self.value(x), &idx);
        self.push(out, Op::GatherRows { x, idx }, &[x])
    }
    /// `out[idx[i]] += x[i]` into `n` rows.
    pub fn scatter_add_rows(&mut self, x: Var, idx: Arc<[usize]>, n: usize) -> Var {
        assert_eq!(
            idx.len(),
            self.shape(x)[0],
            "scatter_add_rows: one index per row"
        );
        let out = shape::scatter_add_rows(self.value(x), &idx, n);
        self.push(out, Op::ScatterAddRows { x, idx, n }, &[x])
    }

    // ---------------------------------------------------------------- softmax family

    /// Softmax over the last axis.
    pub fn softmax(&mut self, x: Var) -> Var {
        let out = softmax::softmax(self.value(x));
        self.push(out, Op::Softmax { x }, &[x])
    }
    /// Log-softmax over the last axis.
    pub fn log_softmax(&mut self, x: Var) -> Var {
        let out = softmax::log_softmax(self.value(x));
        self.push(out, Op::LogSoftmax { x }, &[x])
    }
    /// Log-sum-exp over the last axis (removed).
    pub fn logsumexp(&mut self, x: Var) -> Var {
        let out = softmax::logsumexp(self.value(x));
        self.push(out, Op::LogSumExp { x }, &[x])
    }
    /// Softmax within CSR segments `offsets[v]..offsets[v+1]` of axis 0.
    pub fn segment_softmax(&mut self, x: Var, offsets: Arc<[usize]>) -> Var {
        assert_eq!(
            *offsets.last().unwrap_or(&0),
            self.shape(x)[0],
            "segment offsets must cover axis 0"
        );
        let out = softmax::segment_softmax(self.value(x), &offsets);
        self.push(out, Op::SegmentSoftmax { x, offsets }, &[x])
    }

    /// Fused edge aggregation `out[v] = Σ_{e∈seg(v)} α_e x[src_e]` for `α` with one element per
    /// edge and `x: [n_src, F]`; result `[n_dst, F]` (SPEC §3.3 Eq. 1).
    pub fn segment_weighted_sum(
        &mut self,
        alpha: Var,
        x: Var,
        idx: Arc<segment::SegmentIndex>,
    ) -> Var {
        assert_eq!(self.value(alpha).len(), idx.n_edges(), "one α per edge");
        assert_eq!(
            self.shape(x).len(),
            2,
            "segment_weighted_sum: x must be 2-D"
        );
        assert_eq!(
            self.shape(x)[0],
            idx.n_src,
            "segment_weighted_sum: source rows"
        );
        let out = segment::segment_weighted_sum(self.value(alpha), self.value(x), &idx);
        self.push(out, Op::SegmentWeightedSum { alpha, x, idx }, &[alpha, x])
    }

    // ---------------------------------------------------------------- normalisation

    /// LayerNorm over the last axis with affine `γ`, `β`.
    pub fn layer_norm(&mut self, x: Var, gamma: Var, beta: Var, eps: f64) -> Var {
        let (out, saved) = norm::layer_norm(
            self.value(x),
            self.value(gamma),
            self.value(beta),
            T::of(eps),
        );
        self.push(
            out,
            Op::LayerNorm {
                x,
                gamma,
                beta,
                saved: Box::new(saved),
            },
            &[x, gamma, beta],
        )
    }
    /// Train-mode BatchNorm over the rows of `x: [n, c]`. Also returns the batch mean and biased
    /// variance (for the running statistics, SPEC §5).
    pub fn batch_norm_train(
        &mut self,
        x: Var,
        gamma: Var,
        beta: Var,
        eps: f64,
    ) -> (Var, ndarray::Array1<T>, ndarray::Array1<T>) {
        let (out, saved) = norm::batch_norm_train(
            self.value(x),
            self.value(gamma),
            self.value(beta),
            T::of(eps),
        );
        let (m, v) = (saved.mean.clone(), saved.var.clone());
        let y = self.push(
            out,
            Op::BatchNorm {
                x,
                gamma,
                beta,
                saved: Box::new(saved),
            },
            &[x, gamma, beta],
        );
        (y, m, v)
    }
    /// `x / max(‖x‖, eps)` over the last axis.
    pub fn l2_normalize(&mut self, x: Var, eps: f64) -> Var {
        let (out, norms) = norm::l2_normalize(self.value(x), T::of(eps));
        self.push(
            out,
            Op::L2Normalize {
                x,
                eps: T::of(eps),
                norms,
            },
            &[x],
        )
    }

    // ---------------------------------------------------------------- Cholesky pieces

    /// `L⁻¹ B` for lower-triangular `L: [.., d, d]`, `B: [.., d, m]`.
    pub fn tri_solve_lower(&mut self, l: Var, b: Var) -> Var {
        let out = cholesky::tri_solve_lower(self.value(l), self.value(b));
        self.push(out, Op::TriSolveLower { l, b }, &[l, b])
    }
    /// `ln|L Lᵀ| = 2 Σ_j ln L_jj` per matrix.
    pub fn log_det_chol(&mut self, l: Var) -> Var {
        let out = cholesky::log_det_chol(self.value(l));
        self.push(out, Op::LogDetChol { l }, &[l])
    }

    // ---------------------------------------------------------------- attention

    /// Multi-head scaled dot-product attention on the packed projection `qkv: [B, L, 3D]`
    /// (`[Q | K | V]`), `heads` heads; returns the head-merged `[B, L, D]` (SPEC §4.1 `MHSA`
    /// before `W_o`).
    pub fn attention(&mut self, qkv: Var, heads: usize) -> Var {
        let x = self
            .value(qkv)
            .view()
            .into_dimensionality::<Ix3>()
            .expect("attention: qkv must be [B, L, 3D]");
        let keep = self.record && self.needs(qkv);
        let (out, saved) = attention::attention(x, heads, keep);
        let saved = saved.unwrap_or_else(|| ArrayD::zeros(IxDyn(&[0])));
        self.push(
            out.into_dyn(),
            Op::Attention {
                qkv,
                heads,
                saved: Box::new(saved),
            },
            &[qkv],
        )
    }

    /// The affine layer `x W + b` (`x: [.., k]`, `W: [k, n]`, `b: [n]`) as one op.
    pub fn linear(&mut self, x: Var, w: Var, b: Var) -> Var {
        self.linear_plus(x, w, b, None)
    }

    /// `x W + b + r` as one op: an affine layer and the residual connection around it (`r` has
    /// the output's shape). Equal to `add(r, linear(x, w, b))`.
    pub fn linear_add(&mut self, x: Var, w: Var, b: Var, r: Var) -> Var {
        self.linear_plus(x, w, b, Some(r))
    }

    /// `x W + b`, plus `r` when given ([`Self::linear`], [`Self::linear_add`]).
    pub fn linear_plus(&mut self, x: Var, w: Var, b: Var, r: Option<Var>) -> Var {
        let rv = r.map(|r| self.value(r));
        let out = linear::linear(self.value(x), self.weight(x, w), self.bias(w, b), rv);
        let parents: Vec<Var> = [x, w, b].into_iter().chain(r).collect();
        self.push(out, Op::Linear { x, w, b, r }, &parents)
    }

    /// `GELU(x W + b)` (exact GELU) as one op. Equal to `gelu(linear(x, w, b))`.
    pub fn linear_gelu(&mut self, x: Var, w: Var, b: Var) -> Var {
        let (pre, out) = linear::linear_gelu(self.value(x), self.weight(x, w), self.bias(w, b));
        let pre = Box::new(pre);
        self.push(out, Op::LinearGelu { x, w, b, pre }, &[x, w, b])
    }

    /// `W` of an affine layer as a matrix whose row count is `x`'s width.
    fn weight(&self, x: Var, w: Var) -> ArrayView2<'_, T> {
        let wv = self
            .value(w)
            .view()
            .into_dimensionality::<Ix2>()
            .expect("linear: W must be 2-D");
        assert_eq!(
            self.shape(x).last(),
            Some(&wv.dim().0),
            "linear: input width and W rows differ"
        );
        wv
    }

    /// `b` of an affine layer as a vector of `W`'s column count.
    fn bias(&self, w: Var, b: Var) -> ndarray::ArrayView1<'_, T> {
        let bv = self
            .value(b)
            .view()
            .into_dimensionality::<ndarray::Ix1>()
            .expect("linear: b must be 1-D");
        assert_eq!(Some(&bv.len()), self.shape(w).get(1), "linear: bias width");
        bv
    }

    // ---------------------------------------------------------------- backward

    /// Reverse pass from `root`, seeded with ones (for a scalar loss: `∂root/∂leaf`). Returns the
    /// gradients of every leaf that needs one.
    pub fn backward(&self, root: Var) -> Grads<T> {
        let seed = ArrayD::from_elem(self.value(root).raw_dim(), T::one());
        self.backward_with(root, seed)
    }

    /// Reverse pass from `root` seeded with `seed` (a vector–Jacobian product).
    pub fn backward_with(&self, root: Var, seed: ArrayD<T>) -> Grads<T> {
        assert!(self.record, "backward on a no_grad tape");
        assert_eq!(seed.shape(), self.shape(root), "seed shape");
        let mut grads: Vec<Option<ArrayD<T>>> = vec![None; root.0 + 1];
        if self.nodes[root.0].needs_grad {
            grads[root.0] = Some(seed);
        }
        for i in (0..=root.0).rev() {
            let node = &self.nodes[i];
            if matches!(node.op, Op::Leaf) {
                continue; // leaves keep their gradient
            }
            let Some(g) = grads[i].take() else { continue };
            if profile::enabled() {
                let t0 = Instant::now();
                self.backward_node(node, &g, &mut grads);
                drop(g);
                profile::record("bwd", node.op.name(), t0.elapsed());
            } else {
                self.backward_node(node, &g, &mut grads);
            }
        }
        if profile::enabled() {
            profile::restart_clock();
        }
        Grads { grads }
    }

    fn needs(&self, v: Var) -> bool {
        self.nodes[v.0].needs_grad
    }

    /// The single dispatch over ops: each arm computes the parents' gradient contributions.
    fn backward_node(&self, node: &Node<T>, g: &ArrayD<T>, grads: &mut [Option<ArrayD<T>>]) {
        let val = |v: Var| &self.nodes[v.0].value;
        let accumulate = |grads: &mut [Option<ArrayD<T>>], v: Var, g: Option<ArrayD<T>>| {
            if self.nodes[v.0].needs_grad {
                accumulate(grads, v, g)
            }
        };
        match &node.op {
            Op::Leaf => {}
            Op::MatMul { a, b, ta, tb } => {
                let (av, bv) = (val(*a), val(*b));
                let need = (self.needs(*a), self.needs(*b));
                if av.ndim() == 2 || *ta {
                    let g2 = g.view().into_dimensionality::<Ix2>().expect("2-D");
                    let (ga, gb) = matmul::matmul_backward(
                        g2,
                        av.view().into_dimensionality().expect("2-D"),
                        bv.view().into_dimensionality().expect("2-D"),
                        *ta,
                        *tb,
                        need,
                    );
                    accumulate(grads, *a, ga.map(|x| x.into_dyn()));
                    accumulate(grads, *b, gb.map(|x| x.into_dyn()));
                } else {
                    let k = *av.shape().last().expect("axis");
                    let rows = av.len() / k.max(1);
                    let n = *g.shape().last().expect("axis");
                    let a_std = av.as_standard_layout();
                    let a2 = a_std
                        .view()
                        .into_shape_with_order((rows, k))
                        .expect("flatten");
                    let g_std = g.as_standard_layout();
                    let g2 = g_std
                        .view()
                        .into_shape_with_order((rows, n))
                        .expect("flatten");
                    let b2 = bv.view().into_dimensionality::<Ix2>().expect("2-D");
                    let (ga, gb) = matmul::matmul_backward(g2, a2, b2, false, *tb, need);
                    accumulate(
                        grads,
                        *a,
                        ga.map(|x| {
                            x.into_shape_with_order(IxDyn(av.shape()))
                                .expect("unflatten")
                        }),
                    );
                    accumulate(grads, *b, gb.map(|x| x.into_dyn()));
                }
            }
            Op::BatchMatMul { a, b, ta, tb } => {
                let (ga, gb) = matmul::batch_matmul_backward(
                    g.view().into_dimensionality::<Ix3>().expect("3-D"),
                    val(*a).view().into_dimensionality().expect("3-D"),
                    val(*b).view().into_dimensionality().expect("3-D"),
                    *ta,
                    *tb,
                    (self.needs(*a), self.needs(*b)),
                );
                accumulate(grads, *a, ga.map(|x| x.into_dyn()));
                accumulate(grads, *b, gb.map(|x| x.into_dyn()));
            }
            Op::Binary { kind, a, b } => {
                let (ga, gb) = kind.backward(g, val(*a), val(*b), (self.needs(*a), self.needs(*b)));
                accumulate(grads, *a, ga);
                accumulate(grads, *b, gb);
            }
            Op::Unary { kind, x } => {
                accumulate(grads, *x, Some(kind.backward(g, val(*x), &node.value)));
            }
            Op::Sum { x, axis, keep } => {
                accumulate(
                    grads,
                    *x,
                    Some(reduce::sum_axis_backward(g, val(*x).shape(), *axis, *keep)),
                );
            }
            Op::SumAll { x } => {
                accumulate(
                    grads,
                    *x,
                    Some(reduce::sum_all_backward(g, val(*x).shape())),
                );
            }
            Op::Reshape { x } => {
                accumulate(grads, *x, Some(shape::reshape(g, val(*x).shape())));
            }
            Op::Permute { x, axes } => {
                accumulate(
                    grads,
                    *x,
                    Some(shape::permute(g, &shape::inverse_permutation(axes))),
                );
            }
            Op::Concat { xs, axis } => {
                let mut start = 0;
                for x in xs {
                    let len = val(*x).shape()[*axis];
                    if self.needs(*x) {
                        accumulate(grads, *x, Some(shape::slice(g, *axis, start, start + len)));
                    }
                    start += len;
                }
            }
            Op::Slice {
                x,
                axis,
                start,
                end,
            } => {
                accumulate(
                    grads,
                    *x,
                    Some(shape::slice_backward(
                        g,
                        val(*x).shape(),
                        *axis,
                        *start,
                        *end,
                    )),
                );
            }
            Op::GatherRows { x, idx } => {
                let n = val(*x).shape()[0];
                accumulate(grads, *x, Some(shape::scatter_add_rows(g, idx, n)));
            }
            Op::ScatterAddRows { x, idx, .. } => {
                accumulate(grads, *x, Some(shape::gather_rows(g, idx)));
            }
            Op::Softmax { x } => {
                accumulate(grads, *x, Some(softmax::softmax_backward(g, &node.value)));
            }
            Op::LogSoftmax { x } => {
                accumulate(
                    grads,
                    *x,
                    Some(softmax::log_softmax_backward(g, &node.value)),
                );
            }
            Op::LogSumExp { x } => {
                accumulate(
                    grads,
                    *x,
                    Some(softmax::logsumexp_backward(g, val(*x), &node.value)),
                );
            }
            Op::SegmentSoftmax { x, offsets } => {
                accumulate(
                    grads,
                    *x,
                    Some(softmax::segment_softmax_backward(g, &node.value, offsets)),
                );
            }
            Op::SegmentWeightedSum { alpha, x, idx } => {
                let need = (self.needs(*alpha), self.needs(*x));
                let (da, dx) =
                    segment::segment_weighted_sum_backward(g, val(*alpha), val(*x), idx, need);
                accumulate(grads, *alpha, da);
                accumulate(grads, *x, dx);
            }
            Op::LayerNorm {
                x,
                gamma,
                beta,
                saved,
            } => {
                let (dx, dg, db) = norm::layer_norm_backward(g, val(*x), val(*gamma), saved);
                accumulate(grads, *x, Some(dx));
                accumulate(grads, *gamma, Some(dg));
                accumulate(grads, *beta, Some(db));
            }
            Op::BatchNorm {
                x,
                gamma,
                beta,
                saved,
            } => {
                let (dx, dg, db) = norm::batch_norm_train_backward(g, val(*gamma), saved);
                accumulate(grads, *x, Some(dx));
                accumulate(grads, *gamma, Some(dg));
                accumulate(grads, *beta, Some(db));
            }
            Op::L2Normalize { x, eps, norms } => {
                accumulate(
                    grads,
                    *x,
                    Some(norm::l2_normalize_backward(g, &node.value, norms, *eps)),
                );
            }
            Op::TriSolveLower { l, b } => {
                let (dl, db) = cholesky::tri_solve_lower_backward(
                    g,
                    val(*l),
                    &node.value,
                    (self.needs(*l), self.needs(*b)),
                );
                accumulate(grads, *l, dl);
                accumulate(grads, *b, db);
            }
            Op::LogDetChol { l } => {
                accumulate(grads, *l, Some(cholesky::log_det_chol_backward(g, val(*l))));
            }
            Op::Linear { x, w, b, r } => {
                if let Some(r) = r
                    && self.needs(*r)
                {
                    accumulate(grads, *r, Some(g.clone()));
                }
                self.affine_backward(grads, g, *x, *w, *b);
            }
            Op::LinearGelu { x, w, b, pre } => {
                let gp = Unary::Gelu.backward(g, pre, &node.value);
                self.affine_backward(grads, &gp, *x, *w, *b);
            }
            Op::Attention { qkv, heads, saved } => {
                let d = attention::attention_backward(
                    g.view().into_dimensionality::<Ix3>().expect("3-D"),
                    val(*qkv).view().into_dimensionality().expect("3-D"),
                    node.value.view().into_dimensionality().expect("3-D"),
                    saved,
                    *heads,
                );
                accumulate(grads, *qkv, Some(d.into_dyn()));
            }
        }
    }

    /// Accumulate `(∂x, ∂W, ∂b)` of the affine layer `x W + b` for the upstream `g`.
    fn affine_backward(
        &self,
        grads: &mut [Option<ArrayD<T>>],
        g: &ArrayD<T>,
        x: Var,
        w: Var,
        b: Var,
    ) {
        let (gx, gw, gb) = linear::linear_backward(
            g,
            self.value(x),
            self.value(w).view().into_dimensionality().expect("2-D"),
            (self.needs(x), self.needs(w), self.needs(b)),
        );
        accumulate(grads, x, gx);
        accumulate(grads, w, gw.map(|a| a.into_dyn()));
        accumulate(grads, b, gb.map(|a| a.into_dyn()));
    }
}

/// Add a gradient contribution for `v` (no-op for `None`).
fn accumulate<T: Float>(grads: &mut [Option<ArrayD<T>>], v: Var, g: Option<ArrayD<T>>) {
    let Some(g) = g else { return };
    match &mut grads[v.0] {
        Some(acc) => super::ops::par::add_assign(acc, &g),
        slot @ None => *slot = Some(g),
    }
}
